//! A deliberately simple reference model of the engine's semantics, for the simulation to check against.
//!
//! Ordered maps instead of indexes, a full clone instead of an undo log for linked chains,
//! sums recomputed from scratch instead of running totals: slow and obviously right. It is
//! written from `docs/result-codes.md`, not from `engine/src/state/`.

use std::collections::BTreeMap;

use bursar_engine::{
    account_flags as af, account_state as st, change_flags as cf, ledger_flags, limit_flags as lf, transfer_flags as tf, Account,
    AccountChange, AccountLimits, Command, HoldStatus, Ledger, ResultCode as R, Transfer,
};

const NS_PER_S: u64 = 1_000_000_000;
const SCALE_MAX: u8 = 18;

/// The model's state.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Ledgers by id.
    pub ledgers: BTreeMap<u32, Ledger>,
    /// Accounts by id.
    pub accounts: BTreeMap<u128, Account>,
    /// Transfers by id.
    pub transfers: BTreeMap<u128, Transfer>,
    /// Holds by transfer id: status and expiry (0 = never).
    pub holds: BTreeMap<u128, (HoldStatus, u64)>,
    /// Transfer ids decided by a failure: the code and the command's timestamp.
    pub failed: BTreeMap<u128, (R, u64)>,
    /// Limits set by `set_limits`, by account: (debit limit, credit limit), `None` where the
    /// account's flag rules.
    pub balance_limits: BTreeMap<u128, (Option<u128>, Option<u128>)>,
    /// Last timestamp assigned.
    pub timestamp: u64,
    /// Capacity limits, mirrored from the engine under test.
    pub limits: bursar_engine::Limits,
}

impl Model {
    /// An empty model with the engine's limits.
    pub fn new(limits: bursar_engine::Limits) -> Model {
        Model { limits, ..Default::default() }
    }

    /// Applies a batch exactly as the engine documents it.
    pub fn execute(&mut self, now: u64, commands: &[Command]) -> Vec<R> {
        self.execute_requests(now, commands, &[])
    }

    /// Applies a batch joined from requests: a chain never runs past a request's end (the index
    /// of its last command); one open there fails as at the end of a batch.
    pub fn execute_requests(&mut self, now: u64, commands: &[Command], request_ends: &[u32]) -> Vec<R> {
        let clock = now.max(self.timestamp + 1);
        let mut ts = clock;
        let mut due: Vec<(u64, u64, u128)> = self
            .holds
            .iter()
            .filter(|(_, (status, expires))| *status == HoldStatus::Pending && *expires != 0 && *expires <= clock)
            .map(|(id, (_, expires))| (*expires, self.transfers[id].timestamp, *id))
            .collect();
        due.sort();
        for (_, _, id) in due {
            let hold = self.transfers[&id];
            self.holds.insert(id, (HoldStatus::Expired, 0));
            self.accounts.get_mut(&hold.debit_account_id).expect("debit account").debits_pending -= hold.amount;
            self.accounts.get_mut(&hold.credit_account_id).expect("credit account").credits_pending -= hold.amount;
            ts += 1;
        }
        let mut results = vec![R::Ok; commands.len()];
        let mut i = 0;
        while i < commands.len() {
            let request_end = request_ends.iter().map(|e| *e as usize + 1).find(|e| *e > i).unwrap_or(commands.len());
            let mut end = i;
            while end < request_end && commands[end].is_linked() {
                end += 1;
            }
            let open = end == request_end;
            let last = if open { end - 1 } else { end };
            self.chain(&commands[i..=last], open, ts + i as u64, &mut results[i..=last]);
            i = last + 1;
        }
        self.timestamp = (ts + commands.len() as u64 - 1).max(clock);
        results
    }

    /// One chain (or single command), as `docs/result-codes.md` says: every member new, or every
    /// member existing; otherwise nothing takes effect, members that exist answer `exists`, the
    /// member that failed its own code (its id decided if the code decides), the rest
    /// `linked_event_failed`, and the last member of an open chain `linked_event_chain_open`.
    fn chain(&mut self, members: &[Command], open: bool, ts: u64, results: &mut [R]) {
        let saved = self.clone();
        let run = if open { members.len() - 1 } else { members.len() };
        let mut broke = open.then_some(members.len() - 1);
        for k in 0..run {
            let code = self.apply(&members[k], ts + k as u64);
            results[k] = code;
            let mixed = (code == R::Ok && results[..k].contains(&R::Exists)) || (code == R::Exists && results[..k].contains(&R::Ok));
            if mixed || !code.is_success() {
                broke = Some(k);
                break;
            }
        }
        let Some(at) = broke else { return };
        *self = saved;
        for (k, result) in results.iter_mut().enumerate() {
            let keeps = k < at && *result == R::Exists || k == at && *result != R::Ok;
            if !keeps || (open && k == members.len() - 1) {
                *result = R::LinkedEventFailed;
            }
        }
        if open {
            *results.last_mut().expect("a member") = R::LinkedEventChainOpen;
        }
        results[at] = self.decide(&members[at], results[at], ts + at as u64);
    }

    /// Remembers a transfer id that failed with a code that decides it, if there is room.
    fn decide(&mut self, command: &Command, code: R, ts: u64) -> R {
        let Some(t) = command.as_transfer() else { return code };
        if !code.is_decided_once() {
            return code;
        }
        if self.ids() >= self.limits.transfers_max as usize {
            return R::TransfersLimitReached;
        }
        self.failed.insert(t.id, (code, ts));
        code
    }

    fn ids(&self) -> usize {
        self.transfers.len() + self.failed.len()
    }

    fn apply(&mut self, command: &Command, ts: u64) -> R {
        match *command {
            Command::CreateLedger(l) => self.create_ledger(l, ts),
            Command::CreateAccount(a) => self.create_account(a, ts),
            Command::Transfer(t) => self.transfer(t, 0, ts),
            Command::Debit(t) => self.transfer(t, 1, ts),
            Command::Credit(t) => self.transfer(t, 2, ts),
            Command::Hold(t) => self.transfer(Transfer { flags: t.flags | tf::PENDING, ..t }, 0, ts),
            Command::Capture(t) => self.transfer(Transfer { flags: t.flags | tf::POST_PENDING, ..t }, 0, ts),
            Command::Release(t) => self.transfer(Transfer { flags: t.flags | tf::VOID_PENDING, ..t }, 0, ts),
            Command::Freeze(c) => self.change(c, 0),
            Command::Thaw(c) => self.change(c, 1),
            Command::Close(c) => self.change(c, 2),
            Command::SetLimits(c) => self.set_limits(c),
        }
    }

    fn set_limits(&mut self, c: AccountLimits) -> R {
        let sets = |set: u16, remove: u16| c.flags & set != 0 && c.flags & remove != 0;
        let checks = [
            (c.timestamp != 0, R::TimestampMustBeZero),
            (
                c.reserved.iter().any(|b| *b != 0)
                    || (c.flags & lf::DEBIT_LIMIT == 0 && c.debit_limit != 0)
                    || (c.flags & lf::CREDIT_LIMIT == 0 && c.credit_limit != 0),
                R::ReservedField,
            ),
            (c.flags & !lf::ALL != 0, R::ReservedFlag),
            (
                sets(lf::DEBIT_LIMIT, lf::REMOVE_DEBIT_LIMIT) || sets(lf::CREDIT_LIMIT, lf::REMOVE_CREDIT_LIMIT),
                R::FlagsAreMutuallyExclusive,
            ),
            (c.account_id == 0, R::AccountIdMustNotBeZero),
            (c.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
            (c.flags & !lf::LINKED == 0, R::ChangeMustNameASide),
            (!self.accounts.contains_key(&c.account_id), R::AccountNotFound),
            (self.accounts.get(&c.account_id).is_some_and(|a| a.state & st::CLOSED != 0), R::AccountClosed),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let (mut debit, mut credit) = self.balance_limits.get(&c.account_id).copied().unwrap_or_default();
        if c.flags & lf::DEBIT_LIMIT != 0 {
            debit = Some(c.debit_limit);
        } else if c.flags & lf::REMOVE_DEBIT_LIMIT != 0 {
            debit = None;
        }
        if c.flags & lf::CREDIT_LIMIT != 0 {
            credit = Some(c.credit_limit);
        } else if c.flags & lf::REMOVE_CREDIT_LIMIT != 0 {
            credit = None;
        }
        self.balance_limits.insert(c.account_id, (debit, credit));
        R::Ok
    }

    /// The limits in force: a command's, else the flag's (0), else none.
    pub fn limits_of(&self, a: &Account) -> (Option<u128>, Option<u128>) {
        let (debit, credit) = self.balance_limits.get(&a.id).copied().unwrap_or_default();
        let flag = |f: u16| (a.flags & f != 0).then_some(0);
        (debit.or(flag(af::DEBITS_MUST_NOT_EXCEED_CREDITS)), credit.or(flag(af::CREDITS_MUST_NOT_EXCEED_DEBITS)))
    }

    fn create_ledger(&mut self, l: Ledger, ts: u64) -> R {
        if l.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if l.reserved.iter().any(|b| *b != 0) {
            return R::ReservedField;
        }
        if l.flags & !ledger_flags::ALL != 0 {
            return R::ReservedFlag;
        }
        if l.id == 0 {
            return R::IdMustNotBeZero;
        }
        if l.id == u32::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(e) = self.ledgers.get(&l.id) {
            return first_difference(&[
                (l.flags != e.flags, R::ExistsWithDifferentFlags),
                (l.user_data_128 != e.user_data_128, R::ExistsWithDifferentUserData128),
                (l.user_data_64 != e.user_data_64, R::ExistsWithDifferentUserData64),
                (l.user_data_32 != e.user_data_32, R::ExistsWithDifferentUserData32),
                (l.currency != e.currency, R::ExistsWithDifferentCurrency),
                (l.scale != e.scale, R::ExistsWithDifferentScale),
                (
                    (l.settlement_account_id, l.settlement_account_code) != (e.settlement_account_id, e.settlement_account_code),
                    R::ExistsWithDifferentSettlementAccount,
                ),
            ]);
        }
        let checks = [
            (!l.currency.iter().all(|c| c.is_ascii_uppercase()), R::CurrencyInvalid),
            (l.scale > SCALE_MAX, R::ScaleTooLarge),
            (l.settlement_account_id == 0, R::AccountIdMustNotBeZero),
            (l.settlement_account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
            (l.settlement_account_code == 0, R::CodeMustNotBeZero),
            (self.accounts.contains_key(&l.settlement_account_id), R::SettlementAccountExists),
            (self.ledgers.len() >= self.limits.ledgers_max as usize, R::LedgersLimitReached),
            (self.accounts.len() >= self.limits.accounts_max as usize, R::AccountsLimitReached),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        self.ledgers.insert(l.id, Ledger { timestamp: ts, ..l });
        let settlement =
            Account { id: l.settlement_account_id, ledger: l.id, code: l.settlement_account_code, timestamp: ts, ..Default::default() };
        self.accounts.insert(settlement.id, settlement);
        R::Ok
    }

    fn create_account(&mut self, a: Account, ts: u64) -> R {
        let head = [
            (a.timestamp != 0, R::TimestampMustBeZero),
            (a.state != 0 || a.reserved != [0; 3], R::ReservedField),
            (a.flags & !af::ALL != 0, R::ReservedFlag),
            (a.id == 0, R::IdMustNotBeZero),
            (a.id == u128::MAX, R::IdMustNotBeIntMax),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        if let Some(e) = self.accounts.get(&a.id) {
            return first_difference(&[
                (a.flags != e.flags, R::ExistsWithDifferentFlags),
                (a.user_data_128 != e.user_data_128, R::ExistsWithDifferentUserData128),
                (a.user_data_64 != e.user_data_64, R::ExistsWithDifferentUserData64),
                (a.user_data_32 != e.user_data_32, R::ExistsWithDifferentUserData32),
                (a.ledger != e.ledger, R::ExistsWithDifferentLedger),
                (a.code != e.code, R::ExistsWithDifferentCode),
            ]);
        }
        let both = af::DEBITS_MUST_NOT_EXCEED_CREDITS | af::CREDITS_MUST_NOT_EXCEED_DEBITS;
        let checks = [
            (a.flags & both == both, R::FlagsAreMutuallyExclusive),
            (a.debits_pending != 0, R::DebitsPendingMustBeZero),
            (a.debits_posted != 0, R::DebitsPostedMustBeZero),
            (a.credits_pending != 0, R::CreditsPendingMustBeZero),
            (a.credits_posted != 0, R::CreditsPostedMustBeZero),
            (a.ledger == 0, R::LedgerMustNotBeZero),
            (a.code == 0, R::CodeMustNotBeZero),
            (!self.ledgers.contains_key(&a.ledger), R::LedgerNotFound),
            (self.accounts.len() >= self.limits.accounts_max as usize, R::AccountsLimitReached),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        self.accounts.insert(a.id, Account { timestamp: ts, ..a });
        R::Ok
    }

    fn change(&mut self, c: AccountChange, op: u8) -> R {
        let allowed = if op == 2 { cf::LINKED } else { cf::ALL };
        let sides = (if c.flags & cf::DEBITS != 0 { st::FROZEN_DEBITS } else { 0 })
            | (if c.flags & cf::CREDITS != 0 { st::FROZEN_CREDITS } else { 0 });
        let checks = [
            (c.timestamp != 0, R::TimestampMustBeZero),
            (c.reserved.iter().any(|b| *b != 0), R::ReservedField),
            (c.flags & !allowed != 0, R::ReservedFlag),
            (c.account_id == 0, R::AccountIdMustNotBeZero),
            (c.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
            (op != 2 && sides == 0, R::ChangeMustNameASide),
            (!self.accounts.contains_key(&c.account_id), R::AccountNotFound),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let a = self.accounts.get_mut(&c.account_id).expect("checked");
        if a.state & st::CLOSED != 0 {
            return if op == 2 { R::Ok } else { R::AccountClosed };
        }
        match op {
            0 => a.state |= sides,
            1 => a.state &= !sides,
            _ => {
                if a.debits_pending != 0 || a.credits_pending != 0 {
                    return R::AccountHasPendingBalance;
                }
                if a.debits_posted != a.credits_posted {
                    return R::AccountHasBalance;
                }
                a.state = st::CLOSED;
            }
        }
        R::Ok
    }

    /// `single`: 0 two-sided, 1 debit (counterparty = credit side), 2 credit.
    fn transfer(&mut self, mut t: Transfer, single: u8, ts: u64) -> R {
        let head = [
            (t.timestamp != 0, R::TimestampMustBeZero),
            (t.flags & !tf::ALL != 0, R::ReservedFlag),
            (t.id == 0, R::IdMustNotBeZero),
            (t.id == u128::MAX, R::IdMustNotBeIntMax),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        let resolves = t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0;
        if let Some(e) = self.transfers.get(&t.id) {
            return if resolves { resolution_exists(&t, e, &self.transfers[&e.pending_id]) } else { exists(&t, e, single) };
        }
        if self.failed.contains_key(&t.id) {
            return R::IdAlreadyFailed;
        }
        let counterparty = [0, t.credit_account_id, t.debit_account_id][single as usize];
        let checks = [
            ((t.flags & (tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING)).count_ones() > 1, R::FlagsAreMutuallyExclusive),
            (counterparty != 0, R::CounterpartyMustBeZero),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        if resolves {
            return self.resolve(t, ts);
        }
        let checks = [
            (single != 2 && t.debit_account_id == 0, R::DebitAccountIdMustNotBeZero),
            (single != 2 && t.debit_account_id == u128::MAX, R::DebitAccountIdMustNotBeIntMax),
            (single != 1 && t.credit_account_id == 0, R::CreditAccountIdMustNotBeZero),
            (single != 1 && t.credit_account_id == u128::MAX, R::CreditAccountIdMustNotBeIntMax),
            (single == 0 && t.debit_account_id == t.credit_account_id, R::AccountsMustBeDifferent),
            (t.pending_id != 0, R::PendingIdMustBeZero),
            (t.flags & tf::PENDING == 0 && t.timeout != 0, R::TimeoutReservedForPendingTransfer),
            (t.ledger == 0, R::LedgerMustNotBeZero),
            (t.code == 0, R::CodeMustNotBeZero),
            (single != 0 && !self.ledgers.contains_key(&t.ledger), R::LedgerNotFound),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        if single != 0 {
            let settlement = self.ledgers[&t.ledger].settlement_account_id;
            if single == 1 {
                t.credit_account_id = settlement;
            } else {
                t.debit_account_id = settlement;
            }
            if t.debit_account_id == t.credit_account_id {
                return R::AccountIsSettlementAccount;
            }
        }
        let (Some(d), Some(c)) = (self.accounts.get(&t.debit_account_id).copied(), self.accounts.get(&t.credit_account_id).copied()) else {
            return if self.accounts.contains_key(&t.debit_account_id) { R::CreditAccountNotFound } else { R::DebitAccountNotFound };
        };
        if d.ledger != c.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != d.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }
        if let Some(code) = states(&d, &c) {
            return code;
        }
        let pending = t.flags & tf::PENDING != 0;
        let a = t.amount;
        let overflow = [
            (pending && d.debits_pending.checked_add(a).is_none(), R::OverflowsDebitsPending),
            (pending && c.credits_pending.checked_add(a).is_none(), R::OverflowsCreditsPending),
            (!pending && d.debits_posted.checked_add(a).is_none(), R::OverflowsDebitsPosted),
            (!pending && c.credits_posted.checked_add(a).is_none(), R::OverflowsCreditsPosted),
            (d.debits_pending.checked_add(d.debits_posted).and_then(|x| x.checked_add(a)).is_none(), R::OverflowsDebits),
            (c.credits_pending.checked_add(c.credits_posted).and_then(|x| x.checked_add(a)).is_none(), R::OverflowsCredits),
            (pending && t.timeout != 0 && ts.checked_add(t.timeout as u64 * NS_PER_S).is_none(), R::OverflowsTimeout),
            (self.ledger_sum(d.ledger, pending).checked_add(a).is_none(), R::OverflowsLedgerTotals),
        ];
        if let Some(code) = first_failure(&overflow) {
            return code;
        }
        let (debit_limit, credit_limit) = (self.limits_of(&d).0, self.limits_of(&c).1);
        let limits = [
            (debit_limit.is_some_and(|l| d.debits_pending + d.debits_posted + a > d.credits_posted.saturating_add(l)), R::ExceedsCredits),
            (credit_limit.is_some_and(|l| c.credits_pending + c.credits_posted + a > c.debits_posted.saturating_add(l)), R::ExceedsDebits),
            (self.ids() >= self.limits.transfers_max as usize, R::TransfersLimitReached),
        ];
        if let Some(code) = first_failure(&limits) {
            return code;
        }
        let (dm, cm) = self.two_accounts(t.debit_account_id, t.credit_account_id);
        if pending {
            dm.debits_pending += a;
            cm.credits_pending += a;
            let expires = if t.timeout == 0 { 0 } else { ts + t.timeout as u64 * NS_PER_S };
            self.holds.insert(t.id, (HoldStatus::Pending, expires));
        } else {
            dm.debits_posted += a;
            cm.credits_posted += a;
        }
        self.transfers.insert(t.id, Transfer { timestamp: ts, ..t });
        R::Ok
    }

    fn resolve(&mut self, t: Transfer, ts: u64) -> R {
        let post = t.flags & tf::POST_PENDING != 0;
        let checks = [
            (t.pending_id == 0, R::PendingIdMustNotBeZero),
            (t.pending_id == u128::MAX, R::PendingIdMustNotBeIntMax),
            (t.pending_id == t.id, R::PendingIdMustBeDifferent),
            (t.timeout != 0, R::TimeoutReservedForPendingTransfer),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let Some(p) = self.transfers.get(&t.pending_id).copied() else {
            return R::PendingTransferNotFound;
        };
        let whole = if post { u128::MAX } else { 0 };
        let amount = if t.amount == whole { p.amount } else { t.amount };
        let given_differs = |given: u128, stored: u128| given != 0 && given != stored;
        let checks = [
            (p.flags & tf::PENDING == 0, R::PendingTransferNotPending),
            (given_differs(t.debit_account_id, p.debit_account_id), R::PendingTransferHasDifferentDebitAccountId),
            (given_differs(t.credit_account_id, p.credit_account_id), R::PendingTransferHasDifferentCreditAccountId),
            (given_differs(t.ledger as u128, p.ledger as u128), R::PendingTransferHasDifferentLedger),
            (given_differs(t.code as u128, p.code as u128), R::PendingTransferHasDifferentCode),
            (amount > p.amount, R::ExceedsPendingTransferAmount),
            (!post && amount < p.amount, R::PendingTransferHasDifferentAmount),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let (status, expires) = self.holds[&p.id];
        match status {
            HoldStatus::Posted => return R::PendingTransferAlreadyPosted,
            HoldStatus::Voided => return R::PendingTransferAlreadyVoided,
            HoldStatus::Expired => return R::PendingTransferExpired,
            HoldStatus::Pending if expires != 0 && expires <= ts => return R::PendingTransferExpired,
            HoldStatus::Pending => {}
        }
        let d = self.accounts[&p.debit_account_id];
        let c = self.accounts[&p.credit_account_id];
        if post {
            if let Some(code) = states(&d, &c) {
                return code;
            }
            let checks = [
                (d.debits_posted.checked_add(amount).is_none(), R::OverflowsDebitsPosted),
                (c.credits_posted.checked_add(amount).is_none(), R::OverflowsCreditsPosted),
                (self.ledger_sum(p.ledger, false).checked_add(amount).is_none(), R::OverflowsLedgerTotals),
            ];
            if let Some(code) = first_failure(&checks) {
                return code;
            }
        }
        if self.ids() >= self.limits.transfers_max as usize {
            return R::TransfersLimitReached;
        }
        let (dm, cm) = self.two_accounts(p.debit_account_id, p.credit_account_id);
        dm.debits_pending -= p.amount;
        cm.credits_pending -= p.amount;
        if post {
            dm.debits_posted += amount;
            cm.credits_posted += amount;
        }
        let pick = |given: u128, stored: u128| if given != 0 { given } else { stored };
        let stored = Transfer {
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount,
            user_data_128: pick(t.user_data_128, p.user_data_128),
            user_data_64: pick(t.user_data_64 as u128, p.user_data_64 as u128) as u64,
            user_data_32: pick(t.user_data_32 as u128, p.user_data_32 as u128) as u32,
            ledger: p.ledger,
            code: p.code,
            timestamp: ts,
            ..t
        };
        self.transfers.insert(t.id, stored);
        self.holds.insert(p.id, (if post { HoldStatus::Posted } else { HoldStatus::Voided }, 0));
        R::Ok
    }

    fn two_accounts(&mut self, debit: u128, credit: u128) -> (&mut Account, &mut Account) {
        assert_ne!(debit, credit);
        let mut it = self.accounts.iter_mut().filter(|(id, _)| **id == debit || **id == credit);
        let (first_id, first) = it.next().expect("first account");
        let (_, second) = it.next().expect("second account");
        if *first_id == debit {
            (first, second)
        } else {
            (second, first)
        }
    }

    /// Sum over a ledger's accounts of debits pending (or posted).
    pub fn ledger_sum(&self, ledger: u32, pending: bool) -> u128 {
        self.accounts.values().filter(|a| a.ledger == ledger).map(|a| if pending { a.debits_pending } else { a.debits_posted }).sum()
    }
}

fn states(d: &Account, c: &Account) -> Option<R> {
    first_failure(&[
        (d.state & st::CLOSED != 0, R::DebitAccountClosed),
        (c.state & st::CLOSED != 0, R::CreditAccountClosed),
        (d.state & st::FROZEN_DEBITS != 0, R::DebitAccountFrozen),
        (c.state & st::FROZEN_CREDITS != 0, R::CreditAccountFrozen),
    ])
}

fn exists(t: &Transfer, e: &Transfer, single: u8) -> R {
    // The counterparty of a single-sided command is filled in: it only counts when given.
    let cmp = |given: u128, stored: u128, filled: bool| if filled { given != 0 && given != stored } else { given != stored };
    first_difference(&[
        (t.flags != e.flags, R::ExistsWithDifferentFlags),
        (t.pending_id != e.pending_id, R::ExistsWithDifferentPendingId),
        (t.timeout != e.timeout, R::ExistsWithDifferentTimeout),
        (cmp(t.debit_account_id, e.debit_account_id, single == 2), R::ExistsWithDifferentDebitAccountId),
        (cmp(t.credit_account_id, e.credit_account_id, single == 1), R::ExistsWithDifferentCreditAccountId),
        (t.amount != e.amount, R::ExistsWithDifferentAmount),
        (t.user_data_128 != e.user_data_128, R::ExistsWithDifferentUserData128),
        (t.user_data_64 != e.user_data_64, R::ExistsWithDifferentUserData64),
        (t.user_data_32 != e.user_data_32, R::ExistsWithDifferentUserData32),
        (t.ledger != e.ledger, R::ExistsWithDifferentLedger),
        (t.code != e.code, R::ExistsWithDifferentCode),
    ])
}

/// A re-sent capture or release `t` against the stored one `e` of hold `p`: accounts, ledger
/// and code count when given; zero user data (and the whole-hold amount: u128::MAX for a
/// capture, 0 for a release) stand for the hold's value.
fn resolution_exists(t: &Transfer, e: &Transfer, p: &Transfer) -> R {
    let given = |given: u128, stored: u128| given != 0 && given != stored;
    let or_hold = |given: u128, whole: u128, stored: u128, hold: u128| if given == whole { stored != hold } else { given != stored };
    let whole = if t.flags & tf::POST_PENDING != 0 { u128::MAX } else { 0 };
    first_difference(&[
        (t.flags != e.flags, R::ExistsWithDifferentFlags),
        (t.pending_id != e.pending_id, R::ExistsWithDifferentPendingId),
        (t.timeout != e.timeout, R::ExistsWithDifferentTimeout),
        (given(t.debit_account_id, e.debit_account_id), R::ExistsWithDifferentDebitAccountId),
        (given(t.credit_account_id, e.credit_account_id), R::ExistsWithDifferentCreditAccountId),
        (or_hold(t.amount, whole, e.amount, p.amount), R::ExistsWithDifferentAmount),
        (or_hold(t.user_data_128, 0, e.user_data_128, p.user_data_128), R::ExistsWithDifferentUserData128),
        (or_hold(t.user_data_64.into(), 0, e.user_data_64.into(), p.user_data_64.into()), R::ExistsWithDifferentUserData64),
        (or_hold(t.user_data_32.into(), 0, e.user_data_32.into(), p.user_data_32.into()), R::ExistsWithDifferentUserData32),
        (given(t.ledger.into(), e.ledger.into()), R::ExistsWithDifferentLedger),
        (given(t.code.into(), e.code.into()), R::ExistsWithDifferentCode),
    ])
}

fn first_failure(checks: &[(bool, R)]) -> Option<R> {
    checks.iter().find(|(failed, _)| *failed).map(|(_, code)| *code)
}

fn first_difference(checks: &[(bool, R)]) -> R {
    first_failure(checks).unwrap_or(R::Exists)
}
