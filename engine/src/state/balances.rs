//! Balance history (accounts with the `history` flag): an entry per change, in chunks that can
//! leave memory for the history store as transfers' do, and the walk a query takes back in time.
//!
//! Entries live in a [`Chunked`] table of 80-byte records. Only the link from each entry to the
//! same account's previous one stays in memory for good (`balance_prev`, 4 bytes an entry), so a
//! query finds an account's entries without reading any, then reads the evicted ones together
//! ([`History::read_balances`]). Apply never reads an entry: it appends, and a rolled-back chain
//! pops what its own batch appended, so eviction needs no prefetch. The stored form of an entry is
//! its snapshot stream form (`BALANCE_ENTRY_SIZE` bytes).

use super::{Balances, Engine, History, NONE};
use crate::chunked::Chunked;
use std::sync::Arc;

/// Bytes of a stored balance entry: account index u32, 4 zero bytes, timestamp u64, the four
/// balances u128 (as in a snapshot stream).
pub const BALANCE_ENTRY_SIZE: usize = 80;
/// Entries a query's walk reads together at most.
const WALK_BATCH_MAX: usize = 1024;
/// Entries a query's walk reads together at least (the filter's time range may skip many).
const WALK_BATCH_MIN: usize = 64;

/// One entry of an account's balance history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BalanceEntry {
    /// Balances right after the change.
    pub balances: Balances,
    /// Timestamp of the transfer or expiry that changed them.
    pub timestamp: u64,
    /// Index of the account.
    pub(crate) account: u32,
}

impl BalanceEntry {
    /// The entry as stored (see [`BALANCE_ENTRY_SIZE`]).
    pub fn to_bytes(&self) -> [u8; BALANCE_ENTRY_SIZE] {
        let mut out = [0u8; BALANCE_ENTRY_SIZE];
        out[0..4].copy_from_slice(&self.account.to_le_bytes());
        out[8..16].copy_from_slice(&self.timestamp.to_le_bytes());
        let b = &self.balances;
        for (k, v) in [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted].into_iter().enumerate() {
            out[16 + 16 * k..32 + 16 * k].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// An entry from its stored bytes; `None` if its padding is not zero.
    pub fn from_bytes(bytes: &[u8; BALANCE_ENTRY_SIZE]) -> Option<BalanceEntry> {
        let u128_at = |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16 bytes"));
        if bytes[4..8] != [0; 4] {
            return None;
        }
        let balances =
            Balances { debits_pending: u128_at(16), debits_posted: u128_at(32), credits_pending: u128_at(48), credits_posted: u128_at(64) };
        let account = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        Some(BalanceEntry { balances, timestamp: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")), account })
    }
}

/// `chunk`'s entries as stored, appended to `out`.
pub fn encode_balance_chunk(chunk: &[BalanceEntry], out: &mut Vec<u8>) {
    out.reserve(chunk.len() * BALANCE_ENTRY_SIZE);
    chunk.iter().for_each(|entry| out.extend_from_slice(&entry.to_bytes()));
}

/// The entries of stored bytes (whole entries), appended to `out`; the first whose padding is
/// not zero is named in the error.
pub fn decode_balance_entries(bytes: &[u8], out: &mut Vec<BalanceEntry>) -> Result<(), String> {
    for (i, b) in bytes.chunks_exact(BALANCE_ENTRY_SIZE).enumerate() {
        let entry = BalanceEntry::from_bytes(b.try_into().expect("an entry"));
        out.push(entry.ok_or_else(|| format!("balance entry {i} of the bytes read has padding that is not zero"))?);
    }
    Ok(())
}

/// The balance history: the entries, and each one's link to its account's previous one.
#[derive(Clone, Debug, Default)]
pub(crate) struct BalanceHistory {
    pub(crate) entries: Chunked<BalanceEntry>,
    /// Per entry, the same account's previous entry, or `NONE`. Never evicted.
    pub(crate) prev: Vec<u32>,
}

impl BalanceHistory {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends `entry` after `prev`; returns its index.
    pub(crate) fn push(&mut self, entry: BalanceEntry, prev: u32) -> u32 {
        self.entries.push(entry);
        self.prev.push(prev);
        (self.prev.len() - 1) as u32
    }

    /// Removes the newest entry (a rolled-back chain's); returns it with its link.
    pub(crate) fn pop(&mut self) -> Option<(BalanceEntry, u32)> {
        Some((self.entries.pop()?, self.prev.pop()?))
    }
}

impl Engine {
    /// Appends an entry of `account`'s balances, linked to its previous one.
    pub(crate) fn push_balance_entry(&mut self, entry: BalanceEntry) {
        let meta = &mut self.account_meta[entry.account as usize];
        meta.last_balance = self.balance_history.push(entry, meta.last_balance);
    }

    /// Balance entries held, in memory and evicted.
    pub fn balance_history_len(&self) -> usize {
        self.balance_history.len()
    }

    /// Full chunks of balance entries (the open chunk not counted): those the node may store.
    pub fn sealed_balance_chunks(&self) -> usize {
        self.balance_history.entries.sealed_chunks()
    }

    /// Full chunk `k`'s balance entries while in memory.
    pub fn balance_chunk(&self, k: usize) -> Option<&Arc<Vec<BalanceEntry>>> {
        self.balance_history.entries.sealed_chunk(k)
    }

    /// Chunks of balance entries evicted so far (always the oldest).
    pub fn evicted_balance_chunks(&self) -> usize {
        self.balance_history.entries.evicted_chunks()
    }

    /// Balance entries per chunk (as many as transfers per chunk).
    pub fn balance_chunk_len(&self) -> usize {
        self.balance_history.entries.chunk_len()
    }

    /// Evicts every full chunk of balance entries below `end` still held, never the newest
    /// full one: what the node does once they are stored durably. Between batches only.
    pub fn evict_balance_chunks_below(&mut self, end: usize) {
        self.evict_table_below(end, |engine| &mut engine.balance_history.entries);
    }

    /// Balance entries `indices`, appended to `out` in that order: from memory, and the evicted
    /// ones read from the history together. A failed read answers zeroed entries and is kept for
    /// [`Engine::take_history_failure`].
    pub(crate) fn balance_entries_through(&self, indices: &[u32], out: &mut Vec<BalanceEntry>) {
        let held = |index: u32| self.balance_history.entries.get(index as usize).copied();
        self.gather_through(indices, held, |cold, read| self.history().read_balances(cold, read), out);
    }

    /// Calls `f` with every balance entry, oldest first, read through to the history where
    /// evicted (checks and audits, O(entries)). A failed read is kept for
    /// [`Engine::take_history_failure`] and its chunk skipped.
    pub(crate) fn for_each_balance_entry(&self, f: impl FnMut(&BalanceEntry)) {
        self.for_each_through(&self.balance_history.entries, |history, k, read| history.read_balance_chunk(k, read), f);
    }

    /// The entries of `account` newest first, from its newest, in batches: `visit` is called
    /// with each until it answers `false`.
    pub(crate) fn walk_balance_entries(&self, account: u32, budget: usize, mut visit: impl FnMut(&BalanceEntry) -> bool) {
        let mut index = self.account_meta[account as usize].last_balance;
        let (mut batch, mut entries) = (Vec::new(), Vec::new());
        while index != NONE {
            batch.clear();
            let size = budget.clamp(WALK_BATCH_MIN, WALK_BATCH_MAX);
            while index != NONE && batch.len() < size {
                batch.push(index);
                index = self.balance_history.prev[index as usize];
            }
            entries.clear();
            self.balance_entries_through(&batch, &mut entries);
            if !entries.iter().all(&mut visit) {
                return;
            }
        }
    }
}

/// Restores a chunk of entries read from the store (or a stream's entries one by one): each
/// names an account that exists and is linked to that account's previous one.
pub(crate) fn link_restored_entries(engine: &mut Engine, entries: &[BalanceEntry]) -> Result<(), String> {
    for entry in entries {
        let Some(meta) = engine.account_meta.get_mut(entry.account as usize) else {
            return Err(format!("balance entry names account index {}", entry.account));
        };
        let index = engine.balance_history.prev.len() as u32;
        engine.balance_history.prev.push(meta.last_balance);
        meta.last_balance = index;
    }
    Ok(())
}

/// A history's read of evicted chunk `k`'s balance entries, with its size checked.
pub(crate) fn read_stored_balance_chunk(
    history: &dyn History,
    k: usize,
    chunk_len: usize,
    out: &mut Vec<BalanceEntry>,
) -> Result<(), String> {
    history.read_balance_chunk(k, out)?;
    if out.len() != chunk_len {
        return Err(format!("balance chunk {k} holds {} entries, not {chunk_len}", out.len()));
    }
    Ok(())
}
