//! Reversals: a refund, chargeback or correction moves (part of) a posted transfer back between
//! the same accounts, at most what is left of it after its earlier reversals. The lineage of
//! every transfer (the hold it resolved, a hold's capture or release, the original a reversal
//! names, the reversals of a transfer) is kept, so every cent can be traced.

use super::holds::hold_expiry;
use super::*;

/// The reversals of one transfer: how much they moved back, how many there are, the oldest and
/// the newest. Each but the newest names the next in `Engine::next_reversal`, so the one
/// reversal most transfers have takes no list (and no allocation) of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReversalsOf {
    pub(crate) amount: u128,
    pub(crate) first: u32,
    pub(crate) newest: u32,
    pub(crate) count: u32,
}

/// A hold and where it stands, in a [`Lineage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldOf {
    /// The hold (a pending transfer).
    pub transfer: Transfer,
    /// Where it stands.
    pub status: HoldStatus,
    /// When it expires (ns); 0 = never.
    pub expires_at: u64,
    /// When it was captured, released or expired; 0 while pending.
    pub resolved_at: u64,
}

/// What is known about where a transfer came from and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The transfer asked about.
    pub transfer: Transfer,
    /// The hold: for a capture or release, the hold it resolved; for a hold, itself.
    pub hold: Option<HoldOf>,
    /// For a hold: the capture or release that resolved it (none while pending or after expiry).
    pub resolution: Option<Transfer>,
    /// For a reversal: the transfer it reverses.
    pub reverses: Option<Transfer>,
    /// The transfer's reversals, oldest first; at most [`LINEAGE_REVERSALS_MAX`].
    pub reversals: Vec<Transfer>,
    /// How many reversals the transfer has (more than listed when over the bound).
    pub reversals_total: u32,
    /// What its reversals moved back.
    pub reversed: u128,
    /// What a reversal may still move back (zero for holds, releases and reversals).
    pub reversible: u128,
}

/// Reversals a [`Lineage`] lists: with the transfer, its hold, resolution and original, a
/// lineage fits one reply of `query_results_max` (8 189) records and a head record.
pub const LINEAGE_REVERSALS_MAX: usize = crate::limits::BATCH_COMMANDS_MAX - 5;

impl Engine {
    /// A reversal whose fields before `pending_id` were checked: the original's checks in
    /// precedence order, then the movement back as a new posted transfer.
    pub(super) fn reverse_transfer(&mut self, t: &Transfer, ts: u64) -> ResultCode {
        use ResultCode as R;
        let (original, amount) = match self.reversal_of(t) {
            Ok(found) => found,
            Err(code) => return code,
        };
        let o = self.stored(original);
        let stored =
            Transfer { debit_account_id: o.credit_account_id, credit_account_id: o.debit_account_id, amount, ledger: o.ledger, ..*t };
        let code = self.post_new_transfer(&stored, ts);
        if code != R::Ok {
            return code;
        }
        let reversal = self.transfers.len() as u32 - 1;
        let previous = self.add_reversal(o.id, reversal, amount).expect("a reversal moves back at most what is left");
        self.record(Undo::ReversalAdded { original: o.id, previous });
        R::Ok
    }

    /// Counts `reversal`, of `amount`, as the newest reversal of the transfer of id `original`;
    /// returns the reversal newest before it ([`NONE`] if none).
    pub(crate) fn add_reversal(&mut self, original: u128, reversal: u32, amount: u128) -> Result<u32, &'static str> {
        use std::collections::hash_map::Entry;
        match self.reversals.entry(original) {
            Entry::Vacant(vacant) => {
                vacant.insert(ReversalsOf { amount, first: reversal, newest: reversal, count: 1 });
                Ok(NONE)
            }
            Entry::Occupied(mut occupied) => {
                let of = occupied.get_mut();
                assert!(reversal > of.newest, "reversals are added in the order they were stored");
                of.amount = of.amount.checked_add(amount).ok_or("reversals overflow")?;
                let previous = core::mem::replace(&mut of.newest, reversal);
                of.count += 1;
                self.next_reversal.insert(previous, reversal);
                Ok(previous)
            }
        }
    }

    /// The reversals `of` counts, oldest first.
    pub(crate) fn reversals_in_order(&self, of: &ReversalsOf) -> impl Iterator<Item = u32> + '_ {
        core::iter::successors(Some(of.first), |r| self.next_reversal.get(r).copied()).take(of.count as usize)
    }

    /// The original's index and the amount that moves back, or why the reversal is refused.
    fn reversal_of(&self, t: &Transfer) -> Result<(u32, u128), ResultCode> {
        use ResultCode as R;
        let field_checks = [
            (t.pending_id == 0, R::PendingIdMustNotBeZero),
            (t.pending_id == u128::MAX, R::PendingIdMustNotBeIntMax),
            (t.pending_id == t.id, R::PendingIdMustBeDifferent),
            (t.timeout != 0, R::TimeoutReservedForPendingTransfer),
            (t.code == 0, R::CodeMustNotBeZero),
        ];
        if let Some(&(_, code)) = field_checks.iter().find(|(failed, _)| *failed) {
            return Err(code);
        }
        let Some(IdSlot::Transfer(original)) = self.find_transfer_id(t.pending_id) else {
            return Err(R::ReversedTransferNotFound);
        };
        let o = &self.stored(original);
        let given_differs = |given: u128, stored: u128| given != 0 && given != stored;
        let left = self.reversible(o);
        let amount = if t.amount == u128::MAX { left } else { t.amount };
        let checks = [
            (o.flags & tf::PENDING != 0, R::ReversedTransferIsAHold),
            (o.flags & (tf::VOID_PENDING | tf::REVERSE) != 0, R::ReversedTransferNotReversible),
            (given_differs(t.debit_account_id, o.credit_account_id), R::ReversalHasDifferentDebitAccountId),
            (given_differs(t.credit_account_id, o.debit_account_id), R::ReversalHasDifferentCreditAccountId),
            (given_differs(t.ledger.into(), o.ledger.into()), R::ReversalHasDifferentLedger),
            (left == 0 || amount > left, R::ExceedsReversibleAmount),
        ];
        match checks.iter().find(|(failed, _)| *failed) {
            Some(&(_, code)) => Err(code),
            None => Ok((original, amount)),
        }
    }

    /// What reversals may still move back of stored transfer `t`.
    pub(crate) fn reversible(&self, t: &Transfer) -> u128 {
        if t.flags & (tf::PENDING | tf::VOID_PENDING | tf::REVERSE) != 0 {
            return 0;
        }
        t.amount - self.reversals.get(&t.id).map_or(0, |of| of.amount)
    }

    /// Takes back the newest reversal of the transfer of id `original`, `previous` the one
    /// newest before it (a failed chain's undo).
    pub(super) fn undo_reversal(&mut self, original: u128, previous: u32) {
        let of = *self.reversals.get(&original).expect("undo: reversals");
        if previous == NONE {
            assert_eq!(of.count, 1, "undo: the only reversal");
            self.reversals.remove(&original);
            return;
        }
        assert_eq!(self.next_reversal.remove(&previous), Some(of.newest), "undo: the newest reversal follows the one before");
        let amount = self.stored(of.newest).amount;
        self.reversals.insert(original, ReversalsOf { amount: of.amount - amount, newest: previous, count: of.count - 1, ..of });
    }

    /// Rebuilds what follows from the stored transfers at `indexes` alone: each finished hold's
    /// state and each transfer's reversals (a restored snapshot holds the transfers and the
    /// pending and expired holds, not these). In order: the holds and transfers a range names
    /// come before it, and its pending holds are restored.
    pub(crate) fn rebuild_lineage(&mut self, indexes: core::ops::Range<u32>, states: &mut StatedHolds) -> Result<(), String> {
        let named = tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE;
        for index in indexes {
            // Most transfers are neither: their flags are read where they lie, not the record copied.
            if self.transfers.get(index as usize).is_some_and(|t| t.flags & named == 0) {
                continue;
            }
            let t = self.stored(index);
            if t.flags & tf::PENDING != 0 {
                if self.restore_hold_state(index, &t, states)? {
                    states.open.insert(t.id, (index, hold_expiry(&t)));
                }
                continue;
            }
            if t.flags & (tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE) == 0 {
                continue;
            }
            if t.flags & tf::REVERSE == 0 {
                self.restore_resolution(index, &t, states)?;
                continue;
            }
            self.restore_reversal(index, &t)?;
        }
        Ok(())
    }

    /// Restores reversal `t` (at `index`), kept by the original's id, which the record names: no
    /// id index is asked, and no original read (a reversal naming no stored transfer would
    /// change the digest).
    pub(crate) fn restore_reversal(&mut self, index: u32, t: &Transfer) -> Result<(), String> {
        if t.pending_id == t.id {
            return Err(format!("transfer {} names itself", t.id));
        }
        self.add_reversal(t.pending_id, index, t.amount)?;
        Ok(())
    }

    /// A restored hold that is not pending: expired, if the stream says so (its state then
    /// checked against the hold), else waiting for the capture or release that finished it:
    /// then it is open (true), and the caller keeps it so.
    pub(crate) fn restore_hold_state(&mut self, index: u32, t: &Transfer, states: &mut StatedHolds) -> Result<bool, String> {
        if t.timestamp.checked_add(u64::from(t.timeout) * NS_PER_S).is_none() {
            return Err(format!("hold {}: its expiry overflows", t.id));
        }
        if self.holds.contains_key(&index) {
            return Ok(false);
        }
        let Some((hold, value)) = self.stated_expired(index, states)? else {
            return Ok(true);
        };
        // A version 8 stream leaves the expiry time to the hold (0 here); older ones state it.
        let expires_at = hold_expiry(t);
        if expires_at == 0 || (hold.expires_at != 0 && hold.expires_at != expires_at) || hold.resolved_at < expires_at {
            return Err(format!("hold {}: expired at {} but expires at {expires_at}", t.id, hold.resolved_at));
        }
        let place = value & !FAILED_TAG;
        states.expiries[place as usize] = expires_at;
        self.finished.insert(index, value);
        // Its term came with its chunk of expired holds' image if the restore took that; else it
        // is added here (and the hold noted for the image still to write).
        if place >= states.expired_summed_below {
            self.digest.add_finished_hold(t.id, &Hold { expires_at, ..hold });
            self.note_expired(place, t.id, expires_at);
        }
        Ok(false)
    }

    /// Keeps the holds left open as the pending ones (a restore of a stream that lists none,
    /// once every transfer is restored): their records read back a chunk at a time where
    /// evicted, and pinned, their digest terms added.
    pub(crate) fn restore_derived_pending(&mut self, states: &mut StatedHolds) -> Result<(), String> {
        let mut open: Vec<(u32, u64)> = states.open.drain().map(|(_, open)| open).collect();
        open.sort_unstable();
        // Every transfer is restored: once settled, the digest counts each hold below them as
        // settled, so the pending terms added here are taken back when one finishes.
        self.settle_digest();
        let mut chunk = (usize::MAX, Vec::new());
        for (index, expires_at) in open {
            let t = self.pinned_hold(index, &mut chunk)?;
            let hold = Hold { status: HoldStatus::Pending, expires_at, resolved_at: 0, resolved_by: NONE };
            self.digest.add_finished_hold(t.id, &hold);
            self.keep_pending(index, expires_at);
        }
        Ok(())
    }

    /// The hold at `index` for a restore that keeps it open: in memory, pinned already (left
    /// open by the lineage images), or read back with its chunk (`chunk`: the chunk read last,
    /// by number) and pinned, its entry kept in the id index.
    pub(crate) fn pinned_hold(&mut self, index: u32, chunk: &mut (usize, Vec<Transfer>)) -> Result<Transfer, String> {
        if let Some(t) = self.in_memory(index) {
            return Ok(t);
        }
        let chunk_len = self.transfers.chunk_len();
        let k = index as usize / chunk_len;
        if chunk.0 != k {
            self.history().read_chunk(k, &mut chunk.1).map_err(|e| format!("chunk {k}: {e}"))?;
            chunk.0 = k;
        }
        let t = *chunk.1.get(index as usize % chunk_len).ok_or_else(|| format!("chunk {k} is short"))?;
        self.cold.pin(index, t);
        Ok(t)
    }

    /// Keeps the hold at `index` as pending (a restore of a stream that lists it).
    pub(crate) fn restore_pending(&mut self, index: u32, expires_at: u64) {
        self.keep_pending(index, expires_at);
        self.digest.dirty_holds.push(index);
    }

    /// The expired state the stream gives the hold at `index` (met in index order), taken out of
    /// `states`, with its value in `finished`; an expired hold passed over is named in the error.
    fn stated_expired(&self, index: u32, states: &mut StatedHolds) -> Result<Option<(Hold, u32)>, String> {
        if let Some(k) = states.expired_place(index)? {
            let e = self.expired.get(k as usize).expect("a restore keeps every expired hold in memory until it is done");
            let hold = Hold { status: HoldStatus::Expired, expires_at: 0, resolved_at: e.resolved_at, resolved_by: NONE };
            return Ok(Some((hold, FAILED_TAG | k)));
        }
        let stated = states.stated.get(&index).filter(|(hold, _)| hold.status == HoldStatus::Expired).copied();
        if stated.is_some() {
            states.stated.remove(&index);
        }
        Ok(stated)
    }

    /// Capture or release `t` (at `index`) of the open hold its `pending_id` names: the hold's
    /// finished state, checked against the stream's if it has one (before version 8). Neither
    /// the hold's record is read nor any id index asked (the store's reads a page for a hold's
    /// id left to it): the open holds are kept by id, with their expiry.
    fn restore_resolution(&mut self, index: u32, t: &Transfer, states: &mut StatedHolds) -> Result<(), String> {
        let Some((named, expires_at)) = states.open.remove(&t.pending_id) else {
            return Err(format!("transfer {} resolves {}, which is not a stored hold, or pending or finished already", t.id, t.pending_id));
        };
        self.finished.insert(named, index);
        // Pinned if the lineage images left it open; its record is not needed again.
        self.cold.unpin(&[named]);
        self.note_resolution(super::lineage::Resolution { by: index, hold: named, expires_at });
        let status = if t.flags & tf::POST_PENDING != 0 { HoldStatus::Posted } else { HoldStatus::Voided };
        let state = Hold { status, expires_at, resolved_at: t.timestamp, resolved_by: index };
        if let Some((stated, _)) = states.stated.remove(&named) {
            if (stated.status, stated.expires_at, stated.resolved_at) != (state.status, state.expires_at, state.resolved_at) {
                return Err(format!("hold {}: the stream's state is not the one transfer {} gives it", t.pending_id, t.id));
            }
        }
        self.digest.add_finished_hold(t.pending_id, &state);
        Ok(())
    }

    /// The lineage of a stored transfer.
    pub fn lineage(&self, id: u128) -> Option<Lineage> {
        let Some(IdSlot::Transfer(index)) = self.find_transfer_id_through(id) else { return None };
        let t = self.stored_through(index);
        let hold_at = |i: u32, transfer: Transfer| {
            let h = self.hold_state(i, &transfer, Engine::stored_through, Engine::expired_through);
            (HoldOf { transfer, status: h.status, expires_at: h.expires_at, resolved_at: h.resolved_at }, h.resolved_by)
        };
        let named = || match self.find_transfer_id_through(t.pending_id) {
            Some(IdSlot::Transfer(i)) => i,
            _ => unreachable!("a stored capture, release or reversal names a stored transfer"),
        };
        let (mut hold, mut resolution, mut reverses) = (None, None, None);
        if t.flags & tf::PENDING != 0 {
            let (of, by) = hold_at(index, t);
            hold = Some(of);
            resolution = (by != NONE).then(|| self.stored_through(by));
        } else if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            let named = named();
            hold = Some(hold_at(named, self.stored_through(named)).0);
        } else if t.flags & tf::REVERSE != 0 {
            reverses = Some(self.stored_through(named()));
        }
        let of = self.reversals.get(&t.id);
        let reversals = of
            .map_or_else(Vec::new, |of| self.reversals_in_order(of).take(LINEAGE_REVERSALS_MAX).map(|r| self.stored_through(r)).collect());
        let (reversals_total, reversed) = of.map_or((0, 0), |of| (of.count, of.amount));
        Some(Lineage { transfer: t, hold, resolution, reverses, reversals, reversals_total, reversed, reversible: self.reversible(&t) })
    }
}

/// What a restore knows of hold states besides the pending ones.
#[derive(Debug, Default)]
pub(crate) struct StatedHolds {
    /// Finished states the stream names, by transfer index: expired ones, with their value in
    /// `finished` (`FAILED_TAG` and the place in `expired`); before version 8 also captured and
    /// released ones (value `NONE`), which must equal what their transfers give.
    pub(crate) stated: FxHashMap<u32, (Hold, u32)>,
    /// From version 8: the expired holds, as (transfer index, place in `expired`) by index, met
    /// in that order as the holds are restored (a merge, not a lookup each).
    pub(crate) expired_by_index: Vec<(u32, u32)>,
    /// The next of `expired_by_index` not met yet.
    pub(crate) next_expired: usize,
    /// From version 10 the stream lists no pending hold: the holds left open once every transfer
    /// is restored (neither expired, captured nor released) are the pending ones.
    pub(crate) derive_pending: bool,
    /// Restored holds waiting for the capture or release that finished them, by id, with their
    /// transfer index and expiry time: a capture finds its hold by its `pending_id` without
    /// asking an id index, and reads no record. Keyed by id ([`IdMap`]): holds come in index
    /// order and are mostly finished in about that order, so ids made in order share cache
    /// lines where a mixing hash makes each lookup a miss.
    pub(crate) open: IdMap<u128, (u32, u64)>,
    /// Each expired hold's expiry time, by its place in `expired`, as its hold is restored or
    /// its chunk of expired holds' image read.
    pub(crate) expiries: Vec<u64>,
    /// Places in `expired` below which the expired holds' terms came with their chunks' images
    /// (their holds' records need not be read).
    pub(crate) expired_summed_below: u32,
}

impl StatedHolds {
    /// The place of the hold at `index` among the expired ones if the stream names it so (met
    /// in index order, taken out); an expired hold passed over is named in the error. From
    /// version 8 only (expired holds by index).
    pub(crate) fn expired_place(&mut self, index: u32) -> Result<Option<u32>, String> {
        match self.expired_by_index.get(self.next_expired) {
            Some(&(at, _)) if at < index => Err(format!("hold state for transfer index {at}, which is not a hold that is finished so")),
            Some(&(at, place)) if at == index => {
                self.next_expired += 1;
                Ok(Some(place))
            }
            _ => Ok(None),
        }
    }

    /// Whether an expired hold not met yet lies below transfer index `end` whose term did not
    /// come with its chunk of expired holds' image: a restore needs its record (its expiry).
    pub(crate) fn unsummed_expired_below(&self, end: u32) -> bool {
        let ahead = self.expired_by_index[self.next_expired.min(self.expired_by_index.len())..].iter();
        ahead.take_while(|&&(index, _)| index < end).any(|&(_, place)| place >= self.expired_summed_below)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{engine_with_accounts, execute_ok, transfer};
    use crate::{transfer_flags as tf, Command, ResultCode, Transfer};

    /// A refund of `amount` of transfer `original`, with `flags` besides `REVERSE`'s own.
    fn refund(id: u128, original: u128, amount: u128, flags: u16) -> Command {
        Command::Reverse(Transfer { id, pending_id: original, amount, code: 7, flags, ..Transfer::default() })
    }

    /// The reversals listed against `original`, oldest first, and what is left of it.
    fn listed(engine: &crate::Engine, original: u128) -> (Vec<u128>, u128, u128) {
        let lineage = engine.lineage(original).expect("stored");
        (lineage.reversals.iter().map(|r| r.id).collect(), lineage.reversed, lineage.reversible)
    }

    /// A failed chain takes back its reversals newest first: the list, its total and what is
    /// left are as before it, the earlier reversals kept, and the next reversal goes on the list.
    #[test]
    fn a_failed_chain_takes_back_its_reversals_and_the_list_goes_on() {
        let mut engine = engine_with_accounts(1..=2);
        execute_ok(&mut engine, 2, &[transfer(100, 1, 2, 10), refund(101, 100, 3, 0)]);
        let chain = [refund(102, 100, 2, tf::LINKED), refund(103, 100, 1, tf::LINKED), transfer(104, 1, 99, 1)];
        let mut results = Vec::new();
        engine.execute(3, &chain, &mut results).expect("batch");
        assert_eq!(results[2], ResultCode::CreditAccountNotFound, "{results:?}");
        assert_eq!(listed(&engine, 100), (vec![101], 3, 7));
        engine.check_invariants().expect("invariants after the undo");
        execute_ok(&mut engine, 4, &[refund(105, 100, 4, 0), refund(106, 100, 1, 0)]);
        assert_eq!(listed(&engine, 100), (vec![101, 105, 106], 8, 2));
        // The only reversal of another transfer, taken back with its chain.
        execute_ok(&mut engine, 5, &[transfer(200, 2, 1, 5)]);
        engine.execute(6, &[refund(201, 200, 5, tf::LINKED), transfer(202, 1, 99, 1)], &mut results).expect("batch");
        assert_eq!(listed(&engine, 200), (vec![], 0, 5));
        engine.check_invariants().expect("invariants");
    }
}
