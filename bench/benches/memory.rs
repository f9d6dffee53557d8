//! Measures resident memory per account and per stored transfer (Linux, from /proc/self/statm).
//!
//! Run: `cargo bench -p bursar-bench --bench memory`.

use bursar_bench::{engine_with_accounts, grow_uniform, resident_bytes};

fn main() {
    const ACCOUNTS: u64 = 1_000_000;
    const TRANSFERS: usize = 4_000_000;
    let base = resident_bytes();
    // No reservation: grow as a live server would, so the figure includes growth slack.
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    let after_accounts = resident_bytes();
    grow_uniform(&mut engine, ACCOUNTS, TRANSFERS, |_| {});
    let after_transfers = resident_bytes();
    let per_account = (after_accounts - base) as f64 / (ACCOUNTS + 1) as f64;
    let per_transfer = (after_transfers - after_accounts) as f64 / engine.transfers().len() as f64;
    println!("accounts: {}  bytes/account: {per_account:.1}", ACCOUNTS + 1);
    println!("transfers: {}  bytes/transfer: {per_transfer:.1}", engine.transfers().len());
    println!("snapshot bytes/transfer: {:.1}", engine.snapshot_len() as f64 / engine.transfers().len() as f64);
}
