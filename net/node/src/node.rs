//! The durable state machine the sequencer thread owns: the engine behind the write-ahead log.
//!
//! `submit` appends the batch (its exact engine input) to the log, starts the sync, applies the
//! batch while the disk syncs (the log holds the commands, not the results), and returns the
//! results only once the sync and the durable mark are done: no reply before the batch is on
//! disk, and replay of the log applies exactly the batches that were acknowledged (plus possibly
//! ones whose sync finished just before a crash, which no client saw, whose retries then report
//! `exists`). A failed sync stops the node: the state it applied is thrown away with the process.
//! Recovery is the newest valid snapshot, then every later batch replayed.
//!
//! Every `checkpoint_every_entries` entries (and just before every snapshot) the node logs a
//! checkpoint: the engine's state digest (O(1), maintained incrementally) after every earlier
//! entry. It rides in the same sync as the next batch, so it costs no extra sync. Recovery and
//! `bursar replay` check each one: a replay that reaches a different state stops right there.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bursar_engine::batch::{self, Body, Checkpoint, Input};
use bursar_engine::{Command, Engine, Limits, ResultCode, SnapshotView, BATCH_COMMANDS_MAX};
use bursar_wal::{RecoveryReport, SnapshotRefused, Storage, Wal, WalConfig, WalError};

use bursar_wire::metrics::Metrics;

use crate::feed::Durable;
use crate::history::{HistoryAttached, Mover};

/// Why the node cannot go on or could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// More than `BATCH_COMMANDS_MAX` commands; nothing was logged or applied.
    BatchTooLarge {
        /// Commands in the batch.
        len: usize,
    },
    /// The log failed; nothing more is accepted until a restart recovers.
    Log(WalError),
    /// Recovery refused the log or a snapshot.
    Open(bursar_wal::OpenError),
    /// A transfer the batch can read could not be read back from the history store; nothing
    /// was logged or applied, and the node goes on (the batch can be retried).
    History(String),
    /// Limits no engine can hold ([`Limits::problem`] names why); nothing was logged.
    Limits(&'static str),
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NodeError::BatchTooLarge { len } => write!(f, "batch of {len} commands exceeds {BATCH_COMMANDS_MAX}"),
            NodeError::Log(e) => write!(f, "{e}"),
            NodeError::Open(e) => write!(f, "{e}"),
            NodeError::History(e) => write!(f, "history unreadable: {e}"),
            NodeError::Limits(why) => write!(f, "limits refused: {why}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<WalError> for NodeError {
    fn from(e: WalError) -> Self {
        NodeError::Log(e)
    }
}

/// Log entries between two checkpoints unless configured otherwise.
pub const CHECKPOINT_EVERY_ENTRIES_DEFAULT: u64 = 256;

/// Share of the time a background snapshot's writer thread works: it sleeps three times as long
/// as each megabyte took to encode, checksum and write. Measured under
/// `bursar bench` on 2 cores, a writer running flat out (about 1 GB of state) took a core from
/// the sequencer and the network for seconds and cut throughput by half until it finished; the
/// snapshot now takes about four times as long, which only delays the next one (they never
/// overlap). A snapshot stops pacing itself as soon as the node waits for it (`snapshot_end`,
/// as `snapshot` and a shutdown do), so nothing that waits is slowed down by it.
pub const SNAPSHOT_WRITER_DUTY_PERCENT: u32 = 25;

/// Keeps a background thread busy at most a given share of the time: after each piece of work
/// it sleeps in proportion to how long the work took.
#[derive(Debug)]
struct Pacer {
    duty_percent: u32,
    since: Instant,
    /// Set when someone waits for the work (a shutdown): from then on it runs flat out.
    hurry: Arc<AtomicBool>,
}

impl Pacer {
    fn new(duty_percent: u32, hurry: Arc<AtomicBool>) -> Pacer {
        Pacer { duty_percent: duty_percent.clamp(1, 100), since: Instant::now(), hurry }
    }

    /// Called after a piece of work: rests for its share, then starts timing the next.
    fn rest(&mut self) {
        if !self.hurry.load(Ordering::Relaxed) {
            let worked = self.since.elapsed();
            std::thread::sleep(worked * (100 - self.duty_percent) / self.duty_percent);
        }
        self.since = Instant::now();
    }
}

/// Engine + log. Single-threaded by design: the sequencer thread owns it.
#[derive(Debug)]
pub struct Node<S: Storage> {
    engine: Engine,
    wal: Wal<S>,
    checkpoint_every_entries: u64,
    entries_since_checkpoint: u64,
    /// Sequence number of the newest snapshot on disk at open, or of the last one begun since
    /// (0: none): the periodic snapshot counts from here, across restarts.
    snapshot_begun_seq: u64,
    metrics: Metrics,
    /// Sequence number of the snapshot the storage is writing in the background.
    snapshot_in_flight: Option<u64>,
    /// The state copy of the last snapshot, kept so the next one reuses its memory (as much as
    /// the accounts and the small tables; transfers are shared chunks).
    snapshot_copy: Arc<SnapshotView>,
    /// Whether the copy's transfers are caught up after every batch.
    snapshot_copy_current: bool,
    /// Tells the writer of the snapshot in flight to stop pacing itself.
    snapshot_hurry: Arc<AtomicBool>,
    /// Where entries' bodies go while a change-feed follower runs (the live tail), and those
    /// appended since the last sync.
    feed_tail: Option<Arc<Durable>>,
    captured: Vec<(u64, Vec<u8>)>,
    /// Where full chunks of transfers move once stored (none: every transfer stays in memory).
    history: Option<Mover>,
}

use bursar_engine::replay::Replayer;

impl<S: Storage> Node<S> {
    /// Recovers (or creates) the node on `storage`: newest valid snapshot, then every later
    /// batch replayed through the engine.
    pub fn open(storage: S, config: WalConfig, limits: Limits) -> Result<(Node<S>, RecoveryReport), NodeError> {
        Node::open_with_history(storage, config, limits, None).map(|(node, report, _)| (node, report))
    }

    /// As [`Node::open`], with full chunks of transfers and balance entries moving to `store`
    /// from now on (see
    /// [`crate::history`]): a slim snapshot's transfers are read back from it, the chunks the
    /// recovered state holds in memory are checked against it and repaired, and only the newest
    /// full chunks stay in memory; older ones are read back for queries and before each batch
    /// that names them. Says what the check found.
    pub fn open_with_history(
        storage: S,
        config: WalConfig,
        limits: Limits,
        store: Option<crate::history::Stores>,
    ) -> Result<(Node<S>, RecoveryReport, Option<HistoryAttached>), NodeError> {
        let chunk_len = 1 << bursar_engine::CHUNK_BITS;
        let history = store.as_ref().map(|stores| crate::history::file_history(stores, chunk_len));
        // The snapshot handler runs first (at most once), then the entry handler for each batch.
        let mut engine = Engine::new(limits);
        // The captures replayed from the log go into lineage images once their chunks are full.
        if store.is_some() {
            engine.keep_image_notes();
        }
        let engine = RefCell::new(engine);
        let mut replayer = Replayer::new();
        // The newest checkpoint replayed (a snapshot sits at one): checkpoints count from there.
        let checkpoint_seq = std::cell::Cell::new(0);
        let (wal, report) = bursar_wal::open(
            storage,
            config,
            &mut |header, payload| {
                // A snapshot whose transfers in the history store cannot be read back (or are not
                // its own) is skipped: an older one, or the log from its start, rebuilds the
                // state, and the store is repaired from it below. Only a recycled log stops here.
                *engine.borrow_mut() = match Engine::restore_from(payload, bursar_engine::CHUNK_BITS, history.clone()) {
                    Ok(restored) => restored,
                    Err(e @ bursar_engine::SnapshotError::History(_)) => return Err(SnapshotRefused::Skip(e.to_string())),
                    Err(e) => return Err(SnapshotRefused::Stop(format!("snapshot: {e}"))),
                };
                checkpoint_seq.set(header.seq);
                Ok(())
            },
            &mut |entry| {
                if let Body::Checkpoint(_) = replayer.apply(&mut engine.borrow_mut(), entry.seq, entry.body)? {
                    checkpoint_seq.set(entry.seq);
                }
                Ok(())
            },
        )
        .map_err(NodeError::Open)?;
        let mut engine = engine.into_inner();
        let (mover, attached) = match (store, history) {
            (Some(store), Some(history)) => {
                let (mover, attached) = Mover::attach(&mut engine, store, history).map_err(|e| NodeError::History(e.to_string()))?;
                (Some(mover), Some(attached))
            }
            _ => (None, None),
        };
        let node = Node {
            engine,
            wal,
            checkpoint_every_entries: CHECKPOINT_EVERY_ENTRIES_DEFAULT,
            entries_since_checkpoint: report.last_seq.saturating_sub(checkpoint_seq.get()),
            snapshot_begun_seq: report.snapshot.map_or(0, |header| header.seq),
            metrics: Metrics::default(),
            snapshot_in_flight: None,
            snapshot_copy: Arc::default(),
            snapshot_copy_current: false,
            snapshot_hurry: Arc::default(),
            feed_tail: None,
            captured: Vec::new(),
            history: mover,
        };
        Ok((node, report, attached))
    }

    /// Full chunks of transfers stored in the history store (0 without one).
    pub fn history_stored_chunks(&self) -> u64 {
        self.history.as_ref().map_or(0, Mover::stored_chunks)
    }

    /// Makes room for `accounts` accounts and `transfers` transfers in total, so the tables never
    /// grow (the account table rehashes on the sequencer thread, a stall; the transfer id index
    /// grows a little per insert, but every batch costs more meanwhile), and touches every page
    /// of it now ([`Engine::preallocate`]), and the same for the snapshot copy: first-touch faults
    /// were the sequencer's largest kernel cost under `bursar bench`. Start-up time and resident
    /// memory pay instead (per account and per transfer: `bursar start --help`, `--reserve-*`).
    pub fn reserve(&mut self, accounts: usize, transfers: usize) {
        // The snapshot copy needs as much again; touched now, the first snapshot's sequencer
        // stall is a memory copy, not a page fault per 4 KiB.
        self.make_room(accounts, transfers, true);
    }

    /// As [`Node::reserve`] without touching the memory: the tables (and the snapshot copy) get
    /// their capacity now, so they never grow by copying and rehashing on the sequencer thread,
    /// but their pages become resident only as they fill (a page fault per 4 KiB, spread over
    /// the run, instead of all of them at start). What a server on the defaults does.
    pub fn reserve_untouched(&mut self, accounts: usize, transfers: usize) {
        self.make_room(accounts, transfers, false);
    }

    /// Room for `accounts` and `transfers` in all, in the engine and the snapshot copy's
    /// accounts (its transfers share the engine's chunks); touched now when `touch`.
    fn make_room(&mut self, accounts: usize, transfers: usize, touch: bool) {
        let (held_accounts, held_transfers) = (self.engine.accounts().len(), self.engine.transfers().len());
        if let Some(copy) = Arc::get_mut(&mut self.snapshot_copy) {
            if touch {
                copy.preallocate(accounts.max(held_accounts));
            } else {
                copy.reserve(accounts.max(held_accounts));
            }
        }
        let (accounts, transfers) = (accounts.saturating_sub(held_accounts), transfers.saturating_sub(held_transfers));
        if touch {
            self.engine.preallocate(accounts, transfers);
        } else {
            self.engine.reserve(accounts, transfers);
        }
    }

    /// Reserves log space for `bytes` more of log entries now: that many bytes of segments are
    /// prepared (zero-filled, or recycled spares) before traffic, as TigerBeetle's `format`
    /// preallocates its data file, so the hot path never waits for or shares the CPU with
    /// zero-filling until it has written them. Each command takes at least 129 bytes of log (its record and kind byte), about 130 with
    /// entry headers.
    /// Returns the number of segments prepared now.
    pub fn reserve_log(&mut self, bytes: u64) -> Result<u64, NodeError> {
        let segments = bytes.div_ceil(self.wal.segment_size_bytes());
        Ok(self.wal.prepare_ahead(segments)?)
    }

    /// Keeps the snapshot copy's transfers up to date after every batch (see
    /// [`Engine::snapshot_view_catch_up`]), so a periodic snapshot stalls the sequencer only for
    /// the accounts and the open chunk of transfers. For servers that take periodic snapshots;
    /// the copy shares the engine's full chunks of transfers, so it costs a pointer per chunk.
    pub fn keep_snapshot_copy_current(&mut self, on: bool) {
        self.snapshot_copy_current = on;
    }

    /// Hands every entry's body, once durable, to `durable`'s live tail while a follower runs
    /// (a copy per entry then; nothing otherwise).
    pub fn set_feed_tail(&mut self, durable: Arc<Durable>) {
        if let Some(mover) = &self.history {
            durable.set_history(mover.history.clone());
        }
        self.feed_tail = Some(durable);
    }

    /// Appends an entry whose body `fill` writes, keeping a copy for the live tail when wanted.
    fn append_entry(&mut self, clock: u64, fill: impl FnOnce(&mut Vec<u8>)) -> Result<u64, NodeError> {
        let Some(tail) = self.feed_tail.as_ref().filter(|tail| tail.tail_wanted()) else {
            return Ok(self.wal.append_with(clock, fill)?);
        };
        let mut copy = tail.spare_buffer();
        let seq = self.wal.append_with(clock, |buffer| {
            let start = buffer.len();
            fill(buffer);
            copy.extend_from_slice(&buffer[start..]);
        })?;
        self.captured.push((seq, copy));
        Ok(seq)
    }

    /// The entries appended since the last sync are durable: into the live tail.
    fn publish_captured(&mut self) {
        if let Some(tail) = &self.feed_tail {
            for (seq, body) in self.captured.drain(..) {
                tail.push_tail(seq, body);
            }
        }
    }

    /// Logs a checkpoint every `entries` entries (at least 1).
    pub fn set_checkpoint_every_entries(&mut self, entries: u64) {
        self.checkpoint_every_entries = entries.max(1);
    }

    /// Enforces `limits` from now on, durably: a limits entry is logged and synced, then applied,
    /// as replay applies it, so the capacity chosen at one start holds at every later one and in
    /// the audit replay. Equal limits log nothing. Returns whether they changed.
    pub fn change_limits(&mut self, limits: Limits) -> Result<bool, NodeError> {
        if let Some(why) = limits.problem() {
            return Err(NodeError::Limits(why));
        }
        if *self.engine.limits() == limits {
            return Ok(false);
        }
        self.append_entry(self.engine.timestamp(), |buffer| batch::encode_limits(&limits, buffer))?;
        self.metrics.entries += 1;
        self.entries_since_checkpoint += 1;
        self.sync()?;
        self.engine.change_limits(limits);
        Ok(true)
    }

    /// Appends (without syncing) a checkpoint of the current state.
    fn append_checkpoint(&mut self) -> Result<u64, NodeError> {
        let checkpoint = Checkpoint { clock: self.engine.timestamp(), digest: self.engine.state_digest() };
        let seq = self.append_entry(checkpoint.clock, |buffer| batch::encode_checkpoint(&checkpoint, buffer))?;
        self.entries_since_checkpoint = 0;
        self.metrics.entries += 1;
        Ok(seq)
    }

    /// Logs the batch, applies it while the disk syncs, waits until it is durable, and only then
    /// returns one result per command: nothing leaves before the batch is on disk. After a log
    /// failure every later call fails too (restart to recover); the engine may then hold the
    /// failed batch's effects, which no one is told of, and which recovery does not have unless
    /// the disk does.
    pub fn submit(&mut self, now: u64, commands: &[Command], results: &mut Vec<ResultCode>) -> Result<u64, NodeError> {
        self.submit_entries(now, &[Input::single(commands)], results)
    }

    /// As [`Node::submit`] for several batches, each its own log entry, made durable by one sync
    /// (group commit of full-size requests: a request that waited behind another shares its
    /// sync instead of waiting for a second one). Results are appended batch after batch.
    /// Returns the sequence number of the last entry. A due checkpoint is logged before the
    /// first batch only: a checkpoint records the state after every entry before it, and the
    /// batches of this call are applied only once all are logged.
    pub fn submit_entries(&mut self, now: u64, batches: &[Input<'_>], results: &mut Vec<ResultCode>) -> Result<u64, NodeError> {
        if let Some(batch) = batches.iter().find(|batch| batch.commands.len() > BATCH_COMMANDS_MAX) {
            return Err(NodeError::BatchTooLarge { len: batch.commands.len() });
        }
        // Every entry must fit before the first is appended: a refusal halfway would leave
        // earlier entries of the group in the log's buffer that the engine never applied.
        let body_max = self.wal.entry_body_max_bytes();
        let body_len = |batch: &Input<'_>| batch::encoded_len_with_ends(batch.commands.len(), batch.request_ends.len());
        if let Some(batch) = batches.iter().find(|batch| body_len(batch) as u64 > body_max) {
            return Err(NodeError::Log(WalError::EntryTooLarge { len: body_len(batch), max: body_max as usize }));
        }
        if batches.is_empty() {
            return Ok(self.wal.synced_seq());
        }
        self.prefetch(batches)?;
        if self.entries_since_checkpoint >= self.checkpoint_every_entries {
            self.append_checkpoint()?;
        }
        let mut seq = 0;
        for input in batches {
            seq = self.append_entry(now, |buffer| batch::encode_requests(now, input.commands, input.request_ends, buffer))?;
            self.entries_since_checkpoint += 1;
        }
        // The log holds the commands, not their results, so applying can overlap the sync: a
        // crash before the sync returns loses batches no one was answered for.
        self.wal.sync_start()?;
        let applying = std::time::Instant::now();
        for input in batches {
            self.engine
                .execute_requests(now, input.commands, input.request_ends, results)
                .expect("the batch limit and request ends were checked before logging");
        }
        self.metrics.apply_ns_max = self.metrics.apply_ns_max.max(applying.elapsed().as_nanos() as u64);
        self.engine.settle_digest_appended();
        if self.snapshot_copy_current {
            // Unless the writer thread still holds the copy: then the next snapshot catches up.
            if let Some(copy) = Arc::get_mut(&mut self.snapshot_copy) {
                self.engine.snapshot_view_catch_up(copy, 2 * BATCH_COMMANDS_MAX);
            }
        }
        self.wal.sync_finish()?;
        if let Some(memory) = self.engine.take_retired_memory() {
            // Unmapping an index table of hundreds of MB takes tens of ms: not on this thread.
            // If no thread can be started, the closure and the table are dropped here.
            let _ = std::thread::Builder::new().name("bursar-free".into()).spawn(move || drop(memory));
        }
        self.publish_captured();
        if let Some(mover) = &mut self.history {
            mover.step(&mut self.engine);
        }
        self.metrics.record_sync(self.wal.last_sync_ns());
        self.metrics.entries += batches.len() as u64;
        self.metrics.batches += batches.len() as u64;
        self.metrics.commands += batches.iter().map(|b| b.commands.len() as u64).sum::<u64>();
        Ok(seq)
    }

    /// Reads back every evicted transfer `batches` can read, before anything is logged: a read
    /// that fails refuses the batches untouched.
    fn prefetch(&mut self, batches: &[Input<'_>]) -> Result<(), NodeError> {
        self.engine.prefetch_clear();
        for input in batches {
            let read = self.engine.prefetch_more(input.commands).map_err(NodeError::History)?;
            self.metrics.history_reads += read as u64;
        }
        Ok(())
    }

    /// Logs a checkpoint of the current state, then writes a snapshot of it at the checkpoint's
    /// sequence number, so replay can compare the snapshot with the log. Returns that number
    /// (0 for an empty log, which needs no snapshot). Waits for one already being written first.
    pub fn snapshot(&mut self) -> Result<u64, NodeError> {
        if let Some(Err(e)) = self.snapshot_end() {
            return Err(e);
        }
        // Waiting at once: `snapshot_end` lifts the writer's pacing.
        let seq = self.snapshot_begin()?;
        self.snapshot_end().unwrap_or(Ok(seq))
    }

    /// Starts a snapshot: logs a checkpoint, syncs, and copies the state's tables on this thread
    /// (the sequencer's only stall, at memory bandwidth), then hands the copy to the storage's
    /// writer thread, which encodes, checksums, writes and syncs it while the node goes on.
    /// Returns the snapshot's sequence number (0 for an empty log: nothing started). Refused
    /// while another is being written. The writer works at most
    /// [`SNAPSHOT_WRITER_DUTY_PERCENT`] of the time (see there).
    pub fn snapshot_begin(&mut self) -> Result<u64, NodeError> {
        if self.snapshot_in_flight.is_some() {
            return Err(NodeError::Log(WalError::Snapshot("a snapshot is still being written".into())));
        }
        if self.wal.synced_seq() == 0 {
            return Ok(0);
        }
        let started = Instant::now();
        self.append_checkpoint()?;
        let seq = self.sync()?;
        // Counted as begun even if the write cannot start: a failing snapshot is tried again
        // after the next interval, not at every batch.
        self.snapshot_begun_seq = seq;
        let hash = self.wal.last_hash();
        debug_assert_eq!(self.wal.next_seq(), seq + 1, "submit syncs every batch it logs");
        // The writer thread holds the other reference until it has encoded the copy; after that
        // the next snapshot copies into the same memory.
        if Arc::get_mut(&mut self.snapshot_copy).is_none() {
            self.snapshot_copy = Arc::default();
        }
        let copy = Arc::get_mut(&mut self.snapshot_copy).expect("the writer has let go of the copy");
        // With the history on disk, the evicted chunks (stored and synced) stay out of it; with
        // nothing evicted, the copy is the full one.
        self.engine.slim_snapshot_view_into(copy);
        let copy = Arc::clone(&self.snapshot_copy);
        let len = copy.len() as u64;
        self.snapshot_hurry = Arc::new(AtomicBool::new(false));
        let mut pace = Pacer::new(SNAPSHOT_WRITER_DUTY_PERCENT, Arc::clone(&self.snapshot_hurry));
        self.wal.write_snapshot_begin(seq, hash, len, move |sink| {
            copy.write_chunks(&mut |piece| {
                let written = sink(piece);
                pace.rest();
                written
            })
        })?;
        self.snapshot_in_flight = Some(seq);
        self.metrics.snapshot_ns_max = self.metrics.snapshot_ns_max.max(started.elapsed().as_nanos() as u64);
        Ok(seq)
    }

    /// The outcome of the snapshot being written, once its write has finished: `None` while it
    /// runs or if none was started. A failed snapshot loses nothing (the log holds every entry);
    /// it is counted in the metrics and the next one may be tried.
    pub fn snapshot_poll(&mut self) -> Option<Result<u64, NodeError>> {
        if self.snapshot_in_flight.is_some() && self.wal.snapshot_write_done() {
            self.snapshot_end()
        } else {
            None
        }
    }

    /// Waits, at most `limit`, for the history writer to store every full chunk handed to it,
    /// and evicts them: a stop does this before its final snapshot, which then leaves them out
    /// (a restart reads them from the store, not from the snapshot). Whether all were stored;
    /// true without a history store.
    pub fn history_drain(&mut self, limit: std::time::Duration) -> bool {
        self.history.as_mut().is_none_or(|mover| mover.drain(&mut self.engine, limit))
    }

    /// Log entries since the newest snapshot on disk when the node opened, or since the last one
    /// begun after that (whether it succeeded or not): what a periodic snapshot counts, so a
    /// server that restarts often still snapshots and its recovery time stays bounded.
    pub fn entries_since_snapshot(&self) -> u64 {
        self.wal.synced_seq().saturating_sub(self.snapshot_begun_seq)
    }

    /// Whether a snapshot is being written in the background.
    pub fn snapshot_writing(&self) -> bool {
        self.snapshot_in_flight.is_some()
    }

    /// Waits for the snapshot being written, if any, and returns its outcome.
    pub fn snapshot_end(&mut self) -> Option<Result<u64, NodeError>> {
        let seq = self.snapshot_in_flight.take()?;
        // Someone is waiting now (a shutdown, say): the writer stops pacing itself.
        self.snapshot_hurry.store(true, Ordering::Relaxed);
        let outcome = self.wal.write_snapshot_end().map(|()| seq).map_err(NodeError::Log);
        match outcome {
            Ok(_) => self.metrics.snapshots += 1,
            Err(_) => self.metrics.snapshots_failed += 1,
        }
        Some(outcome)
    }

    /// Syncs the log, timing it for the metrics.
    fn sync(&mut self) -> Result<u64, NodeError> {
        let seq = self.wal.sync()?;
        self.publish_captured();
        self.metrics.record_sync(self.wal.last_sync_ns());
        Ok(seq)
    }

    /// Counters and sync latencies since this node was opened.
    pub fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.history_evicted = (self.engine.evicted_chunks() * self.engine.transfer_chunk_len()) as u64;
        if let Some(mover) = &self.history {
            (metrics.history_waiting, metrics.history_failed) = (mover.waiting_chunks(), u64::from(mover.failed()));
            let ids = mover.ids_lookups();
            (metrics.ids_asked, metrics.ids_read_in_vain) = (ids.asked, ids.read_in_vain);
        }
        metrics
    }

    /// Where the node stands: its last durable entry and its state after it.
    pub fn status(&mut self) -> bursar_wire::protocol::Status {
        let seq = self.wal.synced_seq();
        assert_eq!(self.wal.next_seq(), seq + 1, "every appended entry is synced before the sequencer answers a query");
        bursar_wire::protocol::Status {
            seq,
            clock: self.engine.timestamp(),
            chain_hash: self.wal.last_hash(),
            state_digest: self.engine.state_digest(),
            ledgers: self.engine.ledgers().count() as u64,
            accounts: self.engine.accounts().len() as u64,
            transfers: self.engine.transfers().len() as u64,
        }
    }

    /// The last durable entry's sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.wal.synced_seq()
    }

    /// The engine, for queries.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The log.
    pub fn wal(&self) -> &Wal<S> {
        &self.wal
    }
}
