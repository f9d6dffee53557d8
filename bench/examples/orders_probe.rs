//! Standing orders in one engine: the resident memory a million active orders take, and how
//! long a storm of them all due at one instant takes to drain, batch by batch (at most
//! `DUE_RUNS_PER_BATCH_MAX` runs each) while a snapshot copy taken before it still shares the
//! orders (so the storm copies the chunks it changes), with the longest batch, and what the
//! copy and the state digest cost.
//! `cargo run --release -p bursar-bench --example orders_probe -- [ORDERS]` (default 1 000 000).

use std::time::Instant;

use bursar_engine::{order_unit, Account, Command, Engine, Ledger, ResultCode, StandingOrder, Transfer, BATCH_COMMANDS_MAX};

fn resident_bytes() -> i64 {
    bursar_bench::resident_bytes() as i64
}

const DAY: u64 = 86_400_000_000_000;

fn run(engine: &mut Engine, now: u64, batch: &[Command]) {
    let mut results = Vec::with_capacity(batch.len());
    engine.execute(now, batch, &mut results).expect("batch");
    assert!(results.iter().all(|r| *r == ResultCode::Ok), "{:?}", results.iter().find(|r| **r != ResultCode::Ok));
}

fn main() {
    let orders: u128 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    // An account takes part in at most 1 024 live orders: 1 000 orders per payer and per payee.
    let sides = orders.div_ceil(1_000);
    let mut engine = Engine::default();
    let start = 1_800_000_000 * 1_000_000_000u64;
    let ledger =
        Ledger { id: 1, currency: *b"EUR", scale: 2, settlement_account_id: 1 << 100, settlement_account_code: 1, ..Default::default() };
    run(&mut engine, start, &[Command::CreateLedger(ledger)]);
    let accounts: Vec<Command> =
        (1..=2 * sides).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 10, ..Default::default() })).collect();
    for chunk in accounts.chunks(BATCH_COMMANDS_MAX) {
        run(&mut engine, start, chunk);
    }
    let funding: Vec<Command> = (1..=sides)
        .map(|id| Command::Credit(Transfer { id, credit_account_id: id, amount: 1 << 60, ledger: 1, code: 1, ..Default::default() }))
        .collect();
    for chunk in funding.chunks(BATCH_COMMANDS_MAX) {
        run(&mut engine, start, chunk);
    }
    let due = start + DAY;
    let before = resident_bytes();
    let made = Instant::now();
    let all: Vec<Command> = (0..orders)
        .map(|k| {
            Command::CreateStandingOrder(StandingOrder {
                id: 1 + k,
                debit_account_id: 1 + k % sides,
                credit_account_id: sides + 1 + k / 1_000,
                amount: 100,
                first_due_at: due,
                period: 1,
                unit: order_unit::DAYS,
                ledger: 1,
                code: 9,
                ..Default::default()
            })
        })
        .collect();
    for chunk in all.chunks(BATCH_COMMANDS_MAX) {
        run(&mut engine, start + 1, chunk);
    }
    drop(all);
    let per_order = (resident_bytes() - before) as f64 / orders as f64;
    println!("{orders} orders made in {:.2} s: {per_order:.0} bytes of resident memory per active order", made.elapsed().as_secs_f64());
    let timed = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        println!("{what}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    };
    let mut view = bursar_engine::SnapshotView::default();
    timed("snapshot copy, first (every order copied)", &mut || engine.snapshot_view_into(&mut view));
    timed("state digest after the orders were made", &mut || {
        engine.state_digest();
    });
    let before = resident_bytes();
    let storm = Instant::now();
    let (mut batches, mut ran, mut longest) = (0u64, 0u64, 0f64);
    while ran < orders as u64 {
        let batch_start = Instant::now();
        let mut results = Vec::new();
        let info = engine.execute(due + batches, &[], &mut results).expect("tick");
        engine.snapshot_view_catch_up(&mut view, 2 * BATCH_COMMANDS_MAX);
        longest = longest.max(batch_start.elapsed().as_secs_f64());
        ran += u64::from(info.ran);
        batches += 1;
    }
    let took = storm.elapsed().as_secs_f64();
    timed("snapshot copy after the storm (the chunks the storm changed were copied as it ran)", &mut || {
        engine.snapshot_view_into(&mut view)
    });
    timed("state digest after the storm (every order rehashed)", &mut || {
        engine.state_digest();
    });
    println!(
        "storm: {ran} runs due at once drained in {batches} batches, {took:.2} s ({:.0} ns per run); longest batch {:.2} ms; {:.0} more bytes per order once each has run (its transfer and history entry, and the chunks copied from the snapshot's)",
        took * 1e9 / ran as f64,
        longest * 1e3,
        (resident_bytes() - before) as f64 / orders as f64
    );
    engine.check_invariants().expect("invariants");
}
