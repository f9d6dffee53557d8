//! Bursar's server side. Today: `node`, the durable state machine (engine behind the WAL) that the
//! sequencer thread will own, and `protocol`, the sans-IO codec of the binary wire protocol. The
//! QUIC server, the sequencer thread and the gateway client come with issue 4.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batching;
pub mod client;
pub mod node;
pub mod protocol;
pub mod sequencer;
pub mod server;
pub mod tls;

pub use node::{Node, NodeError};
