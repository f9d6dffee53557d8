//! The reference model of recurring payments, written from `docs/recurring.md`: orders in an
//! ordered map, due times found by walking the calendar, the next due run found by scanning every
//! order. Slow and plain on purpose.

use bursar_engine::{
    catch_up as cu, order_flags as of, order_unit as unit, trigger_kind as tk, velocity_window as vw, OrderChange, OrderSpec, OrderStatus,
    ResultCode as R, RunEvent, StandingOrder, Transfer, Trigger, VelocityRule,
};

use crate::model::{first_failure, window_of, Model};

const S: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * S;
const GRACE: u64 = 300 * S;
const RUNS_PER_BATCH: usize = 1024;
const HISTORY: usize = 8;
const PER_ACCOUNT: usize = 1024;
const TRIGGERS_PER_ACCOUNT: usize = 4;

/// One run-history entry: (at, run, amount, code, event, attempt).
pub type Entry = (u64, u64, u128, R, RunEvent, u8);

/// An order in the model.
#[derive(Clone, Debug)]
pub struct ModelOrder {
    /// As made (linked flag cleared).
    pub spec: OrderSpec,
    /// 1 for the first order made.
    pub number: u32,
    /// When it was made.
    pub created_at: u64,
    /// Where it stands.
    pub status: OrderStatus,
    /// The amount of the next run.
    pub amount: u128,
    /// Periods reached (standing) or firings (triggers).
    pub runs: u64,
    /// The next period's due time, 0 for none.
    pub next_due: u64,
    /// A pending retry: (run, attempt, due, code).
    pub retry: Option<(u64, u8, u64, R)>,
    /// Threshold triggers: the next crossing fires.
    pub armed: bool,
    /// Debt triggers: the debt last seen.
    pub debt_seen: u128,
    /// Cap window: start, firings, amount.
    pub window: (u64, u32, u128),
    /// The newest entries, oldest first.
    pub history: Vec<Entry>,
}

impl ModelOrder {
    fn standing(&self) -> Option<StandingOrder> {
        match self.spec {
            OrderSpec::Standing(o) => Some(o),
            OrderSpec::Trigger(_) => None,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.status, OrderStatus::Cancelled | OrderStatus::Finished)
    }

    fn accounts(&self) -> (u128, u128) {
        match self.spec {
            OrderSpec::Standing(o) => (o.debit_account_id, o.credit_account_id),
            OrderSpec::Trigger(t) => (t.debit_account_id, t.credit_account_id),
        }
    }

    fn remember(&mut self, entry: Entry) {
        self.history.push(entry);
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
    }

    fn drop_retry(&mut self, ts: u64) {
        if let Some((run, attempt, _, code)) = self.retry.take() {
            let amount = self.amount;
            self.remember((ts, run, amount, code, RunEvent::Failed, attempt));
        }
    }

    fn finish_if_done(&mut self) {
        if self.status == OrderStatus::Active && self.standing().is_some() && self.next_due == 0 && self.retry.is_none() {
            self.status = OrderStatus::Finished;
        }
    }
}

/// Walks the calendar: (year, month, day) of day number `d` since 1970-01-01.
fn date_of(mut d: u64) -> (u64, u64, u64) {
    let mut year = 1970;
    loop {
        let length = if leap(year) { 366 } else { 365 };
        if d < length {
            break;
        }
        d -= length;
        year += 1;
    }
    let mut month = 1;
    while d >= month_days(year, month) {
        d -= month_days(year, month);
        month += 1;
    }
    (year, month, d + 1)
}

fn day_number(year: u64, month: u64, day: u64) -> u64 {
    let years: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    years + (1..month).map(|m| month_days(year, m)).sum::<u64>() + day - 1
}

fn leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn month_days(y: u64, m: u64) -> u64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Due time of period `run` (from 1), or `None` past `count_max`, past `end_at`, or out of range.
fn period_due(o: &StandingOrder, created_at: u64, run: u64) -> Option<u64> {
    if run == 0 || (o.count_max != 0 && run > o.count_max as u64) {
        return None;
    }
    let first = if o.first_due_at == 0 { created_at } else { o.first_due_at };
    let due = if o.unit == unit::MONTHS {
        let (y, m, _) = date_of(first / DAY);
        let mut found = 0;
        let mut j = 0u64;
        loop {
            let months = (y * 12 + m - 1) + j * o.period as u64;
            let (yy, mm) = (months / 12, months % 12 + 1);
            if yy > 9_999 {
                return None;
            }
            let instant = day_number(yy, mm, (o.day as u64).min(month_days(yy, mm))) * DAY + first % DAY;
            if instant >= first {
                found += 1;
                if found == run {
                    break instant;
                }
            }
            j += 1;
        }
    } else {
        let unit_ns = [0, S, DAY, 7 * DAY][o.unit as usize];
        first.checked_add((run - 1).checked_mul(o.period as u64 * unit_ns)?)?
    };
    (o.end_at == 0 || due <= o.end_at).then_some(due)
}

/// The last period after `from` due at or before `by`, or `from`.
fn last_due_by(o: &StandingOrder, created_at: u64, from: u64, by: u64) -> u64 {
    let mut k = from;
    while period_due(o, created_at, k + 1).is_some_and(|d| d <= by) {
        k += 1;
    }
    k
}

fn run_id(number: u32, run: u64) -> u128 {
    0xFFFF_FFFFu128 << 96 | (number as u128) << 64 | run as u128
}

impl Model {
    /// `create_standing_order`.
    pub(crate) fn create_standing_order(&mut self, o: StandingOrder, ts: u64) -> R {
        let unit_s = [0, 1, 86_400, 7 * 86_400, 31 * 86_400];
        let min_s = [0, 1, 86_400, 7 * 86_400, 28 * 86_400];
        let known = (1..=4).contains(&o.unit);
        let u = if known { o.unit as usize } else { 0 };
        let head = [
            (o.timestamp != 0, R::TimestampMustBeZero),
            (o.reserved != [0; 4], R::ReservedField),
            (o.flags & !(of::LINKED | of::REMIND) != 0, R::ReservedFlag),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        let spec = OrderSpec::Standing(StandingOrder { flags: o.flags & !of::LINKED, ..o });
        let retries = o.retry_attempts as u64 * o.retry_spacing_s as u64;
        let own = [
            (!known || o.period == 0 || o.period as u64 * unit_s[u] > 10 * 366 * 86_400, R::OrderPeriodInvalid),
            (if o.unit == unit::MONTHS { o.day == 0 || o.day > 31 } else { o.day != 0 }, R::OrderDayInvalid),
            (o.first_due_at != 0 && o.first_due_at < ts, R::OrderFirstDueInPast),
            (o.end_at != 0 && o.end_at < o.first_due_at.max(ts), R::OrderEndInvalid),
            (o.catch_up > 2, R::OrderCatchUpInvalid),
            (
                o.retry_attempts > 8 || (o.retry_attempts == 0) != (o.retry_spacing_s == 0) || retries >= o.period as u64 * min_s[u],
                R::OrderRetryInvalid,
            ),
            (o.amount == 0, R::OrderAmountInvalid),
        ];
        self.create_order(spec, ts, first_failure(&own))
    }

    /// `create_trigger`.
    pub(crate) fn create_trigger(&mut self, t: Trigger, ts: u64) -> R {
        let head = [(t.reserved != [0; 2], R::ReservedField), (t.flags & !of::ALL != 0, R::ReservedFlag)];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        let top_up = t.flags & of::TOP_UP != 0;
        let threshold = t.kind == tk::THRESHOLD;
        let debt = t.kind == tk::DEBT;
        let capped = t.cap_count != 0 || t.cap_amount != 0;
        let own = [
            (!threshold && !debt, R::TriggerKindInvalid),
            (threshold && top_up && t.target <= t.threshold, R::TriggerThresholdInvalid),
            (threshold && !top_up && t.target != 0, R::TriggerThresholdInvalid),
            (debt && (top_up || t.threshold == 0 || t.target != 0), R::TriggerThresholdInvalid),
            ((threshold && !top_up) != (t.amount != 0), R::OrderAmountInvalid),
            (if capped { !(vw::MINUTE..=vw::MONTH).contains(&t.cap_window) } else { t.cap_window != 0 }, R::TriggerCapInvalid),
        ];
        let spec = OrderSpec::Trigger(Trigger { flags: t.flags & !of::LINKED, ..t });
        self.create_order(spec, ts, first_failure(&own))
    }

    fn create_order(&mut self, spec: OrderSpec, ts: u64, own: Option<R>) -> R {
        let (id, (debit, credit), ledger, code) = match spec {
            OrderSpec::Standing(o) => (o.id, (o.debit_account_id, o.credit_account_id), o.ledger, o.code),
            OrderSpec::Trigger(t) => (t.id, (t.debit_account_id, t.credit_account_id), t.ledger, t.code),
        };
        if let Some(code) = first_failure(&[(id == 0, R::IdMustNotBeZero), (id == u128::MAX, R::IdMustNotBeIntMax)]) {
            return code;
        }
        if let Some(existing) = self.orders.get(&id) {
            return if existing.spec == spec { R::Exists } else { R::OrderExistsWithDifferentFields };
        }
        let (d, c) = (self.accounts.get(&debit).copied(), self.accounts.get(&credit).copied());
        let checks = [
            (debit == 0, R::DebitAccountIdMustNotBeZero),
            (debit == u128::MAX, R::DebitAccountIdMustNotBeIntMax),
            (credit == 0, R::CreditAccountIdMustNotBeZero),
            (credit == u128::MAX, R::CreditAccountIdMustNotBeIntMax),
            (debit == credit, R::AccountsMustBeDifferent),
            (ledger == 0, R::LedgerMustNotBeZero),
            (code == 0, R::CodeMustNotBeZero),
        ];
        if let Some(code) = first_failure(&checks).or(own) {
            return code;
        }
        let (Some(d), Some(c)) = (d, c) else {
            return if d.is_none() { R::DebitAccountNotFound } else { R::CreditAccountNotFound };
        };
        let live =
            |account: u128| self.orders.values().filter(|o| !o.ended() && [o.accounts().0, o.accounts().1].contains(&account)).count();
        let watching =
            self.orders.values().filter(|o| !o.ended() && matches!(o.spec, OrderSpec::Trigger(_)) && o.accounts().1 == credit).count();
        let room = [
            (d.ledger != c.ledger, R::AccountsMustHaveTheSameLedger),
            (ledger != d.ledger, R::TransferMustHaveTheSameLedgerAsAccounts),
            (live(debit) >= PER_ACCOUNT || live(credit) >= PER_ACCOUNT, R::OrdersPerAccountLimitReached),
            (matches!(spec, OrderSpec::Trigger(_)) && watching >= TRIGGERS_PER_ACCOUNT, R::OrdersPerAccountLimitReached),
            (self.order_ids.len() >= self.limits.accounts_max as usize, R::OrdersLimitReached),
        ];
        if let Some(code) = first_failure(&room) {
            return code;
        }
        let number = self.order_ids.len() as u32 + 1;
        let (amount, next_due) = match spec {
            OrderSpec::Standing(o) => (o.amount, period_due(&o, ts, 1).unwrap_or(0)),
            OrderSpec::Trigger(t) => (t.amount, 0),
        };
        let mut order = ModelOrder {
            spec,
            number,
            created_at: ts,
            status: OrderStatus::Active,
            amount,
            runs: 0,
            next_due,
            retry: None,
            armed: true,
            debt_seen: 0,
            window: (0, 0, 0),
            history: Vec::new(),
        };
        order.finish_if_done();
        self.orders.insert(id, order);
        self.order_ids.push(id);
        R::Ok
    }

    /// Pause (0), resume (1), cancel (2) or amend (3).
    pub(crate) fn manage_order(&mut self, c: OrderChange, action: u8, ts: u64) -> R {
        let head = [
            (c.reserved != [0; 94] || (action != 3 && c.amount != 0), R::ReservedField),
            (c.flags & !of::LINKED != 0, R::ReservedFlag),
            (c.order_id == 0, R::IdMustNotBeZero),
            (c.order_id == u128::MAX, R::IdMustNotBeIntMax),
            (!self.orders.contains_key(&c.order_id), R::OrderNotFound),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        let order = self.orders.get_mut(&c.order_id).expect("found");
        let fixed = match order.spec {
            OrderSpec::Standing(_) => true,
            OrderSpec::Trigger(t) => t.kind == tk::THRESHOLD && t.flags & of::TOP_UP == 0,
        };
        let checks = [(order.ended(), R::OrderEnded), (action == 3 && (!fixed || c.amount == 0), R::OrderAmountInvalid)];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        match (action, order.status) {
            (0, OrderStatus::Active) => {
                order.drop_retry(ts);
                order.status = OrderStatus::Paused;
            }
            (1, OrderStatus::Paused) => {
                order.status = OrderStatus::Active;
                order.armed = true;
                order.debt_seen = 0;
                if let Some(o) = order.standing() {
                    let from = order.runs;
                    let last = last_due_by(&o, order.created_at, from, ts.saturating_sub(1));
                    if last > from {
                        order.remember((ts, last, (last - from) as u128, R::Ok, RunEvent::Skipped, 0));
                        order.runs = last;
                    }
                    order.next_due = period_due(&o, order.created_at, order.runs + 1).unwrap_or(0);
                    order.finish_if_done();
                }
            }
            (2, _) => {
                order.drop_retry(ts);
                order.status = OrderStatus::Cancelled;
            }
            (3, _) => order.amount = c.amount,
            _ => {}
        }
        R::Ok
    }

    /// The queued run due first at or before `clock`: (due, number, slot).
    fn next_queued(&self, clock: u64) -> Option<(u64, u32, u8)> {
        let mut queued = Vec::new();
        for o in self.orders.values().filter(|o| o.status == OrderStatus::Active) {
            if o.next_due != 0 && o.next_due <= clock {
                queued.push((o.next_due, o.number, 0));
            }
            if let Some((_, _, due, _)) = o.retry.filter(|r| r.2 <= clock) {
                queued.push((due, o.number, 1));
            }
        }
        queued.into_iter().min()
    }

    /// Runs the queued runs due by `clock`, at most 1 024, each followed by its triggers.
    pub(crate) fn run_due(&mut self, clock: u64, ts: &mut u64) {
        for _ in 0..RUNS_PER_BATCH {
            let Some((_, number, slot)) = self.next_queued(clock) else { break };
            let id = self.order_ids[number as usize - 1];
            let at = *ts;
            *ts += 1;
            self.moved.clear();
            if slot == 1 {
                let (run, attempt, _, _) = self.orders.get_mut(&id).expect("order").retry.take().expect("retry");
                self.attempt(id, run, attempt, clock, at);
                self.orders.get_mut(&id).expect("order").finish_if_done();
            } else {
                self.period(id, clock, at);
            }
            self.settle_triggers(ts);
        }
    }

    fn period(&mut self, id: u128, clock: u64, ts: u64) {
        let order = &self.orders[&id];
        let o = order.standing().expect("standing");
        let (created, mut run) = (order.created_at, order.runs + 1);
        let last = match o.catch_up {
            cu::LATEST => last_due_by(&o, created, run, clock),
            cu::NONE if order.next_due + GRACE < clock => last_due_by(&o, created, run, clock - GRACE - 1) + 1,
            _ => run,
        };
        if last > run {
            let order = self.orders.get_mut(&id).expect("order");
            order.remember((ts, last - 1, (last - run) as u128, R::Ok, RunEvent::Skipped, 0));
            run = last;
        }
        let runnable = period_due(&o, created, run).is_some_and(|d| d <= clock);
        if runnable {
            self.attempt(id, run, 0, clock, ts);
        }
        let order = self.orders.get_mut(&id).expect("order");
        order.runs = if runnable { run } else { run - 1 };
        order.next_due = period_due(&o, created, order.runs + 1).unwrap_or(0);
        order.finish_if_done();
    }

    fn attempt(&mut self, id: u128, run: u64, attempt: u8, clock: u64, ts: u64) {
        let order = &self.orders[&id];
        let o = order.standing().expect("standing");
        let amount = order.amount;
        let (event, code) = if o.flags & of::REMIND != 0 {
            (RunEvent::Reminded, R::Ok)
        } else {
            match self.run_transfer(id, run, amount, ts) {
                R::Ok => (RunEvent::Paid, R::Ok),
                code if attempt < o.retry_attempts => (RunEvent::Retrying, code),
                code => (RunEvent::Failed, code),
            }
        };
        let order = self.orders.get_mut(&id).expect("order");
        if event == RunEvent::Retrying {
            order.drop_retry(ts);
            order.retry = Some((run, attempt + 1, clock + o.retry_spacing_s as u64 * S, code));
        }
        order.remember((ts, run, amount, code, event, attempt));
    }

    fn run_transfer(&mut self, id: u128, run: u64, amount: u128, ts: u64) -> R {
        let order = &self.orders[&id];
        let (debit_account_id, credit_account_id) = order.accounts();
        let (ledger, code) = match order.spec {
            OrderSpec::Standing(o) => (o.ledger, o.code),
            OrderSpec::Trigger(t) => (t.ledger, t.code),
        };
        let t = Transfer {
            id: run_id(order.number, run),
            debit_account_id,
            credit_account_id,
            amount,
            user_data_128: id,
            user_data_64: run,
            ledger,
            code,
            ..Default::default()
        };
        if self.transfers.contains_key(&t.id) || self.failed.contains_key(&t.id) {
            return R::IdReserved;
        }
        self.post(t, ts)
    }

    /// Evaluates, by number, the active triggers watching an account moved since `moved` was
    /// cleared; firings take timestamps from `ts` and move nothing that is evaluated again.
    pub(crate) fn settle_triggers(&mut self, ts: &mut u64) {
        let moved: Vec<u128> = self.moved.drain(..).collect();
        let mut watching: Vec<(u32, u128)> = self
            .orders
            .iter()
            .filter(|(_, o)| o.status == OrderStatus::Active && matches!(o.spec, OrderSpec::Trigger(_)) && moved.contains(&o.accounts().1))
            .map(|(id, o)| (o.number, *id))
            .collect();
        watching.sort();
        self.firing = true;
        for (_, id) in watching {
            self.evaluate(id, ts);
        }
        self.firing = false;
    }

    /// Notes the sides of a movement that a live (active or paused) trigger watches now; a
    /// trigger's own transfer notes nothing.
    pub(crate) fn note_moved(&mut self, debit: u128, credit: u128) {
        if self.firing {
            return;
        }
        for account in [debit, credit] {
            let watched = self.orders.values().any(|o| !o.ended() && matches!(o.spec, OrderSpec::Trigger(_)) && o.accounts().1 == account);
            if watched {
                self.moved.push(account);
            }
        }
    }

    fn available_below(&self, account: u128, threshold: u128) -> bool {
        let a = &self.accounts[&account];
        let needed = threshold.checked_add(a.debits_posted).and_then(|v| v.checked_add(a.debits_pending));
        needed.is_none_or(|n| a.credits_posted < n)
    }

    fn debt(&self, account: u128) -> u128 {
        let a = &self.accounts[&account];
        a.debits_posted.saturating_sub(a.credits_posted)
    }

    fn evaluate(&mut self, id: u128, ts: &mut u64) {
        let order = &self.orders[&id];
        let OrderSpec::Trigger(t) = order.spec else { unreachable!("a trigger") };
        let watched = t.credit_account_id;
        if t.kind == tk::THRESHOLD {
            let below = self.available_below(watched, t.threshold);
            if !below {
                self.orders.get_mut(&id).expect("order").armed = true;
                return;
            }
            if !order.armed {
                return;
            }
            let a = &self.accounts[&watched];
            let amount = if t.flags & of::TOP_UP != 0 {
                t.target
                    .checked_add(a.debits_posted)
                    .and_then(|v| v.checked_add(a.debits_pending))
                    .map_or(u128::MAX, |n| n - a.credits_posted)
            } else {
                order.amount
            };
            let at = *ts;
            *ts += 1;
            self.fire(id, amount, at);
            let rearm = !self.available_below(watched, t.threshold);
            self.orders.get_mut(&id).expect("order").armed = rearm;
        } else {
            let debt = self.debt(watched);
            if debt > order.debt_seen {
                let at = *ts;
                *ts += 1;
                if debt > t.threshold {
                    let order = self.orders.get_mut(&id).expect("order");
                    order.runs += 1;
                    let run = order.runs;
                    order.remember((at, run, debt, R::Ok, RunEvent::OverCap, 0));
                } else {
                    self.fire(id, debt, at);
                }
            }
            let now = self.debt(watched);
            self.orders.get_mut(&id).expect("order").debt_seen = now;
        }
    }

    fn fire(&mut self, id: u128, amount: u128, ts: u64) {
        let order = &self.orders[&id];
        let OrderSpec::Trigger(t) = order.spec else { unreachable!("a trigger") };
        let run = order.runs + 1;
        let start = if t.cap_window == 0 { 0 } else { window_of(&VelocityRule { window: t.cap_window, ..Default::default() }, ts) };
        let (count, used) = if order.window.0 == start { (order.window.1, order.window.2) } else { (0, 0) };
        let capped = (t.cap_count != 0 && count >= t.cap_count) || (t.cap_amount != 0 && used.saturating_add(amount) > t.cap_amount);
        let (event, code) = if capped {
            (RunEvent::Capped, R::Ok)
        } else if t.flags & of::REMIND != 0 {
            (RunEvent::Reminded, R::Ok)
        } else {
            match self.run_transfer(id, run, amount, ts) {
                R::Ok => (RunEvent::Paid, R::Ok),
                code => (RunEvent::Failed, code),
            }
        };
        let order = self.orders.get_mut(&id).expect("order");
        order.runs = run;
        let counted = matches!(event, RunEvent::Paid | RunEvent::Reminded);
        order.window = if counted { (start, count.saturating_add(1), used.saturating_add(amount)) } else { (start, count, used) };
        order.remember((ts, run, amount, code, event, 0));
    }
}
