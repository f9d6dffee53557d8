//! Snapshots: the whole engine state as a versioned little-endian byte stream, and back.
//!
//! Only primary state is written (ledgers, accounts, transfers, expired holds, balance history,
//! failed transfer ids, limit changes, account policies, the clock and the capacity limits);
//! indexes, totals, per-account lists, lineage links, the state of each captured or released
//! hold (from its capture or release) and which holds are pending (neither expired, captured nor
//! released) are rebuilt on restore, and the result is audited with `check_invariants` before it
//! is handed out. The
//! stream is canonical: equal states give equal bytes, so its BLAKE3 hash is the state digest.
//! A server with its history on disk writes *slim* streams: the oldest transfers, balance
//! entries, failed ids and expired holds, those in full chunks already in the history store, are left out and counted in the
//! header, and the state digest is written beside them; [`Engine::restore_from`] reads them back
//! chunk by chunk from the store, evicting as it goes, and refuses a result whose digest differs.
//! From version 10 a slim stream also closes each account's list of transfers at the stored
//! chunks (its newest link below them), so a restore can take the stored chunks' links from their
//! restore images (`state/image.rs`) instead of rebuilding them from every record, and leaves out
//! the failed ids and expired holds the store holds.
//! Layout (all little-endian), version 10:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `BURSNAP\0` |
//! | 4 | version (10) |
//! | 4 | reserved, zero |
//! | 8 | engine clock (last timestamp) |
//! | 16 | limits: ledgers_max, accounts_max, transfers_max, query_results_max (u32 each) |
//! | 152 | counts (u64 each): ledgers, accounts, transfers in the stream, holds, balance entries in the stream, failed ids, limit changes, policies, velocity rules, velocity buckets, orders, run-history entries, quotes, transfers kept in the history store (a whole number of chunks; 0 in a full stream), expired holds, balance entries kept in the history store (likewise), account links (the number of accounts when transfers are kept, else 0), failed ids kept in the history store (whole chunks), expired holds kept in the history store (whole chunks) |
//! | 32 | the state digest (`Engine::state_digest`) when anything is kept in the history store, else zero |
//! | 128 × n | ledgers, accounts: their wire records, in creation order |
//! | 4 × n | account links: per account, in order, its newest transfer among those kept in the history store (the index, bit 31 set where the account is the debit side; `u32::MAX`: none) |
//! | 128 × n | transfers (after those kept in the history store): their wire records, in creation order |
//! | 24 × n | pending holds (versions 8 and 9; from version 10 none, the count 0: a restore derives them): transfer index u32, status u8 (0), 3 zero bytes, expires_at u64, resolved_at u64 (0); by index, ascending (out of order is refused) |
//! | 16 × n | expired holds (after those kept in the history store): transfer index u32, 4 zero bytes, the expiry's timestamp u64; in the order they expired, which is by (expiry time, index) (out of order is refused, those kept included) |
//! | 80 × n | balance entries (after those kept in the history store): account index u32, 4 zero bytes, timestamp u64, the four balances u128 |
//! | 32 × n | failed ids (after those kept in the history store): id u128, timestamp u64, result code u32, 4 zero bytes; in the order they failed |
//! | 48 × n | limit changes: account index u32, u8 bit 0 debit limit set, bit 1 credit limit set, 3 zero bytes, timestamp u64, debit limit u128, credit limit u128 (zero when not set); in order |
//! | 128 × n | policies: the channel policy record (account_id, lists, flags; timestamp: when set, 0 never); in the order they were made |
//! | 128 × n | velocity rules: the rule record (account_id, slot; timestamp: when it started counting); by policy, then slot |
//! | 48 × n | velocity buckets that are not all zero: account index u32, slot u8, bucket u8, 2 zero bytes, count u64, period u64, amount u128, 8 zero bytes; by rule, then bucket |
//! | 256 × n | orders: the standing order or trigger record as made, then the 128-byte order state (`docs/protocol.md`, "Orders"); by number |
//! | 48 × n | run-history entries: the order's number u32, then the entry as in a reply; by order, oldest first |
//! | 160 × n | quotes: the quote record as stored (with its timestamp), then its usage: paid u128, uses u32, 12 zero bytes; in the order they were made |
//!
//! Versions 1 to 9 are still read: version 9 has sixteen counts (a 200-byte header), no
//! account links and every failed id and expired hold; version 8 has fifteen counts (a 192-byte header) and keeps
//! no balance entries in the store; version 7 has fourteen counts (a 184-byte header) and no
//! expired holds' section: its holds section lists every hold, by index, each with its state
//! (a captured or released one must be the state its transfers give); version 6 has thirteen counts (a 144-byte header), no digest
//! and every transfer; version 5 twelve counts (a 136-byte header) and no
//! quotes; version 4 ten (120 bytes) and no orders;
//! version 3 has seven counts (a 96-byte header) and no
//! policies; version 2 six (88 bytes) and no limit changes; version 1 five (80 bytes) and no
//! failed ids.

use crate::chunked::Chunked;
use crate::limits::Limits;
use crate::state::exchange::{QuoteUsage, QUOTE_USAGE_SIZE};
use crate::state::lineage::OpenHolds;
use crate::state::order_table::OrderTable;
use crate::state::orders::{ORDER_STATE_SIZE, RUN_ENTRY_SIZE};
use crate::state::policy::{Bucket, Policy, RuleState};
use crate::state::{
    balances::{link_restored_entries, read_stored_balance_chunk},
    hold_expiry,
    image::last_links_below,
    touch_spare, BalanceEntry, Balances, Engine, ExpiredHold, FailedTransfer, History, HistoryUnreadable, Hold, HoldStatus, LedgerSlot,
    LimitChange, Order, RunEntry, StatedHolds, BALANCE_ENTRY_SIZE, EXPIRED_SIZE, FAILED_SIZE, FAILED_TAG, NONE,
};
use crate::types::{transfer_flags as tf, Account, ChannelPolicy, Ledger, Quote, Record, Transfer, VelocityRule, RECORD_SIZE};
use std::sync::Arc;

const MAGIC: [u8; 8] = *b"BURSNAP\0";
/// The snapshot format version this build writes (it reads every earlier one too).
pub const SNAPSHOT_VERSION: u32 = 10;
const HEADER_SIZE: usize = 224;
/// The state digest in a version 7 header.
const DIGEST_SIZE: usize = 32;
/// The header of a version 1 stream: two counts fewer (version 2: one fewer).
const HEADER_SIZE_V1: usize = 80;
const LIMIT_CHANGE_SIZE: usize = 48;
/// Counts in the header, by version (index: version - 1).
const COUNTS_BY_VERSION: [usize; 10] = [5, 6, 7, 10, 12, 13, 14, 15, 16, 19];
const QUOTE_SIZE: usize = RECORD_SIZE + QUOTE_USAGE_SIZE;
const ORDER_SIZE: usize = RECORD_SIZE + ORDER_STATE_SIZE;
const BUCKET_SIZE: usize = 48;
const HOLD_SIZE: usize = 24;

/// Why a snapshot stream could not be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The stream is shorter or longer than its header says.
    Length {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The stream does not start with the snapshot magic.
    BadMagic,
    /// Written by a format version this build does not read.
    UnsupportedVersion(u32),
    /// The bytes parse but describe an impossible state.
    Invalid(String),
    /// The transfers a slim stream keeps in the history store could not be read, or what was
    /// read is not the state the stream was written from.
    History(String),
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::Length { expected, found } => write!(f, "snapshot length {found} bytes, header implies {expected}"),
            SnapshotError::BadMagic => f.write_str("not an engine snapshot (bad magic)"),
            SnapshotError::UnsupportedVersion(v) => {
                write!(f, "snapshot format version {v} is not supported (this build reads 1 to {SNAPSHOT_VERSION})")
            }
            SnapshotError::Invalid(why) => write!(f, "snapshot describes an invalid state: {why}"),
            SnapshotError::History(why) => write!(f, "snapshot's transfers in the history store: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn invalid<T>(why: impl Into<String>) -> Result<T, SnapshotError> {
    Err(SnapshotError::Invalid(why.into()))
}

impl Engine {
    /// The snapshot stream's length in bytes.
    pub fn snapshot_len(&self) -> usize {
        HEADER_SIZE
            + RECORD_SIZE * (self.ledgers.len() + self.accounts.len() + self.transfers.len())
            + EXPIRED_SIZE * self.expired.len()
            + BALANCE_ENTRY_SIZE * self.balance_history.len()
            + FAILED_SIZE * self.failed.len()
            + LIMIT_CHANGE_SIZE * self.limit_changes.len()
            + RECORD_SIZE * (self.policies.len() + self.policies.iter().map(Policy::rule_count).sum::<usize>())
            + BUCKET_SIZE * self.policy_parts().2.len()
            + ORDER_SIZE * self.orders.len()
            + RUN_ENTRY_SIZE * self.orders.history_entries()
            + QUOTE_SIZE * self.quotes.len()
    }

    /// The policies as the stream holds them: channel records, rule records, non-zero buckets.
    fn policy_parts(&self) -> PolicyParts {
        let mut parts = PolicyParts::default();
        for p in &self.policies {
            let account_id = self.accounts[p.account as usize].id;
            parts.0.push(ChannelPolicy { account_id, ..p.channels });
            for k in 0..p.rule_count() {
                let rule = p.rule(k);
                parts.1.push(VelocityRule { account_id, ..*rule });
                let used = (0..p.bucket_count(k)).map(|b| (b, p.bucket(k, b))).filter(|(_, b)| *b != Bucket::default());
                parts.2.extend(used.map(|(b, bucket)| (p.account, rule.slot, b as u8, bucket)));
            }
        }
        parts
    }

    /// Appends the whole state to `out` as a snapshot stream.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let ledgers: Vec<Ledger> = self.ledgers.iter().map(|slot| slot.ledger).collect();
        let policies = self.policy_parts();
        let parts = Parts {
            policies: &policies,
            orders: &self.orders,
            quotes: &self.quotes,
            quote_usage: &self.quote_usage,
            timestamp: self.timestamp,
            limits: self.limits,
            ledgers: &ledgers,
            accounts: &self.accounts,
            transfers: &self.transfers,
            history: self.cold.history.as_ref(),
            kept: 0,
            list_ends: None,
            digest: [0; DIGEST_SIZE],
            expired: &self.expired,
            expired_kept: 0,
            balance_history: &self.balance_history.entries,
            balances_kept: 0,
            failed: &self.failed,
            failed_kept: 0,
            limit_changes: &self.limit_changes,
        };
        let start = out.len();
        out.reserve(parts.len());
        parts.encode(out).unwrap_or_else(|e| panic!("an in-memory snapshot of an engine whose history is unreadable: {}", e.0));
        assert_eq!(out.len() - start, parts.len(), "snapshot length matches its header");
        debug_assert_eq!(parts.len(), self.snapshot_len());
    }

    /// A copy of the state for a snapshot encoded elsewhere: the tables copied as they are
    /// (memory-bandwidth speed), so a server's sequencer pauses only for the copy, and
    /// [`SnapshotView::bytes`] (the same stream as [`Engine::snapshot_bytes`]) runs on another
    /// thread while the engine goes on.
    pub fn snapshot_view(&self) -> SnapshotView {
        let mut view = SnapshotView::default();
        self.snapshot_view_into(&mut view);
        view
    }

    /// As [`Engine::snapshot_view`], into the memory of an earlier copy: a server that keeps its
    /// last copy copies the next snapshot into pages already mapped, at memcpy speed, instead of
    /// faulting in fresh ones (which dominated the copy on this machine), and of the append-only
    /// tables (transfers, balance history) only what was added since that copy.
    pub fn snapshot_view_into(&self, view: &mut SnapshotView) {
        view.timestamp = self.timestamp;
        view.limits = self.limits;
        view.ledgers.clear();
        view.ledgers.extend(self.ledgers.iter().map(|slot| slot.ledger));
        // Room for as many as the engine has room for, so a growing state's next copy still fits.
        view.accounts.reserve(self.accounts.capacity().saturating_sub(view.accounts.len()));
        view.accounts.clone_from(&self.accounts);
        view.transfers = self.transfers.snapshot();
        view.history = self.cold.history.clone();
        (view.kept, view.balances_kept, view.failed_kept, view.expired_kept) = (0, 0, 0, 0);
        view.digest = [0; DIGEST_SIZE];
        view.list_ends.lasts.clear();
        view.list_ends.links.clear();
        view.expired = self.expired.snapshot();
        view.balance_history = self.balance_history.entries.snapshot();
        view.failed = self.failed.snapshot();
        catch_up(&mut view.limit_changes, &self.limit_changes);
        view.policies = self.policy_parts();
        // A pointer per chunk of orders, shared copy-on-write (see `OrderTable`).
        view.orders.clone_from(&self.orders);
        // Quote records never change once made; their usage does.
        catch_up(&mut view.quotes, &self.quotes);
        view.quote_usage.clone_from(&self.quote_usage);
    }

    /// As [`Engine::snapshot_view_into`], for a slim stream: the transfers of evicted chunks,
    /// which the history store holds, are left out and counted, with the state digest beside
    /// them (see the module). The store must keep those chunks, durably, as long as the
    /// snapshot is kept.
    pub fn slim_snapshot_view_into(&mut self, view: &mut SnapshotView) {
        self.snapshot_view_into(view);
        let kept = self.transfers.evicted_chunks() * self.transfers.chunk_len();
        let entries = &self.balance_history.entries;
        let balances_kept = entries.evicted_chunks() * entries.chunk_len();
        let failed_kept = self.failed.evicted_chunks() * self.failed.chunk_len();
        let expired_kept = self.expired.evicted_chunks() * self.expired.chunk_len();
        if kept + balances_kept + failed_kept + expired_kept > 0 {
            (view.kept, view.balances_kept, view.failed_kept, view.expired_kept) = (kept, balances_kept, failed_kept, expired_kept);
            view.digest = self.state_digest();
        }
        if kept > 0 {
            // Copied here (memory speed), worked out by the writer while it encodes.
            view.list_ends.lasts.extend(self.account_meta.iter().map(|meta| meta.last_transfer));
            view.list_ends.links.extend_from_slice(&self.transfer_links[kept..]);
        }
    }

    /// Brings only the append-only tables of an earlier copy up to date, leaving the rest for
    /// [`Engine::snapshot_view_into`]: transfers by sharing the engine's full chunks (a pointer
    /// each), balance history, failed ids and limit changes by copying. A server calls it after
    /// every batch, so the snapshot itself copies only the accounts, the small tables and one
    /// open chunk: its stall does not grow with the transfers since the last one.
    /// At most `records_max` records of each copied table are copied per call, so a copy that is
    /// far behind (a server that restarted with a long history) catches up over several batches
    /// instead of in one stall.
    pub fn snapshot_view_catch_up(&self, view: &mut SnapshotView, records_max: usize) {
        let end = |copy: usize, source: usize| source.min(copy.saturating_add(records_max));
        self.transfers.share_sealed_into(&mut view.transfers);
        view.history = self.cold.history.clone();
        self.balance_history.entries.share_sealed_into(&mut view.balance_history);
        self.expired.share_sealed_into(&mut view.expired);
        self.failed.share_sealed_into(&mut view.failed);
        let changes = end(view.limit_changes.len(), self.limit_changes.len());
        catch_up(&mut view.limit_changes, &self.limit_changes[..changes]);
    }

    /// The snapshot stream as a new vector.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.snapshot(&mut out);
        out
    }

    /// BLAKE3 of the canonical snapshot stream: equal states, equal digests.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&self.snapshot_bytes()).as_bytes()
    }

    /// Rebuilds an engine from a snapshot stream. Any byte string either restores a state that
    /// passes `check_invariants` or returns an error; it never panics.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        Engine::restore_with_chunk_bits(bytes, crate::chunked::CHUNK_BITS)
    }

    /// As [`Engine::restore`], storing transfers in chunks of `2^bits` (see
    /// [`Engine::set_transfer_chunk_bits`]).
    pub fn restore_with_chunk_bits(bytes: &[u8], bits: u32) -> Result<Engine, SnapshotError> {
        Engine::restore_from(bytes, bits, None)
    }

    /// As [`Engine::restore_with_chunk_bits`], reading the transfers a slim stream keeps in the
    /// history store from `history` chunk by chunk, each evicted once the next is in (so memory
    /// never holds more than the hot state and two chunks of them), and refusing the result if
    /// its state digest is not the one the stream was written with. A full stream needs no
    /// history; with one given, the engine reads evicted transfers through it from then on.
    pub fn restore_from(bytes: &[u8], bits: u32, history: Option<Arc<dyn History>>) -> Result<Engine, SnapshotError> {
        let mut r = Cursor { bytes, at: 0 };
        let (version, timestamp, limits) = restore_preamble(&mut r)?;
        let counted = COUNTS_BY_VERSION[version as usize - 1];
        let digested = if version >= 7 { DIGEST_SIZE } else { 0 };
        let header = HEADER_SIZE_V1 + 8 * (counted - 5) + digested;
        if bytes.len() < header {
            return Err(SnapshotError::Length { expected: header as u64, found: bytes.len() as u64 });
        }
        let counts: [u64; 19] = core::array::from_fn(|k| if k < counted { r.u64() } else { 0 });
        let digest: [u8; DIGEST_SIZE] = if digested > 0 { r.take(DIGEST_SIZE).try_into().expect("32 bytes") } else { [0; DIGEST_SIZE] };
        let sizes = [
            RECORD_SIZE,
            RECORD_SIZE,
            RECORD_SIZE,
            HOLD_SIZE,
            BALANCE_ENTRY_SIZE,
            FAILED_SIZE,
            LIMIT_CHANGE_SIZE,
            RECORD_SIZE,
            RECORD_SIZE,
            BUCKET_SIZE,
            ORDER_SIZE,
            RUN_ENTRY_SIZE,
            QUOTE_SIZE,
            0,
            EXPIRED_SIZE,
            0,
            4,
            0,
            0,
        ];
        let expected = counts.iter().zip(sizes).try_fold(header as u64, |acc, (n, size)| n.checked_mul(size as u64)?.checked_add(acc));
        match expected {
            Some(expected) if expected == bytes.len() as u64 => {}
            expected => return Err(SnapshotError::Length { expected: expected.unwrap_or(u64::MAX), found: bytes.len() as u64 }),
        }
        let (kept, streamed, balances_kept) = (counts[13], counts[2], counts[15]);
        let transfers = kept.saturating_add(streamed);
        let entries = balances_kept.saturating_add(counts[4]);
        let failed = counts[17].saturating_add(counts[5]);
        if counts[18].saturating_add(counts[14]) > transfers {
            return invalid("more expired holds than transfers");
        }
        if counts[1] >= NONE as u64
            || transfers.saturating_add(failed) > FAILED_TAG as u64
            || counts[3] > transfers
            || entries >= NONE as u64
        {
            return invalid("more records than the u32 index space");
        }
        if counts[16] != 0 && (counts[16] != counts[1] || kept == 0) {
            return invalid(format!("{} account links for {} accounts and {kept} stored transfers", counts[16], counts[1]));
        }
        let mut engine = Engine::new(limits);
        engine.set_transfer_chunk_bits(bits);
        engine.reserve(counts[1] as usize, transfers as usize);
        for _ in 0..counts[0] {
            restore_ledger(&mut engine, Ledger::decode(r.record()))?;
        }
        for _ in 0..counts[1] {
            restore_account(&mut engine, Account::decode(r.record()))?;
        }
        let last_links: Vec<u32> = (0..counts[16]).map(|_| r.u32()).collect();
        // Holds follow the streamed transfers; they are restored beside the transfers they
        // name, so a chunk's pending holds are known (and pinned) when it is evicted.
        let mut at_holds = Cursor { bytes, at: r.at + streamed as usize * RECORD_SIZE };
        let expired_kept = read_kept_expired(&engine, counts[18], history.as_deref())?;
        let expired_chunks = expired_kept.len() / engine.expired.chunk_len();
        let (holds, mut states) = read_hold_states(&mut engine, &mut at_holds, counts[3], counts[14], version, expired_kept)?;
        states.expired_summed_below = add_expired_images(&mut engine, expired_chunks, history.as_deref(), &mut states)?;
        let mut restoring = Restoring { holds: &holds, next_hold: 0, lineage_from: 0, states };
        if let Some(history) = &history {
            engine.set_history(Arc::clone(history));
            // Chunks past its lineage images get theirs from the captures restored from records.
            if history.has_lineage() {
                engine.keep_image_notes();
            }
        }
        let chunks = restore_kept_transfers(&mut engine, kept, history.as_deref(), &mut restoring, &last_links)?;
        for _ in 0..streamed {
            restore_transfer(&mut engine, Transfer::decode(r.record()), Origin::Stream)?;
        }
        restoring.transfers_done(&mut engine)?;
        if restoring.states.derive_pending {
            engine.restore_derived_pending(&mut restoring.states).map_err(SnapshotError::History)?;
        }
        if let Some(&(index, _)) = holds.get(restoring.next_hold) {
            return invalid(format!("hold names transfer index {index}"));
        }
        restoring.holds_done(&engine, timestamp)?;
        // Noted as their holds were restored, in index order: the images go by place.
        if let Some(notes) = &mut engine.cold.notes {
            notes.expired.sort_unstable_by_key(|&(place, ..)| place);
        }
        r.at = at_holds.at;
        let balance_chunks = restore_kept_balances(&mut engine, balances_kept, history.as_deref())?;
        let failed_chunks = restore_kept_failed(&mut engine, counts[17], history.as_deref(), timestamp)?;
        for _ in 0..counts[4] {
            let Some(entry) = BalanceEntry::from_bytes(r.take(BALANCE_ENTRY_SIZE).try_into().expect("an entry's bytes")) else {
                return invalid("balance entry padding is not zero");
            };
            link_restored_entries(&mut engine, &[entry]).map_err(SnapshotError::Invalid)?;
            engine.balance_history.entries.push(entry);
        }
        for _ in 0..counts[5] {
            let failed =
                FailedTransfer::from_bytes(r.take(FAILED_SIZE).try_into().expect("a failed id's bytes")).map_err(SnapshotError::Invalid)?;
            restore_failed(&mut engine, failed, timestamp)?;
        }
        for _ in 0..counts[6] {
            restore_limit_change(&mut engine, &mut r, timestamp)?;
        }
        for _ in 0..counts[7] {
            restore_policy(&mut engine, ChannelPolicy::decode(r.record()), timestamp)?;
        }
        for _ in 0..counts[8] {
            restore_rule(&mut engine, VelocityRule::decode(r.record()), timestamp)?;
        }
        for _ in 0..counts[9] {
            restore_bucket(&mut engine, &mut r)?;
        }
        restore_orders(&mut engine, &mut r, counts[10], counts[11], timestamp)?;
        for _ in 0..counts[12] {
            let quote = Quote::decode(r.record());
            let Some(usage) = QuoteUsage::from_bytes(r.take(QUOTE_USAGE_SIZE)) else {
                return invalid(format!("quote {}: usage padding is not zero", quote.id));
            };
            restore_quote(&mut engine, quote, usage, timestamp)?;
        }
        engine.timestamp = timestamp;
        restore_totals(&mut engine)?;
        if let Some(last) = engine.transfers.last() {
            if last.timestamp > timestamp {
                return invalid("a transfer is newer than the engine clock");
            }
        }
        if kept == 0 && balances_kept == 0 && counts[17] == 0 && counts[18] == 0 {
            if digest != [0; DIGEST_SIZE] {
                return invalid("a full stream with a digest");
            }
            engine.check_invariants().map_err(SnapshotError::Invalid)?;
            return Ok(engine);
        }
        engine.evict_chunks_below(chunks);
        engine.evict_balance_chunks_below(balance_chunks);
        engine.evict_failed_chunks_below(failed_chunks);
        engine.evict_expired_chunks_below(expired_chunks);
        // The digest covers every record, those read from the store too: equal digests, the
        // state the stream was written from. What only reading the whole history again could
        // check is left to the digest.
        if engine.state_digest() != digest {
            return Err(SnapshotError::History("the state restored with the store's transfers is not the one the snapshot was taken of (its digest differs): the store is damaged or belongs to another log".into()));
        }
        engine.check_hot_invariants().map_err(SnapshotError::Invalid)?;
        Ok(engine)
    }
}

/// The header up to the counts: version, clock and limits, checked.
fn restore_preamble(r: &mut Cursor<'_>) -> Result<(u32, u64, Limits), SnapshotError> {
    if r.bytes.len() < HEADER_SIZE_V1 {
        return Err(SnapshotError::Length { expected: HEADER_SIZE_V1 as u64, found: r.bytes.len() as u64 });
    }
    if r.take(8) != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = r.u32();
    if version == 0 || version > SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    if r.u32() != 0 {
        return invalid("reserved header word is not zero");
    }
    let timestamp = r.u64();
    let limits = Limits { ledgers_max: r.u32(), accounts_max: r.u32(), transfers_max: r.u32(), query_results_max: r.u32() };
    if let Some(problem) = limits.problem() {
        return invalid(problem);
    }
    Ok((version, timestamp, limits))
}

/// One hold state as the stream holds it.
fn read_hold(r: &mut Cursor<'_>) -> Result<(u32, Hold), SnapshotError> {
    let index = r.u32();
    let status = hold_status(r.take(4))?;
    Ok((index, Hold { status, expires_at: r.u64(), resolved_at: r.u64(), resolved_by: NONE }))
}

/// Restores the `kept` transfers a slim stream left in the history store, chunk by chunk, each
/// with its holds and lineage, evicting all but the newest as it goes; returns the chunks read.
fn restore_kept_transfers(
    engine: &mut Engine,
    kept: u64,
    history: Option<&dyn History>,
    restoring: &mut Restoring<'_>,
    last_links: &[u32],
) -> Result<usize, SnapshotError> {
    let chunk_len = engine.transfers.chunk_len();
    let Some((history, chunks)) = kept_chunks(kept, history, chunk_len, "transfers")? else { return Ok(0) };
    let unreadable = |k: usize| move |e: String| SnapshotError::History(format!("chunk {k}: {e}"));
    // The images, when the stream closes the accounts' lists and the store has all of them
    // (written in order after their chunks, so the last one stands for the rest).
    if !last_links.is_empty() && history.read_image(chunks - 1).map_err(unreadable(chunks - 1))?.is_some() {
        restore_kept_images(engine, chunks, history, restoring)?;
        engine.set_last_links(last_links);
        return Ok(chunks);
    }
    for k in 0..chunks {
        // The chunk read becomes the engine's chunk as it is, in a buffer an evicted one left.
        let mut chunk = engine.transfers.take_spare();
        let summed = history.read_chunk_summed(k, &mut chunk).map_err(|e| SnapshotError::History(format!("chunk {k}: {e}")))?;
        if chunk.len() != chunk_len {
            return Err(SnapshotError::History(format!("chunk {k} holds {} transfers, not {chunk_len}", chunk.len())));
        }
        let first = engine.transfers.len() as u32;
        for (i, t) in chunk.iter().enumerate() {
            let (dr, cr) = restored_sides(engine, t, Origin::Store)?;
            engine.link_transfer(t, first + i as u32, dr, cr);
        }
        // The reader's sum of the chunk's digest terms stands for hashing each record again.
        if let Some(sum) = summed {
            engine.digest.settle_transfers_summed(first as usize, chunk.len(), sum);
        }
        engine.transfers.push_chunk(chunk);
        restoring.transfers_done(engine)?;
        engine.evict_chunks_below(k);
    }
    Ok(chunks)
}

/// As [`restore_kept_transfers`] from the chunks' images ([`crate::ChunkImage`]): a plain
/// chunk's records are not read at all, another's are (for its holds and lineage) but neither
/// looked up nor linked (its links are the image's); the accounts' lists are closed afterwards.
fn restore_kept_images(
    engine: &mut Engine,
    chunks: usize,
    history: &dyn History,
    restoring: &mut Restoring<'_>,
) -> Result<(), SnapshotError> {
    // Chunks whose ids the store's id index holds: their ids are not put in memory at all.
    let ids_stored = history.ids_stored_chunks().min(chunks);
    engine.cold.ids_stored = ids_stored;
    engine.transfer_ids.set_stored_below(engine.ids_stored_end(), engine.cold.kept());
    // The hold states from the lineage images, when the store has one for every chunk (written
    // in order after the images) and the stream lists no pending hold.
    let mut open = (restoring.states.derive_pending && history.lineage_chunks() >= chunks).then(OpenHolds::default);
    for k in 0..chunks {
        let unreadable = |e: String| SnapshotError::History(format!("chunk {k}: {e}"));
        let image = if k < ids_stored { history.read_image_links(k) } else { history.read_image(k) };
        let image = image.map_err(unreadable)?.ok_or_else(|| unreadable("no restore image".into()))?;
        let lineage = match &open {
            Some(_) if !image.plain => {
                Some(history.read_lineage(k).map_err(unreadable)?.ok_or_else(|| unreadable("no lineage image".into()))?)
            }
            _ => None,
        };
        let records = if image.plain || lineage.as_ref().is_some_and(|l| !l.needs_records && !restoring.expired_below(engine, k + 1)) {
            None
        } else {
            let mut chunk = engine.transfers.take_spare();
            let summed = history.read_chunk_summed(k, &mut chunk).map_err(unreadable)?;
            Some((chunk, summed))
        };
        engine.restore_image(k, &image, records).map_err(SnapshotError::History)?;
        match (&lineage, &mut open) {
            _ if image.plain => restoring.skip_plain(engine)?,
            (Some(lineage), Some(open)) => {
                engine.restore_lineage(k, lineage, open, &mut restoring.states).map_err(SnapshotError::History)?;
                restoring.lineage_from = engine.transfers.len() as u32;
            }
            _ => restoring.transfers_done(engine)?,
        }
        engine.evict_chunks_below(k);
        engine.cold.restored_from_images += 1;
    }
    if let Some(open) = open {
        engine.keep_lineage_open(&open, &mut restoring.states).map_err(SnapshotError::History)?;
        engine.cold.restored_from_lineage = chunks;
    }
    Ok(())
}

/// Where a restore is in the holds and the lineage, which follow the transfers restored.
struct Restoring<'h> {
    /// Every pending hold, by transfer index.
    holds: &'h [(u32, Hold)],
    next_hold: usize,
    lineage_from: u32,
    /// The finished holds the stream names, until their transfers are restored.
    states: StatedHolds,
}

impl Restoring<'_> {
    /// Restores the holds of the transfers restored so far, then their lineage.
    fn transfers_done(&mut self, engine: &mut Engine) -> Result<(), SnapshotError> {
        let end = engine.transfers.len() as u32;
        while let Some(&(index, hold)) = self.holds.get(self.next_hold).filter(|(index, _)| *index < end) {
            restore_hold(engine, index, hold)?;
            self.next_hold += 1;
        }
        engine.rebuild_lineage(self.lineage_from..end, &mut self.states).map_err(SnapshotError::Invalid)?;
        self.lineage_from = end;
        Ok(())
    }

    /// Whether an expired hold the stream names, not met yet, lies below chunk `end` whose term
    /// did not come with a stored sum: a chunk restored from its lineage image then needs its
    /// records (the hold's expiry).
    fn expired_below(&self, engine: &Engine, end: usize) -> bool {
        self.states.unsummed_expired_below((end * engine.transfers.chunk_len()) as u32)
    }

    /// Passes over a plain chunk just restored from its image: no hold and no lineage.
    fn skip_plain(&mut self, engine: &Engine) -> Result<(), SnapshotError> {
        let end = engine.transfers.len() as u32;
        if let Some((index, _)) = self.holds.get(self.next_hold).filter(|(index, _)| *index < end) {
            return invalid(format!("hold at transfer index {index} lies in a chunk stored as holding none"));
        }
        self.lineage_from = end;
        Ok(())
    }

    /// Once every transfer is restored: every hold has a state, every state named a hold, and
    /// the expired ones are in the order they can have expired in, before the `clock`.
    fn holds_done(&self, engine: &Engine, clock: u64) -> Result<(), SnapshotError> {
        // Deriving pending holds, those left open are the pending ones.
        if let Some(index) = self.states.open.values().map(|&(index, _)| index).min().filter(|_| !self.states.derive_pending) {
            return invalid(format!("hold at transfer index {index} is neither pending, expired, captured nor released"));
        }
        let unmet = self.states.expired_by_index.get(self.states.next_expired).map(|&(index, _)| index);
        if let Some(index) = self.states.stated.keys().copied().chain(unmet).min() {
            return invalid(format!("hold state for transfer index {index}, which is not a hold that is finished so"));
        }
        let keys = engine.expired.iter().zip(&self.states.expiries);
        let mut last = (0, 0, 0);
        for (k, (e, &expires_at)) in keys.enumerate() {
            let key = (expires_at, e.index, e.resolved_at);
            if k > 0 && (key.0, key.1) <= (last.0, last.1) || key.2 <= last.2 || e.resolved_at > clock {
                return invalid(format!("expired hold at transfer index {} is out of order ({key:?} after {last:?})", e.index));
            }
            last = key;
        }
        Ok(())
    }
}

/// The hold states of a stream: the pending ones, by index, for [`Restoring`]; the finished
/// ones it names (`StatedHolds`), the expired ones put in the engine's list in the order they
/// expired. Before version 8 the holds section lists every state; expired holds then sort by
/// (expiry time, index), the order they expired in.
fn read_hold_states(
    engine: &mut Engine,
    r: &mut Cursor<'_>,
    holds: u64,
    expired: u64,
    version: u32,
    kept_expired: Vec<ExpiredHold>,
) -> Result<(Vec<(u32, Hold)>, StatedHolds), SnapshotError> {
    let (mut pending, mut states, mut expired_list) = (Vec::new(), StatedHolds::default(), Vec::new());
    states.derive_pending = version >= 10;
    if states.derive_pending && holds > 0 {
        return invalid(format!("a version {version} stream lists {holds} pending holds (it derives them)"));
    }
    let expired_hold =
        |e: &ExpiredHold| (e.index, Hold { status: HoldStatus::Expired, expires_at: 0, resolved_at: e.resolved_at, resolved_by: NONE });
    for _ in 0..holds {
        let (index, hold) = read_hold(r)?;
        if pending.last().is_some_and(|&(last, _)| index <= last) || states.stated.contains_key(&index) {
            return invalid(format!("hold at transfer index {index} repeated or out of order"));
        }
        match hold.status {
            HoldStatus::Pending if hold.resolved_at == 0 => pending.push((index, hold)),
            HoldStatus::Pending => return invalid(format!("pending hold at transfer index {index} with a resolution time")),
            _ if version >= 8 => return invalid(format!("hold at transfer index {index} is listed with the pending ones")),
            HoldStatus::Expired => expired_list.push((index, hold)),
            _ => {
                if states.stated.insert(index, (hold, NONE)).is_some() {
                    return invalid(format!("hold state for transfer index {index} is repeated"));
                }
            }
        }
    }
    // Before version 8 (whose holds section stated them), by the order they expired in; from
    // version 10, those the store keeps come first.
    expired_list.sort_unstable_by_key(|(index, hold)| (hold.expires_at, *index));
    expired_list.splice(0..0, kept_expired.iter().map(expired_hold));
    for _ in 0..expired {
        let Some(e) = ExpiredHold::from_bytes(r.take(EXPIRED_SIZE).try_into().expect("an expired hold's bytes")) else {
            return invalid("expired hold padding is not zero");
        };
        expired_list.push(expired_hold(&e));
    }
    for (index, hold) in expired_list {
        let k = engine.expired.len() as u32;
        engine.expired.push(ExpiredHold { index, resolved_at: hold.resolved_at });
        if version >= 8 {
            states.expired_by_index.push((index, k));
        } else if states.stated.insert(index, (hold, FAILED_TAG | k)).is_some() {
            return invalid(format!("hold state for transfer index {index} is repeated"));
        }
    }
    states.expired_by_index.sort_unstable();
    if let Some(w) = states.expired_by_index.windows(2).find(|w| w[0].0 == w[1].0) {
        return invalid(format!("hold state for transfer index {} is repeated", w[0].0));
    }
    states.expiries = vec![0; engine.expired.len()];
    Ok((pending, states))
}

/// Adds a quote after checking it could have been made: a new id, made in order before the
/// clock, on ledgers and accounts that exist.
fn restore_quote(engine: &mut Engine, quote: Quote, usage: QuoteUsage, clock: u64) -> Result<(), SnapshotError> {
    let after = engine.quotes.last().map_or(0, |q| q.timestamp);
    let made = quote.flags & !crate::types::quote_flags::MULTI_USE == 0 && quote.reserved == [0; 3];
    if quote.id == 0 || engine.quote_index.contains_key(&quote.id) || quote.timestamp > clock || quote.timestamp <= after || !made {
        return invalid(format!("quote {} is repeated, out of order or newer than the clock", quote.id));
    }
    engine.insert_quote(quote, usage).map_err(|code| SnapshotError::Invalid(format!("quote {}: {code}", quote.id)))
}

/// The history holding the `kept` records of `what` a slim stream left to the store, and how
/// many chunks of `chunk_len` they fill (`None`: nothing kept). Refused without a history, or
/// if they are not whole chunks.
fn kept_chunks<'h>(
    kept: u64,
    history: Option<&'h dyn History>,
    chunk_len: usize,
    what: &str,
) -> Result<Option<(&'h dyn History, usize)>, SnapshotError> {
    if kept == 0 {
        return Ok(None);
    }
    let Some(history) = history else {
        return Err(SnapshotError::History(format!("the snapshot keeps {kept} {what} in the history store, and none was given")));
    };
    if !kept.is_multiple_of(chunk_len as u64) {
        return invalid(format!("{kept} {what} kept in the history store is not a whole number of chunks of {chunk_len}"));
    }
    Ok(Some((history, (kept / chunk_len as u64) as usize)))
}

/// The `kept` expired holds a slim stream left in the history store, read back whole: a restore
/// checks each against its hold, and all of them in order, before they leave memory again.
fn read_kept_expired(engine: &Engine, kept: u64, history: Option<&dyn History>) -> Result<Vec<ExpiredHold>, SnapshotError> {
    let chunk_len = engine.expired.chunk_len();
    let Some((history, chunks)) = kept_chunks(kept, history, chunk_len, "expired holds")? else { return Ok(Vec::new()) };
    let (mut all, mut chunk) = (Vec::with_capacity(kept as usize), Vec::new());
    for k in 0..chunks {
        history.read_expired_chunk(k, &mut chunk).map_err(|e| SnapshotError::History(format!("expired chunk {k}: {e}")))?;
        if chunk.len() != chunk_len {
            return Err(SnapshotError::History(format!("expired chunk {k} holds {} holds, not {chunk_len}", chunk.len())));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// Adds the state digest terms of the expired holds of the `chunks` kept chunks of expired
/// holds from their images (each hold's id and expiry beside its place's index and expiry
/// time), if the store holds one for each; returns the places they cover (0: none taken, each
/// expired hold's term is added as its hold's record is restored).
fn add_expired_images(
    engine: &mut Engine,
    chunks: usize,
    history: Option<&dyn History>,
    states: &mut StatedHolds,
) -> Result<u32, SnapshotError> {
    let Some(history) = history.filter(|h| chunks > 0 && h.expired_images_chunks() >= chunks) else { return Ok(0) };
    let len = engine.expired.chunk_len();
    for k in 0..chunks {
        let unreadable = |e: String| SnapshotError::History(format!("expired chunk {k}'s image: {e}"));
        let holds = history.read_expired_image(k).map_err(unreadable)?.ok_or_else(|| unreadable("not stored".into()))?;
        if holds.len() != len {
            return Err(unreadable(format!("{} holds, not {len}", holds.len())));
        }
        for (i, (id, expires_at)) in holds.into_iter().enumerate() {
            let place = k * len + i;
            let e = engine.expired.get(place).copied().expect("a restore keeps every expired hold in memory until it is done");
            if expires_at == 0 || e.resolved_at < expires_at {
                return Err(unreadable(format!("hold {id} expired at {} but expires at {expires_at}", e.resolved_at)));
            }
            states.expiries[place] = expires_at;
            let hold = Hold { status: HoldStatus::Expired, expires_at, resolved_at: e.resolved_at, resolved_by: NONE };
            engine.digest.add_finished_hold(id, &hold);
        }
    }
    engine.cold.restored_from_expired_images = chunks;
    Ok((chunks * len) as u32)
}

/// Restores the `kept` balance entries a slim stream left in the history store, chunk by chunk,
/// evicting all but the newest as it goes; returns the chunks read. Their digest terms are
/// folded in before each eviction, and the restore's digest check covers them.
fn restore_kept_balances(engine: &mut Engine, kept: u64, history: Option<&dyn History>) -> Result<usize, SnapshotError> {
    let chunk_len = engine.balance_chunk_len();
    let Some((history, chunks)) = kept_chunks(kept, history, chunk_len, "balance entries")? else { return Ok(0) };
    for k in 0..chunks {
        let mut chunk = engine.balance_history.entries.take_spare();
        read_stored_balance_chunk(history, k, chunk_len, &mut chunk).map_err(SnapshotError::History)?;
        link_restored_entries(engine, &chunk).map_err(SnapshotError::Invalid)?;
        engine.balance_history.entries.push_chunk(chunk);
        engine.evict_balance_chunks_below(k);
    }
    Ok(chunks)
}

/// Restores the `kept` failed ids a slim stream left in the history store, chunk by chunk, each
/// indexed under its id (not looked up first: a repeated id changes the digest, which the
/// restore checks), evicting all but the newest as it goes; returns the chunks read.
fn restore_kept_failed(engine: &mut Engine, kept: u64, history: Option<&dyn History>, clock: u64) -> Result<usize, SnapshotError> {
    let chunk_len = engine.failed_chunk_len();
    let Some((history, chunks)) = kept_chunks(kept, history, chunk_len, "failed ids")? else { return Ok(0) };
    for k in 0..chunks {
        let mut chunk = engine.failed.take_spare();
        history.read_failed_chunk(k, &mut chunk).map_err(|e| SnapshotError::History(format!("failed chunk {k}: {e}")))?;
        if chunk.len() != chunk_len {
            return Err(SnapshotError::History(format!("failed chunk {k} holds {} ids, not {chunk_len}", chunk.len())));
        }
        for (i, failed) in chunk.iter().enumerate() {
            if failed.id == 0 || failed.id == u128::MAX || failed.timestamp > clock {
                return invalid(format!("failed transfer id {} is zero, max or newer than the engine clock", failed.id));
            }
            engine.transfer_ids.insert(failed.id, FAILED_TAG | (k * chunk_len + i) as u32, engine.cold.kept());
        }
        engine.failed.push_chunk(chunk);
        engine.evict_failed_chunks_below(k);
    }
    Ok(chunks)
}

fn restore_failed(engine: &mut Engine, failed: FailedTransfer, clock: u64) -> Result<(), SnapshotError> {
    if failed.id == 0 || failed.id == u128::MAX || engine.find_transfer_id_through(failed.id).is_some() {
        return invalid(format!("failed transfer id {} is zero, max or repeated", failed.id));
    }
    if failed.timestamp > clock {
        return invalid(format!("failed transfer id {} is newer than the engine clock", failed.id));
    }
    if engine.ids_full() {
        return invalid("more transfer ids than transfers_max");
    }
    engine.transfer_ids.insert(failed.id, FAILED_TAG | engine.failed.len() as u32, engine.cold.kept());
    engine.failed.push(failed);
    Ok(())
}

fn restore_limit_change(engine: &mut Engine, r: &mut Cursor<'_>, clock: u64) -> Result<(), SnapshotError> {
    let account = r.u32();
    let set = r.take(4);
    let timestamp = r.u64();
    let (debit, credit) = (r.u128(), r.u128());
    if set[0] > 3 || set[1..] != [0, 0, 0] || (set[0] & 1 == 0 && debit != 0) || (set[0] & 2 == 0 && credit != 0) {
        return invalid("limit change flags or padding");
    }
    let Some(meta) = engine.account_meta.get(account as usize) else {
        return invalid(format!("limit change names account index {account}"));
    };
    let prev = meta.last_limit_change;
    let after_prev = prev == NONE || engine.limit_changes[prev as usize].timestamp < timestamp;
    if timestamp > clock || !after_prev {
        return invalid(format!("limit change of account index {account} out of order or newer than the clock"));
    }
    let (debit_limit, credit_limit) = ((set[0] & 1 != 0).then_some(debit), (set[0] & 2 != 0).then_some(credit));
    engine.push_limit_change(LimitChange { account, prev, timestamp, debit_limit, credit_limit });
    Ok(())
}

fn restore_policy(engine: &mut Engine, channels: ChannelPolicy, clock: u64) -> Result<(), SnapshotError> {
    let Some(&account) = engine.account_index.get(&channels.account_id) else {
        return invalid(format!("a policy names unknown account {}", channels.account_id));
    };
    let meta = &mut engine.account_meta[account as usize];
    if meta.policy != NONE || channels.timestamp > clock || channels.flags & crate::types::channel_flags::LINKED != 0 {
        return invalid(format!("account {}: a second policy, or one newer than the clock", channels.account_id));
    }
    meta.policy = engine.policies.len() as u32;
    let mut policy = Policy::new(account, channels.account_id);
    policy.set_channels(channels);
    policy.set_digest_dirty(true);
    engine.policies.push(policy);
    engine.digest.dirty_policies.push(meta.policy);
    Ok(())
}

fn restore_rule(engine: &mut Engine, rule: VelocityRule, clock: u64) -> Result<(), SnapshotError> {
    let p = engine.account_index.get(&rule.account_id).map_or(NONE, |&a| engine.account_meta[a as usize].policy);
    if p == NONE || rule.timestamp > clock || rule.flags & crate::types::velocity_flags::LINKED != 0 {
        return invalid(format!("a velocity rule of account {} without a policy, or newer than the clock", rule.account_id));
    }
    let policy = &mut engine.policies[p as usize];
    if policy.rules().last().is_some_and(|last| last.slot >= rule.slot) {
        return invalid(format!("account {}: velocity rules out of slot order", rule.account_id));
    }
    policy.edit_rules(|all| all.push(RuleState::new(rule)));
    Ok(())
}

fn restore_bucket(engine: &mut Engine, r: &mut Cursor<'_>) -> Result<(), SnapshotError> {
    let account = r.u32();
    let at = r.take(4);
    let bucket = Bucket { count: r.u64(), period: r.u64(), amount: r.u128() };
    if r.u64() != 0 || at[2..] != [0, 0] || bucket == Bucket::default() {
        return invalid("velocity bucket padding, or an empty bucket written");
    }
    let p = engine.account_meta.get(account as usize).map_or(NONE, |m| m.policy);
    let policy = (p != NONE).then(|| &mut engine.policies[p as usize]);
    let found = policy.and_then(|policy| {
        let k = policy.rules().position(|r| r.slot == at[0])?;
        ((at[1] as usize) < policy.bucket_count(k)).then_some((policy, k))
    });
    let Some((policy, k)) = found else {
        return invalid(format!("a velocity bucket names account index {account}, rule {}, bucket {}", at[0], at[1]));
    };
    if policy.bucket(k, at[1] as usize) != Bucket::default() {
        return invalid("a velocity bucket written twice");
    }
    policy.set_bucket(k, at[1] as usize, bucket);
    Ok(())
}

/// Reads `orders` orders and `entries` history entries, and links each order to its accounts
/// and the due queue.
fn restore_orders(engine: &mut Engine, r: &mut Cursor<'_>, orders: u64, entries: u64, clock: u64) -> Result<(), SnapshotError> {
    let raw: Vec<(&[u8], &[u8])> = (0..orders).map(|_| (r.take(RECORD_SIZE), r.take(ORDER_STATE_SIZE))).collect();
    let mut histories = vec![std::collections::VecDeque::new(); raw.len()];
    let mut last = 0;
    for _ in 0..entries {
        let bytes: &[u8; RUN_ENTRY_SIZE] = r.take(RUN_ENTRY_SIZE).try_into().expect("an entry's bytes");
        let Some((number, entry)) = RunEntry::from_bytes(bytes) else {
            return invalid("a run-history entry names no event or code, or its padding is not zero");
        };
        if number < last || number == 0 || number as usize > histories.len() || entry.at > clock {
            return invalid(format!("a run-history entry of order number {number} is out of order or newer than the clock"));
        }
        last = number;
        histories[number as usize - 1].push_back(entry);
    }
    for (k, ((spec, state), history)) in raw.into_iter().zip(histories).enumerate() {
        let (spec, state) = (spec.try_into().expect("a record"), state.try_into().expect("a state"));
        let Some(mut order) = Order::from_parts(spec, state, history) else {
            return invalid(format!("order number {} has a state byte that names nothing", k + 1));
        };
        let (debit_id, credit_id) = order.spec.accounts();
        let (Some(&dr), Some(&cr)) = (engine.account_index.get(&debit_id), engine.account_index.get(&credit_id)) else {
            return invalid(format!("order {} names an unknown account", order.spec.id()));
        };
        let id = order.spec.id();
        if order.number as usize != k + 1 || order.created_at > clock || engine.order_index.contains_key(&id) || id == 0 {
            return invalid(format!("order {id} is out of order, newer than the clock, or repeated"));
        }
        (order.debit, order.credit) = (dr, cr);
        engine.order_index.insert(id, k as u32);
        engine.orders.push(order);
        engine.digest.mark_order(k as u32);
    }
    engine.relink_orders();
    Ok(())
}

fn hold_status(bytes: &[u8]) -> Result<HoldStatus, SnapshotError> {
    if bytes[1..] != [0, 0, 0] {
        return invalid("hold padding is not zero");
    }
    HoldStatus::from_u8(bytes[0]).map_or_else(|| invalid(format!("hold status {}", bytes[0])), Ok)
}

fn restore_ledger(engine: &mut Engine, ledger: Ledger) -> Result<(), SnapshotError> {
    if ledger.id == 0 || ledger.id == u32::MAX || engine.ledger_index.contains_key(&ledger.id) {
        return invalid(format!("ledger id {} is zero, max or repeated", ledger.id));
    }
    engine.ledger_index.insert(ledger.id, engine.ledgers.len() as u32);
    engine.ledgers.push(LedgerSlot { ledger, totals: Balances::default() });
    Ok(())
}

fn restore_account(engine: &mut Engine, account: Account) -> Result<(), SnapshotError> {
    if account.id == 0 || account.id == u128::MAX || engine.account_index.contains_key(&account.id) {
        return invalid(format!("account id {} is zero, max or repeated", account.id));
    }
    let Some(&slot) = engine.ledger_index.get(&account.ledger) else {
        return invalid(format!("account {} names unknown ledger {}", account.id, account.ledger));
    };
    engine.insert_account(account, slot);
    Ok(())
}

/// Where a restored transfer comes from: the stream, or the history store (whose records the
/// stream's digest covers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Stream,
    Store,
}

/// Adds a transfer after checking it could have been stored: a new id (for the store's, left to
/// the digest: a repeated id is a record the snapshot was not taken with, which changes the
/// digest, and a lookup for every stored transfer is a large part of a restart), and accounts
/// that exist.
fn restore_transfer(engine: &mut Engine, transfer: Transfer, from: Origin) -> Result<(), SnapshotError> {
    let (dr, cr) = restored_sides(engine, &transfer, from)?;
    engine.insert_transfer(transfer, dr, cr);
    Ok(())
}

/// The account indexes of a transfer to restore, once it is checked as [`restore_transfer`] says.
#[inline]
fn restored_sides(engine: &Engine, transfer: &Transfer, from: Origin) -> Result<(u32, u32), SnapshotError> {
    let repeated = || from == Origin::Stream && engine.find_transfer_id_through(transfer.id).is_some();
    if transfer.id == 0 || transfer.id == u128::MAX || repeated() {
        return invalid(format!("transfer id {} is zero, max or repeated", transfer.id));
    }
    let dr = engine.account_index.get(&transfer.debit_account_id).copied();
    let cr = engine.account_index.get(&transfer.credit_account_id).copied();
    let (Some(dr), Some(cr)) = (dr, cr) else {
        return invalid(format!("transfer {} names an unknown account", transfer.id));
    };
    if dr == cr {
        return invalid(format!("transfer {} debits and credits one account", transfer.id));
    }
    Ok((dr, cr))
}

fn restore_hold(engine: &mut Engine, index: u32, hold: Hold) -> Result<(), SnapshotError> {
    let Some(t) = engine.transfers.get(index as usize) else {
        return invalid(format!("hold names transfer index {index}"));
    };
    if t.flags & tf::PENDING == 0 {
        return invalid(format!("hold state for transfer {} which is not pending", t.id));
    }
    // An expiry that overflows is refused with the other holds' (`restore_hold_state`).
    if hold.expires_at != hold_expiry(t) {
        return invalid(format!("hold {} expires at {}, not at {}", t.id, hold.expires_at, hold_expiry(t)));
    }
    engine.restore_pending(index, hold.expires_at);
    Ok(())
}

/// Rebuilds ledger and group totals from the accounts, refusing sums that overflow.
fn restore_totals(engine: &mut Engine) -> Result<(), SnapshotError> {
    for i in 0..engine.accounts.len() {
        let b = Balances::of(&engine.accounts[i]);
        let meta = engine.account_meta[i];
        for totals in [&mut engine.ledgers[meta.ledger_slot as usize].totals, &mut engine.groups[meta.group as usize].totals] {
            let sums = [
                totals.debits_pending.checked_add(b.debits_pending),
                totals.debits_posted.checked_add(b.debits_posted),
                totals.credits_pending.checked_add(b.credits_pending),
                totals.credits_posted.checked_add(b.credits_posted),
            ];
            let [Some(dp), Some(dpo), Some(cp), Some(cpo)] = sums else {
                return invalid("ledger totals overflow");
            };
            *totals = Balances { debits_pending: dp, debits_posted: dpo, credits_pending: cp, credits_posted: cpo };
        }
    }
    Ok(())
}

/// Reads the stream after its length was checked against the header, so every read is in bounds.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }
    fn record(&mut self) -> &'a [u8; RECORD_SIZE] {
        self.take(RECORD_SIZE).try_into().expect("exact length")
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("exact length"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("exact length"))
    }
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take(16).try_into().expect("exact length"))
    }
}

/// A copy of an engine's state taken for a snapshot: see [`Engine::snapshot_view`].
#[derive(Clone, Debug, Default)]
pub struct SnapshotView {
    timestamp: u64,
    limits: Limits,
    ledgers: Vec<Ledger>,
    accounts: Vec<Account>,
    /// Shares the engine's full chunks of transfers (see `chunked`).
    transfers: Chunked<Transfer>,
    /// Where the evicted chunks are read back from while writing a full stream.
    history: Option<Arc<dyn History>>,
    /// Transfers left out of a slim stream (0: a full stream).
    kept: usize,
    /// With transfers kept: what closes each account's list below them.
    list_ends: ListEnds,
    /// The state digest a slim stream carries.
    digest: [u8; DIGEST_SIZE],
    /// Shares the engine's full chunks of expired holds.
    expired: Chunked<ExpiredHold>,
    /// Expired holds left out of a slim stream (whole chunks the history store holds).
    expired_kept: usize,
    /// Shares the engine's full chunks of balance entries.
    balance_history: Chunked<BalanceEntry>,
    /// Balance entries left out of a slim stream (whole chunks the history store holds).
    balances_kept: usize,
    /// Shares the engine's full chunks of failed ids.
    failed: Chunked<FailedTransfer>,
    /// Failed ids left out of a slim stream (whole chunks the history store holds).
    failed_kept: usize,
    limit_changes: Vec<LimitChange>,
    policies: PolicyParts,
    /// The engine's orders, their chunks shared copy-on-write.
    orders: OrderTable,
    quotes: Vec<Quote>,
    quote_usage: Vec<QuoteUsage>,
}

/// What a slim stream's writer needs to close each account's list below the kept transfers,
/// copied from the engine at memory speed: each account's newest link, and the links of the
/// transfers from the kept ones on. Working the ends out walks every transfer still in memory,
/// which on the sequencer was a snapshot's longest stall when the history writer fell behind.
#[derive(Clone, Debug, Default)]
struct ListEnds {
    lasts: Vec<u32>,
    links: Vec<[u32; 2]>,
}

/// The policies as a snapshot stream holds them: channel records, rule records, and the
/// non-zero buckets with (account index, rule slot, bucket index).
type PolicyParts = (Vec<ChannelPolicy>, Vec<VelocityRule>, Vec<(u32, u8, u8, Bucket)>);

impl SnapshotView {
    /// Makes room for copies of `accounts` accounts and touches every page of it now, so the
    /// first snapshot's copy runs at memory speed instead of taking a page fault per 4 KiB on the
    /// sequencer thread. Transfers need no room: the copy shares the engine's full chunks.
    pub fn preallocate(&mut self, accounts: usize) {
        let accounts = accounts.saturating_sub(self.accounts.len());
        touch_spare(&mut self.accounts, accounts, Account::default());
    }

    /// Makes room for copies of `accounts` accounts without touching it (see
    /// [`SnapshotView::preallocate`] for the touched kind).
    pub fn reserve(&mut self, accounts: usize) {
        self.accounts.reserve(accounts.saturating_sub(self.accounts.len()));
    }

    /// The snapshot stream of the state copied: byte for byte what [`Engine::snapshot_bytes`]
    /// returned at the moment of the copy, unless the copy is slim.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.parts().encode(&mut out).unwrap_or_else(|e| panic!("a snapshot copy whose history is unreadable: {}", e.0));
        assert_eq!(out.len(), self.len(), "snapshot length matches its header");
        out
    }

    /// Bytes of the snapshot stream ([`SnapshotView::bytes`]'s length).
    pub fn len(&self) -> usize {
        self.parts().len()
    }

    /// Whether the stream is empty (never: it has a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The same stream as [`SnapshotView::bytes`], handed to `sink` in pieces of at most
    /// [`SNAPSHOT_CHUNK_BYTES`] through one reused buffer: a writer never holds the whole
    /// gigabyte. Stops at the first error `sink` returns.
    pub fn write_chunks<E: From<HistoryUnreadable>>(&self, sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut out = Pieces { buffer: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES), sink, error: None, written: 0 };
        self.parts().encode(&mut out)?;
        out.flush();
        match out.error {
            Some(e) => Err(e),
            None => {
                assert_eq!(out.written, self.len(), "the chunks add up to the stream");
                Ok(())
            }
        }
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            timestamp: self.timestamp,
            limits: self.limits,
            ledgers: &self.ledgers,
            accounts: &self.accounts,
            transfers: &self.transfers,
            history: self.history.as_ref(),
            kept: self.kept,
            list_ends: (!self.list_ends.lasts.is_empty()).then_some(&self.list_ends),
            digest: self.digest,
            expired: &self.expired,
            expired_kept: self.expired_kept,
            balance_history: &self.balance_history,
            balances_kept: self.balances_kept,
            failed: &self.failed,
            failed_kept: self.failed_kept,
            limit_changes: &self.limit_changes,
            policies: &self.policies,
            orders: &self.orders,
            quotes: &self.quotes,
            quote_usage: &self.quote_usage,
        }
    }
}

/// Brings `copy` up to `source` for a table that only grows between batches (a transfer or a
/// balance entry never changes once stored; a failed chain takes back only what its own batch
/// added, and copies are made between batches): when `copy` is an earlier copy of `source`, only
/// the new tail is copied, so a server's snapshots after the first stall the sequencer for the
/// accounts and the transfers since the last snapshot, not for every transfer ever made. A copy
/// that is not a prefix of `source` (another engine's, say) is replaced whole; the check looks
/// at the first and last element (and, in debug builds, [`PREFIX_SAMPLES_DEBUG`] spread between:
/// all of them would make every batch of a long test cost its whole history).
fn catch_up<T: Clone + PartialEq>(copy: &mut Vec<T>, source: &[T]) {
    let n = copy.len();
    let earlier = n <= source.len() && (n == 0 || (copy[0] == source[0] && copy[n - 1] == source[n - 1]));
    if earlier {
        let stride = (n / PREFIX_SAMPLES_DEBUG).max(1);
        debug_assert!((0..n).step_by(stride).all(|i| copy[i] == source[i]), "a copy whose ends match is a prefix");
        copy.extend_from_slice(&source[n..]);
    } else {
        copy.clear();
        copy.extend_from_slice(source);
    }
}

/// Elements of a snapshot copy that debug builds compare with the source (see `catch_up`).
const PREFIX_SAMPLES_DEBUG: usize = 1024;

/// Largest piece [`SnapshotView::write_chunks`] hands over.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Where a snapshot stream is encoded to: a vector, or pieces handed to a sink.
trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Gathers the stream in a buffer and hands it to the sink whenever it fills.
struct Pieces<'s, E> {
    buffer: Vec<u8>,
    sink: &'s mut dyn FnMut(&[u8]) -> Result<(), E>,
    error: Option<E>,
    written: usize,
}

impl<E> Pieces<'_, E> {
    fn flush(&mut self) {
        if self.error.is_none() && !self.buffer.is_empty() {
            self.written += self.buffer.len();
            if let Err(e) = (self.sink)(&self.buffer) {
                self.error = Some(e);
            }
        }
        self.buffer.clear();
    }
}

impl<E> Out for Pieces<'_, E> {
    fn put(&mut self, bytes: &[u8]) {
        if self.buffer.len() + bytes.len() > SNAPSHOT_CHUNK_BYTES {
            self.flush();
        }
        self.buffer.extend_from_slice(bytes);
    }
}

/// Writes `table`'s records after the `kept` the history store holds (whole chunks) with `put`;
/// evicted chunks are read back from `history` with `read`.
fn encode_after_kept<T: Clone, O: Out>(
    out: &mut O,
    table: &Chunked<T>,
    kept: usize,
    history: Option<&Arc<dyn History>>,
    read: impl Fn(&dyn History, usize, &mut Vec<T>) -> Result<(), String>,
    put: impl Fn(&T, &mut O),
) -> Result<(), HistoryUnreadable> {
    debug_assert_eq!(kept % table.chunk_len(), 0, "whole chunks are kept");
    let mut evicted = Vec::new();
    for k in kept / table.chunk_len()..table.chunk_count() {
        let mut chunk = table.chunk(k);
        if chunk.is_empty() {
            let history = history.ok_or_else(|| HistoryUnreadable(format!("chunk {k} is evicted, with no history")))?;
            read(history.as_ref(), k, &mut evicted).map_err(HistoryUnreadable)?;
            chunk = &evicted;
        }
        chunk.iter().for_each(|record| put(record, out));
    }
    Ok(())
}

/// Everything a snapshot stream holds, borrowed from an engine or from a [`SnapshotView`].
struct Parts<'a> {
    timestamp: u64,
    limits: Limits,
    ledgers: &'a [Ledger],
    accounts: &'a [Account],
    transfers: &'a Chunked<Transfer>,
    history: Option<&'a Arc<dyn History>>,
    /// The oldest transfers, left out (in whole chunks): those the history store holds.
    kept: usize,
    /// With transfers kept: what closes each account's list below them (the stream does).
    list_ends: Option<&'a ListEnds>,
    digest: [u8; DIGEST_SIZE],
    expired: &'a Chunked<ExpiredHold>,
    /// The oldest expired holds, left out (in whole chunks): those the history store holds.
    expired_kept: usize,
    balance_history: &'a Chunked<BalanceEntry>,
    /// The oldest balance entries, left out (in whole chunks): those the history store holds.
    balances_kept: usize,
    failed: &'a Chunked<FailedTransfer>,
    /// The oldest failed ids, left out (in whole chunks): those the history store holds.
    failed_kept: usize,
    limit_changes: &'a [LimitChange],
    policies: &'a PolicyParts,
    orders: &'a OrderTable,
    quotes: &'a [Quote],
    quote_usage: &'a [QuoteUsage],
}

impl Parts<'_> {
    fn len(&self) -> usize {
        HEADER_SIZE
            + RECORD_SIZE * (self.ledgers.len() + self.accounts.len() + self.transfers.len() - self.kept)
            + 4 * self.list_ends.map_or(0, |ends| ends.lasts.len())
            + EXPIRED_SIZE * (self.expired.len() - self.expired_kept)
            + BALANCE_ENTRY_SIZE * (self.balance_history.len() - self.balances_kept)
            + FAILED_SIZE * (self.failed.len() - self.failed_kept)
            + LIMIT_CHANGE_SIZE * self.limit_changes.len()
            + RECORD_SIZE * (self.policies.0.len() + self.policies.1.len())
            + BUCKET_SIZE * self.policies.2.len()
            + ORDER_SIZE * self.orders.len()
            + RUN_ENTRY_SIZE * self.orders.history_entries()
            + QUOTE_SIZE * self.quotes.len()
    }

    /// Writes the balance entries after those kept; evicted chunks are read back from the history.
    fn encode_balance_entries<O: Out>(&self, out: &mut O) -> Result<(), HistoryUnreadable> {
        let read = |history: &dyn History, k, evicted: &mut Vec<_>| history.read_balance_chunk(k, evicted);
        let put = |entry: &BalanceEntry, out: &mut O| out.put(&entry.to_bytes());
        encode_after_kept(out, self.balance_history, self.balances_kept, self.history, read, put)
    }

    /// Writes the failed ids after those kept; evicted chunks are read back from the history.
    fn encode_failed<O: Out>(&self, out: &mut O) -> Result<(), HistoryUnreadable> {
        let read = |history: &dyn History, k, evicted: &mut Vec<_>| history.read_failed_chunk(k, evicted);
        let put = |failed: &FailedTransfer, out: &mut O| out.put(&failed.to_bytes());
        encode_after_kept(out, self.failed, self.failed_kept, self.history, read, put)
    }

    /// Writes the stream; evicted chunks of transfers are read back from the history.
    fn encode(&self, out: &mut impl Out) -> Result<(), HistoryUnreadable> {
        out.put(&MAGIC);
        out.put(&SNAPSHOT_VERSION.to_le_bytes());
        out.put(&0u32.to_le_bytes());
        out.put(&self.timestamp.to_le_bytes());
        let l = &self.limits;
        for v in [l.ledgers_max, l.accounts_max, l.transfers_max, l.query_results_max] {
            out.put(&v.to_le_bytes());
        }
        let counts = [
            self.ledgers.len(),
            self.accounts.len(),
            self.transfers.len() - self.kept,
            // Pending holds: derived by a restore from the transfers and the expired holds.
            0,
            self.balance_history.len() - self.balances_kept,
            self.failed.len() - self.failed_kept,
            self.limit_changes.len(),
            self.policies.0.len(),
            self.policies.1.len(),
            self.policies.2.len(),
            self.orders.len(),
            self.orders.history_entries(),
            self.quotes.len(),
            self.kept,
            self.expired.len() - self.expired_kept,
            self.balances_kept,
            self.list_ends.map_or(0, |ends| ends.lasts.len()),
            self.failed_kept,
            self.expired_kept,
        ];
        for n in counts {
            out.put(&(n as u64).to_le_bytes());
        }
        out.put(&self.digest);
        let mut record = [0u8; RECORD_SIZE];
        for ledger in self.ledgers {
            ledger.encode(&mut record);
            out.put(&record);
        }
        for a in self.accounts {
            a.encode(&mut record);
            out.put(&record);
        }
        if let Some(ends) = self.list_ends {
            for link in last_links_below(&ends.lasts, self.kept as u32, &ends.links) {
                out.put(&link.to_le_bytes());
            }
        }
        let mut evicted = Vec::new();
        debug_assert_eq!(self.kept % self.transfers.chunk_len(), 0, "whole chunks are kept");
        for k in self.kept / self.transfers.chunk_len()..self.transfers.chunk_count() {
            let mut chunk = self.transfers.chunk(k);
            if chunk.is_empty() {
                let history = self.history.ok_or_else(|| HistoryUnreadable(format!("chunk {k} is evicted, with no history")))?;
                history.read_chunk(k, &mut evicted).map_err(HistoryUnreadable)?;
                chunk = &evicted;
            }
            for t in chunk {
                t.encode(&mut record);
                out.put(&record);
            }
        }
        let read = |history: &dyn History, k, evicted: &mut Vec<_>| history.read_expired_chunk(k, evicted);
        encode_after_kept(out, self.expired, self.expired_kept, self.history, read, |e, out| out.put(&e.to_bytes()))?;
        self.encode_balance_entries(out)?;
        self.encode_failed(out)?;
        for c in self.limit_changes {
            out.put(&c.account.to_le_bytes());
            out.put(&[u8::from(c.debit_limit.is_some()) | u8::from(c.credit_limit.is_some()) << 1, 0, 0, 0]);
            out.put(&c.timestamp.to_le_bytes());
            out.put(&c.debit_limit.unwrap_or(0).to_le_bytes());
            out.put(&c.credit_limit.unwrap_or(0).to_le_bytes());
        }
        for channels in &self.policies.0 {
            channels.encode(&mut record);
            out.put(&record);
        }
        for rule in &self.policies.1 {
            rule.encode(&mut record);
            out.put(&record);
        }
        for (account, slot, bucket, b) in &self.policies.2 {
            out.put(&account.to_le_bytes());
            out.put(&[*slot, *bucket, 0, 0]);
            out.put(&b.count.to_le_bytes());
            out.put(&b.period.to_le_bytes());
            out.put(&b.amount.to_le_bytes());
            out.put(&0u64.to_le_bytes());
        }
        for order in self.orders.iter() {
            out.put(&order.spec.to_bytes());
            out.put(&order.state_bytes());
        }
        for order in self.orders.iter() {
            for entry in &order.history {
                out.put(&entry.to_bytes(order.number));
            }
        }
        for (quote, usage) in self.quotes.iter().zip(self.quote_usage) {
            quote.encode(&mut record);
            out.put(&record);
            out.put(&usage.to_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;
    use crate::test_support::{accounts, engine, eur_ledger, execute_ok, transfer};

    /// A stream of several chunks (12 000 accounts, 1.5 MB) comes out whole and in order, and a
    /// sink error stops it and comes back.
    #[test]
    fn a_multi_chunk_stream_equals_the_bytes_and_stops_at_a_sink_error() {
        let mut engine = engine();
        execute_ok(&mut engine, 1, &[eur_ledger()]);
        for first in (1..=12_000u128).step_by(6_000) {
            execute_ok(&mut engine, first as u64 + 10, &accounts(first..first + 6_000));
        }
        let view = engine.snapshot_view();
        let mut pieces: Vec<usize> = Vec::new();
        let mut streamed = Vec::new();
        view.write_chunks::<()>(&mut |piece| {
            pieces.push(piece.len());
            streamed.extend_from_slice(piece);
            Ok(())
        })
        .expect("no sink error");
        assert!(pieces.len() >= 2 && pieces.iter().all(|n| *n <= SNAPSHOT_CHUNK_BYTES), "{pieces:?}");
        assert_eq!(streamed, engine.snapshot_bytes());
        let mut calls = 0;
        let failed = view.write_chunks(&mut |_| {
            calls += 1;
            Err(std::io::Error::other("disk full"))
        });
        assert_eq!((failed.map_err(|e| e.to_string()), calls), (Err("disk full".to_string()), 1));
    }

    fn engine_with_transfers(amount_base: u128, transfers: u128) -> Engine {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=4));
        commands.extend((1..=transfers).map(|t| transfer(100 + t, 1 + t % 4, 1 + (t + 1) % 4, amount_base + t)));
        execute_ok(&mut engine, 1, &commands);
        engine
    }

    /// A copy brought up to date shares only the engine's full chunks of transfers (none here)
    /// and the snapshot's own copy completes it, equal to a fresh copy; a copy of another
    /// engine's state (not a prefix) is replaced whole.
    #[test]
    fn copies_catch_up_on_appended_transfers_and_replace_foreign_ones() {
        let mut engine = engine_with_transfers(0, 30);
        let mut view = engine.snapshot_view();
        assert_eq!(view.transfers.len(), 30, "a snapshot copies the open chunk");
        let more: Vec<_> = (31..=60u128).map(|t| transfer(100 + t, 1, 2, t)).collect();
        execute_ok(&mut engine, 10, &more);
        engine.snapshot_view_catch_up(&mut view, 8);
        assert_eq!(view.transfers.len(), 0, "no full chunk to share yet: the open chunk's copy is dropped");
        engine.snapshot_view_into(&mut view);
        assert_eq!(view.bytes(), engine.snapshot_bytes());
        let other = engine_with_transfers(1_000, 45);
        other.snapshot_view_into(&mut view);
        assert_eq!(view.bytes(), other.snapshot_bytes(), "a foreign copy is replaced, not extended");
    }
}

#[cfg(test)]
mod hold_order_tests {
    use super::*;
    use crate::result::ResultCode;
    use crate::test_support::{engine_with_accounts, execute_ok, hold};
    use crate::Command;

    /// A stream lists no pending hold: a restore derives them (every hold neither expired nor
    /// captured or released), the same across a rolled-back chain, with their expiries; a stream
    /// that lists one is refused.
    #[test]
    fn pending_holds_are_derived_and_a_stream_listing_one_is_refused() {
        let mut engine = engine_with_accounts(1..=2);
        execute_ok(&mut engine, 2, &[hold(10, 0), hold(11, 5)]);
        // A chain whose second member fails: its hold is made, then undone.
        let mut chained = hold(12, 0);
        if let Command::Hold(t) = &mut chained {
            t.flags |= crate::transfer_flags::LINKED;
        }
        let mut results = Vec::new();
        engine.execute(3, &[chained, hold(0, 0)], &mut results).expect("batch");
        assert_ne!(results[1], ResultCode::Ok);
        execute_ok(&mut engine, 4, &[hold(13, 0)]);
        engine.check_invariants().expect("invariants");
        let bytes = engine.snapshot_bytes();
        let view = engine.snapshot_view();
        assert_eq!((view.len(), view.bytes()), (bytes.len(), bytes.clone()));
        let count = |k: usize| u64::from_le_bytes(bytes[40 + 8 * k..48 + 8 * k].try_into().expect("a count"));
        assert_eq!(count(3), 0, "no pending hold listed");
        let mut restored = Engine::restore(&bytes).expect("restores");
        assert_eq!(restored.snapshot_bytes(), bytes);
        assert_eq!(restored.state_digest(), engine.state_digest());
        for id in [10, 11, 13] {
            assert_eq!(restored.hold(id), engine.hold(id), "hold {id}");
        }
        assert_eq!((restored.holds_expiring(10), restored.next_expiry()), (engine.holds_expiring(10), engine.next_expiry()));
        // A derived pending hold captured before the restored digest was ever settled: its
        // pending term is taken back, as the recomputed digest says.
        let mut captured = Engine::restore(&bytes).expect("restores");
        execute_ok(&mut captured, 10, &[crate::test_support::capture(20, 10, 0)]);
        execute_ok(&mut engine, 10, &[crate::test_support::capture(20, 10, 0)]);
        assert_eq!(captured.state_digest(), captured.recompute_state_digest());
        assert_eq!(captured.state_digest(), engine.state_digest());
        let mut listing = bytes.clone();
        listing[40 + 8 * 3..48 + 8 * 3].copy_from_slice(&1u64.to_le_bytes());
        assert!(Engine::restore(&listing).is_err(), "a stream that lists a pending hold");
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use crate::limits::NS_PER_S;
    use crate::result::ResultCode;
    use crate::test_support::{accounts, capture, engine, eur_ledger, execute_ok, hold, release, transfer};
    use crate::{filter_flags, AccountFilter};

    /// Version 1 to 5 streams (written before failed ids, limit changes, policies, orders or quotes were
    /// kept: fewer counts, no such sections) restore to the same state; the current stream round-trips
    /// failed ids.
    #[test]
    fn older_streams_still_restore_and_the_current_one_keeps_failed_ids() {
        let mut engine = engine();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=4));
        commands.extend((1..=20u128).map(|t| transfer(100 + t, 1 + t % 4, 1 + (t + 1) % 4, t)));
        execute_ok(&mut engine, 1, &commands);
        let current = engine.snapshot_bytes();
        let older = |version: u32| {
            let mut old = current.clone();
            old[8..12].copy_from_slice(&version.to_le_bytes());
            let counts_end = HEADER_SIZE - DIGEST_SIZE;
            if version < 7 {
                old.drain(counts_end..HEADER_SIZE);
            }
            old.drain(HEADER_SIZE_V1 + 8 * (COUNTS_BY_VERSION[version as usize - 1] - 5)..counts_end);
            old
        };
        for version in 2..SNAPSHOT_VERSION {
            let restored = Engine::restore(&older(version)).unwrap_or_else(|e| panic!("a version {version} stream restores: {e}"));
            assert_eq!(restored.snapshot_bytes(), current);
        }
        let v1 = older(1);
        let restored = Engine::restore(&v1).expect("a version 1 stream restores");
        assert_eq!(restored.snapshot_bytes(), current);
        assert_eq!(restored.recompute_state_digest(), engine.recompute_state_digest());

        let mut results = Vec::new();
        engine.execute(10, &[transfer(200, 1, 99, 5)], &mut results).expect("batch");
        assert_eq!(results, vec![ResultCode::CreditAccountNotFound]);
        let bytes = engine.snapshot_bytes();
        let restored = Engine::restore(&bytes).expect("restores");
        assert_eq!(restored.failed_transfers(), engine.failed_transfers());
        assert_eq!(restored.snapshot_bytes(), bytes);
        let mut bad = bytes.clone();
        let code_at = bytes.len() - 8;
        bad[code_at..code_at + 4].copy_from_slice(&(ResultCode::AccountsMustBeDifferent as u32).to_le_bytes());
        assert!(matches!(Engine::restore(&bad), Err(SnapshotError::Invalid(_))), "a code that decides nothing");
        let mut v1_with_failed = bytes;
        v1_with_failed[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(Engine::restore(&v1_with_failed).is_err());
    }

    /// Where a stream's holds section starts, for a header of `header` bytes.
    fn holds_at(stream: &[u8], header: usize) -> usize {
        let count = |k: usize| u64::from_le_bytes(stream[40 + 8 * k..48 + 8 * k].try_into().expect("a count")) as usize;
        header + RECORD_SIZE * (count(0) + count(1) + count(2))
    }

    /// The engine's state (nothing kept in a store) as a version 7 stream: fourteen counts, and
    /// every hold in the holds section with its state, by index.
    fn as_version_7(engine: &Engine, current: &[u8]) -> Vec<u8> {
        let count = |k: usize| u64::from_le_bytes(current[40 + 8 * k..48 + 8 * k].try_into().expect("a count")) as usize;
        let start = holds_at(current, HEADER_SIZE);
        let holds_end = start + HOLD_SIZE * count(3) + EXPIRED_SIZE * count(14);
        let mut old = current[..start].to_vec();
        old[8..12].copy_from_slice(&7u32.to_le_bytes());
        let holds: Vec<_> = engine.all_transfers().enumerate().filter(|(_, t)| t.flags & tf::PENDING != 0).collect();
        old[64..72].copy_from_slice(&(holds.len() as u64).to_le_bytes());
        old.drain(40 + 8 * 14..40 + 8 * 19);
        for (index, t) in holds {
            let hold = engine.hold(t.id).expect("a hold");
            old.extend_from_slice(&(index as u32).to_le_bytes());
            old.extend_from_slice(&[hold.status as u8, 0, 0, 0]);
            old.extend_from_slice(&hold.expires_at.to_le_bytes());
            old.extend_from_slice(&hold.resolved_at.to_le_bytes());
        }
        old.extend_from_slice(&current[holds_end..]);
        old
    }

    /// Captured and released holds leave the engine's kept state and the stream (derived from
    /// their transfers), expired ones are listed in the order they expired, and each answers
    /// as before; a version 7 stream, which lists every hold's state, restores to the same
    /// state and is refused where a stated state is not what the transfers give.
    #[test]
    fn finished_holds_are_derived_and_a_version_7_stream_with_every_state_restores() {
        let mut engine = engine();
        let mut setup = vec![eur_ledger()];
        setup.extend(accounts(1..=2));
        execute_ok(&mut engine, 1, &setup);
        execute_ok(&mut engine, 2, &[hold(10, 1), hold(11, 1), hold(12, 0), hold(13, 100), hold(14, 0), hold(15, 2)]);
        execute_ok(&mut engine, 3, &[capture(21, 11, 0), release(22, 12)]);
        execute_ok(&mut engine, 4 * NS_PER_S, &[hold(16, 1)]);
        execute_ok(&mut engine, 6 * NS_PER_S, &[]);
        let status = |engine: &Engine, id| engine.hold(id).expect("a hold").status;
        let states: Vec<_> = (10..=16).map(|id| status(&engine, id)).collect();
        use HoldStatus::{Expired, Pending, Posted, Voided};
        assert_eq!(states, [Expired, Posted, Voided, Pending, Pending, Expired, Expired]);
        assert_eq!((engine.holds.len(), engine.finished.len()), (2, 5));
        assert_eq!(engine.expired.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 5, 8], "by expiry time, then index");
        let mut results = Vec::new();
        engine.execute(7 * NS_PER_S, &[capture(30, 10, 0), capture(31, 11, 0), release(32, 12)], &mut results).expect("batch");
        assert_eq!(
            results,
            [ResultCode::PendingTransferExpired, ResultCode::PendingTransferAlreadyPosted, ResultCode::PendingTransferAlreadyVoided]
        );
        assert_eq!(engine.hold(11).map(|h| (h.resolved_at, h.resolved_by)), Some((engine.transfer(21).expect("stored").timestamp, 6)));
        engine.check_invariants().expect("invariants");

        let current = engine.snapshot_bytes();
        assert_eq!(current.len(), engine.snapshot_len());
        let mut restored = Engine::restore(&current).expect("restores");
        assert_eq!(restored.snapshot_bytes(), current);
        assert_eq!(restored.state_digest(), engine.state_digest());
        let v7 = as_version_7(&engine, &current);
        assert_eq!(v7.len(), current.len() - 40 - EXPIRED_SIZE * 3 + HOLD_SIZE * 7);
        let mut restored = Engine::restore(&v7).unwrap_or_else(|e| panic!("a version 7 stream restores: {e}"));
        assert_eq!(restored.snapshot_bytes(), current);
        assert_eq!(restored.state_digest(), engine.state_digest());

        // Hold 11 (index 1) captured one nanosecond later than its capture was made.
        let mut wrong = v7.clone();
        let resolved_at = holds_at(&v7, HEADER_SIZE - 40) + HOLD_SIZE + 16;
        let time = u64::from_le_bytes(wrong[resolved_at..resolved_at + 8].try_into().expect("a time"));
        wrong[resolved_at..resolved_at + 8].copy_from_slice(&(time + 1).to_le_bytes());
        let error = Engine::restore(&wrong).expect_err("a stated capture time that is not the capture's");
        assert!(error.to_string().contains("not the one transfer"), "{error}");
        // A stream naming a pending hold (index 3) as expired.
        let mut wrong = current.clone();
        let expired_at = holds_at(&current, HEADER_SIZE);
        wrong[expired_at..expired_at + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(Engine::restore(&wrong).is_err(), "a pending hold stated as expired");
        // Expired holds out of the order they expired in.
        let mut wrong = current.clone();
        let (first, second) = (expired_at, expired_at + EXPIRED_SIZE);
        let swapped = [wrong[second..second + EXPIRED_SIZE].to_vec(), wrong[first..first + EXPIRED_SIZE].to_vec()].concat();
        wrong[first..first + 2 * EXPIRED_SIZE].copy_from_slice(&swapped);
        let error = Engine::restore(&wrong).expect_err("expired holds swapped");
        assert!(error.to_string().contains("out of order"), "{error}");
        assert!(Engine::restore(&wrong).is_err(), "a pending hold stated as expired");
    }

    /// Full chunks kept by a test, as a node's history store keeps them: transfers' and
    /// balance entries'.
    #[derive(Debug, Default)]
    struct Kept(
        std::sync::Mutex<Vec<Vec<Transfer>>>,
        std::sync::Mutex<Vec<Vec<BalanceEntry>>>,
        /// The chunks' restore images, if kept.
        std::sync::Mutex<Vec<crate::ChunkImage>>,
        /// Chunks of records read back whole.
        std::sync::atomic::AtomicUsize,
        std::sync::Mutex<Vec<Vec<FailedTransfer>>>,
        std::sync::Mutex<Vec<Vec<ExpiredHold>>>,
        /// Records of transfers read back one by one.
        std::sync::atomic::AtomicUsize,
        /// The chunks' lineage images, if kept.
        std::sync::Mutex<Vec<crate::ChunkLineage>>,
        /// The expired holds' chunks' images, if kept.
        std::sync::Mutex<Vec<Vec<(u128, u64)>>>,
    );

    impl Kept {
        fn cloned(&self) -> Kept {
            fn lock<T: Clone>(m: &std::sync::Mutex<T>) -> std::sync::Mutex<T> {
                std::sync::Mutex::new(m.lock().expect("lock").clone())
            }
            Kept(
                lock(&self.0),
                lock(&self.1),
                lock(&self.2),
                Default::default(),
                lock(&self.4),
                lock(&self.5),
                Default::default(),
                lock(&self.7),
                lock(&self.8),
            )
        }
    }

    /// Records `indices` of `chunks` (all of one length), or the first not kept.
    fn kept_records<T: Copy>(chunks: &std::sync::Mutex<Vec<Vec<T>>>, indices: &[u32], out: &mut Vec<T>) -> Result<(), String> {
        let chunks = chunks.lock().expect("lock");
        let len = chunks.first().map_or(1, Vec::len);
        for &i in indices {
            out.push(*chunks.get(i as usize / len).map(|c| &c[i as usize % len]).ok_or_else(|| format!("record {i} not kept"))?);
        }
        Ok(())
    }

    /// Chunk `k` of `chunks` into `out`, or that it is not kept.
    fn kept_chunk<T: Copy>(chunks: &std::sync::Mutex<Vec<Vec<T>>>, k: usize, out: &mut Vec<T>) -> Result<(), String> {
        out.clear();
        out.extend_from_slice(chunks.lock().expect("lock").get(k).ok_or_else(|| format!("chunk {k} not kept"))?);
        Ok(())
    }

    impl History for Kept {
        fn read_expired(&self, places: &[u32], out: &mut Vec<ExpiredHold>) -> Result<(), String> {
            kept_records(&self.5, places, out)
        }
        fn read_expired_chunk(&self, k: usize, out: &mut Vec<ExpiredHold>) -> Result<(), String> {
            kept_chunk(&self.5, k, out)
        }
        fn read_failed(&self, indices: &[u32], out: &mut Vec<FailedTransfer>) -> Result<(), String> {
            kept_records(&self.4, indices, out)
        }
        fn read_failed_chunk(&self, k: usize, out: &mut Vec<FailedTransfer>) -> Result<(), String> {
            kept_chunk(&self.4, k, out)
        }
        fn read_image(&self, k: usize) -> Result<Option<crate::ChunkImage>, String> {
            Ok(self.2.lock().expect("lock").get(k).cloned())
        }
        fn lineage_chunks(&self) -> usize {
            self.7.lock().expect("lock").len()
        }
        fn read_lineage(&self, k: usize) -> Result<Option<crate::ChunkLineage>, String> {
            Ok(self.7.lock().expect("lock").get(k).cloned())
        }
        fn expired_images_chunks(&self) -> usize {
            self.8.lock().expect("lock").len()
        }
        fn read_expired_image(&self, k: usize) -> Result<Option<Vec<(u128, u64)>>, String> {
            Ok(self.8.lock().expect("lock").get(k).cloned())
        }
        fn read_balances(&self, indices: &[u32], out: &mut Vec<BalanceEntry>) -> Result<(), String> {
            kept_records(&self.1, indices, out)
        }
        fn read_balance_chunk(&self, k: usize, out: &mut Vec<BalanceEntry>) -> Result<(), String> {
            kept_chunk(&self.1, k, out).map_err(|e| format!("balance {e}"))
        }
        fn read(&self, index: u32) -> Result<Transfer, String> {
            self.6.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let chunks = self.0.lock().expect("lock");
            let len = chunks.first().map_or(1, Vec::len);
            chunks.get(index as usize / len).map(|c| c[index as usize % len]).ok_or_else(|| format!("index {index} not kept"))
        }
        fn read_chunk(&self, k: usize, out: &mut Vec<Transfer>) -> Result<(), String> {
            self.3.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.clear();
            out.extend_from_slice(self.0.lock().expect("lock").get(k).ok_or_else(|| format!("chunk {k} not kept"))?);
            Ok(())
        }
    }

    /// An engine of 8-transfer chunks, `transfers` transfers (every third a hold, some captured
    /// later) between four accounts, two with balance history, with every full chunk of
    /// transfers and balance entries but the newest kept in `kept` and evicted.
    fn evicted_engine(kept: &Arc<Kept>, transfers: u128) -> Engine {
        evicted_engine_from(kept, transfers, 0)
    }

    /// Keeps the full chunks `kept` lacks (up to `sealed`, each from `chunk`) as a store would;
    /// returns how many it keeps, below which the engine may evict.
    fn store_sealed<T>(kept: &std::sync::Mutex<Vec<Vec<T>>>, sealed: usize, chunk: impl Fn(usize) -> Option<Vec<T>>) -> usize {
        let mut kept = kept.lock().expect("lock");
        for k in kept.len()..sealed {
            kept.push(chunk(k).expect("a full chunk not yet stored is held"));
        }
        kept.len()
    }

    /// As [`evicted_engine`], the holds and captures only from transfer `holds_from` on.
    fn evicted_engine_from(kept: &Arc<Kept>, transfers: u128, holds_from: u128) -> Engine {
        let mut engine = engine();
        engine.set_transfer_chunk_bits(3);
        engine.set_history(Arc::clone(kept) as Arc<dyn History>);
        engine.keep_image_notes();
        let mut commands = vec![eur_ledger()];
        commands.extend(accounts(1..=4));
        for command in &mut commands[2..4] {
            if let crate::Command::CreateAccount(a) = command {
                a.flags |= crate::account_flags::HISTORY;
            }
        }
        execute_ok(&mut engine, 1, &commands);
        for t in 1..=transfers {
            let mut command = transfer(100 + t, 1 + t % 4, 1 + (t + 1) % 4, t);
            if let (crate::Command::Transfer(x), 0, true) = (&mut command, t % 3, t >= holds_from) {
                x.flags |= tf::PENDING;
                // The holds never captured expire at the next transfer (a second later).
                x.timeout = u32::from(t % 6 == 3);
            }
            if let (crate::Command::Transfer(x), 2, true) = (&mut command, t % 6, t > 6 && t - 2 >= holds_from) {
                let held = t - 2;
                (x.debit_account_id, x.credit_account_id) = (1 + held % 4, 1 + (held + 1) % 4);
                (x.flags, x.pending_id, x.amount) = (tf::POST_PENDING, 100 + held, held);
            }
            let now = t as u64 * crate::limits::NS_PER_S;
            execute_ok(&mut engine, now, &[command]);
            // Every transfer has a declined twin: a failed id remembered for good.
            let mut results = Vec::new();
            engine.execute(now, &[transfer(50_000 + t, 1, 99, 1)], &mut results).expect("batch");
            assert_eq!(results, [crate::ResultCode::CreditAccountNotFound]);
            store_and_evict(&mut engine, kept);
        }
        engine
    }

    /// Stores the full chunks of transfers (with their images), failed ids, expired holds and
    /// balance entries that `kept` lacks, and evicts them, as a node does between batches.
    fn store_and_evict(engine: &mut Engine, kept: &Kept) {
        let stored = store_sealed(&kept.4, engine.sealed_failed_chunks(), |k| engine.failed_chunk(k).map(|c| c.to_vec()));
        engine.evict_failed_chunks_below(stored);
        let stored = store_sealed(&kept.5, engine.sealed_expired_chunks(), |k| engine.expired_chunk(k).map(|c| c.to_vec()));
        // Each stored chunk of expired holds' image, while the engine notes them.
        let mut images = kept.8.lock().expect("lock");
        while let Ok(image) = crate::expired_image_of(engine.expired_notes_of_chunk(images.len()), engine.expired.chunk_len()) {
            images.push(image);
        }
        engine.drop_expired_notes_below(images.len());
        drop(images);
        engine.evict_expired_chunks_below(stored);
        let sealed = engine.sealed_transfer_chunks();
        let mut chunks = kept.0.lock().expect("lock");
        for k in chunks.len()..sealed {
            let chunk = engine.transfer_chunk(k).expect("held").to_vec();
            kept.2.lock().expect("lock").push(crate::ChunkImage::of(&chunk, engine.transfer_links_of_chunk(k)));
            let first = (k * chunk.len()) as u32;
            kept.7.lock().expect("lock").push(crate::ChunkLineage::of(&chunk, first, engine.resolutions_of_chunk(k)));
            engine.drop_resolutions_below(k + 1);
            chunks.push(chunk);
        }
        drop(chunks);
        engine.evict_chunks_below(sealed);
        let stored = store_sealed(&kept.1, engine.sealed_balance_chunks(), |k| engine.balance_chunk(k).map(|c| c.to_vec()));
        engine.evict_balance_chunks_below(stored);
    }

    /// A restore keeps each reversal under the id its record names: the originals, long evicted,
    /// are neither looked up nor read back (one read each, on disk, made a restart after many
    /// refunds as slow as that many random reads), and the lineage and what is left to reverse
    /// come back the same.
    #[test]
    fn a_restore_reads_no_original_of_a_reversal() {
        let kept = Arc::new(Kept::default());
        let mut engine = engine();
        engine.set_transfer_chunk_bits(3);
        engine.set_history(Arc::clone(&kept) as Arc<dyn History>);
        let mut setup = vec![eur_ledger()];
        setup.extend(accounts(1..=4));
        execute_ok(&mut engine, 1, &setup);
        let mut now = 2;
        for t in 1..=40u128 {
            execute_ok(&mut engine, now, &[transfer(100 + t, 1 + t % 4, 1 + (t + 1) % 4, 10)]);
            store_and_evict(&mut engine, &kept);
            now += 1;
        }
        // Each original refunded in part, twice for every third, once all of them are evicted.
        for t in 1..=40u128 {
            for k in 0..1 + u128::from(t % 3 == 0) {
                let refund = Transfer { id: 1_000 + 100 * k + t, pending_id: 100 + t, amount: 3, code: 7, ..Transfer::default() };
                // The prefetch reads the original back, as the node does before a batch.
                engine.prefetch_cold(&[crate::Command::Reverse(refund)]).expect("prefetch");
                execute_ok(&mut engine, now, &[crate::Command::Reverse(refund)]);
                store_and_evict(&mut engine, &kept);
                now += 1;
            }
        }
        assert!(engine.evicted_chunks() >= 10, "{} chunks evicted", engine.evicted_chunks());
        let mut view = SnapshotView::default();
        engine.slim_snapshot_view_into(&mut view);
        kept.6.store(0, std::sync::atomic::Ordering::Relaxed);
        kept.3.store(0, std::sync::atomic::Ordering::Relaxed);
        let restored = Engine::restore_from(&view.bytes(), 3, Some(Arc::clone(&kept) as Arc<dyn History>)).expect("restores");
        assert_eq!(kept.6.load(std::sync::atomic::Ordering::Relaxed), 0, "no record read back one by one");
        // A chunk of eight refunds lists more than its lineage image's table holds: its records are read.
        let listed = kept.7.lock().expect("lock").iter().take(engine.evicted_chunks()).filter(|l| !l.needs_records).count();
        assert_eq!(kept.3.load(std::sync::atomic::Ordering::Relaxed), engine.evicted_chunks() - listed, "chunks read whole");
        assert!(listed >= 5 && listed < engine.evicted_chunks(), "{listed} chunks from their lineage images alone");
        assert_eq!(restored.snapshot_bytes(), engine.snapshot_bytes());
        restored.check_invariants().expect("invariants");
        for t in 1..=40u128 {
            let lineage = restored.lineage(100 + t).expect("stored");
            assert_eq!(Some(lineage.clone()), engine.lineage(100 + t));
            assert_eq!(
                (lineage.reversals_total, lineage.reversed, lineage.reversible),
                (1 + u32::from(t % 3 == 0), 3 * (1 + u128::from(t % 3 == 0)), 10 - 3 * (1 + u128::from(t % 3 == 0)))
            );
            assert_eq!(restored.lineage(1_000 + t).and_then(|l| l.reverses).map(|o| o.id), Some(100 + t));
        }
    }

    /// An engine of 8-transfer chunks: a hold each step, every third expiring at the next, the
    /// others captured or released three steps later (every 17th left pending), a plain
    /// transfer beside it, a capture in a chain that fails, and one refund; every full chunk but
    /// the newest stored with its images (and the expired holds' with their images) and
    /// evicted.
    fn engine_of_holds(kept: &Arc<Kept>) -> Engine {
        use crate::test_support::{capture, hold, release};
        let mut engine = engine();
        engine.set_transfer_chunk_bits(3);
        engine.set_history(Arc::clone(kept) as Arc<dyn History>);
        engine.keep_image_notes();
        let mut setup = vec![eur_ledger()];
        setup.extend(accounts(1..=4));
        execute_ok(&mut engine, 1, &setup);
        for step in 0..80u128 {
            let now = (2 + step as u64) * crate::limits::NS_PER_S;
            // Every third hold expires at the next step.
            let mut batch = vec![hold(1_000 + step, u32::from(step % 3 == 2)), transfer(3_000 + step, 3, 4, 5)];
            if step == 20 {
                // Taken back with its chain: its resolution too.
                let failing = [capture(5_000, 1_000 + 17, tf::LINKED), transfer(5_001, 1, 99, 1)];
                let mut results = Vec::new();
                engine.execute(now, &failing, &mut results).expect("batch");
                assert_ne!(results[0], crate::ResultCode::Ok);
            }
            let held = step.wrapping_sub(3);
            if step >= 3 && held % 17 != 16 && held % 3 != 2 {
                batch.push(if held % 5 == 0 { release(4_000 + step, 1_000 + held) } else { capture(4_000 + step, 1_000 + held, 0) });
            }
            if step == 30 {
                batch.push(crate::Command::Reverse(Transfer { id: 6_000, pending_id: 3_002, amount: 2, code: 7, ..Transfer::default() }));
            }
            engine.prefetch_cold(&batch).expect("prefetch");
            execute_ok(&mut engine, now, &batch);
            store_and_evict(&mut engine, kept);
        }
        engine
    }

    /// With lineage images kept, a restore reads the records of no chunk of holds and captures
    /// but those with a reversal, an expired hold or a hold still open (read to pin it), and
    /// rebuilds the same state; a damaged lineage image is refused, and without one for every
    /// chunk the records are read as before.
    #[test]
    fn a_slim_stream_restores_hold_states_from_lineage_images() {
        let kept = Arc::new(Kept::default());
        let mut engine = engine_of_holds(&kept);
        let evicted = engine.evicted_chunks();
        assert!(evicted >= 15, "{evicted} chunks evicted");
        let mut view = SnapshotView::default();
        engine.slim_snapshot_view_into(&mut view);
        let slim = view.bytes();
        let full = engine.snapshot_bytes();
        let restore = |history: &Arc<Kept>| Engine::restore_from(&slim, 3, Some(Arc::clone(history) as Arc<dyn History>));
        // The chunks that must be read: one its lineage image cannot stand for, one with a hold
        // still open once the stored chunks are restored, or expired in a chunk of expired holds
        // the store holds no image of (the newest, kept in memory).
        let (lineages, chunks) = (kept.7.lock().expect("lock").clone(), kept.0.lock().expect("lock").clone());
        let (end, summed) = ((evicted * 8) as u32, (engine.evicted_expired_chunks() * 8) as u32);
        assert!(summed >= 16, "{summed} expired holds in stored chunks");
        let read = (0..evicted)
            .filter(|&k| {
                let read_back = |(i, t): (usize, &Transfer)| {
                    let index = (k * 8 + i) as u32;
                    let by = engine.finished_by(index);
                    let unsummed = by.is_some_and(|by| by & FAILED_TAG != 0 && by & !FAILED_TAG >= summed);
                    t.flags & tf::PENDING != 0 && (by.is_none_or(|by| by >= end && by & FAILED_TAG == 0) || unsummed)
                };
                lineages[k].needs_records || chunks[k].iter().enumerate().any(read_back)
            })
            .count();
        assert!(read < evicted / 2, "{read} of {evicted} chunks to read");
        kept.3.store(0, std::sync::atomic::Ordering::Relaxed);
        kept.6.store(0, std::sync::atomic::Ordering::Relaxed);
        let restored = restore(&kept).expect("restores");
        // Every chunk holds a hold: none is plain.
        assert_eq!(restored.chunks_restored_from_lineage(), evicted);
        assert_eq!(restored.expired_chunks_restored_from_images(), engine.evicted_expired_chunks());
        assert_eq!(kept.3.load(std::sync::atomic::Ordering::Relaxed), read, "chunks read whole");
        assert_eq!(kept.6.load(std::sync::atomic::Ordering::Relaxed), 0, "no record read one by one");
        assert_eq!(restored.snapshot_bytes(), full);
        restored.check_invariants().expect("invariants");
        for id in (1_000..1_080).chain(4_003..4_080).chain([6_000]) {
            assert_eq!(restored.lineage(id), engine.lineage(id), "transfer {id}");
        }
        // A hold left pending is captured after the restore as before it.
        let mut again = restored;
        for e in [&mut again, &mut engine] {
            let late = [crate::test_support::capture(8_000, 1_000 + 16, 0)];
            e.prefetch_cold(&late).expect("prefetch");
            execute_ok(e, 100 * crate::limits::NS_PER_S, &late);
        }
        assert_eq!(again.state_digest(), engine.state_digest());
        // A lineage image naming a hold that is not open, or summing other terms, is refused.
        let captures = lineages
            .iter()
            .position(|l| !l.needs_records && l.named.iter().any(|&n| n < crate::state::NAMED_HOLD))
            .expect("a chunk of captures");
        let named = Arc::new(kept.cloned());
        let at = named.7.lock().expect("lock")[captures].named.iter().position(|&n| n < crate::state::NAMED_HOLD).expect("a capture");
        named.7.lock().expect("lock")[captures].named[at] = 3;
        assert!(matches!(restore(&named), Err(SnapshotError::History(why)) if why.contains("not an open hold")));
        let summed = Arc::new(kept.cloned());
        summed.7.lock().expect("lock")[captures].finished_sum ^= 1;
        assert!(matches!(restore(&summed), Err(SnapshotError::History(why)) if why.contains("digest")));
        // An expired holds' image naming another hold or expiry, or an expired hold's time
        // changed in its store, is refused; without the images, the chunks with expired holds
        // are read.
        for damage in 0..3 {
            let expired = Arc::new(kept.cloned());
            match damage {
                0 => expired.8.lock().expect("lock")[0][3].0 += 1,
                1 => expired.8.lock().expect("lock")[0][3].1 -= 1,
                _ => expired.5.lock().expect("lock")[0][3].resolved_at += 1,
            }
            assert!(matches!(restore(&expired), Err(SnapshotError::History(why)) if why.contains("digest")), "damage {damage}");
        }
        let unsummed = Arc::new(kept.cloned());
        unsummed.8.lock().expect("lock").clear();
        unsummed.3.store(0, std::sync::atomic::Ordering::Relaxed);
        let restored = restore(&unsummed).expect("restores without the images");
        assert_eq!((restored.expired_chunks_restored_from_images(), restored.snapshot_bytes()), (0, full.clone()));
        assert!(unsummed.3.load(std::sync::atomic::Ordering::Relaxed) > read, "more chunks read");
        // Without a lineage image for the last chunk (a store from before them): from the records.
        let short = Arc::new(kept.cloned());
        short.7.lock().expect("lock").truncate(evicted - 1);
        let restored = restore(&short).expect("restores from records");
        assert_eq!((restored.chunks_restored_from_lineage(), restored.snapshot_bytes()), (0, full));
    }

    /// With the chunks' restore images kept, a restore reads no record of a chunk without holds,
    /// captures or reversals, and rebuilds the same state, accounts' lists included; a damaged
    /// image is refused, and without images every record is read as before.
    #[test]
    fn a_slim_stream_restores_plain_chunks_from_their_images_alone() {
        let kept = Arc::new(Kept::default());
        let mut engine = evicted_engine_from(&kept, 120, 70);
        // Images alone: the chunks with holds are read whole.
        kept.7.lock().expect("lock").clear();
        let images = kept.2.lock().expect("lock").clone();
        let plain = images.iter().filter(|i| i.plain).count();
        assert!(plain >= 7 && plain < images.len(), "{plain} plain of {}", images.len());
        let mut view = SnapshotView::default();
        engine.slim_snapshot_view_into(&mut view);
        let slim = view.bytes();
        let full = engine.snapshot_bytes();
        let restore = |history: &Arc<Kept>| Engine::restore_from(&slim, 3, Some(Arc::clone(history) as Arc<dyn History>));
        kept.3.store(0, std::sync::atomic::Ordering::Relaxed);
        let restored = restore(&kept).expect("restores");
        assert_eq!(restored.chunks_restored_from_images(), engine.evicted_chunks());
        assert_eq!(kept.3.load(std::sync::atomic::Ordering::Relaxed), engine.evicted_chunks() - plain, "only chunks with holds read");
        assert_eq!(restored.snapshot_bytes(), full);
        restored.check_invariants().expect("invariants");
        for id in 1..=5 {
            for flags in
                [filter_flags::DEBITS | filter_flags::CREDITS, filter_flags::DEBITS | filter_flags::REVERSED, filter_flags::CREDITS]
            {
                let filter = AccountFilter { account_id: id, limit: 1000, flags, ..Default::default() };
                assert_eq!(restored.get_account_transfers(&filter), engine.get_account_transfers(&filter), "account {id}");
            }
        }
        // New transfers link onto the lists the stream closed.
        let mut again = restored;
        execute_ok(&mut again, 10_000, &[transfer(9_001, 1, 2, 5)]);
        execute_ok(&mut engine, 10_000, &[transfer(9_001, 1, 2, 5)]);
        let filter = AccountFilter { account_id: 2, limit: 1000, flags: filter_flags::CREDITS, ..Default::default() };
        assert_eq!(again.get_account_transfers(&filter), engine.get_account_transfers(&filter));
        assert_eq!(again.state_digest(), engine.state_digest());
        // Without images (a store from before them): every record read, the same state.
        let without = Arc::new(kept.cloned());
        without.2.lock().expect("lock").clear();
        let restored = restore(&without).expect("restores from records");
        assert_eq!((restored.chunks_restored_from_images(), restored.snapshot_bytes()), (0, full.clone()));
        // An image linking forward, or summing other records, is refused.
        let forward = Arc::new(kept.cloned());
        forward.2.lock().expect("lock")[1].links[3][0] = 8 + 5;
        assert!(matches!(restore(&forward), Err(SnapshotError::History(why)) if why.contains("later")));
        let other = Arc::new(kept.cloned());
        other.2.lock().expect("lock")[2].sum ^= 1;
        assert!(matches!(restore(&other), Err(SnapshotError::History(why)) if why.contains("digest")));
    }

    /// A slim stream leaves the evicted chunks out, and restores from the history to the same
    /// state (its full stream equal) with as much evicted; without a history, or with another
    /// engine's, it is refused with what is wrong.
    #[test]
    fn a_slim_stream_restores_from_its_history_and_refuses_another() {
        let kept = Arc::new(Kept::default());
        let mut engine = evicted_engine(&kept, 130);
        assert!(engine.evicted_chunks() >= 5, "{} evicted", engine.evicted_chunks());
        let mut view = SnapshotView::default();
        engine.slim_snapshot_view_into(&mut view);
        let slim = view.bytes();
        let full = engine.snapshot_bytes();
        assert!(engine.evicted_balance_chunks() >= 5, "{} balance chunks evicted", engine.evicted_balance_chunks());
        assert!(engine.evicted_failed_chunks() >= 5, "{} failed chunks evicted", engine.evicted_failed_chunks());
        assert!(engine.evicted_expired_chunks() >= 1, "{} expired chunks evicted", engine.evicted_expired_chunks());
        let left_out = RECORD_SIZE * engine.evicted_chunks()
            + BALANCE_ENTRY_SIZE * engine.evicted_balance_chunks()
            + FAILED_SIZE * engine.evicted_failed_chunks()
            + EXPIRED_SIZE * engine.evicted_expired_chunks();
        // The slim stream closes each account's list instead (4 bytes an account).
        assert_eq!(full.len() - slim.len(), 8 * left_out - 4 * engine.accounts().len());
        let restored = Engine::restore_from(&slim, 3, Some(Arc::clone(&kept) as Arc<dyn History>)).expect("restores");
        assert_eq!(restored.evicted_chunks(), engine.evicted_chunks());
        assert_eq!(restored.evicted_balance_chunks(), engine.evicted_balance_chunks());
        assert_eq!(restored.evicted_failed_chunks(), engine.evicted_failed_chunks());
        assert_eq!(restored.evicted_expired_chunks(), engine.evicted_expired_chunks());
        // An evicted expired hold's state reads through; its capture, once prefetched, is refused.
        assert_eq!(restored.hold(100 + 3).map(|h| h.status), Some(HoldStatus::Expired));
        let mut late = Engine::restore_from(&slim, 3, Some(Arc::clone(&kept) as Arc<dyn History>)).expect("restores");
        let capture =
            crate::Command::Transfer(Transfer { id: 70_000, pending_id: 100 + 3, flags: tf::POST_PENDING, ..Transfer::default() });
        assert!(late.prefetch_cold(std::slice::from_ref(&capture)).expect("prefetch") >= 2, "the hold and its expiry read ahead");
        let mut results = Vec::new();
        late.execute(1 << 50, &[capture], &mut results).expect("batch");
        assert_eq!(results, [crate::ResultCode::PendingTransferExpired]);
        // A declined id, evicted, still decides: found through the history, and its re-sent
        // command answered as before once prefetched.
        assert_eq!(restored.failed_transfer(50_001).map(|f| f.code), Some(crate::ResultCode::CreditAccountNotFound));
        let mut again = Engine::restore_from(&slim, 3, Some(Arc::clone(&kept) as Arc<dyn History>)).expect("restores");
        let resent = [transfer(50_001, 1, 2, 1)];
        assert_eq!(again.prefetch_cold(&resent), Ok(1), "the failed id's record read ahead");
        let mut results = Vec::new();
        again.execute(100_000, &resent, &mut results).expect("batch");
        assert_eq!(results, [crate::ResultCode::IdAlreadyFailed]);
        assert_eq!(restored.snapshot_bytes(), full);
        restored.check_invariants().expect("invariants");
        // Balance history reads through: every entry of both accounts, evicted ones too.
        for account in [2, 3] {
            let filter = AccountFilter {
                account_id: account,
                limit: 1000,
                flags: filter_flags::DEBITS | filter_flags::CREDITS,
                ..Default::default()
            };
            let entries = restored.get_account_balances(&filter);
            assert_eq!(entries, engine.get_account_balances(&filter));
            assert!(entries.len() > 20, "{} entries", entries.len());
            assert_eq!(restored.take_history_failure(), None);
        }
        assert!(matches!(Engine::restore_from(&slim, 3, None), Err(SnapshotError::History(_))));
        let other = Arc::new(Kept::default());
        evicted_engine(&other, 131);
        other.0.lock().expect("lock")[1][2].amount += 1;
        // (Caught against the chunk's restore image, whose digest sum it no longer has, where the
        // chunk's records are read: without lineage images. A chunk restored from its images
        // alone is not read, so a record changed under its page sums goes unseen there.)
        other.7.lock().expect("lock").clear();
        let refused = Engine::restore_from(&slim, 3, Some(other as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("restore image")), "{refused:?}");
        assert!(Engine::restore_from(&slim, 3, Some(Arc::new(Kept::default()) as Arc<dyn History>)).is_err(), "an empty history");
        // A stored record carrying an earlier one's id: not looked up while restoring, so refused
        // by the digest.
        let repeated = Arc::new(kept.cloned());
        let mut chunks = repeated.0.lock().expect("lock");
        chunks[1][2].id = chunks[0][0].id;
        drop(chunks);
        repeated.7.lock().expect("lock").clear();
        let refused = Engine::restore_from(&slim, 3, Some(Arc::clone(&repeated) as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("restore image")), "{refused:?}");
        // Without images (records read, nothing to compare them with but the digest) as well.
        repeated.2.lock().expect("lock").clear();
        let refused = Engine::restore_from(&slim, 3, Some(repeated as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("digest")), "{refused:?}");
        // A stored failed id changed.
        let changed = Arc::new(kept.cloned());
        changed.4.lock().expect("lock")[1][0].timestamp -= 1;
        let refused = Engine::restore_from(&slim, 3, Some(changed as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("digest")), "{refused:?}");
        // A stored balance entry changed, or naming an account that does not exist.
        let changed = Arc::new(kept.cloned());
        changed.1.lock().expect("lock")[2][3].balances.credits_posted += 1;
        let refused = Engine::restore_from(&slim, 3, Some(changed as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("digest")), "{refused:?}");
        let unknown = Arc::new(kept.cloned());
        unknown.1.lock().expect("lock")[1][0].account = 99;
        let refused = Engine::restore_from(&slim, 3, Some(unknown as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::Invalid(why)) if why.contains("account index 99")), "{refused:?}");
        // Balance chunks missing from the store.
        let short = Arc::new(kept.cloned());
        short.1.lock().expect("lock").truncate(2);
        let refused = Engine::restore_from(&slim, 3, Some(short as Arc<dyn History>));
        assert!(matches!(&refused, Err(SnapshotError::History(why)) if why.contains("balance chunk 2")), "{refused:?}");
    }
}
