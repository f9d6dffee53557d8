//! A map from transfer index to a small value (a pending hold's expiry, a pinned record's
//! place), split by index into segments of `SEGMENT_KEYS` (65 536) keys, each its own hashbrown
//! map ([`IdMap`]).
//!
//! One map of every pending hold rehashes all of them in the insert that makes it grow (or,
//! once removals filled it with tombstones, in place): with millions of holds waiting for a late
//! capture, that one insert was the longest apply of the run. A segment never holds more than
//! 65 536 keys, so no insert rehashes more. Holds are made in index order and mostly finished in
//! about that order, so only a few segments are written at a time and each is small enough to
//! stay in cache, and an emptied segment is freed (a sparse one shrunk), so holds left pending
//! for good do not keep a large table each.

use crate::id_hash::IdMap;

/// log2 of the keys one segment covers.
const SEGMENT_BITS: u32 = 16;
/// The keys one segment covers: the most one insert can rehash.
#[cfg(test)]
const SEGMENT_KEYS: usize = 1 << SEGMENT_BITS;
/// A segment whose capacity is this many times its entries is shrunk: its rehash is then of
/// few entries.
const SHRINK_AT_ROOM_PER_ENTRY: usize = 8;
/// Segments at or below this capacity are not shrunk.
const SHRINK_ABOVE_CAPACITY: usize = 64;

/// Transfer index to a `V` (see the module documentation).
#[derive(Clone)]
pub(crate) struct IndexTable<V> {
    /// Segment `s` holds the keys `s × SEGMENT_KEYS ..` up to the next segment's.
    segments: Vec<IdMap<u32, V>>,
    len: usize,
}

impl<V> Default for IndexTable<V> {
    fn default() -> Self {
        IndexTable { segments: Vec::new(), len: 0 }
    }
}

impl<V> core::fmt::Debug for IndexTable<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IndexTable {{ len: {}, segments: {} }}", self.len, self.segments.len())
    }
}

impl<V: Copy> IndexTable<V> {
    /// The value at `key`.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> Option<V> {
        self.segments.get((key >> SEGMENT_BITS) as usize)?.get(&key).copied()
    }

    #[inline]
    pub(crate) fn contains_key(&self, key: u32) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, which is absent (asserted), to `value`.
    pub(crate) fn insert(&mut self, key: u32, value: V) {
        let s = (key >> SEGMENT_BITS) as usize;
        if s >= self.segments.len() {
            self.segments.resize_with(s + 1, IdMap::default);
        }
        assert!(self.segments[s].insert(key, value).is_none(), "transfer index {key} is in the table already");
        self.len += 1;
    }

    /// Takes `key`'s value out.
    pub(crate) fn remove(&mut self, key: u32) -> Option<V> {
        let segment = self.segments.get_mut((key >> SEGMENT_BITS) as usize)?;
        let value = segment.remove(&key)?;
        self.len -= 1;
        if segment.is_empty() {
            *segment = IdMap::default();
        } else if segment.capacity() > SHRINK_ABOVE_CAPACITY && segment.len() * SHRINK_AT_ROOM_PER_ENTRY < segment.capacity() {
            segment.shrink_to(segment.len() * 2);
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every key with its value, by segment, in each segment's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, V)> + '_ {
        self.segments.iter().flat_map(|s| s.iter().map(|(&key, &value)| (key, value)))
    }

    /// Room the segments hold, in entries: what memory they keep.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.segments.iter().map(|s| s.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Holds made in index order and finished out of order, with values using both words:
    /// every read agrees with a `HashMap`; a second insert of a key is refused.
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

    /// Holds that stay pending one in a thousand keep little memory once the rest finish:
    /// emptied segments are freed, sparse ones shrunk.
    #[test]
    fn finished_segments_give_their_memory_back() {
        let mut table = IndexTable::default();
        let keys = 8 * SEGMENT_KEYS as u32;
        (0..keys).for_each(|key| table.insert(key, 0));
        let full = table.capacity();
        (0..keys).filter(|key| key % 1_000 != 0).for_each(|key| assert_eq!(table.remove(key), Some(0)));
        assert_eq!(table.len(), keys.div_ceil(1_000) as usize);
        assert!(table.capacity() * 100 < full, "{} of {full} entries' room kept", table.capacity());
        (0..keys).step_by(1_000).for_each(|key| assert_eq!(table.remove(key), Some(0)));
        assert_eq!((table.len(), table.capacity()), (0, 0));
    }
}
