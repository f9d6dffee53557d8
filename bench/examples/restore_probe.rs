//! What a restart's restore costs the engine, without the disk: N transfers (10 000 accounts,
//! uniform, TigerBeetle's id order) with every full chunk but the newest evicted into memory
//! standing in for the history store, a slim snapshot, then `Engine::restore_from` timed three
//! times (or as often as a second argument says), with the records it read one by one (on a
//! server, each a random read of the disk): `cargo run --release -p bursar-bench --example
//! restore_probe -- 20000000 [RUNS] [holds]`. With `holds`, half the transfers are holds, each
//! captured four chunks (131 072 transfers) after it was made, as card payments are captured
//! hours after their authorisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bursar_bench::{engine_with_accounts, grow_uniform, transfer_batch, Choice, Rng};
use bursar_engine::{Command, Engine, History, Record, RecordHistory, SnapshotView, Transfer, BATCH_COMMANDS_MAX, CHUNK_BITS};

/// Records read one at a time (not as part of a whole chunk).
static RECORD_READS: AtomicU64 = AtomicU64::new(0);

/// The store's bytes: transfer `i`'s record at `i × 128`, as the node's history file.
type Bytes = Arc<RwLock<Vec<u8>>>;

fn history(bytes: &Bytes) -> Arc<dyn History> {
    let bytes = Arc::clone(bytes);
    let read = move |offset: u64, out: &mut [u8]| -> Result<(), String> {
        let held = bytes.read().map_err(|_| "poisoned".to_string())?;
        let at = offset as usize;
        if out.len() == 128 {
            RECORD_READS.fetch_add(1, Ordering::Relaxed);
        }
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

/// Batches of holds and captures: each batch makes `BATCH_COMMANDS_MAX / 2` holds and captures
/// as many made `CAPTURE_LAG` transfers before, until `transfers` are stored.
fn grow_late_captures(engine: &mut Engine, accounts: u64, transfers: usize, mut after_batch: impl FnMut(&mut Engine)) {
    const CAPTURE_LAG: u128 = 4 << CHUNK_BITS;
    let (mut rng, mut results, mut now, mut id) = (Rng(7), Vec::new(), 1u64 << 40, 1u128 << 64);
    let mut holds = std::collections::VecDeque::new();
    while engine.transfers().len() < transfers {
        let mut batch: Vec<Command> = transfer_batch(&mut rng, accounts, &Choice::Uniform, id, BATCH_COMMANDS_MAX / 2)
            .into_iter()
            .map(|c| match c {
                Command::Transfer(t) => Command::Hold(t),
                other => other,
            })
            .collect();
        holds.extend((0..batch.len() as u128).map(|i| id + i));
        id += batch.len() as u128;
        while holds.len() as u128 > CAPTURE_LAG / 2 && batch.len() < BATCH_COMMANDS_MAX {
            let hold = holds.pop_front().expect("a hold");
            batch.push(Command::Capture(Transfer { id, pending_id: hold, amount: u128::MAX, ..Default::default() }));
            id += 1;
        }
        now += 1_000_000;
        results.clear();
        engine.execute(now, &batch, &mut results).expect("batch");
        assert!(results.iter().all(|r| *r == bursar_engine::ResultCode::Ok), "every hold and capture succeeds");
        after_batch(engine);
    }
}

fn main() {
    let transfers: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000_000);
    let restores: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let late_captures = std::env::args().nth(3).is_some_and(|a| a == "holds");
    const ACCOUNTS: u64 = 10_000;
    let bytes: Bytes = Arc::default();
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    engine.set_history(history(&bytes));
    if late_captures {
        grow_late_captures(&mut engine, ACCOUNTS, transfers, |engine| store_and_evict(engine, &bytes));
    } else {
        grow_uniform(&mut engine, ACCOUNTS, transfers, |engine| store_and_evict(engine, &bytes));
    }
    let mut view = SnapshotView::default();
    engine.slim_snapshot_view_into(&mut view);
    let slim = view.bytes();
    let stored = engine.transfers().len();
    println!("{stored} transfers, {} chunks evicted, slim snapshot {} bytes", engine.evicted_chunks(), slim.len());
    drop(engine);
    for run in 1..=restores {
        RECORD_READS.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let restored = Engine::restore_from(&slim, CHUNK_BITS, Some(history(&bytes))).expect("restores");
        let took = start.elapsed();
        println!(
            "restore {run}: {:.2} s, {:.0} ns a transfer, {} records read one by one",
            took.as_secs_f64(),
            took.as_nanos() as f64 / restored.transfers().len() as f64,
            RECORD_READS.load(Ordering::Relaxed)
        );
    }
}
