//! WAL benchmark: durable append throughput and sync latency at 1, 100, 1 000 and 8 189
//! 128-byte records per sync, beside a plain pwrite + fdatasync baseline and mmap + msync on
//! the same disk in the same run; the log keeping every segment (the default) and recycling
//! them (retention on), with the disk's own cost of fresh blocks beside it; recovery speed;
//! snapshot write and load at 1 M and 10 M accounts.
//!
//! Run: `cargo bench -p bursar-bench --bench wal` (set BURSAR_BENCH_DIR to choose the disk;
//! `-- --quick` skips the 10 M-account snapshot).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bursar_bench::engine_with_accounts;
use bursar_engine::Engine;
use bursar_wal::{open, FsStorage, Retention, SyncPolicy, Wal, WalConfig};
use hdrhistogram::Histogram;

const RECORD_BYTES: usize = 128;
const FILE_BYTES: u64 = 256 << 20;
const RUN_TIME: Duration = Duration::from_secs(3);

fn bench_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("BURSAR_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/bench-data"));
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// A preallocated, zero-filled, synced file: the same starting point the WAL's segments have.
fn zeroed_file(path: &Path) -> File {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).expect("file");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..FILE_BYTES >> 20 {
        file.write_all(&zeros).expect("zero fill");
    }
    file.sync_all().expect("sync");
    file
}

struct Row {
    records_per_sync: usize,
    records_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Lets the disk come to rest before a timed run: everything written so far flushed (`sync`),
/// then a pause. This virtual disk goes on writing back what earlier rows wrote long after their
/// syncs returned, and a row timed meanwhile shares the disk with it (cold recovery took twice
/// as long right after the write rows). Every row, the baselines included, starts this way.
fn settle() {
    let _ = std::process::Command::new("sync").status(); // where there is no `sync`, the pause alone
    std::thread::sleep(Duration::from_secs(1));
}

/// Runs `step` (one durable batch) repeatedly for [`RUN_TIME`]; times each call.
fn measure(records_per_sync: usize, mut step: impl FnMut(u64)) -> Row {
    settle();
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < RUN_TIME {
        let t = Instant::now();
        step(batches);
        histogram.record(t.elapsed().as_micros().max(1) as u64).expect("record");
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Row {
        records_per_sync,
        records_per_s: (batches * records_per_sync as u64) as f64 / secs,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
    }
}

fn baseline_pwrite(records: usize) -> Row {
    let dir = bench_dir("baseline");
    let file = zeroed_file(&dir.join("data"));
    let batch = vec![7u8; records * RECORD_BYTES];
    let mut step = baseline_step(&file);
    measure(records, |_| {
        step(&batch);
    })
}

/// pwrite + fdatasync appending to fresh files (sparse, 256 MiB each, a new one when full): the
/// best a log that keeps every segment can do on this disk, whose fresh blocks cost far more to
/// write than blocks written before (docs/wal-format.md, "Retention and recycling").
fn baseline_fresh(records: usize) -> Row {
    let dir = bench_dir("fresh");
    let batch = vec![7u8; records * RECORD_BYTES];
    let slots = FILE_BYTES / batch.len() as u64;
    let mut file = None;
    measure(records, |i| {
        if i % slots == 0 {
            let f = File::create(dir.join(format!("data-{}", i / slots))).expect("file");
            f.set_len(FILE_BYTES).expect("size");
            file = Some(f);
        }
        let f = file.as_ref().expect("created above");
        f.write_all_at(&batch, (i % slots) * batch.len() as u64).expect("pwrite");
        f.sync_data().expect("fdatasync");
    })
}

fn baseline_msync(records: usize) -> Row {
    let dir = bench_dir("msync");
    let file = zeroed_file(&dir.join("data"));
    let mut map = bursar_wal::mmap::map_write(&file).expect("map");
    let batch = vec![7u8; records * RECORD_BYTES];
    let slots = FILE_BYTES as usize / batch.len();
    measure(records, |i| {
        let at = (i as usize % slots) * batch.len();
        map[at..at + batch.len()].copy_from_slice(&batch);
        map.flush_range(at, batch.len()).expect("msync");
    })
}

/// The default log (every segment kept, nothing reserved), one entry per record or per batch.
fn wal(records: usize, entry_per_record: bool) -> Row {
    let dir = bench_dir("wal");
    let storage = FsStorage::open(&dir).expect("dir");
    let (mut wal, _) = open(storage, WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
    let record = [7u8; RECORD_BYTES];
    let batch = vec![7u8; records * RECORD_BYTES];
    measure(records, |i| {
        if entry_per_record {
            for _ in 0..records {
                wal.append(i, &record).expect("append");
            }
        } else {
            // The sequencer encodes its batch straight into the log's buffer.
            wal.append_with(i, |buffer| buffer.extend_from_slice(&batch)).expect("append");
        }
        wal.sync().expect("sync");
    })
}

/// Log bytes between the recycling runs' snapshots (a tiny payload each: the log's cost, not
/// the state's, is measured here).
const RECYCLE_SNAPSHOT_EVERY_BYTES: u64 = 64 << 20;

/// One durable batch of a contender in [`interleaved`]: appends `batch` and makes it durable;
/// returns the latency to record (the part of the call until the batch was durable).
type StepFn<'a> = dyn FnMut(&[u8]) -> Duration + 'a;
/// A boxed [`StepFn`].
type Step<'a> = Box<StepFn<'a>>;

/// The baseline as an [`interleaved`] contender: pwrite + fdatasync of the batch into the
/// preallocated, zero-filled `file`, slot after slot, wrapping at its end.
fn baseline_step(file: &File) -> Step<'_> {
    let mut i = 0u64;
    Box::new(move |batch: &[u8]| {
        let t = Instant::now();
        let slots = FILE_BYTES / batch.len() as u64;
        file.write_all_at(batch, (i % slots) * batch.len() as u64).expect("pwrite");
        file.sync_data().expect("fdatasync");
        i += 1;
        t.elapsed()
    })
}

/// A log with retention on, warmed up first (untimed, as the baseline's file is zero-filled
/// untimed): 2 GiB of 1 MiB entries with a snapshot every 64 MiB, so segments are recycled and
/// the log runs in its steady state, reusing the blocks of segments the kept snapshots cover.
/// Each step is one entry and one sync, then the snapshot housekeeping as the server does it: a
/// snapshot written on the storage's background thread, and retention once it is done. The
/// latency returned is the time the batch took to become durable (the sync latency); the
/// housekeeping counts in the throughput, not in that latency.
fn recycling_step() -> Step<'static> {
    let dir = bench_dir("wal-recycle");
    let storage = FsStorage::open(&dir).expect("dir");
    let config = WalConfig { retention: Retention::RecycleBeforeSnapshots, ..WalConfig::default() };
    let (mut wal, _) = open(storage, config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
    let mut since_snapshot = 0u64;
    let mut snapshot_running = false;
    let mut step = move |batch: &[u8]| -> Duration {
        let t = Instant::now();
        wal.append_with(0, |buffer| buffer.extend_from_slice(batch)).expect("append");
        let seq = wal.sync().expect("sync");
        let durable = t.elapsed();
        since_snapshot += batch.len() as u64;
        if snapshot_running && wal.snapshot_write_done() {
            wal.write_snapshot_end().expect("snapshot and retention");
            snapshot_running = false;
        }
        if since_snapshot >= RECYCLE_SNAPSHOT_EVERY_BYTES && !snapshot_running {
            let hash = wal.last_hash();
            wal.write_snapshot_begin(seq, hash, 5, |sink| sink(b"bench")).expect("snapshot");
            snapshot_running = true;
            since_snapshot = 0;
        }
        durable
    };
    let warm = vec![7u8; 8189 * RECORD_BYTES];
    for _ in 0..(2u64 << 30) / warm.len() as u64 {
        step(&warm);
    }
    let names = std::fs::read_dir(&dir).expect("dir").count();
    eprintln!("recycling log warmed up: {names} files in its directory");
    Box::new(step)
}

/// The default log (every segment kept) with log space reserved before it is timed: as many
/// segments prepared (zero-filled) as `records_per_s` would fill in [`RUN_TIME`] with batches of
/// `records`, plus a tenth and one, as `bursar start --reserve-log-mib` does and as the
/// baseline's own file is zero-filled before it is timed. The log then writes blocks written once
/// before, like the baseline. One entry and one sync per step.
fn reserved_step(records: usize, records_per_s: f64) -> Step<'static> {
    let dir = bench_dir("wal-reserved");
    let storage = FsStorage::open(&dir).expect("dir");
    let config = WalConfig::default();
    let (mut wal, _) = open(storage, config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
    let entry_bytes = (records * RECORD_BYTES + 72 + 72) as f64;
    let bytes = records_per_s / records as f64 * RUN_TIME.as_secs_f64() * 1.1 * entry_bytes;
    wal.prepare_ahead((bytes as u64).div_ceil(config.segment_size_bytes) + 1).expect("reserve");
    Box::new(move |batch: &[u8]| {
        let t = Instant::now();
        wal.append_with(0, |buffer| buffer.extend_from_slice(batch)).expect("append");
        wal.sync().expect("sync");
        t.elapsed()
    })
}

/// Rounds of [`interleaved`]: each contender runs `ROUNDS` slices of `RUN_TIME / ROUNDS`.
const ROUNDS: u32 = 6;

/// Measures `contenders` at `records` per sync in alternating slices: [`ROUNDS`] rounds, each
/// giving every contender `RUN_TIME / ROUNDS` in turn, the order rotating by one each round. This
/// virtual disk's speed drifts by tens of percent within a minute (bench/README.md); measured
/// one after the other, a log and its baseline meet it in different phases, and the ratio
/// between them measures the drift as much as the log. Slice by slice, they share its phases.
fn interleaved(records: usize, contenders: &mut [&mut StepFn<'_>]) -> Vec<Row> {
    struct Tally {
        batches: u64,
        secs: f64,
        histogram: Histogram<u64>,
    }
    let batch = vec![7u8; records * RECORD_BYTES];
    let slice = RUN_TIME / ROUNDS;
    let mut tallies: Vec<Tally> =
        contenders.iter().map(|_| Tally { batches: 0, secs: 0.0, histogram: Histogram::new(3).expect("histogram") }).collect();
    settle();
    for round in 0..ROUNDS as usize {
        for k in 0..contenders.len() {
            let who = (round + k) % contenders.len();
            let (step, tally) = (&mut contenders[who], &mut tallies[who]);
            let start = Instant::now();
            while start.elapsed() < slice {
                let latency = step(&batch);
                tally.histogram.record(latency.as_micros().max(1) as u64).expect("record");
                tally.batches += 1;
            }
            tally.secs += start.elapsed().as_secs_f64();
        }
    }
    tallies
        .iter()
        .map(|t| Row {
            records_per_sync: records,
            records_per_s: (t.batches * records as u64) as f64 / t.secs,
            p50_us: t.histogram.value_at_quantile(0.5),
            p99_us: t.histogram.value_at_quantile(0.99),
        })
        .collect()
}

fn print_rows(title: &str, rows: &[Row], baseline: &[Row]) {
    println!("\n{title}");
    println!("{:>12} {:>14} {:>10} {:>10} {:>12} {:>12}", "records/sync", "records/s", "p50 µs", "p99 µs", "vs baseline", "p99 vs base");
    for (row, base) in rows.iter().zip(baseline) {
        println!(
            "{:>12} {:>14.0} {:>10} {:>10} {:>11.0}% {:>11.2}x",
            row.records_per_sync,
            row.records_per_s,
            row.p50_us,
            row.p99_us,
            100.0 * row.records_per_s / base.records_per_s,
            row.p99_us as f64 / base.p99_us as f64
        );
    }
}

/// Recovery speed for `entries` entries of `records` 128-byte records each.
fn recovery_speed(entries: u64, records: usize) {
    let dir = bench_dir("recovery");
    let body = vec![9u8; records * RECORD_BYTES];
    {
        let storage = FsStorage::open(&dir).expect("dir");
        let config = WalConfig { sync: SyncPolicy::UnsafeNoSync, ..WalConfig::default() };
        let (mut wal, _) = open(storage, config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
        for i in 0..entries {
            wal.append(i, &body).expect("append");
            if i % 64 == 0 {
                wal.sync().expect("write");
            }
        }
        finish(&mut wal);
    }
    // Written without a sync per group (to write 2 M entries quickly), so flush the files once,
    // as a synced log would be.
    for file in std::fs::read_dir(&dir).expect("dir") {
        File::open(file.expect("entry").path()).and_then(|f| f.sync_all()).expect("sync");
    }
    // The log writes with O_DIRECT, so the first recovery finds nothing in the page cache (as
    // after any restart); the second finds what the first read.
    for cache in ["cold page cache", "warm page cache"] {
        settle();
        let start = Instant::now();
        let mut seen = 0u64;
        let storage = FsStorage::open(&dir).expect("dir");
        let (wal, report) = open(storage, WalConfig::default(), &mut |_, _| Ok(()), &mut |_| {
            seen += 1;
            Ok(())
        })
        .expect("recover");
        let secs = start.elapsed().as_secs_f64();
        drop(wal); // after the clock: dropping waits for a segment being prepared
        assert_eq!(seen, entries);
        println!(
            "recovery, {entries} entries of {records} records, {cache}: verified (CRC32C + BLAKE3 chain) in {secs:.3} s: {:.2} M records/s, {:.2} M entries/s, {:.0} MB/s",
            (entries * records as u64) as f64 / secs / 1e6,
            entries as f64 / secs / 1e6,
            report.bytes_verified as f64 / secs / 1e6
        );
    }
}

fn finish(wal: &mut Wal<FsStorage>) {
    wal.sync().expect("sync");
}

fn snapshot(accounts: u64) {
    let engine = engine_with_accounts(accounts, 0);
    let dir = bench_dir("snapshot");
    let storage = FsStorage::open(&dir).expect("dir");
    let (mut wal, _) = open(storage, WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("open");
    wal.append(1, b"x").expect("append");
    wal.sync().expect("sync");
    let start = Instant::now();
    let bytes = engine.snapshot_bytes();
    let encoded = start.elapsed();
    let hash = wal.last_hash();
    wal.write_snapshot(1, hash, &bytes).expect("snapshot");
    let written = start.elapsed();
    drop(wal);
    let start = Instant::now();
    let mut restored = None;
    let storage = FsStorage::open(&dir).expect("dir");
    open(
        storage,
        WalConfig::default(),
        &mut |_, payload| {
            restored = Some(Engine::restore(payload).map_err(|e| e.to_string())?);
            Ok(())
        },
        &mut |_| Ok(()),
    )
    .expect("load");
    let loaded = start.elapsed();
    assert_eq!(restored.expect("restored").digest(), engine.digest());
    println!(
        "snapshot of {accounts} accounts ({:.0} MB): encode {:.2} s, encode+write+fsync+rename {:.2} s; load (verify checksum + restore + audit) {:.2} s",
        bytes.len() as f64 / 1e6,
        encoded.as_secs_f64(),
        written.as_secs_f64(),
        loaded.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = [1usize, 100, 1000, 8189];
    let base: Vec<Row> = sizes.iter().map(|n| baseline_pwrite(*n)).collect();
    let msync: Vec<Row> = sizes.iter().map(|n| baseline_msync(*n)).collect();
    let per_record: Vec<Row> = sizes.iter().map(|n| wal(*n, true)).collect();
    let per_batch: Vec<Row> = sizes.iter().map(|n| wal(*n, false)).collect();
    let fresh: Vec<Row> = sizes.iter().map(|n| baseline_fresh(*n)).collect();
    // The logs that overwrite written blocks, as the baseline does, each size slice by slice
    // beside a baseline of its own.
    let baseline_file = zeroed_file(&bench_dir("baseline-interleaved").join("data"));
    let mut recycling = recycling_step();
    let (mut side_base, mut side_reserved, mut side_recycling) = (Vec::new(), Vec::new(), Vec::new());
    for (&records, b) in sizes.iter().zip(&base) {
        let mut baseline = baseline_step(&baseline_file);
        let mut reserved = reserved_step(records, b.records_per_s);
        let mut rows = interleaved(records, &mut [&mut *baseline, &mut *reserved, &mut *recycling]).into_iter();
        side_base.extend(rows.next());
        side_reserved.extend(rows.next());
        side_recycling.extend(rows.next());
    }
    print_rows("baseline: pwrite + fdatasync of the records into a preallocated file", &base, &base);
    print_rows("alternative: copy into the mapping + msync of the range", &msync, &base);
    print_rows("Bursar WAL, one entry per record (72-byte header each), one sync per batch", &per_record, &base);
    print_rows("Bursar WAL, one entry per batch (how the sequencer logs), one sync per batch", &per_batch, &base);
    print_rows("for comparison, the disk's fresh blocks: pwrite + fdatasync appending to new sparse files", &fresh, &base);
    println!("\nSlice by slice: the baseline, and the logs that overwrite written blocks as it does, in {ROUNDS} alternating rounds");
    print_rows("baseline, interleaved: pwrite + fdatasync of the records into a preallocated file", &side_base, &side_base);
    print_rows(
        "Bursar WAL keeping every segment, log space reserved before the run, one entry per batch (interleaved)",
        &side_reserved,
        &side_base,
    );
    print_rows(
        "Bursar WAL with retention (segments recycled), steady state, one entry per batch (interleaved)",
        &side_recycling,
        &side_base,
    );
    println!();
    recovery_speed(2_000_000, 1);
    recovery_speed(2_000, 8189);
    println!();
    snapshot(1_000_000);
    if !quick {
        snapshot(10_000_000);
    }
}
