//! The engine: in-memory state, the apply loop with linked chains, hold expiry, and the undo log.
//!
//! Layout: records live in dense `Vec`s and ids resolve to a `u32` index through FxHash maps
//! (deterministic, no per-process random hash seed). Per-account transfer lists are intrusive linked lists
//! through `transfer_links`, so recording a transfer for an account costs one sequential
//! write instead of a push into a per-account vector.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::id_hash::{IdMap, RUN_BITS, RUN_IDS};

use crate::command::Command;
use crate::digest::DigestState;
use crate::limits::{Limits, BATCH_COMMANDS_MAX, NS_PER_S, SCALE_MAX};
use crate::result::ResultCode;
use crate::types::{
    account_flags, account_state, change_flags, ledger_flags, transfer_flags as tf, Account, AccountChange, Ledger, Transfer,
};

/// Commands per gather pass: enough to overlap many misses, few enough that what the pass
/// touches (about 300 bytes per transfer) stays in L2 until the apply pass uses it.
const WARM_CHUNK: usize = 256;

/// "No index" in the intrusive lists.
pub(crate) const NONE: u32 = u32::MAX;

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

/// A hold's resolution state, kept for every pending transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hold {
    /// Current status.
    pub status: HoldStatus,
    /// Timestamp (ns) at which it expires; 0 = never.
    pub expires_at: u64,
    /// Timestamp of the capture, release or expiry; 0 while pending.
    pub resolved_at: u64,
}

/// One entry of an account's balance history (accounts with the `history` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BalanceEntry {
    /// Balances right after the change.
    pub balances: Balances,
    /// Timestamp of the transfer or expiry that changed them.
    pub timestamp: u64,
    /// Index of the account.
    pub(crate) account: u32,
    /// Previous entry of the same account, or `NONE`.
    pub(crate) prev: u32,
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
    /// Newest transfer touching this account, or `NONE`.
    pub(crate) last_transfer: u32,
    /// Newest balance-history entry, or `NONE`.
    pub(crate) last_balance: u32,
    /// Listed in `digest.dirty_accounts` since the digest was last settled.
    pub(crate) digest_dirty: bool,
}

/// How to undo one mutation made inside a linked chain.
#[derive(Clone, Copy, Debug)]
enum Undo {
    LedgerInserted,
    AccountInserted,
    GroupInserted,
    TransferInserted,
    BalanceEntryPushed,
    Balances { account: u32, old: Balances },
    State { account: u32, old: u8 },
    HoldInserted { transfer: u32 },
    HoldChanged { transfer: u32, old: Hold },
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
    pub(crate) transfers: Vec<Transfer>,
    /// For each transfer: the previous transfer of its debit account and of its credit account.
    pub(crate) transfer_links: Vec<[u32; 2]>,
    pub(crate) transfer_index: IdMap<u128, u32>,
    pub(crate) holds: IdMap<u32, Hold>,
    /// Pending holds with a timeout, in expiry order: (expires_at, transfer index).
    pub(crate) expiries: BTreeSet<(u64, u32)>,
    pub(crate) balance_history: Vec<BalanceEntry>,
    /// The last timestamp assigned.
    pub(crate) timestamp: u64,
    /// The state digest's running sum and what changed since it was last settled (see `digest`).
    pub(crate) digest: DigestState,
    undo: Vec<Undo>,
    recording: bool,
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
        assert!(limits.transfers_max < NONE && limits.accounts_max < NONE, "indexes are u32 with NONE reserved");
        Engine {
            limits,
            ledgers: Vec::new(),
            ledger_index: FxHashMap::default(),
            accounts: Vec::new(),
            account_meta: Vec::new(),
            account_index: IdMap::default(),
            groups: Vec::new(),
            group_index: FxHashMap::default(),
            transfers: Vec::new(),
            transfer_links: Vec::new(),
            transfer_index: IdMap::default(),
            holds: IdMap::default(),
            expiries: BTreeSet::new(),
            balance_history: Vec::new(),
            timestamp: 0,
            digest: DigestState::default(),
            undo: Vec::new(),
            recording: false,
        }
    }

    /// Reserves room for `accounts` accounts and `transfers` transfers, so the hot path does not reallocate.
    pub fn reserve(&mut self, accounts: usize, transfers: usize) {
        self.accounts.reserve(accounts);
        self.account_meta.reserve(accounts);
        self.account_index.reserve(accounts);
        self.transfers.reserve(transfers);
        self.transfer_links.reserve(transfers);
        self.transfer_index.reserve(transfers);
    }

    /// Reserves room like [`Engine::reserve`] for `accounts` and `transfers` more, and touches
    /// every page of it now, so the hot path takes no page faults: the start-up allocation of a
    /// server that knows its budget (what TigerBeetle does for all its memory). Costs about 150
    /// bytes of resident memory per transfer and 150 per account whether used or not, and on a
    /// non-empty engine one rebuild of each index (start-up time, not a stall later).
    pub fn preallocate(&mut self, accounts: usize, transfers: usize) {
        self.reserve(accounts, transfers);
        touch_spare(&mut self.transfers, transfers, Transfer::default());
        touch_spare(&mut self.transfer_links, transfers, [NONE; 2]);
        touch_spare(&mut self.accounts, accounts, Account::default());
        self.transfer_index = touched_index(&self.transfer_index, transfers);
        self.account_index = touched_index(&self.account_index, accounts);
    }

    /// The limits this engine enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(BatchError::TooLarge { len: commands.len() });
        }
        if let Some(index) = first_bad_request_end(request_ends, commands.len()) {
            return Err(BatchError::RequestEnds { index });
        }
        let clock = now.max(self.timestamp + 1);
        let mut cursor = clock;
        let expired = self.expire_holds(clock, &mut cursor);
        let first_timestamp = cursor;
        let base = results.len();
        results.resize(base + commands.len(), ResultCode::Ok);
        let out = &mut results[base..];
        let mut i = 0;
        let mut warmed = 0;
        let mut ends = request_ends.iter().map(|end| *end as usize + 1).peekable();
        while i < commands.len() {
            if i >= warmed {
                warmed = (i + WARM_CHUNK).min(commands.len());
                self.warm(&commands[i..warmed]);
            }
            while ends.next_if(|end| *end <= i).is_some() {}
            let request_end = ends.peek().copied().unwrap_or(commands.len());
            i = self.execute_chain(&commands[..request_end], i, cursor, out);
        }
        cursor += commands.len() as u64;
        self.timestamp = (cursor - 1).max(clock);
        debug_assert!(self.undo.is_empty() && !self.recording);
        Ok(BatchInfo { now: clock, expired, first_timestamp, last_timestamp: self.timestamp })
    }

    /// Read-only gather pass: probes the indexes and touches the account records the next
    /// commands will need. Its loop body is short and has no dependencies between iterations,
    /// so the CPU overlaps dozens of cache misses that the apply pass would otherwise take one
    /// after another. It cannot change any result: it reads and discards.
    ///
    /// It runs whatever the table size. In isolation a 10 000-account table stays in cache and
    /// the pass costs a little; inside the server the cache is cold at the start of every batch
    /// (the request was decoded on the other core, the log entry encoded and written), and
    /// warming gave 5-10% more throughput and 2 ms less p99 under `bursar bench` (A/B, three
    /// runs each, 1 and 2 clients). It used to be skipped below 65 536 accounts.
    fn warm(&self, commands: &[Command]) {
        // Two short loops: all index probes first, then the records they point at.
        let mut indexes = [NONE; 2 * WARM_CHUNK];
        let mut touched = 0u64;
        for (k, command) in commands.iter().enumerate() {
            if let Some(t) = command.as_transfer() {
                touched ^= self.transfer_index.get(&t.id).copied().unwrap_or(0) as u64;
                indexes[2 * k] = self.account_index.get(&t.debit_account_id).copied().unwrap_or(NONE);
                indexes[2 * k + 1] = self.account_index.get(&t.credit_account_id).copied().unwrap_or(NONE);
            }
        }
        for &i in &indexes[..2 * commands.len()] {
            if let Some(a) = self.accounts.get(i as usize) {
                touched ^=
                    (a.debits_posted as u64) ^ (a.credits_posted as u64) ^ a.timestamp ^ self.account_meta[i as usize].last_transfer as u64;
            }
        }
        std::hint::black_box(touched);
    }

    /// Runs the command at `start` (and, if it is linked, the rest of its chain); returns the
    /// index after the last command it decided. `commands` ends where the request of `start`
    /// ends, so a chain open there fails.
    fn execute_chain(&mut self, commands: &[Command], start: usize, first_ts: u64, out: &mut [ResultCode]) -> usize {
        if !commands[start].is_linked() {
            out[start] = self.apply(&commands[start], first_ts + start as u64);
            return start + 1;
        }
        let mut end = start;
        while end < commands.len() && commands[end].is_linked() {
            end += 1;
        }
        if end == commands.len() {
            // The request ends inside the chain: nothing in it runs.
            out[start..end].fill(ResultCode::LinkedEventFailed);
            out[end - 1] = ResultCode::LinkedEventChainOpen;
            return end;
        }
        debug_assert!(self.undo.is_empty());
        self.recording = true;
        for k in start..=end {
            let code = self.apply(&commands[k], first_ts + k as u64);
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

    fn apply(&mut self, command: &Command, ts: u64) -> ResultCode {
        match *command {
            Command::CreateLedger(ref l) => self.create_ledger(l, ts),
            Command::CreateAccount(ref a) => self.create_account(a, ts),
            Command::Transfer(ref t) => self.create_transfer(t, Sides::Both, ts),
            Command::Debit(ref t) => self.create_transfer(t, Sides::DebitOnly, ts),
            Command::Credit(ref t) => self.create_transfer(t, Sides::CreditOnly, ts),
            Command::Hold(t) => self.create_transfer(&Transfer { flags: t.flags | tf::PENDING, ..t }, Sides::Both, ts),
            Command::Capture(t) => self.create_transfer(&Transfer { flags: t.flags | tf::POST_PENDING, ..t }, Sides::Both, ts),
            Command::Release(t) => self.create_transfer(&Transfer { flags: t.flags | tf::VOID_PENDING, ..t }, Sides::Both, ts),
            Command::Freeze(ref c) => self.change_account(c, Change::Freeze),
            Command::Thaw(ref c) => self.change_account(c, Change::Thaw),
            Command::Close(ref c) => self.change_account(c, Change::Close),
        }
    }

    fn rollback(&mut self) {
        // Undoing must not record undo entries of its own.
        self.recording = false;
        while let Some(undo) = self.undo.pop() {
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
                    self.transfer_index.remove(&transfer.id);
                    let dr = self.account_index[&transfer.debit_account_id];
                    let cr = self.account_index[&transfer.credit_account_id];
                    self.account_meta[dr as usize].last_transfer = prev_debit;
                    self.account_meta[cr as usize].last_transfer = prev_credit;
                }
                Undo::BalanceEntryPushed => {
                    let entry = self.balance_history.pop().expect("undo: balance entry");
                    self.account_meta[entry.account as usize].last_balance = entry.prev;
                }
                Undo::Balances { account, old } => self.set_balances(account, old),
                Undo::State { account, old } => self.accounts[account as usize].state = old,
                Undo::HoldInserted { transfer } => {
                    let hold = self.holds.remove(&transfer).expect("undo: hold");
                    self.expiries.remove(&(hold.expires_at, transfer));
                }
                Undo::HoldChanged { transfer, old } => {
                    if old.status == HoldStatus::Pending && old.expires_at != 0 {
                        self.expiries.insert((old.expires_at, transfer));
                    }
                    self.holds.insert(transfer, old);
                }
            }
        }
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

    /// Appends a balance-history entry if the account keeps history.
    fn push_history(&mut self, account: u32, timestamp: u64) {
        let record = &self.accounts[account as usize];
        if record.flags & account_flags::HISTORY == 0 {
            return;
        }
        let meta = &mut self.account_meta[account as usize];
        let entry = BalanceEntry { balances: Balances::of(record), timestamp, account, prev: meta.last_balance };
        meta.last_balance = self.balance_history.len() as u32;
        self.balance_history.push(entry);
        self.record(Undo::BalanceEntryPushed);
    }

    fn expire_holds(&mut self, clock: u64, cursor: &mut u64) -> u32 {
        let mut expired = 0;
        while let Some(&(expires_at, transfer)) = self.expiries.first() {
            if expires_at > clock {
                break;
            }
            self.expiries.pop_first();
            let ts = *cursor;
            *cursor += 1;
            let hold = self.holds.get_mut(&transfer).expect("expiry of an unknown hold");
            assert_eq!(hold.status, HoldStatus::Pending, "only pending holds are in the expiry queue");
            hold.status = HoldStatus::Expired;
            hold.resolved_at = ts;
            self.digest.dirty_holds.push(transfer);
            let t = self.transfers[transfer as usize];
            self.release_reservation(&t, ts);
            expired += 1;
        }
        expired
    }

    /// Takes a hold's amount out of both pending balances.
    fn release_reservation(&mut self, hold: &Transfer, ts: u64) {
        let dr = self.account_index[&hold.debit_account_id];
        let cr = self.account_index[&hold.credit_account_id];
        let mut d = Balances::of(&self.accounts[dr as usize]);
        let mut c = Balances::of(&self.accounts[cr as usize]);
        d.debits_pending = d.debits_pending.checked_sub(hold.amount).expect("a hold never exceeds what it reserved");
        c.credits_pending = c.credits_pending.checked_sub(hold.amount).expect("a hold never exceeds what it reserved");
        self.set_balances(dr, d);
        self.set_balances(cr, c);
        self.push_history(dr, ts);
        self.push_history(cr, ts);
    }

    fn create_ledger(&mut self, l: &Ledger, ts: u64) -> ResultCode {
        use ResultCode as R;
        if l.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if l.reserved != [0; 64] {
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
        if let Some(&slot) = self.ledger_index.get(&l.id) {
            return ledger_exists(l, &self.ledgers[slot as usize].ledger);
        }
        if !l.currency.iter().all(u8::is_ascii_uppercase) {
            return R::CurrencyInvalid;
        }
        if l.scale > SCALE_MAX {
            return R::ScaleTooLarge;
        }
        if l.settlement_account_id == 0 {
            return R::AccountIdMustNotBeZero;
        }
        if l.settlement_account_id == u128::MAX {
            return R::AccountIdMustNotBeIntMax;
        }
        if l.settlement_account_code == 0 {
            return R::CodeMustNotBeZero;
        }
        if self.account_index.contains_key(&l.settlement_account_id) {
            return R::SettlementAccountExists;
        }
        if self.ledgers.len() >= self.limits.ledgers_max as usize {
            return R::LedgersLimitReached;
        }
        if self.accounts.len() >= self.limits.accounts_max as usize {
            return R::AccountsLimitReached;
        }
        let slot = self.ledgers.len() as u32;
        self.ledgers.push(LedgerSlot { ledger: Ledger { timestamp: ts, ..*l }, totals: Balances::default() });
        self.ledger_index.insert(l.id, slot);
        self.record(Undo::LedgerInserted);
        let settlement =
            Account { id: l.settlement_account_id, ledger: l.id, code: l.settlement_account_code, timestamp: ts, ..Default::default() };
        self.insert_account(settlement, slot);
        R::Ok
    }

    fn create_account(&mut self, a: &Account, ts: u64) -> ResultCode {
        use ResultCode as R;
        if a.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if a.state != 0 || a.reserved != [0; 3] {
            return R::ReservedField;
        }
        if a.flags & !account_flags::ALL != 0 {
            return R::ReservedFlag;
        }
        if a.id == 0 {
            return R::IdMustNotBeZero;
        }
        if a.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&e) = self.account_index.get(&a.id) {
            return account_exists(a, &self.accounts[e as usize]);
        }
        let limits = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS | account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        if a.flags & limits == limits {
            return R::FlagsAreMutuallyExclusive;
        }
        if a.debits_pending != 0 {
            return R::DebitsPendingMustBeZero;
        }
        if a.debits_posted != 0 {
            return R::DebitsPostedMustBeZero;
        }
        if a.credits_pending != 0 {
            return R::CreditsPendingMustBeZero;
        }
        if a.credits_posted != 0 {
            return R::CreditsPostedMustBeZero;
        }
        if a.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return R::CodeMustNotBeZero;
        }
        let Some(&slot) = self.ledger_index.get(&a.ledger) else {
            return R::LedgerNotFound;
        };
        if self.accounts.len() >= self.limits.accounts_max as usize {
            return R::AccountsLimitReached;
        }
        self.insert_account(Account { timestamp: ts, ..*a }, slot);
        R::Ok
    }

    pub(crate) fn insert_account(&mut self, account: Account, ledger_slot: u32) {
        let key = (account.ledger, account.code);
        let group = match self.group_index.get(&key) {
            Some(&g) => g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.push(Group { ledger: account.ledger, code: account.code, accounts: 0, totals: Balances::default() });
                self.group_index.insert(key, g);
                self.record(Undo::GroupInserted);
                g
            }
        };
        self.groups[group as usize].accounts += 1;
        let index = self.accounts.len() as u32;
        self.account_index.insert(account.id, index);
        self.accounts.push(account);
        self.account_meta.push(AccountMeta { ledger_slot, group, last_transfer: NONE, last_balance: NONE, digest_dirty: false });
        self.touch_account(index);
        self.record(Undo::AccountInserted);
    }

    fn change_account(&mut self, c: &AccountChange, change: Change) -> ResultCode {
        use ResultCode as R;
        if c.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if c.reserved != [0; 74] {
            return R::ReservedField;
        }
        let allowed = if change == Change::Close { change_flags::LINKED } else { change_flags::ALL };
        if c.flags & !allowed != 0 {
            return R::ReservedFlag;
        }
        if c.account_id == 0 {
            return R::AccountIdMustNotBeZero;
        }
        if c.account_id == u128::MAX {
            return R::AccountIdMustNotBeIntMax;
        }
        let mut sides = 0;
        if c.flags & change_flags::DEBITS != 0 {
            sides |= account_state::FROZEN_DEBITS;
        }
        if c.flags & change_flags::CREDITS != 0 {
            sides |= account_state::FROZEN_CREDITS;
        }
        if change != Change::Close && sides == 0 {
            return R::ChangeMustNameASide;
        }
        let Some(&index) = self.account_index.get(&c.account_id) else {
            return R::AccountNotFound;
        };
        let account = &self.accounts[index as usize];
        let old = account.state;
        if old & account_state::CLOSED != 0 {
            // Closing is idempotent; nothing else may touch a closed account.
            return if change == Change::Close { R::Ok } else { R::AccountClosed };
        }
        let new = match change {
            Change::Freeze => old | sides,
            Change::Thaw => old & !sides,
            Change::Close => {
                if account.debits_pending != 0 || account.credits_pending != 0 {
                    return R::AccountHasPendingBalance;
                }
                if account.debits_posted != account.credits_posted {
                    return R::AccountHasBalance;
                }
                account_state::CLOSED
            }
        };
        if new != old {
            self.accounts[index as usize].state = new;
            self.touch_account(index);
            self.record(Undo::State { account: index, old });
        }
        R::Ok
    }

    fn create_transfer(&mut self, t_in: &Transfer, sides: Sides, ts: u64) -> ResultCode {
        use ResultCode as R;
        let mut t = *t_in;
        if t.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if t.flags & !tf::ALL != 0 {
            return R::ReservedFlag;
        }
        if t.id == 0 {
            return R::IdMustNotBeZero;
        }
        if t.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&e) = self.transfer_index.get(&t.id) {
            return transfer_exists(&t, sides, &self.transfers[e as usize]);
        }
        if (t.flags & (tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING)).count_ones() > 1 {
            return R::FlagsAreMutuallyExclusive;
        }
        let counterparty = match sides {
            Sides::Both => 0,
            Sides::DebitOnly => t.credit_account_id,
            Sides::CreditOnly => t.debit_account_id,
        };
        if counterparty != 0 {
            return R::CounterpartyMustBeZero;
        }
        if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            return self.resolve_hold(&t, ts);
        }
        if sides != Sides::CreditOnly {
            if t.debit_account_id == 0 {
                return R::DebitAccountIdMustNotBeZero;
            }
            if t.debit_account_id == u128::MAX {
                return R::DebitAccountIdMustNotBeIntMax;
            }
        }
        if sides != Sides::DebitOnly {
            if t.credit_account_id == 0 {
                return R::CreditAccountIdMustNotBeZero;
            }
            if t.credit_account_id == u128::MAX {
                return R::CreditAccountIdMustNotBeIntMax;
            }
        }
        if sides == Sides::Both && t.debit_account_id == t.credit_account_id {
            return R::AccountsMustBeDifferent;
        }
        if t.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        if t.flags & tf::PENDING == 0 && t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        if t.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if t.code == 0 {
            return R::CodeMustNotBeZero;
        }
        if sides != Sides::Both {
            let Some(&slot) = self.ledger_index.get(&t.ledger) else {
                return R::LedgerNotFound;
            };
            let settlement = self.ledgers[slot as usize].ledger.settlement_account_id;
            let named = if sides == Sides::DebitOnly { &mut t.credit_account_id } else { &mut t.debit_account_id };
            *named = settlement;
            if t.debit_account_id == t.credit_account_id {
                return R::AccountIsSettlementAccount;
            }
        }
        self.post_new_transfer(&t, ts)
    }

    /// Checks and applies a posted transfer or a new hold whose fields are all resolved.
    fn post_new_transfer(&mut self, t: &Transfer, ts: u64) -> ResultCode {
        use ResultCode as R;
        let Some(&dr) = self.account_index.get(&t.debit_account_id) else {
            return R::DebitAccountNotFound;
        };
        let Some(&cr) = self.account_index.get(&t.credit_account_id) else {
            return R::CreditAccountNotFound;
        };
        let d = &self.accounts[dr as usize];
        let c = &self.accounts[cr as usize];
        if d.ledger != c.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != d.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }
        if let Some(code) = check_states(d, c) {
            return code;
        }
        let pending = t.flags & tf::PENDING != 0;
        let amount = t.amount;
        let mut db = Balances::of(d);
        let mut cb = Balances::of(c);
        if pending {
            let Some(v) = db.debits_pending.checked_add(amount) else {
                return R::OverflowsDebitsPending;
            };
            db.debits_pending = v;
            let Some(v) = cb.credits_pending.checked_add(amount) else {
                return R::OverflowsCreditsPending;
            };
            cb.credits_pending = v;
        } else {
            let Some(v) = db.debits_posted.checked_add(amount) else {
                return R::OverflowsDebitsPosted;
            };
            db.debits_posted = v;
            let Some(v) = cb.credits_posted.checked_add(amount) else {
                return R::OverflowsCreditsPosted;
            };
            cb.credits_posted = v;
        }
        let Some(debits) = db.debits_pending.checked_add(db.debits_posted) else {
            return R::OverflowsDebits;
        };
        let Some(credits) = cb.credits_pending.checked_add(cb.credits_posted) else {
            return R::OverflowsCredits;
        };
        let mut expires_at = 0;
        if pending && t.timeout != 0 {
            let Some(v) = (t.timeout as u64).checked_mul(NS_PER_S).and_then(|ns| ts.checked_add(ns)) else {
                return R::OverflowsTimeout;
            };
            expires_at = v;
        }
        let totals = &self.ledgers[self.account_meta[dr as usize].ledger_slot as usize].totals;
        let total = if pending { totals.debits_pending } else { totals.debits_posted };
        if total.checked_add(amount).is_none() {
            return R::OverflowsLedgerTotals;
        }
        if d.flags & account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS != 0 && debits > db.credits_posted {
            return R::ExceedsCredits;
        }
        if c.flags & account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS != 0 && credits > cb.debits_posted {
            return R::ExceedsDebits;
        }
        if self.transfers.len() >= self.limits.transfers_max as usize {
            return R::TransfersLimitReached;
        }
        debug_assert_eq!((db.debits_pending + db.debits_posted, cb.credits_pending + cb.credits_posted), (debits, credits));
        self.add_movement(dr, cr, amount, pending);
        let index = self.insert_transfer(Transfer { timestamp: ts, ..*t }, dr, cr);
        if pending {
            self.holds.insert(index, Hold { status: HoldStatus::Pending, expires_at, resolved_at: 0 });
            self.digest.dirty_holds.push(index);
            if expires_at != 0 {
                self.expiries.insert((expires_at, index));
            }
            self.record(Undo::HoldInserted { transfer: index });
        }
        self.push_history(dr, ts);
        self.push_history(cr, ts);
        R::Ok
    }

    /// Capture (post) or release (void) the hold named by `t.pending_id`.
    fn resolve_hold(&mut self, t: &Transfer, ts: u64) -> ResultCode {
        use ResultCode as R;
        let post = t.flags & tf::POST_PENDING != 0;
        if t.pending_id == 0 {
            return R::PendingIdMustNotBeZero;
        }
        if t.pending_id == u128::MAX {
            return R::PendingIdMustNotBeIntMax;
        }
        if t.pending_id == t.id {
            return R::PendingIdMustBeDifferent;
        }
        if t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        let Some(&pi) = self.transfer_index.get(&t.pending_id) else {
            return R::PendingTransferNotFound;
        };
        let p = self.transfers[pi as usize];
        if p.flags & tf::PENDING == 0 {
            return R::PendingTransferNotPending;
        }
        if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
            return R::PendingTransferHasDifferentDebitAccountId;
        }
        if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
            return R::PendingTransferHasDifferentCreditAccountId;
        }
        if t.ledger != 0 && t.ledger != p.ledger {
            return R::PendingTransferHasDifferentLedger;
        }
        if t.code != 0 && t.code != p.code {
            return R::PendingTransferHasDifferentCode;
        }
        let amount = if post {
            let amount = if t.amount == u128::MAX { p.amount } else { t.amount };
            if amount > p.amount {
                return R::ExceedsPendingTransferAmount;
            }
            amount
        } else {
            if t.amount != 0 && t.amount != p.amount {
                return R::PendingTransferHasDifferentAmount;
            }
            p.amount
        };
        let hold = self.holds[&pi];
        match hold.status {
            HoldStatus::Pending => {}
            HoldStatus::Posted => return R::PendingTransferAlreadyPosted,
            HoldStatus::Voided => return R::PendingTransferAlreadyVoided,
            HoldStatus::Expired => return R::PendingTransferExpired,
        }
        if hold.expires_at != 0 && hold.expires_at <= ts {
            return R::PendingTransferExpired;
        }
        let dr = self.account_index[&p.debit_account_id];
        let cr = self.account_index[&p.credit_account_id];
        let d = &self.accounts[dr as usize];
        let c = &self.accounts[cr as usize];
        let mut db = Balances::of(d);
        let mut cb = Balances::of(c);
        db.debits_pending = db.debits_pending.checked_sub(p.amount).expect("a hold never exceeds what it reserved");
        cb.credits_pending = cb.credits_pending.checked_sub(p.amount).expect("a hold never exceeds what it reserved");
        if post {
            if let Some(code) = check_states(d, c) {
                return code;
            }
            let Some(v) = db.debits_posted.checked_add(amount) else {
                return R::OverflowsDebitsPosted;
            };
            db.debits_posted = v;
            let Some(v) = cb.credits_posted.checked_add(amount) else {
                return R::OverflowsCreditsPosted;
            };
            cb.credits_posted = v;
            let totals = &self.ledgers[self.account_meta[dr as usize].ledger_slot as usize].totals;
            if totals.debits_posted.checked_add(amount).is_none() {
                return R::OverflowsLedgerTotals;
            }
        }
        if self.transfers.len() >= self.limits.transfers_max as usize {
            return R::TransfersLimitReached;
        }
        let stored = Transfer {
            id: t.id,
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount,
            pending_id: t.pending_id,
            user_data_128: if t.user_data_128 != 0 { t.user_data_128 } else { p.user_data_128 },
            user_data_64: if t.user_data_64 != 0 { t.user_data_64 } else { p.user_data_64 },
            user_data_32: if t.user_data_32 != 0 { t.user_data_32 } else { p.user_data_32 },
            timeout: 0,
            ledger: p.ledger,
            code: p.code,
            flags: t.flags,
            timestamp: ts,
        };
        self.set_balances(dr, db);
        self.set_balances(cr, cb);
        self.insert_transfer(stored, dr, cr);
        let status = if post { HoldStatus::Posted } else { HoldStatus::Voided };
        self.holds.insert(pi, Hold { status, resolved_at: ts, ..hold });
        self.digest.dirty_holds.push(pi);
        if hold.expires_at != 0 {
            self.expiries.remove(&(hold.expires_at, pi));
        }
        self.record(Undo::HoldChanged { transfer: pi, old: hold });
        self.push_history(dr, ts);
        self.push_history(cr, ts);
        R::Ok
    }

    pub(crate) fn insert_transfer(&mut self, t: Transfer, dr: u32, cr: u32) -> u32 {
        let index = self.transfers.len() as u32;
        let links = [self.account_meta[dr as usize].last_transfer, self.account_meta[cr as usize].last_transfer];
        self.account_meta[dr as usize].last_transfer = index;
        self.account_meta[cr as usize].last_transfer = index;
        self.transfer_index.insert(t.id, index);
        self.transfers.push(t);
        self.transfer_links.push(links);
        self.record(Undo::TransferInserted);
        index
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Freeze,
    Thaw,
    Close,
}

/// Lifecycle checks for money moving from `d` to `c`, in precedence order.
fn check_states(d: &Account, c: &Account) -> Option<ResultCode> {
    if d.state & account_state::CLOSED != 0 {
        return Some(ResultCode::DebitAccountClosed);
    }
    if c.state & account_state::CLOSED != 0 {
        return Some(ResultCode::CreditAccountClosed);
    }
    if d.state & account_state::FROZEN_DEBITS != 0 {
        return Some(ResultCode::DebitAccountFrozen);
    }
    if c.state & account_state::FROZEN_CREDITS != 0 {
        return Some(ResultCode::CreditAccountFrozen);
    }
    None
}

fn ledger_exists(l: &Ledger, e: &Ledger) -> ResultCode {
    use ResultCode as R;
    if l.flags != e.flags {
        R::ExistsWithDifferentFlags
    } else if l.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if l.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if l.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if l.currency != e.currency {
        R::ExistsWithDifferentCurrency
    } else if l.scale != e.scale {
        R::ExistsWithDifferentScale
    } else if l.settlement_account_id != e.settlement_account_id || l.settlement_account_code != e.settlement_account_code {
        R::ExistsWithDifferentSettlementAccount
    } else {
        R::Exists
    }
}

fn account_exists(a: &Account, e: &Account) -> ResultCode {
    use ResultCode as R;
    if a.flags != e.flags {
        R::ExistsWithDifferentFlags
    } else if a.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if a.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if a.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if a.ledger != e.ledger {
        R::ExistsWithDifferentLedger
    } else if a.code != e.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

/// Compares a re-sent transfer with the stored one. Fields the engine fills in (the
/// counterparty of a single-sided command; accounts, ledger, code and user data of a
/// capture/release) only count when the client set them.
fn transfer_exists(t: &Transfer, sides: Sides, e: &Transfer) -> ResultCode {
    use ResultCode as R;
    let resolves = t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0;
    let differs = |given: u128, stored: u128, filled: bool| {
        if filled {
            given != 0 && given != stored
        } else {
            given != stored
        }
    };
    if t.flags != e.flags {
        return R::ExistsWithDifferentFlags;
    }
    if t.pending_id != e.pending_id {
        return R::ExistsWithDifferentPendingId;
    }
    if t.timeout != e.timeout {
        return R::ExistsWithDifferentTimeout;
    }
    if differs(t.debit_account_id, e.debit_account_id, resolves || sides == Sides::CreditOnly) {
        return R::ExistsWithDifferentDebitAccountId;
    }
    if differs(t.credit_account_id, e.credit_account_id, resolves || sides == Sides::DebitOnly) {
        return R::ExistsWithDifferentCreditAccountId;
    }
    let amount_differs = if t.flags & tf::POST_PENDING != 0 {
        t.amount != u128::MAX && t.amount != e.amount
    } else if t.flags & tf::VOID_PENDING != 0 {
        t.amount != 0 && t.amount != e.amount
    } else {
        t.amount != e.amount
    };
    if amount_differs {
        return R::ExistsWithDifferentAmount;
    }
    if resolves {
        if differs(t.user_data_128, e.user_data_128, true) {
            return R::ExistsWithDifferentUserData128;
        }
        if t.user_data_64 != 0 && t.user_data_64 != e.user_data_64 {
            return R::ExistsWithDifferentUserData64;
        }
        if t.user_data_32 != 0 && t.user_data_32 != e.user_data_32 {
            return R::ExistsWithDifferentUserData32;
        }
        if t.ledger != 0 && t.ledger != e.ledger {
            return R::ExistsWithDifferentLedger;
        }
        if t.code != 0 && t.code != e.code {
            return R::ExistsWithDifferentCode;
        }
        return R::Exists;
    }
    if t.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if t.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if t.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if t.ledger != e.ledger {
        R::ExistsWithDifferentLedger
    } else if t.code != e.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
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
        assert!(engine.transfers.capacity() >= 50 + 10_000 && engine.transfer_index.capacity() >= 50 + 10_000);
        assert!(engine.accounts.capacity() >= 21 + 1_000 && engine.account_index.capacity() >= 21 + 1_000);
    }
}
