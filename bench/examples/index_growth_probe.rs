//! The engine's apply time per batch while its transfer id index grows:
//! `cargo run --release -p bursar-bench --example index_growth_probe -- [TRANSFERS] [RESERVE]`.
//! One engine, 10 000 accounts, batches of 8 189 uniform transfers with `bursar bench`'s ids
//! (runs of consecutive ids) up to TRANSFERS (default 70 M), room reserved for RESERVE (default
//! 16 777 216, the most `bursar start` reserves unasked: the index then grows at 29.4 M and
//! 58.7 M), not touched. Prints, per window of 256 batches, the median and slowest batch and
//! the resident memory, so the windows in which the index grows stand out from the rest.

use std::time::{Duration, Instant};

use bursar_bench::{setup_batches, transfer_batch, Choice, Rng};
use bursar_engine::{Engine, Limits, ResultCode, BATCH_COMMANDS_MAX};

const ACCOUNTS: u64 = 10_000;
const WINDOW: usize = 256;

fn resident_mb() -> u64 {
    bursar_bench::resident_bytes() as u64 / (1 << 20)
}

fn main() {
    let arg = |n: usize, default: u64| std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (transfers, reserve) = (arg(1, 70_000_000), arg(2, 1 << 24));
    let batches = (transfers as usize).div_ceil(BATCH_COMMANDS_MAX);
    let room = (batches * BATCH_COMMANDS_MAX) as u32;
    let limits =
        Limits { transfers_max: room.max(Limits::default().transfers_max), accounts_max: ACCOUNTS as u32 + 16, ..Limits::default() };
    let mut engine = Engine::new(limits);
    engine.reserve(ACCOUNTS as usize + 1, reserve as usize);
    let mut results = Vec::new();
    for batch in setup_batches(ACCOUNTS) {
        engine.execute(1, &batch, &mut results).expect("setup");
    }
    let (mut rng, mut now) = (Rng(7), 2u64);
    let mut times: Vec<Duration> = Vec::with_capacity(WINDOW);
    for k in 0..batches {
        // Runs of consecutive ids, as `bursar bench` sends them.
        let batch = transfer_batch(&mut rng, ACCOUNTS, &Choice::Uniform, (1 << 62) + (k * BATCH_COMMANDS_MAX) as u128, BATCH_COMMANDS_MAX);
        results.clear();
        let started = Instant::now();
        engine.execute(now, &batch, &mut results).expect("batch");
        times.push(started.elapsed());
        assert!(results.iter().all(|r| *r == ResultCode::Ok), "batch {k}: {:?}", results.iter().find(|r| **r != ResultCode::Ok));
        drop(engine.take_retired_memory());
        now += 1_000_000;
        if times.len() == WINDOW {
            times.sort_unstable();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let stored = (k + 1) * BATCH_COMMANDS_MAX;
            println!(
                "{:>6.1} M stored: batch p50 {:.2} ms, slowest {:.2} ms, resident {} MB",
                stored as f64 / 1e6,
                ms(times[WINDOW / 2]),
                ms(times[WINDOW - 1]),
                resident_mb()
            );
            times.clear();
        }
    }
}
