//! Bursar's transport: `server` (QUIC: admission, deadlines, fair shares, cool-offs), `assembly`
//! (a node, its sequencer and the endpoint started as one server), `client` (the gateway
//! library), `batching` (many callers' commands coalesced, retried with the same ids), `feed` (change-feed
//! subscriptions served from the log) and `tls`.
//! The wire format is `bursar-wire`, durability and ordering `bursar-node`; both are re-exported
//! here under their old paths.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assembly;
pub mod batching;
pub mod client;
pub mod feed;
pub mod server;
pub mod tls;

pub use bursar_node::{history, node, pool, sequencer, Node, NodeError};
pub use bursar_wire::{metrics, protocol, reply};
