//! Transfers: validation in precedence order, idempotent retries (`exists` and its variants),
//! and posting a new transfer or hold to both sides.

use super::*;

impl Engine {
    /// A command of the transfer family; `kind_flag` is the flag its kind implies (`pending`
    /// for a hold, `reverse` for a reversal), added after the client's flags were checked.
    pub(super) fn create_transfer(&mut self, t_in: &Transfer, sides: Sides, kind_flag: u16, ts: u64) -> ResultCode {
        use ResultCode as R;
        let mut t = *t_in;
        if t.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if t.flags & !tf::ALL != 0 {
            return R::ReservedFlag;
        }
        t.flags |= kind_flag;
        if t.id == 0 {
            return R::IdMustNotBeZero;
        }
        if t.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if self.rules >= Rules::Scheduled && orders::is_reserved_id(t.id) {
            return R::IdReserved;
        }
        match self.find_transfer_id(t.id) {
            Some(IdSlot::Transfer(e)) => return self.transfer_exists(&t, sides, &self.stored(e)),
            Some(IdSlot::Failed(_)) => return R::IdAlreadyFailed,
            None => {}
        }
        if (t.flags & (tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE)).count_ones() > 1 {
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
        if t.flags & tf::REVERSE != 0 {
            return self.reverse_transfer(&t, ts);
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
    pub(super) fn post_new_transfer(&mut self, t: &Transfer, ts: u64) -> ResultCode {
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
        let policies = self.account_meta[dr as usize].policy != NONE || self.account_meta[cr as usize].policy != NONE;
        if policies {
            if let Some(code) = self.check_channels(dr, cr, t.code) {
                return code;
            }
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
        if self.debit_limit_at(dr).is_some_and(|limit| debits > db.credits_posted.saturating_add(limit)) && !self.limit_exempt(dr, t.code) {
            return R::ExceedsCredits;
        }
        if self.credit_limit_at(cr).is_some_and(|limit| credits > cb.debits_posted.saturating_add(limit)) {
            return R::ExceedsDebits;
        }
        if policies {
            if let Some(code) = self.check_velocity(dr, cr, t.code, amount, ts) {
                return code;
            }
        }
        if self.ids_full() {
            return R::TransfersLimitReached;
        }
        debug_assert_eq!((db.debits_pending + db.debits_posted, cb.credits_pending + cb.credits_posted), (debits, credits));
        self.add_movement(dr, cr, amount, pending);
        let index = self.insert_transfer(Transfer { timestamp: ts, ..*t }, dr, cr);
        if pending {
            self.keep_pending(index, expires_at);
            self.digest.dirty_holds.push(index);
            self.record(Undo::HoldInserted { transfer: index });
        }
        if policies {
            self.count_velocity(dr, cr, t.code, amount, ts);
        }
        self.push_history(dr, ts);
        self.push_history(cr, ts);
        R::Ok
    }

    pub(crate) fn insert_transfer(&mut self, t: Transfer, dr: u32, cr: u32) -> u32 {
        let index = self.transfers.len() as u32;
        self.link_transfer(&t, index, dr, cr);
        self.transfers.push(t);
        self.record(Undo::TransferInserted);
        if self.feed_on {
            self.note(FeedNote::Stored(index));
        }
        index
    }

    /// Indexes transfer `t`, stored at `index`, by id and in its accounts' lists (`dr`, `cr`).
    #[inline]
    pub(crate) fn link_transfer(&mut self, t: &Transfer, index: u32, dr: u32, cr: u32) {
        let links = [self.account_meta[dr as usize].last_transfer, self.account_meta[cr as usize].last_transfer];
        self.account_meta[dr as usize].last_transfer = index | LINK_DEBITED;
        self.account_meta[cr as usize].last_transfer = index;
        self.transfer_ids.insert(t.id, index, self.cold.kept());
        self.transfer_links.push(links);
    }
}

/// Lifecycle checks for money moving from `d` to `c`, in precedence order.
pub(super) fn check_states(d: &Account, c: &Account) -> Option<ResultCode> {
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

impl Engine {
    /// Compares a re-sent transfer with the stored one `e`. Fields the engine fills in (the
    /// counterparty of a single-sided command; accounts, ledger and code of a capture/release)
    /// only count when the client set them. A re-sent capture or release compares as
    /// TigerBeetle's does: `amount = u128::MAX` (capture) or 0 (release) means "the whole hold",
    /// so it matches only a capture of the whole hold; user data left zero means "the hold's".
    fn transfer_exists(&self, t: &Transfer, sides: Sides, e: &Transfer) -> ResultCode {
        use ResultCode as R;
        if t.flags != e.flags {
            return R::ExistsWithDifferentFlags;
        }
        if t.pending_id != e.pending_id {
            return R::ExistsWithDifferentPendingId;
        }
        if t.timeout != e.timeout {
            return R::ExistsWithDifferentTimeout;
        }
        if t.flags & tf::REVERSE != 0 {
            return reversal_exists(t, e);
        }
        let resolves = t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0;
        if resolves && self.rules != Rules::Original {
            let Some(IdSlot::Transfer(p)) = self.find_transfer_id(e.pending_id) else {
                unreachable!("a stored capture or release names a stored hold");
            };
            return resolution_exists(t, e, &self.stored(p));
        }
        transfer_exists_original(t, sides, e)
    }
}

/// A re-sent reversal against the stored one `e`: accounts and ledger left zero stand for the
/// original's, `amount = u128::MAX` ("all that is left") for whatever was moved back.
fn reversal_exists(t: &Transfer, e: &Transfer) -> ResultCode {
    use ResultCode as R;
    let given_differs = |given: u128, stored: u128| given != 0 && given != stored;
    let checks = [
        (given_differs(t.debit_account_id, e.debit_account_id), R::ExistsWithDifferentDebitAccountId),
        (given_differs(t.credit_account_id, e.credit_account_id), R::ExistsWithDifferentCreditAccountId),
        (t.amount != u128::MAX && t.amount != e.amount, R::ExistsWithDifferentAmount),
        (t.user_data_128 != e.user_data_128, R::ExistsWithDifferentUserData128),
        (t.user_data_64 != e.user_data_64, R::ExistsWithDifferentUserData64),
        (t.user_data_32 != e.user_data_32, R::ExistsWithDifferentUserData32),
        (given_differs(t.ledger.into(), e.ledger.into()), R::ExistsWithDifferentLedger),
        (t.code != e.code, R::ExistsWithDifferentCode),
    ];
    checks.iter().find(|(differs, _)| *differs).map_or(R::Exists, |&(_, code)| code)
}

/// A re-sent capture or release against the stored one `e` of hold `p`, TigerBeetle's way.
fn resolution_exists(t: &Transfer, e: &Transfer, p: &Transfer) -> ResultCode {
    use ResultCode as R;
    let given_differs = |given: u128, stored: u128| given != 0 && given != stored;
    // Zero (or, for a capture's amount, u128::MAX) stands for the hold's value.
    let differs = |given: u128, whole: u128, stored: u128, hold: u128| if given == whole { stored != hold } else { given != stored };
    if given_differs(t.debit_account_id, e.debit_account_id) {
        return R::ExistsWithDifferentDebitAccountId;
    }
    if given_differs(t.credit_account_id, e.credit_account_id) {
        return R::ExistsWithDifferentCreditAccountId;
    }
    let whole = if t.flags & tf::POST_PENDING != 0 { u128::MAX } else { 0 };
    if differs(t.amount, whole, e.amount, p.amount) {
        return R::ExistsWithDifferentAmount;
    }
    if differs(t.user_data_128, 0, e.user_data_128, p.user_data_128) {
        return R::ExistsWithDifferentUserData128;
    }
    if differs(t.user_data_64.into(), 0, e.user_data_64.into(), p.user_data_64.into()) {
        return R::ExistsWithDifferentUserData64;
    }
    if differs(t.user_data_32.into(), 0, e.user_data_32.into(), p.user_data_32.into()) {
        return R::ExistsWithDifferentUserData32;
    }
    if given_differs(t.ledger.into(), e.ledger.into()) {
        return R::ExistsWithDifferentLedger;
    }
    if given_differs(t.code.into(), e.code.into()) {
        return R::ExistsWithDifferentCode;
    }
    R::Exists
}

/// Compares a re-sent transfer with the stored one, after flags, pending id and timeout: every
/// kind under the current rules but captures and releases, and all of them under
/// [`Rules::Original`].
fn transfer_exists_original(t: &Transfer, sides: Sides, e: &Transfer) -> ResultCode {
    use ResultCode as R;
    let resolves = t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0;
    let differs = |given: u128, stored: u128, filled: bool| {
        if filled {
            given != 0 && given != stored
        } else {
            given != stored
        }
    };
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
