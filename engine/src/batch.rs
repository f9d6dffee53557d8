//! The log body of one batch: the engine's exact input (`now` and the commands), so replaying
//! the log through [`crate::Engine::execute`] rebuilds the state byte for byte.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | body format version (1) |
//! | 2 | 2 | reserved, zero |
//! | 4 | 4 | command count n (at most `BATCH_COMMANDS_MAX`; 0 is a clock tick) |
//! | 8 | 8 | now (ns) as given to `execute` |
//! | 16 | n | command kinds, one `CommandKind` byte each |
//! | 16 + n | 0..15 | zero padding to a multiple of 16 |
//! | … | 128 × n | the commands' records, in order |

use crate::command::{Command, CommandKind};
use crate::limits::BATCH_COMMANDS_MAX;
use crate::types::RECORD_SIZE;

/// The body format version this build writes and reads.
pub const BATCH_FORMAT_VERSION: u16 = 1;
const HEADER_SIZE: usize = 16;

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
}

impl core::fmt::Display for BatchDecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BatchDecodeError::Length { expected, found } => write!(f, "batch body of {found} bytes, header implies {expected}"),
            BatchDecodeError::UnsupportedVersion(v) => write!(f, "batch body version {v} is not supported"),
            BatchDecodeError::TooManyCommands(n) => write!(f, "batch of {n} commands exceeds {BATCH_COMMANDS_MAX}"),
            BatchDecodeError::UnknownKind { index, kind } => write!(f, "command {index} has unknown kind {kind}"),
            BatchDecodeError::Reserved => f.write_str("reserved bytes of a batch body are not zero"),
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

/// Appends the body for `now` and `commands` to `out`.
pub fn encode(now: u64, commands: &[Command], out: &mut Vec<u8>) {
    assert!(commands.len() <= BATCH_COMMANDS_MAX, "callers check the batch limit first");
    let start = out.len();
    out.reserve(encoded_len(commands.len()));
    out.extend_from_slice(&BATCH_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
    out.extend_from_slice(&now.to_le_bytes());
    out.extend(commands.iter().map(|c| c.kind() as u8));
    out.resize(start + HEADER_SIZE + kinds_len(commands.len()), 0);
    let mut record = [0u8; RECORD_SIZE];
    for command in commands {
        command.encode_record(&mut record);
        out.extend_from_slice(&record);
    }
    debug_assert_eq!(out.len() - start, encoded_len(commands.len()));
}

/// Reads a body back into `now` and the commands (appended to `commands`).
pub fn decode(body: &[u8], commands: &mut Vec<Command>) -> Result<u64, BatchDecodeError> {
    let Some(header) = body.get(..HEADER_SIZE) else {
        return Err(BatchDecodeError::Length { expected: HEADER_SIZE, found: body.len() });
    };
    let version = u16::from_le_bytes([header[0], header[1]]);
    if version != BATCH_FORMAT_VERSION {
        return Err(BatchDecodeError::UnsupportedVersion(version));
    }
    if header[2..4] != [0, 0] {
        return Err(BatchDecodeError::Reserved);
    }
    let count = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if count as usize > BATCH_COMMANDS_MAX {
        return Err(BatchDecodeError::TooManyCommands(count));
    }
    let n = count as usize;
    let now = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if body.len() != encoded_len(n) {
        return Err(BatchDecodeError::Length { expected: encoded_len(n), found: body.len() });
    }
    let kinds = &body[HEADER_SIZE..HEADER_SIZE + kinds_len(n)];
    if kinds[n..].iter().any(|b| *b != 0) {
        return Err(BatchDecodeError::Reserved);
    }
    let records = &body[HEADER_SIZE + kinds_len(n)..];
    commands.reserve(n);
    for (index, (kind, record)) in kinds[..n].iter().zip(records.chunks_exact(RECORD_SIZE)).enumerate() {
        let Some(kind) = CommandKind::from_u8(*kind) else {
            return Err(BatchDecodeError::UnknownKind { index, kind: *kind });
        };
        commands.push(Command::decode(kind, record.try_into().expect("exact chunks")));
    }
    Ok(now)
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
        assert_eq!(decode(&body, &mut back), Ok(77));
        assert_eq!(back, commands);

        let mut tick = Vec::new();
        encode(5, &[], &mut tick);
        assert_eq!(decode(&tick, &mut Vec::new()), Ok(5));

        assert!(matches!(decode(&body[..body.len() - 1], &mut Vec::new()), Err(BatchDecodeError::Length { .. })));
        let mut bad = body.clone();
        bad[16] = 200;
        assert_eq!(decode(&bad, &mut Vec::new()), Err(BatchDecodeError::UnknownKind { index: 0, kind: 200 }));
        let mut bad = body.clone();
        bad[20] = 1;
        assert_eq!(decode(&bad, &mut Vec::new()), Err(BatchDecodeError::Reserved));
        let mut bad = body;
        bad[0] = 9;
        assert_eq!(decode(&bad, &mut Vec::new()), Err(BatchDecodeError::UnsupportedVersion(9)));
    }
}
