//! Recovery: pick the newest valid snapshot, verify every entry after it (checksum, sequence,
//! hash chain), tell a torn unsynced tail from corruption, truncate the former and refuse the latter.

use crate::files::{segment_name, snapshot_name};
use crate::format::{self, EntryHeader, Hash, Slot, SnapshotHeader, ENTRY_ALIGN, ENTRY_HEADER_SIZE, GENESIS_HASH, SEGMENT_HEADER_SIZE};
use crate::log::{Position, Wal};
use crate::mark::{Mark, MARK_FILE_BYTES, MARK_FILE_NAME};
use crate::storage::Storage;
use crate::{OpenError, WalConfig};

/// One verified entry, as recovery and replay hand it out.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    /// Sequence number.
    pub seq: u64,
    /// The writer's timestamp.
    pub timestamp: u64,
    /// The opaque body.
    pub body: &'a [u8],
    /// This entry's chain hash.
    pub hash: Hash,
    /// Segment index and byte offset, for reports.
    pub segment: u64,
    /// Byte offset within the segment.
    pub offset: u64,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot recovery started from, if any.
    pub snapshot: Option<SnapshotHeader>,
    /// Snapshots skipped, with the reason.
    pub skipped_snapshots: Vec<(String, String)>,
    /// Entries verified and handed to the caller (after the snapshot).
    pub entries_replayed: u64,
    /// Bytes of entries verified, whether replayed or not.
    pub bytes_verified: u64,
    /// The torn tail that was cut off: (segment, offset, first lost sequence number, bytes zeroed).
    pub truncated: Option<(String, u64, u64, u64)>,
    /// Temporary files of writes cut short by a crash (a snapshot or a segment being
    /// prepared), removed at open.
    pub removed_leftovers: Vec<String>,
    /// Sequence number of the last entry in the log.
    pub last_seq: u64,
    /// Its chain hash.
    pub last_hash: Hash,
    /// Whether the durable mark vouched for the end, so the bytes after it were not searched for
    /// an entry proving acknowledged data lost (`docs/wal-format.md`, "When the mark vouches for
    /// the end"). The audit's [`verify_log`] always searches.
    pub tail_vouched: bool,
}

/// Receives each verified entry; an `Err` stops recovery.
pub type EntryVisitor<'a> = dyn FnMut(EntryRef<'_>) -> Result<(), String> + 'a;
/// Receives the snapshot recovery starts from; it may refuse it (see [`SnapshotRefused`]).
pub type SnapshotVisitor<'a> = dyn FnMut(&SnapshotHeader, &[u8]) -> Result<(), SnapshotRefused> + 'a;

/// Why a [`SnapshotVisitor`] did not take the snapshot it was handed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRefused {
    /// This snapshot cannot be used, but the log may do without it: recovery reports it in
    /// `skipped_snapshots` and tries the next older snapshot, or the log's start.
    Skip(String),
    /// Recovery stops with this error.
    Stop(String),
}

impl From<String> for SnapshotRefused {
    fn from(why: String) -> SnapshotRefused {
        SnapshotRefused::Stop(why)
    }
}

/// Where a scan starts and what it expects there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    pub(crate) segment_pos: usize,
    pub(crate) offset: u64,
    pub(crate) anchor: Anchor,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Anchor {
    pub(crate) expect_seq: Option<u64>,
    pub(crate) prev_hash: Option<Hash>,
}

/// Where a scan stopped.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// After the last valid entry (or at the first slot if none).
    Clean { segment_pos: usize, offset: u64 },
    /// A damaged entry that no later intact entry vouches for: an unsynced tail.
    Torn { segment_pos: usize, offset: u64, seq: u64 },
}

pub(crate) struct Scan {
    pub(crate) end: End,
    pub(crate) last_seq: u64,
    pub(crate) last_hash: Hash,
    pub(crate) bytes: u64,
    /// Whether the durable mark vouched for the bytes after the end, so they were not searched.
    pub(crate) vouched: bool,
}

fn corrupt(segment: u64, offset: u64, seq: u64, reason: impl Into<String>) -> OpenError {
    OpenError::Corrupt { segment: segment_name(segment), offset, seq, reason: reason.into() }
}

fn io(what: &str, e: std::io::Error) -> OpenError {
    OpenError::Io(format!("{what}: {e}"))
}

/// Segment indexes (contiguous; from 0 unless retention recycled the oldest) and snapshot
/// sequence numbers (newest first) in storage.
pub(crate) fn list<S: Storage>(storage: &S) -> Result<(Vec<u64>, Vec<u64>), OpenError> {
    let segments = crate::files::segment_indexes(storage).map_err(|e| io("list", e))?;
    let snapshots = crate::files::snapshot_seqs(storage).map_err(|e| io("list", e))?;
    let first = segments.first().copied().unwrap_or(0);
    for (i, index) in segments.iter().enumerate() {
        let expected = first + i as u64;
        if *index != expected {
            let why = format!(
                "segment {expected} is missing ({} not found between {} and {}): the log has a gap; restore the file",
                segment_name(expected),
                segment_name(expected - 1),
                segment_name(*index)
            );
            return Err(corrupt(expected, 0, 0, why));
        }
    }
    Ok((segments, snapshots))
}

/// Recycled segments waiting for reuse (file names).
fn list_spares<S: Storage>(storage: &S) -> Result<Vec<String>, OpenError> {
    crate::files::spare_names(storage).map_err(|e| io("list", e))
}

/// Removes the temporary files (`*.tmp`) of atomic writes a crash cut short: no file of the log
/// is ever read under such a name, and a crash loop would otherwise fill the disk with them.
fn remove_leftovers<S: Storage>(storage: &mut S) -> Result<Vec<String>, OpenError> {
    let names = storage.list().map_err(|e| io("list", e))?;
    let leftovers: Vec<String> = names.into_iter().filter(|n| n.ends_with(".tmp")).collect();
    for name in &leftovers {
        storage.remove(name).map_err(|e| io(name, e))?;
    }
    Ok(leftovers)
}

/// The newest valid durable mark (see `mark.rs`), if the directory has a mark file with one,
/// and what the scan may take on its word: [`Tail::Vouched`] when every slot of the ring is
/// whole, else [`Tail::Search`].
fn read_mark<S: Storage>(storage: &S) -> Result<(Option<Mark>, Tail), OpenError> {
    if !storage.list().map_err(|e| io("list", e))?.iter().any(|n| n == MARK_FILE_NAME) {
        return Ok((None, Tail::Search));
    }
    let contents = storage.read(MARK_FILE_NAME).map_err(|e| io(MARK_FILE_NAME, e))?;
    let file: &[u8] = (*contents).as_ref();
    let mark = crate::mark::newest(file);
    let tail = match mark {
        Some(mark) if crate::mark::ring_whole(file, &mark) => Tail::Vouched { mark_seq: mark.seq },
        _ => Tail::Search,
    };
    Ok((mark, tail))
}

/// What the scan does with the bytes after the end of the entries (a segment's empty slot, or a
/// damaged one): search them for an intact entry that proves acknowledged data lost there
/// ([`voucher`]), or take the durable mark's word that none exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Search: the audit's full check, readers, and a log whose mark ring is missing or damaged.
    Search,
    /// A whole mark ring vouches for entries through `mark_seq`. An entry is appended only after
    /// the mark of everything it claims durable was synced (`Wal::sync_finish`), so an entry
    /// after the end claiming the next one durable means a mark at or past it was written:
    /// [`check_mark`] refuses an end below the mark, and a whole ring hides no newer mark. Under
    /// `SyncPolicy::UnsafeNoSync` no marks are written; an entry claiming more than the mark
    /// shows that, and the scan searches after it.
    Vouched { mark_seq: u64 },
}

impl Tail {
    /// Whether the search after an end can be skipped when the last intact entry before it
    /// claimed entries through `synced_through` durable.
    fn vouched(self, synced_through: u64) -> bool {
        matches!(self, Tail::Vouched { mark_seq } if synced_through <= mark_seq)
    }
}

/// Creates the mark file, zeroed, if it is not there (a new log, or one written before marks).
fn create_mark_file<S: Storage>(storage: &mut S) -> Result<(), OpenError> {
    if storage.list().map_err(|e| io("list", e))?.iter().any(|n| n == MARK_FILE_NAME) {
        return Ok(());
    }
    storage.prepare(MARK_FILE_NAME, &[], MARK_FILE_BYTES).map_err(|e| io(MARK_FILE_NAME, e))?;
    storage.finish_prepare(MARK_FILE_NAME).map_err(|e| io(MARK_FILE_NAME, e))
}

/// Refuses a log whose intact entries end before the durable mark: an entry that was durable
/// (and may have been acknowledged) is damaged or missing, and cutting it would lose it.
fn check_mark(segments: &[u64], scan: &Scan, mark: Option<&Mark>) -> Result<(), OpenError> {
    let Some(mark) = mark else { return Ok(()) };
    let (segment_pos, offset, first_missing) = match scan.end {
        End::Torn { segment_pos, offset, seq } => (segment_pos, offset, seq),
        End::Clean { segment_pos, offset } => (segment_pos, offset, scan.last_seq + 1),
    };
    let name = segment_name(segments[segment_pos]);
    if first_missing <= mark.seq {
        let what = match scan.end {
            End::Torn { .. } => "it is damaged",
            End::Clean { .. } => "the log ends before it (a segment deleted or cut short)",
        };
        return Err(lost_durable(&name, offset, first_missing, mark, what));
    }
    if scan.last_seq == mark.seq && scan.last_hash != mark.hash {
        return Err(corrupt(
            segments[segment_pos],
            offset,
            mark.seq,
            "the chain hash of the last entry differs from the durable mark's: the log was rewritten",
        ));
    }
    Ok(())
}

/// The refusal for a durable entry that is damaged or missing.
fn lost_durable(segment: &str, offset: u64, seq: u64, mark: &Mark, what: &str) -> OpenError {
    OpenError::Corrupt {
        segment: segment.to_string(),
        offset,
        seq,
        reason: format!(
            "entry {seq} was durable and may have been acknowledged (the durable mark vouches for entries through {}), but {what}; \
             refusing to start rather than lose it: restore the data directory from a backup or a replica",
            mark.seq
        ),
    }
}

/// The error for a log whose oldest segments were recycled when no snapshot covers them, naming
/// the snapshots `skipped` and why.
fn start_recycled(first: u64, skipped: &[(String, String)]) -> OpenError {
    let why: Vec<String> = skipped.iter().map(|(name, why)| format!("{name}: {why}")).collect();
    corrupt(
        first,
        0,
        0,
        format!(
            "the log starts at {} (retention recycled the segments before it) and no valid snapshot covers \
             the entries before it{}",
            segment_name(first),
            if why.is_empty() { String::new() } else { format!(" (skipped: {})", why.join("; ")) }
        ),
    )
}

/// Intact entries of segment `index` (checksums valid for this segment) at any aligned offset
/// from `from` on that were appended when entry `synced` was durable (0: all of them): what may
/// follow the end of the entries is zeros, a recycled segment's past (which fails this segment's
/// checksums) or the leftovers of an unacknowledged write.
///
/// The search runs forward (a cold segment is read from the disk as it goes, and the kernel reads
/// ahead of a forward scan) for the entry magic with `memchr`'s vectorised search, and looks at
/// the claimed `synced_through` before checking anything else: a recycled segment's past is not
/// zeros, and checking a whole header at each of its aligned offsets, and the checksum of each of
/// its entries, was most of a restart's scan of it (bench/README.md).
fn later_entries(data: &[u8], index: u64, from: usize, synced: u64) -> impl Iterator<Item = (usize, EntryHeader)> + '_ {
    let from = from.next_multiple_of(ENTRY_ALIGN).min(data.len());
    memchr::memmem::find_iter(&data[from..], &format::ENTRY_MAGIC)
        .map(move |i| from + i)
        .filter(|at| at % ENTRY_ALIGN == 0)
        .filter(move |&at| format::claimed_synced_through(data, at).is_some_and(|claimed| claimed >= synced))
        .filter_map(move |at| match format::read_entry(data, at, index) {
            Slot::Valid(h) => Some((at, h)),
            _ => None,
        })
}

/// The first intact entry of segment `index` at or after `from` that was appended when entry
/// `seq` was already durable: proof that acknowledged data before it is damaged.
fn voucher(data: &[u8], index: u64, from: usize, seq: u64) -> Option<EntryHeader> {
    later_entries(data, index, from, seq).map(|(_, h)| h).next()
}

/// Entries whose chain hashes recovery computes ahead of its checks at most, and bytes of them:
/// one chunk, hashed in two halves on two threads (this thread and a scoped helper) when it is
/// large enough to pay for the helper, then consumed in order by the checks. BLAKE3 is most of
/// recovery's CPU (48% of a run of one-record entries), and each entry's hash depends only on
/// its own bytes, so the hashes of a stretch of entries can be computed in any order.
const HASH_AHEAD_ENTRIES_MAX: usize = 16 << 10;
/// See [`HASH_AHEAD_ENTRIES_MAX`].
const HASH_AHEAD_BYTES_MAX: usize = 16 << 20;
/// Bytes of entries below which a chunk is hashed on this thread alone: a scoped thread costs
/// tens of microseconds to start, the hashing of 256 KiB about 100.
const HASH_SPLIT_MIN_BYTES: usize = 256 << 10;

/// Entries read and hashed ahead of the scan's checks: offset, header (checksum verified), chain hash.
type HashedRun = std::collections::VecDeque<(usize, EntryHeader, Hash)>;

/// The run of intact entries of `segment` starting with `first`, the entry at `offset` (read
/// already), up to [`HASH_AHEAD_ENTRIES_MAX`] of them or [`HASH_AHEAD_BYTES_MAX`] bytes, in order,
/// each with its chain hash. Only checksums are checked here; the scan checks everything else as
/// it consumes them, without reading them again.
fn hash_ahead(bytes: &[u8], offset: usize, first: EntryHeader, segment: u64) -> HashedRun {
    let mut entries = vec![(offset, first)];
    let (mut at, mut total) = (offset + first.stored_len(), first.stored_len());
    while entries.len() < HASH_AHEAD_ENTRIES_MAX && total < HASH_AHEAD_BYTES_MAX {
        let Slot::Valid(h) = format::read_entry(bytes, at, segment) else { break };
        entries.push((at, h));
        at += h.stored_len();
        total += h.stored_len();
    }
    let hash = |run: &[(usize, EntryHeader)]| run.iter().map(|&(at, h)| (at, h, format::hash_at(bytes, at, &h))).collect::<Vec<_>>();
    if total < HASH_SPLIT_MIN_BYTES || entries.len() < 2 {
        return hash(&entries).into();
    }
    // Split where half the bytes are, so both threads hash about as much.
    let (mut half, mut sum) = (0, 0);
    while half < entries.len() - 1 && sum < total / 2 {
        sum += entries[half].1.stored_len();
        half += 1;
    }
    let (first, second) = entries.split_at(half);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().name("wal-hash".into()).spawn_scoped(scope, || hash(second));
        let mut hashes = hash(first);
        match helper {
            Ok(helper) => hashes.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
            Err(_) => hashes.extend(hash(second)), // no thread to be had: hash it here
        }
        hashes.into()
    })
}

/// How far recovery's scan asks the storage to read ahead of itself, in bytes: another window
/// whenever it is half way through the last. Measured on this machine (cold page cache, 2 GiB of
/// 1 MiB entries, three alternating tries each): 2.75-3.81 s with it, 3.71-3.98 s without.
const READ_AHEAD_BYTES: usize = 32 << 20;

/// A segment's bytes, its header checked (it must name this segment and its size).
fn read_segment<S: Storage>(storage: &S, segment: u64, last_seq: u64) -> Result<crate::storage::Contents, OpenError> {
    let contents = storage.read(&segment_name(segment)).map_err(|e| io(&segment_name(segment), e))?;
    let bytes: &[u8] = (*contents).as_ref();
    match format::decode_segment_header(bytes) {
        Some((index, size)) if index == segment && size == bytes.len() as u64 => Ok(contents),
        _ => Err(corrupt(segment, 0, last_seq + 1, "segment header is damaged or names another segment")),
    }
}

/// An intact entry's place in the log: the sequence number expected, the previous entry's hash,
/// and no empty segment before it.
fn check_link(
    h: &EntryHeader,
    expected: u64,
    prev: Option<Hash>,
    seen_empty: Option<u64>,
    segment: u64,
    offset: usize,
) -> Result<(), OpenError> {
    if h.seq != expected {
        return Err(corrupt(segment, offset as u64, expected, format!("sequence gap: expected {expected}, found {}", h.seq)));
    }
    if let Some(p) = prev.filter(|p| *p != h.prev_hash) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        return Err(corrupt(
            segment,
            offset as u64,
            h.seq,
            format!(
                "hash chain broken: expected previous-entry hash {} (entry {} as stored), found {} \
                 (entry {} was altered, or this entry forged)",
                hex(&p),
                h.seq - 1,
                hex(&h.prev_hash),
                h.seq - 1
            ),
        ));
    }
    if let Some(empty) = seen_empty {
        return Err(corrupt(empty, SEGMENT_HEADER_SIZE as u64, h.seq, "an empty segment lies between segments with entries"));
    }
    Ok(())
}

/// The end of a segment's entries. An intact entry after it that was appended when the next one
/// was already durable means acknowledged data is damaged (its header zeroed, say); anything
/// else there is no entry of the log.
fn check_empty_slot(bytes: &[u8], segment: u64, offset: usize, last_seq: u64) -> Result<(), OpenError> {
    match voucher(bytes, segment, offset + ENTRY_ALIGN, last_seq + 1) {
        Some(h) => Err(corrupt(
            segment,
            offset as u64,
            last_seq + 1,
            format!(
                "entry {} is missing (an empty slot), but entry {} after it was written after {} was durable",
                last_seq + 1,
                h.seq,
                last_seq + 1
            ),
        )),
        None => Ok(()),
    }
}

/// Verifies entries from `segments[start_pos]` at `offset` onwards, calling `visit` for those
/// with `seq > visit_after`, and stops early after entry `stop_at` if given.
pub(crate) fn scan<S: Storage>(
    storage: &S,
    segments: &[u64],
    start: Start,
    visit_after: u64,
    stop_at: Option<u64>,
    tail: Tail,
    visit: &mut EntryVisitor<'_>,
) -> Result<Scan, OpenError> {
    let Start { segment_pos: start_pos, offset: start_offset, anchor } = start;
    let mut expect = anchor.expect_seq;
    let mut prev = anchor.prev_hash;
    let mut last_seq = expect.map_or(0, |e| e - 1);
    let mut last_hash = prev.unwrap_or(GENESIS_HASH);
    let mut bytes_verified = 0u64;
    let mut end = End::Clean { segment_pos: start_pos, offset: start_offset };
    let mut seen_empty_segment: Option<u64> = None;
    let mut claimed = 0; // the last intact entry's synced_through
    for (pos, &segment) in segments.iter().enumerate().skip(start_pos) {
        let contents = read_segment(storage, segment, last_seq)?;
        let bytes: &[u8] = (*contents).as_ref();
        let mut offset = if pos == start_pos { start_offset as usize } else { SEGMENT_HEADER_SIZE };
        let mut entries_here = 0u64;
        let mut read_ahead_to = offset;
        let mut hashed = HashedRun::new();
        loop {
            if offset + READ_AHEAD_BYTES / 2 >= read_ahead_to && read_ahead_to < bytes.len() {
                storage.read_ahead(&segment_name(segment), read_ahead_to as u64, READ_AHEAD_BYTES as u64);
                read_ahead_to += READ_AHEAD_BYTES;
            }
            let slot = match hashed.front() {
                Some(&(at, h, _)) if at == offset => Slot::Valid(h), // read by hash_ahead
                _ => format::read_entry(bytes, offset, segment),
            };
            match slot {
                Slot::Valid(h) => {
                    let expected = expect.unwrap_or(h.seq);
                    let crossed_segment = offset == SEGMENT_HEADER_SIZE && pos > start_pos;
                    if h.seq > expected && crossed_segment && h.synced_through < expected {
                        // The group that ended the previous segment and began this one was cut:
                        // this entry says `expected` was never durable, so it is a torn tail.
                        let End::Clean { segment_pos, offset } = end else { unreachable!("scanning continues only after a clean end") };
                        let at = Torn { pos: segment_pos, offset, seq: expected, search: !tail.vouched(claimed) };
                        return torn_or_corrupt(storage, segments, at, bytes_verified, last_hash);
                    }
                    check_link(&h, expected, prev, seen_empty_segment, segment, offset)?;
                    if hashed.front().is_none_or(|(at, ..)| *at != offset) {
                        hashed = hash_ahead(bytes, offset, h, segment);
                    }
                    let hash = match hashed.pop_front() {
                        Some((at, _, hash)) if at == offset => hash,
                        _ => unreachable!("hash_ahead starts with the valid entry at {offset}"),
                    };
                    if h.seq > visit_after {
                        let body = format::entry_body(bytes, offset, &h);
                        visit(EntryRef { seq: h.seq, timestamp: h.timestamp, body, hash, segment, offset: offset as u64 })
                            .map_err(OpenError::Visitor)?;
                    }
                    expect = Some(h.seq + 1);
                    prev = Some(hash);
                    last_seq = h.seq;
                    last_hash = hash;
                    claimed = h.synced_through;
                    entries_here += 1;
                    offset += h.stored_len();
                    bytes_verified += h.stored_len() as u64;
                    end = End::Clean { segment_pos: pos, offset: offset as u64 };
                    if stop_at == Some(h.seq) {
                        return Ok(Scan { end, last_seq, last_hash, bytes: bytes_verified, vouched: false });
                    }
                }
                Slot::Empty => {
                    if !tail.vouched(claimed) {
                        check_empty_slot(bytes, segment, offset, last_seq)?;
                    }
                    break;
                }
                Slot::Invalid => {
                    if expect.is_none() {
                        return Err(corrupt(segment, offset as u64, 0, "the first entry to verify is damaged"));
                    }
                    let at = Torn { pos, offset: offset as u64, seq: last_seq + 1, search: !tail.vouched(claimed) };
                    return torn_or_corrupt(storage, segments, at, bytes_verified, last_hash);
                }
            }
        }
        if entries_here == 0 && seen_empty_segment.is_none() && pos > start_pos {
            seen_empty_segment = Some(segment);
        }
    }
    Ok(Scan { end, last_seq, last_hash, bytes: bytes_verified, vouched: tail.vouched(claimed) })
}

/// A damaged slot: at `offset` of `segments[pos]`, where entry `seq` was expected; `search`
/// unless the durable mark vouches for what follows ([`Tail::Vouched`]).
struct Torn {
    pos: usize,
    offset: u64,
    seq: u64,
    search: bool,
}

/// A damaged slot. If any intact entry after it was appended when the entry expected there was
/// already durable, acknowledged data is damaged: corruption. Otherwise everything from here on
/// was never acknowledged: a torn tail.
fn torn_or_corrupt<S: Storage>(storage: &S, segments: &[u64], at: Torn, bytes: u64, last_hash: Hash) -> Result<Scan, OpenError> {
    let Torn { pos, offset, seq, search } = at;
    let searched = if search { &segments[pos..] } else { &[] };
    for (later_pos, &segment) in searched.iter().enumerate().map(|(i, s)| (pos + i, s)) {
        let contents = storage.read(&segment_name(segment)).map_err(|e| io(&segment_name(segment), e))?;
        let from = if later_pos == pos { offset as usize + ENTRY_ALIGN } else { SEGMENT_HEADER_SIZE };
        if let Some(h) = voucher((*contents).as_ref(), segment, from, seq) {
            return Err(corrupt(
                segments[pos],
                offset,
                seq,
                format!("entry {seq} is damaged, but entry {} in {} was written after {seq} was durable", h.seq, segment_name(segment)),
            ));
        }
    }
    Ok(Scan { end: End::Torn { segment_pos: pos, offset, seq }, last_seq: seq - 1, last_hash, bytes, vouched: !search })
}

/// Cuts the log off at the torn entry and syncs: zeroes, from it on, the torn entry's slot and
/// every intact entry of the unacknowledged tail (so none can ever be read back as part of the
/// log), in its segment and the later ones. Other bytes there (zeros, a recycled segment's past,
/// torn garbage) fail every check and stay. Returns bytes zeroed.
fn truncate<S: Storage>(storage: &mut S, segments: &[u64], pos: usize, offset: u64) -> Result<u64, OpenError> {
    const CHUNK_BYTES: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK_BYTES];
    let mut zeroed = 0;
    for (p, &segment) in segments.iter().enumerate().skip(pos) {
        let name = segment_name(segment);
        let from = if p == pos { offset as usize } else { SEGMENT_HEADER_SIZE };
        let end = {
            let contents = storage.read(&name).map_err(|e| io(&name, e))?;
            let data: &[u8] = (*contents).as_ref();
            let slot_end = (from + ENTRY_HEADER_SIZE).min(data.len());
            let tail_end = later_entries(data, segment, from, 0).map(|(at, h)| at + h.stored_len()).max().unwrap_or(0);
            let end = slot_end.max(tail_end).min(data.len());
            if data.get(from..end).is_none_or(|range| range.iter().all(|b| *b == 0)) {
                continue;
            }
            end
        };
        let mut at = from;
        while at < end {
            let n = (end - at).min(CHUNK_BYTES);
            storage.write_at(&name, at as u64, &zeros[..n]).map_err(|e| io(&name, e))?;
            at += n;
        }
        storage.sync(&name).map_err(|e| io(&name, e))?;
        zeroed += (end - from) as u64;
    }
    Ok(zeroed)
}

/// The first entry's sequence number of each segment (None if its first slot is not a valid entry).
pub(crate) fn first_seqs<S: Storage>(storage: &S, segments: &[u64]) -> Result<Vec<Option<u64>>, OpenError> {
    segments
        .iter()
        .map(|&s| {
            let contents = storage.read(&segment_name(s)).map_err(|e| io(&segment_name(s), e))?;
            Ok(match format::read_entry((*contents).as_ref(), SEGMENT_HEADER_SIZE, s) {
                Slot::Valid(h) => Some(h.seq),
                _ => None,
            })
        })
        .collect()
}

/// Where a snapshot's entry sits: the segment to start from, verified up to the snapshot's seq.
pub(crate) fn locate_snapshot<S: Storage>(
    storage: &S,
    segments: &[u64],
    firsts: &[Option<u64>],
    snap: &SnapshotHeader,
) -> Result<Scan, String> {
    if snap.seq == 0 {
        return Err("a snapshot at sequence 0 holds nothing".into());
    }
    let pos = firsts.iter().rposition(|f| f.is_some_and(|seq| seq <= snap.seq)).ok_or("no segment holds its entry")?;
    let anchor = Anchor { expect_seq: None, prev_hash: if segments[pos] == 0 { Some(GENESIS_HASH) } else { None } };
    let start = Start { segment_pos: pos, offset: SEGMENT_HEADER_SIZE as u64, anchor };
    let scan = scan(storage, segments, start, u64::MAX, Some(snap.seq), Tail::Search, &mut |_| Ok(())).map_err(|e| e.to_string())?;
    if scan.last_seq != snap.seq {
        return Err(format!("the log ends at {} before its sequence number", scan.last_seq));
    }
    if scan.last_hash != snap.chain_hash {
        return Err("its chain hash differs from the log's entry".into());
    }
    Ok(scan)
}

/// Opens (or creates) the log in `storage`: hands the newest valid snapshot to `on_snapshot`,
/// then every entry after it to `on_entry`, truncates a torn tail, and returns the log ready
/// for appends with what it found.
pub fn open<S: Storage>(
    mut storage: S,
    config: WalConfig,
    on_snapshot: &mut SnapshotVisitor<'_>,
    on_entry: &mut EntryVisitor<'_>,
) -> Result<(Wal<S>, RecoveryReport), OpenError> {
    config.validate()?;
    let removed_leftovers = remove_leftovers(&mut storage)?;
    let (mark, tail) = read_mark(&storage)?;
    if mark.is_none() {
        create_mark_file(&mut storage)?;
    }
    let mark_generation = mark.map_or(0, |m| m.generation + 1);
    let (segments, snapshots) = list(&storage)?;
    let spares = list_spares(&storage)?;
    let mut report = RecoveryReport { last_hash: GENESIS_HASH, removed_leftovers, ..Default::default() };
    if segments.is_empty() {
        let at = start_fresh(&mut storage, &config, mark.as_ref(), spares, mark_generation)?;
        return Ok((Wal::resume(storage, config, at), report));
    }
    let firsts = first_seqs(&storage, &segments)?;
    let start = newest_valid_snapshot(&storage, &segments, &firsts, snapshots, on_snapshot, &mut report)?;
    if report.snapshot.is_none() && segments[0] != 0 {
        return Err(start_recycled(segments[0], &report.skipped_snapshots));
    }
    let (pos, offset, anchor, after) = start;
    let mut replayed = 0u64;
    let mut count = |entry: EntryRef<'_>| {
        replayed += 1;
        on_entry(entry)
    };
    let start = Start { segment_pos: pos, offset, anchor };
    let scan = scan(&storage, &segments, start, after, None, tail, &mut count)?;
    check_mark(&segments, &scan, mark.as_ref())?;
    report.entries_replayed = replayed;
    report.bytes_verified = scan.bytes;
    report.last_seq = scan.last_seq;
    report.last_hash = scan.last_hash;
    report.tail_vouched = scan.vouched;
    let (segment_pos, offset) = match scan.end {
        End::Clean { segment_pos, offset } => (segment_pos, offset),
        End::Torn { segment_pos, offset, seq } => {
            let zeroed = truncate(&mut storage, &segments, segment_pos, offset)?;
            report.truncated = Some((segment_name(segments[segment_pos]), offset, seq, zeroed));
            (segment_pos, offset)
        }
    };
    // Whatever the last run wrote may not have been synced; make what recovery saw durable.
    storage.sync(&segment_name(segments[segment_pos])).map_err(|e| io("sync", e))?;
    let segment_size = {
        let contents = storage.read(&segment_name(segments[segment_pos])).map_err(|e| io("read", e))?;
        (*contents).as_ref().len() as u64
    };
    let at = Position {
        segment: segments[segment_pos],
        offset,
        next_seq: scan.last_seq + 1,
        last_hash: scan.last_hash,
        segment_size,
        // Segments after the end hold no entry of the log (at most an unacknowledged tail).
        segments: segments.iter().copied().zip(firsts).enumerate().map(|(i, (s, f))| (s, f.filter(|_| i <= segment_pos))).collect(),
        spares,
        mark_generation,
        marked_seq: mark.map_or(0, |m| m.seq),
    };
    let mut wal = Wal::resume(storage, config, at);
    wal.mark_recovered().map_err(|e| io(MARK_FILE_NAME, e))?;
    Ok((wal, report))
}

/// A directory with no segment: segment 0 created, unless the durable mark says entries were
/// acknowledged (then every segment is gone, and that is refused).
fn start_fresh<S: Storage>(
    storage: &mut S,
    config: &WalConfig,
    mark: Option<&Mark>,
    spares: Vec<String>,
    mark_generation: u64,
) -> Result<Position, OpenError> {
    if let Some(mark) = mark.filter(|m| m.seq > 0) {
        return Err(lost_durable(&segment_name(0), 0, 1, mark, "every log segment is gone"));
    }
    let head = format::encode_segment_header(0, config.segment_size_bytes);
    storage.prepare(&segment_name(0), &head, config.segment_size_bytes).map_err(|e| io("create segment 0", e))?;
    storage.finish_prepare(&segment_name(0)).map_err(|e| io("create segment 0", e))?;
    Ok(Position {
        segment: 0,
        offset: SEGMENT_HEADER_SIZE as u64,
        next_seq: 1,
        last_hash: GENESIS_HASH,
        segment_size: config.segment_size_bytes,
        segments: vec![(0, None)],
        spares,
        mark_generation,
        marked_seq: 0,
    })
}

/// Where the scan starts: after the newest snapshot that decodes and sits in the log (handed to
/// `on_snapshot`), each one skipped recorded in the report with why; else the log's start.
fn newest_valid_snapshot<S: Storage>(
    storage: &S,
    segments: &[u64],
    firsts: &[Option<u64>],
    snapshots: Vec<u64>,
    on_snapshot: &mut SnapshotVisitor<'_>,
    report: &mut RecoveryReport,
) -> Result<(usize, u64, Anchor, u64), OpenError> {
    let mut start = (0usize, SEGMENT_HEADER_SIZE as u64, Anchor { expect_seq: Some(1), prev_hash: Some(GENESIS_HASH) }, 0u64);
    for seq in snapshots {
        let name = snapshot_name(seq);
        let contents = storage.read(&name).map_err(|e| io(&name, e))?;
        let (header, payload) = match format::decode_snapshot((*contents).as_ref()) {
            Ok(found) if found.0.seq == seq => found,
            Ok(_) => {
                report.skipped_snapshots.push((name, "its header names another sequence number".into()));
                continue;
            }
            Err(why) => {
                report.skipped_snapshots.push((name, why.into()));
                continue;
            }
        };
        match locate_snapshot(storage, segments, firsts, &header) {
            Ok(scan) => {
                let End::Clean { segment_pos, offset } = scan.end else { unreachable!("a located snapshot ends cleanly") };
                match on_snapshot(&header, payload) {
                    Ok(()) => {}
                    Err(SnapshotRefused::Skip(why)) => {
                        report.skipped_snapshots.push((name, why));
                        continue;
                    }
                    Err(SnapshotRefused::Stop(why)) => return Err(OpenError::Visitor(why)),
                }
                start = (segment_pos, offset, Anchor { expect_seq: Some(seq + 1), prev_hash: Some(header.chain_hash) }, seq);
                report.snapshot = Some(header);
                break;
            }
            Err(why) => report.skipped_snapshots.push((name, why)),
        }
    }
    Ok(start)
}

/// Reads the whole log from the first entry without changing anything: verifies every checksum,
/// the sequence and the hash chain, and calls `visit` for each entry. A torn tail is reported
/// in the result, not cut off. For audit and replay.
pub fn verify_log<S: Storage>(storage: &S, visit: &mut dyn FnMut(EntryRef<'_>) -> Result<(), String>) -> Result<RecoveryReport, OpenError> {
    verify_log_from(storage, None, visit)
}

/// As [`verify_log`], but from a snapshot when `from` is given: the snapshot's entry is found
/// and its chain hash checked against the log (reached by the hash chain from the first entry
/// of the segment holding it), then every later entry is verified and handed to `visit`. For
/// logs whose first segments retention recycled, where entry 1 is gone.
pub fn verify_log_from<S: Storage>(
    storage: &S,
    from: Option<&SnapshotHeader>,
    visit: &mut dyn FnMut(EntryRef<'_>) -> Result<(), String>,
) -> Result<RecoveryReport, OpenError> {
    // The mark first: whatever it names was durable before the scan below began.
    // The mark first: whatever it names was durable before the scan below began. The audit
    // searches after the end whatever the mark says.
    let (mark, _) = read_mark(storage)?;
    let (segments, _) = list(storage)?;
    if let Some(snapshot) = from {
        return verify_after_snapshot(storage, &segments, snapshot, mark.as_ref(), visit);
    }
    let mut report = RecoveryReport { last_hash: GENESIS_HASH, ..Default::default() };
    if segments.is_empty() {
        if let Some(mark) = mark.filter(|m| m.seq > 0) {
            return Err(lost_durable(&segment_name(0), 0, 1, &mark, "every log segment is gone"));
        }
        return Ok(report);
    }
    if segments[0] != 0 {
        return Err(start_recycled(segments[0], &[]));
    }
    let anchor = Anchor { expect_seq: Some(1), prev_hash: Some(GENESIS_HASH) };
    let mut replayed = 0u64;
    let mut count = |entry: EntryRef<'_>| {
        replayed += 1;
        visit(entry)
    };
    let start = Start { segment_pos: 0, offset: SEGMENT_HEADER_SIZE as u64, anchor };
    let scan = scan(storage, &segments, start, 0, None, Tail::Search, &mut count)?;
    check_mark(&segments, &scan, mark.as_ref())?;
    report.entries_replayed = replayed;
    report.bytes_verified = scan.bytes;
    report.last_seq = scan.last_seq;
    report.last_hash = scan.last_hash;
    if let End::Torn { segment_pos, offset, seq } = scan.end {
        report.truncated = Some((segment_name(segments[segment_pos]), offset, seq, 0));
    }
    Ok(report)
}

/// The part of [`verify_log_from`] that starts at a snapshot.
fn verify_after_snapshot<S: Storage>(
    storage: &S,
    segments: &[u64],
    snapshot: &SnapshotHeader,
    mark: Option<&Mark>,
    visit: &mut dyn FnMut(EntryRef<'_>) -> Result<(), String>,
) -> Result<RecoveryReport, OpenError> {
    let firsts = first_seqs(storage, segments)?;
    let located = locate_snapshot(storage, segments, &firsts, snapshot).map_err(|why| {
        corrupt(segments.first().copied().unwrap_or(0), 0, snapshot.seq, format!("{}: {why}", snapshot_name(snapshot.seq)))
    })?;
    let End::Clean { segment_pos, offset } = located.end else { unreachable!("a located snapshot ends cleanly") };
    let anchor = Anchor { expect_seq: Some(snapshot.seq + 1), prev_hash: Some(snapshot.chain_hash) };
    let mut report = RecoveryReport { snapshot: Some(*snapshot), ..Default::default() };
    let mut replayed = 0u64;
    let mut count = |entry: EntryRef<'_>| {
        replayed += 1;
        visit(entry)
    };
    let scan = scan(storage, segments, Start { segment_pos, offset, anchor }, snapshot.seq, None, Tail::Search, &mut count)?;
    check_mark(segments, &scan, mark)?;
    report.entries_replayed = replayed;
    report.bytes_verified = scan.bytes + located.bytes;
    report.last_seq = scan.last_seq;
    report.last_hash = scan.last_hash;
    if let End::Torn { segment_pos, offset, seq } = scan.end {
        report.truncated = Some((segment_name(segments[segment_pos]), offset, seq, 0));
    }
    Ok(report)
}

/// Indexes of the segment files in the directory, ascending (whether or not they are contiguous).
pub fn list_segments<S: Storage>(storage: &S) -> std::io::Result<Vec<u64>> {
    crate::files::segment_indexes(storage)
}

/// Whether retention has recycled the log's first segments (entry 1 is gone): an audit must
/// then start from a snapshot ([`oldest_valid_snapshot`]).
pub fn log_recycled<S: Storage>(storage: &S) -> std::io::Result<bool> {
    Ok(list_segments(storage)?.first().is_some_and(|first| *first != 0))
}

/// The oldest snapshot whose checksums hold, with its payload, if any.
pub fn oldest_valid_snapshot<S: Storage>(storage: &S) -> Result<Option<(SnapshotHeader, Vec<u8>)>, OpenError> {
    Ok(list_snapshots(storage)?.iter().rev().find_map(|seq| read_snapshot(storage, *seq).ok()))
}

/// Sequence numbers of the snapshot files in the directory, newest first (valid or not).
pub fn list_snapshots<S: Storage>(storage: &S) -> Result<Vec<u64>, OpenError> {
    Ok(list(storage)?.1)
}

/// Reads and checks one snapshot file (checksum, header): its header and payload. It does not
/// check the snapshot against the log; replay does that by comparing states.
pub fn read_snapshot<S: Storage>(storage: &S, seq: u64) -> Result<(SnapshotHeader, Vec<u8>), OpenError> {
    let name = snapshot_name(seq);
    let contents = storage.read(&name).map_err(|e| io(&name, e))?;
    match format::decode_snapshot((*contents).as_ref()) {
        Ok((header, _)) if header.seq != seq => Err(OpenError::Io(format!("{name}: its header names sequence {}", header.seq))),
        Ok((header, payload)) => Ok((header, payload.to_vec())),
        Err(why) => Err(OpenError::Io(format!("{name}: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::later_entries;
    use crate::format::{self, EntryHeader, Slot, ENTRY_ALIGN, GENESIS_HASH};

    /// The search finds exactly what trying every aligned offset finds: entries straddling
    /// blocks, entries at the first and last slot of a block, garbage (with the magic at an
    /// unaligned offset, and at an aligned one with no entry after it), another segment's
    /// entries, and a search starting inside a block.
    #[test]
    fn later_entries_matches_trying_every_offset() {
        const INDEX: u64 = 3;
        let mut data = vec![0u8; 5 * 4096 + 1000];
        let put = |data: &mut Vec<u8>, at: usize, seq: u64, body_len: usize, index: u64| {
            let synced_through = seq - 1;
            let header = EntryHeader { seq, timestamp: 0, synced_through, body_len: body_len as u32, flags: 0, prev_hash: GENESIS_HASH };
            let mut out = Vec::new();
            format::encode_entry(&header, &vec![seq as u8; body_len], index, &mut out);
            data[at..at + out.len()].copy_from_slice(&out);
        };
        put(&mut data, 64, 1, 10, INDEX);
        put(&mut data, 4096 - 8, 2, 100, INDEX); // header straddles blocks 0 and 1
        put(&mut data, 2 * 4096, 3, 4000, INDEX); // first slot of block 2, into block 3
        put(&mut data, 4 * 4096 - 80, 4, 0, INDEX); // the last slot a whole header fits in block 3
        put(&mut data, 4 * 4096 + 512, 5, 10, INDEX + 1); // another segment's entry: not one of ours
        data[4 * 4096 + 2000..4 * 4096 + 2100].fill(0xAB); // garbage
        data[4 * 4096 + 2013..4 * 4096 + 2017].copy_from_slice(b"BWAL"); // the magic, unaligned
        data[4 * 4096 + 2040..4 * 4096 + 2044].copy_from_slice(b"BWAL"); // aligned, no entry
        put(&mut data, 5 * 4096 + 200, 6, 700, INDEX); // ends in the partial last block
        let brute = |from: usize, synced: u64| -> Vec<(usize, u64)> {
            (from.next_multiple_of(ENTRY_ALIGN)..data.len())
                .step_by(ENTRY_ALIGN)
                .filter_map(|at| match format::read_entry(&data, at, INDEX) {
                    Slot::Valid(h) if h.synced_through >= synced => Some((at, h.seq)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(brute(0, 0).iter().map(|(_, seq)| *seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 6]);
        assert_eq!(brute(0, 3).iter().map(|(_, seq)| *seq).collect::<Vec<_>>(), vec![4, 6]);
        // Past the end too: a damaged segment shorter than its first slot (found by the fuzz target).
        for from in [
            0,
            64,
            72,
            4096 - 8,
            4096,
            2 * 4096 + 8,
            4 * 4096,
            5 * 4096 + 200,
            5 * 4096 + 208,
            data.len(),
            data.len() + 3,
            data.len() + 4096,
        ] {
            for synced in [0, 2, 3, 5, 6] {
                let found: Vec<(usize, u64)> = later_entries(&data, INDEX, from, synced).map(|(at, h)| (at, h.seq)).collect();
                assert_eq!(found, brute(from, synced), "from {from}, synced {synced}");
            }
        }
    }
}
