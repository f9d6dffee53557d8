//! Splits WAL append+sync time into encode, write, sync and rotation waits for one batch shape.
//! `cargo run --release -p bursar-bench --example wal_probe -- <records per batch> <segment MiB> <sync|nosync>`.

use std::time::{Duration, Instant};

use bursar_wal::{open, FsStorage, SyncPolicy, WalConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8189);
    let segment_mib: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(256);
    let sync = if args.get(3).map(String::as_str) == Some("nosync") { SyncPolicy::UnsafeNoSync } else { SyncPolicy::EveryBatch };
    let dir = std::path::PathBuf::from("target/bench-data/probe");
    let _ = std::fs::remove_dir_all(&dir);
    let config = WalConfig { segment_size_bytes: segment_mib << 20, sync, ..WalConfig::default() };
    let (mut wal, _) = open(FsStorage::open(&dir).expect("dir"), config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
    let batch = vec![7u8; records * 128];
    let mut times: Vec<Duration> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        wal.append_with(0, |b| b.extend_from_slice(&batch)).expect("append");
        wal.sync().expect("sync");
        times.push(t.elapsed());
    }
    let total = start.elapsed().as_secs_f64();
    times.sort();
    let n = times.len();
    let slow: Duration = times.iter().filter(|t| **t > times[n / 2] * 4).sum();
    println!(
        "{records} records/batch, {segment_mib} MiB segments, {sync:?}: {:.2} M records/s; p50 {:?} p99 {:?} max {:?}; batches slower than 4x p50 take {:.0}% of the time",
        (n * records) as f64 / total / 1e6,
        times[n / 2],
        times[n * 99 / 100],
        times[n - 1],
        100.0 * slow.as_secs_f64() / total
    );
    let _ = std::fs::remove_dir_all(&dir);
}
