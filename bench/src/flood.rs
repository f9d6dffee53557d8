//! A good gateway beside a flooding one: the attacks (stalled full-size requests, bad frames,
//! full-size garbage bodies), each from its own address on loopback (127.0.0.2, as a separate
//! host would be), and the good gateway's closed loop of full requests, timed. The `flood_probe`
//! example prints a table from it; `bench/tests/flood.rs` holds the server to issue 17's goal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bursar_engine::{Account, Command, Ledger, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::client::Client;
use bursar_net::protocol;

use crate::harness::Target;

/// Accounts the good gateway's transfers move between (ids 1..=ACCOUNTS, ledger 1).
pub const ACCOUNTS: u128 = 1000;

/// The goal every attack phase must meet: the good gateway keeps at least this share of its
/// unloaded throughput, in percent (issue 17)...
pub const KEPT_PERCENT_MIN: f64 = 50.0;
/// ...and its p99 request latency stays under this.
pub const P99_MAX: Duration = Duration::from_millis(50);

/// The local address attackers connect from: another host, as far as the server can tell.
pub const ATTACKER_BIND: &str = "127.0.0.2:0";

/// The attacks, each from its own connection, run until told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// No attack: the baseline.
    None,
    /// 64 streams at a time send a full request's header and 4 KiB, then stall; each one cut
    /// off is replaced at once (on a new connection once the server closes one).
    Slowloris,
    /// Streams of 1 KiB of garbage, 64 at a time.
    BadFrames,
    /// Full-size requests whose body fails the frame checksum, 16 at a time.
    GarbageBodies,
}

impl Attack {
    /// Every attack, in the order the probe runs them.
    pub const ALL: [Attack; 3] = [Attack::Slowloris, Attack::BadFrames, Attack::GarbageBodies];
}

/// What the good gateway saw in one phase.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    /// Transfers per second.
    pub rate: f64,
    /// Request latency percentiles and maximum.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
}

/// What one attacker did: streams it got answered or cut, connections the server refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flood {
    /// Attacking streams that ended (answered, cut off or refused by the stream limit).
    pub streams: u64,
    /// Connection attempts the server refused (its address cooling off).
    pub refused: u64,
}

/// Connects the good gateway (from 127.0.0.1).
pub async fn connect(target: &Target) -> Client {
    Client::connect(target.addr, target.cert.clone(), &target.server_name).await.expect("connect")
}

/// Creates ledger 1 and accounts 1..=[`ACCOUNTS`] through `client`.
pub async fn set_up(client: &Client) {
    let mut setup = vec![Command::CreateLedger(Ledger {
        id: 1,
        currency: *b"EUR",
        scale: 2,
        settlement_account_id: 1 << 40,
        settlement_account_code: 1,
        ..Default::default()
    })];
    setup.extend((1..=ACCOUNTS).map(|id| Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })));
    assert!(client.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
}

/// A full request of unit transfers with ids from `first_id`.
pub fn full_request(first_id: u128) -> Vec<Command> {
    request(first_id, BATCH_COMMANDS_MAX)
}

/// A request of `len` unit transfers with ids from `first_id`.
pub fn request(first_id: u128, len: usize) -> Vec<Command> {
    (0..len as u128)
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

/// The bytes one attacking stream sends, how many before it stalls, and how many streams at once.
fn weapon(attack: Attack) -> (Vec<u8>, Option<usize>, usize) {
    match attack {
        Attack::None => (Vec::new(), None, 0),
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
    }
}

/// Runs `attack` from [`ATTACKER_BIND`] until `stop` is set: on a refused connection it tries
/// again every 10 ms, as a determined attacker would.
pub async fn attacker(target: Target, attack: Attack, stop: Arc<AtomicBool>) -> Flood {
    let (bytes, stall_after, parallel) = weapon(attack);
    let bytes = Arc::new(bytes);
    let bind: SocketAddr = ATTACKER_BIND.parse().expect("literal");
    let mut flood = Flood::default();
    while parallel > 0 && !stop.load(Ordering::Relaxed) {
        let Ok(client) = Client::connect_from(bind, target.addr, target.cert.clone(), &target.server_name, None).await else {
            flood.refused += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let client = Arc::new(client);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < parallel && !stop.load(Ordering::Relaxed) {
                let (client, bytes) = (Arc::clone(&client), Arc::clone(&bytes));
                tasks.spawn(async move { attack_stream(&client, &bytes, stall_after).await });
            }
            match tasks.join_next().await {
                Some(Ok(true)) => flood.streams += 1,
                _ => break, // the server closed this connection: open another
            }
            if stop.load(Ordering::Relaxed) || client.connection().close_reason().is_some() {
                break;
            }
        }
        tasks.abort_all();
    }
    flood
}

/// The good gateway's closed loop of requests of `request_len` transfers for `length`, ids from
/// `next_id` on.
pub async fn good_gateway(client: &Client, length: Duration, request_len: usize, next_id: &mut u128) -> Phase {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut transfers = 0u64;
    while started.elapsed() < length {
        let request = request(*next_id, request_len);
        *next_id += request_len as u128;
        let sent = Instant::now();
        let results = client.submit(request).await.expect("the good gateway is served");
        latencies.push(sent.elapsed());
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
        transfers += results.len() as u64;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Phase {
        rate: transfers as f64 / started.elapsed().as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        max: *latencies.last().expect("a request"),
    }
}

/// One phase: `attack` (if any) runs beside the good gateway (see [`good_gateway`]) for `length`.
pub async fn phase(
    target: &Target,
    good: &Client,
    attack: Attack,
    length: Duration,
    request_len: usize,
    next_id: &mut u128,
) -> (Phase, Flood) {
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn(attacker(target.clone(), attack, Arc::clone(&stop)));
    let seen = good_gateway(good, length, request_len, next_id).await;
    stop.store(true, Ordering::Relaxed);
    let flood = tokio::time::timeout(Duration::from_secs(30), flood).await.ok().and_then(Result::ok).unwrap_or_default();
    (seen, flood)
}

/// Whether `attacked` meets the goal against `unloaded`.
pub fn meets_goal(unloaded: &Phase, attacked: &Phase) -> bool {
    attacked.rate * 100.0 >= unloaded.rate * KEPT_PERCENT_MIN && attacked.p99 < P99_MAX
}
