//! Crash test with real server processes: start `bursar start`, load it from several clients,
//! kill -9 it at a random moment, restart it on the same data directory, and check that every
//! acknowledged transfer is there, that retrying the requests that were in flight answers `ok` or
//! `exists` (never a second movement), and that every balance equals exactly one application of
//! each transfer that exists. Several seeds in CI; more: `KILL9_SEEDS=20 cargo test -p bursar --test kill9`.
//! A second test does the same with retention on, 2 MiB segments and a snapshot every 20
//! entries, so the server recycles segments under load and restarts from a snapshot with the
//! log's first segments gone. A third runs the server with `--power-cut-seed`, so the kill
//! leaves its unsynced writes torn as a power cut would. A fourth runs it with the history on
//! disk (the default) long enough to be killed while full chunks of transfers move to
//! `<data>/history`; the first runs every other seed with `--history memory`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bursar_engine::{filter_flags, AccountFilter, Command, ResultCode, Transfer};
use bursar_net::client::Client;

const ACCOUNTS: u128 = 20;
const TRANSFERS_PER_REQUEST: u128 = 100;

/// Starts the server binary on an ephemeral loopback port, with `flags` besides.
fn start(dir: &Path, flags: &[&str]) -> (std::process::Child, SocketAddr) {
    common::start_server(env!("CARGO_BIN_EXE_bursar"), dir, flags)
}

/// The flags of the recycling variant.
const RECYCLING: &[&str] = &["--retention", "recycle", "--segment-mib", "2", "--snapshot-every-entries", "20"];

fn transfer(id: u128, amount: u128) -> Command {
    let debit = 1 + id % ACCOUNTS;
    let credit = 1 + (id / ACCOUNTS + 1 + id) % ACCOUNTS;
    let credit = if credit == debit { debit % ACCOUNTS + 1 } else { credit };
    Command::Transfer(Transfer { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, ..Default::default() })
}

fn request(first: u128) -> Vec<Command> {
    (first..first + TRANSFERS_PER_REQUEST).map(|id| transfer(id, 1 + id % 50)).collect()
}

async fn connect(dir: &Path, addr: SocketAddr) -> Client {
    let cert = std::fs::read(dir.join("server.crt")).expect("certificate");
    Client::connect(addr, cert.into(), "localhost").await.expect("connect")
}

/// What one run saw besides its asserts.
struct Run {
    /// The log's first segment had been recycled by the end.
    recycled: bool,
    /// The restart cut a torn tail (entries written in part and never acknowledged).
    torn_tail_cut: bool,
    /// History chunks the restart found on disk and checked.
    history_chunks_checked: usize,
}

/// The flags of the history variant (the default, named so the load runs longer).
const HISTORY: &[&str] = &["--history", "disk"];

/// Every transfer in memory.
const MEMORY: &[&str] = &["--history", "memory"];

/// How many history chunks the restart says it checked: "history store D: N chunks checked, ...".
fn history_chunks_checked(said: &[String]) -> usize {
    said.iter()
        .filter_map(|line| {
            line.split_once("history store ")?.1.split_once(": ")?.1.split_once(" chunks checked").map(|(n, _)| n.to_string())
        })
        .map(|n| n.parse().expect("a count"))
        .next()
        .unwrap_or(0)
}

/// One kill -9 and restart.
async fn run_seed(seed: u64, flags: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("bursar-kill9-{}-{seed}-{}", std::process::id(), flags.len()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut server, addr) = start(&dir, flags);
    let client = connect(&dir, addr).await;
    let mut setup = bursar_tests::setup::ledger_and_accounts(ACCOUNTS);
    if flags == HISTORY {
        // Every account keeps a balance history: two entries a transfer, which move to
        // `<data>/history/balances` as the transfers move to `<data>/history`.
        for command in &mut setup {
            if let Command::CreateAccount(a) = command {
                a.flags |= bursar_engine::account_flags::HISTORY;
            }
        }
    }
    assert!(client.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));

    // Four clients load the server; every request is recorded as acknowledged or in flight.
    let acked = Arc::new(Mutex::new(Vec::<u128>::new()));
    let in_flight = Arc::new(Mutex::new(Vec::<u128>::new()));
    let mut tasks = Vec::new();
    for c in 0..4u128 {
        let (acked, in_flight, client) = (Arc::clone(&acked), Arc::clone(&in_flight), client.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0.. {
                let first = 1_000_000 * (c + 1) + r * TRANSFERS_PER_REQUEST;
                in_flight.lock().expect("lock").push(first);
                match client.submit(request(first)).await {
                    Ok(results) => {
                        assert!(results.iter().all(|x| *x == ResultCode::Ok), "{results:?}");
                        in_flight.lock().expect("lock").retain(|f| *f != first);
                        acked.lock().expect("lock").push(first);
                    }
                    Err(_) => return, // the server died
                }
            }
        }));
    }
    // A fifth gateway on its own connection sends open and failing chains: each gets its own
    // chain results, never moves money, and never changes the other clients' results (their
    // `ok` asserts above), though the server joins their requests into shared log entries.
    let chains = connect(&dir, addr).await;
    let chain_sent = Arc::new(Mutex::new(Vec::<u128>::new()));
    let sent = Arc::clone(&chain_sent);
    tasks.push(tokio::spawn(async move {
        for r in 0u128.. {
            let id = 9_000_000 + 2 * r;
            let linked = |t: Command| match t {
                Command::Transfer(t) => Command::Transfer(Transfer { flags: t.flags | bursar_engine::transfer_flags::LINKED, ..t }),
                other => other,
            };
            let (request, expected) = if r % 2 == 0 {
                (vec![linked(transfer(id, 1))], vec![ResultCode::LinkedEventChainOpen])
            } else {
                let to_nowhere = Command::Transfer(Transfer {
                    credit_account_id: 999,
                    ..match transfer(id, 1) {
                        Command::Transfer(t) => t,
                        _ => unreachable!("a transfer"),
                    }
                });
                (vec![linked(to_nowhere), transfer(id + 1, 1)], vec![ResultCode::CreditAccountNotFound, ResultCode::LinkedEventFailed])
            };
            sent.lock().expect("lock").push(id);
            match chains.submit(request).await {
                Ok(results) => assert_eq!(results, expected, "chain request {r}"),
                Err(_) => return, // the server died
            }
        }
    }));
    // With retention on, long enough to fill several segments and recycle some.
    // With the history on disk, long enough that several chunks of 32 768 transfers fill.
    let load_ms = match flags {
        RECYCLING => 1_500 + seed * 97 % 400,
        HISTORY => 800 + seed * 97 % 400,
        _ => 150 + seed * 97 % 400,
    };
    tokio::time::sleep(Duration::from_millis(load_ms)).await;
    server.kill().expect("kill -9");
    server.wait().expect("reaped");
    for task in tasks {
        let _ = task.await;
    }
    let acked = acked.lock().expect("lock").clone();
    let in_flight = in_flight.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "seed {seed}: the load acknowledged nothing before the kill");

    let (mut server, addr, said) = common::start_server_saying(env!("CARGO_BIN_EXE_bursar"), &dir, flags);
    let torn_tail_cut = said.iter().any(|line| line.contains("TORN TAIL CUT"));
    let history_chunks_checked = history_chunks_checked(&said);
    let client = connect(&dir, addr).await;
    // Every acknowledged transfer is present, exactly as sent.
    for first in &acked {
        let ids: Vec<u128> = (*first..first + TRANSFERS_PER_REQUEST).collect();
        for (id, found) in ids.iter().zip(client.lookup_transfers(ids.clone()).await.expect("lookup")) {
            let found = found.unwrap_or_else(|| panic!("seed {seed}: acknowledged transfer {id} lost"));
            assert_eq!(found.amount, 1 + id % 50);
        }
    }
    // The chains moved nothing: none of their transfers exists.
    let chain_ids: Vec<u128> = chain_sent.lock().expect("lock").iter().flat_map(|id| [*id, id + 1]).take(4000).collect();
    assert!(!chain_ids.is_empty(), "seed {seed}: the chain gateway sent nothing");
    for found in client.lookup_transfers(chain_ids).await.expect("lookup") {
        assert!(found.is_none(), "seed {seed}: a transfer of a failed chain exists: {found:?}");
    }
    // Requests in flight at the kill: a retry applies each transfer exactly once.
    for first in &in_flight {
        let results = client.submit(request(*first)).await.expect("retry");
        assert!(results.iter().all(|r| matches!(r, ResultCode::Ok | ResultCode::Exists)), "seed {seed}: retry gave {results:?}");
    }
    // Balances: exactly one application of every transfer that exists now.
    let mut expected = vec![(0u128, 0u128); ACCOUNTS as usize + 1];
    for first in acked.iter().chain(&in_flight) {
        for command in request(*first) {
            let Command::Transfer(t) = command else { unreachable!("transfers only") };
            expected[t.debit_account_id as usize].0 += t.amount;
            expected[t.credit_account_id as usize].1 += t.amount;
        }
    }
    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    for (id, account) in ids.iter().zip(client.lookup_accounts(ids.clone()).await.expect("lookup")) {
        let a = account.expect("account");
        assert_eq!((a.debits_posted, a.credits_posted), expected[*id as usize], "seed {seed}: account {id}");
        if flags == HISTORY {
            // Its balance history ends at its balances, its oldest entries read from the store.
            let filter =
                AccountFilter { account_id: *id, limit: 8189, flags: filter_flags::DEBITS | filter_flags::CREDITS, ..Default::default() };
            let oldest = client.get_account_balances(filter).await.expect("balances");
            let newest =
                client.get_account_balances(AccountFilter { flags: filter.flags | filter_flags::REVERSED, limit: 1, ..filter }).await;
            let newest = newest.expect("balances").pop().expect("an entry").balances;
            assert_eq!((newest.debits_posted, newest.credits_posted), expected[*id as usize], "seed {seed}: account {id}'s history");
            assert!(oldest.windows(2).all(|w| w[0].timestamp < w[1].timestamp && w[0].balances != w[1].balances), "seed {seed}");
            let first = oldest[0].balances;
            assert!((first.debits_posted == 0) != (first.credits_posted == 0), "seed {seed}: the first entry is one transfer's: {first:?}");
        }
    }
    let totals = client.ledger_totals(vec![1]).await.expect("totals").pop().flatten().expect("ledger");
    assert!(totals.is_balanced());
    drop(client);
    // A clean stop this time: SIGINT, snapshot, exit 0.
    Process::new("kill").args(["-INT", &server.id().to_string()]).status().expect("kill -INT");
    assert!(server.wait().expect("exit").success(), "seed {seed}: clean shutdown exits 0");
    if flags == HISTORY {
        // The clean stop wrote a slim snapshot: the audit replays from genesis, restores the
        // snapshot with the store's transfers read back, and finds them equal.
        let replay =
            Process::new(env!("CARGO_BIN_EXE_bursar")).args(["replay", "--from-snapshot", "--data"]).arg(&dir).output().expect("replay");
        let said = String::from_utf8_lossy(&replay.stdout);
        assert!(
            replay.status.success() && said.contains("equal the genesis replay"),
            "seed {seed}: {said}{}",
            String::from_utf8_lossy(&replay.stderr)
        );
    }
    let recycled = !dir.join("log").join(bursar_wal::segment_name(0)).exists();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    Run { recycled, torn_tail_cut, history_chunks_checked }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transfers_survive_kill_9_and_retries_apply_once() {
    let seeds: u64 = std::env::var("KILL9_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(3);
    for seed in 0..seeds {
        run_seed(seed, if seed % 2 == 1 { MEMORY } else { &[] }).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retention_recycled_segments_survive_kill_9_too() {
    let seeds: u64 = std::env::var("KILL9_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(2);
    let mut recycled = 0;
    for seed in 0..seeds {
        recycled += u64::from(run_seed(100 + seed, RECYCLING).await.recycled);
    }
    eprintln!("kill9 with retention: {recycled} of {seeds} runs had recycled the log's first segment");
    assert!(recycled > 0, "no run recycled a segment: the test exercised too little");
}

/// A power cut with real processes: the server's unsynced log writes land in random blocks in
/// random order (`--power-cut-seed`, see `bursar_wal::powercut`), so a kill -9 leaves what a
/// power cut could, including a torn group of entries whose later blocks landed and earlier
/// ones did not. Every acknowledged transfer survives; the torn, unacknowledged tail is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transfers_survive_a_power_cut_that_tears_unsynced_writes() {
    let seeds: u64 = std::env::var("KILL9_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(2);
    let mut torn = 0;
    for seed in 0..seeds {
        let seed_flag = (200 + seed).to_string();
        torn += u64::from(run_seed(200 + seed, &["--power-cut-seed", &seed_flag]).await.torn_tail_cut);
    }
    eprintln!("power cut: {torn} of {seeds} restarts cut a torn tail");
}

/// With the history on disk: the kill lands while full chunks move to `<data>/history` (written
/// and synced on their own thread, after the log). The restart checks the store against the
/// recovered state; every acknowledged transfer is found, most of them read back from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_on_disk_acknowledged_transfers_survive_kill_9() {
    let seeds: u64 = std::env::var("KILL9_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(2);
    let mut checked = 0;
    for seed in 0..seeds {
        checked += run_seed(300 + seed, HISTORY).await.history_chunks_checked;
    }
    eprintln!("history on disk: the restarts checked {checked} chunks in all");
    assert!(checked > 0, "no run had moved a chunk to disk before the kill: the test exercised too little");
}
