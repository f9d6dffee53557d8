//! The transfer id index: 13 bytes per id instead of 33, and growth spread over inserts.
//! Crate-private but for [`hash_twin`].
//!
//! A table keyed by ids would hold each 16-byte id beside its value: 33 bytes a bucket with
//! hashbrown's alignment and control byte, 4.4 GB at 100 M transfers, and 500 M would not fit
//! this machine. This table keeps, per id, a control byte, the id's 64-bit hash and its 32-bit
//! value (a transfer index or a tagged failed index): 13 bytes. A hash is not the id, so a
//! lookup hands each value whose hash matches to a `verify` closure that compares the record's
//! id; two of 500 M ids share a 64-bit hash with probability below 1%, and a new id probes a
//! match with probability about 2^-64 per stored id, so "certainly new" needs no record at all.
//!
//! Ids in the range reserved for standing-order runs (`orders::RUN_ID_PREFIX`) are kept in a
//! small exact map instead: the engine derives those ids itself while applying a batch, where
//! the node cannot have read a matching record ahead.
//!
//! Layout and probing follow hashbrown (SwissTable): a power of two of buckets at most 7/8 full,
//! a control byte per bucket (here 0 empty so fresh pages stay untouched, 1 a tombstone,
//! `0x80 | 7 bits of the hash` full), groups of 16 control bytes matched as one `u128`, triangular
//! probing from the bucket the hash's low bits pick. The hash keeps runs of 256 consecutive ids
//! on consecutive buckets ([`crate::id_hash`]'s locality, measured there).
//!
//! Growth does not stop the sequencer: when the table is full a twice-as-large one takes new
//! inserts, and each insert moves `MIGRATE_PER_INSERT` (16) buckets of the old one over; a lookup
//! reads the old one too wherever its id could still be there, until it is empty. Moving needs
//! only the stored hash, never the id. The emptied table is handed to the node to free.
//!
//! With a history on disk, the ids of stored chunks are in the history's own id index once the
//! node has written it ([`TransferIds::set_stored_below`]): a move leaves their entries behind,
//! and the next table is sized for the ids still to be stored, so the table stays the size of a
//! few chunks however many transfers there are. Failed ids and reserved ids always stay.

use crate::state::FAILED_TAG;
use rustc_hash::FxHashMap;

/// Control bytes read and matched as one word (a `u128`: hashbrown's SSE2 width).
const GROUP: usize = 16;
/// A bucket never used: probing stops at a group holding one. Zero, so an allocation's fresh
/// pages are an empty table without being written.
const EMPTY: u8 = 0;
/// A bucket emptied by a removal (a rolled-back chain) or by moving to the new table: probing
/// goes past it.
const DELETED: u8 = 1;
const LSB: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
const MSB: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
/// Old buckets moved at each insert while growing. Any value ≥ 2 empties the old table before
/// the new one fills (it has room for 7/8 of twice the buckets). Moving is sequential and
/// cheap; what costs while both tables live is a lookup that must probe the old, full one too
/// (see `Moving::may_hold`), so a shorter move costs less in all: 16 keeps both for a sixteenth
/// of the inserts that filled the old one.
pub(crate) const MIGRATE_PER_INSERT: usize = 16;
const MIN_BUCKETS: usize = 16;
/// Smallest table that [`TransferIds::set_stored_below`] shrinks at once (a smaller one waits
/// until it is full): 2^16 buckets, under a megabyte.
const SHRINK_BUCKETS_MIN: usize = 1 << 16;
/// Room for the ids not stored yet in a table after a move, times their count. Ids made in
/// order fill consecutive buckets, so a table near its 7/8 holds long runs of full groups that a
/// lookup of a new id (every command's) probes through; eight times leaves it at most about
/// half full, since a move that leaves the stored ids behind starts once they are three in
/// four of its entries.
const UNSTORED_ROOM_FACTOR: usize = 8;
/// The multiplier folding an id's high word into its low one.
const K1: u64 = 0x9E37_79B9_7F4A_7C15;

/// The index's hash of an id: a bijection of a 64-bit fold of it, keeping aligned runs of 256
/// consecutive ids together (the low 8 bits) and scattering the runs (a 56-bit murmur3-style
/// finaliser of the rest).
#[inline]
pub(crate) fn id_hash(id: u128) -> u64 {
    let x = (id as u64).wrapping_add(((id >> 64) as u64).wrapping_mul(K1));
    (fmix56(x >> 8) << 8) | (x & 0xFF)
}

/// An id other than `id` that the index hashes as it hashes `id`: the next high word, the low
/// word moved back by the fold's multiplier. Two such ids can only be told apart by their
/// records; tests and the simulation use them to make the verifier and the prefetch work.
pub fn hash_twin(id: u128) -> u128 {
    let (low, high) = (id as u64, (id >> 64) as u64);
    u128::from(high.wrapping_add(1)) << 64 | u128::from(low.wrapping_sub(K1))
}

/// murmur3's finaliser on 56 bits: each step is a bijection of the 56-bit values.
#[inline]
const fn fmix56(mut k: u64) -> u64 {
    const MASK: u64 = (1 << 56) - 1;
    k ^= k >> 29;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd) & MASK;
    k ^= k >> 29;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53) & MASK;
    k ^ (k >> 29)
}

/// The control byte of a full bucket holding `hash`: 7 bits that differ between neighbours.
#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 57) as u8
}

/// The bytes of `group` equal to `byte` (high bit of each), with rare false positives above
/// a true match; callers check the control byte again.
#[inline]
fn match_byte(group: u128, byte: u8) -> u128 {
    let cmp = group ^ (LSB * u128::from(byte));
    cmp.wrapping_sub(LSB) & !cmp & MSB
}

/// Whether `group` holds an empty bucket (exact).
#[inline]
fn has_empty(group: u128) -> bool {
    group.wrapping_sub(LSB) & !group & MSB != 0
}

/// The hash a slot holds (its low and high words).
#[inline]
fn slot_hash(&[lo, hi, _]: &[u32; 3]) -> u64 {
    u64::from(hi) << 32 | u64::from(lo)
}

/// Buckets for `items` ids: a power of two at most 7/8 full.
fn buckets_for(items: usize) -> usize {
    (items.saturating_mul(8).div_ceil(7)).next_power_of_two().max(MIN_BUCKETS)
}

/// One open-addressing table (see the module documentation).
#[derive(Default)]
struct Table {
    /// One byte per bucket, then the first `GROUP` again so a group read wraps.
    ctrl: Vec<u8>,
    /// Per bucket: the hash's low and high words, the value.
    slots: Vec<[u32; 3]>,
    items: usize,
    /// Empty buckets that may still be filled before the table is 7/8 full.
    growth_left: usize,
    /// The farthest any entry was put from its home bucket, in buckets (wrapping): every entry
    /// homed at `h` lies within `h..=h + farthest`.
    farthest: usize,
}

impl Table {
    fn with_buckets(buckets: usize) -> Table {
        debug_assert!(buckets.is_power_of_two() && buckets >= MIN_BUCKETS);
        // Zeroed allocations: the kernel hands out pages as they are first written.
        let growth_left = buckets - buckets / 8;
        Table { ctrl: vec![EMPTY; buckets + GROUP], slots: vec![[0; 3]; buckets], items: 0, growth_left, farthest: 0 }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn group_at(&self, pos: usize) -> u128 {
        u128::from_le_bytes(self.ctrl[pos..pos + GROUP].try_into().expect("a group is 16 bytes"))
    }

    fn set_ctrl(&mut self, i: usize, byte: u8) {
        self.ctrl[i] = byte;
        if i < GROUP {
            let buckets = self.slots.len();
            self.ctrl[buckets + i] = byte;
        }
    }

    /// Calls `each` with the bucket of every entry whose hash is `hash`, in probe order, until
    /// it answers true; returns that bucket.
    #[inline]
    fn find(&self, hash: u64, mut each: impl FnMut(usize, u32) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let (tag, mask) = (tag_of(hash), self.mask());
        let (mut pos, mut stride) = (hash as usize & mask, 0);
        loop {
            let group = self.group_at(pos);
            let mut matches = match_byte(group, tag);
            while matches != 0 {
                let i = (pos + matches.trailing_zeros() as usize / 8) & mask;
                matches &= matches - 1;
                let slot = self.slots[i];
                if self.ctrl[i] == tag && slot_hash(&slot) == hash && each(i, slot[2]) {
                    return Some(i);
                }
            }
            if has_empty(group) {
                return None;
            }
            stride += GROUP;
            pos = (pos + stride) & mask;
        }
    }

    /// Puts `hash → value` in the first empty or deleted bucket of its probe sequence. The
    /// caller has checked there is room.
    fn insert(&mut self, hash: u64, value: u32) {
        debug_assert!(self.growth_left > 0 || self.items < self.slots.len() - self.slots.len() / 8);
        let mask = self.mask();
        let (mut pos, mut stride) = (hash as usize & mask, 0);
        let i = loop {
            let free = !self.group_at(pos) & MSB;
            if free != 0 {
                break (pos + free.trailing_zeros() as usize / 8) & mask;
            }
            stride += GROUP;
            pos = (pos + stride) & mask;
        };
        if self.ctrl[i] == EMPTY {
            self.growth_left -= 1;
        }
        self.farthest = self.farthest.max(i.wrapping_sub(hash as usize) & mask);
        self.set_ctrl(i, tag_of(hash));
        self.slots[i] = [hash as u32, (hash >> 32) as u32, value];
        self.items += 1;
    }

    /// Removes the entry `hash → value`, if held.
    fn remove(&mut self, hash: u64, value: u32) -> bool {
        let Some(i) = self.find(hash, |_, v| v == value) else { return false };
        self.set_ctrl(i, DELETED);
        self.items -= 1;
        true
    }
}

/// A table emptied by growing, kept for the node to free off the sequencer thread (unmapping
/// a table of hundreds of megabytes takes tens of milliseconds).
pub struct RetiredTable(Table);

impl core::fmt::Debug for RetiredTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RetiredTable {{ buckets: {} }}", self.0.slots.len())
    }
}

/// A table being emptied into the new one, and the first bucket not yet moved.
struct Moving {
    table: Table,
    next: usize,
}

impl Moving {
    /// Whether an id of this hash may still be in the table being emptied: not when every
    /// bucket it could have been put in is already moved. Most lookups of a new id then probe
    /// one table, not two (the old one is 7/8 full: its misses probe far).
    #[inline]
    fn may_hold(&self, hash: u64) -> bool {
        (hash as usize & self.table.mask()) + self.table.farthest >= self.next
    }
}

/// Every transfer id the engine answers for, to its `transfer_index` value.
#[derive(Default)]
pub(crate) struct TransferIds {
    table: Table,
    moving: Option<Moving>,
    /// The last table emptied, until taken ([`TransferIds::take_retired`]) or replaced.
    retired: Option<RetiredTable>,
    /// Ids in the range reserved for order runs, exactly (see the module documentation).
    reserved: FxHashMap<u128, u32>,
    /// Transfer values below this are in the stored ids' index on disk: a move leaves them
    /// behind (see [`TransferIds::set_stored_below`]). Failed values always stay.
    stored_below: u32,
    /// One past the largest transfer value inserted.
    values_end: u32,
    /// Failed values held.
    failed_values: usize,
    /// Ids left to the stored ids' index: dropped by a move, or never inserted (a restore).
    left_to_store: usize,
}

/// The transfer values a move keeps though their ids are stored: pending holds out of memory
/// (the engine's pinned records), whose ids captures and releases name, so that their lookups
/// need no read of the stored ids' index. The engine's set, asked, not copied here.
pub(crate) trait Kept {
    /// Whether a move keeps `value`'s entry.
    fn keeps(&self, value: u32) -> bool;
    /// How many values it keeps.
    fn count(&self) -> usize;
}

impl core::fmt::Debug for TransferIds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TransferIds {{ len: {}, buckets: {}, moving: {} }}", self.len(), self.table.slots.len(), self.moving.is_some())
    }
}

impl TransferIds {
    /// Ids held, and ids left to the stored ids' index: every id the engine answers for.
    pub(crate) fn answered(&self) -> usize {
        self.len() + self.left_to_store
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.table.items + self.moving.as_ref().map_or(0, |m| m.table.items) + self.reserved.len()
    }

    /// Ids the index holds before it next grows.
    pub(crate) fn capacity(&self) -> usize {
        self.table.items + self.table.growth_left
    }

    /// The value of `id`: the first value whose hash matches that `verify` accepts (it compares
    /// the record the value names with `id`). Reserved ids are exact and never verified.
    #[inline]
    pub(crate) fn find(&self, id: u128, mut verify: impl FnMut(u32) -> bool) -> Option<u32> {
        if crate::is_reserved_id(id) {
            return self.reserved.get(&id).copied();
        }
        let mut found = None;
        self.find_hash(id_hash(id), |value| {
            let yes = verify(value);
            if yes {
                found = Some(value);
            }
            yes
        });
        found
    }

    /// Calls `each` with every value held under `hash`, in the current table and then, while
    /// growing, where the old one may still hold it, until it answers true.
    #[inline]
    fn find_hash(&self, hash: u64, mut each: impl FnMut(u32) -> bool) {
        let mut each = |_, value| each(value);
        if self.table.find(hash, &mut each).is_none() {
            if let Some(moving) = self.moving.as_ref().filter(|m| m.may_hold(hash)) {
                moving.table.find(hash, &mut each);
            }
        }
    }

    /// Calls `each` with every value `id` may name (its hash matches), without verifying: the
    /// records a prefetch must read so that [`TransferIds::find`] can verify them.
    pub(crate) fn candidates(&self, id: u128, mut each: impl FnMut(u32)) {
        if crate::is_reserved_id(id) {
            return self.reserved.get(&id).copied().into_iter().for_each(each);
        }
        self.find_hash(id_hash(id), |value| {
            each(value);
            false
        });
    }

    /// The first value whose hash matches `id`'s, or 0: a probe that only warms the buckets a
    /// lookup of `id` will read.
    #[inline]
    pub(crate) fn peek(&self, id: u128) -> u32 {
        let mut first = 0;
        self.find_hash(id_hash(id), |value| {
            first = value;
            true
        });
        first
    }

    /// Indexes a new `id` (the caller found it absent) under `value`; a move under way keeps
    /// what `kept` keeps.
    pub(crate) fn insert(&mut self, id: u128, value: u32, kept: &impl Kept) {
        if crate::is_reserved_id(id) {
            assert!(self.reserved.insert(id, value).is_none(), "reserved id {id} indexed twice");
            return;
        }
        self.insert_hashed(id_hash(id), value, kept);
    }

    /// Indexes `value` under an id known only by its hash ([`id_hash`]): a restore from a
    /// chunk's image. Never an id of the reserved range, which is indexed exactly (by the caller).
    #[inline]
    pub(crate) fn insert_hashed(&mut self, hash: u64, value: u32, kept: &impl Kept) {
        self.move_some(MIGRATE_PER_INSERT, kept);
        if self.table.growth_left == 0 {
            self.grow(self.len() + 1, kept);
        }
        self.table.insert(hash, value);
        if value & FAILED_TAG == 0 {
            self.values_end = self.values_end.max(value + 1);
        } else {
            self.failed_values += 1;
        }
    }

    /// Indexes `value` under `hash` again: a pending hold pinned by a restore whose chunk's ids
    /// were left to the stored ids' index (counted there until now). `kept` keeps it from now on.
    pub(crate) fn restore_kept(&mut self, hash: u64, value: u32, kept: &impl Kept) {
        assert!(self.left_to_store > 0, "a restore left the hold's id to the stored ids' index");
        assert!(kept.keeps(value), "a restored hold's id is kept");
        self.left_to_store -= 1;
        self.insert_hashed(hash, value, kept);
    }

    /// Counts `ids` left to the stored ids' index without being inserted (a restore).
    pub(crate) fn leave_to_store(&mut self, ids: usize) {
        self.left_to_store += ids;
    }

    /// Transfer values below `end` are in the stored ids' index from now on (it only grows):
    /// the next move leaves them behind, and one starts now if they are most of the table.
    pub(crate) fn set_stored_below(&mut self, end: u32, kept: &impl Kept) {
        assert!(end >= self.stored_below, "the stored ids' index only grows");
        self.stored_below = end;
        let buckets = self.table.slots.len();
        if self.moving.is_none() && buckets > SHRINK_BUCKETS_MIN && self.live_bound(kept) * 4 < self.table.items {
            self.start_moving(self.buckets_after_move(buckets, kept), kept);
        }
    }

    /// At most how many ids a move would keep: transfer values from `stored_below` on (each
    /// inserted once), failed ones and kept ones.
    fn live_bound(&self, kept: &impl Kept) -> usize {
        self.values_end.saturating_sub(self.stored_below) as usize + self.failed_values + kept.count()
    }

    /// Buckets for the table a move out of one of `buckets` goes to, once ids are stored:
    /// room for twice what it keeps and what is inserted while it moves, so it fills before
    /// it must grow again no sooner than it took this one; and at least
    /// [`UNSTORED_ROOM_FACTOR`] times the ids not stored yet, so that the next shrink
    /// (`set_stored_below`) comes before the table is half full.
    fn buckets_after_move(&self, buckets: usize, kept: &impl Kept) -> usize {
        let unstored = self.values_end.saturating_sub(self.stored_below) as usize;
        buckets_for(2 * (self.live_bound(kept) + buckets / MIGRATE_PER_INSERT + 1)).max(buckets_for(UNSTORED_ROOM_FACTOR * unstored))
    }

    /// Removes `id`, indexed under `value` (asserted): undoing an insert.
    pub(crate) fn remove(&mut self, id: u128, value: u32) {
        let removed = if crate::is_reserved_id(id) {
            self.reserved.remove(&id) == Some(value)
        } else {
            let hash = id_hash(id);
            self.table.remove(hash, value) || self.moving.as_mut().is_some_and(|m| m.table.remove(hash, value))
        };
        assert!(removed, "transfer id {id} was not indexed under {value}");
        if value & FAILED_TAG != 0 && !crate::is_reserved_id(id) {
            self.failed_values -= 1;
        }
    }

    /// Whether a table the last growth emptied waits to be taken.
    #[cfg(test)]
    pub(crate) fn holds_retired(&self) -> bool {
        self.retired.is_some()
    }

    /// The table the last growth emptied, if not taken yet: for the caller to free.
    pub(crate) fn take_retired(&mut self) -> Option<RetiredTable> {
        self.retired.take()
    }

    /// Room for `items` ids in all without growing: one rebuild now (start-up, not a stall).
    pub(crate) fn reserve(&mut self, items: usize, kept: &impl Kept) {
        if buckets_for(items) <= self.table.slots.len() && self.capacity() >= items {
            return;
        }
        self.start_moving(buckets_for(items), kept);
        self.move_some(usize::MAX, kept);
    }

    /// Writes every page of the table (its own bytes back, through `black_box` so the write is
    /// not elided), so inserts take no page faults.
    pub(crate) fn touch(&mut self) {
        const PAGE_BYTES: usize = 4096;
        for i in (0..self.table.ctrl.len()).step_by(PAGE_BYTES) {
            self.table.ctrl[i] = core::hint::black_box(self.table.ctrl[i]);
        }
        for i in (0..self.table.slots.len()).step_by(PAGE_BYTES / 12) {
            self.table.slots[i] = core::hint::black_box(self.table.slots[i]);
        }
    }

    /// Starts growing to room for `items` (twice the buckets, so growing is rare): new inserts
    /// go to a new table and the current one is moved over a little at each insert.
    #[cold]
    fn grow(&mut self, items: usize, kept: &impl Kept) {
        // Growing again before the last move ended cannot happen (see MIGRATE_PER_INSERT);
        // if it did, `start_moving` finishes that move first.
        let buckets = self.table.slots.len();
        if self.stored_below == 0 {
            self.start_moving(buckets_for(items).max(buckets * 2), kept);
        } else {
            self.start_moving(self.buckets_after_move(buckets, kept), kept);
        }
    }

    /// Makes a table of `buckets` the current one and the current one the table being emptied
    /// (after finishing any move under way, so every id stays findable).
    fn start_moving(&mut self, buckets: usize, kept: &impl Kept) {
        self.move_some(usize::MAX, kept);
        let old = core::mem::replace(&mut self.table, Table::with_buckets(buckets));
        self.moving = Some(Moving { table: old, next: 0 });
    }

    /// Moves up to `buckets` buckets of the table being emptied into the current one.
    #[inline]
    fn move_some(&mut self, buckets: usize, kept: &impl Kept) {
        let Some(moving) = &mut self.moving else { return };
        let end = moving.next.saturating_add(buckets).min(moving.table.slots.len());
        for i in moving.next..end {
            if moving.table.ctrl[i] & 0x80 != 0 {
                let slot = moving.table.slots[i];
                moving.table.set_ctrl(i, DELETED);
                moving.table.items -= 1;
                if slot[2] & FAILED_TAG == 0 && slot[2] < self.stored_below && !kept.keeps(slot[2]) {
                    self.left_to_store += 1;
                    continue;
                }
                assert!(self.table.growth_left > 0, "the new table fills before the old one is moved");
                self.table.insert(slot_hash(&slot), slot[2]);
            }
        }
        moving.next = end;
        if end == moving.table.slots.len() {
            assert_eq!(moving.table.items, 0, "every id moved");
            self.retired = self.moving.take().map(|m| RetiredTable(m.table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Keeps nothing: an index whose ids are never left to a stored index.
    struct NothingKept;

    impl Kept for NothingKept {
        fn keeps(&self, _: u32) -> bool {
            false
        }
        fn count(&self) -> usize {
            0
        }
    }

    const NONE: &NothingKept = &NothingKept;

    impl Kept for HashSet<u32> {
        fn keeps(&self, value: u32) -> bool {
            self.contains(&value)
        }
        fn count(&self) -> usize {
            self.len()
        }
    }

    /// A deterministic generator (splitmix64).
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Random inserts and removals of sequential, random, two-range and reserved ids, with the
    /// table growing several times: every lookup agrees with a map keyed by the id.
    #[test]
    fn agrees_with_an_exact_map_through_growth_and_removals() {
        let mut rng = 7u64;
        let mut index = TransferIds::default();
        let mut model: HashMap<u128, u32> = HashMap::new();
        let mut ids: Vec<u128> = Vec::new();
        let mut value = 0u32;
        for step in 0..200_000u32 {
            let r = next(&mut rng);
            let id = match r % 5 {
                0 => u128::from(step) + 1,
                1 => (1u128 << 48) + u128::from(step),
                2 => u128::from(next(&mut rng)) << 64 | u128::from(next(&mut rng)),
                3 => crate::run_id(r as u32 >> 8, u64::from(step)),
                _ => ids.get(r as usize % ids.len().max(1)).copied().unwrap_or(9),
            };
            let found = index.find(id, |v| model.get(&id) == Some(&v));
            assert_eq!(found, model.get(&id).copied(), "step {step}: id {id}");
            if found.is_none() {
                index.insert(id, value, NONE);
                model.insert(id, value);
                ids.push(id);
                value += 1;
            } else if r.is_multiple_of(7) {
                let last = ids.pop().expect("an id");
                index.remove(last, model.remove(&last).expect("held"));
            }
            assert_eq!(index.len(), model.len());
        }
        assert!(ids.iter().all(|id| index.find(*id, |v| model[id] == v) == Some(model[id])));
        let mut seen = 0;
        index.candidates(ids[0], |v| seen += usize::from(v == model[&ids[0]]));
        assert_eq!(seen, 1, "a stored id is a candidate of itself exactly once");
    }

    /// Once ids are stored elsewhere, moves leave them behind: the table stays sized for the
    /// ids not stored, every one of those is found, failed, reserved and kept ids stay, and the
    /// count of ids answered for (held or left) stays exact.
    #[test]
    fn stored_ids_are_left_behind_and_the_table_stays_small() {
        const CHUNK: u32 = 4096;
        let mut index = TransferIds::default();
        let (mut failed, mut reserved) = (Vec::new(), Vec::new());
        let mut largest = 0;
        // Pending holds' entries are kept though stored: one early, and many more than a table
        // of the ids not stored holds (the table must be sized for them too).
        let kept: HashSet<u32> = core::iter::once(10).chain((1000..1000 + 64 * CHUNK).step_by(2)).collect();
        for value in 0..400 * CHUNK {
            index.insert(u128::from(value) + 1, value, &kept);
            if value % 1000 == 0 {
                let id = u128::from(u32::MAX) + u128::from(value);
                index.insert(id, FAILED_TAG | (value / 1000), &kept);
                failed.push((id, FAILED_TAG | (value / 1000)));
            }
            if value % 5000 == 0 {
                let id = crate::run_id(7, u64::from(value));
                index.insert(id, value | 0x4000_0000, &kept);
                reserved.push((id, value | 0x4000_0000));
            }
            // Ids are stored two chunks behind, as a writer keeps up.
            if value % CHUNK == 0 && value >= 3 * CHUNK {
                index.set_stored_below(value - 2 * CHUNK, &kept);
            }
            largest = largest.max(index.table.slots.len() + index.moving.as_ref().map_or(0, |m| m.table.slots.len()));
            let answered = value as usize + 1 + failed.len() + reserved.len();
            assert_eq!(index.answered(), answered, "value {value}");
        }
        // 1.6 M ids inserted, about 8 K not stored at any time and 131 K kept: the tables stay
        // near 512 K buckets.
        assert!(largest <= 1 << 20, "{largest} buckets at most");
        let end = 400 * CHUNK;
        for value in end - 2 * CHUNK..end {
            assert_eq!(index.find(u128::from(value) + 1, |v| v == value), Some(value), "an id not stored");
        }
        for &(id, value) in failed.iter().chain(&reserved) {
            assert_eq!(index.find(id, |v| v == value), Some(value), "failed and reserved ids stay");
        }
        assert!(index.left_to_store > 300 * CHUNK as usize, "{} left", index.left_to_store);
        assert_eq!(index.find(11, |v| v == 10), Some(10), "a kept entry stays");
        assert!((1000..1000 + 64 * CHUNK).step_by(2).all(|v| index.find(u128::from(v) + 1, |x| x == v) == Some(v)), "kept entries stay");
        assert_eq!(index.find(12, |v| v == 11), None, "its neighbour is left to the store");
    }

    /// Two ids with the same hash (forced by two values under one hash) are told apart by the
    /// verifier: a match of the hash alone never answers for an id.
    #[test]
    fn a_shared_hash_is_resolved_by_the_verifier() {
        let mut index = TransferIds::default();
        index.insert(5, 50, NONE);
        // A second entry under 5's hash, as a colliding id would be stored.
        index.table.insert(id_hash(5), 60);
        assert_eq!(index.find(5, |v| v == 60), Some(60));
        assert_eq!(index.find(5, |v| v == 50), Some(50));
        assert_eq!(index.find(5, |_| false), None);
        let mut all = Vec::new();
        index.candidates(5, |v| all.push(v));
        all.sort_unstable();
        assert_eq!(all, [50, 60]);
    }

    /// Growing moves a bounded number of buckets per insert: the old table empties before the
    /// new one fills, and while both are live every id is found.
    #[test]
    fn growth_is_spread_over_inserts() {
        let mut index = TransferIds::default();
        index.reserve(1_000, NONE);
        let buckets = index.table.slots.len();
        let mut grew_at = None;
        for id in 1..=20_000u128 {
            index.insert(id, id as u32, NONE);
            if index.moving.is_some() && grew_at.is_none() {
                grew_at = Some(id);
            }
            if let Some(moving) = &index.moving {
                assert!(moving.next <= (id - grew_at.unwrap_or(id) + 1) as usize * MIGRATE_PER_INSERT);
            }
            assert!((1..=id).step_by(97).all(|k| index.find(k, |v| v == k as u32) == Some(k as u32)));
        }
        assert!(grew_at.is_some() && index.table.slots.len() > buckets && index.moving.is_none());
        assert!(index.take_retired().is_some() && index.take_retired().is_none(), "the emptied table is handed out once");
    }

    /// The hash is a bijection of the fold: neighbours and ids told apart by a high bit differ.
    #[test]
    fn the_hash_keeps_runs_together_and_separates_ranges() {
        for id in [1u128, 77, u128::MAX - 5, 3 << 64 | 9] {
            assert!(hash_twin(id) != id && id_hash(hash_twin(id)) == id_hash(id));
        }
        assert_eq!(id_hash(4096 + 3) - id_hash(4096), 3);
        assert_ne!(id_hash(1) >> 8, id_hash(1 | 1 << 64) >> 8);
        assert_ne!(id_hash(1) >> 8, id_hash(1 | 1 << 48) >> 8);
        let hashes: std::collections::HashSet<u64> = (0..100_000u128).map(|i| id_hash(i << 8)).collect();
        assert_eq!(hashes.len(), 100_000);
    }
}
