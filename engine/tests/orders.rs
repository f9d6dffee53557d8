//! Recurring payments in the engine: standing orders on the calendar, catch-up, retries, pauses,
//! triggers at the point of the crossing, and their state through snapshots and rollbacks.

use bursar_engine::*;

const S: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * S;
const EUR: u32 = 1;
const PAYER: u128 = 1;
const PAYEE: u128 = 2;
const PHONE: u128 = 3;
const CARD: u128 = 4;
const MAIN: u128 = 5;

/// Day number of a date (days since 1970-01-01).
fn days(year: u64, month: u64, day: u64) -> u64 {
    let mut total = 0;
    for y in 1970..year {
        total += if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) { 366 } else { 365 };
    }
    (1..month).map(|m| month_length(year, m)).sum::<u64>() + total + day - 1
}

fn at(year: u64, month: u64, day: u64) -> u64 {
    days(year, month, day) * DAY
}

struct World {
    engine: Engine,
    now: u64,
}

impl World {
    /// Accounts on one ledger; PAYER, MAIN and the settlement account may overdraw, the others not.
    fn new(now: u64) -> World {
        let mut w = World { engine: Engine::default(), now };
        let ledger =
            Ledger { id: EUR, currency: *b"EUR", scale: 2, settlement_account_id: 1000, settlement_account_code: 1, ..Default::default() };
        let strict = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS;
        let mut setup = vec![Command::CreateLedger(ledger)];
        for (id, flags) in [(PAYER, strict), (PAYEE, 0), (PHONE, strict), (CARD, 0), (MAIN, strict)] {
            setup.push(Command::CreateAccount(Account { id, ledger: EUR, code: 10, flags, ..Default::default() }));
        }
        assert!(w.run_at(now, &setup).iter().all(|r| *r == ResultCode::Ok));
        w
    }

    fn run_at(&mut self, now: u64, commands: &[Command]) -> Vec<ResultCode> {
        self.now = now;
        let mut results = Vec::new();
        self.engine.execute(now, commands, &mut results).expect("batch");
        self.engine.check_invariants().expect("invariants");
        assert_eq!(self.engine.state_digest(), self.engine.recompute_state_digest());
        results
    }

    fn ok(&mut self, command: Command) {
        let now = self.now + S;
        assert_eq!(self.run_at(now, &[command]), vec![ResultCode::Ok], "{command:?}");
    }

    fn fund(&mut self, account: u128, amount: u128, id: u128) {
        self.ok(Command::Credit(Transfer { id, credit_account_id: account, amount, ledger: EUR, code: 1, ..Default::default() }));
    }

    fn history(&self, id: u128) -> Vec<(RunEvent, u64, u128, ResultCode)> {
        self.engine.order(id).expect("order").history.iter().map(|e| (e.event, e.run, e.amount, e.code)).collect()
    }
}

fn monthly(id: u128, day: u8, first_due_at: u64) -> StandingOrder {
    StandingOrder {
        id,
        debit_account_id: PAYER,
        credit_account_id: PAYEE,
        amount: 100,
        first_due_at,
        period: 1,
        unit: order_unit::MONTHS,
        day,
        ledger: EUR,
        code: 7,
        ..Default::default()
    }
}

#[test]
fn a_monthly_order_on_the_31st_runs_on_each_months_last_day_through_a_leap_february() {
    let mut w = World::new(at(2028, 1, 1));
    w.fund(PAYER, 1_000, 900);
    w.ok(Command::CreateStandingOrder(monthly(1, 31, at(2028, 1, 31) + 9 * 3_600 * S)));
    let expected = [at(2028, 1, 31), at(2028, 2, 29), at(2028, 3, 31), at(2028, 4, 30)];
    for (k, day) in expected.iter().enumerate() {
        let due = day + 9 * 3_600 * S;
        assert_eq!(w.engine.next_run_due(), Some(due), "run {} is due on its month's last day", k + 1);
        w.run_at(due - 1, &[]);
        assert!(w.engine.transfer(run_id(1, k as u64 + 1)).is_none(), "not before its time");
        w.run_at(due, &[]);
        let t = w.engine.transfer(run_id(1, k as u64 + 1)).expect("the run's transfer");
        assert_eq!((t.amount, t.user_data_128, t.user_data_64, t.code, t.timestamp), (100, 1, k as u64 + 1, 7, due));
    }
    assert_eq!(w.engine.account(PAYEE).expect("payee").credits_posted, 400);
    assert!(w.history(1).iter().all(|(event, _, _, code)| *event == RunEvent::Paid && *code == ResultCode::Ok));
}

#[test]
fn count_and_end_bound_an_order_and_a_finished_order_cannot_change() {
    let start = at(2030, 5, 1);
    let mut w = World::new(start);
    w.fund(PAYER, 1_000, 900);
    let every_day = StandingOrder { unit: order_unit::DAYS, day: 0, count_max: 3, first_due_at: start + DAY, ..monthly(1, 0, 0) };
    w.ok(Command::CreateStandingOrder(every_day));
    w.run_at(start + 10 * DAY, &[]);
    let order = w.engine.order(1).expect("order");
    assert_eq!((order.status, order.runs, order.next_due), (OrderStatus::Finished, 3, 0));
    assert_eq!(
        w.run_at(w.now + S, &[Command::AmendOrder(OrderChange { order_id: 1, amount: 5, ..Default::default() })]),
        vec![ResultCode::OrderEnded]
    );
}

#[test]
fn catch_up_runs_every_missed_period_the_latest_or_none() {
    let start = at(2031, 1, 1);
    let daily = |id: u128, catch_up: u8| StandingOrder {
        unit: order_unit::DAYS,
        day: 0,
        catch_up,
        first_due_at: start + DAY,
        debit_account_id: PAYER,
        ..monthly(id, 0, 0)
    };
    let mut w = World::new(start);
    w.fund(PAYER, 10_000, 900);
    for (id, mode) in [(1, catch_up::ALL), (2, catch_up::LATEST), (3, catch_up::NONE)] {
        w.ok(Command::CreateStandingOrder(daily(id, mode)));
    }
    // Down for five days: periods 1 to 5 came due; the server comes back half an hour after the fifth.
    w.run_at(start + 5 * DAY + 1_800 * S, &[]);
    let paid = |w: &World, id: u128| w.history(id).iter().filter(|e| e.0 == RunEvent::Paid).map(|e| e.1).collect::<Vec<_>>();
    assert_eq!(paid(&w, 1), vec![1, 2, 3, 4, 5], "all: every missed period, in order");
    assert_eq!(paid(&w, 2), vec![5], "latest: only the newest");
    assert_eq!(w.history(2)[0], (RunEvent::Skipped, 4, 4, ResultCode::Ok));
    assert_eq!(paid(&w, 3), Vec::<u64>::new(), "none: every period more than five minutes late is skipped");
    assert_eq!(w.history(3), vec![(RunEvent::Skipped, 5, 5, ResultCode::Ok)]);
    // Back in time for the sixth: all three run it.
    w.run_at(start + 6 * DAY, &[]);
    for id in 1..=3 {
        assert_eq!(paid(&w, id).last(), Some(&6));
    }
}

#[test]
fn a_failed_run_is_retried_with_its_own_id_then_fails_for_good_and_the_next_period_runs() {
    let start = at(2032, 3, 1);
    let mut w = World::new(start);
    let order = StandingOrder {
        unit: order_unit::DAYS,
        day: 0,
        first_due_at: start + DAY,
        retry_attempts: 2,
        retry_spacing_s: 3_600,
        debit_account_id: MAIN,
        ..monthly(1, 0, 0)
    };
    w.ok(Command::CreateStandingOrder(order));
    w.run_at(start + DAY, &[]);
    assert_eq!(w.history(1), vec![(RunEvent::Retrying, 1, 100, ResultCode::ExceedsCredits)]);
    w.run_at(start + DAY + 3_600 * S, &[]);
    w.fund(MAIN, 100, 900);
    w.run_at(start + DAY + 7_200 * S, &[]);
    let history = w.history(1);
    assert_eq!(history[1], (RunEvent::Retrying, 1, 100, ResultCode::ExceedsCredits));
    assert_eq!(history[2], (RunEvent::Paid, 1, 100, ResultCode::Ok));
    assert_eq!(w.engine.transfer(run_id(1, 1)).expect("the retried run").amount, 100);
    // The second period fails on every try: three tries, then failed; the third period still runs.
    for hours in 0..=2 {
        w.run_at(start + 2 * DAY + hours * 3_600 * S, &[]);
    }
    assert_eq!(w.history(1).last(), Some(&(RunEvent::Failed, 2, 100, ResultCode::ExceedsCredits)));
    w.fund(MAIN, 100, 901);
    w.run_at(start + 3 * DAY, &[]);
    assert_eq!(w.history(1).last(), Some(&(RunEvent::Paid, 3, 100, ResultCode::Ok)));
    assert!(w.engine.transfer(run_id(1, 2)).is_none(), "a failed run leaves no transfer and decides nothing");
}

#[test]
fn pause_skips_the_periods_it_covers_amend_changes_the_next_run_and_cancel_ends() {
    let start = at(2033, 6, 1);
    let mut w = World::new(start);
    w.fund(PAYER, 10_000, 900);
    let daily = StandingOrder { unit: order_unit::DAYS, day: 0, first_due_at: start + DAY, ..monthly(1, 0, 0) };
    w.ok(Command::CreateStandingOrder(daily));
    w.run_at(start + DAY, &[]);
    let change = |order_id, amount| OrderChange { order_id, amount, ..Default::default() };
    w.run_at(start + DAY + S, &[Command::PauseOrder(change(1, 0)), Command::PauseOrder(change(1, 0))]);
    w.run_at(start + 3 * DAY + S, &[Command::ResumeOrder(change(1, 0)), Command::AmendOrder(change(1, 250))]);
    assert_eq!(w.history(1)[1], (RunEvent::Skipped, 3, 2, ResultCode::Ok), "periods 2 and 3 fell in the pause");
    w.run_at(start + 4 * DAY, &[]);
    assert_eq!(w.history(1).last(), Some(&(RunEvent::Paid, 4, 250, ResultCode::Ok)));
    w.run_at(start + 4 * DAY + S, &[Command::CancelOrder(change(1, 0))]);
    assert_eq!(w.engine.next_run_due(), None);
    assert_eq!(w.engine.order(1).expect("order").status, OrderStatus::Cancelled);
    assert!(w.engine.orders_of(PAYER).is_empty(), "an ended order leaves its accounts' lists");
}

fn top_up(id: u128) -> Trigger {
    Trigger {
        id,
        debit_account_id: MAIN,
        credit_account_id: PHONE,
        threshold: 500,
        target: 2_000,
        flags: order_flags::TOP_UP,
        kind: trigger_kind::THRESHOLD,
        ledger: EUR,
        code: 9,
        ..Default::default()
    }
}

fn spend(id: u128, amount: u128) -> Command {
    Command::Transfer(Transfer {
        id,
        debit_account_id: PHONE,
        credit_account_id: PAYEE,
        amount,
        ledger: EUR,
        code: 1,
        ..Default::default()
    })
}

#[test]
fn a_threshold_trigger_fires_once_per_crossing_right_after_the_command_that_crossed() {
    let mut w = World::new(at(2034, 1, 1));
    w.fund(MAIN, 100_000, 900);
    w.fund(PHONE, 1_000, 901);
    w.ok(Command::CreateTrigger(top_up(1)));
    let now = w.now + S;
    let results = w.run_at(now, &[spend(10, 200), spend(11, 400), spend(12, 100)]);
    assert_eq!(results, vec![ResultCode::Ok; 3]);
    let fired = w.engine.transfer(run_id(1, 1)).expect("the top-up");
    assert_eq!(fired.amount, 2_000 - 400, "back to the target");
    let ts = |id| w.engine.transfer(id).expect("stored").timestamp;
    assert_eq!((ts(10), ts(11), fired.timestamp, ts(12)), (now, now + 1, now + 2, now + 3), "in the total order where it crossed");
    assert_eq!(w.engine.account(PHONE).expect("phone").credits_posted - w.engine.account(PHONE).expect("phone").debits_posted, 1_900);
    // Crossing again fires again: the top-up re-armed it.
    w.run_at(w.now + S, &[spend(13, 1_500)]);
    assert_eq!(w.engine.transfer(run_id(1, 2)).expect("second top-up").amount, 1_600);
}

#[test]
fn a_crossing_inside_a_failed_chain_fires_nothing_and_one_inside_a_chain_fires_after_it() {
    let mut w = World::new(at(2034, 2, 1));
    w.fund(MAIN, 100_000, 900);
    w.fund(PHONE, 1_000, 901);
    w.ok(Command::CreateTrigger(top_up(1)));
    let linked = |c: Command| {
        let mut c = c;
        *c.flags_mut() |= transfer_flags::LINKED;
        c
    };
    let now = w.now + S;
    let results = w.run_at(now, &[linked(spend(10, 600)), spend(11, 10_000)]);
    assert_eq!(results, vec![ResultCode::LinkedEventFailed, ResultCode::ExceedsCredits]);
    assert!(w.engine.transfer(run_id(1, 1)).is_none());
    let now = w.now + S;
    w.run_at(now, &[linked(spend(12, 600)), spend(13, 10), spend(14, 1)]);
    assert_eq!(w.engine.transfer(run_id(1, 1)).expect("fired after the chain").timestamp, now + 2);
    assert_eq!(w.engine.transfer(14).expect("next command").timestamp, now + 3);
}

#[test]
fn a_debt_trigger_pays_a_debt_up_to_its_cap_and_reports_a_larger_one() {
    let mut w = World::new(at(2034, 3, 1));
    w.fund(MAIN, 100_000, 900);
    let debt = Trigger {
        id: 1,
        debit_account_id: MAIN,
        credit_account_id: CARD,
        threshold: 300,
        kind: trigger_kind::DEBT,
        ledger: EUR,
        code: 9,
        ..Default::default()
    };
    w.ok(Command::CreateTrigger(debt));
    let card = |id, amount| {
        Command::Transfer(Transfer {
            id,
            debit_account_id: CARD,
            credit_account_id: PAYEE,
            amount,
            ledger: EUR,
            code: 1,
            ..Default::default()
        })
    };
    w.run_at(w.now + S, &[card(10, 250)]);
    assert_eq!(w.history(1), vec![(RunEvent::Paid, 1, 250, ResultCode::Ok)]);
    w.run_at(w.now + S, &[card(11, 400)]);
    assert_eq!(w.history(1)[1], (RunEvent::OverCap, 2, 400, ResultCode::Ok));
    assert!(w.engine.transfer(run_id(1, 2)).is_none(), "a debt over the cap is not paid");
}

#[test]
fn orders_survive_a_snapshot_and_a_rolled_back_chain_takes_an_order_back() {
    let start = at(2035, 1, 1);
    let mut w = World::new(start);
    w.fund(PAYER, 10_000, 900);
    w.fund(MAIN, 10_000, 901);
    w.fund(PHONE, 1_000, 902);
    let daily = StandingOrder {
        unit: order_unit::DAYS,
        day: 0,
        first_due_at: start + DAY,
        retry_attempts: 1,
        retry_spacing_s: 60,
        ..monthly(1, 0, 0)
    };
    w.ok(Command::CreateStandingOrder(daily));
    w.ok(Command::CreateTrigger(top_up(2)));
    w.run_at(start + DAY, &[spend(10, 700)]);
    let mut chain = Command::CreateStandingOrder(monthly(3, 1, 0));
    *chain.flags_mut() |= order_flags::LINKED;
    assert_eq!(w.run_at(w.now + S, &[chain, spend(11, 1 << 40)]), vec![ResultCode::LinkedEventFailed, ResultCode::ExceedsCredits]);
    assert!(w.engine.order(3).is_none());
    let bytes = w.engine.snapshot_bytes();
    let mut restored = Engine::restore(&bytes).expect("restores");
    assert_eq!(restored.state_digest(), w.engine.state_digest());
    assert_eq!(restored.next_run_due(), w.engine.next_run_due());
    assert_eq!(restored.orders(), w.engine.orders());
    let mut results = Vec::new();
    restored.execute(start + 2 * DAY, &[spend(12, 1_000)], &mut results).expect("batch");
    w.run_at(start + 2 * DAY, &[spend(12, 1_000)]);
    assert_eq!(restored.state_digest(), w.engine.state_digest(), "the restored engine runs the same");
}

#[test]
fn a_storm_of_due_runs_drains_a_bounded_number_per_batch_in_due_order() {
    let start = at(2036, 1, 1);
    let mut w = World::new(start);
    // Three payers and three payees: an account takes part in at most 1 024 live orders.
    let accounts: Vec<Command> =
        (20..26u128).map(|id| Command::CreateAccount(Account { id, ledger: EUR, code: 10, ..Default::default() })).collect();
    w.run_at(w.now + S, &accounts);
    let orders: Vec<Command> = (1..=3_000u128)
        .map(|id| {
            let (debit_account_id, credit_account_id) = (20 + id % 3, 23 + id % 3);
            let daily = StandingOrder { first_due_at: start + DAY, unit: order_unit::DAYS, day: 0, ..monthly(id, 0, 0) };
            Command::CreateStandingOrder(StandingOrder { debit_account_id, credit_account_id, ..daily })
        })
        .collect();
    for chunk in orders.chunks(1_000) {
        let now = w.now + S;
        assert!(w.run_at(now, chunk).iter().all(|r| *r == ResultCode::Ok));
    }
    let mut ran = 0;
    let mut batches = 0;
    while ran < 3_000 {
        let mut results = Vec::new();
        let info = w.engine.execute(start + DAY + batches, &[spend(10_000 + batches as u128, 0)], &mut results).expect("batch");
        assert!(info.ran as usize <= 1_024);
        ran += info.ran;
        batches += 1;
    }
    assert_eq!(batches, 3, "1 024 runs per batch");
    assert!(w.engine.transfer(run_id(3_000, 1)).is_some());
}

#[test]
fn a_snapshot_copy_shares_the_orders_copy_on_write_and_equals_the_state_whatever_changes_after() {
    let start = at(2037, 1, 1);
    let mut w = World::new(start);
    w.fund(PAYER, 1 << 40, 900);
    let daily = |id| StandingOrder { unit: order_unit::DAYS, day: 0, first_due_at: start + DAY, ..monthly(id, 0, 0) };
    let orders: Vec<Command> = (1..=50).map(|id| Command::CreateStandingOrder(daily(id))).collect();
    w.run_at(start + S, &orders);
    let mut view = w.engine.snapshot_view();
    assert_eq!(view.bytes(), w.engine.snapshot_bytes());
    for day in 1..=3 {
        w.run_at(start + day * DAY, &[Command::PauseOrder(OrderChange { order_id: day as u128, ..Default::default() })]);
        w.engine.snapshot_view_catch_up(&mut view, 100_000);
    }
    w.run_at(start + 4 * DAY, &[Command::CreateStandingOrder(daily(51))]);
    w.engine.snapshot_view_into(&mut view);
    let copied = w.engine.snapshot_bytes();
    assert_eq!(view.bytes(), copied, "the copy equals a fresh one");
    // The engine goes on changing the orders the copy shares: the copy keeps what it copied.
    w.run_at(start + 5 * DAY, &[Command::CancelOrder(OrderChange { order_id: 10, ..Default::default() })]);
    assert_eq!(view.bytes(), copied);
    assert_ne!(w.engine.snapshot_bytes(), copied);
    // A view made from another engine is not followed: it is copied whole.
    let other = World::new(start);
    other.engine.snapshot_view_into(&mut view);
    assert_eq!(view.bytes(), other.engine.snapshot_bytes());
}
