//! The change feed's follower: a second engine that reads the durable log beside the writer
//! (never the sequencer's state), so a subscriber costs the sequencer nothing but an atomic store
//! per sync. It starts from the newest snapshot at or before the position asked for (or the
//! first entry), replays silently up to it, then applies each durable entry with feed notes on
//! and hands out the entry's events (`Engine::feed_events`). Catch-up and the live tail are one
//! path, the log, so there is no seam to lose or repeat an event at; a follower that falls
//! behind simply reads further back, and one whose position retention recycled is told so.
//!
//! [`Durable`] is what the sequencer publishes: the last durable sequence number, and a wake-up
//! for followers waiting past it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use bursar_engine::batch::Body;
use bursar_engine::replay::Replayer;
use bursar_engine::{Engine, FeedEvent, FeedNote, Limits};
use bursar_wal::{FsStorage, LogReader, ReadError};

/// The log's durable end as the sequencer last published it, with a wake-up for waiters.
#[derive(Debug, Default)]
pub struct Durable {
    seq: AtomicU64,
    closed: AtomicBool,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Durable {
    /// Publishes `seq` as durable (the sequencer, after each sync): an atomic store, and a
    /// wake-up only when a follower waits.
    pub fn publish(&self, seq: u64) {
        if self.seq.swap(seq, Ordering::AcqRel) != seq && self.waiters.load(Ordering::Acquire) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }

    /// The sequencer stopped: nothing more will become durable through it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// Whether [`Durable::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The last durable sequence number published.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Waits until something beyond `seq` is durable, the log closes, or `timeout` passes;
    /// returns the durable end then.
    pub fn wait_beyond(&self, seq: u64, timeout: Duration) -> u64 {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _unused = self
            .wake
            .wait_timeout_while(guard, timeout, |_| self.seq.load(Ordering::Acquire) <= seq && !self.is_closed())
            .unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        self.seq()
    }
}

/// Why a follower cannot start or go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// The position is no longer in the log (retention recycled it).
    Recycled {
        /// The first entry that cannot be read.
        seq: u64,
    },
    /// The position is beyond the durable end.
    Ahead {
        /// The position asked for.
        from: u64,
        /// The durable end.
        durable: u64,
    },
    /// The log or a snapshot could not be read or applied.
    Failed(String),
    /// The consumer stopped taking events.
    Stopped,
}

impl core::fmt::Display for FeedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FeedError::Recycled { seq } => write!(f, "entry {seq} is no longer in the log"),
            FeedError::Ahead { from, durable } => write!(f, "position {from} is beyond the durable end {durable}"),
            FeedError::Failed(why) => write!(f, "the feed failed: {why}"),
            FeedError::Stopped => write!(f, "the consumer stopped"),
        }
    }
}

impl std::error::Error for FeedError {}

impl From<ReadError> for FeedError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Recycled { seq } => FeedError::Recycled { seq },
            ReadError::Log(e) => FeedError::Failed(e.to_string()),
        }
    }
}

/// The visitor's message when the consumer stopped (told apart from a replay failure).
const STOPPED: &str = "\u{0}consumer stopped";

/// An engine following the log from a position, handing out each entry's events.
#[derive(Debug)]
pub struct Follower {
    storage: FsStorage,
    engine: Engine,
    replayer: Replayer,
    reader: LogReader,
    /// The first entry whose events are handed out.
    from: u64,
    notes: Vec<FeedNote>,
    events: Vec<FeedEvent>,
}

impl Follower {
    /// A follower of the log in `dir` whose first events are those of entry `from` (0: the entry
    /// after `durable`). `limits` are the server's (for a log replayed from its first entry).
    pub fn open(dir: &Path, limits: Limits, from: u64, durable: u64) -> Result<Follower, FeedError> {
        let from = if from == 0 { durable + 1 } else { from };
        if from > durable + 1 {
            return Err(FeedError::Ahead { from, durable });
        }
        let storage = FsStorage::open_read_only(dir).map_err(|e| FeedError::Failed(format!("{}: {e}", dir.display())))?;
        let (engine, reader) = start_before(&storage, limits, from)?;
        let mut follower = Follower { storage, engine, replayer: Replayer::new(), reader, from, notes: Vec::new(), events: Vec::new() };
        // Silently up to the entry before `from`.
        follower.read_through(from - 1, &mut |_, _| true)?;
        follower.engine.set_feed_notes(true);
        Ok(follower)
    }

    /// The follower's engine: the state after the last entry it read.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The next entry this follower reads.
    pub fn next_seq(&self) -> u64 {
        self.reader.next_seq()
    }

    /// Applies every entry through `last` (durable) and hands each entry's sequence number and
    /// events to `emit` (from entry `from` on; a checkpoint's list is empty); `emit` returning
    /// false stops with [`FeedError::Stopped`].
    pub fn read_through(&mut self, last: u64, emit: &mut dyn FnMut(u64, &[FeedEvent]) -> bool) -> Result<(), FeedError> {
        let Follower { storage, engine, replayer, reader, from, notes, events } = self;
        let outcome = reader.read_through(storage, last, &mut |entry| {
            let body = replayer.apply(engine, entry.seq, entry.body)?;
            if entry.seq < *from {
                return Ok(());
            }
            engine.take_feed_notes(notes);
            events.clear();
            if let Body::Batch { .. } = body {
                engine.feed_events(notes, replayer.commands(), replayer.results(), events);
            }
            if emit(entry.seq, events) {
                Ok(())
            } else {
                Err(STOPPED.to_string())
            }
        });
        match outcome {
            Err(ReadError::Log(bursar_wal::OpenError::Visitor(why))) if why == STOPPED => Err(FeedError::Stopped),
            other => Ok(other?),
        }
    }
}

/// The engine and reader to start from for a feed whose first entry is `from`: the newest
/// readable snapshot at or before `from - 1`, or the log's first entry.
fn start_before(storage: &FsStorage, limits: Limits, from: u64) -> Result<(Engine, LogReader), FeedError> {
    let snapshots = bursar_wal::list_snapshots(storage).map_err(|e| FeedError::Failed(e.to_string()))?;
    for seq in snapshots.into_iter().filter(|seq| *seq < from) {
        let Ok((header, payload)) = bursar_wal::read_snapshot(storage, seq) else { continue };
        let Ok(engine) = Engine::restore(&payload) else { continue };
        if let Ok(reader) = LogReader::after_snapshot(storage, &header) {
            return Ok((engine, reader));
        }
    }
    Ok((Engine::new(limits), LogReader::from_start(storage)?))
}
