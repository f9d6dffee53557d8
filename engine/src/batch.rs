//! Log entry bodies. A batch body is the engine's exact input (`now` and the commands), so
//! replaying the log through [`crate::Engine::execute`] rebuilds the state byte for byte. A
//! checkpoint body records the state digest the writer had after every entry before it, so a
//! replay can prove it reached the same state at that point.
//!
//! The format version of a batch body names the [`Rules`] it is applied under: this build
//! writes [`BATCH_FORMAT_VERSION`] and reads every version of [`Rules::from_version`], whose
//! layouts are the same, so a log written before the rules changed replays exactly as it was
//! applied.
//!
//! Batch (body kind 0):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | body format version: the [`Rules`] the batch is applied under |
//! | 2 | 1 | body kind: 0 = batch |
//! | 3 | 1 | reserved, zero |
//! | 4 | 4 | command count n (at most `BATCH_COMMANDS_MAX`; 0 is a clock tick) |
//! | 8 | 8 | now (ns) as given to `execute` |
//! | 16 | n | command kinds, one `CommandKind` byte each |
//! | 16 + n | 0..15 | zero padding to a multiple of 16 |
//! | … | 128 × n | the commands' records, in order |
//!
//! Batch joined from several requests (body kind 2): written only when a request other than the
//! last ends inside an open linked chain; the engine then closes that chain at its request's end
//! ([`crate::Engine::execute_requests`]).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | body format version (as in kind 0) |
//! | 2 | 1 | body kind: 2 = batch with request ends |
//! | 3 | 1 | reserved, zero |
//! | 4 | 4 | command count n (1 to `BATCH_COMMANDS_MAX`) |
//! | 8 | 8 | now (ns) as given to `execute_requests` |
//! | 16 | 4 | request end count e (1 to n - 1) |
//! | 20 | 4 × e | request ends: index of a request's last command, strictly rising, below n |
//! | 20 + 4e | 0..15 | zero padding to a multiple of 16 |
//! | … | | command kinds and records as in kind 0 |
//!
//! Checkpoint (body kind 1), 48 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | body format version (any of kind 0's; the same layout) |
//! | 2 | 1 | body kind: 1 = checkpoint |
//! | 3 | 1 | reserved, zero |
//! | 4 | 4 | zero |
//! | 8 | 8 | the engine clock (its last assigned timestamp) at that point |
//! | 16 | 32 | [`crate::Engine::state_digest`] at that point |
//!
//! Limits (body kind 3), 32 bytes: the engine enforces these [`Limits`] from this entry on
//! (`bursar start --transfers-max`, say); [`Limits::problem`] must find nothing wrong with them.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | body format version (any of kind 0's; the same layout) |
//! | 2 | 1 | body kind: 3 = limits |
//! | 3 | 13 | reserved, zero |
//! | 16 | 4 | ledgers_max |
//! | 20 | 4 | accounts_max |
//! | 24 | 4 | transfers_max |
//! | 28 | 4 | query_results_max |

use crate::command::{Command, CommandKind};
use crate::limits::{Limits, BATCH_COMMANDS_MAX};
use crate::rules::Rules;
use crate::types::RECORD_SIZE;

/// The body format version this build writes: its current rules' (it reads every version of
/// [`Rules::from_version`]).
pub const BATCH_FORMAT_VERSION: u16 = Rules::CURRENT.version();
const HEADER_SIZE: usize = 16;
/// Body kind byte of a batch.
const KIND_BATCH: u8 = 0;
/// Body kind byte of a checkpoint.
const KIND_CHECKPOINT: u8 = 1;
/// Body kind byte of a batch with request ends.
const KIND_BATCH_WITH_ENDS: u8 = 2;
/// Body kind byte of a change of limits.
const KIND_LIMITS: u8 = 3;
/// Bytes of a checkpoint body.
pub const CHECKPOINT_LEN: usize = HEADER_SIZE + 32;
/// Bytes of a limits body.
pub const LIMITS_LEN: usize = HEADER_SIZE + 16;

/// One log entry's engine input: the commands of one or more requests, and where each request
/// but the last ends inside an open chain (see [`crate::Engine::execute_requests`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Input<'a> {
    /// The commands, request after request.
    pub commands: &'a [Command],
    /// Index of the last command of each request (but the last) whose chain must close there.
    pub request_ends: &'a [u32],
}

impl<'a> Input<'a> {
    /// The input of a single request.
    pub fn single(commands: &'a [Command]) -> Input<'a> {
        Input { commands, request_ends: &[] }
    }
}

/// A decoded log body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A batch for `execute` at `now`; its commands went to the caller's vector.
    Batch {
        /// The `now` given to `execute`.
        now: u64,
        /// The rules it was applied under (its format version).
        rules: Rules,
    },
    /// The writer's state after every earlier entry.
    Checkpoint(Checkpoint),
    /// The limits the engine enforces from this entry on.
    Limits(Limits),
}

/// What a checkpoint entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The engine clock at that point.
    pub clock: u64,
    /// The state digest at that point.
    pub digest: [u8; 32],
}

/// Why a log body is not a batch this build can replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchDecodeError {
    /// Shorter or longer than its header says.
    Length {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Written by a format version this build does not read.
    UnsupportedVersion(u16),
    /// More commands than `BATCH_COMMANDS_MAX`.
    TooManyCommands(u32),
    /// A kind byte names no command.
    UnknownKind {
        /// Position of the command in the batch.
        index: usize,
        /// The byte found.
        kind: u8,
    },
    /// Reserved bytes or padding are not zero.
    Reserved,
    /// The body kind byte names no body this build knows.
    UnknownBodyKind(u8),
    /// A checkpoint or limits body where a batch was required (a request body).
    NotABatch,
    /// A limits body whose limits no engine can hold ([`Limits::problem`] names why).
    BadLimits(&'static str),
    /// Request ends that are absent, too many, not strictly rising, or past the last command.
    RequestEnds,
}

impl core::fmt::Display for BatchDecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BatchDecodeError::Length { expected, found } => write!(f, "batch body of {found} bytes, header implies {expected}"),
            BatchDecodeError::UnsupportedVersion(v) => write!(f, "batch body version {v} is not supported"),
            BatchDecodeError::TooManyCommands(n) => write!(f, "batch of {n} commands exceeds {BATCH_COMMANDS_MAX}"),
            BatchDecodeError::UnknownKind { index, kind } => write!(f, "command {index} has unknown kind {kind}"),
            BatchDecodeError::Reserved => f.write_str("reserved bytes of a batch body are not zero"),
            BatchDecodeError::UnknownBodyKind(kind) => write!(f, "log body kind {kind} is unknown"),
            BatchDecodeError::NotABatch => f.write_str("a checkpoint or limits body where a batch was expected"),
            BatchDecodeError::BadLimits(why) => write!(f, "limits body: {why}"),
            BatchDecodeError::RequestEnds => {
                f.write_str("the request ends of a batch body are not strictly rising below its command count")
            }
        }
    }
}

impl std::error::Error for BatchDecodeError {}

fn kinds_len(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// Bytes the body of a batch of `n` commands takes.
pub fn encoded_len(n: usize) -> usize {
    HEADER_SIZE + kinds_len(n) + RECORD_SIZE * n
}

/// Bytes the request ends part of a kind 2 body takes for `e` ends (with its count and padding).
fn request_ends_len(e: usize) -> usize {
    (4 + 4 * e).next_multiple_of(16)
}

/// Bytes the body of `n` commands with `e` request ends takes (0 ends: a plain batch).
pub fn encoded_len_with_ends(n: usize, e: usize) -> usize {
    encoded_len(n) + if e == 0 { 0 } else { request_ends_len(e) }
}

/// Appends the body for `now` and `commands` to `out`.
pub fn encode(now: u64, commands: &[Command], out: &mut Vec<u8>) {
    encode_requests(now, commands, &[], out);
}

/// Appends the body for `now` and `commands` joined from several requests, `request_ends`
/// listing the last command of each request that must close its chain (see
/// [`crate::Engine::execute_requests`]); with none it is a plain batch (kind 0).
pub fn encode_requests(now: u64, commands: &[Command], request_ends: &[u32], out: &mut Vec<u8>) {
    assert!(commands.len() <= BATCH_COMMANDS_MAX, "callers check the batch limit first");
    assert!(request_ends.len() < commands.len().max(1), "at most one end per request but the last");
    assert!(request_ends.windows(2).all(|w| w[0] < w[1]) && request_ends.last().is_none_or(|e| (*e as usize) < commands.len()));
    let start = out.len();
    out.reserve(encoded_len_with_ends(commands.len(), request_ends.len()));
    out.extend_from_slice(&BATCH_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[if request_ends.is_empty() { KIND_BATCH } else { KIND_BATCH_WITH_ENDS }, 0]);
    out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
    out.extend_from_slice(&now.to_le_bytes());
    if !request_ends.is_empty() {
        let ends_start = out.len();
        out.extend_from_slice(&(request_ends.len() as u32).to_le_bytes());
        request_ends.iter().for_each(|end| out.extend_from_slice(&end.to_le_bytes()));
        out.resize(ends_start + request_ends_len(request_ends.len()), 0);
    }
    encode_commands(commands, out);
    debug_assert_eq!(out.len() - start, encoded_len_with_ends(commands.len(), request_ends.len()));
}

/// Bytes [`encode_commands`] appends for `n` commands: the body without its 16-byte header.
pub fn commands_len(n: usize) -> usize {
    kinds_len(n) + RECORD_SIZE * n
}

/// Appends the commands part of a body (kinds, zero-padded to a multiple of 16, then one
/// 128-byte record each): the layout the wire protocol's submit request carries.
pub fn encode_commands(commands: &[Command], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(commands_len(commands.len()));
    out.extend(commands.iter().map(|c| c.kind() as u8));
    out.resize(start + kinds_len(commands.len()), 0);
    let mut record = [0u8; RECORD_SIZE];
    for command in commands {
        command.encode_record(&mut record);
        out.extend_from_slice(&record);
    }
    debug_assert_eq!(out.len() - start, commands_len(commands.len()));
}

/// Reads the commands part of a body of `n` commands (see [`encode_commands`]), appending them
/// to `commands`. Every malformed input is a typed error; `commands` is then unspecified.
pub fn decode_commands(n: usize, bytes: &[u8], commands: &mut Vec<Command>) -> Result<(), BatchDecodeError> {
    if n > BATCH_COMMANDS_MAX {
        return Err(BatchDecodeError::TooManyCommands(n.min(u32::MAX as usize) as u32));
    }
    if bytes.len() != commands_len(n) {
        return Err(BatchDecodeError::Length { expected: HEADER_SIZE + commands_len(n), found: HEADER_SIZE + bytes.len() });
    }
    let kinds = &bytes[..kinds_len(n)];
    if kinds[n..].iter().any(|b| *b != 0) {
        return Err(BatchDecodeError::Reserved);
    }
    let records = &bytes[kinds_len(n)..];
    commands.reserve(n);
    for (index, (kind, record)) in kinds[..n].iter().zip(records.chunks_exact(RECORD_SIZE)).enumerate() {
        let Some(kind) = CommandKind::from_u8(*kind) else {
            return Err(BatchDecodeError::UnknownKind { index, kind: *kind });
        };
        commands.push(Command::decode(kind, record.try_into().expect("exact chunks")));
    }
    Ok(())
}

/// Appends a checkpoint body.
pub fn encode_checkpoint(checkpoint: &Checkpoint, out: &mut Vec<u8>) {
    out.extend_from_slice(&BATCH_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[KIND_CHECKPOINT, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&checkpoint.clock.to_le_bytes());
    out.extend_from_slice(&checkpoint.digest);
}

/// Appends a limits body.
pub fn encode_limits(limits: &Limits, out: &mut Vec<u8>) {
    assert_eq!(limits.problem(), None, "callers check limits first");
    out.extend_from_slice(&BATCH_FORMAT_VERSION.to_le_bytes());
    out.push(KIND_LIMITS);
    out.extend_from_slice(&[0; HEADER_SIZE - 3]);
    for value in [limits.ledgers_max, limits.accounts_max, limits.transfers_max, limits.query_results_max] {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Reads a limits body (its version checked by the caller).
fn decode_limits(body: &[u8]) -> Result<Body, BatchDecodeError> {
    if body.len() != LIMITS_LEN {
        return Err(BatchDecodeError::Length { expected: LIMITS_LEN, found: body.len() });
    }
    if body[3..HEADER_SIZE].iter().any(|b| *b != 0) {
        return Err(BatchDecodeError::Reserved);
    }
    let word = |i: usize| u32::from_le_bytes(body[HEADER_SIZE + 4 * i..HEADER_SIZE + 4 * i + 4].try_into().expect("4 bytes"));
    let limits = Limits { ledgers_max: word(0), accounts_max: word(1), transfers_max: word(2), query_results_max: word(3) };
    match limits.problem() {
        Some(why) => Err(BatchDecodeError::BadLimits(why)),
        None => Ok(Body::Limits(limits)),
    }
}

/// Reads a batch body back into `now` and the commands (appended to `commands`, its request
/// ends to `request_ends`); a checkpoint or limits body is an error here.
pub fn decode(body: &[u8], commands: &mut Vec<Command>, request_ends: &mut Vec<u32>) -> Result<u64, BatchDecodeError> {
    match decode_body(body, commands, request_ends)? {
        Body::Batch { now, .. } => Ok(now),
        Body::Checkpoint(_) | Body::Limits(_) => Err(BatchDecodeError::NotABatch),
    }
}

/// Reads any log body: a batch (its commands appended to `commands`, its request ends, if any,
/// to `request_ends`), a checkpoint or a change of limits.
pub fn decode_body(body: &[u8], commands: &mut Vec<Command>, request_ends: &mut Vec<u32>) -> Result<Body, BatchDecodeError> {
    let Some(header) = body.get(..HEADER_SIZE) else {
        return Err(BatchDecodeError::Length { expected: HEADER_SIZE, found: body.len() });
    };
    let version = u16::from_le_bytes([header[0], header[1]]);
    let Some(rules) = Rules::from_version(version) else {
        return Err(BatchDecodeError::UnsupportedVersion(version));
    };
    if header[3] != 0 {
        return Err(BatchDecodeError::Reserved);
    }
    match header[2] {
        KIND_BATCH | KIND_BATCH_WITH_ENDS => {}
        KIND_CHECKPOINT => {
            if body.len() != CHECKPOINT_LEN {
                return Err(BatchDecodeError::Length { expected: CHECKPOINT_LEN, found: body.len() });
            }
            if header[4..8] != [0; 4] {
                return Err(BatchDecodeError::Reserved);
            }
            let clock = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            let digest = body[HEADER_SIZE..].try_into().expect("checked length");
            return Ok(Body::Checkpoint(Checkpoint { clock, digest }));
        }
        KIND_LIMITS => return decode_limits(body),
        other => return Err(BatchDecodeError::UnknownBodyKind(other)),
    }
    let count = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if count as usize > BATCH_COMMANDS_MAX {
        return Err(BatchDecodeError::TooManyCommands(count));
    }
    let n = count as usize;
    let now = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let ends_len = if header[2] == KIND_BATCH_WITH_ENDS { decode_request_ends(n, &body[HEADER_SIZE..], request_ends)? } else { 0 };
    if body.len() != encoded_len(n) + ends_len {
        return Err(BatchDecodeError::Length { expected: encoded_len(n) + ends_len, found: body.len() });
    }
    decode_commands(n, &body[HEADER_SIZE + ends_len..], commands)?;
    Ok(Body::Batch { now, rules })
}

/// Reads the request ends part of a kind 2 body of `n` commands from the start of `bytes`,
/// appending the ends to `request_ends`; returns the part's length.
fn decode_request_ends(n: usize, bytes: &[u8], request_ends: &mut Vec<u32>) -> Result<usize, BatchDecodeError> {
    let short = |expected: usize| BatchDecodeError::Length { expected: HEADER_SIZE + expected, found: HEADER_SIZE + bytes.len() };
    let count = u32::from_le_bytes(bytes.get(..4).ok_or(short(4))?.try_into().expect("4 bytes")) as usize;
    if count == 0 || count >= n {
        return Err(BatchDecodeError::RequestEnds);
    }
    let len = request_ends_len(count);
    let part = bytes.get(..len).ok_or(short(len))?;
    if part[4 + 4 * count..].iter().any(|b| *b != 0) {
        return Err(BatchDecodeError::Reserved);
    }
    let start = request_ends.len();
    request_ends.extend(part[4..4 + 4 * count].chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))));
    let ends = &request_ends[start..];
    if !ends.windows(2).all(|w| w[0] < w[1]) || ends.last().is_some_and(|e| *e as usize >= n) {
        return Err(BatchDecodeError::RequestEnds);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AccountChange, Transfer};

    #[test]
    fn batches_round_trip_and_bad_bodies_are_typed_errors() {
        let commands = vec![
            Command::Transfer(Transfer { id: 1, amount: 5, ..Default::default() }),
            Command::Freeze(AccountChange { account_id: 9, ..Default::default() }),
            Command::Capture(Transfer { id: 2, pending_id: 1, ..Default::default() }),
        ];
        let mut body = Vec::new();
        encode(77, &commands, &mut body);
        assert_eq!(body.len(), 16 + 16 + 3 * 128);
        let mut back = Vec::new();
        assert_eq!(decode(&body, &mut back, &mut Vec::new()), Ok(77));
        assert_eq!(back, commands);

        let mut tick = Vec::new();
        encode(5, &[], &mut tick);
        assert_eq!(decode(&tick, &mut Vec::new(), &mut Vec::new()), Ok(5));

        assert!(matches!(decode(&body[..body.len() - 1], &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
        let mut bad = body.clone();
        bad[16] = 200;
        assert_eq!(decode(&bad, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::UnknownKind { index: 0, kind: 200 }));
        let mut bad = body.clone();
        bad[20] = 1;
        assert_eq!(decode(&bad, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Reserved));
        let mut bad = body.clone();
        bad[0] = 9;
        assert_eq!(decode(&bad, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::UnsupportedVersion(9)));
        let mut bad = body;
        bad[2] = 7;
        assert_eq!(decode(&bad, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::UnknownBodyKind(7)));
    }

    #[test]
    fn batches_with_request_ends_round_trip_and_bad_ends_are_typed_errors() {
        let commands: Vec<Command> = (1..=5).map(|id| Command::Transfer(Transfer { id, amount: 1, ..Default::default() })).collect();
        let mut body = Vec::new();
        encode_requests(9, &commands, &[0, 3], &mut body);
        assert_eq!(body.len(), encoded_len_with_ends(5, 2));
        assert_eq!(body.len(), 16 + 16 + 16 + 5 * 128, "count and two ends padded to 16 bytes");
        assert_eq!(body[2], KIND_BATCH_WITH_ENDS);
        let (mut back, mut ends) = (Vec::new(), Vec::new());
        assert_eq!(decode(&body, &mut back, &mut ends), Ok(9));
        assert_eq!((back, ends), (commands.clone(), vec![0, 3]));

        let mut plain = Vec::new();
        encode_requests(9, &commands, &[], &mut plain);
        assert_eq!(plain[2], KIND_BATCH, "no request ends: the plain batch body");

        let with_ends = |count: u32, ends: [u32; 2]| {
            let mut bad = body.clone();
            bad[16..20].copy_from_slice(&count.to_le_bytes());
            bad[20..24].copy_from_slice(&ends[0].to_le_bytes());
            bad[24..28].copy_from_slice(&ends[1].to_le_bytes());
            decode(&bad, &mut Vec::new(), &mut Vec::new())
        };
        assert_eq!(with_ends(0, [0, 3]), Err(BatchDecodeError::RequestEnds), "no end");
        assert_eq!(with_ends(5, [0, 3]), Err(BatchDecodeError::RequestEnds), "an end per command");
        assert_eq!(with_ends(2, [3, 3]), Err(BatchDecodeError::RequestEnds), "not rising");
        assert_eq!(with_ends(2, [0, 5]), Err(BatchDecodeError::RequestEnds), "past the last command");
        assert_eq!(with_ends(1, [0, 3]), Err(BatchDecodeError::Reserved), "a third end left in the padding");
        assert!(matches!(decode(&body[..18], &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
        assert!(matches!(decode(&body[..body.len() - 128], &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
    }

    /// A body written before the rules changed (version 1) still decodes, naming its rules.
    #[test]
    fn a_version_1_body_decodes_with_the_original_rules() {
        let commands = vec![Command::Transfer(Transfer { id: 1, amount: 5, ..Default::default() })];
        let mut body = Vec::new();
        encode(77, &commands, &mut body);
        assert_eq!(decode_body(&body, &mut Vec::new(), &mut Vec::new()), Ok(Body::Batch { now: 77, rules: Rules::CURRENT }));
        body[..2].copy_from_slice(&1u16.to_le_bytes());
        let mut back = Vec::new();
        assert_eq!(decode_body(&body, &mut back, &mut Vec::new()), Ok(Body::Batch { now: 77, rules: Rules::Original }));
        assert_eq!(back, commands);
    }

    #[test]
    fn checkpoints_round_trip_and_are_not_batches() {
        let checkpoint = Checkpoint { clock: 1_234, digest: [7; 32] };
        let mut body = Vec::new();
        encode_checkpoint(&checkpoint, &mut body);
        assert_eq!(body.len(), CHECKPOINT_LEN);
        assert_eq!(decode_body(&body, &mut Vec::new(), &mut Vec::new()), Ok(Body::Checkpoint(checkpoint)));
        assert_eq!(decode(&body, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::NotABatch));
        assert!(matches!(decode_body(&body[..40], &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
        let mut bad = body;
        bad[5] = 1;
        assert_eq!(decode_body(&bad, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Reserved));
    }

    #[test]
    fn limits_round_trip_and_impossible_ones_are_refused() {
        let limits = Limits { transfers_max: (1 << 31) - 1, ..Limits::default() };
        let mut body = Vec::new();
        encode_limits(&limits, &mut body);
        assert_eq!(body.len(), LIMITS_LEN);
        assert_eq!(decode_body(&body, &mut Vec::new(), &mut Vec::new()), Ok(Body::Limits(limits)));
        assert_eq!(decode(&body, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::NotABatch));
        assert!(matches!(decode_body(&body[..31], &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
        let mut reserved = body.clone();
        reserved[15] = 1;
        assert_eq!(decode_body(&reserved, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::Reserved));
        for (at, value) in [(24, 1u32 << 31), (20, u32::MAX)] {
            let mut impossible = body.clone();
            impossible[at..at + 4].copy_from_slice(&value.to_le_bytes());
            assert!(matches!(decode_body(&impossible, &mut Vec::new(), &mut Vec::new()), Err(BatchDecodeError::BadLimits(_))));
        }
    }
}
