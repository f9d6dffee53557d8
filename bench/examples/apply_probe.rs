//! Times every batch of posted transfers through one engine and prints the spread, to tell
//! machine noise from program behaviour. `cargo run --release -p bursar-bench --example apply_probe -- 10000`;
//! a third argument `policy` first gives every account a channel list and a velocity rule
//! (`bursar_bench::policy_batches`) and reports the resident memory they take per account.

use std::time::Instant;

use bursar_bench::{engine_with_accounts, policy_batches, transfer_batch, Choice, Rng};

fn resident_bytes() -> i64 {
    bursar_bench::resident_bytes() as i64
}
use bursar_engine::BATCH_COMMANDS_MAX;

fn main() {
    let accounts: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let batches: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(400);
    let policy = std::env::args().nth(3).is_some_and(|a| a == "policy");
    let mut engine = engine_with_accounts(accounts, batches * BATCH_COMMANDS_MAX);
    if policy {
        let before = resident_bytes();
        let mut results = Vec::new();
        for (k, batch) in policy_batches(1..=accounts as u128).iter().enumerate() {
            engine.execute((1 << 39) + k as u64, batch, &mut results).expect("policies");
        }
        assert!(results.iter().all(|r| *r == bursar_engine::ResultCode::Ok), "every policy set");
        let per_account = (resident_bytes() - before) as f64 / accounts as f64;
        println!("policies: {per_account:.0} bytes of resident memory per account with a channel list and a velocity rule");
    }
    let mut rng = Rng(1);
    let prepared: Vec<_> = (0..batches)
        .map(|b| transfer_batch(&mut rng, accounts, &Choice::Uniform, (1 << 64) + (b * BATCH_COMMANDS_MAX) as u128, BATCH_COMMANDS_MAX))
        .collect();
    let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
    let mut times = Vec::with_capacity(batches);
    let mut now = 1u64 << 40;
    for batch in &prepared {
        now += 1_000_000;
        results.clear();
        let start = Instant::now();
        engine.execute(now, batch, &mut results).expect("batch");
        times.push(start.elapsed().as_nanos() as f64 / BATCH_COMMANDS_MAX as f64);
    }
    if std::env::var_os("PROBE_SLOW").is_some() {
        let p50 = {
            let mut s = times.clone();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        };
        let slow: Vec<usize> = times.iter().enumerate().filter(|(_, t)| **t > 1.6 * p50).map(|(i, _)| i).collect();
        println!("slow batches (>1.6x median): {slow:?}");
    }
    let total: f64 = times.iter().sum::<f64>() / times.len() as f64;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "accounts {accounts}: mean {total:.1} ns/transfer ({:.2} M/s); min {:.1} p50 {:.1} p90 {:.1} max {:.1}; first 5 {:?}",
        1e3 / total,
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 9 / 10],
        sorted[sorted.len() - 1],
        times.iter().take(5).map(|t| *t as u32).collect::<Vec<_>>()
    );
}
