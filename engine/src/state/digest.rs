//! The state digest: a 32-byte fingerprint of the engine's whole state at O(1) amortized cost per
//! change, so the server can record it in the log as often as it likes and a replay can check
//! every recorded value without an O(state) pass.
//!
//! The state is a set of items (ledgers, accounts, transfers, hold states, balance-history
//! entries, failed transfer ids, limit changes, account policies), and the digest keeps a wrapping sum of one `xxh3_128(canonical bytes, kind)` per
//! item, with a different seed per kind. The apply path does almost nothing: ledgers, transfers,
//! history entries, failed ids and limit changes are append-only, so settling hashes the ones added since the last
//! settle; an account or hold that changes is put on a dirty list once (a flag check), and
//! settling replaces its old term (cached, 16 bytes per account; a hold's is computed again,
//! as it can only have been pending) with the new one. A hot account
//! changed a thousand times between two checkpoints is hashed once. Linked-chain rollback needs
//! nothing: it can only remove items added since the last settle, and a dirty item is rehashed
//! as it is then.
//!
//! The 32 bytes are BLAKE3 of the sum, the engine clock and the item counts. Each term depends
//! only on its item as it is now, so the sum can be recomputed from scratch
//! ([`Engine::recompute_state_digest`]): `check_invariants` compares the two, and a restored
//! snapshot's digest is a function of its contents, so "snapshot digest = digest of replaying the
//! log to the same point" compares states, not bookkeeping.
//!
//! What it is for: detecting any divergence between two engines that should agree (the live
//! server and a replay, a snapshot and the log, two builds), including a flipped bit in memory;
//! two different states give the same sum with probability about 2^-128. What it is not: a
//! tamper seal. xxh3 is not cryptographic and the sum is unkeyed, so someone who can choose a
//! state could construct another with the same digest. Tamper evidence comes from the log's
//! BLAKE3 hash chain; a snapshot is also compared with the log by the BLAKE3 of its whole
//! canonical stream ([`Engine::digest`]).

use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

use crate::state::exchange::{QuoteUsage, QUOTE_USAGE_SIZE};
use crate::state::{hold_expiry, BalanceEntry, Engine, FailedTransfer, Hold, HoldStatus, LimitChange, Order, Policy, NONE};
use crate::types::{Account, Ledger, Quote, Record, Transfer, RECORD_SIZE};

/// Changed accounts and holds [`Engine::settle_digest_appended`] lets wait for the next
/// checkpoint at most.
pub const DIGEST_DIRTY_SETTLE_MAX: usize = 65_536;

/// Seeds that keep the kinds of items apart.
mod seed {
    pub const LEDGER: u64 = 1;
    pub const ACCOUNT: u64 = 2;
    pub const TRANSFER: u64 = 3;
    pub const HOLD: u64 = 4;
    pub const BALANCE_ENTRY: u64 = 5;
    pub const FAILED_TRANSFER: u64 = 6;
    pub const LIMIT_CHANGE: u64 = 7;
    pub const POLICY: u64 = 8;
    pub const ORDER: u64 = 9;
    pub const QUOTE: u64 = 10;
}

/// The digest's running sum and what has changed since it was settled.
#[derive(Clone, Debug, Default)]
pub(crate) struct DigestState {
    /// Wrapping sum of the terms of every settled item.
    pub(crate) sum: u128,
    /// Ledgers, transfers and balance entries already in `sum` (a prefix of each vector).
    ledgers_settled: usize,
    transfers_settled: usize,
    history_settled: usize,
    failed_settled: usize,
    limits_settled: usize,
    /// The term each settled account contributes, by account index.
    account_terms: Vec<u128>,
    /// Accounts changed since the last settle (each once, see `AccountMeta::digest_dirty`).
    pub(crate) dirty_accounts: Vec<u32>,
    /// Transfers stored when the changed holds were last settled: a changed hold below was
    /// pending then (a finished hold never changes again), so its old term is its pending
    /// state's, computed again rather than kept.
    holds_settled_below: usize,
    /// Holds inserted or changed since the last settle (repeats are dropped when settling).
    pub(crate) dirty_holds: Vec<u32>,
    /// The term each settled policy contributes, by policy index.
    policy_terms: Vec<u128>,
    /// Policies changed since the last settle (each once, see `Policy::digest_dirty`).
    pub(crate) dirty_policies: Vec<u32>,
    /// The term each settled order contributes, by order index.
    order_terms: Vec<u128>,
    /// Orders changed since the last settle (each once: `order_dirty`).
    pub(crate) dirty_orders: Vec<u32>,
    /// Whether each order is in `dirty_orders` (kept here, not in the orders, so settling does not
    /// write to orders a snapshot copy may share).
    order_dirty: Vec<bool>,
    /// The term each settled quote contributes, by quote index.
    quote_terms: Vec<u128>,
    /// Quotes made or used since the last settle (each once: `quote_dirty`).
    pub(crate) dirty_quotes: Vec<u32>,
    quote_dirty: Vec<bool>,
}

fn record_term<R: Record>(record: &R, seed: u64) -> u128 {
    let mut bytes = [0u8; RECORD_SIZE];
    record.encode(&mut bytes);
    xxh3_128_with_seed(&bytes, seed)
}

fn ledger_term(ledger: &Ledger) -> u128 {
    record_term(ledger, seed::LEDGER)
}

fn account_term(account: &Account) -> u128 {
    record_term(account, seed::ACCOUNT)
}

fn transfer_term(transfer: &Transfer) -> u128 {
    record_term(transfer, seed::TRANSFER)
}

pub(crate) fn hold_term(transfer_id: u128, hold: &Hold) -> u128 {
    let mut bytes = [0u8; 33];
    bytes[..16].copy_from_slice(&transfer_id.to_le_bytes());
    bytes[16] = hold.status as u8;
    bytes[17..25].copy_from_slice(&hold.expires_at.to_le_bytes());
    bytes[25..33].copy_from_slice(&hold.resolved_at.to_le_bytes());
    xxh3_128_with_seed(&bytes, seed::HOLD)
}

fn failed_transfer_term(failed: &FailedTransfer) -> u128 {
    let mut bytes = [0u8; 28];
    bytes[..16].copy_from_slice(&failed.id.to_le_bytes());
    bytes[16..24].copy_from_slice(&failed.timestamp.to_le_bytes());
    bytes[24..28].copy_from_slice(&(failed.code as u32).to_le_bytes());
    xxh3_128_with_seed(&bytes, seed::FAILED_TRANSFER)
}

fn limit_change_term(account_id: u128, change: &LimitChange) -> u128 {
    let mut bytes = [0u8; 57];
    bytes[..16].copy_from_slice(&account_id.to_le_bytes());
    bytes[16..24].copy_from_slice(&change.timestamp.to_le_bytes());
    bytes[24] = u8::from(change.debit_limit.is_some()) | u8::from(change.credit_limit.is_some()) << 1;
    bytes[25..41].copy_from_slice(&change.debit_limit.unwrap_or(0).to_le_bytes());
    bytes[41..57].copy_from_slice(&change.credit_limit.unwrap_or(0).to_le_bytes());
    xxh3_128_with_seed(&bytes, seed::LIMIT_CHANGE)
}

/// A policy's term: its account, channel record and each rule with its buckets.
fn policy_term(account_id: u128, policy: &Policy) -> u128 {
    let mut hasher = Xxh3::with_seed(seed::POLICY);
    hasher.update(&account_id.to_le_bytes());
    hasher.update(&policy.channels.to_bytes());
    for k in 0..policy.rule_count() {
        hasher.update(&policy.rule(k).to_bytes());
        for b in (0..policy.bucket_count(k)).map(|b| policy.bucket(k, b)) {
            hasher.update(&b.period.to_le_bytes());
            hasher.update(&b.count.to_le_bytes());
            hasher.update(&b.amount.to_le_bytes());
        }
    }
    hasher.digest128()
}

/// An order's term: its spec, its state and its run history.
fn order_term(order: &Order) -> u128 {
    let mut hasher = Xxh3::with_seed(seed::ORDER);
    hasher.update(&order.spec.to_bytes());
    hasher.update(&order.state_bytes());
    for entry in &order.history {
        hasher.update(&entry.to_bytes(order.number));
    }
    hasher.digest128()
}

/// A quote's term: its record as stored and its usage.
fn quote_term(quote: &Quote, usage: &QuoteUsage) -> u128 {
    let mut bytes = [0u8; RECORD_SIZE + QUOTE_USAGE_SIZE];
    quote.encode((&mut bytes[..RECORD_SIZE]).try_into().expect("a record's room"));
    bytes[RECORD_SIZE..].copy_from_slice(&usage.to_bytes());
    xxh3_128_with_seed(&bytes, seed::QUOTE)
}

fn balance_entry_term(account_id: u128, entry: &BalanceEntry) -> u128 {
    let mut bytes = [0u8; 88];
    bytes[..16].copy_from_slice(&account_id.to_le_bytes());
    bytes[16..24].copy_from_slice(&entry.timestamp.to_le_bytes());
    let b = &entry.balances;
    for (k, v) in [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted].into_iter().enumerate() {
        bytes[24 + 16 * k..40 + 16 * k].copy_from_slice(&v.to_le_bytes());
    }
    xxh3_128_with_seed(&bytes, seed::BALANCE_ENTRY)
}

/// The sum of the state digest's terms of `transfers`: what a restore adds for a chunk of
/// stored transfers instead of hashing each itself, when a reader computed it beside reading
/// the chunk (the node's history reader does, on its own thread).
pub fn transfers_digest_sum(transfers: &[Transfer]) -> u128 {
    transfers.iter().fold(0u128, |sum, t| sum.wrapping_add(transfer_term(t)))
}

impl DigestState {
    /// Counts the transfers from `first` to `first + count` as settled with their terms' sum
    /// `sum` ([`transfers_digest_sum`]), if every transfer before them is settled (otherwise
    /// settling hashes them).
    pub(crate) fn settle_transfers_summed(&mut self, first: usize, count: usize, sum: u128) {
        if self.transfers_settled == first {
            self.sum = self.sum.wrapping_add(sum);
            self.transfers_settled = first + count;
        }
    }

    /// As [`DigestState::settle_transfers_summed`] for transfers a restore leaves out of memory:
    /// every transfer before them must be settled (asserted), since theirs cannot be hashed later.
    pub(crate) fn settle_transfers_stored(&mut self, first: usize, count: usize, sum: u128) {
        assert_eq!(self.transfers_settled, first, "the transfers before a stored chunk are settled");
        self.settle_transfers_summed(first, count, sum);
    }

    /// Adds the term of a finished hold `transfer_id` (a restore, which derives it from the
    /// capture or release it reads, where settling would need records it has evicted).
    pub(crate) fn add_finished_hold(&mut self, transfer_id: u128, hold: &Hold) {
        self.sum = self.sum.wrapping_add(hold_term(transfer_id, hold));
    }

    /// Adds `sum`, the terms of holds finished as a lineage image says (a restore's).
    pub(crate) fn add_finished_sum(&mut self, sum: u128) {
        self.sum = self.sum.wrapping_add(sum);
    }

    /// Notes that the order at `index` changed (or was made, or taken back by a rollback).
    pub(crate) fn mark_order(&mut self, index: u32) {
        let i = index as usize;
        if self.order_dirty.len() <= i {
            self.order_dirty.resize(i + 1, false);
        }
        if !self.order_dirty[i] {
            self.order_dirty[i] = true;
            self.dirty_orders.push(index);
        }
    }

    /// Notes that the quote at `index` was made, used, or taken back by a rollback.
    pub(crate) fn mark_quote(&mut self, index: u32) {
        let i = index as usize;
        if self.quote_dirty.len() <= i {
            self.quote_dirty.resize(i + 1, false);
        }
        if !self.quote_dirty[i] {
            self.quote_dirty[i] = true;
            self.dirty_quotes.push(index);
        }
    }

    /// Folds every change since the last settle into `sum`. Idempotent per dirty item, so a
    /// repeated entry in a dirty list changes nothing.
    /// Holds settled that are no longer pending go to `finished`, if given.
    fn settle(&mut self, engine: &Engine, finished: Option<&mut Vec<u32>>) {
        self.settle_appended(engine);
        self.settle_dirty(engine, finished);
    }

    /// Folds in the append-only items (ledgers, transfers, history entries) added since.
    fn settle_appended(&mut self, engine: &Engine) {
        for slot in &engine.ledgers[self.ledgers_settled..] {
            self.sum = self.sum.wrapping_add(ledger_term(&slot.ledger));
        }
        self.ledgers_settled = engine.ledgers.len();
        for transfer in engine.transfers.iter_from(self.transfers_settled) {
            self.sum = self.sum.wrapping_add(transfer_term(transfer));
        }
        self.transfers_settled = engine.transfers.len();
        for entry in engine.balance_history.entries.iter_from(self.history_settled) {
            let id = engine.accounts[entry.account as usize].id;
            self.sum = self.sum.wrapping_add(balance_entry_term(id, entry));
        }
        self.history_settled = engine.balance_history.len();
        for failed in engine.failed.iter_from(self.failed_settled) {
            self.sum = self.sum.wrapping_add(failed_transfer_term(failed));
        }
        self.failed_settled = engine.failed.len();
        for change in &engine.limit_changes[self.limits_settled..] {
            let id = engine.accounts[change.account as usize].id;
            self.sum = self.sum.wrapping_add(limit_change_term(id, change));
        }
        self.limits_settled = engine.limit_changes.len();
    }

    /// Replaces the terms of the holds changed since; those no longer pending (finished, or
    /// made by a chain that was rolled back) go to `finished`, if given.
    fn settle_holds(&mut self, engine: &Engine, mut finished: Option<&mut Vec<u32>>) {
        // A finished hold's term is added once and not kept, so each hold is settled once.
        self.dirty_holds.sort_unstable();
        self.dirty_holds.dedup();
        for &index in &self.dirty_holds {
            // Not below: made since, or by a chain that was rolled back (its record maybe gone).
            let old = if (index as usize) < self.holds_settled_below {
                let t = engine.stored(index);
                let pending = Hold { status: HoldStatus::Pending, expires_at: hold_expiry(&t), resolved_at: 0, resolved_by: NONE };
                hold_term(t.id, &pending)
            } else {
                0
            };
            let new = match engine.holds.get(&index) {
                Some(hold) => hold_term(engine.stored(index).id, &hold),
                None => {
                    if let Some(f) = finished.as_deref_mut() {
                        f.push(index);
                    }
                    // Finished since the last settle: its state never changes again, and its
                    // record and what finished it are in memory (eviction settles first). Or
                    // made by a chain that was rolled back: no term.
                    engine.finished_by(index).map_or(0, |by| {
                        let t = engine.stored(index);
                        hold_term(t.id, &engine.finished_hold_state(index, &t, by, Engine::stored, Engine::expired_stored))
                    })
                }
            };
            self.sum = self.sum.wrapping_sub(old).wrapping_add(new);
        }
        self.dirty_holds.clear();
    }

    /// Replaces the terms of the accounts and holds changed since. An index past the end of its
    /// table was an account, policy, order or quote a failed chain made and took back: no term.
    fn settle_dirty(&mut self, engine: &Engine, finished: Option<&mut Vec<u32>>) {
        assert!(self.account_terms.len() <= engine.accounts.len(), "rollback only removes accounts added since the last settle");
        self.account_terms.resize(engine.accounts.len(), 0);
        replace_terms(&mut self.sum, &mut self.account_terms, &self.dirty_accounts, |i| engine.accounts.get(i).map(account_term));
        self.dirty_accounts.clear();
        self.settle_holds(engine, finished);
        self.holds_settled_below = engine.transfers.len();
        self.policy_terms.resize(engine.policies.len(), 0);
        replace_terms(&mut self.sum, &mut self.policy_terms, &self.dirty_policies, |i| {
            engine.policies.get(i).map(|policy| policy_term(engine.accounts[policy.account as usize].id, policy))
        });
        self.dirty_policies.clear();
        self.order_terms.resize(engine.orders.len(), 0);
        replace_terms(&mut self.sum, &mut self.order_terms, &self.dirty_orders, |i| {
            self.order_dirty[i] = false;
            engine.orders.get(i).map(order_term)
        });
        self.dirty_orders.clear();
        self.quote_terms.resize(engine.quotes.len(), 0);
        replace_terms(&mut self.sum, &mut self.quote_terms, &self.dirty_quotes, |i| {
            self.quote_dirty[i] = false;
            engine.quotes.get(i).map(|quote| quote_term(quote, &engine.quote_usage[i]))
        });
        self.dirty_quotes.clear();
    }
}

/// Replaces the term at each `dirty` index with `term(index)` where it gives one, moving `sum`
/// by the difference.
fn replace_terms(sum: &mut u128, terms: &mut [u128], dirty: &[u32], mut term: impl FnMut(usize) -> Option<u128>) {
    for &index in dirty {
        if let Some(new) = term(index as usize) {
            let old = core::mem::replace(&mut terms[index as usize], new);
            *sum = sum.wrapping_sub(old).wrapping_add(new);
        }
    }
}

impl Engine {
    /// The state digest: settles what changed since the last call (amortized O(1) per change),
    /// then hashes the sum with the clock and the counts. Equal states give equal digests; see
    /// the module documentation for what it does and does not prove.
    pub fn state_digest(&mut self) -> [u8; 32] {
        self.settle_digest();
        finish(self.digest.sum, self)
    }

    /// Folds every change since the last settle into the digest's running sum without
    /// finishing it. The digest is the same whenever this (or [`Engine::settle_digest_appended`])
    /// is called; what changes is when the work is done. The server settles after every batch
    /// (while the disk syncs), so a checkpoint does not hash every transfer of the last 256
    /// entries at once (a 60 ms stall at 8 189 transfers per entry).
    pub fn settle_digest(&mut self) {
        let mut digest = core::mem::take(&mut self.digest);
        for &index in &digest.dirty_accounts {
            if let Some(meta) = self.account_meta.get_mut(index as usize) {
                meta.digest_dirty = false;
            }
        }
        for &index in &digest.dirty_policies {
            if let Some(policy) = self.policies.get_mut(index as usize) {
                policy.set_digest_dirty(false);
            }
        }
        // Holds finished since: their records stay pinned until their final terms are hashed.
        let mut unpin = Vec::new();
        digest.settle(self, self.cold.pinned_any().then_some(&mut unpin));
        self.digest = digest;
        self.cold.unpin(&unpin);
    }

    /// The part of [`Engine::settle_digest`] worth doing after every batch: the items the batch
    /// appended (hashed while they are still in cache), and the changed accounts and holds only
    /// once more than [`DIGEST_DIRTY_SETTLE_MAX`] of them wait. A hot account changed in every
    /// batch is then hashed once per checkpoint, not once per batch, and what a checkpoint still
    /// has to hash stays bounded (about 3 ms).
    pub fn settle_digest_appended(&mut self) {
        let dirty = self.digest.dirty_accounts.len()
            + self.digest.dirty_holds.len()
            + self.digest.dirty_policies.len()
            + self.digest.dirty_orders.len()
            + self.digest.dirty_quotes.len();
        if dirty > DIGEST_DIRTY_SETTLE_MAX {
            return self.settle_digest();
        }
        let mut digest = core::mem::take(&mut self.digest);
        digest.settle_appended(self);
        self.digest = digest;
    }

    /// The state digest computed from scratch over every item, in O(state): what
    /// [`Engine::state_digest`] must equal.
    pub fn recompute_state_digest(&self) -> [u8; 32] {
        finish(self.recompute_sum(), self)
    }

    pub(crate) fn recompute_sum(&self) -> u128 {
        let mut sum = 0u128;
        let mut add = |term: u128| sum = sum.wrapping_add(term);
        self.ledgers.iter().for_each(|slot| add(ledger_term(&slot.ledger)));
        self.accounts.iter().for_each(|a| add(account_term(a)));
        for (index, t) in self.all_transfers().enumerate() {
            add(transfer_term(&t));
            if t.flags & crate::types::transfer_flags::PENDING != 0 {
                add(hold_term(t.id, &self.hold_state(index as u32, &t, Engine::stored_through, Engine::expired_through)));
            }
        }
        self.for_each_balance_entry(|e| add(balance_entry_term(self.accounts[e.account as usize].id, e)));
        self.for_each_failed(|f| add(failed_transfer_term(f)));
        self.limit_changes.iter().for_each(|c| add(limit_change_term(self.accounts[c.account as usize].id, c)));
        self.policies.iter().for_each(|p| add(policy_term(self.accounts[p.account as usize].id, p)));
        self.orders.iter().for_each(|o| add(order_term(o)));
        self.quotes.iter().zip(&self.quote_usage).for_each(|(q, u)| add(quote_term(q, u)));
        sum
    }

    /// The digest state as it would be after settling, without changing the engine: O(state)
    /// for the copy, for `check_invariants`.
    pub(crate) fn settled_copy(&self) -> DigestState {
        let mut copy = self.digest.clone();
        copy.settle(self, None);
        copy
    }
}

fn finish(sum: u128, engine: &Engine) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bursar state digest v1\0\0");
    hasher.update(&sum.to_le_bytes());
    hasher.update(&engine.timestamp.to_le_bytes());
    let holds = engine.holds.len() + engine.finished.len();
    for n in [engine.ledgers.len(), engine.accounts.len(), engine.transfers.len(), holds, engine.balance_history.len()] {
        hasher.update(&(n as u64).to_le_bytes());
    }
    // Counted only when there are any, so a state without failed ids (every state before they
    // existed) keeps the digest its logged checkpoints recorded.
    let quotes = !engine.quotes.is_empty();
    let later = !engine.policies.is_empty() || !engine.orders.is_empty() || quotes;
    if !engine.failed.is_empty() || !engine.limit_changes.is_empty() || later {
        hasher.update(&(engine.failed.len() as u64).to_le_bytes());
    }
    if !engine.limit_changes.is_empty() || later {
        hasher.update(&(engine.limit_changes.len() as u64).to_le_bytes());
    }
    if later {
        hasher.update(&(engine.policies.len() as u64).to_le_bytes());
    }
    if !engine.orders.is_empty() || quotes {
        hasher.update(&(engine.orders.len() as u64).to_le_bytes());
    }
    if quotes {
        hasher.update(&(engine.quotes.len() as u64).to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{accounts, engine, eur_ledger, execute_ok, transfer};

    /// Settling the appended items after every batch, with the changed accounts left for later
    /// until more than `DIGEST_DIRTY_SETTLE_MAX` wait, gives the digest a from-scratch
    /// computation gives, on both sides of that bound.
    #[test]
    fn settling_appended_items_only_gives_the_same_digest() {
        let mut engine = engine();
        execute_ok(&mut engine, 1, &[eur_ledger()]);
        let total = DIGEST_DIRTY_SETTLE_MAX as u128 + 1_000;
        let mut id = 1u128;
        let mut now = 2;
        while id <= total {
            let batch = accounts(id..(id + 8_000).min(total + 1));
            id += batch.len() as u128;
            execute_ok(&mut engine, now, &batch);
            now += 10_000;
            let waiting = engine.digest.dirty_accounts.len();
            engine.settle_digest_appended();
            assert_eq!(engine.digest.dirty_accounts.is_empty(), waiting > DIGEST_DIRTY_SETTLE_MAX, "accounts settle past the bound only");
            assert_eq!(engine.digest.transfers_settled, engine.transfers.len());
        }
        let transfers: Vec<_> = (1..=100u128).map(|t| transfer(1_000_000 + t, t, t + 1, t)).collect();
        execute_ok(&mut engine, now, &transfers);
        engine.settle_digest_appended();
        assert!(!engine.digest.dirty_accounts.is_empty(), "a few changed accounts wait for the checkpoint");
        assert_eq!(engine.state_digest(), engine.recompute_state_digest());
    }
}
