//! The exchange desk's workload for the engine benchmarks: an engine with EUR and PLN ledgers,
//! the desk's two liquidity accounts, `accounts` customers in each ledger and one board quote;
//! batches of exchanges between random customers, and batches of plain EUR transfers beside them.

use bursar_engine::{quote_flags, Account, Command, Engine, Exchange, Ledger, Limits, Quote, ResultCode, Transfer, BATCH_COMMANDS_MAX};

use crate::Rng;

/// The sold currency's ledger.
pub const EUR: u32 = 978;
/// The bought currency's ledger.
pub const PLN: u32 = 985;
const DESK_EUR: u128 = 1 << 100;
const DESK_PLN: u128 = (1 << 100) + 1;
/// The board quote every exchange uses (4.3215 PLN per EUR, valid a week).
pub const QUOTE: u128 = 7;
/// The engine clock when the quote is made; batches run after it.
pub const QUOTED_AT: u64 = (1 << 40) + 1_000_000;

fn apply(engine: &mut Engine, now: u64, commands: &[Command]) {
    let mut results = Vec::with_capacity(commands.len());
    engine.execute(now, commands, &mut results).expect("a batch within limits");
    assert!(results.iter().all(|r| *r == ResultCode::Ok), "every setup command applies");
}

/// The desk's engine with `accounts` customers per ledger, room for `transfers_max` transfers.
pub fn desk_engine(accounts: u128, transfers_max: u32) -> Engine {
    let mut engine = Engine::new(Limits { transfers_max, ..Limits::default() });
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
    apply(&mut engine, 1 << 40, &commands);
    for first in (0..accounts).step_by(4_000) {
        let batch: Vec<Command> = (first..(first + 4_000).min(accounts))
            .flat_map(|k| [(10 + 2 * k, EUR), (11 + 2 * k, PLN)])
            .map(|(id, ledger)| Command::CreateAccount(Account { id, ledger, code: 10, ..Default::default() }))
            .collect();
        apply(&mut engine, (1 << 40) + 1 + first as u64, &batch);
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
    apply(&mut engine, QUOTED_AT, &[Command::CreateQuote(quote)]);
    engine
}

/// A full batch of exchanges between random customers; ids from `first_id`, two per exchange.
pub fn exchange_batch(rng: &mut Rng, accounts: u128, first_id: u128) -> Vec<Command> {
    (0..BATCH_COMMANDS_MAX as u128)
        .map(|k| {
            let (a, b) = (rng.next_u64() as u128 % accounts, rng.next_u64() as u128 % accounts);
            let e = Exchange {
                id: first_id + 2 * k,
                to_id: first_id + 2 * k + 1,
                quote_id: QUOTE,
                from_account_id: 10 + 2 * a,
                to_account_id: 11 + 2 * b,
                amount: 1 + rng.next_u64() as u128 % 10_000,
                ..Default::default()
            };
            Command::Exchange(e)
        })
        .collect()
}

/// A batch of plain EUR transfers between random distinct customers; ids from `first_id`.
pub fn eur_transfer_batch(rng: &mut Rng, accounts: u128, first_id: u128) -> Vec<Command> {
    (0..BATCH_COMMANDS_MAX as u128)
        .map(|k| {
            let a = rng.next_u64() as u128 % accounts;
            let b = (a + 1 + rng.next_u64() as u128 % (accounts - 1)) % accounts;
            let t = Transfer {
                id: first_id + k,
                debit_account_id: 10 + 2 * a,
                credit_account_id: 10 + 2 * b,
                amount: 1 + rng.next_u64() as u128 % 10_000,
                ledger: EUR,
                code: 1,
                ..Default::default()
            };
            Command::Transfer(t)
        })
        .collect()
}
