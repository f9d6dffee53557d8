//! Crash recovery of the durable node (engine behind the WAL) on a simulated disk with injected
//! write and sync failures and power cuts at random points. After every recovery:
//! - the log holds a prefix of the batches handed to `submit`, including every acknowledged one;
//! - the recovered state equals a reference engine that applied exactly that prefix (so no batch is
//!   half-applied and none is applied twice);
//! - a retried command that had taken effect (its batch was durable but never acknowledged)
//!   answers `exists`: money moves once.
//!
//! Replay one seed: `NODE_SEED=3 cargo test -p bursar-tests --test node_crash`; more: `NODE_SEEDS=2000`.

use bursar_engine::batch::{self, Input};
use bursar_engine::{Command, Engine, Limits, ResultCode};
use bursar_net::Node;
use bursar_tests::workload::Workload;
use bursar_wal::sim::{Faults, Rng, SimStorage};
use bursar_wal::{SyncPolicy, WalConfig};

const CONFIG: WalConfig = WalConfig {
    segment_size_bytes: 64 << 10,
    entry_body_max_bytes: 16 << 10,
    sync: SyncPolicy::EveryBatch,
    retention: bursar_wal::Retention::KeepAll,
};

fn limits() -> Limits {
    Limits { accounts_max: 400, transfers_max: 20_000, ..Limits::default() }
}

/// One log entry's input: its time, commands and request ends.
type Entry = (u64, Vec<Command>, Vec<u32>);

/// A reference engine that applied `batches` in order, and the results of each.
fn reference(batches: &[Entry]) -> (Engine, Vec<Vec<ResultCode>>) {
    let mut engine = Engine::new(limits());
    let all = batches
        .iter()
        .map(|(now, commands, request_ends)| {
            let mut results = Vec::new();
            engine.execute_requests(*now, commands, request_ends, &mut results).expect("batch");
            results
        })
        .collect();
    (engine, all)
}

fn input(entry: &Entry) -> Input<'_> {
    Input { commands: &entry.1, request_ends: &entry.2 }
}

/// Batches in the durable log (checkpoint entries are not batches).
fn logged_batches(storage: &SimStorage) -> Result<usize, String> {
    let mut batches = 0;
    bursar_wal::verify_log(storage, &mut |entry| {
        if let batch::Body::Batch { .. } = batch::decode_body(entry.body, &mut Vec::new(), &mut Vec::new()).map_err(|e| e.to_string())? {
            batches += 1;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(batches)
}

fn creates_something(command: &Command) -> bool {
    !matches!(
        command,
        Command::Freeze(_)
            | Command::Thaw(_)
            | Command::Close(_)
            | Command::SetLimits(_)
            | Command::SetChannels(_)
            | Command::SetVelocity(_)
            | Command::PauseOrder(_)
            | Command::ResumeOrder(_)
            | Command::CancelOrder(_)
            | Command::AmendOrder(_)
    ) && !command.is_linked()
}

fn run_seed(seed: u64) -> Result<(usize, usize), String> {
    let mut rng = Rng(seed);
    let faults = if seed.is_multiple_of(2) { Faults::default() } else { Faults { write_fail_percent: 2, sync_fail_percent: 4 } };
    let storage = SimStorage::new(seed ^ 0x5EED, faults);
    let mut workload = Workload::new(seed);
    let (mut node, _) = Node::open(storage.clone(), CONFIG, limits()).map_err(|e| e.to_string())?;
    // Frequent checkpoints, so recovery checks many logged state digests.
    let checkpoint_every = 1 + rng.below(4);
    node.set_checkpoint_every_entries(checkpoint_every);
    let mut attempted: Vec<Entry> = Vec::new();
    let mut acked_results: Vec<Vec<ResultCode>> = Vec::new();
    let mut retried_existing = 0;
    let mut pending_retry: Vec<Entry> = vec![(workload.now, workload.setup(), Vec::new())];
    let mut last_seq = 0;
    for round in 0..5 {
        let mut queue = std::mem::take(&mut pending_retry);
        for _ in 0..rng.below(14) {
            let (now, commands) = workload.batch(30);
            let request_ends = workload.request_ends(&commands);
            queue.push((now, commands, request_ends));
        }
        let mut queue = queue.into_iter();
        while let Some(first) = queue.next() {
            let now = first.0;
            // Sometimes several batches share one sync, as the sequencer does when full-size
            // requests queue up: each its own entry, all at the first one's time.
            let mut group = vec![first];
            while group.len() < 3 && rng.below(3) == 0 {
                match queue.next() {
                    Some((_, more, ends)) => group.push((now, more, ends)),
                    None => break,
                }
            }
            attempted.extend(group.iter().cloned());
            let mut results = Vec::new();
            let inputs: Vec<Input<'_>> = group.iter().map(input).collect();
            match node.submit_entries(now, &inputs, &mut results) {
                Ok(seq) if seq > last_seq => {
                    last_seq = seq;
                    for (_, commands, _) in &group {
                        acked_results.push(results.drain(..commands.len()).collect());
                    }
                }
                Ok(seq) => return Err(format!("batch {} logged as {seq}, after {last_seq}", attempted.len())),
                Err(_) => break, // the log stopped: nothing more until a restart
            }
            if rng.below(8) == 0 {
                let _ = node.snapshot();
            }
        }
        let acked = acked_results.len();
        drop(node);
        storage.crash();
        let (recovered, report) = Node::open(storage.clone(), CONFIG, limits()).map_err(|e| format!("round {round}: reopen: {e}"))?;
        node = recovered;
        node.set_checkpoint_every_entries(checkpoint_every);
        last_seq = report.last_seq;
        let durable = logged_batches(&storage).map_err(|e| format!("round {round}: {e}"))?;
        if durable < acked || durable > attempted.len() {
            return Err(format!("round {round}: {durable} batches recovered, {acked} acknowledged, {} attempted", attempted.len()));
        }
        let (expected, results) = reference(&attempted[..durable]);
        if expected.digest() != node.engine().digest() {
            return Err(format!("round {round}: recovered state differs from the reference after {durable} batches"));
        }
        if results[..acked] != acked_results[..] {
            return Err(format!("round {round}: replay gives other results than the acknowledged ones"));
        }
        node.engine().check_invariants().map_err(|e| format!("round {round}: {e}"))?;
        let unacknowledged: Vec<Entry> = attempted[acked..durable].to_vec();
        pending_retry.extend(attempted.split_off(durable)); // never reached the disk: retried as new next round
                                                            // Durable but never acknowledged: the client retries with the same ids (faults off for
                                                            // the retry); whatever took effect must answer `exists`.
        for (i, entry @ (now, commands, request_ends)) in unacknowledged.iter().enumerate() {
            let later = (node.engine().timestamp() + 1).max(*now);
            let mut retry = Vec::new();
            node.submit_entries(later, &[input(entry)], &mut retry).map_err(|e| format!("retry: {e}"))?;
            for (k, command) in commands.iter().enumerate() {
                if results[acked + i][k] == ResultCode::Ok && creates_something(command) {
                    if retry[k] != ResultCode::Exists {
                        return Err(format!("round {round}: retried {command:?} answered {} instead of exists", retry[k]));
                    }
                    retried_existing += 1;
                }
            }
            attempted.push((later, commands.clone(), request_ends.clone()));
        }
        acked_results = reference(&attempted).1;
        storage.set_faults(faults);
    }
    Ok((attempted.len(), retried_existing))
}

#[test]
fn acknowledged_batches_survive_crashes_exactly_once() {
    let seeds: Vec<u64> = match std::env::var("NODE_SEED") {
        Ok(seed) => vec![seed.parse().expect("NODE_SEED is a number")],
        Err(_) => (0..std::env::var("NODE_SEEDS").map(|s| s.parse().expect("number")).unwrap_or(60)).collect(),
    };
    let (mut batches, mut retried) = (0, 0);
    for seed in &seeds {
        match run_seed(*seed) {
            Ok((b, r)) => {
                batches += b;
                retried += r;
            }
            Err(why) => panic!("seed {seed}: {why}\nreplay: NODE_SEED={seed} cargo test -p bursar-tests --test node_crash"),
        }
    }
    eprintln!("node crash test: {batches} batches recovered and checked, {retried} retried commands answered exists");
    if seeds.len() > 10 {
        assert!(batches > 1000 && retried > 0, "the run exercised too little");
    }
}

/// A group of batches of which one does not fit a log entry is refused whole before anything is
/// logged: the batch that fits is not left behind in the log's buffer, unapplied, for the next
/// sync to write.
#[test]
fn a_group_with_an_oversize_entry_is_refused_whole() {
    let storage = SimStorage::new(7, Faults::default());
    let (mut node, _) = Node::open(storage.clone(), CONFIG, limits()).expect("open");
    let mut workload = Workload::new(7);
    let mut results = Vec::new();
    node.submit(workload.now, &workload.setup(), &mut results).expect("setup");
    let before = logged_batches(&storage).expect("log");
    // A batch of up to 5 may come out empty (ticks): take the first that is not.
    let (now, small) = std::iter::repeat_with(|| workload.batch(5)).find(|(_, batch)| !batch.is_empty()).expect("a batch");
    // More commands than a 16 KiB entry holds (128 bytes each).
    let big: Vec<Command> = (0..200).map(|_| small[0]).collect();
    let refused = node.submit_entries(now, &[Input::single(&small), Input::single(&big)], &mut results);
    assert!(matches!(refused, Err(bursar_net::NodeError::Log(bursar_wal::WalError::EntryTooLarge { .. }))), "{refused:?}");
    results.clear();
    node.submit(now, &small, &mut results).expect("the small batch alone");
    assert_eq!(logged_batches(&storage).expect("log"), before + 1, "exactly the batch submitted alone was logged");
    // Replaying the log gives the live state: no entry the engine never applied was written.
    let live = node.engine().digest();
    drop(node);
    storage.crash();
    let (recovered, _) = Node::open(storage.clone(), CONFIG, limits()).expect("reopen");
    assert_eq!(recovered.engine().digest(), live);
}

/// A node under `Retention::RecycleBeforeSnapshots`: its snapshots recycle the segments they
/// cover, a crash and restart recovers exactly the live state from the newest snapshot and the
/// log after it, and it goes on serving (and recycling) from there.
#[test]
fn a_node_with_retention_recycles_segments_and_recovers_exactly() {
    let config = WalConfig { retention: bursar_wal::Retention::RecycleBeforeSnapshots, ..CONFIG };
    let storage = SimStorage::new(11, Faults::default());
    let (mut node, _) = Node::open(storage.clone(), config, limits()).expect("open");
    let mut workload = Workload::new(11);
    let mut results = Vec::new();
    node.submit(workload.now, &workload.setup(), &mut results).expect("setup");
    let mut run = |node: &mut Node<SimStorage>, batches: usize| {
        for k in 0..batches {
            let (now, commands) = workload.batch(30);
            results.clear();
            node.submit(now, &commands, &mut results).expect("submit");
            if k % 10 == 9 {
                node.snapshot().expect("snapshot");
            }
        }
    };
    // 30 commands a batch, about 4 KiB of log each: 300 batches fill about 18 segments of 64 KiB.
    run(&mut node, 300);
    let names = storage.list_names();
    assert!(!names.contains(&bursar_wal::segment_name(0)), "covered segments were recycled: {names:?}");
    assert!(names.iter().filter(|n| n.starts_with("wal-")).count() <= 8, "{names:?}");
    let live = node.engine().digest();
    drop(node);
    storage.crash();
    let (mut node, report) = Node::open(storage.clone(), config, limits()).expect("reopen from a snapshot");
    assert!(report.snapshot.is_some());
    assert_eq!(node.engine().digest(), live, "the snapshot and the log after it give the live state");
    run(&mut node, 100);
    let live = node.engine().digest();
    drop(node);
    let (node, _) = Node::open(storage.clone(), config, limits()).expect("reopen again");
    assert_eq!(node.engine().digest(), live);
}

/// Checkpoints logged so far.
fn logged_checkpoints(storage: &SimStorage) -> usize {
    let mut checkpoints = 0;
    bursar_wal::verify_log(storage, &mut |entry| {
        let body = batch::decode_body(entry.body, &mut Vec::new(), &mut Vec::new()).map_err(|e| e.to_string())?;
        checkpoints += usize::from(matches!(body, batch::Body::Checkpoint(_)));
        Ok(())
    })
    .expect("clean log");
    checkpoints
}

/// A node that restarts more often than its checkpoint and snapshot intervals still checkpoints
/// and snapshots: both count from the last one in the log, not from the start of the process.
#[test]
fn checkpoint_and_snapshot_intervals_count_across_restarts() {
    let storage = SimStorage::new(13, Faults::default());
    let mut workload = Workload::new(13);
    let mut results = Vec::new();
    let reopen = || {
        let (mut node, _) = Node::open(storage.clone(), CONFIG, limits()).expect("open");
        node.set_checkpoint_every_entries(5);
        node
    };
    let mut node = reopen();
    node.submit(workload.now, &workload.setup(), &mut results).expect("setup");
    for _ in 0..3 {
        let (now, commands) = workload.batch(5);
        node.submit(now, &commands, &mut results).expect("batch");
    }
    assert_eq!(node.entries_since_snapshot(), 4);
    drop(node);
    storage.crash();
    let mut node = reopen();
    assert_eq!(node.entries_since_snapshot(), 4, "no snapshot on disk: every entry counts");
    for expected_checkpoints in [0, 1] {
        let (now, commands) = workload.batch(5);
        node.submit(now, &commands, &mut results).expect("batch");
        assert_eq!(logged_checkpoints(&storage), expected_checkpoints, "the 5th entry since the start is checkpointed before the 6th");
    }
    let snapshot_seq = node.snapshot().expect("snapshot");
    let (now, commands) = workload.batch(5);
    node.submit(now, &commands, &mut results).expect("batch");
    drop(node);
    storage.crash();
    let node = reopen();
    assert_eq!(node.entries_since_snapshot(), 1, "counted from the snapshot at {snapshot_seq}");
}

/// A change of limits is logged: it holds at every later start, from the log and from a
/// snapshot, and the audit's replay from genesis reaches the same state; limits no engine can
/// hold are refused with nothing logged.
#[test]
fn a_change_of_limits_is_logged_and_holds_after_restarts() {
    use bursar_tests::setup::{ledger_and_accounts, transfer};
    let storage = SimStorage::new(17, Faults::default());
    let (mut node, _) = Node::open(storage.clone(), CONFIG, limits()).expect("open");
    let mut results = Vec::new();
    node.submit(1, &ledger_and_accounts(2), &mut results).expect("setup");
    let tight = Limits { transfers_max: 2, ..limits() };
    assert_eq!(node.change_limits(tight), Ok(true));
    assert_eq!(node.change_limits(tight), Ok(false), "equal limits log nothing");
    let impossible = Limits { transfers_max: u32::MAX, ..limits() };
    assert!(matches!(node.change_limits(impossible), Err(bursar_net::node::NodeError::Limits(_))));
    let send = |node: &mut Node<SimStorage>, id: u128| {
        let mut results = Vec::new();
        node.submit(10 + id as u64, &[Command::Transfer(transfer(id, 1, 2, 5))], &mut results).expect("submit");
        results[0]
    };
    assert_eq!(
        [send(&mut node, 1), send(&mut node, 2), send(&mut node, 3)],
        [ResultCode::Ok, ResultCode::Ok, ResultCode::TransfersLimitReached]
    );
    let live = node.engine().digest();
    drop(node);
    storage.crash();
    let (mut node, report) = Node::open(storage.clone(), CONFIG, limits()).expect("reopen from the log");
    assert!(report.snapshot.is_none());
    assert_eq!((*node.engine().limits(), node.engine().digest()), (tight, live), "the logged limits, not the ones given at open");
    assert_eq!(node.change_limits(limits()), Ok(true), "raised again");
    assert_eq!(send(&mut node, 3), ResultCode::Ok);
    node.snapshot().expect("snapshot");
    let live = node.engine().digest();
    drop(node);
    let (node, report) = Node::open(storage.clone(), CONFIG, limits()).expect("reopen from the snapshot");
    assert!(report.snapshot.is_some());
    assert_eq!((*node.engine().limits(), node.engine().digest()), (limits(), live));
    let mut replayed = Engine::new(limits());
    let mut replayer = bursar_engine::replay::Replayer::new();
    bursar_wal::verify_log(&storage, &mut |entry| replayer.apply(&mut replayed, entry.seq, entry.body).map(drop)).expect("replay");
    assert_eq!(replayed.digest(), live, "replay from genesis applies both changes where they were logged");
}
