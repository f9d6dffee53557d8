//! Balance limits that change: an account's debit limit (how far its debits, holds included, may
//! exceed its credits: an overdraft line) and credit limit (the mirror), set or removed by the
//! `set_limits` command at any time. Each change is kept, in order, so the limits in force at
//! any moment and their history are part of the state (snapshots, digest, statements).
//!
//! Without a change, an account's flags rule: `debits_must_not_exceed_credits` is a debit limit
//! of 0, no flag no limit. A limit set by a command replaces the flag's rule for that side;
//! removing it brings the flag's rule back. Lowering a limit below what is already used is
//! allowed: balances stay, and only movements that would go further are refused.

use super::*;
use crate::types::{limit_flags, AccountLimits};

/// One change of an account's limits, with the limits in force after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitChange {
    /// The account's index.
    pub(crate) account: u32,
    /// The account's previous change, or `NONE`.
    pub(crate) prev: u32,
    /// When the change took effect.
    pub timestamp: u64,
    /// The debit limit set by command after it (`None`: the account's flag rules).
    pub debit_limit: Option<u128>,
    /// The credit limit set by command after it (`None`: the account's flag rules).
    pub credit_limit: Option<u128>,
}

/// The limits in force on an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BalanceLimits {
    /// How far debits (pending included) may exceed posted credits; `None`: no limit.
    pub debit_limit: Option<u128>,
    /// How far credits (pending included) may exceed posted debits; `None`: no limit.
    pub credit_limit: Option<u128>,
    /// When a command last changed them (0: never; the flags rule).
    pub changed_at: u64,
}

impl Engine {
    pub(super) fn set_limits(&mut self, c: &AccountLimits, ts: u64) -> ResultCode {
        use ResultCode as R;
        if let Some(code) = check_limits_record(c) {
            return code;
        }
        let Some(&index) = self.account_index.get(&c.account_id) else {
            return R::AccountNotFound;
        };
        if self.accounts[index as usize].state & account_state::CLOSED != 0 {
            return R::AccountClosed;
        }
        let prev = self.account_meta[index as usize].last_limit_change;
        let (mut debit_limit, mut credit_limit) = match prev {
            NONE => (None, None),
            _ => (self.limit_changes[prev as usize].debit_limit, self.limit_changes[prev as usize].credit_limit),
        };
        let side = |set: u16, remove: u16, amount: u128, old: Option<u128>| {
            if c.flags & set != 0 {
                Some(amount)
            } else if c.flags & remove != 0 {
                None
            } else {
                old
            }
        };
        debit_limit = side(limit_flags::DEBIT_LIMIT, limit_flags::REMOVE_DEBIT_LIMIT, c.debit_limit, debit_limit);
        credit_limit = side(limit_flags::CREDIT_LIMIT, limit_flags::REMOVE_CREDIT_LIMIT, c.credit_limit, credit_limit);
        self.push_limit_change(LimitChange { account: index, prev, timestamp: ts, debit_limit, credit_limit });
        R::Ok
    }

    pub(crate) fn push_limit_change(&mut self, change: LimitChange) {
        self.account_meta[change.account as usize].last_limit_change = self.limit_changes.len() as u32;
        self.limit_changes.push(change);
        self.record(Undo::LimitChangePushed);
    }

    /// The debit limit in force on the account at `index`: a command's, else the flag's.
    #[inline]
    pub(crate) fn debit_limit_at(&self, index: u32) -> Option<u128> {
        let change = self.account_meta[index as usize].last_limit_change;
        self.in_force(index, (change != NONE).then(|| &self.limit_changes[change as usize]), Side::Debit)
    }

    /// The credit limit in force on the account at `index`: a command's, else the flag's.
    #[inline]
    pub(crate) fn credit_limit_at(&self, index: u32) -> Option<u128> {
        let change = self.account_meta[index as usize].last_limit_change;
        self.in_force(index, (change != NONE).then(|| &self.limit_changes[change as usize]), Side::Credit)
    }

    /// One side's limit in force after `change` (or with none): the command's, else the flag's.
    #[inline]
    fn in_force(&self, index: u32, change: Option<&LimitChange>, side: Side) -> Option<u128> {
        let (set, flag) = match side {
            Side::Debit => (change.and_then(|c| c.debit_limit), account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            Side::Credit => (change.and_then(|c| c.credit_limit), account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        };
        set.or_else(|| (self.accounts[index as usize].flags & flag != 0).then_some(0))
    }

    /// The limits in force on an account, if it exists.
    pub fn balance_limits(&self, id: u128) -> Option<BalanceLimits> {
        let &index = self.account_index.get(&id)?;
        let changed_at = match self.account_meta[index as usize].last_limit_change {
            NONE => 0,
            change => self.limit_changes[change as usize].timestamp,
        };
        Some(BalanceLimits { debit_limit: self.debit_limit_at(index), credit_limit: self.credit_limit_at(index), changed_at })
    }

    /// Every change of an account's limits, oldest first, each with the limits in force after it.
    pub fn limit_history(&self, id: u128) -> Vec<BalanceLimits> {
        let Some(&index) = self.account_index.get(&id) else { return Vec::new() };
        let mut history = Vec::new();
        let mut change = self.account_meta[index as usize].last_limit_change;
        while change != NONE {
            let c = &self.limit_changes[change as usize];
            history.push(BalanceLimits {
                debit_limit: self.in_force(index, Some(c), Side::Debit),
                credit_limit: self.in_force(index, Some(c), Side::Credit),
                changed_at: c.timestamp,
            });
            change = c.prev;
        }
        history.reverse();
        history
    }
}

/// Which limit.
#[derive(Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

/// The checks of a limit change that need no state, in precedence order.
fn check_limits_record(c: &AccountLimits) -> Option<ResultCode> {
    use ResultCode as R;
    if c.timestamp != 0 {
        return Some(R::TimestampMustBeZero);
    }
    let unused_amount = (c.flags & limit_flags::DEBIT_LIMIT == 0 && c.debit_limit != 0)
        || (c.flags & limit_flags::CREDIT_LIMIT == 0 && c.credit_limit != 0);
    if c.reserved != [0; 42] || unused_amount {
        return Some(R::ReservedField);
    }
    if c.flags & !limit_flags::ALL != 0 {
        return Some(R::ReservedFlag);
    }
    let both = |set: u16, remove: u16| c.flags & set != 0 && c.flags & remove != 0;
    if both(limit_flags::DEBIT_LIMIT, limit_flags::REMOVE_DEBIT_LIMIT) || both(limit_flags::CREDIT_LIMIT, limit_flags::REMOVE_CREDIT_LIMIT)
    {
        return Some(R::FlagsAreMutuallyExclusive);
    }
    if c.account_id == 0 {
        return Some(R::AccountIdMustNotBeZero);
    }
    if c.account_id == u128::MAX {
        return Some(R::AccountIdMustNotBeIntMax);
    }
    if c.flags & (limit_flags::ALL & !limit_flags::LINKED) == 0 {
        return Some(R::ChangeMustNameASide);
    }
    None
}
