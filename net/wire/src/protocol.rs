//! The binary wire protocol as a sans-IO codec: frames to bytes and back, with no sockets, so it
//! is tested and fuzzed on its own. Byte by byte in `docs/protocol.md`.
//!
//! A frame is a 32-byte header and a body of fixed-size little-endian records. The decoder checks
//! the header (magic, version, sizes) before it buffers any body, so an oversized or malformed
//! frame is refused without allocating for it.

use bursar_engine::{
    batch, AccountBalance, AccountFilter, Balances, Command, LedgerTotals, Record, ResultCode, BATCH_COMMANDS_MAX, RECORD_SIZE,
};

/// Bytes of every frame header.
pub const HEADER_SIZE: usize = 32;
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Most records in one frame (8 189 records of 128 bytes and their kinds fit 1 MiB).
pub const FRAME_RECORDS_MAX: usize = BATCH_COMMANDS_MAX;
/// Largest body accepted: a full batch of commands with its kind bytes.
pub const FRAME_BODY_MAX_BYTES: usize = 16 * 512 + RECORD_SIZE * FRAME_RECORDS_MAX;
/// Most ids in one lookup-quotes request: each found quote takes two reply records.
pub const LOOKUP_QUOTES_MAX: usize = FRAME_RECORDS_MAX / 2;
/// Most ids in one lookup-orders request: each found order takes up to `2 + RUN_HISTORY_MAX`
/// reply records.
pub const LOOKUP_ORDERS_MAX: usize = FRAME_RECORDS_MAX / (2 + bursar_engine::limits::RUN_HISTORY_MAX);
const MAGIC: [u8; 4] = *b"BRSR";

/// What a frame is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// Client to server.
    Request = 1,
    /// Server to client: the answer to the request with the same id.
    Reply = 2,
    /// Server to client: the request with this id was refused; the body is one `u32` [`ProtocolError`].
    Error = 3,
}

/// What a request asks for. Values are the wire encoding; never renumbered.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A batch of commands of any kinds (linked chains may span kinds). Reply: one `u32` result code per command.
    Submit = 1,
    /// Accounts by id (16-byte ids). Reply: one 128-byte account per id, all zero where not found.
    LookupAccounts = 2,
    /// Transfers by id (16-byte ids). Reply: one 128-byte transfer per id, all zero where not found.
    LookupTransfers = 3,
    /// One 128-byte account filter. Reply: the matching transfers.
    GetAccountTransfers = 4,
    /// One 128-byte account filter. Reply: 128-byte balance records.
    GetAccountBalances = 5,
    /// Ledger ids (4 bytes each, padded to 16). Reply: per ledger, its record then one totals row per account code.
    LedgerTotals = 6,
    /// No body. Reply: one 128-byte [`Status`] record: where the log stands and the state digest there.
    Status = 7,
    /// No body. Reply: the server's counters and sync-latency histogram since it started, as
    /// [`crate::metrics::METRICS_RECORDS`] records (see [`crate::metrics::Metrics::to_bytes`]).
    Metrics = 8,
    /// Transfer ids (16-byte ids). Reply: one 128-byte [`Outcome`] per id: stored, failed (with
    /// the code that decided it) or unknown.
    LookupOutcomes = 9,
    /// Account ids (16-byte ids). Reply: one 128-byte [`LimitsRecord`] per id, all zero where
    /// the account is not found.
    LookupLimits = 10,
    /// One 16-byte transfer id. Reply: a 128-byte lineage head, then the transfers it names
    /// (see `docs/protocol.md`, "Lineage").
    LookupLineage = 11,
    /// One 16-byte account id. Reply: the account's channel policy record, then each velocity
    /// rule and its usage now (see `docs/protocol.md`, "Policy").
    LookupPolicy = 12,
    /// Order ids (16-byte ids). Reply: per id, the order's record, its state record and one
    /// record per run-history entry; one all-zero record where not found (see `docs/protocol.md`,
    /// "Orders").
    LookupOrders = 13,
    /// One 16-byte account id. Reply: the record and state record of every live order the
    /// account pays, is paid by or is watched by.
    LookupAccountOrders = 14,
    /// Quote ids (16-byte ids). Reply: per id, the quote's record and its usage record (both
    /// all zero where not found; see `docs/protocol.md`, "Quote usage").
    LookupQuotes = 15,
    /// One 16-byte record: the most holds wanted, u32, then 12 zero bytes. Reply: the pending
    /// holds that expire soonest, in order of expiry, one 128-byte transfer each.
    ExpiringHolds = 16,
    /// One subscription record, then 16-byte account ids (see [`crate::feed::Subscription`]).
    /// Reply: a stream of reply frames of events, three records each, until the subscriber
    /// stops or an error frame ends it (see `docs/protocol.md`, "Change feed").
    Subscribe = 17,
}

impl Operation {
    fn from_u8(value: u8) -> Option<Operation> {
        [
            Operation::Submit,
            Operation::LookupAccounts,
            Operation::LookupTransfers,
            Operation::GetAccountTransfers,
            Operation::GetAccountBalances,
            Operation::LedgerTotals,
            Operation::Status,
            Operation::Metrics,
            Operation::LookupOutcomes,
            Operation::LookupLimits,
            Operation::LookupLineage,
            Operation::LookupPolicy,
            Operation::LookupOrders,
            Operation::LookupAccountOrders,
            Operation::LookupQuotes,
            Operation::ExpiringHolds,
            Operation::Subscribe,
        ]
        .into_iter()
        .find(|op| *op as u8 == value)
    }
}

/// Why a frame was refused. Values are the wire encoding; never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The first four bytes are not `BRSR`.
    BadMagic = 1,
    /// The peer speaks another protocol version.
    UnsupportedVersion = 2,
    /// The frame type is not one this side accepts.
    BadFrameType = 3,
    /// The operation is unknown.
    UnknownOperation = 4,
    /// The body is longer than `FRAME_BODY_MAX_BYTES`.
    FrameTooLarge = 5,
    /// More records than `FRAME_RECORDS_MAX`.
    TooManyRecords = 6,
    /// The body length does not match the record count for this operation.
    LengthMismatch = 7,
    /// The checksum does not match header and body.
    BadChecksum = 8,
    /// Reserved bytes are not zero.
    ReservedNotZero = 9,
    /// A command kind byte names no command.
    UnknownCommandKind = 10,
    /// The connection ended inside a frame.
    Truncated = 11,
    /// The server's queue is full; retry later with the same ids.
    Busy = 12,
    /// The server is shutting down; retry elsewhere or later with the same ids.
    ShuttingDown = 13,
    /// A reply carries a result code this build does not know (the server is newer).
    UnknownResultCode = 14,
    /// The feed cannot start there: the log no longer holds that position (retention recycled
    /// it).
    PositionRecycled = 15,
    /// The feed cannot start there: the position is beyond the log's durable end.
    PositionAhead = 16,
    /// The server serves as many subscriptions as it may; retry later.
    SubscriptionsFull = 17,
    /// This server has no change feed (it runs on storage the feed cannot read).
    FeedUnavailable = 18,
    /// The feed could not read or apply the log; the subscription ends (the server goes on).
    FeedFailed = 19,
    /// The server could not read a stored transfer back from its history store (the server
    /// says why in its output): a submit was neither logged nor applied, a query not answered.
    /// Retry with the same ids; the operator should look at the disk.
    HistoryUnreadable = 20,
}

impl ProtocolError {
    /// The error for a wire value.
    pub fn from_u32(value: u32) -> Option<ProtocolError> {
        use ProtocolError as E;
        [
            E::BadMagic,
            E::UnsupportedVersion,
            E::BadFrameType,
            E::UnknownOperation,
            E::FrameTooLarge,
            E::TooManyRecords,
            E::LengthMismatch,
            E::BadChecksum,
            E::ReservedNotZero,
            E::UnknownCommandKind,
            E::Truncated,
            E::Busy,
            E::ShuttingDown,
            E::UnknownResultCode,
            E::PositionRecycled,
            E::PositionAhead,
            E::SubscriptionsFull,
            E::FeedUnavailable,
            E::FeedFailed,
            E::HistoryUnreadable,
        ]
        .into_iter()
        .find(|e| *e as u32 == value)
    }
}

impl core::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ProtocolError {}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the frame is.
    pub frame_type: FrameType,
    /// What the request asks for (echoed in replies and errors).
    pub operation: u8,
    /// Chosen by the client, echoed by the server.
    pub request_id: u64,
    /// Records in the body.
    pub record_count: u32,
    /// Body length in bytes.
    pub body_len: u32,
    checksum: u32,
}

/// CRC32C (Castagnoli, as the log uses) of header bytes 0..24 then the body.
fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(&header[..24]);
    digest.update(body);
    digest.finalize() as u32
}

/// Appends a whole frame to `out`.
pub fn encode_frame(frame_type: FrameType, operation: u8, request_id: u64, record_count: u32, body: &[u8], out: &mut Vec<u8>) {
    let start = begin_frame(out);
    out.extend_from_slice(body);
    finish_frame(out, start, frame_type, operation, request_id, record_count);
}

/// Reserves a frame header at the end of `out`; the caller appends the body straight after it
/// (no intermediate copy of a 1 MiB batch) and then calls [`finish_frame`]. Returns where the
/// frame starts.
fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + HEADER_SIZE, 0);
    start
}

/// Fills in the header reserved by [`begin_frame`] for the body appended since.
fn finish_frame(out: &mut [u8], start: usize, frame_type: FrameType, operation: u8, request_id: u64, record_count: u32) {
    let body_len = out.len() - start - HEADER_SIZE;
    let (head, body) = out[start..].split_at_mut(HEADER_SIZE);
    head[0..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    head[6] = frame_type as u8;
    head[7] = operation;
    head[8..16].copy_from_slice(&request_id.to_le_bytes());
    head[16..20].copy_from_slice(&record_count.to_le_bytes());
    head[20..24].copy_from_slice(&(body_len as u32).to_le_bytes());
    let crc = checksum(head, body);
    head[24..28].copy_from_slice(&crc.to_le_bytes());
    head[28..32].fill(0);
}

/// Decodes a buffer that must hold exactly one whole frame (a QUIC stream read to its end):
/// the header, the body (borrowed, not copied) and its checksum. Fewer bytes than the header
/// announces are `Truncated`, more are `LengthMismatch`.
pub fn decode_frame(bytes: &[u8]) -> Result<(Header, &[u8]), ProtocolError> {
    let Some(head) = bytes.get(..HEADER_SIZE) else { return Err(ProtocolError::Truncated) };
    let header = decode_header(head.try_into().expect("exact slice"))?;
    let end = HEADER_SIZE + header.body_len as usize;
    if bytes.len() < end {
        return Err(ProtocolError::Truncated);
    }
    if bytes.len() > end {
        return Err(ProtocolError::LengthMismatch);
    }
    let body = &bytes[HEADER_SIZE..];
    if checksum(head, body) != header.checksum {
        return Err(ProtocolError::BadChecksum);
    }
    Ok((header, body))
}

/// Appends a submit request frame for `commands`: the log's batch layout without its 16-byte
/// header (kinds padded to 16, then records), encoded straight into the frame.
pub fn encode_submit(request_id: u64, commands: &[Command], out: &mut Vec<u8>) {
    let start = begin_frame(out);
    batch::encode_commands(commands, out);
    finish_frame(out, start, FrameType::Request, Operation::Submit as u8, request_id, commands.len() as u32);
}

/// The request id and operation an error frame echoes for a request whose first bytes are
/// `bytes`: the header's, whenever all 32 header bytes arrived and begin with the magic and
/// this protocol version, whatever else is wrong (frame type, operation, sizes, checksum, body,
/// a stall); otherwise (0, 0). One rule for every error, so a client can always tell whether an
/// error frame names its request.
pub fn echo(bytes: &[u8]) -> (u64, u8) {
    match bytes.get(..HEADER_SIZE) {
        Some(head) if head[0..4] == MAGIC && u16::from_le_bytes([head[4], head[5]]) == PROTOCOL_VERSION => {
            (u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")), head[7])
        }
        _ => (0, 0),
    }
}

/// Checks a header before any body is read: magic, version, type, sizes.
pub fn decode_header(bytes: &[u8; HEADER_SIZE]) -> Result<Header, ProtocolError> {
    if bytes[0..4] != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    if u16::from_le_bytes([bytes[4], bytes[5]]) != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion);
    }
    let frame_type = match bytes[6] {
        1 => FrameType::Request,
        2 => FrameType::Reply,
        3 => FrameType::Error,
        _ => return Err(ProtocolError::BadFrameType),
    };
    if bytes[28..32] != [0; 4] {
        return Err(ProtocolError::ReservedNotZero);
    }
    let header = Header {
        frame_type,
        operation: bytes[7],
        request_id: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        record_count: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        body_len: u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes")),
        checksum: u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")),
    };
    if header.body_len as usize > FRAME_BODY_MAX_BYTES {
        return Err(ProtocolError::FrameTooLarge);
    }
    if header.record_count as usize > FRAME_RECORDS_MAX {
        return Err(ProtocolError::TooManyRecords);
    }
    Ok(header)
}

/// Incremental, sans-IO frame decoder: feed bytes as they arrive, take frames out. After an
/// error the stream is unusable (the caller closes it); the decoder never panics on input.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    header: Option<Header>,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Takes bytes from the transport.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame (header and body), `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<(Header, Vec<u8>)>, ProtocolError> {
        if self.header.is_none() {
            let Some(head) = self.buffer.get(..HEADER_SIZE) else { return Ok(None) };
            let head: &[u8; HEADER_SIZE] = head.try_into().expect("exact slice");
            self.header = Some(decode_header(head)?);
        }
        let header = self.header.expect("decoded above");
        let end = HEADER_SIZE + header.body_len as usize;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let body = self.buffer[HEADER_SIZE..end].to_vec();
        if checksum(&self.buffer[..HEADER_SIZE], &body) != header.checksum {
            return Err(ProtocolError::BadChecksum);
        }
        self.buffer.drain(..end);
        self.header = None;
        Ok(Some((header, body)))
    }

    /// Call when the transport ended: bytes of an unfinished frame are an error.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Truncated)
        }
    }
}

/// A request, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// See [`Operation::Submit`].
    Submit(Vec<Command>),
    /// See [`Operation::LookupAccounts`].
    LookupAccounts(Vec<u128>),
    /// See [`Operation::LookupTransfers`].
    LookupTransfers(Vec<u128>),
    /// See [`Operation::GetAccountTransfers`].
    GetAccountTransfers(AccountFilter),
    /// See [`Operation::GetAccountBalances`].
    GetAccountBalances(AccountFilter),
    /// See [`Operation::LedgerTotals`]; no ids: every ledger, in id order, as many as one reply
    /// frame holds.
    LedgerTotals(Vec<u32>),
    /// See [`Operation::Status`].
    Status,
    /// See [`Operation::Metrics`].
    Metrics,
    /// See [`Operation::LookupOutcomes`].
    LookupOutcomes(Vec<u128>),
    /// See [`Operation::LookupLimits`].
    LookupLimits(Vec<u128>),
    /// See [`Operation::LookupLineage`].
    LookupLineage(u128),
    /// See [`Operation::LookupPolicy`].
    LookupPolicy(u128),
    /// See [`Operation::LookupOrders`].
    LookupOrders(Vec<u128>),
    /// See [`Operation::LookupAccountOrders`].
    LookupAccountOrders(u128),
    /// See [`Operation::LookupQuotes`].
    LookupQuotes(Vec<u128>),
    /// See [`Operation::ExpiringHolds`]: at most this many holds (up to `FRAME_RECORDS_MAX`).
    ExpiringHolds(u32),
    /// See [`Operation::Subscribe`].
    Subscribe(Box<crate::feed::Subscription>),
}

/// The limits in force on an account (a record of the reply to [`Operation::LookupLimits`]):
/// account_id u128 @0, debit_limit u128 @16, credit_limit u128 @32, changed_at u64 @48, flags
/// u16 @56 (bit 0 a debit limit is in force, bit 1 a credit limit), 70 zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsRecord {
    /// The account.
    pub account_id: u128,
    /// The limits in force.
    pub limits: bursar_engine::BalanceLimits,
}

impl LimitsRecord {
    /// The 128-byte wire record.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        let l = &self.limits;
        out[0..16].copy_from_slice(&self.account_id.to_le_bytes());
        out[16..32].copy_from_slice(&l.debit_limit.unwrap_or(0).to_le_bytes());
        out[32..48].copy_from_slice(&l.credit_limit.unwrap_or(0).to_le_bytes());
        out[48..56].copy_from_slice(&l.changed_at.to_le_bytes());
        let flags = u16::from(l.debit_limit.is_some()) | u16::from(l.credit_limit.is_some()) << 1;
        out[56..58].copy_from_slice(&flags.to_le_bytes());
        out
    }

    /// Reads the wire record: `None` for an all-zero record (not found).
    pub fn from_bytes(b: &[u8; RECORD_SIZE]) -> Result<Option<LimitsRecord>, ProtocolError> {
        let flags = u16::from_le_bytes([b[56], b[57]]);
        if b[58..].iter().any(|x| *x != 0) || flags > 3 {
            return Err(ProtocolError::ReservedNotZero);
        }
        let account_id = u128::from_le_bytes(b[0..16].try_into().expect("16 bytes"));
        if account_id == 0 {
            return Ok(None);
        }
        let amount = |r: core::ops::Range<usize>| u128::from_le_bytes(b[r].try_into().expect("16 bytes"));
        let limits = bursar_engine::BalanceLimits {
            debit_limit: (flags & 1 != 0).then(|| amount(16..32)),
            credit_limit: (flags & 2 != 0).then(|| amount(32..48)),
            changed_at: u64::from_le_bytes(b[48..56].try_into().expect("8 bytes")),
        };
        Ok(Some(LimitsRecord { account_id, limits }))
    }
}

/// What became of a transfer id (a record of the reply to [`Operation::LookupOutcomes`]): id
/// u128 @0, timestamp u64 @16, result code u32 @24, status u8 @28, 99 zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The id asked about.
    pub id: u128,
    /// Stored, failed or unknown.
    pub status: OutcomeStatus,
    /// The stored transfer's timestamp, or the failed command's; 0 when unknown.
    pub timestamp: u64,
    /// The code the id failed with (`ok` for a stored transfer and an unknown id).
    pub code: ResultCode,
}

/// Where a transfer id stands.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeStatus {
    /// No command with this id took effect or failed in a way that decides it: a command with
    /// it may still be sent.
    Unknown = 0,
    /// A transfer with this id is stored (lookup transfers returns it).
    Stored = 1,
    /// A command with this id failed with a code that decides it: any later command with the id
    /// answers `id_already_failed`.
    Failed = 2,
}

impl Outcome {
    /// The 128-byte wire record.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out[0..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp.to_le_bytes());
        out[24..28].copy_from_slice(&(self.code as u32).to_le_bytes());
        out[28] = self.status as u8;
        out
    }

    /// Reads the wire record; reserved bytes must be zero and the status and code known.
    pub fn from_bytes(b: &[u8; RECORD_SIZE]) -> Result<Outcome, ProtocolError> {
        if b[29..].iter().any(|x| *x != 0) {
            return Err(ProtocolError::ReservedNotZero);
        }
        let status = match b[28] {
            0 => OutcomeStatus::Unknown,
            1 => OutcomeStatus::Stored,
            2 => OutcomeStatus::Failed,
            _ => return Err(ProtocolError::ReservedNotZero),
        };
        let code = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
        Ok(Outcome {
            id: u128::from_le_bytes(b[0..16].try_into().expect("16 bytes")),
            timestamp: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            code: ResultCode::from_u32(code).ok_or(ProtocolError::UnknownResultCode)?,
            status,
        })
    }
}

/// Where a server stands: its last durable log entry and its state after applying it.
///
/// Wire form (128 bytes): seq u64 @0, clock u64 @8, chain hash [32] @16, state digest [32] @48,
/// ledgers u64 @80, accounts u64 @88, transfers u64 @96, 24 zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Sequence number of the last durable (and applied) log entry; 0 for an empty log.
    pub seq: u64,
    /// The engine clock (last assigned timestamp, ns).
    pub clock: u64,
    /// Chain hash of entry `seq`.
    pub chain_hash: [u8; 32],
    /// The engine's state digest after entry `seq`.
    pub state_digest: [u8; 32],
    /// Ledgers held.
    pub ledgers: u64,
    /// Accounts held.
    pub accounts: u64,
    /// Transfers held.
    pub transfers: u64,
}

impl Status {
    /// The 128-byte wire form.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.clock.to_le_bytes());
        out[16..48].copy_from_slice(&self.chain_hash);
        out[48..80].copy_from_slice(&self.state_digest);
        out[80..88].copy_from_slice(&self.ledgers.to_le_bytes());
        out[88..96].copy_from_slice(&self.accounts.to_le_bytes());
        out[96..104].copy_from_slice(&self.transfers.to_le_bytes());
        out
    }

    /// Reads the wire form; reserved bytes must be zero.
    pub fn from_bytes(b: &[u8; RECORD_SIZE]) -> Result<Status, ProtocolError> {
        if b[104..].iter().any(|x| *x != 0) {
            return Err(ProtocolError::ReservedNotZero);
        }
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Ok(Status {
            seq: u64_at(0),
            clock: u64_at(8),
            chain_hash: b[16..48].try_into().expect("32 bytes"),
            state_digest: b[48..80].try_into().expect("32 bytes"),
            ledgers: u64_at(80),
            accounts: u64_at(88),
            transfers: u64_at(96),
        })
    }
}

/// Appends the reply to a status request.
pub fn encode_status_reply(request_id: u64, status: &Status, out: &mut Vec<u8>) {
    encode_frame(FrameType::Reply, Operation::Status as u8, request_id, 1, &status.to_bytes(), out);
}

/// Appends the reply to a metrics request.
pub fn encode_metrics_reply(request_id: u64, metrics: &crate::metrics::Metrics, out: &mut Vec<u8>) {
    let body = metrics.to_bytes();
    encode_frame(FrameType::Reply, Operation::Metrics as u8, request_id, crate::metrics::METRICS_RECORDS as u32, &body, out);
}

impl Request {
    /// The operation of this request.
    pub fn operation(&self) -> Operation {
        match self {
            Request::Submit(_) => Operation::Submit,
            Request::LookupAccounts(_) => Operation::LookupAccounts,
            Request::LookupTransfers(_) => Operation::LookupTransfers,
            Request::GetAccountTransfers(_) => Operation::GetAccountTransfers,
            Request::GetAccountBalances(_) => Operation::GetAccountBalances,
            Request::LedgerTotals(_) => Operation::LedgerTotals,
            Request::Status => Operation::Status,
            Request::Metrics => Operation::Metrics,
            Request::LookupOutcomes(_) => Operation::LookupOutcomes,
            Request::LookupLimits(_) => Operation::LookupLimits,
            Request::LookupLineage(_) => Operation::LookupLineage,
            Request::LookupPolicy(_) => Operation::LookupPolicy,
            Request::LookupOrders(_) => Operation::LookupOrders,
            Request::LookupAccountOrders(_) => Operation::LookupAccountOrders,
            Request::LookupQuotes(_) => Operation::LookupQuotes,
            Request::ExpiringHolds(_) => Operation::ExpiringHolds,
            Request::Subscribe(_) => Operation::Subscribe,
        }
    }

    /// Appends the request as one frame.
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        if let Request::Submit(commands) = self {
            return encode_submit(request_id, commands, out);
        }
        let mut body = Vec::new();
        let count = match self {
            Request::Submit(_) => unreachable!("encoded above"),
            Request::LookupAccounts(ids)
            | Request::LookupTransfers(ids)
            | Request::LookupOutcomes(ids)
            | Request::LookupLimits(ids)
            | Request::LookupOrders(ids)
            | Request::LookupQuotes(ids) => {
                ids.iter().for_each(|id| body.extend_from_slice(&id.to_le_bytes()));
                ids.len()
            }
            Request::GetAccountTransfers(filter) | Request::GetAccountBalances(filter) => {
                body.extend_from_slice(&encode_filter(filter));
                1
            }
            Request::LedgerTotals(ids) => {
                ids.iter().for_each(|id| body.extend_from_slice(&id.to_le_bytes()));
                body.resize(body.len().next_multiple_of(16), 0);
                ids.len()
            }
            Request::LookupLineage(id) | Request::LookupPolicy(id) | Request::LookupAccountOrders(id) => {
                body.extend_from_slice(&id.to_le_bytes());
                1
            }
            Request::ExpiringHolds(limit) => {
                body.extend_from_slice(&limit.to_le_bytes());
                body.resize(16, 0);
                1
            }
            Request::Subscribe(subscription) => subscription.encode(&mut body) as usize,
            Request::Status | Request::Metrics => 0,
        };
        encode_frame(FrameType::Request, self.operation() as u8, request_id, count as u32, &body, out);
    }

    /// Decodes a request frame's body. Every malformed body is a typed error.
    pub fn decode(header: &Header, body: &[u8]) -> Result<Request, ProtocolError> {
        Request::decode_reusing(header, body, Vec::new())
    }

    /// As [`Request::decode`], decoding a submit's commands into `commands` (cleared first), so
    /// a server can hand the same allocation round from request to request.
    pub fn decode_reusing(header: &Header, body: &[u8], mut commands: Vec<Command>) -> Result<Request, ProtocolError> {
        if header.frame_type != FrameType::Request {
            return Err(ProtocolError::BadFrameType);
        }
        let n = header.record_count as usize;
        let expect_len = |len: usize| if body.len() == len { Ok(()) } else { Err(ProtocolError::LengthMismatch) };
        match Operation::from_u8(header.operation).ok_or(ProtocolError::UnknownOperation)? {
            Operation::Submit => {
                expect_len(batch::commands_len(n))?;
                commands.clear();
                batch::decode_commands(n, body, &mut commands).map_err(|e| match e {
                    batch::BatchDecodeError::UnknownKind { .. } => ProtocolError::UnknownCommandKind,
                    batch::BatchDecodeError::Reserved => ProtocolError::ReservedNotZero,
                    batch::BatchDecodeError::TooManyCommands(_) => ProtocolError::TooManyRecords,
                    batch::BatchDecodeError::Length { .. }
                    | batch::BatchDecodeError::UnsupportedVersion(_)
                    | batch::BatchDecodeError::UnknownBodyKind(_)
                    | batch::BatchDecodeError::NotABatch
                    | batch::BatchDecodeError::RequestEnds
                    | batch::BatchDecodeError::BadLimits(_) => ProtocolError::LengthMismatch,
                })?;
                Ok(Request::Submit(commands))
            }
            op @ (Operation::LookupAccounts
            | Operation::LookupTransfers
            | Operation::LookupOutcomes
            | Operation::LookupLimits
            | Operation::LookupOrders
            | Operation::LookupQuotes) => {
                expect_len(16 * n)?;
                // A request whose reply could not fit one frame is refused, not half answered.
                let most = match op {
                    Operation::LookupQuotes => LOOKUP_QUOTES_MAX,
                    Operation::LookupOrders => LOOKUP_ORDERS_MAX,
                    _ => FRAME_RECORDS_MAX,
                };
                if n > most {
                    return Err(ProtocolError::TooManyRecords);
                }
                let ids = body.chunks_exact(16).map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes"))).collect();
                Ok(match op {
                    Operation::LookupAccounts => Request::LookupAccounts(ids),
                    Operation::LookupTransfers => Request::LookupTransfers(ids),
                    Operation::LookupOutcomes => Request::LookupOutcomes(ids),
                    Operation::LookupOrders => Request::LookupOrders(ids),
                    Operation::LookupQuotes => Request::LookupQuotes(ids),
                    _ => Request::LookupLimits(ids),
                })
            }
            op @ (Operation::GetAccountTransfers | Operation::GetAccountBalances) => {
                if n != 1 {
                    return Err(ProtocolError::LengthMismatch);
                }
                expect_len(RECORD_SIZE)?;
                let filter = decode_filter(body.try_into().expect("checked length"))?;
                Ok(if op == Operation::GetAccountTransfers {
                    Request::GetAccountTransfers(filter)
                } else {
                    Request::GetAccountBalances(filter)
                })
            }
            Operation::LedgerTotals => {
                expect_len((4 * n).next_multiple_of(16))?;
                if body[4 * n..].iter().any(|b| *b != 0) {
                    return Err(ProtocolError::ReservedNotZero);
                }
                Ok(Request::LedgerTotals(
                    body[..4 * n].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
                ))
            }
            Operation::ExpiringHolds => {
                if n != 1 {
                    return Err(ProtocolError::LengthMismatch);
                }
                expect_len(16)?;
                if body[4..].iter().any(|b| *b != 0) {
                    return Err(ProtocolError::ReservedNotZero);
                }
                let limit = u32::from_le_bytes(body[..4].try_into().expect("4 bytes"));
                if limit as usize > FRAME_RECORDS_MAX {
                    return Err(ProtocolError::TooManyRecords);
                }
                Ok(Request::ExpiringHolds(limit))
            }
            op @ (Operation::LookupLineage | Operation::LookupPolicy | Operation::LookupAccountOrders) => {
                if n != 1 {
                    return Err(ProtocolError::LengthMismatch);
                }
                expect_len(16)?;
                let id = u128::from_le_bytes(body.try_into().expect("checked length"));
                Ok(match op {
                    Operation::LookupLineage => Request::LookupLineage(id),
                    Operation::LookupPolicy => Request::LookupPolicy(id),
                    _ => Request::LookupAccountOrders(id),
                })
            }
            Operation::Subscribe => Ok(Request::Subscribe(Box::new(crate::feed::Subscription::decode(n, body)?))),
            op @ (Operation::Status | Operation::Metrics) => {
                if n != 0 {
                    return Err(ProtocolError::LengthMismatch);
                }
                expect_len(0)?;
                Ok(if op == Operation::Status { Request::Status } else { Request::Metrics })
            }
        }
    }
}

/// The 128-byte wire form of an account filter: account_id u128, user_data_128 u128,
/// user_data_64 u64, user_data_32 u32, code u16, 2 zero bytes, timestamp_min u64,
/// timestamp_max u64, limit u32, flags u32, 56 zero bytes.
pub fn encode_filter(f: &AccountFilter) -> [u8; RECORD_SIZE] {
    let mut out = [0u8; RECORD_SIZE];
    out[0..16].copy_from_slice(&f.account_id.to_le_bytes());
    out[16..32].copy_from_slice(&f.user_data_128.to_le_bytes());
    out[32..40].copy_from_slice(&f.user_data_64.to_le_bytes());
    out[40..44].copy_from_slice(&f.user_data_32.to_le_bytes());
    out[44..46].copy_from_slice(&f.code.to_le_bytes());
    out[48..56].copy_from_slice(&f.timestamp_min.to_le_bytes());
    out[56..64].copy_from_slice(&f.timestamp_max.to_le_bytes());
    out[64..68].copy_from_slice(&f.limit.to_le_bytes());
    out[68..72].copy_from_slice(&f.flags.to_le_bytes());
    out
}

/// Reads an account filter; reserved bytes must be zero.
pub fn decode_filter(b: &[u8; RECORD_SIZE]) -> Result<AccountFilter, ProtocolError> {
    if b[46..48] != [0, 0] || b[72..].iter().any(|x| *x != 0) {
        return Err(ProtocolError::ReservedNotZero);
    }
    let flags = u32::from_le_bytes(b[68..72].try_into().expect("4 bytes"));
    if flags & !(bursar_engine::filter_flags::DEBITS | bursar_engine::filter_flags::CREDITS | bursar_engine::filter_flags::REVERSED) != 0 {
        return Err(ProtocolError::ReservedNotZero);
    }
    let u = |r: core::ops::Range<usize>| b[r].iter().rev().fold(0u128, |acc, x| acc << 8 | *x as u128);
    Ok(AccountFilter {
        account_id: u(0..16),
        user_data_128: u(16..32),
        user_data_64: u(32..40) as u64,
        user_data_32: u(40..44) as u32,
        code: u(44..46) as u16,
        timestamp_min: u(48..56) as u64,
        timestamp_max: u(56..64) as u64,
        limit: u(64..68) as u32,
        flags: u(68..72) as u32,
    })
}

/// Appends a reply to a submit: one `u32` result code per command.
pub fn encode_submit_reply(request_id: u64, results: &[ResultCode], out: &mut Vec<u8>) {
    let body: Vec<u8> = results.iter().flat_map(|r| (*r as u32).to_le_bytes()).collect();
    encode_frame(FrameType::Reply, Operation::Submit as u8, request_id, results.len() as u32, &body, out);
}

/// Reads a submit reply body into result codes.
pub fn decode_submit_reply(header: &Header, body: &[u8]) -> Result<Vec<ResultCode>, ProtocolError> {
    if header.frame_type != FrameType::Reply || header.operation != Operation::Submit as u8 {
        return Err(ProtocolError::BadFrameType);
    }
    if body.len() != 4 * header.record_count as usize {
        return Err(ProtocolError::LengthMismatch);
    }
    body.chunks_exact(4)
        .map(|c| ResultCode::from_u32(u32::from_le_bytes(c.try_into().expect("4 bytes"))).ok_or(ProtocolError::UnknownResultCode))
        .collect()
}

/// Appends a reply made of 128-byte records (lookups, queries).
pub fn encode_records_reply<R: Record>(request_id: u64, operation: Operation, records: &[R], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(records.len() * RECORD_SIZE);
    let mut record = [0u8; RECORD_SIZE];
    for r in records {
        r.encode(&mut record);
        body.extend_from_slice(&record);
    }
    encode_frame(FrameType::Reply, operation as u8, request_id, records.len() as u32, &body, out);
}

/// Appends a reply to get-account-balances: per entry, timestamp u64 @0, 8 zero bytes, the four
/// balances u128 @16/32/48/64, 48 zero bytes.
pub fn encode_balances_reply(request_id: u64, entries: &[AccountBalance], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(entries.len() * RECORD_SIZE);
    for e in entries {
        body.extend_from_slice(&e.timestamp.to_le_bytes());
        body.extend_from_slice(&[0; 8]);
        push_balances(&e.balances, &mut body);
        body.extend_from_slice(&[0; 48]);
    }
    encode_frame(FrameType::Reply, Operation::GetAccountBalances as u8, request_id, entries.len() as u32, &body, out);
}

fn push_balances(b: &Balances, body: &mut Vec<u8>) {
    for v in [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted] {
        body.extend_from_slice(&v.to_le_bytes());
    }
}

/// One 128-byte totals row: ledger u32 @0, code u16 @4 (0 = the whole ledger), 2 zero bytes,
/// accounts u32 @8, rows that follow u32 @12 (the whole-ledger row: how many per-code rows come
/// after it; 0 in those), the four sums u128 @16/32/48/64, 48 zero bytes.
fn push_totals_row(ledger: u32, code: u16, accounts: u32, following: u32, totals: &Balances, body: &mut Vec<u8>) {
    body.extend_from_slice(&ledger.to_le_bytes());
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&[0; 2]);
    body.extend_from_slice(&accounts.to_le_bytes());
    body.extend_from_slice(&following.to_le_bytes());
    push_balances(totals, body);
    body.extend_from_slice(&[0; 48]);
}

/// Appends a reply to ledger-totals: per ledger asked, its 128-byte record (all zero if unknown),
/// then a whole-ledger row and one row per account code (none for an unknown ledger).
pub fn encode_ledger_totals_reply(request_id: u64, ledgers: &[Option<LedgerTotals>], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for totals in ledgers {
        match totals {
            None => body.extend_from_slice(&[0; RECORD_SIZE]),
            Some(t) => {
                body.extend_from_slice(&t.ledger.to_bytes());
                push_totals_row(t.ledger.id, 0, t.accounts, t.by_code.len() as u32, &t.totals, &mut body);
                for c in &t.by_code {
                    push_totals_row(t.ledger.id, c.code, c.accounts, 0, &c.totals, &mut body);
                }
            }
        }
    }
    let count = body.len() / RECORD_SIZE;
    encode_frame(FrameType::Reply, Operation::LedgerTotals as u8, request_id, count as u32, &body, out);
}

/// Appends an error frame for a request.
pub fn encode_error(request_id: u64, operation: u8, error: ProtocolError, out: &mut Vec<u8>) {
    encode_frame(FrameType::Error, operation, request_id, 1, &(error as u32).to_le_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bursar_engine::Transfer;

    /// The echo rule: the header's id and operation whenever its 32 bytes arrived with the
    /// magic and version, whatever else is wrong; zeros otherwise.
    #[test]
    fn error_frames_echo_by_one_rule() {
        let mut frame = Vec::new();
        Request::Status.encode(77, &mut frame);
        assert_eq!(echo(&frame), (77, Operation::Status as u8));
        let mut bad = frame.clone();
        bad[6] = 9; // frame type
        bad[7] = 200; // operation
        bad[24] ^= 1; // checksum
        assert_eq!(echo(&bad), (77, 200));
        assert_eq!(echo(&frame[..HEADER_SIZE - 1]), (0, 0), "a header cut short");
        bad[4] = 2; // version
        assert_eq!(echo(&bad), (0, 0));
    }

    /// Filter flag bits past `reversed` are refused, not ignored.
    #[test]
    fn undefined_filter_flags_are_refused() {
        let filter = AccountFilter { account_id: 1, limit: 5, flags: 3, ..Default::default() };
        assert_eq!(decode_filter(&encode_filter(&filter)), Ok(filter));
        let bad = AccountFilter { flags: 1 << 3 | 1, ..filter };
        assert_eq!(decode_filter(&encode_filter(&bad)), Err(ProtocolError::ReservedNotZero));
    }

    fn round_trip(request: &Request) -> Request {
        let mut bytes = Vec::new();
        request.encode(42, &mut bytes);
        let mut decoder = FrameDecoder::new();
        // Byte by byte: the decoder must cope with any fragmentation.
        let mut frame = None;
        for b in &bytes {
            decoder.feed(&[*b]);
            if let Some(f) = decoder.next_frame().expect("valid") {
                frame = Some(f);
            }
        }
        decoder.finish().expect("nothing left over");
        let (header, body) = frame.expect("one frame");
        assert_eq!(header.request_id, 42);
        Request::decode(&header, &body).expect("decodes")
    }

    #[test]
    fn every_request_round_trips_through_any_fragmentation() {
        let requests = [
            Request::Submit(vec![
                Command::Transfer(Transfer { id: 7, amount: 9, ..Default::default() }),
                Command::Thaw(Default::default()),
            ]),
            Request::Submit(vec![]),
            Request::LookupAccounts(vec![1, u128::MAX, 3]),
            Request::LookupTransfers(vec![]),
            Request::ExpiringHolds(20),
            Request::ExpiringHolds(0),
            Request::Subscribe(Box::new(crate::feed::Subscription {
                from_seq: 9,
                from_index: 2,
                types: 6,
                ledgers: vec![3],
                accounts: vec![1, 5],
            })),
            Request::Subscribe(Box::default()),
            Request::LookupOutcomes(vec![7, u128::MAX]),
            Request::LookupLimits(vec![3]),
            Request::LookupLineage(9),
            Request::LookupPolicy(10),
            Request::LookupOrders(vec![11, 12]),
            Request::LookupAccountOrders(13),
            Request::LookupQuotes(vec![14, 15]),
            Request::GetAccountTransfers(AccountFilter { account_id: 5, limit: 10, flags: 3, timestamp_max: 99, ..Default::default() }),
            Request::GetAccountBalances(AccountFilter { account_id: 6, code: 2, ..Default::default() }),
            Request::LedgerTotals(vec![978, 840, 1]),
            Request::Status,
            Request::Metrics,
        ];
        for request in requests {
            assert_eq!(round_trip(&request), request);
        }
    }

    #[test]
    fn malformed_frames_get_typed_errors_before_any_body_is_buffered() {
        let mut good = Vec::new();
        Request::LookupAccounts(vec![1, 2]).encode(1, &mut good);
        let check = |bytes: &[u8], want: ProtocolError| {
            let mut d = FrameDecoder::new();
            d.feed(bytes);
            assert_eq!(d.next_frame(), Err(want), "{want:?}");
        };
        let mut bad = good.clone();
        bad[0] = b'X';
        check(&bad, ProtocolError::BadMagic);
        let mut bad = good.clone();
        bad[4] = 9;
        check(&bad, ProtocolError::UnsupportedVersion);
        let mut bad = good.clone();
        bad[6] = 7;
        check(&bad, ProtocolError::BadFrameType);
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&(FRAME_BODY_MAX_BYTES as u32 + 1).to_le_bytes());
        check(&bad[..HEADER_SIZE], ProtocolError::FrameTooLarge);
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&(FRAME_RECORDS_MAX as u32 + 1).to_le_bytes());
        check(&bad, ProtocolError::TooManyRecords);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        check(&bad, ProtocolError::BadChecksum);
        let mut bad = good.clone();
        bad[30] = 1;
        check(&bad, ProtocolError::ReservedNotZero);

        let mut d = FrameDecoder::new();
        d.feed(&good[..10]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(ProtocolError::Truncated));

        // A well-formed frame whose body does not fit its operation.
        let mut wrong = Vec::new();
        encode_frame(FrameType::Request, Operation::LookupAccounts as u8, 3, 2, &[0u8; 31], &mut wrong);
        let mut d = FrameDecoder::new();
        d.feed(&wrong);
        let (h, body) = d.next_frame().expect("frame").expect("complete");
        assert_eq!(Request::decode(&h, &body), Err(ProtocolError::LengthMismatch));
        let mut unknown = Vec::new();
        encode_frame(FrameType::Request, 99, 3, 0, &[], &mut unknown);
        let mut d = FrameDecoder::new();
        d.feed(&unknown);
        let (h, body) = d.next_frame().expect("frame").expect("complete");
        assert_eq!(Request::decode(&h, &body), Err(ProtocolError::UnknownOperation));
    }

    /// The whole-buffer decoder the server uses agrees with the incremental one on a good
    /// frame, borrows its body, and types every wrong length and damaged byte; a submit decoded
    /// into a reused vector gives the same request and keeps the vector's allocation.
    #[test]
    fn whole_frames_decode_in_place_and_reuse_command_vectors() {
        let commands = vec![Command::Transfer(Transfer { id: 7, amount: 9, ..Default::default() }), Command::Thaw(Default::default())];
        let mut frame = Vec::new();
        Request::Submit(commands.clone()).encode(5, &mut frame);
        let mut direct = Vec::new();
        encode_submit(5, &commands, &mut direct);
        assert_eq!(frame, direct, "encode_submit is the submit request's encoding");

        let (header, body) = decode_frame(&frame).expect("whole frame");
        assert_eq!((header.request_id, header.record_count), (5, 2));
        assert_eq!(body.as_ptr(), frame[HEADER_SIZE..].as_ptr(), "the body is borrowed, not copied");
        let spare: Vec<Command> = Vec::with_capacity(BATCH_COMMANDS_MAX);
        let spare_ptr = spare.as_ptr();
        match Request::decode_reusing(&header, body, spare).expect("decodes") {
            Request::Submit(got) => {
                assert_eq!(got, commands);
                assert_eq!(got.as_ptr(), spare_ptr, "decoded into the vector handed in");
            }
            other => panic!("decoded {other:?}"),
        }

        assert_eq!(decode_frame(&frame[..HEADER_SIZE - 1]).map(|_| ()), Err(ProtocolError::Truncated));
        assert_eq!(decode_frame(&frame[..frame.len() - 1]).map(|_| ()), Err(ProtocolError::Truncated));
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(decode_frame(&longer).map(|_| ()), Err(ProtocolError::LengthMismatch));
        let mut flipped = frame.clone();
        *flipped.last_mut().expect("body") ^= 1;
        assert_eq!(decode_frame(&flipped).map(|_| ()), Err(ProtocolError::BadChecksum));
        let mut magic = frame;
        magic[0] ^= 1;
        assert_eq!(decode_frame(&magic).map(|_| ()), Err(ProtocolError::BadMagic));
    }

    #[test]
    fn replies_round_trip() {
        let results = vec![ResultCode::Ok, ResultCode::Exists, ResultCode::ExceedsCredits];
        let mut bytes = Vec::new();
        encode_submit_reply(9, &results, &mut bytes);
        let mut d = FrameDecoder::new();
        d.feed(&bytes);
        let (h, body) = d.next_frame().expect("frame").expect("complete");
        assert_eq!(decode_submit_reply(&h, &body), Ok(results));
        let mut err = Vec::new();
        encode_error(9, 1, ProtocolError::Busy, &mut err);
        let mut d = FrameDecoder::new();
        d.feed(&err);
        let (h, body) = d.next_frame().expect("frame").expect("complete");
        assert_eq!(h.frame_type, FrameType::Error);
        assert_eq!(ProtocolError::from_u32(u32::from_le_bytes(body[..4].try_into().expect("4"))), Some(ProtocolError::Busy));
    }

    #[test]
    fn protocol_error_values_are_dense_and_stable() {
        for value in 1..=20 {
            assert_eq!(ProtocolError::from_u32(value).map(|e| e as u32), Some(value));
        }
        assert_eq!(ProtocolError::from_u32(0), None);
        assert_eq!(ProtocolError::from_u32(21), None);
    }
}
