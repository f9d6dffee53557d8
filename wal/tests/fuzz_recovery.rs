//! Recovery from arbitrary bytes: damaged logs and garbage files must give `Ok` or a typed
//! error, never a panic. CI runs a bounded number of cases; a longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p bursar-wal --test fuzz_recovery`.

use bursar_wal::sim::{Faults, SimStorage};
use bursar_wal::{open, segment_name, snapshot_name, verify_log, Storage, SyncPolicy, WalConfig};
use proptest::prelude::*;

const CONFIG: WalConfig = WalConfig {
    segment_size_bytes: 2048,
    entry_body_max_bytes: 512,
    sync: SyncPolicy::EveryBatch,
    retention: bursar_wal::Retention::KeepAll,
};

/// Retention on: the log's first segments are recycled and spares lie beside it.
const RECYCLING: WalConfig = WalConfig { retention: bursar_wal::Retention::RecycleBeforeSnapshots, ..CONFIG };

fn valid_log(entries: usize) -> SimStorage {
    valid_log_with(CONFIG, entries, &[entries / 2])
}

/// A log of `entries` entries with a snapshot after each entry listed in `snapshots_after`.
fn valid_log_with(config: WalConfig, entries: usize, snapshots_after: &[usize]) -> SimStorage {
    let storage = SimStorage::new(9, Faults::default());
    let (mut wal, _) = open(storage.clone(), config, &mut |_, _| Ok(()), &mut |_| Ok(())).expect("fresh");
    for i in 0..entries {
        wal.append(i as u64, &vec![i as u8; i * 13 % 200]).expect("append");
        wal.sync().expect("sync");
        if snapshots_after.contains(&i) {
            let (seq, hash) = (wal.synced_seq(), wal.last_hash());
            wal.write_snapshot(seq, hash, b"snapshot").expect("snapshot");
        }
    }
    storage
}

fn recover_both_ways(storage: &SimStorage) {
    recover_both_ways_with(CONFIG, storage);
}

fn recover_both_ways_with(config: WalConfig, storage: &SimStorage) {
    let _ = verify_log(storage, &mut |_| Ok(()));
    if let Ok((mut wal, _)) = open(storage.clone(), config, &mut |_, _| Ok(()), &mut |_| Ok(())) {
        // A recovered log must keep working or fail with a typed error.
        let _ = wal.append(1, b"after recovery").and_then(|_| wal.sync());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var_os("PROPTEST_CASES").map_or(256, |_| ProptestConfig::default().cases), ..ProptestConfig::default() })]

    #[test]
    fn damaged_logs_never_panic(entries in 0usize..40, edits in proptest::collection::vec((0usize..4, any::<usize>(), any::<u8>()), 1..8)) {
        let storage = valid_log(entries);
        let names = storage.list_names();
        for (file, at, value) in edits {
            let name = &names[file % names.len()];
            let len = storage.durable(name).expect("file").len();
            if len > 0 {
                storage.overwrite(name, at % len, &[value]);
            }
        }
        recover_both_ways(&storage);
    }

    /// A recycled log (first segments gone, spares with stale entries beside it), damaged
    /// anywhere, in any file: spares included.
    #[test]
    fn damaged_recycled_logs_never_panic(entries in 30usize..80, edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..8)) {
        let snapshots: Vec<usize> = (0..entries).filter(|i| i % 8 == 7).collect();
        let storage = valid_log_with(RECYCLING, entries, &snapshots);
        let names = storage.list_names();
        prop_assert!(!names.contains(&segment_name(0)), "the log recycled: {:?}", names);
        for (file, at, value) in edits {
            let name = &names[file % names.len()];
            let len = storage.durable(name).expect("file").len();
            if len > 0 {
                storage.overwrite(name, at % len, &[value]);
            }
        }
        recover_both_ways_with(RECYCLING, &storage);
    }

    #[test]
    fn garbage_files_never_panic(segment in proptest::collection::vec(any::<u8>(), 0..3000), snapshot in proptest::collection::vec(any::<u8>(), 0..200), header_ok in any::<bool>()) {
        let mut storage = SimStorage::new(1, Faults::default());
        let mut bytes = segment;
        if header_ok && bytes.len() >= 64 {
            let len = bytes.len() as u64;
            bytes[..64].copy_from_slice(&bursar_wal::format::encode_segment_header(0, len));
        }
        storage.write_atomic(&segment_name(0), &bytes).expect("write");
        storage.write_atomic(&snapshot_name(1), &snapshot).expect("write");
        recover_both_ways(&storage);
    }
}
