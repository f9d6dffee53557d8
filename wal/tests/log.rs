//! The log on simulated storage: appends, group commit, rotation, snapshots, recovery, and
//! every kind of damage located or cut off as docs/wal-format.md says.

use bursar_wal::sim::{Faults, SimStorage};
use bursar_wal::{
    open, segment_name, snapshot_name, verify_log, OpenError, RecoveryReport, Retention, SnapshotHeader, Storage, SyncPolicy, Wal,
    WalConfig, WalError,
};

const SMALL: WalConfig = WalConfig {
    segment_size_bytes: 4096,
    entry_body_max_bytes: 1024,
    sync: SyncPolicy::EveryBatch,
    retention: bursar_wal::Retention::KeepAll,
};

type Entries = Vec<(u64, u64, Vec<u8>)>;
/// What `reopen` recovered: the log, the report, the snapshot handed out, the entries replayed.
type Reopened = (Wal<SimStorage>, RecoveryReport, Option<(SnapshotHeader, Vec<u8>)>, Entries);

fn reopen(storage: SimStorage) -> Result<Reopened, OpenError> {
    let mut snapshot = None;
    let mut entries = Vec::new();
    let (wal, report) = open(
        storage,
        SMALL,
        &mut |h, payload| {
            snapshot = Some((*h, payload.to_vec()));
            Ok(())
        },
        &mut |e| {
            entries.push((e.seq, e.timestamp, e.body.to_vec()));
            Ok(())
        },
    )?;
    Ok((wal, report, snapshot, entries))
}

fn body(seq: u64) -> Vec<u8> {
    let len = (seq * 37 % 300) as usize;
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// A log with `n` entries, synced every `group` appends.
fn log_with(n: u64, group: u64) -> SimStorage {
    let storage = SimStorage::new(1, Faults::default());
    let (mut wal, ..) = reopen(storage.clone()).expect("fresh log");
    for seq in 1..=n {
        assert_eq!(wal.append(seq * 10, &body(seq)).expect("append"), seq);
        if seq % group == 0 {
            assert_eq!(wal.sync().expect("sync"), seq);
        }
    }
    wal.sync().expect("sync");
    storage
}

#[test]
fn entries_come_back_exactly_across_segment_rotations() {
    let storage = log_with(200, 7);
    let segments = storage.list_names().iter().filter(|n| n.ends_with(".seg")).count();
    assert!(segments > 5, "small segments rotate: {segments}");
    let (wal, report, snapshot, entries) = reopen(storage).expect("reopens");
    assert!(snapshot.is_none());
    assert_eq!(entries, (1..=200).map(|s| (s, s * 10, body(s))).collect::<Entries>());
    assert_eq!((report.last_seq, report.truncated), (200, None));
    assert_eq!(wal.next_seq(), 201);
}

#[test]
fn recovery_starts_from_the_newest_valid_snapshot_and_skips_a_corrupt_one() {
    let storage = SimStorage::new(2, Faults::default());
    let (mut wal, ..) = reopen(storage.clone()).expect("fresh");
    let mut hashes = vec![[0u8; 32]];
    for seq in 1..=60u64 {
        wal.append(seq, &body(seq)).expect("append");
        hashes.push(wal.last_hash());
        wal.sync().expect("sync");
        if seq == 20 || seq == 40 {
            let hash = wal.last_hash();
            wal.write_snapshot(seq, hash, format!("state@{seq}").as_bytes()).expect("snapshot");
        }
    }
    let (_, report, snapshot, entries) = reopen(storage.clone()).expect("reopens");
    assert_eq!(snapshot.map(|(h, p)| (h.seq, p)), Some((40, b"state@40".to_vec())));
    assert_eq!(entries.first().map(|e| e.0), Some(41));
    assert_eq!(report.entries_replayed, 20);

    storage.flip_bit(&snapshot_name(40), 90, 3);
    let (_, report, snapshot, entries) = reopen(storage.clone()).expect("reopens");
    assert_eq!(snapshot.map(|(h, _)| h.seq), Some(20), "falls back to the older snapshot");
    assert_eq!(report.skipped_snapshots, vec![(snapshot_name(40), "checksum mismatch".to_string())]);
    assert_eq!(entries.len(), 40);

    // A snapshot whose chain hash disagrees with the log is skipped too.
    let forged = bursar_wal::format::encode_snapshot(&SnapshotHeader { seq: 50, chain_hash: [7; 32] }, b"forged");
    let (mut wal, ..) = reopen(storage.clone()).expect("reopens");
    assert_ne!(hashes[50], [7; 32]);
    drop(wal.sync());
    let mut raw = wal.into_storage();
    bursar_wal::Storage::write_atomic(&mut raw, &snapshot_name(50), &forged).expect("write");
    let (_, report, snapshot, _) = reopen(storage).expect("reopens");
    assert_eq!(snapshot.map(|(h, _)| h.seq), Some(20));
    assert!(report.skipped_snapshots.iter().any(|(n, why)| n == &snapshot_name(50) && why.contains("chain hash")));
}

#[test]
fn a_bit_flip_in_an_acknowledged_entry_is_refused_with_its_place() {
    let storage = log_with(40, 4);
    let first = segment_name(0);
    // Entry 2 sits right after entry 1 in segment 0.
    let offset = 64 + bursar_wal::format::stored_len(body(1).len()) + 80;
    storage.flip_bit(&first, offset, 5);
    match reopen(storage.clone()) {
        Err(OpenError::Corrupt { segment, offset: at, seq, .. }) => {
            assert_eq!((segment, seq), (first, 2));
            assert_eq!(at as usize, 64 + bursar_wal::format::stored_len(body(1).len()));
        }
        other => panic!("expected corruption, got {:?}", other.map(|r| r.1)),
    }
    let before = storage.durable(&segment_name(0));
    assert!(verify_log(&storage, &mut |_| Ok(())).is_err(), "read-only verification refuses too");
    assert_eq!(storage.durable(&segment_name(0)), before, "refusing changes nothing");
}

#[test]
fn a_forged_entry_with_a_recomputed_checksum_breaks_the_chain() {
    let storage = log_with(10, 1);
    let contents = storage.durable(&segment_name(0)).expect("segment");
    let at = 64 + bursar_wal::format::stored_len(body(1).len());
    let header = match bursar_wal::format::read_entry(&contents, at, 0) {
        bursar_wal::format::Slot::Valid(h) => h,
        other => panic!("{other:?}"),
    };
    // Rewrite entry 2 with a different body of the same length and a valid checksum.
    let mut forged = Vec::new();
    let altered: Vec<u8> = body(2).iter().map(|b| b ^ 0xFF).collect();
    bursar_wal::format::encode_entry(&header, &altered, 0, &mut forged);
    storage.overwrite(&segment_name(0), at, &forged);
    match reopen(storage) {
        Err(OpenError::Corrupt { seq: 3, reason, .. }) => {
            assert!(reason.contains("chain"), "{reason}")
        }
        other => panic!("expected a broken chain at 3, got {:?}", other.map(|r| r.1)),
    }
}

/// Recovery hashes long runs of entries ahead of its checks, in two halves on two threads
/// (`hash_ahead`): on a segment holding over 256 KiB of entries, every entry still comes back in
/// order, and an entry forged (checksum recomputed) in the second half of such a run still
/// breaks the chain at the entry after it.
#[test]
fn entries_hashed_ahead_on_two_threads_come_back_in_order_and_a_forgery_is_still_found() {
    const BIG: WalConfig = WalConfig { segment_size_bytes: 4 << 20, ..SMALL };
    const N: u64 = 3000;
    let storage = SimStorage::new(1, Faults::default());
    let (mut wal, _) = open(storage.clone(), BIG, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("fresh log");
    for seq in 1..=N {
        wal.append(seq, &body(seq)).expect("append");
    }
    wal.sync().expect("sync");
    drop(wal);
    let contents = storage.durable(&segment_name(0)).expect("segment");
    let mut seen = Vec::new();
    open(storage.clone(), BIG, &mut |_, _| Ok(()), &mut |e| {
        seen.push((e.seq, e.body.to_vec()));
        Ok(())
    })
    .expect("recover");
    assert_eq!(seen, (1..=N).map(|seq| (seq, body(seq))).collect::<Vec<_>>());
    // Entry 2 500: past half of the run's 3 000 entries (about 450 KiB).
    let mut at = 64;
    for seq in 1..2500 {
        at += bursar_wal::format::stored_len(body(seq).len());
    }
    let header = match bursar_wal::format::read_entry(&contents, at, 0) {
        bursar_wal::format::Slot::Valid(h) if h.seq == 2500 => h,
        other => panic!("{other:?}"),
    };
    let mut forged = Vec::new();
    let altered: Vec<u8> = body(2500).iter().map(|b| b ^ 0xFF).collect();
    bursar_wal::format::encode_entry(&header, &altered, 0, &mut forged);
    storage.overwrite(&segment_name(0), at, &forged);
    match open(storage, BIG, &mut |_, _| Ok(()), &mut |_| Ok(())) {
        Err(OpenError::Corrupt { seq: 2501, reason, .. }) => assert!(reason.contains("chain"), "{reason}"),
        other => panic!("expected a broken chain at 2 501, got {:?}", other.map(|r| r.1)),
    }
}

#[test]
fn a_torn_unsynced_tail_is_cut_off_and_reported() {
    let storage = SimStorage::new(3, Faults::default());
    let (mut wal, ..) = reopen(storage.clone()).expect("fresh");
    for seq in 1..=5 {
        wal.append(seq, &body(seq)).expect("append");
    }
    wal.sync().expect("sync");
    let name = segment_name(0);
    let end = 64 + (1..=5).map(|s| bursar_wal::format::stored_len(body(s).len())).sum::<usize>();
    // An unsynced entry 6 of which only the first 50 bytes reached the disk.
    let mut torn = Vec::new();
    let header = bursar_wal::format::EntryHeader {
        seq: 6,
        timestamp: 6,
        synced_through: 5,
        body_len: body(6).len() as u32,
        flags: 0,
        prev_hash: wal.last_hash(),
    };
    bursar_wal::format::encode_entry(&header, &body(6), 0, &mut torn);
    storage.overwrite(&name, end, &torn[..50]);
    let (mut wal, report, _, entries) = reopen(storage.clone()).expect("a torn tail is not corruption");
    assert_eq!(entries.len(), 5);
    assert_eq!(report.truncated, Some((name.clone(), end as u64, 6, 72)), "the torn slot is zeroed");
    assert!(storage.durable(&name).expect("segment")[end..end + 50].iter().all(|b| *b == 0), "zeroed");
    assert_eq!(wal.append(60, b"after").expect("append"), 6, "the log continues at 6");
}

#[test]
fn after_a_failed_sync_the_log_refuses_everything() {
    let storage = SimStorage::new(4, Faults::default());
    let (mut wal, ..) = reopen(storage.clone()).expect("fresh");
    wal.append(1, b"a").expect("append");
    wal.sync().expect("sync");
    storage.set_faults(Faults { sync_fail_percent: 100, write_fail_percent: 0 });
    wal.append(2, b"b").expect("append");
    assert!(matches!(wal.sync(), Err(WalError::Failed(_))));
    storage.set_faults(Faults::default());
    assert!(matches!(wal.append(3, b"c"), Err(WalError::Failed(_))), "no retry-and-pretend");
    assert!(matches!(wal.sync(), Err(WalError::Failed(_))));
    assert!(matches!(wal.write_snapshot(1, [0; 32], b"s"), Err(WalError::Failed(_))));
}

#[test]
fn limits_are_typed_errors() {
    let storage = SimStorage::new(5, Faults::default());
    let (mut wal, ..) = reopen(storage).expect("fresh");
    assert_eq!(wal.append(1, &[0u8; 1025]), Err(WalError::EntryTooLarge { len: 1025, max: 1024 }));
    assert_eq!(wal.write_snapshot(1, [0; 32], b"x"), Err(WalError::SnapshotAheadOfLog { seq: 1, synced: 0 }));
    let bad = WalConfig { segment_size_bytes: 1000, ..SMALL };
    assert!(matches!(bad.validate(), Err(OpenError::Config(_))));
}

/// Real files, with large groups written through io_uring (`O_DIRECT`, the caller hashing
/// while the device takes the bytes).
#[test]
fn the_real_file_storage_round_trips_across_rotations_and_restarts() {
    real_file_round_trip(true);
}

/// Real files, with large groups written and synced on the storage's sync thread instead (the
/// path where the kernel refuses io_uring).
#[test]
fn the_real_file_storage_round_trips_on_the_sync_thread_path_too() {
    real_file_round_trip(false);
}

/// Entries of every size (small ones written from the block they start in, large ones through
/// the overlapped path, both `sync` and `sync_start`/`sync_finish`), rotations, restarts that
/// resume in the middle of a block, snapshots: everything reads back exactly.
fn real_file_round_trip(io_uring: bool) {
    let dir = std::env::temp_dir().join(format!("bursar-wal-test-{}-{io_uring}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fs = || {
        let mut storage = bursar_wal::FsStorage::open(&dir).expect("dir");
        storage.set_io_uring(io_uring);
        storage
    };
    let config = WalConfig {
        segment_size_bytes: 512 << 10,
        entry_body_max_bytes: 200 << 10,
        sync: SyncPolicy::EveryBatch,
        retention: bursar_wal::Retention::KeepAll,
    };
    let open_fs = |expect: u64| {
        let storage = fs();
        let mut seen = Vec::new();
        let (wal, report) = open(storage, config, &mut |_, _| Ok(()), &mut |e| {
            seen.push((e.seq, e.body.to_vec()));
            Ok(())
        })
        .expect("opens");
        assert_eq!(report.last_seq, expect);
        (wal, seen)
    };
    let (mut wal, seen) = open_fs(0);
    assert!(seen.is_empty());
    // Large entries take the path that hashes while the device writes (or the sync thread
    // writes and syncs); their lengths are ragged, so the small ones after them start mid-block.
    let big = |seq: u64| (0..(150 << 10) + seq as usize * 13).map(|i| (seq as usize + i / 4096) as u8).collect::<Vec<u8>>();
    for seq in 1..=300u64 {
        if seq % 50 == 0 {
            wal.append_with(seq, |buffer| buffer.extend_from_slice(&big(seq))).expect("append");
            // In two halves, as the server does: the disk takes the bytes meanwhile.
            wal.sync_start().expect("sync start");
            assert_eq!(wal.sync_finish().expect("sync finish"), seq);
            assert!(wal.last_sync_ns() > 0, "the sync was timed");
            continue;
        }
        if seq % 50 == 25 {
            wal.append_with(seq, |buffer| buffer.extend_from_slice(&big(seq))).expect("append");
            assert_eq!(wal.sync().expect("sync"), seq);
            continue;
        }
        wal.append(seq, &body(seq)).expect("append");
        if seq % 10 == 0 {
            wal.sync().expect("sync");
        }
    }
    let expect_uring = io_uring && bursar_wal::FsStorage::io_uring_available();
    assert_eq!(wal.storage().io_uring_in_use(), expect_uring, "large groups took the io_uring path when asked and available");
    let hash = wal.last_hash();
    wal.write_snapshot(300, hash, b"three hundred").expect("snapshot");
    drop(wal);
    let (mut wal, seen) = open_fs(300);
    assert!(seen.is_empty(), "everything is covered by the snapshot");
    let verify_all = || {
        verify_log(&bursar_wal::FsStorage::open_read_only(&dir).expect("dir"), &mut |e| {
            let expected = if e.seq % 25 == 0 && e.seq <= 300 { big(e.seq) } else { body(e.seq) };
            if e.body == expected.as_slice() {
                Ok(())
            } else {
                Err(format!("entry {} differs", e.seq))
            }
        })
        .expect("the whole log verifies")
        .last_seq
    };
    assert_eq!(verify_all(), 300);
    wal.append(301, &body(301)).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (mut wal, seen) = open_fs(301);
    assert_eq!(seen, vec![(301, body(301))]);

    // A snapshot written in the background while the log goes on appending and syncing; a
    // second one is refused until it is collected; both land whole.
    let hash = wal.last_hash();
    let state = vec![7u8; 8 << 20];
    let state_len = state.len() as u64;
    // Streamed in uneven pieces, as the node streams its state copy.
    wal.write_snapshot_begin(301, hash, state_len, move |sink| state.chunks(3 << 20).try_for_each(sink)).expect("begin");
    assert!(matches!(wal.write_snapshot_begin(301, hash, 0, |_| Ok(())), Err(WalError::Snapshot(_))) || wal.snapshot_write_done());
    for seq in 302..=320u64 {
        wal.append(seq, &body(seq)).expect("append while the snapshot is written");
        wal.sync().expect("sync while the snapshot is written");
    }
    wal.write_snapshot_end().expect("the background write succeeded");
    assert!(wal.snapshot_write_done());
    wal.write_snapshot_end().expect("nothing left to wait for");
    let hash = wal.last_hash();
    wal.write_snapshot_begin(330, hash, 0, |_| Ok(())).map(|_| ()).expect_err("a snapshot ahead of the log is refused");
    // A payload shorter than announced never becomes a snapshot, and leaves no file behind.
    wal.write_snapshot_begin(320, hash, 100, |sink| sink(&[1u8; 50])).expect("begin");
    assert!(matches!(wal.write_snapshot_end(), Err(WalError::Snapshot(_))));
    assert!(!dir.join(bursar_wal::snapshot_name(320)).exists() && !dir.join(format!("{}.tmp", bursar_wal::snapshot_name(320))).exists());
    drop(wal);
    let mut loaded = None;
    let (_, report) = open(
        bursar_wal::FsStorage::open(&dir).expect("dir"),
        config,
        &mut |h, payload| {
            loaded = Some((h.seq, payload.len(), payload.iter().all(|b| *b == 7)));
            Ok(())
        },
        &mut |_| Ok(()),
    )
    .expect("opens");
    assert_eq!(loaded, Some((301, 8 << 20, true)), "the background snapshot is the newest and whole");
    assert_eq!((report.last_seq, report.entries_replayed), (320, 19));
    assert_eq!(verify_all(), 320, "every entry, from the first, after restarts mid-block");
    let segments = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg")))
        .count();
    assert!(segments >= 2, "rotated into {segments} segments");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Retention on: segments a kept snapshot covers are recycled, their old entries (same sizes, so
/// at the very offsets new entries start) never read back, a clean restart reports no torn
/// tail, the disk holds a bounded number of files, and without a valid snapshot the log refuses
/// to start rather than replay from a gap.
fn recycling_round_trips<S: Storage>(fresh: impl Fn() -> S) {
    let config = WalConfig { retention: Retention::RecycleBeforeSnapshots, ..SMALL };
    let fixed = |seq: u64| vec![seq as u8; 200];
    let reopen = |expect_last: u64| {
        let mut entries = Vec::new();
        let mut snapshot = None;
        let (wal, report) = open(
            fresh(),
            config,
            &mut |h, _| {
                snapshot = Some(h.seq);
                Ok(())
            },
            &mut |e| {
                entries.push((e.seq, e.body.to_vec()));
                Ok(())
            },
        )
        .expect("reopens");
        assert_eq!((report.last_seq, report.truncated.clone()), (expect_last, None), "a clean end, never a torn tail");
        let from = snapshot.unwrap_or(0);
        assert_eq!(entries, (from + 1..=expect_last).map(|s| (s, fixed(s))).collect::<Vec<_>>(), "exactly the entries after the snapshot");
        wal
    };
    let mut wal = reopen(0);
    let mut most_files = 0;
    // 12 rounds of 40 entries of 272 bytes: about 40 segments of 4 KiB written in all.
    for round in 0..12u64 {
        for k in 1..=40u64 {
            let seq = round * 40 + k;
            assert_eq!(wal.append(seq, &fixed(seq)).expect("append"), seq);
            wal.sync().expect("sync");
            if seq % 10 == 0 {
                let hash = wal.last_hash();
                wal.write_snapshot(seq, hash, format!("state {seq}").as_bytes()).expect("snapshot and retention");
            }
        }
        let names = wal.storage().list().expect("list");
        most_files = most_files.max(names.len());
        assert!(names.iter().filter(|n| n.starts_with("snap-")).count() <= bursar_wal::SNAPSHOTS_KEPT);
        drop(wal);
        wal = reopen((round + 1) * 40);
    }
    let names = wal.storage().list().expect("list");
    assert!(!names.contains(&segment_name(0)), "the first segments were recycled: {names:?}");
    assert!(most_files <= 12, "segments, spares and two snapshots stay bounded: {most_files} files");
    // 14 entries of 272 bytes fit a segment: the newest holds 480 % 14 = 4, then the empty slot.
    // Past that lie its previous life's entries, valid there once, read as nothing now.
    let newest = names.iter().filter_map(|n| n.strip_prefix("wal-")?.strip_suffix(".seg")?.parse::<u64>().ok()).max().expect("a segment");
    let bytes = wal.storage().read(&segment_name(newest)).expect("read");
    let end_of_log = 64 + 4 * 272 + 72;
    assert!(
        (*bytes).as_ref()[end_of_log..].iter().any(|b| *b != 0),
        "the newest segment is a recycled one, with stale bytes after the log"
    );
    drop(wal);
    // Without a snapshot that covers the log's start, it refuses to start.
    let mut storage = fresh();
    for name in storage.list().expect("list").iter().filter(|n| n.starts_with("snap-")) {
        storage.remove(name).expect("remove");
    }
    drop(storage); // a writer holds the directory's lock
    match open(fresh(), config, &mut |_, _| Ok(()), &mut |_| Ok(())) {
        Err(OpenError::Corrupt { reason, .. }) => assert!(reason.contains("retention recycled"), "{reason}"),
        other => panic!("expected a refusal, got {:?}", other.map(|r| r.1)),
    }
    assert!(verify_log(&fresh(), &mut |_| Ok(())).is_err(), "the audit cannot start at entry 1 either");
}

#[test]
fn recycled_segments_are_reused_and_their_old_entries_never_read_back() {
    let sim = SimStorage::new(9, Faults::default());
    recycling_round_trips(|| sim.clone());
    let dir = std::env::temp_dir().join(format!("bursar-wal-recycle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    recycling_round_trips(|| bursar_wal::FsStorage::open(&dir).expect("dir"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Log space reserved up front: the segments exist before the log reaches them, rotation uses
/// them as they are (nothing prepared twice), a restart finds the empty ones harmless, and
/// reserving again counts what exists.
#[test]
fn segments_prepared_ahead_are_used_in_order_and_survive_a_restart() {
    let storage = SimStorage::new(5, Faults::default());
    let (mut wal, ..) = reopen(storage.clone()).expect("fresh");
    assert_eq!(wal.prepare_ahead(0).expect("nothing to reserve"), 0);
    assert_eq!(wal.prepare_ahead(4).expect("reserve"), 4);
    let segments = |s: &SimStorage| s.list_names().iter().filter(|n| n.starts_with("wal-")).count();
    assert_eq!(segments(&storage), 5, "segment 0 and four reserved");
    assert_eq!(wal.prepare_ahead(4).expect("reserve again"), 0, "they exist already");
    // About two segments' worth of entries: rotation moves into the reserved ones.
    for seq in 1..=40 {
        wal.append(seq, &body(seq)).expect("append");
        wal.sync().expect("sync");
    }
    assert_eq!(segments(&storage), 5, "no segment beyond the reserved ones yet");
    drop(wal);
    storage.crash();
    let (mut wal, report, _, entries) = reopen(storage.clone()).expect("reopens with empty segments after the end");
    assert_eq!((report.last_seq, report.truncated, entries.len()), (40, None, 40));
    for seq in 41..=200 {
        wal.append(seq, &body(seq)).expect("append past the reserved segments");
        wal.sync().expect("sync");
    }
    drop(wal);
    let (_, report, _, entries) = reopen(storage.clone()).expect("reopens");
    assert_eq!((report.last_seq, entries.len()), (200, 200));
    assert!(segments(&storage) > 5, "new segments were prepared once the reserved ones were used");
}

/// Start-up removes the temporary files of atomic writes a crash cut short (a snapshot, a
/// segment being prepared) and reports them; under either retention only the newest
/// `SNAPSHOTS_KEPT` snapshots stay, while keep-all keeps every segment.
#[test]
fn leftovers_are_removed_at_open_and_snapshots_stay_bounded_under_keep_all() {
    let dir = std::env::temp_dir().join(format!("bursar-wal-leftovers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let leftovers = [format!("{}.tmp", bursar_wal::snapshot_name(7)), format!("{}.tmp", segment_name(3))];
    for name in &leftovers {
        std::fs::write(dir.join(name), vec![1u8; 5000]).expect("leftover");
    }
    let (mut wal, report) =
        open(bursar_wal::FsStorage::open(&dir).expect("dir"), SMALL, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("opens");
    let mut removed = report.removed_leftovers.clone();
    removed.sort();
    let mut expected = leftovers.to_vec();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(leftovers.iter().all(|name| !dir.join(name).exists()));
    for seq in 1..=60u64 {
        wal.append(seq, &body(seq)).expect("append");
        wal.sync().expect("sync");
        if seq % 10 == 0 {
            let hash = wal.last_hash();
            wal.write_snapshot(seq, hash, b"state").expect("snapshot");
        }
    }
    let names = wal.storage().list().expect("list");
    let snapshots: Vec<&String> = names.iter().filter(|n| n.starts_with("snap-")).collect();
    assert_eq!(snapshots, vec![&bursar_wal::snapshot_name(50), &bursar_wal::snapshot_name(60)], "{names:?}");
    assert!(names.contains(&segment_name(0)), "keep-all keeps the first segment");
    drop(wal);
    let read_only = bursar_wal::FsStorage::open_read_only(&dir).expect("dir");
    assert_eq!(verify_log(&read_only, &mut |_| Ok(())).expect("the whole log verifies").last_seq, 60);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Where each entry of the log lies: (sequence number, segment file, offset, stored length).
fn entry_places(storage: &SimStorage) -> Vec<(u64, String, usize, usize)> {
    let mut places = Vec::new();
    verify_log(storage, &mut |e| {
        places.push((e.seq, segment_name(e.segment), e.offset as usize, bursar_wal::format::stored_len(e.body.len())));
        Ok(())
    })
    .expect("clean log");
    places
}

fn refused_at(outcome: Result<Reopened, OpenError>) -> (u64, String) {
    match outcome {
        Err(OpenError::Corrupt { seq, reason, .. }) => (seq, reason),
        Err(other) => panic!("expected a located refusal, got {other}"),
        Ok((_, report, ..)) => panic!("expected a refusal, recovered to {} (truncated {:?})", report.last_seq, report.truncated),
    }
}

/// The durable mark vouches for the last group, which no later entry does: damage to it after a
/// crash is refused and named, by the server's recovery and by the audit's read-only check,
/// while an unsynced (unacknowledged) tail is still cut as torn.
#[test]
fn damage_to_the_last_acknowledged_entry_is_refused_not_cut_as_a_torn_tail() {
    let storage = log_with(30, 1);
    let (seq, segment, offset, _) = entry_places(&storage).pop().expect("entries");
    assert_eq!(seq, 30);
    storage.flip_bit(&segment, offset + 70, 2);
    storage.crash();
    let (seq, reason) = refused_at(reopen(storage.clone()));
    assert_eq!(seq, 30);
    assert!(reason.contains("durable") && reason.contains("through 30"), "{reason}");
    assert!(matches!(verify_log(&storage, &mut |_| Ok(())), Err(OpenError::Corrupt { seq: 30, .. })), "the audit refuses too");

    // A tail that was written but never synced is not vouched for: cut, as before.
    let storage = log_with(30, 1);
    let (mut wal, ..) = reopen(storage.clone()).expect("reopens");
    wal.append(31, &body(31)).expect("append");
    wal.append(32, &body(32)).expect("append");
    drop(wal);
    let (_, report, ..) = reopen(storage.clone()).expect("an unsynced tail never blocks a restart");
    assert!(report.last_seq >= 30, "every synced entry is there: {}", report.last_seq);
}

/// Recovery searches the bytes after the log's end for an entry proving acknowledged data lost
/// only where the durable mark cannot vouch for that end: a damaged ring, or entries written
/// without marks. Two faults at once (an acknowledged entry's header zeroed, and the marks that
/// vouched for it damaged) are still refused, through the search.
#[test]
fn the_search_after_the_end_runs_only_where_the_mark_cannot_vouch() {
    use bursar_wal::mark::{MARK_FILE_NAME, MARK_SLOTS, MARK_SLOT_BYTES};
    let storage = log_with(30, 1);
    let (_, report, ..) = reopen(storage.clone()).expect("a clean log");
    assert!(report.tail_vouched, "a whole ring vouches for the end");
    assert!(!verify_log(&storage, &mut |_| Ok(())).expect("verifies").tail_vouched, "the audit searches");

    // Entry 29's header zeroed (an empty slot), entry 30 after it claiming 29 durable.
    let zero_29 = |storage: &SimStorage| {
        let places = entry_places(storage);
        let (seq, segment, offset, _) = places[places.len() - 2].clone();
        assert_eq!(seq, 29);
        storage.overwrite(&segment, offset, &[0u8; bursar_wal::format::ENTRY_HEADER_SIZE]);
    };
    let storage = log_with(30, 1);
    zero_29(&storage);
    let (seq, reason) = refused_at(reopen(storage.clone()));
    assert_eq!(seq, 29, "the mark for 30 names it: {reason}");
    assert!(reason.contains("through 30"), "{reason}");

    // The same, with the marks for 29 and 30 (generations 28 and 29) flipped: the newest valid
    // mark is 28, below the end, and the ring is not whole, so the search finds entry 30.
    let storage = log_with(30, 1);
    zero_29(&storage);
    for generation in [28u64, 29] {
        storage.flip_bit(MARK_FILE_NAME, (generation % MARK_SLOTS) as usize * MARK_SLOT_BYTES + 20, 3);
    }
    let (seq, reason) = refused_at(reopen(storage.clone()));
    assert_eq!(seq, 29);
    assert!(reason.contains("entry 30 after it was written after 29 was durable"), "{reason}");

    // Entries written without marks claim more than the mark: the end is searched.
    let storage = log_with(30, 1);
    let unsafe_config = WalConfig { sync: SyncPolicy::UnsafeNoSync, ..SMALL };
    let (mut wal, _) = open(storage.clone(), unsafe_config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("opens");
    for seq in 31..=33 {
        wal.append(seq * 10, &body(seq)).expect("append");
        wal.sync().expect("sync");
    }
    drop(wal);
    let (_, report, ..) = reopen(storage.clone()).expect("reopens");
    assert_eq!(report.last_seq, 33);
    assert!(!report.tail_vouched, "entry 33 claims 32 durable; the newest mark says 30");
    let (_, report, ..) = reopen(storage).expect("reopens");
    assert!(report.tail_vouched, "the open before marked what it recovered");
}

/// A segment cut short or deleted at the end of the log, or damage to a segment's header, is
/// refused: entries the durable mark vouches for are missing.
#[test]
fn a_truncated_or_deleted_last_segment_is_refused() {
    let storage = log_with(60, 1);
    let places = entry_places(&storage);
    let (_, last_segment, offset, _) = places.last().cloned().expect("entries");
    let first_in_last = places.iter().find(|p| p.1 == last_segment).map(|p| p.0).expect("an entry");
    // Cut short: everything from the last entry on is zeros.
    let len = storage.durable(&last_segment).expect("segment").len();
    storage.overwrite(&last_segment, offset, &vec![0u8; len - offset]);
    let (seq, reason) = refused_at(reopen(storage.clone()));
    assert_eq!(seq, 60);
    assert!(reason.contains("ends before it"), "{reason}");

    let storage = log_with(60, 1);
    let mut raw = storage.clone();
    raw.remove(&last_segment).expect("remove");
    let (_, reason) = refused_at(reopen(storage.clone()));
    assert!(reason.contains("missing"), "the prepared segment after it leaves a gap: {reason}");
    for later in storage.list_names().into_iter().filter(|n| n.ends_with(".seg") && *n > last_segment) {
        raw.remove(&later).expect("remove");
    }
    let (seq, reason) = refused_at(reopen(storage.clone()));
    assert_eq!(seq, first_in_last, "the first entry of the deleted segment is named: {reason}");

    let storage = log_with(60, 1);
    storage.flip_bit(&last_segment, 3, 0);
    assert!(reopen(storage).is_err(), "a damaged segment header is refused");
}

/// A segment deleted or cut short in the middle of the log is refused at its first missing
/// entry, by recovery and by the audit's check: never replayed around.
#[test]
fn a_deleted_or_truncated_segment_in_the_middle_is_refused_and_named() {
    let storage = log_with(60, 1);
    let places = entry_places(&storage);
    let segments: Vec<String> = places.iter().map(|p| p.1.clone()).fold(Vec::new(), |mut v, s| {
        if v.last() != Some(&s) {
            v.push(s);
        }
        v
    });
    assert!(segments.len() >= 3, "the test needs a segment with segments on both sides: {segments:?}");
    let middle = &segments[1];
    let first_in_middle = places.iter().find(|p| &p.1 == middle).map(|p| p.0).expect("an entry");

    let deleted = storage.clone();
    deleted.clone().remove(middle).expect("remove");
    let (_, reason) = refused_at(reopen(deleted.clone()));
    assert!(reason.contains(&format!("{middle} not found between")), "the missing file is named: {reason}");
    assert!(verify_log(&deleted, &mut |_| Ok(())).is_err(), "the audit refuses too");

    let truncated = log_with(60, 1);
    let (_, _, offset, _) = places.iter().find(|p| &p.1 == middle).cloned().expect("an entry");
    let len = truncated.durable(middle).expect("segment").len();
    truncated.overwrite(middle, offset, &vec![0u8; len - offset]);
    let (seq, reason) = refused_at(reopen(truncated.clone()));
    assert_eq!(seq, first_in_middle, "{reason}");
    assert!(verify_log(&truncated, &mut |_| Ok(())).is_err(), "the audit refuses too");
}
