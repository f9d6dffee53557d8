//! One model of a bank statement, whatever the file format: the bank account, its closing balance
//! and the booked lines. camt.053 (`camt`), MT940 (`swift`) and CSV (`csvfile`) map onto it; the
//! matching works on it alone.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rust_decimal::Decimal;

use crate::config::CsvMapping;

/// A bank statement: the lines the bank booked on one of its accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The bank account (IBAN, or the bank's own account number), spaces removed, upper case.
    pub account: String,
    /// The statement's own id, for reports.
    pub id: String,
    /// The currency of the account, when the file says it.
    pub currency: Option<String>,
    /// The closing booked balance, when the file has one.
    pub closing: Option<Balance>,
    /// The booked lines, in file order.
    pub lines: Vec<Line>,
}

/// A booked balance: signed (negative: overdrawn) and when it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The amount in major units, signed.
    pub amount: Decimal,
    /// The end of the balance's date (or its exact time), ns since the Unix epoch, UTC.
    pub at_ns: u64,
}

/// One booked entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The bank's reference of the entry (AcctSvcrRef, MT940's bank reference, a CSV column), or
    /// one derived from the line's contents when the file has none (`fallback_refs`).
    pub entry_ref: String,
    /// The amount in major units, above zero.
    pub amount: Decimal,
    /// Money in (a credit to the account) or out.
    pub credit: bool,
    /// The currency of the amount.
    pub currency: String,
    /// When the bank booked it, ns since the Unix epoch, UTC; the end of the day when the file
    /// gives only a date (`date_only`).
    pub booked_at_ns: u64,
    /// The file gives only the booking date.
    pub date_only: bool,
    /// The transfer title (unstructured remittance information, MT940's :86:), joined.
    pub remittance: String,
    /// The end-to-end id the payer's bank carried, if any.
    pub end_to_end_id: Option<String>,
    /// The other side's account (the payer's for money in).
    pub counterparty_account: Option<String>,
    /// The other side's name.
    pub counterparty_name: Option<String>,
    /// Where in the file the line is, for messages ("line 40", "Ntry 3").
    pub position: String,
}

/// The formats `desk import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISO 20022 camt.053 (versions .001.02 to .001.13 share the paths read).
    Camt053,
    /// SWIFT MT940.
    Mt940,
    /// CSV with the column mapping of the desk's configuration.
    Csv,
}

/// The format of `bytes`: XML is camt.053, a `:20:` tag is MT940, anything else CSV.
pub fn sniff(bytes: &[u8]) -> Format {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with('<') {
        Format::Camt053
    } else if head.starts_with(":20:") || head.starts_with("{1:") || head.contains("\n:20:") {
        Format::Mt940
    } else {
        Format::Csv
    }
}

/// The statements in the file at `path` (format sniffed), or an error naming the file and the
/// line or element at fault. Nothing is returned unless the whole file is well formed.
pub fn read_file(path: &Path, csv: Option<&CsvMapping>) -> Result<Vec<Statement>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes, csv).with_context(|| format!("{}", path.display()))
}

/// The statements in `bytes` (format sniffed).
pub fn parse(bytes: &[u8], csv: Option<&CsvMapping>) -> Result<Vec<Statement>> {
    let mut statements = match sniff(bytes) {
        Format::Camt053 => crate::camt::parse(std::str::from_utf8(bytes).context("camt.053: not UTF-8")?)?,
        Format::Mt940 => crate::swift::parse(&String::from_utf8_lossy(bytes))?,
        Format::Csv => match csv {
            Some(mapping) => crate::csvfile::parse(bytes, mapping)?,
            None => bail!("not XML (camt.053) nor MT940, and the desk's configuration has no [csv] mapping"),
        },
    };
    for s in &mut statements {
        fallback_refs(s);
    }
    Ok(statements)
}

/// Lines without the bank's reference get one from their contents: date, direction, amount,
/// counterparty, title, and how many identical lines came before in the statement, so the same
/// line in an overlapping statement gets the same reference.
fn fallback_refs(statement: &mut Statement) {
    let mut seen: Vec<String> = Vec::new();
    for line in &mut statement.lines {
        if !line.entry_ref.is_empty() {
            continue;
        }
        let day = line.booked_at_ns / (86_400 * 1_000_000_000);
        let key = format!(
            "{day}|{}|{}|{}|{}",
            if line.credit { 'C' } else { 'D' },
            line.amount.normalize(),
            line.counterparty_account.as_deref().unwrap_or(""),
            line.remittance
        );
        let occurrence = seen.iter().filter(|k| **k == key).count();
        line.entry_ref = format!("derived:{}:{occurrence}", blake3::hash(key.as_bytes()).to_hex());
        seen.push(key);
    }
}

/// Nanoseconds in a day.
pub const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// The last nanosecond of `date` (UTC): when a date-only booking counts as made.
pub fn end_of_day_ns(date: chrono::NaiveDate) -> Result<u64> {
    let start = date.and_hms_opt(0, 0, 0).context("a date")?.and_utc().timestamp();
    let start = u64::try_from(start).with_context(|| format!("{date}: before 1970"))?;
    Ok(start * 1_000_000_000 + NS_PER_DAY - 1)
}

/// An RFC 3339 time or a date (`YYYY-MM-DD`, as its last nanosecond): ns and whether date-only.
pub fn parse_time(text: &str) -> Result<(u64, bool)> {
    let text = text.trim();
    if text.len() == 10 {
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok((end_of_day_ns(date)?, true));
        }
    }
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc().fixed_offset()))
        .with_context(|| format!("{text:?} is not a date or a date and time"))?;
    let ns = time.timestamp_nanos_opt().and_then(|n| u64::try_from(n).ok());
    Ok((ns.with_context(|| format!("{text}: out of range"))?, false))
}

/// A decimal amount as written in statements (`1234.56`, `1234,56` with `comma`), above zero.
pub fn parse_amount(text: &str, comma: bool) -> Result<Decimal> {
    let cleaned: String = text.trim().chars().filter(|c| !c.is_whitespace() && *c != '\'').collect();
    let cleaned = if comma { cleaned.replace('.', "").replace(',', ".") } else { cleaned.replace(',', "") };
    let value = Decimal::from_str_exact(&cleaned).with_context(|| format!("{text:?} is not an amount"))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_without_references_get_distinct_stable_ones() {
        let line = Line {
            entry_ref: String::new(),
            amount: Decimal::new(1000, 2),
            credit: true,
            currency: "EUR".into(),
            booked_at_ns: 5,
            date_only: true,
            remittance: "fee".into(),
            end_to_end_id: None,
            counterparty_account: None,
            counterparty_name: None,
            position: "line 1".into(),
        };
        let mut s = Statement { account: "X".into(), id: "1".into(), currency: None, closing: None, lines: vec![line.clone(), line] };
        fallback_refs(&mut s);
        assert_ne!(s.lines[0].entry_ref, s.lines[1].entry_ref);
        let mut again = s.clone();
        again.lines.iter_mut().for_each(|l| l.entry_ref.clear());
        fallback_refs(&mut again);
        assert_eq!(again, s);
    }

    #[test]
    fn times_and_dates() {
        assert_eq!(parse_time("1970-01-02").unwrap(), (2 * NS_PER_DAY - 1, true));
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), (1_000_000_000, false));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00").unwrap(), (1_000_000_000, false));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_amount("1 234,50", true).unwrap(), Decimal::new(123_450, 2));
        assert!(parse_amount("12x", false).is_err());
    }
}
