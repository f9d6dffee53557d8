//! Shared workload builders for the benchmarks: ledgers and accounts, transfer batches with
//! uniform, hot-account or Zipf choice, the naive `std::collections::HashMap` baseline engine,
//! the load harness behind `bursar bench` (`harness`), a good gateway beside a flooding one (`flood`),
//! and the exchange desk's engine workload (`exchange`).

pub mod exchange;
pub mod flood;
pub mod harness;

use std::collections::HashMap;

use bursar_engine::{Account, Command, Engine, Ledger, Limits, ResultCode, Transfer, BATCH_COMMANDS_MAX};

/// The ledger every benchmark account lives on.
pub const LEDGER: u32 = 1;
/// Id of the ledger's settlement account (outside the 1..=accounts range).
pub const SETTLEMENT: u128 = u128::MAX - 1;

/// How transfers choose their accounts.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Every account equally likely.
    Uniform,
    /// `hot` accounts (ids 1..=hot) take `percent`% of the picks; the rest are uniform.
    Hot {
        /// How many hot accounts.
        hot: u64,
        /// Share of picks that go to a hot account, 0..=100.
        percent: u64,
    },
    /// Account id k is picked with weight 1/k^s (a Zipf law: a few accounts take most picks).
    Zipf(Zipf),
}

pub use bursar_wal::sim::Rng;

/// A Zipf sampler over 1..=n by inverse CDF: n f64 of memory (8 MB per million accounts),
/// one binary search per pick.
#[derive(Clone, Debug, PartialEq)]
pub struct Zipf {
    /// The exponent s.
    pub s: f64,
    cdf: Vec<f64>,
}

impl Zipf {
    /// The law with exponent `s` (> 0) over `n` (≥ 1) ranks.
    pub fn new(n: u64, s: f64) -> Zipf {
        assert!(n >= 1 && s > 0.0 && s.is_finite(), "Zipf needs n >= 1 and a finite s > 0");
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += (k as f64).powf(-s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { s, cdf }
    }

    /// A rank in 1..=n.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (self.cdf.partition_point(|c| *c <= u) as u64 + 1).min(self.cdf.len() as u64)
    }
}

/// An account id (1-based) chosen by `choice` among `accounts`.
pub fn pick(rng: &mut Rng, accounts: u64, choice: &Choice) -> u128 {
    match choice {
        Choice::Hot { hot, percent } if rng.below(100) < *percent => 1 + rng.below((*hot).clamp(1, accounts)) as u128,
        Choice::Zipf(zipf) => zipf.sample(rng) as u128,
        _ => 1 + rng.below(accounts) as u128,
    }
}

/// A (debit, credit) pair of different accounts (1-based) chosen by `choice`.
pub fn pick_pair(rng: &mut Rng, accounts: u64, choice: &Choice) -> (u128, u128) {
    let debit = pick(rng, accounts, choice);
    let mut credit = pick(rng, accounts, choice);
    if credit == debit {
        credit = debit % accounts as u128 + 1;
    }
    (debit, credit)
}

/// The ledger (with its settlement account) and `accounts` accounts (ids 1..=accounts) as batches.
pub fn setup_batches(accounts: u64) -> Vec<Vec<Command>> {
    let ledger = Ledger {
        id: LEDGER,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: SETTLEMENT,
        settlement_account_code: 1,
        ..Default::default()
    };
    let mut batches = vec![vec![Command::CreateLedger(ledger)]];
    let all: Vec<Command> =
        (1..=accounts as u128).map(|id| Command::CreateAccount(Account { id, ledger: LEDGER, code: 1, ..Default::default() })).collect();
    batches.extend(all.chunks(BATCH_COMMANDS_MAX).map(<[Command]>::to_vec));
    batches
}

/// Gives every account named one channel list (code 99 may not debit it) and one
/// velocity rule (its debits per UTC day, count and amount bounded far above what a benchmark
/// moves): the checks run on every transfer and refuse nothing.
pub fn policy_batches(ids: impl IntoIterator<Item = u128>) -> Vec<Vec<Command>> {
    use bursar_engine::{velocity_flags as vf, velocity_window, ChannelPolicy, VelocityRule};
    let all: Vec<Command> = ids
        .into_iter()
        .flat_map(|account_id| {
            let mut channels = ChannelPolicy { account_id, ..Default::default() };
            channels.debit_codes[0] = 99;
            let rule = VelocityRule {
                account_id,
                flags: vf::DEBITS | vf::COUNT | vf::AMOUNT,
                window: velocity_window::DAY,
                count_max: u32::MAX,
                amount_max: u128::MAX / 2,
                ..Default::default()
            };
            [Command::SetChannels(channels), Command::SetVelocity(rule)]
        })
        .collect();
    all.chunks(BATCH_COMMANDS_MAX).map(<[Command]>::to_vec).collect()
}

/// An engine with one ledger and `accounts` accounts (ids 1..=accounts), room reserved for `transfers`.
pub fn engine_with_accounts(accounts: u64, transfers: usize) -> Engine {
    let limits = Limits {
        accounts_max: accounts as u32 + 16,
        transfers_max: (transfers as u32).max(Limits::default().transfers_max),
        ..Limits::default()
    };
    let mut engine = Engine::new(limits);
    engine.preallocate(accounts as usize + 1, transfers);
    let mut results = Vec::new();
    for (i, batch) in setup_batches(accounts).iter().enumerate() {
        engine.execute(1 + i as u64 * BATCH_COMMANDS_MAX as u64, batch, &mut results).expect("setup");
    }
    assert!(results.iter().all(|r| *r == ResultCode::Ok));
    engine
}

/// This process's resident memory in bytes (Linux `/proc/self/statm`: pages touched, so reserved
/// but unused capacity does not count).
pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    statm.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).expect("statm resident field") * 4096
}

/// A batch of `len` posted transfers with ids from `first_id`.
pub fn transfer_batch(rng: &mut Rng, accounts: u64, choice: &Choice, first_id: u128, len: usize) -> Vec<Command> {
    (0..len)
        .map(|i| {
            let (debit, credit) = pick_pair(rng, accounts, choice);
            Command::Transfer(Transfer {
                id: first_id + i as u128,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: 1 + rng.below(1000) as u128,
                ledger: LEDGER,
                code: 1,
                ..Default::default()
            })
        })
        .collect()
}

/// Applies uniform batches of posted transfers to `engine` (ids from 2^64, a millisecond apart,
/// on accounts 1..=accounts) until it stores `transfers`, calling `after_batch` after each: the
/// engine grown as a live server's is.
pub fn grow_uniform(engine: &mut Engine, accounts: u64, transfers: usize, mut after_batch: impl FnMut(&mut Engine)) {
    let (mut rng, mut results, mut now, mut id) = (Rng(7), Vec::new(), 1u64 << 40, 1u128 << 64);
    while engine.transfers().len() < transfers {
        let batch = transfer_batch(&mut rng, accounts, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
        id += BATCH_COMMANDS_MAX as u128;
        now += 1_000_000;
        results.clear();
        engine.execute(now, &batch, &mut results).expect("batch");
        after_batch(engine);
    }
}

/// A batch of hold-then-capture pairs (the capture right after its hold), `len` commands.
pub fn hold_capture_batch(rng: &mut Rng, accounts: u64, choice: &Choice, first_id: u128, len: usize) -> Vec<Command> {
    let mut batch = Vec::with_capacity(len);
    let mut id = first_id;
    while batch.len() < len {
        let Command::Transfer(t) = transfer_batch(rng, accounts, choice, id, 1)[0] else { unreachable!("transfer_batch builds transfers") };
        batch.push(Command::Hold(t));
        if batch.len() < len {
            batch.push(Command::Capture(Transfer { id: id + 1, pending_id: id, amount: u128::MAX, ..Default::default() }));
        }
        id += 2;
    }
    batch
}

/// The naive baseline: what one would write first with std's `HashMap` (SipHash) and no care for layout.
#[derive(Debug, Default)]
pub struct NaiveEngine {
    /// Accounts by id.
    pub accounts: HashMap<u128, Account>,
    /// Transfers by id, for idempotency.
    pub transfers: HashMap<u128, Transfer>,
}

impl NaiveEngine {
    /// `accounts` accounts with ids 1..=accounts.
    pub fn with_accounts(accounts: u64) -> NaiveEngine {
        let mut naive = NaiveEngine::default();
        for id in 1..=accounts as u128 {
            naive.accounts.insert(id, Account { id, ledger: LEDGER, code: 1, ..Default::default() });
        }
        naive
    }

    /// Applies posted transfers with the same checks that matter for cost: idempotency, both
    /// accounts exist, same ledger, overflow; returns how many were applied.
    pub fn apply(&mut self, batch: &[Command]) -> usize {
        let mut applied = 0;
        for command in batch {
            let Command::Transfer(t) = command else {
                continue;
            };
            if self.transfers.contains_key(&t.id) {
                continue;
            }
            let (Some(d), Some(c)) = (self.accounts.get(&t.debit_account_id), self.accounts.get(&t.credit_account_id)) else {
                continue;
            };
            if d.ledger != c.ledger || d.debits_posted.checked_add(t.amount).is_none() || c.credits_posted.checked_add(t.amount).is_none() {
                continue;
            }
            self.accounts.get_mut(&t.debit_account_id).expect("checked").debits_posted += t.amount;
            self.accounts.get_mut(&t.credit_account_id).expect("checked").credits_posted += t.amount;
            self.transfers.insert(t.id, *t);
            applied += 1;
        }
        applied
    }
}
