//! Every bound the engine enforces, named in one place (units last).

/// Most commands in one batch: 8 189 records of 128 bytes fit a 1 MiB request with its header.
pub const BATCH_COMMANDS_MAX: usize = 8189;
/// Largest ledger scale (minor-unit exponent). 10^18 still leaves 20 digits of whole units in a u128.
pub const SCALE_MAX: u8 = 18;
/// Nanoseconds per second, for hold timeouts given in seconds.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Velocity rules one account may carry (slots 0 to 7).
pub const VELOCITY_RULES_MAX: usize = 8;
/// Sub-buckets of a rolling velocity window: a movement leaves the window between N and
/// N + N/16 seconds after it (never earlier), so the bound errs on the side of refusing.
pub const ROLLING_BUCKETS: usize = 16;
/// Longest rolling velocity window: 400 days, in seconds.
pub const ROLLING_WINDOW_SECONDS_MAX: u32 = 400 * 86_400;
/// Codes in each channel list of an account (which codes may debit, which may credit).
pub const CHANNEL_CODES_MAX: usize = 16;
/// Codes whose debits may take an account past its debit limit (chargebacks, say).
pub const LIMIT_EXEMPT_CODES_MAX: usize = 8;
/// Codes one velocity rule may be restricted to (none: every code counts).
pub const VELOCITY_CODES_MAX: usize = 8;

/// Live (active or paused) standing orders and triggers one account may pay, be paid by or be
/// watched by (a payroll account paying more salaries splits them over several accounts).
pub const ORDERS_PER_ACCOUNT_MAX: usize = 1024;
/// Triggers watching one account.
pub const TRIGGERS_PER_ACCOUNT_MAX: usize = 4;
/// Queued runs (periods and retries) one batch runs at most, before its commands: a storm of a
/// million orders due at one instant drains over many batches, interleaved with client traffic.
/// Part of the rules: changing it changes what a logged batch did (`rules.rs`).
pub const DUE_RUNS_PER_BATCH_MAX: usize = 1024;
/// Retries of a failed run a standing order may ask for.
pub const ORDER_RETRIES_MAX: usize = 8;
/// Entries of an order's run history (the newest kept).
pub const RUN_HISTORY_MAX: usize = 8;
/// A period more than this late when it is reached came due while the server was down: a
/// standing order with `catch_up = none` skips it. (A running server ticks within milliseconds of
/// a due time, and drains a storm of a million runs in seconds.)
pub const CATCH_UP_GRACE_S: u64 = 300;
/// Longest period of a standing order: ten years of 366 days, in seconds (a month counts 31 days).
pub const ORDER_PERIOD_MAX_S: u64 = 10 * 366 * 86_400;

/// Capacity limits of one engine; reaching one is a result code, never a crash or an allocation spike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most ledgers.
    pub ledgers_max: u32,
    /// Most accounts (settlement accounts included).
    pub accounts_max: u32,
    /// Most transfers kept (holds, captures, releases included).
    pub transfers_max: u32,
    /// Most results one query returns.
    pub query_results_max: u32,
}

impl Default for Limits {
    /// Sized for a 24 GiB machine: 8 M accounts (~1.5 GiB) and 64 M transfers (~11 GiB).
    fn default() -> Self {
        Limits { ledgers_max: 1 << 16, accounts_max: 8 << 20, transfers_max: 64 << 20, query_results_max: 8189 }
    }
}

impl Limits {
    /// Why these limits cannot size an engine, if they cannot: its indexes are u32 with
    /// `u32::MAX` reserved, and a transfer index leaves the top bit free (it tags failed ids in
    /// the id index and the debit side in account links), so fewer than 2^31 transfers.
    pub fn problem(&self) -> Option<&'static str> {
        if self.accounts_max == crate::state::NONE {
            return Some("accounts_max exceeds the u32 index space");
        }
        (self.transfers_max >= crate::state::FAILED_TAG)
            .then_some("transfers_max is 2^31 or more (the top bit of a transfer index is a tag)")
    }
}

/// Longest validity of a quote: 7 days, in seconds.
pub const QUOTE_VALIDITY_MAX_S: u32 = 7 * 86_400;
/// Longest grace an order's reservation may outlast its quote: 7 days, in seconds.
pub const QUOTE_GRACE_MAX_S: u32 = 7 * 86_400;
/// Most decimal places of a quote's rate: 10^18 fits a u64.
pub const RATE_SCALE_MAX: u8 = 18;
