//! Holds: expiry in due order at the start of a batch, and capture or release of a pending
//! transfer (in full, in part, or the rest released).
//!
//! Only pending holds are kept as state (`holds`, hot). A finished hold's state follows from
//! the record that finished it, so the engine keeps only a pointer to that: `finished` maps the
//! hold's transfer index to the capture or release's (4 to 12 bytes, where a kept state and its
//! digest term took about 70; `finished.rs`), or to its place in `expired` (index and timestamp)
//! for an expiry, which has no record of its own. Snapshots list pending and expired holds; a restore
//! derives the captured and released ones from the transfers.

use super::transfers::check_states;
use super::*;
use crate::index_table::IndexTable;

/// The pending holds, by transfer index. A pending hold's state is its expiry alone (status
/// pending, not resolved), so only that is kept: 16 bytes an entry where the whole state took 32.
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingHolds(IndexTable<u64>);

impl PendingHolds {
    fn state(expires_at: u64) -> Hold {
        Hold { status: HoldStatus::Pending, expires_at, resolved_at: 0, resolved_by: NONE }
    }

    /// The pending hold at transfer `index`.
    #[inline]
    pub(crate) fn get(&self, index: &u32) -> Option<Hold> {
        self.0.get(*index).map(PendingHolds::state)
    }

    /// Keeps `hold`, which is pending (asserted), at transfer `index`.
    pub(crate) fn insert(&mut self, index: u32, hold: Hold) {
        assert!(hold == Hold { resolved_by: NONE, ..PendingHolds::state(hold.expires_at) }, "only pending holds are kept");
        self.0.insert(index, hold.expires_at);
    }

    /// Takes the pending hold at transfer `index` out.
    pub(crate) fn remove(&mut self, index: &u32) -> Option<Hold> {
        self.0.remove(*index).map(PendingHolds::state)
    }

    #[inline]
    pub(crate) fn contains_key(&self, index: &u32) -> bool {
        self.0.contains_key(*index)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every pending hold with its transfer index, in the table's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, Hold)> + '_ {
        self.0.iter().map(|(index, expires_at)| (index, PendingHolds::state(expires_at)))
    }
}

/// When hold `t` expires: its timestamp plus its timeout, or 0 (never). A stored hold was
/// checked not to overflow (a restore checks it too).
pub(crate) fn hold_expiry(t: &Transfer) -> u64 {
    if t.timeout == 0 {
        0
    } else {
        t.timestamp.saturating_add(u64::from(t.timeout) * NS_PER_S)
    }
}

impl Engine {
    /// Keeps the hold at transfer `index` as pending, expiring at `expires_at` (0: never): in
    /// the pending holds and, if it expires, in the expiry queue.
    pub(crate) fn keep_pending(&mut self, index: u32, expires_at: u64) {
        self.holds.insert(index, Hold { status: HoldStatus::Pending, expires_at, resolved_at: 0, resolved_by: NONE });
        if expires_at != 0 {
            self.expiries.insert((expires_at, index));
        }
    }

    pub(super) fn expire_holds(&mut self, clock: u64, cursor: &mut u64) -> u32 {
        let mut expired = 0;
        while let Some(&(expires_at, transfer)) = self.expiries.first() {
            if expires_at > clock {
                break;
            }
            self.expiries.pop_first();
            let ts = *cursor;
            *cursor += 1;
            let hold = self.holds.remove(&transfer).expect("expiry of an unknown hold");
            assert_eq!(hold.expires_at, expires_at, "the expiry queue names a hold's expiry");
            let k = self.expired.len() as u32;
            assert!(k < FAILED_TAG, "expired holds are counted in the transfer index space");
            self.expired.push(ExpiredHold { index: transfer, resolved_at: ts });
            self.finished.insert(transfer, FAILED_TAG | k);
            self.digest.dirty_holds.push(transfer);
            let t = self.stored(transfer);
            self.note_expired(k, t.id, expires_at);
            self.release_reservation(&t, ts);
            self.give_back(&t, t.amount, true);
            if self.feed_on {
                self.note(FeedNote::Expired { transfer, timestamp: ts });
            }
            expired += 1;
        }
        expired
    }

    /// Where the hold at transfer `index` (record `hold`) stands: pending, or derived from what
    /// finished it, whose record `read` reads (`Engine::stored` while applying: `cold_wanted`
    /// asks for it; `Engine::stored_through` for queries).
    /// `read_expired` reads an expired hold's entry likewise (`Engine::expired_stored`, or
    /// `Engine::expired_through`).
    pub(crate) fn hold_state(
        &self,
        index: u32,
        hold: &Transfer,
        read: impl Fn(&Engine, u32) -> Transfer,
        read_expired: impl Fn(&Engine, u32) -> ExpiredHold,
    ) -> Hold {
        if let Some(pending) = self.holds.get(&index) {
            return pending;
        }
        let by = self.finished_by(index).unwrap_or_else(|| panic!("transfer index {index} is a hold neither pending nor finished"));
        self.finished_hold_state(index, hold, by, read, read_expired)
    }

    /// As [`Engine::hold_state`] for a hold known to be finished by `by` (what
    /// [`Engine::finished_by`] answered).
    pub(crate) fn finished_hold_state(
        &self,
        index: u32,
        hold: &Transfer,
        by: u32,
        read: impl Fn(&Engine, u32) -> Transfer,
        read_expired: impl Fn(&Engine, u32) -> ExpiredHold,
    ) -> Hold {
        let expires_at = hold_expiry(hold);
        if by & FAILED_TAG != 0 {
            let e = read_expired(self, by & !FAILED_TAG);
            debug_assert_eq!(e.index, index);
            return Hold { status: HoldStatus::Expired, expires_at, resolved_at: e.resolved_at, resolved_by: NONE };
        }
        let r = read(self, by);
        let status = if r.flags & tf::POST_PENDING != 0 { HoldStatus::Posted } else { HoldStatus::Voided };
        Hold { status, expires_at, resolved_at: r.timestamp, resolved_by: by }
    }

    /// What finished the hold at transfer `index`: a transfer index, or `FAILED_TAG` and its
    /// place in `expired`; `None` if it is pending (or not a hold).
    #[inline]
    pub(crate) fn finished_by(&self, index: u32) -> Option<u32> {
        self.finished.get(index)
    }

    /// A released or expired hold (`count`), or the part of a hold a capture did not take,
    /// leaves the velocity windows it was counted in.
    #[inline]
    fn give_back(&mut self, hold: &Transfer, amount: u128, count: bool) {
        if amount == 0 && !count {
            return;
        }
        let (dr, cr) = (self.account_index[&hold.debit_account_id], self.account_index[&hold.credit_account_id]);
        if self.account_meta[dr as usize].policy != NONE || self.account_meta[cr as usize].policy != NONE {
            self.give_back_velocity(hold, amount, count);
        }
    }

    /// Takes a hold's amount out of both pending balances.
    pub(super) fn release_reservation(&mut self, hold: &Transfer, ts: u64) {
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

    /// Capture (post) or release (void) the hold named by `t.pending_id`.
    pub(super) fn resolve_hold(&mut self, t: &Transfer, ts: u64) -> ResultCode {
        use ResultCode as R;
        let post = t.flags & tf::POST_PENDING != 0;
        let (pi, p, amount, hold) = match self.hold_to_resolve(t, post, ts) {
            Ok(found) => found,
            Err(code) => return code,
        };
        let (dr, cr, db, cb) = match self.balances_resolving(&p, amount, post) {
            Ok(after) => after,
            Err(code) => return code,
        };
        if self.ids_full() {
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
        let by = self.insert_transfer(stored, dr, cr);
        self.holds.remove(&pi);
        self.finished.insert(pi, by);
        self.digest.dirty_holds.push(pi);
        if hold.expires_at != 0 {
            self.expiries.remove(&(hold.expires_at, pi));
        }
        self.note_resolution(super::lineage::Resolution { by, hold: pi, expires_at: hold.expires_at });
        self.record(Undo::HoldResolved { transfer: pi, old: hold, by });
        self.give_back(&p, if post { p.amount - amount } else { p.amount }, !post);
        self.push_history(dr, ts);
        self.push_history(cr, ts);
        R::Ok
    }

    /// The checks of a capture or release against its hold, in precedence order: the hold's
    /// index and record, the amount that moves, and the hold's state.
    fn hold_to_resolve(&self, t: &Transfer, post: bool, ts: u64) -> Result<(u32, Transfer, u128, Hold), ResultCode> {
        use ResultCode as R;
        if t.pending_id == 0 {
            return Err(R::PendingIdMustNotBeZero);
        }
        if t.pending_id == u128::MAX {
            return Err(R::PendingIdMustNotBeIntMax);
        }
        if t.pending_id == t.id {
            return Err(R::PendingIdMustBeDifferent);
        }
        if t.timeout != 0 {
            return Err(R::TimeoutReservedForPendingTransfer);
        }
        let Some(IdSlot::Transfer(pi)) = self.find_transfer_id(t.pending_id) else {
            return Err(R::PendingTransferNotFound);
        };
        let p = self.stored(pi);
        if p.flags & tf::PENDING == 0 {
            return Err(R::PendingTransferNotPending);
        }
        if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
            return Err(R::PendingTransferHasDifferentDebitAccountId);
        }
        if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
            return Err(R::PendingTransferHasDifferentCreditAccountId);
        }
        if t.ledger != 0 && t.ledger != p.ledger {
            return Err(R::PendingTransferHasDifferentLedger);
        }
        if t.code != 0 && t.code != p.code {
            return Err(R::PendingTransferHasDifferentCode);
        }
        let amount = self.resolved_amount(t, &p, post)?;
        let hold = self.hold_state(pi, &p, Engine::stored, Engine::expired_stored);
        match hold.status {
            HoldStatus::Pending => {}
            HoldStatus::Posted => return Err(R::PendingTransferAlreadyPosted),
            HoldStatus::Voided => return Err(R::PendingTransferAlreadyVoided),
            HoldStatus::Expired => return Err(R::PendingTransferExpired),
        }
        if hold.expires_at != 0 && hold.expires_at <= ts {
            return Err(R::PendingTransferExpired);
        }
        Ok((pi, p, amount, hold))
    }

    /// The amount a capture posts (u128::MAX: the whole hold) or a release gives back (always
    /// the whole hold; 0 names it). Over the hold's amount is `exceeds_pending_transfer_amount`
    /// for both; a release of less is `pending_transfer_has_different_amount`. Under
    /// [`Rules::Original`] any other release amount was the latter.
    fn resolved_amount(&self, t: &Transfer, p: &Transfer, post: bool) -> Result<u128, ResultCode> {
        use ResultCode as R;
        let whole = if post { u128::MAX } else { 0 };
        let amount = if t.amount == whole { p.amount } else { t.amount };
        if !post && self.rules == Rules::Original {
            return if amount != p.amount { Err(R::PendingTransferHasDifferentAmount) } else { Ok(amount) };
        }
        if amount > p.amount {
            return Err(R::ExceedsPendingTransferAmount);
        }
        if !post && amount < p.amount {
            return Err(R::PendingTransferHasDifferentAmount);
        }
        Ok(amount)
    }

    /// Both accounts' balances once the hold is resolved (its reservation gone, `amount` posted
    /// when capturing), or why they cannot be.
    fn balances_resolving(&self, p: &Transfer, amount: u128, post: bool) -> Result<(u32, u32, Balances, Balances), ResultCode> {
        use ResultCode as R;
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
                return Err(code);
            }
            let Some(v) = db.debits_posted.checked_add(amount) else {
                return Err(R::OverflowsDebitsPosted);
            };
            db.debits_posted = v;
            let Some(v) = cb.credits_posted.checked_add(amount) else {
                return Err(R::OverflowsCreditsPosted);
            };
            cb.credits_posted = v;
            let totals = &self.ledgers[self.account_meta[dr as usize].ledger_slot as usize].totals;
            if totals.debits_posted.checked_add(amount).is_none() {
                return Err(R::OverflowsLedgerTotals);
            }
        }
        Ok((dr, cr, db, cb))
    }
}
