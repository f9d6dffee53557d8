//! A history kept in memory, for tests that evict most of an engine's transfers and balance
//! entries: the engine's side of history on disk (prefetch, pinned holds, read-through queries)
//! under the simulation and the reference model, without the node's store (which its own tests
//! cover).

use bursar_engine::{BalanceEntry, ChunkImage, ChunkLineage, Engine, ExpiredHold, FailedTransfer, History, Transfer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Full chunks handed over by an engine, readable by index.
#[derive(Debug)]
pub struct MemoryHistory {
    chunks: Mutex<Vec<Arc<Vec<Transfer>>>>,
    balance_chunks: Mutex<Vec<Arc<Vec<BalanceEntry>>>>,
    failed_chunks: Mutex<Vec<Arc<Vec<FailedTransfer>>>>,
    expired_chunks: Mutex<Vec<Arc<Vec<ExpiredHold>>>>,
    /// Each chunk's restore image, as the node's store keeps them.
    images: Mutex<Vec<ChunkImage>>,
    /// Each chunk's lineage image, as the node's store keeps them.
    lineage: Mutex<Vec<ChunkLineage>>,
    /// Each chunk of expired holds' image (their holds' ids and expiries).
    expired_images: Mutex<Vec<Vec<(u128, u64)>>>,
    /// The stored ids' index, as the node's keeps it: chunks covered, and (hash, index) sorted.
    ids: Mutex<(usize, Vec<(u64, u32)>)>,
    chunk_len: usize,
    /// Records read back so far.
    pub reads: AtomicU64,
}

impl MemoryHistory {
    /// An empty history for an engine with `chunk_len` transfers (and balance entries) per chunk.
    pub fn new(chunk_len: usize) -> Arc<MemoryHistory> {
        Arc::new(MemoryHistory {
            chunks: Mutex::default(),
            balance_chunks: Mutex::default(),
            failed_chunks: Mutex::default(),
            expired_chunks: Mutex::default(),
            images: Mutex::default(),
            lineage: Mutex::default(),
            expired_images: Mutex::default(),
            ids: Mutex::default(),
            chunk_len,
            reads: AtomicU64::new(0),
        })
    }

    /// Takes every full chunk `engine` holds beyond those already kept, then lets it evict all
    /// it may, as a node does once the chunks are on disk.
    pub fn store_and_evict(&self, engine: &mut Engine) {
        let stored = store(&self.chunks, engine.sealed_transfer_chunks(), |k| {
            let chunk = engine.transfer_chunk(k).expect("a chunk not yet stored is held").clone();
            self.images.lock().expect("history lock").push(ChunkImage::of(&chunk, engine.transfer_links_of_chunk(k)));
            let lineage = ChunkLineage::of(&chunk, (k * chunk.len()) as u32, engine.resolutions_of_chunk(k));
            self.lineage.lock().expect("history lock").push(lineage);
            chunk
        });
        engine.drop_resolutions_below(stored);
        engine.evict_chunks_below(stored);
        // The ids of all stored chunks but the newest go to the index (so some stay in memory
        // while stored, as while the node's index writer catches up).
        self.index_ids(stored.saturating_sub(1));
        engine.set_ids_stored(self.ids.lock().expect("history lock").0);
        let stored = store(&self.balance_chunks, engine.sealed_balance_chunks(), |k| engine.balance_chunk(k).expect("held").clone());
        engine.evict_balance_chunks_below(stored);
        let stored = store(&self.failed_chunks, engine.sealed_failed_chunks(), |k| engine.failed_chunk(k).expect("held").clone());
        engine.evict_failed_chunks_below(stored);
        let stored = store(&self.expired_chunks, engine.sealed_expired_chunks(), |k| {
            let chunk = engine.expired_chunk(k).expect("held").clone();
            let image = bursar_engine::expired_image_of(engine.expired_notes_of_chunk(k), chunk.len()).expect("every expired hold noted");
            self.expired_images.lock().expect("history lock").push(image);
            chunk
        });
        engine.drop_expired_notes_below(stored);
        engine.evict_expired_chunks_below(stored);
    }
}

impl MemoryHistory {
    /// Indexes the ids of the stored chunks below `end` not indexed yet, from their images.
    fn index_ids(&self, end: usize) {
        let images = self.images.lock().expect("history lock");
        let mut ids = self.ids.lock().expect("history lock");
        for k in ids.0..end {
            let first = (k * self.chunk_len) as u32;
            ids.1.extend(images[k].hashes.iter().enumerate().map(|(i, &hash)| (hash, first + i as u32)));
        }
        ids.0 = ids.0.max(end);
        ids.1.sort_unstable();
    }
}

/// Appends to `chunks` each full chunk from the first not yet kept to `sealed`, as `chunk` gives
/// it; returns how many are kept.
fn store<T>(chunks: &Mutex<Vec<Arc<Vec<T>>>>, sealed: usize, chunk: impl Fn(usize) -> Arc<Vec<T>>) -> usize {
    let mut chunks = chunks.lock().expect("history lock");
    for k in chunks.len()..sealed {
        chunks.push(chunk(k));
    }
    chunks.len()
}

/// Item `index` of chunks of `len`, or what is missing.
fn item<T: Copy>(chunks: &[Arc<Vec<T>>], len: usize, index: u32, what: &str) -> Result<T, String> {
    let (k, i) = (index as usize / len, index as usize % len);
    chunks.get(k).map(|chunk| chunk[i]).ok_or_else(|| format!("{what} index {index} was never stored"))
}

/// Entries `indices` of `chunks` appended to `out`, counted in `reads`, or what is missing.
fn many<T: Copy>(
    reads: &AtomicU64,
    chunks: &Mutex<Vec<Arc<Vec<T>>>>,
    len: usize,
    indices: &[u32],
    what: &str,
    out: &mut Vec<T>,
) -> Result<(), String> {
    reads.fetch_add(indices.len() as u64, Ordering::Relaxed);
    let chunks = chunks.lock().expect("history lock");
    indices.iter().try_for_each(|&index| item(&chunks, len, index, what).map(|entry| out.push(entry)))
}

/// Chunk `k` into `out`, or what is missing.
fn whole<T: Copy>(chunks: &[Arc<Vec<T>>], k: usize, out: &mut Vec<T>, what: &str) -> Result<(), String> {
    out.clear();
    out.extend_from_slice(chunks.get(k).ok_or_else(|| format!("{what} chunk {k} was never stored"))?);
    Ok(())
}

impl History for MemoryHistory {
    fn read(&self, index: u32) -> Result<Transfer, String> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        item(&self.chunks.lock().expect("history lock"), self.chunk_len, index, "transfer")
    }

    fn read_chunk(&self, k: usize, out: &mut Vec<Transfer>) -> Result<(), String> {
        whole(&self.chunks.lock().expect("history lock"), k, out, "transfer")
    }

    fn read_failed(&self, indices: &[u32], out: &mut Vec<FailedTransfer>) -> Result<(), String> {
        many(&self.reads, &self.failed_chunks, self.chunk_len, indices, "failed id", out)
    }

    fn read_failed_chunk(&self, k: usize, out: &mut Vec<FailedTransfer>) -> Result<(), String> {
        whole(&self.failed_chunks.lock().expect("history lock"), k, out, "failed")
    }

    fn read_expired(&self, places: &[u32], out: &mut Vec<ExpiredHold>) -> Result<(), String> {
        many(&self.reads, &self.expired_chunks, self.chunk_len, places, "expired hold", out)
    }

    fn read_expired_chunk(&self, k: usize, out: &mut Vec<ExpiredHold>) -> Result<(), String> {
        whole(&self.expired_chunks.lock().expect("history lock"), k, out, "expired")
    }

    fn has_lineage(&self) -> bool {
        true
    }

    fn expired_images_chunks(&self) -> usize {
        self.expired_images.lock().expect("history lock").len()
    }

    fn read_expired_image(&self, k: usize) -> Result<Option<Vec<(u128, u64)>>, String> {
        Ok(self.expired_images.lock().expect("history lock").get(k).cloned())
    }

    fn lineage_chunks(&self) -> usize {
        self.lineage.lock().expect("history lock").len()
    }

    fn read_lineage(&self, k: usize) -> Result<Option<ChunkLineage>, String> {
        Ok(self.lineage.lock().expect("history lock").get(k).cloned())
    }

    fn read_image(&self, k: usize) -> Result<Option<ChunkImage>, String> {
        Ok(self.images.lock().expect("history lock").get(k).cloned())
    }

    fn read_balances(&self, indices: &[u32], out: &mut Vec<BalanceEntry>) -> Result<(), String> {
        many(&self.reads, &self.balance_chunks, self.chunk_len, indices, "balance entry", out)
    }

    fn read_balance_chunk(&self, k: usize, out: &mut Vec<BalanceEntry>) -> Result<(), String> {
        whole(&self.balance_chunks.lock().expect("history lock"), k, out, "balance")
    }

    fn ids_stored_chunks(&self) -> usize {
        self.ids.lock().expect("history lock").0
    }

    fn stored_ids(&self, hashes: &[u64], out: &mut Vec<(u64, u32)>) -> Result<(), String> {
        let ids = self.ids.lock().expect("history lock");
        for &hash in hashes {
            let from = ids.1.partition_point(|&(h, _)| h < hash);
            out.extend(ids.1[from..].iter().take_while(|&&(h, _)| h == hash));
        }
        Ok(())
    }
}
