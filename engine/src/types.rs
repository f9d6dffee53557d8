//! The 128-byte records (ledger, account, transfer, account change), their flags and their little-endian encoding.
//!
//! Layouts of `Account` and `Transfer` are TigerBeetle's, field for field, so users of
//! that model meet no surprises. Every record is exactly 128 bytes in memory and on the
//! wire; the sizes are pinned at compile time below.

use core::mem::size_of;

mod exchange;
mod orders;
pub use exchange::{exchange_flags, quote_flags, Exchange, Quote};
pub use orders::{catch_up, order_flags, order_unit, trigger_kind, OrderChange, StandingOrder, Trigger};

/// Size of every record on the wire and in the log, in bytes.
pub const RECORD_SIZE: usize = 128;

/// Flag bit shared by every record: this command is linked to the next one.
pub const FLAG_LINKED: u16 = 1 << 0;

/// Account flags.
pub mod account_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// `debits_pending + debits_posted` may never exceed `credits_posted`.
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u16 = 1 << 1;
    /// `credits_pending + credits_posted` may never exceed `debits_posted`.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u16 = 1 << 2;
    /// Keep the balance after every transfer, for `get_account_balances`.
    pub const HISTORY: u16 = 1 << 3;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS | HISTORY;
}

/// Transfer flags.
pub mod transfer_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// A hold: reserves the amount in the pending balances.
    pub const PENDING: u16 = 1 << 1;
    /// Capture (post) the hold named by `pending_id`.
    pub const POST_PENDING: u16 = 1 << 2;
    /// Release (void) the hold named by `pending_id`.
    pub const VOID_PENDING: u16 = 1 << 3;
    /// Every flag a client sets; any other bit is reserved.
    pub const ALL: u16 = LINKED | PENDING | POST_PENDING | VOID_PENDING;
    /// Set by the engine on a stored reversal (command `reverse`): `pending_id` names the
    /// transfer it reverses. Never set by a client (`reserved_flag` on every kind).
    pub const REVERSE: u16 = 1 << 4;
}

/// Flags of a freeze/thaw/close command.
pub mod change_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// Freeze/thaw the debit side: no money may leave the account.
    pub const DEBITS: u16 = 1 << 1;
    /// Freeze/thaw the credit side: no money may enter the account.
    pub const CREDITS: u16 = 1 << 2;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | DEBITS | CREDITS;
}

/// Flags of a limit change (`set_limits`).
pub mod limit_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// Set the debit limit to `debit_limit`: how far debits (holds included) may exceed credits.
    pub const DEBIT_LIMIT: u16 = 1 << 1;
    /// Set the credit limit to `credit_limit`: how far credits (holds included) may exceed debits.
    pub const CREDIT_LIMIT: u16 = 1 << 2;
    /// Remove the debit limit set before: the account's `debits_must_not_exceed_credits` flag rules again.
    pub const REMOVE_DEBIT_LIMIT: u16 = 1 << 3;
    /// Remove the credit limit set before: the account's `credits_must_not_exceed_debits` flag rules again.
    pub const REMOVE_CREDIT_LIMIT: u16 = 1 << 4;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | DEBIT_LIMIT | CREDIT_LIMIT | REMOVE_DEBIT_LIMIT | REMOVE_CREDIT_LIMIT;
}

/// Channel policy flags (command `set_channels`).
pub mod channel_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// `debit_codes` lists the only codes that may debit the account (else: the codes that may not).
    pub const DEBITS_ALLOW: u16 = 1 << 1;
    /// `credit_codes` lists the only codes that may credit the account (else: the codes that may not).
    pub const CREDITS_ALLOW: u16 = 1 << 2;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | DEBITS_ALLOW | CREDITS_ALLOW;
}

/// Velocity rule flags (command `set_velocity`).
pub mod velocity_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// The rule counts the account's debits (new transfers and holds that debit it).
    pub const DEBITS: u16 = 1 << 1;
    /// The rule counts the account's credits.
    pub const CREDITS: u16 = 1 << 2;
    /// `count_max` bounds how many movements the window may hold.
    pub const COUNT: u16 = 1 << 3;
    /// `amount_max` bounds their sum.
    pub const AMOUNT: u16 = 1 << 4;
    /// Remove the rule in `slot` (every other field zero).
    pub const REMOVE: u16 = 1 << 5;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | DEBITS | CREDITS | COUNT | AMOUNT | REMOVE;
}

/// Velocity windows: calendar periods in UTC, or a rolling window of `window_seconds`.
pub mod velocity_window {
    /// The calendar minute.
    pub const MINUTE: u8 = 1;
    /// The calendar hour.
    pub const HOUR: u8 = 2;
    /// The calendar day (UTC).
    pub const DAY: u8 = 3;
    /// The ISO week, from Monday 00:00 UTC.
    pub const WEEK: u8 = 4;
    /// The calendar month (UTC).
    pub const MONTH: u8 = 5;
    /// The last `window_seconds` seconds, in 16 sub-buckets.
    pub const ROLLING: u8 = 6;
}

/// Ledger flags.
pub mod ledger_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED;
}

/// Lifecycle state bits of an account (stored in `Account::state`).
pub mod account_state {
    /// Open, nothing blocked.
    pub const OPEN: u8 = 0;
    /// Debits blocked: no money may leave.
    pub const FROZEN_DEBITS: u8 = 1 << 0;
    /// Credits blocked: no money may enter.
    pub const FROZEN_CREDITS: u8 = 1 << 1;
    /// Closed for good: nothing may move.
    pub const CLOSED: u8 = 1 << 2;
}

/// A ledger: one currency at one scale, with the settlement account that
/// single-sided `debit`/`credit` commands use as their other side.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// The account created with the ledger; the counterparty of `debit`/`credit`.
    pub settlement_account_id: u128,
    /// Opaque client data.
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Set by the engine; must be zero when created.
    pub timestamp: u64,
    /// Ledger id, never 0 or `u32::MAX`.
    pub id: u32,
    /// Opaque client data.
    pub user_data_32: u32,
    /// ISO 4217 alphabetic code, three ASCII capitals ("EUR").
    pub currency: [u8; 3],
    /// Minor-unit exponent: amounts are in units of 10^-scale.
    pub scale: u8,
    /// Account code (type) of the settlement account.
    pub settlement_account_code: u16,
    /// `ledger_flags`.
    pub flags: u16,
    /// Room for the next wave (overdraft defaults, exchange settings); must be zero.
    pub reserved: [u8; 64],
}

/// An account: TigerBeetle's layout, with the lifecycle state in its reserved word.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Account {
    /// Client-chosen id, never 0 or `u128::MAX`.
    pub id: u128,
    /// Sum of holds in which this account is the debit side.
    pub debits_pending: u128,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of holds in which this account is the credit side.
    pub credits_pending: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
    /// Opaque client data.
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Opaque client data.
    pub user_data_32: u32,
    /// `account_state` bits; must be zero when created.
    pub state: u8,
    /// Must be zero.
    pub reserved: [u8; 3],
    /// The ledger (currency) of the account.
    pub ledger: u32,
    /// Account type, chosen by the client; never 0.
    pub code: u16,
    /// `account_flags`.
    pub flags: u16,
    /// Set by the engine; must be zero when created.
    pub timestamp: u64,
}

/// A transfer: TigerBeetle's layout. Holds, captures, releases, debits and credits are all transfers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Transfer {
    /// Client-chosen id, never 0 or `u128::MAX`.
    pub id: u128,
    /// Account debited.
    pub debit_account_id: u128,
    /// Account credited.
    pub credit_account_id: u128,
    /// Amount in the ledger's minor units.
    pub amount: u128,
    /// For capture/release: the hold's transfer id.
    pub pending_id: u128,
    /// Opaque client data.
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Opaque client data.
    pub user_data_32: u32,
    /// For holds: seconds until the hold expires; 0 = never.
    pub timeout: u32,
    /// Ledger of both accounts.
    pub ledger: u32,
    /// Transfer type, chosen by the client; never 0.
    pub code: u16,
    /// `transfer_flags`.
    pub flags: u16,
    /// Set by the engine; must be zero when created.
    pub timestamp: u64,
}

/// A lifecycle change of one account: freeze, thaw or close (the command says which).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountChange {
    /// The account to change.
    pub account_id: u128,
    /// Opaque client data (for example a reason or case reference).
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Must be zero.
    pub timestamp: u64,
    /// Opaque client data.
    pub user_data_32: u32,
    /// `change_flags`.
    pub flags: u16,
    /// Must be zero.
    pub reserved: [u8; 74],
}

/// A change of an account's balance limits (command `set_limits`): its debit limit (an
/// overdraft line), its credit limit, or both, set or removed, at any time.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountLimits {
    /// The account to change.
    pub account_id: u128,
    /// The new debit limit (minor units) when `limit_flags::DEBIT_LIMIT` is set; zero otherwise.
    pub debit_limit: u128,
    /// The new credit limit (minor units) when `limit_flags::CREDIT_LIMIT` is set; zero otherwise.
    pub credit_limit: u128,
    /// Opaque client data (for example the credit decision's reference).
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Must be zero.
    pub timestamp: u64,
    /// Opaque client data.
    pub user_data_32: u32,
    /// `limit_flags`.
    pub flags: u16,
    /// Must be zero.
    pub reserved: [u8; 42],
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            account_id: 0,
            debit_limit: 0,
            credit_limit: 0,
            user_data_128: 0,
            user_data_64: 0,
            timestamp: 0,
            user_data_32: 0,
            flags: 0,
            reserved: [0; 42],
        }
    }
}

/// Which transfer codes may debit and credit an account, and which may take it past its debit
/// limit (command `set_channels`): replaces the account's whole channel policy. Declared in
/// memory order, not wire order (`docs/protocol.md` has the wire offsets): `repr(C)` puts the two
/// lists a movement reads in its first 64 bytes, and the flags right after them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ChannelPolicy {
    /// Codes allowed (`channel_flags::DEBITS_ALLOW`) or refused to debit the account; 0 = empty slot.
    pub debit_codes: [u16; 16],
    /// Codes allowed (`channel_flags::CREDITS_ALLOW`) or refused to credit the account; 0 = empty slot.
    pub credit_codes: [u16; 16],
    /// `channel_flags`.
    pub flags: u16,
    /// Codes whose debits may exceed the account's debit limit (a chargeback); 0 = empty slot.
    pub limit_exempt_codes: [u16; 8],
    /// Must be zero.
    pub reserved: [u8; 10],
    /// Opaque client data.
    pub user_data_32: u32,
    /// The account.
    pub account_id: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Must be zero (in a lookup: when the policy was set).
    pub timestamp: u64,
}

/// One velocity rule of an account (command `set_velocity`): in a window, at most `count_max`
/// movements and/or at most `amount_max` in sum, of the account's debits or credits, optionally
/// of some codes only. Declared in memory order, not wire order (`docs/protocol.md` has the wire
/// offsets): `repr(C)` puts what a movement reads in its first 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VelocityRule {
    /// Most the window's movements may add up to (with `velocity_flags::AMOUNT`).
    pub amount_max: u128,
    /// Most movements in the window (with `velocity_flags::COUNT`).
    pub count_max: u32,
    /// A rolling window's length in seconds; zero for calendar windows.
    pub window_seconds: u32,
    /// The codes the rule counts; all zero: every code.
    pub codes: [u16; 8],
    /// `velocity_flags`.
    pub flags: u16,
    /// Which of the account's rules (0 to 7).
    pub slot: u8,
    /// `velocity_window`.
    pub window: u8,
    /// Opaque client data.
    pub user_data_32: u32,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Must be zero (in a lookup: when the rule started counting).
    pub timestamp: u64,
    /// The account.
    pub account_id: u128,
    /// Must be zero.
    pub reserved: [u8; 48],
}

impl Default for VelocityRule {
    fn default() -> Self {
        VelocityRule {
            account_id: 0,
            amount_max: 0,
            count_max: 0,
            window_seconds: 0,
            codes: [0; 8],
            user_data_64: 0,
            timestamp: 0,
            user_data_32: 0,
            flags: 0,
            slot: 0,
            window: 0,
            reserved: [0; 48],
        }
    }
}

const _: () = assert!(size_of::<AccountLimits>() == RECORD_SIZE);
const _: () = assert!(size_of::<ChannelPolicy>() == RECORD_SIZE);
const _: () = assert!(size_of::<VelocityRule>() == RECORD_SIZE);
const _: () = assert!(size_of::<Ledger>() == RECORD_SIZE);
const _: () = assert!(size_of::<Account>() == RECORD_SIZE);
const _: () = assert!(size_of::<Transfer>() == RECORD_SIZE);
const _: () = assert!(size_of::<AccountChange>() == RECORD_SIZE);

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            settlement_account_id: 0,
            user_data_128: 0,
            user_data_64: 0,
            timestamp: 0,
            id: 0,
            user_data_32: 0,
            currency: [0; 3],
            scale: 0,
            settlement_account_code: 0,
            flags: 0,
            reserved: [0; 64],
        }
    }
}

impl Default for AccountChange {
    fn default() -> Self {
        AccountChange { account_id: 0, user_data_128: 0, user_data_64: 0, timestamp: 0, user_data_32: 0, flags: 0, reserved: [0; 74] }
    }
}

/// Little-endian cursor over one 128-byte record: the whole codec is field by field,
/// so the format does not depend on the host's layout or endianness.
struct Writer<'a> {
    out: &'a mut [u8; RECORD_SIZE],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    bytes: &'a [u8; RECORD_SIZE],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
}

/// A fixed-size record with a little-endian wire form of exactly `RECORD_SIZE` bytes.
pub trait Record: Sized + Copy {
    /// The record type's name in the protocol document (`transfer`, `account change`).
    const NAME: &'static str;
    /// The raw flags.
    fn flags(&self) -> u16;
    /// The raw flags, to change.
    fn flags_mut(&mut self) -> &mut u16;
    /// The accounts the record names (zero where it names fewer than two).
    fn account_ids(&self) -> [u128; 2];
    /// The record's fields in one line, `name=value` separated by spaces.
    fn describe(&self) -> String;
    /// The record as a transfer, if it is one.
    fn as_transfer(&self) -> Option<&Transfer> {
        None
    }
    /// The stored transfers the record can name by id (zero where it names fewer): what the
    /// node reads from history before applying it.
    fn transfer_ids(&self) -> [u128; 3] {
        [0; 3]
    }
    /// The record as a transfer, if it is one, to change.
    fn as_transfer_mut(&mut self) -> Option<&mut Transfer> {
        None
    }
    /// Writes the record's wire form into `out`.
    fn encode(&self, out: &mut [u8; RECORD_SIZE]);
    /// Reads a record from its wire form. Every byte pattern decodes; validation is the engine's.
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self;
    /// The wire form as an array.
    fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        self.encode(&mut out);
        out
    }
}

impl Record for Ledger {
    const NAME: &'static str = "ledger";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.settlement_account_id, 0]
    }
    fn describe(&self) -> String {
        format!(
            "id={} currency={} scale={} settlement={} code={} flags={:#x}",
            self.id,
            String::from_utf8_lossy(&self.currency),
            self.scale,
            self.settlement_account_id,
            self.settlement_account_code,
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.settlement_account_id.to_le_bytes());
        w.put(&self.user_data_128.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.id.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.currency);
        w.put(&[self.scale]);
        w.put(&self.settlement_account_code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Ledger {
            settlement_account_id: r.u128(),
            user_data_128: r.u128(),
            user_data_64: r.u64(),
            timestamp: r.u64(),
            id: r.u32(),
            user_data_32: r.u32(),
            currency: r.take(),
            scale: r.u8(),
            settlement_account_code: r.u16(),
            flags: r.u16(),
            reserved: r.take(),
        }
    }
}

impl Record for Account {
    const NAME: &'static str = "account";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.id, 0]
    }
    fn describe(&self) -> String {
        format!("id={} ledger={} code={} flags={:#x} user_data_128={}", self.id, self.ledger, self.code, self.flags, self.user_data_128)
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.id.to_le_bytes());
        w.put(&self.debits_pending.to_le_bytes());
        w.put(&self.debits_posted.to_le_bytes());
        w.put(&self.credits_pending.to_le_bytes());
        w.put(&self.credits_posted.to_le_bytes());
        w.put(&self.user_data_128.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&[self.state]);
        w.put(&self.reserved);
        w.put(&self.ledger.to_le_bytes());
        w.put(&self.code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Account {
            id: r.u128(),
            debits_pending: r.u128(),
            debits_posted: r.u128(),
            credits_pending: r.u128(),
            credits_posted: r.u128(),
            user_data_128: r.u128(),
            user_data_64: r.u64(),
            user_data_32: r.u32(),
            state: r.u8(),
            reserved: r.take(),
            ledger: r.u32(),
            code: r.u16(),
            flags: r.u16(),
            timestamp: r.u64(),
        }
    }
}

impl Transfer {
    /// What a stored transfer is, from its flags: `hold`, `capture`, `release`, `reversal` or
    /// `transfer` (the statement's, the CLI's and `log dump`'s word).
    pub fn kind_name(&self) -> &'static str {
        use transfer_flags as tf;
        if self.flags & tf::PENDING != 0 {
            "hold"
        } else if self.flags & tf::POST_PENDING != 0 {
            "capture"
        } else if self.flags & tf::VOID_PENDING != 0 {
            "release"
        } else if self.flags & tf::REVERSE != 0 {
            "reversal"
        } else {
            "transfer"
        }
    }
}

impl Record for Transfer {
    const NAME: &'static str = "transfer";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.debit_account_id, self.credit_account_id]
    }
    fn transfer_ids(&self) -> [u128; 3] {
        [self.id, self.pending_id, 0]
    }
    fn describe(&self) -> String {
        format!(
            "id={} debit={} credit={} amount={} pending_id={} ledger={} code={} flags={:#x} timeout={}s user_data_128={}",
            self.id,
            self.debit_account_id,
            self.credit_account_id,
            self.amount,
            self.pending_id,
            self.ledger,
            self.code,
            self.flags,
            self.timeout,
            self.user_data_128
        )
    }
    fn as_transfer(&self) -> Option<&Transfer> {
        Some(self)
    }
    fn as_transfer_mut(&mut self) -> Option<&mut Transfer> {
        Some(self)
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.id.to_le_bytes());
        w.put(&self.debit_account_id.to_le_bytes());
        w.put(&self.credit_account_id.to_le_bytes());
        w.put(&self.amount.to_le_bytes());
        w.put(&self.pending_id.to_le_bytes());
        w.put(&self.user_data_128.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.timeout.to_le_bytes());
        w.put(&self.ledger.to_le_bytes());
        w.put(&self.code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Transfer {
            id: r.u128(),
            debit_account_id: r.u128(),
            credit_account_id: r.u128(),
            amount: r.u128(),
            pending_id: r.u128(),
            user_data_128: r.u128(),
            user_data_64: r.u64(),
            user_data_32: r.u32(),
            timeout: r.u32(),
            ledger: r.u32(),
            code: r.u16(),
            flags: r.u16(),
            timestamp: r.u64(),
        }
    }
}

impl Record for AccountChange {
    const NAME: &'static str = "account change";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.account_id, 0]
    }
    fn describe(&self) -> String {
        format!("account={} flags={:#x}", self.account_id, self.flags)
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.account_id.to_le_bytes());
        w.put(&self.user_data_128.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        AccountChange {
            account_id: r.u128(),
            user_data_128: r.u128(),
            user_data_64: r.u64(),
            timestamp: r.u64(),
            user_data_32: r.u32(),
            flags: r.u16(),
            reserved: r.take(),
        }
    }
}

impl Record for AccountLimits {
    const NAME: &'static str = "account limits";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.account_id, 0]
    }
    fn describe(&self) -> String {
        format!("account={} debit_limit={} credit_limit={} flags={:#x}", self.account_id, self.debit_limit, self.credit_limit, self.flags)
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.account_id.to_le_bytes());
        w.put(&self.debit_limit.to_le_bytes());
        w.put(&self.credit_limit.to_le_bytes());
        w.put(&self.user_data_128.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        AccountLimits {
            account_id: r.u128(),
            debit_limit: r.u128(),
            credit_limit: r.u128(),
            user_data_128: r.u128(),
            user_data_64: r.u64(),
            timestamp: r.u64(),
            user_data_32: r.u32(),
            flags: r.u16(),
            reserved: r.take(),
        }
    }
}

impl Writer<'_> {
    fn codes(&mut self, codes: &[u16]) {
        codes.iter().for_each(|c| self.put(&c.to_le_bytes()));
    }
}

impl Reader<'_> {
    fn codes<const N: usize>(&mut self) -> [u16; N] {
        core::array::from_fn(|_| self.u16())
    }
}

impl Record for ChannelPolicy {
    const NAME: &'static str = "channel policy";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.account_id, 0]
    }
    fn describe(&self) -> String {
        let list = |codes: &[u16]| codes.iter().filter(|c| **c != 0).map(u16::to_string).collect::<Vec<_>>().join(",");
        format!(
            "account={} debit_codes=[{}] credit_codes=[{}] limit_exempt_codes=[{}] flags={:#x}",
            self.account_id,
            list(&self.debit_codes),
            list(&self.credit_codes),
            list(&self.limit_exempt_codes),
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.account_id.to_le_bytes());
        w.codes(&self.debit_codes);
        w.codes(&self.credit_codes);
        w.codes(&self.limit_exempt_codes);
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        ChannelPolicy {
            account_id: r.u128(),
            debit_codes: r.codes(),
            credit_codes: r.codes(),
            limit_exempt_codes: r.codes(),
            user_data_64: r.u64(),
            timestamp: r.u64(),
            user_data_32: r.u32(),
            flags: r.u16(),
            reserved: r.take(),
        }
    }
}

impl Record for VelocityRule {
    const NAME: &'static str = "velocity rule";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.account_id, 0]
    }
    fn describe(&self) -> String {
        let codes: Vec<String> = self.codes.iter().filter(|c| **c != 0).map(u16::to_string).collect();
        format!(
            "account={} slot={} window={} window_seconds={} count_max={} amount_max={} codes=[{}] flags={:#x}",
            self.account_id,
            self.slot,
            self.window,
            self.window_seconds,
            self.count_max,
            self.amount_max,
            codes.join(","),
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        w.put(&self.account_id.to_le_bytes());
        w.put(&self.amount_max.to_le_bytes());
        w.put(&self.count_max.to_le_bytes());
        w.put(&self.window_seconds.to_le_bytes());
        w.codes(&self.codes);
        w.put(&self.user_data_64.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&[self.slot, self.window]);
        w.put(&self.reserved);
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        VelocityRule {
            account_id: r.u128(),
            amount_max: r.u128(),
            count_max: r.u32(),
            window_seconds: r.u32(),
            codes: r.codes(),
            user_data_64: r.u64(),
            timestamp: r.u64(),
            user_data_32: r.u32(),
            flags: r.u16(),
            slot: r.u8(),
            window: r.u8(),
            reserved: r.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_use_the_documented_offsets() {
        let t = Transfer { id: 1, amount: 0x0102, ledger: 7, code: 9, flags: transfer_flags::PENDING, timestamp: 42, ..Default::default() };
        let bytes = t.to_bytes();
        assert_eq!(Transfer::decode(&bytes), t);
        assert_eq!(bytes[0], 1, "id at offset 0");
        assert_eq!(&bytes[48..50], &[0x02, 0x01], "amount at offset 48, little-endian");
        assert_eq!(&bytes[112..116], &7u32.to_le_bytes(), "ledger at offset 112");
        assert_eq!(&bytes[116..118], &9u16.to_le_bytes(), "code at offset 116");
        assert_eq!(&bytes[118..120], &2u16.to_le_bytes(), "flags at offset 118");
        assert_eq!(&bytes[120..128], &42u64.to_le_bytes(), "timestamp at offset 120");

        let a = Account { id: 5, credits_posted: 3, ledger: 2, code: 1, state: account_state::CLOSED, ..Default::default() };
        let bytes = a.to_bytes();
        assert_eq!(Account::decode(&bytes), a);
        assert_eq!(bytes[108], account_state::CLOSED, "state at offset 108");
        assert_eq!(&bytes[112..116], &2u32.to_le_bytes(), "ledger at offset 112");

        let l = Ledger { id: 3, currency: *b"EUR", scale: 2, settlement_account_id: 99, settlement_account_code: 1, ..Default::default() };
        assert_eq!(Ledger::decode(&l.to_bytes()), l);
        let c = AccountChange { account_id: 8, flags: change_flags::DEBITS, ..Default::default() };
        assert_eq!(AccountChange::decode(&c.to_bytes()), c);
        let l = AccountLimits {
            account_id: 8,
            debit_limit: 5,
            credit_limit: 6,
            user_data_32: 7,
            flags: limit_flags::DEBIT_LIMIT,
            ..Default::default()
        };
        let bytes = l.to_bytes();
        assert_eq!(AccountLimits::decode(&bytes), l);
        assert_eq!(&bytes[16..18], &[5, 0], "debit_limit at offset 16");
        assert_eq!(&bytes[32..34], &[6, 0], "credit_limit at offset 32");
        assert_eq!(&bytes[80..84], &7u32.to_le_bytes(), "user_data_32 at offset 80");
        assert_eq!(&bytes[84..86], &limit_flags::DEBIT_LIMIT.to_le_bytes(), "flags at offset 84");
        let mut c = ChannelPolicy { account_id: 8, flags: channel_flags::DEBITS_ALLOW, user_data_32: 7, ..Default::default() };
        c.debit_codes[1] = 3;
        c.credit_codes[0] = 4;
        c.limit_exempt_codes[7] = 5;
        let bytes = c.to_bytes();
        assert_eq!(ChannelPolicy::decode(&bytes), c);
        assert_eq!(&bytes[18..20], &[3, 0], "debit_codes at offset 16");
        assert_eq!(&bytes[48..50], &[4, 0], "credit_codes at offset 48");
        assert_eq!(&bytes[94..96], &[5, 0], "limit_exempt_codes at offset 80");
        assert_eq!(&bytes[112..116], &7u32.to_le_bytes(), "user_data_32 at offset 112");
        assert_eq!(&bytes[116..118], &channel_flags::DEBITS_ALLOW.to_le_bytes(), "flags at offset 116");
        let v = VelocityRule {
            account_id: 8,
            amount_max: 9,
            count_max: 10,
            window_seconds: 11,
            codes: [12, 0, 0, 0, 0, 0, 0, 0],
            flags: velocity_flags::DEBITS,
            slot: 3,
            window: velocity_window::ROLLING,
            ..Default::default()
        };
        let bytes = v.to_bytes();
        assert_eq!(VelocityRule::decode(&bytes), v);
        assert_eq!((bytes[16], bytes[32], bytes[36], bytes[40]), (9, 10, 11, 12), "amount_max, count_max, window_seconds, codes");
        assert_eq!((&bytes[76..78], bytes[78], bytes[79]), (&velocity_flags::DEBITS.to_le_bytes()[..], 3, velocity_window::ROLLING));
    }
}
