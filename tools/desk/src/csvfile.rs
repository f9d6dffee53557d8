//! CSV statements (what many banks export) through the `csv` crate, with the column mapping of
//! the desk's configuration (`[csv]`): which column holds the account, the booking date, the
//! signed amount, the currency, the title and the bank's reference. A CSV file has no closing
//! balance unless a column maps one (the balance after the line); then the last line's is it.

use anyhow::{bail, Context, Result};

use crate::config::CsvMapping;
use crate::statement::{parse_amount, parse_time, Balance, Line, Statement};

/// The statements of a CSV file, one per bank account in it, lines in file order; an error names
/// the line (1 is the header) and the column.
pub fn parse(bytes: &[u8], m: &CsvMapping) -> Result<Vec<Statement>> {
    let mut reader = csv::ReaderBuilder::new().delimiter(m.delimiter as u8).has_headers(true).flexible(false).from_reader(bytes);
    let headers = reader.headers().context("CSV: line 1: the header")?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let required = |name: &str| column(name).with_context(|| format!("CSV: line 1: no column {name:?} (the [csv] mapping names it)"));
    let (date, amount, title) = (required(&m.date)?, required(&m.amount)?, required(&m.title)?);
    let account = m.account.as_deref().map(required).transpose()?;
    let currency = m.currency.as_deref().map(required).transpose()?;
    let entry_ref = m.reference.as_deref().map(required).transpose()?;
    let party = m.counterparty_account.as_deref().map(required).transpose()?;
    let party_name = m.counterparty_name.as_deref().map(required).transpose()?;
    let balance = m.balance_after.as_deref().map(required).transpose()?;
    let mut statements: Vec<Statement> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("CSV: line {line}"))?;
        let field = |c: usize| record.get(c).unwrap_or("").trim().to_string();
        let at = |what: &str, c: usize| format!("CSV: line {line}: column {:?} ({what})", headers.get(c).unwrap_or(""));
        let signed = parse_amount(&field(amount), m.decimal_comma).with_context(|| at("amount", amount))?;
        if signed.is_zero() {
            bail!("{}: a zero amount", at("amount", amount));
        }
        let (booked_at_ns, date_only) = parse_time(&field(date)).with_context(|| at("date", date))?;
        let account_id = match account {
            Some(c) => field(c).replace(' ', "").to_ascii_uppercase(),
            None => m.account_fixed.clone().context("[csv] names neither an account column nor account_fixed")?,
        };
        let line_currency = match currency {
            Some(c) => field(c),
            None => m.currency_fixed.clone().context("[csv] names neither a currency column nor currency_fixed")?,
        };
        let index = match statements.iter().position(|s| s.account == account_id) {
            Some(index) => index,
            None => {
                statements.push(Statement {
                    account: account_id.clone(),
                    id: "csv".into(),
                    currency: Some(line_currency.clone()),
                    closing: None,
                    lines: Vec::new(),
                });
                statements.len() - 1
            }
        };
        let s = &mut statements[index];
        if s.currency.as_deref() != Some(line_currency.as_str()) {
            bail!(
                "CSV: line {line}: {line_currency} on account {account_id}, whose earlier lines are in {}",
                s.currency.as_deref().unwrap_or("?")
            );
        }
        if let Some(c) = balance {
            let amount = parse_amount(&field(c), m.decimal_comma).with_context(|| at("balance", c))?;
            s.closing = Some(Balance { amount, at_ns: booked_at_ns });
        }
        s.lines.push(Line {
            entry_ref: entry_ref.map(field).unwrap_or_default(),
            amount: signed.abs(),
            credit: signed.is_sign_positive(),
            currency: line_currency,
            booked_at_ns,
            date_only,
            remittance: field(title),
            end_to_end_id: None,
            counterparty_account: party.map(field).filter(|p| !p.is_empty()).map(|p| p.replace(' ', "").to_ascii_uppercase()),
            counterparty_name: party_name.map(field).filter(|p| !p.is_empty()),
            position: format!("line {line}"),
        });
    }
    if statements.is_empty() {
        bail!("CSV: no lines after the header");
    }
    Ok(statements)
}
