//! A deliberately simple reference model of the engine's semantics, for the simulation to check against.
//!
//! Ordered maps instead of indexes, a full clone instead of an undo log for linked chains,
//! sums recomputed from scratch instead of running totals: slow and obviously right. It is
//! written from `docs/result-codes.md`, not from `engine/src/state/`.

use std::collections::BTreeMap;

use bursar_engine::{
    account_flags as af, account_state as st, change_flags as cf, channel_flags as chf, ledger_flags, limit_flags as lf,
    transfer_flags as tf, velocity_flags as vf, velocity_window as vw, Account, AccountChange, AccountLimits, ChannelPolicy, Command,
    HoldStatus, Ledger, ResultCode as R, Transfer, VelocityRule,
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
    /// Amount moved back by reversals, by the reversed transfer's id.
    pub reversed: BTreeMap<u128, u128>,
    /// Transfer ids decided by a failure: the code and the command's timestamp.
    pub failed: BTreeMap<u128, (R, u64)>,
    /// Limits set by `set_limits`, by account: (debit limit, credit limit), `None` where the
    /// account's flag rules.
    pub balance_limits: BTreeMap<u128, (Option<u128>, Option<u128>)>,
    /// Channel policies set by `set_channels`, by account.
    pub channels: BTreeMap<u128, ChannelPolicy>,
    /// Velocity rules by (account, slot), each with the movements it counted.
    pub velocity: BTreeMap<(u128, u8), ModelRule>,
    /// Standing orders and triggers by id.
    pub orders: BTreeMap<u128, crate::orders_model::ModelOrder>,
    /// Order ids by number - 1.
    pub order_ids: Vec<u128>,
    /// The accounts moved since the last settle point that a live trigger watched at the moment.
    pub moved: Vec<u128>,
    /// A trigger's own transfer is being made.
    pub firing: bool,
    /// Last timestamp assigned.
    pub timestamp: u64,
    /// Capacity limits, mirrored from the engine under test.
    pub limits: bursar_engine::Limits,
    /// Quotes by id.
    pub quotes: BTreeMap<u128, crate::exchange_model::ModelQuote>,
    /// Timestamps this batch took beyond one per command (exchanges' second legs); a rollback
    /// keeps them taken.
    pub taken: u64,
}

/// A velocity rule in the model: the rule (`timestamp`: when it started counting) and every
/// movement it counted, as (timestamp, amount, count, hold id or 0), with what was given back
/// already taken off.
#[derive(Clone, Debug, Default)]
pub struct ModelRule {
    /// The rule.
    pub rule: VelocityRule,
    /// The movements counted.
    pub counted: Vec<(u64, u128, u64, u128)>,
}

impl ModelRule {
    /// Count and amount of the movements in the window that holds `ts` (amounts saturate).
    pub fn usage(&self, ts: u64) -> (u64, u128) {
        let now = window_of(&self.rule, ts);
        let live = |at: u64| {
            let then = window_of(&self.rule, at);
            if self.rule.window == vw::ROLLING {
                then + 16 > now
            } else {
                then == now
            }
        };
        self.counted.iter().filter(|e| live(e.0)).fold((0, 0), |(c, a), e| (c + e.2, a.saturating_add(e.1)))
    }
}

/// The window (calendar: its start; rolling: the sub-bucket number, width N/16 rounded up) of `ts`.
pub(crate) fn window_of(rule: &VelocityRule, ts: u64) -> u64 {
    const DAY: u64 = 86_400 * NS_PER_S;
    match rule.window {
        vw::MINUTE => ts / (60 * NS_PER_S) * 60 * NS_PER_S,
        vw::HOUR => ts / (3_600 * NS_PER_S) * 3_600 * NS_PER_S,
        vw::DAY => ts / DAY * DAY,
        // Weeks start on Monday; 1970-01-05 was the first Monday (earlier days: clamped to 0).
        vw::WEEK => (ts / DAY).checked_sub(4).map_or(0, |d| (d / 7 * 7 + 4) * DAY),
        vw::MONTH => month_start(ts / DAY) * DAY,
        _ => ts / (rule.window_seconds as u64 * NS_PER_S).div_ceil(16),
    }
}

/// The first day of the month holding day `day` (since 1970-01-01), by walking the calendar.
fn month_start(mut day: u64) -> u64 {
    let mut start = 0;
    let mut year = 1970;
    loop {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        for length in [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
            if day < length {
                return start;
            }
            day -= length;
            start += length;
        }
        year += 1;
    }
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
            self.give_back(&hold, hold.amount, true);
            self.note_moved(hold.debit_account_id, hold.credit_account_id);
            ts += 1;
        }
        self.settle_triggers(&mut ts);
        self.run_due(clock, &mut ts);
        let mut results = vec![R::Ok; commands.len()];
        let mut i = 0;
        self.taken = 0;
        // Command k's timestamp is `first + k + taken`; every trigger firing moves `first` on by
        // one, every exchange's second leg `taken`.
        let mut first = ts;
        while i < commands.len() {
            let request_end = request_ends.iter().map(|e| *e as usize + 1).find(|e| *e > i).unwrap_or(commands.len());
            let mut end = i;
            while end < request_end && commands[end].is_linked() {
                end += 1;
            }
            let open = end == request_end;
            let last = if open { end - 1 } else { end };
            self.moved.clear();
            self.chain(&commands[i..=last], open, first + i as u64, &mut results[i..=last]);
            i = last + 1;
            let mut next = first + i as u64 + self.taken;
            self.settle_triggers(&mut next);
            first = next - i as u64 - self.taken;
        }
        self.timestamp = (first + commands.len() as u64 + self.taken).saturating_sub(1).max(clock);
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
            let code = self.apply(&members[k], ts + k as u64 + self.taken);
            results[k] = code;
            let mixed = (code == R::Ok && results[..k].contains(&R::Exists)) || (code == R::Exists && results[..k].contains(&R::Ok));
            if mixed || !code.is_success() {
                broke = Some(k);
                break;
            }
        }
        let Some(at) = broke else { return };
        let taken = self.taken;
        *self = saved;
        self.taken = taken;
        for (k, result) in results.iter_mut().enumerate() {
            let keeps = k < at && *result == R::Exists || k == at && *result != R::Ok;
            if !keeps || (open && k == members.len() - 1) {
                *result = R::LinkedEventFailed;
            }
        }
        if open {
            *results.last_mut().expect("a member") = R::LinkedEventChainOpen;
        }
        results[at] = self.decide(&members[at], results[at], ts + at as u64 + self.taken);
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
            Command::Transfer(t) => self.transfer(t, 0, 0, ts),
            Command::Debit(t) => self.transfer(t, 1, 0, ts),
            Command::Credit(t) => self.transfer(t, 2, 0, ts),
            Command::Hold(t) => self.transfer(t, 0, tf::PENDING, ts),
            Command::Capture(t) => self.transfer(t, 0, tf::POST_PENDING, ts),
            Command::Release(t) => self.transfer(t, 0, tf::VOID_PENDING, ts),
            Command::Reverse(t) => self.transfer(t, 0, tf::REVERSE, ts),
            Command::Freeze(c) => self.change(c, 0),
            Command::Thaw(c) => self.change(c, 1),
            Command::Close(c) => self.change(c, 2),
            Command::SetLimits(c) => self.set_limits(c),
            Command::SetChannels(c) => self.set_channels(c, ts),
            Command::SetVelocity(v) => self.set_velocity(v, ts),
            Command::CreateStandingOrder(o) => self.create_standing_order(o, ts),
            Command::CreateTrigger(t) => self.create_trigger(t, ts),
            Command::PauseOrder(c) => self.manage_order(c, 0, ts),
            Command::ResumeOrder(c) => self.manage_order(c, 1, ts),
            Command::CancelOrder(c) => self.manage_order(c, 2, ts),
            Command::AmendOrder(c) => self.manage_order(c, 3, ts),
            Command::CreateQuote(q) => self.create_quote(q, ts),
            Command::Exchange(e) => self.exchange(e, ts),
            Command::PlaceOrder(e) => self.place_order(e, ts),
        }
    }

    fn open_account(&self, id: u128) -> Option<R> {
        first_failure(&[
            (!self.accounts.contains_key(&id), R::AccountNotFound),
            (self.accounts.get(&id).is_some_and(|a| a.state & st::CLOSED != 0), R::AccountClosed),
        ])
    }

    fn set_channels(&mut self, c: ChannelPolicy, ts: u64) -> R {
        let checks = [
            (c.timestamp != 0, R::TimestampMustBeZero),
            (c.reserved.iter().any(|b| *b != 0), R::ReservedField),
            (c.flags & !chf::ALL != 0, R::ReservedFlag),
            (c.account_id == 0, R::AccountIdMustNotBeZero),
            (c.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
        ];
        if let Some(code) = first_failure(&checks).or_else(|| self.open_account(c.account_id)) {
            return code;
        }
        self.channels.insert(c.account_id, ChannelPolicy { timestamp: ts, flags: c.flags & !chf::LINKED, ..c });
        R::Ok
    }

    fn set_velocity(&mut self, v: VelocityRule, ts: u64) -> R {
        let remove = v.flags & vf::REMOVE != 0;
        let sides = v.flags & (vf::DEBITS | vf::CREDITS);
        let calendar = (vw::MINUTE..=vw::MONTH).contains(&v.window) && v.window_seconds == 0;
        let rolling = v.window == vw::ROLLING && v.window_seconds >= 1 && v.window_seconds <= 400 * 86_400;
        let removal_has_more =
            VelocityRule { account_id: 0, slot: 0, flags: 0, user_data_64: 0, user_data_32: 0, ..v } != VelocityRule::default();
        let checks = [
            (v.timestamp != 0, R::TimestampMustBeZero),
            (
                v.reserved.iter().any(|b| *b != 0)
                    || (v.flags & vf::COUNT == 0 && v.count_max != 0)
                    || (v.flags & vf::AMOUNT == 0 && v.amount_max != 0)
                    || (remove && removal_has_more),
                R::ReservedField,
            ),
            (v.flags & !vf::ALL != 0, R::ReservedFlag),
            (sides == vf::DEBITS | vf::CREDITS || (remove && v.flags & !(vf::REMOVE | vf::LINKED) != 0), R::FlagsAreMutuallyExclusive),
            (v.account_id == 0, R::AccountIdMustNotBeZero),
            (v.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
            (!remove && sides == 0, R::ChangeMustNameASide),
            (v.slot >= 8, R::VelocitySlotInvalid),
            (!remove && !calendar && !rolling, R::VelocityWindowInvalid),
            (!remove && v.flags & (vf::COUNT | vf::AMOUNT) == 0, R::VelocityRuleMustSetAMaximum),
        ];
        if let Some(code) = first_failure(&checks).or_else(|| self.open_account(v.account_id)) {
            return code;
        }
        let key = (v.account_id, v.slot);
        if remove {
            self.velocity.remove(&key);
            return R::Ok;
        }
        let rule = VelocityRule { flags: v.flags & !vf::LINKED, timestamp: ts, ..v };
        let what = |r: &VelocityRule| (r.flags, r.window, r.window_seconds, r.codes);
        match self.velocity.get_mut(&key) {
            Some(old) if what(&old.rule) == what(&rule) => old.rule = VelocityRule { timestamp: old.rule.timestamp, ..rule },
            _ => {
                self.velocity.insert(key, ModelRule { rule, counted: Vec::new() });
            }
        }
        R::Ok
    }

    /// Whether the account's channel policy lets `code` debit (or credit) it.
    fn channel_allows(&self, account: u128, debit: bool, code: u16) -> bool {
        let Some(c) = self.channels.get(&account) else { return true };
        let (codes, allow) = if debit { (c.debit_codes, chf::DEBITS_ALLOW) } else { (c.credit_codes, chf::CREDITS_ALLOW) };
        codes.contains(&code) == (c.flags & allow != 0)
    }

    /// The velocity rules of `account` on one side that count `code`.
    fn counting(&self, account: u128, debit: bool, code: u16) -> Vec<(u8, &ModelRule)> {
        let side = if debit { vf::DEBITS } else { vf::CREDITS };
        self.velocity
            .range((account, 0)..=(account, u8::MAX))
            .filter(|(_, r)| r.rule.flags & side != 0 && (r.rule.codes == [0; 8] || r.rule.codes.contains(&code)))
            .map(|((_, slot), r)| (*slot, r))
            .collect()
    }

    /// The first velocity bound a movement breaks: the debit side's count, amount, then the credit side's.
    fn velocity_failure(&self, t: &Transfer, ts: u64) -> Option<R> {
        let sides = [
            (t.debit_account_id, true, R::ExceedsDebitVelocityCount, R::ExceedsDebitVelocityAmount),
            (t.credit_account_id, false, R::ExceedsCreditVelocityCount, R::ExceedsCreditVelocityAmount),
        ];
        for (account, debit, count_code, amount_code) in sides {
            let rules = self.counting(account, debit, t.code);
            if rules.iter().any(|(_, r)| r.rule.flags & vf::COUNT != 0 && r.usage(ts).0 + 1 > r.rule.count_max as u64) {
                return Some(count_code);
            }
            let over = |r: &ModelRule| r.usage(ts).1.checked_add(t.amount).is_none_or(|sum| sum > r.rule.amount_max);
            if rules.iter().any(|(_, r)| r.rule.flags & vf::AMOUNT != 0 && over(r)) {
                return Some(amount_code);
            }
        }
        None
    }

    /// Records a new movement in the rules that count it.
    fn count_velocity(&mut self, t: &Transfer, ts: u64) {
        for (account, debit) in [(t.debit_account_id, true), (t.credit_account_id, false)] {
            let slots: Vec<u8> = self.counting(account, debit, t.code).iter().map(|(slot, _)| *slot).collect();
            let hold = if t.flags & tf::PENDING != 0 { t.id } else { 0 };
            for slot in slots {
                self.velocity.get_mut(&(account, slot)).expect("counting").counted.push((ts, t.amount, 1, hold));
            }
        }
    }

    /// A hold released, expired (`count`: its movement too) or captured in part gives back.
    fn give_back(&mut self, hold: &Transfer, amount: u128, count: bool) {
        for rule in self.velocity.values_mut() {
            for e in rule.counted.iter_mut().filter(|e| e.3 == hold.id) {
                e.1 -= amount;
                e.2 -= u64::from(count);
            }
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

    /// `single`: 0 two-sided, 1 debit (counterparty = credit side), 2 credit; `kind_flag`: the
    /// flag the command's kind adds to the client's (hold, capture, release, reverse).
    pub(crate) fn transfer(&mut self, mut t: Transfer, single: u8, kind_flag: u16, ts: u64) -> R {
        let head = [
            (t.timestamp != 0, R::TimestampMustBeZero),
            (t.flags & !tf::ALL != 0, R::ReservedFlag),
            (t.id == 0, R::IdMustNotBeZero),
            (t.id == u128::MAX, R::IdMustNotBeIntMax),
            (t.id >> 96 == 0xFFFF_FFFF, R::IdReserved),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        t.flags |= kind_flag;
        let resolves = t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0;
        let reverses = t.flags & tf::REVERSE != 0;
        if let Some(e) = self.transfers.get(&t.id) {
            return if reverses {
                reversal_exists(&t, e)
            } else if let (true, Some(p)) = (resolves, self.transfers.get(&e.pending_id)) {
                // A stored capture or release names a stored hold; a stored transfer that names
                // none is not one, and differs in its flags first.
                resolution_exists(&t, e, p)
            } else {
                exists(&t, e, single)
            };
        }
        if self.failed.contains_key(&t.id) {
            return R::IdAlreadyFailed;
        }
        let counterparty = [0, t.credit_account_id, t.debit_account_id][single as usize];
        let checks = [
            ((t.flags & (tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE)).count_ones() > 1, R::FlagsAreMutuallyExclusive),
            (counterparty != 0, R::CounterpartyMustBeZero),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        if resolves {
            return self.resolve(t, ts);
        }
        if reverses {
            return self.reverse(t, ts);
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
        self.post(t, ts)
    }

    /// A reversal after the checks every transfer has: `docs/result-codes.md`, "Reversals".
    fn reverse(&mut self, t: Transfer, ts: u64) -> R {
        let checks = [
            (t.pending_id == 0, R::PendingIdMustNotBeZero),
            (t.pending_id == u128::MAX, R::PendingIdMustNotBeIntMax),
            (t.pending_id == t.id, R::PendingIdMustBeDifferent),
            (t.timeout != 0, R::TimeoutReservedForPendingTransfer),
            (t.code == 0, R::CodeMustNotBeZero),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let Some(o) = self.transfers.get(&t.pending_id).copied() else {
            return R::ReversedTransferNotFound;
        };
        let left = o.amount - self.reversed.get(&o.id).copied().unwrap_or(0);
        let amount = if t.amount == u128::MAX { left } else { t.amount };
        let given_differs = |given: u128, stored: u128| given != 0 && given != stored;
        let checks = [
            (o.flags & tf::PENDING != 0, R::ReversedTransferIsAHold),
            (o.flags & (tf::VOID_PENDING | tf::REVERSE) != 0, R::ReversedTransferNotReversible),
            (given_differs(t.debit_account_id, o.credit_account_id), R::ReversalHasDifferentDebitAccountId),
            (given_differs(t.credit_account_id, o.debit_account_id), R::ReversalHasDifferentCreditAccountId),
            (given_differs(t.ledger.into(), o.ledger.into()), R::ReversalHasDifferentLedger),
            (left == 0 || amount > left, R::ExceedsReversibleAmount),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let back = Transfer { debit_account_id: o.credit_account_id, credit_account_id: o.debit_account_id, amount, ledger: o.ledger, ..t };
        let code = self.post(back, ts);
        if code == R::Ok {
            *self.reversed.entry(o.id).or_default() += amount;
        }
        code
    }

    /// A new posted transfer or hold whose fields are resolved: the account checks, then the movement.
    pub(crate) fn post(&mut self, t: Transfer, ts: u64) -> R {
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
        let channels = [
            (!self.channel_allows(d.id, true, t.code), R::DebitCodeNotAllowed),
            (!self.channel_allows(c.id, false, t.code), R::CreditCodeNotAllowed),
        ];
        if let Some(code) = first_failure(&channels) {
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
        let exempt = self.channels.get(&d.id).is_some_and(|p| p.limit_exempt_codes.contains(&t.code));
        let limits = [
            (
                !exempt && debit_limit.is_some_and(|l| d.debits_pending + d.debits_posted + a > d.credits_posted.saturating_add(l)),
                R::ExceedsCredits,
            ),
            (credit_limit.is_some_and(|l| c.credits_pending + c.credits_posted + a > c.debits_posted.saturating_add(l)), R::ExceedsDebits),
        ];
        if let Some(code) = first_failure(&limits).or_else(|| self.velocity_failure(&t, ts)) {
            return code;
        }
        if self.ids() >= self.limits.transfers_max as usize {
            return R::TransfersLimitReached;
        }
        self.count_velocity(&t, ts);
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
        self.note_moved(t.debit_account_id, t.credit_account_id);
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
        self.note_moved(stored.debit_account_id, stored.credit_account_id);
        self.holds.insert(p.id, (if post { HoldStatus::Posted } else { HoldStatus::Voided }, 0));
        self.give_back(&p, if post { p.amount - amount } else { p.amount }, !post);
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

/// A re-sent reversal `t` against the stored one `e`: accounts and ledger count when given, an
/// amount of u128::MAX ("all that is left") matches what was moved back.
fn reversal_exists(t: &Transfer, e: &Transfer) -> R {
    let given = |given: u128, stored: u128| given != 0 && given != stored;
    first_difference(&[
        (t.flags != e.flags, R::ExistsWithDifferentFlags),
        (t.pending_id != e.pending_id, R::ExistsWithDifferentPendingId),
        (t.timeout != e.timeout, R::ExistsWithDifferentTimeout),
        (given(t.debit_account_id, e.debit_account_id), R::ExistsWithDifferentDebitAccountId),
        (given(t.credit_account_id, e.credit_account_id), R::ExistsWithDifferentCreditAccountId),
        (t.amount != u128::MAX && t.amount != e.amount, R::ExistsWithDifferentAmount),
        (t.user_data_128 != e.user_data_128, R::ExistsWithDifferentUserData128),
        (t.user_data_64 != e.user_data_64, R::ExistsWithDifferentUserData64),
        (t.user_data_32 != e.user_data_32, R::ExistsWithDifferentUserData32),
        (given(t.ledger.into(), e.ledger.into()), R::ExistsWithDifferentLedger),
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

pub(crate) fn first_failure(checks: &[(bool, R)]) -> Option<R> {
    checks.iter().find(|(failed, _)| *failed).map(|(_, code)| *code)
}

fn first_difference(checks: &[(bool, R)]) -> R {
    first_failure(checks).unwrap_or(R::Exists)
}
