//! What a stored transfer costs in resident memory today, split into the engine's tables and the
//! snapshot copy a server keeps current, at N transfers (issue 25's starting point):
//! `cargo run --release -p bursar-bench --example history_probe -- 10000000`.
//! The engine grows as a live server's does (no reservation); resident bytes are read from
//! `/proc/self/statm` after each part.

use bursar_bench::{engine_with_accounts, grow_uniform, resident_bytes};
use bursar_engine::SnapshotView;

fn main() {
    let transfers: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    const ACCOUNTS: u64 = 10_000;
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    let base = resident_bytes();
    grow_uniform(&mut engine, ACCOUNTS, transfers, |_| {});
    let stored = engine.transfers().len() as f64;
    let with_engine = resident_bytes();
    let mut copy = SnapshotView::default();
    engine.snapshot_view_catch_up(&mut copy, usize::MAX);
    let with_copy = resident_bytes();
    let per = |bytes: usize| bytes as f64 / stored;
    println!("transfers stored: {stored}");
    println!(
        "engine tables: {:.1} bytes/transfer (record 128 and per-account links 8; the rest is the id index and growth slack)",
        per(with_engine - base)
    );
    println!("snapshot copy kept current: {:.1} bytes/transfer", per(with_copy - with_engine));
    println!("total: {:.1} bytes/transfer", per(with_copy - base));
    std::hint::black_box(&copy);
}
