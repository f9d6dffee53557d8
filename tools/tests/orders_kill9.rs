//! Standing orders through kill -9: real server processes, orders due every second, the server
//! killed at random moments around their due times and restarted on the same data directory.
//! Every run that came due happens exactly once: each order reaches its last run, every run's
//! transfer exists under its derived id, and every balance is exactly one application of each
//! run (a run made twice would show in the payee's credits). Two seeds in CI; more:
//! `ORDERS_KILL9_SEEDS=10 cargo test -p bursar --test orders_kill9`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bursar_engine::{order_unit, run_id, Command, OrderStatus, ResultCode, RunEvent, StandingOrder, Transfer};
use bursar_net::client::Client;
use bursar_tests::rng::Rng;

const ORDERS: u128 = 24;
const PAYERS: u128 = 6;
const RUNS: u32 = 8;

async fn connect(dir: &Path, addr: SocketAddr) -> Client {
    let cert = std::fs::read(dir.join("server.crt")).expect("certificate");
    Client::connect(addr, cert.into(), "localhost").await.expect("connect")
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64
}

/// Order k: payer 1 + k % PAYERS to payee 100 + k, every second, RUNS times, from `first`.
fn order(k: u128, first: u64) -> StandingOrder {
    StandingOrder {
        id: 500 + k,
        debit_account_id: 1 + k % PAYERS,
        credit_account_id: 100 + k,
        amount: 10 + k,
        first_due_at: first,
        count_max: RUNS,
        period: 1,
        unit: order_unit::SECONDS,
        ledger: 1,
        code: 7,
        ..Default::default()
    }
}

async fn run_seed(seed: u64) {
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("bursar-orders-kill9-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (server, mut addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir, &[]);
    let mut server = common::Running(server);
    let client = connect(&dir, addr).await;
    let mut setup = bursar_tests::setup::ledger_and_accounts(PAYERS);
    setup.extend(
        (0..ORDERS).map(|k| Command::CreateAccount(bursar_engine::Account { id: 100 + k, ledger: 1, code: 10, ..Default::default() })),
    );
    setup.extend((1..=PAYERS).map(|p| {
        Command::Credit(Transfer { id: 9_000 + p, credit_account_id: p, amount: 1_000_000, ledger: 1, code: 1, ..Default::default() })
    }));
    assert!(client.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let first = wall_ns() + 1_500_000_000;
    let orders: Vec<Command> = (0..ORDERS).map(|k| Command::CreateStandingOrder(order(k, first))).collect();
    assert!(client.submit(orders).await.expect("orders").iter().all(|r| *r == ResultCode::Ok));
    drop(client);

    // Kill -9 three times at random moments while the runs come due, restarting each time.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(2_500))).await;
        server.0.kill().expect("kill -9");
        server.0.wait().expect("reaped");
        let (next, next_addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir, &[]);
        (server, addr) = (common::Running(next), next_addr);
    }
    let client = connect(&dir, addr).await;
    let ids: Vec<u128> = (0..ORDERS).map(|k| 500 + k).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let orders = loop {
        let found: Vec<_> = client.lookup_orders(&ids).await.expect("lookup").into_iter().map(|o| o.expect("order")).collect();
        if found.iter().all(|o| o.status == OrderStatus::Finished) {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: orders still running: {:?}",
            found.iter().map(|o| o.runs).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (k, o) in orders.iter().enumerate() {
        let paid: Vec<u64> = o.history.iter().filter(|e| e.event == RunEvent::Paid).map(|e| e.run).collect();
        assert_eq!(paid, (1..=RUNS as u64).collect::<Vec<_>>(), "seed {seed}: order {k}: every run once, in order");
        let run_ids: Vec<u128> = (1..=RUNS as u64).map(|run| run_id(o.number, run)).collect();
        for (run, t) in client.lookup_transfers(run_ids).await.expect("lookup").into_iter().enumerate() {
            let t = t.unwrap_or_else(|| panic!("seed {seed}: order {k} run {} has no transfer", run + 1));
            assert_eq!((t.amount, t.user_data_128, t.user_data_64), (10 + k as u128, 500 + k as u128, run as u64 + 1));
        }
    }
    // Exactly one application of every run: the payees' credits and the payers' debits.
    let payees: Vec<u128> = (0..ORDERS).map(|k| 100 + k).collect();
    for (k, a) in client.lookup_accounts(payees).await.expect("lookup").into_iter().enumerate() {
        assert_eq!(a.expect("payee").credits_posted, RUNS as u128 * (10 + k as u128), "seed {seed}: payee of order {k}");
    }
    let payers: Vec<u128> = (1..=PAYERS).collect();
    for (p, a) in payers.iter().zip(client.lookup_accounts(payers.clone()).await.expect("lookup")) {
        let expected: u128 = (0..ORDERS).filter(|k| 1 + k % PAYERS == *p).map(|k| RUNS as u128 * (10 + k)).sum();
        assert_eq!(a.expect("payer").debits_posted, expected, "seed {seed}: payer {p}");
    }
    drop(client);
    drop(server);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_standing_order_run_due_across_kill_9_happens_exactly_once() {
    let seeds: u64 = std::env::var("ORDERS_KILL9_SEEDS").map(|s| s.parse().expect("a number")).unwrap_or(2);
    for seed in 0..seeds {
        run_seed(seed).await;
    }
}
