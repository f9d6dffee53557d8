//! Seeded crash test: for many seeds, append and group-commit random entries on simulated
//! storage with injected write and sync failures, cut the power at random points, recover, and
//! check that every entry whose sync returned is recovered exactly, nothing unappended appears,
//! and a flipped bit in any acknowledged entry that a later group vouches for is refused.
//! Odd seeds run with retention on, so segments are recycled (their old entries stale) and
//! recovery starts from snapshots with the log's first segments gone.
//!
//! Replay one seed: `WAL_SEED=17 cargo test -p bursar-wal --test crash`; more: `WAL_SEEDS=5000`.

use bursar_wal::format::{self, Slot};
use bursar_wal::sim::{Faults, Rng, SimStorage};
use std::sync::atomic::{AtomicU64, Ordering};

use bursar_wal::{open, segment_name, verify_log, OpenError, Retention, SyncPolicy, Wal, WalConfig};

/// What the run exercised, so a passing run shows it did something.
static TRUNCATED_TAILS: AtomicU64 = AtomicU64::new(0);
static ACKED_ENTRIES: AtomicU64 = AtomicU64::new(0);
static FLIPS_REFUSED: AtomicU64 = AtomicU64::new(0);
static FAILED_LOGS: AtomicU64 = AtomicU64::new(0);
static RECYCLED_LOGS: AtomicU64 = AtomicU64::new(0);

const CONFIG: WalConfig = WalConfig {
    segment_size_bytes: 16 << 10,
    entry_body_max_bytes: 2048,
    sync: SyncPolicy::EveryBatch,
    retention: bursar_wal::Retention::KeepAll,
};

/// Even seeds keep every segment, odd ones recycle those the kept snapshots cover.
fn config(seed: u64) -> WalConfig {
    WalConfig { retention: if seed % 2 == 1 { Retention::RecycleBeforeSnapshots } else { Retention::KeepAll }, ..CONFIG }
}

fn body(rng: &mut Rng, seq: u64) -> Vec<u8> {
    let len = rng.below(900) as usize;
    (0..len).map(|i| (seq as usize).wrapping_mul(131).wrapping_add(i) as u8).collect()
}

/// Reopens and checks the recovered log against what was appended and acknowledged.
fn recover(
    config: WalConfig,
    storage: &SimStorage,
    appended: &mut Vec<(u64, Vec<u8>)>,
    acked: u64,
    snapshots: &[(u64, Vec<u8>)],
) -> Result<Wal<SimStorage>, String> {
    let mut start = 0u64;
    let mut recovered = Vec::new();
    let (wal, report) = open(
        storage.clone(),
        config,
        &mut |h, payload| {
            start = h.seq;
            let expected = snapshots.iter().find(|(s, _)| *s == h.seq).map(|(_, p)| p);
            if expected.map(|p| p.as_slice()) != Some(payload) {
                return Err(format!("snapshot {} differs from what was written", h.seq).into());
            }
            Ok(())
        },
        &mut |e| {
            recovered.push((e.seq, e.timestamp, e.body.to_vec()));
            Ok(())
        },
    )
    .map_err(|e| format!("open: {e}"))?;
    let last = report.last_seq;
    if report.truncated.is_some() {
        TRUNCATED_TAILS.fetch_add(1, Ordering::Relaxed);
    }
    if last < acked {
        return Err(format!("acknowledged entries lost: acked through {acked}, recovered through {last} ({:?})", report.truncated));
    }
    if last > appended.len() as u64 {
        return Err(format!("recovered {last} entries but only {} were appended", appended.len()));
    }
    for (i, (seq, ts, body)) in recovered.iter().enumerate() {
        if *seq != start + 1 + i as u64 {
            return Err(format!("entry {i} after the snapshot has sequence {seq}"));
        }
        let (want_ts, want_body) = &appended[*seq as usize - 1];
        if ts != want_ts || body != want_body {
            return Err(format!("entry {seq} differs from what was appended"));
        }
    }
    appended.truncate(last as usize);
    Ok(wal)
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let faults = if seed.is_multiple_of(3) { Faults::default() } else { Faults { write_fail_percent: 1, sync_fail_percent: 3 } };
    let storage = SimStorage::new(seed ^ 0xA5A5, faults);
    let mut appended: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut snapshots: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut acked = 0u64;
    let config = config(seed);
    let mut wal = recover(config, &storage, &mut appended, 0, &snapshots)?;
    for _round in 0..6 {
        let groups = rng.below(12);
        'groups: for _ in 0..groups {
            for _ in 0..1 + rng.below(6) {
                let seq = appended.len() as u64 + 1;
                let b = body(&mut rng, seq);
                match wal.append(seq * 1000, &b) {
                    Ok(got) if got == seq => appended.push((seq * 1000, b)),
                    Ok(got) => return Err(format!("append returned {got}, expected {seq}")),
                    Err(_) => break 'groups,
                }
            }
            // Half the groups sync in two halves, as the server does (applying in between).
            let synced = if rng.below(2) == 0 { wal.sync() } else { wal.sync_start().and_then(|()| wal.sync_finish()) };
            match synced {
                Ok(synced) => acked = synced,
                Err(_) => {
                    FAILED_LOGS.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            if rng.below(20) == 0 {
                // Log space reserved ahead, as a server does before traffic.
                let _ = wal.prepare_ahead(1 + rng.below(3));
            }
            if rng.below(6) == 0 && acked > 0 {
                let payload = format!("state through {acked}").into_bytes();
                // The chain hash of entry `acked` is the log's last hash only when nothing is pending.
                let hash = wal.last_hash();
                if wal.next_seq() == acked + 1 && wal.write_snapshot(acked, hash, &payload).is_ok() {
                    snapshots.push((acked, payload));
                }
            }
        }
        // Sometimes crash with appended-but-unsynced entries in flight.
        for _ in 0..rng.below(3) {
            let seq = appended.len() as u64 + 1;
            let b = body(&mut rng, seq);
            if wal.append(seq * 1000, &b).is_ok() {
                appended.push((seq * 1000, b));
            }
        }
        match rng.below(3) {
            0 => {
                let _ = wal.sync().map(|s| acked = s);
            }
            // Crash between the halves of a sync: written, maybe durable, never acknowledged.
            1 => {
                let _ = wal.sync_start();
            }
            _ => {}
        }
        drop(wal);
        storage.crash();
        wal = recover(config, &storage, &mut appended, acked, &snapshots)?;
        ACKED_ENTRIES.fetch_add(acked, Ordering::Relaxed);
        acked = appended.len() as u64;
        storage.set_faults(faults);
    }
    drop(wal);
    storage.set_faults(Faults::default());
    flip_a_vouched_entry(config, &storage, &mut rng)
}

/// Flips one bit in an acknowledged entry that a later entry vouches for; recovery must refuse
/// with that entry's segment, offset and sequence number.
/// With the first segments recycled, only the entries after the newest snapshot are checked.
fn flip_a_vouched_entry(config: WalConfig, storage: &SimStorage, rng: &mut Rng) -> Result<(), String> {
    let recycled = storage.durable(&segment_name(0)).is_none();
    if recycled {
        RECYCLED_LOGS.fetch_add(1, Ordering::Relaxed);
        if verify_log(storage, &mut |_| Ok(())).is_ok() {
            return Err("verify_log read a log whose first segments were recycled".into());
        }
    }
    let mut places = Vec::new();
    let mut vouched_through = 0;
    let mut gather = |e: bursar_wal::EntryRef<'_>| {
        places.push((e.seq, e.segment, e.offset, e.body.len()));
        Ok(())
    };
    if recycled {
        open(storage.clone(), config, &mut |_, _| Ok(()), &mut gather).map_err(|e| format!("open: {e}"))?;
    } else {
        verify_log(storage, &mut gather).map_err(|e| format!("verify: {e}"))?;
    }
    for (_, segment, offset, _) in &places {
        let bytes = storage.durable(&segment_name(*segment)).expect("segment");
        if let Slot::Valid(h) = format::read_entry(&bytes, *offset as usize, *segment) {
            vouched_through = vouched_through.max(h.synced_through);
        }
    }
    let candidates: Vec<_> = places.iter().filter(|p| p.0 <= vouched_through).collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let (seq, segment, offset, body_len) = *candidates[rng.below(candidates.len() as u64) as usize];
    let at = offset as usize + rng.below((format::ENTRY_HEADER_SIZE + body_len) as u64) as usize;
    storage.flip_bit(&segment_name(segment), at, rng.below(8) as u8);
    let refused_here = |result: &Result<_, OpenError>| matches!(result, Err(OpenError::Corrupt { segment: s, offset: o, seq: q, .. }) if *s == segment_name(segment) && *o == offset && *q == seq);
    let full = verify_log(storage, &mut |_| Ok(()));
    if !recycled && !refused_here(&full) {
        return Err(format!("verify_log: flip in entry {seq} ({}:{offset}) gave {full:?}", segment_name(segment)));
    }
    // Open verifies from the newest snapshot on: damage after it must stop recovery at that entry.
    let newest_snapshot =
        storage.list_names().iter().filter_map(|n| n.strip_prefix("snap-")?.strip_suffix(".snap")?.parse::<u64>().ok()).max().unwrap_or(0);
    let opened = open(storage.clone(), config, &mut |_, _| Ok(()), &mut |_| Ok(())).map(|r| r.1);
    if seq > newest_snapshot && !refused_here(&opened) {
        return Err(format!(
            "open: flip in entry {seq} ({}:{offset}) after snapshot {newest_snapshot} gave {opened:?}",
            segment_name(segment)
        ));
    }
    if opened.is_err() && !refused_here(&opened) {
        return Err(format!("open: flip in entry {seq} refused at the wrong place: {opened:?}"));
    }
    FLIPS_REFUSED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[test]
fn every_acknowledged_entry_survives_crashes_and_damage_is_refused() {
    let seeds: Vec<u64> = match std::env::var("WAL_SEED") {
        Ok(seed) => vec![seed.parse().expect("WAL_SEED is a number")],
        Err(_) => (0..std::env::var("WAL_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(300)).collect(),
    };
    for seed in seeds {
        if let Err(why) = run_seed(seed) {
            panic!("seed {seed}: {why}\nreplay: WAL_SEED={seed} cargo test -p bursar-wal --test crash");
        }
    }
    let (tails, acked, flips, failed, recycled) = (
        TRUNCATED_TAILS.load(Ordering::Relaxed),
        ACKED_ENTRIES.load(Ordering::Relaxed),
        FLIPS_REFUSED.load(Ordering::Relaxed),
        FAILED_LOGS.load(Ordering::Relaxed),
        RECYCLED_LOGS.load(Ordering::Relaxed),
    );
    eprintln!(
        "crash test: {acked} acknowledged entries checked, {tails} torn tails cut, {failed} logs stopped by a failed sync, \
         {flips} bit flips refused, {recycled} logs with recycled segments"
    );
    if std::env::var("WAL_SEED").is_err() {
        assert!(tails > 0 && acked > 1000 && flips > 100 && failed > 0 && recycled > 20, "the run exercised too little");
    }
}
