//! How long a woken thread waits to run when its waker goes on computing: the reason the WAL
//! overlaps hashing with the device through io_uring, not a helper thread (docs/wal-format.md,
//! "Write path"). `cargo run --release -p bursar-bench --example wake_probe`.
//!
//! The main thread wakes a helper through a channel, then either blocks at once or first hashes
//! 1 MiB with BLAKE3 (about 180 µs here). On this project's VM the helper is queued on the
//! waker's vCPU and starts only when the waker blocks, so with the hash its wake-up takes as long
//! as the hash.

use std::time::{Duration, Instant};

const ROUNDS: usize = 2000;

fn main() {
    let (wake, woken) = crossbeam_channel::bounded::<Instant>(1);
    let (reply, replies) = crossbeam_channel::bounded::<Duration>(1);
    std::thread::spawn(move || {
        for sent in woken {
            let waited = sent.elapsed();
            std::thread::sleep(Duration::from_micros(300)); // a device's share of the work
            if reply.send(waited).is_err() {
                return;
            }
        }
    });
    let buffer = vec![7u8; 1 << 20];
    for hash_meanwhile in [false, true] {
        let mut waits: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                wake.send(Instant::now()).expect("helper alive");
                if hash_meanwhile {
                    std::hint::black_box(blake3::hash(&buffer));
                }
                replies.recv().expect("helper alive")
            })
            .collect();
        waits.sort();
        println!(
            "waker {}: the woken thread started after p50 {:?}, p99 {:?}",
            if hash_meanwhile { "hashes 1 MiB first" } else { "blocks at once" },
            waits[ROUNDS / 2],
            waits[ROUNDS * 99 / 100]
        );
    }
}
