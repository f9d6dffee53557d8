//! SWIFT MT940 (customer statement) through the `mt940` crate, mapped onto the statement model.
//! MT940 books by date only, so every line is `date_only` (see `docs/desk.md` for what a
//! date-only booking means for a quote's validity). The line's bank reference (`:61:` after
//! `//`) is its entry reference; the customer reference is one when the bank gives none.

use anyhow::{anyhow, bail, Context, Result};
use mt940::{DebitOrCredit, ExtDebitOrCredit, InformationToAccountOwner, Message};

use crate::statement::{end_of_day_ns, Balance, Line, Statement};

/// The statements (one per `:20:` message) of an MT940 file; an error names the message and,
/// for a syntax error, the line and column.
pub fn parse(text: &str) -> Result<Vec<Statement>> {
    let text = mt940::sanitizers::sanitize(text.trim_start_matches('\u{feff}'));
    let fields = mt940::parse_fields(&text).map_err(|e| anyhow!("MT940: {e}"))?;
    let mut messages: Vec<Vec<mt940::Field>> = Vec::new();
    for field in fields {
        match (field.tag.as_str(), messages.last_mut()) {
            ("20", _) => messages.push(vec![field]),
            (_, Some(message)) => message.push(field),
            (tag, None) => bail!("MT940: field :{tag}: before the first :20:"),
        }
    }
    if messages.is_empty() {
        bail!("MT940: no :20: message");
    }
    let mut statements = Vec::with_capacity(messages.len());
    for (i, fields) in messages.into_iter().enumerate() {
        let reference = fields[0].value.trim().to_string();
        let message = from_fields(fields).map_err(|e| anyhow!("MT940: message {} (:20:{reference}): {e}", i + 1))?;
        statements.push(statement(message, i + 1).with_context(|| format!("MT940: message {} (:20:{reference})", i + 1))?);
    }
    Ok(statements)
}

/// `Message::from_fields`, with its panics turned into errors: the `mt940` crate unwraps on some
/// malformed fields (an entry date such as 1332 in `:61:`), and no file may crash the tool. Its
/// panic message is kept off stderr; any other panic still prints as usual.
fn from_fields(fields: Vec<mt940::Field>) -> Result<Message> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/mt940-")) {
                previous(info);
            }
        }));
    });
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Message::from_fields(fields))) {
        Ok(parsed) => parsed.map_err(|e| anyhow!("{e}")),
        Err(_) => Err(anyhow!("a field the MT940 parser cannot read (an impossible date or a malformed amount)")),
    }
}

fn statement(m: Message, index: usize) -> Result<Statement> {
    let currency = m.closing_balance.iso_currency_code.clone();
    let mut lines = Vec::with_capacity(m.statement_lines.len());
    for (n, l) in m.statement_lines.into_iter().enumerate() {
        let position = format!("message {index}, :61: line {}", n + 1);
        if l.amount <= rust_decimal::Decimal::ZERO {
            bail!("{position}: amount {} is not above zero", l.amount);
        }
        let credit = matches!(l.ext_debit_credit_indicator, ExtDebitOrCredit::Credit | ExtDebitOrCredit::ReverseDebit);
        let booked = l.entry_date.unwrap_or(l.value_date);
        let (remittance, party_account, party_name) = match l.information_to_account_owner {
            Some(InformationToAccountOwner::Plain(text)) => (text, None, None),
            Some(InformationToAccountOwner::Structured { purpose, additional_purpose, applicant_iban, applicant_name, .. }) => {
                let text = [purpose, additional_purpose].into_iter().flatten().collect::<Vec<_>>().join(" ");
                (text, applicant_iban, applicant_name)
            }
            None => (String::new(), None, None),
        };
        let customer_ref = Some(l.customer_ref.trim().to_string()).filter(|r| !r.is_empty() && r != "NONREF");
        let entry_ref = l.bank_ref.clone().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).or(customer_ref.clone());
        lines.push(Line {
            entry_ref: entry_ref.unwrap_or_default(),
            amount: l.amount,
            credit,
            currency: currency.clone(),
            booked_at_ns: end_of_day_ns(booked)?,
            date_only: true,
            remittance,
            end_to_end_id: customer_ref,
            counterparty_account: party_account.map(|a| a.replace(' ', "").to_ascii_uppercase()),
            counterparty_name: party_name,
            position,
        });
    }
    let sign = if m.closing_balance.debit_credit_indicator == DebitOrCredit::Credit { 1 } else { -1 };
    let closing =
        Balance { amount: m.closing_balance.amount * rust_decimal::Decimal::from(sign), at_ns: end_of_day_ns(m.closing_balance.date)? };
    Ok(Statement {
        account: m.account_id.replace(' ', "").to_ascii_uppercase(),
        id: format!("{}/{}", m.transaction_ref_no, m.statement_no),
        currency: Some(currency),
        closing: Some(closing),
        lines,
    })
}
