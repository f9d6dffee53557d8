//! Start-up probe: how long `open` takes on a log whose last segment is mostly empty, with a
//! cold page cache (run as root: it drops the caches) and a warm one.
//!
//! Run: `cargo run --release -p bursar-bench --example startup_probe [-- ENTRIES | DIR]`: a new
//! log of ENTRIES 128-byte entries (default 1 000), or an existing log directory (left as it is).

use std::time::Instant;

use bursar_wal::{open, FsStorage, WalConfig};

fn main() {
    let arg = std::env::args().nth(1);
    let given = arg.as_ref().filter(|a| a.parse::<u64>().is_err()).map(std::path::PathBuf::from);
    let entries: u64 = arg.and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = given.clone().unwrap_or_else(|| std::env::temp_dir().join("bursar-startup-probe"));
    if given.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (mut wal, _) =
            open(FsStorage::open(&dir).expect("dir"), WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
        for i in 0..entries {
            wal.append(i, &[7u8; 128]).expect("append");
            if i % 100 == 99 {
                wal.sync().expect("sync");
            }
        }
        wal.sync().expect("sync");
    }
    for round in 0..3 {
        let _ = std::process::Command::new("sync").status();
        let dropped = std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
        let start = Instant::now();
        let (wal, report) =
            open(FsStorage::open(&dir).expect("dir"), WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
        let cold = start.elapsed();
        drop(wal);
        let start = Instant::now();
        let (wal, _) = open(FsStorage::open(&dir).expect("dir"), WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
        let warm = start.elapsed();
        drop(wal);
        println!(
            "round {round}: {} entries; open {:.1} ms {}, {:.1} ms warm",
            report.last_seq,
            cold.as_secs_f64() * 1e3,
            if dropped { "cold (caches dropped)" } else { "(could not drop caches)" },
            warm.as_secs_f64() * 1e3
        );
    }
    if given.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
