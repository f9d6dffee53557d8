//! The records of recurring payments: a standing order, a trigger and a change to either, with
//! their flags and enumerations (layouts byte by byte in `docs/protocol.md`).

use super::{Reader, Record, Writer, FLAG_LINKED, RECORD_SIZE};

/// Flags of a standing order or a trigger.
pub mod order_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// Remind instead of pay: each run or firing is kept in the run history (an event), and no
    /// money moves.
    pub const REMIND: u16 = 1 << 1;
    /// A threshold trigger pays `target` minus the available balance instead of `amount`.
    pub const TOP_UP: u16 = 1 << 2;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | REMIND | TOP_UP;
}

/// The unit of a standing order's period.
pub mod order_unit {
    /// Every `period` seconds.
    pub const SECONDS: u8 = 1;
    /// Every `period` days (86 400 s each).
    pub const DAYS: u8 = 2;
    /// Every `period` weeks.
    pub const WEEKS: u8 = 3;
    /// Every `period` months, on day `day` (a day past a month's end: its last day).
    pub const MONTHS: u8 = 4;
}

/// What a standing order does with periods that came due while it could not run (the server
/// was down), when several are due at once.
pub mod catch_up {
    /// Run every missed period, in due order (the default).
    pub const ALL: u8 = 0;
    /// Run only the newest due period; the older ones are skipped.
    pub const LATEST: u8 = 1;
    /// Run none of the periods that are more than `CATCH_UP_GRACE_S` late; skip them.
    pub const NONE: u8 = 2;
}

/// What watches a trigger's account.
pub mod trigger_kind {
    /// Fires when the watched account's available balance falls below `threshold`.
    pub const THRESHOLD: u8 = 1;
    /// Fires when the watched account shows a debt, or its debt grows; pays it if it is at most
    /// `threshold` (the cap).
    pub const DEBT: u8 = 2;
}

/// A standing order (command `create_standing_order`): `amount` from the debit account to the
/// credit account every period, from `first_due_at`, until `count_max` runs or `end_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StandingOrder {
    /// The order's id (its own id space, not a transfer id).
    pub id: u128,
    /// The account paying.
    pub debit_account_id: u128,
    /// The account paid.
    pub credit_account_id: u128,
    /// Paid each period (minor units).
    pub amount: u128,
    /// The first due time (ns since the epoch); 0: the moment the order is made.
    pub first_due_at: u64,
    /// No run is due after this time (ns); 0: none.
    pub end_at: u64,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Most runs; 0: no bound.
    pub count_max: u32,
    /// Every `period` units.
    pub period: u32,
    /// Seconds between a failed run and its retry.
    pub retry_spacing_s: u32,
    /// Opaque client data.
    pub user_data_32: u32,
    /// `order_unit`.
    pub unit: u8,
    /// Monthly orders: the day of the month (1 to 31); otherwise zero.
    pub day: u8,
    /// `catch_up`.
    pub catch_up: u8,
    /// Retries of a failed run (0 to `ORDER_RETRIES_MAX`).
    pub retry_attempts: u8,
    /// Must be zero.
    pub reserved: [u8; 4],
    /// The ledger of both accounts.
    pub ledger: u32,
    /// The transfer code every run carries.
    pub code: u16,
    /// `order_flags`.
    pub flags: u16,
    /// Must be zero (in a lookup: when the order was made).
    pub timestamp: u64,
}

/// A trigger (command `create_trigger`): pays into the watched (credit) account from the
/// funding (debit) account when its balance crosses below a threshold, or when it shows a debt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Trigger {
    /// The trigger's id (shared with standing orders).
    pub id: u128,
    /// The funding account.
    pub debit_account_id: u128,
    /// The watched account, paid into.
    pub credit_account_id: u128,
    /// A fixed amount per firing (threshold triggers without `top_up`); zero otherwise.
    pub amount: u128,
    /// Threshold triggers: fire when the available balance falls below it. Debt triggers: the
    /// largest debt paid (the cap; not zero).
    pub threshold: u128,
    /// Threshold triggers with `top_up`: the available balance to restore (above `threshold`).
    pub target: u128,
    /// Most paid per cap window; 0: no bound.
    pub cap_amount: u128,
    /// The ledger of both accounts.
    pub ledger: u32,
    /// The transfer code every firing carries.
    pub code: u16,
    /// `order_flags`.
    pub flags: u16,
    /// Most firings per cap window; 0: no bound.
    pub cap_count: u32,
    /// `trigger_kind`.
    pub kind: u8,
    /// The cap window: a calendar `velocity_window` (minute to month); 0 with no cap.
    pub cap_window: u8,
    /// Must be zero.
    pub reserved: [u8; 2],
}

/// A change to a standing order or trigger (`pause_order`, `resume_order`, `cancel_order`,
/// `amend_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderChange {
    /// The order or trigger.
    pub order_id: u128,
    /// `amend_order`: the new amount, from the next run; otherwise zero.
    pub amount: u128,
    /// Linked flag only.
    pub flags: u16,
    /// Must be zero.
    pub reserved: [u8; 94],
}

impl Default for OrderChange {
    fn default() -> Self {
        OrderChange { order_id: 0, amount: 0, flags: 0, reserved: [0; 94] }
    }
}

const _: () = assert!(core::mem::size_of::<StandingOrder>() == RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<Trigger>() == RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<OrderChange>() == RECORD_SIZE);

impl Record for StandingOrder {
    const NAME: &'static str = "standing order";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.debit_account_id, self.credit_account_id]
    }
    fn describe(&self) -> String {
        format!(
            "id={} debit={} credit={} amount={} ledger={} code={} every={}x{} day={} first_due_at={} end_at={} count_max={} catch_up={} retries={}x{}s flags={:#x}",
            self.id,
            self.debit_account_id,
            self.credit_account_id,
            self.amount,
            self.ledger,
            self.code,
            self.period,
            self.unit,
            self.day,
            self.first_due_at,
            self.end_at,
            self.count_max,
            self.catch_up,
            self.retry_attempts,
            self.retry_spacing_s,
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        for v in [self.id, self.debit_account_id, self.credit_account_id, self.amount] {
            w.put(&v.to_le_bytes());
        }
        for v in [self.first_due_at, self.end_at, self.user_data_64] {
            w.put(&v.to_le_bytes());
        }
        for v in [self.count_max, self.period, self.retry_spacing_s, self.user_data_32] {
            w.put(&v.to_le_bytes());
        }
        w.put(&[self.unit, self.day, self.catch_up, self.retry_attempts]);
        w.put(&self.reserved);
        w.put(&self.ledger.to_le_bytes());
        w.put(&self.code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        StandingOrder {
            id: r.u128(),
            debit_account_id: r.u128(),
            credit_account_id: r.u128(),
            amount: r.u128(),
            first_due_at: r.u64(),
            end_at: r.u64(),
            user_data_64: r.u64(),
            count_max: r.u32(),
            period: r.u32(),
            retry_spacing_s: r.u32(),
            user_data_32: r.u32(),
            unit: r.u8(),
            day: r.u8(),
            catch_up: r.u8(),
            retry_attempts: r.u8(),
            reserved: r.take(),
            ledger: r.u32(),
            code: r.u16(),
            flags: r.u16(),
            timestamp: r.u64(),
        }
    }
}

impl Record for Trigger {
    const NAME: &'static str = "trigger";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.debit_account_id, self.credit_account_id]
    }
    fn describe(&self) -> String {
        format!(
            "id={} kind={} funding={} watched={} amount={} threshold={} target={} cap_amount={} cap_count={} cap_window={} ledger={} code={} flags={:#x}",
            self.id,
            self.kind,
            self.debit_account_id,
            self.credit_account_id,
            self.amount,
            self.threshold,
            self.target,
            self.cap_amount,
            self.cap_count,
            self.cap_window,
            self.ledger,
            self.code,
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        for v in [self.id, self.debit_account_id, self.credit_account_id, self.amount, self.threshold, self.target, self.cap_amount] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.ledger.to_le_bytes());
        w.put(&self.code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.cap_count.to_le_bytes());
        w.put(&[self.kind, self.cap_window]);
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Trigger {
            id: r.u128(),
            debit_account_id: r.u128(),
            credit_account_id: r.u128(),
            amount: r.u128(),
            threshold: r.u128(),
            target: r.u128(),
            cap_amount: r.u128(),
            ledger: r.u32(),
            code: r.u16(),
            flags: r.u16(),
            cap_count: r.u32(),
            kind: r.u8(),
            cap_window: r.u8(),
            reserved: r.take(),
        }
    }
}

impl Record for OrderChange {
    const NAME: &'static str = "order change";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [0, 0]
    }
    fn describe(&self) -> String {
        format!("order={} amount={} flags={:#x}", self.order_id, self.amount, self.flags)
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.order_id.to_le_bytes());
        w.put(&self.amount.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        OrderChange { order_id: r.u128(), amount: r.u128(), flags: r.u16(), reserved: r.take() }
    }
}

const _: () = assert!(FLAG_LINKED == order_flags::LINKED);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_records_round_trip_at_their_documented_offsets() {
        let o = StandingOrder {
            id: 1,
            amount: 5,
            first_due_at: 7,
            ledger: 3,
            code: 9,
            unit: order_unit::MONTHS,
            day: 31,
            ..Default::default()
        };
        let bytes = o.to_bytes();
        assert_eq!(StandingOrder::decode(&bytes), o);
        assert_eq!(bytes[48], 5, "amount at 48");
        assert_eq!(bytes[64], 7, "first_due_at at 64");
        assert_eq!((bytes[104], bytes[105]), (order_unit::MONTHS, 31), "unit and day at 104");
        assert_eq!(&bytes[112..116], &3u32.to_le_bytes(), "ledger at 112");
        let t = Trigger { id: 2, threshold: 11, kind: trigger_kind::DEBT, cap_window: 3, ledger: 4, ..Default::default() };
        let bytes = t.to_bytes();
        assert_eq!(Trigger::decode(&bytes), t);
        assert_eq!(bytes[64], 11, "threshold at 64");
        assert_eq!((bytes[124], bytes[125]), (trigger_kind::DEBT, 3), "kind and cap window at 124");
        let c = OrderChange { order_id: 3, amount: 4, flags: 1, ..Default::default() };
        let bytes = c.to_bytes();
        assert_eq!(OrderChange::decode(&bytes), c);
        assert_eq!((bytes[16], bytes[32]), (4, 1), "amount at 16, flags at 32");
    }
}
