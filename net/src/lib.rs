//! Bursar's server side. Today: `node`, the durable state machine (engine behind the WAL) that the
//! sequencer thread will own. The binary wire protocol (a sans-IO codec), the QUIC server and the
//! gateway client come with issue 4.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod node;

pub use node::{Node, NodeError};
