//! The change feed against the real server binary: a consumer that is killed (its connection
//! dropped mid-stream) and resumed from the last event it holds, again and again, while gateways
//! load the server and the server itself is killed with -9 and restarted, sees every event
//! exactly once and in order: what it assembled equals one uninterrupted subscription from the
//! first entry. The balances its last transfer events carry are the accounts' balances. A
//! consumer that stops reading holds back nobody: the gateways' requests are answered all the
//! while. Bad positions get typed errors.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bursar_engine::{Account, Command, FeedEventType, ResultCode, Transfer};
use bursar_net::client::{Client, ClientError};
use bursar_net::protocol::ProtocolError;
use bursar_wire::feed::{Event, Subscription};

const ACCOUNTS: u128 = 12;
/// The account whose creation marks the end of the load: its command event is the last event.
const MARKER_ACCOUNT: u128 = 777;

fn start(dir: &Path) -> (std::process::Child, SocketAddr) {
    common::start_server(env!("CARGO_BIN_EXE_bursar"), dir, &["--snapshot-every-entries", "25"])
}

async fn connect(dir: &Path, addr: SocketAddr) -> Option<Client> {
    let cert = std::fs::read(dir.join("server.crt")).ok()?;
    Client::connect(addr, cert.into(), "localhost").await.ok()
}

fn transfer(id: u128) -> Command {
    let debit = 1 + id % ACCOUNTS;
    let credit = 1 + (debit + id / ACCOUNTS) % ACCOUNTS;
    let credit = if credit == debit { debit % ACCOUNTS + 1 } else { credit };
    let flags = if id.is_multiple_of(7) { bursar_engine::transfer_flags::PENDING } else { 0 };
    let timeout = if flags != 0 { 1 } else { 0 };
    let t = Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount: 1 + id % 9,
        ledger: 1,
        code: 1,
        flags,
        timeout,
        ..Default::default()
    };
    if flags != 0 {
        Command::Hold(t)
    } else {
        Command::Transfer(t)
    }
}

/// Sends requests of 50 transfers (some of them holds that expire after a second) from
/// `first_request` on until told to stop or the server goes away; returns the next request.
async fn load(client: Client, first_request: u128, stop: Arc<AtomicBool>) -> u128 {
    let mut r = first_request;
    while !stop.load(Ordering::Relaxed) && r < first_request + 400 {
        let commands: Vec<Command> = (0..50).map(|k| transfer(10_000 + r * 50 + k)).collect();
        match client.submit(commands).await {
            Ok(results) => assert!(results.iter().all(|x| matches!(x, ResultCode::Ok | ResultCode::Exists)), "{results:?}"),
            Err(_) => return r, // the server died: this request is retried after the restart
        }
        r += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    r
}

/// Where to resume after `event`.
fn after(event: &Event) -> (u64, u32) {
    if event.is_progress() {
        (event.seq + 1, 0)
    } else {
        (event.seq, event.event.index + 1)
    }
}

fn is_marker(event: &Event) -> bool {
    event.event.kind == FeedEventType::Command
        && !event.is_progress()
        && Command::decode(bursar_engine::CommandKind::CreateAccount, &event.event.record).account_ids()[0] == MARKER_ACCOUNT
}

/// Reads from `from` until the marker, `budget` events, or an error; appends what it got.
async fn read_some(client: &Client, from: (u64, u32), budget: usize, got: &mut Vec<Event>) -> Result<bool, ClientError> {
    let subscription = Subscription { from_seq: from.0, from_index: from.1, ..Subscription::default() };
    let mut stream = client.subscribe(subscription).await?;
    for _ in 0..budget {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(event))) => {
                let marker = is_marker(&event);
                got.push(event);
                if marker {
                    return Ok(true);
                }
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err(ClientError::Connection("the stream ended".into())),
            Err(_) => panic!("no event for 20 s"),
        }
    }
    Ok(false) // dropped here: the consumer "dies" mid-stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_and_resumed_sees_every_event_exactly_once_in_order() {
    let dir = std::env::temp_dir().join(format!("bursar-feed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut server, mut addr) = start(&dir);
    let client = connect(&dir, addr).await.expect("connect");
    let setup = bursar_tests::setup::ledger_and_accounts(ACCOUNTS);
    assert!(client.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));

    let stop = Arc::new(AtomicBool::new(false));
    let first_load = tokio::spawn(load(client.clone(), 0, Arc::clone(&stop)));
    let mut second_load = None;
    let mut got: Vec<Event> = Vec::new();
    let mut position = (1u64, 0u32);
    let mut sessions = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the consumer did not reach the marker in time");
        if sessions == 4 && second_load.is_none() {
            // The server dies under the consumer and the load; both come back. The gateway sends
            // every request again from the first (what it had acknowledged answers `exists`),
            // then the marker.
            server.kill().expect("kill -9");
            server.wait().expect("reaped");
            first_load.abort();
            (server, addr) = start(&dir);
            let gateway = connect(&dir, addr).await.expect("reconnect");
            second_load = Some(tokio::spawn(async move {
                let done = load(gateway.clone(), 0, Arc::new(AtomicBool::new(false))).await;
                assert_eq!(done, 400, "the gateway finished its load on the restarted server");
                let marker = Command::CreateAccount(Account { id: MARKER_ACCOUNT, ledger: 1, code: 10, ..Default::default() });
                assert_eq!(gateway.submit(vec![marker]).await.expect("marker"), vec![ResultCode::Ok]);
            }));
        }
        let Some(consumer) = connect(&dir, addr).await else { continue };
        sessions += 1;
        let budget = 97 + (sessions * 389) % 1500;
        let reached_marker = read_some(&consumer, position, budget, &mut got).await;
        drop(consumer); // killed: its connection goes away with whatever was in flight
        if let Some(last) = got.last() {
            position = after(last);
        }
        if let Ok(true) = reached_marker {
            break;
        }
    }
    second_load.expect("the load ran twice").await.expect("the second load");
    stop.store(true, Ordering::Relaxed);
    assert!(sessions > 5, "the consumer was killed and resumed several times ({sessions} sessions)");

    // One uninterrupted subscription from the first entry, to the marker.
    let reader = connect(&dir, addr).await.expect("connect");
    let mut whole = Vec::new();
    assert!(read_some(&reader, (1, 0), usize::MAX, &mut whole).await.expect("read all"));
    let positions = |events: &[Event]| events.iter().filter(|e| !e.is_progress()).map(|e| (e.seq, e.event)).collect::<Vec<_>>();
    let (resumed, straight) = (positions(&got), positions(&whole));
    assert_eq!(resumed.len(), straight.len(), "as many events resumed as read straight");
    assert!(resumed == straight, "the resumed consumer saw exactly the events of one uninterrupted read, in order");
    assert!(straight.windows(2).all(|w| (w[0].0, w[0].1.index) < (w[1].0, w[1].1.index)), "positions rise");
    eprintln!("feed: {} events in {sessions} consumer sessions across a kill -9, same as one straight read", straight.len());
    let expiries = straight.iter().filter(|(_, e)| e.kind == FeedEventType::Expiry).count();
    assert!(expiries > 0, "holds expired while the feed was read");

    // The last balances the feed carried for each account are its balances now.
    let mut last = std::collections::HashMap::new();
    for (_, e) in straight.iter().filter(|(_, e)| matches!(e.kind, FeedEventType::Transfer | FeedEventType::Expiry)) {
        last.insert(e.accounts[0], e.balances[0]);
        last.insert(e.accounts[1], e.balances[1]);
    }
    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    for (id, account) in ids.iter().zip(reader.lookup_accounts(ids.clone()).await.expect("lookup")) {
        let a = account.expect("account");
        let b = last[id];
        // Holds still pending may expire after the marker: compare the posted sides, which only
        // the feed's transfers moved.
        assert_eq!((a.debits_posted, a.credits_posted), (b.debits_posted, b.credits_posted), "account {id}");
    }
    drop(reader);
    drop(client);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn feed_error(client: &Client, subscription: Subscription) -> ProtocolError {
    let mut stream = client.subscribe(subscription).await.expect("subscribe");
    match tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("an answer") {
        Some(Err(ClientError::Protocol(e))) => e,
        other => panic!("expected a typed error, got {other:?}"),
    }
}

/// A subscriber that never reads holds back no gateway; a second one past the limit, a position
/// beyond the log's end, and a server without a feed get typed errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_holds_back_nobody_and_bad_subscriptions_get_typed_errors() {
    let dir = std::env::temp_dir().join(format!("bursar-feed-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (server, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir, &["--feed-subscriptions", "1"]);
    let _server = common::Running(server);
    let client = connect(&dir, addr).await.expect("connect");
    assert!(client.submit(bursar_tests::setup::ledger_and_accounts(ACCOUNTS)).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    // Subscribed from the first entry and never read: its follower fills its buffers and waits.
    let stalled = client.subscribe(Subscription { from_seq: 1, ..Subscription::default() }).await.expect("subscribe");
    for r in 0..300u128 {
        let commands: Vec<Command> = (0..100).map(|k| transfer(1_000_000 + r * 100 + k)).collect();
        let results = tokio::time::timeout(Duration::from_secs(20), client.submit(commands)).await.expect("answered").expect("submit");
        assert!(results.iter().all(|x| *x == ResultCode::Ok));
    }
    assert_eq!(feed_error(&client, Subscription::default()).await, ProtocolError::SubscriptionsFull);
    drop(stalled);
    let durable = client.status().await.expect("status").seq;
    // The stalled subscription's slot comes back once its stream is gone.
    let mut ahead = None;
    for _ in 0..100 {
        match feed_error(&client, Subscription { from_seq: durable + 2, ..Subscription::default() }).await {
            ProtocolError::SubscriptionsFull => tokio::time::sleep(Duration::from_millis(50)).await,
            e => {
                ahead = Some(e);
                break;
            }
        }
    }
    assert_eq!(ahead, Some(ProtocolError::PositionAhead));
    client.close().await;

    let plain = std::env::temp_dir().join(format!("bursar-feed-none-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&plain);
    let (server, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &plain, &["--feed-subscriptions", "0"]);
    let _server = common::Running(server);
    let client = connect(&plain, addr).await.expect("connect");
    assert_eq!(feed_error(&client, Subscription::default()).await, ProtocolError::FeedUnavailable);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&plain);
}

/// Under retention, a position whose segment was recycled is refused as such; the newest
/// positions are still served, from the snapshot before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycled_position_is_refused_and_later_ones_are_served_from_a_snapshot() {
    let dir = std::env::temp_dir().join(format!("bursar-feed-recycled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let flags = ["--retention", "recycle", "--segment-mib", "2", "--snapshot-every-entries", "20"];
    let (server, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir, &flags);
    let _server = common::Running(server);
    let client = connect(&dir, addr).await.expect("connect");
    assert!(client.submit(bursar_tests::setup::ledger_and_accounts(ACCOUNTS)).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let mut r = 0u128;
    while dir.join("log").join(bursar_wal::segment_name(0)).exists() {
        assert!(r < 20_000, "segment 0 was never recycled");
        let commands: Vec<Command> = (0..200)
            .map(|k| {
                Command::Transfer(match transfer(5_000_000 + r * 200 + k) {
                    Command::Transfer(t) | Command::Hold(t) => Transfer { flags: 0, timeout: 0, ..t },
                    _ => unreachable!("transfers"),
                })
            })
            .collect();
        assert!(client.submit(commands).await.expect("submit").iter().all(|x| *x == ResultCode::Ok));
        r += 1;
    }
    assert_eq!(feed_error(&client, Subscription { from_seq: 1, ..Subscription::default() }).await, ProtocolError::PositionRecycled);
    let durable = client.status().await.expect("status").seq;
    // Read as a `futures` stream this time.
    let stream = client.subscribe(Subscription { from_seq: durable, ..Subscription::default() }).await.expect("subscribe");
    let mut stream = Box::pin(stream.into_stream());
    let next = futures_util::StreamExt::next(&mut stream);
    let first = tokio::time::timeout(Duration::from_secs(20), next).await.expect("an event").expect("open").expect("an event");
    assert_eq!(first.seq, durable, "the feed starts at the position asked for");
    drop(stream);
    client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
