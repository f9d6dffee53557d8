//! Bursar's wire format, sans IO: frames and their headers, requests, typed replies and their
//! encodings, the status and metrics records. Bytes in, values out, and back; no socket, no
//! thread, no clock. The format is documented byte by byte in `docs/protocol.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod feed;
pub mod metrics;
pub mod protocol;
pub mod reply;
