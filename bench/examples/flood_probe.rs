//! A good gateway beside a flooding one (`bursar_bench::flood`): the good gateway's throughput
//! and request latency with no attack, then under each attack from another address, against an
//! embedded server on loopback. Prints one row per phase with the share of the unloaded
//! throughput kept. Issue 17's goal: at least 50% and p99 under 50 ms in every phase.
//!
//! `cargo run --release -p bursar-bench --example flood_probe -- [SECONDS_PER_PHASE]`

use std::time::Duration;

use bursar_bench::flood::{self, Attack};
use bursar_bench::harness::Embedded;
use bursar_engine::BATCH_COMMANDS_MAX;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map(|s| s.parse().expect("seconds per phase")).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("bursar-flood-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Room for every phase's transfers, so no table grows (and stalls) mid-run.
    let server = Embedded::start(&dir, flood::ACCOUNTS as u64 + 1, seconds * 5 * 2_500_000).await.expect("server");
    let good = flood::connect(&server.target).await;
    flood::set_up(&good).await;
    let mut next_id = 1u128 << 32;
    let length = Duration::from_secs(seconds);
    let mut unloaded = None;
    println!(
        "{:<15} {:>12} {:>7} {:>9} {:>9} {:>9} {:>14} {:>9}",
        "attack", "transfers/s", "kept", "p50 ms", "p99 ms", "max ms", "attack streams", "refused"
    );
    let phases = [Attack::None].into_iter().chain(Attack::ALL).chain([Attack::None]);
    for attack in phases {
        let (seen, attacker) = flood::phase(&server.target, &good, attack, length, BATCH_COMMANDS_MAX, &mut next_id).await;
        let base = *unloaded.get_or_insert(seen);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<15} {:>12.0} {:>6.0}% {:>9.2} {:>9.2} {:>9.2} {:>14} {:>9}",
            format!("{attack:?}"),
            seen.rate,
            100.0 * seen.rate / base.rate,
            ms(seen.p50),
            ms(seen.p99),
            ms(seen.max),
            attacker.streams,
            attacker.refused
        );
    }
    drop(good);
    server.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
