//! `desk payouts`: a hold on the bank account's shadow for every exchanged order's bought money
//! (and every refund due: an overpayment's rest, a cancelled order's money), then the file the
//! bank executes, ISO 20022 pain.001.001.09 or CSV. A hold's id is derived from the order and
//! the payout's number, and only holds made by this run are written, so no payout is ever in
//! two files (`--reissue` writes the ones still unconfirmed, for a file that was lost). The
//! bank's debit line carries the end-to-end id back and `desk import` posts the hold.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use bursar_engine::{filter_flags, transfer_flags, Command, HoldStatus, ResultCode, Transfer};
use bursar_net::client::Client;
use quick_xml::escape::escape;
use rust_decimal::Decimal;

use crate::codes;
use crate::config::{Currency, DeskConfig};
use crate::ids::{self, derive, unpack_iban, Tag};
use crate::ledger;
use crate::orders::{self, available, Order, PAYOUTS_MAX};

/// One outgoing transfer order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The end-to-end id the bank returns on its debit line.
    pub end_to_end_id: String,
    /// The amount in major units.
    pub amount: Decimal,
    /// The currency (ISO code).
    pub currency: String,
    /// The customer's name.
    pub creditor_name: String,
    /// The customer's account.
    pub creditor_iban: String,
    /// The transfer title: the order's reference.
    pub remittance: String,
    /// Refund (sold currency back) or payout.
    pub refund: bool,
}

impl Payment {
    /// Payout (or refund) `k` of order `o`: `amount` minor units of `c` to `iban`.
    #[allow(clippy::too_many_arguments)]
    fn of(config: &DeskConfig, o: &Order, refund: bool, k: u8, c: &Currency, amount: u128, iban: &str, name: &str) -> Payment {
        let reference = ids::reference(&config.reference_prefix, o.number);
        Payment {
            end_to_end_id: ids::end_to_end_id(&config.reference_prefix, refund, k, o.number),
            amount: c.major(amount),
            currency: c.code.clone(),
            creditor_name: name.to_string(),
            creditor_iban: iban.to_string(),
            remittance: format!("{} {reference}", if refund { "Refund" } else { "Exchange" }),
            refund,
        }
    }
}

/// The payouts and refunds due now, as holds; returns the payments made by this run (or, with
/// `reissue`, every one made before and not yet confirmed) and the orders left out, with why.
pub async fn make(client: &Client, config: &DeskConfig, reissue: bool) -> Result<(Vec<Payment>, Vec<String>)> {
    let numbers = orders::all_numbers(client, config).await?;
    let loaded: Vec<Order> = orders::load(client, config, &numbers).await?.into_iter().flatten().collect();
    if reissue {
        return Ok((unconfirmed(client, config, &loaded).await?, Vec::new()));
    }
    let (mut holds, mut payments, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for o in &loaded {
        let Some((from, to)) = o.currencies(config) else { continue };
        let reference = ids::reference(&config.reference_prefix, o.number);
        let name = o.payee_name();
        if o.leg2.is_some() && available(&o.account_to) > 0 {
            let iban = o.payee_iban();
            match payout(config, o, false, o.payouts.len(), to, &o.account_to, &iban, &name) {
                Some((hold, payment)) => {
                    holds.push(hold);
                    payments.push(payment);
                }
                None => skipped.push(format!("{reference}: {PAYOUTS_MAX} payouts made already")),
            }
        }
        if (o.leg2.is_some() || o.cancelled) && available(&o.account_from) > 0 {
            let Some(iban) = payer(client, o).await? else {
                skipped.push(format!("{reference}: a refund is due, but no statement line named the payer's account"));
                continue;
            };
            match payout(config, o, true, o.refunds.len(), from, &o.account_from, &iban, &name) {
                Some((hold, payment)) => {
                    holds.push(hold);
                    payments.push(payment);
                }
                None => skipped.push(format!("{reference}: {PAYOUTS_MAX} refunds made already")),
            }
        }
    }
    let commands: Vec<Command> = holds.into_iter().map(Command::Transfer).collect();
    let results = ledger::submit(client, &commands).await?;
    let mut made = Vec::new();
    for (payment, code) in payments.into_iter().zip(results) {
        match code {
            ResultCode::Ok => made.push(payment),
            ResultCode::Exists => skipped.push(format!("{}: made by another run at the same time", payment.end_to_end_id)),
            other => skipped.push(format!("{}: {}", payment.end_to_end_id, other.name())),
        }
    }
    Ok((made, skipped))
}

/// The hold and payment of payout (or refund) `k` of `o`: all that `account` holds, to `iban`.
#[allow(clippy::too_many_arguments)]
fn payout(
    config: &DeskConfig,
    o: &Order,
    refund: bool,
    k: usize,
    c: &Currency,
    account: &bursar_engine::Account,
    iban: &str,
    name: &str,
) -> Option<(Transfer, Payment)> {
    let k = u8::try_from(k).ok().filter(|k| *k < PAYOUTS_MAX)?;
    let amount = available(account);
    let hold = Transfer {
        id: derive(config.namespace, if refund { Tag::Refund } else { Tag::Payout }, k, o.number),
        debit_account_id: account.id,
        credit_account_id: c.shadow_account,
        amount,
        user_data_128: o.hold.id,
        ledger: c.ledger,
        code: if refund { codes::REFUND } else { codes::PAYOUT },
        flags: transfer_flags::PENDING,
        ..Transfer::default()
    };
    let payment = Payment::of(config, o, refund, k, c, amount, iban, name);
    Some((hold, payment))
}

/// The payer's account from the newest payment line of the order (kept in its user data).
async fn payer(client: &Client, o: &Order) -> Result<Option<String>> {
    let lines = ledger::all_transfers(client, o.account_from.id, codes::LINE_IN, filter_flags::CREDITS).await?;
    let Some(line) = lines.iter().rev().find(|t| t.user_data_128 != 0 || t.user_data_32 != 0) else { return Ok(None) };
    let mut packed = [0u8; 20];
    packed[..16].copy_from_slice(&line.user_data_128.to_be_bytes());
    packed[16..].copy_from_slice(&line.user_data_32.to_be_bytes());
    Ok(Some(unpack_iban(packed)))
}

/// Payouts and refunds made before and still pending (no debit line has confirmed them).
async fn unconfirmed(client: &Client, config: &DeskConfig, loaded: &[Order]) -> Result<Vec<Payment>> {
    let mut out = Vec::new();
    for o in loaded {
        let Some((from, to)) = o.currencies(config) else { continue };
        let name = o.payee_name();
        for (refund, holds, c) in [(false, &o.payouts, to), (true, &o.refunds, from)] {
            for (k, hold) in holds.iter().enumerate() {
                let lineage = client.lookup_lineage(hold.id).await?.context("a payout hold's lineage")?;
                if lineage.hold.is_none_or(|h| h.status != HoldStatus::Pending) {
                    continue;
                }
                let iban = if refund { payer(client, o).await?.unwrap_or_default() } else { o.payee_iban() };
                out.push(Payment::of(config, o, refund, k as u8, c, hold.amount, &iban, &name));
            }
        }
    }
    Ok(out)
}

/// The payments as one ISO 20022 pain.001.001.09 message: one payment information block per
/// currency (the desk's bank account in it), one credit transfer per payment.
pub fn pain001(config: &DeskConfig, payments: &[Payment], message_id: &str, created_at: &str, execution_date: &str) -> Result<String> {
    if message_id.len() > 35 {
        bail!("a message id has at most 35 characters");
    }
    let total: Decimal = payments.iter().map(|p| p.amount).sum();
    let mut x = String::new();
    let w = &mut x;
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">"#)?;
    writeln!(w, "  <CstmrCdtTrfInitn>")?;
    writeln!(w, "    <GrpHdr>")?;
    writeln!(w, "      <MsgId>{}</MsgId>", escape(message_id))?;
    writeln!(w, "      <CreDtTm>{created_at}</CreDtTm>")?;
    writeln!(w, "      <NbOfTxs>{}</NbOfTxs>", payments.len())?;
    writeln!(w, "      <CtrlSum>{total}</CtrlSum>")?;
    writeln!(w, "      <InitgPty><Nm>{}</Nm></InitgPty>", escape(&config.name))?;
    writeln!(w, "    </GrpHdr>")?;
    for c in &config.currencies {
        let mine: Vec<&Payment> = payments.iter().filter(|p| p.currency == c.code).collect();
        if mine.is_empty() {
            continue;
        }
        let sum: Decimal = mine.iter().map(|p| p.amount).sum();
        writeln!(w, "    <PmtInf>")?;
        writeln!(w, "      <PmtInfId>{}-{}</PmtInfId>", escape(message_id), c.code)?;
        writeln!(w, "      <PmtMtd>TRF</PmtMtd>")?;
        writeln!(w, "      <NbOfTxs>{}</NbOfTxs>", mine.len())?;
        writeln!(w, "      <CtrlSum>{sum}</CtrlSum>")?;
        writeln!(w, "      <ReqdExctnDt><Dt>{execution_date}</Dt></ReqdExctnDt>")?;
        writeln!(w, "      <Dbtr><Nm>{}</Nm></Dbtr>", escape(&config.name))?;
        writeln!(w, "      <DbtrAcct><Id><IBAN>{}</IBAN></Id><Ccy>{}</Ccy></DbtrAcct>", escape(&c.iban), c.code)?;
        match &c.bic {
            Some(bic) => writeln!(w, "      <DbtrAgt><FinInstnId><BICFI>{}</BICFI></FinInstnId></DbtrAgt>", escape(bic))?,
            None => writeln!(w, "      <DbtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId></DbtrAgt>")?,
        }
        for p in mine {
            writeln!(w, "      <CdtTrfTxInf>")?;
            writeln!(w, "        <PmtId><EndToEndId>{}</EndToEndId></PmtId>", escape(&p.end_to_end_id))?;
            writeln!(w, r#"        <Amt><InstdAmt Ccy="{}">{}</InstdAmt></Amt>"#, p.currency, p.amount)?;
            writeln!(w, "        <Cdtr><Nm>{}</Nm></Cdtr>", escape(&p.creditor_name))?;
            writeln!(w, "        <CdtrAcct><Id><IBAN>{}</IBAN></Id></CdtrAcct>", escape(&p.creditor_iban))?;
            writeln!(w, "        <RmtInf><Ustrd>{}</Ustrd></RmtInf>", escape(&p.remittance))?;
            writeln!(w, "      </CdtTrfTxInf>")?;
        }
        writeln!(w, "    </PmtInf>")?;
    }
    writeln!(w, "  </CstmrCdtTrfInitn>")?;
    writeln!(w, "</Document>")?;
    Ok(x)
}

/// The payments as CSV: end-to-end id, amount, currency, name, IBAN, title, kind.
pub fn csv(payments: &[Payment]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["end_to_end_id", "amount", "currency", "creditor_name", "creditor_iban", "remittance", "kind"])?;
    for p in payments {
        let amount = p.amount.to_string();
        let kind = if p.refund { "refund" } else { "payout" };
        writer.write_record([p.end_to_end_id.as_str(), &amount, &p.currency, &p.creditor_name, &p.creditor_iban, &p.remittance, kind])?;
    }
    Ok(String::from_utf8(writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?)
}
