//! Reversals: a refund, chargeback or correction moves (part of) a posted transfer back between
//! the same accounts, at most what is left of it after its earlier reversals. The lineage of
//! every transfer (the hold it resolved, a hold's capture or release, the original a reversal
//! names, the reversals of a transfer) is kept, so every cent can be traced.

use super::*;

/// The reversals of one transfer: how much they moved back, and which they are, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReversalsOf {
    pub(crate) amount: u128,
    pub(crate) list: Vec<u32>,
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
        let of = self.reversals.entry(original).or_default();
        of.amount += amount;
        of.list.push(reversal);
        self.record(Undo::ReversalAdded { original });
        R::Ok
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
        let left = self.reversible(original, o);
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

    /// What reversals may still move back of transfer `t`, stored at `index`.
    pub(crate) fn reversible(&self, index: u32, t: &Transfer) -> u128 {
        if t.flags & (tf::PENDING | tf::VOID_PENDING | tf::REVERSE) != 0 {
            return 0;
        }
        t.amount - self.reversals.get(&index).map_or(0, |of| of.amount)
    }

    /// Takes back the newest reversal of `original` (a failed chain's undo).
    pub(super) fn undo_reversal(&mut self, original: u32) {
        let reversal = *self.reversals[&original].list.last().expect("undo: a reversal");
        let amount = self.stored(reversal).amount;
        let of = self.reversals.get_mut(&original).expect("undo: reversals");
        of.list.pop();
        of.amount -= amount;
        if of.list.is_empty() {
            self.reversals.remove(&original);
        }
    }

    /// Rebuilds what follows from the stored transfers at `indexes` alone: each hold's resolving
    /// transfer and each transfer's reversals (a restored snapshot holds the transfers, not
    /// these links). In order: the holds and transfers a range names come before it.
    pub(crate) fn rebuild_lineage(&mut self, indexes: core::ops::Range<u32>) -> Result<(), String> {
        for index in indexes {
            let t = self.stored(index);
            if t.flags & (tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE) == 0 {
                continue;
            }
            let Some(IdSlot::Transfer(named)) = self.find_transfer_id_through(t.pending_id).filter(|_| t.pending_id != t.id) else {
                return Err(format!("transfer {} names {}, which is not stored", t.id, t.pending_id));
            };
            if t.flags & tf::REVERSE != 0 {
                let of = self.reversals.entry(named).or_default();
                of.amount = of.amount.checked_add(t.amount).ok_or("reversals overflow")?;
                of.list.push(index);
            } else {
                let hold = self.holds.get_mut(&named).ok_or_else(|| format!("transfer {} resolves a transfer that is not a hold", t.id))?;
                hold.resolved_by = index;
            }
        }
        Ok(())
    }

    /// The lineage of a stored transfer.
    pub fn lineage(&self, id: u128) -> Option<Lineage> {
        let Some(IdSlot::Transfer(index)) = self.find_transfer_id_through(id) else { return None };
        let t = self.stored_through(index);
        let hold_at = |i: u32| {
            let h = self.holds[&i];
            HoldOf { transfer: self.stored_through(i), status: h.status, expires_at: h.expires_at, resolved_at: h.resolved_at }
        };
        let named = || match self.find_transfer_id_through(t.pending_id) {
            Some(IdSlot::Transfer(i)) => i,
            _ => unreachable!("a stored capture, release or reversal names a stored transfer"),
        };
        let (mut hold, mut resolution, mut reverses) = (None, None, None);
        if t.flags & tf::PENDING != 0 {
            hold = Some(hold_at(index));
            let by = self.holds[&index].resolved_by;
            resolution = (by != NONE).then(|| self.stored_through(by));
        } else if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            hold = Some(hold_at(named()));
        } else if t.flags & tf::REVERSE != 0 {
            reverses = Some(self.stored_through(named()));
        }
        let of = self.reversals.get(&index);
        let reversals =
            of.map_or_else(Vec::new, |of| of.list.iter().take(LINEAGE_REVERSALS_MAX).map(|&r| self.stored_through(r)).collect());
        let (reversals_total, reversed) = of.map_or((0, 0), |of| (of.list.len() as u32, of.amount));
        Some(Lineage {
            transfer: t,
            hold,
            resolution,
            reverses,
            reversals,
            reversals_total,
            reversed,
            reversible: self.reversible(index, &t),
        })
    }
}
