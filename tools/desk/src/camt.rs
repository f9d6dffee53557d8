//! ISO 20022 camt.053 (bank-to-customer statement), versions .001.02 to .001.13, read with
//! quick-xml and mapped by hand onto the statement model: only the elements the desk needs, by
//! their path, so the differences between versions (`Sts` became `Sts/Cd`, `Dbtr/Nm` became
//! `Dbtr/Pty/Nm` in .08) are a few alternatives. Only booked entries (`BOOK`) are lines.

use anyhow::{anyhow, bail, Context, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use rust_decimal::Decimal;

use crate::statement::{parse_amount, parse_time, Balance, Line, Statement};

/// The namespaces read: `urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN`, NN from 02 to 13.
const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.";

/// An entry being read.
#[derive(Default)]
struct Entry {
    amount: Option<(String, String)>,
    credit: Option<bool>,
    reversal: bool,
    status: String,
    booked: Option<String>,
    entry_ref: String,
    remittance: Vec<String>,
    end_to_end: Option<String>,
    party_account: Option<String>,
    party_name: Option<String>,
    index: usize,
    line: usize,
}

/// A balance being read.
#[derive(Default)]
struct Bal {
    code: String,
    amount: Option<String>,
    credit: bool,
    date: Option<String>,
}

/// The statement being read.
#[derive(Default)]
struct Stmt {
    id: String,
    account: String,
    currency: Option<String>,
    closing: Option<Balance>,
    lines: Vec<Line>,
    entries: usize,
    line: usize,
}

/// The statements of a camt.053 document; an error names the line of the file and the element.
pub fn parse(text: &str) -> Result<Vec<Statement>> {
    let mut reader = Reader::from_str(text);
    // Text is trimmed per element when it ends: trimming each text event would eat the spaces
    // around an entity reference ("Nowak &amp; Co").
    reader.config_mut().trim_text(false);
    let mut parser = Parser::default();
    let mut lines = LineCounter::default();
    loop {
        let at = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => bail!("camt.053: line {}: malformed XML: {e}", lines.line_at(text, reader.error_position())),
        };
        let line = lines.line_at(text, at);
        let line_at = |_: u64| line;
        let step = match event {
            Event::Start(e) => {
                let name = intern(e.local_name().as_ref());
                // Only the root's namespace and an amount's currency are read from attributes.
                let attrs: Vec<(String, String)> = match name {
                    "Document" | "Amt" => e.attributes().flatten().map(|a| (a.key.as_ref().to_string(), a.value.to_string())).collect(),
                    _ => Vec::new(),
                };
                parser.start(name, &attrs, line_at(at))
            }
            Event::Empty(e) => {
                let name = intern(e.local_name().as_ref());
                parser.start(name, &[], line_at(at)).and_then(|()| parser.end())
            }
            Event::End(_) => parser.end(),
            Event::Text(t) => {
                parser.text(&t.xml10_content());
                Ok(())
            }
            Event::CData(t) => {
                parser.text(&t.xml10_content());
                Ok(())
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&r.xml10_content()).unwrap_or("").to_string(),
                };
                parser.text(&resolved);
                Ok(())
            }
            Event::Eof => break,
            _ => Ok(()),
        };
        step.with_context(|| format!("camt.053: line {}: {}", line_at(at), parser.path.join("/")))?;
    }
    if !parser.closed {
        bail!("camt.053: the file ends before </Document>: truncated");
    }
    if parser.statements.is_empty() {
        bail!("camt.053: no Stmt in BkToCstmrStmt");
    }
    Ok(parser.statements)
}

/// Line numbers of byte offsets that only move forward, counted once.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, pos: u64) -> usize {
        let pos = (pos as usize).min(text.len());
        if pos < self.offset {
            self.offset = 0;
            self.line = 0;
        }
        self.line += text.as_bytes()[self.offset..pos].iter().filter(|&&b| b == b'\n').count();
        self.offset = pos;
        self.line + 1
    }
}

/// The element names the mapping looks at; any other is `*` in the path (no allocation per
/// element: a statement of 100 000 entries has millions of them).
fn intern(name: &str) -> &'static str {
    macro_rules! names {
        ($($n:literal),* $(,)?) => {
            match name {
                $($n => $n,)*
                _ => "*",
            }
        };
    }
    names![
        "Document",
        "BkToCstmrStmt",
        "Stmt",
        "Id",
        "Acct",
        "IBAN",
        "Othr",
        "Ccy",
        "Bal",
        "Tp",
        "CdOrPrtry",
        "Cd",
        "Amt",
        "CdtDbtInd",
        "Dt",
        "DtTm",
        "Ntry",
        "RvslInd",
        "Sts",
        "BookgDt",
        "AcctSvcrRef",
        "NtryDtls",
        "TxDtls",
        "Refs",
        "EndToEndId",
        "RltdPties",
        "Dbtr",
        "DbtrAcct",
        "Cdtr",
        "CdtrAcct",
        "Pty",
        "Nm",
        "PstlAdr",
        "RmtInf",
        "Ustrd",
        "Strd",
        "CdtrRefInf",
        "Ref",
        "AddtlNtryInf",
        "ValDt",
        "GrpHdr",
        "MsgId",
    ]
}

#[derive(Default)]
struct Parser {
    path: Vec<&'static str>,
    text: String,
    namespace_checked: bool,
    closed: bool,
    stmt: Option<Stmt>,
    bal: Option<Bal>,
    entry: Option<Entry>,
    statements: Vec<Statement>,
}

impl Parser {
    fn start(&mut self, name: &'static str, attrs: &[(String, String)], line: usize) -> Result<()> {
        if self.path.is_empty() {
            self.document(name, attrs)?;
        }
        self.text.clear();
        match name {
            "Stmt" if self.under("BkToCstmrStmt") => self.stmt = Some(Stmt { line, ..Stmt::default() }),
            "Bal" if self.stmt.is_some() => self.bal = Some(Bal::default()),
            "Ntry" if self.stmt.is_some() => {
                let stmt = self.stmt.as_mut().expect("inside Stmt");
                stmt.entries += 1;
                self.entry = Some(Entry { index: stmt.entries, line, ..Entry::default() });
            }
            "Amt" => {
                let currency = attrs.iter().find(|(k, _)| k == "Ccy").map(|(_, v)| v.clone()).unwrap_or_default();
                if let (Some(entry), true) = (self.entry.as_mut(), self.path.last().is_some_and(|p| *p == "Ntry")) {
                    entry.amount = Some((String::new(), currency));
                }
            }
            _ => {}
        }
        self.path.push(name);
        Ok(())
    }

    /// The root: a camt.053 `Document` of a version read here.
    fn document(&mut self, name: &str, attrs: &[(String, String)]) -> Result<()> {
        if name != "Document" {
            bail!("the root element is {name}, not a camt.053 Document");
        }
        let is_namespace = |k: &str| k == "xmlns" || k.starts_with("xmlns:");
        let declared = || attrs.iter().filter(|(k, _)| is_namespace(k)).map(|(_, v)| v.as_str());
        let ns = declared().find(|v| v.starts_with(NAMESPACE_PREFIX)).or_else(|| declared().next()).unwrap_or("");
        let version = ns.strip_prefix(NAMESPACE_PREFIX).and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(2..=13) => self.namespace_checked = true,
            _ => bail!("namespace {ns:?} is not camt.053.001.02 to .13"),
        }
        Ok(())
    }

    fn under(&self, name: &str) -> bool {
        self.path.contains(&name)
    }

    fn ends_with(&self, tail: &[&str]) -> bool {
        self.path.len() >= tail.len() && self.path[self.path.len() - tail.len()..].iter().zip(tail).all(|(a, b)| a == b)
    }

    fn text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn end(&mut self) -> Result<()> {
        // The buffer is lent out and given back, keeping its room for the next element.
        let buffer = std::mem::take(&mut self.text);
        let leaf = self.leaf(buffer.trim());
        self.text = buffer;
        self.text.clear();
        leaf?;
        let name = self.path.pop().unwrap_or_default();
        match name {
            "Bal" => self.balance_done()?,
            "Ntry" => self.entry_done()?,
            "Stmt" => self.statement_done()?,
            "Document" => self.closed = true,
            _ => {}
        }
        Ok(())
    }

    /// A leaf element's text, by its path.
    fn leaf(&mut self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(()); // an element with children, or empty
        }
        let credit = self.entry.as_ref().and_then(|e| e.credit);
        let (party_account, party_name) = (self.ends_with_party_account(credit), self.party_name_path(credit));
        let (stmt_iban, stmt_other, stmt_ccy) = (
            self.ends_with(&["Acct", "Id", "IBAN"]),
            self.ends_with(&["Acct", "Id", "Othr", "Id"]),
            self.ends_with(&["Stmt", "Acct", "Ccy"]),
        );
        let path = &self.path;
        let last = path.last().copied().unwrap_or("");
        if let Some(entry) = self.entry.as_mut() {
            let in_tx = path.contains(&"TxDtls");
            let parent = path.len().checked_sub(2).map(|i| path[i]).unwrap_or("");
            match (last, parent) {
                ("Amt", "Ntry") => entry.amount.get_or_insert_with(Default::default).0 = text.to_string(),
                ("CdtDbtInd", "Ntry") => entry.credit = Some(credit_debit(text)?),
                ("RvslInd", "Ntry") => entry.reversal = text == "true",
                ("Sts", "Ntry") | ("Cd", "Sts") => entry.status = text.to_string(),
                ("Dt" | "DtTm", "BookgDt") => entry.booked = Some(text.to_string()),
                ("AcctSvcrRef", "Ntry") => entry.entry_ref = text.to_string(),
                ("AcctSvcrRef", "Refs") if entry.entry_ref.is_empty() => entry.entry_ref = text.to_string(),
                ("EndToEndId", "Refs") if in_tx && text != "NOTPROVIDED" => {
                    entry.end_to_end = entry.end_to_end.take().or(Some(text.to_string()))
                }
                ("Ustrd", "RmtInf") | ("Ref", "CdtrRefInf") | ("AddtlNtryInf", "Ntry") => entry.remittance.push(text.to_string()),
                ("IBAN" | "Id", _) if party_account => {
                    entry.party_account.get_or_insert_with(|| text.replace(' ', "").to_ascii_uppercase());
                }
                ("Nm", _) if party_name => {
                    entry.party_name.get_or_insert_with(|| text.to_string());
                }
                _ => {}
            }
            return Ok(());
        }
        if let Some(bal) = self.bal.as_mut() {
            match last {
                "Cd" if path.contains(&"Tp") => bal.code = text.to_string(),
                "Amt" => bal.amount = Some(text.to_string()),
                "CdtDbtInd" => bal.credit = credit_debit(text)?,
                "Dt" | "DtTm" if path.iter().rev().nth(1).is_some_and(|p| *p == "Dt") || last == "DtTm" => {
                    bal.date = Some(text.to_string())
                }
                _ => {}
            }
            return Ok(());
        }
        if let Some(stmt) = self.stmt.as_mut() {
            match last {
                "Id" if path.len() >= 2 && path[path.len() - 2] == "Stmt" => stmt.id = text.to_string(),
                "IBAN" if stmt_iban => stmt.account = text.replace(' ', "").to_ascii_uppercase(),
                "Id" if stmt_other && stmt.account.is_empty() => stmt.account = text.to_string(),
                "Ccy" if stmt_ccy => stmt.currency = Some(text.to_string()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Inside the counterparty's account: the debtor's for money in, the creditor's for money out.
    fn ends_with_party_account(&self, credit: Option<bool>) -> bool {
        let account = if credit == Some(false) { "CdtrAcct" } else { "DbtrAcct" };
        self.under("RltdPties") && self.under(account)
    }

    fn party_name_path(&self, credit: Option<bool>) -> bool {
        let party = if credit == Some(false) { "Cdtr" } else { "Dbtr" };
        self.under("RltdPties") && self.under(party) && !self.under("PstlAdr")
    }

    fn balance_done(&mut self) -> Result<()> {
        // A Bal, Ntry or Stmt outside the structure the mapping follows was never opened: its
        // end is nothing to finish (what it held is missing, which the checks then name).
        let Some(bal) = self.bal.take() else { return Ok(()) };
        if bal.code != "CLBD" {
            return Ok(());
        }
        let amount = parse_amount(bal.amount.as_deref().context("CLBD balance without Amt")?, false)?;
        if amount.is_sign_negative() {
            bail!("CLBD balance: Amt {amount} is negative (the sign is CdtDbtInd)");
        }
        let (at_ns, _) = parse_time(bal.date.as_deref().context("CLBD balance without Dt")?)?;
        let amount = if bal.credit { amount } else { -amount };
        if let Some(stmt) = self.stmt.as_mut() {
            stmt.closing = Some(Balance { amount, at_ns });
        }
        Ok(())
    }

    fn entry_done(&mut self) -> Result<()> {
        let Some(e) = self.entry.take() else { return Ok(()) };
        let where_ = format!("line {} (Ntry {})", e.line, e.index);
        if !e.status.is_empty() && e.status != "BOOK" {
            return Ok(()); // pending or informational: not booked, not a line
        }
        let (amount, currency) = e.amount.with_context(|| format!("{where_}: no Amt"))?;
        let amount: Decimal = parse_amount(&amount, false).with_context(|| format!("{where_}: Amt"))?;
        if amount <= Decimal::ZERO {
            bail!("{where_}: Amt {amount} is not above zero");
        }
        let credit = e.credit.with_context(|| format!("{where_}: no CdtDbtInd"))?;
        let (booked_at_ns, date_only) = parse_time(e.booked.as_deref().with_context(|| format!("{where_}: no BookgDt"))?)?;
        let Some(stmt) = self.stmt.as_mut() else { return Ok(()) };
        stmt.lines.push(Line {
            entry_ref: e.entry_ref,
            amount,
            // A reversal of a credit takes money out, of a debit puts it back.
            credit: credit != e.reversal,
            currency,
            booked_at_ns,
            date_only,
            remittance: e.remittance.join(" "),
            end_to_end_id: e.end_to_end,
            counterparty_account: e.party_account,
            counterparty_name: e.party_name,
            position: where_,
        });
        Ok(())
    }

    fn statement_done(&mut self) -> Result<()> {
        let Some(s) = self.stmt.take() else { return Ok(()) };
        let where_ = format!("Stmt at line {}", s.line);
        if s.account.is_empty() {
            bail!("{where_}: no Acct/Id/IBAN");
        }
        let closing = s.closing.with_context(|| format!("{where_}: no closing booked balance (Bal with Tp/CdOrPrtry/Cd CLBD)"))?;
        if let Some(currency) = &s.currency {
            if let Some(line) = s.lines.iter().find(|l| &l.currency != currency) {
                bail!("{}: amount in {} on an account in {currency}", line.position, line.currency);
            }
        }
        self.statements.push(Statement { account: s.account, id: s.id, currency: s.currency, closing: Some(closing), lines: s.lines });
        Ok(())
    }
}

fn credit_debit(text: &str) -> Result<bool> {
    match text {
        "CRDT" => Ok(true),
        "DBIT" => Ok(false),
        other => Err(anyhow!("CdtDbtInd {other:?} is neither CRDT nor DBIT")),
    }
}
