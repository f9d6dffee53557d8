//! A map from transfer index to a 64-bit value (a pending hold's expiry, a pinned record's
//! place) on [`crate::table`]: 13 bytes a bucket where hashbrown's `(u32, u64)` takes 17, and a
//! growth spread over inserts where hashbrown rehashes the whole table in one insert (with
//! millions of holds waiting for their capture, the longest apply of the run).
//!
//! Keys hash in runs of 256 ([`key_hash`]): consecutive indexes in consecutive buckets.
//! Holds are made in index order and mostly finished in about that order, so neighbours share
//! cache lines and pages where a mixing hash makes each lookup a miss. Whole runs collide, so
//! the table is kept at most 3/4 full: at 7/8, about half of them land on an occupied run and
//! spill over the next, and a lookup that misses probes many groups.

use crate::table::{Growing, RetiredTable, Slot, Words};

/// The buckets: the key and the value's low and high words (4-byte aligned: 12 bytes).
struct Entry;

impl Slot for Entry {
    /// Runs of consecutive keys collide whole, so a fuller table's misses probe far.
    const LOAD_EIGHTHS: usize = 6;

    #[inline]
    fn hash(words: &Words) -> u64 {
        key_hash(words[0])
    }
}

/// The hash of transfer index `key`: aligned runs of 256 indexes on consecutive buckets, each
/// run where murmur3's 64-bit finaliser sends it.
#[inline]
fn key_hash(key: u32) -> u64 {
    let mut run = u64::from(key >> 8);
    run ^= run >> 33;
    run = run.wrapping_mul(0xff51_afd7_ed55_8ccd);
    run ^= run >> 33;
    run = run.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    run ^= run >> 33;
    run << 8 | u64::from(key & 0xFF)
}

/// The value an entry holds.
#[inline]
fn value(words: &Words) -> u64 {
    u64::from(words[2]) << 32 | u64::from(words[1])
}

/// Transfer index to a `u64` (see the module documentation).
#[derive(Clone, Default)]
pub(crate) struct IndexTable(Growing<Entry>);

impl core::fmt::Debug for IndexTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IndexTable {{ len: {}, buckets: {} }}", self.len(), self.0.table.buckets())
    }
}

impl IndexTable {
    /// The value at `key`.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> Option<u64> {
        self.0.find(key_hash(key), |e| e[0] == key).map(value)
    }

    #[inline]
    pub(crate) fn contains_key(&self, key: u32) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, which is absent (asserted, in the probe that finds its bucket), to `value`.
    pub(crate) fn insert(&mut self, key: u32, value: u64) {
        let new = self.0.insert_unique([key, value as u32, (value >> 32) as u32], |e| e[0] == key);
        assert!(new, "transfer index {key} is in the table already");
    }

    /// Takes `key`'s value out.
    pub(crate) fn remove(&mut self, key: u32) -> Option<u64> {
        self.0.remove(key_hash(key), |e| e[0] == key).map(|e| value(&e))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Every key with its value, in the table's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().map(|e| (e[0], value(e)))
    }

    /// The table the last growth emptied, if not taken yet: for the caller to free.
    pub(crate) fn take_retired(&mut self) -> Option<RetiredTable> {
        self.0.take_retired()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Holds made in index order and finished out of order, with values using both words:
    /// every read agrees with a `HashMap`, through growths and same-size rebuilds; a second
    /// insert of a key is refused.
    #[test]
    fn agrees_with_a_hash_map_under_churn() {
        let (mut table, mut model) = (IndexTable::default(), HashMap::new());
        let mut state = 3u64;
        for key in 0..300_000u32 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let value = state ^ u64::from(key) << 40;
            table.insert(key, value);
            model.insert(key, value);
            let gone = key.saturating_sub((state >> 33) as u32 % 5_000);
            assert_eq!(table.remove(gone), model.remove(&gone), "key {gone}");
            if key % 7 == 0 && table.remove(key).is_some() {
                table.insert(key, 1);
                model.insert(key, 1);
            }
            assert_eq!(table.len(), model.len());
            let probe = (state >> 20) as u32 % (key + 1);
            assert_eq!(table.get(probe), model.get(&probe).copied(), "key {probe}");
        }
        let mut all: Vec<(u32, u64)> = table.iter().collect();
        all.sort_unstable();
        let mut expected: Vec<(u32, u64)> = model.into_iter().collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    #[should_panic(expected = "in the table already")]
    fn a_key_is_inserted_once() {
        let mut table = IndexTable::default();
        table.insert(7, 1);
        table.insert(7, 2);
    }
}
