//! Criterion: engine apply throughput for posted transfers and hold/capture pairs, batch of 8 189,
//! at 10 000 and 1 000 000 accounts, uniform and hot-account choice, beside the naive HashMap baseline.
//!
//! Run: `cargo bench -p bursar-bench --bench engine`.

use std::time::{Duration, Instant};

use bursar_bench::{
    engine_with_accounts, hold_capture_batch, transfer_batch, Choice, NaiveEngine, Rng,
};
use bursar_engine::{Command, Engine, ResultCode, BATCH_COMMANDS_MAX};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Transfers kept in one engine before it is rebuilt (outside the timed region), so memory stays bounded.
const TRANSFERS_PER_ENGINE_MAX: usize = 4 << 20;
const BATCHES_PREBUILT: usize = 32;

fn choices() -> [(&'static str, Choice); 2] {
    [
        ("uniform", Choice::Uniform),
        ("hot", Choice::Hot { hot: 8 }),
    ]
}

type BatchBuilder = fn(&mut Rng, u64, Choice, u128, usize) -> Vec<Command>;

/// Times `iters` batches through the engine, rebuilding it untimed whenever it fills up.
fn time_engine(accounts: u64, choice: Choice, build: BatchBuilder, iters: u64) -> Duration {
    let mut rng = Rng(accounts ^ 0x5eed);
    let templates: Vec<Vec<Command>> = (0..BATCHES_PREBUILT)
        .map(|_| build(&mut rng, accounts, choice, 0, BATCH_COMMANDS_MAX))
        .collect();
    let mut engine: Option<Engine> = None;
    let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
    let mut elapsed = Duration::ZERO;
    let mut next_id = 1u128 << 64;
    let mut now = 1u64 << 40;
    for i in 0..iters {
        if engine
            .as_ref()
            .is_none_or(|e| e.transfers().len() + BATCH_COMMANDS_MAX > TRANSFERS_PER_ENGINE_MAX)
        {
            engine = None;
            engine = Some(engine_with_accounts(accounts, TRANSFERS_PER_ENGINE_MAX));
        }
        let engine = engine.as_mut().expect("built above");
        let batch = renumber(&templates[i as usize % BATCHES_PREBUILT], next_id);
        next_id += BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        results.clear();
        let start = Instant::now();
        engine.execute(now, &batch, &mut results).expect("batch");
        elapsed += start.elapsed();
        debug_assert!(results.iter().all(|r| *r == ResultCode::Ok));
    }
    elapsed
}

/// Gives a prebuilt batch fresh ids (captures keep pointing at their holds).
fn renumber(template: &[Command], first_id: u128) -> Vec<Command> {
    template
        .iter()
        .map(|c| match *c {
            Command::Transfer(t) => Command::Transfer(bursar_engine::Transfer {
                id: t.id + first_id,
                ..t
            }),
            Command::Hold(t) => Command::Hold(bursar_engine::Transfer {
                id: t.id + first_id,
                ..t
            }),
            Command::Capture(t) => Command::Capture(bursar_engine::Transfer {
                id: t.id + first_id,
                pending_id: t.pending_id + first_id,
                ..t
            }),
            other => other,
        })
        .collect()
}

fn time_naive(accounts: u64, choice: Choice, iters: u64) -> Duration {
    let mut rng = Rng(accounts ^ 0x5eed);
    let templates: Vec<Vec<Command>> = (0..BATCHES_PREBUILT)
        .map(|_| transfer_batch(&mut rng, accounts, choice, 0, BATCH_COMMANDS_MAX))
        .collect();
    let mut naive: Option<NaiveEngine> = None;
    let mut elapsed = Duration::ZERO;
    let mut next_id = 1u128 << 64;
    for i in 0..iters {
        if naive
            .as_ref()
            .is_none_or(|n| n.transfers.len() + BATCH_COMMANDS_MAX > TRANSFERS_PER_ENGINE_MAX)
        {
            naive = None;
            naive = Some(NaiveEngine::with_accounts(accounts));
        }
        let naive = naive.as_mut().expect("built above");
        let batch = renumber(&templates[i as usize % BATCHES_PREBUILT], next_id);
        next_id += BATCH_COMMANDS_MAX as u128;
        let start = Instant::now();
        let applied = naive.apply(&batch);
        elapsed += start.elapsed();
        assert_eq!(applied, BATCH_COMMANDS_MAX);
    }
    elapsed
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(BATCH_COMMANDS_MAX as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for accounts in [10_000u64, 1_000_000] {
        for (name, choice) in choices() {
            let id = format!("{accounts}/{name}");
            group.bench_function(BenchmarkId::new("transfers", &id), |b| {
                b.iter_custom(|iters| time_engine(accounts, choice, transfer_batch, iters))
            });
            group.bench_function(BenchmarkId::new("hold_capture", &id), |b| {
                b.iter_custom(|iters| time_engine(accounts, choice, hold_capture_batch, iters))
            });
            group.bench_function(BenchmarkId::new("naive_hashmap_transfers", &id), |b| {
                b.iter_custom(|iters| time_naive(accounts, choice, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
