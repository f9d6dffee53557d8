//! An order as the desk sees it, read back from Bursar alone: its current generation's hold and
//! quote, its two accounts, its legs, cancellation and payouts, all found by the derived ids of
//! its number. `load` reads many orders in a few batched requests.

use anyhow::Result;
use bursar_engine::{Account, Quote, Transfer};
use bursar_net::client::Client;

use crate::config::{Currency, DeskConfig};
use crate::ids::{derive, Tag, GENERATIONS_MAX};
use crate::ledger;

/// Payouts (and refunds) an order may have: the lookups ask for all of them at once.
pub const PAYOUTS_MAX: u8 = 4;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The reservation holds and no money has arrived.
    AwaitingPayment,
    /// Some money arrived, less than the order needs: waiting for the rest or the cashier.
    PartlyPaid,
    /// The money arrived but was not exchanged: booked too late for the rate, or the
    /// reservation expired first. The cashier re-rates or cancels (refund).
    Paid,
    /// Exchanged; the bought money waits for `desk payouts`.
    Exchanged,
    /// A payout order is out; the bank's debit line will confirm it.
    PayoutOrdered,
    /// Exchanged and paid out.
    PaidOut,
    /// The reservation expired with nothing paid.
    Expired,
    /// Cancelled by the cashier (any money arrived is refunded by `desk payouts`).
    Cancelled,
}

impl Status {
    /// The status in words, as `desk orders` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Status::AwaitingPayment => "awaiting payment",
            Status::PartlyPaid => "partly paid",
            Status::Paid => "paid, not exchanged",
            Status::Exchanged => "exchanged",
            Status::PayoutOrdered => "payout ordered",
            Status::PaidOut => "paid out",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }
}

/// One order, read back.
#[derive(Clone, Debug)]
pub struct Order {
    /// Its number (the reference's 40 bits).
    pub number: u64,
    /// The current generation (0 unless re-rated).
    pub generation: u8,
    /// The current generation's hold.
    pub hold: Transfer,
    /// The quote of the current generation.
    pub quote: Quote,
    /// The account the customer's money arrives on (sold currency).
    pub account_from: Account,
    /// The account the bought money is paid out from.
    pub account_to: Account,
    /// The current generation's second leg, once exchanged.
    pub leg2: Option<Transfer>,
    /// The current generation was cancelled.
    pub cancelled: bool,
    /// Payout holds made so far, in order.
    pub payouts: Vec<Transfer>,
    /// Refund holds made so far, in order.
    pub refunds: Vec<Transfer>,
    /// The reservation's end (ns): the hold's timestamp plus its timeout.
    pub expires_at: u64,
}

/// What an account holds now and may still move: credits minus debits minus pending debits.
pub fn available(a: &Account) -> u128 {
    a.credits_posted.saturating_sub(a.debits_posted).saturating_sub(a.debits_pending)
}

impl Order {
    /// The id of `tag` for this order at generation `generation`.
    pub fn id(&self, namespace: u32, tag: Tag, generation: u8) -> u128 {
        derive(namespace, tag, generation, self.number)
    }

    /// What the customer must pay (sold currency, minor units) for the reserved amount: the
    /// smallest sale that buys it at the quote.
    pub fn need(&self) -> u128 {
        let (sold, _) = bursar_engine::convert(self.hold.amount, true, self.quote.rate, self.quote.rate_scale).unwrap_or((u128::MAX, 0));
        sold
    }

    /// What arrived and was not exchanged or refunded (sold currency).
    pub fn paid(&self) -> u128 {
        available(&self.account_from)
    }

    /// Where it stands at server time `clock` (ns).
    pub fn status(&self, clock: u64) -> Status {
        if self.leg2.is_some() {
            return match (available(&self.account_to), self.account_to.debits_pending) {
                (0, 0) => Status::PaidOut,
                (_, pending) if pending > 0 => Status::PayoutOrdered,
                _ => Status::Exchanged,
            };
        }
        if self.cancelled {
            return Status::Cancelled;
        }
        let paid = self.paid();
        match (clock >= self.expires_at, paid) {
            (true, 0) => Status::Expired,
            (_, 0) => Status::AwaitingPayment,
            (false, p) if p < self.need() => Status::PartlyPaid,
            _ => Status::Paid,
        }
    }

    /// The customer's name, kept in the sold-currency account's user data at order time.
    pub fn payee_name(&self) -> String {
        let a = &self.account_from;
        crate::ids::unpack_name(crate::ids::bytes_of_user_data(a.user_data_128, a.user_data_64, a.user_data_32))
    }

    /// The customer's payout account (IBAN), kept in the bought-currency account's user data.
    pub fn payee_iban(&self) -> String {
        let a = &self.account_to;
        crate::ids::unpack_iban(crate::ids::bytes_of_user_data(a.user_data_128, a.user_data_64, a.user_data_32))
    }

    /// The currencies sold and bought.
    pub fn currencies<'c>(&self, config: &'c DeskConfig) -> Option<(&'c Currency, &'c Currency)> {
        Some((config.by_ledger(self.quote.from_ledger)?, config.by_ledger(self.quote.to_ledger)?))
    }
}

/// The orders with these numbers (`None` for a number with no order), in a few requests.
pub async fn load(client: &Client, config: &DeskConfig, numbers: &[u64]) -> Result<Vec<Option<Order>>> {
    load_with(client, config, numbers, true).await
}

/// As [`load`]. Without `full`, what an import needs at a third of the reads: the orders'
/// accounts are not read (only their ids and ledgers are filled in; [`refresh_accounts`] reads
/// them) nor their payout and refund holds (the lists are empty).
pub async fn load_with(client: &Client, config: &DeskConfig, numbers: &[u64], full: bool) -> Result<Vec<Option<Order>>> {
    let ns = config.namespace;
    let generations = current_generations(client, ns, numbers).await?;
    let live: Vec<(usize, u8, Steps)> =
        generations.into_iter().enumerate().filter_map(|(i, g)| g.map(|(g, steps)| (i, g, steps))).collect();
    // Each quote once: orders at a board rate share theirs.
    let mut quote_ids: Vec<u128> = live.iter().map(|(_, _, steps)| steps[0].map_or(0, |h| h.user_data_128)).collect();
    quote_ids.sort_unstable();
    quote_ids.dedup();
    let unique = ledger::quotes(client, &quote_ids).await?;
    let quotes: Vec<Option<Quote>> = live
        .iter()
        .map(|(_, _, steps)| quote_ids.binary_search(&steps[0].map_or(0, |h| h.user_data_128)).ok().and_then(|i| unique[i]))
        .collect();
    let per = 2 * PAYOUTS_MAX as usize;
    let (payouts, accounts) = if full {
        let ids: Vec<u128> = live
            .iter()
            .flat_map(|&(i, _, _)| {
                (0..PAYOUTS_MAX)
                    .map(move |k| derive(ns, Tag::Payout, k, numbers[i]))
                    .chain((0..PAYOUTS_MAX).map(move |k| derive(ns, Tag::Refund, k, numbers[i])))
            })
            .collect();
        let accounts: Vec<u128> = live
            .iter()
            .flat_map(|&(i, _, _)| [derive(ns, Tag::AccountFrom, 0, numbers[i]), derive(ns, Tag::AccountTo, 0, numbers[i])])
            .collect();
        (ledger::transfers(client, &ids).await?, Some(ledger::accounts(client, &accounts).await?))
    } else {
        (Vec::new(), None)
    };
    let mut out = vec![None; numbers.len()];
    for (j, (i, generation, steps)) in live.into_iter().enumerate() {
        let number = numbers[i];
        let (Some(hold), Some(quote)) = (steps[0], quotes[j]) else { continue };
        let (from, to) = match &accounts {
            Some(found) => match (found[2 * j], found[2 * j + 1]) {
                (Some(from), Some(to)) => (from, to),
                _ => continue, // not this desk's order (an id in its namespace made by hand)
            },
            None => {
                let id = |tag, ledger| Account { id: derive(ns, tag, 0, number), ledger, ..Account::default() };
                (id(Tag::AccountFrom, quote.from_ledger), id(Tag::AccountTo, quote.to_ledger))
            }
        };
        let (payouts, refunds) = match full {
            true => {
                let f = &payouts[j * per..(j + 1) * per];
                (f[..per / 2].iter().map_while(|t| *t).collect(), f[per / 2..].iter().map_while(|t| *t).collect())
            }
            false => (Vec::new(), Vec::new()),
        };
        out[i] = Some(Order {
            number,
            generation,
            expires_at: hold.timestamp + u64::from(hold.timeout) * 1_000_000_000,
            hold,
            quote,
            account_from: from,
            account_to: to,
            leg2: steps[1],
            cancelled: steps[2].is_some() || steps[3].is_some(),
            payouts,
            refunds,
        });
    }
    Ok(out)
}

/// Reads the orders' two accounts again (after money moved), leaving the rest as loaded.
pub async fn refresh_accounts(client: &Client, orders: &mut [Order]) -> Result<()> {
    let ids: Vec<u128> = orders.iter().flat_map(|o| [o.account_from.id, o.account_to.id]).collect();
    let found = ledger::accounts(client, &ids).await?;
    for (o, pair) in orders.iter_mut().zip(found.chunks(2)) {
        if let [Some(from), Some(to)] = pair {
            (o.account_from, o.account_to) = (*from, *to);
        }
    }
    Ok(())
}

/// A generation's hold, second leg, release and cancel marker, where they exist.
type Steps = [Option<Transfer>; 4];

/// Each number's current generation and its steps, `None` for no order. A generation that was
/// not released nor marked cancelled is the current one (a re-rate always leaves one of the
/// two on the generation it replaces), so most orders take one round of four lookups.
async fn current_generations(client: &Client, ns: u32, numbers: &[u64]) -> Result<Vec<Option<(u8, Steps)>>> {
    let mut current: Vec<Option<(u8, Steps)>> = vec![None; numbers.len()];
    let mut asking: Vec<usize> = (0..numbers.len()).collect();
    for g in 0..GENERATIONS_MAX {
        if asking.is_empty() {
            break;
        }
        let ids: Vec<u128> = asking
            .iter()
            .flat_map(|&i| {
                let n = numbers[i];
                [
                    derive(ns, Tag::OrderHold, g, n),
                    derive(ns, Tag::Leg2, g, n),
                    derive(ns, Tag::Cancel, g, n),
                    derive(ns, Tag::Cancel, g | 0x80, n),
                ]
            })
            .collect();
        let found = ledger::transfers(client, &ids).await?;
        let mut next = Vec::new();
        for (&i, steps) in asking.iter().zip(found.chunks(4)) {
            let steps: Steps = [steps[0], steps[1], steps[2], steps[3]];
            if steps[0].is_none() {
                continue; // generation g was never made: g - 1 stands
            }
            current[i] = Some((g, steps));
            if steps[2].is_some() || steps[3].is_some() {
                next.push(i);
            }
        }
        asking = next;
    }
    Ok(current)
}

/// The number of every order the desk has made: the holds on its liquidity accounts.
pub async fn all_numbers(client: &Client, config: &DeskConfig) -> Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for c in &config.currencies {
        let holds = ledger::all_transfers(client, c.liquidity_account, crate::codes::ORDER, bursar_engine::filter_flags::DEBITS).await?;
        for t in holds {
            if let Some((tag, 0, n)) = crate::ids::split(config.namespace, t.id) {
                if tag == Tag::OrderHold as u8 {
                    numbers.push(n);
                }
            }
        }
    }
    numbers.sort_unstable();
    numbers.dedup();
    Ok(numbers)
}
