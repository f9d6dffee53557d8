//! Old transfers read back from a running server:
//! `cargo run --release -p bursar-bench --example history_read_probe -- ADDR CERT BASE TRANSFERS [SECONDS]`.
//! Run it after `bursar bench --addr ...` stored TRANSFERS transfers from one client, with the
//! id base it printed (accounts BASE + 1 on, transfers BASE + 2^62 + 1 on). It looks up
//! uniformly random ones, one per request and then 1 000 per request, for SECONDS each (each
//! found and checked; 0 skips them, so the histories start from a cold cache), then reads whole
//! account histories (accounts BASE + 1 to BASE + 40, oldest first, up to the query limit of
//! 8 189 each), and prints lookups per second and latencies. Against a server with its history
//! on disk (the default), all but the newest two chunks of 32 768 transfers are read from disk
//! (from the page cache unless it was dropped first: `echo 3 > /proc/sys/vm/drop_caches`).

use std::time::{Duration, Instant};

use bursar_engine::{filter_flags, AccountFilter};
use bursar_net::client::Client;

/// `bursar bench`'s first client's first transfer id, above its id base.
const FIRST_ID: u128 = (1 << 62) + 1;

/// xorshift64*: reproducible draws without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The median and 99th percentile of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// Random lookups of `per_request` ids for `seconds`: lookups per second, p50 and p99 per request.
async fn lookups(client: &Client, base: u128, transfers: u64, per_request: usize, seconds: u64, rng: &mut Rng) -> (f64, f64, f64) {
    let (started, mut found, mut samples) = (Instant::now(), 0u64, Vec::new());
    while started.elapsed() < Duration::from_secs(seconds) {
        let ids: Vec<u128> = (0..per_request).map(|_| base + FIRST_ID + u128::from(rng.below(transfers))).collect();
        let sent = Instant::now();
        let answers = client.lookup_transfers(ids.clone()).await.expect("lookup");
        samples.push(sent.elapsed());
        for (id, answer) in ids.iter().zip(answers) {
            assert_eq!(answer.map(|t| t.id), Some(*id), "transfer {id} is stored");
        }
        found += per_request as u64;
    }
    let (p50, p99) = percentiles(&mut samples);
    (found as f64 / started.elapsed().as_secs_f64(), p50, p99)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR").parse().expect("a socket address");
    let cert = std::fs::read(args.next().expect("CERT")).expect("the server's certificate");
    let base: u128 = args.next().expect("BASE").parse().expect("the id base `bursar bench` printed");
    let transfers: u64 = args.next().expect("TRANSFERS").parse().expect("a count");
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let client = Client::connect(addr, cert.into(), "localhost").await.expect("connect");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for per_request in [1, 1_000].into_iter().filter(|_| seconds > 0) {
        let (rate, p50, p99) = lookups(&client, base, transfers, per_request, seconds, &mut rng).await;
        println!("random lookups, {per_request} per request: {rate:.0} transfers/s, p50 {p50:.2} ms, p99 {p99:.2} ms per request");
    }
    let (mut samples, mut read) = (Vec::new(), 0usize);
    let started = Instant::now();
    for account_id in (1..=40u128).map(|i| base + i) {
        let filter =
            AccountFilter { account_id, limit: 8_189, flags: filter_flags::DEBITS | filter_flags::CREDITS, ..AccountFilter::default() };
        let sent = Instant::now();
        let history = client.get_account_transfers(filter).await.expect("account transfers");
        samples.push(sent.elapsed());
        assert!(history.windows(2).all(|w| w[0].timestamp < w[1].timestamp), "account {account_id}: oldest first");
        read += history.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut samples);
    println!(
        "account histories: 40 accounts, {} transfers each on average, {:.0} transfers/s, p50 {p50:.1} ms, p99 {p99:.1} ms per account",
        read / 40,
        read as f64 / elapsed
    );
}
