//! Exchanges beside plain transfers in one engine: `cargo run --release -p bursar-bench --example
//! exchange_probe -- 10000 200` (customer accounts per ledger, batches of 8 189 each). Prints the
//! median nanoseconds per command of each kind, alternating batches so drift hits both alike.

use std::time::Instant;

use bursar_engine::{quote_flags, Account, Command, Engine, Exchange, Ledger, Limits, Quote, ResultCode, Transfer, BATCH_COMMANDS_MAX};

const EUR: u32 = 978;
const PLN: u32 = 985;
const DESK_EUR: u128 = 1 << 100;
const DESK_PLN: u128 = (1 << 100) + 1;
const QUOTE: u128 = 7;

fn run(engine: &mut Engine, now: u64, commands: &[Command]) -> f64 {
    let mut results = Vec::with_capacity(commands.len());
    let start = Instant::now();
    engine.execute(now, commands, &mut results).expect("a batch within limits");
    let ns = start.elapsed().as_nanos() as f64 / commands.len() as f64;
    assert!(results.iter().all(|r| *r == ResultCode::Ok), "every command applies");
    ns
}

fn setup(accounts: u128) -> Engine {
    let mut engine = Engine::new(Limits { transfers_max: 1 << 27, ..Limits::default() });
    let ledger = |id, currency: &[u8; 3], settlement| Ledger {
        id,
        currency: *currency,
        scale: 2,
        settlement_account_id: settlement,
        settlement_account_code: 1,
        ..Default::default()
    };
    let mut commands = vec![Command::CreateLedger(ledger(EUR, b"EUR", 1)), Command::CreateLedger(ledger(PLN, b"PLN", 2))];
    for (id, ledger) in [(DESK_EUR, EUR), (DESK_PLN, PLN)] {
        commands.push(Command::CreateAccount(Account { id, ledger, code: 20, ..Default::default() }));
    }
    run(&mut engine, 1 << 40, &commands);
    for first in (0..accounts).step_by(4_000) {
        let batch: Vec<Command> = (first..(first + 4_000).min(accounts))
            .flat_map(|k| [(10 + 2 * k, EUR), (11 + 2 * k, PLN)])
            .map(|(id, ledger)| Command::CreateAccount(Account { id, ledger, code: 10, ..Default::default() }))
            .collect();
        run(&mut engine, (1 << 40) + 1 + first as u64, &batch);
    }
    let quote = Quote {
        id: QUOTE,
        from_liquidity_id: DESK_EUR,
        to_liquidity_id: DESK_PLN,
        rate: 43_215,
        rate_scale: 4,
        validity_s: 7 * 86_400,
        from_ledger: EUR,
        to_ledger: PLN,
        code: 8,
        flags: quote_flags::MULTI_USE,
        ..Default::default()
    };
    run(&mut engine, (1 << 40) + 1_000_000, &[Command::CreateQuote(quote)]);
    engine
}

fn main() {
    let accounts: u128 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let batches: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut engine = setup(accounts);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut exchanges, mut transfers) = (Vec::new(), Vec::new());
    let mut id = 1u128 << 64;
    let mut now = (1u64 << 40) + 2_000_000;
    for _ in 0..batches {
        let swaps: Vec<Command> = (0..BATCH_COMMANDS_MAX)
            .map(|_| {
                let (a, b) = (next() as u128 % accounts, next() as u128 % accounts);
                id += 2;
                let e = Exchange {
                    id,
                    to_id: id + 1,
                    quote_id: QUOTE,
                    from_account_id: 10 + 2 * a,
                    to_account_id: 11 + 2 * b,
                    amount: 1 + next() as u128 % 10_000,
                    ..Default::default()
                };
                Command::Exchange(e)
            })
            .collect();
        now += 1_000_000;
        exchanges.push(run(&mut engine, now, &swaps));
        let plain: Vec<Command> = (0..BATCH_COMMANDS_MAX)
            .map(|_| {
                let (a, b) = (next() as u128 % accounts, next() as u128 % accounts);
                id += 2;
                let t = Transfer {
                    id,
                    debit_account_id: 10 + 2 * a,
                    credit_account_id: 10 + 2 * ((b + 1 + (b == a) as u128) % accounts),
                    amount: 1 + next() as u128 % 10_000,
                    ledger: EUR,
                    code: 1,
                    ..Default::default()
                };
                Command::Transfer(t)
            })
            .filter(|c| c.account_ids()[0] != c.account_ids()[1])
            .collect();
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
