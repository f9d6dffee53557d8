//! Issue 4's two start-up figures: the sequencer stall a snapshot causes at 1 M accounts (the
//! checkpoint, the sync and the copy of the state on the sequencer thread; the writer thread then
//! encodes, writes and syncs it, timed separately), and the time from start to serving after
//! 10 M logged transfers, with and without a snapshot.
//! `cargo run --release -p bursar-bench --example recovery_probe -- [transfers]`.

use std::time::Instant;

use bursar_bench::{setup_batches, transfer_batch, Choice, Rng};
use bursar_engine::{Command, Limits, BATCH_COMMANDS_MAX};
use bursar_net::Node;
use bursar_wal::{FsStorage, WalConfig};

fn open(dir: &std::path::Path) -> (Node<FsStorage>, bursar_wal::RecoveryReport, f64) {
    let start = Instant::now();
    let (node, report) = Node::open(FsStorage::open(dir).expect("dir"), WalConfig::default(), Limits::default()).expect("open");
    (node, report, start.elapsed().as_secs_f64())
}

/// A periodic snapshot as the sequencer takes it: the stall (until `snapshot_begin` returns) and
/// the background write after it, in seconds.
fn snapshot(node: &mut Node<FsStorage>) -> (f64, f64) {
    let start = Instant::now();
    node.snapshot_begin().expect("snapshot");
    let stall = start.elapsed().as_secs_f64();
    node.snapshot_end().expect("one was started").expect("written");
    (stall, start.elapsed().as_secs_f64() - stall)
}

fn main() {
    let transfers: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let dir = std::path::PathBuf::from("target/bench-data/recovery-probe");
    let _ = std::fs::remove_dir_all(&dir);
    let (mut node, _, _) = open(&dir);
    // As the sequencer does when periodic snapshots are on.
    node.keep_snapshot_copy_current(true);
    let mut now = 1u64;
    let mut results = Vec::new();
    let mut submit = |node: &mut Node<FsStorage>, batch: &[Command]| {
        now += 1_000_000;
        results.clear();
        node.submit(now, batch, &mut results).expect("submit");
    };
    for batch in setup_batches(1_000_000) {
        submit(&mut node, &batch);
    }
    let (stall, written) = snapshot(&mut node);
    println!("snapshot at 1 000 000 accounts: the sequencer stalls {:.0} ms; the writer thread finishes {written:.2} s later", stall * 1e3);

    let mut rng = Rng(3);
    let mut id = 1u128 << 64;
    let mut logged = 0u64;
    while logged < transfers {
        let batch = transfer_batch(&mut rng, 10_000, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
        id += BATCH_COMMANDS_MAX as u128;
        submit(&mut node, &batch);
        logged += BATCH_COMMANDS_MAX as u64;
    }
    let digest = node.engine().digest();
    drop(node);
    // Keep only the small accounts snapshot: start = that snapshot + replay of every transfer.
    let (node, report, secs) = open(&dir);
    assert_eq!(node.engine().digest(), digest);
    println!(
        "start to serving after {logged} logged transfers (snapshot before them, all replayed): {secs:.2} s ({} entries replayed)",
        report.entries_replayed
    );
    let mut node = node;
    node.keep_snapshot_copy_current(true);
    let (stall, written) = snapshot(&mut node);
    println!(
        "a snapshot right after that start, before any batch caught the copy up, 1 M accounts + {logged} transfers: the sequencer stalls {:.0} ms (all copied into fresh memory); the writer thread finishes {written:.2} s later",
        stall * 1e3
    );
    for _ in 0..16 {
        let batch = transfer_batch(&mut rng, 10_000, &Choice::Uniform, id, BATCH_COMMANDS_MAX);
        id += BATCH_COMMANDS_MAX as u128;
        submit(&mut node, &batch);
    }
    let (stall, written) = snapshot(&mut node);
    println!(
        "the next snapshot, 16 batches later: the sequencer stalls {:.0} ms (the accounts; the transfers caught up batch by batch); the writer thread finishes {written:.2} s later",
        stall * 1e3
    );
    let digest = node.engine().digest();
    drop(node);
    let (node, report, secs) = open(&dir);
    assert_eq!(node.engine().digest(), digest);
    println!("start to serving from that snapshot: {secs:.2} s ({} entries replayed)", report.entries_replayed);
    let _ = std::fs::remove_dir_all(&dir);
}
