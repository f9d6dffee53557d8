//! The binary wire protocol, the QUIC server and the gateway client (issue 4 builds them).
