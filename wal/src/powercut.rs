//! A power cut for a real process: [`PowerCut`] wraps real storage so that whatever is written
//! and not yet synced reaches the files as a random subset of its 4 KiB blocks, in random order,
//! with a pause before the sync; only a sync makes all of it land. A `kill -9` at any moment
//! then leaves the files as a power cut could (every synced byte; any subset of the unsynced
//! blocks, whichever order they were written in), which the page cache would otherwise hide: a
//! killed process's writes all survive it. For crash tests of the whole server (`bursar start
//! --power-cut-seed`); it never weakens durability, since every sync still syncs.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use crate::block::{SharedBytes, BLOCK_BYTES};
use crate::sim::Rng;
use crate::storage::{AtomicWrite, Contents, Storage};

/// Chance, in percent, that an unsynced block is written to the file at once (as an operating
/// system writes dirty pages back early) instead of waiting for the sync.
pub const EARLY_WRITE_BACK_PERCENT: u64 = 30;

/// Longest pause between writing part of the unsynced blocks and the rest at a sync, in
/// microseconds: the window in which a kill leaves a torn write behind.
pub const TEAR_WINDOW_US_MAX: u64 = 2_000;

/// One file's unsynced pieces by block index: (file offset, bytes), in write order.
type Blocks = BTreeMap<u64, Vec<(u64, Vec<u8>)>>;

/// Real storage whose unsynced writes land block by block in random order (see the module).
#[derive(Debug)]
pub struct PowerCut<S> {
    inner: S,
    rng: Rng,
    /// Per file, per block index, the pieces written to that block and not on the file yet, in
    /// the order they were written (a block's pieces always land in order; blocks in any order).
    unsynced: BTreeMap<String, Blocks>,
    /// The result of the write and sync begun by `write_sync_begin`, for `sync_end`.
    begun: Option<io::Result<()>>,
}

impl<S: Storage> PowerCut<S> {
    /// Wraps `inner`; `seed` chooses which blocks land early and in which order.
    pub fn new(inner: S, seed: u64) -> PowerCut<S> {
        PowerCut { inner, rng: Rng(seed), unsynced: BTreeMap::new(), begun: None }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Writes one block's unsynced pieces to the file, in order.
    fn land(&mut self, name: &str, block: u64) -> io::Result<()> {
        let pieces = self.unsynced.get_mut(name).and_then(|blocks| blocks.remove(&block)).unwrap_or_default();
        pieces.iter().try_for_each(|(offset, bytes)| self.inner.write_at(name, *offset, bytes))
    }

    /// Writes every unsynced block of `name` in random order, pausing once at a random point.
    fn land_all(&mut self, name: &str) -> io::Result<()> {
        let mut blocks: Vec<u64> = self.unsynced.get(name).map(|b| b.keys().copied().collect()).unwrap_or_default();
        for i in (1..blocks.len()).rev() {
            blocks.swap(i, self.rng.below(i as u64 + 1) as usize);
        }
        let pause_at = self.rng.below(blocks.len() as u64 + 1) as usize;
        for (i, block) in blocks.into_iter().enumerate() {
            if i == pause_at {
                std::thread::sleep(Duration::from_micros(self.rng.below(TEAR_WINDOW_US_MAX)));
            }
            self.land(name, block)?;
        }
        self.unsynced.remove(name);
        Ok(())
    }
}

impl<S: Storage> Storage for PowerCut<S> {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn prepare(&mut self, name: &str, head: &[u8], len: u64) -> io::Result<()> {
        self.inner.prepare(name, head, len)
    }

    fn prepare_from(&mut self, spare: &str, name: &str, head: &[u8]) -> io::Result<()> {
        self.land_all(spare)?;
        self.inner.prepare_from(spare, name, head)
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.land_all(from)?;
        self.inner.rename(from, to)
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.unsynced.remove(name);
        self.inner.remove(name)
    }

    fn finish_prepare(&mut self, name: &str) -> io::Result<()> {
        self.inner.finish_prepare(name)
    }

    /// The file's bytes with every unsynced piece on top, as a reader in this process sees them.
    fn read(&self, name: &str) -> io::Result<Contents> {
        let contents = self.inner.read(name)?;
        let Some(blocks) = self.unsynced.get(name) else { return Ok(contents) };
        let mut bytes = (*contents).as_ref().to_vec();
        for (offset, piece) in blocks.values().flatten() {
            let end = *offset as usize + piece.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(piece);
        }
        Ok(Box::new(bytes))
    }

    fn read_ahead(&self, name: &str, offset: u64, len: u64) {
        self.inner.read_ahead(name, offset, len);
    }

    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let block_bytes = BLOCK_BYTES as u64;
        let mut at = 0usize;
        while at < bytes.len() {
            let start = offset + at as u64;
            let block = start / block_bytes;
            let end = ((block + 1) * block_bytes - offset).min(bytes.len() as u64) as usize;
            let blocks = self.unsynced.entry(name.to_string()).or_default();
            blocks.entry(block).or_default().push((start, bytes[at..end].to_vec()));
            if self.rng.chance(EARLY_WRITE_BACK_PERCENT) {
                self.land(name, block)?;
            }
            at = end;
        }
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.land_all(name)?;
        self.inner.sync(name)
    }

    fn write_sync_begin(&mut self, name: &str, offset: u64, bytes: SharedBytes) -> io::Result<()> {
        let result = self.write_at(name, offset, bytes.as_ref()).and_then(|()| self.sync(name));
        self.begun = Some(result);
        Ok(())
    }

    fn sync_end(&mut self) -> io::Result<()> {
        self.begun.take().unwrap_or_else(|| Err(io::Error::other("no sync in flight")))
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.unsynced.remove(name);
        self.inner.write_atomic(name, bytes)
    }

    fn write_atomic_begin(&mut self, name: &str, build: AtomicWrite) -> io::Result<()> {
        self.unsynced.remove(name);
        self.inner.write_atomic_begin(name, build)
    }

    fn write_atomic_done(&self) -> bool {
        self.inner.write_atomic_done()
    }

    fn write_atomic_end(&mut self) -> io::Result<()> {
        self.inner.write_atomic_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;

    #[test]
    fn unsynced_blocks_land_in_part_and_a_sync_lands_all_in_write_order_per_block() {
        let sim = SimStorage::new(7, crate::sim::Faults::default());
        let mut cut = PowerCut::new(sim.clone(), 7);
        cut.prepare("f", &[], 64 * 1024).expect("prepare");
        cut.finish_prepare("f").expect("prepared");
        let first = vec![1u8; 16 * BLOCK_BYTES];
        cut.write_at("f", 0, &first).expect("write");
        // A second write over part of the first: within a block, order is kept.
        cut.write_at("f", 100, &[2u8; 50]).expect("write");
        let seen = cut.read("f").expect("read");
        assert_eq!(&(*seen).as_ref()[..100], &[1u8; 100][..]);
        assert_eq!(&(*seen).as_ref()[100..150], &[2u8; 50][..], "a reader in the process sees every write");
        let landed = (*cut.inner().read("f").expect("read")).as_ref()[..first.len()].chunks(BLOCK_BYTES).filter(|b| b[0] == 1).count();
        assert!(landed > 0 && landed < 16, "some blocks landed early, not all: {landed}");
        cut.sync("f").expect("sync");
        let on_file = cut.inner().read("f").expect("read");
        let mut expected = first.clone();
        expected[100..150].fill(2);
        assert_eq!(&(*on_file).as_ref()[..expected.len()], &expected[..]);
    }
}
