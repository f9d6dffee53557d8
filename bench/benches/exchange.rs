//! Criterion: exchanges (both legs, atomic, at a board quote) beside plain transfers in the same
//! engine, batches of 8 189, at 10 000 customer accounts per ledger.
//!
//! Run: `cargo bench -p bursar-bench --bench exchange`.

use std::time::{Duration, Instant};

use bursar_bench::exchange::{desk_engine, eur_transfer_batch, exchange_batch, QUOTED_AT};
use bursar_bench::Rng;
use bursar_engine::{Command, Engine, ResultCode, BATCH_COMMANDS_MAX};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ACCOUNTS: u128 = 10_000;
/// Transfers kept in one engine before it is rebuilt (outside the timed region).
const TRANSFERS_PER_ENGINE_MAX: usize = 4 << 20;

type Build = fn(&mut Rng, u128, u128) -> Vec<Command>;

/// Times `iters` fresh batches from `build` on an engine kept across samples.
fn time(engine: &mut Option<Engine>, rng: &mut Rng, next: &mut (u128, u64), build: Build, iters: u64) -> Duration {
    let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        if engine.as_ref().is_none_or(|e| e.transfers().len() + 2 * BATCH_COMMANDS_MAX > TRANSFERS_PER_ENGINE_MAX) {
            *engine = None;
            *engine = Some(desk_engine(ACCOUNTS, TRANSFERS_PER_ENGINE_MAX as u32));
        }
        let batch = build(rng, ACCOUNTS, next.0);
        next.0 += 2 * BATCH_COMMANDS_MAX as u128;
        next.1 += 1_000_000;
        results.clear();
        let start = Instant::now();
        engine.as_mut().expect("built").execute(next.1, &batch, &mut results).expect("batch");
        elapsed += start.elapsed();
        debug_assert!(results.iter().all(|r| *r == ResultCode::Ok));
    }
    elapsed
}

fn exchanges(c: &mut Criterion) {
    let mut group = c.benchmark_group("exchange");
    group.throughput(Throughput::Elements(BATCH_COMMANDS_MAX as u64));
    group.sample_size(20);
    let mut engine = None;
    let mut next = (1u128 << 64, QUOTED_AT + 1_000_000);
    let mut rng = Rng(0x5eed);
    for (name, build) in [("exchange", exchange_batch as Build), ("transfer", eur_transfer_batch as Build)] {
        group.bench_function(BenchmarkId::new(name, ACCOUNTS), |b| {
            b.iter_custom(|iters| time(&mut engine, &mut rng, &mut next, build, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, exchanges);
criterion_main!(benches);
