//! A history kept in memory, for tests that evict most of an engine's transfers: the engine's
//! side of history on disk (prefetch, pinned holds, read-through queries) under the simulation
//! and the reference model, without the node's store (which its own tests cover).

use bursar_engine::{Engine, History, Transfer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Full chunks of transfers handed over by an engine, readable by index.
#[derive(Debug)]
pub struct MemoryHistory {
    chunks: Mutex<Vec<Arc<Vec<Transfer>>>>,
    chunk_len: usize,
    /// Records read back so far.
    pub reads: AtomicU64,
}

impl MemoryHistory {
    /// An empty history for an engine with `chunk_len` transfers per chunk.
    pub fn new(chunk_len: usize) -> Arc<MemoryHistory> {
        Arc::new(MemoryHistory { chunks: Mutex::default(), chunk_len, reads: AtomicU64::new(0) })
    }

    /// Takes every full chunk `engine` holds beyond those already kept, then lets it evict all
    /// it may, as a node does once the chunks are on disk.
    pub fn store_and_evict(&self, engine: &mut Engine) {
        let mut chunks = self.chunks.lock().expect("history lock");
        for k in chunks.len()..engine.sealed_transfer_chunks() {
            let chunk = engine.transfer_chunk(k).expect("a chunk not yet stored is held").clone();
            chunks.push(chunk);
        }
        let stored = chunks.len();
        drop(chunks);
        engine.evict_chunks_below(stored);
    }
}

impl History for MemoryHistory {
    fn read(&self, index: u32) -> Result<Transfer, String> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let chunks = self.chunks.lock().expect("history lock");
        let (k, i) = (index as usize / self.chunk_len, index as usize % self.chunk_len);
        chunks.get(k).map(|chunk| chunk[i]).ok_or_else(|| format!("transfer index {index} was never stored"))
    }

    fn read_chunk(&self, k: usize, out: &mut Vec<Transfer>) -> Result<(), String> {
        let chunks = self.chunks.lock().expect("history lock");
        out.clear();
        out.extend_from_slice(chunks.get(k).ok_or_else(|| format!("chunk {k} was never stored"))?);
        Ok(())
    }
}
