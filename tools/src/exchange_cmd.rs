//! `bursar client create-quote`, `exchange`, `place-order` and `quotes`: the exchange desk's
//! engine objects from the command line. Rates are decimals in major units ("4.3215" PLN per
//! EUR), amounts decimals in their ledger's currency, times RFC 3339; `docs/exchange.md` has the
//! semantics.

use anyhow::{bail, Context, Result};
use bursar_audit::{format_minor, show_time};
use bursar_engine::{exchange_flags, quote_flags, Command, Exchange, Ledger, Quote, QuoteUsage};
use bursar_net::client::Client;
use clap::Args;
use rust_decimal::Decimal;

use crate::client_cmd::{ledger_of, not_found, to_minor};
use crate::orders_cmd::parse_time;

/// `create-quote`.
#[derive(Args, Debug)]
pub struct NewQuote {
    /// The quote's id (its own id space).
    #[arg(long)]
    id: u128,
    /// The ledger (currency) the customer sells.
    #[arg(long)]
    from_ledger: u32,
    /// The ledger (currency) the customer buys.
    #[arg(long)]
    to_ledger: u32,
    /// Units of the bought currency per unit of the sold one, exactly ("4.3215").
    #[arg(long)]
    rate: String,
    /// The desk's account in the sold currency (the customer pays into it).
    #[arg(long)]
    from_liquidity: u128,
    /// The desk's account in the bought currency (the customer is paid from it).
    #[arg(long)]
    to_liquidity: u128,
    /// How long the rate holds ("15m").
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    valid_for: std::time::Duration,
    /// How long an order's reservation outlasts the validity ("1h").
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    grace: std::time::Duration,
    /// The only customer account (in the bought currency) the quote may pay.
    #[arg(long)]
    customer: Option<u128>,
    /// The most the quote pays out over all its uses, in the bought currency ("10000.00").
    #[arg(long)]
    max: Option<String>,
    /// May be used by many exchanges and orders.
    #[arg(long)]
    multi_use: bool,
    /// The transfer code of both legs.
    #[arg(long, default_value_t = 1)]
    code: u16,
}

/// What an exchange or order trades: a sold or a bought amount.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Amount {
    /// What the customer sells, in the quote's sold currency ("100.00").
    #[arg(long)]
    sell: Option<String>,
    /// What the customer buys, in the quote's bought currency ("432.15").
    #[arg(long)]
    buy: Option<String>,
}

/// `exchange`.
#[derive(Args, Debug)]
pub struct NewExchange {
    /// The first leg's transfer id (customer to desk).
    #[arg(long)]
    id: u128,
    /// The second leg's transfer id (desk to customer).
    #[arg(long)]
    to_id: u128,
    /// The quote.
    #[arg(long)]
    quote: u128,
    /// The customer's account in the sold currency.
    #[arg(long)]
    from: u128,
    /// The customer's account in the bought currency.
    #[arg(long)]
    to: u128,
    #[command(flatten)]
    amount: Amount,
    /// Settle this order (its id): the second leg captures its reservation.
    #[arg(long)]
    order: Option<u128>,
    /// With --order: when the bank booked the customer's money (RFC 3339); now when omitted.
    #[arg(long, requires = "order")]
    booked_at: Option<String>,
}

/// `place-order`.
#[derive(Args, Debug)]
pub struct NewOrder {
    /// The order's id (the id of the hold reserving the desk's money).
    #[arg(long)]
    id: u128,
    /// The quote accepted.
    #[arg(long)]
    quote: u128,
    /// The customer's account in the bought currency.
    #[arg(long)]
    to: u128,
    #[command(flatten)]
    amount: Amount,
}

/// A decimal rate in major units as the engine's `(rate, rate_scale)` in minor units (the desk's
/// conversion, `bursar_desk::ops::minor_rate`).
pub fn minor_rate(text: &str, from: &Ledger, to: &Ledger) -> Result<(u64, u8)> {
    let value = Decimal::from_str_exact(text.trim()).with_context(|| format!("{text}: not a decimal rate"))?;
    bursar_desk::ops::minor_rate(value, from.scale, to.scale).with_context(|| format!("rate {text}"))
}

/// The quote `id`, or an error naming it.
async fn quote_of(client: &Client, id: u128) -> Result<Quote> {
    let found = client.lookup_quotes(&[id]).await?.pop().flatten();
    Ok(found.with_context(|| format!("quote {id} not found"))?.0)
}

/// The amount and the `buy_fixed` flag, in the quote's currencies.
async fn traded(client: &Client, q: &Quote, amount: &Amount) -> Result<(u128, u16)> {
    match (&amount.sell, &amount.buy) {
        (Some(sell), _) => Ok((to_minor(sell, &ledger_of(client, q.from_ledger).await?)?, 0)),
        (_, Some(buy)) => Ok((to_minor(buy, &ledger_of(client, q.to_ledger).await?)?, exchange_flags::BUY_FIXED)),
        _ => bail!("say --sell or --buy"),
    }
}

/// The `create_quote` command.
pub async fn create_quote(client: &Client, n: NewQuote) -> Result<Command> {
    let (from, to) = (ledger_of(client, n.from_ledger).await?, ledger_of(client, n.to_ledger).await?);
    let (rate, rate_scale) = minor_rate(&n.rate, &from, &to)?;
    let seconds = |d: std::time::Duration| u32::try_from(d.as_secs()).context("a duration in seconds fits 32 bits");
    Ok(Command::CreateQuote(Quote {
        id: n.id,
        from_liquidity_id: n.from_liquidity,
        to_liquidity_id: n.to_liquidity,
        customer_account_id: n.customer.unwrap_or(0),
        amount_max: n.max.as_deref().map(|m| to_minor(m, &to)).transpose()?.unwrap_or(0),
        rate,
        rate_scale,
        validity_s: seconds(n.valid_for)?,
        grace_s: seconds(n.grace)?,
        from_ledger: n.from_ledger,
        to_ledger: n.to_ledger,
        code: n.code,
        flags: if n.multi_use { quote_flags::MULTI_USE } else { 0 },
        ..Default::default()
    }))
}

/// The `exchange` command.
pub async fn exchange(client: &Client, n: NewExchange) -> Result<Command> {
    let q = quote_of(client, n.quote).await?;
    let (amount, mut flags) = traded(client, &q, &n.amount).await?;
    if n.order.is_some() {
        flags |= exchange_flags::ORDER;
    }
    Ok(Command::Exchange(Exchange {
        id: n.id,
        to_id: n.to_id,
        quote_id: n.quote,
        from_account_id: n.from,
        to_account_id: n.to,
        amount,
        pending_id: n.order.unwrap_or(0),
        booked_at: n.booked_at.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        flags,
        ..Default::default()
    }))
}

/// The `place_order` command.
pub async fn place_order(client: &Client, n: NewOrder) -> Result<Command> {
    let q = quote_of(client, n.quote).await?;
    let (amount, flags) = traded(client, &q, &n.amount).await?;
    Ok(Command::PlaceOrder(Exchange { id: n.id, quote_id: n.quote, to_account_id: n.to, amount, flags, ..Default::default() }))
}

/// `quotes IDS`: each quote's rate, window, accounts and usage.
pub async fn show(client: &Client, ids: Vec<u128>, json: bool) -> Result<()> {
    for (id, found) in ids.iter().zip(client.lookup_quotes(&ids).await?) {
        let Some((q, usage)) = found else {
            not_found(json);
            if json {
                println!("{}", serde_json::json!({ "id": id.to_string(), "found": false }));
            } else {
                println!("quote {id}: not found");
            }
            continue;
        };
        let (from, to) = (ledger_of(client, q.from_ledger).await?, ledger_of(client, q.to_ledger).await?);
        print_quote(&q, &usage, &from, &to, json);
    }
    Ok(())
}

fn print_quote(q: &Quote, usage: &QuoteUsage, from: &Ledger, to: &Ledger, json: bool) {
    let currency = |l: &Ledger| String::from_utf8_lossy(&l.currency).to_string();
    // Minor units per minor unit, times 10^(from scale - to scale): major units per major unit.
    let rate = Decimal::from_i128_with_scale(i128::from(q.rate), u32::from(q.rate_scale)) * Decimal::from(10u64.pow(u32::from(from.scale)))
        / Decimal::from(10u64.pow(u32::from(to.scale)));
    let expires = bursar_engine::quote_expires_at(q);
    if json {
        let value = serde_json::json!({
            "id": q.id.to_string(), "found": true, "from": currency(from), "to": currency(to),
            "rate": rate.normalize().to_string(), "made_at": show_time(q.timestamp), "expires_at": show_time(expires),
            "grace_s": q.grace_s, "multi_use": q.flags & quote_flags::MULTI_USE != 0,
            "from_liquidity": q.from_liquidity_id.to_string(), "to_liquidity": q.to_liquidity_id.to_string(),
            "customer": q.customer_account_id.to_string(), "max": format_minor(q.amount_max, to),
            "uses": usage.uses, "paid": format_minor(usage.paid, to),
        });
        println!("{value}");
        return;
    }
    println!(
        "quote {}: 1 {} = {} {} from {} until {} (grace {} s), {}; paid {} in {} use(s){}",
        q.id,
        currency(from),
        rate.normalize(),
        currency(to),
        show_time(q.timestamp),
        show_time(expires),
        q.grace_s,
        if q.flags & quote_flags::MULTI_USE != 0 { "multi-use" } else { "single use" },
        format_minor(usage.paid, to),
        usage.uses,
        if q.amount_max != 0 { format!(" of at most {}", format_minor(q.amount_max, to)) } else { String::new() },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(scale: u8) -> Ledger {
        Ledger { id: 1, currency: *b"XXX", scale, ..Default::default() }
    }

    #[test]
    fn rates_in_major_units_become_exact_minor_unit_rates() {
        assert_eq!(minor_rate("4.3215", &ledger(2), &ledger(2)).unwrap(), (43_215, 4));
        assert_eq!(minor_rate("162.35", &ledger(2), &ledger(0)).unwrap(), (16_235, 4), "JPY per EUR: yen per cent");
        assert_eq!(minor_rate("0.00616", &ledger(0), &ledger(2)).unwrap(), (616, 3), "EUR per JPY: cents per yen");
        assert_eq!(minor_rate("4.50", &ledger(2), &ledger(2)).unwrap(), (45, 1));
        assert_eq!(minor_rate("3", &ledger(0), &ledger(3)).unwrap(), (3_000, 0));
        assert!(minor_rate("0", &ledger(2), &ledger(2)).is_err());
        assert!(minor_rate("-1.2", &ledger(2), &ledger(2)).is_err());
        assert!(minor_rate("1.2.3", &ledger(2), &ledger(2)).is_err());
    }
}
