//! The gateway client: connect over QUIC with TLS 1.3 trusting one certificate, send typed
//! requests, get typed results. One stream per request; many tasks may share one client.

use std::net::SocketAddr;

use bursar_engine::{Account, AccountBalance, AccountFilter, Command, ResultCode, Transfer};
use rustls::pki_types::CertificateDer;

use bursar_wire::protocol::{self, FrameType, ProtocolError, Request, FRAME_BODY_MAX_BYTES, FRAME_RECORDS_MAX, HEADER_SIZE};
use bursar_wire::reply;
pub use bursar_wire::reply::LedgerView;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Why a connection closed, in words a gateway's operator can act on: a TLS alert (QUIC's crypto
/// error codes 0x100 + alert) by name, the server's own close codes by meaning.
pub fn describe_close(reason: &quinn::ConnectionError) -> String {
    match reason {
        quinn::ConnectionError::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            match code.checked_sub(0x100).filter(|alert| *alert <= 0xff) {
                // QUIC's CONNECTION_REFUSED (RFC 9000 section 20.1), sent before any handshake.
                None if code == 0x2 => "the server refused the connection: it is at its connection limit, or this address \
                     is cooling off after one of its connections was closed for stalled or malformed requests"
                    .into(),
                Some(alert) => format!("the server refused the TLS handshake: alert {alert} ({})", tls_alert_name(alert)),
                None => format!("closed by the server: {reason}"),
            }
        }
        quinn::ConnectionError::ApplicationClosed(close) if close.error_code == crate::server::CLOSE_STALLING.into() => {
            "closed by the server: too many of this connection's requests stalled before they were sent whole".into()
        }
        quinn::ConnectionError::ApplicationClosed(close) if close.error_code == crate::server::CLOSE_MALFORMED.into() => {
            "closed by the server: too many malformed requests on this connection".into()
        }
        quinn::ConnectionError::ApplicationClosed(close) if close.error_code == crate::server::CLOSE_IDLE_EVICTED.into() => {
            "closed by the server: idle while the server was at its connection limit (connect again when needed)".into()
        }
        quinn::ConnectionError::TimedOut => "no answer: is a bursar server running at this address? (QUIC runs over UDP, so a \
             missing server answers nothing rather than refusing)"
            .into(),
        other => other.to_string(),
    }
}

/// The name of a TLS alert (RFC 8446 section 6), with what it usually means here.
fn tls_alert_name(alert: u64) -> &'static str {
    match alert {
        40 => "handshake_failure",
        42 => "bad_certificate: the server rejected the client certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca: the client certificate is not from the server's client CA",
        116 => "certificate_required: the server requires a client certificate (mutual TLS)",
        _ => "see RFC 8446 section 6",
    }
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
        Client::connect_with(addr, server_cert, server_name, None).await
    }

    /// As [`Client::connect`], presenting a client certificate to servers that require mutual TLS.
    pub async fn connect_with(
        addr: SocketAddr,
        server_cert: CertificateDer<'static>,
        server_name: &str,
        auth: Option<&crate::tls::ClientAuth>,
    ) -> Result<Client, ClientError> {
        let any = if addr.is_ipv6() { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
        let local = if addr.ip().is_loopback() { addr.ip() } else { any };
        Client::connect_from(SocketAddr::new(local, 0), addr, server_cert, server_name, auth).await
    }

    /// As [`Client::connect_with`], from the local address `bind` (port 0 for any): a gateway
    /// host with several addresses, or a test that plays two gateways on loopback (127.0.0.2).
    pub async fn connect_from(
        bind: SocketAddr,
        addr: SocketAddr,
        server_cert: CertificateDer<'static>,
        server_name: &str,
        auth: Option<&crate::tls::ClientAuth>,
    ) -> Result<Client, ClientError> {
        let mut endpoint = crate::tls::endpoint(bind, None).map_err(conn)?;
        endpoint.set_default_client_config(crate::tls::client_config_with(&server_cert, auth).map_err(ClientError::Connection)?);
        let connection =
            endpoint.connect(addr, server_name).map_err(conn)?.await.map_err(|e| ClientError::Connection(describe_close(&e)))?;
        Ok(Client { connection, next_id: Default::default(), _endpoint: endpoint })
    }

    /// Closes the connection and waits (at most a second) until the server has been told: a
    /// client that just exits leaves the server holding its last replies until their delivery
    /// times out, which a server's shutdown then waits for.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self._endpoint.wait_idle()).await;
    }

    /// The underlying QUIC connection (for tools and tests that speak raw frames).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The error for a failed stream: why the connection closed, when it did (a TLS alert from
    /// the handshake, say), else the stream's own error.
    fn lost(&self, e: &dyn std::fmt::Display) -> ClientError {
        match self.connection.close_reason() {
            Some(reason) => ClientError::Connection(describe_close(&reason)),
            None => ClientError::Connection(e.to_string()),
        }
    }

    async fn call(&self, request: &Request) -> Result<(protocol::Header, Vec<u8>), ClientError> {
        self.call_with(|id, frame| request.encode(id, frame)).await
    }

    /// Sends the frame `encode` writes for a fresh request id; returns the reply's header and body.
    async fn call_with(&self, encode: impl FnOnce(u64, &mut Vec<u8>)) -> Result<(protocol::Header, Vec<u8>), ClientError> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut frame = Vec::new();
        encode(id, &mut frame);
        let lost = |e: &dyn std::fmt::Display| self.lost(e);
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| lost(&e))?;
        // Handed over whole: quinn keeps the buffer until it is acknowledged, with no copy.
        send.write_chunk(bytes::Bytes::from(frame)).await.map_err(|e| lost(&e))?;
        send.finish().map_err(|e| lost(&e))?;
        let bytes = recv.read_to_end(HEADER_SIZE + FRAME_BODY_MAX_BYTES).await.map_err(|e| lost(&e))?;
        let (header, body) = protocol::decode_frame(&bytes).map_err(ClientError::Protocol)?;
        let body = body.to_vec();
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
        self.submit_slice(&commands).await
    }

    /// As [`Client::submit`], borrowing the commands (a caller that may retry keeps them
    /// without cloning a 1 MiB batch).
    pub async fn submit_slice(&self, commands: &[Command]) -> Result<Vec<ResultCode>, ClientError> {
        if commands.len() > FRAME_RECORDS_MAX {
            return Err(ClientError::Protocol(ProtocolError::TooManyRecords));
        }
        let (header, body) = self.call_with(|id, frame| protocol::encode_submit(id, commands, frame)).await?;
        protocol::decode_submit_reply(&header, &body).map_err(ClientError::Protocol)
    }

    /// Accounts by id: `None` where not found.
    pub async fn lookup_accounts(&self, ids: Vec<u128>) -> Result<Vec<Option<Account>>, ClientError> {
        let (_, body) = self.call(&Request::LookupAccounts(ids)).await?;
        Ok(reply::decode_accounts(&body))
    }

    /// The live view of each ledger asked for: `None` for an unknown ledger. No ids: every
    /// ledger, in id order (as many as one reply holds: thousands).
    pub async fn ledger_totals(&self, ids: Vec<u32>) -> Result<Vec<Option<LedgerView>>, ClientError> {
        let asked = ids.len();
        let (_, body) = self.call(&Request::LedgerTotals(ids)).await?;
        reply::decode_ledger_totals(&body, asked).map_err(ClientError::Protocol)
    }

    /// Transfers of one account that match the filter (side, time range, limit, order).
    pub async fn get_account_transfers(&self, filter: AccountFilter) -> Result<Vec<Transfer>, ClientError> {
        let (_, body) = self.call(&Request::GetAccountTransfers(filter)).await?;
        Ok(reply::decode_account_transfers(&body))
    }

    /// Balance history of a `history` account (the balances after each change).
    pub async fn get_account_balances(&self, filter: AccountFilter) -> Result<Vec<AccountBalance>, ClientError> {
        let (_, body) = self.call(&Request::GetAccountBalances(filter)).await?;
        Ok(reply::decode_balances(&body))
    }

    /// Where the server stands: last durable entry, chain hash, state digest.
    pub async fn status(&self) -> Result<protocol::Status, ClientError> {
        let (_, body) = self.call(&Request::Status).await?;
        reply::decode_status(&body).map_err(ClientError::Protocol)
    }

    /// The server's counters and sync latencies since it started.
    pub async fn metrics(&self) -> Result<bursar_wire::metrics::Metrics, ClientError> {
        let (_, body) = self.call(&Request::Metrics).await?;
        reply::decode_metrics(&body).map_err(ClientError::Protocol)
    }

    /// What became of each transfer id: stored, failed (with the code that decided it), or unknown.
    pub async fn lookup_outcomes(&self, ids: Vec<u128>) -> Result<Vec<protocol::Outcome>, ClientError> {
        let asked = ids.len();
        let (_, body) = self.call(&Request::LookupOutcomes(ids)).await?;
        reply::decode_outcomes(&body, asked).map_err(ClientError::Protocol)
    }

    /// Where a transfer came from and what became of it: the hold it resolved, a hold's capture
    /// or release, the original a reversal names, its reversals and what is left reversible.
    /// `None` when no transfer is stored with the id.
    pub async fn lookup_lineage(&self, id: u128) -> Result<Option<bursar_engine::Lineage>, ClientError> {
        let (_, body) = self.call(&Request::LookupLineage(id)).await?;
        reply::decode_lineage(&body).map_err(ClientError::Protocol)
    }

    /// An account's channel policy and velocity rules, with each rule's usage now: `None` when
    /// the account is not found.
    pub async fn lookup_policy(&self, account_id: u128) -> Result<Option<bursar_engine::AccountPolicy>, ClientError> {
        let (_, body) = self.call(&Request::LookupPolicy(account_id)).await?;
        reply::decode_policy(&body).map_err(ClientError::Protocol)
    }

    /// Standing orders and triggers by id, with their run histories (`None` where not found).
    pub async fn lookup_orders(&self, ids: &[u128]) -> Result<Vec<Option<bursar_engine::Order>>, ClientError> {
        if ids.len() > protocol::LOOKUP_ORDERS_MAX {
            return Err(ClientError::Protocol(ProtocolError::TooManyRecords));
        }
        let (_, body) = self.call(&Request::LookupOrders(ids.to_vec())).await?;
        reply::decode_orders(&body, ids.len()).map_err(ClientError::Protocol)
    }

    /// The live standing orders and triggers an account pays, is paid by or is watched by.
    pub async fn account_orders(&self, account_id: u128) -> Result<Vec<bursar_engine::Order>, ClientError> {
        let (_, body) = self.call(&Request::LookupAccountOrders(account_id)).await?;
        reply::decode_account_orders(&body).map_err(ClientError::Protocol)
    }

    /// Quotes by id with their usage (`None` where not found).
    pub async fn lookup_quotes(&self, ids: &[u128]) -> Result<Vec<Option<(bursar_engine::Quote, bursar_engine::QuoteUsage)>>, ClientError> {
        if ids.len() > protocol::LOOKUP_QUOTES_MAX {
            return Err(ClientError::Protocol(ProtocolError::TooManyRecords));
        }
        let (_, body) = self.call(&Request::LookupQuotes(ids.to_vec())).await?;
        reply::decode_quotes(&body, ids.len()).map_err(ClientError::Protocol)
    }

    /// The pending holds that expire soonest, at most `limit` (up to 8 189), in order of expiry.
    pub async fn expiring_holds(&self, limit: u32) -> Result<Vec<Transfer>, ClientError> {
        if limit as usize > FRAME_RECORDS_MAX {
            return Err(ClientError::Protocol(ProtocolError::TooManyRecords));
        }
        let (_, body) = self.call(&Request::ExpiringHolds(limit)).await?;
        Ok(reply::decode_transfers(&body).into_iter().flatten().collect())
    }

    /// The limits in force on each account: `None` where the account is not found.
    pub async fn lookup_limits(&self, ids: Vec<u128>) -> Result<Vec<Option<protocol::LimitsRecord>>, ClientError> {
        let asked = ids.len();
        let (_, body) = self.call(&Request::LookupLimits(ids)).await?;
        reply::decode_limits(&body, asked).map_err(ClientError::Protocol)
    }

    /// Transfers by id: `None` where not found.
    pub async fn lookup_transfers(&self, ids: Vec<u128>) -> Result<Vec<Option<Transfer>>, ClientError> {
        let (_, body) = self.call(&Request::LookupTransfers(ids)).await?;
        Ok(reply::decode_transfers(&body))
    }
}

/// The one retry policy of Bursar's clients (the batching client, the load harness): an attempt
/// that failed with an error another attempt with the same ids may cure (`busy`, shutting
/// down, a lost connection) is tried again after a pause that starts at [`RETRY_BACKOFF_FIRST`]
/// and doubles up to [`RETRY_BACKOFF_MAX`], until `retry_for` has passed.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pause: std::time::Duration,
    give_up: std::time::Instant,
}

/// The first pause of a [`Backoff`].
pub const RETRY_BACKOFF_FIRST: std::time::Duration = std::time::Duration::from_millis(1);

/// The longest pause of a [`Backoff`].
pub const RETRY_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_millis(100);

impl Backoff {
    /// A policy that gives up `retry_for` from now.
    pub fn new(retry_for: std::time::Duration) -> Backoff {
        Backoff { pause: RETRY_BACKOFF_FIRST, give_up: std::time::Instant::now() + retry_for }
    }

    /// Whether another attempt with the same ids may succeed where this one failed with `e`.
    pub fn retryable(e: &ClientError) -> bool {
        matches!(e, ClientError::Connection(_) | ClientError::Protocol(ProtocolError::Busy | ProtocolError::ShuttingDown))
    }

    /// After a failed attempt: the pause before the next one, or None to give up (the error is
    /// not retryable, or the time is spent).
    pub fn next_pause(&mut self, e: &ClientError) -> Option<std::time::Duration> {
        let pause = self.pause;
        if !Self::retryable(e) || std::time::Instant::now() + pause >= self.give_up {
            return None;
        }
        self.pause = (pause * 2).min(RETRY_BACKOFF_MAX);
        Some(pause)
    }
}

/// A change-feed subscription being read (see [`Client::subscribe`]): events in log order.
#[derive(Debug)]
pub struct EventStream {
    recv: quinn::RecvStream,
    _send: quinn::SendStream,
    request_id: u64,
    decoder: protocol::FrameDecoder,
    ready: std::collections::VecDeque<bursar_wire::feed::Event>,
    ended: bool,
}

impl EventStream {
    /// The next event; `None` once the server finished the stream. An error frame (the position
    /// was recycled, the server is stopping, ...) or a reset ends it with an error: resume from
    /// the last event received with a new subscription.
    pub async fn next(&mut self) -> Option<Result<bursar_wire::feed::Event, ClientError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            match self.decoder.next_frame() {
                Ok(Some((header, body))) => {
                    if let Err(e) = self.take_frame(&header, &body) {
                        self.ended = true;
                        return Some(Err(e));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.ended = true;
                    return Some(Err(ClientError::Protocol(e)));
                }
            }
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.decoder.feed(&chunk.bytes),
                Ok(None) => {
                    self.ended = true;
                    if let Err(e) = self.decoder.finish() {
                        return Some(Err(ClientError::Protocol(e)));
                    }
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(ClientError::Connection(format!("the feed stream ended: {e}"))));
                }
            }
        }
    }

    /// The subscription as a `futures` [`Stream`](futures_util::Stream) of events, ending after
    /// the server finishes it or after the first error.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<bursar_wire::feed::Event, ClientError>> {
        futures_util::stream::unfold(self, |mut events| async move { events.next().await.map(|next| (next, events)) })
    }

    fn take_frame(&mut self, header: &protocol::Header, body: &[u8]) -> Result<(), ClientError> {
        if header.request_id != self.request_id {
            return Err(ClientError::Protocol(ProtocolError::LengthMismatch));
        }
        if header.frame_type == FrameType::Error {
            let code = body.get(..4).and_then(|b| ProtocolError::from_u32(u32::from_le_bytes(b.try_into().expect("4 bytes"))));
            return Err(ClientError::Protocol(code.unwrap_or(ProtocolError::BadFrameType)));
        }
        let mut events = Vec::new();
        bursar_wire::feed::decode_events(header.record_count as usize, body, &mut events).map_err(ClientError::Protocol)?;
        self.ready.extend(events);
        Ok(())
    }
}

impl Client {
    /// Opens a change-feed subscription: the events of every durable log entry from
    /// `subscription.from_seq` on (0: from the next one), those its filter wants, in log order,
    /// until the stream is dropped (read them with [`EventStream::next`], or as a `Stream` with
    /// [`EventStream::into_stream`]). Each event carries its position (entry, index): keep the last
    /// one and resume from it (`from_seq` = its entry, `from_index` = its index + 1, or the entry
    /// after a progress event) to see every event exactly once across disconnects.
    pub async fn subscribe(&self, subscription: bursar_wire::feed::Subscription) -> Result<EventStream, ClientError> {
        let request_id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut frame = Vec::new();
        Request::Subscribe(Box::new(subscription)).encode(request_id, &mut frame);
        let lost = |e: &dyn std::fmt::Display| self.lost(e);
        let (mut send, recv) = self.connection.open_bi().await.map_err(|e| lost(&e))?;
        send.write_chunk(bytes::Bytes::from(frame)).await.map_err(|e| lost(&e))?;
        send.finish().map_err(|e| lost(&e))?;
        Ok(EventStream { recv, _send: send, request_id, decoder: protocol::FrameDecoder::new(), ready: Default::default(), ended: false })
    }
}
