//! The writer: append entries, group commit with one sync, rotate preallocated segments, write snapshots.

use std::collections::VecDeque;

use crate::block::{BlockBuffer, BLOCK_BYTES};
use crate::files::{segment_name, snapshot_name, spare_name};
use crate::format::{self, EntryHeader, Hash, SnapshotHeader, ENTRY_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use crate::storage::Storage;
use crate::{Retention, WalConfig, WalError, SNAPSHOTS_KEPT, SPARE_SEGMENTS_MAX};

/// Groups whose last entry is at least this large are written asynchronously
/// ([`Storage::write_sync_begin`]: io_uring, or the sync thread) while this thread hashes that
/// entry (and, under [`Wal::sync_start`], the caller applies the batch); smaller groups are
/// written and synced in line, where the overlap would save less than the handoff costs.
const OVERLAP_HASH_MIN_BYTES: usize = 64 << 10;

/// Where the writer continues after recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
    pub(crate) last_hash: Hash,
    /// Size of the current segment file (an older run may have used another size).
    pub(crate) segment_size: u64,
    /// Every segment in the directory, oldest first, with its first entry's sequence number.
    pub(crate) segments: Vec<(u64, Option<u64>)>,
    /// Recycled segments waiting to be reused (file names).
    pub(crate) spares: Vec<String>,
    /// The generation of the next durable mark (see `mark.rs`).
    pub(crate) mark_generation: u64,
    /// The newest durable mark's sequence number (0: none).
    pub(crate) marked_seq: u64,
}

/// The write-ahead log. Single writer: the sequencer owns it.
#[derive(Debug)]
pub struct Wal<S: Storage> {
    storage: S,
    config: WalConfig,
    segment: u64,
    /// Size of the current segment file.
    segment_size: u64,
    /// Where the next entry goes in the current segment (pending bytes included).
    offset: u64,
    /// The current segment's bytes from `pending_offset` on: the written part of the block the
    /// next write starts in, then entries appended but not yet written. `pending_offset` is a
    /// multiple of `BLOCK_BYTES` (after a recovery that could not read the block's start, from
    /// the next block on), so every write can start at a block boundary and, padded with the
    /// empty slot to the block's end, go to disk with `O_DIRECT` from this aligned buffer.
    pending: BlockBuffer,
    pending_offset: u64,
    /// How many bytes at the front of `pending` are written already.
    pending_written: usize,
    /// A previous segment with written but unsynced bytes (after a rotation inside a group).
    unsynced_previous: Option<u64>,
    next_seq: u64,
    /// Chain hash of the last entry, once settled (see `unhashed`).
    last_hash: Hash,
    /// The last entry in `pending` whose chain hash is not computed yet: (start, length without
    /// padding). It is only needed by the next entry, so `sync` computes it while the disk syncs.
    unhashed: Option<(usize, usize)>,
    synced_seq: u64,
    /// The highest segment index that exists or is being prepared (see [`Wal::prepare_ahead`]):
    /// the next segment is ready or on its way when this is above `segment`.
    prepared_through: u64,
    failed: Option<String>,
    /// A sync runs on the storage's sync thread (between `sync_start` and `sync_finish`).
    sync_in_flight: bool,
    /// Every segment in the directory, oldest first, with its first entry's sequence number
    /// (None while it has none): what retention needs to know which ones a snapshot covers.
    segments: VecDeque<(u64, Option<u64>)>,
    /// Recycled segments waiting to be reused (file names), at most `SPARE_SEGMENTS_MAX`.
    spares: Vec<String>,
    /// When `sync_start` returned (None outside a sync).
    sync_started: Option<std::time::Instant>,
    /// Duration of the last sync (see `last_sync_ns`).
    last_sync_ns: u64,
    /// The generation of the next durable mark, and the sequence number the last one recorded.
    mark_generation: u64,
    marked_seq: u64,
}

impl<S: Storage> Wal<S> {
    pub(crate) fn resume(storage: S, config: WalConfig, at: Position) -> Wal<S> {
        let (pending, pending_offset) = tail_block(&storage, at.segment, at.offset, at.segment_size);
        Wal {
            storage,
            config,
            segment: at.segment,
            segment_size: at.segment_size,
            offset: at.offset,
            pending_written: pending.len(),
            pending,
            pending_offset,
            unsynced_previous: None,
            next_seq: at.next_seq,
            last_hash: at.last_hash,
            unhashed: None,
            synced_seq: at.next_seq - 1,
            prepared_through: at.segments.iter().map(|(index, _)| *index).max().unwrap_or(at.segment).max(at.segment),
            failed: None,
            segments: at.segments.into(),
            spares: at.spares,
            sync_in_flight: false,
            sync_started: None,
            last_sync_ns: 0,
            mark_generation: at.mark_generation,
            marked_seq: at.marked_seq,
        }
    }

    /// Appends one entry (buffered; durable after [`Wal::sync`]) and returns its sequence number.
    pub fn append(&mut self, timestamp: u64, body: &[u8]) -> Result<u64, WalError> {
        self.append_with(timestamp, |buffer| buffer.extend_from_slice(body))
    }

    /// Appends one entry whose body `fill` writes straight into the log's buffer (append only;
    /// what it appends is the body), saving the caller a copy of large batches.
    pub fn append_with(&mut self, timestamp: u64, fill: impl FnOnce(&mut Vec<u8>)) -> Result<u64, WalError> {
        self.check_usable()?;
        assert!(self.sync_started.is_none(), "no append between sync_start and sync_finish");
        self.settle_hash();
        let start = self.pending.len();
        self.pending.resize(start + ENTRY_HEADER_SIZE);
        fill(self.pending.vec().0);
        self.pending.realign();
        let body_len = self.pending.len() - start - ENTRY_HEADER_SIZE;
        if body_len > self.config.entry_body_max_bytes as usize {
            self.pending.truncate(start);
            return Err(WalError::EntryTooLarge { len: body_len, max: self.config.entry_body_max_bytes as usize });
        }
        let stored = format::stored_len(body_len) as u64;
        if self.offset + stored > self.segment_size {
            let entry = self.pending.bytes()[start..].to_vec();
            self.pending.truncate(start);
            self.rotate()?;
            self.pending.extend_from_slice(&entry);
        }
        let start = self.pending.len() - ENTRY_HEADER_SIZE - body_len;
        let header = EntryHeader {
            seq: self.next_seq,
            timestamp,
            synced_through: self.synced_seq,
            body_len: body_len as u32,
            flags: 0,
            prev_hash: self.last_hash,
        };
        let (vec, lead) = self.pending.vec();
        format::finish_entry(vec, lead + start, &header, self.segment);
        self.pending.realign();
        if self.offset == SEGMENT_HEADER_SIZE as u64 {
            // The segment's first entry: retention needs to know where each segment starts.
            match self.segments.iter_mut().rev().find(|(index, _)| *index == self.segment) {
                Some((_, first)) => *first = Some(header.seq),
                None => unreachable!("segment {} is missing from the log's list", self.segment),
            }
        }
        self.unhashed = Some((start, ENTRY_HEADER_SIZE + body_len));
        self.offset += stored;
        self.next_seq += 1;
        self.prepare_next()?;
        Ok(header.seq)
    }

    /// Writes every appended entry and, unless the policy is `UnsafeNoSync`, makes them durable
    /// with one sync per file touched. Returns the highest durable sequence number. After any
    /// failure the log refuses further work: it never retries and pretends.
    ///
    /// For a large group (see `OVERLAP_HASH_MIN_BYTES`) the write is submitted through io_uring
    /// (`O_DIRECT`), and the last entry's chain hash is computed while the device takes the
    /// bytes; then the write is reaped and `fdatasync` runs here: the hash costs no wall time
    /// (docs/wal-format.md, "Write path").
    pub fn sync(&mut self) -> Result<u64, WalError> {
        self.begin_sync()?;
        self.sync_finish()
    }

    /// The first half of [`Wal::sync`]: writes every appended entry or, for a large group,
    /// submits its write, so the caller can work (apply the batch, say) while the device takes
    /// the bytes. Nothing is durable until [`Wal::sync_finish`] returns, and no entry may be
    /// appended in between. A small group is written here and synced in `sync_finish`.
    pub fn sync_start(&mut self) -> Result<(), WalError> {
        self.begin_sync()
    }

    /// Writes the pending entries, or for a large group submits their write and sync
    /// ([`Storage::write_sync_begin`]), which `sync_finish` waits for.
    fn begin_sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        assert!(!self.sync_in_flight, "sync_start twice without sync_finish");
        let every_batch = self.config.sync == crate::SyncPolicy::EveryBatch;
        if every_batch {
            if let Err(e) = self.sync_previous() {
                return Err(self.fail("sync", e));
            }
        }
        let large = self.unhashed.is_some_and(|(_, len)| len >= OVERLAP_HASH_MIN_BYTES);
        if every_batch && large && self.pending_written < self.pending.len() {
            // Written (and synced) asynchronously while this thread hashes (and, under
            // `sync_start`, the caller applies the batch).
            let (offset, range) = self.pad_for_write();
            if let Err(e) = self.storage.write_sync_begin(&segment_name(self.segment), offset, self.pending.share(range)) {
                return Err(self.fail("write", e));
            }
            self.sync_in_flight = true;
        } else if let Err(e) = self.write_pending() {
            return Err(self.fail("write", e));
        }
        self.sync_started = Some(std::time::Instant::now());
        Ok(())
    }

    /// The second half of [`Wal::sync`]: computes the last entry's chain hash, waits until the
    /// entries written by [`Wal::sync_start`] are durable, and returns the highest durable
    /// sequence number.
    pub fn sync_finish(&mut self) -> Result<u64, WalError> {
        self.check_usable()?;
        assert!(self.sync_started.is_some(), "sync_finish without sync_start");
        if self.config.sync == crate::SyncPolicy::EveryBatch {
            let synced = if std::mem::take(&mut self.sync_in_flight) {
                // Hash the last entry on this thread while the sync thread writes and syncs.
                self.settle_hash();
                let synced = self.storage.sync_end().map(|()| self.storage.last_sync_ns());
                self.pending.truncate(self.pending_written); // the padding, written
                synced
            } else {
                let started = std::time::Instant::now();
                let name = segment_name(self.segment);
                self.settle_hash();
                self.storage.sync(&name).map(|()| Some(started.elapsed().as_nanos() as u64))
            };
            match synced {
                Ok(ns) => {
                    let waited = self.sync_started.map_or(0, |t| t.elapsed().as_nanos() as u64);
                    self.last_sync_ns = ns.unwrap_or(waited);
                }
                Err(e) => return Err(self.fail("sync", e)),
            }
        }
        self.sync_started = None;
        self.settle_hash();
        self.clear_pending();
        self.synced_seq = self.next_seq - 1;
        if self.config.sync == crate::SyncPolicy::EveryBatch && self.synced_seq > self.marked_seq {
            if let Err(e) = self.write_mark() {
                return Err(self.fail("durable mark", e));
            }
        }
        Ok(self.synced_seq)
    }

    /// Marks the entries recovery found (and synced) past the newest mark, before anything is
    /// appended: the previous run stopped between their sync and their mark. They are the log's
    /// now, and the next entries claim them durable; every entry must claim no more than a mark
    /// written before it (what recovery's `Tail::Vouched` relies on).
    pub(crate) fn mark_recovered(&mut self) -> std::io::Result<()> {
        if self.config.sync == crate::SyncPolicy::EveryBatch && self.synced_seq > self.marked_seq {
            self.write_mark()?;
        }
        Ok(())
    }

    /// Records durably that entries through `synced_seq` are on disk (see `mark.rs`): one slot
    /// of the mark file written and synced, before anything is acknowledged, so recovery never
    /// takes damage to an acknowledged entry for a torn write.
    fn write_mark(&mut self) -> std::io::Result<()> {
        let mark = crate::mark::Mark { generation: self.mark_generation, seq: self.synced_seq, hash: self.last_hash };
        self.storage.write_at(crate::mark::MARK_FILE_NAME, mark.slot_offset(), &mark.encode())?;
        self.storage.sync(crate::mark::MARK_FILE_NAME)?;
        self.mark_generation += 1;
        self.marked_seq = self.synced_seq;
        Ok(())
    }

    /// How long the last sync took, in nanoseconds, as the storage timed it where it wrote
    /// asynchronously, else as timed here. Through io_uring that is from the write's submission
    /// to the end of the `fdatasync`, so it includes what the caller did meanwhile (an upper
    /// bound on the disk's part); on the sync thread, the write and `fdatasync` there. 0 before
    /// the first sync and under `UnsafeNoSync`.
    pub fn last_sync_ns(&self) -> u64 {
        self.last_sync_ns
    }

    /// Writes a snapshot of state that includes entries through `seq` (which must be durable),
    /// given the chain hash of entry `seq`: temporary file, sync, rename, directory sync.
    pub fn write_snapshot(&mut self, seq: u64, chain_hash: Hash, state: &[u8]) -> Result<(), WalError> {
        self.check_usable()?;
        if seq > self.synced_seq {
            return Err(WalError::SnapshotAheadOfLog { seq, synced: self.synced_seq });
        }
        let bytes = format::encode_snapshot(&SnapshotHeader { seq, chain_hash }, state);
        self.storage.write_atomic(&snapshot_name(seq), &bytes).map_err(|e| WalError::Snapshot(e.to_string()))?;
        self.apply_retention()
    }

    /// As [`Wal::write_snapshot`], but the checksum and the write run on the storage's
    /// background thread while the caller goes on appending; [`Wal::write_snapshot_end`] returns
    /// the result. One at a time. The log's own writes are unaffected by it either way.
    /// `state` streams the state's `state_len` bytes on that thread too (the caller hands over a
    /// copy), in pieces passed to the sink it is given: the payload goes to the file as it is
    /// produced, never whole in memory, and the header with its checksum is written last, at the
    /// file's start, before the sync and the rename.
    pub fn write_snapshot_begin(
        &mut self,
        seq: u64,
        chain_hash: Hash,
        state_len: u64,
        state: impl FnOnce(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), WalError> {
        self.check_usable()?;
        if seq > self.synced_seq {
            return Err(WalError::SnapshotAheadOfLog { seq, synced: self.synced_seq });
        }
        let header = SnapshotHeader { seq, chain_hash };
        let build: crate::storage::AtomicWrite = Box::new(move |sink| {
            let mut head = format::SnapshotHead::new(&header, state_len);
            sink(&[0u8; format::SNAPSHOT_HEADER_SIZE])?; // the header's place, filled in last
            state(&mut |piece| {
                head.update(piece);
                sink(piece)
            })?;
            if !head.complete() {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the snapshot payload differs in length from its header"));
            }
            Ok(head.finish())
        });
        self.storage.write_atomic_begin(&snapshot_name(seq), build).map_err(|e| WalError::Snapshot(e.to_string()))
    }

    /// Whether the snapshot write started by [`Wal::write_snapshot_begin`] has finished.
    pub fn snapshot_write_done(&self) -> bool {
        self.storage.write_atomic_done()
    }

    /// Waits for the snapshot write started by [`Wal::write_snapshot_begin`] (Ok if none).
    pub fn write_snapshot_end(&mut self) -> Result<(), WalError> {
        self.storage.write_atomic_end().map_err(|e| WalError::Snapshot(e.to_string()))?;
        self.apply_retention()
    }

    /// After a snapshot is written: deletes the snapshots older than the `SNAPSHOTS_KEPT`
    /// newest (under either retention: the log, not old snapshots, is what an audit needs), and
    /// under [`Retention::RecycleBeforeSnapshots`] sets aside for reuse every segment whose
    /// entries all precede the oldest kept snapshot's entry (the segment holding that entry
    /// stays: recovery checks the snapshot's chain hash against it). A failure here is reported
    /// as a snapshot error; the log itself is unaffected (a file that should have gone is merely
    /// still there).
    fn apply_retention(&mut self) -> Result<(), WalError> {
        if self.failed.is_some() {
            return Ok(());
        }
        let retention = |e: std::io::Error| WalError::Snapshot(format!("the snapshot is written, but retention failed: {e}"));
        let snapshots = crate::files::snapshot_seqs(&self.storage).map_err(retention)?;
        if snapshots.len() < SNAPSHOTS_KEPT {
            return Ok(());
        }
        for old in &snapshots[SNAPSHOTS_KEPT..] {
            self.storage.remove(&snapshot_name(*old)).map_err(retention)?;
        }
        if self.config.retention != Retention::RecycleBeforeSnapshots {
            return Ok(());
        }
        let oldest_kept = snapshots[SNAPSHOTS_KEPT - 1];
        while let (Some(&(index, _)), Some(&(_, next_first))) = (self.segments.front(), self.segments.get(1)) {
            let covered = next_first.is_some_and(|first| first <= oldest_kept);
            if !covered || index == self.segment || self.unsynced_previous == Some(index) {
                break;
            }
            if self.spares.len() < SPARE_SEGMENTS_MAX && self.segment_len(&segment_name(index)) == Some(self.config.segment_size_bytes) {
                self.storage.rename(&segment_name(index), &spare_name(index)).map_err(retention)?;
                self.spares.push(spare_name(index));
            } else {
                self.storage.remove(&segment_name(index)).map_err(retention)?;
            }
            self.segments.pop_front();
        }
        Ok(())
    }

    /// The length of a file in storage, if it can be read.
    fn segment_len(&self, name: &str) -> Option<u64> {
        self.storage.read(name).ok().map(|contents| (*contents).as_ref().len() as u64)
    }

    /// Size of every new segment, in bytes (its configuration).
    pub fn segment_size_bytes(&self) -> u64 {
        self.config.segment_size_bytes
    }

    /// Largest entry body this log accepts, in bytes (its configuration).
    pub fn entry_body_max_bytes(&self) -> u64 {
        u64::from(self.config.entry_body_max_bytes)
    }

    /// Sequence number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest sequence number known durable.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// Chain hash of the last appended entry (`GENESIS_HASH` before the first).
    pub fn last_hash(&mut self) -> Hash {
        self.settle_hash();
        self.last_hash
    }

    /// Computes the chain hash of the last entry if it is still pending.
    fn settle_hash(&mut self) {
        if let Some((start, len)) = self.unhashed.take() {
            self.last_hash = format::entry_hash(&self.pending.bytes()[start..start + len]);
        }
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back, for example to restart on it.
    pub fn into_storage(self) -> S {
        self.storage
    }

    fn check_usable(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(why) => Err(WalError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, what: &str, e: std::io::Error) -> WalError {
        let why = format!("{what} of {} failed: {e}", segment_name(self.segment));
        self.failed = Some(why.clone());
        WalError::Failed(why)
    }

    /// Writes the pending bytes not written yet. The buffer is kept until the last entry's
    /// hash is settled; `sync` and `rotate` clear it.
    fn write_pending(&mut self) -> std::io::Result<()> {
        if self.pending_written == self.pending.len() {
            return Ok(());
        }
        let end = self.pending.len();
        let (offset, range) = self.pad_for_write();
        let written = self.storage.write_at(&segment_name(self.segment), offset, &self.pending.bytes()[range]);
        self.pending.truncate(end);
        written
    }

    /// Pads the pending entries for their write (see below), counts them as written, and
    /// returns where the write goes in the segment and which part of the buffer it is. The
    /// caller drops the padding (`truncate(pending_written)`) once the write is done.
    fn pad_for_write(&mut self) -> (u64, std::ops::Range<usize>) {
        // Every write ends with an empty slot (zeros where the next entry's header goes, as far as
        // the segment reaches): the end of the entries, even in a recycled segment whose old
        // bytes follow. The zeros go on to the end of that block, and the write starts at the
        // start of the block holding its first new byte (rewriting the written bytes before it
        // as they are), so that whole blocks go to disk straight from this aligned buffer
        // (`O_DIRECT`, see `FsStorage::write_at`). The next write overwrites the slot.
        let end = self.pending.len();
        debug_assert_eq!(self.pending_offset + end as u64, self.offset);
        let slot_end = (self.offset + ENTRY_HEADER_SIZE as u64).next_multiple_of(BLOCK_BYTES as u64).min(self.segment_size);
        let padded_end = (slot_end - self.pending_offset) as usize;
        let from = self.pending_written - self.pending_written % BLOCK_BYTES;
        self.pending.resize(padded_end);
        self.pending_written = end;
        (self.pending_offset + from as u64, from..padded_end)
    }

    /// Drops the written entries from the buffer, keeping the written part of the block the
    /// next write starts in.
    fn clear_pending(&mut self) {
        assert!(self.unhashed.is_none(), "an entry's hash is settled before its bytes are dropped");
        assert_eq!(self.pending_written, self.pending.len(), "only written bytes are dropped");
        let block_start = self.offset - self.offset % BLOCK_BYTES as u64;
        let drop = block_start.saturating_sub(self.pending_offset) as usize;
        self.pending.drop_front(drop);
        self.pending_offset += drop as u64;
        self.pending_written = self.pending.len();
    }

    /// Prepares the next `segments` segments now, waiting for each: log space reserved up
    /// front, as TigerBeetle's `format` preallocates its data file, so that writing them later
    /// costs no zero-filling (a fifth of all CPU under `bursar bench` on two cores). Segments
    /// that exist already count. Returns how many were prepared now. Under
    /// [`crate::Retention::KeepAll`] reserved segments stay on disk, empty, until the log reaches them.
    pub fn prepare_ahead(&mut self, segments: u64) -> Result<u64, WalError> {
        self.check_usable()?;
        let mut prepared = 0;
        while self.prepared_through < self.segment + segments {
            let index = self.prepared_through + 1;
            self.prepare_segment(index)?;
            if let Err(e) = self.storage.finish_prepare(&segment_name(index)) {
                return Err(self.fail("prepare", e));
            }
            prepared += 1;
        }
        Ok(prepared)
    }

    /// Starts preparing the next segment unless it exists or is being prepared already.
    fn prepare_next(&mut self) -> Result<(), WalError> {
        if self.prepared_through > self.segment {
            return Ok(());
        }
        self.prepare_segment(self.segment + 1)
    }

    /// Starts preparing segment `next`: from a recycled spare of the configured size if there
    /// is one (its header rewritten and its first slot emptied), else a fresh zero-filled file.
    fn prepare_segment(&mut self, next: u64) -> Result<(), WalError> {
        assert_eq!(next, self.prepared_through + 1, "segments are prepared in order");
        self.prepared_through = next;
        self.segments.push_back((next, None));
        let head = format::encode_segment_header(next, self.config.segment_size_bytes);
        while let Some(spare) = self.spares.pop() {
            if self.segment_len(&spare) != Some(self.config.segment_size_bytes) {
                // Recycled under another segment size: of no use now.
                if let Err(e) = self.storage.remove(&spare) {
                    return Err(self.fail("remove a spare segment", e));
                }
                continue;
            }
            let mut head_and_empty_slot = [0u8; SEGMENT_HEADER_SIZE + ENTRY_HEADER_SIZE];
            head_and_empty_slot[..SEGMENT_HEADER_SIZE].copy_from_slice(&head);
            if let Err(e) = self.storage.prepare_from(&spare, &segment_name(next), &head_and_empty_slot) {
                return Err(self.fail("prepare", e));
            }
            return Ok(());
        }
        if let Err(e) = self.storage.prepare(&segment_name(next), &head, self.config.segment_size_bytes) {
            return Err(self.fail("prepare", e));
        }
        Ok(())
    }

    /// Moves to the next segment: writes what is pending into the current one (synced with the
    /// group), waits for the spare segment, and continues there.
    fn rotate(&mut self) -> Result<(), WalError> {
        if let Err(e) = self.write_pending() {
            return Err(self.fail("write", e));
        }
        self.clear_pending();
        self.prepare_next()?;
        let next = self.segment + 1;
        if let Err(e) = self.storage.finish_prepare(&segment_name(next)) {
            return Err(self.fail("prepare", e));
        }
        if self.unsynced_previous.is_some() {
            // Two rotations inside one group: sync the older segment now rather than track many.
            if let Err(e) = self.sync_previous() {
                return Err(self.fail("sync", e));
            }
        }
        self.unsynced_previous = Some(self.segment);
        self.segment = next;
        self.segment_size = self.config.segment_size_bytes;
        self.offset = SEGMENT_HEADER_SIZE as u64;
        // The new segment's first block starts with its header, as prepared.
        self.pending.truncate(0);
        self.pending.extend_from_slice(&format::encode_segment_header(next, self.segment_size));
        self.pending_offset = 0;
        self.pending_written = self.pending.len();
        assert!(ENTRY_HEADER_SIZE as u64 + SEGMENT_HEADER_SIZE as u64 <= self.config.segment_size_bytes);
        Ok(())
    }

    fn sync_previous(&mut self) -> std::io::Result<()> {
        if let Some(previous) = self.unsynced_previous.take() {
            self.storage.sync(&segment_name(previous))?;
        }
        Ok(())
    }
}

/// The written bytes of segment `segment` from the start of the block holding `offset` up to
/// `offset`, and where they start: what the next write rewrites to start on a block boundary.
/// A segment's header is known without reading; elsewhere the bytes are read back, and if they
/// cannot be, the buffer starts at `offset` (writes then start unaligned until the next block).
fn tail_block<S: Storage>(storage: &S, segment: u64, offset: u64, segment_size: u64) -> (BlockBuffer, u64) {
    let mut buffer = BlockBuffer::with_capacity(1 << 20);
    let block_start = offset - offset % BLOCK_BYTES as u64;
    if offset == SEGMENT_HEADER_SIZE as u64 {
        buffer.extend_from_slice(&format::encode_segment_header(segment, segment_size));
        return (buffer, 0);
    }
    if let Ok(contents) = storage.read(&segment_name(segment)) {
        if let Some(prefix) = (*contents).as_ref().get(block_start as usize..offset as usize) {
            buffer.extend_from_slice(prefix);
            return (buffer, block_start);
        }
    }
    (buffer, offset)
}
