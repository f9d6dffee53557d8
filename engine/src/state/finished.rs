//! The finished holds: each finished hold's transfer index to what finished it (the capture or
//! release's transfer index, or `FAILED_TAG` and its place among the expired holds).
//!
//! Kept in blocks of [`BLOCK`] transfer indexes. A block with few finished holds keeps them in a
//! small map; one with many keeps a value per transfer index (4 bytes each). A workload of holds
//! (a hold and its capture every other transfer) then costs 4 bytes a transfer with no hashing
//! and no table to grow and move, where one table of every finished hold took 13 bytes a bucket
//! and moved every entry each time it doubled, at every restore too, which rebuilds it from the
//! transfers (`docs/decisions.md`). A workload without holds keeps nothing.

use rustc_hash::FxHashMap;

/// log2 of the transfer indexes a block covers.
const BLOCK_BITS: u32 = 12;
/// Transfer indexes a block covers.
const BLOCK: usize = 1 << BLOCK_BITS;
/// Finished holds from which a block keeps a value per transfer index (16 KiB) instead of a map
/// (an entry of 8 bytes and its control byte, at most 7/8 full: about as large at this count).
const DENSE_FROM: usize = BLOCK / 4;
/// A dense block's value for a transfer index that is not a finished hold. No value is this:
/// transfer indexes are below it, and so are expired holds' tagged places (asserted).
const NOT_FINISHED: u32 = u32::MAX;

/// One block's finished holds, by offset in the block.
#[derive(Clone, Debug)]
enum Block {
    Sparse(FxHashMap<u16, u32>),
    Dense(Box<[u32]>),
}

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub(crate) struct FinishedHolds {
    blocks: Vec<Block>,
    len: usize,
}

impl FinishedHolds {
    /// What finished the hold at transfer `index`, if it is finished.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<u32> {
        let offset = index as usize % BLOCK;
        match self.blocks.get(index as usize / BLOCK)? {
            Block::Sparse(map) => map.get(&(offset as u16)).copied(),
            Block::Dense(values) => Some(values[offset]).filter(|&value| value != NOT_FINISHED),
        }
    }

    /// Notes that `value` finished the hold at transfer `index`, which was not finished (asserted).
    pub(crate) fn insert(&mut self, index: u32, value: u32) {
        assert_ne!(value, NOT_FINISHED, "a finishing value");
        let (b, offset) = (index as usize / BLOCK, index as usize % BLOCK);
        if self.blocks.len() <= b {
            self.blocks.resize_with(b + 1, || Block::Sparse(FxHashMap::default()));
        }
        let block = &mut self.blocks[b];
        let before = match block {
            Block::Sparse(map) => map.insert(offset as u16, value),
            Block::Dense(values) => Some(core::mem::replace(&mut values[offset], value)).filter(|&v| v != NOT_FINISHED),
        };
        assert_eq!(before, None, "hold at transfer index {index} finished twice");
        self.len += 1;
        if let Block::Sparse(map) = block {
            if map.len() >= DENSE_FROM {
                *block = Block::Dense(dense_of(map));
            }
        }
    }

    /// Notes each `(index, value)` of `finished` as [`FinishedHolds::insert`] does, sorting them
    /// by index first. A block that they will make dense is made dense before they go in, and
    /// a sparse one's map grows once: one at a time, a block's map rehashes at every doubling on
    /// its way to the dense layout (a restore from lineage images inserts a chunk's at once).
    pub(crate) fn insert_many(&mut self, finished: &mut [(u32, u32)]) {
        finished.sort_unstable_by_key(|&(index, _)| index);
        for group in finished.chunk_by(|a, b| a.0 as usize / BLOCK == b.0 as usize / BLOCK) {
            let b = group[0].0 as usize / BLOCK;
            if self.blocks.len() <= b {
                self.blocks.resize_with(b + 1, || Block::Sparse(FxHashMap::default()));
            }
            if let Block::Sparse(map) = &mut self.blocks[b] {
                if map.len() + group.len() >= DENSE_FROM {
                    self.blocks[b] = Block::Dense(dense_of(map));
                } else {
                    map.reserve(group.len());
                }
            }
            group.iter().for_each(|&(index, value)| self.insert(index, value));
        }
    }

    /// Takes back what finished the hold at transfer `index`, which must be `value` (asserted):
    /// undoing an insert.
    pub(crate) fn remove(&mut self, index: u32, value: u32) {
        let offset = index as usize % BLOCK;
        let removed = match self.blocks.get_mut(index as usize / BLOCK) {
            Some(Block::Sparse(map)) => map.remove(&(offset as u16)),
            Some(Block::Dense(values)) => Some(core::mem::replace(&mut values[offset], NOT_FINISHED)),
            None => None,
        };
        assert_eq!(removed, Some(value), "undo: hold at transfer index {index} was finished by {value}");
        self.len -= 1;
    }

    /// Finished holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A sparse block's holds as a dense block's values.
fn dense_of(map: &FxHashMap<u16, u32>) -> Box<[u32]> {
    let mut values = vec![NOT_FINISHED; BLOCK].into_boxed_slice();
    map.iter().for_each(|(&offset, &value)| values[usize::from(offset)] = value);
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Agrees with a plain map through inserts and removals in any order, across blocks that
    /// stay sparse and blocks that turn dense, at both ends of the value range.
    #[test]
    fn agrees_with_a_map_sparse_and_dense() {
        let mut finished = FinishedHolds::default();
        let mut exact: HashMap<u32, u32> = HashMap::new();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Block 0 dense (every other index), block 3 sparse, a far block, in random order.
        let mut indexes: Vec<u32> =
            (0..BLOCK as u32).step_by(2).chain((0..50).map(|i| 3 * BLOCK as u32 + 7 * i)).chain([1_000_003]).collect();
        for i in (1..indexes.len()).rev() {
            indexes.swap(i, next() as usize % (i + 1));
        }
        for (k, &index) in indexes.iter().enumerate() {
            let value = if k % 5 == 0 { super::super::FAILED_TAG | k as u32 } else { index / 2 + k as u32 };
            finished.insert(index, value);
            exact.insert(index, value);
            if k % 7 == 0 {
                finished.remove(index, value);
                exact.remove(&index);
            }
        }
        assert!(matches!(finished.blocks[0], Block::Dense(_)) && matches!(finished.blocks[3], Block::Sparse(_)));
        assert_eq!(finished.len(), exact.len());
        for index in (0..5 * BLOCK as u32).chain([1_000_002, 1_000_003, 2_000_000]) {
            assert_eq!(finished.get(index), exact.get(&index).copied(), "index {index}");
        }
    }

    /// Inserting a batch at once gives what inserting its holds one at a time gives: the same
    /// values and the same layout of each block, with blocks already holding some, crossing
    /// the dense threshold, staying under it, and new ones.
    #[test]
    fn inserting_many_at_once_agrees_with_one_at_a_time() {
        let (mut one_by_one, mut at_once) = (FinishedHolds::default(), FinishedHolds::default());
        let before: Vec<(u32, u32)> = (0..DENSE_FROM as u32 - 10).map(|i| (i * 3, i)).collect();
        for &(index, value) in &before {
            one_by_one.insert(index, value);
            at_once.insert(index, value);
        }
        // Block 0 crosses the threshold, block 1 stays under it, block 5 turns dense at once,
        // block 9 is new and sparse; in no order.
        let mut batch: Vec<(u32, u32)> = (0..20u32)
            .map(|i| (i * 3 + 1, 7 + i))
            .chain((0..30).map(|i| (BLOCK as u32 + 11 * i, 100 + i)))
            .chain((0..DENSE_FROM as u32).map(|i| (5 * BLOCK as u32 + 2 * i, 200 + i)))
            .chain([(9 * BLOCK as u32 + 4, super::super::FAILED_TAG | 3)])
            .rev()
            .collect();
        for &(index, value) in &batch {
            one_by_one.insert(index, value);
        }
        at_once.insert_many(&mut batch);
        assert_eq!(at_once.len(), one_by_one.len());
        let layout = |f: &FinishedHolds| f.blocks.iter().map(|b| matches!(b, Block::Dense(_))).collect::<Vec<_>>();
        assert_eq!(layout(&at_once), layout(&one_by_one));
        assert_eq!(layout(&at_once), [true, false, false, false, false, true, false, false, false, false]);
        for index in 0..10 * BLOCK as u32 {
            assert_eq!(at_once.get(index), one_by_one.get(index), "index {index}");
        }
    }

    #[test]
    #[should_panic(expected = "finished twice")]
    fn a_hold_is_finished_once() {
        let mut finished = FinishedHolds::default();
        finished.insert(5, 9);
        finished.insert(5, 10);
    }
}
