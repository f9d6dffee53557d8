//! `bursar desk` end to end against a real server: setup, orders, a statement paying orders
//! exactly, under, over, late, two in one line and one line matching nothing; re-rating,
//! settling, payouts in pain.001; a second statement confirming them; the shadows equal the
//! statements' closing balances; re-importing every file changes nothing.

mod common;

use std::path::Path;
use std::process::{Command as Process, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The desk of the test: EUR and PLN, a 5-second rate (so a late payment needs only a short wait).
const CONFIG: &str = r#"
name = "Kantor Testowy Sp. z o.o."
reference_prefix = "KX"
validity = "5s"
grace = "1h"

[[currency]]
code = "EUR"
ledger = 978
scale = 2
settlement_account = 9780
iban = "DE89370400440532013000"
shadow_account = 9781
liquidity_account = 9782
suspense_account = 9783
opening_balance = "1000.00"

[[currency]]
code = "PLN"
ledger = 985
scale = 2
settlement_account = 9850
iban = "PL27114020040000300201355387"
shadow_account = 9851
liquidity_account = 9852
suspense_account = 9853
opening_balance = "100000.00"
"#;

struct Desk<'a> {
    dir: &'a Path,
    addr: String,
}

impl Desk<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Process::new(env!("CARGO_BIN_EXE_bursar"))
            .arg("desk")
            .args(["--config", "desk.toml", "--addr", &self.addr, "--cert", "data/server.crt", "--json"])
            .args(args)
            .current_dir(self.dir)
            .output()
            .expect("run bursar desk")
    }

    /// Runs and expects success; the JSON lines printed.
    fn ok(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run(args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "bursar desk {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
    }

    fn order(&self, number: &str, sell: &str) -> String {
        let args = [
            "order",
            "--from",
            "EUR",
            "--to",
            "PLN",
            "--rate",
            "4.3215",
            "--sell",
            sell,
            "--name",
            "Jan Kowalski",
            "--iban",
            "FR1420041010050500013M02606",
            "--number",
            number,
        ];
        self.ok(&args)[0]["reference"].as_str().expect("a reference").to_string()
    }

    /// `desk orders`: reference to status.
    fn statuses(&self) -> Vec<(String, String)> {
        self.ok(&["orders"])
            .iter()
            .map(|o| (o["reference"].as_str().unwrap().to_string(), o["status"].as_str().unwrap().to_string()))
            .collect()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A camt.053.001.08 statement of `iban` in `ccy`: `(amount, CRDT|DBIT, booked, ref, e2e, title, payer)` lines.
fn camt(iban: &str, ccy: &str, id: &str, closing: &str, at: &str, lines: &[(&str, &str, &str, &str, &str, &str)]) -> String {
    let mut x = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>{id}</MsgId><CreDtTm>{at}</CreDtTm></GrpHdr>
<Stmt><Id>{id}</Id><Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{ccy}</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="{ccy}">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><DtTm>{at}</DtTm></Dt></Bal>
"#
    );
    for (amount, side, booked, reference, e2e, title) in lines {
        x += &format!(
            r#"<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>{side}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>{booked}</DtTm></BookgDt><AcctSvcrRef>{reference}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs><RltdPties><Dbtr><Pty><Nm>Payer</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>PL61109010140000071219812874</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>{title}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
"#
        );
    }
    x + "</Stmt></BkToCstmrStmt></Document>\n"
}

/// A fresh directory with the desk's configuration, and a server on it (killed when dropped).
fn fresh(name: &str) -> (std::path::PathBuf, (common::Running, std::net::SocketAddr)) {
    let dir = std::env::temp_dir().join(format!("bursar-desk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (child, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir.join("data"), &[]);
    std::fs::write(dir.join("desk.toml"), CONFIG).unwrap();
    (dir, (common::Running(child), addr))
}

#[test]
fn a_desk_day_from_orders_to_confirmed_payouts() {
    let (dir, _server) = fresh("e2e");
    let desk = Desk { dir: &dir, addr: _server.1.to_string() };

    assert_eq!(desk.ok(&["setup"]).len(), 10, "two ledgers, six accounts, two opening balances");
    assert!(desk.ok(&["setup"]).iter().all(|l| l["setup"].as_str().unwrap().ends_with("already there")), "setup again changes nothing");

    let exact = desk.order("1", "100.00");
    let under = desk.order("2", "200.00");
    let over = desk.order("3", "50.00");
    let late = desk.order("4", "10.00");
    let (two_a, two_b) = (desk.order("5", "20.00"), desk.order("6", "30.00"));
    let cancelled = desk.order("7", "5.00");
    let forgot = desk.order("8", "77.00"); // the customer leaves the reference out
    assert_eq!(desk.ok(&["cancel", &cancelled])[0]["cancel"], "ok");
    assert_eq!(desk.ok(&["cancel", &cancelled])[0]["cancel"], "exists", "cancelling again changes nothing");
    let booked = rfc3339(SystemTime::now());
    assert!(desk.statuses().iter().all(|(r, s)| s == if *r == cancelled { "cancelled" } else { "awaiting payment" }));

    let eur = |closing, lines: &[(&str, &str, &str, &str, &str, &str)], id| {
        camt("DE89370400440532013000", "EUR", id, closing, &rfc3339(SystemTime::now()), lines)
    };
    let both = format!("{two_a} {two_b}");
    let statement1 = eur(
        "1435.00",
        &[
            ("100.00", "CRDT", &booked, "E-1", "NOTPROVIDED", &format!("Order {exact}")),
            ("150.00", "CRDT", &booked, "E-2", "NOTPROVIDED", &under),
            ("60.00", "CRDT", &booked, "E-3", &over, "thanks"),
            ("77.00", "CRDT", &booked, "E-4", "NOTPROVIDED", "no reference at all"),
            ("50.00", "CRDT", &booked, "E-5", "NOTPROVIDED", &both),
            ("2.00", "DBIT", &booked, "E-6", "NOTPROVIDED", "account fee"),
        ],
        "EUR-1",
    );
    std::fs::write(dir.join("eur1.xml"), statement1).unwrap();
    let report = &desk.ok(&["import", "eur1.xml"])[0];
    assert_eq!(report["booked"], 7, "six lines, one of them in two parts: {report}");
    let exchanged: Vec<&str> = report["exchanged"].as_array().unwrap().iter().map(|e| e["order"].as_str().unwrap()).collect();
    assert_eq!(exchanged.len(), 4, "{report}");
    for r in [&exact, &over, &two_a, &two_b] {
        assert!(exchanged.contains(&r.as_str()), "{r} exchanged: {report}");
    }
    assert_eq!(report["suspense"].as_array().unwrap().len(), 2, "the unmatched payment and the fee: {report}");
    assert!(report["balances"][0]["equal"].as_bool().unwrap(), "{report}");

    // The late payment: booked after the 5-second rate.
    std::thread::sleep(Duration::from_millis(5_500));
    let late_at = rfc3339(SystemTime::now());
    std::fs::write(dir.join("eur2.xml"), eur("1445.00", &[("10.00", "CRDT", &late_at, "E-7", "NOTPROVIDED", &late)], "EUR-2")).unwrap();
    let report = &desk.ok(&["import", "eur2.xml"])[0];
    assert_eq!(report["not_exchanged"][0]["order"], late.as_str(), "{report}");
    assert!(report["not_exchanged"][0]["why"].as_str().unwrap().contains("validity"), "{report}");

    let status = |reference: &str| desk.statuses().into_iter().find(|(r, _)| r == reference).unwrap().1;
    assert_eq!(status(&under), "partly paid");
    assert_eq!(status(&late), "paid, not exchanged");
    assert_eq!(status(&exact), "exchanged");
    // The cashier re-rates the late order and accepts the short payment.
    let rerated = &desk.ok(&["rerate", &late, "--rate", "4.30"])[0];
    assert!(rerated["rerate"].as_str().unwrap().ends_with("settle: ok"), "{rerated}");
    assert_eq!(desk.ok(&["settle", &under])[0]["settle"], "ok");
    // The cashier finds the payment without a reference in suspense and assigns it: booked in
    // time, it gets the rate.
    let parked = desk.ok(&["suspense"]);
    let line = parked.iter().find(|p| p["amount"] == "77.00 EUR").expect("the unmatched payment")["line"].as_str().unwrap().to_string();
    let assigned = desk.ok(&["assign", &line, "--order", &forgot]);
    assert_eq!(
        (assigned[0]["assign"].as_str(), assigned[1]["exchanged"][0]["order"].as_str()),
        (Some("ok"), Some(forgot.as_str())),
        "{assigned:?}"
    );
    assert_eq!(desk.ok(&["assign", &line, "--order", &forgot])[0]["assign"], "exists", "assigning again moves nothing");
    let parked = desk.ok(&["suspense"]);
    assert_eq!(parked.iter().find(|p| p["line"] == line.as_str()).unwrap()["assigned_to"], forgot.as_str());
    assert!(parked.iter().any(|p| p["direction"] == "out" && p["assigned_to"].is_null()), "the fee stays for the cashier");

    // Payouts: five exchanges in PLN, the overpayment's rest back in EUR.
    let mut payouts = desk.ok(&["payouts", "--out", "payouts.xml"]);
    assert_eq!(payouts.pop().unwrap()["payments"], 8);
    let pain = std::fs::read_to_string(dir.join("payouts.xml")).unwrap();
    assert!(pain.contains("pain.001.001.09") && pain.contains("<NbOfTxs>8</NbOfTxs>"), "{pain}");
    let amount_of = |e2e_prefix: &str| {
        payouts.iter().find(|p| p["end_to_end_id"].as_str().unwrap().starts_with(e2e_prefix)).unwrap()["amount"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(amount_of(&format!("{exact}-P0")), "432.15");
    assert_eq!(amount_of(&format!("{forgot}-P0")), "332.75", "the assigned payment at the rate it was booked in");
    assert_eq!(amount_of(&format!("{over}-P0")), "216.07", "50.00 EUR at 4.3215, rounded down");
    assert_eq!(amount_of(&format!("{over}-R0")), "10.00", "the overpayment goes back");
    assert_eq!(amount_of(&format!("{under}-P0")), "648.22", "what was paid, exchanged");
    assert_eq!(amount_of(&format!("{late}-P0")), "43.00", "at the new rate");
    assert!(desk.ok(&["payouts", "--out", "again.xml"]).iter().all(|l| l.get("end_to_end_id").is_none()), "no payout is made twice");
    assert!(!dir.join("again.xml").exists());
    assert_eq!(desk.ok(&["payouts", "--reissue", "--format", "csv", "--out", "lost.csv"]).len(), 9, "a lost file is written again");
    assert_eq!(std::fs::read_to_string(dir.join("lost.csv")).unwrap().lines().count(), 9, "a header and eight payments");

    // The bank executes them: the debit lines carry the end-to-end ids.
    let done = rfc3339(SystemTime::now());
    let pln_lines: Vec<(String, String)> = payouts
        .iter()
        .filter(|p| p["currency"] == "PLN")
        .map(|p| (p["amount"].as_str().unwrap().to_string(), p["end_to_end_id"].as_str().unwrap().to_string()))
        .collect();
    let pln_paid: rust_decimal::Decimal = pln_lines.iter().map(|(a, _)| a.parse::<rust_decimal::Decimal>().unwrap()).sum();
    let closing = (rust_decimal::Decimal::new(10_000_000, 2) - pln_paid).to_string();
    let lines: Vec<(&str, &str, &str, &str, &str, &str)> = pln_lines
        .iter()
        .enumerate()
        .map(|(i, (a, e))| (a.as_str(), "DBIT", done.as_str(), ["P-1", "P-2", "P-3", "P-4", "P-5", "P-6", "P-7"][i], e.as_str(), "payout"))
        .collect();
    std::fs::write(
        dir.join("pln.xml"),
        camt("PL27114020040000300201355387", "PLN", "PLN-1", &closing, &rfc3339(SystemTime::now()), &lines),
    )
    .unwrap();
    let refund = payouts.iter().find(|p| p["refund"] == true).unwrap()["end_to_end_id"].as_str().unwrap().to_string();
    std::fs::write(dir.join("eur3.xml"), eur("1435.00", &[("10.00", "DBIT", &done, "E-8", &refund, "refund")], "EUR-3")).unwrap();
    let report = &desk.ok(&["import", "pln.xml", "eur3.xml"])[0];
    assert_eq!(report["payouts_confirmed"].as_array().unwrap().len(), 8, "{report}");
    assert!(report["balances"].as_array().unwrap().iter().all(|b| b["equal"] == true), "{report}");
    for (reference, status) in desk.statuses() {
        assert_eq!(status, if reference == cancelled { "cancelled" } else { "paid out" }, "{reference}");
    }
    let history = desk.ok(&["orders", "--history", &over]);
    let steps: Vec<&str> = history[1..].iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "reservation (order placed)",
            "payment booked by the bank",
            "exchange: customer's money to the desk",
            "exchange: reservation captured",
            "payout ordered",
            "refund ordered",
            "payout confirmed by the bank",
            "payout confirmed by the bank",
        ],
        "{history:?}"
    );

    // Every file again, in another order: nothing moves, every balance still agrees.
    let before = desk.ok(&["orders"]);
    let report = &desk.ok(&["import", "eur3.xml", "pln.xml", "eur2.xml", "eur1.xml"])[0];
    assert_eq!(report["booked"], 0, "{report}");
    assert_eq!(report["already_imported"], 16, "{report}");
    assert!(report["balances"].as_array().unwrap().iter().all(|b| b["equal"] == true), "{report}");
    assert_eq!(desk.ok(&["orders"]), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_import_that_cannot_be_read_imports_nothing() {
    let (dir, _server) = fresh("bad");
    let desk = Desk { dir: &dir, addr: _server.1.to_string() };
    desk.ok(&["setup"]);
    let good = camt(
        "DE89370400440532013000",
        "EUR",
        "G",
        "1077.00",
        &rfc3339(SystemTime::now()),
        &[("77.00", "CRDT", &rfc3339(UNIX_EPOCH + Duration::from_secs(1)), "X-1", "NOTPROVIDED", "x")],
    );
    std::fs::write(dir.join("good.xml"), &good).unwrap();
    std::fs::write(dir.join("bad.xml"), good.replace(">77.00</Amt>", ">77.0.0</Amt>")).unwrap();
    let out = desk.run(&["import", "good.xml", "bad.xml"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("bad.xml") && error.contains("Ntry 1") && error.contains("77.0.0"), "{error}");
    let other = good.replace("DE89370400440532013000", "GB33BUKB20201555555555");
    std::fs::write(dir.join("other.xml"), other).unwrap();
    let out = desk.run(&["import", "good.xml", "other.xml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("GB33BUKB20201555555555 is not one of the desk's bank accounts"));
    let report = &desk.ok(&["import", "good.xml"])[0];
    assert_eq!(report["booked"], 1, "nothing was booked by the refused imports: {report}");
    let _ = std::fs::remove_dir_all(&dir);
}
