//! History on disk for a node: full chunks of transfers, and of balance entries, move to their
//! [`HistoryStore`]s ([`Stores`]) on a writer thread and, once stored durably, leave the engine's
//! memory; queries and the prefetch before each batch read them back through [`file_history`].
//! Each chunk of transfers gets a restore image too ([`bursar_engine::ChunkImage`], a third
//! store), so a restart need not read its records again; failed ids (decided once) and expired
//! holds move to stores of their own.
//!
//! Snapshots are then slim: they leave the evicted chunks to the store, which must hold them
//! durably (a chunk is evicted only once written and synced), and carry the state digest. At
//! open a slim snapshot's chunks are read back from the store, each page checked against its
//! sum and the whole against the digest, so a damaged or foreign store is refused, never
//! believed. The chunks the recovered state holds in memory (those after the snapshot's, and
//! all of a full snapshot's) are checked against the store and any that differ rewritten.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bursar_engine::{
    decode_chunk, encode_balance_chunk, encode_expired_chunk, encode_expired_image, encode_failed_chunk, expired_image_bytes,
    expired_image_of, image_bytes, lineage_bytes, transfers_digest_sum, BalanceEntry, ChunkImage, ChunkLineage, Engine, ExpiredHold,
    FailedTransfer, History, Record, RecordHistory, RecordReader, Resolution, StoredIdIndex, Transfer, BALANCE_ENTRY_SIZE, EXPIRED_SIZE,
    FAILED_SIZE, RECORD_SIZE,
};
use bursar_wal::block::BlockBuffer;
use bursar_wal::{HistoryStore, IdRuns};
use crossbeam_channel::Sender;

/// Bytes of one stored chunk: the engine's chunk of transfers, [`RECORD_SIZE`] bytes each.
pub const CHUNK_BYTES: u64 = (1u64 << bursar_engine::CHUNK_BITS) * RECORD_SIZE as u64;

/// Bytes of one stored chunk of balance entries (as many entries as a chunk has transfers).
pub const BALANCE_CHUNK_BYTES: u64 = (1u64 << bursar_engine::CHUNK_BITS) * BALANCE_ENTRY_SIZE as u64;
/// The balance entries' store's directory, inside the transfers' store's.
pub const BALANCES_DIR: &str = "balances";
/// Bytes of one stored restore image (of a chunk of transfers).
pub const IMAGE_CHUNK_BYTES: u64 = image_bytes(1 << bursar_engine::CHUNK_BITS) as u64;
/// The restore images' store's directory, inside the transfers' store's.
pub const IMAGES_DIR: &str = "image";
/// Bytes of one stored lineage image (of a chunk of transfers).
pub const LINEAGE_CHUNK_BYTES: u64 = lineage_bytes(1 << bursar_engine::CHUNK_BITS) as u64;
/// The lineage images' store's directory, inside the transfers' store's.
pub const LINEAGE_DIR: &str = "lineage";
/// Bytes of one stored chunk of failed ids.
pub const FAILED_CHUNK_BYTES: u64 = (1u64 << bursar_engine::CHUNK_BITS) * FAILED_SIZE as u64;
/// The failed ids' store's directory, inside the transfers' store's.
pub const FAILED_DIR: &str = "failed";
/// Bytes of one stored chunk of expired holds.
pub const EXPIRED_CHUNK_BYTES: u64 = (1u64 << bursar_engine::CHUNK_BITS) * EXPIRED_SIZE as u64;
/// The expired holds' store's directory, inside the transfers' store's.
pub const EXPIRED_DIR: &str = "expired";
/// Bytes of one stored image of a chunk of expired holds (each one's hold id and expiry).
pub const EXPIRED_IMAGE_CHUNK_BYTES: u64 = expired_image_bytes(1 << bursar_engine::CHUNK_BITS) as u64;
/// The expired holds' images' store's directory, inside the expired holds' store's.
pub const EXPIRED_IMAGES_DIR: &str = "image";
/// The stored ids' index's directory, inside the transfers' store's.
pub const IDS_DIR: &str = "ids";
/// Most chunks one run of the stored ids' index is built from when the index catches up with
/// the images (after an upgrade, or a crash between an image and its run): 64 chunks, 2 M ids,
/// 24 MiB sorted in memory at once.
pub const IDS_CATCH_UP_CHUNKS_MAX: u64 = 64;
/// Longest a stop waits for the writer to store the chunks handed to it, so that the final
/// snapshot leaves them out. Past it the snapshot carries the rest, as any snapshot may.
pub const DRAIN_AT_STOP: Duration = Duration::from_secs(60);

/// A node's history stores: transfers', and balance entries' (accounts with the `history` flag).
#[derive(Clone, Debug)]
pub struct Stores {
    /// Chunks of transfers.
    pub transfers: Arc<HistoryStore>,
    /// Chunks of balance entries.
    pub balances: Arc<HistoryStore>,
    /// Restore images of the chunks of transfers.
    pub images: Arc<HistoryStore>,
    /// Lineage images of the chunks of transfers (hold states).
    pub lineage: Arc<HistoryStore>,
    /// Chunks of failed ids (decided once).
    pub failed: Arc<HistoryStore>,
    /// Chunks of expired holds.
    pub expired: Arc<HistoryStore>,
    /// Images of the chunks of expired holds (each one's hold id and expiry).
    pub expired_images: Arc<HistoryStore>,
    /// The stored transfers' ids, by hash (built from the images).
    pub ids: Arc<IdRuns>,
    /// Runs of `ids` its open found unusable and deleted, and why (rebuilt from the images).
    pub ids_dropped: Vec<String>,
    /// Why a store of derived images (lineage, expired holds') was unusable at open (another
    /// layout, a damaged header), if one was: it was emptied, and the start writes its images
    /// again.
    pub images_dropped: Option<String>,
}

/// Opens (or creates) the history stores in `dir` (transfers) and `dir/balances` for the
/// engine's chunks, naming the directory in an error: what `bursar start` and the embedded
/// benchmark server hand to [`crate::Node::open_with_history`].
pub fn open_store(dir: &std::path::Path) -> std::io::Result<Stores> {
    let open = |dir: &std::path::Path, chunk_bytes| {
        let store = HistoryStore::open(dir, chunk_bytes).map_err(|e| {
            // Refused stores may hold the only copy of old transfers: nothing in them is changed.
            let refused = if e.kind() == std::io::ErrorKind::InvalidData { "; the history store is refused and left as it is" } else { "" };
            std::io::Error::new(e.kind(), format!("opening {}: {e}{refused}", dir.display()))
        });
        store.map(Arc::new)
    };
    let (lineage, lineage_dropped) = open_derived(&dir.join(LINEAGE_DIR), LINEAGE_CHUNK_BYTES)?;
    let (expired_images, expired_images_dropped) =
        open_derived(&dir.join(EXPIRED_DIR).join(EXPIRED_IMAGES_DIR), EXPIRED_IMAGE_CHUNK_BYTES)?;
    let ids_dir = dir.join(IDS_DIR);
    let (ids, opened) = IdRuns::open(&ids_dir).map_err(|e| std::io::Error::new(e.kind(), format!("opening {}: {e}", ids_dir.display())))?;
    Ok(Stores {
        transfers: open(dir, CHUNK_BYTES)?,
        balances: open(&dir.join(BALANCES_DIR), BALANCE_CHUNK_BYTES)?,
        images: open(&dir.join(IMAGES_DIR), IMAGE_CHUNK_BYTES)?,
        lineage,
        failed: open(&dir.join(FAILED_DIR), FAILED_CHUNK_BYTES)?,
        expired: open(&dir.join(EXPIRED_DIR), EXPIRED_CHUNK_BYTES)?,
        expired_images,
        ids,
        ids_dropped: opened.dropped,
        images_dropped: match (lineage_dropped, expired_images_dropped) {
            (Some(lineage), Some(expired)) => Some(format!("{lineage}; {expired}")),
            (lineage, expired) => lineage.or(expired),
        },
    })
}

/// Opens (or creates) a store in `dir` whose chunks are derived from others (the lineage
/// images): one the open refuses as unusable (`InvalidData`: another layout, a damaged header)
/// is emptied and created again, and why is returned; its chunks are written again at start.
fn open_derived(dir: &std::path::Path, chunk_bytes: u64) -> std::io::Result<(Arc<HistoryStore>, Option<String>)> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("opening {}: {e}", dir.display()));
    match HistoryStore::open(dir, chunk_bytes) {
        Ok(store) => Ok((Arc::new(store), None)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            for file in [bursar_wal::history::HISTORY_DATA_FILE, bursar_wal::history::HISTORY_SUMS_FILE] {
                std::fs::remove_file(dir.join(file)).map_err(named)?;
            }
            let store = HistoryStore::open(dir, chunk_bytes).map_err(named)?;
            Ok((Arc::new(store), Some(e.to_string())))
        }
        Err(e) => Err(named(e)),
    }
}

/// Reads evicted transfers back from `stores.transfers` (chunks of `chunk_len`): record `i` is the
/// [`RECORD_SIZE`] bytes at `i × RECORD_SIZE`, in a page whose checksum is verified on every read;
/// several records asked for at once are read side by side ([`HistoryStore::read_many`]).
/// Balance entries likewise from `stores.balances`, [`BALANCE_ENTRY_SIZE`] bytes each.
pub fn file_history(stores: &Stores, chunk_len: usize) -> Arc<dyn History> {
    let history = RecordHistory::new(chunk_len, StoreReader::new(Arc::clone(&stores.transfers)));
    let images = Arc::clone(&stores.images);
    let stored = move || images.chunks() as usize;
    let lineage = Arc::clone(&stores.lineage);
    let lineage_stored = move || lineage.chunks() as usize;
    let history = history.with_lineage(PlainReader(Arc::clone(&stores.lineage)), lineage_stored);
    let history = history.with_balances(PlainReader(Arc::clone(&stores.balances))).with_failed(PlainReader(Arc::clone(&stores.failed)));
    let history = history.with_expired(PlainReader(Arc::clone(&stores.expired))).with_ids(RunsIndex(Arc::clone(&stores.ids)));
    let expired_images = Arc::clone(&stores.expired_images);
    let expired_stored = move || expired_images.chunks() as usize;
    let history = history.with_expired_images(PlainReader(Arc::clone(&stores.expired_images)), expired_stored);
    Arc::new(history.with_images(PlainReader(Arc::clone(&stores.images)), stored))
}

/// The stored ids' index as the engine asks it.
struct RunsIndex(Arc<IdRuns>);

impl StoredIdIndex for RunsIndex {
    fn chunks(&self) -> usize {
        self.0.chunks() as usize
    }

    fn candidates(&self, hashes: &[u64], out: &mut Vec<(u64, u32)>) -> Result<(), String> {
        self.0.candidates(hashes, out).map_err(|e| e.to_string())
    }
}

/// Reads a store's bytes as asked, several records side by side.
struct PlainReader(Arc<HistoryStore>);

impl RecordReader for PlainReader {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        self.0.read(offset, out).map_err(|e| e.to_string())
    }

    fn read_many_at(&self, offsets: &[u64], record_bytes: usize, out: &mut [u8]) -> Result<(), String> {
        self.0.read_many(offsets, record_bytes, out).map_err(|e| e.to_string())
    }
}

/// [`file_history`]'s reader. Whole chunks are read ahead, [`READ_AHEAD_CHUNKS`] at a time, each
/// on a helper thread: a restore (and a full snapshot of an engine with evicted chunks) reads
/// them in order, so the next chunks are read from disk past the page cache, checked, decoded
/// and their digest terms summed while chunk k is restored. Its buffers go round: the bytes
/// buffers from one read to the next, and the transfers' buffer the caller hands in (an evicted
/// chunk's, say) to the next read, so a restore does not fault in fresh pages per chunk.
struct StoreReader {
    store: Arc<HistoryStore>,
    /// The chunks read ahead, in order: each one's offset and the thread reading it.
    ahead: Mutex<VecDeque<ChunkAhead>>,
    /// Bytes buffers for the next reads ahead (empty before the first).
    spare: Mutex<Vec<BlockBuffer>>,
}

/// Chunks a [`StoreReader`] keeps in flight ahead of the one asked for: one read of a chunk
/// past the page cache does not keep the device busy while it is decoded and summed.
const READ_AHEAD_CHUNKS: usize = 3;

/// A chunk's transfers read ahead, their digest terms' sum, and the bytes buffer read into.
type ReadAhead = (Vec<Transfer>, u128, BlockBuffer);

/// A chunk being read ahead: its offset, and the thread reading it, which also decodes its
/// transfers and sums their state digest terms (so the restore's thread does neither).
type ChunkAhead = (u64, JoinHandle<std::io::Result<ReadAhead>>);

impl StoreReader {
    fn new(store: Arc<HistoryStore>) -> StoreReader {
        StoreReader { store, ahead: Mutex::new(VecDeque::new()), spare: Mutex::new(Vec::new()) }
    }

    /// Starts reading the chunk at `offset` on a helper thread, if the store holds it, into
    /// `transfers` (cleared first) through a spare bytes buffer.
    fn read_ahead(&self, offset: u64, mut transfers: Vec<Transfer>) -> Option<ChunkAhead> {
        let chunk_bytes = self.store.chunk_bytes();
        if offset + chunk_bytes > self.store.chunks() * chunk_bytes {
            return None;
        }
        let store = Arc::clone(&self.store);
        let spare = self.spare.lock().expect("spare lock").pop();
        let mut bytes = spare.unwrap_or_else(|| BlockBuffer::with_capacity(chunk_bytes as usize));
        let read = move || {
            store.read_chunk_uncached(offset / chunk_bytes, &mut bytes)?;
            decode_chunk(bytes.bytes(), &mut transfers);
            let sum = transfers_digest_sum(&transfers);
            Ok((transfers, sum, bytes))
        };
        // Best effort: without a thread the next chunk is read when asked for.
        std::thread::Builder::new().name("bursar-history-ahead".into()).spawn(read).ok().map(|handle| (offset, handle))
    }

    /// Keeps [`READ_AHEAD_CHUNKS`] chunks in flight after the one at `offset`, the first new one
    /// into `transfers`.
    fn top_up(&self, ahead: &mut VecDeque<ChunkAhead>, offset: u64, mut transfers: Vec<Transfer>) {
        let chunk_bytes = self.store.chunk_bytes();
        while ahead.len() < READ_AHEAD_CHUNKS {
            let next = ahead.back().map_or(offset, |&(at, _)| at) + chunk_bytes;
            let Some(reading) = self.read_ahead(next, std::mem::take(&mut transfers)) else { return };
            ahead.push_back(reading);
        }
    }
}

impl RecordReader for StoreReader {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        self.store.read(offset, out).map_err(|e| e.to_string())
    }

    fn read_chunk_decoded(&self, offset: u64, len: usize, out: &mut Vec<Transfer>) -> Result<Option<u128>, String> {
        let mut ahead = self.ahead.lock().expect("read-ahead lock");
        let whole = len as u64 == self.store.chunk_bytes();
        if whole && ahead.front().is_some_and(|&(at, _)| at == offset) {
            let (_, reading) = ahead.pop_front().expect("a chunk read ahead");
            let (transfers, sum, bytes) = reading.join().expect("a history read-ahead panicked").map_err(|e| e.to_string())?;
            self.spare.lock().expect("spare lock").push(bytes);
            // The caller's buffer takes the next chunk read ahead.
            let next = std::mem::replace(out, transfers);
            self.top_up(&mut ahead, offset, next);
            if ahead.is_empty() {
                // The store's last chunk: the buffers are not kept for a server's lifetime.
                self.spare.lock().expect("spare lock").clear();
            }
            return Ok(Some(sum));
        }
        // Not the chunk read ahead: those are of no use (their threads end on their own).
        ahead.clear();
        let mut bytes = vec![0u8; len];
        self.store.read(offset, &mut bytes).map_err(|e| e.to_string())?;
        decode_chunk(&bytes, out);
        if whole {
            self.top_up(&mut ahead, offset, Vec::new());
        }
        Ok(None)
    }

    fn read_many_at(&self, offsets: &[u64], record_bytes: usize, out: &mut [u8]) -> Result<(), String> {
        self.store.read_many(offsets, record_bytes, out).map_err(|e| e.to_string())
    }
}

/// `chunk`'s records as stored, appended to `out`.
pub fn encode_chunk(chunk: &[Transfer], out: &mut Vec<u8>) {
    out.reserve(chunk.len() * RECORD_SIZE);
    for transfer in chunk {
        out.extend_from_slice(&transfer.to_bytes());
    }
}

/// What the check of one store at attach found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunksChecked {
    /// Stored chunks a slim snapshot left to the store, read back (and checked) by the restore.
    pub restored: u64,
    /// Stored chunks that matched the restored state.
    pub verified: u64,
    /// Stored chunks that did not (damaged, or another state's) and were rewritten.
    pub repaired: u64,
    /// Stored chunks beyond the restored state, dropped.
    pub dropped: u64,
    /// Chunks the state held that the store did not, stored now.
    pub appended: u64,
}

/// What attaching the stores found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryAttached {
    /// The transfers' store.
    pub transfers: ChunksChecked,
    /// The balance entries' store.
    pub balances: ChunksChecked,
    /// The restore images' store.
    pub images: ChunksChecked,
    /// The lineage images' store.
    pub lineage: ChunksChecked,
    /// Why a store of derived images was emptied at open, if one was ([`Stores::images_dropped`]).
    pub images_dropped: Option<String>,
    /// The failed ids' store.
    pub failed: ChunksChecked,
    /// The expired holds' store.
    pub expired: ChunksChecked,
    /// The expired holds' images' store.
    pub expired_images: ChunksChecked,
    /// Chunks whose ids the stored ids' index held at open, and runs of it dropped: unusable
    /// at open (with why), or covering chunks the check rewrote or dropped. The writer rebuilds
    /// them from the images.
    pub ids: (u64, Vec<String>),
}

impl HistoryAttached {
    /// Both stores' counts added up (what `bursar start` reports).
    pub fn total(&self) -> ChunksChecked {
        let all = [&self.transfers, &self.balances, &self.images, &self.lineage, &self.failed, &self.expired, &self.expired_images];
        let sum = |count: fn(&ChunksChecked) -> u64| all.iter().map(|c| count(c)).sum();
        ChunksChecked {
            restored: sum(|c| c.restored),
            verified: sum(|c| c.verified),
            repaired: sum(|c| c.repaired),
            dropped: sum(|c| c.dropped),
            appended: sum(|c| c.appended),
        }
    }
}

/// A full chunk on its way to a store (transfers with their links, for the image, and their
/// captures' resolutions, for the lineage image).
enum Sealed {
    Transfers(u64, Arc<Vec<Transfer>>, Vec<[u32; 2]>, Vec<Resolution>),
    Balances(u64, Arc<Vec<BalanceEntry>>),
    Failed(u64, Arc<Vec<FailedTransfer>>),
    Expired(u64, Arc<Vec<ExpiredHold>>, Vec<(u128, u64)>),
}

/// Moves full chunks from the engine to the stores (see the module): the node's side.
#[derive(Debug)]
pub(crate) struct Mover {
    stores: Stores,
    pub(crate) history: Arc<dyn History>,
    /// Chunks handed to the writer so far: transfers', balance entries', failed ids', expired holds'.
    handed: [u64; 4],
    to_writer: Option<Sender<Sealed>>,
    writer: Option<JoinHandle<()>>,
    /// The writer's failure while it lasts: it tries the write again every [`RETRY_AFTER`], and
    /// meanwhile the chunks stay in memory.
    failure: Arc<Mutex<Option<String>>>,
    /// Whether the failure under way was reported (on stderr).
    failure_reported: bool,
    /// Set while someone waits for the writer (a stop's drain, then the drop): it works in the
    /// foreground, and a write that fails ends it instead of being tried again.
    hurry: Arc<AtomicBool>,
    /// Set while the stored ids' index fails: its runs are derived from the images, so a stop
    /// does not wait for them then (the ids stay in memory, and a start builds the runs).
    ids_failing: Arc<AtomicBool>,
}

/// Checks `store`'s chunks from `restored` (those the restore read back) to `sealed` against
/// the engine's (`encode(k, out)` writes chunk `k`'s bytes), repairs those that differ, drops
/// those beyond and appends those it lacks.
fn check_store(
    store: &HistoryStore,
    restored: u64,
    sealed: u64,
    mut encode: impl FnMut(u64, &mut Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<ChunksChecked> {
    assert!(store.chunks() >= restored, "the restore read the chunks it evicted from the store");
    let mut checked = ChunksChecked { restored, ..ChunksChecked::default() };
    if store.chunks() > sealed {
        checked.dropped = store.chunks() - sealed;
        store.truncate(sealed)?;
    }
    let mut bytes = Vec::with_capacity(store.chunk_bytes() as usize);
    for k in restored..sealed {
        bytes.clear();
        encode(k, &mut bytes)?;
        if k >= store.chunks() {
            store.append(k, &bytes)?;
            checked.appended += 1;
        } else if store.holds(k, &bytes)? {
            checked.verified += 1;
        } else {
            store.rewrite(k, &bytes)?;
            checked.repaired += 1;
        }
    }
    Ok(checked)
}

/// Checks the images store as [`check_store`] does, from the chunks a restore did not take from
/// their images on (after a restore from records, every chunk's image is checked, its records
/// read back from the store if evicted: once, after an upgrade).
fn check_images(store: &HistoryStore, engine: &Engine, history: &Arc<dyn History>, sealed: u64) -> std::io::Result<ChunksChecked> {
    let from_images = engine.chunks_restored_from_images() as u64;
    let mut records = Vec::new();
    let checked = check_store(store, from_images.min(store.chunks()), sealed, |k, out| {
        let chunk = match engine.transfer_chunk(k as usize) {
            Some(chunk) => chunk.as_slice(),
            None => {
                // Evicted, and its image not the one the restore took: its records read back.
                history.read_chunk(k as usize, &mut records).map_err(|e| std::io::Error::other(format!("chunk {k}: {e}")))?;
                &records
            }
        };
        ChunkImage::of(chunk, engine.transfer_links_of_chunk(k as usize)).encode(out);
        Ok(())
    })?;
    Ok(ChunksChecked { restored: from_images, ..checked })
}

/// Checks the lineage images' store as [`check_images`] checks the images, from the chunks the
/// restore did not take hold states from on, with the resolutions the engine noted of their
/// captures (it notes those it restores from records or replays); then forgets those.
fn check_lineage(store: &HistoryStore, engine: &mut Engine, history: &Arc<dyn History>, sealed: u64) -> std::io::Result<ChunksChecked> {
    let from_lineage = engine.chunks_restored_from_lineage() as u64;
    let mut records = Vec::new();
    let checked = check_store(store, from_lineage.min(store.chunks()), sealed, |k, out| {
        let unreadable = |e: String| std::io::Error::other(format!("chunk {k}: {e}"));
        let chunk = match engine.transfer_chunk(k as usize) {
            Some(chunk) => chunk.as_slice(),
            // Evicted: a plain chunk's lineage names nothing (its image, checked above, says
            // so); another's records are read back (once, after an upgrade).
            None if history.read_image_links(k as usize).map_err(unreadable)?.is_some_and(|image| image.plain) => {
                ChunkLineage::encode_plain(engine.transfer_chunk_len(), out);
                return Ok(());
            }
            None => {
                history.read_chunk(k as usize, &mut records).map_err(unreadable)?;
                &records
            }
        };
        let first = (k as usize * chunk.len()) as u32;
        ChunkLineage::of(chunk, first, engine.resolutions_of_chunk(k as usize)).encode(out);
        Ok(())
    })?;
    engine.drop_resolutions_below(sealed as usize);
    Ok(ChunksChecked { restored: from_lineage, ..checked })
}

/// Checks the expired holds' images' store as [`check_store`] does, from the chunks the restore
/// did not take images of on, with the expired holds the engine noted (it notes those it
/// restores from their holds' records or replays); then forgets those.
fn check_expired_images(store: &HistoryStore, engine: &mut Engine, sealed: u64) -> std::io::Result<ChunksChecked> {
    let from_images = engine.expired_chunks_restored_from_images() as u64;
    let len = 1usize << bursar_engine::CHUNK_BITS;
    let checked = check_store(store, from_images.min(store.chunks()), sealed, |k, out| {
        let holds = expired_image_of(engine.expired_notes_of_chunk(k as usize), len)
            .map_err(|e| std::io::Error::other(format!("expired chunk {k}: {e}")))?;
        encode_expired_image(&holds, out);
        Ok(())
    })?;
    engine.drop_expired_notes_below(sealed as usize);
    Ok(ChunksChecked { restored: from_images, ..checked })
}

/// Cuts the stored ids' index back to the images it can trust after their check: all of them,
/// or only those the restore took if any was rewritten (its run may be another state's). The
/// restore left the ids of no chunk past that to the index (asserted).
fn check_ids(stores: &Stores, engine: &Engine, images: &ChunksChecked) -> std::io::Result<(u64, Vec<String>)> {
    let trusted = if images.repaired > 0 { images.restored } else { stores.images.chunks() };
    assert!(engine.ids_stored_chunks() as u64 <= trusted, "the restore used only runs over images it read");
    let mut dropped = stores.ids_dropped.clone();
    let held = stores.ids.chunks();
    if held > trusted {
        stores.ids.truncate(trusted)?;
        dropped.push(format!("runs over chunks {trusted}..{held}: their images were rewritten or dropped"));
    }
    Ok((stores.ids.chunks(), dropped))
}

/// A chunk the engine holds (asserted: one not restored from the store), encoded into `out`.
fn held<T>(chunk: Option<&Arc<Vec<T>>>, encode: fn(&[T], &mut Vec<u8>), out: &mut Vec<u8>) -> std::io::Result<()> {
    encode(chunk.expect("a restored chunk is in memory"), out);
    Ok(())
}

/// The engine's full chunks of each kind the writer stores: transfers, balance entries, failed
/// ids, expired holds.
fn sealed_chunks(engine: &Engine) -> [u64; 4] {
    [engine.sealed_transfer_chunks(), engine.sealed_balance_chunks(), engine.sealed_failed_chunks(), engine.sealed_expired_chunks()]
        .map(|n| n as u64)
}

/// Chunks waiting for the writer beyond which it competes for CPU like any thread: each is in
/// memory until stored, so a writer starved by other work (a busy machine) must not let them
/// pile up without bound. 32 chunks of transfers are 128 MiB of records; a smaller bound has
/// the writer take CPU from a busy server's own threads.
pub const WRITER_BEHIND_CHUNKS: usize = 32;

/// The writer's scheduling: in the background (CPU the sequencer and the network leave only:
/// encoding and checksumming a chunk beside them showed in the benchmark's tail latency) while
/// it keeps up, in the foreground from [`WRITER_BEHIND_CHUNKS`] waiting until none waits, and
/// while someone waits for it (a stop).
/// Best effort: a refusal leaves the thread as it was.
struct WriterPriority {
    background: bool,
}

impl WriterPriority {
    fn new() -> WriterPriority {
        let _ = bursar_wal::background_thread();
        WriterPriority { background: true }
    }

    /// Switches for `waiting` chunks in the queue, and whether someone waits for them (`hurry`).
    fn adjust(&mut self, waiting: usize, hurry: bool) {
        if self.background && (hurry || waiting >= WRITER_BEHIND_CHUNKS) {
            let _ = bursar_wal::foreground_thread();
            self.background = false;
        } else if !self.background && waiting == 0 && !hurry {
            let _ = bursar_wal::background_thread();
            self.background = true;
        }
    }
}

/// The writer thread: stores each chunk handed to it (a chunk of transfers, then its image) until
/// the channel closes; the first failure is kept in `failed` and ends it.
fn write_chunks(
    chunks: &crossbeam_channel::Receiver<Sealed>,
    writing: &Stores,
    failed: &Mutex<Option<String>>,
    hurry: &AtomicBool,
    ids_failing: Arc<AtomicBool>,
) {
    let mut priority = WriterPriority::new();
    // Aligned, so the stores write it to the device with `O_DIRECT` as it is.
    let mut bytes = BlockBuffer::with_capacity(CHUNK_BYTES as usize);
    let mut ids = IdsWriter { failing: ids_failing, merge_failure_said: false };
    ids.index_through(writing, writing.images.chunks(), None);
    for sealed in chunks {
        priority.adjust(chunks.len(), hurry.load(Ordering::Relaxed));
        // The chunk is encoded and dropped before the write, so its memory is reused sooner.
        let (store, k) = match sealed {
            Sealed::Transfers(k, chunk, links, resolutions) => {
                encode_aligned(&mut bytes, |out| encode_chunk(&chunk, out));
                if !append_retrying(&writing.transfers, k, bytes.bytes(), failed, hurry) {
                    return;
                }
                let image = ChunkImage::of(&chunk, &links);
                encode_aligned(&mut bytes, |out| image.encode(out));
                if !append_retrying(&writing.images, k, bytes.bytes(), failed, hurry) {
                    return;
                }
                if image.plain {
                    debug_assert!(resolutions.is_empty(), "a plain chunk holds no capture");
                    encode_aligned(&mut bytes, |out| ChunkLineage::encode_plain(chunk.len(), out));
                } else {
                    let lineage = ChunkLineage::of(&chunk, (k as usize * chunk.len()) as u32, &resolutions);
                    encode_aligned(&mut bytes, |out| lineage.encode(out));
                }
                if !append_retrying(&writing.lineage, k, bytes.bytes(), failed, hurry) {
                    return;
                }
                ids.index_through(writing, k + 1, Some((k, &image.hashes)));
                continue;
            }
            Sealed::Balances(k, chunk) => {
                encode_aligned(&mut bytes, |out| encode_balance_chunk(&chunk, out));
                (&writing.balances, k)
            }
            Sealed::Failed(k, chunk) => {
                encode_aligned(&mut bytes, |out| encode_failed_chunk(&chunk, out));
                (&writing.failed, k)
            }
            Sealed::Expired(k, chunk, holds) => {
                encode_aligned(&mut bytes, |out| encode_expired_chunk(&chunk, out));
                if !append_retrying(&writing.expired, k, bytes.bytes(), failed, hurry) {
                    return;
                }
                encode_aligned(&mut bytes, |out| encode_expired_image(&holds, out));
                (&writing.expired_images, k)
            }
        };
        if !append_retrying(store, k, bytes.bytes(), failed, hurry) {
            return;
        }
    }
}

/// The writer's side of the stored ids' index: a run per stored chunk, from its image's hashes
/// (the index holds it in memory until it merges it onto disk with the next seven).
struct IdsWriter {
    /// Whether the last attempt failed (said once on stderr; the next chunk tries again), shared
    /// with the mover so a stop does not wait for runs that cannot be written.
    failing: Arc<AtomicBool>,
    /// Whether the index's merger's failure was said (on stderr, once: it merges no more, and
    /// lookups check more runs until the next start).
    merge_failure_said: bool,
}

impl IdsWriter {
    /// Indexes the ids of every stored chunk below `end` not yet indexed: chunk `newest.0` from
    /// the hashes in hand, others (after an upgrade, a crash, a failure) from their images,
    /// [`IDS_CATCH_UP_CHUNKS_MAX`] at most a run. A failure is said on stderr once and leaves
    /// the ids in the engine's memory; the next call tries again.
    fn index_through(&mut self, stores: &Stores, end: u64, newest: Option<(u64, &[u64])>) {
        while stores.ids.chunks() < end {
            let first = stores.ids.chunks();
            let added = match newest {
                Some((k, hashes)) if k == first => add_run(&stores.ids, first, 1, hashes),
                _ => catch_up_run(stores, first, end),
            };
            if let Err(e) = added {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "bursar: WARNING: the stored ids' index failed ({e}); their ids stay in memory; trying again with the next chunk"
                    );
                }
                return;
            }
            if self.failing.swap(false, Ordering::Relaxed) {
                eprintln!("bursar: the stored ids' index stores again");
            }
        }
        if let Some(why) = stores.ids.merge_failure().filter(|_| !self.merge_failure_said) {
            eprintln!(
                "bursar: WARNING: {why}; the stored ids' runs are no longer merged until the next start (lookups check more of them)"
            );
            self.merge_failure_said = true;
        }
    }
}

/// Adds the run of `chunks` chunks from `first` whose ids' hashes are `hashes`, in order.
fn add_run(ids: &IdRuns, first: u64, chunks: u64, hashes: &[u64]) -> std::io::Result<()> {
    let base = first * (1 << bursar_engine::CHUNK_BITS);
    let entries: Vec<(u64, u32)> = hashes.iter().enumerate().map(|(i, &hash)| (hash, (base + i as u64) as u32)).collect();
    ids.add(first, first + chunks, entries)
}

/// Adds a run from chunk `first` on, read from the stored images below `end`: a power of the
/// index's merge fanout of chunks, at most [`IDS_CATCH_UP_CHUNKS_MAX`], so its runs merge as
/// it expects.
fn catch_up_run(stores: &Stores, first: u64, end: u64) -> std::io::Result<()> {
    let fanout = bursar_wal::idruns::MERGE_FANOUT as u64;
    let available = (end - first).min(IDS_CATCH_UP_CHUNKS_MAX);
    let chunks = fanout.pow(available.ilog(fanout));
    let chunk_len = 1usize << bursar_engine::CHUNK_BITS;
    let mut hashes = vec![0u64; chunks as usize * chunk_len];
    let mut bytes = vec![0u8; chunk_len * 8];
    for (k, out) in (first..first + chunks).zip(hashes.chunks_exact_mut(chunk_len)) {
        // An image begins with its transfers' hashes ([`ChunkImage::encode`]).
        stores.images.read(k * IMAGE_CHUNK_BYTES, &mut bytes)?;
        out.iter_mut().zip(bytes.chunks_exact(8)).for_each(|(hash, b)| *hash = u64::from_le_bytes(b.try_into().expect("8 bytes")));
    }
    add_run(&stores.ids, first, chunks, &hashes)
}

/// Replaces `buffer`'s contents with what `encode` appends, starting at an aligned address.
fn encode_aligned(buffer: &mut BlockBuffer, encode: impl FnOnce(&mut Vec<u8>)) {
    buffer.truncate(0);
    encode(buffer.vec().0);
    buffer.realign();
}

/// How long the writer waits before trying a failed write again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Appends chunk `k` to `store`. While that fails (a full disk may get room again) the failure
/// is in `failed` and the write is tried again every [`RETRY_AFTER`]; once it succeeds `failed`
/// is cleared. False if a stop waits (`hurry`) while it still fails: the chunks stay in memory,
/// and the final snapshot carries them.
fn append_retrying(store: &HistoryStore, k: u64, bytes: &[u8], failed: &Mutex<Option<String>>, hurry: &AtomicBool) -> bool {
    loop {
        match store.append(k, bytes) {
            Ok(()) => {
                failed.lock().expect("failure lock").take();
                return true;
            }
            Err(e) => {
                *failed.lock().expect("failure lock") = Some(format!("storing chunk {k} in {}: {e}", store.dir().display()));
                if hurry.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(RETRY_AFTER);
            }
        }
    }
}

impl Mover {
    /// Checks `stores` against `engine` (just restored: the chunks a slim snapshot left to the
    /// stores evicted, every later one in memory), repairs them, stores what they lack, and
    /// starts the writer thread. `history` reads `stores`.
    pub(crate) fn attach(engine: &mut Engine, stores: Stores, history: Arc<dyn History>) -> std::io::Result<(Mover, HistoryAttached)> {
        assert_eq!(stores.transfers.chunk_bytes(), (engine.transfer_chunk_len() * RECORD_SIZE) as u64, "the engine's chunks");
        assert_eq!(stores.balances.chunk_bytes(), (engine.balance_chunk_len() * BALANCE_ENTRY_SIZE) as u64, "the engine's chunks");
        let sealed = sealed_chunks(engine);
        let transfers = check_store(&stores.transfers, engine.evicted_chunks() as u64, sealed[0], |k, out| {
            held(engine.transfer_chunk(k as usize), encode_chunk, out)
        })?;
        let balances = check_store(&stores.balances, engine.evicted_balance_chunks() as u64, sealed[1], |k, out| {
            held(engine.balance_chunk(k as usize), encode_balance_chunk, out)
        })?;
        let images = check_images(&stores.images, engine, &history, sealed[0])?;
        let lineage = check_lineage(&stores.lineage, engine, &history, sealed[0])?;
        let images_dropped = stores.images_dropped.clone();
        let ids = check_ids(&stores, engine, &images)?;
        let failed_ids = check_store(&stores.failed, engine.evicted_failed_chunks() as u64, sealed[2], |k, out| {
            held(engine.failed_chunk(k as usize), encode_failed_chunk, out)
        })?;
        let expired = check_store(&stores.expired, engine.evicted_expired_chunks() as u64, sealed[3], |k, out| {
            held(engine.expired_chunk(k as usize), encode_expired_chunk, out)
        })?;
        let expired_images = check_expired_images(&stores.expired_images, engine, sealed[3])?;
        engine.set_history(history.clone());
        let (to_writer, chunks) = crossbeam_channel::unbounded::<Sealed>();
        let failure = Arc::new(Mutex::new(None));
        let (hurry, ids_failing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (writing, failed, hurried, ids_failed) = (stores.clone(), Arc::clone(&failure), Arc::clone(&hurry), Arc::clone(&ids_failing));
        let writer = std::thread::Builder::new()
            .name("bursar-history".into())
            .spawn(move || write_chunks(&chunks, &writing, &failed, &hurried, ids_failed))?;
        let mut mover = Mover {
            stores,
            history,
            handed: sealed,
            to_writer: Some(to_writer),
            writer: Some(writer),
            failure,
            failure_reported: false,
            hurry,
            ids_failing,
        };
        mover.step(engine);
        let attached =
            HistoryAttached { transfers, balances, images, lineage, images_dropped, failed: failed_ids, expired, expired_images, ids };
        Ok((mover, attached))
    }

    /// Between batches: hands newly full chunks to the writer and evicts those stored.
    pub(crate) fn step(&mut self, engine: &mut Engine) {
        let sealed = sealed_chunks(engine);
        while self.handed[0] < sealed[0] {
            let chunk = engine.transfer_chunk(self.handed[0] as usize).expect("a chunk not yet stored is in memory").clone();
            let links = engine.transfer_links_of_chunk(self.handed[0] as usize).to_vec();
            let resolutions = engine.resolutions_of_chunk(self.handed[0] as usize).to_vec();
            self.send(Sealed::Transfers(self.handed[0], chunk, links, resolutions));
            self.handed[0] += 1;
            engine.drop_resolutions_below(self.handed[0] as usize);
        }
        while self.handed[1] < sealed[1] {
            let chunk = engine.balance_chunk(self.handed[1] as usize).expect("a chunk not yet stored is in memory").clone();
            self.send(Sealed::Balances(self.handed[1], chunk));
            self.handed[1] += 1;
        }
        while self.handed[2] < sealed[2] {
            let chunk = engine.failed_chunk(self.handed[2] as usize).expect("a chunk not yet stored is in memory").clone();
            self.send(Sealed::Failed(self.handed[2], chunk));
            self.handed[2] += 1;
        }
        while self.handed[3] < sealed[3] {
            let k = self.handed[3] as usize;
            let chunk = engine.expired_chunk(k).expect("a chunk not yet stored is in memory").clone();
            let holds =
                expired_image_of(engine.expired_notes_of_chunk(k), chunk.len()).expect("every expired hold of a full chunk is noted");
            self.send(Sealed::Expired(self.handed[3], chunk, holds));
            self.handed[3] += 1;
            engine.drop_expired_notes_below(self.handed[3] as usize);
        }
        // A chunk leaves memory once stored with its image, and its ids once its run is written.
        engine.evict_chunks_below(self.stored_chunks_with_images() as usize);
        engine.set_ids_stored(self.stores.ids.chunks() as usize);
        engine.evict_balance_chunks_below(self.stores.balances.chunks() as usize);
        engine.evict_failed_chunks_below(self.stores.failed.chunks() as usize);
        engine.evict_expired_chunks_below(self.stored_expired_with_images() as usize);
        self.report_failure();
    }

    /// Says on stderr when the writer starts failing, and when it stores again.
    fn report_failure(&mut self) {
        match (self.failure.lock().expect("failure lock").as_ref(), self.failure_reported) {
            (Some(why), false) => {
                eprintln!(
                    "bursar: WARNING: the history store failed ({why}); newer transfers stay in memory, nothing is lost; trying again every {} s",
                    RETRY_AFTER.as_secs()
                );
                self.failure_reported = true;
            }
            (None, true) => {
                eprintln!("bursar: the history store stores again");
                self.failure_reported = false;
            }
            _ => {}
        }
    }

    /// Waits, at most `limit`, for the writer to store every chunk handed to it, then evicts
    /// them: before the final snapshot, which then leaves them out. A writer whose write fails
    /// (a full disk) tries once more, then stops. Returns whether everything handed is stored.
    pub(crate) fn drain(&mut self, engine: &mut Engine, limit: Duration) -> bool {
        const POLL: Duration = Duration::from_millis(2);
        self.hurry.store(true, Ordering::Relaxed);
        self.step(engine);
        let deadline = Instant::now() + limit;
        // A writer that fails once hurried gives up (`append_retrying`), ending its thread.
        let running = |mover: &Mover| mover.writer.as_ref().is_some_and(|writer| !writer.is_finished());
        while !self.all_stored() && running(self) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.step(engine);
        self.hurry.store(false, Ordering::Relaxed);
        self.all_stored()
    }

    /// Whether every chunk handed to the writer is stored (a chunk of transfers with its image,
    /// and its ids' run unless the stored ids' index is failing).
    fn all_stored(&self) -> bool {
        self.waiting(!self.ids_failing.load(Ordering::Relaxed)) == 0
    }

    /// Chunks handed to the writer and not yet stored (a chunk of transfers with its image and
    /// its ids' run).
    pub(crate) fn waiting_chunks(&self) -> u64 {
        self.waiting(true)
    }

    /// Chunks handed to the writer and not yet stored, a chunk of transfers waiting for its
    /// ids' run too if `with_ids`.
    fn waiting(&self, with_ids: bool) -> u64 {
        let s = &self.stores;
        let ids = if with_ids { s.ids.chunks() } else { u64::MAX };
        let transfers = self.stored_chunks_with_images().min(ids);
        let stored = [transfers, s.balances.chunks(), s.failed.chunks(), self.stored_expired_with_images()];
        stored.iter().zip(&self.handed).map(|(stored, handed)| handed.saturating_sub(*stored)).sum()
    }

    /// Whether the writer stopped after a failure.
    pub(crate) fn failed(&self) -> bool {
        self.failure.lock().expect("failure lock").is_some()
    }

    /// Hands `chunk` to the writer; a writer that stopped has said why (`step`), and the chunk
    /// stays in memory.
    fn send(&self, chunk: Sealed) {
        if let Some(to_writer) = &self.to_writer {
            let _ = to_writer.send(chunk);
        }
    }

    /// How the stored ids' index's lookups went since it was opened.
    pub(crate) fn ids_lookups(&self) -> bursar_wal::IdLookups {
        self.stores.ids.lookups()
    }

    /// Chunks of transfers stored durably.
    pub(crate) fn stored_chunks(&self) -> u64 {
        self.stores.transfers.chunks()
    }

    /// Chunks of transfers stored durably with both their images: those that may leave memory.
    fn stored_chunks_with_images(&self) -> u64 {
        let s = &self.stores;
        s.transfers.chunks().min(s.images.chunks()).min(s.lineage.chunks())
    }

    /// Chunks of expired holds stored durably with their images: those that may leave memory.
    fn stored_expired_with_images(&self) -> u64 {
        self.stores.expired.chunks().min(self.stores.expired_images.chunks())
    }
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.hurry.store(true, Ordering::Relaxed);
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer leaves the background once it falls behind by the bound, and goes back only
    /// when nothing waits (not at every dip below the bound), never while a stop waits for it.
    #[test]
    fn the_writer_competes_for_cpu_while_it_is_behind() {
        let mut priority = WriterPriority::new();
        priority.adjust(WRITER_BEHIND_CHUNKS - 1, false);
        assert!(priority.background);
        priority.adjust(WRITER_BEHIND_CHUNKS, false);
        assert!(!priority.background);
        priority.adjust(1, false);
        assert!(!priority.background, "still catching up");
        priority.adjust(0, false);
        assert!(priority.background);
        // While someone waits (a stop), it stays in the foreground, queue or not.
        priority.adjust(0, true);
        assert!(!priority.background);
        priority.adjust(0, true);
        assert!(!priority.background);
        priority.adjust(0, false);
        assert!(priority.background, "back once the wait is over");
    }
}
