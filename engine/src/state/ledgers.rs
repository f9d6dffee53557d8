//! Ledgers: registering a currency with its scale and settlement account.

use super::*;

impl Engine {
    pub(super) fn create_ledger(&mut self, l: &Ledger, ts: u64) -> ResultCode {
        use ResultCode as R;
        if l.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if l.reserved != [0; 64] {
            return R::ReservedField;
        }
        if l.flags & !ledger_flags::ALL != 0 {
            return R::ReservedFlag;
        }
        if l.id == 0 {
            return R::IdMustNotBeZero;
        }
        if l.id == u32::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&slot) = self.ledger_index.get(&l.id) {
            return ledger_exists(l, &self.ledgers[slot as usize].ledger);
        }
        if !l.currency.iter().all(u8::is_ascii_uppercase) {
            return R::CurrencyInvalid;
        }
        if l.scale > SCALE_MAX {
            return R::ScaleTooLarge;
        }
        if l.settlement_account_id == 0 {
            return R::AccountIdMustNotBeZero;
        }
        if l.settlement_account_id == u128::MAX {
            return R::AccountIdMustNotBeIntMax;
        }
        if l.settlement_account_code == 0 {
            return R::CodeMustNotBeZero;
        }
        if self.account_index.contains_key(&l.settlement_account_id) {
            return R::SettlementAccountExists;
        }
        if self.ledgers.len() >= self.limits.ledgers_max as usize {
            return R::LedgersLimitReached;
        }
        if self.accounts.len() >= self.limits.accounts_max as usize {
            return R::AccountsLimitReached;
        }
        let slot = self.ledgers.len() as u32;
        self.ledgers.push(LedgerSlot { ledger: Ledger { timestamp: ts, ..*l }, totals: Balances::default() });
        self.ledger_index.insert(l.id, slot);
        self.record(Undo::LedgerInserted);
        let settlement =
            Account { id: l.settlement_account_id, ledger: l.id, code: l.settlement_account_code, timestamp: ts, ..Default::default() };
        self.insert_account(settlement, slot);
        R::Ok
    }
}

pub(super) fn ledger_exists(l: &Ledger, e: &Ledger) -> ResultCode {
    use ResultCode as R;
    if l.flags != e.flags {
        R::ExistsWithDifferentFlags
    } else if l.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if l.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if l.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if l.currency != e.currency {
        R::ExistsWithDifferentCurrency
    } else if l.scale != e.scale {
        R::ExistsWithDifferentScale
    } else if l.settlement_account_id != e.settlement_account_id || l.settlement_account_code != e.settlement_account_code {
        R::ExistsWithDifferentSettlementAccount
    } else {
        R::Exists
    }
}
