//! Times the parts of a snapshot on a large engine: the state-digest read, the copy the server
//! takes on its sequencer thread (`snapshot_view`), and the encoding (`SnapshotView::bytes`).
//! Run: `cargo run --release -p bursar-bench --example snapshot_probe -- ACCOUNTS TRANSFERS`.

use std::time::Instant;

use bursar_bench::{engine_with_accounts, transfer_batch, Choice, Rng};
use bursar_engine::BATCH_COMMANDS_MAX;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (accounts, transfers) = (args.first().copied().unwrap_or(1_000_000), args.get(1).copied().unwrap_or(7_000_000));
    let mut engine = engine_with_accounts(accounts, transfers as usize);
    let mut rng = Rng(5);
    let mut results = Vec::new();
    let mut id = 1u128 << 64;
    let mut now = 1u64 << 40;
    for _ in 0..transfers / BATCH_COMMANDS_MAX as u64 {
        let batch = transfer_batch(&mut rng, accounts, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
        id += BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        results.clear();
        engine.execute(now, &batch, &mut results).expect("batch");
    }
    let t = Instant::now();
    let _ = engine.state_digest();
    println!("state digest (all changes since the start): {:?}", t.elapsed());
    let mut view = bursar_engine::SnapshotView::default();
    for round in 0..2 {
        // Round 0 copies into fresh memory (a server's first snapshot); round 1 into the memory
        // of round 0's copy, as the node does for every later snapshot.
        let t = Instant::now();
        engine.snapshot_view_into(&mut view);
        let copied = t.elapsed();
        let t = Instant::now();
        let bytes = view.bytes();
        println!("round {round}: copy {copied:?}, encode {:?} ({} MB)", t.elapsed(), bytes.len() >> 20);
    }
}
