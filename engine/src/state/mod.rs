//! The engine: in-memory state, the apply dispatch with linked chains and the undo log. Each
//! command family has a room of its own: `ledgers`, `accounts` (lifecycle too), `transfers`,
//! `holds` (expiry, capture, release).
//!
//! Layout: records live in dense `Vec`s and ids resolve to a `u32` index through FxHash maps
//! (deterministic, no per-process random hash seed). Per-account transfer lists are intrusive linked lists
//! through `transfer_links`, so recording a transfer for an account costs one sequential
//! write instead of a push into a per-account vector.

mod accounts;
pub(crate) mod balances;
mod cold;
pub(crate) mod digest;
pub(crate) mod exchange;
mod expired;
mod failed;
mod feed;
mod finished;
pub(crate) mod holds;
pub(crate) mod image;
mod ledgers;
pub(crate) mod limits;
pub(crate) mod lineage;
pub(crate) mod order_table;
pub(crate) mod orders;
pub(crate) mod policy;
mod reversals;
mod transfers;

pub use balances::{decode_balance_entries, encode_balance_chunk, BalanceEntry, BALANCE_ENTRY_SIZE};
pub(crate) use cold::indexes_under;
pub use cold::{decode_chunk, History, HistoryUnreadable, RecordHistory, RecordReader, StoredIdIndex};
pub use digest::transfers_digest_sum;
pub use exchange::{convert, quote_expires_at, QuoteUsage, QUOTE_USAGE_SIZE};
pub use expired::{decode_expired, encode_expired_chunk, EXPIRED_SIZE};
pub use failed::{decode_failed, encode_failed_chunk, FAILED_SIZE};
pub use feed::{FeedEvent, FeedEventType, FeedNote};
pub(crate) use holds::hold_expiry;
pub use image::{image_bytes, ChunkImage};
pub use limits::{BalanceLimits, LimitChange};
pub use lineage::{
    decode_expired_image, encode_expired_image, expired_image_bytes, expired_image_of, lineage_bytes, reversals_max, ChunkLineage,
    Resolution, NAMED_HOLD, NAMED_NONE, NAMED_REVERSAL,
};
pub use order_table::OrderTable;
pub use orders::{
    due_of, is_reserved_id, month_length, run_id, Order, OrderSpec, OrderStatus, Retry, RunEntry, RunEvent, ORDER_STATE_SIZE,
    RUN_ENTRY_SIZE, RUN_ID_PREFIX,
};
pub use policy::{AccountPolicy, RuleUsage};
use policy::{Bucket, Policy};
use reversals::ReversalsOf;
pub(crate) use reversals::StatedHolds;
pub use reversals::{HoldOf, Lineage, LINEAGE_REVERSALS_MAX};

use accounts::Change;

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::id_hash::{IdMap, RUN_BITS, RUN_IDS};
use crate::id_index::{id_hash, TransferIds};

use crate::command::Command;
use crate::limits::{Limits, BATCH_COMMANDS_MAX, NS_PER_S, SCALE_MAX};
use crate::result::ResultCode;
use crate::rules::Rules;
use crate::types::{
    account_flags, account_state, change_flags, ledger_flags, transfer_flags as tf, Account, AccountChange, Ledger, Quote, Transfer,
};
use digest::DigestState;

/// Commands per gather pass: enough to overlap many misses, few enough that what the pass
/// touches (about 300 bytes per transfer) stays in L2 until the apply pass uses it.
const WARM_CHUNK: usize = 256;

/// Chunks of records [`Engine::preallocate`] allocates ahead when a history takes full chunks
/// out of memory: the open chunk, the newest full one (never evicted), and two on their way to
/// the store.
pub const CHUNKS_HELD_AHEAD: usize = 4;

/// "No index" in the intrusive lists.
pub(crate) const NONE: u32 = u32::MAX;

/// Marks a `transfer_index` value as an index into `failed` rather than `transfers`: one probe
/// answers "stored", "failed before" or "new". `Limits::transfers_max` stays below it.
pub(crate) const FAILED_TAG: u32 = 1 << 31;

/// Marks a link to a transfer (in `transfer_links` and `AccountMeta::last_transfer`): the
/// account whose list the link continues was that transfer's debit side. A walk of an account's
/// transfers then follows its links without reading a record, and can read the records it
/// reaches together. Transfer indexes stay below 2^31 − 1 (`Limits::problem`), so a marked link
/// is never `NONE`.
pub(crate) const LINK_DEBITED: u32 = 1 << 31;

/// The transfer a link names, and whether the account it belongs to was the debit side.
#[inline]
pub(crate) fn link_target(link: u32) -> (u32, bool) {
    debug_assert_ne!(link, NONE);
    (link & !LINK_DEBITED, link & LINK_DEBITED != 0)
}

/// What an id in `transfer_index` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdSlot {
    /// A stored transfer, by index.
    Transfer(u32),
    /// A remembered failure, by index into `failed`.
    Failed(u32),
}

impl IdSlot {
    pub(crate) fn of(value: u32) -> IdSlot {
        if value & FAILED_TAG != 0 {
            IdSlot::Failed(value & !FAILED_TAG)
        } else {
            IdSlot::Transfer(value)
        }
    }
}

/// A transfer id whose command failed with a code that decides it for good
/// ([`ResultCode::is_decided_once`]): every later command with the id answers
/// `id_already_failed`, so a declined payment cannot succeed on a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailedTransfer {
    /// The transfer id.
    pub id: u128,
    /// The timestamp the failing command was given.
    pub timestamp: u64,
    /// The code it failed with.
    pub code: ResultCode,
}

/// The four balances of an account (or their sums over many accounts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Balances {
    /// Sum of holds on the debit side.
    pub debits_pending: u128,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of holds on the credit side.
    pub credits_pending: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
}

impl Balances {
    pub(crate) fn of(a: &Account) -> Balances {
        Balances {
            debits_pending: a.debits_pending,
            debits_posted: a.debits_posted,
            credits_pending: a.credits_pending,
            credits_posted: a.credits_posted,
        }
    }

    fn write_to(&self, a: &mut Account) {
        a.debits_pending = self.debits_pending;
        a.debits_posted = self.debits_posted;
        a.credits_pending = self.credits_pending;
        a.credits_posted = self.credits_posted;
    }

    /// Moves a running total from `old` to `new` for one member. Wrapping arithmetic is exact
    /// here because every total is kept below `u128::MAX` by the `OverflowsLedgerTotals` check.
    fn shift(&mut self, old: &Balances, new: &Balances) {
        self.debits_pending = self.debits_pending.wrapping_sub(old.debits_pending).wrapping_add(new.debits_pending);
        self.debits_posted = self.debits_posted.wrapping_sub(old.debits_posted).wrapping_add(new.debits_posted);
        self.credits_pending = self.credits_pending.wrapping_sub(old.credits_pending).wrapping_add(new.credits_pending);
        self.credits_posted = self.credits_posted.wrapping_sub(old.credits_posted).wrapping_add(new.credits_posted);
    }
}

/// Where a hold stands.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// Still reserving its amount.
    Pending = 0,
    /// Captured (in full or in part).
    Posted = 1,
    /// Released by a command.
    Voided = 2,
    /// Released automatically when its timeout passed.
    Expired = 3,
}

impl HoldStatus {
    /// The status for its byte in snapshots and replies, if it names one.
    pub fn from_u8(value: u8) -> Option<HoldStatus> {
        [HoldStatus::Pending, HoldStatus::Posted, HoldStatus::Voided, HoldStatus::Expired].into_iter().find(|s| *s as u8 == value)
    }
}

/// A hold's resolution state: what every pending transfer has (derived from the capture or
/// release once it is finished, see `holds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hold {
    /// Current status.
    pub status: HoldStatus,
    /// Timestamp (ns) at which it expires; 0 = never.
    pub expires_at: u64,
    /// Timestamp of the capture, release or expiry; 0 while pending.
    pub resolved_at: u64,
    /// The capture or release that resolved it (a transfer index), or `NONE`: derived from the
    /// transfers, so neither in snapshots nor in the digest.
    pub(crate) resolved_by: u32,
}

/// A hold released because its timeout passed, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExpiredHold {
    /// The hold's transfer index.
    pub(crate) index: u32,
    /// The expiry's timestamp (the hold's `resolved_at`).
    pub(crate) resolved_at: u64,
}

/// A registered ledger and its running totals.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LedgerSlot {
    pub(crate) ledger: Ledger,
    pub(crate) totals: Balances,
}

/// Running totals of the accounts that share one (ledger, code): the live view finance staff need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group {
    pub(crate) ledger: u32,
    pub(crate) code: u16,
    pub(crate) accounts: u32,
    pub(crate) totals: Balances,
}

/// Per-account bookkeeping beside the 128-byte record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccountMeta {
    pub(crate) ledger_slot: u32,
    pub(crate) group: u32,
    /// Newest transfer touching this account (a link: see [`LINK_DEBITED`]), or `NONE`.
    pub(crate) last_transfer: u32,
    /// Newest balance-history entry, or `NONE`.
    pub(crate) last_balance: u32,
    /// Newest limit change, or `NONE` (the flags rule).
    pub(crate) last_limit_change: u32,
    /// The account's policy (channels, velocity rules) in `policies`, or `NONE`.
    pub(crate) policy: u32,
    /// Listed in `digest.dirty_accounts` since the digest was last settled.
    pub(crate) digest_dirty: bool,
    /// A trigger watches the account: its balance changes are noted for `settle_triggers`.
    pub(crate) watched: bool,
}

impl AccountMeta {
    /// Whether the account's flags alone have ruled its balance limits all along: no limit was
    /// ever set, and no policy could have let a code past the debit limit.
    pub(crate) fn flags_rule(&self) -> bool {
        self.last_limit_change == NONE && self.policy == NONE
    }
}

/// How to undo one mutation made inside a linked chain.
#[derive(Clone, Debug)]
enum Undo {
    LedgerInserted,
    AccountInserted,
    GroupInserted,
    TransferInserted,
    BalanceEntryPushed,
    LimitChangePushed,
    ReversalAdded { original: u128, previous: u32 },
    PolicyInserted,
    PolicyReplaced { policy: u32, old: Box<Policy> },
    Bucket { policy: u32, rule: u8, slot: u8, old: Bucket },
    OrderInserted,
    OrderReplaced { index: u32, old: Box<Order> },
    QuoteInserted,
    QuoteUsed { index: u32, old: QuoteUsage },
    WatchHit,
    Balances { account: u32, old: Balances },
    State { account: u32, old: u8 },
    HoldInserted { transfer: u32 },
    HoldResolved { transfer: u32, old: Hold, by: u32 },
    FeedNote,
}

/// Which side a single-sided command names; the other is the ledger's settlement account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sides {
    Both,
    DebitOnly,
    CreditOnly,
}

/// What the engine refuses to run at all (as opposed to per-command result codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// More than `BATCH_COMMANDS_MAX` commands.
    TooLarge {
        /// Commands in the batch.
        len: usize,
    },
    /// Request ends not strictly increasing, or past the last command.
    RequestEnds {
        /// Position in the list of the first bad end.
        index: usize,
    },
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BatchError::TooLarge { len } => write!(f, "batch of {len} commands exceeds the limit of {BATCH_COMMANDS_MAX}"),
            BatchError::RequestEnds { index } => write!(f, "request end {index} does not rise or lies past the last command"),
        }
    }
}

impl std::error::Error for BatchError {}

/// What one batch did besides its per-command results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BatchInfo {
    /// The batch's clock: `max(now, previous timestamp + 1)`; holds expiring at or before it were released.
    pub now: u64,
    /// Holds released automatically at the start of the batch.
    pub expired: u32,
    /// Queued standing-order runs and retries run at the start of the batch.
    pub ran: u32,
    /// Timestamp of the first command (each later command gets the next nanosecond).
    pub first_timestamp: u64,
    /// The engine's last assigned timestamp after the batch.
    pub last_timestamp: u64,
}

/// The state machine. Pure: `now` and commands in, results out.
#[derive(Debug)]
pub struct Engine {
    pub(crate) limits: Limits,
    pub(crate) ledgers: Vec<LedgerSlot>,
    pub(crate) ledger_index: FxHashMap<u32, u32>,
    pub(crate) accounts: Vec<Account>,
    pub(crate) account_meta: Vec<AccountMeta>,
    pub(crate) account_index: IdMap<u128, u32>,
    pub(crate) groups: Vec<Group>,
    pub(crate) group_index: FxHashMap<(u32, u16), u32>,
    pub(crate) transfers: crate::chunked::Chunked<Transfer>,
    /// For each transfer: the previous transfer of its debit account and of its credit account
    /// (links: see [`LINK_DEBITED`]).
    pub(crate) transfer_links: Vec<[u32; 2]>,
    /// Every transfer id the engine answers for: a stored transfer's index, or `FAILED_TAG` and
    /// an index into `failed` (by hash: see `find_transfer_id`).
    pub(crate) transfer_ids: TransferIds,
    /// Transfer ids whose outcome was decided by a failure, in the order they failed.
    pub(crate) failed: crate::chunked::Chunked<FailedTransfer>,
    /// The pending holds, by transfer index: hot state. A finished hold leaves it (see `finished`).
    pub(crate) holds: holds::PendingHolds,
    /// Every finished hold, by transfer index, to what finished it: the capture or release's
    /// transfer index, or `FAILED_TAG` and its place in `expired` (see `holds`, `finished`); the
    /// hold's state is derived from that record, so it is neither here nor in snapshots.
    pub(crate) finished: finished::FinishedHolds,
    /// Every expired hold with its expiry's timestamp, in the order they expired (which is
    /// ascending by (expiry time, transfer index)).
    pub(crate) expired: crate::chunked::Chunked<ExpiredHold>,
    /// Pending holds with a timeout, in expiry order: (expires_at, transfer index).
    pub(crate) expiries: BTreeSet<(u64, u32)>,
    /// Balance history of accounts with the `history` flag (see `balances`).
    pub(crate) balance_history: balances::BalanceHistory,
    /// Every change of an account's limits, in order (see `limits`).
    pub(crate) limit_changes: Vec<LimitChange>,
    /// Account policies (channel lists, velocity rules and their usage), by `AccountMeta::policy`.
    pub(crate) policies: Vec<Policy>,
    /// The reversals of each reversed transfer, by its id (derived from the transfers: a
    /// reversal's record names its original's id, so a restore finds its entry without asking
    /// an id index or reading the original).
    pub(crate) reversals: FxHashMap<u128, ReversalsOf>,
    /// Each reversal of a transfer with a later one: that later reversal (see [`ReversalsOf`]).
    pub(crate) next_reversal: FxHashMap<u32, u32>,
    /// Standing orders and triggers, by number - 1.
    pub(crate) orders: order_table::OrderTable,
    pub(crate) order_index: FxHashMap<u128, u32>,
    /// Queued runs: (due time, order number, slot: 0 the next period, 1 a retry), derived.
    pub(crate) due: BTreeSet<(u64, u32, u8)>,
    /// The live orders each account takes part in, by index (derived).
    pub(crate) orders_by_account: FxHashMap<u32, Vec<u32>>,
    /// The live triggers watching each account, by index (derived).
    pub(crate) watchers: FxHashMap<u32, Vec<u32>>,
    /// Watched accounts whose balances changed since the last settle point.
    watch_hits: Vec<u32>,
    /// Balance changes are not noted for triggers: a trigger's own transfer is being made, or a
    /// chain rolled back.
    unnoted: bool,
    /// The last timestamp assigned.
    pub(crate) timestamp: u64,
    /// Timestamps taken in this batch beyond one per command (an exchange's second leg).
    ts_taken: u64,
    /// Quotes, by index, and what each has paid out or reserved (see `exchange`).
    pub(crate) quotes: Vec<Quote>,
    pub(crate) quote_usage: Vec<QuoteUsage>,
    pub(crate) quote_index: FxHashMap<u128, u32>,
    /// The state digest's running sum and what changed since it was last settled (see `digest`).
    pub(crate) digest: DigestState,
    /// The rules of the batch being applied (see [`Rules`]).
    rules: Rules,
    undo: Vec<Undo>,
    recording: bool,
    /// Whether feed notes are kept (a feed's follower), and the notes (see `feed`).
    feed_on: bool,
    feed_notes: Vec<FeedNote>,
    /// Evicted transfers pinned or prefetched, and where queries read the rest (see `cold`).
    pub(crate) cold: cold::Cold,
}

/// The position of the first entry of `request_ends` that does not rise above the one before it
/// or is not below `len` (see [`Engine::execute_requests`]).
fn first_bad_request_end(request_ends: &[u32], len: usize) -> Option<usize> {
    let mut floor = 0usize;
    for (index, end) in request_ends.iter().enumerate() {
        let end = *end as usize;
        if end < floor || end >= len {
            return Some(index);
        }
        floor = end + 1;
    }
    None
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(Limits::default())
    }
}

impl Engine {
    /// An empty engine with the given limits.
    pub fn new(limits: Limits) -> Engine {
        assert_eq!(limits.problem(), None, "callers check limits first");
        Engine {
            limits,
            ledgers: Vec::new(),
            ledger_index: FxHashMap::default(),
            accounts: Vec::new(),
            account_meta: Vec::new(),
            account_index: IdMap::default(),
            groups: Vec::new(),
            group_index: FxHashMap::default(),
            transfers: crate::chunked::Chunked::default(),
            transfer_links: Vec::new(),
            transfer_ids: TransferIds::default(),
            failed: crate::chunked::Chunked::default(),
            holds: holds::PendingHolds::default(),
            finished: finished::FinishedHolds::default(),
            expired: crate::chunked::Chunked::default(),
            expiries: BTreeSet::new(),
            balance_history: balances::BalanceHistory::default(),
            limit_changes: Vec::new(),
            reversals: FxHashMap::default(),
            next_reversal: FxHashMap::default(),
            policies: Vec::new(),
            orders: order_table::OrderTable::default(),
            order_index: FxHashMap::default(),
            due: BTreeSet::new(),
            orders_by_account: FxHashMap::default(),
            watchers: FxHashMap::default(),
            watch_hits: Vec::new(),
            unnoted: false,
            timestamp: 0,
            ts_taken: 0,
            quotes: Vec::new(),
            quote_usage: Vec::new(),
            quote_index: FxHashMap::default(),
            digest: DigestState::default(),
            rules: Rules::CURRENT,
            undo: Vec::new(),
            recording: false,
            feed_on: false,
            feed_notes: Vec::new(),
            cold: cold::Cold::default(),
        }
    }

    /// Reserves room for `accounts` accounts and `transfers` transfers, so the hot path does not reallocate.
    pub fn reserve(&mut self, accounts: usize, transfers: usize) {
        self.accounts.reserve(accounts);
        self.account_meta.reserve(accounts);
        self.account_index.reserve(accounts);
        self.transfers.reserve(transfers);
        self.transfer_links.reserve(transfers);
        self.transfer_ids.reserve(self.transfer_ids.len() + transfers, self.cold.kept());
    }

    /// Reserves room like [`Engine::reserve`] for `accounts` and `transfers` more, and touches
    /// every page of it now, so the hot path takes no page faults: the start-up allocation of a
    /// server that knows its budget (what TigerBeetle does for all its memory). Costs about 150
    /// bytes of resident memory per transfer and 150 per account whether used or not, and on a
    /// non-empty engine one rebuild of each index (start-up time, not a stall later). With a
    /// history set, full chunks leave memory once stored, so records are allocated ahead for
    /// [`CHUNKS_HELD_AHEAD`] chunks only (the index and links still for every transfer).
    pub fn preallocate(&mut self, accounts: usize, transfers: usize) {
        self.reserve(accounts, transfers);
        let chunk_len = self.transfers.chunk_len();
        let records = if self.cold.history.is_some() { transfers.min(CHUNKS_HELD_AHEAD * chunk_len) } else { transfers };
        self.transfers.preallocate(records, Transfer::default());
        touch_spare(&mut self.transfer_links, transfers, [NONE; 2]);
        touch_spare(&mut self.accounts, accounts, Account::default());
        self.transfer_ids.touch();
        self.account_index = touched_index(&self.account_index, accounts);
    }

    /// Memory the engine no longer uses but has not freed: the old table of the transfer id
    /// index once growing has emptied it. A node drops it on another thread, so unmapping it
    /// does not stall the sequencer; left here, the next batch frees it.
    pub fn take_retired_memory(&mut self) -> Option<impl Send> {
        self.transfer_ids.take_retired()
    }

    /// The limits this engine enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Enforces `limits` from now on (a logged limits entry: the operator raised or lowered the
    /// capacity). Lower than what the engine holds is allowed: it then refuses new records of
    /// that kind with the limit's result code, and keeps every one it holds.
    pub fn change_limits(&mut self, limits: Limits) {
        assert_eq!(limits.problem(), None, "callers check limits first");
        self.limits = limits;
    }

    /// The last timestamp the engine assigned (its clock).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Applies one batch at time `now` (ns): first releases every hold whose expiry is at or
    /// before the batch's clock, in expiry order, then runs each command and appends one
    /// result per command to `results`. An empty batch just advances the clock (a tick).
    pub fn execute(&mut self, now: u64, commands: &[Command], results: &mut Vec<ResultCode>) -> Result<BatchInfo, BatchError> {
        self.execute_requests(now, commands, &[], results)
    }

    /// As [`Engine::execute`] for a batch joined from several requests: `request_ends` lists,
    /// strictly increasing, the index of the last command of each request but the last. A linked
    /// chain never crosses a request end: a chain still open at its request's last command fails
    /// there with `linked_event_chain_open`, exactly as at the end of a batch, so one client's
    /// open chain never reaches into another client's commands.
    pub fn execute_requests(
        &mut self,
        now: u64,
        commands: &[Command],
        request_ends: &[u32],
        results: &mut Vec<ResultCode>,
    ) -> Result<BatchInfo, BatchError> {
        self.execute_under(Rules::CURRENT, now, commands, request_ends, results)
    }

    /// As [`Engine::execute_requests`] under the given rules: what a replay calls with the
    /// rules a log entry was written under.
    pub fn execute_under(
        &mut self,
        rules: Rules,
        now: u64,
        commands: &[Command],
        request_ends: &[u32],
        results: &mut Vec<ResultCode>,
    ) -> Result<BatchInfo, BatchError> {
        self.rules = rules;
        // A table the last growth emptied that no one took (a replay, a feed's follower) is freed
        // here; a node takes it after each batch and frees it on another thread.
        drop(self.take_retired_memory());
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(BatchError::TooLarge { len: commands.len() });
        }
        if let Some(index) = first_bad_request_end(request_ends, commands.len()) {
            return Err(BatchError::RequestEnds { index });
        }
        let clock = now.max(self.timestamp + 1);
        let mut cursor = clock;
        let expired = self.expire_holds(clock, &mut cursor);
        self.settle_triggers(&mut cursor);
        let ran = if rules >= Rules::Scheduled { self.run_due(clock, &mut cursor) } else { 0 };
        let first_timestamp = cursor;
        self.ts_taken = 0;
        let base = results.len();
        results.resize(base + commands.len(), ResultCode::Ok);
        let out = &mut results[base..];
        let mut i = 0;
        let mut warmed = 0;
        let mut ends = request_ends.iter().map(|end| *end as usize + 1).peekable();
        // Command k's timestamp is `first + k + ts_taken`: each trigger firing moves `first` on by
        // one, each exchange's second leg takes one more (`ts_taken`).
        let mut first = cursor;
        while i < commands.len() {
            if i >= warmed {
                warmed = (i + WARM_CHUNK).min(commands.len());
                self.warm(&commands[i..warmed]);
            }
            while ends.next_if(|end| *end <= i).is_some() {}
            let request_end = ends.peek().copied().unwrap_or(commands.len());
            let (start, notes_before) = (i, self.feed_notes.len());
            i = self.execute_chain(&commands[..request_end], i, first, out);
            if self.feed_on {
                self.feed_notes.insert(notes_before, FeedNote::Commands { start: start as u32, end: i as u32 });
            }
            if !self.watch_hits.is_empty() {
                let mut next = self.ts_of(first, i);
                self.settle_triggers(&mut next);
                first = next - i as u64 - self.ts_taken;
            }
        }
        self.timestamp = self.ts_of(first, commands.len()).saturating_sub(1).max(clock);
        debug_assert!(self.undo.is_empty() && !self.recording);
        Ok(BatchInfo { now: clock, expired, ran, first_timestamp, last_timestamp: self.timestamp })
    }

    /// Read-only gather pass: probes the indexes and touches the account records the next
    /// commands will need. Its loop body is short and has no dependencies between iterations,
    /// so the CPU overlaps dozens of cache misses that the apply pass would otherwise take one
    /// after another. It cannot change any result: it reads and discards.
    ///
    /// It runs whatever the table size. In isolation a 10 000-account table stays in cache and
    /// the pass costs a little; inside the server the cache is cold at the start of every batch
    /// (the request was decoded on the other core, the log entry encoded and written), so it
    /// pays there at any table size (`bench/README.md`, "gather pass at every table size"); it
    /// used to be skipped below 65 536 accounts.
    fn warm(&self, commands: &[Command]) {
        // Two short loops: all index probes first, then the records they point at.
        let mut indexes = [NONE; 2 * WARM_CHUNK];
        let mut touched = 0u64;
        for (k, command) in commands.iter().enumerate() {
            if let Some(t) = command.as_transfer() {
                touched ^= self.transfer_ids.peek(t.id) as u64;
                indexes[2 * k] = self.account_index.get(&t.debit_account_id).copied().unwrap_or(NONE);
                indexes[2 * k + 1] = self.account_index.get(&t.credit_account_id).copied().unwrap_or(NONE);
            }
        }
        let mut policies = [NONE; 2 * WARM_CHUNK];
        for (k, &i) in indexes[..2 * commands.len()].iter().enumerate() {
            if let Some(a) = self.accounts.get(i as usize) {
                let meta = &self.account_meta[i as usize];
                touched ^= (a.debits_posted as u64) ^ (a.credits_posted as u64) ^ a.timestamp ^ meta.last_transfer as u64;
                policies[k] = meta.policy;
            }
        }
        // A third loop for the policies, so their misses overlap one another too (an account
        // without one costs a comparison).
        for &p in &policies[..2 * commands.len()] {
            if p != NONE {
                touched ^= self.warm_policy(p);
            }
        }
        std::hint::black_box(touched);
    }

    /// Runs the command at `start` (and, if it is linked, the rest of its chain); returns the
    /// index after the last command it decided. `commands` ends where the request of `start`
    /// ends, so a chain open there fails.
    fn execute_chain(&mut self, commands: &[Command], start: usize, first_ts: u64, out: &mut [ResultCode]) -> usize {
        if !commands[start].is_linked() {
            let ts = self.ts_of(first_ts, start);
            let code = self.apply(&commands[start], ts);
            out[start] = if code.is_success() { code } else { self.decide(&commands[start], code, ts) };
            return start + 1;
        }
        let mut end = start;
        while end < commands.len() && commands[end].is_linked() {
            end += 1;
        }
        let open = end == commands.len();
        if self.rules == Rules::Original {
            return self.execute_chain_original(commands, start, end, first_ts, out);
        }
        // An open chain runs up to its last member, which answers `linked_event_chain_open`.
        let last = if open { end - 1 } else { end };
        debug_assert!(self.undo.is_empty());
        self.recording = true;
        let broken = self.run_chain(commands, start, last + usize::from(!open), first_ts, out);
        if let Some(at) = broken.or(open.then_some(last)) {
            self.rollback();
            for code in &mut out[start..at] {
                if *code != ResultCode::Exists {
                    *code = ResultCode::LinkedEventFailed;
                }
            }
            // The breaking member keeps a failure or `exists`; a new member that met an existing
            // one did nothing wrong itself (nor did an open chain's unrun last member, still `ok`).
            if out[at] == ResultCode::Ok {
                out[at] = ResultCode::LinkedEventFailed;
            }
            out[at + 1..=last].fill(ResultCode::LinkedEventFailed);
            if open {
                out[last] = ResultCode::LinkedEventChainOpen;
            }
            out[at] = self.decide(&commands[at], out[at], self.ts_of(first_ts, at));
        }
        self.recording = false;
        self.undo.clear();
        last + 1
    }

    /// Applies `commands[start..stop]` in order while the chain holds; returns where it broke:
    /// a member that failed, or the first whose outcome mixes a new member with an existing
    /// one (a chain is new as a whole, or a retry as a whole). `out` holds each run member's code.
    fn run_chain(&mut self, commands: &[Command], start: usize, stop: usize, first_ts: u64, out: &mut [ResultCode]) -> Option<usize> {
        let (mut new, mut existing) = (false, false);
        for k in start..stop {
            let code = self.apply(&commands[k], self.ts_of(first_ts, k));
            out[k] = code;
            match code {
                ResultCode::Ok if existing => return Some(k),
                ResultCode::Ok => new = true,
                ResultCode::Exists if new => return Some(k),
                ResultCode::Exists => existing = true,
                _ => return Some(k),
            }
        }
        None
    }

    /// A chain under [`Rules::Original`]: `exists` never broke it, and a chain open at its
    /// request's end ran nothing.
    fn execute_chain_original(&mut self, commands: &[Command], start: usize, end: usize, first_ts: u64, out: &mut [ResultCode]) -> usize {
        if end == commands.len() {
            out[start..end].fill(ResultCode::LinkedEventFailed);
            out[end - 1] = ResultCode::LinkedEventChainOpen;
            return end;
        }
        debug_assert!(self.undo.is_empty());
        self.recording = true;
        for k in start..=end {
            let code = self.apply(&commands[k], self.ts_of(first_ts, k));
            out[k] = code;
            if !code.is_success() {
                self.rollback();
                out[start..=end].fill(ResultCode::LinkedEventFailed);
                out[k] = code;
                break;
            }
        }
        self.recording = false;
        self.undo.clear();
        end + 1
    }

    /// A command's final code: a transfer that failed with a code that decides its id
    /// ([`ResultCode::is_decided_once`]) has the id remembered, outside any chain's undo log.
    /// When no id can be remembered (the engine holds `transfers_max` ids), it answers
    /// `transfers_limit_reached` instead and nothing is decided.
    #[cold]
    fn decide(&mut self, command: &Command, code: ResultCode, ts: u64) -> ResultCode {
        if self.rules == Rules::Original || !code.is_decided_once() {
            return code;
        }
        let Some(t) = command.as_transfer() else {
            return code;
        };
        debug_assert!(!self.recording && self.find_transfer_id(t.id).is_none());
        if self.ids_full() {
            return ResultCode::TransfersLimitReached;
        }
        let index = self.failed.len() as u32;
        self.transfer_ids.insert(t.id, FAILED_TAG | index, self.cold.kept());
        self.failed.push(FailedTransfer { id: t.id, timestamp: ts, code });
        code
    }

    /// Command `k`'s timestamp in a run of commands starting at `first`: one per command, plus
    /// those the exchanges before it took for their second legs.
    #[inline]
    fn ts_of(&self, first: u64, k: usize) -> u64 {
        first + k as u64 + self.ts_taken
    }

    /// Whether the engine holds `transfers_max` transfer ids (stored and failed).
    pub(crate) fn ids_full(&self) -> bool {
        self.transfers.len() + self.failed.len() >= self.limits.transfers_max as usize
    }

    /// What a transfer id names, if anything, while applying: each value the index holds
    /// under the id's hash is checked against the record it names, which is in memory or was
    /// prefetched (`cold_wanted` asks for every one); a record that is neither is a broken
    /// invariant and panics.
    #[inline]
    pub(crate) fn find_transfer_id(&self, id: u128) -> Option<IdSlot> {
        let verify = |value| self.id_of_value(value, Engine::stored, Engine::failed_stored) == id;
        let found = self.transfer_ids.find(id, verify);
        // Stored ids the prefetch found in the history's id index (almost never any: new ids).
        let found = found.or_else(|| self.cold.stored_ids_found().then(|| self.cold.stored_ids_of(id_hash(id)).find(|&v| verify(v)))?);
        found.map(IdSlot::of)
    }

    /// As [`Engine::find_transfer_id`] for queries and restores: records out of memory are read
    /// from the history (a failed read counts as no match, and is kept for
    /// [`Engine::take_history_failure`]).
    pub(crate) fn find_transfer_id_through(&self, id: u128) -> Option<IdSlot> {
        let verify = |value| self.id_of_value(value, Engine::stored_through, Engine::failed_through) == id;
        let found = self.transfer_ids.find(id, verify);
        found.or_else(|| self.stored_ids_through(&[id]).into_iter().map(|(_, index)| index).find(|&v| verify(v))).map(IdSlot::of)
    }

    /// Calls `each` with every stored transfer's index that `id`'s hash names (almost always
    /// one, the id's own, or none): the records to read before [`Engine::find_transfer_id`]
    /// can tell which has the id.
    pub(crate) fn stored_candidates(&self, id: u128, mut each: impl FnMut(u32)) {
        self.transfer_ids.candidates(id, |value| {
            if let IdSlot::Transfer(index) = IdSlot::of(value) {
                each(index);
            }
        });
        if self.cold.stored_ids_found() && !crate::is_reserved_id(id) {
            self.cold.stored_ids_of(id_hash(id)).for_each(each);
        }
    }

    /// The transfer id index value `value` names, reading a stored record with `read`.
    #[inline]
    fn id_of_value(
        &self,
        value: u32,
        read: impl Fn(&Engine, u32) -> Transfer,
        read_failed: impl Fn(&Engine, u32) -> FailedTransfer,
    ) -> u128 {
        match IdSlot::of(value) {
            IdSlot::Failed(i) => read_failed(self, i).id,
            IdSlot::Transfer(i) => read(self, i).id,
        }
    }

    fn apply(&mut self, command: &Command, ts: u64) -> ResultCode {
        match *command {
            Command::CreateLedger(ref l) => self.create_ledger(l, ts),
            Command::CreateAccount(ref a) => self.create_account(a, ts),
            Command::Transfer(ref t) => self.create_transfer(t, Sides::Both, 0, ts),
            Command::Debit(ref t) => self.create_transfer(t, Sides::DebitOnly, 0, ts),
            Command::Credit(ref t) => self.create_transfer(t, Sides::CreditOnly, 0, ts),
            Command::Hold(ref t) => self.create_transfer(t, Sides::Both, tf::PENDING, ts),
            Command::Capture(ref t) => self.create_transfer(t, Sides::Both, tf::POST_PENDING, ts),
            Command::Release(ref t) => self.create_transfer(t, Sides::Both, tf::VOID_PENDING, ts),
            Command::Reverse(ref t) => self.create_transfer(t, Sides::Both, tf::REVERSE, ts),
            Command::Freeze(ref c) => self.change_account(c, Change::Freeze),
            Command::Thaw(ref c) => self.change_account(c, Change::Thaw),
            Command::Close(ref c) => self.change_account(c, Change::Close),
            Command::SetLimits(ref c) => self.set_limits(c, ts),
            Command::SetChannels(ref c) => self.set_channels(c, ts),
            Command::SetVelocity(ref v) => self.set_velocity(v, ts),
            Command::CreateStandingOrder(ref o) => self.create_standing_order(o, ts),
            Command::CreateTrigger(ref t) => self.create_trigger(t, ts),
            Command::PauseOrder(ref c) => self.manage_order(c, orders::Manage::Pause, ts),
            Command::ResumeOrder(ref c) => self.manage_order(c, orders::Manage::Resume, ts),
            Command::CancelOrder(ref c) => self.manage_order(c, orders::Manage::Cancel, ts),
            Command::AmendOrder(ref c) => self.manage_order(c, orders::Manage::Amend, ts),
            Command::CreateQuote(ref q) => self.create_quote(q, ts),
            Command::Exchange(ref e) => self.exchange(e, ts),
            Command::PlaceOrder(ref e) => self.place_order(e, ts),
        }
    }

    fn rollback(&mut self) {
        self.rollback_to(0);
        self.recording = false;
    }

    /// Undoes every mutation recorded after the first `mark` undo entries (a command's own
    /// savepoint inside a chain, or 0: the whole chain); recording goes on as it was.
    fn rollback_to(&mut self, mark: usize) {
        // Undoing must not record undo entries of its own, nor note what it puts back.
        let recording = core::mem::replace(&mut self.recording, false);
        let unnoted = core::mem::replace(&mut self.unnoted, true);
        while self.undo.len() > mark {
            let undo = self.undo.pop().expect("undo entries above the mark");
            match undo {
                Undo::LedgerInserted => {
                    let slot = self.ledgers.pop().expect("undo: ledger");
                    self.ledger_index.remove(&slot.ledger.id);
                }
                Undo::AccountInserted => {
                    let account = self.accounts.pop().expect("undo: account");
                    let meta = self.account_meta.pop().expect("undo: account meta");
                    self.account_index.remove(&account.id);
                    self.groups[meta.group as usize].accounts -= 1;
                }
                Undo::GroupInserted => {
                    let group = self.groups.pop().expect("undo: group");
                    assert_eq!(group.accounts, 0);
                    self.group_index.remove(&(group.ledger, group.code));
                }
                Undo::TransferInserted => {
                    let transfer = self.transfers.pop().expect("undo: transfer");
                    let [prev_debit, prev_credit] = self.transfer_links.pop().expect("undo: links");
                    self.transfer_ids.remove(transfer.id, self.transfers.len() as u32);
                    let dr = self.account_index[&transfer.debit_account_id];
                    let cr = self.account_index[&transfer.credit_account_id];
                    self.account_meta[dr as usize].last_transfer = prev_debit;
                    self.account_meta[cr as usize].last_transfer = prev_credit;
                }
                Undo::BalanceEntryPushed => {
                    let (entry, prev) = self.balance_history.pop().expect("undo: balance entry");
                    self.account_meta[entry.account as usize].last_balance = prev;
                }
                Undo::LimitChangePushed => {
                    let change = self.limit_changes.pop().expect("undo: limit change");
                    self.account_meta[change.account as usize].last_limit_change = change.prev;
                }
                Undo::ReversalAdded { original, previous } => self.undo_reversal(original, previous),
                Undo::PolicyInserted => {
                    let policy = self.policies.pop().expect("undo: policy");
                    self.account_meta[policy.account as usize].policy = NONE;
                }
                Undo::PolicyReplaced { policy, old } => {
                    let dirty = self.policies[policy as usize].digest_dirty();
                    self.policies[policy as usize] = *old;
                    self.policies[policy as usize].set_digest_dirty(dirty);
                }
                Undo::Bucket { policy, rule, slot, old } => self.policies[policy as usize].set_bucket(rule as usize, slot as usize, old),
                Undo::OrderInserted => self.undo_order(None),
                Undo::OrderReplaced { index, old } => self.undo_order(Some((index, old))),
                Undo::QuoteInserted => {
                    let quote = self.quotes.pop().expect("undo: quote");
                    self.quote_usage.pop();
                    self.quote_index.remove(&quote.id);
                }
                Undo::QuoteUsed { index, old } => {
                    self.quote_usage[index as usize] = old;
                    self.digest.mark_quote(index);
                }
                Undo::WatchHit => {
                    self.watch_hits.pop().expect("undo: watch hit");
                }
                Undo::Balances { account, old } => self.set_balances(account, old),
                Undo::State { account, old } => self.accounts[account as usize].state = old,
                Undo::HoldInserted { transfer } => {
                    let hold = self.holds.remove(&transfer).expect("undo: hold");
                    self.expiries.remove(&(hold.expires_at, transfer));
                }
                Undo::FeedNote => {
                    self.feed_notes.pop().expect("undo: feed note");
                }
                Undo::HoldResolved { transfer, old, by } => {
                    self.finished.remove(transfer, by);
                    self.take_back_resolution(by);
                    self.keep_pending(transfer, old.expires_at);
                }
            }
        }
        self.unnoted = unnoted;
        self.recording = recording;
    }

    fn record(&mut self, undo: Undo) {
        if self.recording {
            self.undo.push(undo);
        }
    }

    /// Writes an account's balances and moves its ledger's and group's totals along.
    fn set_balances(&mut self, account: u32, new: Balances) {
        let record = &mut self.accounts[account as usize];
        let old = Balances::of(record);
        new.write_to(record);
        self.touch_account(account);
        let meta = self.account_meta[account as usize];
        if meta.watched {
            self.note_watched(account);
        }
        self.ledgers[meta.ledger_slot as usize].totals.shift(&old, &new);
        self.groups[meta.group as usize].totals.shift(&old, &new);
        if self.recording {
            self.undo.push(Undo::Balances { account, old });
        }
    }

    /// The hot path of a new transfer or hold: adds `amount` to one debit field of `dr` and one
    /// credit field of `cr`, and moves the ledger and group totals by exactly that, instead of
    /// `set_balances`' shift of all four fields. The caller has checked every sum for overflow.
    fn add_movement(&mut self, dr: u32, cr: u32, amount: u128, pending: bool) {
        if self.recording {
            self.undo.push(Undo::Balances { account: dr, old: Balances::of(&self.accounts[dr as usize]) });
            self.undo.push(Undo::Balances { account: cr, old: Balances::of(&self.accounts[cr as usize]) });
        }
        self.touch_account(dr);
        self.touch_account(cr);
        let (dm, cm) = (self.account_meta[dr as usize], self.account_meta[cr as usize]);
        debug_assert_eq!(dm.ledger_slot, cm.ledger_slot, "both sides on one ledger");
        if dm.watched | cm.watched {
            self.note_watched_pair(dr, cr, dm.watched, cm.watched);
        }
        let ledger = &mut self.ledgers[dm.ledger_slot as usize].totals;
        if pending {
            self.accounts[dr as usize].debits_pending += amount;
            self.accounts[cr as usize].credits_pending += amount;
            ledger.debits_pending = ledger.debits_pending.wrapping_add(amount);
            ledger.credits_pending = ledger.credits_pending.wrapping_add(amount);
            let g = &mut self.groups[dm.group as usize].totals;
            g.debits_pending = g.debits_pending.wrapping_add(amount);
            let g = &mut self.groups[cm.group as usize].totals;
            g.credits_pending = g.credits_pending.wrapping_add(amount);
        } else {
            self.accounts[dr as usize].debits_posted += amount;
            self.accounts[cr as usize].credits_posted += amount;
            ledger.debits_posted = ledger.debits_posted.wrapping_add(amount);
            ledger.credits_posted = ledger.credits_posted.wrapping_add(amount);
            let g = &mut self.groups[dm.group as usize].totals;
            g.debits_posted = g.debits_posted.wrapping_add(amount);
            let g = &mut self.groups[cm.group as usize].totals;
            g.credits_posted = g.credits_posted.wrapping_add(amount);
        }
    }

    /// Notes that an account changed, for the next settling of the state digest.
    #[inline]
    fn touch_account(&mut self, account: u32) {
        let meta = &mut self.account_meta[account as usize];
        if !meta.digest_dirty {
            meta.digest_dirty = true;
            self.digest.dirty_accounts.push(account);
        }
    }

    /// Appends a balance-history entry if the account keeps history (and a feed note when
    /// notes are on); one branch for an account with neither.
    #[inline]
    fn push_history(&mut self, account: u32, timestamp: u64) {
        if self.accounts[account as usize].flags & account_flags::HISTORY != 0 || self.feed_on {
            self.record_balances(account, timestamp);
        }
    }

    #[inline(never)]
    fn record_balances(&mut self, account: u32, timestamp: u64) {
        let record = &self.accounts[account as usize];
        let balances = Balances::of(record);
        let history = record.flags & account_flags::HISTORY != 0;
        if self.feed_on {
            self.note(FeedNote::Balances { account, timestamp, balances });
        }
        if history {
            self.push_balance_entry(BalanceEntry { balances, timestamp, account });
            self.record(Undo::BalanceEntryPushed);
        }
    }
}

/// Writes `additional` placeholder values past the end of `vec` and takes them back: the
/// capacity stays, its pages now resident.
pub(crate) fn touch_spare<T: Clone>(vec: &mut Vec<T>, additional: usize, placeholder: T) {
    let len = vec.len();
    vec.resize(len + additional, placeholder);
    vec.truncate(len);
}

/// A copy of `index` with room for `additional` more entries whose bucket pages are all
/// touched: placeholder keys written into every page of buckets, cleared (the memory stays),
/// then the real entries.
///
/// The id hasher places runs of `RUN_IDS` consecutive ids on consecutive buckets and scatters
/// the runs, so placeholders 0, 1, 2… would cover only the run slots their runs happen to land
/// on (about half of them at a table's fill limit; the sequencer then took page faults in
/// `insert`, 3% of its time under `bursar bench`). Instead, for every run slot of the table,
/// two placeholders whose run lands there, half a run apart: one per 4 KiB page of buckets.
fn touched_index(index: &IdMap<u128, u32>, additional: usize) -> IdMap<u128, u32> {
    use core::hash::BuildHasher;
    let capacity = index.len() + additional;
    let mut touched = IdMap::with_capacity_and_hasher(capacity, Default::default());
    // hashbrown holds 7/8 of its buckets: a power of two, selected by a hash's low bits.
    let buckets = (touched.capacity() / 7 * 8).next_power_of_two().max(1);
    let run_slots = (buckets / RUN_IDS as usize).max(1);
    let mut covered = vec![false; run_slots];
    let (mut left, mut run) = (run_slots, 0u128);
    let tries_max = 64 * run_slots as u128;
    while left > 0 && touched.len() + 2 <= capacity && run < tries_max {
        let id = run << RUN_BITS;
        let slot = (touched.hasher().hash_one(id) as usize & (buckets - 1)) / RUN_IDS as usize;
        if !covered[slot] {
            covered[slot] = true;
            left -= 1;
            touched.insert(id, NONE);
            touched.insert(id + u128::from(RUN_IDS / 2), NONE);
        }
        run += 1;
    }
    touched.clear();
    touched.extend(index.iter().map(|(id, at)| (*id, *at)));
    touched
}

#[cfg(test)]
mod preallocate_tests {
    use crate::test_support::{accounts, engine, eur_ledger, execute_ok, transfer};

    /// Preallocating on an engine that already holds accounts and transfers keeps every one
    /// findable, changes no digest, and leaves the room asked for.
    #[test]
    fn preallocate_on_a_non_empty_engine_keeps_the_state() {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=20));
        commands.extend((1..=50u128).map(|id| transfer(500 + id, 1 + id % 20, 1 + (id + 1) % 20, id)));
        execute_ok(&mut engine, 1, &commands);
        let (digest, state) = (engine.digest(), engine.state_digest());
        engine.preallocate(1_000, 10_000);
        assert_eq!(engine.digest(), digest);
        assert_eq!(engine.state_digest(), state);
        assert!((1..=20u128).all(|id| engine.account(id).is_some()));
        assert!((501..=550u128).all(|id| engine.transfer(id).is_some_and(|t| t.amount == id - 500)));
        assert!(engine.transfer(0).is_none() && engine.transfer(5_000).is_none(), "placeholders are gone");
        assert!(engine.transfers.capacity() >= 50 + 10_000 && engine.transfer_ids.capacity() >= 50 + 10_000);
        assert!(engine.accounts.capacity() >= 21 + 1_000 && engine.account_index.capacity() >= 21 + 1_000);
    }

    /// With a history taking full chunks out of memory, room for many transfers allocates
    /// records for a few chunks only; the index and links still take every transfer.
    #[test]
    fn preallocate_with_a_history_allocates_a_few_chunks_of_records() {
        let mut engine = engine();
        engine.set_transfer_chunk_bits(4);
        engine.set_history(std::sync::Arc::new(crate::state::RecordHistory::new(16, |_: u64, _: &mut [u8]| Err("never read".to_string()))));
        engine.preallocate(10, 10_000);
        assert_eq!(engine.transfers.capacity(), crate::state::CHUNKS_HELD_AHEAD * 16);
        assert!(engine.transfer_ids.capacity() >= 10_000 && engine.transfer_links.capacity() >= 10_000);
    }
}

#[cfg(test)]
mod retired_memory_tests {
    use crate::test_support::{engine_with_accounts, execute_ok, transfer};

    /// The index's emptied table is handed out once after the batch whose inserts emptied it;
    /// left there, the next batch frees it.
    #[test]
    fn an_emptied_index_table_is_handed_out_or_freed_by_the_next_batch() {
        let mut engine = engine_with_accounts(1..=2);
        let (mut handed, mut freed) = (0, 0);
        for id in 1..=200u128 {
            execute_ok(&mut engine, 1 + id as u64, &[transfer(1_000 + id, 1, 2, 1)]);
            if !engine.transfer_ids.holds_retired() {
                continue;
            }
            if id % 2 == 0 {
                handed += usize::from(engine.take_retired_memory().is_some());
                assert!(engine.take_retired_memory().is_none(), "handed out once");
            } else {
                execute_ok(&mut engine, 1 + id as u64, &[]);
                freed += usize::from(!engine.transfer_ids.holds_retired());
            }
        }
        assert!(handed > 0 && freed > 0, "the index grew often enough: {handed} handed, {freed} freed");
        assert!((1..=200u128).all(|id| engine.transfer(1_000 + id).is_some()));
    }
}

#[cfg(test)]
mod expiring_tests {
    use crate::test_support::{accounts, capture, engine, eur_ledger, execute_ok, hold, release};
    use crate::transfer_flags;

    /// The holds that expire soonest come first; holds without a timeout and resolved holds are
    /// not listed.
    #[test]
    fn holds_are_listed_by_expiry() {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=2));
        commands.extend([hold(10, 300), hold(11, 60), hold(12, 0), hold(13, 120)]);
        execute_ok(&mut engine, 1, &commands);
        let ids = |engine: &crate::Engine, limit| engine.holds_expiring(limit).iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(&engine, 10), vec![11, 13, 10]);
        assert_eq!(ids(&engine, 2), vec![11, 13]);
        execute_ok(&mut engine, 2, &[release(20, 11)]);
        assert_eq!(ids(&engine, 10), vec![13, 10], "a released hold no longer expires");
    }

    /// A capture in a chain that fails is taken back: the hold is pending again, with its expiry,
    /// and nothing says it was finished; a later capture then finishes it.
    #[test]
    fn a_rolled_back_capture_leaves_the_hold_pending() {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=2));
        commands.push(hold(10, 60));
        execute_ok(&mut engine, 1, &commands);
        let mut results = Vec::new();
        engine.execute(2, &[capture(20, 10, transfer_flags::LINKED), capture(21, 99, 0)], &mut results).expect("batch");
        assert_eq!(results[0], crate::ResultCode::LinkedEventFailed);
        let hold_index = 0;
        assert!(engine.holds.contains_key(&hold_index) && engine.finished_by(hold_index).is_none());
        assert_eq!(engine.hold(10).map(|h| h.status), Some(crate::HoldStatus::Pending));
        assert_eq!(engine.next_expiry(), Some(engine.hold(10).expect("a hold").expires_at));
        engine.check_invariants().expect("invariants");
        execute_ok(&mut engine, 3, &[capture(20, 10, 0)]);
        assert_eq!(engine.hold(10).map(|h| (h.status, h.resolved_by)), Some((crate::HoldStatus::Posted, 1)));
        assert_eq!(engine.next_expiry(), None);
        engine.check_invariants().expect("invariants");
    }

    /// Finished holds leave the pending holds' table, so a snapshot lists the one still
    /// pending (and no finished one) and restores to the same state.
    #[test]
    fn finished_holds_leave_the_table_a_snapshot_lists() {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=2));
        execute_ok(&mut engine, 1, &commands);
        let holds = 3 * crate::BATCH_COMMANDS_MAX as u128;
        let made: Vec<_> = (1..=holds).map(|id| hold(id, 0)).collect();
        made.chunks(crate::BATCH_COMMANDS_MAX).enumerate().for_each(|(k, batch)| execute_ok(&mut engine, 2 + k as u64, batch));
        let captured: Vec<_> = (2..=holds).map(|id| capture(holds + id, id, 0)).collect();
        captured.chunks(crate::BATCH_COMMANDS_MAX).enumerate().for_each(|(k, batch)| execute_ok(&mut engine, 10 + k as u64, batch));
        assert_eq!(engine.holds.len(), 1);
        assert!(engine.holds.contains_key(&0));
        assert_eq!(engine.snapshot_view().len(), engine.snapshot_len());
        engine.check_invariants().expect("invariants");
        let bytes = engine.snapshot_bytes();
        assert_eq!(crate::Engine::restore(&bytes).expect("restores").snapshot_bytes(), bytes);
    }
}
