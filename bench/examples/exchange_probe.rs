//! Exchanges beside plain transfers in one engine: `cargo run --release -p bursar-bench --example
//! exchange_probe -- 10000 200` (customer accounts per ledger, batches of 8 189 each). Prints the
//! median nanoseconds per command of each kind, alternating batches so drift hits both alike.
//! The criterion bench `cargo bench -p bursar-bench --bench exchange` measures the same batches.

use std::time::Instant;

use bursar_bench::exchange::{desk_engine, eur_transfer_batch, exchange_batch, QUOTED_AT};
use bursar_bench::Rng;
use bursar_engine::{Command, Engine, ResultCode, BATCH_COMMANDS_MAX};

fn run(engine: &mut Engine, now: u64, commands: &[Command]) -> f64 {
    let mut results = Vec::with_capacity(commands.len());
    let start = Instant::now();
    engine.execute(now, commands, &mut results).expect("a batch within limits");
    let ns = start.elapsed().as_nanos() as f64 / commands.len() as f64;
    assert!(results.iter().all(|r| *r == ResultCode::Ok), "every command applies");
    ns
}

fn main() {
    let accounts: u128 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let batches: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut engine = desk_engine(accounts, 1 << 27);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut exchanges, mut transfers) = (Vec::new(), Vec::new());
    let mut id = 1u128 << 64;
    let mut now = QUOTED_AT + 1_000_000;
    for _ in 0..batches {
        let swaps = exchange_batch(&mut rng, accounts, id);
        id += 2 * BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        exchanges.push(run(&mut engine, now, &swaps));
        let plain = eur_transfer_batch(&mut rng, accounts, id);
        id += BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        transfers.push(run(&mut engine, now, &plain));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (e, t) = (median(&mut exchanges), median(&mut transfers));
    println!(
        "accounts {accounts} per ledger: exchange {e:.1} ns ({:.2} M/s, two legs each), transfer {t:.1} ns ({:.2} M/s); ratio {:.2}",
        1e3 / e,
        1e3 / t,
        e / t
    );
    engine.check_invariants().expect("invariants");
}
