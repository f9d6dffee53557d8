//! A stored chunk's lineage image: which of its transfers are holds, which hold each of its
//! captures and releases finished, and what each of its reversals reversed, so a restart
//! rebuilds the hold states and reversals of a chunk without reading its records.
//!
//! Per transfer a u32 ([`ChunkLineage::named`]): [`NAMED_HOLD`] for a hold, the transfer index
//! of the hold a capture or release finished, [`NAMED_REVERSAL`] for a reversal, or
//! [`NAMED_NONE`]. Per chunk: its reversals' originals' ids and amounts, in order (up to
//! [`reversals_max`]); the sum of the state digest terms of the holds its captures and releases
//! finished, in the state they finished them in (each term needs the hold's id and expiry, which
//! the chunk's records do not all carry); and whether a restore must still read its records:
//! more reversals than the table holds, or an id of the standing orders' reserved range (kept by
//! exact id). A restore also reads the records of a chunk holding an expired hold (its digest
//! term needs the hold's expiry). Everything else about a hold a restore needs it has: a pending
//! hold's record is read back and pinned anyway, the hot state.
//!
//! The engine notes each capture and release as it applies it ([`Resolution`]) while the node
//! keeps lineage images ([`Engine::keep_image_notes`]), and the node takes a chunk's notes when
//! it hands the chunk to its writer.

use super::digest::hold_term;
use super::{Engine, Hold, HoldStatus, FAILED_TAG};
use crate::types::{transfer_flags as tf, Transfer};

/// [`ChunkLineage::named`] of a transfer that is neither a hold, a capture, a release nor a
/// reversal.
pub const NAMED_NONE: u32 = u32::MAX;
/// [`ChunkLineage::named`] of a hold. Transfer indexes are below it (the index space ends at
/// `FAILED_TAG`).
pub const NAMED_HOLD: u32 = u32::MAX - 1;
/// [`ChunkLineage::named`] of a reversal (its original's id and amount in the chunk's table).
pub const NAMED_REVERSAL: u32 = u32::MAX - 2;

/// Capacity of the noted resolutions above which forgetting most of them gives the memory back:
/// two full chunks of captures, what a running node holds at most, fit below it.
const RESOLUTIONS_KEPT_MAX: usize = 1 << 17;

/// Bytes of a reversal's entry in the table: its original's id and its amount (u128 each).
const REVERSAL_ENTRY_BYTES: usize = 32;

/// Reversals a lineage image of a chunk of `chunk_len` lists: one transfer in 16 (2 048 of
/// 32 768, 64 KiB), at least 2. A chunk with more is restored from its records.
pub const fn reversals_max(chunk_len: usize) -> usize {
    let max = chunk_len / 16;
    if max < 2 {
        2
    } else {
        max
    }
}

/// A capture or release as applied: its transfer index, its hold's, and the hold's expiry
/// time (0: none), what its chunk's lineage image needs besides the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The capture's or release's transfer index.
    pub by: u32,
    /// The hold's transfer index.
    pub hold: u32,
    /// The hold's expiry time in ns (0: none).
    pub expires_at: u64,
}

/// A chunk's lineage image (see the module).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkLineage {
    /// Per transfer: [`NAMED_HOLD`], the hold a capture or release finished, [`NAMED_REVERSAL`]
    /// or [`NAMED_NONE`].
    pub named: Vec<u32>,
    /// Each reversal's original's id and amount, in order; empty if they are more than
    /// [`reversals_max`] (the records are read then).
    pub reversals: Vec<(u128, u128)>,
    /// The state digest terms of the holds the chunk's captures and releases finished, summed.
    pub finished_sum: u128,
    /// A restore must read the chunk's records (too many reversals, or a reserved id).
    pub needs_records: bool,
}

/// Bytes of a stored lineage image of a chunk of `chunk_len` transfers: each transfer's named
/// index (u32), the reversals' table ([`reversals_max`] entries of 32 bytes), then the sum
/// (u128) and the records flag (u8), zeros to a whole number of 4 KiB pages.
pub const fn lineage_bytes(chunk_len: usize) -> usize {
    (chunk_len * 4 + reversals_max(chunk_len) * REVERSAL_ENTRY_BYTES + 17).next_multiple_of(4096)
}

impl ChunkLineage {
    /// The lineage of `chunk`, whose first transfer is at index `first`, from the resolutions of
    /// its captures and releases, in order (one for each: asserted).
    pub fn of(chunk: &[Transfer], first: u32, resolutions: &[Resolution]) -> ChunkLineage {
        let mut lineage = ChunkLineage::plain(chunk.len());
        let mut next = resolutions.iter();
        for (i, t) in chunk.iter().enumerate() {
            lineage.needs_records |= crate::is_reserved_id(t.id);
            if t.flags & tf::PENDING != 0 {
                lineage.named[i] = NAMED_HOLD;
            } else if t.flags & tf::REVERSE != 0 {
                lineage.named[i] = NAMED_REVERSAL;
                lineage.reversals.push((t.pending_id, t.amount));
            } else if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
                let by = first + i as u32;
                let r = next.next().filter(|r| r.by == by).unwrap_or_else(|| panic!("no resolution noted for transfer {by}"));
                lineage.named[i] = r.hold;
                let status = if t.flags & tf::POST_PENDING != 0 { HoldStatus::Posted } else { HoldStatus::Voided };
                let hold = Hold { status, expires_at: r.expires_at, resolved_at: t.timestamp, resolved_by: by };
                lineage.finished_sum = lineage.finished_sum.wrapping_add(hold_term(t.pending_id, &hold));
            }
        }
        assert!(next.next().is_none(), "a resolution noted for a transfer that is no capture or release");
        if lineage.reversals.len() > reversals_max(chunk.len()) {
            lineage.reversals.clear();
            lineage.needs_records = true;
        }
        lineage
    }

    /// The lineage of a plain chunk of `chunk_len` ([`crate::ChunkImage::plain`]): it names nothing.
    pub fn plain(chunk_len: usize) -> ChunkLineage {
        ChunkLineage { named: vec![NAMED_NONE; chunk_len], reversals: Vec::new(), finished_sum: 0, needs_records: false }
    }

    /// The image of a plain chunk of `chunk_len` as stored, appended to `out`: what
    /// [`ChunkLineage::plain`] encodes, written at once (the writer's, for every plain chunk).
    pub fn encode_plain(chunk_len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + chunk_len * 4, 0xFF);
        out.resize(start + lineage_bytes(chunk_len), 0);
    }

    /// The image as stored ([`lineage_bytes`] of its length), appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.named.len();
        assert!(self.reversals.len() <= reversals_max(len), "the reversals' table holds them");
        self.named.iter().for_each(|n| out.extend_from_slice(&n.to_le_bytes()));
        for (original, amount) in &self.reversals {
            out.extend_from_slice(&original.to_le_bytes());
            out.extend_from_slice(&amount.to_le_bytes());
        }
        out.resize(start + len * 4 + reversals_max(len) * REVERSAL_ENTRY_BYTES, 0);
        out.extend_from_slice(&self.finished_sum.to_le_bytes());
        out.push(u8::from(self.needs_records));
        out.resize(start + lineage_bytes(len), 0);
    }

    /// A lineage image of a chunk of `chunk_len` from its stored bytes; what is wrong, if anything.
    pub fn decode(bytes: &[u8], chunk_len: usize) -> Result<ChunkLineage, String> {
        if bytes.len() != lineage_bytes(chunk_len) {
            return Err(format!("a lineage image of {} bytes, not {}", bytes.len(), lineage_bytes(chunk_len)));
        }
        let (named, rest) = bytes.split_at(chunk_len * 4);
        let named: Vec<u32> = named.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        let (table, rest) = rest.split_at(reversals_max(chunk_len) * REVERSAL_ENTRY_BYTES);
        let needs_records = match rest[16] {
            0 => false,
            1 => true,
            flag => return Err(format!("a lineage image's records flag is {flag}")),
        };
        // The table lists every reversal the chunk names, or none if they do not fit.
        let named_reversals = named.iter().filter(|&&n| n == NAMED_REVERSAL).count();
        let listed = if named_reversals <= reversals_max(chunk_len) { named_reversals } else { 0 };
        if listed == 0 && named_reversals > 0 && !needs_records {
            return Err(format!("a lineage image names {named_reversals} reversals, more than its table holds, and needs no records"));
        }
        let u128_at = |b: &[u8]| u128::from_le_bytes(b.try_into().expect("16 bytes"));
        let (entries, unused) = table.split_at(listed * REVERSAL_ENTRY_BYTES);
        if !zeros(unused) || !zeros(&rest[17..]) {
            return Err("a lineage image's padding is not zero".into());
        }
        Ok(ChunkLineage {
            named,
            reversals: entries.chunks_exact(REVERSAL_ENTRY_BYTES).map(|e| (u128_at(&e[..16]), u128_at(&e[16..]))).collect(),
            finished_sum: u128_at(&rest[..16]),
            needs_records,
        })
    }
}

/// Whether `bytes` are all zero: or-ed together a block at a time, which the compiler
/// vectorises, where a byte-wise `any` (its exit at each byte) is not.
fn zeros(bytes: &[u8]) -> bool {
    bytes.chunks(4096).all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Bytes of a stored expired holds' image of a chunk of `chunk_len` expired holds: for each, in
/// the order they expired, its hold's id (u128) and expiry time (u64), zeros to whole 4 KiB pages.
/// With the chunk of expired holds (each one's transfer index and the time it expired), a
/// restore has each one's state digest term without reading its hold's record.
pub const fn expired_image_bytes(chunk_len: usize) -> usize {
    (chunk_len * EXPIRED_IMAGE_ENTRY_BYTES).next_multiple_of(4096)
}

/// Bytes of an expired hold's entry in its chunk's image: its hold's id and expiry time.
const EXPIRED_IMAGE_ENTRY_BYTES: usize = 24;

/// The stored image of a chunk of expired holds whose holds' ids and expiry times are `holds`,
/// appended to `out`.
pub fn encode_expired_image(holds: &[(u128, u64)], out: &mut Vec<u8>) {
    let start = out.len();
    for (id, expires_at) in holds {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&expires_at.to_le_bytes());
    }
    out.resize(start + expired_image_bytes(holds.len()), 0);
}

/// The holds' ids and expiry times of a stored image of a chunk of `chunk_len` expired holds;
/// what is wrong, if anything.
pub fn decode_expired_image(bytes: &[u8], chunk_len: usize) -> Result<Vec<(u128, u64)>, String> {
    let entries = chunk_len * EXPIRED_IMAGE_ENTRY_BYTES;
    if bytes.len() != expired_image_bytes(chunk_len) || !zeros(&bytes[entries..]) {
        return Err(format!("an expired holds' image of {} bytes, or with its padding not zero", bytes.len()));
    }
    let decode =
        |e: &[u8]| (u128::from_le_bytes(e[..16].try_into().expect("16 bytes")), u64::from_le_bytes(e[16..].try_into().expect("8 bytes")));
    Ok(bytes[..entries].chunks_exact(EXPIRED_IMAGE_ENTRY_BYTES).map(decode).collect())
}

/// The holds' ids and expiry times of a chunk of `chunk_len` expired holds from the engine's
/// notes of it ([`Engine::expired_notes_of_chunk`]): one for each of its places, else which
/// are missing.
pub fn expired_image_of(noted: &[(u32, u128, u64)], chunk_len: usize) -> Result<Vec<(u128, u64)>, String> {
    if noted.len() != chunk_len || noted.windows(2).any(|w| w[0].0 + 1 != w[1].0) {
        return Err(format!("{} expired holds noted for a chunk of {chunk_len}", noted.len()));
    }
    Ok(noted.iter().map(|&(_, id, expires_at)| (id, expires_at)).collect())
}

/// What the engine notes for the images a node writes, until the node takes each chunk's:
/// captures and releases for lineage images, expiries for the expired holds' images.
#[derive(Clone, Debug, Default)]
pub(crate) struct ImageNotes {
    /// Captures and releases whose chunks' lineage images are not written yet, in index order.
    resolutions: Vec<Resolution>,
    /// Expired holds (place in `expired`, hold id, expiry time) whose chunks' images are not
    /// written yet, in place order (a restore sorts those it notes once it is done).
    pub(crate) expired: Vec<(u32, u128, u64)>,
}

/// The part of `noted` (sorted by `key`) whose keys lie in `start..end`.
fn noted_range<T>(noted: &[T], key: impl Fn(&T) -> u32, start: u32, end: u32) -> &[T] {
    &noted[noted.partition_point(|n| key(n) < start)..noted.partition_point(|n| key(n) < end)]
}

/// Forgets the notes of `noted` (sorted by `key`) whose keys lie below `end`. A restore from
/// records notes everything it restores: that memory goes back once most of it is forgotten.
fn forget_below<T>(noted: &mut Vec<T>, key: impl Fn(&T) -> u32, end: u32) {
    let below = noted.partition_point(|n| key(n) < end);
    noted.drain(..below);
    if noted.capacity() > RESOLUTIONS_KEPT_MAX && noted.len() < noted.capacity() / 4 {
        noted.shrink_to_fit();
    }
}

impl Engine {
    /// Notes every capture, release and expiry applied from now on ([`ImageNotes`]) until the
    /// node takes them ([`Engine::drop_resolutions_below`], [`Engine::drop_expired_notes_below`]):
    /// what a node writing lineage and expired holds' images calls before it recovers (a restore
    /// notes those it restores from records).
    pub fn keep_image_notes(&mut self) {
        self.cold.notes.get_or_insert_with(ImageNotes::default);
    }

    /// Stops noting, and forgets what was noted: a reader that writes no images (a change feed)
    /// after a restore.
    pub fn forget_image_notes(&mut self) {
        self.cold.notes = None;
    }

    /// The resolutions noted of full chunk `k`'s captures and releases, in order.
    pub fn resolutions_of_chunk(&self, k: usize) -> &[Resolution] {
        let Some(notes) = &self.cold.notes else { return &[] };
        let len = self.transfers.chunk_len();
        noted_range(&notes.resolutions, |r| r.by, (k * len) as u32, ((k + 1) * len) as u32)
    }

    /// Forgets the resolutions of the chunks below `k` (their lineage images are written).
    pub fn drop_resolutions_below(&mut self, k: usize) {
        let end = (k * self.transfers.chunk_len()) as u32;
        if let Some(notes) = &mut self.cold.notes {
            forget_below(&mut notes.resolutions, |r| r.by, end);
        }
    }

    /// Stored chunks the restore took hold states from their lineage images (all it restored,
    /// or none).
    pub fn chunks_restored_from_lineage(&self) -> usize {
        self.cold.restored_from_lineage
    }

    /// The expired holds noted of full chunk `k` of expired holds (place, hold id, expiry), in
    /// order.
    pub fn expired_notes_of_chunk(&self, k: usize) -> &[(u32, u128, u64)] {
        let Some(notes) = &self.cold.notes else { return &[] };
        let len = self.expired.chunk_len();
        noted_range(&notes.expired, |n| n.0, (k * len) as u32, ((k + 1) * len) as u32)
    }

    /// Forgets the expired holds noted of the chunks of expired holds below `k` (their images
    /// are written).
    pub fn drop_expired_notes_below(&mut self, k: usize) {
        let end = (k * self.expired.chunk_len()) as u32;
        if let Some(notes) = &mut self.cold.notes {
            forget_below(&mut notes.expired, |n| n.0, end);
        }
    }

    /// Stored chunks of expired holds the restore took their images of.
    pub fn expired_chunks_restored_from_images(&self) -> usize {
        self.cold.restored_from_expired_images
    }

    /// Notes the hold expired at `place`: its id and expiry time, if noting.
    pub(crate) fn note_expired(&mut self, place: u32, id: u128, expires_at: u64) {
        if let Some(notes) = &mut self.cold.notes {
            notes.expired.push((place, id, expires_at));
        }
    }

    /// Notes a capture or release just applied or restored, if noting.
    pub(crate) fn note_resolution(&mut self, resolution: Resolution) {
        if let Some(notes) = &mut self.cold.notes {
            debug_assert!(notes.resolutions.last().is_none_or(|last| last.by < resolution.by), "noted in index order");
            notes.resolutions.push(resolution);
        }
    }

    /// Takes back the note of capture or release `by` (a failed chain's undo), if noting.
    pub(crate) fn take_back_resolution(&mut self, by: u32) {
        if let Some(notes) = &mut self.cold.notes {
            let last = notes.resolutions.pop().expect("undo: a noted resolution");
            assert_eq!(last.by, by, "undo takes back the newest resolution");
        }
    }
}

/// The holds of chunks restored from lineage images still open, one bit per transfer index:
/// 1 bit a transfer, where a map of open holds by id took 40 bytes a hold. With the records of
/// those whose chunks were read (so they are not read again).
#[derive(Debug, Default)]
pub(crate) struct OpenHolds {
    bits: Vec<u64>,
    read: rustc_hash::FxHashMap<u32, Transfer>,
    /// A chunk's finished holds (hold, capture or release), put in at once: room kept.
    finishing: Vec<(u32, u32)>,
}

impl OpenHolds {
    fn open(&mut self, index: u32, record: Option<Transfer>) {
        let word = index as usize / 64;
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << (index % 64);
        if let Some(t) = record {
            self.read.insert(index, t);
        }
    }

    /// Finishes the hold at `index`: whether it was open.
    fn finish(&mut self, index: u32) -> bool {
        let bit = 1u64 << (index % 64);
        match self.bits.get_mut(index as usize / 64) {
            Some(word) if *word & bit != 0 => {
                *word &= !bit;
                if !self.read.is_empty() {
                    self.read.remove(&index);
                }
                true
            }
            _ => false,
        }
    }

    /// The open holds' transfer indexes, in order: a word of bits at a time, empty words passed
    /// over (most holds are finished).
    fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        let set_bits = |mut word: u64| {
            core::iter::from_fn(move || {
                let b = (word != 0).then(|| word.trailing_zeros())?;
                word &= word - 1;
                Some(b)
            })
        };
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, &word)| word != 0)
            .flat_map(move |(w, &word)| set_bits(word).map(move |b| w as u32 * 64 + b))
    }
}

impl Engine {
    /// Restores the hold states and lineage of stored chunk `k`, just restored from its image,
    /// from its lineage image: a hold is left open in `open` (or found expired, its records
    /// read), a capture or release finishes the open hold it names. The chunk's records are in
    /// memory only if the restore read them (a reversal, a reserved id, an expired hold); then
    /// they must agree with the image, and reversals and expired holds are restored from them.
    pub(crate) fn restore_lineage(
        &mut self,
        k: usize,
        lineage: &ChunkLineage,
        open: &mut OpenHolds,
        states: &mut super::reversals::StatedHolds,
    ) -> Result<(), String> {
        let len = self.transfers.chunk_len();
        if lineage.named.len() != len {
            return Err(format!("chunk {k}'s lineage image does not fit a chunk of {len}"));
        }
        let first = (k * len) as u32;
        let disagrees = |index: u32| format!("transfer {index} is not what its chunk's lineage image says");
        let resolving = tf::POST_PENDING | tf::VOID_PENDING;
        let mut reversals = lineage.reversals.iter();
        // Whether the restore read the chunk's records (most often not: then nothing is copied).
        let read = self.transfers.get(first as usize).is_some();
        let mut finishing = core::mem::take(&mut open.finishing);
        finishing.clear();
        for (i, &named) in lineage.named.iter().enumerate() {
            if named == NAMED_NONE && !read {
                continue;
            }
            let index = first + i as u32;
            let record = if read { self.transfers.get(index as usize).copied() } else { None };
            match named {
                NAMED_NONE if record.is_some_and(|t| t.flags & (tf::PENDING | resolving | tf::REVERSE) != 0) => {
                    return Err(disagrees(index))
                }
                NAMED_NONE => {}
                NAMED_REVERSAL => match (record, reversals.next()) {
                    (Some(t), listed) if t.flags & tf::REVERSE == 0 || listed.is_some_and(|&l| l != (t.pending_id, t.amount)) => {
                        return Err(disagrees(index))
                    }
                    (Some(t), _) => self.restore_reversal(index, &t)?,
                    (None, Some(&(original, amount))) => {
                        self.add_reversal(original, index, amount)?;
                    }
                    (None, None) => return Err(format!("chunk {k}'s lineage image lists fewer reversals than it names")),
                },
                NAMED_HOLD => self.restore_named_hold(index, record, open, states)?,
                hold => {
                    if record.is_some_and(|t| t.flags & resolving == 0) {
                        return Err(disagrees(index));
                    }
                    if hold >= index || !open.finish(hold) {
                        return Err(format!("transfer {index} finishes transfer {hold}, which is not an open hold before it"));
                    }
                    finishing.push((hold, index));
                }
            }
        }
        self.finished.insert_many(&mut finishing);
        open.finishing = finishing;
        self.digest.add_finished_sum(lineage.finished_sum);
        Ok(())
    }

    /// The hold at `index` a lineage image names, with its `record` if the restore read it:
    /// left open, or found expired (from its record, or with its term taken from its chunk of
    /// expired holds' image).
    fn restore_named_hold(
        &mut self,
        index: u32,
        record: Option<Transfer>,
        open: &mut OpenHolds,
        states: &mut super::reversals::StatedHolds,
    ) -> Result<(), String> {
        match record {
            Some(t) if t.flags & tf::PENDING == 0 => return Err(format!("transfer {index} is not what its chunk's lineage image says")),
            Some(t) => {
                if self.restore_hold_state(index, &t, states)? {
                    open.open(index, Some(t));
                }
            }
            None => match states.expired_place(index)? {
                Some(place) if place < states.expired_summed_below => self.finished.insert(index, FAILED_TAG | place),
                Some(place) => return Err(format!("expired hold {index} (place {place}) restored without its record")),
                None => open.open(index, None),
            },
        }
        Ok(())
    }

    /// Once the stored chunks are restored from lineage images: the holds they left open, read
    /// back a chunk at a time and pinned, kept in `states` by id as a restore from records
    /// keeps them, for the captures the stream's transfers hold; those still open at the end are
    /// the pending ones.
    pub(crate) fn keep_lineage_open(&mut self, open: &OpenHolds, states: &mut super::reversals::StatedHolds) -> Result<(), String> {
        let mut chunk = (usize::MAX, Vec::new());
        for index in open.indexes() {
            let t = match open.read.get(&index) {
                // Read with its chunk, since evicted (the newest chunk stays in memory).
                Some(&t) if self.in_memory(index).is_none() => {
                    self.cold.pin(index, t);
                    t
                }
                _ => self.pinned_hold(index, &mut chunk)?,
            };
            if t.flags & tf::PENDING == 0 || t.timestamp.checked_add(u64::from(t.timeout) * crate::limits::NS_PER_S).is_none() {
                return Err(format!("transfer {index} is left open by its chunk's lineage image but is no hold"));
            }
            states.open.insert(t.id, (index, super::holds::hold_expiry(&t)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lineage_image_round_trips_its_bytes_and_damage_is_named() {
        let lineage = ChunkLineage {
            named: vec![NAMED_HOLD, NAMED_NONE, 0, NAMED_REVERSAL],
            reversals: vec![(u128::MAX - 1, 7)],
            finished_sum: u128::MAX - 9,
            needs_records: true,
        };
        let mut bytes = Vec::new();
        lineage.encode(&mut bytes);
        assert_eq!(bytes.len(), 4096);
        let (mut plain, mut written) = (Vec::new(), Vec::new());
        ChunkLineage::plain(1100).encode(&mut plain);
        ChunkLineage::encode_plain(1100, &mut written);
        assert_eq!(plain, written);
        assert_eq!(ChunkLineage::decode(&bytes, 4), Ok(lineage.clone()));
        assert!(ChunkLineage::decode(&bytes, 1100).unwrap_err().contains("bytes"), "another chunk length");
        let tail = 4 * 4 + 2 * REVERSAL_ENTRY_BYTES;
        let mut flag = bytes.clone();
        flag[tail + 16] = 2;
        assert!(ChunkLineage::decode(&flag, 4).unwrap_err().contains("records flag"));
        let mut padding = bytes.clone();
        padding[4095] = 1;
        assert!(ChunkLineage::decode(&padding, 4).unwrap_err().contains("padding"));
        // An entry past the reversals the chunk names is damage too.
        let mut unlisted = bytes.clone();
        unlisted[4 * 4 + REVERSAL_ENTRY_BYTES] = 1;
        assert!(ChunkLineage::decode(&unlisted, 4).unwrap_err().contains("padding"));
        // More reversals than the table holds: none listed, and the records are read.
        let many = ChunkLineage { named: vec![NAMED_REVERSAL; 4], reversals: Vec::new(), finished_sum: 0, needs_records: true };
        let mut bytes = Vec::new();
        many.encode(&mut bytes);
        assert_eq!(ChunkLineage::decode(&bytes, 4), Ok(many));
        bytes[tail + 16] = 0;
        assert!(ChunkLineage::decode(&bytes, 4).unwrap_err().contains("more than its table holds"));
        assert_eq!((reversals_max(1 << crate::CHUNK_BITS), lineage_bytes(1 << crate::CHUNK_BITS)), (2_048, 49 * 4096));
    }

    #[test]
    fn open_holds_are_listed_in_order_and_finished_once() {
        let mut open = OpenHolds::default();
        for index in [1_000, 0, 63, 64, 130, 127] {
            open.open(index, None);
        }
        assert!(open.finish(64) && !open.finish(64) && !open.finish(5) && !open.finish(1 << 20));
        assert_eq!(open.indexes().collect::<Vec<_>>(), [0, 63, 127, 130, 1_000]);
    }

    #[test]
    fn an_expired_holds_image_round_trips_and_wants_every_place() {
        let holds = vec![(u128::MAX, 7), (1, u64::MAX), (5, 9)];
        let mut bytes = Vec::new();
        encode_expired_image(&holds, &mut bytes);
        assert_eq!((bytes.len(), expired_image_bytes(1 << crate::CHUNK_BITS)), (4096, 192 * 4096));
        assert_eq!(decode_expired_image(&bytes, 3), Ok(holds.clone()));
        assert!(decode_expired_image(&bytes, 2).unwrap_err().contains("padding"), "an entry past the chunk");
        assert!(decode_expired_image(&bytes[..4000], 3).is_err(), "short");
        let noted = [(6, u128::MAX, 7), (7, 1, u64::MAX), (8, 5, 9)];
        assert_eq!(expired_image_of(&noted, 3), Ok(holds));
        assert!(expired_image_of(&noted[..2], 3).is_err(), "a place missing");
        assert!(expired_image_of(&[noted[0], noted[2], noted[1]], 3).is_err(), "out of order");
    }

    /// A chunk's lineage names its holds and what each capture and release finished, sums the
    /// finished holds' terms as the digest does, and lists its reversals while they fit.
    #[test]
    fn a_chunk_names_its_holds_and_what_finished_them() {
        use crate::test_support::{capture, engine_with_accounts, execute_ok, hold, release, transfer};
        let mut engine = engine_with_accounts(1..=2);
        engine.keep_image_notes();
        execute_ok(&mut engine, 10, &[hold(7, 0), hold(8, 60), transfer(9, 1, 2, 1)]);
        execute_ok(&mut engine, 20, &[capture(10, 7, 0), release(11, 8)]);
        let chunk: Vec<Transfer> = engine.all_transfers().collect();
        let lineage = ChunkLineage::of(&chunk, 0, engine.resolutions_of_chunk(0));
        assert_eq!(lineage.named, [NAMED_HOLD, NAMED_HOLD, NAMED_NONE, 0, 1]);
        assert!(!lineage.needs_records);
        // The finished holds' terms, as the digest has them.
        let term = |id: u128| hold_term(id, &engine.hold(id).expect("a hold"));
        assert_eq!(engine.hold(8).map(|h| (h.status, h.expires_at > 0)), Some((HoldStatus::Voided, true)));
        assert_eq!(lineage.finished_sum, term(7).wrapping_add(term(8)));
        // Forgotten once its lineage image is written.
        engine.drop_resolutions_below(1);
        assert!(engine.resolutions_of_chunk(0).is_empty());
        // A reversal is listed with its original and amount, up to the table's room.
        let reversal = Transfer { flags: tf::REVERSE, pending_id: 9, amount: 1, ..chunk[2] };
        let listed = ChunkLineage::of(&[reversal, reversal], 0, &[]);
        assert_eq!((listed.named, listed.reversals, listed.needs_records), (vec![NAMED_REVERSAL; 2], vec![(9, 1); 2], false));
        let over = ChunkLineage::of(&[reversal; 3], 0, &[]);
        assert_eq!((over.reversals.len(), over.needs_records), (0, true));
    }
}
