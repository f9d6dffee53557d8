//! The gateway client: connect over QUIC with TLS 1.3 trusting one certificate, send typed
//! requests, get typed results. One stream per request; many tasks may share one client.

use std::net::SocketAddr;

use bursar_engine::{Account, Command, Record, ResultCode, Transfer, RECORD_SIZE};
use rustls::pki_types::CertificateDer;

use crate::protocol::{self, FrameDecoder, FrameType, ProtocolError, Request, FRAME_BODY_MAX_BYTES, HEADER_SIZE};

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// Connecting or the connection failed.
    Connection(String),
    /// The server refused the request (or sent something malformed).
    Protocol(ProtocolError),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Connection(why) => write!(f, "connection: {why}"),
            ClientError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

fn conn<E: std::fmt::Display>(e: E) -> ClientError {
    ClientError::Connection(e.to_string())
}

/// A connection to one Bursar server.
#[derive(Debug, Clone)]
pub struct Client {
    connection: quinn::Connection,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _endpoint: quinn::Endpoint,
}

impl Client {
    /// Connects to `addr`, trusting exactly `server_cert`, with TLS server name `server_name`.
    pub async fn connect(addr: SocketAddr, server_cert: CertificateDer<'static>, server_name: &str) -> Result<Client, ClientError> {
        let bind: SocketAddr = if addr.is_ipv6() { "[::1]:0".parse().expect("literal") } else { "127.0.0.1:0".parse().expect("literal") };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(conn)?;
        endpoint.set_default_client_config(crate::tls::client_config(&server_cert).map_err(ClientError::Connection)?);
        let connection = endpoint.connect(addr, server_name).map_err(conn)?.await.map_err(conn)?;
        Ok(Client { connection, next_id: Default::default(), _endpoint: endpoint })
    }

    /// The underlying QUIC connection (for tools and tests that speak raw frames).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    async fn call(&self, request: &Request) -> Result<(protocol::Header, Vec<u8>), ClientError> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut frame = Vec::new();
        request.encode(id, &mut frame);
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(conn)?;
        send.write_all(&frame).await.map_err(conn)?;
        send.finish().map_err(conn)?;
        let bytes = recv.read_to_end(HEADER_SIZE + FRAME_BODY_MAX_BYTES).await.map_err(conn)?;
        let mut decoder = FrameDecoder::new();
        decoder.feed(&bytes);
        let (header, body) = decoder.next_frame().map_err(ClientError::Protocol)?.ok_or(ClientError::Protocol(ProtocolError::Truncated))?;
        if header.request_id != id {
            return Err(ClientError::Protocol(ProtocolError::LengthMismatch));
        }
        if header.frame_type == FrameType::Error {
            let code = body.get(..4).and_then(|b| ProtocolError::from_u32(u32::from_le_bytes(b.try_into().expect("4 bytes"))));
            return Err(ClientError::Protocol(code.unwrap_or(ProtocolError::BadFrameType)));
        }
        Ok((header, body))
    }

    /// Submits a batch; one result code per command. Retrying with the same ids is safe.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Vec<ResultCode>, ClientError> {
        let (header, body) = self.call(&Request::Submit(commands)).await?;
        protocol::decode_submit_reply(&header, &body).map_err(ClientError::Protocol)
    }

    /// Accounts by id: `None` where not found.
    pub async fn lookup_accounts(&self, ids: Vec<u128>) -> Result<Vec<Option<Account>>, ClientError> {
        let (_, body) = self.call(&Request::LookupAccounts(ids)).await?;
        Ok(records(&body).map(Account::decode).map(|a| (a.id != 0).then_some(a)).collect())
    }

    /// Transfers by id: `None` where not found.
    pub async fn lookup_transfers(&self, ids: Vec<u128>) -> Result<Vec<Option<Transfer>>, ClientError> {
        let (_, body) = self.call(&Request::LookupTransfers(ids)).await?;
        Ok(records(&body).map(Transfer::decode).map(|t| (t.id != 0).then_some(t)).collect())
    }
}

fn records(body: &[u8]) -> impl Iterator<Item = &[u8; RECORD_SIZE]> {
    body.chunks_exact(RECORD_SIZE).map(|c| c.try_into().expect("exact chunks"))
}
