//! The engine's apply time per batch while its transfer id index grows:
//! `cargo run --release -p bursar-bench --example index_growth_probe -- [TRANSFERS] [RESERVE]`.
//! One engine, 10 000 accounts, batches of 8 189 transfers with `bursar bench`'s ids (runs of
//! consecutive ids) up to TRANSFERS (default 70 M), room reserved for RESERVE (default
//! 16 777 216, the most `bursar start` reserves unasked: the index then grows at 29.4 M and
//! 58.7 M). Prints, per
//! window of 256 batches, the median and slowest batch and the resident memory, so the windows
//! in which the index grows stand out from the rest.

use std::time::{Duration, Instant};

use bursar_engine::{Account, Command, Engine, Ledger, Limits, ResultCode, Transfer};

const BATCH: usize = 8_189;
const ACCOUNTS: u128 = 10_000;
const WINDOW: usize = 256;

fn resident_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

fn main() {
    let arg = |n: usize, default: u64| std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (transfers, reserve) = (arg(1, 70_000_000), arg(2, 1 << 24));
    let limits = Limits { transfers_max: (transfers + 1).max(Limits::default().transfers_max as u64) as u32, ..Limits::default() };
    let mut engine = Engine::new(limits);
    engine.reserve(ACCOUNTS as usize, reserve as usize);
    let ledger =
        Ledger { id: 1, currency: *b"EUR", scale: 2, settlement_account_id: 1 << 40, settlement_account_code: 1, ..Default::default() };
    let mut setup = vec![Command::CreateLedger(ledger)];
    setup.extend((1..=ACCOUNTS).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })));
    let mut results = Vec::new();
    for part in setup.chunks(BATCH) {
        engine.execute(1, part, &mut results).expect("setup");
    }
    let (mut next_id, mut now) = (1u128 << 62, 2u64);
    let mut times: Vec<Duration> = Vec::with_capacity(WINDOW);
    let mut batch = Vec::with_capacity(BATCH);
    for k in 0..(transfers as usize).div_ceil(BATCH) {
        batch.clear();
        for _ in 0..BATCH {
            next_id += 1;
            let (debit, credit) = (1 + next_id % ACCOUNTS, 1 + (next_id * 7 + 3) % ACCOUNTS);
            let credit = if credit == debit { 1 + credit % ACCOUNTS } else { credit };
            let t = Transfer {
                id: next_id,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Default::default()
            };
            batch.push(Command::Transfer(t));
        }
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
            let stored = (k + 1) * BATCH;
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
