//! End-to-end benchmark: durable posted transfers over QUIC on loopback (10 000 accounts, batches
//! of 8 189, fsync per log entry), client and server on this machine, with per-request latency;
//! beside the same transfers submitted to the node in-process (no network) in the same run.
//!
//! Run: `cargo bench -p bursar-bench --bench server` (`-- --transfers 200000 --clients 4`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bursar_bench::{setup_batches, transfer_batch, Choice, Rng};
use bursar_engine::{Command, Limits, ResultCode, BATCH_COMMANDS_MAX};
use bursar_net::assembly::{Running, ServerConfig};
use bursar_net::client::Client;
use bursar_net::{tls, Node};
use bursar_wal::{FsStorage, WalConfig};
use hdrhistogram::Histogram;

const ACCOUNTS: u64 = 10_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn setup() -> Vec<Vec<Command>> {
    setup_batches(ACCOUNTS)
}

fn workload(transfers: u64, first_id: u128) -> Vec<Vec<Command>> {
    let mut rng = Rng(7);
    let batches = transfers.div_ceil(BATCH_COMMANDS_MAX as u64);
    (0..batches)
        .map(|b| {
            transfer_batch(&mut rng, ACCOUNTS, &Choice::Uniform, first_id + b as u128 * BATCH_COMMANDS_MAX as u128, BATCH_COMMANDS_MAX)
        })
        .collect()
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from("target/bench-data").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn in_process(batches: &[Vec<Command>]) -> f64 {
    let dir = fresh_dir("node");
    let (mut node, _) = Node::open(FsStorage::open(&dir).expect("dir"), WalConfig::default(), Limits::default()).expect("node");
    let mut results = Vec::new();
    let mut now = 1u64;
    for batch in setup() {
        now += 1_000_000;
        node.submit(now, &batch, &mut results).expect("setup");
    }
    let start = Instant::now();
    for batch in batches {
        now += 1_000_000;
        results.clear();
        node.submit(now, batch, &mut results).expect("batch");
        assert!(results.iter().all(|r| *r == ResultCode::Ok));
    }
    (batches.len() * BATCH_COMMANDS_MAX) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let transfers = arg("--transfers", 1_000_000);
    let clients = arg("--clients", 4) as usize;
    let batches = workload(transfers, 1 << 64);
    let baseline = in_process(&batches);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = fresh_dir("server");
        let (node, _) = Node::open(FsStorage::open(dir.join("log")).expect("dir"), WalConfig::default(), Limits::default()).expect("node");
        let identity = tls::load_or_generate(&dir).expect("certificate");
        let running = Running::start(node, &identity, ServerConfig::default()).expect("serving");
        let addr = running.addr();
        let admin = Client::connect(addr, identity.cert.clone(), "localhost").await.expect("connect");
        for batch in setup() {
            assert!(admin.submit(batch).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
        }
        let batches = Arc::new(batches);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (batches, cert) = (Arc::clone(&batches), identity.cert.clone());
            tasks.push(tokio::spawn(async move {
                let client = Client::connect(addr, cert, "localhost").await.expect("connect");
                let mut latencies = Histogram::<u64>::new(3).expect("histogram");
                for batch in batches.iter().skip(c).step_by(clients) {
                    let sent = Instant::now();
                    let results = client.submit(batch.clone()).await.expect("submit");
                    latencies.record(sent.elapsed().as_micros() as u64).expect("record");
                    assert!(results.iter().all(|r| *r == ResultCode::Ok), "{:?}", results.iter().find(|r| **r != ResultCode::Ok));
                }
                latencies
            }));
        }
        let mut latencies = Histogram::<u64>::new(3).expect("histogram");
        for task in tasks {
            latencies.add(task.await.expect("client")).expect("merge");
        }
        let elapsed = start.elapsed();
        let rate = (batches.len() * BATCH_COMMANDS_MAX) as f64 / elapsed.as_secs_f64();
        println!("end to end over QUIC on loopback: {} transfers in {} requests of {BATCH_COMMANDS_MAX}, {clients} clients, 10 000 accounts, fsync per log entry", batches.len() * BATCH_COMMANDS_MAX, batches.len());
        println!("  throughput        {:.2} M transfers/s   (in-process node, same transfers, same run: {:.2} M/s)", rate / 1e6, baseline / 1e6);
        let ms = |us: u64| Duration::from_micros(us).as_secs_f64() * 1e3;
        println!(
            "  request latency   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(latencies.value_at_quantile(0.5)),
            ms(latencies.value_at_quantile(0.9)),
            ms(latencies.value_at_quantile(0.99)),
            ms(latencies.max())
        );
        drop(admin);
        running.stop().await.expect("sequencer");
    });
}
