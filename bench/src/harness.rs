//! The load harness behind `bursar bench`: gateway clients over QUIC driving a Bursar server
//! (an embedded one on a fresh data directory, or one already running) with a seeded workload,
//! closed or open loop, measuring request latency in an hdrhistogram and the server's own
//! figures through the `metrics` operation; then it checks its own work (every command applied
//! once, the run's money where it should be, the ledger balanced).
//!
//! Open loop: each client sends on a fixed schedule whatever the replies do, and a request's
//! latency runs from its *intended* send time, so a stall shows in the percentiles instead of
//! silently thinning the load (no coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bursar_engine::{transfer_flags, Account, Command, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::assembly::{Running, ServerConfig};
use bursar_net::client::{Backoff, Client, ClientError, LedgerView};
use bursar_net::metrics::Metrics;
use bursar_net::protocol::{ProtocolError, Status};
use bursar_net::sequencer::SequencerConfig;
use bursar_net::{tls, Node};
use bursar_wal::{FsStorage, WalConfig};
use hdrhistogram::Histogram;
use rustls::pki_types::CertificateDer;

use crate::{pick, pick_pair, Choice, Rng, LEDGER, SETTLEMENT};

/// Width of one point of the throughput-over-time series.
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);
/// Requests one open-loop client keeps in flight at most; past it the schedule slips, and the
/// slip is measured (latency runs from the intended send time).
pub const OPEN_LOOP_IN_FLIGHT_MAX: usize = 1024;
/// Longest latency the histogram tells apart (an hour, in µs); longer ones are counted as an hour.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// How long a request refused `busy` is retried (same ids, the clients' [`Backoff`]) before the
/// run fails.
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);

/// Weights of what a request carries. A request is a lookup with probability
/// `lookup / (sum of all weights)`; otherwise a submit whose slots are drawn by the other weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// A posted transfer between two accounts.
    pub transfer: u32,
    /// A hold, then (later in the same request) its full capture, half capture or release.
    pub hold: u32,
    /// A debit against the ledger's settlement account.
    pub debit: u32,
    /// A credit from the ledger's settlement account.
    pub credit: u32,
    /// A linked chain of three transfers (all or nothing).
    pub chain: u32,
    /// A transfer, then (later in the same request) a refund of half of it (`reverse`).
    pub reverse: u32,
    /// A lookup request: as many account ids as the batch size.
    pub lookup: u32,
    /// A declined transfer (to an account that does not exist): its id is remembered as failed
    /// for good, as a card platform's declines are.
    pub decline: u32,
    /// A hold of one second that nothing captures: it expires (an authorisation never settled).
    pub expire: u32,
}

impl Mix {
    /// Posted transfers only (TigerBeetle's benchmark).
    pub const TRANSFERS: Mix = Mix { transfer: 1, hold: 0, debit: 0, credit: 0, chain: 0, reverse: 0, lookup: 0, decline: 0, expire: 0 };

    /// Parses `transfer:70,hold:10,debit:5,credit:5,chain:5,lookup:5` (missing kinds weigh 0).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Mix { transfer: 0, ..Mix::TRANSFERS };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, weight) = part.split_once(':').ok_or_else(|| format!("`{part}`: expected kind:weight"))?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
            let slot = match kind.trim() {
                "transfer" => &mut mix.transfer,
                "hold" => &mut mix.hold,
                "debit" => &mut mix.debit,
                "credit" => &mut mix.credit,
                "chain" => &mut mix.chain,
                "reverse" => &mut mix.reverse,
                "lookup" => &mut mix.lookup,
                "decline" => &mut mix.decline,
                "expire" => &mut mix.expire,
                other => {
                    return Err(format!("unknown kind `{other}` (transfer, hold, debit, credit, chain, reverse, lookup, decline, expire)"))
                }
            };
            *slot = weight;
        }
        if mix.submit_weight() == 0 && mix.lookup == 0 {
            return Err("the mix needs at least one kind with a weight above 0".into());
        }
        Ok(mix)
    }

    fn submit_weight(&self) -> u64 {
        [self.transfer, self.hold, self.debit, self.credit, self.chain, self.reverse, self.decline, self.expire]
            .iter()
            .map(|w| u64::from(*w))
            .sum()
    }
}

/// How the clients pace themselves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Each client sends its next request when the previous one is answered.
    Closed,
    /// All clients together send `commands_per_s` on a fixed schedule, replies or not.
    Open {
        /// Target rate in commands (lookup ids included) per second.
        commands_per_s: f64,
    },
}

/// When the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many commands (lookup ids count one each).
    Commands(u64),
    /// After this long.
    Duration(Duration),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Accounts the run creates (fresh ids of its own, on ledger [`LEDGER`]).
    pub accounts: u64,
    /// When to stop.
    pub stop: Stop,
    /// Commands per request (at most `BATCH_COMMANDS_MAX`).
    pub batch: usize,
    /// Concurrent gateway clients, one QUIC connection each.
    pub clients: usize,
    /// How accounts are chosen.
    pub choice: Choice,
    /// What requests carry.
    pub mix: Mix,
    /// Seed of every client's generator.
    pub seed: u64,
    /// Closed or open loop.
    pub load: Load,
    /// Give every account of the run a channel list and a velocity rule first
    /// ([`crate::policy_batches`]: checked on every transfer, refusing nothing).
    pub policy: bool,
    /// Accounts made with the `history` flag (TigerBeetle's benchmark's `--flag-history`): each
    /// transfer then adds a balance entry per side.
    pub account_history: bool,
    /// Requests of a client between a hold and its capture or release: 0, the same request;
    /// more, as card payments are captured long after their authorisation (the holds then wait
    /// in the server, and those still open when the budget is spent are resolved after it).
    pub capture_after: usize,
    /// Transfer ids in the order made (TigerBeetle's advice: time-based ids) or random (UUIDv4).
    pub ids: IdOrder,
}

/// How a client makes transfer ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdOrder {
    /// Consecutive from the client's base: neighbours in time are neighbours in the index.
    #[default]
    Sequential,
    /// 128 random bits from the client's seeded generator (a UUIDv4's shape), outside the
    /// engine's reserved range: no two ids made near each other share anything.
    Random,
}

impl Workload {
    /// Refuses workloads the harness cannot run as asked.
    pub fn check(&self) -> Result<(), String> {
        if self.accounts < 2 {
            return Err("--accounts must be at least 2".into());
        }
        if self.batch == 0 || self.batch > BATCH_COMMANDS_MAX {
            return Err(format!("--batch must be in 1..={BATCH_COMMANDS_MAX}"));
        }
        if self.clients == 0 || self.clients > 1024 {
            return Err("--clients must be in 1..=1024".into());
        }
        if let Load::Open { commands_per_s } = self.load {
            if !(commands_per_s.is_finite() && commands_per_s > 0.0) {
                return Err("--rate must be a positive number of commands per second".into());
            }
        }
        if let Choice::Hot { hot, percent } = self.choice {
            if hot == 0 || hot > self.accounts || percent > 100 {
                return Err("hot accounts: 1..=accounts of them, taking 0..=100 percent".into());
            }
        }
        Ok(())
    }
}

/// Where the server is and how to trust it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The TLS server name to ask for.
    pub server_name: String,
}

/// What the run's own records say the server must now hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Commands submitted (each stores one transfer record when applied).
    pub commands: u64,
    /// Sum of posted amounts on the debit side of the run's accounts.
    pub debits_posted: u128,
    /// Sum of posted amounts on the credit side of the run's accounts.
    pub credits_posted: u128,
    /// Sum of every posted amount (what the ledger's posted totals grow by).
    pub ledger_posted: u128,
    /// Account ids looked up.
    pub lookups: u64,
    /// Commands sent to be declined (`credit_account_not_found`), counted in `commands`.
    pub declines: u64,
    /// Holds sent to expire, counted in `commands`.
    pub expiring: u64,
}

impl Expected {
    fn add(&mut self, other: &Expected) {
        self.commands += other.commands;
        self.debits_posted += other.debits_posted;
        self.credits_posted += other.credits_posted;
        self.ledger_posted += other.ledger_posted;
        self.lookups += other.lookups;
        self.declines += other.declines;
        self.expiring += other.expiring;
    }
}

/// One check of the run's own work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub passed: bool,
    /// Expected and found, or why it was skipped.
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    /// The workload as run.
    pub workload: Workload,
    /// Where it ran ("embedded" or the address).
    pub target: String,
    /// Creating the run's accounts took this long.
    pub setup: Duration,
    /// The run's ids start above this: accounts `base + 1` on, client `c`'s transfers
    /// `base + 2^62 + c × 2^48 + 1` on.
    pub id_base: u128,
    /// From the first request sent to the last reply.
    pub elapsed: Duration,
    /// Requests answered.
    pub requests: u64,
    /// What the run sent, and must find applied.
    pub expected: Expected,
    /// Request latency, microseconds (open loop: from the intended send time).
    pub latency_us: Histogram<u64>,
    /// Commands the server did not apply, by result code name.
    pub rejected: BTreeMap<String, u64>,
    /// Lookup ids the server did not find.
    pub lookups_missing: u64,
    /// Retries after a `busy` answer.
    pub busy_retries: u64,
    /// Commands answered in each [`TIMELINE_STEP`] from the start.
    pub timeline: Vec<u64>,
    /// The server's figures over the run (the difference of two `metrics` readings).
    pub server: Metrics,
    /// The checks after the run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Commands (and lookup ids) answered per second.
    pub fn throughput(&self) -> f64 {
        (self.expected.commands + self.expected.lookups) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether every check passed.
    pub fn verified(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// One request a generator planned.
#[derive(Debug)]
enum Planned {
    Submit(Vec<Command>),
    Lookup(Vec<u128>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Transfer,
    Hold,
    Debit,
    Credit,
    Chain,
    Reverse,
    Decline,
    Expire,
}

/// A client's seeded workload generator; it keeps the sums the server must end up with.
#[derive(Debug)]
struct Generator {
    rng: Rng,
    accounts: u64,
    account_base: u128,
    next_id: u128,
    choice: Arc<Choice>,
    mix: Mix,
    expected: Expected,
    /// See [`Workload::capture_after`].
    capture_after: usize,
    /// Captures and releases waiting for their request, the oldest request's first.
    late: std::collections::VecDeque<Vec<Command>>,
    /// Draws random ids ([`IdOrder::Random`]) apart from `rng`, so both orders pick the same
    /// accounts and amounts.
    random_ids: Option<Rng>,
}

impl Generator {
    fn new(workload: &Workload, choice: Arc<Choice>, client: usize, account_base: u128) -> Generator {
        Generator {
            rng: Rng(workload.seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            accounts: workload.accounts,
            account_base,
            next_id: account_base + (1 << 62) + ((client as u128) << 48),
            choice,
            mix: workload.mix,
            expected: Expected::default(),
            capture_after: workload.capture_after,
            late: std::collections::VecDeque::new(),
            random_ids: (workload.ids == IdOrder::Random)
                .then(|| Rng(workload.seed.rotate_left(17) ^ (client as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93) | 1)),
        }
    }

    /// The captures and releases due in this request (made `capture_after` requests ago), at
    /// most `len`; the rest stay first in line.
    fn due(&mut self, len: usize) -> Vec<Command> {
        if self.late.len() <= self.capture_after {
            return Vec::new();
        }
        self.take_late(len, 1)
    }

    /// After the budget: the next request of at most `len` captures and releases still
    /// waiting, or `None` once every hold of the run is resolved.
    fn drain(&mut self, len: usize) -> Option<Planned> {
        let commands = self.take_late(len, usize::MAX);
        self.expected.commands += commands.len() as u64;
        (!commands.is_empty()).then_some(Planned::Submit(commands))
    }

    /// Up to `len` waiting captures and releases, oldest first, from at most `requests` requests.
    fn take_late(&mut self, len: usize, requests: usize) -> Vec<Command> {
        let mut taken = Vec::new();
        for _ in 0..requests {
            let Some(oldest) = self.late.front_mut().filter(|_| taken.len() < len) else { break };
            let take = oldest.len().min(len - taken.len());
            taken.extend(oldest.drain(..take));
            if oldest.is_empty() {
                self.late.pop_front();
            }
        }
        taken
    }

    fn id(&mut self) -> u128 {
        if let Some(rng) = &mut self.random_ids {
            // The top bit clear keeps ids out of the reserved range (and off zero and max).
            let id = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 1;
            return id.max(1);
        }
        self.next_id += 1;
        self.next_id
    }

    fn pair(&mut self) -> (u128, u128) {
        let (d, c) = pick_pair(&mut self.rng, self.accounts, &self.choice);
        (self.account_base + d, self.account_base + c)
    }

    fn transfer(&mut self, flags: u16) -> Command {
        let (debit, credit) = self.pair();
        let amount = 1 + self.rng.below(1000) as u128;
        self.post(amount, true, true);
        Command::Transfer(Transfer {
            id: self.id(),
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            ledger: LEDGER,
            code: 1,
            flags,
            ..Default::default()
        })
    }

    /// A movement between two accounts with code `code` that the sums do not count (a hold sent
    /// to expire, a transfer sent to be declined).
    fn unposted(&mut self, code: u16) -> Transfer {
        let (debit, credit) = self.pair();
        let amount = 1 + self.rng.below(1000) as u128;
        Transfer { id: self.id(), debit_account_id: debit, credit_account_id: credit, amount, ledger: LEDGER, code, ..Default::default() }
    }

    fn post(&mut self, amount: u128, debit_side: bool, credit_side: bool) {
        self.expected.ledger_posted += amount;
        if debit_side {
            self.expected.debits_posted += amount;
        }
        if credit_side {
            self.expected.credits_posted += amount;
        }
    }

    /// What the next slot of a submit carries, drawn by the mix's weights.
    fn kind(&mut self) -> Kind {
        let m = self.mix;
        let mut draw = self.rng.below(m.submit_weight());
        let weights = [
            (Kind::Transfer, m.transfer),
            (Kind::Hold, m.hold),
            (Kind::Debit, m.debit),
            (Kind::Credit, m.credit),
            (Kind::Reverse, m.reverse),
            (Kind::Decline, m.decline),
            (Kind::Expire, m.expire),
        ];
        for (kind, weight) in weights {
            if draw < u64::from(weight) {
                return kind;
            }
            draw -= u64::from(weight);
        }
        Kind::Chain
    }

    /// The next request of `len` commands (or lookup ids).
    fn next(&mut self, len: usize) -> Planned {
        let total = self.mix.submit_weight() + u64::from(self.mix.lookup);
        if self.rng.below(total) < u64::from(self.mix.lookup) {
            let ids = (0..len).map(|_| self.account_base + pick(&mut self.rng, self.accounts, &self.choice)).collect();
            self.expected.lookups += len as u64;
            return Planned::Lookup(ids);
        }
        let mut commands = self.due(len);
        let (mut resolutions, mut later) = (Vec::new(), Vec::new());
        // A hold resolved in a later request needs no room for its resolution in this one.
        let hold_room = if self.capture_after > 0 { 1 } else { 2 };
        while commands.len() + resolutions.len() < len {
            let room = len - commands.len() - resolutions.len();
            let kind = self.kind();
            if kind == Kind::Hold && room >= hold_room {
                let (debit, credit) = self.pair();
                let amount = 1 + self.rng.below(1000) as u128;
                let id = self.id();
                commands.push(Command::Hold(Transfer {
                    id,
                    debit_account_id: debit,
                    credit_account_id: credit,
                    amount,
                    ledger: LEDGER,
                    code: 2,
                    ..Default::default()
                }));
                let resolution = Transfer { id: self.id(), pending_id: id, ..Default::default() };
                let into = if self.capture_after > 0 { &mut later } else { &mut resolutions };
                into.push(match self.rng.below(3) {
                    0 => {
                        self.post(amount, true, true);
                        Command::Capture(Transfer { amount: u128::MAX, ..resolution })
                    }
                    1 => {
                        self.post(amount.div_ceil(2), true, true);
                        Command::Capture(Transfer { amount: amount.div_ceil(2), ..resolution })
                    }
                    _ => Command::Release(resolution),
                });
            } else if kind == Kind::Reverse && room >= 2 {
                let original = self.transfer(0);
                let Command::Transfer(t) = original else { unreachable!("a transfer") };
                let half = t.amount.div_ceil(2);
                self.post(half, true, true);
                commands.push(original);
                resolutions.push(Command::Reverse(Transfer {
                    id: self.id(),
                    pending_id: t.id,
                    amount: half,
                    code: 1,
                    ..Default::default()
                }));
            } else if kind == Kind::Chain && room >= 3 {
                commands.push(self.transfer(transfer_flags::LINKED));
                commands.push(self.transfer(transfer_flags::LINKED));
                commands.push(self.transfer(0));
            } else if kind == Kind::Expire {
                self.expected.expiring += 1;
                let t = self.unposted(2);
                commands.push(Command::Hold(Transfer { timeout: 1, ..t }));
            } else if kind == Kind::Decline {
                self.expected.declines += 1;
                // The first id past the run's accounts: never created, so it moves nothing.
                let nowhere = self.account_base + u128::from(self.accounts) + 1;
                commands.push(Command::Transfer(Transfer { credit_account_id: nowhere, ..self.unposted(1) }));
            } else if matches!(kind, Kind::Debit | Kind::Credit) {
                let account = self.account_base + pick(&mut self.rng, self.accounts, &self.choice);
                let amount = 1 + self.rng.below(1000) as u128;
                let t = Transfer { id: self.id(), amount, ledger: LEDGER, code: 3, ..Default::default() };
                let debit = kind == Kind::Debit;
                self.post(amount, debit, !debit);
                commands.push(if debit {
                    Command::Debit(Transfer { debit_account_id: account, ..t })
                } else {
                    Command::Credit(Transfer { credit_account_id: account, ..t })
                });
            } else {
                // A transfer, or a hold or chain that did not fit in the room left.
                commands.push(self.transfer(0));
            }
        }
        if self.capture_after > 0 {
            // One entry a request, empty or not: the lag counts requests.
            self.late.push_back(later);
        }
        commands.append(&mut resolutions);
        self.expected.commands += commands.len() as u64;
        Planned::Submit(commands)
    }
}

/// What the clients record as replies arrive.
#[derive(Debug)]
struct Collector {
    latency_us: Histogram<u64>,
    rejected: BTreeMap<String, u64>,
    lookups_missing: u64,
    busy_retries: u64,
    requests: u64,
    timeline: Vec<u64>,
    failure: Option<String>,
}

impl Collector {
    fn new() -> Collector {
        Collector {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds"),
            rejected: BTreeMap::new(),
            lookups_missing: 0,
            busy_retries: 0,
            requests: 0,
            timeline: Vec::new(),
            failure: None,
        }
    }

    fn record(&mut self, start: Instant, latency: Duration, answered: u64) {
        let us = (latency.as_micros() as u64).max(1);
        self.latency_us.saturating_record(us);
        self.requests += 1;
        let step = (start.elapsed().as_nanos() / TIMELINE_STEP.as_nanos()) as usize;
        if self.timeline.len() <= step {
            self.timeline.resize(step + 1, 0);
        }
        self.timeline[step] += answered;
    }
}

/// Shared between the clients: the command budget, progress, and the collector.
#[derive(Debug)]
struct Shared {
    stop: Stop,
    start: Instant,
    claimed: AtomicU64,
    /// Commands answered so far (for a progress bar).
    done: Arc<AtomicU64>,
    collector: Mutex<Collector>,
}

impl Shared {
    /// Claims up to `batch` commands of the budget; 0 when the run is over.
    fn claim(&self, batch: usize) -> usize {
        match self.stop {
            Stop::Duration(d) => {
                if self.start.elapsed() >= d {
                    0
                } else {
                    batch
                }
            }
            Stop::Commands(total) => {
                let mut claimed = self.claimed.load(Ordering::Relaxed);
                loop {
                    let take = (total.saturating_sub(claimed)).min(batch as u64);
                    if take == 0 {
                        return 0;
                    }
                    match self.claimed.compare_exchange_weak(claimed, claimed + take, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => return take as usize,
                        Err(now) => claimed = now,
                    }
                }
            }
        }
    }

    fn fail(&self, why: String) {
        let mut collector = self.collector.lock().expect("collector");
        collector.failure.get_or_insert(why);
    }

    fn failed(&self) -> bool {
        self.collector.lock().expect("collector").failure.is_some()
    }
}

/// Sends one planned request (retrying `busy` with the same ids) and records its reply;
/// latency runs from `intended`.
async fn send(client: &Client, planned: Planned, intended: Instant, shared: &Shared) {
    let mut busy = 0u32;
    let mut backoff = Backoff::new(BUSY_RETRY_FOR);
    loop {
        let outcome = match &planned {
            Planned::Submit(commands) => client.submit_slice(commands).await.map(|results| (results, 0)),
            Planned::Lookup(ids) => {
                client.lookup_accounts(ids.clone()).await.map(|found| (Vec::new(), found.iter().filter(|a| a.is_none()).count() as u64))
            }
        };
        match outcome {
            Ok((results, missing)) => {
                let latency = intended.elapsed();
                let answered = match &planned {
                    Planned::Submit(commands) => commands.len(),
                    Planned::Lookup(ids) => ids.len(),
                } as u64;
                let mut collector = shared.collector.lock().expect("collector");
                collector.record(shared.start, latency, answered);
                collector.lookups_missing += missing;
                collector.busy_retries += u64::from(busy);
                for code in results.iter().filter(|r| **r != ResultCode::Ok) {
                    *collector.rejected.entry(code.to_string()).or_default() += 1;
                }
                drop(collector);
                shared.done.fetch_add(answered, Ordering::Relaxed);
                return;
            }
            Err(e @ ClientError::Protocol(ProtocolError::Busy)) => match backoff.next_pause(&e) {
                Some(pause) => {
                    busy += 1;
                    tokio::time::sleep(pause).await;
                }
                None => return shared.fail(format!("a request stayed busy for {BUSY_RETRY_FOR:?}")),
            },
            Err(e) => return shared.fail(format!("a request failed: {e}")),
        }
    }
}

async fn closed_loop(client: Client, mut generator: Generator, batch: usize, shared: Arc<Shared>) -> Expected {
    loop {
        let len = shared.claim(batch);
        if len == 0 || shared.failed() {
            drain(&client, &mut generator, batch, &shared).await;
            return generator.expected;
        }
        let planned = generator.next(len);
        send(&client, planned, Instant::now(), &shared).await;
    }
}

/// Sends, one request after another, the captures and releases still waiting once the budget
/// is spent (none unless holds are resolved in later requests).
async fn drain(client: &Client, generator: &mut Generator, batch: usize, shared: &Shared) {
    while let Some(planned) = generator.drain(batch).filter(|_| !shared.failed()) {
        send(client, planned, Instant::now(), shared).await;
    }
}

async fn open_loop(client: Client, mut generator: Generator, batch: usize, period: Duration, shared: Arc<Shared>) -> Expected {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(OPEN_LOOP_IN_FLIGHT_MAX));
    let mut tasks = tokio::task::JoinSet::new();
    let mut intended = shared.start;
    loop {
        let len = shared.claim(batch);
        if len == 0 || shared.failed() {
            break;
        }
        let planned = generator.next(len);
        tokio::time::sleep_until(intended.into()).await;
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("the semaphore is never closed");
        let (client, shared, at) = (client.clone(), Arc::clone(&shared), intended);
        tasks.spawn(async move {
            send(&client, planned, at, &shared).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        intended += period;
    }
    while tasks.join_next().await.is_some() {}
    drain(&client, &mut generator, batch, &shared).await;
    generator.expected
}

/// Log bytes a command takes in a full batch: its 128-byte record and its kind byte, with room
/// for entry headers and checkpoints.
pub const LOG_BYTES_PER_COMMAND: u64 = 130;

/// A server in this process on its own data directory: sequencer thread, WAL with a sync per
/// log entry, QUIC on loopback with a fresh self-signed certificate.
#[derive(Debug)]
pub struct Embedded {
    /// What clients connect to.
    pub target: Target,
    /// The data directory.
    pub dir: PathBuf,
    running: Running<FsStorage>,
}

impl Embedded {
    /// Starts on `dir` (which must not exist yet), listening on an ephemeral loopback port, with
    /// room reserved for `accounts` and `transfers` (see `Node::reserve`) and, as `bursar start`
    /// by default, its history on disk in `dir/history`.
    pub async fn start(dir: &Path, accounts: u64, transfers: u64) -> Result<Embedded, String> {
        if dir.exists() {
            return Err(format!("{} exists; the embedded server needs a fresh directory", dir.display()));
        }
        let storage = FsStorage::open(dir.join("log")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let store = bursar_net::history::open_store(&dir.join("history")).map_err(|e| e.to_string())?;
        let (mut node, _, _) = Node::open_with_history(storage, WalConfig::default(), bursar_engine::Limits::default(), Some(store))
            .map_err(|e| e.to_string())?;
        node.reserve(accounts as usize, transfers as usize);
        // Log space too, as TigerBeetle's benchmark formats its data file before it runs: the
        // timed run then writes into prepared segments instead of zero-filling new ones.
        node.reserve_log((accounts + transfers) * LOG_BYTES_PER_COMMAND).map_err(|e| format!("reserving log space: {e}"))?;
        // The directory is removed after the run: a shutdown snapshot would only cost time.
        let sequencer = SequencerConfig { snapshot_on_stop: false, ..SequencerConfig::default() };
        let identity = tls::load_or_generate(dir).map_err(|e| format!("certificate: {e}"))?;
        let running = Running::start(node, &identity, ServerConfig { sequencer, ..ServerConfig::default() })?;
        let target = Target { addr: running.addr(), cert: running.cert(), server_name: "localhost".into() };
        Ok(Embedded { target, dir: dir.to_path_buf(), running })
    }

    /// Stops accepting, lets the sequencer finish, and returns what stopped it (if anything).
    pub async fn stop(self) -> Result<(), String> {
        self.running.stop().await.map(|_| ())
    }
}

async fn connect(target: &Target) -> Result<Client, String> {
    Client::connect(target.addr, target.cert.clone(), &target.server_name).await.map_err(|e| format!("connecting to {}: {e}", target.addr))
}

/// Waits (at most 10 s) until the run's holds that were sent to expire have: the server expires
/// them on its own clock, a second after each was made.
async fn wait_for_expiries(admin: &Client, before: &LedgerView) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ledger_view(admin).await?;
        if now.totals.debits_pending == before.totals.debits_pending {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "holds still pending 10 s after the run: {} (before it: {})",
                now.totals.debits_pending, before.totals.debits_pending
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ledger_view(client: &Client) -> Result<LedgerView, String> {
    client
        .ledger_totals(vec![LEDGER])
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .flatten()
        .ok_or_else(|| format!("ledger {LEDGER} is missing"))
}

/// Creates the ledger (or finds it) and the run's accounts; returns the first account id minus one.
async fn set_up(client: &Client, workload: &Workload, status: &Status) -> Result<u128, String> {
    let (accounts, policy) = (workload.accounts, workload.policy);
    let flags = if workload.account_history { bursar_engine::account_flags::HISTORY } else { 0 };
    let ledger = crate::setup_batches(0).remove(0);
    let results = client.submit(ledger).await.map_err(|e| e.to_string())?;
    if !matches!(results[0], ResultCode::Ok | ResultCode::Exists) {
        return Err(format!("creating ledger {LEDGER} with settlement account {SETTLEMENT}: {}", results[0]));
    }
    // Ids of the server's clock, shifted: no earlier run (whose accounts moved the clock on) used them.
    let base = (u128::from(status.clock) + 1) << 64;
    let ids: Vec<u128> = (1..=u128::from(accounts)).map(|i| base + i).collect();
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        let account = |id: u128| Command::CreateAccount(Account { id, ledger: LEDGER, code: 1, flags, ..Default::default() });
        let batch = chunk.iter().map(|id| account(*id)).collect();
        let results = submit_until_accepted(client, batch).await?;
        if let Some(code) = results.iter().find(|r| **r != ResultCode::Ok) {
            return Err(format!("creating the run's accounts: {code}"));
        }
    }
    for batch in crate::policy_batches(ids.iter().copied().filter(|_| policy)) {
        let results = submit_until_accepted(client, batch).await?;
        if let Some(code) = results.iter().find(|r| **r != ResultCode::Ok) {
            return Err(format!("setting the run's account policies: {code}"));
        }
    }
    Ok(base)
}

async fn submit_until_accepted(client: &Client, batch: Vec<Command>) -> Result<Vec<ResultCode>, String> {
    let mut backoff = Backoff::new(BUSY_RETRY_FOR);
    loop {
        match client.submit(batch.clone()).await {
            Err(e @ ClientError::Protocol(ProtocolError::Busy)) => match backoff.next_pause(&e) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err("the server stayed busy".into()),
            },
            other => return other.map_err(|e| e.to_string()),
        }
    }
}

/// Runs `workload` against `target`; `done` counts answered commands as they come (for a
/// progress bar). A run that could not finish is an error; a run whose checks fail is a report
/// with `verified() == false`.
pub async fn run(target: &Target, workload: &Workload, done: Arc<AtomicU64>) -> Result<Report, String> {
    workload.check()?;
    let admin = connect(target).await?;
    let setup_started = Instant::now();
    let base = set_up(&admin, workload, &admin.status().await.map_err(|e| e.to_string())?).await?;
    let setup = setup_started.elapsed();
    let (status_before, metrics_before, ledger_before) =
        (admin.status().await.map_err(|e| e.to_string())?, admin.metrics().await.map_err(|e| e.to_string())?, ledger_view(&admin).await?);

    let choice = Arc::new(workload.choice.clone());
    let mut clients = Vec::with_capacity(workload.clients);
    for _ in 0..workload.clients {
        clients.push(connect(target).await?);
    }
    let shared = Arc::new(Shared {
        stop: workload.stop,
        start: Instant::now(),
        claimed: AtomicU64::new(0),
        done,
        collector: Mutex::new(Collector::new()),
    });
    let mut tasks = Vec::with_capacity(workload.clients);
    for (i, client) in clients.into_iter().enumerate() {
        let generator = Generator::new(workload, Arc::clone(&choice), i, base);
        let shared = Arc::clone(&shared);
        tasks.push(match workload.load {
            Load::Closed => tokio::spawn(closed_loop(client, generator, workload.batch, shared)),
            Load::Open { commands_per_s } => {
                let period = Duration::from_secs_f64(workload.batch as f64 * workload.clients as f64 / commands_per_s);
                tokio::spawn(open_loop(client, generator, workload.batch, period, shared))
            }
        });
    }
    let mut expected = Expected::default();
    for task in tasks {
        expected.add(&task.await.map_err(|e| format!("a client task: {e}"))?);
    }
    let elapsed = shared.start.elapsed();
    if expected.expiring > 0 {
        wait_for_expiries(&admin, &ledger_before).await?;
    }
    let collector = {
        let mut guard = shared.collector.lock().expect("collector");
        std::mem::replace(&mut *guard, Collector::new())
    };
    if let Some(failure) = collector.failure {
        // Every command counted here was answered, so the server must still hold it after a
        // restart: the figure a crash or disk-full test checks against.
        let acknowledged = shared.done.load(Ordering::Relaxed);
        return Err(format!("{failure}; {acknowledged} commands had been acknowledged before it (each must survive a restart)"));
    }
    let (status_after, metrics_after, ledger_after) =
        (admin.status().await.map_err(|e| e.to_string())?, admin.metrics().await.map_err(|e| e.to_string())?, ledger_view(&admin).await?);
    let server = metrics_after.since(&metrics_before);
    let run_accounts: Vec<u128> = (1..=u128::from(workload.accounts)).map(|i| base + i).collect();
    let mut accounts = Vec::with_capacity(run_accounts.len());
    for chunk in run_accounts.chunks(BATCH_COMMANDS_MAX) {
        accounts.extend(admin.lookup_accounts(chunk.to_vec()).await.map_err(|e| e.to_string())?);
    }
    let checks = verify(
        &expected,
        &collector.rejected,
        collector.lookups_missing,
        &accounts,
        [&status_before, &status_after],
        &server,
        [&ledger_before, &ledger_after],
    );
    Ok(Report {
        workload: workload.clone(),
        target: target.addr.to_string(),
        setup,
        id_base: base,
        elapsed,
        requests: collector.requests,
        expected,
        latency_us: collector.latency_us,
        rejected: collector.rejected,
        lookups_missing: collector.lookups_missing,
        busy_retries: collector.busy_retries,
        timeline: collector.timeline,
        server,
        checks,
    })
}

fn check(what: &str, passed: bool, detail: String) -> Check {
    Check { what: what.to_string(), passed, detail }
}

/// The run's own accounting against what the server holds.
fn verify(
    expected: &Expected,
    rejected: &BTreeMap<String, u64>,
    lookups_missing: u64,
    accounts: &[Option<Account>],
    [status_before, status_after]: [&Status; 2],
    server: &Metrics,
    [ledger_before, ledger_after]: [&LedgerView; 2],
) -> Vec<Check> {
    let rejected_total: u64 = rejected.values().sum();
    let declined = ResultCode::CreditAccountNotFound.to_string();
    let as_planned = rejected_total == expected.declines && rejected.keys().all(|code| *code == declined);
    let mut checks = vec![check(
        "every command applied",
        as_planned,
        match (as_planned, expected.declines) {
            (true, 0) => format!("{} of {} ok", expected.commands, expected.commands),
            (true, declines) => {
                format!("{} of {} ok, the {declines} planned declines declined", expected.commands - declines, expected.commands)
            }
            (false, declines) => format!("{rejected_total} rejected ({declines} declines planned): {rejected:?}"),
        },
    )];
    if expected.lookups > 0 {
        checks.push(check(
            "every lookup found its account",
            lookups_missing == 0,
            format!("{lookups_missing} of {} missing", expected.lookups),
        ));
    }
    let found = accounts.iter().flatten().count();
    let sum = |f: fn(&Account) -> u128| accounts.iter().flatten().map(f).sum::<u128>();
    let (debits, credits) = (sum(|a| a.debits_posted), sum(|a| a.credits_posted));
    let pending = sum(|a| a.debits_pending) + sum(|a| a.credits_pending);
    checks.push(check(
        "the run's accounts hold exactly the run's money",
        found == accounts.len() && debits == expected.debits_posted && credits == expected.credits_posted && pending == 0,
        format!(
            "{found}/{} accounts; debits posted {debits} (expected {}), credits posted {credits} (expected {}), pending {pending} (expected 0)",
            accounts.len(),
            expected.debits_posted,
            expected.credits_posted
        ),
    ));
    checks.push(check(
        "the ledger balances (money conserved)",
        ledger_after.is_balanced(),
        format!(
            "debits posted {} = credits posted {}, pending {} = {}",
            ledger_after.totals.debits_posted,
            ledger_after.totals.credits_posted,
            ledger_after.totals.debits_pending,
            ledger_after.totals.credits_pending
        ),
    ));
    let stored = status_after.transfers - status_before.transfers;
    let grown = ledger_after.totals.debits_posted - ledger_before.totals.debits_posted;
    if server.commands == expected.commands {
        checks.push(check(
            "the server applied exactly the run's transfers",
            stored == expected.commands - expected.declines && grown == expected.ledger_posted,
            format!(
                "{stored} transfers stored (expected {}), ledger posted +{grown} (expected +{})",
                expected.commands - expected.declines,
                expected.ledger_posted
            ),
        ));
    } else {
        checks.push(check(
            "the server applied exactly the run's transfers",
            true,
            format!(
                "skipped: the server applied {} commands during the run, {} of them the run's (other traffic)",
                server.commands, expected.commands
            ),
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_refuses_nonsense() {
        assert_eq!(Mix::parse("transfer:1").unwrap(), Mix::TRANSFERS);
        let m = Mix::parse("transfer:70, hold:10,debit:5,credit:5,chain:5,lookup:5").unwrap();
        assert_eq!((m.transfer, m.hold, m.debit, m.credit, m.chain, m.lookup), (70, 10, 5, 5, 5, 5));
        assert!(Mix::parse("transfer:0").is_err());
        assert!(Mix::parse("wire:5").is_err());
        assert!(Mix::parse("transfer=5").is_err());
        assert!(Mix::parse("transfer:-1").is_err());
    }

    #[test]
    fn generator_fills_requests_exactly_and_accounts_for_every_amount() {
        let workload = Workload {
            accounts: 100,
            stop: Stop::Commands(10_000),
            batch: 64,
            clients: 1,
            choice: Choice::Uniform,
            mix: Mix::parse("transfer:5,hold:5,debit:2,credit:2,chain:3,reverse:2,lookup:1,decline:2,expire:1").unwrap(),
            seed: 9,
            load: Load::Closed,
            policy: false,
            account_history: false,
            capture_after: 0,
            ids: IdOrder::Sequential,
        };
        generate_and_apply(&workload);
        generate_and_apply(&Workload { ids: IdOrder::Random, ..workload.clone() });
        // Holds captured or released three requests later, the rest once the budget is spent.
        generate_and_apply(&Workload { capture_after: 3, ..workload });
    }

    /// Runs `workload`'s generator through a real engine: every request is as long as asked,
    /// everything applies but the planned declines, and the sums match what the generator expects.
    fn generate_and_apply(workload: &Workload) {
        let base = 1u128 << 64;
        let mut declined = 0;
        let mut generator = Generator::new(workload, Arc::new(Choice::Uniform), 0, base);
        let (mut submits, mut lookups) = (0, 0);
        // Replay through a real engine: everything applies, and the sums match.
        let mut engine = bursar_engine::Engine::new(bursar_engine::Limits::default());
        let mut results = Vec::new();
        let mut setup = crate::setup_batches(0).remove(0);
        setup.extend((1..=100).map(|i| Command::CreateAccount(Account { id: base + i, ledger: LEDGER, code: 1, ..Default::default() })));
        engine.execute(1 << 40, &setup, &mut results).unwrap();
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
        for len in [1usize, 2, 3, 64, 7] {
            for _ in 0..50 {
                match generator.next(len) {
                    Planned::Lookup(ids) => {
                        lookups += 1;
                        assert_eq!(ids.len(), len);
                        assert!(ids.iter().all(|id| (base + 1..=base + 100).contains(id)));
                    }
                    Planned::Submit(commands) => {
                        submits += 1;
                        assert_eq!(commands.len(), len);
                        results.clear();
                        engine.execute(engine.timestamp() + 1, &commands, &mut results).unwrap();
                        declined += results.iter().filter(|r| **r == ResultCode::CreditAccountNotFound).count() as u64;
                        assert!(results.iter().all(|r| matches!(r, ResultCode::Ok | ResultCode::CreditAccountNotFound)), "{results:?}");
                    }
                }
            }
        }
        assert!(submits > 100 && lookups > 0, "{submits} submits, {lookups} lookups");
        let waiting = generator.late.iter().map(Vec::len).sum::<usize>();
        assert!((workload.capture_after == 0) == (waiting == 0), "{waiting} resolutions wait after the budget");
        while let Some(Planned::Submit(commands)) = generator.drain(5) {
            assert!(commands.len() <= 5);
            results.clear();
            engine.execute(engine.timestamp() + 1, &commands, &mut results).unwrap();
            assert!(results.iter().all(|r| *r == ResultCode::Ok), "{:?}", results);
        }
        let accounts: Vec<&Account> = (1..=100).map(|i| engine.account(base + i).unwrap()).collect();
        let sum = |f: fn(&Account) -> u128| accounts.iter().map(|a| f(a)).sum::<u128>();
        assert_eq!(
            (sum(|a| a.debits_posted), sum(|a| a.credits_posted)),
            (generator.expected.debits_posted, generator.expected.credits_posted)
        );
        // The holds sent to expire are pending until a second passes.
        let pending: u128 = sum(|a| a.debits_pending);
        assert_eq!(pending > 0, generator.expected.expiring > 0, "{pending} pending");
        results.clear();
        engine.execute(engine.timestamp() + 2 * bursar_engine::limits::NS_PER_S, &[], &mut results).unwrap();
        let accounts: Vec<&Account> = (1..=100).map(|i| engine.account(base + i).unwrap()).collect();
        let sum = |f: fn(&Account) -> u128| accounts.iter().map(|a| f(a)).sum::<u128>();
        assert_eq!(sum(|a| a.debits_pending) + sum(|a| a.credits_pending), 0, "every other hold is resolved in its request");
        let totals = engine.ledger_totals(LEDGER).unwrap();
        assert_eq!(totals.totals.debits_posted, generator.expected.ledger_posted);
        assert_eq!(engine.transfers().len() as u64, generator.expected.commands - declined);
        assert_eq!((declined, engine.failed_transfers().len() as u64), (generator.expected.declines, generator.expected.declines));
        assert!(declined > 0 || workload.mix.decline == 0);
    }

    #[test]
    fn budget_is_claimed_exactly() {
        let shared = Shared {
            stop: Stop::Commands(100),
            start: Instant::now(),
            claimed: AtomicU64::new(0),
            done: Arc::default(),
            collector: Mutex::new(Collector::new()),
        };
        let claims: Vec<usize> = std::iter::from_fn(|| Some(shared.claim(30)).filter(|n| *n > 0)).collect();
        assert_eq!(claims, [30, 30, 30, 10]);
    }
}
