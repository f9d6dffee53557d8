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
//! The table is [`crate::table`]'s: hashbrown's layout, growth spread over inserts. The hash
//! keeps runs of 256 consecutive ids on consecutive buckets ([`crate::id_hash`]'s locality,
//! measured there).

use crate::table::{Growing, RetiredTable, Slot, Words};
use rustc_hash::FxHashMap;

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

/// The index's buckets: the id's 64-bit hash (low and high words) and its value.
struct HashSlot;

impl Slot for HashSlot {
    /// The index is the largest table: memory before probe length.
    const LOAD_EIGHTHS: usize = 7;

    #[inline]
    fn hash(&[lo, hi, _]: &Words) -> u64 {
        u64::from(hi) << 32 | u64::from(lo)
    }
}

/// The bucket of `value` under `hash`.
fn hashed(hash: u64, value: u32) -> Words {
    [hash as u32, (hash >> 32) as u32, value]
}

/// Every transfer id the engine answers for, to its `transfer_index` value.
#[derive(Default)]
pub(crate) struct TransferIds {
    ids: Growing<HashSlot>,
    /// Ids in the range reserved for order runs, exactly (see the module documentation).
    reserved: FxHashMap<u128, u32>,
}

impl core::fmt::Debug for TransferIds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TransferIds {{ len: {}, buckets: {}, moving: {} }}", self.len(), self.ids.table.buckets(), self.ids.is_moving())
    }
}

impl TransferIds {
    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.ids.len() + self.reserved.len()
    }

    /// Ids the index holds before it next grows.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ids.capacity()
    }

    /// The value of `id`: the first value whose hash matches that `verify` accepts (it compares
    /// the record the value names with `id`). Reserved ids are exact and never verified.
    #[inline]
    pub(crate) fn find(&self, id: u128, mut verify: impl FnMut(u32) -> bool) -> Option<u32> {
        if crate::is_reserved_id(id) {
            return self.reserved.get(&id).copied();
        }
        let hash = id_hash(id);
        self.ids.find(hash, |slot| HashSlot::hash(slot) == hash && verify(slot[2])).map(|slot| slot[2])
    }

    /// Calls `each` with every value `id` may name (its hash matches), without verifying: the
    /// records a prefetch must read so that [`TransferIds::find`] can verify them.
    pub(crate) fn candidates(&self, id: u128, mut each: impl FnMut(u32)) {
        if crate::is_reserved_id(id) {
            return self.reserved.get(&id).copied().into_iter().for_each(each);
        }
        let hash = id_hash(id);
        self.ids.find(hash, |slot| {
            if HashSlot::hash(slot) == hash {
                each(slot[2]);
            }
            false
        });
    }

    /// The first value whose hash matches `id`'s, or 0: a probe that only warms the buckets a
    /// lookup of `id` will read.
    #[inline]
    pub(crate) fn peek(&self, id: u128) -> u32 {
        let hash = id_hash(id);
        self.ids.find(hash, |slot| HashSlot::hash(slot) == hash).map_or(0, |slot| slot[2])
    }

    /// Indexes a new `id` (the caller found it absent) under `value`.
    pub(crate) fn insert(&mut self, id: u128, value: u32) {
        if crate::is_reserved_id(id) {
            assert!(self.reserved.insert(id, value).is_none(), "reserved id {id} indexed twice");
            return;
        }
        self.insert_hashed(id_hash(id), value);
    }

    /// Indexes `value` under an id known only by its hash ([`id_hash`]): a restore from a
    /// chunk's image. Never an id of the reserved range, which is indexed exactly (by the caller).
    #[inline]
    pub(crate) fn insert_hashed(&mut self, hash: u64, value: u32) {
        self.ids.insert(hashed(hash, value));
    }

    /// Removes `id`, indexed under `value` (asserted): undoing an insert.
    pub(crate) fn remove(&mut self, id: u128, value: u32) {
        let removed = if crate::is_reserved_id(id) {
            self.reserved.remove(&id) == Some(value)
        } else {
            let hash = id_hash(id);
            self.ids.remove(hash, |slot| HashSlot::hash(slot) == hash && slot[2] == value).is_some()
        };
        assert!(removed, "transfer id {id} was not indexed under {value}");
    }

    /// Whether a table the last growth emptied waits to be taken.
    #[cfg(test)]
    pub(crate) fn holds_retired(&self) -> bool {
        self.ids.holds_retired()
    }

    /// The table the last growth emptied, if not taken yet: for the caller to free.
    pub(crate) fn take_retired(&mut self) -> Option<RetiredTable> {
        self.ids.take_retired()
    }

    /// Room for `items` ids in all without growing: one rebuild now (start-up, not a stall).
    pub(crate) fn reserve(&mut self, items: usize) {
        self.ids.reserve(items);
    }

    /// Writes every page of the table, so inserts take no page faults.
    pub(crate) fn touch(&mut self) {
        self.ids.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
                index.insert(id, value);
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

    /// Two ids with the same hash (forced by two values under one hash) are told apart by the
    /// verifier: a match of the hash alone never answers for an id.
    #[test]
    fn a_shared_hash_is_resolved_by_the_verifier() {
        let mut index = TransferIds::default();
        index.insert(5, 50);
        // A second entry under 5's hash, as a colliding id would be stored.
        index.ids.insert(hashed(id_hash(5), 60));
        assert_eq!(index.find(5, |v| v == 60), Some(60));
        assert_eq!(index.find(5, |v| v == 50), Some(50));
        assert_eq!(index.find(5, |_| false), None);
        let mut all = Vec::new();
        index.candidates(5, |v| all.push(v));
        all.sort_unstable();
        assert_eq!(all, [50, 60]);
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
