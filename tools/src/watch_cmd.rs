//! `bursar client watch`: prints the change feed's events as they come (one line each, or JSON
//! lines), from a log position, through a filter, resumable from the last line printed.

use std::collections::HashMap;

use anyhow::{bail, Result};
use bursar_audit::{format_minor, show_time};
use bursar_engine::{Balances, Command, CommandKind, FeedEvent, FeedEventType, Ledger, Record, RunEvent, Transfer};
use bursar_net::client::Client;
use bursar_wire::feed::{Event, Subscription};
use clap::Args;

/// What to watch.
#[derive(Args, Debug, Clone)]
pub struct Watch {
    /// The log position to start at (an entry's sequence number; 1: from the first entry).
    /// Default: from the next entry to become durable.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Skip the events of the first entry numbered below this (resuming inside an entry: the
    /// last line's index + 1).
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// Event types (repeatable): command, transfer, expiry, run, progress. Default: all.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events on this ledger (repeatable, up to 24).
    #[arg(long)]
    pub ledger: Vec<u32>,
    /// Only events naming this account on either side (repeatable, up to 1 024).
    #[arg(long)]
    pub account: Vec<u128>,
    /// Stop after this many events (progress events not counted). Default: until interrupted.
    #[arg(long)]
    pub count: Option<u64>,
}

impl Watch {
    fn subscription(&self) -> Result<Subscription> {
        let mut types = 0u32;
        for name in &self.types {
            types |= match name.as_str() {
                "progress" => bursar_wire::feed::PROGRESS_BIT,
                other => match (1..=4).filter_map(FeedEventType::from_u8).find(|t| t.name() == other) {
                    Some(t) => t.bit(),
                    None => bail!("{other}: not an event type (command, transfer, expiry, run, progress)"),
                },
            };
        }
        if self.ledger.len() > bursar_wire::feed::SUBSCRIBE_LEDGERS_MAX {
            bail!("at most {} ledgers", bursar_wire::feed::SUBSCRIBE_LEDGERS_MAX);
        }
        if self.account.len() > bursar_wire::feed::SUBSCRIBE_ACCOUNTS_MAX {
            bail!("at most {} accounts", bursar_wire::feed::SUBSCRIBE_ACCOUNTS_MAX);
        }
        Ok(Subscription {
            from_seq: self.from,
            from_index: self.index,
            types,
            ledgers: self.ledger.clone(),
            accounts: self.account.clone(),
        })
    }
}

/// Prints events until `--count` is reached, the server ends the stream, or an error.
pub async fn run(client: &Client, watch: Watch, json: bool) -> Result<()> {
    let mut stream = client.subscribe(watch.subscription()?).await?;
    let mut ledgers = Ledgers::default();
    let mut printed = 0u64;
    let mut resume = (watch.from, watch.index);
    while watch.count.is_none_or(|count| printed < count) {
        let Some(next) = stream.next().await else { break };
        let event = match next {
            Ok(event) => event,
            Err(e) => bail!("the feed ended ({e}); resume with --from {} --index {}", resume.0, resume.1),
        };
        resume = if event.is_progress() { (event.seq + 1, 0) } else { (event.seq, event.event.index + 1) };
        let line = if json { ledgers.json(client, &event).await?.to_string() } else { ledgers.text(client, &event).await? };
        println!("{line}");
        printed += u64::from(!event.is_progress());
    }
    Ok(())
}

/// Ledger records seen, for amounts in their currency's units.
#[derive(Default)]
struct Ledgers(HashMap<u32, Ledger>);

impl Ledgers {
    async fn get(&mut self, client: &Client, id: u32) -> Result<Ledger> {
        if let Some(l) = self.0.get(&id) {
            return Ok(*l);
        }
        let l = crate::client_cmd::ledger_of(client, id).await?;
        self.0.insert(id, l);
        Ok(l)
    }

    async fn text(&mut self, client: &Client, e: &Event) -> Result<String> {
        let at = format!("{}.{}", e.seq, e.event.index);
        if e.is_progress() {
            return Ok(format!("{at} progress: every event through entry {} sent", e.seq));
        }
        let ev = &e.event;
        Ok(match ev.kind {
            FeedEventType::Command => format!("{at} command {}: {}", result_name(ev), describe_command(ev)),
            FeedEventType::Transfer | FeedEventType::Expiry => {
                let l = self.get(client, ev.ledger).await?;
                let t = Transfer::decode(&ev.record);
                let what = if ev.kind == FeedEventType::Expiry { "expiry of hold" } else { "transfer" };
                format!(
                    "{at} {what} {}: {} from {} to {} at {}; after: {} {}, {} {}",
                    t.id,
                    format_minor(t.amount, &l),
                    t.debit_account_id,
                    t.credit_account_id,
                    show_time(ev.timestamp),
                    t.debit_account_id,
                    balances_text(&ev.balances[0], &l),
                    t.credit_account_id,
                    balances_text(&ev.balances[1], &l)
                )
            }
            FeedEventType::Run => {
                let (order, run, amount) = run_fields(ev);
                let l = self.get(client, ev.ledger).await?;
                let event = RunEvent::from_u8(ev.detail).map_or("?", RunEvent::name);
                format!("{at} run {run} of order {order}: {event} {} ({})", format_minor(amount, &l), result_name(ev))
            }
        })
    }

    async fn json(&mut self, client: &Client, e: &Event) -> Result<serde_json::Value> {
        let ev = &e.event;
        if e.is_progress() {
            return Ok(serde_json::json!({ "seq": e.seq, "type": "progress" }));
        }
        let mut value = serde_json::json!({
            "seq": e.seq, "index": ev.index, "type": ev.kind.name(), "result": result_name(ev),
            "timestamp": ev.timestamp, "ledger": ev.ledger,
            "debit_account_id": ev.accounts[0].to_string(), "credit_account_id": ev.accounts[1].to_string(),
        });
        match ev.kind {
            FeedEventType::Command => {
                let kind = CommandKind::from_u8(ev.detail).map_or("?", CommandKind::name);
                value["command"] = kind.into();
                value["record"] = describe_command(ev).into();
            }
            FeedEventType::Transfer | FeedEventType::Expiry => {
                let l = self.get(client, ev.ledger).await?;
                let t = Transfer::decode(&ev.record);
                value["id"] = t.id.to_string().into();
                value["amount"] = format_minor(t.amount, &l).into();
                value["flags"] = t.flags.into();
                value["code"] = t.code.into();
                value["debit_balances"] = balances_json(&ev.balances[0], &l);
                value["credit_balances"] = balances_json(&ev.balances[1], &l);
            }
            FeedEventType::Run => {
                let (order, run, amount) = run_fields(ev);
                let l = self.get(client, ev.ledger).await?;
                value["order_id"] = order.to_string().into();
                value["run"] = run.into();
                value["event"] = RunEvent::from_u8(ev.detail).map_or("?", RunEvent::name).into();
                value["amount"] = format_minor(amount, &l).into();
            }
        }
        Ok(value)
    }
}

fn result_name(ev: &FeedEvent) -> &'static str {
    ev.result.name()
}

fn describe_command(ev: &FeedEvent) -> String {
    match CommandKind::from_u8(ev.detail) {
        Some(kind) => Command::decode(kind, &ev.record).describe(),
        None => format!("kind {}", ev.detail),
    }
}

/// A run event's order id, run number and amount (zero where the record names no entry).
fn run_fields(ev: &FeedEvent) -> (u128, u64, u128) {
    ev.run().map_or((0, 0, 0), |(order, e)| (order, e.run, e.amount))
}

fn balances_text(b: &Balances, l: &Ledger) -> String {
    format!(
        "(debits posted {}, held {}; credits posted {}, held {})",
        format_minor(b.debits_posted, l),
        format_minor(b.debits_pending, l),
        format_minor(b.credits_posted, l),
        format_minor(b.credits_pending, l)
    )
}

fn balances_json(b: &Balances, l: &Ledger) -> serde_json::Value {
    serde_json::json!({
        "debits_posted": format_minor(b.debits_posted, l), "debits_pending": format_minor(b.debits_pending, l),
        "credits_posted": format_minor(b.credits_posted, l), "credits_pending": format_minor(b.credits_pending, l),
    })
}
