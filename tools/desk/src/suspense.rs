//! Suspense: the statement lines no order or payout explained, and the cashier's assignment of
//! money in to an order (a customer forgot the reference, or mistyped it). An assignment moves
//! the line's money from suspense to the order's account with the line's booking time, under an
//! id derived from the suspense transfer, and settles the order as an import would.

use anyhow::{bail, Context, Result};
use bursar_engine::{filter_flags, Command, ResultCode, Transfer};
use bursar_net::client::Client;

use crate::codes;
use crate::config::{Currency, DeskConfig};
use crate::ids::{self, assign_id};
use crate::import::{self, Report};
use crate::ledger;

/// One line in suspense.
#[derive(Clone, Debug)]
pub struct Parked {
    /// The suspense transfer (its id names the line).
    pub transfer: Transfer,
    /// Its currency.
    pub currency: String,
    /// Money in (else out).
    pub money_in: bool,
    /// The order it was assigned to, if any (its reference).
    pub assigned_to: Option<String>,
}

/// Every line in the desk's suspense accounts, oldest first, with what became of it.
pub async fn list(client: &Client, config: &DeskConfig) -> Result<Vec<Parked>> {
    let mut parked = Vec::new();
    for c in &config.currencies {
        let flags = filter_flags::DEBITS | filter_flags::CREDITS;
        for t in ledger::all_transfers(client, c.suspense_account, 0, flags).await? {
            if t.code == codes::SUSPENSE_IN || t.code == codes::SUSPENSE_OUT {
                parked.push(Parked { transfer: t, currency: c.code.clone(), money_in: t.code == codes::SUSPENSE_IN, assigned_to: None });
            }
        }
    }
    let assignments: Vec<u128> = parked.iter().map(|p| assign_id(config.namespace, p.transfer.id)).collect();
    for (p, found) in parked.iter_mut().zip(ledger::transfers(client, &assignments).await?) {
        p.assigned_to = found
            .and_then(|a| ids::split(config.namespace, a.credit_account_id))
            .map(|(_, _, n)| ids::reference(&config.reference_prefix, n));
    }
    Ok(parked)
}

/// Assigns the money-in line parked as `suspense_id` to order `number`, then settles the order.
pub async fn assign(client: &Client, config: &DeskConfig, suspense_id: u128, number: u64) -> Result<(ResultCode, Report)> {
    let parked = ledger::transfers(client, &[suspense_id]).await?.pop().flatten().with_context(|| format!("no transfer {suspense_id}"))?;
    let c: &Currency = config.by_ledger(parked.ledger).context("the line's ledger is not in the configuration")?;
    if parked.code != codes::SUSPENSE_IN || parked.credit_account_id != c.suspense_account {
        bail!("transfer {suspense_id} is not money in parked in suspense");
    }
    let order = crate::ops::one(client, config, number).await?;
    if order.quote.from_ledger != parked.ledger {
        bail!("the order sells another currency than {}", c.code);
    }
    let assignment = Transfer {
        id: assign_id(config.namespace, suspense_id),
        debit_account_id: c.suspense_account,
        credit_account_id: order.account_from.id,
        amount: parked.amount,
        ledger: c.ledger,
        code: codes::LINE_IN,
        user_data_128: parked.user_data_128,
        user_data_64: parked.user_data_64,
        user_data_32: parked.user_data_32,
        ..Transfer::default()
    };
    let code = client.submit(vec![Command::Transfer(assignment)]).await?[0];
    if !ledger::done(code) {
        return Ok((code, Report::default()));
    }
    Ok((code, import::settle_orders(client, config, &[number]).await?))
}
