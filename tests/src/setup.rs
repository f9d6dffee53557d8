//! The setup batch the end-to-end and tools tests share: one EUR ledger and its accounts, and
//! a transfer between them.

use bursar_engine::{Account, Command, Ledger, Transfer};

/// Ledger 1 (EUR, scale 2, settlement account 1000) and accounts `1..=accounts` with code 10.
pub fn ledger_and_accounts(accounts: u128) -> Vec<Command> {
    let mut commands = vec![Command::CreateLedger(Ledger {
        id: 1,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: 1000,
        settlement_account_code: 1,
        ..Default::default()
    })];
    commands.extend((1..=accounts).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 10, ..Default::default() })));
    commands
}

/// Transfer `id` of `amount` from `debit` to `credit` on [`ledger_and_accounts`]'s ledger (code
/// 1); callers set flags and the rest with `..`.
pub fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, ..Default::default() }
}
