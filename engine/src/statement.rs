//! Statements: an account's entries with running balances, and each change of its limits, from
//! the state alone (a replayed engine holds every transfer, every hold's fate and every limit
//! change), checked against the account's balances.

use crate::state::{BalanceLimits, HoldStatus};
use crate::types::transfer_flags as tf;
use crate::{Engine, Transfer};

/// One line of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// When it happened (ns).
    pub timestamp: u64,
    /// The transfer (for an expiry: the hold).
    pub transfer_id: u128,
    /// transfer, hold, capture, release, expiry, reversal, or limits (a change of the account's limits).
    pub kind: &'static str,
    /// For a reversal: the transfer it reverses (0 otherwise).
    pub reverses: u128,
    /// The other account.
    pub counterpart: u128,
    /// Signed change of the posted balance (credits minus debits), minor units.
    pub posted_change: i128,
    /// Signed change of the pending balance (pending credits minus pending debits).
    pub pending_change: i128,
    /// The transfer's code and user data.
    pub code: u16,
    /// Opaque client data.
    pub user_data_128: u128,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Opaque client data.
    pub user_data_32: u32,
    /// Posted balance (credits minus debits) after the line.
    pub balance: i128,
    /// Pending balance (pending credits minus pending debits) after the line.
    pub pending: i128,
    /// For a `limits` line: the limits in force after the change.
    pub limits: Option<BalanceLimits>,
}

impl Engine {
    /// An account's statement: every transfer on it and every hold of its that expired, oldest
    /// first, with running balances. The closing balances are checked against the account
    /// record, so a statement that does not add up is an error, never printed.
    pub fn statement(&self, account_id: u128) -> Result<Vec<StatementLine>, String> {
        statement(self, account_id)
    }
}

fn statement(engine: &Engine, account_id: u128) -> Result<Vec<StatementLine>, String> {
    let account = *engine.account(account_id).ok_or_else(|| format!("account {account_id} does not exist at that point"))?;
    let mut events: Vec<StatementLine> = Vec::new();
    let signed = |v: u128| i128::try_from(v).map_err(|_| "an amount beyond i128".to_string());
    for t in engine.account_transfers_all(account_id) {
        let credited = t.credit_account_id == account_id;
        let sign = if credited { 1 } else { -1 };
        let counterpart = if credited { t.debit_account_id } else { t.credit_account_id };
        let line = |kind, posted: i128, pending: i128| StatementLine {
            timestamp: t.timestamp,
            transfer_id: t.id,
            kind,
            reverses: if t.flags & tf::REVERSE != 0 { t.pending_id } else { 0 },
            counterpart,
            posted_change: posted,
            pending_change: pending,
            code: t.code,
            user_data_128: t.user_data_128,
            user_data_64: t.user_data_64,
            user_data_32: t.user_data_32,
            balance: 0,
            pending: 0,
            limits: None,
        };
        if t.flags & tf::PENDING != 0 {
            events.push(line("hold", 0, sign * signed(t.amount)?));
            if let Some(hold) = engine.hold(t.id).filter(|h| h.status == HoldStatus::Expired) {
                let mut expiry = line("expiry", 0, -sign * signed(t.amount)?);
                expiry.timestamp = hold.resolved_at;
                events.push(expiry);
            }
        } else if t.flags & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            let held: Transfer = engine.transfer(t.pending_id).ok_or("a capture or release names a missing hold")?;
            if t.flags & tf::POST_PENDING != 0 {
                events.push(line("capture", sign * signed(t.amount)?, -sign * signed(held.amount)?));
            } else {
                events.push(line("release", 0, -sign * signed(held.amount)?));
            }
        } else {
            events.push(line(t.kind_name(), sign * signed(t.amount)?, 0));
        }
    }
    events.extend(engine.limit_history(account_id).into_iter().map(|limits| StatementLine {
        timestamp: limits.changed_at,
        transfer_id: 0,
        kind: "limits",
        reverses: 0,
        counterpart: 0,
        posted_change: 0,
        pending_change: 0,
        code: 0,
        user_data_128: 0,
        user_data_64: 0,
        user_data_32: 0,
        balance: 0,
        pending: 0,
        limits: Some(limits),
    }));
    events.sort_by_key(|e| e.timestamp);
    let (mut balance, mut pending) = (0i128, 0i128);
    for e in &mut events {
        balance += e.posted_change;
        pending += e.pending_change;
        e.balance = balance;
        e.pending = pending;
    }
    let want_balance = signed(account.credits_posted)? - signed(account.debits_posted)?;
    let want_pending = signed(account.credits_pending)? - signed(account.debits_pending)?;
    if (balance, pending) != (want_balance, want_pending) {
        return Err(format!(
            "the statement of account {account_id} ends at {balance}/{pending} but the account holds {want_balance}/{want_pending}"
        ));
    }
    Ok(events)
}
