//! A good gateway beside a flooding one: the good gateway's throughput and request latency with
//! no attack, then under each attack from a second connection (stalled full-size requests, bad
//! frames, full-size garbage bodies), against an embedded server on loopback. Prints one row per
//! phase with the share of the unloaded throughput kept. Issue 17's goal: at least 50% and p99
//! under 50 ms in every phase.
//!
//! `cargo run --release -p bursar-bench --example flood_probe -- [SECONDS_PER_PHASE]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bursar_bench::harness::{Embedded, Target};
use bursar_engine::{Account, Command, Ledger, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::client::Client;
use bursar_net::protocol;

const ACCOUNTS: u128 = 1000;

/// The attacks, each from its own connection, run until `stop` is set.
#[derive(Clone, Copy, Debug)]
enum Attack {
    None,
    /// 64 streams at a time send a full request's header and 4 KiB, then stall; each one cut
    /// off is replaced at once (on a new connection once the server closes one).
    Slowloris,
    /// Streams of 1 KiB of garbage, 64 at a time.
    BadFrames,
    /// Full-size requests whose body fails the frame checksum, 16 at a time.
    GarbageBodies,
}

async fn connect(target: &Target) -> Client {
    Client::connect(target.addr, target.cert.clone(), &target.server_name).await.expect("connect")
}

fn full_request(first_id: u128) -> Vec<Command> {
    (0..BATCH_COMMANDS_MAX as u128)
        .map(|n| {
            let id = first_id + n;
            Command::Transfer(Transfer {
                id,
                debit_account_id: 1 + id % ACCOUNTS,
                credit_account_id: 1 + (id + 7) % ACCOUNTS,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Default::default()
            })
        })
        .collect()
}

/// One attacking stream: sends `bytes` (all, or only the first `stall_after` and then waits for
/// the server's answer), returns when the stream ends.
async fn attack_stream(client: &Client, bytes: &[u8], stall_after: Option<usize>) -> bool {
    let Ok((mut send, mut recv)) = client.connection().open_bi().await else { return false };
    let part = stall_after.map_or(bytes, |n| &bytes[..n]);
    if send.write_all(part).await.is_err() {
        return false;
    }
    if stall_after.is_none() {
        let _ = send.finish();
    }
    let _ = recv.read_to_end(1 << 16).await;
    true
}

async fn attacker(target: Target, attack: Attack, stop: Arc<AtomicBool>) -> u64 {
    let (bytes, stall_after, parallel) = match attack {
        Attack::None => return 0,
        Attack::Slowloris => {
            let mut frame = Vec::new();
            protocol::encode_submit(1, &full_request(1 << 60), &mut frame);
            (frame, Some(4096), 64)
        }
        Attack::BadFrames => ((0..1024u32).map(|i| (i * 31) as u8).collect(), None, 64),
        Attack::GarbageBodies => {
            let mut frame = Vec::new();
            protocol::encode_submit(1, &full_request(1 << 61), &mut frame);
            let last = frame.len() - 1;
            frame[last] ^= 0xff; // the frame checksum fails once the body is in
            (frame, None, 16)
        }
    };
    let bytes = Arc::new(bytes);
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let client = Arc::new(connect(&target).await);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < parallel && !stop.load(Ordering::Relaxed) {
                let (client, bytes) = (Arc::clone(&client), Arc::clone(&bytes));
                tasks.spawn(async move { attack_stream(&client, &bytes, stall_after).await });
            }
            match tasks.join_next().await {
                Some(Ok(true)) => sent += 1,
                Some(_) => break, // the server closed this connection: open another
                None => break,
            }
            if stop.load(Ordering::Relaxed) || client.connection().close_reason().is_some() {
                break;
            }
        }
        tasks.abort_all();
    }
    sent
}

/// The good gateway's closed loop of full requests for `phase`: (transfers/s, p50, p99, max).
async fn good_gateway(client: &Client, phase: Duration, next_id: &mut u128) -> (f64, Duration, Duration, Duration) {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut transfers = 0u64;
    while started.elapsed() < phase {
        let request = full_request(*next_id);
        *next_id += BATCH_COMMANDS_MAX as u128;
        let sent = Instant::now();
        let results = client.submit(request).await.expect("the good gateway is served");
        latencies.push(sent.elapsed());
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
        transfers += results.len() as u64;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (transfers as f64 / started.elapsed().as_secs_f64(), at(0.5), at(0.99), *latencies.last().expect("a request"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map(|s| s.parse().expect("seconds per phase")).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("bursar-flood-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Room for every phase's transfers, so no table grows (and stalls) mid-run.
    let server = Embedded::start(&dir, ACCOUNTS as u64 + 1, seconds * 5 * 1_500_000).await.expect("server");
    let good = connect(&server.target).await;
    let mut setup = vec![Command::CreateLedger(Ledger {
        id: 1,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: 1 << 40,
        settlement_account_code: 1,
        ..Default::default()
    })];
    setup.extend((1..=ACCOUNTS).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })));
    assert!(good.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let mut next_id = 1u128 << 32;
    let phase = Duration::from_secs(seconds);
    let mut unloaded = 0.0;
    println!(
        "{:<15} {:>12} {:>7} {:>9} {:>9} {:>9} {:>14}",
        "attack", "transfers/s", "kept", "p50 ms", "p99 ms", "max ms", "attack streams"
    );
    for attack in [Attack::None, Attack::Slowloris, Attack::BadFrames, Attack::GarbageBodies, Attack::None] {
        let stop = Arc::new(AtomicBool::new(false));
        let flood = tokio::spawn(attacker(server.target.clone(), attack, Arc::clone(&stop)));
        let (rate, p50, p99, max) = good_gateway(&good, phase, &mut next_id).await;
        stop.store(true, Ordering::Relaxed);
        let sent = tokio::time::timeout(Duration::from_secs(30), flood).await.map(|r| r.unwrap_or(0)).unwrap_or(0);
        if unloaded == 0.0 {
            unloaded = rate;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<15} {:>12.0} {:>6.0}% {:>9.2} {:>9.2} {:>9.2} {:>14}",
            format!("{attack:?}"),
            rate,
            100.0 * rate / unloaded,
            ms(p50),
            ms(p99),
            ms(max),
            sent
        );
    }
    drop(good);
    server.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
