//! `bursar client standing-order …`, `trigger …` and `orders`: recurring payments from the
//! command line. Amounts are decimals in the ledger's currency, times RFC 3339 (UTC), periods
//! words ("month", "2 weeks", "90s"); the server runs every order on its own clock.

use anyhow::{bail, Context, Result};
use bursar_audit::{format_minor, show_time};
use bursar_engine::{
    catch_up, order_flags, order_unit, run_id, trigger_kind, Command, Order, OrderChange, OrderSpec, StandingOrder, Trigger,
};
use bursar_net::client::Client;
use clap::{Args, Subcommand};

use crate::client_cmd::{ledger_of, not_found, parse_window, to_minor};

/// A standing order's subcommands.
#[derive(Subcommand, Debug)]
pub enum StandingOrderOp {
    /// Pay a fixed amount from one account to another every period (salaries, rent, bills).
    Create(NewStandingOrder),
    #[command(flatten)]
    Manage(ManageOrder),
}

/// A trigger's subcommands.
#[derive(Subcommand, Debug)]
pub enum TriggerOp {
    /// Pay into an account when its available balance falls below a threshold (a top-up), or
    /// when it shows a debt (pay it off, up to a cap).
    Create(NewTrigger),
    #[command(flatten)]
    Manage(ManageOrder),
}

/// What can be done to any standing order or trigger.
#[derive(Subcommand, Debug)]
pub enum ManageOrder {
    /// Stop running it until resumed (periods due meanwhile are skipped).
    Pause { id: u128 },
    /// Run it again.
    Resume { id: u128 },
    /// Stop it for good.
    Cancel { id: u128 },
    /// Change the amount, from the next run ("250.00").
    Amend {
        id: u128,
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
    },
    /// Show orders: schedule, next due time, state and the last runs.
    Show { ids: Vec<u128> },
}

/// `standing-order create`.
#[derive(Args, Debug)]
pub struct NewStandingOrder {
    /// The order's id (its own id space, shared with triggers).
    #[arg(long)]
    id: u128,
    /// The account paying.
    #[arg(long)]
    from: u128,
    /// The account paid.
    #[arg(long)]
    to: u128,
    /// Each run's amount ("1500.00").
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// The ledger (currency) of both accounts.
    #[arg(long)]
    ledger: u32,
    /// Every run's transfer code.
    #[arg(long, default_value_t = 1)]
    code: u16,
    /// The period: "month", "3 months", "week", "2 days", "90s".
    #[arg(long, default_value = "month")]
    every: String,
    /// Monthly orders: the day of the month (31: each month's last day).
    #[arg(long)]
    day: Option<u8>,
    /// The first due time (RFC 3339, UTC); now when omitted.
    #[arg(long)]
    first: Option<String>,
    /// No run after this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 0)]
    count: u32,
    /// Periods missed while the server was down: all, latest or none.
    #[arg(long, default_value = "all")]
    catch_up: String,
    /// Retries of a failed run.
    #[arg(long, default_value_t = 0)]
    retries: u8,
    /// Time between a failed run and its retry ("1h", "30m").
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_every: Option<std::time::Duration>,
    /// Record each run as a reminder; move no money.
    #[arg(long)]
    remind: bool,
}

/// `trigger create`.
#[derive(Args, Debug)]
pub struct NewTrigger {
    /// The trigger's id (shared with standing orders).
    #[arg(long)]
    id: u128,
    /// The funding account.
    #[arg(long)]
    from: u128,
    /// The account watched and paid into.
    #[arg(long)]
    to: u128,
    /// The ledger (currency) of both accounts.
    #[arg(long)]
    ledger: u32,
    /// Every firing's transfer code.
    #[arg(long, default_value_t = 1)]
    code: u16,
    /// Fire when the available balance falls below this ("5.00").
    #[arg(long, allow_hyphen_values = true, conflicts_with = "debt_cap")]
    below: Option<String>,
    /// Pay enough to bring the available balance back to this ("20.00").
    #[arg(long, allow_hyphen_values = true, conflicts_with = "amount")]
    top_up_to: Option<String>,
    /// Pay this fixed amount each time ("10.00").
    #[arg(long, allow_hyphen_values = true)]
    amount: Option<String>,
    /// A debt trigger: pay the account's debt whenever it appears or grows, if at most this.
    #[arg(long, allow_hyphen_values = true)]
    debt_cap: Option<String>,
    /// At most this many firings per --cap-window.
    #[arg(long, default_value_t = 0)]
    cap_count: u32,
    /// At most this much paid per --cap-window ("50.00").
    #[arg(long, allow_hyphen_values = true)]
    cap_amount: Option<String>,
    /// The cap's calendar window: minute, hour, day, week or month.
    #[arg(long)]
    cap_window: Option<String>,
    /// Record each firing as a reminder; move no money.
    #[arg(long)]
    remind: bool,
}

/// A period in words: (unit, count).
fn parse_every(text: &str) -> Result<(u8, u32)> {
    let text = text.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, word) = text.split_at(split);
    let count = if number.is_empty() { 1 } else { number.parse().with_context(|| format!("{text}: not a period"))? };
    let unit = match word.trim().trim_end_matches('s') {
        "" | "sec" | "second" => order_unit::SECONDS,
        "day" | "d" => order_unit::DAYS,
        "week" | "w" => order_unit::WEEKS,
        "month" | "m" => order_unit::MONTHS,
        _ => bail!("{text}: a period is a number of seconds, days, weeks or months (\"month\", \"2 weeks\", \"90s\")"),
    };
    if unit == order_unit::SECONDS && number.is_empty() {
        bail!("{text}: say how many seconds (\"90s\")");
    }
    Ok((unit, count))
}

/// An RFC 3339 time as engine nanoseconds.
pub(crate) fn parse_time(text: &str) -> Result<u64> {
    let at = humantime::parse_rfc3339_weak(text).with_context(|| format!("{text}: not an RFC 3339 time (2027-01-31T09:00:00Z)"))?;
    let since = at.duration_since(std::time::UNIX_EPOCH).with_context(|| format!("{text}: before 1970"))?;
    u64::try_from(since.as_nanos()).with_context(|| format!("{text}: too far ahead"))
}

/// The commands `standing-order` sends.
pub async fn standing_order(client: &Client, op: StandingOrderOp) -> Result<Option<Command>> {
    let n = match op {
        StandingOrderOp::Manage(m) => return manage(client, m).await,
        StandingOrderOp::Create(n) => n,
    };
    let currency = ledger_of(client, n.ledger).await?;
    let (unit, period) = parse_every(&n.every)?;
    let retry_spacing_s = n.retry_every.map_or(0, |d| d.as_secs() as u32);
    let catch_up = match n.catch_up.as_str() {
        "all" => catch_up::ALL,
        "latest" => catch_up::LATEST,
        "none" => catch_up::NONE,
        other => bail!("--catch-up {other}: all, latest or none"),
    };
    let first_due_at = n.first.as_deref().map(parse_time).transpose()?.unwrap_or(0);
    let day = match (unit, n.day) {
        (order_unit::MONTHS, Some(day)) => day,
        (order_unit::MONTHS, None) if first_due_at != 0 => day_of_month(first_due_at),
        (order_unit::MONTHS, None) => bail!("a monthly order needs --day or --first"),
        (_, Some(day)) => bail!("--day {day} is for monthly orders"),
        (_, None) => 0,
    };
    Ok(Some(Command::CreateStandingOrder(StandingOrder {
        id: n.id,
        debit_account_id: n.from,
        credit_account_id: n.to,
        amount: to_minor(&n.amount, &currency)?,
        first_due_at,
        end_at: n.until.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        count_max: n.count,
        period,
        retry_spacing_s,
        unit,
        day,
        catch_up,
        retry_attempts: n.retries,
        ledger: n.ledger,
        code: n.code,
        flags: if n.remind { order_flags::REMIND } else { 0 },
        ..Default::default()
    })))
}

/// The day of the month (UTC) of a time in ns.
fn day_of_month(ns: u64) -> u8 {
    let text = humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns)).to_string();
    text[8..10].parse().unwrap_or(1)
}

/// The command `trigger` sends.
pub async fn trigger(client: &Client, op: TriggerOp) -> Result<Option<Command>> {
    let n = match op {
        TriggerOp::Manage(m) => return manage(client, m).await,
        TriggerOp::Create(n) => n,
    };
    let currency = ledger_of(client, n.ledger).await?;
    let money = |text: &Option<String>| text.as_deref().map(|t| to_minor(t, &currency)).transpose().map(Option::unwrap_or_default);
    let mut t = Trigger {
        id: n.id,
        debit_account_id: n.from,
        credit_account_id: n.to,
        ledger: n.ledger,
        code: n.code,
        cap_count: n.cap_count,
        cap_amount: money(&n.cap_amount)?,
        flags: if n.remind { order_flags::REMIND } else { 0 },
        ..Default::default()
    };
    if let Some(window) = &n.cap_window {
        t.cap_window = parse_window(window)?.0;
    }
    match (&n.below, &n.debt_cap) {
        (Some(_), _) => {
            t.kind = trigger_kind::THRESHOLD;
            t.threshold = money(&n.below)?;
            if n.top_up_to.is_some() {
                t.flags |= order_flags::TOP_UP;
                t.target = money(&n.top_up_to)?;
            } else {
                t.amount = money(&n.amount)?;
            }
        }
        (None, Some(_)) => {
            t.kind = trigger_kind::DEBT;
            t.threshold = money(&n.debt_cap)?;
        }
        (None, None) => bail!("say --below (a threshold trigger) or --debt-cap (a debt trigger)"),
    }
    Ok(Some(Command::CreateTrigger(t)))
}

/// Pause, resume, cancel, amend; or show (printed here, nothing to send).
async fn manage(client: &Client, m: ManageOrder) -> Result<Option<Command>> {
    let change = |order_id| OrderChange { order_id, ..Default::default() };
    Ok(Some(match m {
        ManageOrder::Pause { id } => Command::PauseOrder(change(id)),
        ManageOrder::Resume { id } => Command::ResumeOrder(change(id)),
        ManageOrder::Cancel { id } => Command::CancelOrder(change(id)),
        ManageOrder::Amend { id, amount } => {
            let order = client.lookup_orders(&[id]).await?.pop().flatten().with_context(|| format!("order {id} not found"))?;
            let (ledger, _) = order.spec.ledger_and_code();
            Command::AmendOrder(OrderChange { amount: to_minor(&amount, &ledger_of(client, ledger).await?)?, ..change(id) })
        }
        ManageOrder::Show { .. } => return Ok(None),
    }))
}

/// `standing-order show` / `trigger show`: the ids asked, or `orders ACCOUNT`: its live orders.
pub async fn show(client: &Client, ids: Option<Vec<u128>>, account: Option<u128>, json: bool) -> Result<()> {
    let orders: Vec<(u128, Option<Order>)> = match (ids, account) {
        (Some(ids), _) => ids.iter().copied().zip(client.lookup_orders(&ids).await?).collect(),
        (None, Some(account)) => client.account_orders(account).await?.into_iter().map(|o| (o.spec.id(), Some(o))).collect(),
        (None, None) => Vec::new(),
    };
    for (id, order) in orders {
        let Some(order) = order else {
            println!("{}", if json { format!("{{\"id\":\"{id}\",\"found\":false}}") } else { format!("order {id}: not found") });
            not_found(json);
            continue;
        };
        let currency = ledger_of(client, order.spec.ledger_and_code().0).await?;
        println!("{}", if json { order_json(&order) } else { describe(&order, &currency) });
    }
    Ok(())
}

/// An order in words, with its last runs.
fn describe(o: &Order, currency: &bursar_engine::Ledger) -> String {
    let money = |v: u128| format_minor(v, currency);
    let mut lines = match o.spec {
        OrderSpec::Standing(s) => {
            let unit = ["", "s", " day(s)", " week(s)", " month(s)"][s.unit.min(4) as usize];
            let on_day = if s.unit == order_unit::MONTHS { format!(" on day {}", s.day) } else { String::new() };
            let next = if o.next_due == 0 { "none".to_string() } else { show_time(o.next_due) };
            vec![format!(
                "standing order {} ({}): {} from {} to {} every {}{unit}{on_day}; next due {next}; {} period(s) reached",
                s.id,
                o.status.name(),
                money(o.amount),
                s.debit_account_id,
                s.credit_account_id,
                s.period,
                o.runs
            )]
        }
        OrderSpec::Trigger(t) => {
            let what = match (t.kind, t.flags & order_flags::TOP_UP != 0) {
                (trigger_kind::DEBT, _) => format!("pays the debt of {} up to {}", t.credit_account_id, money(t.threshold)),
                (_, true) => format!("tops {} up to {} when below {}", t.credit_account_id, money(t.target), money(t.threshold)),
                _ => format!("pays {} into {} when below {}", money(o.amount), t.credit_account_id, money(t.threshold)),
            };
            vec![format!("trigger {} ({}): {what}, from {}; {} firing(s)", t.id, o.status.name(), t.debit_account_id, o.runs)]
        }
    };
    if let Some(r) = o.retry {
        lines.push(format!("  retry {} of run {} due {} (last: {})", r.attempt, r.run, show_time(r.due), r.code.name()));
    }
    for e in &o.history {
        let transfer =
            if e.event == bursar_engine::RunEvent::Paid { format!(" transfer {}", run_id(o.number, e.run)) } else { String::new() };
        let amount = if e.event == bursar_engine::RunEvent::Skipped { format!("{} period(s)", e.amount) } else { money(e.amount) };
        lines.push(format!("  {} run {} {}: {amount} ({}){transfer}", show_time(e.at), e.run, e.event.name(), e.code.name()));
    }
    lines.join("\n")
}

fn order_json(o: &Order) -> String {
    let history: Vec<String> = o
        .history
        .iter()
        .map(|e| {
            format!(
                "{{\"at\":{},\"run\":{},\"event\":\"{}\",\"attempt\":{},\"amount\":\"{}\",\"result\":\"{}\",\"transfer\":\"{}\"}}",
                e.at,
                e.run,
                e.event.name(),
                e.attempt,
                e.amount,
                e.code.name(),
                run_id(o.number, e.run)
            )
        })
        .collect();
    let kind = if matches!(o.spec, OrderSpec::Standing(_)) { "standing_order" } else { "trigger" };
    format!(
        "{{\"id\":\"{}\",\"found\":true,\"kind\":\"{kind}\",\"number\":{},\"status\":\"{}\",\"amount\":\"{}\",\"runs\":{},\"next_due\":{},\"armed\":{},\"history\":[{}]}}",
        o.spec.id(),
        o.number,
        o.status.name(),
        o.amount,
        o.runs,
        o.next_due,
        o.armed,
        history.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_times_read_as_written() {
        assert_eq!(parse_every("month").expect("month"), (order_unit::MONTHS, 1));
        assert_eq!(parse_every("3 months").expect("3 months"), (order_unit::MONTHS, 3));
        assert_eq!(parse_every("2 weeks").expect("weeks"), (order_unit::WEEKS, 2));
        assert_eq!(parse_every("90s").expect("seconds"), (order_unit::SECONDS, 90));
        assert_eq!(parse_every("day").expect("day"), (order_unit::DAYS, 1));
        assert!(parse_every("fortnight").is_err() && parse_every("s").is_err());
        assert_eq!(parse_time("2028-02-29T09:00:00Z").expect("a leap day"), 1_835_427_600_000_000_000);
        assert_eq!(day_of_month(1_835_427_600_000_000_000), 29);
    }
}
