//! Criterion: engine apply throughput for posted transfers and hold/capture pairs, batch of 8 189,
//! at 10 000 and 1 000 000 accounts, uniform and hot-account choice, beside the naive HashMap baseline.
//!
//! Run: `cargo bench -p bursar-bench --bench engine`.

use std::time::{Duration, Instant};

use bursar_bench::{engine_with_accounts, hold_capture_batch, transfer_batch, Choice, NaiveEngine, Rng};
use bursar_engine::{Command, Engine, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Transfers kept in one engine before it is rebuilt (outside the timed region), so memory stays bounded.
const TRANSFERS_PER_ENGINE_MAX: usize = 4 << 20;
const BATCHES_PREBUILT: usize = 32;

fn choices() -> [(&'static str, Choice); 2] {
    [("uniform", Choice::Uniform), ("hot", Choice::Hot { hot: 8, percent: 50 })]
}

type BatchBuilder = fn(&mut Rng, u64, &Choice, u128, usize) -> Vec<Command>;

/// Gives a prebuilt batch fresh ids (captures keep pointing at their holds).
fn renumber(template: &[Command], first_id: u128) -> Vec<Command> {
    template
        .iter()
        .map(|c| match *c {
            Command::Transfer(t) => Command::Transfer(Transfer { id: t.id + first_id, ..t }),
            Command::Hold(t) => Command::Hold(Transfer { id: t.id + first_id, ..t }),
            Command::Capture(t) => Command::Capture(Transfer { id: t.id + first_id, pending_id: t.pending_id + first_id, ..t }),
            other => other,
        })
        .collect()
}

/// What is measured: Bursar's engine or the naive baseline.
enum Subject {
    Engine(Option<Box<Engine>>),
    Naive(Option<NaiveEngine>),
}

/// One subject kept across criterion's samples (steady state, as a running server sees it),
/// rebuilt untimed whenever it holds `TRANSFERS_PER_ENGINE_MAX` transfers.
struct Bench {
    accounts: u64,
    templates: Vec<Vec<Command>>,
    subject: Subject,
    next_id: u128,
    now: u64,
}

impl Bench {
    fn new(accounts: u64, choice: &Choice, build: BatchBuilder, subject: Subject) -> Bench {
        let mut rng = Rng(accounts ^ 0x5eed);
        let templates = (0..BATCHES_PREBUILT).map(|_| build(&mut rng, accounts, choice, 0, BATCH_COMMANDS_MAX)).collect();
        Bench { accounts, templates, subject, next_id: 1 << 64, now: 1 << 40 }
    }

    /// Times `iters` batches.
    fn time(&mut self, iters: u64) -> Duration {
        let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
        let mut elapsed = Duration::ZERO;
        for i in 0..iters {
            let batch = renumber(&self.templates[i as usize % BATCHES_PREBUILT], self.next_id);
            self.next_id += BATCH_COMMANDS_MAX as u128;
            self.now += 1_000_000;
            results.clear();
            match &mut self.subject {
                Subject::Engine(slot) => {
                    if slot.as_ref().is_none_or(|e| e.transfers().len() + BATCH_COMMANDS_MAX > TRANSFERS_PER_ENGINE_MAX) {
                        drop(slot.take()); // free the old one before building the next
                        *slot = Some(Box::new(engine_with_accounts(self.accounts, TRANSFERS_PER_ENGINE_MAX)));
                    }
                    let engine = slot.as_mut().expect("built above");
                    let start = Instant::now();
                    engine.execute(self.now, &batch, &mut results).expect("batch");
                    elapsed += start.elapsed();
                    debug_assert!(results.iter().all(|r| *r == ResultCode::Ok));
                }
                Subject::Naive(slot) => {
                    if slot.as_ref().is_none_or(|n| n.transfers.len() + BATCH_COMMANDS_MAX > TRANSFERS_PER_ENGINE_MAX) {
                        drop(slot.take());
                        *slot = Some(NaiveEngine::with_accounts(self.accounts));
                    }
                    let naive = slot.as_mut().expect("built above");
                    let start = Instant::now();
                    let applied = naive.apply(&batch);
                    elapsed += start.elapsed();
                    assert_eq!(applied, BATCH_COMMANDS_MAX);
                }
            }
        }
        elapsed
    }
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(BATCH_COMMANDS_MAX as u64));
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for accounts in [10_000u64, 1_000_000] {
        for (name, choice) in choices() {
            let id = format!("{accounts}/{name}");
            let cases: [(&str, BatchBuilder, Subject); 3] = [
                ("transfers", transfer_batch, Subject::Engine(None)),
                ("hold_capture", hold_capture_batch, Subject::Engine(None)),
                ("naive_hashmap_transfers", transfer_batch, Subject::Naive(None)),
            ];
            for (case, build, subject) in cases {
                let mut bench = Bench::new(accounts, &choice, build, subject);
                group.bench_function(BenchmarkId::new(case, &id), |b| b.iter_custom(|iters| bench.time(iters)));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
