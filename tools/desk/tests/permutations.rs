//! The import's property: any order and any repetition of a set of statement files (camt.053,
//! MT940 and CSV, overlapping, with an order paid across two files) leaves the same state as
//! importing each once in order. Every case is a desk of its own (its own namespace and
//! accounts) on one real server, compared with the reference case account by account.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bursar_desk::config::DeskConfig;
use bursar_desk::import::import_statements;
use bursar_desk::ops::{self, Amount, NewOrder};
use bursar_desk::statement::{parse, Statement};
use bursar_engine::Limits;
use bursar_net::client::Client;
use bursar_wal::{FsStorage, WalConfig};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn config(case: u32) -> DeskConfig {
    let base = 10_000 + u128::from(case) * 10;
    let text = format!(
        r#"
        name = "Kantor"
        namespace = {namespace}
        validity = "1h"
        grace = "1h"
        [csv]
        date = "date"
        amount = "amount"
        title = "title"
        reference = "ref"
        account_fixed = "DE89370400440532013000"
        currency_fixed = "EUR"
        [[currency]]
        code = "EUR"
        ledger = 978
        scale = 2
        settlement_account = 9780
        iban = "DE89370400440532013000"
        shadow_account = {s1}
        liquidity_account = {l1}
        suspense_account = {u1}
        opening_balance = "1000.00"
        [[currency]]
        code = "PLN"
        ledger = 985
        scale = 2
        settlement_account = 9850
        iban = "PL27114020040000300201355387"
        shadow_account = {s2}
        liquidity_account = {l2}
        suspense_account = {u2}
        opening_balance = "100000.00"
        "#,
        namespace = 1000 + case,
        s1 = base + 1,
        l1 = base + 2,
        u1 = base + 3,
        s2 = base + 4,
        l2 = base + 5,
        u2 = base + 6,
    );
    DeskConfig::parse(&text).expect("a configuration")
}

/// The orders every case places: (number, sold EUR).
const ORDERS: [(u64, i64); 6] = [(1, 10_000), (2, 10_000), (3, 2_000), (4, 3_000), (5, 5_000), (6, 1_000)];

fn reference(n: u64) -> String {
    bursar_desk::ids::reference("KX", n)
}

/// The three files: a camt.053 (order 1 exact, 60 of order 2, orders 3 and 4 in one line, a
/// payment naming nothing, a fee), an MT940 of today (the rest of order 2, order 5 overpaid),
/// and a CSV repeating the camt's first line and paying order 6.
fn files() -> Vec<Vec<u8>> {
    let entry = |amount: &str, side: &str, r: &str, title: &str| {
        format!(
            r#"<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{side}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>1970-01-01T00:00:01Z</DtTm></BookgDt><AcctSvcrRef>{r}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><DbtrAcct><Id><IBAN>PL61109010140000071219812874</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>{title}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
        )
    };
    let camt = format!(
        r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct><Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1285.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><DtTm>1970-01-01T00:00:02Z</DtTm></Dt></Bal>{}{}{}{}{}</Stmt></BkToCstmrStmt></Document>"#,
        entry("100.00", "CRDT", "E-1", &reference(1)),
        entry("60.00", "CRDT", "E-2", &reference(2)),
        entry("50.00", "CRDT", "E-3", &format!("{} {}", reference(3), reference(4))),
        entry("77.00", "CRDT", "E-4", "no reference"),
        entry("2.00", "DBIT", "E-5", "fee"),
    );
    let days = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
    let today = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days);
    let d = today.format("%y%m%d").to_string();
    let md = &d[2..];
    let mt940 = [
        ":20:S2".to_string(),
        ":25:DE89370400440532013000".into(),
        ":28C:2/1".into(),
        format!(":60F:C{d}EUR1285,00"),
        format!(":61:{d}{md}C40,00NTRFNONREF//M-1"),
        format!(":86:{}", reference(2)),
        format!(":61:{d}{md}C60,00NTRFNONREF//M-2"),
        format!(":86:{}", reference(5)),
        format!(":61:{d}{md}C10,00NTRFNONREF//E-6"),
        format!(":86:{}", reference(6)),
        format!(":62F:C{d}EUR1395,00"),
        "-".into(),
    ]
    .join("\r\n");
    let csv = format!("date,amount,title,ref\n1970-01-01T00:00:01Z,100.00,{},E-1\n{},10.00,{},E-6\n", reference(1), today, reference(6));
    vec![camt.into_bytes(), mt940.into_bytes(), csv.into_bytes()]
}

/// What a case ends with: the desk's accounts' balances and every order's status and accounts.
async fn state(client: &Client, config: &DeskConfig) -> Vec<String> {
    let mut out = Vec::new();
    for c in &config.currencies {
        let ids = vec![c.shadow_account, c.liquidity_account, c.suspense_account];
        for a in client.lookup_accounts(ids).await.unwrap().into_iter().flatten() {
            out.push(format!("{} {} {} {} {}", c.code, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted));
        }
    }
    let numbers: Vec<u64> = ORDERS.iter().map(|o| o.0).collect();
    let now = ops::clock(client).await.unwrap();
    for o in bursar_desk::orders::load(client, config, &numbers).await.unwrap().into_iter().flatten() {
        let (f, t) = (o.account_from, o.account_to);
        out.push(format!(
            "{} {:?} {} {} {} {}",
            o.number,
            o.status(now),
            f.credits_posted,
            f.debits_posted,
            t.credits_posted,
            t.debits_pending
        ));
    }
    out
}

async fn run_case(client: &Client, case: u32, sequence: &[usize], statements: &[Vec<Statement>]) -> Vec<String> {
    let config = config(case);
    ops::setup(client, &config).await.unwrap();
    for &(number, sold) in &ORDERS {
        let new = NewOrder {
            from: "EUR".into(),
            to: "PLN".into(),
            quote: None,
            rate: Some(Decimal::new(43_215, 4)),
            amount: Amount::Sell(Decimal::new(sold, 2)),
            payee_name: "Jan".into(),
            payee_iban: "FR1420041010050500013M02606".into(),
            number: Some(number),
        };
        ops::order(client, &config, &new).await.unwrap();
    }
    for &file in sequence {
        let report = import_statements(client, &config, &statements[file]).await.unwrap();
        assert!(report.conflicts.is_empty() && report.suspense.iter().all(|s| !s.2.starts_with("refused")), "{report:?}");
    }
    // Everything once more: nothing moves, and every closing balance agrees with its shadow.
    let all: Vec<Statement> = statements.iter().flatten().cloned().collect();
    let again = import_statements(client, &config, &all).await.unwrap();
    assert_eq!(again.booked, 0, "case {case} {sequence:?}");
    assert_eq!(again.mismatches().count(), 0, "case {case} {sequence:?}: {:?}", again.balances);
    state(client, &config).await
}

#[test]
fn any_order_and_repetition_of_statement_files_gives_the_same_state() {
    let dir = std::env::temp_dir().join(format!("bursar-desk-permutations-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (server, client) = runtime.block_on(start(&dir));
    let csv = config(0).csv.clone();
    let statements: Vec<Vec<Statement>> = files().iter().map(|f| parse(f, csv.as_ref()).expect("a sample statement")).collect();
    let reference_state = runtime.block_on(run_case(&client, 0, &[0, 1, 2], &statements));
    assert!(reference_state.iter().any(|s| s.starts_with("2 Exchanged")), "order 2 is paid across two files: {reference_state:?}");
    assert!(reference_state.iter().any(|s| s.starts_with("5 Exchanged 6000")), "order 5 overpaid: {reference_state:?}");
    let case = AtomicU32::new(1);
    let sequences = proptest::collection::vec(0..3usize, 3..8).prop_filter("every file at least once", |s| (0..3).all(|f| s.contains(&f)));
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&sequences, |sequence| {
            let got = runtime.block_on(run_case(&client, case.fetch_add(1, Ordering::Relaxed), &sequence, &statements));
            prop_assert_eq!(&got, &reference_state, "files imported as {:?}", sequence);
            Ok(())
        })
        .unwrap();
    runtime.block_on(async move {
        drop(client);
        server.stop().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

async fn start(dir: &Path) -> (bursar_net::assembly::Running<FsStorage>, Client) {
    let (node, _) = bursar_net::Node::open(FsStorage::open(dir.join("log")).unwrap(), WalConfig::default(), Limits::default()).unwrap();
    let identity = bursar_net::tls::load_or_generate(dir).unwrap();
    let server = bursar_net::assembly::Running::start(node, &identity, bursar_net::assembly::ServerConfig::default()).unwrap();
    let client = Client::connect(server.addr(), server.cert(), "localhost").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    (server, client)
}
