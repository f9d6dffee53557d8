//! The write-ahead log: segmented, preallocated, memory-mapped for reading, checksummed
//! (CRC32C) and hash-chained (BLAKE3), with group commit, snapshots and recovery.
//!
//! It knows bytes, not business: entries are opaque bodies with a sequence number and a
//! timestamp, snapshots are opaque payloads. Architecture invariant: this crate never imports
//! `bursar-engine`. The format is documented byte by byte in `docs/wal-format.md`.
#![warn(missing_docs)]

pub mod block;
pub mod files;
pub mod format;
pub mod history;
pub mod idfilter;
pub mod idruns;
pub mod log;
pub mod mark;
pub mod mmap;
pub mod powercut;
pub mod reader;
pub mod recovery;
pub mod sim;
pub mod storage;
mod sys;
mod uring;

pub use files::{segment_index, segment_name, snapshot_name, snapshot_seq, spare_name};
pub use format::{Hash, SnapshotHeader, GENESIS_HASH};
pub use history::HistoryStore;
pub use idruns::{IdLookups, IdRuns};
pub use log::Wal;
pub use reader::{LogReader, ReadError};
pub use recovery::{
    list_segments, list_snapshots, log_recycled, oldest_valid_snapshot, open, read_snapshot, verify_log, verify_log_from, EntryRef,
    RecoveryReport, SnapshotRefused,
};
pub use storage::{FsStorage, Storage};
pub use sys::{background_thread, foreground_thread, map_large_allocations};

/// When appended entries become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every [`Wal::sync`] writes and fdatasyncs: an acknowledged batch survives a power cut. The default.
    EveryBatch,
    /// [`Wal::sync`] writes but never fdatasyncs. A power cut loses acknowledged batches.
    /// Only for benchmarks that want to measure everything but the disk.
    UnsafeNoSync,
}

/// What happens to segments whose entries every kept snapshot already includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Every segment is kept: the audit can replay and prove the whole history from the first
    /// entry. The default. Snapshots are bounded as under either retention: the
    /// [`SNAPSHOTS_KEPT`] newest stay.
    KeepAll,
    /// After each snapshot, only the [`SNAPSHOTS_KEPT`] newest snapshots are kept, and segments
    /// holding only entries before the oldest of those are recycled: renamed aside and reused as
    /// the next segments (their old entries are stale by the format's checksum binding), so the
    /// log overwrites blocks it wrote before instead of zero-filling fresh ones. The history
    /// before the oldest kept snapshot is gone: an audit can start only from that snapshot.
    RecycleBeforeSnapshots,
}

/// Snapshots kept (under either retention): two, so a damaged newest one still leaves an older
/// one and the log after it.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Recycled segments kept aside for reuse at most; more are deleted.
pub const SPARE_SEGMENTS_MAX: usize = 8;

/// Log settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// Size of every segment file, preallocated and zero-filled.
    pub segment_size_bytes: u64,
    /// Largest entry body accepted.
    pub entry_body_max_bytes: u32,
    /// Durability of [`Wal::sync`].
    pub sync: SyncPolicy,
    /// Whether old segments are kept or recycled.
    pub retention: Retention,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: 256 << 20,
            entry_body_max_bytes: 16 << 20,
            sync: SyncPolicy::EveryBatch,
            retention: Retention::KeepAll,
        }
    }
}

impl WalConfig {
    /// Checks that an entry of the largest size fits in an empty segment.
    pub fn validate(&self) -> Result<(), OpenError> {
        let biggest = format::SEGMENT_HEADER_SIZE as u64 + format::stored_len(self.entry_body_max_bytes as usize) as u64;
        if biggest > self.segment_size_bytes {
            return Err(OpenError::Config(format!(
                "segment_size_bytes {} cannot hold an entry of entry_body_max_bytes {}",
                self.segment_size_bytes, self.entry_body_max_bytes
            )));
        }
        Ok(())
    }
}

/// Errors of appending, syncing and snapshotting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalError {
    /// A write or sync failed earlier (or now); the log accepts nothing more. Restart to recover.
    Failed(String),
    /// An entry body over `entry_body_max_bytes`; nothing was appended.
    EntryTooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot may only cover durable entries.
    SnapshotAheadOfLog {
        /// The snapshot's sequence number.
        seq: u64,
        /// The highest durable one.
        synced: u64,
    },
    /// Writing the snapshot file failed; the log itself is unaffected.
    Snapshot(String),
}

impl core::fmt::Display for WalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalError::Failed(why) => write!(f, "the log stopped after an I/O failure: {why}"),
            WalError::EntryTooLarge { len, max } => {
                write!(f, "entry of {len} bytes exceeds the limit of {max}")
            }
            WalError::SnapshotAheadOfLog { seq, synced } => write!(f, "snapshot at {seq} is ahead of the durable log ({synced})"),
            WalError::Snapshot(why) => write!(f, "writing the snapshot failed: {why}"),
        }
    }
}

impl std::error::Error for WalError {}

/// Errors of opening (recovering) a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The configuration is inconsistent.
    Config(String),
    /// Reading or writing the directory failed.
    Io(String),
    /// Acknowledged data is damaged or the log was altered: refuse to start.
    Corrupt {
        /// The segment file.
        segment: String,
        /// Byte offset of the damaged entry.
        offset: u64,
        /// The sequence number expected there.
        seq: u64,
        /// What was expected and what was found.
        reason: String,
    },
    /// The caller's snapshot or entry handler refused.
    Visitor(String),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Config(why) => write!(f, "bad log configuration: {why}"),
            OpenError::Io(why) => write!(f, "log I/O error: {why}"),
            OpenError::Corrupt { segment, offset, seq, reason } => {
                write!(f, "log corrupt in {segment} at offset {offset} (sequence {seq}): {reason}")
            }
            OpenError::Visitor(why) => write!(f, "replaying the log failed: {why}"),
        }
    }
}

impl std::error::Error for OpenError {}
