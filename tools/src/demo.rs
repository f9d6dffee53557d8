//! `bursar demo`: a payment day through a durable node (accounts opened and topped up, random
//! transfers, holds captured, released and expired), every batch fsynced before it applies; then
//! a snapshot, a restart from disk, and the state checked identical.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bursar_audit::format_minor;
use bursar_engine::replay::hex;
use bursar_engine::{
    account_flags, filter_flags, Account, AccountFilter, Command, Ledger, LedgerTotals, ResultCode, Transfer, BATCH_COMMANDS_MAX,
};
use bursar_net::Node;
use bursar_wal::{FsStorage, WalConfig};

use crate::open_node;

/// The demo's ledger (ISO 4217 number of the euro) and its settlement account.
const EUR: u32 = 978;
const SETTLEMENT: u128 = 1 << 100;
/// The first hold's id.
const HOLD: u128 = 1 << 90;

/// A node and the demo's clock.
struct Day {
    node: Node<FsStorage>,
    now: u64,
}

impl Day {
    /// Logs and syncs a batch, then applies it (the node's contract), and returns its results.
    fn run(&mut self, batch: &[Command]) -> Result<Vec<ResultCode>> {
        self.now += 1_000_000;
        let mut results = Vec::with_capacity(batch.len());
        self.node.submit(self.now, batch, &mut results)?;
        Ok(results)
    }

    /// Runs a batch whose every command must succeed.
    fn run_ok(&mut self, batch: &[Command], what: &str) -> Result<()> {
        match self.run(batch)?.iter().find(|r| **r != ResultCode::Ok) {
            Some(code) => bail!("{what}: {code} ({})", code.meaning()),
            None => Ok(()),
        }
    }
}

/// `bursar demo`.
pub fn run(data: Option<PathBuf>, accounts: u64, transfers: u64, seed: u64) -> Result<()> {
    let limits = bursar_engine::Limits::default();
    if accounts < 2 || accounts >= u64::from(limits.accounts_max) {
        bail!(
            "--accounts must be from 2 to {} (the engine's account limit, with the ledger's settlement account)",
            limits.accounts_max - 1
        );
    }
    // Top-ups, payments and the six hold commands all store a transfer.
    if accounts + transfers + 6 > u64::from(limits.transfers_max) {
        bail!("--accounts plus --transfers must stay within {} stored transfers (the engine's limit)", u64::from(limits.transfers_max) - 6);
    }
    let dir = prepare_dir(data)?;
    let (node, _) = open_node(&dir, WalConfig::default())?;
    let mut day = Day { node, now: 1_700_000_000_000_000_000 };
    open_accounts(&mut day, accounts)?;
    let (applied, rejected, elapsed) = payments(&mut day, accounts, transfers, seed)?;
    let expired = holds(&mut day)?;
    let syncs = day.node.wal().synced_seq();
    let digest = day.node.engine().digest();
    let restart = Instant::now();
    let snapshot_seq = day.node.snapshot()?;
    drop(day);
    let (node, report) = open_node(&dir, WalConfig::default())?;
    let restarted = restart.elapsed();
    if node.engine().digest() != digest {
        bail!("the state recovered from {} differs from the state before the restart", dir.display());
    }
    out!("bursar demo: {accounts} accounts, {applied} transfers applied, {rejected} rejected (insufficient funds)");
    out!(
        "  durable rate    {:.2} M transfers/s: each batch of up to {BATCH_COMMANDS_MAX} logged and fdatasynced before it applied ({syncs} log entries in {})",
        applied as f64 / elapsed.as_secs_f64() / 1e6,
        dir.display()
    );
    if !expired {
        bail!("the 30 s hold did not expire");
    }
    out!("  holds           captured 19.99 of 25.00 EUR, released one, one expired after 30 s");
    out!(
        "  restart         snapshot at entry {snapshot_seq} written and reopened from disk in {:.0} ms ({} entries replayed after it); state digest identical",
        restarted.as_secs_f64() * 1e3,
        report.entries_replayed
    );
    report_books(&node)
}

/// The ledger and `accounts` accounts (ids 1..), each topped up with 1 000.00 EUR.
fn open_accounts(day: &mut Day, accounts: u64) -> Result<()> {
    let ledger = Ledger {
        id: EUR,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: SETTLEMENT,
        settlement_account_code: 1,
        ..Default::default()
    };
    day.run_ok(&[Command::CreateLedger(ledger)], "create ledger")?;
    let ids: Vec<u128> = (1..=accounts as u128).collect();
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        let flags = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS;
        let open: Vec<Command> = chunk
            .iter()
            .map(|id| Command::CreateAccount(Account { id: *id, ledger: EUR, code: 10, flags, ..Default::default() }))
            .collect();
        day.run_ok(&open, "open accounts")?;
        let topups: Vec<Command> = chunk
            .iter()
            .map(|id| {
                Command::Credit(Transfer { id: *id, credit_account_id: *id, amount: 100_000, ledger: EUR, code: 1, ..Default::default() })
            })
            .collect();
        day.run_ok(&topups, "top up")?;
    }
    Ok(())
}

/// `transfers` random transfers between the accounts, in full batches: (applied, rejected, time).
fn payments(day: &mut Day, accounts: u64, transfers: u64, seed: u64) -> Result<(u64, u64, Duration)> {
    let mut rng = seed | 1;
    let mut random = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut next_id, mut applied, mut rejected) = (1u128 << 64, 0u64, 0u64);
    let started = Instant::now();
    while applied + rejected < transfers {
        let len = BATCH_COMMANDS_MAX.min((transfers - applied - rejected) as usize);
        let batch: Vec<Command> = (0..len)
            .map(|_| {
                let debit = 1 + random(accounts) as u128;
                // An offset in 1..accounts keeps the credit account different from the debit one.
                let credit = 1 + (debit - 1 + 1 + random(accounts - 1) as u128) % accounts as u128;
                next_id += 1;
                let amount = 1 + random(5_000) as u128;
                Command::Transfer(Transfer {
                    id: next_id,
                    debit_account_id: debit,
                    credit_account_id: credit,
                    amount,
                    ledger: EUR,
                    code: 2,
                    ..Default::default()
                })
            })
            .collect();
        let results = day.run(&batch)?;
        let ok = results.iter().filter(|r| **r == ResultCode::Ok).count() as u64;
        applied += ok;
        rejected += results.len() as u64 - ok;
    }
    Ok((applied, rejected, started.elapsed()))
}

/// A card authorisation captured in part, one released, one left to expire; whether it expired.
fn holds(day: &mut Day) -> Result<bool> {
    let hold = |id: u128, timeout: u32| {
        Command::Hold(Transfer {
            id,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 2_500,
            timeout,
            ledger: EUR,
            code: 3,
            ..Default::default()
        })
    };
    // However the payments left account 1, it can afford the three holds: a top-up first.
    let topup = Transfer { id: HOLD + 5, credit_account_id: 1, amount: 7_500, ledger: EUR, code: 1, ..Default::default() };
    day.run_ok(&[Command::Credit(topup)], "top up before the holds")?;
    day.run_ok(&[hold(HOLD, 0), hold(HOLD + 1, 0), hold(HOLD + 2, 30)], "holds")?;
    let resolve = [
        Command::Capture(Transfer { id: HOLD + 3, pending_id: HOLD, amount: 1_999, ..Default::default() }),
        Command::Release(Transfer { id: HOLD + 4, pending_id: HOLD + 1, ..Default::default() }),
    ];
    day.run_ok(&resolve, "capture and release")?;
    day.now += 31_000_000_000;
    day.run(&[])?; // a tick: the 30 s hold expires
    Ok(day.node.engine().hold(HOLD + 2).map(|h| h.status) == Some(bursar_engine::HoldStatus::Expired))
}

/// The books after the restart: ledger totals per code, the trial balance, account 1's last
/// entries, the invariants.
fn report_books(node: &Node<FsStorage>) -> Result<()> {
    let engine = node.engine();
    let totals: LedgerTotals = engine.ledger_totals(EUR).context("ledger totals")?;
    let flags = filter_flags::DEBITS | filter_flags::CREDITS | filter_flags::REVERSED;
    let statement = engine.get_account_transfers(&AccountFilter { account_id: 1, limit: 3, flags, ..Default::default() });
    let ledger = *engine.ledger(EUR).context("the demo's ledger")?;
    let eur = |v: u128| format_minor(v, &ledger);
    out!(
        "  ledger EUR      debits posted {}, credits posted {}, pending {}",
        eur(totals.totals.debits_posted),
        eur(totals.totals.credits_posted),
        eur(totals.totals.debits_pending)
    );
    for code in &totals.by_code {
        out!(
            "    code {:>4}     {} accounts, credits posted {}, debits posted {}",
            code.code,
            code.accounts,
            eur(code.totals.credits_posted),
            eur(code.totals.debits_posted)
        );
    }
    out!("  trial balance   {}", if totals.is_balanced() { "balanced" } else { "NOT BALANCED" });
    let entries: Vec<String> = statement.iter().map(|t| format!("{} {}", t.kind_name(), eur(t.amount))).collect();
    out!("  account 1       its last {} entries, newest first: {}", statement.len(), entries.join(", "));
    engine.check_invariants().map_err(anyhow::Error::msg).context("invariants")?;
    out!("  invariants      checked; state digest {}", hex(&engine.digest()));
    if !totals.is_balanced() {
        bail!("the ledger does not balance");
    }
    Ok(())
}

/// The demo's data directory, emptied if it is the demo's own default.
fn prepare_dir(data: Option<PathBuf>) -> Result<PathBuf> {
    let (dir, owned) = match data {
        Some(dir) => (dir, false),
        None => (PathBuf::from("data/demo"), true),
    };
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)?.next().is_none();
        if owned {
            std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
        } else if !empty {
            bail!("{} is not empty; the demo writes a fresh log (use another --data)", dir.display());
        }
    }
    Ok(dir)
}
