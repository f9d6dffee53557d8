//! What a restart's restore costs the engine, without the disk: N transfers (10 000 accounts,
//! uniform, TigerBeetle's id order) with every full chunk but the newest evicted into memory
//! standing in for the history store, a slim snapshot, then `Engine::restore_from` timed three
//! times (or as often as a second argument says): `cargo run --release -p bursar-bench --example
//! restore_probe -- 20000000`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use bursar_bench::{engine_with_accounts, grow_uniform};
use bursar_engine::{Engine, History, Record, RecordHistory, SnapshotView, Transfer, CHUNK_BITS};

/// The store's bytes: transfer `i`'s record at `i × 128`, as the node's history file.
type Bytes = Arc<RwLock<Vec<u8>>>;

fn history(bytes: &Bytes) -> Arc<dyn History> {
    let bytes = Arc::clone(bytes);
    let read = move |offset: u64, out: &mut [u8]| -> Result<(), String> {
        let held = bytes.read().map_err(|_| "poisoned".to_string())?;
        let at = offset as usize;
        let part = held.get(at..at + out.len()).ok_or_else(|| format!("offset {offset} not stored"))?;
        out.copy_from_slice(part);
        Ok(())
    };
    Arc::new(RecordHistory::new(1 << CHUNK_BITS, read))
}

/// Stores every full chunk but the newest and evicts it, as the node does.
fn store_and_evict(engine: &mut Engine, bytes: &Bytes) {
    let sealed = engine.sealed_transfer_chunks();
    let mut held = bytes.write().expect("lock");
    let stored = held.len() / (128 << CHUNK_BITS);
    for k in stored..sealed.saturating_sub(1) {
        let chunk: &Arc<Vec<Transfer>> = engine.transfer_chunk(k).expect("a full chunk in memory");
        chunk.iter().for_each(|t| held.extend_from_slice(&t.to_bytes()));
    }
    drop(held);
    engine.evict_chunks_below(sealed);
}

fn main() {
    let transfers: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000_000);
    let restores: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    const ACCOUNTS: u64 = 10_000;
    let bytes: Bytes = Arc::default();
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    engine.set_history(history(&bytes));
    grow_uniform(&mut engine, ACCOUNTS, transfers, |engine| store_and_evict(engine, &bytes));
    let mut view = SnapshotView::default();
    engine.slim_snapshot_view_into(&mut view);
    let slim = view.bytes();
    let stored = engine.transfers().len();
    println!("{stored} transfers, {} chunks evicted, slim snapshot {} bytes", engine.evicted_chunks(), slim.len());
    drop(engine);
    for run in 1..=restores {
        let start = Instant::now();
        let restored = Engine::restore_from(&slim, CHUNK_BITS, Some(history(&bytes))).expect("restores");
        let took = start.elapsed();
        println!(
            "restore {run}: {:.2} s, {:.0} ns a transfer",
            took.as_secs_f64(),
            took.as_nanos() as f64 / restored.transfers().len() as f64
        );
    }
}
