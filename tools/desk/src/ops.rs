//! The cashier's commands other than import and payouts: `setup` (ledgers, the desk's accounts,
//! opening balances), `quote` (a board rate), `order` (an order and its reservation), `cancel`,
//! `rerate` and `settle` (exchange what an underpaid order received). Each is one request whose
//! ids are derived, so running it again answers `exists` and moves nothing.

use anyhow::{bail, Context, Result};
use bursar_engine::{
    account_flags, exchange_flags, quote_flags, transfer_flags, Account, Command, Exchange, Ledger, Quote, ResultCode, Transfer,
};
use bursar_net::client::Client;
use rust_decimal::Decimal;

use crate::codes;
use crate::config::{Currency, DeskConfig};
use crate::ids::{derive, pack_iban, pack_name, user_data_of, Tag, GENERATIONS_MAX, ORDER_NUMBER_MAX};
use crate::ledger::{self, done};
use crate::orders::{self, Order, Status};

/// Creates the ledgers, the desk's accounts and the opening balances; what exists is left alone.
/// Returns one line per object, saying whether it was made now.
pub async fn setup(client: &Client, config: &DeskConfig) -> Result<Vec<String>> {
    let mut commands = Vec::new();
    let mut names = Vec::new();
    for c in &config.currencies {
        let mut currency = [0u8; 3];
        currency.copy_from_slice(c.code.as_bytes());
        commands.push(Command::CreateLedger(Ledger {
            id: c.ledger,
            currency,
            scale: c.scale,
            settlement_account_id: c.settlement_account,
            settlement_account_code: codes::ACCOUNT_LIQUIDITY,
            ..Ledger::default()
        }));
        names.push(format!("ledger {} ({})", c.ledger, c.code));
        let account = |id, code, flags| Command::CreateAccount(Account { id, ledger: c.ledger, code, flags, ..Account::default() });
        commands.push(account(c.shadow_account, codes::ACCOUNT_SHADOW, account_flags::HISTORY));
        names.push(format!("{} shadow of {} ({})", c.code, c.iban, c.shadow_account));
        commands.push(account(c.liquidity_account, codes::ACCOUNT_LIQUIDITY, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS));
        names.push(format!("{} liquidity ({})", c.code, c.liquidity_account));
        commands.push(account(c.suspense_account, codes::ACCOUNT_SUSPENSE, account_flags::HISTORY));
        names.push(format!("{} suspense ({})", c.code, c.suspense_account));
        if !c.opening_balance.is_zero() {
            commands.push(Command::Transfer(Transfer {
                id: derive(config.namespace, Tag::Opening, 0, u64::from(c.ledger)),
                debit_account_id: c.shadow_account,
                credit_account_id: c.liquidity_account,
                amount: c.minor(c.opening_balance)?,
                ledger: c.ledger,
                code: codes::OPENING,
                ..Transfer::default()
            }));
            names.push(format!("{} opening balance {} {}", c.code, c.opening_balance, c.code));
        }
    }
    let results = ledger::submit(client, &commands).await?;
    let mut report = Vec::new();
    for (name, code) in names.iter().zip(results) {
        match code {
            ResultCode::Ok => report.push(format!("{name}: made")),
            ResultCode::Exists => report.push(format!("{name}: already there")),
            other => bail!("{name}: {}", other.name()),
        }
    }
    Ok(report)
}

/// A rate in major units ("4.3215") as the engine's `(rate, rate_scale)` between currencies of
/// `from_scale` and `to_scale` decimals: the rate times `10^(to scale - from scale)`, exactly,
/// trailing zeros dropped. `bursar client create-quote` uses it too.
pub fn minor_rate(rate: Decimal, from_scale: u8, to_scale: u8) -> Result<(u64, u8)> {
    if rate <= Decimal::ZERO {
        bail!("a rate is above zero");
    }
    let mut mantissa = u128::try_from(rate.mantissa()).context("a positive rate")?;
    let mut scale = i64::from(rate.scale()) + i64::from(from_scale) - i64::from(to_scale);
    while scale < 0 {
        mantissa = mantissa.checked_mul(10).context("the rate is too large")?;
        scale += 1;
    }
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    let rate = u64::try_from(mantissa).ok().filter(|_| scale <= 18);
    let rate = rate.context("more than 19 significant digits or 18 decimals in minor units")?;
    Ok((rate, scale as u8))
}

/// The quote record of a rate between two currencies.
fn quote_record(config: &DeskConfig, id: u128, from: &Currency, to: &Currency, rate: Decimal, customer: u128, flags: u16) -> Result<Quote> {
    let (rate, rate_scale) = minor_rate(rate, from.scale, to.scale)?;
    Ok(Quote {
        id,
        from_liquidity_id: from.liquidity_account,
        to_liquidity_id: to.liquidity_account,
        customer_account_id: customer,
        rate,
        rate_scale,
        validity_s: config.validity.as_secs() as u32,
        grace_s: config.grace.as_secs() as u32,
        from_ledger: from.ledger,
        to_ledger: to.ledger,
        code: codes::ORDER,
        flags,
        ..Quote::default()
    })
}

/// A board quote (any customer, many orders) for `valid_for` (the configuration's validity by
/// default); returns its id.
pub async fn board_quote(client: &Client, config: &DeskConfig, from: &str, to: &str, rate: Decimal) -> Result<u128> {
    let (from, to) = (config.currency(from)?, config.currency(to)?);
    let id = derive(config.namespace, Tag::BoardQuote, 0, random_u64()? & ORDER_NUMBER_MAX);
    let quote = quote_record(config, id, from, to, rate, 0, quote_flags::MULTI_USE)?;
    match client.submit(vec![Command::CreateQuote(quote)]).await?[0] {
        ResultCode::Ok => Ok(id),
        other => bail!("the quote: {}", other.name()),
    }
}

/// What an order trades: a sold or a bought amount, in major units.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    /// The customer sells this much (sold currency).
    Sell(Decimal),
    /// The customer buys this much (bought currency).
    Buy(Decimal),
}

/// A new order's terms.
#[derive(Clone, Debug)]
pub struct NewOrder {
    /// Sold and bought currency (ISO codes).
    pub from: String,
    /// The bought currency.
    pub to: String,
    /// A board quote to accept, or `None` to quote `rate` to this customer alone.
    pub quote: Option<u128>,
    /// The rate, major units of `to` per unit of `from`, when no board quote is named.
    pub rate: Option<Decimal>,
    /// How much.
    pub amount: Amount,
    /// The customer's name (for the payout file; at most 28 bytes are kept).
    pub payee_name: String,
    /// The customer's account in the bought currency, where the payout goes.
    pub payee_iban: String,
    /// The order number; random when `None` (tests fix it).
    pub number: Option<u64>,
}

/// Places an order: its two accounts, its quote (unless a board quote is named) and its hold, in
/// one linked chain. Returns the order number.
pub async fn order(client: &Client, config: &DeskConfig, o: &NewOrder) -> Result<u64> {
    let ns = config.namespace;
    let (from, to) = (config.currency(&o.from)?, config.currency(&o.to)?);
    let number = match o.number {
        Some(n) if n <= ORDER_NUMBER_MAX => n,
        Some(n) => bail!("order number {n} is over 40 bits"),
        None => random_u64()? & ORDER_NUMBER_MAX,
    };
    let (name, _) = pack_name(&o.payee_name);
    let iban: [u8; 28] =
        pack_iban(&o.payee_iban).with_context(|| format!("{}: an IBAN is letters and digits, at most 34", o.payee_iban))?;
    let (account_from, account_to) = (derive(ns, Tag::AccountFrom, 0, number), derive(ns, Tag::AccountTo, 0, number));
    let account = |id, ledger, data: [u8; 28]| {
        let (u128, u64, u32) = user_data_of(data);
        let flags = account_flags::LINKED | account_flags::HISTORY;
        Command::CreateAccount(Account {
            id,
            ledger,
            code: codes::ACCOUNT_ORDER,
            flags,
            user_data_128: u128,
            user_data_64: u64,
            user_data_32: u32,
            ..Account::default()
        })
    };
    let mut chain = vec![account(account_from, from.ledger, name), account(account_to, to.ledger, iban)];
    let quote_id = match (o.quote, o.rate) {
        (Some(q), None) => q,
        (None, Some(rate)) => {
            let id = derive(ns, Tag::OrderQuote, 0, number);
            let mut q = quote_record(config, id, from, to, rate, account_to, 0)?;
            q.flags |= quote_flags::LINKED;
            chain.push(Command::CreateQuote(q));
            id
        }
        _ => bail!("name a board quote or a rate, not both"),
    };
    chain.push(place_order(ns, number, 0, quote_id, account_to, o.amount, from, to)?);
    let results = client.submit(chain).await?;
    if let Some((i, code)) = results.iter().enumerate().find(|(_, c)| !done(**c) && **c != ResultCode::LinkedEventFailed) {
        let what = ["the order's account in the sold currency", "the order's account in the bought currency", "the quote", "the order"];
        let what = if i + 1 == results.len() { "the order" } else { what[i] };
        bail!("{what}: {}", code.name());
    }
    Ok(number)
}

/// The `place_order` command of generation `g`.
#[allow(clippy::too_many_arguments)]
fn place_order(
    ns: u32,
    number: u64,
    g: u8,
    quote: u128,
    to_account: u128,
    amount: Amount,
    from: &Currency,
    to: &Currency,
) -> Result<Command> {
    let (amount, flags) = match amount {
        Amount::Sell(a) => (from.minor(a)?, 0),
        Amount::Buy(a) => (to.minor(a)?, exchange_flags::BUY_FIXED),
    };
    Ok(Command::PlaceOrder(Exchange {
        id: derive(ns, Tag::OrderHold, g, number),
        quote_id: quote,
        to_account_id: to_account,
        amount,
        flags,
        ..Exchange::default()
    }))
}

/// The order `number`, or an error saying there is none.
pub async fn one(client: &Client, config: &DeskConfig, number: u64) -> Result<Order> {
    let found = orders::load(client, config, &[number]).await?.pop().flatten();
    found.with_context(|| format!("no order {}", crate::ids::reference(&config.reference_prefix, number)))
}

/// The server's clock (ns): what "now" is for holds and quotes.
pub async fn clock(client: &Client) -> Result<u64> {
    Ok(client.status().await.context("the server's status")?.clock)
}

/// Cancels an order: releases its reservation (or marks it cancelled once it expired). Money
/// that arrived stays on the order's account and `desk payouts` refunds it.
pub async fn cancel(client: &Client, config: &DeskConfig, number: u64) -> Result<ResultCode> {
    let o = one(client, config, number).await?;
    let now = clock(client).await?;
    match o.status(now) {
        Status::Exchanged | Status::PayoutOrdered | Status::PaidOut => bail!("the order was exchanged: a cancel cannot undo that"),
        Status::Cancelled => return Ok(ResultCode::Exists),
        _ => {}
    }
    let (from, _) = o.currencies(config).context("the order's currencies are not in the configuration")?;
    Ok(client.submit(vec![Command::Transfer(ending(config.namespace, &o, from, now))]).await?[0])
}

/// What ends an order's current generation at server time `now`: the release of its hold, or,
/// once the hold expired and there is nothing to release, a zero transfer that records it.
fn ending(ns: u32, o: &Order, from: &Currency, now: u64) -> Transfer {
    let (g, number) = (o.generation, o.number);
    if now < o.expires_at {
        // Code and ledger zero: a release takes its hold's.
        return Transfer {
            id: derive(ns, Tag::Cancel, g, number),
            pending_id: o.hold.id,
            flags: transfer_flags::VOID_PENDING,
            ..Transfer::default()
        };
    }
    let id = derive(ns, Tag::Cancel, g | 0x80, number);
    Transfer {
        id,
        debit_account_id: o.account_from.id,
        credit_account_id: from.shadow_account,
        ledger: from.ledger,
        code: codes::CANCEL,
        ..Transfer::default()
    }
}

/// Re-rates an order at `rate`: releases the old reservation (if it still holds), quotes the new
/// rate to this customer and places the next generation's order, in one chain; what was paid
/// (or, if nothing was, what the order needed) is the new order's sold amount. Then settles it
/// if the money is there.
pub async fn rerate(client: &Client, config: &DeskConfig, number: u64, rate: Decimal) -> Result<(u8, ResultCode)> {
    let o = one(client, config, number).await?;
    let now = clock(client).await?;
    let status = o.status(now);
    if matches!(status, Status::Exchanged | Status::PayoutOrdered | Status::PaidOut | Status::Cancelled) {
        bail!("the order is {}: nothing to re-rate", status.name());
    }
    let g = o.generation + 1;
    if g >= GENERATIONS_MAX {
        bail!("the order was re-rated {} times already", GENERATIONS_MAX - 1);
    }
    let ns = config.namespace;
    let (from, to) = o.currencies(config).context("the order's currencies are not in the configuration")?;
    // The generation replaced is released, or (expired) marked: `orders::load` looks past it.
    let mut end = ending(ns, &o, from, now);
    end.flags |= transfer_flags::LINKED;
    let mut chain = vec![Command::Transfer(end)];
    let quote_id = derive(ns, Tag::OrderQuote, g, number);
    let mut q = quote_record(config, quote_id, from, to, rate, o.account_to.id, 0)?;
    q.flags |= quote_flags::LINKED;
    chain.push(Command::CreateQuote(q));
    let sold = if o.paid() > 0 { o.paid() } else { o.need() };
    chain.push(place_order(ns, number, g, quote_id, o.account_to.id, Amount::Sell(from.major(sold)), from, to)?);
    let results = client.submit(chain).await?;
    if let Some(code) = results.iter().find(|c| !done(**c) && **c != ResultCode::LinkedEventFailed) {
        bail!("re-rating: {}", code.name());
    }
    if o.paid() == 0 {
        return Ok((g, ResultCode::Ok));
    }
    let fresh = one(client, config, number).await?;
    let result = client.submit(vec![Command::Exchange(exchange(config, &fresh, fresh.paid(), 0, false))]).await?[0];
    Ok((g, result))
}

/// Exchanges what an underpaid order received (the cashier accepts the shortfall): a partial
/// settlement of its reservation; the rest of it is released.
pub async fn settle(client: &Client, config: &DeskConfig, number: u64) -> Result<ResultCode> {
    let o = one(client, config, number).await?;
    if o.paid() == 0 {
        bail!("nothing was paid for this order");
    }
    let lines = ledger::all_transfers(client, o.account_from.id, codes::LINE_IN, bursar_engine::filter_flags::CREDITS).await?;
    let booked_at = lines.iter().map(|t| t.user_data_64).max().unwrap_or(0);
    let booked_at = crate::import::booked_at_for_engine(booked_at, clock(client).await?);
    let paid = o.paid().min(o.need());
    Ok(client.submit(vec![Command::Exchange(exchange(config, &o, paid, booked_at, paid == o.need()))]).await?[0])
}

/// The exchange settling `o` with `sold` (or, `whole`, exactly its reservation), booked at
/// `booked_at` (0: now).
pub fn exchange(config: &DeskConfig, o: &Order, sold: u128, booked_at: u64, whole: bool) -> Exchange {
    let ns = config.namespace;
    let (amount, flags) =
        if whole { (o.hold.amount, exchange_flags::ORDER | exchange_flags::BUY_FIXED) } else { (sold, exchange_flags::ORDER) };
    Exchange {
        id: o.id(ns, Tag::Leg1, o.generation),
        to_id: o.id(ns, Tag::Leg2, o.generation),
        quote_id: o.quote.id,
        from_account_id: o.account_from.id,
        to_account_id: o.account_to.id,
        amount,
        pending_id: o.hold.id,
        booked_at,
        flags,
        ..Exchange::default()
    }
}

/// 64 random bits from the operating system.
fn random_u64() -> Result<u64> {
    use std::io::Read as _;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    Ok(u64::from_le_bytes(bytes))
}
