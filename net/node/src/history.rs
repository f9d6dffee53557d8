//! History on disk for a node: full chunks of transfers move to a [`HistoryStore`] on a writer
//! thread and, once stored durably, leave the engine's memory; queries and the prefetch before
//! each batch read them back through [`file_history`].
//!
//! Snapshots are then slim: they leave the evicted chunks to the store, which must hold them
//! durably (a chunk is evicted only once written and synced), and carry the state digest. At
//! open a slim snapshot's chunks are read back from the store, each page checked against its
//! sum and the whole against the digest, so a damaged or foreign store is refused, never
//! believed. The chunks the recovered state holds in memory (those after the snapshot's, and
//! all of a full snapshot's) are checked against the store and any that differ rewritten.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bursar_engine::{decode_chunk, transfers_digest_sum, Engine, History, Record, RecordHistory, RecordReader, Transfer, RECORD_SIZE};
use bursar_wal::HistoryStore;
use crossbeam_channel::Sender;

/// Bytes of one stored chunk: the engine's chunk of transfers, [`RECORD_SIZE`] bytes each.
pub const CHUNK_BYTES: u64 = (1u64 << bursar_engine::CHUNK_BITS) * RECORD_SIZE as u64;

/// Opens (or creates) the history store in `dir` for the engine's chunks, naming `dir` in an
/// error: what `bursar start` and the embedded benchmark server hand to [`crate::Node::open_with_history`].
pub fn open_store(dir: &std::path::Path) -> std::io::Result<HistoryStore> {
    HistoryStore::open(dir, CHUNK_BYTES).map_err(|e| std::io::Error::new(e.kind(), format!("opening {}: {e}", dir.display())))
}

/// Reads evicted transfers back from `store` (chunks of `chunk_len`): record `i` is the
/// [`RECORD_SIZE`] bytes at `i × RECORD_SIZE`, in a page whose checksum is verified on every read;
/// several records asked for at once are read side by side ([`HistoryStore::read_many`]).
pub fn file_history(store: Arc<HistoryStore>, chunk_len: usize) -> Arc<dyn History> {
    Arc::new(RecordHistory::new(chunk_len, StoreReader { store, ahead: Mutex::new(None) }))
}

/// [`file_history`]'s reader. A whole chunk is read one ahead on a helper thread: a restore
/// (and a full snapshot of an engine with evicted chunks) reads them in order, so chunk k + 1
/// is read from disk, checked, decoded and its digest terms summed while chunk k is restored.
struct StoreReader {
    store: Arc<HistoryStore>,
    /// The chunk read ahead: its offset and the thread reading it.
    ahead: Mutex<Option<ChunkAhead>>,
}

/// A chunk being read ahead: its offset, and the thread reading it, which also decodes its
/// transfers and sums their state digest terms (so the restore's thread does neither).
type ChunkAhead = (u64, JoinHandle<std::io::Result<(Vec<Transfer>, u128)>>);

impl StoreReader {
    /// Starts reading the chunk at `offset` on a helper thread, if the store holds it.
    fn read_ahead(&self, offset: u64) -> Option<ChunkAhead> {
        let chunk_bytes = self.store.chunk_bytes();
        if offset + chunk_bytes > self.store.chunks() * chunk_bytes {
            return None;
        }
        let store = Arc::clone(&self.store);
        let read = move || {
            let mut bytes = vec![0u8; chunk_bytes as usize];
            store.read(offset, &mut bytes)?;
            let mut transfers = Vec::with_capacity(bytes.len() / RECORD_SIZE);
            decode_chunk(&bytes, &mut transfers);
            let sum = transfers_digest_sum(&transfers);
            Ok((transfers, sum))
        };
        // Best effort: without a thread the next chunk is read when asked for.
        std::thread::Builder::new().name("bursar-history-ahead".into()).spawn(read).ok().map(|handle| (offset, handle))
    }
}

impl RecordReader for StoreReader {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        self.store.read(offset, out).map_err(|e| e.to_string())
    }

    fn read_chunk_decoded(&self, offset: u64, len: usize, out: &mut Vec<Transfer>) -> Result<Option<u128>, String> {
        let mut ahead = self.ahead.lock().expect("read-ahead lock");
        let summed = match ahead.take() {
            Some((at, reading)) if at == offset && len as u64 == self.store.chunk_bytes() => {
                let (transfers, sum) = reading.join().expect("a history read-ahead panicked").map_err(|e| e.to_string())?;
                *out = transfers;
                Some(sum)
            }
            _ => {
                let mut bytes = vec![0u8; len];
                self.store.read(offset, &mut bytes).map_err(|e| e.to_string())?;
                decode_chunk(&bytes, out);
                None
            }
        };
        *ahead = self.read_ahead(offset + self.store.chunk_bytes());
        Ok(summed)
    }

    fn read_many_at(&self, offsets: &[u64], record_bytes: usize, out: &mut [u8]) -> Result<(), String> {
        self.store.read_many(offsets, record_bytes, out).map_err(|e| e.to_string())
    }
}

/// `chunk`'s records as stored, appended to `out`.
pub fn encode_chunk(chunk: &[Transfer], out: &mut Vec<u8>) {
    out.reserve(chunk.len() * RECORD_SIZE);
    for transfer in chunk {
        out.extend_from_slice(&transfer.to_bytes());
    }
}

/// What attaching a store found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryAttached {
    /// Stored chunks a slim snapshot left to the store, read back (and checked) by the restore.
    pub restored: u64,
    /// Stored chunks that matched the restored state.
    pub verified: u64,
    /// Stored chunks that did not (damaged, or another state's) and were rewritten.
    pub repaired: u64,
    /// Stored chunks beyond the restored state, dropped.
    pub dropped: u64,
    /// Chunks the state held that the store did not, stored now.
    pub appended: u64,
}

/// Moves full chunks from the engine to the store (see the module): the node's side.
#[derive(Debug)]
pub(crate) struct Mover {
    store: Arc<HistoryStore>,
    pub(crate) history: Arc<dyn History>,
    /// Chunks handed to the writer so far.
    handed: u64,
    to_writer: Option<Sender<(u64, Arc<Vec<Transfer>>)>>,
    writer: Option<JoinHandle<()>>,
    /// The writer's first failure; it writes nothing after one (the chunks stay in memory).
    failure: Arc<Mutex<Option<String>>>,
    failure_reported: bool,
}

impl Mover {
    /// Checks `store` against `engine` (just restored: the chunks a slim snapshot left to the
    /// store evicted, every later one in memory), repairs it, stores what it lacks, and starts
    /// the writer thread. `history` reads `store`.
    pub(crate) fn attach(
        engine: &mut Engine,
        store: Arc<HistoryStore>,
        history: Arc<dyn History>,
    ) -> std::io::Result<(Mover, HistoryAttached)> {
        let chunk_bytes = (engine.transfer_chunk_len() * RECORD_SIZE) as u64;
        assert_eq!(store.chunk_bytes(), chunk_bytes, "the store was opened for the engine's chunks");
        let restored = engine.evicted_chunks() as u64;
        assert!(store.chunks() >= restored, "the restore read the chunks it evicted from the store");
        let mut attached = HistoryAttached { restored, ..HistoryAttached::default() };
        let sealed = engine.sealed_transfer_chunks() as u64;
        if store.chunks() > sealed {
            attached.dropped = store.chunks() - sealed;
            store.truncate(sealed)?;
        }
        let mut bytes = Vec::with_capacity(chunk_bytes as usize);
        for k in restored..sealed {
            bytes.clear();
            encode_chunk(engine.transfer_chunk(k as usize).expect("a restored chunk is in memory"), &mut bytes);
            if k >= store.chunks() {
                store.append(k, &bytes)?;
                attached.appended += 1;
            } else if store.holds(k, &bytes)? {
                attached.verified += 1;
            } else {
                store.rewrite(k, &bytes)?;
                attached.repaired += 1;
            }
        }
        engine.set_history(history.clone());
        let (to_writer, chunks) = crossbeam_channel::unbounded::<(u64, Arc<Vec<Transfer>>)>();
        let failure = Arc::new(Mutex::new(None));
        let (writing, failed) = (Arc::clone(&store), Arc::clone(&failure));
        let writer = std::thread::Builder::new().name("bursar-history".into()).spawn(move || {
            // CPU the sequencer and the network leave only: encoding and checksumming a chunk
            // beside them showed in the benchmark's tail latency. Best effort.
            let _ = bursar_wal::background_thread();
            let mut bytes = Vec::with_capacity(chunk_bytes as usize);
            for (k, chunk) in chunks {
                bytes.clear();
                encode_chunk(&chunk, &mut bytes);
                drop(chunk);
                if let Err(e) = writing.append(k, &bytes) {
                    *failed.lock().expect("failure lock") = Some(format!("storing chunk {k} in {}: {e}", writing.dir().display()));
                    return;
                }
            }
        })?;
        let mut mover =
            Mover { store, history, handed: sealed, to_writer: Some(to_writer), writer: Some(writer), failure, failure_reported: false };
        mover.step(engine);
        Ok((mover, attached))
    }

    /// Between batches: hands newly full chunks to the writer and evicts those stored.
    pub(crate) fn step(&mut self, engine: &mut Engine) {
        let sealed = engine.sealed_transfer_chunks() as u64;
        while self.handed < sealed {
            let chunk = engine.transfer_chunk(self.handed as usize).expect("a chunk not yet stored is in memory").clone();
            // A writer that stopped has said why (below); the chunk stays in memory.
            if let Some(to_writer) = &self.to_writer {
                let _ = to_writer.send((self.handed, chunk));
            }
            self.handed += 1;
        }
        engine.evict_chunks_below(self.store.chunks() as usize);
        if !self.failure_reported {
            if let Some(why) = self.failure.lock().expect("failure lock").as_ref() {
                eprintln!("bursar: WARNING: the history store failed ({why}); newer transfers stay in memory, nothing is lost");
                self.failure_reported = true;
            }
        }
    }

    /// Chunks stored durably.
    pub(crate) fn stored_chunks(&self) -> u64 {
        self.store.chunks()
    }
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
