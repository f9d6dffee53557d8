//! The setup batch the end-to-end and tools tests share: one EUR ledger and its accounts.

use bursar_engine::{Account, Command, Ledger};

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
