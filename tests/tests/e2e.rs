//! End to end on loopback: a real server (node on a temporary directory with real fsync, the
//! sequencer thread, QUIC with the generated certificate) and many concurrent clients. Checks the
//! results, the balances against a reference engine, retries (`exists`, no double movement), a
//! malformed frame (an error frame; the server keeps serving), and restart from disk.

use std::sync::Arc;

use bursar_engine::{Command, Engine, Limits, ResultCode, Transfer};
use bursar_net::client::Client;
use bursar_net::protocol::ProtocolError;
use bursar_net::sequencer::SequencerConfig;
use bursar_net::server::{self, ServerLimits};
use bursar_net::{tls, Node};
use bursar_wal::{FsStorage, WalConfig};

const CLIENTS: u128 = 8;
const BATCHES_PER_CLIENT: u128 = 20;
const TRANSFERS_PER_BATCH: u128 = 50;
const ACCOUNTS: u128 = 16;

fn setup_commands() -> Vec<Command> {
    bursar_tests::setup::ledger_and_accounts(ACCOUNTS)
}

fn batch(client: u128, b: u128) -> Vec<Command> {
    (0..TRANSFERS_PER_BATCH)
        .map(|i| {
            let n = (client * BATCHES_PER_CLIENT + b) * TRANSFERS_PER_BATCH + i;
            let debit = 1 + n % ACCOUNTS;
            let credit = 1 + (n * 7 + 3) % ACCOUNTS;
            let credit = if credit == debit { debit % ACCOUNTS + 1 } else { credit };
            Command::Transfer(Transfer {
                id: 1_000_000 + n,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: 1 + n % 97,
                ledger: 1,
                code: 1,
                ..Default::default()
            })
        })
        .collect()
}

struct Running {
    addr: std::net::SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
    server: bursar_net::assembly::Running<FsStorage>,
}

fn start(dir: &std::path::Path) -> Running {
    start_with(dir, SequencerConfig::default())
}

fn start_with(dir: &std::path::Path, config: SequencerConfig) -> Running {
    start_limits(dir, config, ServerLimits::default())
}

fn start_limits(dir: &std::path::Path, sequencer: SequencerConfig, limits: ServerLimits) -> Running {
    let (node, _) = Node::open(FsStorage::open(dir.join("log")).expect("dir"), WalConfig::default(), Limits::default()).expect("node");
    let identity = tls::load_or_generate(dir).expect("certificate");
    let config = bursar_net::assembly::ServerConfig { sequencer, limits, ..Default::default() };
    let server = bursar_net::assembly::Running::start(node, &identity, config).expect("serving");
    Running { addr: server.addr(), cert: server.cert(), server }
}

async fn stop(running: Running) -> Node<FsStorage> {
    running.server.stop().await.expect("sequencer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_exact_results_and_retries_move_nothing_twice() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Periodic snapshots every few entries: written in the background while the clients go on.
    let running = start_with(&dir, SequencerConfig { snapshot_every_entries: 5, ..SequencerConfig::default() });
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let setup = client.submit(setup_commands()).await.expect("setup");
    assert!(setup.iter().all(|r| *r == ResultCode::Ok), "{setup:?}");

    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        // Half the tasks share one connection, half open their own.
        let shared = Arc::clone(&client);
        let (addr, cert) = (running.addr, running.cert.clone());
        tasks.push(tokio::spawn(async move {
            let own = if c % 2 == 0 { None } else { Some(Client::connect(addr, cert, "localhost").await.expect("connect")) };
            let client = own.as_ref().unwrap_or(&shared);
            for b in 0..BATCHES_PER_CLIENT {
                let results = client.submit(batch(c, b)).await.expect("submit");
                assert!(results.iter().all(|r| *r == ResultCode::Ok), "client {c} batch {b}: {results:?}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }

    // Retries of acknowledged batches: every command answers `exists`.
    let retry = client.submit(batch(3, 7)).await.expect("retry");
    assert!(retry.iter().all(|r| *r == ResultCode::Exists), "{retry:?}");

    // Balances equal a reference engine that applied the same transfers (no limits, so order does not matter).
    let mut reference = Engine::default();
    let mut results = Vec::new();
    reference.execute(1, &setup_commands(), &mut results).expect("setup");
    for c in 0..CLIENTS {
        for b in 0..BATCHES_PER_CLIENT {
            reference.execute(2 + (c * BATCHES_PER_CLIENT + b) as u64 * 1000, &batch(c, b), &mut results).expect("batch");
        }
    }
    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    let served = client.lookup_accounts(ids.clone()).await.expect("lookup");
    for (id, account) in ids.iter().zip(&served) {
        let account = account.expect("exists");
        let expected = reference.account(*id).expect("reference");
        assert_eq!((account.debits_posted, account.credits_posted), (expected.debits_posted, expected.credits_posted), "account {id}");
    }
    let transfer = client.lookup_transfers(vec![1_000_000, 42]).await.expect("lookup");
    assert!(transfer[0].is_some() && transfer[1].is_none());
    // Account history over the wire: the newest 5 transfers of account 1, newest first.
    let filter = bursar_engine::AccountFilter {
        account_id: 1,
        limit: 5,
        flags: bursar_engine::filter_flags::DEBITS | bursar_engine::filter_flags::CREDITS | bursar_engine::filter_flags::REVERSED,
        ..Default::default()
    };
    let served = client.get_account_transfers(filter).await.expect("history");
    assert_eq!(served.len(), 5);
    assert!(served.iter().all(|t| t.debit_account_id == 1 || t.credit_account_id == 1), "only account 1's transfers");
    assert!(served.windows(2).all(|w| w[0].timestamp > w[1].timestamp), "newest first");
    let newest_first_all = client.get_account_transfers(bursar_engine::AccountFilter { limit: 8189, ..filter }).await.expect("history");
    assert_eq!(newest_first_all[..5], served[..], "the first page is the newest five");
    assert!(client.get_account_balances(filter).await.expect("balances").is_empty(), "account 1 keeps no history");

    // A malformed frame gets an error frame on its stream; the connection keeps working.
    let (mut send, mut recv) = client_connection(&client).open_bi().await.expect("stream");
    send.write_all(b"NOT A BURSAR FRAME AT ALL, JUST BYTES").await.expect("write");
    send.finish().expect("finish");
    let reply = recv.read_to_end(1 << 16).await.expect("reply");
    let mut decoder = bursar_net::protocol::FrameDecoder::new();
    decoder.feed(&reply);
    let (header, body) = decoder.next_frame().expect("frame").expect("complete");
    assert_eq!(header.frame_type, bursar_net::protocol::FrameType::Error);
    assert_eq!(ProtocolError::from_u32(u32::from_le_bytes(body[..4].try_into().expect("4"))), Some(ProtocolError::BadMagic));
    assert!(client.lookup_accounts(vec![1]).await.expect("still serving")[0].is_some());

    // The server's own counters: every command, and periodic snapshots, none failed.
    let mut metrics = client.metrics().await.expect("metrics");
    for _ in 0..100 {
        // A snapshot's write finishes in the background; the sequencer notices within its tick.
        if metrics.snapshots >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        metrics = client.metrics().await.expect("metrics");
    }
    assert_eq!(metrics.commands as u128, setup_commands().len() as u128 + CLIENTS * BATCHES_PER_CLIENT * TRANSFERS_PER_BATCH + 50);
    assert!(metrics.batches >= 3 && metrics.syncs >= metrics.batches, "{metrics:?}");
    assert!(metrics.snapshots >= 1 && metrics.snapshots_failed == 0, "{metrics:?}");
    assert_eq!(metrics.sync_us_buckets.iter().sum::<u64>(), metrics.syncs);

    // Clean shutdown snapshots; a restart from disk has the same state.
    drop(client);
    let node = stop(running).await;
    let digest = node.engine().digest();
    drop(node);
    let storage = FsStorage::open(dir.join("log")).expect("dir");
    let snapshots = bursar_wal::list_snapshots(&storage).expect("list");
    assert!(snapshots.len() >= 2, "periodic snapshots and the shutdown one: {snapshots:?}");
    for seq in &snapshots {
        bursar_wal::read_snapshot(&storage, *seq).expect("every snapshot written in the background is whole and valid");
    }
    // The newest but one (a periodic snapshot) restores to the state the log had at its entry.
    let periodic = snapshots[snapshots.len() - 2];
    let (_, payload) = bursar_wal::read_snapshot(&storage, periodic).expect("read");
    Engine::restore(&payload).expect("a periodic snapshot restores").check_invariants().expect("and is consistent");
    drop(storage);
    let (node, report) =
        Node::open(FsStorage::open(dir.join("log")).expect("dir"), WalConfig::default(), Limits::default()).expect("reopen");
    assert!(report.snapshot.is_some(), "shutdown took a snapshot");
    assert_eq!(node.engine().digest(), digest);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn client_connection(client: &Client) -> quinn::Connection {
    client.connection().clone()
}

/// Sends raw bytes on a new stream and returns the protocol error the server answered with.
async fn raw_error(connection: &quinn::Connection, bytes: &[u8]) -> Option<ProtocolError> {
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    send.finish().expect("finish");
    let reply = recv.read_to_end(1 << 16).await.expect("reply");
    let mut decoder = bursar_net::protocol::FrameDecoder::new();
    decoder.feed(&reply);
    let (header, body) = decoder.next_frame().expect("frame").expect("complete");
    assert_eq!(header.frame_type, bursar_net::protocol::FrameType::Error);
    ProtocolError::from_u32(u32::from_le_bytes(body[..4].try_into().expect("4 bytes")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_never_stops_the_server() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let attacker = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let honest = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    assert!(honest.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));

    let mut good = Vec::new();
    bursar_net::protocol::Request::LookupAccounts(vec![1, 2]).encode(5, &mut good);
    let connection = attacker.connection();
    // Truncated: half a frame, then the stream ends.
    assert_eq!(raw_error(connection, &good[..good.len() / 2]).await, Some(ProtocolError::Truncated));
    // Wrong checksum.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xFF;
    assert_eq!(raw_error(connection, &bad).await, Some(ProtocolError::BadChecksum));
    // Wrong version.
    let mut bad = good.clone();
    bad[4] = 99;
    assert_eq!(raw_error(connection, &bad).await, Some(ProtocolError::UnsupportedVersion));
    // Oversized: a header announcing more than the limit.
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(raw_error(connection, &bad[..32]).await, Some(ProtocolError::FrameTooLarge));
    // Random bytes.
    let noise: Vec<u8> = (0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(raw_error(connection, &noise).await.is_some());
    // A stalled client: half a frame and it never finishes the stream.
    let (mut stalled, _stalled_recv) = connection.open_bi().await.expect("stream");
    stalled.write_all(&good[..10]).await.expect("write");

    // The honest client is served throughout, and the attacker's connection still works too.
    for round in 0..5u128 {
        let results = honest.submit(batch(99, round)).await.expect("honest submit");
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
    }
    assert!(attacker.lookup_accounts(vec![1]).await.expect("still serving")[0].is_some());
    drop((attacker, honest, stalled));
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batching_client_coalesces_callers_keeps_open_chains_apart_and_retries_busy() {
    use bursar_net::batching::{BatchingClient, BatchingConfig};
    let dir = std::env::temp_dir().join(format!("bursar-e2e-batching-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let config = BatchingConfig { linger: std::time::Duration::from_millis(5), ..BatchingConfig::default() };
    let client = BatchingClient::connect(running.addr, running.cert.clone(), "localhost", config).await.expect("connect");
    assert!(client.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let before = client.requests_sent();
    let calls: Vec<_> = (0..300u128)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.submit(vec![batch(50, 0)[0]].into_iter().map(|c| with_id(c, 5_000_000 + i)).collect()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("submit"), vec![ResultCode::Ok]);
    }
    let requests = client.requests_sent() - before;
    assert!(requests < 100, "300 concurrent calls were coalesced into {requests} requests");

    // An open chain goes alone and gets its own linked_event_chain_open.
    let open = with_linked(with_id(batch(51, 0)[0], 6_000_000));
    let (a, b) = tokio::join!(client.submit(vec![open]), client.submit(vec![with_id(batch(51, 0)[1], 6_000_001)]));
    assert_eq!(a.expect("submit"), vec![ResultCode::LinkedEventChainOpen]);
    assert_eq!(b.expect("submit"), vec![ResultCode::Ok]);
    drop(client);
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");

    // A sequencer queue of one: plain clients see `busy`; batching clients retry until all is applied.
    let running = start_with(&dir, SequencerConfig { queue_jobs_max: 1, ..SequencerConfig::default() });
    let plain = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    assert!(plain.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let plain = Arc::new(plain);
    let attempts: Vec<_> = (0..256u128)
        .map(|i| {
            let plain = Arc::clone(&plain);
            tokio::spawn(async move { plain.submit(vec![with_id(batch(52, 0)[0], 7_000_000 + i)]).await })
        })
        .collect();
    let mut busy = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(results) => assert_eq!(results, vec![ResultCode::Ok]),
            Err(bursar_net::client::ClientError::Protocol(ProtocolError::Busy)) => busy += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(busy > 0, "a queue of one must refuse some of 256 concurrent requests");
    let batching: Vec<BatchingClient> = futures_join(&running, 8).await;
    let calls: Vec<_> = (0..64u128)
        .map(|i| {
            let client = batching[i as usize % 8].clone();
            tokio::spawn(async move { client.submit(vec![with_id(batch(53, 0)[0], 8_000_000 + i)]).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("retried until applied"), vec![ResultCode::Ok]);
    }
    drop((plain, batching));
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

async fn futures_join(running: &Running, n: usize) -> Vec<bursar_net::batching::BatchingClient> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let config = bursar_net::batching::BatchingConfig { linger: std::time::Duration::ZERO, ..Default::default() };
        clients.push(
            bursar_net::batching::BatchingClient::connect(running.addr, running.cert.clone(), "localhost", config).await.expect("connect"),
        );
    }
    clients
}

fn with_id(command: Command, id: u128) -> Command {
    match command {
        Command::Transfer(t) => Command::Transfer(Transfer { id, ..t }),
        other => other,
    }
}

fn with_linked(command: Command) -> Command {
    match command {
        Command::Transfer(t) => Command::Transfer(Transfer { flags: t.flags | bursar_engine::transfer_flags::LINKED, ..t }),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_gateways_holding_its_certificates_are_served() {
    // A CA, and a gateway certificate it issued.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let gateway_key = rcgen::KeyPair::generate().expect("key");
    let gateway = rcgen::CertificateParams::new(vec!["gateway-1".to_string()])
        .expect("params")
        .signed_by(&gateway_key, &ca, &ca_key)
        .expect("issued");
    let auth = tls::ClientAuth { cert: gateway.der().clone(), key: gateway_key.serialize_der() };

    let dir = std::env::temp_dir().join(format!("bursar-e2e-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (node, _) = Node::open(FsStorage::open(dir.join("log")).expect("dir"), WalConfig::default(), Limits::default()).expect("node");
    let identity = tls::load_or_generate(&dir).expect("certificate");
    let config = bursar_net::assembly::ServerConfig { client_ca: Some(ca.der().clone()), ..Default::default() };
    let server = bursar_net::assembly::Running::start(node, &identity, config).expect("serving");
    let addr = server.addr();

    // Without a certificate: refused in the handshake, so no request is ever served.
    let anonymous = match Client::connect(addr, identity.cert.clone(), "localhost").await {
        Err(_) => None,
        Ok(client) => Some(client.submit(setup_commands()).await),
    };
    match anonymous {
        Some(Err(bursar_net::client::ClientError::Connection(why))) => {
            assert!(why.contains("TLS") && why.contains("certificate_required"), "the refusal names the TLS alert: {why}")
        }
        Some(Ok(_)) => panic!("an anonymous gateway must not be served"),
        other => assert!(other.is_none(), "{other:?}"),
    }

    // With a certificate from the CA: served.
    let client = Client::connect_with(addr, identity.cert.clone(), "localhost", Some(&auth)).await.expect("connect");
    assert!(client.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let running = Running { addr, cert: identity.cert, server };
    drop(client);
    let node = stop(running).await;
    assert_eq!(node.engine().accounts().len() as u128, ACCOUNTS + 1, "only the authenticated gateway's commands were applied");
    drop(node);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A disk that stops syncing (full, failing): the batch in flight is answered `shutting_down`,
/// never `ok`; every later request too (not `busy`, which would have clients retry forever); the
/// sequencer stops with the log's error, and a server watching `stopped()` stops serving, so a
/// supervisor restarts it and recovery reads what the disk really holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_answers_shutting_down_and_stops_the_server() {
    use bursar_wal::sim::{Faults, SimStorage};
    let dir = std::env::temp_dir().join(format!("bursar-e2e-failing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = WalConfig {
        segment_size_bytes: 4 << 20,
        entry_body_max_bytes: 2 << 20,
        sync: bursar_wal::SyncPolicy::EveryBatch,
        retention: bursar_wal::Retention::KeepAll,
    };
    let storage = SimStorage::new(11, Faults::default());
    let (mut node, _) = Node::open(storage.clone(), config, Limits::default()).expect("node");
    let mut results = Vec::new();
    node.submit(1, &setup_commands(), &mut results).expect("setup is durable");
    storage.set_faults(Faults { write_fail_percent: 0, sync_fail_percent: 100 });
    let quiet = SequencerConfig { snapshot_every_entries: 0, snapshot_on_stop: false, ..SequencerConfig::default() };
    let identity = tls::load_or_generate(&dir).expect("certificate");
    let config = bursar_net::assembly::ServerConfig { sequencer: quiet, ..Default::default() };
    let running = bursar_net::assembly::Running::start(node, &identity, config).expect("serving");
    let client = Client::connect(running.addr(), running.cert(), "localhost").await.expect("connect");
    let first = client.submit(batch(0, 0)).await;
    assert!(matches!(first, Err(bursar_net::client::ClientError::Protocol(ProtocolError::ShuttingDown))), "{first:?}");
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(20), running.serve_until(std::future::pending()))
        .await
        .expect("the server stops by itself");
    let why = stopped.expect_err("the sequencer reports the log failure");
    assert!(why.contains("sync"), "{why}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request of `BATCH_COMMANDS_MAX` posted transfers of 1 between the setup accounts, with ids
/// from `first_id` on.
fn full_batch(first_id: u128) -> Vec<Command> {
    (0..bursar_engine::BATCH_COMMANDS_MAX as u128)
        .map(|n| {
            Command::Transfer(Transfer {
                id: first_id + n,
                debit_account_id: 1 + n % ACCOUNTS,
                credit_account_id: 1 + (n + 1) % ACCOUNTS,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Default::default()
            })
        })
        .collect()
}

/// More full-size requests at once than the server admits (`RECORDS_IN_FLIGHT_MAX`): the ones
/// past the limit wait for room, QUIC holds their senders back, and every one is answered in
/// full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_full_requests_than_the_server_admits_all_complete() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-admission-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let client = Arc::new(Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect"));
    client.submit(setup_commands()).await.expect("setup");
    let full = bursar_engine::BATCH_COMMANDS_MAX as u128;
    let requests = server::RECORDS_IN_FLIGHT_MAX as u128 / full + 4;
    let mut tasks = Vec::new();
    for r in 0..requests {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move { client.submit(full_batch(50_000_000 + r * full)).await }));
    }
    for task in tasks {
        let results = task.await.expect("task").expect("answered");
        assert_eq!(results.len(), full as usize);
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
    }
    let node = stop(running).await;
    assert_eq!(node.engine().transfers().len() as u128, requests * full);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that sends a header announcing a full request and then stalls is answered
/// `truncated` once its read deadline has passed, and gives back what it was admitted for:
/// a full request from another client is served after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_cut_off_and_releases_its_admission() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = ServerLimits { request_read_base: std::time::Duration::from_millis(300), ..ServerLimits::default() };
    let running = start_limits(&dir, SequencerConfig::default(), limits);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    client.submit(setup_commands()).await.expect("setup");
    let full = full_batch(70_000_000);
    let mut frame = Vec::new();
    bursar_net::protocol::encode_submit(9, &full, &mut frame);
    let (mut send, mut recv) = client.connection().open_bi().await.expect("stream");
    send.write_all(&frame[..4096]).await.expect("write the header and a little body");
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), recv.read_to_end(1 << 16))
        .await
        .expect("answered well before the test gives up")
        .expect("reply");
    let (header, body) = bursar_net::protocol::decode_frame(&reply).expect("frame");
    assert_eq!(header.frame_type, bursar_net::protocol::FrameType::Error);
    assert_eq!(ProtocolError::from_u32(u32::from_le_bytes(body[..4].try_into().expect("4 bytes"))), Some(ProtocolError::Truncated));
    drop(send);
    let results = client.submit(full).await.expect("a full request after the stalled one");
    assert!(results.iter().all(|r| *r == ResultCode::Ok));
    stop(running).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What one gateway's request `i` holds in the chain-isolation test: open chains, chains that
/// fail, and closed chains, all on accounts 1 to 8.
fn chain_request(i: u128) -> Vec<Command> {
    let to = |k: u128, credit: Option<u128>| {
        let id = 20_000_000 + i * 4 + k;
        unit_transfer(id, 1 + id % 8, credit.unwrap_or(1 + (id + 1) % 8))
    };
    let valid = |k: u128| to(k, None);
    match i % 4 {
        0 => vec![with_linked(valid(0))],
        1 => vec![valid(0), with_linked(valid(1))],
        2 => vec![with_linked(to(0, Some(999))), valid(1)],
        _ => vec![with_linked(valid(0)), with_linked(valid(1)), valid(2)],
    }
}

/// The other gateway's request `i`: two valid transfers on accounts 9 to 16.
fn plain_request(i: u128) -> Vec<Command> {
    (0..2).map(|k| unit_transfer(30_000_000 + i * 2 + k, 9 + (i + k) % 8, 9 + (i + k + 3) % 8)).collect()
}

/// A transfer of one unit on ledger 1.
fn unit_transfer(id: u128, debit: u128, credit: u128) -> Command {
    Command::Transfer(Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount: 1,
        ledger: 1,
        code: 1,
        ..Default::default()
    })
}

/// Sends `requests` over one connection, `in_flight` at a time, and checks each reply against the
/// reference model applying that request alone after the setup: the gateways' accounts and ids
/// are disjoint and nothing has limits, so a request's results do not depend on the order.
async fn send_and_check(client: Arc<Client>, requests: Vec<Vec<Command>>, in_flight: usize) {
    let mut model = bursar_tests::model::Model::new(Limits::default());
    model.execute(1, &setup_commands());
    let model = Arc::new(model);
    let mut pending = tokio::task::JoinSet::new();
    for request in requests {
        if pending.len() == in_flight {
            pending.join_next().await.expect("a task").expect("checked");
        }
        let (client, model) = (Arc::clone(&client), Arc::clone(&model));
        pending.spawn(async move {
            let expected = (*model).clone().execute(2, &request);
            let served = client.submit(request.clone()).await.expect("submit");
            assert_eq!(served, expected, "request {request:?}");
        });
    }
    while let Some(done) = pending.join_next().await {
        done.expect("checked");
    }
}

/// Requests of several gateways are joined into one log entry; a request that ends inside an
/// open chain must not chain into the next gateway's commands, live or on replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_chain_never_reaches_into_another_gateways_request() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-chains-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // No snapshots: the restart below replays every entry.
    let running = start_with(&dir, SequencerConfig { snapshot_every_entries: 0, snapshot_on_stop: false, ..SequencerConfig::default() });
    let chains = Arc::new(Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect"));
    let plain = Arc::new(Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect"));
    assert!(plain.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let attacker = tokio::spawn(send_and_check(Arc::clone(&chains), (0..400).map(chain_request).collect(), 8));
    let victim = tokio::spawn(send_and_check(Arc::clone(&plain), (0..400).map(plain_request).collect(), 8));
    attacker.await.expect("the chain gateway's results");
    victim.await.expect("the other gateway's results");
    let live = plain.status().await.expect("status");
    drop((chains, plain));
    drop(stop(running).await);

    // The log marks where requests ended inside an open chain, and replay reaches the same state.
    let mut entries_with_ends = 0;
    bursar_wal::verify_log(&FsStorage::open_read_only(dir.join("log")).expect("dir"), &mut |entry| {
        let mut ends = Vec::new();
        bursar_engine::batch::decode_body(entry.body, &mut Vec::new(), &mut ends).map_err(|e| e.to_string())?;
        entries_with_ends += usize::from(!ends.is_empty());
        Ok(())
    })
    .expect("clean log");
    assert!(entries_with_ends > 0, "no request ended inside an open chain in a shared entry: the test did not exercise joining");
    let (mut node, _) =
        Node::open(FsStorage::open(dir.join("log")).expect("dir"), WalConfig::default(), Limits::default()).expect("reopen");
    assert_eq!(node.status().state_digest, live.state_digest, "replay of the log agrees with the live server");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Opens `n` streams on `connection` that each send a full request's header and a little of its
/// body, then stall; returns them so they stay open.
async fn stalled_streams(connection: &quinn::Connection, n: usize, first_id: u128) -> Vec<(quinn::SendStream, quinn::RecvStream)> {
    let mut frame = Vec::new();
    bursar_net::protocol::encode_submit(1, &full_batch(first_id), &mut frame);
    let mut streams = Vec::new();
    for _ in 0..n {
        let (mut send, recv) = connection.open_bi().await.expect("stream");
        send.write_all(&frame[..4096]).await.expect("header and a little body");
        streams.push((send, recv));
    }
    streams
}

/// Slowloris: one connection's 64 streams send full-size headers and stall. Before per-connection
/// shares they took every admission permit and a good gateway waited out their deadline; now
/// that connection holds at most a quarter, and the good gateway's full requests all go through
/// while every stalled stream is still within its (here very long) deadline. A connection that
/// keeps stalling is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_connection_cannot_starve_another_gateway() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-slowloris-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = ServerLimits { request_read_base: std::time::Duration::from_secs(600), ..ServerLimits::default() };
    let running = start_limits(&dir, SequencerConfig::default(), limits);
    let good = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    good.submit(setup_commands()).await.expect("setup");
    let attacker = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let stalled = stalled_streams(attacker.connection(), 64, 80_000_000).await;
    for k in 0..20u128 {
        let served = tokio::time::timeout(std::time::Duration::from_secs(60), good.submit(full_batch(81_000_000 + k * 10_000)))
            .await
            .expect("the good gateway is not held behind the stalled streams")
            .expect("submit");
        assert!(served.iter().all(|r| *r == ResultCode::Ok));
    }
    drop((stalled, attacker, good));
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");

    let limits = ServerLimits { request_read_base: std::time::Duration::from_millis(100), ..ServerLimits::default() };
    let running = start_limits(&dir, SequencerConfig::default(), limits);
    let attacker = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let _stalled = stalled_streams(attacker.connection(), 8, 90_000_000).await;
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(60), attacker.connection().closed()).await.expect("closed by the server");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(close.error_code, server::CLOSE_STALLING.into()),
        other => panic!("closed for another reason: {other}"),
    }
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// At the connection limit a new gateway is not refused while a connection sits idle: the one
/// idle for longest is closed (code 3, said in words by the client) to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_an_idle_connection_makes_room_for_a_new_gateway() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-evict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = ServerLimits { connections_max: 3, idle_evict_after: std::time::Duration::ZERO, ..ServerLimits::default() };
    let running = start_limits(&dir, SequencerConfig::default(), limits);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect"));
    }
    let newcomer = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("let in");
    assert!(newcomer.submit(setup_commands()).await.expect("served").iter().all(|r| *r == ResultCode::Ok));
    // The close frame reaches the evicted client on its own; wait for it, bounded.
    for _ in 0..500 {
        if idle.iter().any(|c| c.connection().close_reason().is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut evicted = 0;
    for client in &idle {
        if let Some(reason) = client.connection().close_reason() {
            let said = bursar_net::client::describe_close(&reason);
            assert!(said.contains("idle") && said.contains("connection limit"), "{said}");
            evicted += 1;
        }
    }
    assert_eq!(evicted, 1, "exactly one idle connection made room");
    drop((idle, newcomer));
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A connection that keeps sending malformed frames is closed (code 4) once it has had its
/// typed answers for `malformed_per_connection_max` of them; other gateways are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flooding_malformed_frames_is_closed_and_others_are_served() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-malformed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let good = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    good.submit(setup_commands()).await.expect("setup");
    let other_host: std::net::SocketAddr = "127.0.0.2:0".parse().expect("literal");
    let flooder = Client::connect_from(other_host, running.addr, running.cert.clone(), "localhost", None).await.expect("connect");
    let max = ServerLimits::default().malformed_per_connection_max as usize;
    for _ in 0..max {
        assert_eq!(
            raw_error(flooder.connection(), b"NOT A BURSAR FRAME AT ALL, JUST BYTES").await,
            Some(ProtocolError::BadMagic),
            "typed answers first"
        );
    }
    // One more: answered or not, the connection is closed after it.
    let one_more = async {
        let (mut send, mut recv) = flooder.connection().open_bi().await.ok()?;
        send.write_all(b"NOT A BURSAR FRAME AT ALL, JUST BYTES").await.ok()?;
        send.finish().ok()?;
        recv.read_to_end(1 << 16).await.ok()
    };
    let _ = one_more.await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), flooder.connection().closed()).await.expect("closed");
    assert_eq!(bursar_net::client::describe_close(&closed), "closed by the server: too many malformed requests on this connection");
    let served = good.submit(vec![unit_transfer(40_000_000, 1, 2)]).await.expect("the other gateway is served");
    assert_eq!(served, vec![ResultCode::Ok]);
    // The flooder's address cools off: refused before the handshake, in words; others are not.
    let again = Client::connect_from(other_host, running.addr, running.cert.clone(), "localhost", None).await;
    let Err(refused) = again else { panic!("the flooder's address was let in again at once") };
    assert!(refused.to_string().contains("cooling off"), "{refused}");
    let newcomer = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("another address is let in");
    assert_eq!(newcomer.submit(vec![unit_transfer(40_000_001, 1, 2)]).await.expect("served"), vec![ResultCode::Ok]);
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A declined transfer's id stays declined over the wire and across a restart (by replay and by
/// snapshot): a retry after the account was funded answers `id_already_failed`, and the outcome
/// lookup says which code decided it; an unknown id is unknown and a stored one stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_id_stays_declined_across_a_restart_and_its_outcome_says_why() {
    use bursar_net::protocol::OutcomeStatus;
    let dir = std::env::temp_dir().join(format!("bursar-e2e-decided-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = SequencerConfig { snapshot_every_entries: 0, snapshot_on_stop: false, ..SequencerConfig::default() };
    let running = start_with(&dir, config);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let mut setup = setup_commands();
    setup.push(Command::CreateAccount(bursar_engine::Account {
        id: 500,
        ledger: 1,
        code: 1,
        flags: bursar_engine::account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ..Default::default()
    }));
    assert!(client.submit(setup).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let spend = |id: u128| {
        Command::Transfer(Transfer {
            id,
            debit_account_id: 500,
            credit_account_id: 1,
            amount: 10,
            ledger: 1,
            code: 1,
            ..Default::default()
        })
    };
    let fund = Command::Transfer(Transfer {
        id: 2,
        debit_account_id: 1,
        credit_account_id: 500,
        amount: 100,
        ledger: 1,
        code: 1,
        ..Default::default()
    });
    assert_eq!(client.submit(vec![spend(1)]).await.expect("submit"), vec![ResultCode::ExceedsCredits]);
    assert_eq!(client.submit(vec![fund]).await.expect("submit"), vec![ResultCode::Ok]);
    assert_eq!(client.submit(vec![spend(1)]).await.expect("submit"), vec![ResultCode::IdAlreadyFailed]);
    drop(client);
    drop(stop(running).await);
    // Replayed from the log; replayed again and a snapshot written on stop; restored from it.
    for snapshot_on_stop in [false, true, false] {
        let running = start_with(&dir, SequencerConfig { snapshot_on_stop, ..config });
        let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
        assert_eq!(client.submit(vec![spend(1)]).await.expect("submit"), vec![ResultCode::IdAlreadyFailed]);
        let outcomes = client.lookup_outcomes(vec![1, 2, 3]).await.expect("outcomes");
        let seen: Vec<_> = outcomes.iter().map(|o| (o.id, o.status, o.code)).collect();
        assert_eq!(
            seen,
            vec![
                (1, OutcomeStatus::Failed, ResultCode::ExceedsCredits),
                (2, OutcomeStatus::Stored, ResultCode::Ok),
                (3, OutcomeStatus::Unknown, ResultCode::Ok)
            ]
        );
        assert!(outcomes[0].timestamp > 0 && outcomes[0].timestamp < outcomes[1].timestamp, "declined before it was funded");
        drop(client);
        drop(stop(running).await);
    }
    assert!(bursar_wal::list_snapshots(&FsStorage::open_read_only(dir.join("log")).expect("dir")).expect("list").len() == 1);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// An overdraft line set over the wire is in force at once, is what lookup account limits
/// returns, and survives a restart from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_set_over_the_wire_are_in_force_and_survive_a_restart() {
    use bursar_engine::{limit_flags, AccountLimits};
    let dir = std::env::temp_dir().join(format!("bursar-e2e-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    assert!(client.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let overdraft = AccountLimits { account_id: 1, debit_limit: 50, flags: limit_flags::DEBIT_LIMIT, ..Default::default() };
    assert_eq!(client.submit(vec![Command::SetLimits(overdraft)]).await.expect("submit"), vec![ResultCode::Ok]);
    let spend = |id: u128, amount: u128| {
        Command::Transfer(Transfer { id, debit_account_id: 1, credit_account_id: 2, amount, ledger: 1, code: 1, ..Default::default() })
    };
    assert_eq!(client.submit(vec![spend(1, 50), spend(2, 1)]).await.expect("submit"), vec![ResultCode::Ok, ResultCode::ExceedsCredits]);
    let found = client.lookup_limits(vec![1, 3, 999]).await.expect("limits");
    assert_eq!(found[0].map(|l| (l.limits.debit_limit, l.limits.credit_limit)), Some((Some(50), None)));
    assert_eq!(found[1].map(|l| l.limits.debit_limit), Some(None), "no flag, no limit");
    assert!(found[2].is_none(), "unknown account");
    drop(client);
    drop(stop(running).await);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    let found = client.lookup_limits(vec![1]).await.expect("limits");
    assert_eq!(found[0].map(|l| l.limits.debit_limit), Some(Some(50)));
    assert!(found[0].is_some_and(|l| l.limits.changed_at > 0));
    drop(client);
    drop(stop(running).await);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A refund sent over the wire moves money back, and lookup lineage traces it from both ends,
/// before and after a restart (the links are rebuilt from the log and snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_over_the_wire_is_traced_from_both_ends_and_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("bursar-e2e-lineage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    assert!(client.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let purchase = Transfer { id: 70, debit_account_id: 1, credit_account_id: 2, amount: 100, ledger: 1, code: 1, ..Default::default() };
    let refund = Transfer { id: 71, pending_id: 70, amount: 40, code: 1, ..Default::default() };
    let more = Transfer { id: 72, pending_id: 70, amount: 61, code: 1, ..Default::default() };
    let results = client.submit(vec![Command::Transfer(purchase), Command::Reverse(refund), Command::Reverse(more)]).await.expect("submit");
    assert_eq!(results, vec![ResultCode::Ok, ResultCode::Ok, ResultCode::ExceedsReversibleAmount]);
    check_refund_lineage(&client).await;
    drop(client);
    drop(stop(running).await);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    check_refund_lineage(&client).await;
    drop(client);
    drop(stop(running).await);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

async fn check_refund_lineage(client: &Client) {
    let original = client.lookup_lineage(70).await.expect("lineage").expect("stored");
    assert_eq!(original.reversals.iter().map(|t| t.id).collect::<Vec<_>>(), vec![71]);
    assert_eq!((original.reversed, original.reversible, original.reversals_total), (40, 60, 1));
    let reversal = client.lookup_lineage(71).await.expect("lineage").expect("stored");
    assert_eq!(reversal.reverses.map(|t| (t.id, t.debit_account_id)), Some((70, 1)));
    assert_eq!((reversal.transfer.debit_account_id, reversal.transfer.credit_account_id), (2, 1));
    assert!(client.lookup_lineage(999).await.expect("lineage").is_none());
}

/// Channel lists and a velocity rule set over the wire refuse what they should, lookup account
/// policy reports them with their usage, and both survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_over_the_wire_is_in_force_and_survives_a_restart() {
    use bursar_engine::{channel_flags, velocity_flags as vf, velocity_window, ChannelPolicy, VelocityRule};
    let dir = std::env::temp_dir().join(format!("bursar-e2e-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    assert!(client.submit(setup_commands()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    let mut channels = ChannelPolicy { account_id: 1, flags: channel_flags::DEBITS_ALLOW, ..Default::default() };
    channels.debit_codes[0] = 4;
    let rule = VelocityRule {
        account_id: 1,
        flags: vf::DEBITS | vf::COUNT,
        window: velocity_window::ROLLING,
        window_seconds: 3_600,
        count_max: 1,
        ..Default::default()
    };
    let set = client.submit(vec![Command::SetChannels(channels), Command::SetVelocity(rule)]).await.expect("submit");
    assert_eq!(set, vec![ResultCode::Ok, ResultCode::Ok]);
    let spend = |id: u128, code: u16| {
        Command::Transfer(Transfer { id, debit_account_id: 1, credit_account_id: 2, amount: 1, ledger: 1, code, ..Default::default() })
    };
    let results = client.submit(vec![spend(80, 1), spend(81, 4), spend(82, 4)]).await.expect("submit");
    assert_eq!(results, vec![ResultCode::DebitCodeNotAllowed, ResultCode::Ok, ResultCode::ExceedsDebitVelocityCount]);
    check_policy(&client).await;
    drop(client);
    drop(stop(running).await);
    let running = start(&dir);
    let client = Client::connect(running.addr, running.cert.clone(), "localhost").await.expect("connect");
    check_policy(&client).await;
    assert!(client.lookup_policy(999).await.expect("lookup").is_none(), "an unknown account");
    drop(client);
    drop(stop(running).await);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

async fn check_policy(client: &Client) {
    let policy = client.lookup_policy(1).await.expect("lookup").expect("account");
    assert_eq!(policy.channels.debit_codes[0], 4);
    assert_eq!((policy.rules.len(), policy.rules[0].count), (1, 1));
    assert!(policy.rules[0].window_end - policy.rules[0].window_start >= 3_600 * 1_000_000_000);
}
