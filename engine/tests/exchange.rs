//! Quotes, exchanges and orders (`docs/exchange.md`): the 15-minute promise kept on the booking
//! time, both legs or neither, their timestamps, and quotes through a snapshot.

use bursar_engine::*;

const S: u64 = 1_000_000_000;
const MIN: u64 = 60 * S;
const EUR: u32 = 978;
const PLN: u32 = 985;
const CUSTOMER_EUR: u128 = 10;
const DESK_EUR: u128 = 12;
const DESK_PLN: u128 = 20;
const CUSTOMER_PLN: u128 = 21;
const QUOTE: u128 = 5;
const START: u64 = 1_800_000_000 * S;

fn run(engine: &mut Engine, now: u64, commands: &[Command]) -> Vec<ResultCode> {
    let mut results = Vec::new();
    engine.execute(now, commands, &mut results).expect("a batch within limits");
    results
}

/// Two ledgers, the customer's and the desk's accounts (the desk's zlotys funded with 1 000.00
/// and never overdrawn), and a quote of 4.3215 PLN per EUR for 15 minutes with an hour's grace.
fn desk() -> Engine {
    let mut engine = Engine::default();
    let ledger = |id, currency: &[u8; 3], settlement| Ledger {
        id,
        currency: *currency,
        scale: 2,
        settlement_account_id: settlement,
        settlement_account_code: 1,
        ..Default::default()
    };
    let account = |id, ledger, flags| Command::CreateAccount(Account { id, ledger, code: 10, flags, ..Default::default() });
    let setup = vec![
        Command::CreateLedger(ledger(EUR, b"EUR", 1)),
        Command::CreateLedger(ledger(PLN, b"PLN", 2)),
        account(CUSTOMER_EUR, EUR, 0),
        account(DESK_EUR, EUR, 0),
        account(DESK_PLN, PLN, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        account(CUSTOMER_PLN, PLN, 0),
        Command::Credit(Transfer { id: 1_000, credit_account_id: DESK_PLN, amount: 100_000, ledger: PLN, code: 1, ..Default::default() }),
        Command::CreateQuote(Quote {
            id: QUOTE,
            from_liquidity_id: DESK_EUR,
            to_liquidity_id: DESK_PLN,
            rate: 43_215,
            rate_scale: 4,
            validity_s: 900,
            grace_s: 3_600,
            from_ledger: EUR,
            to_ledger: PLN,
            code: 8,
            flags: quote_flags::MULTI_USE,
            ..Default::default()
        }),
    ];
    assert!(run(&mut engine, START, &setup).iter().all(|r| *r == ResultCode::Ok));
    engine
}

fn settle(id: u128, order: u128, amount: u128, booked_at: u64) -> Command {
    Command::Exchange(Exchange {
        id,
        to_id: id + 1,
        quote_id: QUOTE,
        from_account_id: CUSTOMER_EUR,
        to_account_id: CUSTOMER_PLN,
        amount,
        pending_id: order,
        booked_at,
        flags: exchange_flags::ORDER,
        ..Default::default()
    })
}

fn order(id: u128, amount: u128) -> Command {
    Command::PlaceOrder(Exchange { id, quote_id: QUOTE, to_account_id: CUSTOMER_PLN, amount, ..Default::default() })
}

fn available(engine: &Engine, id: u128) -> i128 {
    let a = engine.account(id).expect("account");
    a.credits_posted as i128 - a.debits_posted as i128 - a.debits_pending as i128
}

#[test]
fn money_booked_within_the_validity_gets_the_rate_however_late_the_statement() {
    let mut engine = desk();
    let quote_made = engine.quote(QUOTE).expect("quote").0.timestamp;
    assert_eq!(run(&mut engine, START + MIN, &[order(50, 10_000), order(51, 10_000)]), [ResultCode::Ok; 2]);
    assert_eq!(available(&engine, DESK_PLN), 100_000 - 2 * 43_215, "both orders reserve the desk's zlotys");
    // The statement arrives 40 minutes later, after the quote's validity: booked at minute 10.
    let late_import = START + 40 * MIN;
    let booked = quote_made + 10 * MIN;
    let results = run(&mut engine, late_import, &[settle(60, 50, 10_000, booked), settle(62, 51, 10_000, quote_made + 15 * MIN)]);
    assert_eq!(results, [ResultCode::Ok, ResultCode::QuoteExpired], "booked in time; booked at the end of the validity");
    let legs = [engine.transfer(60).expect("leg 1"), engine.transfer(61).expect("leg 2")];
    assert_eq!((legs[0].amount, legs[1].amount, legs[1].pending_id, legs[1].user_data_64), (10_000, 43_215, 50, booked));
    assert_eq!(legs[1].timestamp, legs[0].timestamp + 1);
    assert_eq!(engine.hold(50).map(|h| h.status), Some(HoldStatus::Posted));
    // Underpaid: 50.00 EUR of 100.00 buys 216.07 PLN; the rest of the reservation is released.
    let results = run(&mut engine, late_import + S, &[settle(64, 51, 5_000, quote_made + 5 * MIN)]);
    assert_eq!(results, [ResultCode::Ok]);
    assert_eq!(engine.transfer(65).map(|t| t.amount), Some(21_607));
    assert_eq!(available(&engine, DESK_PLN), 100_000 - 43_215 - 21_607);
    assert_eq!(available(&engine, CUSTOMER_PLN), 43_215 + 21_607);
    assert_eq!(run(&mut engine, late_import + 2 * S, &[settle(60, 50, 10_000, booked)]), [ResultCode::Exists], "a re-import moves nothing");
    engine.check_invariants().expect("invariants");
}

#[test]
fn an_unsettled_order_expires_after_validity_and_grace_and_gives_the_money_back() {
    let mut engine = desk();
    assert_eq!(run(&mut engine, START + MIN, &[order(50, 10_000)]), [ResultCode::Ok]);
    let hold = engine.transfer(50).expect("the order's hold");
    assert_eq!(
        (hold.timeout, hold.debit_account_id, hold.credit_account_id, hold.user_data_128),
        (900 + 3_600, DESK_PLN, CUSTOMER_PLN, QUOTE)
    );
    run(&mut engine, START + MIN + 75 * MIN, &[]);
    assert_eq!(engine.hold(50).map(|h| h.status), Some(HoldStatus::Expired));
    assert_eq!(available(&engine, DESK_PLN), 100_000);
    let results = run(&mut engine, START + 80 * MIN, &[settle(60, 50, 10_000, START + 2 * MIN)]);
    assert_eq!(results, [ResultCode::PendingTransferExpired]);
    assert!(engine.transfer(60).is_none(), "the first leg was taken back");
}

#[test]
fn both_legs_or_neither_alone_and_in_a_chain_and_later_commands_move_on() {
    let mut engine = desk();
    let swap = |id, amount| {
        Command::Exchange(Exchange {
            id,
            to_id: id + 1,
            quote_id: QUOTE,
            from_account_id: CUSTOMER_EUR,
            to_account_id: CUSTOMER_PLN,
            amount,
            ..Default::default()
        })
    };
    let before = (engine.account(CUSTOMER_EUR).copied(), engine.account(DESK_PLN).copied());
    assert_eq!(run(&mut engine, START + S, &[swap(70, 1_000_000)]), [ResultCode::ExchangeExceedsLiquidity]);
    assert!(engine.transfer(70).is_none() && engine.transfer(71).is_none());
    assert_eq!((engine.account(CUSTOMER_EUR).copied(), engine.account(DESK_PLN).copied()), before);
    let mut linked = swap(72, 1_000);
    *linked.flags_mut() |= exchange_flags::LINKED;
    let failing = Command::Transfer(Transfer {
        id: 80,
        debit_account_id: DESK_PLN,
        credit_account_id: CUSTOMER_PLN,
        amount: 1 << 40,
        ledger: PLN,
        code: 1,
        ..Default::default()
    });
    let results = run(&mut engine, START + 2 * S, &[linked, failing]);
    assert_eq!(results, [ResultCode::LinkedEventFailed, ResultCode::ExceedsCredits]);
    assert!(engine.transfer(72).is_none() && engine.transfer(73).is_none(), "a broken chain takes both legs back");
    let after = Command::Transfer(Transfer {
        id: 81,
        debit_account_id: CUSTOMER_EUR,
        credit_account_id: DESK_EUR,
        amount: 1,
        ledger: EUR,
        code: 1,
        ..Default::default()
    });
    assert_eq!(run(&mut engine, START + 3 * S, &[swap(74, 1_000), after]), [ResultCode::Ok; 2]);
    let ts = |id| engine.transfer(id).expect("stored").timestamp;
    assert_eq!((ts(75), ts(81)), (ts(74) + 1, ts(74) + 2), "an exchange takes two timestamps");
    assert_eq!(engine.quote(QUOTE).map(|(_, u)| (u.uses, u.paid)), Some((1, 4_321)));
    engine.check_invariants().expect("invariants");
}

#[test]
fn quotes_and_their_usage_survive_a_snapshot() {
    let mut engine = desk();
    assert_eq!(run(&mut engine, START + S, &[order(50, 10_000)]), [ResultCode::Ok]);
    let bytes = engine.snapshot_bytes();
    let mut restored = Engine::restore(&bytes).expect("restores");
    assert_eq!(restored.quote(QUOTE), engine.quote(QUOTE));
    assert_eq!(restored.state_digest(), engine.state_digest());
    assert_eq!(restored.snapshot_bytes(), bytes);
    let mut bad = bytes.clone();
    let usage_padding = bytes.len() - 1;
    bad[usage_padding] = 1;
    assert!(Engine::restore(&bad).is_err(), "a damaged quote usage is refused");
}
