//! What remembering failed transfer ids costs (issue 19): engine apply throughput on posted
//! transfers of which 10% fail (`credit_account_not_found`: an account that does not exist),
//! under the original rules (nothing remembered) and the current ones (each failed id kept),
//! alternated on fresh engines in one process; then the resident memory per remembered id.
//! `cargo run --release -p bursar-bench --example decided_once_probe -- [batches] [rounds]`.

use std::time::Instant;

use bursar_bench::{engine_with_accounts, transfer_batch, Choice, Rng};
use bursar_engine::{Command, Engine, ResultCode, Rules, BATCH_COMMANDS_MAX};

const ACCOUNTS: u64 = 10_000;

fn main() {
    let batches: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let prepared = batches_failing_one_in(10, batches);
    for round in 1..=rounds {
        for rules in [Rules::Original, Rules::DecidedOnce] {
            let mut engine = engine_with_accounts(ACCOUNTS, batches * BATCH_COMMANDS_MAX);
            let (rate, failed) = apply(&mut engine, rules, &prepared);
            println!(
                "round {round} {rules:?}: {:.2} M transfers/s, {failed} failed, {} ids remembered",
                rate / 1e6,
                engine.failed_transfers().len()
            );
        }
    }
    memory_per_failed_id(batches);
}

/// Posted transfers; every `n`th credits an account that does not exist.
fn batches_failing_one_in(n: usize, batches: usize) -> Vec<Vec<Command>> {
    let mut rng = Rng(7);
    (0..batches)
        .map(|b| {
            let first = (1u128 << 64) + (b * BATCH_COMMANDS_MAX) as u128;
            let mut batch = transfer_batch(&mut rng, ACCOUNTS, &Choice::Uniform, first, BATCH_COMMANDS_MAX);
            for (i, command) in batch.iter_mut().enumerate().filter(|(i, _)| i % n == 0) {
                let t = command.as_transfer_mut().expect("a transfer");
                t.credit_account_id = u128::from(ACCOUNTS) + 1_000_000 + i as u128;
            }
            batch
        })
        .collect()
}

/// Applies the batches under `rules`; returns transfers per second and how many failed.
fn apply(engine: &mut Engine, rules: Rules, batches: &[Vec<Command>]) -> (f64, usize) {
    let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
    let mut now = 1u64 << 40;
    let mut failed = 0;
    let start = Instant::now();
    for batch in batches {
        now += 1_000_000;
        results.clear();
        engine.execute_under(rules, now, batch, &[], &mut results).expect("batch");
        failed += results.iter().filter(|r| **r == ResultCode::CreditAccountNotFound).count();
    }
    let commands = batches.iter().map(Vec::len).sum::<usize>();
    (commands as f64 / start.elapsed().as_secs_f64(), failed)
}

fn resident_bytes() -> u64 {
    bursar_bench::resident_bytes() as u64
}

/// Resident bytes per remembered id: an engine without preallocated room (the index grows as
/// it must) takes only failing transfers.
fn memory_per_failed_id(batches: usize) {
    let prepared = batches_failing_one_in(1, batches);
    let mut engine = engine_with_accounts(ACCOUNTS, 0);
    let before = resident_bytes();
    apply(&mut engine, Rules::DecidedOnce, &prepared);
    let after = resident_bytes();
    let n = engine.failed_transfers().len() as u64;
    println!(
        "{n} ids remembered: {:.1} resident bytes each ({} MB); a stored transfer takes about 180",
        (after - before) as f64 / n as f64,
        (after - before) / 1_000_000
    );
}
