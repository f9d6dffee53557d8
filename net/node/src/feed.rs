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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bursar_engine::batch::Body;
use bursar_engine::replay::Replayer;
use bursar_engine::{Engine, FeedEvent, FeedEventType, FeedNote, History, Limits};
use bursar_wal::{FsStorage, LogReader, ReadError};

/// Bytes of recent entries kept in memory for followers at most (about 64 full entries: half
/// a second of the heaviest load): a follower within them reads no disk.
pub const TAIL_BYTES_MAX: usize = 64 << 20;

/// Entry buffers kept for reuse at most (fresh 1 MiB allocations fault per 4 KiB page).
const TAIL_SPARES_MAX: usize = 16;

/// The log's durable end as the sequencer last published it, with a wake-up for waiters, and,
/// while any follower runs, the bodies of the latest durable entries (the live tail), so a
/// follower that keeps up reads them from memory; one that falls behind reads the log files.
#[derive(Debug, Default)]
pub struct Durable {
    seq: AtomicU64,
    closed: AtomicBool,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    followers: AtomicUsize,
    tail: Mutex<Tail>,
    /// The node's history store, read by followers restoring a slim snapshot.
    history: std::sync::OnceLock<Arc<dyn History>>,
}

/// The latest durable entries' bodies, oldest first, at most [`TAIL_BYTES_MAX`] bytes (or the
/// budget [`Durable::with_tail_bytes`] gave).
#[derive(Debug, Default)]
struct Tail {
    /// 0: [`TAIL_BYTES_MAX`].
    bytes_max: usize,
    entries: VecDeque<(u64, Arc<Vec<u8>>)>,
    bytes: usize,
    spares: Vec<Vec<u8>>,
}

/// A follower's registration: while one exists the node keeps the live tail.
#[derive(Debug)]
pub struct Following(Arc<Durable>);

impl Drop for Following {
    fn drop(&mut self) {
        if self.0.followers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut tail = self.0.tail.lock().unwrap_or_else(|e| e.into_inner());
            *tail = Tail { bytes_max: tail.bytes_max, ..Tail::default() };
        }
    }
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

    /// A durable end whose live tail keeps at most `bytes` of entries (tests of followers that
    /// fall behind it).
    pub fn with_tail_bytes(bytes: usize) -> Durable {
        let durable = Durable::default();
        durable.tail.lock().unwrap_or_else(|e| e.into_inner()).bytes_max = bytes.max(1);
        durable
    }

    /// Where followers read back what a slim snapshot left to the history store (the node's).
    pub fn set_history(&self, history: Arc<dyn History>) {
        let _ = self.history.set(history);
    }

    /// Whether a follower runs (the node then hands its entries to [`Durable::push_tail`]).
    pub fn tail_wanted(&self) -> bool {
        self.followers.load(Ordering::Relaxed) > 0
    }

    /// Registers a follower for as long as the registration lives.
    pub fn follow(self: &Arc<Self>) -> Following {
        self.followers.fetch_add(1, Ordering::AcqRel);
        Following(Arc::clone(self))
    }

    /// An empty buffer for an entry's body (a recycled one when there is one).
    pub fn spare_buffer(&self) -> Vec<u8> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner()).spares.pop().unwrap_or_default()
    }

    /// Keeps entry `seq`'s body (durable, or about to be published as durable) in the tail,
    /// dropping the oldest beyond [`TAIL_BYTES_MAX`].
    pub fn push_tail(&self, seq: u64, body: Vec<u8>) {
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        if !self.tail_wanted() {
            return;
        }
        tail.bytes += body.len();
        tail.entries.push_back((seq, Arc::new(body)));
        let bytes_max = if tail.bytes_max == 0 { TAIL_BYTES_MAX } else { tail.bytes_max };
        while tail.bytes > bytes_max && tail.entries.len() > 1 {
            let (_, old) = tail.entries.pop_front().expect("more than one entry");
            tail.bytes -= old.len();
            if let Ok(mut buffer) = Arc::try_unwrap(old) {
                if tail.spares.len() < TAIL_SPARES_MAX {
                    buffer.clear();
                    tail.spares.push(buffer);
                }
            }
        }
    }

    /// The oldest entry the tail holds.
    pub fn tail_oldest(&self) -> Option<u64> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner()).entries.front().map(|(seq, _)| *seq)
    }

    /// Entry `seq`'s body if the tail still holds it.
    pub fn tail_entry(&self, seq: u64) -> Option<Arc<Vec<u8>>> {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let at = tail.entries.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(Arc::clone(&tail.entries[at].1))
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

/// Starts a thread for a follower: it runs at idle priority (`SCHED_IDLE`), so it gives way to
/// the sequencer and the network; under full load it falls behind (and reads the log files),
/// never the other way round.
pub fn spawn_follower_thread(name: &str, run: impl FnOnce() + Send + 'static) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let _ = bursar_wal::background_thread();
        run();
    })
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
pub struct Follower {
    dir: PathBuf,
    engine: Engine,
    replayer: Replayer,
    /// Where the log files are read from when the tail in memory does not hold the next entry
    /// (None once entries came from memory: placed again when needed).
    reader: Option<LogReader>,
    next_seq: u64,
    /// The first entry whose events are handed out.
    from: u64,
    notes: Vec<FeedNote>,
    events: Vec<FeedEvent>,
    durable: Arc<Durable>,
    _following: Following,
    /// Which events to build (by type, ledger and accounts); the others only take their index.
    wanted: EventFilter,
}

/// A follower's filter: whether an event of this type, on this ledger, naming these accounts is wanted.
pub type EventFilter = Box<dyn Fn(FeedEventType, u32, [u128; 2]) -> bool + Send>;

impl core::fmt::Debug for Follower {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Follower").field("dir", &self.dir).field("next_seq", &self.next_seq).field("from", &self.from).finish()
    }
}

impl Follower {
    /// A follower of the log in `dir` whose first events are those of entry `from` (0: the entry
    /// after the durable end now). `limits` are the server's (for a log replayed from its first
    /// entry).
    pub fn open(dir: &Path, limits: Limits, from: u64, durable: &Arc<Durable>) -> Result<Follower, FeedError> {
        let following = durable.follow();
        let end = durable.seq();
        let from = if from == 0 { end + 1 } else { from };
        if from > end + 1 {
            return Err(FeedError::Ahead { from, durable: end });
        }
        let storage = read_only(dir)?;
        let (engine, reader) = start_before(&storage, limits, from, durable.history.get().cloned())?;
        let next_seq = reader.next_seq();
        let mut follower = Follower {
            dir: dir.to_path_buf(),
            engine,
            replayer: Replayer::new(),
            reader: Some(reader),
            next_seq,
            from,
            notes: Vec::new(),
            events: Vec::new(),
            durable: Arc::clone(durable),
            _following: following,
            wanted: Box::new(|_, _, _| true),
        };
        // Silently up to the entry before `from`.
        follower.read_through(from - 1, &mut |_, _| true)?;
        follower.engine.set_feed_notes(true);
        Ok(follower)
    }

    /// Builds only the events `wanted` lets through from now on (each event still takes its
    /// index, so positions do not depend on the filter).
    pub fn set_filter(&mut self, wanted: EventFilter) {
        self.wanted = wanted;
    }

    /// The follower's engine: the state after the last entry it read.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The next entry this follower reads.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Applies every entry through `last` (durable) and hands each entry's sequence number and
    /// events to `emit` (from entry `from` on; a checkpoint's list is empty); `emit` returning
    /// false stops with [`FeedError::Stopped`]. Entries still in the live tail come from memory,
    /// the others from the log files.
    pub fn read_through(&mut self, last: u64, emit: &mut dyn FnMut(u64, &[FeedEvent]) -> bool) -> Result<(), FeedError> {
        while self.next_seq <= last {
            if let Some(body) = self.durable.tail_entry(self.next_seq) {
                self.reader = None;
                let seq = self.next_seq;
                self.apply(seq, &body, emit).map_err(|why| if why == STOPPED { FeedError::Stopped } else { FeedError::Failed(why) })?;
                continue;
            }
            self.read_log(last, emit)?;
        }
        Ok(())
    }

    /// Reads entries from the log files: through `last`, or up to the first one the tail holds.
    fn read_log(&mut self, last: u64, emit: &mut dyn FnMut(u64, &[FeedEvent]) -> bool) -> Result<(), FeedError> {
        let storage = read_only(&self.dir)?;
        let mut reader = match self.reader.take() {
            Some(reader) if reader.next_seq() == self.next_seq => reader,
            _ => LogReader::at(&storage, self.next_seq)?,
        };
        // Up to the entry before the oldest the tail holds, if that comes before `last`.
        let upto = match self.durable.tail_oldest() {
            Some(oldest) if oldest > self.next_seq => last.min(oldest - 1),
            _ => last,
        };
        let outcome = reader.read_through(&storage, upto, &mut |entry| self.apply(entry.seq, entry.body, emit));
        self.reader = Some(reader);
        match outcome {
            Err(ReadError::Log(bursar_wal::OpenError::Visitor(why))) if why == STOPPED => Err(FeedError::Stopped),
            // Retention may recycle a segment while it is read (its bytes then change under the
            // reader): if the entry is gone from the log now, that is what happened.
            Err(ReadError::Log(e)) => match LogReader::at(&storage, self.next_seq) {
                Err(ReadError::Recycled { seq }) => Err(FeedError::Recycled { seq }),
                _ => Err(FeedError::Failed(e.to_string())),
            },
            other => Ok(other?),
        }
    }

    /// Applies one entry and hands out its events.
    fn apply(&mut self, seq: u64, body: &[u8], emit: &mut dyn FnMut(u64, &[FeedEvent]) -> bool) -> Result<(), String> {
        assert_eq!(seq, self.next_seq, "entries are applied in order");
        let applied = self.replayer.apply(&mut self.engine, seq, body)?;
        self.next_seq = seq + 1;
        if seq < self.from {
            return Ok(());
        }
        self.engine.take_feed_notes(&mut self.notes);
        self.events.clear();
        if let Body::Batch { .. } = applied {
            let (commands, results) = (self.replayer.commands(), self.replayer.results());
            self.engine.feed_events_wanted(&self.notes, commands, results, &*self.wanted, &mut self.events);
        }
        if emit(seq, &self.events) {
            Ok(())
        } else {
            Err(STOPPED.to_string())
        }
    }
}

fn read_only(dir: &Path) -> Result<FsStorage, FeedError> {
    FsStorage::open_read_only(dir).map_err(|e| FeedError::Failed(format!("{}: {e}", dir.display())))
}

/// The engine and reader to start from for a feed whose first entry is `from`: the newest
/// readable snapshot at or before `from - 1` (a slim one's oldest transfers read back from
/// `history`, left there), or the log's first entry.
fn start_before(
    storage: &FsStorage,
    limits: Limits,
    from: u64,
    history: Option<Arc<dyn History>>,
) -> Result<(Engine, LogReader), FeedError> {
    let snapshots = bursar_wal::list_snapshots(storage).map_err(|e| FeedError::Failed(e.to_string()))?;
    for seq in snapshots.into_iter().filter(|seq| *seq < from) {
        let Ok((header, payload)) = bursar_wal::read_snapshot(storage, seq) else { continue };
        let Ok(mut engine) = Engine::restore_from(&payload, bursar_engine::CHUNK_BITS, history.clone()) else { continue };
        // A follower writes no lineage images.
        engine.forget_image_notes();
        if let Ok(reader) = LogReader::after_snapshot(storage, &header) {
            return Ok((engine, reader));
        }
    }
    Ok((Engine::new(limits), LogReader::from_start(storage)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bursar_engine::{Account, Command, FeedEvent, Ledger, Limits, Transfer};
    use bursar_wal::{FsStorage, WalConfig};

    use super::{Durable, Follower};
    use crate::Node;

    fn batch(k: u128) -> Vec<Command> {
        (0..20u128)
            .map(|i| {
                let id = 1_000 + k * 20 + i;
                Command::Transfer(Transfer {
                    id,
                    debit_account_id: 1 + id % 3,
                    credit_account_id: 4,
                    amount: 1 + i,
                    ledger: 1,
                    code: 1,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// Follows a node through 60 batches, reading after every fourth, with a live tail of
    /// `tail_bytes`; returns every (entry, event) it was handed.
    fn follow(name: &str, tail_bytes: usize) -> Vec<(u64, FeedEvent)> {
        let dir = std::env::temp_dir().join(format!("bursar-follower-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = WalConfig { segment_size_bytes: 256 << 10, entry_body_max_bytes: 64 << 10, ..WalConfig::default() };
        let (mut node, _) = Node::open(FsStorage::open(&dir).unwrap(), config, Limits::default()).unwrap();
        let durable = Arc::new(Durable::with_tail_bytes(tail_bytes));
        node.set_feed_tail(Arc::clone(&durable));
        let mut setup = vec![Command::CreateLedger(Ledger {
            id: 1,
            currency: *b"EUR",
            scale: 2,
            settlement_account_id: 9,
            settlement_account_code: 1,
            ..Default::default()
        })];
        setup.extend((1..=4u128).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })));
        node.submit(1, &setup, &mut Vec::new()).unwrap();
        durable.publish(node.durable_seq());
        let mut follower = Follower::open(&dir, Limits::default(), 1, &durable).unwrap();
        let mut seen = Vec::new();
        for k in 0..60u128 {
            node.submit(10 + k as u64, &batch(k), &mut Vec::new()).unwrap();
            durable.publish(node.durable_seq());
            if k % 4 == 3 {
                follower
                    .read_through(durable.seq(), &mut |seq, events| {
                        seen.extend(events.iter().map(|e| (seq, *e)));
                        true
                    })
                    .unwrap();
            }
        }
        assert_eq!(follower.next_seq(), node.durable_seq() + 1);
        let _ = std::fs::remove_dir_all(&dir);
        seen
    }

    /// A follower whose live tail holds almost nothing reads the same events from the log files
    /// (placed again at each entry the tail has dropped) as one that reads every entry from it.
    #[test]
    fn a_follower_behind_the_live_tail_reads_the_log_and_misses_nothing() {
        let from_memory = follow("memory", super::TAIL_BYTES_MAX);
        let from_log = follow("log", 1);
        assert_eq!(from_memory.len(), 1 + 4 + 2 * 60 * 20, "every command and every transfer");
        assert_eq!(from_log, from_memory);
    }
}
