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
