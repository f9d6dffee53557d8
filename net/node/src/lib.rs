//! Durability and ordering: `node` (the engine behind the write-ahead log: a batch is durable
//! before it is applied and answered) and `sequencer` (the one thread that owns the node, joins
//! waiting requests into group commits and answers each with a typed reply), with the bounded
//! buffer pools they share with the transport (`pool`). No socket here: the transport
//! (`bursar-net`) hands requests in and encodes the replies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod feed;
pub mod history;
pub mod node;
pub mod pool;
pub mod sequencer;

pub use node::{Node, NodeError};
