//! Measures resident memory per account and per stored transfer (Linux, from /proc/self/statm).
//!
//! Run: `cargo bench -p bursar-bench --bench memory`.

use bursar_bench::{engine_with_accounts, resident_bytes, transfer_batch, Choice, Rng};
use bursar_engine::BATCH_COMMANDS_MAX;

fn main() {
    const ACCOUNTS: u64 = 1_000_000;
    const TRANSFERS: usize = 4_000_000;
    let base = resident_bytes();
    // No reservation: grow as a live server would, so the figure includes growth slack.
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    let after_accounts = resident_bytes();
    let mut rng = Rng(7);
    let mut results = Vec::new();
    let mut now = 1u64 << 40;
    let mut id = 1u128 << 64;
    while engine.transfers().len() < TRANSFERS {
        let batch = transfer_batch(&mut rng, ACCOUNTS, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
        id += BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        results.clear();
        engine.execute(now, &batch, &mut results).expect("batch");
    }
    let after_transfers = resident_bytes();
    let per_account = (after_accounts - base) as f64 / (ACCOUNTS + 1) as f64;
    let per_transfer = (after_transfers - after_accounts) as f64 / engine.transfers().len() as f64;
    println!("accounts: {}  bytes/account: {per_account:.1}", ACCOUNTS + 1);
    println!("transfers: {}  bytes/transfer: {per_transfer:.1}", engine.transfers().len());
    println!("snapshot bytes/transfer: {:.1}", engine.snapshot_len() as f64 / engine.transfers().len() as f64);
}
