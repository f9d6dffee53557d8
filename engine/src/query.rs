//! Queries: lookups, per-account transfer lists and balance history, ledger totals, and the O(N) invariant audit.

use crate::command::Command;
use crate::state::{Balances, Engine, FailedTransfer, Hold, HoldStatus, IdSlot, NONE};
use crate::types::{account_flags, account_state, transfer_flags as tf, Account, Ledger, Transfer};

/// Flags of an [`AccountFilter`].
pub mod filter_flags {
    /// Include transfers in which the account is debited.
    pub const DEBITS: u32 = 1 << 0;
    /// Include transfers in which the account is credited.
    pub const CREDITS: u32 = 1 << 1;
    /// Newest first (default: oldest first).
    pub const REVERSED: u32 = 1 << 2;
}

/// Which transfers (or balance entries) of one account a query wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccountFilter {
    /// The account.
    pub account_id: u128,
    /// Only transfers with this `user_data_128` (0 = any).
    pub user_data_128: u128,
    /// Only transfers with this `user_data_64` (0 = any).
    pub user_data_64: u64,
    /// Only transfers with this `user_data_32` (0 = any).
    pub user_data_32: u32,
    /// Only transfers with this code (0 = any).
    pub code: u16,
    /// Earliest timestamp included (0 = no bound).
    pub timestamp_min: u64,
    /// Latest timestamp included (0 = no bound).
    pub timestamp_max: u64,
    /// Most results; capped at `Limits::query_results_max`. 0 returns nothing.
    pub limit: u32,
    /// `filter_flags`; at least one of DEBITS and CREDITS, or nothing matches.
    pub flags: u32,
}

/// An account's balances right after one change (a transfer or a hold's expiry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountBalance {
    /// When the change happened.
    pub timestamp: u64,
    /// The balances after it.
    pub balances: Balances,
}

/// Totals over the accounts of one code in one ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeTotals {
    /// Account code (type).
    pub code: u16,
    /// Accounts with this code.
    pub accounts: u32,
    /// Sums of their balances.
    pub totals: Balances,
}

/// The live view of one ledger: sums over all its accounts, by account code, and the trial balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerTotals {
    /// The ledger record.
    pub ledger: Ledger,
    /// Accounts on the ledger.
    pub accounts: u32,
    /// Sums of all balances on the ledger.
    pub totals: Balances,
    /// The same sums per account code, in order of code.
    pub by_code: Vec<CodeTotals>,
}

impl LedgerTotals {
    /// The trial balance: posted debits equal posted credits and pending debits equal pending credits.
    pub fn is_balanced(&self) -> bool {
        self.totals.debits_posted == self.totals.credits_posted && self.totals.debits_pending == self.totals.credits_pending
    }
}

impl Engine {
    /// The accounts with these ids, in the order asked, skipping ids that do not exist.
    pub fn lookup_accounts(&self, ids: &[u128]) -> Vec<Account> {
        ids.iter().filter_map(|id| self.account(*id).copied()).collect()
    }

    /// The transfers with these ids, in the order asked, skipping ids that do not exist.
    pub fn lookup_transfers(&self, ids: &[u128]) -> Vec<Transfer> {
        self.transfers_by_id(ids).into_iter().flatten().collect()
    }

    /// The transfer with each of these ids, in the order asked (`None` where none is stored);
    /// those out of memory are read from the history together.
    pub fn transfers_by_id(&self, ids: &[u128]) -> Vec<Option<Transfer>> {
        // Every stored transfer each id's hash may name (almost always one, the id's own),
        // read together; then the one that has the id.
        let (mut indices, mut ends) = (Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()));
        // Ids left to the history's id index: asked for together.
        let stored = self.stored_ids_through(ids);
        for &id in ids {
            self.stored_candidates(id, |index| indices.push(index));
            if !stored.is_empty() && !crate::is_reserved_id(id) {
                indices.extend(crate::state::indexes_under(&stored, crate::id_index::id_hash(id)));
            }
            ends.push(indices.len());
        }
        let mut found = Vec::with_capacity(indices.len());
        self.stored_through_many(&indices, &mut found);
        let mut start = 0;
        ids.iter()
            .zip(ends)
            .map(|(&id, end)| {
                let hit = found[start..end].iter().find(|t| t.id == id).copied();
                start = end;
                hit
            })
            .collect()
    }

    /// One account by id.
    pub fn account(&self, id: u128) -> Option<&Account> {
        self.account_index.get(&id).map(|&i| &self.accounts[i as usize])
    }

    /// One transfer by id.
    pub fn transfer(&self, id: u128) -> Option<Transfer> {
        self.transfers_by_id(&[id])[0]
    }

    /// Why a transfer id is decided as failed, if it is: the code and the timestamp of the
    /// command that failed (later commands with the id answer `id_already_failed`).
    pub fn failed_transfer(&self, id: u128) -> Option<FailedTransfer> {
        match self.find_transfer_id_through(id)? {
            IdSlot::Failed(i) => Some(self.failed_through(i)),
            IdSlot::Transfer(_) => None,
        }
    }

    /// One ledger by id.
    pub fn ledger(&self, id: u32) -> Option<&Ledger> {
        self.ledger_index.get(&id).map(|&i| &self.ledgers[i as usize].ledger)
    }

    /// Where the hold with this transfer id stands, if it is a hold.
    pub fn hold(&self, id: u128) -> Option<Hold> {
        match self.find_transfer_id_through(id)? {
            IdSlot::Transfer(i) => {
                let t = self.stored_through(i);
                (t.flags & tf::PENDING != 0).then(|| self.hold_state(i, &t, Engine::stored_through, Engine::expired_through))
            }
            IdSlot::Failed(_) => None,
        }
    }

    /// When the next hold expires (ns), if any: a sequencer ticks the clock then even without traffic.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The pending holds that expire soonest (at most `limit`), in order of expiry: what the
    /// engine will release next if nobody captures them.
    pub fn holds_expiring(&self, limit: usize) -> Vec<Transfer> {
        self.expiries.iter().take(limit).map(|(_, index)| self.stored_through(*index)).collect()
    }

    /// Every ledger, in creation order.
    pub fn ledgers(&self) -> impl Iterator<Item = &Ledger> {
        self.ledgers.iter().map(|slot| &slot.ledger)
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// Every transfer, in timestamp order.
    pub fn transfers(&self) -> &crate::Chunked<Transfer> {
        &self.transfers
    }

    /// Transfers of one account that match the filter (see [`AccountFilter`]).
    pub fn get_account_transfers(&self, filter: &AccountFilter) -> Vec<Transfer> {
        let Some(limit) = self.effective_limit(filter) else {
            return Vec::new();
        };
        let Some(&account) = self.account_index.get(&filter.account_id) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut walk = AccountWalk::new(self, account);
        while let Some((t, debited)) = walk.next(self) {
            if filter.timestamp_max != 0 && t.timestamp > filter.timestamp_max {
                continue;
            }
            if t.timestamp < filter.timestamp_min {
                break;
            }
            let side = if debited { filter_flags::DEBITS } else { filter_flags::CREDITS };
            if filter.flags & side == 0 || !matches_user_data(filter, &t) {
                continue;
            }
            found.push(t);
            if filter.flags & filter_flags::REVERSED != 0 && found.len() == limit {
                return found;
            }
        }
        arrange(found, limit, filter.flags)
    }

    /// Every transfer of one account (either side), oldest first, without the query limit: for
    /// statements and audit tools, not for the request path.
    pub fn account_transfers_all(&self, account_id: u128) -> Vec<Transfer> {
        let Some(&account) = self.account_index.get(&account_id) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut walk = AccountWalk::new(self, account);
        while let Some((t, _)) = walk.next(self) {
            found.push(t);
        }
        found.reverse();
        found
    }

    /// Balance history of a `history` account: the balances after each change that matches the filter's time range.
    pub fn get_account_balances(&self, filter: &AccountFilter) -> Vec<AccountBalance> {
        let Some(limit) = self.effective_limit(filter) else {
            return Vec::new();
        };
        let Some(&account) = self.account_index.get(&filter.account_id) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let reversed = filter.flags & filter_flags::REVERSED != 0;
        let mut full = false;
        self.walk_balance_entries(account, limit, |entry| {
            if filter.timestamp_max != 0 && entry.timestamp > filter.timestamp_max {
                return true;
            }
            if entry.timestamp < filter.timestamp_min {
                return false;
            }
            found.push(AccountBalance { timestamp: entry.timestamp, balances: entry.balances });
            full = reversed && found.len() == limit;
            !full
        });
        if full {
            return found;
        }
        arrange(found, limit, filter.flags)
    }

    fn effective_limit(&self, filter: &AccountFilter) -> Option<usize> {
        let limit = filter.limit.min(self.limits.query_results_max) as usize;
        let sides = filter.flags & (filter_flags::DEBITS | filter_flags::CREDITS);
        (limit > 0 && sides != 0 && (filter.timestamp_max == 0 || filter.timestamp_max >= filter.timestamp_min)).then_some(limit)
    }

    /// The live view of one ledger, or `None` if it is not registered.
    pub fn ledger_totals(&self, ledger: u32) -> Option<LedgerTotals> {
        let slot = &self.ledgers[*self.ledger_index.get(&ledger)? as usize];
        let mut by_code: Vec<CodeTotals> = self
            .groups
            .iter()
            .filter(|g| g.ledger == ledger && g.accounts > 0)
            .map(|g| CodeTotals { code: g.code, accounts: g.accounts, totals: g.totals })
            .collect();
        by_code.sort_by_key(|c| c.code);
        let accounts = by_code.iter().map(|c| c.accounts).sum();
        Some(LedgerTotals { ledger: slot.ledger, accounts, totals: slot.totals, by_code })
    }

    /// The invariants one batch can break, in O(batch + ledgers): every ledger's debits equal its
    /// credits (posted and pending), and every account the commands name keeps its balance
    /// constraints and lifecycle rules. For replaying long logs, where the O(state)
    /// [`Engine::check_invariants`] after every batch would cost more than the replay.
    pub fn check_batch_invariants(&self, commands: &[Command]) -> Result<(), String> {
        for slot in &self.ledgers {
            let t = &slot.totals;
            if t.debits_posted != t.credits_posted || t.debits_pending != t.credits_pending {
                return Err(format!("ledger {}: debits and credits differ", slot.ledger.id));
            }
        }
        let named = commands.iter().flat_map(Command::account_ids);
        for id in named {
            let Some(&index) = self.account_index.get(&id) else { continue };
            check_account(&self.accounts[index as usize], self.account_meta[index as usize].flags_rule())?;
        }
        Ok(())
    }

    /// Checks every invariant the engine maintains, in O(state). For tests, simulation and audit;
    /// the message names the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_invariants_reading(true)
    }

    /// As [`Engine::check_invariants`] without reading evicted transfers back: what a restore
    /// from a slim snapshot checks, whose state digest stands for the history it read once.
    pub(crate) fn check_hot_invariants(&self) -> Result<(), String> {
        self.check_invariants_reading(false)
    }

    /// The invariants; those over every stored transfer only if `history` (evicted records are
    /// then read back).
    fn check_invariants_reading(&self, history: bool) -> Result<(), String> {
        self.check_orders()?;
        self.check_links()?;
        let mut ledger_sums = vec![Balances::default(); self.ledgers.len()];
        let mut held = vec![(0u128, 0u128); self.accounts.len()];
        for (index, hold) in self.holds.iter() {
            if hold.status != HoldStatus::Pending || self.finished_by(index).is_some() {
                return Err(format!("hold at transfer index {index} is kept as pending but is not"));
            }
            if (hold.expires_at != 0) != self.expiries.contains(&(hold.expires_at, index)) {
                return Err(format!("expiry queue disagrees with the hold at transfer index {index}"));
            }
            let t = match self.in_memory(index) {
                Some(t) => t,
                None if history => self.stored_through(index),
                None => return Err(format!("pending hold at index {index} is evicted, not pinned")),
            };
            if t.flags & tf::PENDING == 0 || hold.expires_at != crate::state::hold_expiry(&t) {
                return Err(format!("hold state kept for transfer {} which is not pending, or not when it expires", t.id));
            }
            let dr = self.account_index[&t.debit_account_id] as usize;
            let cr = self.account_index[&t.credit_account_id] as usize;
            held[dr].0 = held[dr].0.wrapping_add(t.amount);
            held[cr].1 = held[cr].1.wrapping_add(t.amount);
        }
        let holds = self.holds.len() + self.finished.len();
        let pending_transfers = if history { self.all_transfers().filter(|t| t.flags & tf::PENDING != 0).count() } else { holds };
        if pending_transfers != holds {
            return Err(format!("{pending_transfers} pending transfers but {holds} holds pending or finished"));
        }
        if self.expiries.len() > self.holds.len() {
            return Err("expiry queue names holds that do not exist".into());
        }
        // Those in memory here; every one with the history's checks.
        let evicted = self.expired.evicted_chunks() * self.expired.chunk_len();
        let expired = if history { self.expired_holds() } else { self.expired.iter_from(evicted).copied().collect() };
        let first = if history { 0 } else { evicted };
        for (k, e) in expired.iter().enumerate() {
            if self.finished_by(e.index) != Some(crate::state::FAILED_TAG | (first + k) as u32) || e.resolved_at > self.timestamp {
                return Err(format!("expired hold at transfer index {} is not indexed as expired", e.index));
            }
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if (a.debits_pending, a.credits_pending) != held[i] {
                return Err(format!("account {}: pending balances differ from the sum of its pending holds", a.id));
            }
            check_account(a, self.account_meta[i].flags_rule())?;
            let slot = self.account_meta[i].ledger_slot as usize;
            let sum = &mut ledger_sums[slot];
            let added = [
                sum.debits_pending.checked_add(a.debits_pending),
                sum.debits_posted.checked_add(a.debits_posted),
                sum.credits_pending.checked_add(a.credits_pending),
                sum.credits_posted.checked_add(a.credits_posted),
            ];
            let [Some(dp), Some(dpo), Some(cp), Some(cpo)] = added else {
                return Err(format!("ledger {}: totals overflow", a.ledger));
            };
            *sum = Balances { debits_pending: dp, debits_posted: dpo, credits_pending: cp, credits_posted: cpo };
        }
        for (slot, sum) in self.ledgers.iter().zip(&ledger_sums) {
            if slot.totals != *sum {
                return Err(format!("ledger {}: running totals differ from the sum of its accounts", slot.ledger.id));
            }
            if sum.debits_posted != sum.credits_posted || sum.debits_pending != sum.credits_pending {
                return Err(format!("ledger {}: debits and credits differ", slot.ledger.id));
            }
        }
        self.check_policies()?;
        if self.transfer_ids.answered() != self.transfers.len() + self.failed.len() {
            return Err(format!(
                "the transfer id index answers for {} ids for {} transfers and {} failed ids",
                self.transfer_ids.answered(),
                self.transfers.len(),
                self.failed.len()
            ));
        }
        if !history {
            return Ok(());
        }
        self.check_failed_transfers()?;
        if self.recompute_sum() != self.settled_copy().sum {
            return Err("the running state digest differs from the digest recomputed over the whole state".into());
        }
        for (earlier, later) in self.all_transfers().zip(self.all_transfers().skip(1)) {
            if earlier.timestamp >= later.timestamp {
                return Err(format!("transfer {} is not after transfer {}", later.id, earlier.id));
            }
        }
        self.check_lineage()
    }

    /// Each reversal list holds exactly the reversals naming its original, in order, which add
    /// up to at most the original's amount; each resolved hold names the capture or release
    /// naming it.
    fn check_lineage(&self) -> Result<(), String> {
        // Every listed reversal, by walking each list once.
        let mut listed: rustc_hash::FxHashMap<u32, u128> = Default::default();
        for (&original, of) in &self.reversals {
            let chain: Vec<u32> = self.reversals_in_order(of).collect();
            if chain.len() != of.count as usize || chain.last() != Some(&of.newest) || chain.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("the reversals listed against {original} are not {} in order ending at {}", of.count, of.newest));
            }
            listed.extend(chain.into_iter().map(|r| (r, original)));
        }
        let counted: usize = self.reversals.values().map(|of| of.count as usize).sum();
        if listed.len() != counted || self.next_reversal.len() != counted - self.reversals.len() {
            return Err("a reversal is listed twice, or links to a later one outside every list".into());
        }
        let mut sums: rustc_hash::FxHashMap<u128, (u128, usize)> = Default::default();
        let mut resolutions = 0;
        for (i, t) in self.all_transfers().enumerate().filter(|(_, t)| t.flags & (tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE) != 0) {
            let Some(IdSlot::Transfer(named)) = self.find_transfer_id_through(t.pending_id) else {
                return Err(format!("transfer {} names {}, which is not stored", t.id, t.pending_id));
            };
            if t.flags & tf::REVERSE == 0 {
                resolutions += 1;
                if self.finished_by(named) != Some(i as u32) {
                    return Err(format!("hold {}: its resolving transfer is not {}", t.pending_id, t.id));
                }
                continue;
            }
            let sum = sums.entry(t.pending_id).or_default();
            *sum = (sum.0.wrapping_add(t.amount), sum.1 + 1);
            if listed.get(&(i as u32)) != Some(&t.pending_id) {
                return Err(format!("reversal {} is not listed against {}", t.id, t.pending_id));
            }
        }
        if self.finished.len() != resolutions + self.expired.len() {
            return Err("a hold names a resolving transfer that does not name it".into());
        }
        let expired = self.expired_holds();
        let expiries = expired.iter().map(|e| (crate::state::hold_expiry(&self.stored_through(e.index)), e.index, e.resolved_at));
        if expiries.clone().zip(expiries.skip(1)).any(|(a, b)| (a.0, a.1) >= (b.0, b.1) || a.2 >= b.2) {
            return Err("expired holds are not in the order they expired".into());
        }
        if sums.len() != self.reversals.len() {
            return Err("a reversal list names a transfer with no reversal".into());
        }
        for (&original, of) in &self.reversals {
            let Some(IdSlot::Transfer(index)) = self.find_transfer_id_through(original) else {
                return Err(format!("reversals are listed against {original}, which is not stored"));
            };
            let t = &self.stored_through(index);
            let reversible = t.flags & (tf::PENDING | tf::VOID_PENDING | tf::REVERSE) == 0;
            if sums.get(&original) != Some(&(of.amount, of.count as usize)) || of.amount > t.amount || !reversible {
                return Err(format!("transfer {}: its reversals do not add up to {} within its amount {}", t.id, of.amount, t.amount));
            }
        }
        Ok(())
    }

    /// Every remembered failure is indexed under its id, was decided by a code that decides,
    /// is not newer than the clock, and the index holds exactly the stored and failed ids.
    fn check_failed_transfers(&self) -> Result<(), String> {
        for (i, failed) in self.failed_transfers().iter().enumerate() {
            let mut indexed = false;
            self.transfer_ids.candidates(failed.id, |value| indexed |= IdSlot::of(value) == IdSlot::Failed(i as u32));
            if !indexed {
                return Err(format!("failed transfer id {} is not indexed as failed", failed.id));
            }
            if !failed.code.is_decided_once() || failed.timestamp > self.timestamp {
                return Err(format!(
                    "failed transfer id {}: code {} at {} cannot have been remembered",
                    failed.id, failed.code, failed.timestamp
                ));
            }
        }
        Ok(())
    }
}

/// One account's own constraints: no overflow, the balance limits its flags set, closed means empty.
/// One account's invariants. Its flags' balance rules hold only while no command has changed its
/// limits (a limit lowered below what is used leaves the balance beyond it, by design).
fn check_account(a: &Account, flags_rule: bool) -> Result<(), String> {
    let (Some(debits), Some(credits)) = (a.debits_pending.checked_add(a.debits_posted), a.credits_pending.checked_add(a.credits_posted))
    else {
        return Err(format!("account {}: balances overflow", a.id));
    };
    if flags_rule && a.flags & account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS != 0 && debits > a.credits_posted {
        return Err(format!("account {}: debits exceed credits", a.id));
    }
    if flags_rule && a.flags & account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS != 0 && credits > a.debits_posted {
        return Err(format!("account {}: credits exceed debits", a.id));
    }
    if a.state & account_state::CLOSED != 0 && (a.debits_pending != 0 || a.credits_pending != 0 || a.debits_posted != a.credits_posted) {
        return Err(format!("account {}: closed with a balance", a.id));
    }
    Ok(())
}

fn matches_user_data(filter: &AccountFilter, t: &Transfer) -> bool {
    (filter.user_data_128 == 0 || filter.user_data_128 == t.user_data_128)
        && (filter.user_data_64 == 0 || filter.user_data_64 == t.user_data_64)
        && (filter.user_data_32 == 0 || filter.user_data_32 == t.user_data_32)
        && (filter.code == 0 || filter.code == t.code)
}

/// `found` is newest first and complete: newest `limit` for REVERSED, else the oldest `limit`, oldest first.
fn arrange<T>(mut found: Vec<T>, limit: usize, flags: u32) -> Vec<T> {
    if flags & filter_flags::REVERSED == 0 {
        found.reverse();
    }
    found.truncate(limit);
    found
}

impl Engine {
    /// Every link whose two transfers are in memory names an older transfer of the same account,
    /// with the side that account had in it (what [`AccountWalk`] follows without reading).
    fn check_links(&self) -> Result<(), String> {
        let link_ok = |link: u32, newer: u32, account: u128| {
            if link == NONE {
                return true;
            }
            let (index, debited) = crate::state::link_target(link);
            match self.in_memory(index) {
                None => index < newer,
                Some(t) => index < newer && (if debited { t.debit_account_id } else { t.credit_account_id }) == account,
            }
        };
        // The transfers in memory: the chunks held, and the evicted records pinned or prefetched
        // (not every index looked up: after a restore most are evicted).
        let held_from = (self.transfers.evicted_chunks() * self.transfers.chunk_len()) as u32;
        let held = self.cold.held_evicted_indexes().filter(|&i| i < held_from).chain(held_from..self.transfer_links.len() as u32);
        for i in held {
            let (Some(t), Some(links)) = (self.in_memory(i), self.transfer_links.get(i as usize)) else { continue };
            if !link_ok(links[0], i, t.debit_account_id) || !link_ok(links[1], i, t.credit_account_id) {
                return Err(format!("transfer {}: a link names another account's transfer or the wrong side", t.id));
            }
        }
        for (a, meta) in self.accounts.iter().zip(&self.account_meta) {
            if !link_ok(meta.last_transfer, self.transfers.len() as u32, a.id) {
                return Err(format!("account {}: its newest transfer link names another account's transfer", a.id));
            }
        }
        Ok(())
    }
}

/// Most records an account walk reads at once: the query limit's worth, so one read of the
/// history serves a whole page of an account's transfers.
const WALK_READ_MAX: usize = 8192;
/// Records an account walk reads first (the first page is often short); each read after
/// doubles, up to [`WALK_READ_MAX`].
const WALK_READ_MIN: usize = 64;

/// An account's transfers, newest first: the links are followed in memory (each says which side
/// the account was, [`crate::state::LINK_DEBITED`]), and the records they name read a batch at a
/// time, those out of memory together.
struct AccountWalk {
    link: u32,
    batch: Vec<(u32, bool)>,
    records: Vec<Transfer>,
    next: usize,
    read: usize,
}

impl AccountWalk {
    fn new(engine: &Engine, account: u32) -> AccountWalk {
        AccountWalk {
            link: engine.account_meta[account as usize].last_transfer,
            batch: Vec::new(),
            records: Vec::new(),
            next: 0,
            read: WALK_READ_MIN / 2,
        }
    }

    /// The next older transfer and whether the account was its debit side.
    fn next(&mut self, engine: &Engine) -> Option<(Transfer, bool)> {
        if self.next == self.batch.len() {
            self.fill(engine);
        }
        let (_, debited) = *self.batch.get(self.next)?;
        self.next += 1;
        Some((self.records[self.next - 1], debited))
    }

    fn fill(&mut self, engine: &Engine) {
        self.batch.clear();
        self.records.clear();
        self.next = 0;
        self.read = (self.read * 2).min(WALK_READ_MAX);
        while self.link != NONE && self.batch.len() < self.read {
            let (index, debited) = crate::state::link_target(self.link);
            self.batch.push((index, debited));
            self.link = engine.transfer_links[index as usize][usize::from(!debited)];
        }
        let indices: Vec<u32> = self.batch.iter().map(|&(index, _)| index).collect();
        engine.stored_through_many(&indices, &mut self.records);
    }
}
