//! Accounts: opening one, and its lifecycle (freeze, thaw, close).

use super::*;

impl Engine {
    pub(super) fn create_account(&mut self, a: &Account, ts: u64) -> ResultCode {
        use ResultCode as R;
        if a.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if a.state != 0 || a.reserved != [0; 3] {
            return R::ReservedField;
        }
        if a.flags & !account_flags::ALL != 0 {
            return R::ReservedFlag;
        }
        if a.id == 0 {
            return R::IdMustNotBeZero;
        }
        if a.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&e) = self.account_index.get(&a.id) {
            return account_exists(a, &self.accounts[e as usize]);
        }
        let limits = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS | account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        if a.flags & limits == limits {
            return R::FlagsAreMutuallyExclusive;
        }
        if a.debits_pending != 0 {
            return R::DebitsPendingMustBeZero;
        }
        if a.debits_posted != 0 {
            return R::DebitsPostedMustBeZero;
        }
        if a.credits_pending != 0 {
            return R::CreditsPendingMustBeZero;
        }
        if a.credits_posted != 0 {
            return R::CreditsPostedMustBeZero;
        }
        if a.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return R::CodeMustNotBeZero;
        }
        let Some(&slot) = self.ledger_index.get(&a.ledger) else {
            return R::LedgerNotFound;
        };
        if self.accounts.len() >= self.limits.accounts_max as usize {
            return R::AccountsLimitReached;
        }
        self.insert_account(Account { timestamp: ts, ..*a }, slot);
        R::Ok
    }

    pub(crate) fn insert_account(&mut self, account: Account, ledger_slot: u32) {
        let key = (account.ledger, account.code);
        let group = match self.group_index.get(&key) {
            Some(&g) => g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.push(Group { ledger: account.ledger, code: account.code, accounts: 0, totals: Balances::default() });
                self.group_index.insert(key, g);
                self.record(Undo::GroupInserted);
                g
            }
        };
        self.groups[group as usize].accounts += 1;
        let index = self.accounts.len() as u32;
        self.account_index.insert(account.id, index);
        self.accounts.push(account);
        self.account_meta.push(AccountMeta {
            ledger_slot,
            group,
            last_transfer: NONE,
            last_balance: NONE,
            last_limit_change: NONE,
            policy: NONE,
            digest_dirty: false,
            watched: false,
        });
        self.touch_account(index);
        self.record(Undo::AccountInserted);
    }

    pub(super) fn change_account(&mut self, c: &AccountChange, change: Change) -> ResultCode {
        use ResultCode as R;
        if c.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if c.reserved != [0; 74] {
            return R::ReservedField;
        }
        let allowed = if change == Change::Close { change_flags::LINKED } else { change_flags::ALL };
        if c.flags & !allowed != 0 {
            return R::ReservedFlag;
        }
        if c.account_id == 0 {
            return R::AccountIdMustNotBeZero;
        }
        if c.account_id == u128::MAX {
            return R::AccountIdMustNotBeIntMax;
        }
        let mut sides = 0;
        if c.flags & change_flags::DEBITS != 0 {
            sides |= account_state::FROZEN_DEBITS;
        }
        if c.flags & change_flags::CREDITS != 0 {
            sides |= account_state::FROZEN_CREDITS;
        }
        if change != Change::Close && sides == 0 {
            return R::ChangeMustNameASide;
        }
        let Some(&index) = self.account_index.get(&c.account_id) else {
            return R::AccountNotFound;
        };
        let account = &self.accounts[index as usize];
        let old = account.state;
        if old & account_state::CLOSED != 0 {
            // Closing is idempotent; nothing else may touch a closed account.
            return if change == Change::Close { R::Ok } else { R::AccountClosed };
        }
        let new = match change {
            Change::Freeze => old | sides,
            Change::Thaw => old & !sides,
            Change::Close => {
                if account.debits_pending != 0 || account.credits_pending != 0 {
                    return R::AccountHasPendingBalance;
                }
                if account.debits_posted != account.credits_posted {
                    return R::AccountHasBalance;
                }
                account_state::CLOSED
            }
        };
        if new != old {
            self.accounts[index as usize].state = new;
            self.touch_account(index);
            self.record(Undo::State { account: index, old });
        }
        R::Ok
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Freeze,
    Thaw,
    Close,
}

pub(super) fn account_exists(a: &Account, e: &Account) -> ResultCode {
    use ResultCode as R;
    if a.flags != e.flags {
        R::ExistsWithDifferentFlags
    } else if a.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if a.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if a.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if a.ledger != e.ledger {
        R::ExistsWithDifferentLedger
    } else if a.code != e.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}
