//! Compares durable append into a zero-filled, an fallocate'd and a sparse (set_len) file:
//! one pass front to back, `records` 128-byte records per pwrite + fdatasync.
//! `cargo run --release -p bursar-bench --example prealloc_probe -- 8189`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Instant;

const FILE_BYTES: u64 = 512 << 20;

fn main() {
    let records: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(8189);
    let dir = std::path::PathBuf::from("target/bench-data/prealloc");
    std::fs::create_dir_all(&dir).expect("dir");
    for kind in ["zeroed", "fallocated", "sparse"] {
        let path = dir.join(kind);
        let _ = std::fs::remove_file(&path);
        let started = Instant::now();
        match kind {
            "zeroed" => {
                let mut f = File::create(&path).expect("create");
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..FILE_BYTES >> 20 {
                    f.write_all(&zeros).expect("zero");
                }
                f.sync_all().expect("sync");
            }
            "fallocated" => {
                let ok =
                    std::process::Command::new("fallocate").args(["-l", &FILE_BYTES.to_string()]).arg(&path).status().expect("fallocate");
                assert!(ok.success());
                File::open(&path).expect("open").sync_all().expect("sync");
            }
            _ => {
                let f = File::create(&path).expect("create");
                f.set_len(FILE_BYTES).expect("set_len");
                f.sync_all().expect("sync");
            }
        }
        let prepare = started.elapsed();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        let batch = vec![7u8; records * 128];
        let mut times = Vec::new();
        let start = Instant::now();
        let mut at = 0u64;
        while at + batch.len() as u64 <= FILE_BYTES {
            let t = Instant::now();
            file.write_all_at(&batch, at).expect("pwrite");
            file.sync_data().expect("fdatasync");
            times.push(t.elapsed().as_micros() as u64);
            at += batch.len() as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        times.sort();
        println!(
            "{kind:>10}: prepare {:>6.0} ms; {:.2} M records/s, p50 {} µs, p99 {} µs",
            prepare.as_secs_f64() * 1e3,
            (times.len() * records) as f64 / secs / 1e6,
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
        let _ = std::fs::remove_file(&path);
    }
}
