//! `bursar demo`: a payment day through a durable node (accounts opened and topped up, random
//! transfers, holds captured, released and expired), then a month of recurring payments run by
//! the engine on its clock (salaries, rent, weekly bills, phone top-ups), every batch fsynced
//! before it applies; then a snapshot, a restart from disk, and the state checked identical.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bursar_audit::format_minor;
use bursar_engine::replay::hex;
use bursar_engine::{
    account_flags, filter_flags, order_flags, order_unit, trigger_kind, Account, AccountFilter, Command, Ledger, LedgerTotals, OrderSpec,
    ResultCode, RunEvent, StandingOrder, Transfer, Trigger, BATCH_COMMANDS_MAX,
};
use bursar_net::Node;
use bursar_wal::{FsStorage, WalConfig};

use crate::open_node;

/// The demo's ledger (ISO 4217 number of the euro) and its settlement account.
const EUR: u32 = 978;
const SETTLEMENT: u128 = 1 << 100;
/// The first hold's id.
const HOLD: u128 = 1 << 90;
/// The month's accounts: the employer, the landlord, the utility, the phone operator, and account
/// 1's prepaid phone.
const EMPLOYER: u128 = (1 << 80) + 1;
const LANDLORD: u128 = (1 << 80) + 2;
const UTILITY: u128 = (1 << 80) + 3;
const OPERATOR: u128 = (1 << 80) + 4;
const PHONE: u128 = (1 << 80) + 5;
/// Employees paid by standing order in the month (accounts 1 to this many).
const EMPLOYEES_MAX: u64 = 50;
const NS_PER_DAY: u64 = 86_400_000_000_000;

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
    let month = month(&mut day, accounts.min(EMPLOYEES_MAX) as u128)?;
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
    out!("  a month         {month}");
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

/// A month of recurring payments, run by the engine as the clock passes day by day: salaries on
/// the 25th, rent on the 1st, a weekly bill, a daily phone spend and a top-up whenever the phone
/// runs low. Returns what ran, in words; fails unless every order ran exactly as due.
fn month(day: &mut Day, employees: u128) -> Result<String> {
    let account = |id| Command::CreateAccount(Account { id, ledger: EUR, code: 20, ..Default::default() });
    let mut setup: Vec<Command> = [EMPLOYER, LANDLORD, UTILITY, OPERATOR, PHONE].into_iter().map(account).collect();
    let credit = |id, account, amount| {
        Command::Credit(Transfer { id, credit_account_id: account, amount, ledger: EUR, code: 1, ..Default::default() })
    };
    setup.push(credit(EMPLOYER, EMPLOYER, 100_000_000));
    // Account 1 pays the weekly bill and funds the phone from the start of the month.
    setup.push(credit(HOLD + 7, 1, 50_000));
    day.run_ok(&setup, "the month's accounts")?;
    let order = |id, from, to, amount, unit, day_of_month| StandingOrder {
        id,
        debit_account_id: from,
        credit_account_id: to,
        amount,
        period: 1,
        unit,
        day: day_of_month,
        first_due_at: 0,
        ledger: EUR,
        code: 9,
        ..Default::default()
    };
    let mut orders = Vec::new();
    for e in 1..=employees {
        orders.push(Command::CreateStandingOrder(order(e, EMPLOYER, e, 250_000, order_unit::MONTHS, 25)));
        orders.push(Command::CreateStandingOrder(order(1_000 + e, e, LANDLORD, 80_000, order_unit::MONTHS, 1)));
    }
    orders.push(Command::CreateStandingOrder(order(2_001, 1, UTILITY, 4_500, order_unit::WEEKS, 0)));
    orders.push(Command::CreateStandingOrder(order(2_002, PHONE, OPERATOR, 400, order_unit::DAYS, 0)));
    let topup = Trigger {
        id: 2_003,
        debit_account_id: 1,
        credit_account_id: PHONE,
        threshold: 500,
        target: 2_000,
        flags: order_flags::TOP_UP,
        kind: trigger_kind::THRESHOLD,
        ledger: EUR,
        code: 6,
        ..Default::default()
    };
    orders.push(Command::CreateTrigger(topup));
    orders.push(Command::Transfer(Transfer {
        id: HOLD + 6,
        debit_account_id: 1,
        credit_account_id: PHONE,
        amount: 1_000,
        ledger: EUR,
        code: 6,
        ..Default::default()
    }));
    day.run_ok(&orders, "standing orders and the top-up trigger")?;
    for _ in 0..31 {
        day.now += NS_PER_DAY;
        day.run(&[])?; // a tick: what came due runs
    }
    let engine = day.node.engine();
    // Runs made (the history keeps only the newest eight), each of which must have paid.
    let paid =
        |id: u128| engine.order(id).map_or(0, |o| if o.history.iter().all(|e| e.event == RunEvent::Paid) { o.runs as usize } else { 0 });
    let salaries: usize = (1..=employees).map(paid).sum();
    let rents: usize = (1..=employees).map(|e| paid(1_000 + e)).sum();
    let (bills, spends, topups) = (paid(2_001), paid(2_002), paid(2_003));
    if salaries != employees as usize || rents != employees as usize || bills < 4 || spends < 30 || topups < 5 {
        bail!("the month ran {salaries} salaries, {rents} rents, {bills} bills, {spends} phone spends, {topups} top-ups");
    }
    let Some(OrderSpec::Trigger(_)) = engine.order(2_003).map(|o| o.spec) else { bail!("the top-up trigger is gone") };
    Ok(format!(
        "{salaries} salaries of 2 500.00 EUR on the 25th and {rents} rents of 800.00 on the 1st by standing order, {bills} weekly bills, \
         {spends} daily phone spends and {topups} top-ups back to 20.00 when it fell below 5.00: each once, on the server's clock"
    ))
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
