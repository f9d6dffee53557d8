//! `bursar desk`: the exchange desk's cashier commands over a running server (`docs/desk.md`).
//! Every command reads the desk's configuration, connects like `bursar client`, and prints text
//! or, with `--json`, one JSON object per line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bursar_audit::show_time;
use bursar_desk::config::DeskConfig;
use bursar_desk::ids::{self, unpack_name};
use bursar_desk::ops::{self, Amount, NewOrder};
use bursar_desk::orders::{self, Order};
use bursar_net::client::Client;
use clap::{Args, Subcommand, ValueEnum};
use rust_decimal::Decimal;
use serde_json::json;

/// `bursar desk`'s arguments.
#[derive(Args, Debug)]
pub struct DeskArgs {
    /// The desk's configuration (TOML; `docs/desk.md` has an example).
    #[arg(long, default_value = "desk.toml")]
    pub config: PathBuf,
    /// The server.
    #[command(flatten)]
    pub server: crate::client_cmd::Connection,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub op: DeskOp,
}

/// The cashier's commands.
#[derive(Subcommand, Debug)]
pub enum DeskOp {
    /// Create the ledgers, the desk's accounts and the opening balances (again: changes nothing).
    Setup,
    /// Publish a board rate: any customer may order at it while it holds.
    Quote {
        /// The currency the customer sells.
        #[arg(long)]
        from: String,
        /// The currency the customer buys.
        #[arg(long)]
        to: String,
        /// Units of `to` per unit of `from` ("4.3215").
        #[arg(long)]
        rate: Decimal,
    },
    /// Take an order: reserve the bought money and print the payment reference.
    Order(OrderArgs),
    /// List orders with their status (all of them, or the references given).
    Orders {
        /// Payment references (or order numbers).
        references: Vec<String>,
        /// Print every step of each order.
        #[arg(long)]
        history: bool,
    },
    /// Cancel an order; money that arrived is refunded by the next `desk payouts`.
    Cancel {
        /// The payment reference.
        reference: String,
    },
    /// Re-rate an order (money came too late for its rate, or the customer asks again).
    Rerate {
        /// The payment reference.
        reference: String,
        /// The new rate.
        #[arg(long)]
        rate: Decimal,
    },
    /// Exchange what an underpaid order received.
    Settle {
        /// The payment reference.
        reference: String,
    },
    /// List the statement lines in suspense (no order or payout explained them).
    Suspense,
    /// Assign a line in suspense (money in) to an order, then settle the order.
    Assign {
        /// The suspense transfer's id, as `desk suspense` prints it.
        line: u128,
        /// The order's payment reference.
        #[arg(long)]
        order: String,
    },
    /// Import bank statements (camt.053, MT940 or CSV): book, match, settle, compare balances.
    Import {
        /// Statement files, imported in the order given.
        files: Vec<PathBuf>,
    },
    /// Order the payouts and refunds due, and write the file for the bank.
    Payouts {
        /// The file's format: pain.001 or csv.
        #[arg(long, value_enum, default_value_t = PayoutFormat::Pain001)]
        format: PayoutFormat,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Write the payouts ordered before and not yet confirmed (a lost file), ordering none.
        #[arg(long)]
        reissue: bool,
    },
}

/// `desk order`'s terms.
#[derive(Args, Debug)]
pub struct OrderArgs {
    /// The currency the customer sells.
    #[arg(long)]
    from: String,
    /// The currency the customer buys.
    #[arg(long)]
    to: String,
    /// The rate quoted to this customer ("4.3215"), or --quote.
    #[arg(long, conflicts_with = "quote", required_unless_present = "quote")]
    rate: Option<Decimal>,
    /// A board quote's id.
    #[arg(long)]
    quote: Option<u128>,
    /// What the customer sells ("100.00").
    #[arg(long, conflicts_with = "buy", required_unless_present = "buy")]
    sell: Option<Decimal>,
    /// What the customer buys ("432.15").
    #[arg(long)]
    buy: Option<Decimal>,
    /// The customer's name (the payout's beneficiary).
    #[arg(long)]
    name: String,
    /// The customer's account (IBAN) in the bought currency.
    #[arg(long)]
    iban: String,
    /// The order number (default: random); for tests and migrations.
    #[arg(long, hide = true)]
    number: Option<u64>,
}

/// Exit status of an import that found something the cashier must look at: a statement's
/// closing balance differs from its shadow's, or a line conflicts with one imported before.
pub const EXIT_BALANCE_MISMATCH: i32 = 3;

/// `desk payouts --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PayoutFormat {
    /// ISO 20022 pain.001.001.09.
    #[value(name = "pain.001", alias = "pain001")]
    Pain001,
    /// CSV.
    Csv,
}

/// Runs a desk command; `Ok(false)` when it ran but found something the cashier must look at
/// (a statement's closing balance differs from its shadow's).
pub async fn run(args: DeskArgs) -> Result<bool> {
    let config = DeskConfig::load(&args.config)?;
    let client = args.server.connect().await?;
    let result = dispatch(&client, &config, args.op, args.json).await;
    client.close().await;
    result
}

/// The command itself, on a connected client.
async fn dispatch(client: &Client, config: &DeskConfig, op: DeskOp, json: bool) -> Result<bool> {
    match op {
        DeskOp::Setup => {
            for line in ops::setup(client, config).await? {
                if json {
                    println!("{}", json!({ "setup": line }));
                } else {
                    println!("{line}");
                }
            }
        }
        DeskOp::Quote { from, to, rate } => {
            let id = ops::board_quote(client, config, &from, &to, rate).await?;
            let quote = bursar_desk::ledger::quotes(client, &[id]).await?.pop().flatten().context("the quote just made")?;
            let expires = show_time(bursar_engine::quote_expires_at(&quote));
            if json {
                println!("{}", json!({ "quote": id.to_string(), "from": from, "to": to, "rate": rate.to_string(), "expires_at": expires }));
            } else {
                println!("quote {id}: 1 {from} = {rate} {to} until {expires}");
            }
        }
        DeskOp::Order(o) => order(client, config, o, json).await?,
        DeskOp::Orders { references, history } => list(client, config, &references, history, json).await?,
        DeskOp::Cancel { reference } => {
            let number = number_of(config, &reference)?;
            let code = ops::cancel(client, config, number).await?;
            say(json, &reference, "cancel", code.name());
        }
        DeskOp::Rerate { reference, rate } => {
            let (generation, code) = ops::rerate(client, config, number_of(config, &reference)?, rate).await?;
            say(json, &reference, "rerate", &format!("generation {generation}, settle: {}", code.name()));
        }
        DeskOp::Settle { reference } => {
            let code = ops::settle(client, config, number_of(config, &reference)?).await?;
            say(json, &reference, "settle", code.name());
        }
        DeskOp::Suspense => {
            for p in bursar_desk::suspense::list(client, config).await? {
                let c = config.currency(&p.currency)?;
                let (t, amount) = (p.transfer, format!("{} {}", c.major(p.transfer.amount), c.code));
                let (booked, dir) = (show_time(t.user_data_64), if p.money_in { "in" } else { "out" });
                if json {
                    println!(
                        "{}",
                        json!({ "line": t.id.to_string(), "booked_at": booked, "amount": amount, "direction": dir, "assigned_to": p.assigned_to })
                    );
                } else {
                    let to = p.assigned_to.map_or(String::new(), |r| format!(", assigned to {r}"));
                    println!("{} {booked} money {dir} {amount}{to}", t.id);
                }
            }
        }
        DeskOp::Assign { line, order } => {
            let (code, report) = bursar_desk::suspense::assign(client, config, line, number_of(config, &order)?).await?;
            say(json, &order, "assign", code.name());
            print_import(&report, json);
        }
        DeskOp::Import { files } => {
            if files.is_empty() {
                bail!("name at least one statement file");
            }
            let report = bursar_desk::import::import(client, config, &files).await?;
            if print_import(&report, json) {
                return Ok(false);
            }
        }
        DeskOp::Payouts { format, out, reissue } => payouts(client, config, format, &out, reissue, json).await?,
    }
    Ok(true)
}

/// An order number from a payment reference (or a plain number).
fn number_of(config: &DeskConfig, text: &str) -> Result<u64> {
    if let Ok(n) = text.trim().parse::<u64>() {
        return Ok(n);
    }
    let found = ids::find_references(&config.reference_prefix, text);
    found
        .first()
        .copied()
        .with_context(|| format!("{text:?} is not a payment reference of this desk ({}-XXXXXXXX-X)", config.reference_prefix))
}

fn say(json: bool, reference: &str, what: &str, result: &str) {
    if json {
        println!("{}", json!({ "order": reference, what: result }));
    } else {
        println!("{reference}: {what}: {result}");
    }
}

async fn order(client: &Client, config: &DeskConfig, o: OrderArgs, json: bool) -> Result<()> {
    let amount = match (o.sell, o.buy) {
        (Some(s), None) => Amount::Sell(s),
        (None, Some(b)) => Amount::Buy(b),
        _ => bail!("say --sell or --buy"),
    };
    let new = NewOrder {
        from: o.from,
        to: o.to,
        quote: o.quote,
        rate: o.rate,
        amount,
        payee_name: o.name.clone(),
        payee_iban: o.iban,
        number: o.number,
    };
    let number = ops::order(client, config, &new).await?;
    let placed = ops::one(client, config, number).await?;
    let (from, to) = placed.currencies(config).context("the order's currencies")?;
    let reference = ids::reference(&config.reference_prefix, number);
    let (pay, get) = (from.major(placed.need()), to.major(placed.hold.amount));
    let until = show_time(bursar_engine::quote_expires_at(&placed.quote));
    let account = &from.iban;
    if json {
        let value = json!({
            "reference": reference, "number": number, "pay": pay.to_string(), "pay_currency": from.code, "to_account": account,
            "receives": get.to_string(), "receives_currency": to.code, "rate_holds_until": until, "name_cut_to_28_bytes": ids::pack_name(&o.name).1,
        });
        println!("{value}");
    } else {
        println!(
            "order {reference}: pay {pay} {} to {account} with the title \"{reference}\" by {until}; receives {get} {}",
            from.code, to.code
        );
        if ids::pack_name(&o.name).1 {
            println!("note: the name is kept as {:?} (28 bytes)", unpack_name(ids::pack_name(&o.name).0));
        }
    }
    Ok(())
}

async fn list(client: &Client, config: &DeskConfig, references: &[String], history: bool, json: bool) -> Result<()> {
    let numbers: Vec<u64> = if references.is_empty() {
        orders::all_numbers(client, config).await?
    } else {
        references.iter().map(|r| number_of(config, r)).collect::<Result<_>>()?
    };
    let now = ops::clock(client).await?;
    for (number, found) in numbers.iter().zip(orders::load(client, config, &numbers).await?) {
        let reference = ids::reference(&config.reference_prefix, *number);
        let Some(o) = found else {
            if json {
                println!("{}", json!({ "reference": reference, "found": false }));
            } else {
                println!("{reference}: no such order");
            }
            continue;
        };
        print_order(config, &o, &reference, now, json);
        if history {
            print_history(client, config, &o, json).await?;
        }
    }
    Ok(())
}

fn print_order(config: &DeskConfig, o: &Order, reference: &str, now: u64, json: bool) {
    let Some((from, to)) = o.currencies(config) else { return };
    let name = o.payee_name();
    let status = o.status(now).name();
    let (need, paid, buys) = (from.major(o.need()), from.major(o.paid()), to.major(o.hold.amount));
    if json {
        let value = json!({
            "reference": reference, "found": true, "status": status, "name": name, "generation": o.generation,
            "sells": format!("{need} {}", from.code), "received": format!("{paid} {}", from.code), "buys": format!("{buys} {}", to.code),
            "reserved_until": show_time(o.expires_at), "payouts": o.payouts.len(), "refunds": o.refunds.len(),
        });
        println!("{value}");
    } else {
        println!(
            "{reference} {status}: {name}, sells {need} {} for {buys} {} (received {paid} {} not yet exchanged); reserved until {}{}",
            from.code,
            to.code,
            from.code,
            show_time(o.expires_at),
            if o.generation > 0 { format!(", re-rated {}x", o.generation) } else { String::new() }
        );
    }
}

/// Every transfer on the order's two accounts, oldest first, named by what the desk made it for.
async fn print_history(client: &Client, config: &DeskConfig, o: &Order, json: bool) -> Result<()> {
    let mut steps = Vec::new();
    for account in [o.account_from.id, o.account_to.id] {
        let flags = bursar_engine::filter_flags::DEBITS | bursar_engine::filter_flags::CREDITS;
        steps.extend(bursar_desk::ledger::all_transfers(client, account, 0, flags).await?);
    }
    steps.sort_by_key(|t| t.timestamp);
    steps.dedup_by_key(|t| t.id);
    for t in steps {
        let what = step_name(config, &t);
        let currency = config.by_ledger(t.ledger).map_or(String::new(), |c| format!("{} {}", c.major(t.amount), c.code));
        if json {
            println!("{}", json!({ "at": show_time(t.timestamp), "step": what, "amount": currency, "transfer": t.id.to_string() }));
        } else {
            println!("  {} {what}: {currency}", show_time(t.timestamp));
        }
    }
    Ok(())
}

fn step_name(config: &DeskConfig, t: &bursar_engine::Transfer) -> String {
    use bursar_desk::ids::Tag;
    let Some((tag, generation, _)) = ids::split(config.namespace, t.id) else { return "transfer".into() };
    let name = match tag {
        x if x == Tag::OrderHold as u8 => "reservation (order placed)",
        x if x == Tag::Leg1 as u8 => "exchange: customer's money to the desk",
        x if x == Tag::Leg2 as u8 => "exchange: reservation captured",
        x if x == Tag::Cancel as u8 => "cancelled (reservation released)",
        x if x == Tag::Payout as u8 => "payout ordered",
        x if x == Tag::Refund as u8 => "refund ordered",
        x if x == Tag::Line as u8 && t.flags & bursar_engine::transfer_flags::POST_PENDING != 0 => "payout confirmed by the bank",
        x if x == Tag::Line as u8 => "payment booked by the bank",
        x if x == Tag::Assign as u8 => "payment assigned from suspense by the cashier",
        _ => "transfer",
    };
    if generation > 0 && tag != Tag::Line as u8 {
        format!("{name} (generation {generation})")
    } else {
        name.into()
    }
}

/// Prints the import's report; true if the cashier must look (`Report::alarming`).
fn print_import(r: &bursar_desk::import::Report, json: bool) -> bool {
    let alarming = r.alarming();
    if json {
        let balances: Vec<_> = r.balances.iter().map(|(a, s, c, sh)| json!({ "account": a, "statement": s, "closing": c.to_string(), "shadow": sh.to_string(), "equal": c == sh })).collect();
        let value = json!({
            "lines": r.lines, "booked": r.booked, "already_imported": r.already,
            "paid": r.paid.iter().map(|(p, o, a)| json!({ "line": p, "order": o, "amount": a })).collect::<Vec<_>>(),
            "suspense": r.suspense.iter().map(|(p, a, w)| json!({ "line": p, "amount": a, "why": w })).collect::<Vec<_>>(),
            "payouts_confirmed": r.confirmed.iter().map(|(p, e)| json!({ "line": p, "end_to_end_id": e })).collect::<Vec<_>>(),
            "exchanged": r.exchanged.iter().map(|(o, b)| json!({ "order": o, "bought": b })).collect::<Vec<_>>(),
            "not_exchanged": r.not_exchanged.iter().map(|(o, w)| json!({ "order": o, "why": w })).collect::<Vec<_>>(),
            "balances": balances,
            "conflicts": r.conflicts.iter().map(|(p, w)| json!({ "line": p, "what": w })).collect::<Vec<_>>(),
        });
        println!("{value}");
    } else {
        println!("{} lines: {} booked now, {} imported before", r.lines, r.booked, r.already);
        for (p, o, a) in &r.paid {
            println!("  {p}: {a} paid to {o}");
        }
        for (p, e) in &r.confirmed {
            println!("  {p}: payout {e} confirmed");
        }
        for (p, a, w) in &r.suspense {
            println!("  {p}: {a} to suspense ({w})");
        }
        for (o, b) in &r.exchanged {
            println!("  {o}: exchanged, bought {b}");
        }
        for (o, w) in &r.not_exchanged {
            println!("  {o}: not exchanged: {w}");
        }
        for (a, s, c, sh) in &r.balances {
            if c == sh {
                println!("  {a} statement {s}: closing balance {c} equals the shadow's");
            }
        }
    }
    for (a, s, c, sh) in r.mismatches() {
        eprintln!("bursar: BALANCE MISMATCH: account {a}, statement {s}: the bank says {c}, the shadow holds {sh} (difference {})", c - sh);
    }
    for (p, w) in &r.conflicts {
        eprintln!("bursar: CONFLICT: {p}: {w}");
    }
    alarming
}

async fn payouts(
    client: &Client,
    config: &DeskConfig,
    format: PayoutFormat,
    out: &std::path::Path,
    reissue: bool,
    json: bool,
) -> Result<()> {
    let (payments, skipped) = bursar_desk::payouts::make(client, config, reissue).await?;
    let now = ops::clock(client).await?;
    let created = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(now)).to_string();
    let text = match format {
        PayoutFormat::Pain001 => {
            let id = format!("{}-{}", config.reference_prefix, now / 1_000_000);
            bursar_desk::payouts::pain001(config, &payments, &id, &created, &created[..10])?
        }
        PayoutFormat::Csv => bursar_desk::payouts::csv(&payments)?,
    };
    if !payments.is_empty() {
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    for p in &payments {
        if json {
            println!(
                "{}",
                json!({ "end_to_end_id": p.end_to_end_id, "amount": p.amount.to_string(), "currency": p.currency, "to": p.creditor_iban, "name": p.creditor_name, "refund": p.refund })
            );
        } else {
            println!(
                "{} {} {} to {} ({}){}",
                p.end_to_end_id,
                p.amount,
                p.currency,
                p.creditor_iban,
                p.creditor_name,
                if p.refund { ", refund" } else { "" }
            );
        }
    }
    for s in &skipped {
        eprintln!("bursar: not paid out: {s}");
    }
    let file = if payments.is_empty() { String::new() } else { out.display().to_string() };
    if json {
        println!("{}", json!({ "payments": payments.len(), "file": file }));
    } else if payments.is_empty() {
        println!("no payouts due: {} not written", out.display());
    } else {
        println!("{} payment(s) written to {file}", payments.len());
    }
    Ok(())
}
