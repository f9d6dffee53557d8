//! The statement formats: the sample files (written for these tests from the published formats,
//! not copied from a bank) map onto the same lines, and malformed files are refused whole with
//! the line or element at fault.

use bursar_desk::config::CsvMapping;
use bursar_desk::statement::{parse, Statement};
use rust_decimal::Decimal;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample file")
}

fn mapping() -> CsvMapping {
    let text = r#"
        date = "Booking date"
        amount = "Amount"
        title = "Title"
        account = "Account"
        currency = "Currency"
        reference = "Bank reference"
        counterparty_account = "Payer account"
    "#;
    toml::from_str(text).expect("a mapping")
}

fn ns(rfc3339: &str) -> u64 {
    bursar_desk::statement::parse_time(rfc3339).expect("a time").0
}

/// The two booked lines every EUR sample carries.
fn check_eur_lines(s: &Statement, date_only: bool) {
    assert_eq!(s.account, "DE89370400440532013000");
    assert_eq!(s.lines.len(), 2, "the pending entry is not a line: {:?}", s.lines);
    let (paid, payout) = (&s.lines[0], &s.lines[1]);
    assert!(paid.credit && !payout.credit);
    assert_eq!((paid.amount, payout.amount), (Decimal::new(10_000, 2), Decimal::new(2_450, 2)));
    assert_eq!((paid.entry_ref.as_str(), payout.entry_ref.as_str()), ("BANKREF-0001", "BANKREF-0002"));
    assert_eq!(bursar_desk::ids::find_references("KX", &paid.remittance), vec![1]);
    let payout_named = payout.end_to_end_id.as_deref().or(Some(payout.remittance.as_str())).unwrap_or_default().to_string();
    assert!(payout_named.contains("KX-00000002-G-P0"), "{payout_named}");
    assert_eq!(paid.date_only, date_only);
    if !date_only {
        assert_eq!(paid.booked_at_ns, ns("2026-12-05T10:04:00Z"));
    }
    assert_eq!(s.closing.expect("a closing balance").amount, Decimal::new(107_550, 2));
}

#[test]
fn camt053_v08_maps_booked_entries_and_the_closing_balance() {
    let statements = parse(&sample("camt053_v08.xml"), None).expect("parses");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    check_eur_lines(s, false);
    assert_eq!(s.lines[0].counterparty_name.as_deref(), Some("Anna Nowak & Co"), "an entity reference is text");
    assert_eq!(s.lines[0].counterparty_account.as_deref(), Some("PL61109010140000071219812874"));
    assert_eq!(s.lines[1].counterparty_account.as_deref(), Some("FR1420041010050500013M02606"), "the creditor for money out");
    assert_eq!(s.closing.unwrap().at_ns, ns("2026-12-05T17:59:59Z"));
}

#[test]
fn camt053_v02_reads_plain_status_and_names_and_negative_balances() {
    let statements = parse(&sample("camt053_v02.xml"), None).expect("parses");
    let s = &statements[0];
    assert_eq!(s.account, "PL27114020040000300201355387", "spaces in an IBAN are dropped");
    assert_eq!(s.lines.len(), 2);
    assert!(s.lines[0].date_only);
    assert_eq!(bursar_desk::ids::find_references("KX", &s.lines[0].remittance), vec![3, 4], "two orders in one title");
    assert_eq!(s.lines[0].counterparty_name.as_deref(), Some("Firma Handlowa"));
    assert!(s.lines[1].entry_ref.starts_with("derived:"), "an entry without AcctSvcrRef gets one from its contents");
    assert_eq!(s.lines[1].remittance, "Account fee");
    assert_eq!(s.closing.unwrap().amount, Decimal::new(-1_200, 2));
}

#[test]
fn mt940_and_csv_give_the_same_lines() {
    let mt940 = parse(&sample("mt940.sta"), None).expect("parses");
    check_eur_lines(&mt940[0], true);
    let csv = parse(&sample("statement.csv"), Some(&mapping())).expect("parses");
    let mut s = csv[0].clone();
    s.closing = Some(bursar_desk::statement::Balance { amount: Decimal::new(107_550, 2), at_ns: 0 });
    check_eur_lines(&s, false);
    assert!(csv[0].closing.is_none(), "a CSV without a balance column has no closing balance");
}

/// Each malformed variant is refused with a message naming `expect`.
fn refused(bytes: &[u8], expect: &[&str]) {
    let error = format!("{:#}", parse(bytes, Some(&mapping())).expect_err("a malformed file is refused"));
    for e in expect {
        assert!(error.contains(e), "{error:?} does not name {e:?}");
    }
}

#[test]
fn malformed_statements_are_refused_with_their_position() {
    let v08 = String::from_utf8(sample("camt053_v08.xml")).unwrap();
    refused(v08.replace("camt.053.001.08", "camt.052.001.08").as_bytes(), &["namespace", "camt.052.001.08"]);
    let no_closing = v08.replace("<Cd>CLBD</Cd>", "<Cd>ITBD</Cd>");
    refused(no_closing.as_bytes(), &["no closing booked balance", "Stmt at line 11"]);
    refused(v08.replace("<Amt Ccy=\"EUR\">100.00</Amt>", "<Amt Ccy=\"EUR\">1O0.00</Amt>").as_bytes(), &["line 32", "Ntry 1", "1O0.00"]);
    refused(v08.replace("<Amt Ccy=\"EUR\">100.00</Amt>", "<Amt Ccy=\"EUR\">-100.00</Amt>").as_bytes(), &["Ntry 1", "not above zero"]);
    refused(v08.replace("<CdtDbtInd>DBIT</CdtDbtInd>", "<CdtDbtInd>DEBIT</CdtDbtInd>").as_bytes(), &["DEBIT", "line 53"]);
    let cut_in_a_tag = v08.find("<BookgDt>").unwrap() + 4;
    let line = format!("line {}", v08[..cut_in_a_tag].lines().count());
    refused(&v08.as_bytes()[..cut_in_a_tag], &["camt.053", &line, "not closed"]);
    let cut_after_entry = v08.find("</Ntry>").unwrap() + "</Ntry>".len();
    refused(&v08.as_bytes()[..cut_after_entry], &["camt.053", "truncated"]);
    refused(v08.replace("</Ntry>\n      <Ntry>", "</Ntry>\n      </Nope>").as_bytes(), &["malformed XML", "line 51"]);
    let mt = String::from_utf8(sample("mt940.sta")).unwrap();
    refused(mt.replace(":62F:C261205EUR1075,50\r\n", "").as_bytes(), &["message 1", "62"]);
    refused(mt.replace("D24,50", "D24,5X").as_bytes(), &["MT940"]);
    // The mt940 crate unwraps an impossible entry date; the desk turns that into an error.
    refused(mt.replace(":61:2612051205C", ":61:2612051332C").as_bytes(), &["message 1", "cannot read"]);
    let csv = String::from_utf8(sample("statement.csv")).unwrap();
    refused(csv.replace("-24.50", "-24.5.0").as_bytes(), &["line 3", "Amount"]);
    refused(csv.replace("Booking date", "Date").as_bytes(), &["line 1", "Booking date"]);
    refused(csv.replace("2026-12-05T11:00:00Z", "05/12/2026").as_bytes(), &["line 3", "date"]);
}

#[test]
fn a_file_that_is_not_csv_without_a_mapping_says_so() {
    let error = format!("{:#}", parse(b"date;amount\n", None).unwrap_err());
    assert!(error.contains("[csv] mapping"), "{error}");
}
