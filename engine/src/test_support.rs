//! Shared setup for the engine's unit tests: one EUR ledger, accounts on it, posted transfers.

use crate::{transfer_flags, Account, Command, Engine, Ledger, Limits, ResultCode, Transfer};

/// Ledger 1 in EUR (scale 2) with its settlement account far above the test accounts' ids.
pub(crate) fn eur_ledger() -> Command {
    Command::CreateLedger(Ledger {
        id: 1,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: 1 << 40,
        settlement_account_code: 1,
        ..Default::default()
    })
}

/// Accounts with the given ids on ledger 1.
pub(crate) fn accounts(ids: impl IntoIterator<Item = u128>) -> Vec<Command> {
    ids.into_iter().map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })).collect()
}

/// A posted transfer on ledger 1.
pub(crate) fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Command {
    Command::Transfer(Transfer { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, ..Default::default() })
}

/// A hold of 10 from account 1 to account 2 on ledger 1, expiring `timeout` seconds after it is made (0: never).
pub(crate) fn hold(id: u128, timeout: u32) -> Command {
    Command::Hold(Transfer {
        id,
        debit_account_id: 1,
        credit_account_id: 2,
        amount: 10,
        ledger: 1,
        code: 1,
        timeout,
        flags: transfer_flags::PENDING,
        ..Transfer::default()
    })
}

/// The capture of the whole of hold `hold`, with `flags` besides `POST_PENDING`.
pub(crate) fn capture(id: u128, hold: u128, flags: u16) -> Command {
    Command::Capture(Transfer {
        id,
        pending_id: hold,
        amount: u128::MAX,
        flags: transfer_flags::POST_PENDING | flags,
        ..Transfer::default()
    })
}

/// The release of hold `hold`.
pub(crate) fn release(id: u128, hold: u128) -> Command {
    Command::Release(Transfer { id, pending_id: hold, flags: transfer_flags::VOID_PENDING, ..Transfer::default() })
}

/// Runs `commands` as one batch at `now` and asserts every one succeeded.
pub(crate) fn execute_ok(engine: &mut Engine, now: u64, commands: &[Command]) {
    let mut results = Vec::new();
    engine.execute(now, commands, &mut results).expect("batch");
    assert!(results.iter().all(|r| *r == ResultCode::Ok), "{results:?}");
}

/// A fresh engine with default limits.
pub(crate) fn engine() -> Engine {
    Engine::new(Limits::default())
}

/// A fresh engine holding ledger 1 and accounts with `ids` on it (made at time 1).
pub(crate) fn engine_with_accounts(ids: impl IntoIterator<Item = u128>) -> Engine {
    let mut engine = engine();
    let mut setup = vec![eur_ledger()];
    setup.extend(accounts(ids));
    execute_ok(&mut engine, 1, &setup);
    engine
}
