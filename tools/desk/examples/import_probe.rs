//! How long `desk import` takes for one camt.053 file of N lines, each paying one of N orders
//! exactly, against an in-process server with a real log (fsync per entry) on a fresh directory:
//! parsing, and booking + matching + settling + the balance check, timed apart. The orders are
//! placed first (not timed). Run: `cargo run --release -p bursar-desk --example import_probe -- 100000`.

use std::time::Instant;

use bursar_desk::config::DeskConfig;
use bursar_desk::ids::reference;
use bursar_desk::ops::{self, Amount, NewOrder};
use bursar_engine::Limits;
use bursar_net::client::Client;
use bursar_wal::{FsStorage, WalConfig};
use rust_decimal::Decimal;

const CONFIG: &str = r#"
name = "Kantor"
validity = "1h"
[[currency]]
code = "EUR"
ledger = 978
scale = 2
settlement_account = 9780
iban = "DE89370400440532013000"
shadow_account = 9781
liquidity_account = 9782
suspense_account = 9783
[[currency]]
code = "PLN"
ledger = 985
scale = 2
settlement_account = 9850
iban = "PL27114020040000300201355387"
shadow_account = 9851
liquidity_account = 9852
suspense_account = 9853
opening_balance = "100000000000.00"
"#;

fn camt(lines: u64) -> String {
    let mut x = String::with_capacity(lines as usize * 400);
    x += r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt><Id>P</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>"#;
    x += &format!(
        r#"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><DtTm>1970-01-01T00:00:02Z</DtTm></Dt></Bal>"#,
        lines * 100
    );
    for n in 1..=lines {
        x += &format!(
            "\n<Ntry><Amt Ccy=\"EUR\">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>1970-01-01T00:00:01Z</DtTm></BookgDt><AcctSvcrRef>R{n}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><DbtrAcct><Id><IBAN>PL61109010140000071219812874</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>Order {}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            reference("KX", n)
        );
    }
    x + "</Stmt></BkToCstmrStmt></Document>\n"
}

fn main() {
    let lines: u64 = std::env::args().nth(1).map_or(100_000, |a| a.parse().expect("a number of lines"));
    let dir = std::env::temp_dir().join(format!("bursar-import-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (node, _) = bursar_net::Node::open(FsStorage::open(dir.join("log")).unwrap(), WalConfig::default(), Limits::default()).unwrap();
        let identity = bursar_net::tls::load_or_generate(&dir).unwrap();
        let server = bursar_net::assembly::Running::start(node, &identity, bursar_net::assembly::ServerConfig::default()).unwrap();
        let client = Client::connect(server.addr(), server.cert(), "localhost").await.unwrap();
        let config = DeskConfig::parse(CONFIG).unwrap();
        ops::setup(&client, &config).await.unwrap();
        let placing = Instant::now();
        let config = std::sync::Arc::new(config);
        let mut placed = tokio::task::JoinSet::new();
        for n in 1..=lines {
            if placed.len() == 16 {
                placed.join_next().await.unwrap().unwrap();
            }
            let new = NewOrder {
                from: "EUR".into(),
                to: "PLN".into(),
                quote: None,
                rate: Some(Decimal::new(43_215, 4)),
                amount: Amount::Sell(Decimal::new(10_000, 2)),
                payee_name: "Jan".into(),
                payee_iban: "FR1420041010050500013M02606".into(),
                number: Some(n),
            };
            let (client, config) = (client.clone(), config.clone());
            placed.spawn(async move { ops::order(&client, &config, &new).await.unwrap() });
        }
        while let Some(done) = placed.join_next().await {
            done.unwrap();
        }
        println!("placed {lines} orders in {:.1} s (16 requests in flight; not the figure)", placing.elapsed().as_secs_f64());
        let text = camt(lines);
        // Parsing alone, best of three (it runs on the client, whatever the server does).
        let mut parsed = std::time::Duration::MAX;
        let mut statements = Vec::new();
        for _ in 0..3 {
            let parsing = Instant::now();
            statements = bursar_desk::statement::parse(text.as_bytes(), None).unwrap();
            parsed = parsed.min(parsing.elapsed());
        }
        let importing = Instant::now();
        let report = bursar_desk::import::import_statements(&client, &config, &statements).await.unwrap();
        let imported = importing.elapsed();
        assert_eq!((report.booked as u64, report.exchanged.len() as u64, report.mismatches().count()), (lines, lines, 0));
        println!(
            "{lines} lines ({:.1} MB camt.053): parse {:.0} ms, import (book, match, settle {} orders, balance check) {:.0} ms, total {:.2} s",
            text.len() as f64 / 1e6,
            parsed.as_secs_f64() * 1e3,
            report.exchanged.len(),
            imported.as_secs_f64() * 1e3,
            (parsed + imported).as_secs_f64()
        );
        let again = Instant::now();
        let report = bursar_desk::import::import_statements(&client, &config, &statements).await.unwrap();
        assert_eq!(report.already as u64, lines);
        println!("the same file again (nothing moves): {:.0} ms", again.elapsed().as_secs_f64() * 1e3);
        drop(client);
        server.stop().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
