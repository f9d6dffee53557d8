//! Bursar's server side: `node` (the engine behind the WAL), `sequencer` (the thread that owns
//! it and batches requests into group commits), `protocol` (the sans-IO codec of the wire
//! protocol), `server` (QUIC), `assembly` (all of it started as one server), `client` (the
//! gateway library), `batching`, `metrics` and `tls`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assembly;
pub mod batching;
pub mod client;
pub mod metrics;
pub mod node;
mod pool;
pub mod protocol;
pub mod sequencer;
pub mod server;
pub mod tls;

pub use node::{Node, NodeError};
