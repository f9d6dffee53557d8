//! `desk import`: statements booked onto the shadow accounts and matched to orders and payouts.
//!
//! 1. Every file is read and checked first: an error anywhere imports nothing.
//! 2. Each line becomes one transfer whose id is derived from the bank account and the bank's
//!    entry reference (`ids::line_id`), so a line imported twice, or carried by overlapping
//!    statements, moves once. Money in that names orders (their payment references in the
//!    title or end-to-end id) goes to those orders' accounts, split in the order named, each
//!    its need and the rest to the last; money out that names a payout (its end-to-end id)
//!    captures that payout's hold. Everything else goes to (or comes from) suspense.
//! 3. Every order that received money is settled if it is paid (`docs/desk.md`, "Matching").
//! 4. Each statement's closing balance is compared with the shadow's balance as of that time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bursar_engine::{filter_flags, transfer_flags, Command, ResultCode, Transfer};
use bursar_net::client::Client;
use rust_decimal::Decimal;

use crate::codes;
use crate::config::{Currency, DeskConfig};
use crate::ids::{self, derive, line_id, pack_iban, Tag};
use crate::ledger;
use crate::orders::{self, Order};
use crate::statement::{self, Line, Statement};

/// Part numbers of a line's transfer when its first choice failed and it went to suspense.
const FALLBACK_PART: u32 = 1000;

/// What an import did, for the cashier.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines read.
    pub lines: usize,
    /// Lines (or parts) booked now.
    pub booked: usize,
    /// Lines (or parts) already booked by an earlier import.
    pub already: usize,
    /// `(position, order reference, amount)` of money paid to orders.
    pub paid: Vec<(String, String, String)>,
    /// `(position, amount, why)` of lines booked to suspense now.
    pub suspense: Vec<(String, String, String)>,
    /// `(position, end-to-end id)` of payouts the bank confirmed now.
    pub confirmed: Vec<(String, String)>,
    /// Orders exchanged now: `(reference, what was bought)`.
    pub exchanged: Vec<(String, String)>,
    /// Orders paid but not exchanged: `(reference, why)`.
    pub not_exchanged: Vec<(String, String)>,
    /// `(position, what)` of lines whose bank reference was imported before with another amount
    /// or kind: the bank reused a reference, or two files disagree. Nothing was booked for them.
    pub conflicts: Vec<(String, String)>,
    /// `(bank account, statement, closing balance, shadow balance)` for every statement with a
    /// closing balance; a difference is a finding the cashier must look at.
    pub balances: Vec<(String, String, Decimal, Decimal)>,
}

impl Report {
    /// Whether the cashier must look: a closing balance differs from its shadow's, or a line
    /// conflicts with one imported before.
    pub fn alarming(&self) -> bool {
        self.mismatches().count() > 0 || !self.conflicts.is_empty()
    }

    /// Statements whose closing balance differs from the shadow's.
    pub fn mismatches(&self) -> impl Iterator<Item = &(String, String, Decimal, Decimal)> {
        self.balances.iter().filter(|(_, _, closing, shadow)| closing != shadow)
    }
}

/// One planned transfer for a line, and what to say about it.
struct Planned {
    command: Transfer,
    /// Its line's index in the import.
    line: usize,
    /// Which part of its line (a line paying several orders has several).
    part: u32,
    /// The amount in words ("100.00 EUR").
    shown: String,
    position: String,
    what: What,
}

enum What {
    Order(u64),
    Suspense(String),
    Payout(String),
}

/// A statement's line and its bank account's currency.
struct Booked<'a> {
    line: &'a Line,
    currency: &'a Currency,
    account: &'a str,
}

/// Imports the statement files at `paths` (formats sniffed), in the order given.
pub async fn import(client: &Client, config: &DeskConfig, paths: &[PathBuf]) -> Result<Report> {
    let mut statements = Vec::new();
    for path in paths {
        statements.extend(statement::read_file(path, config.csv.as_ref())?);
    }
    import_statements(client, config, &statements).await
}

/// Imports parsed statements.
pub async fn import_statements(client: &Client, config: &DeskConfig, statements: &[Statement]) -> Result<Report> {
    let booked = check(config, statements)?;
    let mut report = Report { lines: booked.len(), ..Report::default() };
    let numbers: Vec<u64> = {
        let mut n: Vec<u64> = booked.iter().filter(|b| b.line.credit).flat_map(|b| references(config, b.line)).collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    let found: BTreeMap<u64, Order> = numbers
        .iter()
        .copied()
        .zip(orders::load_with(client, config, &numbers, false).await?)
        .filter_map(|(n, o)| o.map(|o| (n, o)))
        .collect();
    let payouts = payout_holds(client, config, &booked).await?;
    let mut planned = Vec::with_capacity(booked.len());
    for (i, b) in booked.iter().enumerate() {
        planned.extend(plan(config, i, b, &found, &payouts)?);
    }
    // Every order a line pays, booked now or before (an import cut short is finished by the next).
    let mut paying: BTreeMap<u64, Vec<(u64, u128)>> = BTreeMap::new();
    for p in &planned {
        if let What::Order(n) = p.what {
            paying.entry(n).or_default().push((p.command.user_data_64, p.command.amount));
        }
    }
    book(client, config, &booked, planned, &mut report).await?;
    let mut paid: Vec<Order> = paying.keys().filter_map(|n| found.get(n).cloned()).collect();
    orders::refresh_accounts(client, &mut paid).await?;
    settle_paid(client, config, paid, &paying, &mut report).await?;
    check_balances(client, config, statements, &mut report).await?;
    Ok(report)
}

/// Every line with its currency; an error (nothing imported) for an account the desk does not
/// have, a line in another currency, or an amount finer than the currency's minor unit.
fn check<'a>(config: &'a DeskConfig, statements: &'a [Statement]) -> Result<Vec<Booked<'a>>> {
    let mut booked = Vec::new();
    for s in statements {
        let currency = config
            .by_account(&s.account)
            .with_context(|| format!("statement {}: account {} is not one of the desk's bank accounts", s.id, s.account))?;
        if let Some(c) = s.currency.as_deref().filter(|c| *c != currency.code) {
            bail!("statement {}: account {} is in {} in the configuration, the statement says {c}", s.id, s.account, currency.code);
        }
        for line in &s.lines {
            if line.currency != currency.code {
                bail!("statement {}: {}: {} on an account in {}", s.id, line.position, line.currency, currency.code);
            }
            currency.minor(line.amount).with_context(|| format!("statement {}: {}", s.id, line.position))?;
            booked.push(Booked { line, currency, account: &s.account });
        }
    }
    Ok(booked)
}

/// The order numbers a line names, in order.
fn references(config: &DeskConfig, line: &Line) -> Vec<u64> {
    let text = format!("{} {}", line.remittance, line.end_to_end_id.as_deref().unwrap_or(""));
    ids::find_references(&config.reference_prefix, &text)
}

/// The payout or refund hold a debit line names, if it names one of this desk's on its account.
fn named_payout(config: &DeskConfig, line: &Line) -> Option<u128> {
    let candidates =
        line.end_to_end_id.iter().map(String::as_str).chain(line.remittance.split(|c: char| c.is_whitespace() || c == '/' || c == '+'));
    for text in candidates {
        if let Some((refund, k, n)) = ids::parse_end_to_end_id(&config.reference_prefix, text) {
            return Some(derive(config.namespace, if refund { Tag::Refund } else { Tag::Payout }, k, n));
        }
    }
    None
}

/// The payout holds the debit lines name that exist on their account's shadow.
async fn payout_holds(client: &Client, config: &DeskConfig, booked: &[Booked<'_>]) -> Result<BTreeMap<u128, Transfer>> {
    let ids: Vec<u128> = booked.iter().filter(|b| !b.line.credit).filter_map(|b| named_payout(config, b.line)).collect();
    let found = ledger::transfers(client, &ids).await?;
    Ok(ids.into_iter().zip(found).filter_map(|(id, t)| t.map(|t| (id, t))).collect())
}

/// The transfers of one line.
fn plan(
    config: &DeskConfig,
    index: usize,
    b: &Booked<'_>,
    orders: &BTreeMap<u64, Order>,
    payouts: &BTreeMap<u128, Transfer>,
) -> Result<Vec<Planned>> {
    let (line, c) = (b.line, b.currency);
    let amount = c.minor(line.amount)?;
    let shown = |minor: u128| format!("{} {}", c.major(minor), c.code);
    let id = |part| line_id(config.namespace, b.account, &line.entry_ref, part);
    let base = Transfer { ledger: c.ledger, user_data_64: line.booked_at_ns, amount, ..Transfer::default() };
    if !line.credit {
        if let Some(hold) = named_payout(config, line).and_then(|h| payouts.get(&h)).filter(|h| h.credit_account_id == c.shadow_account) {
            let capture = Transfer { id: id(0), pending_id: hold.id, flags: transfer_flags::POST_PENDING, ledger: 0, ..base };
            let e2e = line.end_to_end_id.clone().unwrap_or_default();
            return Ok(vec![Planned {
                command: capture,
                line: index,
                part: 0,
                shown: shown(amount),
                position: line.position.clone(),
                what: What::Payout(e2e),
            }]);
        }
        let out = Transfer {
            id: id(0),
            debit_account_id: c.suspense_account,
            credit_account_id: c.shadow_account,
            code: codes::SUSPENSE_OUT,
            ..base
        };
        let what = What::Suspense("money out naming no payout".into());
        return Ok(vec![Planned { command: out, line: index, part: 0, shown: shown(amount), position: line.position.clone(), what }]);
    }
    // The payer's account, kept for refunds (up to 30 symbols fit the 20 bytes), also on a
    // line parked in suspense: the cashier may assign it to an order.
    let payer: [u8; 20] = line.counterparty_account.as_deref().and_then(pack_iban).unwrap_or([0; 20]);
    let (payer_high, payer_low) =
        (u128::from_be_bytes(payer[..16].try_into().expect("16")), u32::from_be_bytes(payer[16..].try_into().expect("4")));
    let named: Vec<&Order> =
        references(config, line).iter().filter_map(|n| orders.get(n)).filter(|o| o.quote.from_ledger == c.ledger).collect();
    if named.is_empty() {
        let why = if references(config, line).is_empty() { "no order reference" } else { "its reference names no order in this currency" };
        let t = Transfer {
            id: id(0),
            debit_account_id: c.shadow_account,
            credit_account_id: c.suspense_account,
            code: codes::SUSPENSE_IN,
            user_data_128: payer_high,
            user_data_32: payer_low,
            ..base
        };
        return Ok(vec![Planned {
            command: t,
            line: index,
            part: 0,
            shown: shown(amount),
            position: line.position.clone(),
            what: What::Suspense(why.into()),
        }]);
    }
    let mut left = amount;
    let mut out = Vec::new();
    for (part, o) in named.iter().enumerate() {
        let share = if part + 1 == named.len() { left } else { left.min(o.need()) };
        left -= share;
        if share == 0 {
            continue;
        }
        let t = Transfer {
            id: id(part as u32),
            debit_account_id: c.shadow_account,
            credit_account_id: o.account_from.id,
            amount: share,
            code: codes::LINE_IN,
            user_data_128: payer_high,
            user_data_32: payer_low,
            ..base
        };
        out.push(Planned {
            command: t,
            line: index,
            part: part as u32,
            shown: shown(share),
            position: line.position.clone(),
            what: What::Order(o.number),
        });
    }
    Ok(out)
}

/// Submits the planned transfers; one that fails goes to suspense instead (a payout capture the
/// hold refuses, an order account that refuses money), with the reason in the report.
async fn book(client: &Client, config: &DeskConfig, booked: &[Booked<'_>], planned: Vec<Planned>, report: &mut Report) -> Result<()> {
    let commands: Vec<Command> = planned.iter().map(|p| Command::Transfer(p.command)).collect();
    let results = ledger::submit(client, &commands).await?;
    let mut fallbacks = Vec::new();
    for (p, code) in planned.into_iter().zip(results) {
        match code {
            ResultCode::Ok => report.booked += 1,
            // The same bank entry from another file: the first import's details stand (another
            // format may carry less, a date instead of a time, or a title matched differently).
            ResultCode::Exists
            | ResultCode::ExistsWithDifferentUserData128
            | ResultCode::ExistsWithDifferentUserData64
            | ResultCode::ExistsWithDifferentUserData32
            | ResultCode::ExistsWithDifferentDebitAccountId
            | ResultCode::ExistsWithDifferentCreditAccountId => {
                report.already += 1;
                continue;
            }
            conflict @ (ResultCode::ExistsWithDifferentAmount
            | ResultCode::ExistsWithDifferentFlags
            | ResultCode::ExistsWithDifferentPendingId
            | ResultCode::ExistsWithDifferentLedger
            | ResultCode::ExistsWithDifferentCode) => {
                report
                    .conflicts
                    .push((p.position, format!("{} of {}: imported before as another entry ({})", p.shown, p.command.id, conflict.name())));
                continue;
            }
            failed => {
                fallbacks.push(fallback(config, booked, &p, failed)?);
                continue;
            }
        }
        match p.what {
            What::Order(n) => report.paid.push((p.position, ids::reference(&config.reference_prefix, n), p.shown)),
            What::Suspense(why) => report.suspense.push((p.position, p.shown, why)),
            What::Payout(e2e) => report.confirmed.push((p.position, e2e)),
        }
    }
    if fallbacks.is_empty() {
        return Ok(());
    }
    let commands: Vec<Command> = fallbacks.iter().map(|p| Command::Transfer(p.command)).collect();
    for (p, code) in fallbacks.into_iter().zip(ledger::submit(client, &commands).await?) {
        match code {
            ResultCode::Ok => report.booked += 1,
            ResultCode::Exists => {
                report.already += 1;
                continue;
            }
            other => bail!("{}: booking to suspense failed: {}", p.position, other.name()),
        }
        if let What::Suspense(why) = p.what {
            report.suspense.push((p.position, p.shown, why));
        }
    }
    Ok(())
}

/// The suspense transfer of a line (part) whose first choice failed with `code`: its own id
/// (the failed one is decided), the same amount and booking time.
fn fallback(config: &DeskConfig, booked: &[Booked<'_>], p: &Planned, code: ResultCode) -> Result<Planned> {
    let b = &booked[p.line];
    let c = b.currency;
    let id = line_id(config.namespace, b.account, &b.line.entry_ref, FALLBACK_PART + p.part);
    let (debit_account_id, credit_account_id, code_booked) = if b.line.credit {
        (c.shadow_account, c.suspense_account, codes::SUSPENSE_IN)
    } else {
        (c.suspense_account, c.shadow_account, codes::SUSPENSE_OUT)
    };
    let command = Transfer {
        id,
        debit_account_id,
        credit_account_id,
        amount: p.command.amount,
        ledger: c.ledger,
        code: code_booked,
        user_data_64: b.line.booked_at_ns,
        ..Transfer::default()
    };
    let what = What::Suspense(format!("refused: {}", code.name()));
    Ok(Planned { command, line: p.line, part: p.part, shown: p.shown.clone(), position: p.position.clone(), what })
}

/// `booked_at` as the engine takes it: a booking after the server's clock counts as now (0).
pub fn booked_at_for_engine(booked_at_ns: u64, clock: u64) -> u64 {
    if booked_at_ns == 0 || booked_at_ns > clock {
        0
    } else {
        booked_at_ns
    }
}

/// Settles the orders `numbers` if they are paid (after the cashier assigned money to them), as
/// an import does; the report says what became of each.
pub async fn settle_orders(client: &Client, config: &DeskConfig, numbers: &[u64]) -> Result<Report> {
    let mut paid: Vec<Order> = orders::load_with(client, config, numbers, false).await?.into_iter().flatten().collect();
    orders::refresh_accounts(client, &mut paid).await?;
    let mut report = Report::default();
    // No lines of this run: each order's lines are read from the server.
    let paying = numbers.iter().map(|n| (*n, Vec::new())).collect();
    settle_paid(client, config, paid, &paying, &mut report).await?;
    Ok(report)
}

/// Settles every order in `paid` (as loaded, its accounts read after the lines were booked)
/// whose money is there: the whole reservation when paid in
/// full (booked when the lines, in booking order, first covered it), what was paid when the
/// shortfall is within the currency's tolerance; otherwise it waits.
async fn settle_paid(
    client: &Client,
    config: &DeskConfig,
    paid: Vec<Order>,
    paying: &BTreeMap<u64, Vec<(u64, u128)>>,
    report: &mut Report,
) -> Result<()> {
    let now = crate::ops::clock(client).await?;
    let mut commands = Vec::new();
    let mut settling = Vec::new();
    for o in paid {
        if o.leg2.is_some() || o.cancelled {
            continue;
        }
        let Some((from, to)) = o.currencies(config) else { continue };
        let (paid, need) = (o.paid(), o.need());
        let tolerance = from.minor(from.underpayment_tolerance).unwrap_or(0);
        let reference = ids::reference(&config.reference_prefix, o.number);
        if paid < need && (paid == 0 || need - paid > tolerance) {
            report
                .not_exchanged
                .push((reference, format!("{} of {} paid: waiting for the rest or the cashier", from.major(paid), from.major(need))));
            continue;
        }
        let lines = order_lines(client, &o, &paying[&o.number]).await?;
        let covered = covered_at(&lines, need.min(paid));
        let booked_at = booked_at_for_engine(covered.max(o.quote.timestamp), now);
        commands.push(Command::Exchange(crate::ops::exchange(config, &o, paid.min(need), booked_at, paid >= need)));
        settling.push((reference, o, to));
    }
    let results = ledger::submit(client, &commands).await?;
    for ((reference, o, to), code) in settling.into_iter().zip(results) {
        match code {
            ResultCode::Ok | ResultCode::Exists => {
                let bought = if o.paid() >= o.need() {
                    o.hold.amount
                } else {
                    bursar_engine::convert(o.paid(), false, o.quote.rate, o.quote.rate_scale).map_or(0, |(_, b)| b)
                };
                report.exchanged.push((reference, format!("{} {}", to.major(bought), to.code)));
            }
            ResultCode::QuoteExpired => {
                report.not_exchanged.push((reference, "booked after the quote's validity: re-rate or cancel".into()))
            }
            ResultCode::PendingTransferExpired => {
                report.not_exchanged.push((reference, "the reservation expired before the statement came: re-rate or cancel".into()))
            }
            other => report.not_exchanged.push((reference, format!("refused: {}", other.name()))),
        }
    }
    Ok(())
}

/// `(booked_at, amount)` of every payment line of an order: this import's when they explain all
/// it received, else read from the server.
async fn order_lines(client: &Client, o: &Order, here: &[(u64, u128)]) -> Result<Vec<(u64, u128)>> {
    if here.iter().map(|l| l.1).sum::<u128>() == o.account_from.credits_posted {
        return Ok(here.to_vec());
    }
    let lines = ledger::all_transfers(client, o.account_from.id, codes::LINE_IN, filter_flags::CREDITS).await?;
    Ok(lines.iter().map(|t| (t.user_data_64, t.amount)).collect())
}

/// When lines sorted by booking time first sum to `need` (the last line's time if never).
fn covered_at(lines: &[(u64, u128)], need: u128) -> u64 {
    let mut sorted = lines.to_vec();
    sorted.sort_unstable();
    let mut sum = 0u128;
    for &(at, amount) in &sorted {
        sum += amount;
        if sum >= need {
            return at;
        }
    }
    sorted.last().map_or(0, |l| l.0)
}

/// Compares each statement's closing balance with its shadow's balance as of the closing time:
/// the posted balance now, less what was posted with a booking time (`user_data_64`) after it.
/// Only transfers stored since a day before the earliest closing time are read (a line cannot
/// be imported before the bank booked it, and a date-only booking counts as its day's end), so
/// the check costs what was imported lately, not the account's whole history.
async fn check_balances(client: &Client, config: &DeskConfig, statements: &[Statement], report: &mut Report) -> Result<()> {
    for c in &config.currencies {
        let mine: Vec<&Statement> =
            statements.iter().filter(|s| s.closing.is_some() && config.by_account(&s.account).is_some_and(|x| x.code == c.code)).collect();
        let Some(earliest) = mine.iter().filter_map(|s| s.closing).map(|b| b.at_ns).min() else { continue };
        let shadow = ledger::accounts(client, &[c.shadow_account]).await?.pop().flatten().context("the shadow account")?;
        let now = shadow.debits_posted as i128 - shadow.credits_posted as i128;
        let since = earliest.saturating_sub(crate::statement::NS_PER_DAY);
        let recent = ledger::transfers_since(client, c.shadow_account, 0, filter_flags::DEBITS | filter_flags::CREDITS, since).await?;
        for s in mine {
            let closing = s.closing.expect("filtered");
            let later: i128 = recent
                .iter()
                .filter(|t| t.flags & transfer_flags::PENDING == 0 && t.user_data_64 > closing.at_ns)
                .map(|t| if t.debit_account_id == c.shadow_account { t.amount as i128 } else { -(t.amount as i128) })
                .sum();
            let shadow = Decimal::from_i128_with_scale(now - later, u32::from(c.scale));
            report.balances.push((s.account.clone(), s.id.clone(), closing.amount, shadow));
        }
    }
    Ok(())
}
