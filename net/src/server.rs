//! The QUIC server: a thin shell around the codec and the sequencer. One bidirectional stream per
//! request; a malformed frame gets an error frame and closes only its stream.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{oneshot, Semaphore};

use bursar_node::pool::Pool;
use bursar_wire::feed::Subscription;

use crate::feed::{Feed, FeedConfig};
use bursar_node::sequencer::{Job, SequencerHandle};
use bursar_wire::protocol::{self, ProtocolError, Request, FRAME_BODY_MAX_BYTES, HEADER_SIZE};
use bursar_wire::reply::Reply;

/// Server limits, each named once.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Connections served at once; more are refused.
    pub connections_max: usize,
    /// Concurrent request streams per connection (QUIC flow control).
    pub streams_per_connection_max: u32,
    /// Longest the rest of a request may take to arrive once it is admitted, beyond the time its
    /// size needs at [`REQUEST_READ_BYTES_PER_MS_MIN`] (see [`REQUEST_READ_BASE`]); then the
    /// stream is answered `truncated` and stopped.
    pub request_read_base: std::time::Duration,
    /// Requests one connection may leave stalled (see `request_read_base`) before the server
    /// closes it: a connection that keeps stalling is an attack or broken, not slow.
    pub stalls_per_connection_max: u32,
    /// Malformed requests (bad frames, oversize, undecodable) one connection may send before the
    /// server closes it: each costs the server a stream and a reply, and a flood of them from one
    /// connection would take the CPU other gateways need.
    pub malformed_per_connection_max: u32,
    /// At the connection limit, a new gateway is let in by closing the connection that has had
    /// no request in flight for longest, if that is at least this long (see [`IDLE_EVICT_AFTER`]).
    pub idle_evict_after: std::time::Duration,
    /// After the server closes a connection for stalling or malformed requests, new connections
    /// from its address (an IPv6 address's /64) are refused before the handshake for this long,
    /// doubling with each repeat up to [`COOL_OFF_DOUBLINGS_MAX`] times (see [`COOL_OFF_BASE`]);
    /// zero turns it off.
    pub cool_off_base: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_max: 1024,
            streams_per_connection_max: 64,
            request_read_base: REQUEST_READ_BASE,
            stalls_per_connection_max: STALLS_PER_CONNECTION_MAX,
            idle_evict_after: IDLE_EVICT_AFTER,
            malformed_per_connection_max: MALFORMED_PER_CONNECTION_MAX,
            cool_off_base: COOL_OFF_BASE,
        }
    }
}

/// Records one connection may have admitted at once: a quarter of [`RECORDS_IN_FLIGHT_MAX`]
/// (four full requests), so no single connection, however many streams it opens or however
/// slowly it sends, can hold more than a quarter of what the server reads at once; the others
/// keep the rest.
pub const CONNECTION_RECORDS_MAX: u32 = RECORDS_IN_FLIGHT_MAX / 4;

/// Default of [`ServerLimits::stalls_per_connection_max`].
pub const STALLS_PER_CONNECTION_MAX: u32 = 3;

/// QUIC application error code a connection is closed with after too many stalled requests.
pub const CLOSE_STALLING: u32 = 2;

/// Default of [`ServerLimits::malformed_per_connection_max`].
pub const MALFORMED_PER_CONNECTION_MAX: u32 = 16;

/// QUIC application error code a connection is closed with after too many malformed requests.
pub const CLOSE_MALFORMED: u32 = 4;

/// QUIC application error code an idle connection is closed with to make room for a new one.
pub const CLOSE_IDLE_EVICTED: u32 = 3;

/// Default of [`ServerLimits::idle_evict_after`]: connections that hold the server's slots
/// without sending anything (a flood of idle handshakes) give way to gateways that arrive later.
pub const IDLE_EVICT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Default of [`ServerLimits::cool_off_base`]. Closing a flooding connection alone does not
/// stop it: it reconnects at once, and each new connection costs a handshake and up to
/// [`MALFORMED_PER_CONNECTION_MAX`] full requests of decryption before it is closed again.
/// Refusing its address for a while, before the handshake, costs the server one packet.
pub const COOL_OFF_BASE: std::time::Duration = std::time::Duration::from_secs(1);

/// How many times a repeat offender's cool-off doubles: 1 s becomes at most 64 s.
pub const COOL_OFF_DOUBLINGS_MAX: u32 = 6;

/// An address's strikes are forgotten after this long without a new one.
pub const STRIKES_FORGOTTEN_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Addresses remembered in cool-off at most; at the bound the one whose cool-off ends first is
/// forgotten, so a flood from many addresses cannot grow the server's memory.
pub const ADDRESSES_COOLING_MAX: usize = 4096;

/// Longest the accept loop waits for an evicted connection's slot to come free.
const EVICT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest a shutdown waits for the requests in flight to be answered and their replies read.
pub const SHUTDOWN_DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until `shutdown` resolves: then stops accepting connections and streams, lets the
/// requests in flight be answered and their replies reach the client (at most
/// [`SHUTDOWN_DRAIN_MAX`]), closes the endpoint and returns.
pub async fn serve(
    endpoint: quinn::Endpoint,
    sequencer: SequencerHandle,
    limits: ServerLimits,
    feed: Option<FeedConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let mut streams = Streams::new(limits);
    streams.feed = feed.map(|config| Arc::new(Feed::new(config, Arc::clone(sequencer.durable()))));
    let registry = Arc::new(Registry::default());
    let cool_offs = Arc::clone(&streams.cool_offs);
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming { Some(incoming) => incoming, None => break },
            () = &mut shutdown => break,
        };
        if cool_offs.refuses(incoming.remote_address().ip()) {
            incoming.refuse();
            continue;
        }
        let permit = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if registry.evict_idle(limits.idle_evict_after) => {
                match tokio::time::timeout(EVICT_WAIT, Arc::clone(&connections).acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        incoming.refuse();
                        continue;
                    }
                }
            }
            Err(_) => {
                incoming.refuse();
                continue;
            }
        };
        let (sequencer, streams, registry) = (sequencer.clone(), streams.clone(), Arc::clone(&registry));
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                let share = registry.add(connection);
                serve_connection(sequencer, streams, Arc::clone(&share)).await;
                registry.remove(&share);
            }
            drop(permit);
        });
    }
    let _ = streams.draining.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_DRAIN_MAX, streams.idle()).await;
    endpoint.close(0u32.into(), b"shutting down");
    endpoint.wait_idle().await;
}

/// What every request stream of a server shares: the shutdown's flag (no new streams once it is
/// set) and the count of streams still being answered, which a shutdown waits on; the admission
/// of records; the pooled request buffers; the read deadline.
#[derive(Clone, Debug)]
struct Streams {
    draining: Arc<tokio::sync::watch::Sender<bool>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<tokio::sync::Notify>,
    /// Records admitted at once (see [`RECORDS_IN_FLIGHT_MAX`]).
    admission: Arc<Semaphore>,
    /// The limits the server runs with.
    limits: ServerLimits,
    /// Request buffers (see [`FRAME_BUFFERS_POOLED_MAX`]).
    frames: Pool<u8>,
    /// Addresses refused for a while after misbehaving (see [`ServerLimits::cool_off_base`]).
    cool_offs: Arc<CoolOffs>,
    /// The change feed, where the server has one.
    feed: Option<Arc<Feed>>,
}

impl Streams {
    fn new(limits: ServerLimits) -> Streams {
        Streams {
            limits,
            frames: Pool::new(FRAME_BUFFERS_POOLED_MAX),
            draining: Arc::new(tokio::sync::watch::channel(false).0),
            in_flight: Arc::default(),
            done: Arc::new(tokio::sync::Notify::new()),
            admission: Arc::new(Semaphore::new(RECORDS_IN_FLIGHT_MAX as usize)),
            cool_offs: Arc::new(CoolOffs::new(limits.cool_off_base)),
            feed: None,
        }
    }

    /// Resolves when no stream is being answered.
    async fn idle(&self) {
        loop {
            let notified = self.done.notified();
            if self.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one stream in flight for as long as it lives.
struct InFlight(Streams);

impl InFlight {
    fn new(streams: &Streams) -> InFlight {
        streams.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlight(streams.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

/// Addresses whose connections the server closed for misbehaving, each with its strikes and
/// the end of its cool-off.
#[derive(Debug)]
struct CoolOffs {
    base: std::time::Duration,
    strikes: std::sync::Mutex<std::collections::HashMap<IpAddr, Strikes>>,
}

#[derive(Clone, Copy, Debug)]
struct Strikes {
    /// Cool-offs so far (0 while the address has only spent some of its budget).
    count: u32,
    /// When its cool-off ends (or ended).
    until: std::time::Instant,
    /// Malformed or stalled requests it may still send, over all its connections, and when the
    /// budget was last refilled (see [`ADDRESS_MISBEHAVIOUR_BUDGET`]).
    budget: u32,
    refilled: std::time::Instant,
}

/// Malformed or stalled requests one address may send, over all its connections, before its
/// connection is closed and it cools off; one comes back per [`ADDRESS_BUDGET_REFILL`]. The
/// per-connection limits alone would let an attacker open a new connection every 16 malformed
/// requests and never be stopped.
pub const ADDRESS_MISBEHAVIOUR_BUDGET: u32 = 2 * MALFORMED_PER_CONNECTION_MAX;

/// How often an address gets one malformed or stalled request back (see [`ADDRESS_MISBEHAVIOUR_BUDGET`]).
pub const ADDRESS_BUDGET_REFILL: std::time::Duration = std::time::Duration::from_secs(1);

/// The unit an offender is known by: an IPv4 address, or an IPv6 address's /64 (one host
/// commonly holds a whole /64).
fn offender(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl CoolOffs {
    fn new(base: std::time::Duration) -> CoolOffs {
        CoolOffs { base, strikes: Default::default() }
    }

    /// Whether `ip` is cooling off now.
    fn refuses(&self, ip: IpAddr) -> bool {
        let strikes = self.strikes.lock().expect("cool-offs");
        strikes.get(&offender(ip)).is_some_and(|s| std::time::Instant::now() < s.until)
    }

    /// Spends one of `ip`'s budget of malformed or stalled requests; false once it has none left.
    fn spend(&self, ip: IpAddr) -> bool {
        if self.base.is_zero() {
            return true;
        }
        let now = std::time::Instant::now();
        let mut strikes = self.strikes.lock().expect("cool-offs");
        let entry = Self::entry(&mut strikes, offender(ip), now);
        let refills = (now.duration_since(entry.refilled).as_millis() / ADDRESS_BUDGET_REFILL.as_millis())
            .min(u128::from(ADDRESS_MISBEHAVIOUR_BUDGET)) as u32;
        entry.budget = (entry.budget + refills).min(ADDRESS_MISBEHAVIOUR_BUDGET);
        // A full budget refills from now; otherwise the part of a period already waited counts.
        entry.refilled = if entry.budget == ADDRESS_MISBEHAVIOUR_BUDGET { now } else { entry.refilled + ADDRESS_BUDGET_REFILL * refills };
        let Some(left) = entry.budget.checked_sub(1) else { return false };
        entry.budget = left;
        true
    }

    /// Counts a strike against `ip`: its cool-off starts now, twice as long as the last one's.
    fn strike(&self, ip: IpAddr) {
        if self.base.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        let mut strikes = self.strikes.lock().expect("cool-offs");
        let entry = Self::entry(&mut strikes, offender(ip), now);
        entry.count += 1;
        entry.until = now + self.base * (1 << (entry.count - 1).min(COOL_OFF_DOUBLINGS_MAX));
    }

    /// `key`'s entry, fresh if it had none or its last strike is forgotten; at the bound, the
    /// forgotten entries go first, then the one whose cool-off ends first.
    fn entry(strikes: &mut std::collections::HashMap<IpAddr, Strikes>, key: IpAddr, now: std::time::Instant) -> &mut Strikes {
        let fresh = Strikes { count: 0, until: now, budget: ADDRESS_MISBEHAVIOUR_BUDGET, refilled: now };
        let forgotten = |s: &Strikes| now >= s.until + STRIKES_FORGOTTEN_AFTER;
        if !strikes.contains_key(&key) && strikes.len() >= ADDRESSES_COOLING_MAX {
            strikes.retain(|_, s| !forgotten(s));
            if strikes.len() >= ADDRESSES_COOLING_MAX {
                let first = strikes.iter().min_by_key(|(_, s)| s.until).map(|(ip, _)| *ip).expect("full");
                strikes.remove(&first);
            }
        }
        let entry = strikes.entry(key).or_insert(fresh);
        if forgotten(entry) {
            *entry = fresh;
        }
        entry
    }
}

/// What the streams of one connection share: their part of the admission, how many of their
/// requests stalled, and whether (since when) it is idle.
#[derive(Debug)]
struct ConnectionShare {
    id: u64,
    connection: quinn::Connection,
    /// Records this connection has admitted at once, at most [`CONNECTION_RECORDS_MAX`].
    records: Arc<Semaphore>,
    stalls: std::sync::atomic::AtomicU32,
    malformed: std::sync::atomic::AtomicU32,
    /// Set once the server has closed it for stalling or malformed requests.
    closed_for_misbehaving: std::sync::atomic::AtomicBool,
    /// Requests being read or answered on it, and when the last one ended (or it opened).
    activity: std::sync::Mutex<(u32, std::time::Instant)>,
}

impl ConnectionShare {
    /// Counts one request on the connection until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        self.activity.lock().expect("activity").0 += 1;
        Busy(Arc::clone(self))
    }

    /// Closes the connection for misbehaving, once, and counts one strike against its address.
    fn close_for(&self, code: u32, reason: &[u8], cool_offs: &CoolOffs) {
        if !self.closed_for_misbehaving.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.connection.close(code.into(), reason);
            cool_offs.strike(self.connection.remote_address().ip());
        }
    }

    /// How long the connection has had no request, if it has none now.
    fn idle_for(&self) -> Option<std::time::Duration> {
        let (requests, since) = *self.activity.lock().expect("activity");
        (requests == 0).then(|| since.elapsed())
    }
}

/// One request counted on its connection (see [`ConnectionShare::busy`]).
struct Busy(Arc<ConnectionShare>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut activity = self.0.activity.lock().expect("activity");
        activity.0 -= 1;
        activity.1 = std::time::Instant::now();
    }
}

/// The connections being served, so that at the limit the longest idle one can make room.
#[derive(Debug, Default)]
struct Registry {
    live: std::sync::Mutex<(u64, std::collections::HashMap<u64, Arc<ConnectionShare>>)>,
}

impl Registry {
    fn add(&self, connection: quinn::Connection) -> Arc<ConnectionShare> {
        let mut live = self.live.lock().expect("registry");
        live.0 += 1;
        let share = Arc::new(ConnectionShare {
            id: live.0,
            connection,
            records: Arc::new(Semaphore::new(CONNECTION_RECORDS_MAX as usize)),
            stalls: Default::default(),
            malformed: Default::default(),
            closed_for_misbehaving: Default::default(),
            activity: std::sync::Mutex::new((0, std::time::Instant::now())),
        });
        live.1.insert(share.id, Arc::clone(&share));
        share
    }

    fn remove(&self, share: &ConnectionShare) {
        self.live.lock().expect("registry").1.remove(&share.id);
    }

    /// Closes the connection idle for longest, if at least `after`; whether one was closed.
    fn evict_idle(&self, after: std::time::Duration) -> bool {
        let mut live = self.live.lock().expect("registry");
        let idlest = live.1.values().filter_map(|share| Some((share.idle_for()?, share.id))).filter(|(idle, _)| *idle >= after).max();
        let Some((_, id)) = idlest else { return false };
        let share = live.1.remove(&id).expect("listed above");
        share.connection.close(CLOSE_IDLE_EVICTED.into(), b"idle at the connection limit");
        true
    }
}

async fn serve_connection(sequencer: SequencerHandle, streams: Streams, share: Arc<ConnectionShare>) {
    let mut draining = streams.draining.subscribe();
    let connection = share.connection.clone();
    loop {
        let (send, recv) = tokio::select! {
            accepted = connection.accept_bi() => match accepted { Ok(stream) => stream, Err(_) => return },
            _ = draining.wait_for(|draining| *draining) => return,
        };
        let in_flight = InFlight::new(&streams);
        tokio::spawn(serve_stream(send, recv, sequencer.clone(), in_flight, Arc::clone(&share)));
    }
}

/// Request byte buffers kept for reuse at most (each up to one frame, 1 MiB). A stream reads
/// its request into one, decodes it, and gives it back before waiting for the sequencer, so a
/// handful serve any number of streams; the bound keeps the memory fixed whatever the load.
pub const FRAME_BUFFERS_POOLED_MAX: usize = 16;

/// How reading a request stream ended.
enum Read {
    Whole,
    TooLong,
    Gone,
    /// Admitted, but not finished within its deadline (see [`read_deadline`]).
    Stalled,
}

/// Default of [`ServerLimits::request_read_base`]: a client that sends a header and then stalls
/// would otherwise hold its admission permits (and a buffer) for as long as it likes. The whole
/// deadline is this plus the request's size at [`REQUEST_READ_BYTES_PER_MS_MIN`]: 1.2 s for a full
/// 1 MiB request, which takes a few milliseconds on a healthy link; waiting for admission does
/// not count.
pub const REQUEST_READ_BASE: std::time::Duration = std::time::Duration::from_millis(200);

/// The slowest a gateway may send an admitted request's body, in bytes per millisecond (1 MiB/s).
pub const REQUEST_READ_BYTES_PER_MS_MIN: u64 = 1 << 10;

/// How long an admitted request of `bytes` may take to arrive.
fn read_deadline(base: std::time::Duration, bytes: u64) -> std::time::Duration {
    base + std::time::Duration::from_millis(bytes / REQUEST_READ_BYTES_PER_MS_MIN)
}

/// Records the server reads, decodes, queues or applies at once, over all streams: 16 full
/// requests. A stream whose header announces more than are free waits before its body is read,
/// and QUIC's flow control holds the client back meanwhile. Without it an open-loop load past
/// capacity had a hundred 1 MiB requests read at once: memory beyond the pools, page faults and
/// cache misses on the network side took the sequencer's CPU, and the backlog fed itself
/// (p99 over a second at 1 M transfers/s on two cores).
pub const RECORDS_IN_FLIGHT_MAX: u32 = 16 * protocol::FRAME_RECORDS_MAX as u32;

/// Permits a request holds until it is answered: its connection's share, then the server's.
type Admitted = Option<(tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit)>;

/// Reads the stream to its end into `buffer`, in order, refusing more than one frame's bytes.
/// Once the header is in, takes permits for its record count (at least one) from its
/// connection's share and then from the server's admission, held until the request is answered.
async fn read_request(
    recv: &mut quinn::RecvStream,
    buffer: &mut Vec<u8>,
    server: &Streams,
    share: &ConnectionShare,
    admitted: &mut Admitted,
) -> Read {
    let mut deadline = None;
    loop {
        if admitted.is_none() && buffer.len() >= HEADER_SIZE {
            // A bad header is answered after the read; it costs one permit meanwhile.
            let header = protocol::decode_header(buffer[..HEADER_SIZE].try_into().expect("header length"));
            let records = header.map_or(1, |header| header.record_count.clamp(1, CONNECTION_RECORDS_MAX));
            let Ok(own) = Arc::clone(&share.records).acquire_many_owned(records).await else { return Read::Gone };
            let Ok(global) = Arc::clone(&server.admission).acquire_many_owned(records).await else {
                return Read::Gone; // closed: the server is going away
            };
            *admitted = Some((own, global));
            let body_bytes = header.map_or(0, |header| u64::from(header.body_len));
            deadline = Some(tokio::time::Instant::now() + read_deadline(server.limits.request_read_base, body_bytes));
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, recv.read_chunk(usize::MAX, true)).await {
                Ok(next) => next,
                Err(_) => return Read::Stalled,
            },
            None => recv.read_chunk(usize::MAX, true).await,
        };
        match next {
            Ok(Some(chunk)) => {
                if buffer.len() + chunk.bytes.len() > HEADER_SIZE + FRAME_BODY_MAX_BYTES {
                    return Read::TooLong;
                }
                buffer.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return Read::Whole,
            Err(_) => return Read::Gone,
        }
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    sequencer: SequencerHandle,
    in_flight: InFlight,
    share: Arc<ConnectionShare>,
) {
    let streams = &in_flight.0;
    let _busy = share.busy();
    let mut buffer = streams.frames.take();
    let mut admitted = None;
    let read = read_request(&mut recv, &mut buffer, streams, &share, &mut admitted).await;
    let mut malformed = false;
    let submitted = match read {
        Read::Whole => submit(&buffer, &sequencer, &mut malformed),
        Read::TooLong => {
            let _ = recv.stop(0u32.into());
            malformed = true;
            Err(error_frame(&buffer, ProtocolError::FrameTooLarge))
        }
        Read::Stalled => {
            // It holds admission permits and a buffer: it may not keep them by sending slowly.
            let _ = recv.stop(0u32.into());
            let stalls = share.stalls.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
            let address_ok = streams.cool_offs.spend(share.connection.remote_address().ip());
            if stalls > streams.limits.stalls_per_connection_max || !address_ok {
                share.close_for(CLOSE_STALLING, b"too many stalled requests", &streams.cool_offs);
            }
            Err(error_frame(&buffer, ProtocolError::Truncated))
        }
        Read::Gone => return streams.frames.give_back(buffer), // the client went away
    };
    streams.frames.give_back(buffer); // decoded: the bytes are no longer needed
    if malformed {
        let count = share.malformed.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        let address_ok = streams.cool_offs.spend(share.connection.remote_address().ip());
        if count > streams.limits.malformed_per_connection_max || !address_ok {
            share.close_for(CLOSE_MALFORMED, b"too many malformed requests", &streams.cool_offs);
        }
    }
    let reply = match submitted {
        Ok(Submitted::Subscribe(subscription, request_id)) => {
            drop(admitted); // a subscription holds no request records while it lasts
            let (feed, draining) = (streams.feed.clone(), streams.draining.subscribe());
            crate::feed::serve(send, request_id, *subscription, feed, draining).await;
            return drop(in_flight);
        }
        Ok(Submitted::Queued(answer, request_id, operation)) => {
            let reply = answer.await.unwrap_or(Reply::Error(ProtocolError::ShuttingDown));
            let mut frame = Vec::new();
            reply.encode(request_id, operation, &mut frame);
            frame
        }
        Err(frame) => frame,
    };
    drop(admitted); // answered: its records no longer count
    let _ = send.write_chunk(bytes::Bytes::from(reply)).await;
    let _ = send.finish();
    // Stay counted until the client has read the reply: a shutdown closes the endpoint once
    // every stream is done, and must not cut a reply off on its way. Bounded, so a client that
    // never reads costs a task for a few seconds, no more.
    let _ = tokio::time::timeout(SHUTDOWN_DRAIN_MAX, send.stopped()).await;
    drop(in_flight);
}

/// The error frame for the request whose bytes (so far) are `request`: it echoes the request
/// id and operation by the one rule of [`protocol::echo`].
fn error_frame(request: &[u8], error: ProtocolError) -> Vec<u8> {
    let (request_id, operation) = protocol::echo(request);
    let mut frame = Vec::new();
    protocol::encode_error(request_id, operation, error, &mut frame);
    frame
}

/// Decodes a whole request frame and queues it: the receiver of its reply frame, or the error
/// frame to send at once (`malformed` set when the request itself was at fault).
fn submit(bytes: &[u8], sequencer: &SequencerHandle, malformed: &mut bool) -> Result<Submitted, Vec<u8>> {
    *malformed = true;
    let (header, body) = protocol::decode_frame(bytes).map_err(|e| error_frame(bytes, e))?;
    let request = Request::decode_reusing(&header, body, sequencer.spare_commands()).map_err(|e| error_frame(bytes, e))?;
    *malformed = false;
    if let Request::Subscribe(subscription) = request {
        return Ok(Submitted::Subscribe(subscription, header.request_id));
    }
    let (reply, answer) = oneshot::channel();
    if sequencer.try_submit(Job { request, reply }).is_err() {
        let error = if sequencer.is_stopped() { ProtocolError::ShuttingDown } else { ProtocolError::Busy };
        return Err(error_frame(bytes, error));
    }
    Ok(Submitted::Queued(answer, header.request_id, header.operation))
}

/// A decoded request: queued for the sequencer (its reply's receiver, request id and
/// operation), or a subscription the feed serves.
enum Submitted {
    Queued(oneshot::Receiver<Reply>, u64, u8),
    Subscribe(Box<Subscription>, u64),
}

/// Binds a QUIC endpoint on `addr` with the given server config and stream limit.
pub fn bind(addr: SocketAddr, mut config: quinn::ServerConfig, limits: ServerLimits) -> std::io::Result<quinn::Endpoint> {
    let mut transport = crate::tls::transport_config();
    transport.max_concurrent_bidi_streams(limits.streams_per_connection_max.into());
    transport.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    crate::tls::endpoint(addr, Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    #[test]
    fn an_ipv6_offender_is_its_64_and_a_mapped_v4_is_its_v4() {
        assert_eq!(offender(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(offender(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(offender(ip("10.0.0.7")), ip("10.0.0.7"));
    }

    #[test]
    fn cool_offs_double_per_strike_up_to_the_cap_and_touch_no_other_address() {
        let cool_offs = CoolOffs::new(std::time::Duration::from_secs(1));
        let (bad, good) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert!(!cool_offs.refuses(bad));
        for strike in 1..=COOL_OFF_DOUBLINGS_MAX + 3 {
            let before = std::time::Instant::now();
            cool_offs.strike(bad);
            let until = cool_offs.strikes.lock().expect("lock")[&bad].until;
            let expected = std::time::Duration::from_secs(1 << (strike - 1).min(COOL_OFF_DOUBLINGS_MAX));
            assert!(until >= before + expected && until <= std::time::Instant::now() + expected, "strike {strike}");
        }
        assert!(cool_offs.refuses(bad) && !cool_offs.refuses(good));
        assert!(!CoolOffs::new(std::time::Duration::ZERO).refuses(bad), "zero turns it off");
    }

    #[test]
    fn an_address_spends_its_budget_over_all_its_connections() {
        let cool_offs = CoolOffs::new(COOL_OFF_BASE);
        for _ in 0..ADDRESS_MISBEHAVIOUR_BUDGET {
            assert!(cool_offs.spend(ip("10.0.0.1")));
        }
        assert!(!cool_offs.spend(ip("10.0.0.1")), "one past the budget");
        assert!(cool_offs.spend(ip("10.0.0.2")), "another address has its own");
        assert!(!cool_offs.refuses(ip("10.0.0.1")), "spending is not yet a strike");
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let cool_offs = CoolOffs::new(COOL_OFF_BASE);
        for n in 0..ADDRESSES_COOLING_MAX as u32 + 100 {
            cool_offs.strike(IpAddr::V4(n.into()));
        }
        assert_eq!(cool_offs.strikes.lock().expect("lock").len(), ADDRESSES_COOLING_MAX);
        assert!(cool_offs.refuses(IpAddr::V4((ADDRESSES_COOLING_MAX as u32 + 99).into())), "the newest is kept");
    }
}
