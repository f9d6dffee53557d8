//! A due storm against a running server: ORDERS standing orders (on ledger 2, their own accounts)
//! all due at one instant SECONDS from now, each running once; reports how long after the due
//! instant the last run was paid. Run `bursar bench --addr ... --rate 500000 --write-into-live-books`
//! beside it to see the clients' latency through the storm.
//!
//! `cargo run --release -p bursar-bench --example storm_probe -- ADDR CERT [ORDERS] [SECONDS]`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bursar_engine::{order_unit, Account, Command, Ledger, ResultCode, StandingOrder, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::client::Client;

/// Ids of the probe's accounts and orders, far from the bench's.
const BASE: u128 = 7 << 96;
const AMOUNT: u128 = 100;

async fn submit_all(client: &Client, commands: Vec<Command>) {
    for chunk in commands.chunks(BATCH_COMMANDS_MAX) {
        let results = client.submit(chunk.to_vec()).await.expect("submit");
        assert!(results.iter().all(|r| matches!(r, ResultCode::Ok | ResultCode::Exists)), "{:?}", results.iter().find(|r| !r.is_success()));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR").parse().expect("an address");
    let cert = std::fs::read(args.next().expect("CERT")).expect("the server's certificate");
    let orders: u128 = args.next().map_or(1_000_000, |a| a.parse().expect("ORDERS"));
    let seconds: u64 = args.next().map_or(60, |a| a.parse().expect("SECONDS"));
    let client = Client::connect(addr, cert.into(), "localhost").await.expect("connect");
    let sides = orders.div_ceil(1_000);
    let ledger =
        Ledger { id: 2, currency: *b"USD", scale: 2, settlement_account_id: BASE, settlement_account_code: 1, ..Default::default() };
    let mut setup = vec![Command::CreateLedger(ledger)];
    setup.extend((1..=2 * sides).map(|k| Command::CreateAccount(Account { id: BASE + k, ledger: 2, code: 10, ..Default::default() })));
    setup.extend((1..=sides).map(|k| {
        Command::Credit(Transfer { id: BASE + k, credit_account_id: BASE + k, amount: 1 << 60, ledger: 2, code: 1, ..Default::default() })
    }));
    submit_all(&client, setup).await;
    let due = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64 + seconds * 1_000_000_000;
    let made = Instant::now();
    let all: Vec<Command> = (0..orders)
        .map(|k| {
            Command::CreateStandingOrder(StandingOrder {
                id: BASE + k,
                debit_account_id: BASE + 1 + k % sides,
                credit_account_id: BASE + sides + 1 + k / 1_000,
                amount: AMOUNT,
                first_due_at: due,
                count_max: 1,
                period: 1,
                unit: order_unit::DAYS,
                ledger: 2,
                code: 9,
                ..Default::default()
            })
        })
        .collect();
    submit_all(&client, all).await;
    println!("{orders} orders made in {:.1} s, all due at one instant {seconds} s after the start", made.elapsed().as_secs_f64());
    let payees: Vec<u128> = (1..=sides).map(|k| BASE + sides + k).collect();
    loop {
        let paid: u128 = client.lookup_accounts(payees.clone()).await.expect("lookup").iter().flatten().map(|a| a.credits_posted).sum();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64;
        if paid == orders * AMOUNT {
            println!("the storm drained {:.2} s after its due instant", now.saturating_sub(due) as f64 / 1e9);
            break;
        }
        if now > due + 600_000_000_000 {
            println!("not drained ten minutes after the due instant: {} of {orders} paid", paid / AMOUNT);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = client.metrics().await.expect("metrics");
    println!("server: longest apply {:.2} ms, longest sync {:.2} ms", metrics.apply_ns_max as f64 / 1e6, metrics.sync_ns_max as f64 / 1e6);
}
