//! Times the parts of a snapshot on a large engine: the state-digest read, the copy the server
//! takes on its sequencer thread (`snapshot_view`), and the encoding (`SnapshotView::write_chunks`).
//! Run: `cargo run --release -p bursar-bench --example snapshot_probe -- ACCOUNTS TRANSFERS`.

use std::time::Instant;

use bursar_bench::{engine_with_accounts, transfer_batch, Choice, Rng};
use bursar_engine::BATCH_COMMANDS_MAX;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (accounts, transfers) = (args.first().copied().unwrap_or(1_000_000), args.get(1).copied().unwrap_or(7_000_000));
    // Room reserved (and touched) for everything the probe adds, as `bursar start --reserve-*`
    // does for the engine and the snapshot copy.
    let capacity = transfers as usize + 1_024 * BATCH_COMMANDS_MAX;
    let mut engine = engine_with_accounts(accounts, capacity);
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
    view.preallocate(accounts as usize + 16);
    for round in 0..3 {
        // Round 0 copies into fresh memory (a server's first snapshot when it made no copy at
        // start); round 1 into the memory of round 0's copy after 1 024 more batches (8.4 M
        // transfers, the server's default snapshot interval), copying only those; round 2 the
        // same with no transfers in between (the accounts alone).
        if round == 1 {
            for _ in 0..1_024 {
                let batch = transfer_batch(&mut rng, accounts, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
                id += BATCH_COMMANDS_MAX as u128;
                now += 1_000_000;
                results.clear();
                engine.execute(now, &batch, &mut results).expect("batch");
            }
        }
        let t = Instant::now();
        engine.snapshot_view_into(&mut view);
        let copied = t.elapsed();
        let t = Instant::now();
        let len = view.len();
        let mut pieces = 0usize;
        view.write_chunks::<()>(&mut |_| {
            pieces += 1;
            Ok(())
        })
        .expect("no sink error");
        println!(
            "round {round}: {} transfers held, copy {copied:?} (the sequencer's stall), encode {:?} ({} MB in {pieces} pieces)",
            engine.transfers().len(),
            t.elapsed(),
            len >> 20
        );
    }
}
