//! Table tests: every result code reached by a minimal scenario, and the behaviours behind them.

use bursar_engine::*;

const S: u64 = 1_000_000_000;
const EUR: u32 = 1;
const USD: u32 = 2;
const EUR_SETTLEMENT: u128 = 1000;
const A: u128 = 1;
const B: u128 = 2;
const C: u128 = 3;
const USD_ACCOUNT: u128 = 5;
const NO_OVERDRAFT: u128 = 6;
const NO_OVERCREDIT: u128 = 7;

struct World {
    engine: Engine,
    now: u64,
}

impl World {
    fn with_limits(limits: Limits) -> World {
        let mut w = World { engine: Engine::new(limits), now: 0 };
        let setup = vec![
            Command::CreateLedger(ledger(EUR, b"EUR", EUR_SETTLEMENT)),
            Command::CreateLedger(ledger(USD, b"USD", 2000)),
            Command::CreateAccount(account(A, EUR, 0)),
            Command::CreateAccount(account(B, EUR, 0)),
            Command::CreateAccount(account(C, EUR, account_flags::HISTORY)),
            Command::CreateAccount(account(USD_ACCOUNT, USD, 0)),
            Command::CreateAccount(account(NO_OVERDRAFT, EUR, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS)),
            Command::CreateAccount(account(NO_OVERCREDIT, EUR, account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS)),
        ];
        let results = w.run(&setup);
        assert!(results.iter().all(|r| *r == ResultCode::Ok), "setup: {results:?}");
        w
    }

    fn new() -> World {
        World::with_limits(Limits::default())
    }

    fn run(&mut self, commands: &[Command]) -> Vec<ResultCode> {
        self.now += S;
        let mut results = Vec::new();
        self.engine.execute(self.now, commands, &mut results).expect("batch within limits");
        results
    }

    fn one(&mut self, command: Command) -> ResultCode {
        self.run(&[command])[0]
    }

    fn ok(&mut self, command: Command) {
        assert_eq!(self.one(command), ResultCode::Ok, "{command:?}");
    }

    fn balance(&self, id: u128) -> Balances {
        let a = self.engine.account(id).expect("account exists");
        Balances {
            debits_pending: a.debits_pending,
            debits_posted: a.debits_posted,
            credits_pending: a.credits_pending,
            credits_posted: a.credits_posted,
        }
    }
}

fn ledger(id: u32, currency: &[u8; 3], settlement: u128) -> Ledger {
    Ledger { id, currency: *currency, scale: 2, settlement_account_id: settlement, settlement_account_code: 1, ..Default::default() }
}

fn account(id: u128, ledger: u32, flags: u16) -> Account {
    Account { id, ledger, code: 10, flags, ..Default::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: EUR, code: 1, ..Default::default() }
}

fn change(id: u128, flags: u16) -> AccountChange {
    AccountChange { account_id: id, flags, ..Default::default() }
}

fn linked(mut t: Transfer) -> Transfer {
    t.flags |= transfer_flags::LINKED;
    t
}

fn capture(id: u128, pending: u128, amount: u128) -> Transfer {
    Transfer { id, pending_id: pending, amount, ..Default::default() }
}

/// A velocity rule on `account`: `flags` (side and bounds) per `window`.
fn velocity(account: u128, slot: u8, flags: u16, window: u8, count_max: u32, amount_max: u128) -> Command {
    let window_seconds = if window == velocity_window::ROLLING { 16 } else { 0 };
    Command::SetVelocity(VelocityRule {
        account_id: account,
        slot,
        flags,
        window,
        window_seconds,
        count_max,
        amount_max,
        ..Default::default()
    })
}

/// A channel policy on `account`.
fn channels(account: u128, flags: u16, debit: &[u16], credit: &[u16], exempt: &[u16]) -> Command {
    let mut c = ChannelPolicy { account_id: account, flags, ..Default::default() };
    c.debit_codes[..debit.len()].copy_from_slice(debit);
    c.credit_codes[..credit.len()].copy_from_slice(credit);
    c.limit_exempt_codes[..exempt.len()].copy_from_slice(exempt);
    Command::SetChannels(c)
}

/// A monthly standing order of `amount` from `debit` to `credit` on the 1st, due from the start.
fn standing(id: u128, debit: u128, credit: u128, amount: u128) -> StandingOrder {
    StandingOrder {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        period: 1,
        unit: order_unit::MONTHS,
        day: 1,
        ledger: EUR,
        code: 1,
        ..Default::default()
    }
}

/// A threshold trigger topping `watched` up from `funding` by 10 when it falls below 5.
fn trigger(id: u128, funding: u128, watched: u128) -> Trigger {
    Trigger {
        id,
        debit_account_id: funding,
        credit_account_id: watched,
        amount: 10,
        threshold: 5,
        kind: trigger_kind::THRESHOLD,
        ledger: EUR,
        code: 1,
        ..Default::default()
    }
}

fn order_change(id: u128, amount: u128) -> OrderChange {
    OrderChange { order_id: id, amount, ..Default::default() }
}

const VF_DEBIT_COUNT: u16 = velocity_flags::DEBITS | velocity_flags::COUNT;
const VF_DEBIT_AMOUNT: u16 = velocity_flags::DEBITS | velocity_flags::AMOUNT;

/// A reversal of `original` (reason code 1, a refund), sides and ledger left to the engine.
fn reversal(id: u128, original: u128, amount: u128) -> Transfer {
    Transfer { id, pending_id: original, amount, code: 1, ..Default::default() }
}

/// The desk's accounts for exchanges from EUR to USD: a customer's USD account and the desk's USD
/// liquidity (no overdraft, 1 000 funded); the desk's EUR liquidity is `B`.
const CUSTOMER_USD: u128 = 8;
const DESK_USD: u128 = 9;
const QUOTE: u128 = 70;

/// 1.1 USD per EUR, for a minute, with a minute's grace.
fn quote(id: u128) -> Quote {
    Quote {
        id,
        from_liquidity_id: B,
        to_liquidity_id: DESK_USD,
        rate: 11,
        rate_scale: 1,
        validity_s: 60,
        grace_s: 60,
        from_ledger: EUR,
        to_ledger: USD,
        code: 7,
        ..Default::default()
    }
}

fn exchange(id: u128, to_id: u128, amount: u128) -> Exchange {
    Exchange { id, to_id, quote_id: QUOTE, from_account_id: A, to_account_id: CUSTOMER_USD, amount, ..Default::default() }
}

fn order(id: u128, amount: u128) -> Exchange {
    Exchange { id, quote_id: QUOTE, to_account_id: CUSTOMER_USD, amount, ..Default::default() }
}

impl World {
    /// The desk's accounts and quote `QUOTE`.
    fn desk(&mut self) {
        let funding = Transfer { id: 60, credit_account_id: DESK_USD, amount: 1_000, ledger: USD, code: 1, ..Default::default() };
        for command in [
            Command::CreateAccount(account(CUSTOMER_USD, USD, 0)),
            Command::CreateAccount(account(DESK_USD, USD, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS)),
            Command::Credit(funding),
            Command::CreateQuote(quote(QUOTE)),
        ] {
            self.ok(command);
        }
    }

    /// The desk, then `command`.
    fn at_desk(&mut self, command: Command) -> ResultCode {
        self.desk();
        self.one(command)
    }
}

type Scenario = fn(&mut World) -> ResultCode;

fn scenarios() -> Vec<(ResultCode, Scenario)> {
    use ResultCode as R;
    vec![
        (R::Ok, |w| w.one(Command::Transfer(transfer(10, A, B, 5)))),
        (R::LinkedEventFailed, |w| {
            w.run(&[Command::Transfer(linked(transfer(10, A, B, 5))), Command::Transfer(transfer(11, A, 99, 5))])[0]
        }),
        (R::LinkedEventChainOpen, |w| {
            w.run(&[Command::Transfer(transfer(10, A, B, 5)), Command::Transfer(linked(transfer(11, A, B, 5)))])[1]
        }),
        (R::TimestampMustBeZero, |w| w.one(Command::Transfer(Transfer { timestamp: 1, ..transfer(10, A, B, 5) }))),
        (R::ReservedField, |w| w.one(Command::CreateAccount(Account { state: 1, ..account(20, EUR, 0) }))),
        (R::ReservedFlag, |w| w.one(Command::Transfer(Transfer { flags: 1 << 15, ..transfer(10, A, B, 5) }))),
        (R::IdMustNotBeZero, |w| w.one(Command::Transfer(transfer(0, A, B, 5)))),
        (R::IdMustNotBeIntMax, |w| w.one(Command::CreateAccount(account(u128::MAX, EUR, 0)))),
        (R::ExistsWithDifferentFlags, |w| {
            w.ok(Command::CreateAccount(account(20, EUR, 0)));
            w.one(Command::CreateAccount(account(20, EUR, account_flags::HISTORY)))
        }),
        (R::ExistsWithDifferentPendingId, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.ok(Command::Hold(transfer(11, A, B, 5)));
            w.ok(Command::Capture(capture(12, 10, 5)));
            w.one(Command::Capture(capture(12, 11, 5)))
        }),
        (R::ExistsWithDifferentTimeout, |w| {
            w.ok(Command::Hold(Transfer { timeout: 60, ..transfer(10, A, B, 5) }));
            w.one(Command::Hold(Transfer { timeout: 61, ..transfer(10, A, B, 5) }))
        }),
        (R::ExistsWithDifferentDebitAccountId, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(10, C, B, 5)))
        }),
        (R::ExistsWithDifferentCreditAccountId, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(10, A, C, 5)))
        }),
        (R::ExistsWithDifferentAmount, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(10, A, B, 6)))
        }),
        (R::ExistsWithDifferentUserData128, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(Transfer { user_data_128: 1, ..transfer(10, A, B, 5) }))
        }),
        (R::ExistsWithDifferentUserData64, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(Transfer { user_data_64: 1, ..transfer(10, A, B, 5) }))
        }),
        (R::ExistsWithDifferentUserData32, |w| {
            w.ok(Command::CreateAccount(account(20, EUR, 0)));
            w.one(Command::CreateAccount(Account { user_data_32: 1, ..account(20, EUR, 0) }))
        }),
        (R::ExistsWithDifferentLedger, |w| {
            w.ok(Command::CreateAccount(account(20, EUR, 0)));
            w.one(Command::CreateAccount(account(20, USD, 0)))
        }),
        (R::ExistsWithDifferentCode, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(Transfer { code: 2, ..transfer(10, A, B, 5) }))
        }),
        (R::ExistsWithDifferentCurrency, |w| w.one(Command::CreateLedger(ledger(EUR, b"PLN", EUR_SETTLEMENT)))),
        (R::ExistsWithDifferentScale, |w| w.one(Command::CreateLedger(Ledger { scale: 3, ..ledger(EUR, b"EUR", EUR_SETTLEMENT) }))),
        (R::ExistsWithDifferentSettlementAccount, |w| w.one(Command::CreateLedger(ledger(EUR, b"EUR", 1001)))),
        (R::Exists, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::IdAlreadyFailed, |w| {
            assert_eq!(w.one(Command::Transfer(transfer(10, NO_OVERDRAFT, A, 1))), R::ExceedsCredits);
            w.ok(Command::Transfer(transfer(11, A, NO_OVERDRAFT, 5)));
            w.one(Command::Transfer(transfer(10, NO_OVERDRAFT, A, 1)))
        }),
        (R::FlagsAreMutuallyExclusive, |w| w.one(Command::Hold(Transfer { flags: transfer_flags::VOID_PENDING, ..transfer(10, A, B, 5) }))),
        (R::DebitsPendingMustBeZero, |w| w.one(Command::CreateAccount(Account { debits_pending: 1, ..account(20, EUR, 0) }))),
        (R::DebitsPostedMustBeZero, |w| w.one(Command::CreateAccount(Account { debits_posted: 1, ..account(20, EUR, 0) }))),
        (R::CreditsPendingMustBeZero, |w| w.one(Command::CreateAccount(Account { credits_pending: 1, ..account(20, EUR, 0) }))),
        (R::CreditsPostedMustBeZero, |w| w.one(Command::CreateAccount(Account { credits_posted: 1, ..account(20, EUR, 0) }))),
        (R::CurrencyInvalid, |w| w.one(Command::CreateLedger(ledger(3, b"eur", 3000)))),
        (R::ScaleTooLarge, |w| w.one(Command::CreateLedger(Ledger { scale: 19, ..ledger(3, b"GBP", 3000) }))),
        (R::AccountIdMustNotBeZero, |w| w.one(Command::Freeze(change(0, change_flags::DEBITS)))),
        (R::AccountIdMustNotBeIntMax, |w| w.one(Command::CreateLedger(ledger(3, b"GBP", u128::MAX)))),
        (R::ChangeMustNameASide, |w| w.one(Command::Freeze(change(A, 0)))),
        (R::CounterpartyMustBeZero, |w| w.one(Command::Debit(transfer(10, A, B, 5)))),
        (R::DebitAccountIdMustNotBeZero, |w| w.one(Command::Transfer(transfer(10, 0, B, 5)))),
        (R::DebitAccountIdMustNotBeIntMax, |w| w.one(Command::Transfer(transfer(10, u128::MAX, B, 5)))),
        (R::CreditAccountIdMustNotBeZero, |w| w.one(Command::Credit(transfer(10, 0, 0, 5)))),
        (R::CreditAccountIdMustNotBeIntMax, |w| w.one(Command::Transfer(transfer(10, A, u128::MAX, 5)))),
        (R::AccountsMustBeDifferent, |w| w.one(Command::Transfer(transfer(10, A, A, 5)))),
        (R::PendingIdMustBeZero, |w| w.one(Command::Transfer(Transfer { pending_id: 3, ..transfer(10, A, B, 5) }))),
        (R::PendingIdMustNotBeZero, |w| w.one(Command::Capture(capture(10, 0, 5)))),
        (R::PendingIdMustNotBeIntMax, |w| w.one(Command::Release(capture(10, u128::MAX, 0)))),
        (R::PendingIdMustBeDifferent, |w| w.one(Command::Release(capture(10, 10, 0)))),
        (R::TimeoutReservedForPendingTransfer, |w| w.one(Command::Transfer(Transfer { timeout: 1, ..transfer(10, A, B, 5) }))),
        (R::LedgerMustNotBeZero, |w| w.one(Command::Transfer(Transfer { ledger: 0, ..transfer(10, A, B, 5) }))),
        (R::CodeMustNotBeZero, |w| w.one(Command::CreateAccount(Account { code: 0, ..account(20, EUR, 0) }))),
        (R::LedgerNotFound, |w| w.one(Command::Credit(Transfer { ledger: 9, ..transfer(10, 0, A, 5) }))),
        (R::SettlementAccountExists, |w| w.one(Command::CreateLedger(ledger(3, b"GBP", A)))),
        (R::AccountIsSettlementAccount, |w| w.one(Command::Debit(transfer(10, EUR_SETTLEMENT, 0, 5)))),
        (R::DebitAccountNotFound, |w| w.one(Command::Transfer(transfer(10, 99, B, 5)))),
        (R::CreditAccountNotFound, |w| w.one(Command::Credit(transfer(10, 0, 99, 5)))),
        (R::AccountNotFound, |w| w.one(Command::Close(change(99, 0)))),
        (R::AccountsMustHaveTheSameLedger, |w| w.one(Command::Transfer(transfer(10, A, USD_ACCOUNT, 5)))),
        (R::TransferMustHaveTheSameLedgerAsAccounts, |w| w.one(Command::Transfer(Transfer { ledger: USD, ..transfer(10, A, B, 5) }))),
        (R::PendingTransferNotFound, |w| w.one(Command::Capture(capture(11, 10, 5)))),
        (R::PendingTransferNotPending, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Capture(capture(11, 10, 5)))
        }),
        (R::PendingTransferHasDifferentDebitAccountId, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Capture(Transfer { debit_account_id: C, ..capture(11, 10, 5) }))
        }),
        (R::PendingTransferHasDifferentCreditAccountId, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Capture(Transfer { credit_account_id: C, ..capture(11, 10, 5) }))
        }),
        (R::PendingTransferHasDifferentLedger, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Capture(Transfer { ledger: USD, ..capture(11, 10, 5) }))
        }),
        (R::PendingTransferHasDifferentCode, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Capture(Transfer { code: 7, ..capture(11, 10, 5) }))
        }),
        (R::ExceedsPendingTransferAmount, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Capture(capture(11, 10, 6)))
        }),
        (R::PendingTransferHasDifferentAmount, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Release(capture(11, 10, 4)))
        }),
        (R::PendingTransferAlreadyPosted, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.ok(Command::Capture(capture(11, 10, 5)));
            w.one(Command::Release(capture(12, 10, 0)))
        }),
        (R::PendingTransferAlreadyVoided, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.ok(Command::Release(capture(11, 10, 0)));
            w.one(Command::Capture(capture(12, 10, 5)))
        }),
        (R::PendingTransferExpired, |w| {
            w.ok(Command::Hold(Transfer { timeout: 1, ..transfer(10, A, B, 5) }));
            w.now += 5 * S;
            w.one(Command::Capture(capture(11, 10, 5)))
        }),
        (R::DebitAccountClosed, |w| {
            w.ok(Command::Close(change(A, 0)));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::CreditAccountClosed, |w| {
            w.ok(Command::Close(change(B, 0)));
            w.one(Command::Credit(Transfer { ledger: EUR, ..transfer(10, 0, B, 5) }))
        }),
        (R::AccountClosed, |w| {
            w.ok(Command::Close(change(A, 0)));
            w.one(Command::Thaw(change(A, change_flags::DEBITS)))
        }),
        (R::DebitAccountFrozen, |w| {
            w.ok(Command::Freeze(change(A, change_flags::DEBITS)));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::CreditAccountFrozen, |w| {
            w.ok(Command::Freeze(change(B, change_flags::CREDITS)));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::AccountHasPendingBalance, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Close(change(A, 0)))
        }),
        (R::AccountHasBalance, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Close(change(B, 0)))
        }),
        (R::OverflowsDebitsPending, |w| {
            w.ok(Command::Hold(transfer(10, A, B, u128::MAX)));
            w.one(Command::Hold(transfer(11, A, C, 1)))
        }),
        (R::OverflowsCreditsPending, |w| {
            w.ok(Command::Hold(transfer(10, A, B, u128::MAX)));
            w.one(Command::Hold(transfer(11, C, B, 1)))
        }),
        (R::OverflowsDebitsPosted, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, u128::MAX)));
            w.one(Command::Transfer(transfer(11, A, C, 1)))
        }),
        (R::OverflowsCreditsPosted, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, u128::MAX)));
            w.one(Command::Transfer(transfer(11, C, B, 1)))
        }),
        (R::OverflowsDebits, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, u128::MAX - 1)));
            w.one(Command::Hold(transfer(11, A, C, 2)))
        }),
        (R::OverflowsCredits, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, u128::MAX - 1)));
            w.one(Command::Hold(transfer(11, C, B, 2)))
        }),
        (R::OverflowsTimeout, |w| {
            w.now = u64::MAX - 10 * S;
            w.one(Command::Hold(Transfer { timeout: u32::MAX, ..transfer(10, A, B, 5) }))
        }),
        (R::OverflowsLedgerTotals, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, u128::MAX - 1)));
            w.ok(Command::CreateAccount(account(20, EUR, 0)));
            w.one(Command::Transfer(transfer(11, C, 20, 2)))
        }),
        (R::ReversedTransferNotFound, |w| w.one(Command::Reverse(reversal(10, 99, 5)))),
        (R::ReversedTransferIsAHold, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.one(Command::Reverse(reversal(11, 10, 5)))
        }),
        (R::ReversedTransferNotReversible, |w| {
            w.ok(Command::Hold(transfer(10, A, B, 5)));
            w.ok(Command::Release(capture(11, 10, 0)));
            w.one(Command::Reverse(reversal(12, 11, 5)))
        }),
        (R::ReversalHasDifferentDebitAccountId, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Reverse(Transfer { debit_account_id: A, ..reversal(11, 10, 5) }))
        }),
        (R::ReversalHasDifferentCreditAccountId, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Reverse(Transfer { credit_account_id: B, ..reversal(11, 10, 5) }))
        }),
        (R::ReversalHasDifferentLedger, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Reverse(Transfer { ledger: USD, ..reversal(11, 10, 5) }))
        }),
        (R::ExceedsReversibleAmount, |w| {
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.ok(Command::Reverse(reversal(11, 10, 3)));
            w.one(Command::Reverse(reversal(12, 10, 3)))
        }),
        (R::VelocitySlotInvalid, |w| w.one(velocity(A, 8, VF_DEBIT_COUNT, velocity_window::DAY, 1, 0))),
        (R::VelocityWindowInvalid, |w| w.one(velocity(A, 0, VF_DEBIT_COUNT, 0, 1, 0))),
        (R::VelocityRuleMustSetAMaximum, |w| w.one(velocity(A, 0, velocity_flags::DEBITS, velocity_window::DAY, 0, 0))),
        (R::DebitCodeNotAllowed, |w| {
            w.ok(channels(A, channel_flags::DEBITS_ALLOW, &[2], &[], &[]));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::CreditCodeNotAllowed, |w| {
            w.ok(channels(B, 0, &[], &[1], &[]));
            w.one(Command::Transfer(transfer(10, A, B, 5)))
        }),
        (R::ExceedsDebitVelocityCount, |w| {
            w.ok(velocity(A, 0, VF_DEBIT_COUNT, velocity_window::DAY, 1, 0));
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(11, A, B, 5)))
        }),
        (R::ExceedsDebitVelocityAmount, |w| {
            w.ok(velocity(A, 0, VF_DEBIT_AMOUNT, velocity_window::DAY, 0, 5));
            w.one(Command::Transfer(transfer(10, A, B, 6)))
        }),
        (R::ExceedsCreditVelocityCount, |w| {
            w.ok(velocity(B, 0, velocity_flags::CREDITS | velocity_flags::COUNT, velocity_window::HOUR, 1, 0));
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(11, C, B, 5)))
        }),
        (R::ExceedsCreditVelocityAmount, |w| {
            w.ok(velocity(B, 0, velocity_flags::CREDITS | velocity_flags::AMOUNT, velocity_window::ROLLING, 0, 9));
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(11, C, B, 5)))
        }),
        (R::ExceedsCredits, |w| w.one(Command::Transfer(transfer(10, NO_OVERDRAFT, A, 1)))),
        (R::ExceedsDebits, |w| w.one(Command::Transfer(transfer(10, A, NO_OVERCREDIT, 1)))),
        (R::IdReserved, |w| w.one(Command::Transfer(transfer(RUN_ID_PREFIX | 7, A, B, 1)))),
        (R::OrderExistsWithDifferentFields, |w| {
            w.ok(Command::CreateStandingOrder(standing(50, A, B, 5)));
            w.one(Command::CreateStandingOrder(standing(50, A, B, 6)))
        }),
        (R::OrderNotFound, |w| w.one(Command::PauseOrder(order_change(50, 0)))),
        (R::OrderEnded, |w| {
            w.ok(Command::CreateStandingOrder(standing(50, A, B, 5)));
            w.ok(Command::CancelOrder(order_change(50, 0)));
            w.one(Command::ResumeOrder(order_change(50, 0)))
        }),
        (R::OrderPeriodInvalid, |w| w.one(Command::CreateStandingOrder(StandingOrder { period: 121, ..standing(50, A, B, 5) }))),
        (R::OrderDayInvalid, |w| w.one(Command::CreateStandingOrder(StandingOrder { day: 32, ..standing(50, A, B, 5) }))),
        (R::OrderFirstDueInPast, |w| w.one(Command::CreateStandingOrder(StandingOrder { first_due_at: 1, ..standing(50, A, B, 5) }))),
        (R::OrderEndInvalid, |w| {
            let first_due_at = w.now + 100 * S;
            w.one(Command::CreateStandingOrder(StandingOrder { first_due_at, end_at: first_due_at - 1, ..standing(50, A, B, 5) }))
        }),
        (R::OrderCatchUpInvalid, |w| w.one(Command::CreateStandingOrder(StandingOrder { catch_up: 3, ..standing(50, A, B, 5) }))),
        (R::OrderRetryInvalid, |w| {
            let daily =
                StandingOrder { unit: order_unit::DAYS, day: 0, retry_attempts: 2, retry_spacing_s: 43_200, ..standing(50, A, B, 5) };
            w.one(Command::CreateStandingOrder(daily))
        }),
        (R::TriggerKindInvalid, |w| w.one(Command::CreateTrigger(Trigger { kind: 3, ..trigger(50, A, B) }))),
        (R::TriggerThresholdInvalid, |w| {
            let debt = Trigger { kind: trigger_kind::DEBT, amount: 0, threshold: 0, ..trigger(50, A, B) };
            w.one(Command::CreateTrigger(debt))
        }),
        (R::OrderAmountInvalid, |w| w.one(Command::CreateStandingOrder(standing(50, A, B, 0)))),
        (R::TriggerCapInvalid, |w| w.one(Command::CreateTrigger(Trigger { cap_count: 1, ..trigger(50, A, B) }))),
        (R::OrdersPerAccountLimitReached, |w| {
            for k in 0..4 {
                w.ok(Command::CreateTrigger(trigger(50 + k, A, B)));
            }
            w.one(Command::CreateTrigger(trigger(60, C, B)))
        }),
        (R::OrdersLimitReached, |_| {
            let mut w = World::with_limits(Limits { accounts_max: 8, ..Limits::default() });
            for k in 0..8 {
                w.ok(Command::CreateStandingOrder(standing(50 + k, A, B, 5)));
            }
            w.one(Command::CreateStandingOrder(standing(60, A, B, 5)))
        }),
        (R::LedgersLimitReached, |_| {
            let mut w = World::with_limits(Limits { ledgers_max: 2, ..Limits::default() });
            w.one(Command::CreateLedger(ledger(3, b"GBP", 3000)))
        }),
        (R::AccountsLimitReached, |_| {
            let mut w = World::with_limits(Limits { accounts_max: 8, ..Limits::default() });
            w.one(Command::CreateAccount(account(20, EUR, 0)))
        }),
        (R::QuoteExistsWithDifferentFields, |w| w.at_desk(Command::CreateQuote(Quote { rate: 12, ..quote(QUOTE) }))),
        (R::ExchangeExistsWithDifferentFields, |w| {
            w.desk();
            w.ok(Command::Exchange(exchange(80, 81, 10)));
            w.one(Command::Exchange(exchange(80, 81, 11)))
        }),
        (R::QuoteRateInvalid, |w| w.one(Command::CreateQuote(Quote { rate_scale: 19, ..quote(QUOTE) }))),
        (R::QuoteValidityInvalid, |w| w.one(Command::CreateQuote(Quote { validity_s: 0, ..quote(QUOTE) }))),
        (R::QuoteLedgersMustBeDifferent, |w| w.one(Command::CreateQuote(Quote { to_ledger: EUR, ..quote(QUOTE) }))),
        (R::ExchangeIdsMustBeDifferent, |w| w.at_desk(Command::Exchange(exchange(80, 80, 10)))),
        (R::ExchangeAmountMustNotBeZero, |w| w.at_desk(Command::Exchange(exchange(80, 81, 0)))),
        (R::QuoteNotFound, |w| w.one(Command::Exchange(exchange(80, 81, 10)))),
        (R::QuoteLiquidityAccountInvalid, |w| w.one(Command::CreateQuote(Quote { to_liquidity_id: A, ..quote(QUOTE) }))),
        (R::QuoteCustomerInvalid, |w| w.at_desk(Command::CreateQuote(Quote { customer_account_id: A, ..quote(71) }))),
        (R::ExchangeLedgerMismatch, |w| w.at_desk(Command::Exchange(Exchange { to_account_id: C, ..exchange(80, 81, 10) }))),
        (R::QuoteIssuedToAnotherCustomer, |w| {
            w.desk();
            w.ok(Command::CreateQuote(Quote { customer_account_id: USD_ACCOUNT, ..quote(71) }));
            w.one(Command::Exchange(Exchange { quote_id: 71, ..exchange(80, 81, 10) }))
        }),
        (R::ExchangeOrderNotFound, |w| {
            w.at_desk(Command::Exchange(Exchange { pending_id: 99, flags: exchange_flags::ORDER, ..exchange(80, 81, 10) }))
        }),
        (R::ExchangeBookedAtInvalid, |w| w.at_desk(Command::Exchange(Exchange { booked_at: 5, ..exchange(80, 81, 10) }))),
        (R::QuoteExpired, |w| {
            w.desk();
            w.now += 60 * S;
            w.one(Command::Exchange(exchange(80, 81, 10)))
        }),
        (R::QuoteUsedUp, |w| {
            w.desk();
            w.ok(Command::PlaceOrder(order(90, 10)));
            w.one(Command::Exchange(exchange(80, 81, 10)))
        }),
        (R::ExchangeAmountTooSmall, |w| {
            w.desk();
            w.ok(Command::CreateQuote(Quote { rate: 1, ..quote(71) }));
            w.one(Command::Exchange(Exchange { quote_id: 71, ..exchange(80, 81, 9) }))
        }),
        (R::ExchangeOverflow, |w| w.at_desk(Command::Exchange(exchange(80, 81, u128::MAX / 2)))),
        (R::QuoteAmountExceeded, |w| {
            w.desk();
            w.ok(Command::CreateQuote(Quote { amount_max: 9, flags: quote_flags::MULTI_USE, ..quote(71) }));
            w.ok(Command::Exchange(Exchange { quote_id: 71, ..exchange(80, 81, 5) }));
            w.one(Command::Exchange(Exchange { quote_id: 71, ..exchange(82, 83, 5) }))
        }),
        (R::ExchangeExceedsOrder, |w| {
            w.desk();
            w.ok(Command::PlaceOrder(order(90, 10)));
            w.one(Command::Exchange(Exchange { pending_id: 90, flags: exchange_flags::ORDER, ..exchange(80, 81, 11) }))
        }),
        (R::ExchangeExceedsLiquidity, |w| w.at_desk(Command::Exchange(exchange(80, 81, 1_000)))),
        (R::QuotesLimitReached, |_| {
            let mut w = World::with_limits(Limits { transfers_max: 1, ..Limits::default() });
            w.ok(Command::CreateAccount(account(DESK_USD, USD, 0)));
            w.ok(Command::CreateQuote(quote(QUOTE)));
            w.one(Command::CreateQuote(quote(71)))
        }),
        (R::TransfersLimitReached, |_| {
            let mut w = World::with_limits(Limits { transfers_max: 1, ..Limits::default() });
            w.ok(Command::Transfer(transfer(10, A, B, 5)));
            w.one(Command::Transfer(transfer(11, A, B, 5)))
        }),
    ]
}

#[test]
fn every_result_code_is_reached_by_its_scenario_and_leaves_invariants_intact() {
    let mut covered = std::collections::BTreeSet::new();
    for (expected, scenario) in scenarios() {
        let mut world = World::new();
        let got = scenario(&mut world);
        assert_eq!(got, expected, "scenario for {expected}");
        world.engine.check_invariants().unwrap_or_else(|e| panic!("after {expected}: {e}"));
        covered.insert(expected);
    }
    let missing: Vec<_> = ResultCode::ALL.iter().filter(|c| !covered.contains(c)).collect();
    assert!(missing.is_empty(), "codes without a scenario: {missing:?}");
}

#[test]
fn a_failed_command_changes_nothing_but_the_memory_of_a_decided_id() {
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 5)));
    for bad in [Command::Capture(capture(12, 10, 6)), Command::Close(change(A, 0)), Command::Transfer(transfer(14, A, A, 1))] {
        assert!(!w.one(bad).is_success());
    }
    assert!(w.engine.failed_transfers().is_empty(), "codes about the command itself decide nothing");
    for bad in [Command::Transfer(transfer(11, A, 99, 5)), Command::Transfer(transfer(13, NO_OVERDRAFT, A, 1))] {
        assert!(!w.one(bad).is_success());
    }
    let failed: Vec<_> = w.engine.failed_transfers().iter().map(|f| (f.id, f.code)).collect();
    assert_eq!(failed, vec![(11, ResultCode::CreditAccountNotFound), (13, ResultCode::ExceedsCredits)]);
    assert_eq!(w.engine.transfers().len(), 1, "no transfer stored");
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 5)));
    let before = w.engine.snapshot_bytes();
    for bad in [Command::Capture(capture(12, 10, 6)), Command::Close(change(A, 0)), Command::Transfer(transfer(14, A, A, 1))] {
        assert!(!w.one(bad).is_success());
    }
    let mut after = Engine::restore(&w.engine.snapshot_bytes()).expect("restores");
    // Only the clock moved.
    let mut replay = Engine::restore(&before).expect("restores");
    let mut results = Vec::new();
    replay.execute(w.now, &[], &mut results).expect("tick");
    after.execute(w.now + 1, &[], &mut results).expect("tick");
    replay.execute(w.now + 1, &[], &mut results).expect("tick");
    assert_eq!(after.digest(), replay.digest());
}

#[test]
fn a_failed_chain_rolls_back_every_effect_and_reports_each_member() {
    let mut w = World::new();
    let before = (w.balance(A), w.balance(B), w.balance(C));
    let results = w.run(&[
        Command::CreateAccount(Account { flags: account_flags::LINKED, ..account(30, EUR, account_flags::HISTORY) }),
        Command::Transfer(linked(transfer(10, A, 30, 7))),
        Command::Hold(linked(Transfer { timeout: 10, ..transfer(11, 30, C, 7) })),
        Command::Capture(linked(capture(12, 11, 3))),
        Command::Transfer(transfer(13, A, 99, 1)),
        Command::Transfer(transfer(14, A, B, 1)),
    ]);
    use ResultCode as R;
    assert_eq!(
        results,
        vec![R::LinkedEventFailed, R::LinkedEventFailed, R::LinkedEventFailed, R::LinkedEventFailed, R::CreditAccountNotFound, R::Ok]
    );
    assert!(w.engine.account(30).is_none(), "account of the failed chain is gone");
    assert!(w.engine.transfer(10).is_none() && w.engine.transfer(11).is_none() && w.engine.transfer(12).is_none());
    let (a, b, c) = before;
    assert_eq!(w.balance(A).debits_posted, a.debits_posted + 1);
    assert_eq!(w.balance(B).credits_posted, b.credits_posted + 1);
    assert_eq!(w.balance(C), c);
    w.engine.check_invariants().expect("invariants");
    // The rolled-back hold must not expire later.
    w.now += 100 * S;
    let info = w.engine.execute(w.now, &[], &mut Vec::new()).expect("tick");
    assert_eq!(info.expired, 0);
}

#[test]
fn a_retried_chain_reports_exists_for_every_member_and_moves_nothing_twice() {
    let mut w = World::new();
    let chain = [Command::Transfer(linked(transfer(10, A, B, 5))), Command::Transfer(transfer(11, B, C, 2))];
    assert_eq!(w.run(&chain), vec![ResultCode::Ok, ResultCode::Ok]);
    let (accounts, transfers) = (w.engine.accounts().to_vec(), w.engine.transfers().to_vec());
    assert_eq!(w.run(&chain), vec![ResultCode::Exists, ResultCode::Exists]);
    assert_eq!(w.engine.accounts(), &accounts[..], "a retry moves no money");
    assert_eq!(w.engine.transfers().to_vec(), transfers, "a retry stores nothing");
}

#[test]
fn hold_capture_in_part_releases_the_rest_and_expiry_releases_in_expiry_order() {
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 100)));
    assert_eq!(w.balance(A).debits_pending, 100);
    w.ok(Command::Capture(capture(11, 10, 30)));
    assert_eq!(w.balance(A), Balances { debits_posted: 30, ..Default::default() });
    assert_eq!(w.balance(B), Balances { credits_posted: 30, ..Default::default() });
    assert_eq!(w.engine.hold(10).expect("hold").status, HoldStatus::Posted);

    w.ok(Command::Hold(Transfer { timeout: 20, ..transfer(20, A, C, 1) }));
    w.ok(Command::Hold(Transfer { timeout: 10, ..transfer(21, A, C, 2) }));
    w.ok(Command::Hold(Transfer { timeout: 0, ..transfer(22, A, C, 4) }));
    assert_eq!(w.balance(A).debits_pending, 7);
    w.now += 10 * S;
    let info = w.engine.execute(w.now, &[], &mut Vec::new()).expect("tick");
    assert_eq!(info.expired, 1, "only the 10 s hold has expired");
    assert_eq!(w.engine.hold(21).expect("hold").status, HoldStatus::Expired);
    assert_eq!(w.balance(A).debits_pending, 5);
    w.now += 100 * S;
    let info = w.engine.execute(w.now, &[], &mut Vec::new()).expect("tick");
    assert_eq!(info.expired, 1);
    assert_eq!(w.balance(A).debits_pending, 4, "a hold without timeout never expires");
    assert!(w.engine.hold(20).expect("hold").resolved_at <= w.engine.timestamp());
    // History account C shows each change, oldest first.
    let filter = AccountFilter { account_id: C, limit: 100, flags: filter_flags::DEBITS | filter_flags::CREDITS, ..Default::default() };
    let history: Vec<u128> = w.engine.get_account_balances(&filter).iter().map(|b| b.balances.credits_pending).collect();
    assert_eq!(history, vec![1, 3, 7, 5, 4]);
}

#[test]
fn frozen_accounts_block_what_their_state_blocks_but_holds_can_be_released() {
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 5)));
    w.ok(Command::Freeze(change(A, change_flags::DEBITS)));
    assert_eq!(w.one(Command::Capture(capture(11, 10, 5))), ResultCode::DebitAccountFrozen);
    assert_eq!(w.one(Command::Transfer(transfer(12, B, A, 1))), ResultCode::Ok, "credits still allowed");
    w.ok(Command::Release(capture(13, 10, 0)));
    w.ok(Command::Thaw(change(A, change_flags::DEBITS)));
    w.ok(Command::Transfer(transfer(14, A, B, 1)));
    w.ok(Command::Close(change(A, 0)));
    assert_eq!(w.engine.account(A).expect("A").state, account_state::CLOSED);
    assert_eq!(w.one(Command::Close(change(A, 0))), ResultCode::Ok, "closing is idempotent");
}

#[test]
fn single_sided_commands_use_the_settlement_account_and_are_idempotent() {
    let mut w = World::new();
    let credit = Command::Credit(Transfer { ledger: EUR, ..transfer(10, 0, A, 50) });
    w.ok(credit);
    assert_eq!(w.one(credit), ResultCode::Exists);
    w.ok(Command::Debit(Transfer { ledger: EUR, ..transfer(11, A, 0, 20) }));
    assert_eq!(w.balance(A), Balances { debits_posted: 20, credits_posted: 50, ..Default::default() });
    assert_eq!(w.balance(EUR_SETTLEMENT), Balances { debits_posted: 50, credits_posted: 20, ..Default::default() });
    let totals = w.engine.ledger_totals(EUR).expect("EUR");
    assert!(totals.is_balanced());
    assert_eq!(totals.totals.debits_posted, 70);
    let settlement = totals.by_code.iter().find(|c| c.code == 1).expect("settlement code");
    assert_eq!((settlement.accounts, settlement.totals.debits_posted), (1, 50));
}

#[test]
fn account_transfers_query_filters_by_side_time_and_limit() {
    let mut w = World::new();
    for i in 0..10u128 {
        let t = if i % 2 == 0 { transfer(100 + i, A, B, 1) } else { transfer(100 + i, B, A, 1) };
        w.ok(Command::Transfer(t));
    }
    let all = AccountFilter { account_id: A, limit: 100, flags: filter_flags::DEBITS | filter_flags::CREDITS, ..Default::default() };
    let ids = |ts: Vec<Transfer>| ts.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(w.engine.get_account_transfers(&all)), (100..110).collect::<Vec<_>>());
    let debits = AccountFilter { flags: filter_flags::DEBITS, limit: 2, ..all };
    assert_eq!(ids(w.engine.get_account_transfers(&debits)), vec![100, 102]);
    let newest = AccountFilter { flags: filter_flags::CREDITS | filter_flags::REVERSED, limit: 2, ..all };
    assert_eq!(ids(w.engine.get_account_transfers(&newest)), vec![109, 107]);
    let t3 = w.engine.transfer(103).expect("t").timestamp;
    let t6 = w.engine.transfer(106).expect("t").timestamp;
    let window = AccountFilter { timestamp_min: t3, timestamp_max: t6, ..all };
    assert_eq!(ids(w.engine.get_account_transfers(&window)), vec![103, 104, 105, 106]);
    assert!(w.engine.get_account_transfers(&AccountFilter { flags: 0, ..all }).is_empty());
}

#[test]
fn oversize_batches_are_refused_whole() {
    let mut w = World::new();
    let batch = vec![Command::Transfer(transfer(10, A, B, 1)); BATCH_COMMANDS_MAX + 1];
    let before = w.engine.digest();
    let err = w.engine.execute(w.now + S, &batch, &mut Vec::new()).expect_err("too large");
    assert_eq!(err, BatchError::TooLarge { len: BATCH_COMMANDS_MAX + 1 });
    assert_eq!(w.engine.digest(), before);
}

#[test]
fn a_chain_open_at_a_request_end_fails_there_and_never_reaches_the_next_request() {
    let mut w = World::new();
    w.ok(Command::Credit(Transfer { id: 1, credit_account_id: A, amount: 100, ledger: EUR, code: 1, ..Default::default() }));
    // Request one: a chain left open by its last command. Request two (another client's): a
    // valid transfer, then a chain that fails. Request three: a plain transfer.
    let commands = [
        Command::Transfer(transfer(10, A, B, 5)),
        Command::Transfer(linked(transfer(11, A, B, 5))),
        Command::Transfer(transfer(12, A, B, 5)),
        Command::Transfer(linked(transfer(13, A, 99, 5))),
        Command::Transfer(transfer(14, A, B, 5)),
        Command::Transfer(transfer(15, A, B, 5)),
    ];
    w.now += S;
    let mut results = Vec::new();
    w.engine.execute_requests(w.now, &commands, &[1, 4], &mut results).expect("valid request ends");
    use ResultCode::*;
    assert_eq!(results, vec![Ok, LinkedEventChainOpen, Ok, CreditAccountNotFound, LinkedEventFailed, Ok]);
    assert_eq!(w.balance(B).credits_posted, 15, "transfers 10, 12 and 15 posted; 11 and the failed chain not");
    let mut results = Vec::new();
    assert_eq!(w.engine.execute_requests(w.now, &commands, &[4, 4], &mut results), Err(BatchError::RequestEnds { index: 1 }));
    assert_eq!(w.engine.execute_requests(w.now, &commands, &[6], &mut results), Err(BatchError::RequestEnds { index: 0 }));
    assert!(results.is_empty(), "a refused batch has no results");
}

/// Decided once: a transfer declined for a reason of state keeps that answer. Funding the
/// account afterwards does not let the same id through, whatever kind re-sends it; an id that
/// failed for a reason of its own (here a zero amount would not; a bad flag) is not remembered.
#[test]
fn an_id_declined_for_a_reason_of_state_is_decided_once() {
    use ResultCode as R;
    let mut w = World::new();
    assert_eq!(w.one(Command::Transfer(transfer(10, NO_OVERDRAFT, A, 5))), R::ExceedsCredits);
    assert_eq!(w.one(Command::Transfer(transfer(11, A, 99, 5))), R::CreditAccountNotFound);
    assert_eq!(w.one(Command::Capture(capture(12, 77, 5))), R::PendingTransferNotFound);
    w.ok(Command::Freeze(change(B, change_flags::CREDITS)));
    assert_eq!(w.one(Command::Transfer(transfer(13, A, B, 5))), R::CreditAccountFrozen);
    assert_eq!(w.one(Command::Transfer(transfer(14, A, A, 5))), R::AccountsMustBeDifferent);
    w.ok(Command::Thaw(change(B, change_flags::CREDITS)));
    w.ok(Command::Transfer(transfer(20, A, NO_OVERDRAFT, 100)));
    w.ok(Command::Hold(transfer(77, A, B, 5)));
    let before = (w.balance(A), w.balance(B), w.engine.transfers().len());
    for retry in [
        Command::Transfer(transfer(10, NO_OVERDRAFT, A, 5)),
        Command::Transfer(transfer(11, A, B, 5)),
        Command::Capture(capture(12, 77, 5)),
        Command::Transfer(transfer(13, A, B, 5)),
        Command::Hold(transfer(10, A, B, 1)),
        Command::Debit(Transfer { ledger: EUR, ..transfer(13, A, 0, 1) }),
    ] {
        assert_eq!(w.one(retry), R::IdAlreadyFailed, "{retry:?}");
    }
    assert_eq!((w.balance(A), w.balance(B), w.engine.transfers().len()), before, "nothing moved");
    assert_eq!(w.one(Command::Transfer(transfer(14, A, B, 5))), R::Ok, "a failure of the command itself decides nothing");
    let failed = w.engine.failed_transfer(10).expect("remembered");
    assert_eq!(failed.code, R::ExceedsCredits);
    assert!(failed.timestamp > 0 && failed.timestamp < w.engine.timestamp());
    assert!(w.engine.transfer(10).is_none() && w.engine.hold(10).is_none(), "a failed id is not a transfer");
    // A precedence check that comes first still answers first.
    assert_eq!(w.one(Command::Transfer(Transfer { timestamp: 1, ..transfer(10, A, B, 5) })), R::TimestampMustBeZero);
    w.engine.check_invariants().expect("invariants");
    let restored = Engine::restore(&w.engine.snapshot_bytes()).expect("restores");
    assert_eq!(restored.failed_transfers(), w.engine.failed_transfers(), "a snapshot keeps failed ids");
    assert_eq!(restored.recompute_state_digest(), w.engine.recompute_state_digest());
}

/// In a chain, the member that failed for a reason of state is decided; the members that only
/// answered `linked_event_failed` are not, and succeed when re-sent as a fixed chain.
#[test]
fn in_a_failed_chain_only_the_failing_member_is_decided() {
    use ResultCode as R;
    let mut w = World::new();
    let results = w.run(&[Command::Transfer(linked(transfer(10, A, B, 5))), Command::Transfer(transfer(11, NO_OVERDRAFT, A, 5))]);
    assert_eq!(results, vec![R::LinkedEventFailed, R::ExceedsCredits]);
    let results = w.run(&[Command::Transfer(linked(transfer(10, A, B, 5))), Command::Transfer(transfer(12, B, A, 5))]);
    assert_eq!(results, vec![R::Ok, R::Ok]);
    assert_eq!(w.one(Command::Transfer(transfer(11, NO_OVERDRAFT, A, 5))), R::IdAlreadyFailed);
}

/// An engine that holds `transfers_max` ids (stored and failed) cannot remember a failure: the
/// command answers `transfers_limit_reached` and stays undecided.
#[test]
fn a_full_engine_answers_the_limit_instead_of_deciding() {
    use ResultCode as R;
    let mut w = World::with_limits(Limits { transfers_max: 2, ..Limits::default() });
    assert_eq!(w.one(Command::Transfer(transfer(10, NO_OVERDRAFT, A, 5))), R::ExceedsCredits);
    w.ok(Command::Transfer(transfer(11, A, NO_OVERDRAFT, 5)));
    assert_eq!(w.one(Command::Transfer(transfer(12, NO_OVERDRAFT, A, 50))), R::TransfersLimitReached);
    assert!(w.engine.failed_transfer(12).is_none());
    assert_eq!(w.one(Command::Transfer(transfer(13, A, B, 1))), R::TransfersLimitReached);
    w.engine.check_invariants().expect("invariants");
}

/// A new chain with a member that exists already fails whole: the existing member answers
/// `exists`, the others `linked_event_failed`, and nothing moves (a chain [earlier capture, new
/// fee] does not charge the fee). The same id twice inside one chain fails it too. A chain
/// re-sent whole still answers `exists` for every member.
#[test]
fn a_chain_is_new_as_a_whole_or_a_retry_as_a_whole() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 50)));
    let earlier = [Command::Capture(linked(capture(11, 10, 50))), Command::Transfer(transfer(15, A, C, 1))];
    assert_eq!(w.run(&earlier), vec![R::Ok, R::Ok]);
    let before = (w.balance(A), w.balance(C), w.engine.transfers().len());
    let capture_then_fee = [Command::Capture(linked(capture(11, 10, 50))), Command::Transfer(transfer(12, A, C, 2))];
    assert_eq!(w.run(&capture_then_fee), vec![R::Exists, R::LinkedEventFailed]);
    let fee_then_transfer = [Command::Transfer(linked(transfer(12, A, C, 2))), Command::Transfer(transfer(15, A, C, 1))];
    assert_eq!(w.run(&fee_then_transfer), vec![R::LinkedEventFailed, R::Exists]);
    let twice = [
        Command::Transfer(linked(transfer(13, A, C, 2))),
        Command::Transfer(linked(transfer(13, A, C, 2))),
        Command::Transfer(transfer(14, A, C, 2)),
    ];
    assert_eq!(w.run(&twice), vec![R::LinkedEventFailed, R::Exists, R::LinkedEventFailed]);
    assert_eq!((w.balance(A), w.balance(C), w.engine.transfers().len()), before, "nothing moved");
    assert!(w.engine.failed_transfers().is_empty(), "none of this decides an id");
    let chain = [Command::Transfer(linked(transfer(12, A, C, 2))), Command::Transfer(transfer(13, A, C, 3))];
    assert_eq!(w.run(&chain), vec![R::Ok, R::Ok]);
    assert_eq!(w.run(&chain), vec![R::Exists, R::Exists], "a whole retry stays friendly");
}

/// A chain open at the end of its request runs its members: one that fails on its own keeps its
/// code (and is decided, as anywhere), the others answer `linked_event_failed` and the last
/// `linked_event_chain_open`; nothing moves.
#[test]
fn an_open_chain_reports_a_member_that_fails_on_its_own() {
    use ResultCode as R;
    let mut w = World::new();
    let open = [
        Command::Transfer(linked(transfer(10, A, B, 5))),
        Command::Transfer(linked(transfer(11, NO_OVERDRAFT, A, 5))),
        Command::Transfer(linked(transfer(12, A, B, 5))),
    ];
    assert_eq!(w.run(&open), vec![R::LinkedEventFailed, R::ExceedsCredits, R::LinkedEventChainOpen]);
    let open = [Command::Transfer(linked(transfer(20, A, B, 5))), Command::Transfer(linked(transfer(21, A, B, 5)))];
    assert_eq!(w.run(&open), vec![R::LinkedEventFailed, R::LinkedEventChainOpen]);
    assert!(w.engine.transfers().is_empty(), "nothing moved");
    assert_eq!(w.one(Command::Transfer(transfer(11, NO_OVERDRAFT, A, 5))), R::IdAlreadyFailed);
    assert_eq!(w.one(Command::Transfer(transfer(20, A, B, 5))), R::Ok, "an unrun or rolled-back member is not decided");
}

/// Re-sent captures and releases compare as TigerBeetle's: "the whole hold" matches only a
/// capture of the whole hold, and user data left zero stands for the hold's.
#[test]
fn a_resent_capture_of_the_whole_hold_matches_only_a_whole_capture() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 100)));
    w.ok(Command::Capture(capture(11, 10, 60)));
    assert_eq!(w.one(Command::Capture(capture(11, 10, u128::MAX))), R::ExistsWithDifferentAmount);
    assert_eq!(w.one(Command::Capture(capture(11, 10, 100))), R::ExistsWithDifferentAmount);
    assert_eq!(w.one(Command::Capture(capture(11, 10, 60))), R::Exists);
    w.ok(Command::Hold(transfer(20, A, B, 100)));
    w.ok(Command::Capture(capture(21, 20, u128::MAX)));
    assert_eq!(w.one(Command::Capture(capture(21, 20, 100))), R::Exists);
    assert_eq!(w.one(Command::Capture(capture(21, 20, u128::MAX))), R::Exists);
    w.ok(Command::Hold(transfer(30, A, B, 7)));
    w.ok(Command::Release(Transfer { user_data_128: 99, ..capture(31, 30, 0) }));
    assert_eq!(w.one(Command::Release(capture(31, 30, 0))), R::ExistsWithDifferentUserData128, "zero means the hold's, not any");
    assert_eq!(w.one(Command::Release(Transfer { user_data_128: 99, ..capture(31, 30, 7) })), R::Exists);
}

/// A release names the whole hold (0 or its amount): more is `exceeds_pending_transfer_amount`,
/// less `pending_transfer_has_different_amount`, as in TigerBeetle.
#[test]
fn a_release_over_the_hold_exceeds_it() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 5)));
    assert_eq!(w.one(Command::Release(capture(11, 10, 6))), R::ExceedsPendingTransferAmount);
    assert_eq!(w.one(Command::Release(capture(12, 10, 4))), R::PendingTransferHasDifferentAmount);
    w.ok(Command::Release(capture(13, 10, 5)));
}

/// A log written under the original rules replays under them: there, a chain mixing an existing
/// member with a new one committed the new one, and a failed id could be sent again.
#[test]
fn batches_under_the_original_rules_keep_their_meaning() {
    use ResultCode as R;
    let mut w = World::new();
    let mut results = Vec::new();
    let mut run = |w: &mut World, commands: &[Command]| {
        w.now += S;
        results.clear();
        w.engine.execute_under(Rules::Original, w.now, commands, &[], &mut results).expect("batch");
        results.clone()
    };
    assert_eq!(run(&mut w, &[Command::Transfer(transfer(10, NO_OVERDRAFT, A, 5))]), vec![R::ExceedsCredits]);
    assert!(w.engine.failed_transfers().is_empty());
    run(&mut w, &[Command::Transfer(transfer(11, A, NO_OVERDRAFT, 5))]);
    assert_eq!(run(&mut w, &[Command::Transfer(transfer(10, NO_OVERDRAFT, A, 5))]), vec![R::Ok]);
    let mixed = [Command::Transfer(linked(transfer(12, A, C, 2))), Command::Transfer(transfer(11, A, NO_OVERDRAFT, 5))];
    assert_eq!(run(&mut w, &mixed), vec![R::Ok, R::Exists]);
    assert_eq!(w.balance(C).credits_posted, 2, "the new member was committed under the original rules");
    w.ok(Command::Hold(transfer(20, A, B, 5)));
    assert_eq!(run(&mut w, &[Command::Release(capture(21, 20, 6))]), vec![R::PendingTransferHasDifferentAmount]);
}

fn limits(account: u128, flags: u16, debit_limit: u128, credit_limit: u128) -> Command {
    Command::SetLimits(AccountLimits { account_id: account, flags, debit_limit, credit_limit, ..Default::default() })
}

/// A debit limit is an overdraft line that changes: raised, debits may go that far beyond the
/// credits (holds count); lowered below what is used, the balance stays and only further debits
/// are refused (credits and the capture of an earlier hold still pass); removed, the account's
/// flag rules again. Each change is kept with its time.
#[test]
fn a_debit_limit_can_be_raised_lowered_below_use_and_removed() {
    use ResultCode as R;
    let mut w = World::new();
    assert_eq!(w.engine.balance_limits(NO_OVERDRAFT).expect("account").debit_limit, Some(0), "the flag is a limit of 0");
    assert_eq!(w.engine.balance_limits(A).expect("account").debit_limit, None);
    w.ok(limits(NO_OVERDRAFT, limit_flags::DEBIT_LIMIT, 0, 0));
    w.ok(limits(NO_OVERDRAFT, limit_flags::DEBIT_LIMIT, 100, 0));
    w.ok(Command::Hold(transfer(10, NO_OVERDRAFT, A, 30)));
    w.ok(Command::Transfer(transfer(11, NO_OVERDRAFT, A, 60)));
    assert_eq!(w.one(Command::Transfer(transfer(12, NO_OVERDRAFT, A, 11))), R::ExceedsCredits, "90 used of 100, holds count");
    w.ok(limits(NO_OVERDRAFT, limit_flags::DEBIT_LIMIT, 20, 0));
    assert_eq!(w.one(Command::Transfer(transfer(13, NO_OVERDRAFT, A, 1))), R::ExceedsCredits, "lowered below use");
    w.ok(Command::Capture(capture(14, 10, 30)));
    w.ok(Command::Transfer(transfer(15, A, NO_OVERDRAFT, 75)));
    w.ok(Command::Transfer(transfer(16, NO_OVERDRAFT, A, 5)));
    assert_eq!(w.balance(NO_OVERDRAFT).debits_posted - w.balance(NO_OVERDRAFT).credits_posted, 20);
    w.ok(limits(NO_OVERDRAFT, limit_flags::REMOVE_DEBIT_LIMIT, 0, 0));
    assert_eq!(w.engine.balance_limits(NO_OVERDRAFT).expect("account").debit_limit, Some(0), "the flag rules again");
    assert_eq!(w.one(Command::Transfer(transfer(17, NO_OVERDRAFT, A, 1))), R::ExceedsCredits);
    let history: Vec<Option<u128>> = w.engine.limit_history(NO_OVERDRAFT).iter().map(|l| l.debit_limit).collect();
    assert_eq!(history, vec![Some(0), Some(100), Some(20), Some(0)]);
    let statement = w.engine.statement(NO_OVERDRAFT).expect("adds up");
    let shown: Vec<(&str, Option<u128>)> = statement.iter().map(|l| (l.kind, l.limits.and_then(|x| x.debit_limit))).collect();
    assert_eq!(shown[..3], [("limits", Some(0)), ("limits", Some(100)), ("hold", None)], "each change in its place");
    assert_eq!(statement.iter().filter(|l| l.kind == "limits").count(), 4);
    w.engine.check_invariants().expect("invariants");
    let restored = Engine::restore(&w.engine.snapshot_bytes()).expect("restores");
    assert_eq!(restored.limit_history(NO_OVERDRAFT), w.engine.limit_history(NO_OVERDRAFT));
    assert_eq!(restored.recompute_state_digest(), w.engine.recompute_state_digest());
}

/// A credit limit on an account with no flag, and one on an account whose flag forbids credits
/// beyond its debits.
#[test]
fn a_credit_limit_bounds_credits_beyond_debits() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(limits(B, limit_flags::CREDIT_LIMIT, 0, 10));
    w.ok(Command::Transfer(transfer(10, A, B, 10)));
    assert_eq!(w.one(Command::Transfer(transfer(11, A, B, 1))), R::ExceedsDebits);
    w.ok(limits(NO_OVERCREDIT, limit_flags::CREDIT_LIMIT | limit_flags::DEBIT_LIMIT, 7, 5));
    w.ok(Command::Transfer(transfer(12, A, NO_OVERCREDIT, 5)));
    assert_eq!(w.one(Command::Transfer(transfer(13, A, NO_OVERCREDIT, 1))), R::ExceedsDebits);
    let in_force = w.engine.balance_limits(NO_OVERCREDIT).expect("account");
    assert_eq!((in_force.debit_limit, in_force.credit_limit), (Some(7), Some(5)));
    assert!(in_force.changed_at > 0);
}

/// Malformed or misdirected limit changes answer in precedence order and change nothing; one in
/// a failed chain is rolled back.
#[test]
fn bad_limit_changes_are_typed_and_change_nothing() {
    use ResultCode as R;
    let mut w = World::new();
    let lf = limit_flags::DEBIT_LIMIT;
    let cases = [
        (
            Command::SetLimits(AccountLimits { timestamp: 1, ..AccountLimits { account_id: A, flags: lf, ..Default::default() } }),
            R::TimestampMustBeZero,
        ),
        (limits(A, limit_flags::CREDIT_LIMIT, 5, 0), R::ReservedField),
        (limits(A, 1 << 9, 0, 0), R::ReservedFlag),
        (limits(A, lf | limit_flags::REMOVE_DEBIT_LIMIT, 5, 0), R::FlagsAreMutuallyExclusive),
        (limits(0, lf, 5, 0), R::AccountIdMustNotBeZero),
        (limits(A, limit_flags::LINKED, 0, 0), R::LinkedEventChainOpen),
        (limits(A, 0, 0, 0), R::ChangeMustNameASide),
        (limits(99, lf, 5, 0), R::AccountNotFound),
    ];
    for (command, expected) in cases {
        assert_eq!(w.one(command), expected, "{command:?}");
    }
    w.ok(Command::Transfer(transfer(10, B, C, 3)));
    w.ok(Command::Transfer(transfer(11, C, B, 3)));
    w.ok(Command::Close(change(B, 0)));
    assert_eq!(w.one(limits(B, lf, 5, 0)), R::AccountClosed);
    let chain = [
        Command::SetLimits(AccountLimits { account_id: A, flags: lf | limit_flags::LINKED, debit_limit: 5, ..Default::default() }),
        Command::Transfer(transfer(12, A, 99, 1)),
    ];
    assert_eq!(w.run(&chain), vec![R::LinkedEventFailed, R::CreditAccountNotFound]);
    assert!(w.engine.limit_history(A).is_empty(), "nothing was kept");
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn partial_refunds_add_up_to_the_original_at_most() {
    let mut w = World::new();
    w.ok(Command::Transfer(transfer(10, A, B, 100)));
    w.ok(Command::Reverse(reversal(11, 10, 30)));
    w.ok(Command::Reverse(reversal(12, 10, 50)));
    assert_eq!(w.one(Command::Reverse(reversal(13, 10, 21))), ResultCode::ExceedsReversibleAmount);
    w.ok(Command::Reverse(reversal(14, 10, u128::MAX)));
    assert_eq!(w.engine.transfer(14).expect("stored").amount, 20, "u128::MAX reverses what is left");
    assert_eq!(w.one(Command::Reverse(reversal(15, 10, u128::MAX))), ResultCode::ExceedsReversibleAmount, "nothing is left");
    assert_eq!(w.one(Command::Reverse(reversal(16, 10, 0))), ResultCode::ExceedsReversibleAmount);
    assert_eq!((w.balance(A).debits_posted, w.balance(A).credits_posted), (100, 100));
    assert_eq!((w.balance(B).debits_posted, w.balance(B).credits_posted), (100, 100));
    let stored = w.engine.transfer(11).expect("stored");
    assert_eq!((stored.debit_account_id, stored.credit_account_id, stored.pending_id, stored.ledger), (B, A, 10, EUR));
    assert_eq!(stored.flags, transfer_flags::REVERSE);
    let lineage = w.engine.lineage(10).expect("stored");
    assert_eq!(lineage.reversals.iter().map(|t| t.id).collect::<Vec<_>>(), vec![11, 12, 14]);
    assert_eq!((lineage.reversed, lineage.reversible, lineage.reversals_total), (100, 0, 3));
    assert_eq!(w.engine.lineage(12).expect("stored").reverses.map(|t| t.id), Some(10));
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn a_reversal_is_retried_like_a_capture_and_never_moves_twice() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Transfer(transfer(10, A, B, 100)));
    w.ok(Command::Reverse(reversal(11, 10, u128::MAX)));
    assert_eq!(w.one(Command::Reverse(reversal(11, 10, u128::MAX))), R::Exists, "the rest at the time matches");
    assert_eq!(w.one(Command::Reverse(reversal(11, 10, 100))), R::Exists);
    assert_eq!(
        w.one(Command::Reverse(Transfer { debit_account_id: B, credit_account_id: A, ledger: EUR, ..reversal(11, 10, 100) })),
        R::Exists
    );
    assert_eq!(w.one(Command::Reverse(reversal(11, 10, 99))), R::ExistsWithDifferentAmount);
    assert_eq!(w.one(Command::Reverse(Transfer { code: 2, ..reversal(11, 10, 100) })), R::ExistsWithDifferentCode);
    assert_eq!(w.one(Command::Reverse(Transfer { user_data_64: 1, ..reversal(11, 10, 100) })), R::ExistsWithDifferentUserData64);
    assert_eq!(w.one(Command::Transfer(Transfer { pending_id: 10, ..transfer(11, B, A, 100) })), R::ExistsWithDifferentFlags);
    assert_eq!(w.one(Command::Transfer(Transfer { flags: transfer_flags::REVERSE, ..transfer(12, B, A, 1) })), R::ReservedFlag);
    assert_eq!(w.one(Command::Reverse(Transfer { flags: transfer_flags::PENDING, ..reversal(12, 10, 1) })), R::FlagsAreMutuallyExclusive);
    assert_eq!(w.balance(A).credits_posted, 100, "moved back once");
}

#[test]
fn captures_are_reversible_and_holds_releases_and_reversals_are_not() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Hold(transfer(10, A, B, 100)));
    assert_eq!(w.one(Command::Reverse(reversal(20, 10, 1))), R::ReversedTransferIsAHold, "pending");
    w.ok(Command::Capture(capture(11, 10, 60)));
    assert_eq!(w.one(Command::Reverse(reversal(21, 10, 1))), R::ReversedTransferIsAHold, "posted");
    assert_eq!(w.one(Command::Reverse(reversal(22, 11, 61))), R::ExceedsReversibleAmount, "at most what was captured");
    w.ok(Command::Reverse(reversal(23, 11, 60)));
    assert_eq!(w.one(Command::Reverse(reversal(24, 23, 1))), R::ReversedTransferNotReversible);
    assert_eq!(w.one(Command::Reverse(reversal(24, 24, 1))), R::PendingIdMustBeDifferent);
    assert_eq!(w.one(Command::Reverse(Transfer { code: 0, ..reversal(25, 11, 1) })), R::CodeMustNotBeZero);
    assert_eq!(w.one(Command::Reverse(Transfer { timeout: 1, ..reversal(25, 11, 1) })), R::TimeoutReservedForPendingTransfer);
    let hold = w.engine.lineage(10).expect("stored");
    assert_eq!(hold.hold.map(|h| (h.transfer.id, h.status)), Some((10, HoldStatus::Posted)));
    assert_eq!(hold.resolution.map(|t| t.id), Some(11));
    let capture = w.engine.lineage(11).expect("stored");
    assert_eq!(capture.hold.map(|h| h.transfer.id), Some(10));
    assert_eq!((capture.reversals.len(), capture.reversible), (1, 0));
    let restored = Engine::restore(&w.engine.snapshot_bytes()).expect("restores");
    for id in [10, 11, 23] {
        assert_eq!(restored.lineage(id), w.engine.lineage(id), "lineage of {id} after a snapshot");
    }
}

#[test]
fn a_reversal_of_an_unknown_transfer_decides_its_id() {
    let mut w = World::new();
    assert_eq!(w.one(Command::Reverse(reversal(11, 10, 5))), ResultCode::ReversedTransferNotFound);
    w.ok(Command::Transfer(transfer(10, A, B, 5)));
    assert_eq!(w.one(Command::Reverse(reversal(11, 10, 5))), ResultCode::IdAlreadyFailed);
}

#[test]
fn a_correction_is_a_reversal_and_the_corrected_transfer_or_neither() {
    let mut w = World::new();
    w.ok(Command::Transfer(transfer(10, A, B, 100)));
    // The correct amount was 80: give 100 back, post 80; a corrected leg that fails takes the reversal with it.
    let failing = [Command::Reverse(linked(reversal(11, 10, u128::MAX))), Command::Transfer(transfer(12, A, 99, 80))];
    assert_eq!(w.run(&failing), vec![ResultCode::LinkedEventFailed, ResultCode::CreditAccountNotFound]);
    assert_eq!(w.engine.lineage(10).expect("stored").reversible, 100, "the reversal was rolled back");
    assert!(w.engine.transfer(11).is_none());
    let correction = [Command::Reverse(linked(reversal(13, 10, u128::MAX))), Command::Transfer(transfer(14, A, B, 80))];
    assert_eq!(w.run(&correction), vec![ResultCode::Ok, ResultCode::Ok]);
    assert_eq!(w.balance(B).credits_posted - w.balance(B).debits_posted, 80);
    let lines = w.engine.statement(B).expect("adds up");
    let reversal_line = lines.iter().find(|l| l.kind == "reversal").expect("a reversal line");
    assert_eq!((reversal_line.transfer_id, reversal_line.reverses, reversal_line.posted_change), (13, 10, -100));
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn a_reversal_meets_every_account_check_of_a_new_transfer() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(Command::Credit(Transfer { credit_account_id: NO_OVERDRAFT, ..transfer(9, 0, 0, 50) }));
    w.ok(Command::Transfer(transfer(10, A, NO_OVERDRAFT, 100)));
    w.ok(Command::Transfer(transfer(11, NO_OVERDRAFT, B, 150)));
    assert_eq!(w.one(Command::Reverse(reversal(12, 10, 1))), R::ExceedsCredits, "the merchant has nothing left");
    w.ok(Command::Freeze(change(B, change_flags::DEBITS)));
    assert_eq!(w.one(Command::Reverse(reversal(13, 11, 1))), R::DebitAccountFrozen);
    w.ok(Command::Thaw(change(B, change_flags::DEBITS)));
    w.ok(Command::Reverse(reversal(14, 11, 1)));
}

/// The usage of rule `slot` of `account` now: (count, amount).
fn used(w: &World, account: u128, slot: u8) -> (u64, u128) {
    let policy = w.engine.account_policy(account).expect("account");
    let rule = policy.rules.iter().find(|u| u.rule.slot == slot).expect("rule");
    (rule.count, rule.amount)
}

#[test]
fn a_calendar_window_starts_afresh_at_its_boundary() {
    use ResultCode as R;
    let mut w = World::new();
    let minute = 60 * S;
    w.now = 1_000 * minute - 5 * S; // each batch runs a second later: the last at 999:59
    w.ok(velocity(A, 0, VF_DEBIT_COUNT, velocity_window::MINUTE, 2, 0));
    w.ok(Command::Transfer(transfer(10, A, B, 5)));
    w.ok(Command::Transfer(transfer(11, A, B, 5)));
    assert_eq!(w.one(Command::Transfer(transfer(12, A, B, 5))), R::ExceedsDebitVelocityCount, "the minute is used up");
    w.ok(Command::Transfer(transfer(13, A, B, 5)));
    assert_eq!(w.now, 1_000 * minute, "at the next minute's first nanosecond");
    assert_eq!(used(&w, A, 0), (1, 5), "the new minute holds only the last");
    let policy = w.engine.account_policy(A).expect("account");
    assert_eq!((policy.rules[0].window_start, policy.rules[0].window_end), (1_000 * minute, 1_001 * minute));
}

#[test]
fn a_rolling_window_lets_a_movement_go_after_n_to_n_plus_a_sixteenth_seconds() {
    use ResultCode as R;
    let mut w = World::new();
    w.now = 100 * S;
    // 16 s in 16 sub-buckets of 1 s: the movement at 102 s counts through 117.999 s.
    w.ok(velocity(A, 0, VF_DEBIT_AMOUNT, velocity_window::ROLLING, 0, 10));
    w.ok(Command::Transfer(transfer(10, A, B, 10)));
    w.now = 115 * S;
    assert_eq!(w.one(Command::Transfer(transfer(11, A, B, 1))), R::ExceedsDebitVelocityAmount, "at 116 s");
    w.now = 117 * S;
    w.ok(Command::Transfer(transfer(13, A, B, 1)));
    assert_eq!(used(&w, A, 0), (1, 1), "at 118 s the first movement has left the window");
}

#[test]
fn holds_count_when_made_and_a_release_expiry_or_partial_capture_gives_back() {
    let mut w = World::new();
    w.now = 500 * S;
    w.ok(velocity(A, 0, VF_DEBIT_AMOUNT | velocity_flags::COUNT, velocity_window::DAY, 10, 1_000));
    w.ok(Command::Hold(transfer(10, A, B, 100)));
    w.ok(Command::Hold(Transfer { timeout: 10, ..transfer(11, A, B, 200) }));
    w.ok(Command::Hold(transfer(12, A, B, 300)));
    assert_eq!(used(&w, A, 0), (3, 600), "holds count when made");
    w.ok(Command::Release(capture(13, 10, 0)));
    assert_eq!(used(&w, A, 0), (2, 500), "a release gives the amount and the movement back");
    w.ok(Command::Capture(capture(14, 12, 120)));
    assert_eq!(used(&w, A, 0), (2, 320), "a capture of part gives the rest back and never counts again");
    w.now += 10 * S;
    w.ok(Command::Transfer(transfer(15, C, B, 1)));
    assert_eq!(w.engine.hold(11).map(|h| h.status), Some(HoldStatus::Expired));
    assert_eq!(used(&w, A, 0), (1, 120), "an expiry gives back");
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn a_rule_changed_in_its_maxima_keeps_its_usage_and_any_other_change_starts_afresh() {
    use ResultCode as R;
    let mut w = World::new();
    w.ok(velocity(A, 3, VF_DEBIT_COUNT, velocity_window::DAY, 2, 0));
    w.ok(Command::Transfer(transfer(10, A, B, 5)));
    w.ok(velocity(A, 3, VF_DEBIT_COUNT, velocity_window::DAY, 1, 0));
    assert_eq!(w.one(Command::Transfer(transfer(11, A, B, 5))), R::ExceedsDebitVelocityCount, "lowered below what is used");
    w.ok(velocity(A, 3, VF_DEBIT_COUNT, velocity_window::HOUR, 1, 0));
    assert_eq!(used(&w, A, 3), (0, 0), "another window counts from now");
    w.ok(Command::Transfer(transfer(12, A, B, 5)));
    w.ok(Command::SetVelocity(VelocityRule { account_id: A, slot: 3, flags: velocity_flags::REMOVE, ..Default::default() }));
    w.ok(Command::Transfer(transfer(13, A, B, 5)));
    assert!(w.engine.account_policy(A).expect("account").rules.is_empty());
}

#[test]
fn a_failed_chain_takes_its_counted_movements_and_policy_changes_back() {
    let mut w = World::new();
    w.ok(velocity(A, 0, VF_DEBIT_COUNT, velocity_window::DAY, 5, 0));
    let before = w.engine.account_policy(A);
    let chain = [
        Command::Transfer(linked(transfer(10, A, B, 5))),
        Command::SetChannels(ChannelPolicy { flags: channel_flags::LINKED, ..ChannelPolicy { account_id: C, ..Default::default() } }),
        Command::Transfer(transfer(11, A, 99, 5)),
    ];
    assert_eq!(w.run(&chain)[2], ResultCode::CreditAccountNotFound);
    assert_eq!(w.engine.account_policy(A), before, "the chain's count was taken back");
    assert!(w.engine.account_policy(C).expect("account").channels.timestamp == 0, "the chain's policy was taken back");
    assert_eq!(w.engine.state_digest(), w.engine.recompute_state_digest());
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn a_chargeback_code_may_take_a_merchant_past_its_debit_limit_and_only_that_code() {
    use ResultCode as R;
    let mut w = World::new();
    // The merchant (no overdraft) sold for 100 and paid 90 out; the customer's card scheme
    // charges 100 back. A refund (code 1) cannot go past the merchant's balance; a chargeback (2) can.
    w.ok(Command::Transfer(transfer(10, A, NO_OVERDRAFT, 100)));
    w.ok(Command::Transfer(transfer(11, NO_OVERDRAFT, B, 90)));
    w.ok(channels(NO_OVERDRAFT, 0, &[], &[], &[2]));
    assert_eq!(w.one(Command::Reverse(reversal(12, 10, 100))), R::ExceedsCredits);
    w.ok(Command::Reverse(Transfer { code: 2, ..reversal(13, 10, 100) }));
    assert_eq!(w.balance(NO_OVERDRAFT).debits_posted - w.balance(NO_OVERDRAFT).credits_posted, 90, "the merchant owes 90");
    assert_eq!(w.one(Command::Transfer(transfer(14, NO_OVERDRAFT, B, 1))), R::ExceedsCredits, "other debits still stop");
    w.engine.check_invariants().expect("invariants");
}

#[test]
fn channel_lists_allow_or_deny_per_side_and_a_policy_survives_a_snapshot() {
    use ResultCode as R;
    let mut w = World::new();
    // A child's card account: only card purchases (code 4) debit it; an ATM (code 5) may not credit it.
    w.ok(channels(A, channel_flags::DEBITS_ALLOW, &[4], &[5], &[]));
    w.ok(velocity(A, 1, VF_DEBIT_AMOUNT, velocity_window::MONTH, 0, 50));
    assert_eq!(w.one(Command::Transfer(transfer(10, A, B, 5))), R::DebitCodeNotAllowed);
    w.ok(Command::Transfer(Transfer { code: 4, ..transfer(11, A, B, 20) }));
    assert_eq!(w.one(Command::Transfer(Transfer { code: 5, ..transfer(12, B, A, 5) })), R::CreditCodeNotAllowed);
    w.ok(Command::Transfer(transfer(13, B, A, 5)));
    assert_eq!(w.one(Command::SetChannels(ChannelPolicy { account_id: 99, ..Default::default() })), R::AccountNotFound);
    let restored = Engine::restore(&w.engine.snapshot_bytes()).expect("restores");
    assert_eq!(restored.account_policy(A), w.engine.account_policy(A));
    assert_eq!(restored.digest(), w.engine.digest());
    let mut restored = restored;
    assert_eq!(restored.state_digest(), w.engine.state_digest());
}
