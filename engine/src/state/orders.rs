//! Recurring payments inside the engine: standing orders due on the logged clock, threshold and
//! debt triggers evaluated at the point in the total order where a balance moved, each run a
//! transfer with an id derived from the order and the run number, a bounded run history per
//! order. The semantics are `docs/recurring.md`'s.

use std::collections::VecDeque;

use super::order_table::OrderTable;
use super::policy::{calendar_start, civil_from_days, days_from_civil};
use super::*;
use crate::limits::{
    CATCH_UP_GRACE_S, DUE_RUNS_PER_BATCH_MAX, ORDERS_PER_ACCOUNT_MAX, ORDER_PERIOD_MAX_S, ORDER_RETRIES_MAX, RUN_HISTORY_MAX,
    TRIGGERS_PER_ACCOUNT_MAX,
};
use crate::types::{
    catch_up, order_flags as of, order_unit as unit, trigger_kind, velocity_window as vw, OrderChange, Record, StandingOrder, Trigger,
    RECORD_SIZE,
};

const NS_PER_DAY: u64 = 86_400 * NS_PER_S;

/// The top 32 bits of every transfer id the engine derives for a run or firing; client transfer
/// ids with these bits are refused (`id_reserved`).
pub const RUN_ID_PREFIX: u128 = 0xFFFF_FFFF << 96;

/// The transfer id of run `run` of the order numbered `number`: the prefix, the order's number
/// (bits 64 to 95) and the run number (bits 0 to 63).
pub fn run_id(number: u32, run: u64) -> u128 {
    RUN_ID_PREFIX | u128::from(number) << 64 | u128::from(run)
}

/// Whether a client-chosen transfer id lies in the range reserved for runs.
pub fn is_reserved_id(id: u128) -> bool {
    id & RUN_ID_PREFIX == RUN_ID_PREFIX
}

/// Where an order stands.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Runs when due (a trigger: watches its account).
    Active = 0,
    /// Paused by `pause_order`: nothing runs until `resume_order`.
    Paused = 1,
    /// Cancelled by `cancel_order`, for good.
    Cancelled = 2,
    /// Ran its last period (`count_max` or `end_at` reached).
    Finished = 3,
}

impl OrderStatus {
    /// The status for its byte, if it names one.
    pub fn from_u8(value: u8) -> Option<OrderStatus> {
        [OrderStatus::Active, OrderStatus::Paused, OrderStatus::Cancelled, OrderStatus::Finished].into_iter().find(|s| *s as u8 == value)
    }

    /// Its name in the CLI and the documents.
    pub fn name(self) -> &'static str {
        ["active", "paused", "cancelled", "finished"][self as usize]
    }

    fn ended(self) -> bool {
        matches!(self, OrderStatus::Cancelled | OrderStatus::Finished)
    }
}

/// What one entry of a run history records.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunEvent {
    /// The run's transfer was made.
    Paid = 1,
    /// The run failed for good (`code` says why).
    Failed = 2,
    /// The run failed and will be retried.
    Retrying = 3,
    /// Periods were skipped (`catch_up`, or a pause): `run` is the last one, `amount` how many.
    Skipped = 4,
    /// A reminder: no money moved; `amount` is what the order would have paid.
    Reminded = 5,
    /// A debt above the trigger's cap: not paid; `amount` is the debt.
    OverCap = 6,
    /// The trigger's cap for the window was reached: not paid.
    Capped = 7,
}

impl RunEvent {
    /// The event for its byte, if it names one.
    pub fn from_u8(value: u8) -> Option<RunEvent> {
        use RunEvent as E;
        [E::Paid, E::Failed, E::Retrying, E::Skipped, E::Reminded, E::OverCap, E::Capped].into_iter().find(|e| *e as u8 == value)
    }

    /// Its name in the CLI and the documents.
    pub fn name(self) -> &'static str {
        ["paid", "failed", "retrying", "skipped", "reminded", "over_cap", "capped"][self as usize - 1]
    }
}

/// One entry of an order's run history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunEntry {
    /// The engine timestamp of the run.
    pub at: u64,
    /// The run number (its transfer id is [`run_id`] of the order's number and this).
    pub run: u64,
    /// The amount paid or tried (see [`RunEvent`] for the others).
    pub amount: u128,
    /// The transfer's result (`ok` when paid or reminded).
    pub code: ResultCode,
    /// What happened.
    pub event: RunEvent,
    /// 0 for the first try of a run, then the retry's number.
    pub attempt: u8,
}

/// What an order is: a standing order or a trigger, as it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderSpec {
    /// A standing order.
    Standing(StandingOrder),
    /// A trigger.
    Trigger(Trigger),
}

impl OrderSpec {
    /// The order's id.
    pub fn id(&self) -> u128 {
        match self {
            OrderSpec::Standing(o) => o.id,
            OrderSpec::Trigger(t) => t.id,
        }
    }

    pub(crate) fn accounts(&self) -> (u128, u128) {
        match self {
            OrderSpec::Standing(o) => (o.debit_account_id, o.credit_account_id),
            OrderSpec::Trigger(t) => (t.debit_account_id, t.credit_account_id),
        }
    }

    /// The ledger and the transfer code of every run.
    pub fn ledger_and_code(&self) -> (u32, u16) {
        match self {
            OrderSpec::Standing(o) => (o.ledger, o.code),
            OrderSpec::Trigger(t) => (t.ledger, t.code),
        }
    }

    /// The record's 128 bytes (snapshots, the digest, replies).
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        match self {
            OrderSpec::Standing(o) => o.to_bytes(),
            OrderSpec::Trigger(t) => t.to_bytes(),
        }
    }

    /// 1 for a standing order, 2 for a trigger (the state's `kind` byte).
    pub fn kind_byte(&self) -> u8 {
        match self {
            OrderSpec::Standing(_) => 1,
            OrderSpec::Trigger(_) => 2,
        }
    }

    /// The spec for a kind byte and record bytes.
    pub fn decode(kind: u8, bytes: &[u8; RECORD_SIZE]) -> Option<OrderSpec> {
        match kind {
            1 => Some(OrderSpec::Standing(StandingOrder::decode(bytes))),
            2 => Some(OrderSpec::Trigger(Trigger::decode(bytes))),
            _ => None,
        }
    }
}

/// A failed run waiting for its retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    /// The run retried.
    pub run: u64,
    /// The retry's number (1 for the first retry).
    pub attempt: u8,
    /// When it is due (ns).
    pub due: u64,
    /// The code the last try failed with.
    pub code: ResultCode,
}

/// A standing order or trigger and where it stands: the primary state a snapshot keeps.
#[derive(Clone, Debug)]
pub struct Order {
    /// The order as made (`timestamp`: zero).
    pub spec: OrderSpec,
    /// Its number: 1 for the first order made, and so on (part of its runs' transfer ids).
    pub number: u32,
    /// When it was made.
    pub created_at: u64,
    /// Where it stands.
    pub status: OrderStatus,
    /// The amount of the next run (the spec's, until `amend_order`).
    pub amount: u128,
    /// Standing orders: periods reached so far (the last period's run number). Triggers:
    /// firings so far.
    pub runs: u64,
    /// Standing orders: when the next period is due; 0 when none is left.
    pub next_due: u64,
    /// A failed run waiting for its retry.
    pub retry: Option<Retry>,
    /// Threshold triggers: fires at the next crossing below the threshold.
    pub armed: bool,
    /// Debt triggers: the debt seen at the last evaluation.
    pub debt_seen: u128,
    /// Trigger caps: the start of the current window, the firings and the amount in it.
    pub window: (u64, u32, u128),
    /// The newest runs, oldest first; at most [`RUN_HISTORY_MAX`].
    pub history: VecDeque<RunEntry>,
    /// Account indexes: the debit (paying, funding) side and the credit (paid, watched) side.
    pub(crate) debit: u32,
    pub(crate) credit: u32,
}

/// Bytes of an order's state in snapshots and replies (`docs/protocol.md`, "Order").
pub const ORDER_STATE_SIZE: usize = 128;
/// Bytes of one run-history entry in snapshots and replies.
pub const RUN_ENTRY_SIZE: usize = 48;

impl Order {
    /// The state's canonical bytes (everything but the spec and the history).
    pub fn state_bytes(&self) -> [u8; ORDER_STATE_SIZE] {
        let mut out = [0u8; ORDER_STATE_SIZE];
        out[0..4].copy_from_slice(&self.number.to_le_bytes());
        out[4] = self.status as u8;
        out[5] = self.spec.kind_byte();
        out[6] = u8::from(self.armed);
        let retry = self.retry.unwrap_or(Retry { run: 0, attempt: 0, due: 0, code: ResultCode::Ok });
        out[7] = retry.attempt;
        out[8..16].copy_from_slice(&self.created_at.to_le_bytes());
        out[16..24].copy_from_slice(&self.runs.to_le_bytes());
        out[24..32].copy_from_slice(&self.next_due.to_le_bytes());
        out[32..40].copy_from_slice(&retry.run.to_le_bytes());
        out[40..48].copy_from_slice(&retry.due.to_le_bytes());
        out[48..64].copy_from_slice(&self.amount.to_le_bytes());
        out[64..80].copy_from_slice(&self.debt_seen.to_le_bytes());
        out[80..96].copy_from_slice(&self.window.2.to_le_bytes());
        out[96..104].copy_from_slice(&self.window.0.to_le_bytes());
        out[104..108].copy_from_slice(&self.window.1.to_le_bytes());
        out[108..112].copy_from_slice(&(retry.code as u32).to_le_bytes());
        out[112..116].copy_from_slice(&(self.history.len() as u32).to_le_bytes());
        out
    }

    /// An order from its spec, state bytes and history (a snapshot, a reply); `None` where a
    /// byte names nothing. Account indexes are left `NONE` for the caller.
    pub fn from_parts(spec_bytes: &[u8; RECORD_SIZE], state: &[u8; ORDER_STATE_SIZE], history: VecDeque<RunEntry>) -> Option<Order> {
        let u64_at = |at: usize| u64::from_le_bytes(state[at..at + 8].try_into().expect("8 bytes"));
        let u128_at = |at: usize| u128::from_le_bytes(state[at..at + 16].try_into().expect("16 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(state[at..at + 4].try_into().expect("4 bytes"));
        let retry_run = u64_at(32);
        let retry = (retry_run != 0).then_some(Retry {
            run: retry_run,
            attempt: state[7],
            due: u64_at(40),
            code: ResultCode::from_u32(u32_at(108))?,
        });
        if state[6] > 1 || state[116..].iter().any(|b| *b != 0) || u32_at(112) as usize != history.len() {
            return None;
        }
        // Without a retry its fields are zero: one state, one encoding.
        if retry.is_none() && (state[7] != 0 || u64_at(40) != 0 || u32_at(108) != 0) {
            return None;
        }
        Some(Order {
            spec: OrderSpec::decode(state[5], spec_bytes)?,
            number: u32_at(0),
            created_at: u64_at(8),
            status: OrderStatus::from_u8(state[4])?,
            amount: u128_at(48),
            runs: u64_at(16),
            next_due: u64_at(24),
            retry,
            armed: state[6] == 1,
            debt_seen: u128_at(64),
            window: (u64_at(96), u32_at(104), u128_at(80)),
            history,
            debit: NONE,
            credit: NONE,
        })
    }
}

impl RunEntry {
    /// The entry's canonical bytes, with the order's number in front (0 in replies).
    pub fn to_bytes(&self, number: u32) -> [u8; RUN_ENTRY_SIZE] {
        let mut out = [0u8; RUN_ENTRY_SIZE];
        out[0..4].copy_from_slice(&number.to_le_bytes());
        out[4] = self.event as u8;
        out[5] = self.attempt;
        out[8..16].copy_from_slice(&self.at.to_le_bytes());
        out[16..24].copy_from_slice(&self.run.to_le_bytes());
        out[24..28].copy_from_slice(&(self.code as u32).to_le_bytes());
        out[32..48].copy_from_slice(&self.amount.to_le_bytes());
        out
    }

    /// An entry and its order's number from its bytes; `None` where a byte names nothing.
    pub fn from_bytes(bytes: &[u8; RUN_ENTRY_SIZE]) -> Option<(u32, RunEntry)> {
        let number = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        if bytes[6..8] != [0, 0] || bytes[28..32] != [0; 4] {
            return None;
        }
        let entry = RunEntry {
            event: RunEvent::from_u8(bytes[4])?,
            attempt: bytes[5],
            at: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            run: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            code: ResultCode::from_u32(u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")))?,
            amount: u128::from_le_bytes(bytes[32..48].try_into().expect("16 bytes")),
        };
        Some((number, entry))
    }
}

/// Orders are equal when their primary state is: the spec, the state and the history (not the
/// engine's bookkeeping beside them).
impl PartialEq for Order {
    fn eq(&self, other: &Order) -> bool {
        self.spec == other.spec && self.state_bytes() == other.state_bytes() && self.history == other.history
    }
}

impl Eq for Order {}

/// Due-queue slots of an order: its next period and its pending retry.
const SLOT_PERIOD: u8 = 0;
const SLOT_RETRY: u8 = 1;

impl Order {
    fn standing(&self) -> Option<&StandingOrder> {
        match &self.spec {
            OrderSpec::Standing(o) => Some(o),
            OrderSpec::Trigger(_) => None,
        }
    }

    fn trigger(&self) -> Option<&Trigger> {
        match &self.spec {
            OrderSpec::Trigger(t) => Some(t),
            OrderSpec::Standing(_) => None,
        }
    }

    /// The due-queue entries the order's state implies.
    pub(crate) fn queue_entries(&self) -> impl Iterator<Item = (u64, u32, u8)> {
        let active = self.status == OrderStatus::Active;
        let period = (active && self.next_due != 0).then_some((self.next_due, self.number, SLOT_PERIOD));
        let retry = self.retry.filter(|_| active).map(|r| (r.due, self.number, SLOT_RETRY));
        period.into_iter().chain(retry)
    }

    fn remember(&mut self, entry: RunEntry) {
        if self.history.len() == RUN_HISTORY_MAX {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }
}

/// Due time of run `run` (from 1) of a standing order made at `created_at`; `None` past the
/// representable range.
pub fn due_of(o: &StandingOrder, created_at: u64, run: u64) -> Option<u64> {
    let first = if o.first_due_at == 0 { created_at } else { o.first_due_at };
    let steps = run.checked_sub(1)?;
    let step_ns = match o.unit {
        unit::SECONDS => NS_PER_S,
        unit::DAYS => NS_PER_DAY,
        unit::WEEKS => 7 * NS_PER_DAY,
        _ => return monthly_due(o, first, steps),
    };
    steps.checked_mul(u64::from(o.period))?.checked_mul(step_ns)?.checked_add(first)
}

/// The `steps`-th monthly instant at or after `first`: day `o.day` (or the month's last day) at
/// `first`'s time of day, every `o.period` months from `first`'s month.
fn monthly_due(o: &StandingOrder, first: u64, steps: u64) -> Option<u64> {
    let (year, month, _) = civil_from_days(first / NS_PER_DAY);
    let time_of_day = first % NS_PER_DAY;
    let instant = |j: u64| -> Option<u64> {
        let months = (year * 12 + month - 1).checked_add(j.checked_mul(u64::from(o.period))?)?;
        let (y, m) = (months / 12, months % 12 + 1);
        if y > 9_999 {
            return None;
        }
        let day = u64::from(o.day).min(month_length(y, m));
        days_from_civil(y, m, day).checked_mul(NS_PER_DAY)?.checked_add(time_of_day)
    };
    let skip_first = instant(0)? < first;
    instant(steps.checked_add(u64::from(skip_first))?)
}

/// Days in month `month` (1-12) of `year`.
pub fn month_length(year: u64, month: u64) -> u64 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1]
}

/// Whether run `run` of the order lies within its `count_max` and `end_at`, and when it is due.
fn period_due(o: &StandingOrder, created_at: u64, run: u64) -> Option<u64> {
    if o.count_max != 0 && run > u64::from(o.count_max) {
        return None;
    }
    let due = due_of(o, created_at, run)?;
    (o.end_at == 0 || due <= o.end_at).then_some(due)
}

/// The last run number after `from` whose due time is at or before `by` (and that exists), or
/// `from` when there is none: an exponential then binary search over the rising due times.
fn last_due_by(o: &StandingOrder, created_at: u64, from: u64, by: u64) -> u64 {
    let due_by = |run: u64| period_due(o, created_at, run).is_some_and(|due| due <= by);
    let (mut low, mut step) = (from, 1u64);
    while due_by(low.saturating_add(step)) && step < 1 << 62 {
        low += step;
        step *= 2;
    }
    let mut high = low.saturating_add(step);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if due_by(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

/// The shortest a standing order's period can be, in seconds (months: 28 days).
fn period_min_s(o: &StandingOrder) -> u64 {
    let unit_s = match o.unit {
        unit::SECONDS => 1,
        unit::DAYS => 86_400,
        unit::WEEKS => 7 * 86_400,
        _ => 28 * 86_400,
    };
    u64::from(o.period) * unit_s
}

/// A standing order's own fields, in precedence order (the accounts are checked after).
fn check_standing(o: &StandingOrder, ts: u64) -> Option<ResultCode> {
    use ResultCode as R;
    let unit_max_s = match o.unit {
        unit::SECONDS => 1,
        unit::DAYS => 86_400,
        unit::WEEKS => 7 * 86_400,
        unit::MONTHS => 31 * 86_400,
        _ => return Some(R::OrderPeriodInvalid),
    };
    if o.period == 0 || u64::from(o.period) * unit_max_s > ORDER_PERIOD_MAX_S {
        return Some(R::OrderPeriodInvalid);
    }
    let day_ok = if o.unit == unit::MONTHS { (1..=31).contains(&o.day) } else { o.day == 0 };
    if !day_ok {
        return Some(R::OrderDayInvalid);
    }
    if o.first_due_at != 0 && o.first_due_at < ts {
        return Some(R::OrderFirstDueInPast);
    }
    if o.end_at != 0 && o.end_at < o.first_due_at.max(ts) {
        return Some(R::OrderEndInvalid);
    }
    if o.catch_up > catch_up::NONE {
        return Some(R::OrderCatchUpInvalid);
    }
    let retries = u64::from(o.retry_attempts);
    let spacing = u64::from(o.retry_spacing_s);
    if retries as usize > ORDER_RETRIES_MAX || (retries == 0) != (spacing == 0) || retries * spacing >= period_min_s(o) {
        return Some(R::OrderRetryInvalid);
    }
    if o.amount == 0 {
        return Some(R::OrderAmountInvalid);
    }
    None
}

/// A trigger's own fields, in precedence order.
fn check_trigger(t: &Trigger) -> Option<ResultCode> {
    use ResultCode as R;
    let top_up = t.flags & of::TOP_UP != 0;
    match t.kind {
        trigger_kind::THRESHOLD if top_up && t.target <= t.threshold => return Some(R::TriggerThresholdInvalid),
        trigger_kind::THRESHOLD if !top_up && t.target != 0 => return Some(R::TriggerThresholdInvalid),
        trigger_kind::THRESHOLD => {}
        trigger_kind::DEBT if top_up || t.threshold == 0 || t.target != 0 => return Some(R::TriggerThresholdInvalid),
        trigger_kind::DEBT => {}
        _ => return Some(R::TriggerKindInvalid),
    }
    let fixed = t.kind == trigger_kind::THRESHOLD && !top_up;
    if fixed != (t.amount != 0) {
        return Some(R::OrderAmountInvalid);
    }
    let capped = t.cap_count != 0 || t.cap_amount != 0;
    let window_ok = if capped { (vw::MINUTE..=vw::MONTH).contains(&t.cap_window) } else { t.cap_window == 0 };
    if !window_ok {
        return Some(R::TriggerCapInvalid);
    }
    None
}

/// The first field in which an order made again differs from the one that exists, as a code.
fn order_exists(new: &OrderSpec, existing: &OrderSpec) -> ResultCode {
    if new == existing {
        ResultCode::Exists
    } else {
        ResultCode::OrderExistsWithDifferentFields
    }
}

/// Whether the available balance (credits posted less debits posted and pending) of `a` lies
/// below `threshold`.
fn below(a: &Account, threshold: u128) -> bool {
    match threshold.checked_add(a.debits_posted).and_then(|v| v.checked_add(a.debits_pending)) {
        Some(needed) => a.credits_posted < needed,
        None => true,
    }
}

impl Engine {
    /// `create_standing_order`.
    pub(super) fn create_standing_order(&mut self, o: &StandingOrder, ts: u64) -> ResultCode {
        use ResultCode as R;
        if o.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if o.reserved != [0; 4] {
            return R::ReservedField;
        }
        if o.flags & !(of::LINKED | of::REMIND) != 0 {
            return R::ReservedFlag;
        }
        self.create_order(OrderSpec::Standing(*o), ts, || check_standing(o, ts))
    }

    /// `create_trigger`.
    pub(super) fn create_trigger(&mut self, t: &Trigger, ts: u64) -> ResultCode {
        if t.reserved != [0; 2] {
            return ResultCode::ReservedField;
        }
        if t.flags & !of::ALL != 0 {
            return ResultCode::ReservedFlag;
        }
        self.create_order(OrderSpec::Trigger(*t), ts, || check_trigger(t))
    }

    /// The checks both kinds share, in precedence order, around the kind's own (`check`).
    fn create_order(&mut self, spec: OrderSpec, ts: u64, check: impl FnOnce() -> Option<ResultCode>) -> ResultCode {
        use ResultCode as R;
        let id = spec.id();
        if id == 0 {
            return R::IdMustNotBeZero;
        }
        if id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        let spec = match spec {
            OrderSpec::Standing(o) => OrderSpec::Standing(StandingOrder { flags: o.flags & !of::LINKED, ..o }),
            OrderSpec::Trigger(t) => OrderSpec::Trigger(Trigger { flags: t.flags & !of::LINKED, ..t }),
        };
        if let Some(&index) = self.order_index.get(&id) {
            return order_exists(&spec, &self.orders[index as usize].spec);
        }
        let (debit_id, credit_id) = spec.accounts();
        if let Some(code) = check_sides(debit_id, credit_id) {
            return code;
        }
        let (ledger, code) = spec.ledger_and_code();
        if ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if code == 0 {
            return R::CodeMustNotBeZero;
        }
        if let Some(code) = check() {
            return code;
        }
        let (dr, cr) = match self.order_accounts(debit_id, credit_id, ledger) {
            Ok(found) => found,
            Err(code) => return code,
        };
        if let Some(code) = self.check_order_room(&spec, dr, cr) {
            return code;
        }
        self.insert_order(spec, dr, cr, ts);
        R::Ok
    }

    /// Both accounts of a new order: found, on the order's ledger.
    fn order_accounts(&self, debit_id: u128, credit_id: u128, ledger: u32) -> Result<(u32, u32), ResultCode> {
        use ResultCode as R;
        let dr = *self.account_index.get(&debit_id).ok_or(R::DebitAccountNotFound)?;
        let cr = *self.account_index.get(&credit_id).ok_or(R::CreditAccountNotFound)?;
        let (d, c) = (&self.accounts[dr as usize], &self.accounts[cr as usize]);
        if d.ledger != c.ledger {
            return Err(R::AccountsMustHaveTheSameLedger);
        }
        if ledger != d.ledger {
            return Err(R::TransferMustHaveTheSameLedgerAsAccounts);
        }
        Ok((dr, cr))
    }

    /// Whether the engine and both accounts have room for one more live order.
    fn check_order_room(&self, spec: &OrderSpec, dr: u32, cr: u32) -> Option<ResultCode> {
        let full = |account: u32| self.orders_by_account.get(&account).is_some_and(|list| list.len() >= ORDERS_PER_ACCOUNT_MAX);
        if full(dr) || full(cr) {
            return Some(ResultCode::OrdersPerAccountLimitReached);
        }
        if matches!(spec, OrderSpec::Trigger(_)) && self.watchers.get(&cr).is_some_and(|list| list.len() >= TRIGGERS_PER_ACCOUNT_MAX) {
            return Some(ResultCode::OrdersPerAccountLimitReached);
        }
        (self.orders.len() >= self.limits.accounts_max as usize).then_some(ResultCode::OrdersLimitReached)
    }

    fn insert_order(&mut self, spec: OrderSpec, dr: u32, cr: u32, ts: u64) {
        let number = self.orders.len() as u32 + 1;
        let amount = match &spec {
            OrderSpec::Standing(o) => o.amount,
            OrderSpec::Trigger(t) => t.amount,
        };
        let next_due = match &spec {
            OrderSpec::Standing(o) => period_due(o, ts, 1).unwrap_or(0),
            OrderSpec::Trigger(_) => 0,
        };
        let status = if matches!(spec, OrderSpec::Standing(_)) && next_due == 0 { OrderStatus::Finished } else { OrderStatus::Active };
        let order = Order {
            spec,
            number,
            created_at: ts,
            status,
            amount,
            runs: 0,
            next_due,
            retry: None,
            armed: true,
            debt_seen: 0,
            window: (0, 0, 0),
            history: VecDeque::new(),
            debit: dr,
            credit: cr,
        };
        self.order_index.insert(order.spec.id(), number - 1);
        self.orders.push(order);
        self.queue_order(number - 1);
        self.list_order(number - 1);
        self.touch_order(number - 1);
        self.record(Undo::OrderInserted);
    }

    /// Puts an order's due-queue entries in the queue.
    fn queue_order(&mut self, index: u32) {
        let entries: Vec<_> = self.orders[index as usize].queue_entries().collect();
        self.due.extend(entries);
    }

    /// Takes an order's due-queue entries out of the queue.
    fn unqueue_order(&mut self, index: u32) {
        for entry in self.orders[index as usize].queue_entries().collect::<Vec<_>>() {
            self.due.remove(&entry);
        }
    }

    /// Lists a live order under its accounts (and a trigger as its account's watcher).
    fn list_order(&mut self, index: u32) {
        let order = &self.orders[index as usize];
        if order.status.ended() {
            return;
        }
        let (dr, cr, trigger) = (order.debit, order.credit, order.trigger().is_some());
        for account in [dr, cr] {
            let list = self.orders_by_account.entry(account).or_default();
            let at = list.partition_point(|&o| o < index);
            list.insert(at, index);
        }
        if trigger {
            let list = self.watchers.entry(cr).or_default();
            let at = list.partition_point(|&o| o < index);
            list.insert(at, index);
            self.account_meta[cr as usize].watched = true;
        }
    }

    /// Removes what [`Engine::list_order`] added.
    fn unlist_order(&mut self, index: u32) {
        let order = &self.orders[index as usize];
        let (dr, cr, trigger) = (order.debit, order.credit, order.trigger().is_some());
        for account in [dr, cr] {
            if let Some(list) = self.orders_by_account.get_mut(&account) {
                list.retain(|&o| o != index);
                if list.is_empty() {
                    self.orders_by_account.remove(&account);
                }
            }
        }
        if let Some(list) = self.watchers.get_mut(&cr).filter(|_| trigger) {
            list.retain(|&o| o != index);
            if list.is_empty() {
                self.watchers.remove(&cr);
                self.account_meta[cr as usize].watched = false;
            }
        }
    }

    /// Changes an order's state through `change`, keeping the due queue, the per-account lists
    /// and the undo log in step.
    fn change_order<T>(&mut self, index: u32, change: impl FnOnce(&mut Order) -> T) -> T {
        self.unqueue_order(index);
        if self.recording {
            let old = Box::new(self.orders[index as usize].clone());
            self.undo.push(Undo::OrderReplaced { index, old });
        }
        let was_live = !self.orders[index as usize].status.ended();
        let newest = self.feed_on.then(|| self.orders[index as usize].history.back().copied()).flatten();
        let out = self.orders.update(index as usize, change);
        if self.feed_on {
            self.note_runs(index, newest);
        }
        self.queue_order(index);
        if was_live && self.orders[index as usize].status.ended() {
            self.unlist_order(index);
        }
        self.touch_order(index);
        out
    }

    /// Undoes an insertion (of the last order) or, with `old`, a change.
    pub(super) fn undo_order(&mut self, change: Option<(u32, Box<Order>)>) {
        match change {
            Some((index, old)) => {
                self.unqueue_order(index);
                let was_ended = self.orders[index as usize].status.ended();
                self.orders.update(index as usize, |order| *order = *old);
                self.queue_order(index);
                if was_ended {
                    self.list_order(index);
                }
            }
            None => {
                let index = self.orders.len() as u32 - 1;
                self.unqueue_order(index);
                self.unlist_order(index);
                let order = self.orders.pop().expect("undo: order");
                self.order_index.remove(&order.spec.id());
            }
        }
    }

    fn touch_order(&mut self, index: u32) {
        self.digest.mark_order(index);
    }

    /// `pause_order`, `resume_order`, `cancel_order` and `amend_order`.
    pub(super) fn manage_order(&mut self, c: &OrderChange, action: Manage, ts: u64) -> ResultCode {
        use ResultCode as R;
        if c.reserved != [0; 94] || (action != Manage::Amend && c.amount != 0) {
            return R::ReservedField;
        }
        if c.flags & !of::LINKED != 0 {
            return R::ReservedFlag;
        }
        if c.order_id == 0 {
            return R::IdMustNotBeZero;
        }
        if c.order_id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        let Some(&index) = self.order_index.get(&c.order_id) else {
            return R::OrderNotFound;
        };
        let order = &self.orders[index as usize];
        if order.status.ended() {
            return R::OrderEnded;
        }
        let fixed = match &order.spec {
            OrderSpec::Standing(_) => true,
            OrderSpec::Trigger(t) => t.kind == trigger_kind::THRESHOLD && t.flags & of::TOP_UP == 0,
        };
        if action == Manage::Amend && (!fixed || c.amount == 0) {
            return R::OrderAmountInvalid;
        }
        let status = order.status;
        match action {
            Manage::Pause if status == OrderStatus::Paused => {}
            Manage::Resume if status == OrderStatus::Active => {}
            Manage::Pause => self.change_order(index, |o| {
                drop_retry(o, ts);
                o.status = OrderStatus::Paused;
            }),
            Manage::Resume => self.change_order(index, |o| resume(o, ts)),
            Manage::Cancel => self.change_order(index, |o| {
                drop_retry(o, ts);
                o.status = OrderStatus::Cancelled;
            }),
            Manage::Amend => self.change_order(index, |o| o.amount = c.amount),
        }
        R::Ok
    }

    /// Runs the standing orders and retries due by `clock`, in due order, at most
    /// [`DUE_RUNS_PER_BATCH_MAX`] of them; each takes the next timestamp from `cursor`, and the
    /// triggers its transfer sets off follow it. Returns how many ran.
    pub(super) fn run_due(&mut self, clock: u64, cursor: &mut u64) -> u32 {
        let mut ran = 0;
        while (ran as usize) < DUE_RUNS_PER_BATCH_MAX {
            let Some(&(due, number, slot)) = self.due.first() else {
                break;
            };
            if due > clock {
                break;
            }
            let ts = *cursor;
            *cursor += 1;
            let index = number - 1;
            if slot == SLOT_RETRY {
                let retry = self.change_order(index, |o| o.retry.take()).expect("a queued retry is pending");
                self.attempt_run(index, retry.run, retry.attempt, clock, ts);
                self.change_order(index, finish_if_done);
            } else {
                self.run_period(index, clock, ts);
            }
            self.settle_triggers(cursor);
            ran += 1;
        }
        ran
    }

    /// The period due now: skipped by `catch_up`, or run; then the next period is queued.
    fn run_period(&mut self, index: u32, clock: u64, ts: u64) {
        let order = &self.orders[index as usize];
        let o = *order.standing().expect("only standing orders have periods");
        let (created_at, mut run) = (order.created_at, order.runs + 1);
        let late_by = |due: u64| due.saturating_add(CATCH_UP_GRACE_S * NS_PER_S) < clock;
        let last = match o.catch_up {
            catch_up::LATEST => last_due_by(&o, created_at, run, clock),
            catch_up::NONE if late_by(order.next_due) => {
                let by = clock.saturating_sub(CATCH_UP_GRACE_S * NS_PER_S + 1);
                last_due_by(&o, created_at, run, by) + 1
            }
            _ => run,
        };
        if last > run {
            let skipped = last - run;
            self.change_order(index, |order| {
                let entry = RunEntry {
                    at: ts,
                    run: last - 1,
                    amount: u128::from(skipped),
                    code: ResultCode::Ok,
                    event: RunEvent::Skipped,
                    attempt: 0,
                };
                order.remember(entry);
            });
            run = last;
        }
        let runnable = period_due(&o, created_at, run).is_some_and(|due| due <= clock);
        if runnable {
            self.attempt_run(index, run, 0, clock, ts);
        }
        let next_run = if runnable { run } else { run - 1 };
        self.change_order(index, |order| {
            order.runs = next_run;
            order.next_due = period_due(&o, created_at, next_run + 1).unwrap_or(0);
            finish_if_done(order);
        });
    }

    /// One try of run `run`: the transfer (or the reminder), its history entry, and a retry
    /// queued when it failed and tries are left (an older pending retry then fails for good).
    fn attempt_run(&mut self, index: u32, run: u64, attempt: u8, clock: u64, ts: u64) {
        let order = &self.orders[index as usize];
        let o = *order.standing().expect("only standing orders run periods");
        let amount = order.amount;
        let (event, code) = if o.flags & of::REMIND != 0 {
            (RunEvent::Reminded, ResultCode::Ok)
        } else {
            match self.run_transfer(index, run, amount, ts) {
                ResultCode::Ok => (RunEvent::Paid, ResultCode::Ok),
                code if attempt < o.retry_attempts => (RunEvent::Retrying, code),
                code => (RunEvent::Failed, code),
            }
        };
        let due = clock.saturating_add(u64::from(o.retry_spacing_s) * NS_PER_S);
        self.change_order(index, |order| {
            if event == RunEvent::Retrying {
                drop_retry(order, ts);
                order.retry = Some(Retry { run, attempt: attempt + 1, due, code });
            }
            order.remember(RunEntry { at: ts, run, amount, code, event, attempt });
        });
    }

    /// The transfer of run `run` of an order, made like a client's `transfer` with every account
    /// check, under the derived id; it is not a client command, so a failure decides nothing.
    fn run_transfer(&mut self, index: u32, run: u64, amount: u128, ts: u64) -> ResultCode {
        let order = &self.orders[index as usize];
        let (debit_account_id, credit_account_id) = order.spec.accounts();
        let (ledger, code) = order.spec.ledger_and_code();
        let t = Transfer {
            id: run_id(order.number, run),
            debit_account_id,
            credit_account_id,
            amount,
            user_data_128: order.spec.id(),
            user_data_64: run,
            ledger,
            code,
            ..Default::default()
        };
        if self.find_transfer_id(t.id).is_some() {
            // Only a transfer made before ids were reserved can hold a derived id.
            return ResultCode::IdReserved;
        }
        self.post_new_transfer(&t, ts)
    }

    /// Notes that a watched account's balances changed (outside a trigger's own transfer).
    #[cold]
    pub(super) fn note_watched(&mut self, account: u32) {
        if !self.unnoted {
            self.watch_hits.push(account);
            self.record(Undo::WatchHit);
        }
    }

    /// [`Engine::note_watched`] for the sides of a movement that are watched.
    #[cold]
    pub(super) fn note_watched_pair(&mut self, dr: u32, cr: u32, debit_watched: bool, credit_watched: bool) {
        if debit_watched {
            self.note_watched(dr);
        }
        if credit_watched {
            self.note_watched(cr);
        }
    }

    /// Evaluates, in order of their numbers, the triggers watching the accounts changed since the
    /// last settle point (a command or chain, a due run, the expiries); each that fires takes the
    /// next timestamp from `cursor`. A trigger's own transfer sets off no trigger.
    pub(super) fn settle_triggers(&mut self, cursor: &mut u64) {
        if self.watch_hits.is_empty() {
            return;
        }
        let mut triggers: Vec<u32> = Vec::new();
        for account in core::mem::take(&mut self.watch_hits) {
            triggers.extend(self.watchers.get(&account).into_iter().flatten());
        }
        triggers.sort_unstable();
        triggers.dedup();
        self.unnoted = true;
        for index in triggers {
            self.evaluate_trigger(index, cursor);
        }
        self.unnoted = false;
    }

    fn evaluate_trigger(&mut self, index: u32, cursor: &mut u64) {
        let order = &self.orders[index as usize];
        let t = *order.trigger().expect("watchers are triggers");
        if order.status != OrderStatus::Active {
            return;
        }
        let account = self.accounts[order.credit as usize];
        if t.kind == trigger_kind::THRESHOLD {
            let is_below = below(&account, t.threshold);
            if !is_below || !order.armed {
                if !is_below && !order.armed {
                    self.change_order(index, |o| o.armed = true);
                }
                return;
            }
            let amount = if t.flags & of::TOP_UP != 0 {
                let needed = t.target.checked_add(account.debits_posted).and_then(|v| v.checked_add(account.debits_pending));
                needed.map_or(u128::MAX, |n| n - account.credits_posted)
            } else {
                order.amount
            };
            let ts = take(cursor);
            self.fire(index, amount, ts);
            let rearm = !below(&self.accounts[self.orders[index as usize].credit as usize], t.threshold);
            self.change_order(index, |o| o.armed = rearm);
        } else {
            let debt = account.debits_posted.saturating_sub(account.credits_posted);
            if debt > order.debt_seen {
                let ts = take(cursor);
                if debt > t.threshold {
                    self.change_order(index, |o| over_cap(o, debt, ts));
                } else {
                    self.fire(index, debt, ts);
                }
            }
            let account = &self.accounts[self.orders[index as usize].credit as usize];
            let now = account.debits_posted.saturating_sub(account.credits_posted);
            if now != self.orders[index as usize].debt_seen {
                self.change_order(index, |o| o.debt_seen = now);
            }
        }
    }

    /// One firing of a trigger: its cap, then the transfer or the reminder, in its history.
    fn fire(&mut self, index: u32, amount: u128, ts: u64) {
        let order = &self.orders[index as usize];
        let t = *order.trigger().expect("only triggers fire");
        let run = order.runs + 1;
        let start = if t.cap_window == 0 { 0 } else { calendar_start(t.cap_window, ts) };
        let (count, used) = if order.window.0 == start { (order.window.1, order.window.2) } else { (0, 0) };
        let capped = (t.cap_count != 0 && count >= t.cap_count) || (t.cap_amount != 0 && used.saturating_add(amount) > t.cap_amount);
        let (event, code) = if capped {
            (RunEvent::Capped, ResultCode::Ok)
        } else if t.flags & of::REMIND != 0 {
            (RunEvent::Reminded, ResultCode::Ok)
        } else {
            match self.run_transfer(index, run, amount, ts) {
                ResultCode::Ok => (RunEvent::Paid, ResultCode::Ok),
                code => (RunEvent::Failed, code),
            }
        };
        let counted = matches!(event, RunEvent::Paid | RunEvent::Reminded);
        self.change_order(index, |o| {
            o.runs = run;
            o.window = if counted { (start, count.saturating_add(1), used.saturating_add(amount)) } else { (start, count, used) };
            o.remember(RunEntry { at: ts, run, amount, code, event, attempt: 0 });
        });
    }

    /// The order with this id.
    pub fn order(&self, id: u128) -> Option<&Order> {
        self.order_index.get(&id).map(|&index| &self.orders[index as usize])
    }

    /// The live (active or paused) orders an account pays or is paid by, or that watch it, by
    /// number; at most [`ORDERS_PER_ACCOUNT_MAX`].
    pub fn orders_of(&self, account_id: u128) -> Vec<&Order> {
        let Some(&account) = self.account_index.get(&account_id) else {
            return Vec::new();
        };
        self.orders_by_account.get(&account).into_iter().flatten().map(|&index| &self.orders[index as usize]).collect()
    }

    /// Every order, by number.
    pub fn orders(&self) -> &OrderTable {
        &self.orders
    }

    /// When the earliest queued run is due, if any (the sequencer ticks for it).
    pub fn next_run_due(&self) -> Option<u64> {
        self.due.first().map(|(at, _, _)| *at)
    }

    /// The derived order structures agree with the orders: the index, the due queue, the
    /// per-account lists, the watchers and their flags; every order's state is coherent.
    pub(crate) fn check_orders(&self) -> Result<(), String> {
        let mut queued = BTreeSet::new();
        let mut by_account: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let mut watchers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for (index, order) in self.orders.iter().enumerate() {
            let index = index as u32;
            if order.number != index + 1 || self.order_index.get(&order.spec.id()) != Some(&index) {
                return Err(format!("order {} is not indexed at {index}", order.spec.id()));
            }
            if order.history.len() > RUN_HISTORY_MAX {
                return Err(format!("order {} keeps {} history entries", order.spec.id(), order.history.len()));
            }
            let pending = order.next_due != 0 || order.retry.is_some();
            if order.status == OrderStatus::Finished && pending {
                return Err(format!("finished order {} has a run left", order.spec.id()));
            }
            queued.extend(order.queue_entries());
            if !order.status.ended() {
                for account in [order.debit, order.credit] {
                    by_account.entry(account).or_default().push(index);
                }
                if order.trigger().is_some() {
                    watchers.entry(order.credit).or_default().push(index);
                }
            }
        }
        if queued != self.due {
            return Err(format!("the due queue holds {} entries, the orders imply {}", self.due.len(), queued.len()));
        }
        if by_account != self.orders_by_account || watchers != self.watchers || self.order_index.len() != self.orders.len() {
            return Err("the per-account order lists or watchers differ from the orders".into());
        }
        let flagged = self.account_meta.iter().enumerate().filter(|(_, m)| m.watched).map(|(i, _)| i as u32);
        if !flagged.eq(watchers.keys().copied().collect::<BTreeSet<_>>()) {
            return Err("the watched flags differ from the triggers".into());
        }
        Ok(())
    }

    /// Rebuilds the derived order structures after a restore.
    pub(crate) fn relink_orders(&mut self) {
        for index in 0..self.orders.len() as u32 {
            self.queue_order(index);
            self.list_order(index);
        }
    }
}

/// Which management command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Manage {
    Pause,
    Resume,
    Cancel,
    Amend,
}

fn take(cursor: &mut u64) -> u64 {
    let ts = *cursor;
    *cursor += 1;
    ts
}

/// Both sides of an order named and different.
fn check_sides(debit_id: u128, credit_id: u128) -> Option<ResultCode> {
    use ResultCode as R;
    match () {
        _ if debit_id == 0 => Some(R::DebitAccountIdMustNotBeZero),
        _ if debit_id == u128::MAX => Some(R::DebitAccountIdMustNotBeIntMax),
        _ if credit_id == 0 => Some(R::CreditAccountIdMustNotBeZero),
        _ if credit_id == u128::MAX => Some(R::CreditAccountIdMustNotBeIntMax),
        _ if debit_id == credit_id => Some(R::AccountsMustBeDifferent),
        _ => None,
    }
}

/// A pending retry given up (a pause, a cancel, or a newer run's retry): it fails for good.
fn drop_retry(order: &mut Order, ts: u64) {
    if let Some(r) = order.retry.take() {
        let amount = order.amount;
        order.remember(RunEntry { at: ts, run: r.run, amount, code: r.code, event: RunEvent::Failed, attempt: r.attempt });
    }
}

/// Resumes a paused order: periods that came due while it was paused are skipped; a trigger
/// re-arms and forgets the debt it saw.
fn resume(order: &mut Order, ts: u64) {
    order.status = OrderStatus::Active;
    order.armed = true;
    order.debt_seen = 0;
    let Some(o) = order.standing().copied() else {
        return;
    };
    let from = order.runs;
    let last = last_due_by(&o, order.created_at, from, ts.saturating_sub(1));
    if last > from {
        let entry =
            RunEntry { at: ts, run: last, amount: u128::from(last - from), code: ResultCode::Ok, event: RunEvent::Skipped, attempt: 0 };
        order.remember(entry);
        order.runs = last;
    }
    order.next_due = period_due(&o, order.created_at, order.runs + 1).unwrap_or(0);
    finish_if_done(order);
}

fn finish_if_done(order: &mut Order) {
    if order.status == OrderStatus::Active && order.standing().is_some() && order.next_due == 0 && order.retry.is_none() {
        order.status = OrderStatus::Finished;
    }
}

fn over_cap(order: &mut Order, debt: u128, ts: u64) {
    order.runs += 1;
    let run = order.runs;
    order.remember(RunEntry { at: ts, run, amount: debt, code: ResultCode::Ok, event: RunEvent::OverCap, attempt: 0 });
}
