//! Finished transfers out of memory: the engine's side of history on disk.
//!
//! The node stores full chunks of transfers elsewhere and then *evicts* them
//! ([`Engine::evict_chunk`]): the records leave memory, their ids, account links and hold states
//! stay. The engine stays pure. Before a batch is applied the node asks which evicted records
//! the batch can read ([`Engine::cold_wanted`]: a re-sent id, a hold to capture, a transfer to
//! reverse) and hands them in ([`Engine::prefetch`]); applying then reads memory only, and a
//! record neither held, pinned nor prefetched is a broken invariant (a crash, not a disk read).
//! Still-pending holds in an evicted chunk are *pinned* (kept), so expiries need no prefetch.
//! Queries read evicted records through the [`History`] the node provides.

use super::*;
use crate::id_index::{id_hash, Kept};
use crate::index_table::IndexTable;
use crate::types::{Record, RECORD_SIZE};
use std::cell::RefCell;
use std::sync::Arc;

/// Where evicted transfers are read back from (the node's history store).
pub trait History: Send + Sync + core::fmt::Debug {
    /// Transfer `index`, which is in an evicted chunk; the error names what could not be read.
    fn read(&self, index: u32) -> Result<Transfer, String>;
    /// Every transfer of evicted chunk `k`, into `out` (cleared first).
    fn read_chunk(&self, k: usize, out: &mut Vec<Transfer>) -> Result<(), String>;
    /// Transfers `indices` (each evicted), appended to `out` in that order: what a query or a
    /// prefetch that needs several asks for at once, so a store can read them side by side.
    fn read_many(&self, indices: &[u32], out: &mut Vec<Transfer>) -> Result<(), String> {
        indices.iter().try_for_each(|&index| self.read(index).map(|t| out.push(t)))
    }
    /// As [`History::read_chunk`], with the sum of the chunk's state digest terms
    /// ([`crate::transfers_digest_sum`]) if the store computed it (on another thread, say), so a
    /// restore need not hash each record.
    fn read_chunk_summed(&self, k: usize, out: &mut Vec<Transfer>) -> Result<Option<u128>, String> {
        self.read_chunk(k, out).map(|()| None)
    }
    /// Failed ids `indices` (each evicted), appended to `out` in that order.
    fn read_failed(&self, indices: &[u32], out: &mut Vec<FailedTransfer>) -> Result<(), String>;
    /// Every failed id of evicted chunk `k`, into `out` (cleared first).
    fn read_failed_chunk(&self, k: usize, out: &mut Vec<FailedTransfer>) -> Result<(), String>;
    /// Expired holds `places` (each evicted), appended to `out` in that order.
    fn read_expired(&self, places: &[u32], out: &mut Vec<ExpiredHold>) -> Result<(), String>;
    /// Every expired hold of evicted chunk `k`, into `out` (cleared first).
    fn read_expired_chunk(&self, k: usize, out: &mut Vec<ExpiredHold>) -> Result<(), String>;
    /// Evicted chunk `k`'s restore image, if the store keeps one ([`ChunkImage`]).
    fn read_image(&self, _k: usize) -> Result<Option<ChunkImage>, String> {
        Ok(None)
    }
    /// As [`History::read_image`], the hashes left out if the store can (empty): for a chunk
    /// whose ids its id index holds, half the bytes.
    fn read_image_links(&self, k: usize) -> Result<Option<ChunkImage>, String> {
        self.read_image(k)
    }
    /// Whether the store keeps lineage images (a restore then notes the captures it restores
    /// from records, for the images still to write: [`Engine::keep_image_notes`]).
    fn has_lineage(&self) -> bool {
        false
    }
    /// Chunks of transfers, from the first on, whose lineage images the store holds (0 if it
    /// keeps none).
    fn lineage_chunks(&self) -> usize {
        0
    }
    /// Evicted chunk `k`'s lineage image, if the store holds it ([`ChunkLineage`]).
    fn read_lineage(&self, _k: usize) -> Result<Option<ChunkLineage>, String> {
        Ok(None)
    }
    /// Chunks of expired holds, from the first on, whose images the store holds (0 if it keeps
    /// none).
    fn expired_images_chunks(&self) -> usize {
        0
    }
    /// Evicted chunk `k` of expired holds' image: each hold's id and expiry time
    /// ([`crate::encode_expired_image`]), if the store holds it.
    fn read_expired_image(&self, _k: usize) -> Result<Option<Vec<(u128, u64)>>, String> {
        Ok(None)
    }
    /// Balance entries `indices` (each evicted), appended to `out` in that order.
    fn read_balances(&self, indices: &[u32], out: &mut Vec<BalanceEntry>) -> Result<(), String>;
    /// Every balance entry of evicted chunk `k`, into `out` (cleared first).
    fn read_balance_chunk(&self, k: usize, out: &mut Vec<BalanceEntry>) -> Result<(), String>;
    /// Chunks of transfers, from the first on, whose ids the store's id index holds (0 if it
    /// keeps none): their ids may leave the engine's memory ([`Engine::set_ids_stored`]).
    fn ids_stored_chunks(&self) -> usize {
        0
    }
    /// Every (id hash, transfer index) the store's id index holds under each of `hashes`,
    /// appended to `out` in any order: what an id of one of those hashes may name.
    fn stored_ids(&self, _hashes: &[u64], _out: &mut Vec<(u64, u32)>) -> Result<(), String> {
        Ok(())
    }
}

/// A store's index of stored transfer ids, for [`RecordHistory::with_ids`].
pub trait StoredIdIndex: Send + Sync {
    /// Chunks whose ids it holds, from the first on.
    fn chunks(&self) -> usize;
    /// Every (hash, index) it holds under each of `hashes`, appended to `out`.
    fn candidates(&self, hashes: &[u64], out: &mut Vec<(u64, u32)>) -> Result<(), String>;
}

/// Reads bytes of stored records: `read_at(offset, out)` fills `out` from `offset`;
/// `read_many_at` fills record `i` of `out` from `offsets[i]` (one after another unless the
/// reader can do better). Any `Fn(u64, &mut [u8]) -> Result<(), String>` is one.
pub trait RecordReader: Send + Sync {
    /// Fills `out` with the bytes at `offset`.
    fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), String>;
    /// Fills record `i` of `out` (`record_bytes` each) with the bytes at `offsets[i]`.
    fn read_many_at(&self, offsets: &[u64], record_bytes: usize, out: &mut [u8]) -> Result<(), String> {
        offsets.iter().zip(out.chunks_exact_mut(record_bytes)).try_for_each(|(&at, record)| self.read_at(at, record))
    }
    /// The transfers of the whole chunk of `len` bytes at `offset`, decoded into `out`, with
    /// their digest terms' sum if the reader computed it ([`History::read_chunk_summed`]).
    /// Chunks are asked for in order (a restore, a full snapshot), so a reader may read, decode
    /// and hash the next ones ahead on threads of their own.
    fn read_chunk_decoded(&self, offset: u64, len: usize, out: &mut Vec<Transfer>) -> Result<Option<u128>, String> {
        let mut bytes = vec![0u8; len];
        self.read_at(offset, &mut bytes)?;
        decode_chunk(&bytes, out);
        Ok(None)
    }
}

/// The transfers of a chunk's bytes (whole records), into `out` (cleared first).
pub fn decode_chunk(bytes: &[u8], out: &mut Vec<Transfer>) {
    out.clear();
    decode_records(bytes, out);
}

/// The transfers of `bytes` (whole records), appended to `out`.
fn decode_records(bytes: &[u8], out: &mut Vec<Transfer>) {
    out.extend(bytes.chunks_exact(RECORD_SIZE).map(|b| Transfer::decode(b.try_into().expect("a record"))));
}

impl<F: Fn(u64, &mut [u8]) -> Result<(), String> + Send + Sync> RecordReader for F {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        self(offset, out)
    }
}

/// A [`History`] over bytes holding transfer `i` at `i × RECORD_SIZE` in its wire encoding,
/// read by a [`RecordReader`]: the node's history store (the engine reads nothing itself).
pub struct RecordHistory<R> {
    reader: R,
    chunk_len: usize,
    /// Reads balance entry `i` at `i × BALANCE_ENTRY_SIZE` (chunks of `chunk_len`), if any are stored.
    balances: Option<Box<dyn RecordReader>>,
    /// Reads failed id `i` at `i × FAILED_SIZE` (chunks of `chunk_len`), if any are stored.
    failed: Option<Box<dyn RecordReader>>,
    /// Reads expired hold `k` at `k × EXPIRED_SIZE` (chunks of `chunk_len`), if any are stored.
    expired: Option<Box<dyn RecordReader>>,
    /// Reads chunk `k`'s restore image at `k × image_bytes(chunk_len)`, with how many it holds.
    images: Option<(Box<dyn RecordReader>, StoredCount)>,
    /// Reads chunk `k`'s lineage image at `k × lineage_bytes(chunk_len)`, with how many it holds.
    lineage: Option<(Box<dyn RecordReader>, StoredCount)>,
    /// Reads expired chunk `k`'s image at `k × expired_image_bytes(chunk_len)`, with how many it
    /// holds.
    expired_images: Option<(Box<dyn RecordReader>, StoredCount)>,
    /// The stored transfers' ids, if indexed.
    ids: Option<Box<dyn StoredIdIndex>>,
}

/// How many restore images a store holds now.
type StoredCount = Box<dyn Fn() -> usize + Send + Sync>;

impl<R: RecordReader> RecordHistory<R> {
    /// Reads chunks of `chunk_len` transfers through `reader`.
    pub fn new(chunk_len: usize, reader: R) -> RecordHistory<R> {
        RecordHistory {
            reader,
            chunk_len,
            balances: None,
            failed: None,
            expired: None,
            images: None,
            lineage: None,
            expired_images: None,
            ids: None,
        }
    }

    /// Reads evicted failed ids (in chunks of as many) through `reader`.
    pub fn with_failed(mut self, reader: impl RecordReader + 'static) -> RecordHistory<R> {
        self.failed = Some(Box::new(reader));
        self
    }

    /// Reads evicted expired holds (in chunks of as many) through `reader`.
    pub fn with_expired(mut self, reader: impl RecordReader + 'static) -> RecordHistory<R> {
        self.expired = Some(Box::new(reader));
        self
    }

    /// Reads chunks' lineage images through `reader`; `stored` says how many there are.
    pub fn with_lineage(
        mut self,
        reader: impl RecordReader + 'static,
        stored: impl Fn() -> usize + Send + Sync + 'static,
    ) -> RecordHistory<R> {
        self.lineage = Some((Box::new(reader), Box::new(stored)));
        self
    }

    /// Reads the expired holds' chunks' images through `reader`; `stored` says how many there
    /// are.
    pub fn with_expired_images(
        mut self,
        reader: impl RecordReader + 'static,
        stored: impl Fn() -> usize + Send + Sync + 'static,
    ) -> RecordHistory<R> {
        self.expired_images = Some((Box::new(reader), Box::new(stored)));
        self
    }

    /// Reads chunks' restore images through `reader`; `stored` says how many there are.
    pub fn with_images(
        mut self,
        reader: impl RecordReader + 'static,
        stored: impl Fn() -> usize + Send + Sync + 'static,
    ) -> RecordHistory<R> {
        self.images = Some((Box::new(reader), Box::new(stored)));
        self
    }

    /// Answers which stored transfer an id may name through `index`.
    pub fn with_ids(mut self, index: impl StoredIdIndex + 'static) -> RecordHistory<R> {
        self.ids = Some(Box::new(index));
        self
    }

    /// Reads evicted balance entries (in chunks of as many) through `reader`.
    pub fn with_balances(mut self, reader: impl RecordReader + 'static) -> RecordHistory<R> {
        self.balances = Some(Box::new(reader));
        self
    }
}

impl<R> core::fmt::Debug for RecordHistory<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordHistory").field("chunk_len", &self.chunk_len).finish_non_exhaustive()
    }
}

impl<R: RecordReader> History for RecordHistory<R> {
    fn read(&self, index: u32) -> Result<Transfer, String> {
        let mut bytes = [0u8; RECORD_SIZE];
        self.reader.read_at(u64::from(index) * RECORD_SIZE as u64, &mut bytes)?;
        Ok(Transfer::decode(&bytes))
    }

    fn read_chunk(&self, k: usize, out: &mut Vec<Transfer>) -> Result<(), String> {
        self.read_chunk_summed(k, out).map(|_| ())
    }

    fn read_chunk_summed(&self, k: usize, out: &mut Vec<Transfer>) -> Result<Option<u128>, String> {
        let len = self.chunk_len * RECORD_SIZE;
        self.reader.read_chunk_decoded((k * len) as u64, len, out)
    }

    fn read_many(&self, indices: &[u32], out: &mut Vec<Transfer>) -> Result<(), String> {
        let offsets: Vec<u64> = indices.iter().map(|&index| u64::from(index) * RECORD_SIZE as u64).collect();
        let mut bytes = vec![0u8; indices.len() * RECORD_SIZE];
        self.reader.read_many_at(&offsets, RECORD_SIZE, &mut bytes)?;
        decode_records(&bytes, out);
        Ok(())
    }

    fn read_image(&self, k: usize) -> Result<Option<ChunkImage>, String> {
        let Some((reader, stored)) = &self.images else { return Ok(None) };
        if k >= stored() {
            return Ok(None);
        }
        let len = super::image::image_bytes(self.chunk_len);
        let mut bytes = vec![0u8; len];
        reader.read_at((k * len) as u64, &mut bytes)?;
        ChunkImage::decode(&bytes, self.chunk_len).map(Some)
    }

    fn read_image_links(&self, k: usize) -> Result<Option<ChunkImage>, String> {
        let Some((reader, stored)) = &self.images else { return Ok(None) };
        if k >= stored() {
            return Ok(None);
        }
        let (skip, len) = ChunkImage::after_hashes(self.chunk_len);
        let mut bytes = vec![0u8; len];
        reader.read_at((k * super::image::image_bytes(self.chunk_len) + skip) as u64, &mut bytes)?;
        ChunkImage::decode_after_hashes(&bytes, self.chunk_len).map(Some)
    }

    fn has_lineage(&self) -> bool {
        self.lineage.is_some()
    }

    fn lineage_chunks(&self) -> usize {
        self.lineage.as_ref().map_or(0, |(_, stored)| stored())
    }

    fn read_lineage(&self, k: usize) -> Result<Option<ChunkLineage>, String> {
        let Some((reader, stored)) = &self.lineage else { return Ok(None) };
        if k >= stored() {
            return Ok(None);
        }
        let len = super::lineage::lineage_bytes(self.chunk_len);
        let mut bytes = vec![0u8; len];
        reader.read_at((k * len) as u64, &mut bytes)?;
        ChunkLineage::decode(&bytes, self.chunk_len).map(Some)
    }

    fn expired_images_chunks(&self) -> usize {
        self.expired_images.as_ref().map_or(0, |(_, stored)| stored())
    }

    fn read_expired_image(&self, k: usize) -> Result<Option<Vec<(u128, u64)>>, String> {
        let Some((reader, stored)) = &self.expired_images else { return Ok(None) };
        if k >= stored() {
            return Ok(None);
        }
        let mut bytes = vec![0u8; super::lineage::expired_image_bytes(self.chunk_len)];
        reader.read_at((k * bytes.len()) as u64, &mut bytes)?;
        super::lineage::decode_expired_image(&bytes, self.chunk_len).map(Some)
    }

    fn read_expired(&self, places: &[u32], out: &mut Vec<ExpiredHold>) -> Result<(), String> {
        read_many_of(side(&self.expired, "expired holds")?, places, EXPIRED_SIZE, decode_expired, out)
    }

    fn read_expired_chunk(&self, k: usize, out: &mut Vec<ExpiredHold>) -> Result<(), String> {
        read_chunk_of(side(&self.expired, "expired holds")?, k, self.chunk_len, EXPIRED_SIZE, decode_expired, out)
    }

    fn read_failed(&self, indices: &[u32], out: &mut Vec<FailedTransfer>) -> Result<(), String> {
        read_many_of(side(&self.failed, "failed ids")?, indices, FAILED_SIZE, decode_failed, out)
    }

    fn read_failed_chunk(&self, k: usize, out: &mut Vec<FailedTransfer>) -> Result<(), String> {
        read_chunk_of(side(&self.failed, "failed ids")?, k, self.chunk_len, FAILED_SIZE, decode_failed, out)
    }

    fn read_balances(&self, indices: &[u32], out: &mut Vec<BalanceEntry>) -> Result<(), String> {
        read_many_of(side(&self.balances, "balance entries")?, indices, BALANCE_ENTRY_SIZE, decode_balance_entries, out)
    }

    fn read_balance_chunk(&self, k: usize, out: &mut Vec<BalanceEntry>) -> Result<(), String> {
        read_chunk_of(side(&self.balances, "balance entries")?, k, self.chunk_len, BALANCE_ENTRY_SIZE, decode_balance_entries, out)
    }

    fn ids_stored_chunks(&self) -> usize {
        self.ids.as_ref().map_or(0, |ids| ids.chunks())
    }

    fn stored_ids(&self, hashes: &[u64], out: &mut Vec<(u64, u32)>) -> Result<(), String> {
        self.ids.as_ref().map_or(Ok(()), |ids| ids.candidates(hashes, out))
    }
}

/// Entry `k` of an append-only side table (failed ids, expired holds): in memory, or
/// prefetched for this batch.
#[inline]
pub(crate) fn held<T: Copy>(table: &crate::Chunked<T>, prefetched: &FxHashMap<u32, T>, k: u32) -> Option<T> {
    table.get(k as usize).or_else(|| prefetched.get(&k)).copied()
}

/// The records `wanted` read by `read`, one for each (checked): a prefetch's.
pub(crate) fn read_wanted<T>(wanted: &[u32], read: impl FnOnce(&[u32], &mut Vec<T>) -> Result<(), String>) -> Result<Vec<T>, String> {
    let mut records = Vec::with_capacity(wanted.len());
    read(wanted, &mut records)?;
    if records.len() != wanted.len() {
        return Err(format!("{} records read for {} asked", records.len(), wanted.len()));
    }
    Ok(records)
}

/// The reader of one of a [`RecordHistory`]'s side stores, or that it has none for `what`.
fn side<'r>(reader: &'r Option<Box<dyn RecordReader>>, what: &str) -> Result<&'r dyn RecordReader, String> {
    reader.as_deref().ok_or_else(|| format!("this history has no store of {what}"))
}

/// Records `indices` of `size` bytes each (record `i` at `i × size`) through `reader`, decoded
/// and appended to `out` in that order.
fn read_many_of<T>(
    reader: &dyn RecordReader,
    indices: &[u32],
    size: usize,
    decode: fn(&[u8], &mut Vec<T>) -> Result<(), String>,
    out: &mut Vec<T>,
) -> Result<(), String> {
    let offsets: Vec<u64> = indices.iter().map(|&index| u64::from(index) * size as u64).collect();
    let mut bytes = vec![0u8; indices.len() * size];
    reader.read_many_at(&offsets, size, &mut bytes)?;
    decode(&bytes, out)
}

/// Chunk `k` (of `chunk_len` records of `size` bytes) through `reader`, decoded into `out`
/// (cleared first).
fn read_chunk_of<T>(
    reader: &dyn RecordReader,
    k: usize,
    chunk_len: usize,
    size: usize,
    decode: fn(&[u8], &mut Vec<T>) -> Result<(), String>,
    out: &mut Vec<T>,
) -> Result<(), String> {
    let mut bytes = vec![0u8; chunk_len * size];
    reader.read_at((k * chunk_len * size) as u64, &mut bytes)?;
    out.clear();
    decode(&bytes, out)
}

/// A snapshot could not read an evicted chunk back from the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryUnreadable(pub String);

impl From<HistoryUnreadable> for () {
    fn from(_: HistoryUnreadable) {}
}

impl From<HistoryUnreadable> for std::io::Error {
    fn from(e: HistoryUnreadable) -> std::io::Error {
        std::io::Error::other(format!("history unreadable: {}", e.0))
    }
}

/// The engine's evicted-record bookkeeping (none of it is state: the digest, snapshots and
/// results never depend on what is in memory).
#[derive(Debug, Default)]
pub(crate) struct Cold {
    /// Still-pending holds of evicted chunks, by transfer index.
    pinned: Pinned,
    /// Records the node read ahead of the batch being applied.
    prefetched: FxHashMap<u32, Transfer>,
    /// Failed ids the node read ahead of the batch being applied, by index into `failed`.
    pub(crate) prefetched_failed: FxHashMap<u32, FailedTransfer>,
    /// Expired holds the node read ahead of the batch being applied, by place in `expired`.
    pub(crate) prefetched_expired: FxHashMap<u32, ExpiredHold>,
    pub(crate) history: Option<Arc<dyn History>>,
    /// The first read of `history` that failed since the last [`Engine::take_history_failure`].
    failure: RefCell<Option<String>>,
    /// Stored chunks the restore took from their images (see `image`), not their records.
    pub(crate) restored_from_images: usize,
    /// Stored chunks the restore took hold states from their lineage images (see `lineage`).
    pub(crate) restored_from_lineage: usize,
    /// What the images not yet written need, while the node writes them
    /// ([`Engine::keep_image_notes`]); `None`: nothing noted.
    pub(crate) notes: Option<super::lineage::ImageNotes>,
    /// Stored chunks of expired holds the restore took their images of (see `lineage`).
    pub(crate) restored_from_expired_images: usize,
    /// Chunks of transfers whose ids the history's id index holds ([`Engine::set_ids_stored`]).
    pub(crate) ids_stored: usize,
    /// What the history's id index named for the ids of the batches prefetched: (hash,
    /// index) below the stored ids' end, sorted.
    stored_ids: Vec<(u64, u32)>,
    /// The hashes the prefetch asks the history's id index for (kept to reuse its memory).
    asked: Vec<u64>,
}

impl Clone for Cold {
    fn clone(&self) -> Cold {
        Cold {
            pinned: self.pinned.clone(),
            prefetched: self.prefetched.clone(),
            prefetched_failed: self.prefetched_failed.clone(),
            prefetched_expired: self.prefetched_expired.clone(),
            history: self.history.clone(),
            failure: RefCell::default(),
            restored_from_images: self.restored_from_images,
            restored_from_lineage: self.restored_from_lineage,
            notes: self.notes.clone(),
            restored_from_expired_images: self.restored_from_expired_images,
            ids_stored: self.ids_stored,
            stored_ids: self.stored_ids.clone(),
            asked: Vec::new(),
        }
    }
}

/// The indexes `found` ((hash, index), sorted) holds under `hash`.
#[inline]
pub(crate) fn indexes_under(found: &[(u64, u32)], hash: u64) -> impl Iterator<Item = u32> + '_ {
    let from = found.partition_point(|&(h, _)| h < hash);
    found[from..].iter().take_while(move |&&(h, _)| h == hash).map(|&(_, index)| index)
}

/// Records kept by transfer index: a small map of index to slot beside a vector of records, so
/// a probe reads 8-byte entries (not 128-byte records spread over the cache), then one record.
/// Keyed as the pending holds are ([`IndexTable`]): holds are pinned a chunk at a time, in
/// index order, and mostly captured in about that order.
#[derive(Clone, Debug, Default)]
struct Pinned {
    slots: IndexTable<u32>,
    records: Vec<Transfer>,
    /// Slots of `records` emptied by a removal, for the next insert.
    free: Vec<u32>,
}

impl Pinned {
    #[inline]
    fn get(&self, index: &u32) -> Option<&Transfer> {
        self.slots.get(*index).map(|slot| &self.records[slot as usize])
    }

    /// Pins `record` at `index`, which is not pinned (a chunk is evicted once).
    fn insert(&mut self, index: u32, record: Transfer) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.records[slot as usize] = record;
                slot
            }
            None => {
                self.records.push(record);
                (self.records.len() - 1) as u32
            }
        };
        self.slots.insert(index, slot);
    }

    fn remove(&mut self, index: &u32) {
        if let Some(slot) = self.slots.remove(*index) {
            self.free.push(slot);
        }
        if self.slots.is_empty() {
            // Frees the memory of the largest set ever pinned once none is.
            *self = Pinned::default();
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Pinned holds' entries stay in the id index though their ids are stored: captures and
/// releases name them, and memory answers.
impl Kept for Pinned {
    #[inline]
    fn keeps(&self, value: u32) -> bool {
        self.slots.get(value).is_some()
    }

    fn count(&self) -> usize {
        self.slots.len()
    }
}

impl Cold {
    /// Keeps `why` a read of the history failed, if it is the first since the last
    /// [`Engine::take_history_failure`].
    pub(crate) fn note_read_failure(&self, why: String) {
        self.failure.borrow_mut().get_or_insert(why);
    }

    /// What the id index keeps though stored: the pinned records' indexes.
    pub(crate) fn kept(&self) -> &impl Kept {
        &self.pinned
    }

    /// Whether any record is pinned.
    pub(crate) fn pinned_any(&self) -> bool {
        !self.pinned.is_empty()
    }

    /// The indexes of the evicted records memory holds: pinned or prefetched, in no order.
    pub(crate) fn held_evicted_indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.pinned.slots.iter().map(|(index, _)| index).chain(self.prefetched.keys().copied())
    }

    /// Pins `record` at `index`, an evicted pending hold (a restore that derives them).
    pub(crate) fn pin(&mut self, index: u32, record: Transfer) {
        self.pinned.insert(index, record);
    }

    /// Unpins `indexes` (holds finished and settled in the digest; any not pinned are skipped).
    /// A pinned hold leaves this way once finished, not by a pass over every pinned one at each
    /// eviction.
    pub(crate) fn unpin(&mut self, indexes: &[u32]) {
        for index in indexes {
            self.pinned.remove(index);
        }
    }

    /// The indexes the history's id index named for `hash` in this batch's prefetch.
    #[inline]
    pub(crate) fn stored_ids_of(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        indexes_under(&self.stored_ids, hash)
    }

    /// Whether the prefetch found anything in the history's id index (almost never: new ids).
    #[inline]
    pub(crate) fn stored_ids_found(&self) -> bool {
        !self.stored_ids.is_empty()
    }
}

impl Engine {
    /// Transfer `index` for applying: in memory, pinned or prefetched; anything else is a
    /// prefetch the node missed, a broken invariant.
    #[inline]
    pub(crate) fn stored(&self, index: u32) -> Transfer {
        match self.transfers.get(index as usize) {
            Some(t) => *t,
            None => self.record_out_of_memory(index),
        }
    }

    #[cold]
    fn record_out_of_memory(&self, index: u32) -> Transfer {
        *self.held_evicted(index).unwrap_or_else(|| panic!("transfer index {index} is evicted and was not prefetched"))
    }

    /// Evicted transfer `index` if memory still holds it: pinned or prefetched.
    fn held_evicted(&self, index: u32) -> Option<&Transfer> {
        self.cold.pinned.get(&index).or_else(|| self.cold.prefetched.get(&index))
    }

    /// Transfer `index` if memory holds it: stored in a chunk still held, pinned or prefetched.
    pub(crate) fn in_memory(&self, index: u32) -> Option<Transfer> {
        self.transfers.get(index as usize).or_else(|| self.held_evicted(index)).copied()
    }

    /// Transfer `index` for a query: from memory or, if evicted, from the history. A failed
    /// read answers a zeroed record and is kept for [`Engine::take_history_failure`].
    pub(crate) fn stored_through(&self, index: u32) -> Transfer {
        self.in_memory(index).unwrap_or_else(|| {
            let history = self.cold.history.as_ref().expect("an evicted chunk implies a history to read it from");
            history.read(index).unwrap_or_else(|e| {
                self.cold.failure.borrow_mut().get_or_insert(e);
                Transfer::default()
            })
        })
    }

    /// Transfers `indices` for a query, appended to `out` in that order: from memory, and the
    /// evicted ones read from the history together ([`History::read_many`]). A failed read
    /// answers zeroed records and is kept for [`Engine::take_history_failure`].
    pub(crate) fn stored_through_many(&self, indices: &[u32], out: &mut Vec<Transfer>) {
        self.gather_through(indices, |index| self.in_memory(index), |cold, read| self.history().read_many(cold, read), out);
    }

    /// The engine's history (asserted: only an evicted chunk is read, which implies one).
    pub(crate) fn history(&self) -> &dyn History {
        self.cold.history.as_deref().expect("an evicted chunk implies a history to read it from")
    }

    /// Records `indices`, appended to `out` in that order: those `held` in memory, and the others
    /// read together by `read_many`. A failed read answers default records and is kept for
    /// [`Engine::take_history_failure`].
    pub(crate) fn gather_through<T: Default>(
        &self,
        indices: &[u32],
        held: impl Fn(u32) -> Option<T>,
        read_many: impl FnOnce(&[u32], &mut Vec<T>) -> Result<(), String>,
        out: &mut Vec<T>,
    ) {
        let (mut places, mut cold) = (Vec::new(), Vec::new());
        for &index in indices {
            out.push(held(index).unwrap_or_else(|| {
                places.push(out.len());
                cold.push(index);
                T::default()
            }));
        }
        if cold.is_empty() {
            return;
        }
        let mut read = Vec::with_capacity(cold.len());
        match read_many(&cold, &mut read) {
            Ok(()) => places.into_iter().zip(read).for_each(|(place, record)| out[place] = record),
            Err(e) => self.cold.note_read_failure(e),
        }
    }

    /// Evicts every full chunk of the append-only table `table` selects below `end` still held,
    /// never the newest full one, after settling the digest (which reads new records): what the
    /// node does once they are stored durably. Between batches only (asserted).
    pub(crate) fn evict_table_below<T: Clone>(&mut self, end: usize, table: fn(&mut Engine) -> &mut crate::chunked::Chunked<T>) {
        let held = table(self);
        let end = end.min(held.sealed_chunks().saturating_sub(1));
        if end <= held.evicted_chunks() {
            return;
        }
        assert!(!self.recording, "eviction between batches only");
        self.settle_digest();
        let held = table(self);
        for k in held.evicted_chunks()..end {
            held.evict(k);
        }
    }

    /// Calls `f` with every record of `table`, oldest first, evicted chunks read back with
    /// `read_chunk` (checks and audits). A failed read is kept for
    /// [`Engine::take_history_failure`] and its chunk skipped.
    pub(crate) fn for_each_through<T: Clone>(
        &self,
        table: &crate::chunked::Chunked<T>,
        read_chunk: impl Fn(&dyn History, usize, &mut Vec<T>) -> Result<(), String>,
        mut f: impl FnMut(&T),
    ) {
        let mut read = Vec::new();
        for k in 0..table.chunk_count() {
            let mut chunk = table.chunk(k);
            if chunk.is_empty() {
                if let Err(e) = read_chunk(self.history(), k, &mut read) {
                    self.cold.note_read_failure(e);
                    continue;
                }
                chunk = &read;
            }
            chunk.iter().for_each(&mut f);
        }
    }

    /// Every stored transfer, oldest first, read through to the history where evicted (checks
    /// and audits, O(transfers)).
    pub fn all_transfers(&self) -> impl Iterator<Item = Transfer> + '_ {
        (0..self.transfers.len() as u32).map(|i| self.stored_through(i))
    }

    /// Why the last queries' answers cannot be trusted: a history read failed (`None`: all
    /// read). The node checks this after each query and answers an error instead.
    pub fn take_history_failure(&self) -> Option<String> {
        self.cold.failure.borrow_mut().take()
    }

    /// Sets where queries read evicted transfers from.
    pub fn set_history(&mut self, history: Arc<dyn History>) {
        self.cold.history = Some(history);
    }

    /// Stores transfers (and balance entries) in chunks of `2^bits` (the default is
    /// [`crate::chunked::CHUNK_BITS`]): smaller chunks let tests evict, and read back, most of a
    /// small history. Only while neither is stored (asserted).
    pub fn set_transfer_chunk_bits(&mut self, bits: u32) {
        let empty = self.transfers.is_empty() && self.balance_history.len() == 0 && self.failed.is_empty() && self.expired.is_empty();
        assert!(empty, "the chunk size is chosen before the first transfer");
        self.transfers = crate::chunked::Chunked::with_chunk_bits(bits);
        self.balance_history.entries = crate::chunked::Chunked::with_chunk_bits(bits);
        self.failed = crate::chunked::Chunked::with_chunk_bits(bits);
        self.expired = crate::chunked::Chunked::with_chunk_bits(bits);
    }

    /// Transfers per chunk.
    pub fn transfer_chunk_len(&self) -> usize {
        self.transfers.chunk_len()
    }

    /// Full chunks of transfers (the open chunk not counted): those the node may store.
    pub fn sealed_transfer_chunks(&self) -> usize {
        self.transfers.sealed_chunks()
    }

    /// Full chunk `k`'s transfers while in memory.
    pub fn transfer_chunk(&self, k: usize) -> Option<&Arc<Vec<Transfer>>> {
        self.transfers.sealed_chunk(k)
    }

    /// Stored chunks the last restore took from their images, not their records (0 after any
    /// other start).
    pub fn chunks_restored_from_images(&self) -> usize {
        self.cold.restored_from_images
    }

    /// Chunks evicted so far (always the oldest).
    pub fn evicted_chunks(&self) -> usize {
        self.transfers.evicted_chunks()
    }

    /// Drops full chunk `k` from memory, which the node has stored durably; its pending holds
    /// are pinned (until they finish and the digest has settled them: `settle_digest`). Between
    /// batches only, with the digest settled; never the newest full chunk (asserted).
    fn evict_chunk(&mut self, k: usize) {
        assert!(!self.recording, "eviction between batches only");
        let Some(chunk) = self.transfers.sealed_chunk(k) else { return };
        let first = (k * self.transfers.chunk_len()) as u32;
        // A chunk whose ids a restore left to the history's id index: its pending holds' come back.
        let ids_left = k < self.cold.ids_stored;
        // With no pending hold at all there is nothing to pin (a restart's history, most often).
        let holds = if self.holds.is_empty() { &[][..] } else { &chunk[..] };
        for (i, t) in holds.iter().enumerate().filter(|(_, t)| t.flags & tf::PENDING != 0) {
            let index = first + i as u32;
            if self.holds.contains_key(&index) {
                // Pinned, its entry is kept in the id index ([`Kept`]).
                self.cold.pinned.insert(index, *t);
                if ids_left && !crate::is_reserved_id(t.id) {
                    self.transfer_ids.restore_kept(id_hash(t.id), index, &self.cold.pinned);
                }
            }
        }
        self.transfers.evict(k);
    }

    /// Evicted transfers `commands` may read that are neither pinned nor prefetched, appended to
    /// `wanted` (each once). A record handed in can name another (a re-sent capture names its
    /// hold), so the node asks again after each [`Engine::prefetch`] until nothing is wanted.
    pub fn cold_wanted(&self, commands: &[Command], wanted: &mut Vec<u32>) {
        // Chunks are evicted oldest first: the evicted records are exactly those below this.
        let evicted_end = (self.transfers.evicted_chunks() * self.transfers.chunk_len()) as u32;
        if evicted_end == 0 {
            return;
        }
        let start = wanted.len();
        // One index probe per id and no dependency between them, so the CPU overlaps their
        // misses (the apply's gather pass finds them cached); an evicted record is the rare case.
        for command in commands {
            for id in command.transfer_ids() {
                if id == 0 || id == u128::MAX {
                    continue;
                }
                // Every record the id's hash names, so the apply can check which has the id,
                // and what finished each that is a finished hold (a capture compares its state).
                // What finished a hold came after it: in memory if the hold is.
                self.stored_candidates(id, |index| {
                    if index >= evicted_end {
                        return;
                    }
                    self.want_evicted(index, evicted_end, &mut *wanted, start);
                    if self.cold.pinned.get(&index).is_some() {
                        // Pending, or finished since the last settle, and so since the last
                        // eviction (which settles first): what finished it is in memory.
                        debug_assert!(self.finished_by(index).is_none_or(|by| by & FAILED_TAG != 0 || by >= evicted_end));
                        return;
                    }
                    if let Some(by) = self.finished_by(index).filter(|by| by & FAILED_TAG == 0 && *by < evicted_end) {
                        self.want_evicted(by, evicted_end, &mut *wanted, start);
                    }
                });
            }
        }
    }

    /// Wants evicted record `index` unless it is in memory already; if it is, the hold it names
    /// (a stored capture or release is compared with its hold).
    fn want_evicted(&self, index: u32, evicted_end: u32, wanted: &mut Vec<u32>, start: usize) {
        match self.held_evicted(index) {
            Some(found) if found.pending_id != 0 => {
                self.stored_candidates(found.pending_id, |hold| {
                    if hold < evicted_end && self.held_evicted(hold).is_none() && !wanted[start..].contains(&hold) {
                        wanted.push(hold);
                    }
                });
            }
            Some(_) => {}
            None => {
                if !wanted[start..].contains(&index) {
                    wanted.push(index);
                }
            }
        }
    }

    /// Evicts every full chunk below `end` that is still held, but never the newest full chunk:
    /// what the node does once chunks below `end` are stored durably.
    pub fn evict_chunks_below(&mut self, end: usize) {
        let end = end.min(self.transfers.sealed_chunks().saturating_sub(1));
        if end <= self.transfers.evicted_chunks() {
            return;
        }
        // The digest folds in new transfers and changed holds by reading their records.
        self.settle_digest();
        for k in self.transfers.evicted_chunks()..end {
            self.evict_chunk(k);
        }
    }

    /// Reads back, through the engine's history, every evicted transfer `commands` may read
    /// (see [`Engine::cold_wanted`]) and hands them in, after forgetting the last batch's: what
    /// the node does before applying a batch, and replay before applying a logged one. Returns
    /// how many were read.
    pub fn prefetch_cold(&mut self, commands: &[Command]) -> Result<usize, String> {
        self.prefetch_clear();
        self.prefetch_more(commands)
    }

    /// As [`Engine::prefetch_cold`] keeping what was prefetched already: for the next of several
    /// batches applied together.
    pub fn prefetch_more(&mut self, commands: &[Command]) -> Result<usize, String> {
        if self.transfers.evicted_chunks() == 0 && self.failed.evicted_chunks() == 0 && self.expired.evicted_chunks() == 0 {
            return Ok(0);
        }
        let history = Arc::clone(self.cold.history.as_ref().expect("an evicted chunk implies a history to read it from"));
        // First the ids left to the history's id index: what finds a hold's expiry, say. A
        // command's own id is almost always new, so memory is asked only about the ids it names.
        self.find_stored_ids(history.as_ref(), |engine, asked| {
            for command in commands {
                let [own, named @ ..] = command.transfer_ids();
                engine.ask_about(asked, own, false);
                named.into_iter().for_each(|id| engine.ask_about(asked, id, true));
            }
        })?;
        let mut read = self.prefetch_failed(history.as_ref(), commands)? + self.prefetch_expired(history.as_ref(), commands)?;
        let mut wanted = Vec::new();
        loop {
            wanted.clear();
            self.cold_wanted(commands, &mut wanted);
            if wanted.is_empty() {
                return Ok(read);
            }
            let mut transfers = Vec::with_capacity(wanted.len());
            history.read_many(&wanted, &mut transfers)?;
            // A record read may name a hold (a re-sent capture), whose id may be stored only.
            self.find_stored_ids(history.as_ref(), |engine, asked| {
                transfers.iter().for_each(|t| engine.ask_about(asked, t.pending_id, true))
            })?;
            for (&index, transfer) in wanted.iter().zip(transfers) {
                self.prefetch(index, transfer);
            }
            read += wanted.len();
        }
    }

    /// Asks the history's id index which stored transfers the ids `gather` hands to
    /// [`Engine::ask_about`] may name, if it holds any the engine left to it, and keeps the
    /// answers for this batch ([`Cold::stored_ids_of`]). `gather` is a plain loop over the
    /// batch's commands, not an iterator chain: it runs for every command, and a flattened
    /// chain of each command's ids compiled to more work than the asking itself.
    fn find_stored_ids(&mut self, history: &dyn History, gather: impl FnOnce(&Self, &mut Vec<u64>)) -> Result<(), String> {
        if self.cold.ids_stored == 0 {
            return Ok(());
        }
        let mut asked = core::mem::take(&mut self.cold.asked);
        asked.clear();
        gather(self, &mut asked);
        let mut found = core::mem::take(&mut self.cold.stored_ids);
        let outcome = self.ask_stored_ids(history, &asked, &mut found);
        (self.cold.asked, self.cold.stored_ids) = (asked, found);
        outcome?;
        self.cold.stored_ids.dedup();
        Ok(())
    }

    /// Appends `id`'s hash to `asked` unless the history's id index need not be asked about it:
    /// ids of the reserved range are exact in memory, and an id that names a transfer (`named`:
    /// a capture's hold) is not asked if memory holds that transfer.
    #[inline]
    fn ask_about(&self, asked: &mut Vec<u64>, id: u128, named: bool) {
        if id != 0 && id != u128::MAX && !crate::is_reserved_id(id) && !(named && self.known_in_memory(id)) {
            asked.push(id_hash(id));
        }
    }

    /// Appends what the history's id index holds under `hashes` to `found` and sorts it, keeping
    /// only what names a chunk the engine left to the index: entries past it name chunks the
    /// engine holds (a restart replays them).
    fn ask_stored_ids(&self, history: &dyn History, hashes: &[u64], found: &mut Vec<(u64, u32)>) -> Result<(), String> {
        let from = found.len();
        history.stored_ids(hashes, found)?;
        if found.len() > from {
            let end = self.ids_stored_end();
            found.retain(|&(_, index)| index < end);
            found.sort_unstable();
        }
        Ok(())
    }

    /// Whether `id` names a transfer memory holds (in a chunk, pinned or prefetched), found in
    /// the id index: then the history's id index need not be asked (a capture's pending hold).
    #[inline]
    fn known_in_memory(&self, id: u128) -> bool {
        let in_memory = |value: u32| match IdSlot::of(value) {
            IdSlot::Transfer(index) => self.in_memory(index).is_some_and(|t| t.id == id),
            IdSlot::Failed(_) => false,
        };
        self.transfer_ids.find(id, in_memory).is_some()
    }

    /// One past the last transfer index whose id the history's id index holds.
    pub(crate) fn ids_stored_end(&self) -> u32 {
        (self.cold.ids_stored * self.transfers.chunk_len()) as u32
    }

    /// The history's id index holds the ids of chunks below `chunks` from now on, so they may
    /// leave memory: what the node says once its index is written (clamped to the chunks
    /// evicted; it never shrinks).
    pub fn set_ids_stored(&mut self, chunks: usize) {
        let chunks = chunks.min(self.transfers.evicted_chunks());
        if chunks > self.cold.ids_stored {
            self.cold.ids_stored = chunks;
            self.transfer_ids.set_stored_below(self.ids_stored_end(), &self.cold.pinned);
        }
    }

    /// Chunks of transfers whose ids the engine left to the history's id index.
    pub fn ids_stored_chunks(&self) -> usize {
        self.cold.ids_stored
    }

    /// Ids the transfer id index holds in memory (the rest are in the history's id index).
    pub fn ids_in_memory(&self) -> usize {
        self.transfer_ids.len()
    }

    /// Which stored transfers each of `ids` may name per the history's id index, for a query
    /// or a restore: (hash, index) sorted, or nothing if it holds none of the engine's (a failed
    /// read answers nothing and is kept for [`Engine::take_history_failure`]).
    pub(crate) fn stored_ids_through(&self, ids: &[u128]) -> Vec<(u64, u32)> {
        if self.cold.ids_stored == 0 {
            return Vec::new();
        }
        let hashes: Vec<u64> = ids.iter().filter(|&&id| !crate::is_reserved_id(id)).map(|&id| id_hash(id)).collect();
        let mut found = Vec::new();
        if let Err(e) = self.ask_stored_ids(self.history(), &hashes, &mut found) {
            self.cold.note_read_failure(e);
            return Vec::new();
        }
        found
    }

    /// Hands in evicted transfer `index`, read by the node, for the next batch.
    pub fn prefetch(&mut self, index: u32, transfer: Transfer) {
        debug_assert!(self.transfers.is_evicted(index as usize));
        self.cold.prefetched.insert(index, transfer);
    }

    /// Forgets what was prefetched (after the batch that needed it).
    pub fn prefetch_clear(&mut self) {
        self.cold.stored_ids.clear();
        self.cold.prefetched.clear();
        self.cold.prefetched_failed.clear();
        self.cold.prefetched_expired.clear();
    }
}
