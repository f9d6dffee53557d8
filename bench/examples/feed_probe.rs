//! One change-feed consumer beside a load, counting what it receives:
//! `cargo run --release -p bursar-bench --example feed_probe -- ADDR CERT [SECONDS] [TYPES] [stall]`.
//! It subscribes from the next durable entry (every event type, `transfer` for transfers only,
//! or `account` for one account's events) and prints the events and megabytes it received each second, then the totals and the
//! last position; with `stall` it subscribes and never reads (a consumer that stopped), for
//! measuring that it holds back nobody.

use std::time::{Duration, Instant};

use bursar_engine::FeedEventType;
use bursar_net::client::Client;
use bursar_wire::feed::Subscription;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR").parse().expect("a socket address");
    let cert = std::fs::read(args.next().expect("CERT")).expect("the server's certificate");
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let (types, accounts) = match args.next().as_deref() {
        Some("transfer") => (FeedEventType::Transfer.bit(), Vec::new()),
        // One account of `bursar bench`'s (ids from 1): what a gateway following its own
        // customers' accounts would ask for.
        Some("account") => (0, vec![1u128]),
        _ => (0, Vec::new()),
    };
    let stall = args.next().is_some_and(|a| a == "stall");
    let client = Client::connect(addr, cert.into(), "localhost").await.expect("connect");
    let mut stream = client.subscribe(Subscription { types, accounts, ..Subscription::default() }).await.expect("subscribe");
    let end = Instant::now() + Duration::from_secs(seconds);
    if stall {
        tokio::time::sleep_until(end.into()).await;
        println!("stalled for {seconds} s without reading");
        return;
    }
    let (mut total, mut second, mut last) = (0u64, 0u64, (0u64, 0u32));
    let started = Instant::now();
    let mut tick = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await else { continue };
        let Some(Ok(event)) = next else { break };
        if !event.is_progress() {
            total += 1;
            second += 1;
            last = (event.seq, event.event.index);
        }
        if Instant::now() >= tick {
            println!("{second} events/s ({:.1} MB/s)", second as f64 * 384.0 / 1e6);
            second = 0;
            tick += Duration::from_secs(1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("total: {total} events in {elapsed:.1} s ({:.0} events/s), last position {}.{}", total as f64 / elapsed, last.0, last.1);
}
