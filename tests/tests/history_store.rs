//! A node with a history store on disk answers exactly as one that keeps every transfer in
//! memory: six chunks of transfers and eight of balance entries (two accounts keep a balance
//! history), most of them moved to the stores and evicted, then re-sent ids, captures of evicted
//! holds, lookups and balance histories that read them back. Its snapshot is slim (the evicted
//! chunks stay in the stores) and a restart reads them back; a damaged page is refused (not
//! believed) while serving, and at the next start the snapshot that needs it is skipped, the
//! state rebuilt from the log and the page rewritten. The stored ids leave memory for the
//! store's id index, and a start without it (an upgrade) builds it again.

use bursar_engine::transfer_flags::{PENDING, POST_PENDING};
use bursar_engine::{
    account_flags, filter_flags, AccountFilter, Command, Engine, Limits, ResultCode, Transfer, BALANCE_ENTRY_SIZE, CHUNK_BITS,
    EXPIRED_SIZE, FAILED_SIZE, RECORD_SIZE,
};
use bursar_net::history::{
    BALANCES_DIR, BALANCE_CHUNK_BYTES, CHUNK_BYTES, EXPIRED_CHUNK_BYTES, EXPIRED_DIR, EXPIRED_IMAGES_DIR, FAILED_CHUNK_BYTES, IDS_DIR,
    LINEAGE_DIR,
};
use bursar_net::Node;
use bursar_node::feed::{Durable, Follower};
use bursar_wal::history::HISTORY_DATA_FILE;
use bursar_wal::{FsStorage, WalConfig};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

const CHUNK_LEN: u128 = 1 << CHUNK_BITS;
const BATCH: u128 = 8_000;
/// Transfers in the bulk: six chunks and a bit.
const BULK: u128 = 6 * CHUNK_LEN + 1_000;
const HOLDS: u128 = 5;
/// Declined transfers (to an account that does not exist): failed ids, two chunks and a bit.
const DECLINED: u128 = 2 * CHUNK_LEN + 4_000;
/// The first declined id.
const DECLINED_FROM: u128 = 10_000_000;

/// Holds that expire unused a second after they are made: two chunks of expired holds and a bit.
const EXPIRING: u128 = 2 * CHUNK_LEN + 4_000;
/// The first expiring hold's id.
const EXPIRING_FROM: u128 = 20_000_000;
/// The first id of transfers made after the bulk.
const MORE_FROM: u128 = 30_000_000;

fn expiring(id: u128) -> Command {
    Command::Transfer(Transfer { flags: PENDING, timeout: 1, ..bursar_tests::setup::transfer(id, 1, 2, 1) })
}

fn declined(id: u128) -> Command {
    Command::Transfer(bursar_tests::setup::transfer(id, 1, 999, 1))
}

fn transfer(id: u128, flags: u16, pending_id: u128) -> Command {
    let amount = if pending_id != 0 { 0 } else { 1 };
    Command::Transfer(Transfer { pending_id, flags, ..bursar_tests::setup::transfer(id, 1 + id % 3, 2 + id % 3, amount) })
}

/// Accounts that keep a balance history.
const WITH_HISTORY: [u128; 2] = [2, 3];

/// Every batch: accounts (two with a balance history), then the bulk (its first transfers are
/// pending holds).
fn bulk() -> Vec<Vec<Command>> {
    let mut accounts = bursar_tests::setup::ledger_and_accounts(4);
    for command in &mut accounts {
        if let Command::CreateAccount(a) = command {
            if WITH_HISTORY.contains(&a.id) {
                a.flags |= account_flags::HISTORY;
            }
        }
    }
    let mut batches = vec![accounts];
    let ids: Vec<u128> = (1..=BULK).collect();
    for slice in ids.chunks(BATCH as usize) {
        batches.push(slice.iter().map(|&id| transfer(id, if id <= HOLDS { PENDING } else { 0 }, 0)).collect());
    }
    let declined_ids: Vec<u128> = (DECLINED_FROM..DECLINED_FROM + DECLINED).collect();
    for (k, slice) in declined_ids.chunks(BATCH as usize).enumerate() {
        batches.insert(2 + 2 * k, slice.iter().map(|&id| declined(id)).collect());
    }
    let expiring_ids: Vec<u128> = (EXPIRING_FROM..EXPIRING_FROM + EXPIRING).collect();
    batches.extend(expiring_ids.chunks(BATCH as usize).map(|slice| slice.iter().map(|&id| expiring(id)).collect()));
    batches
}

/// Commands that read evicted records: a re-sent transfer, captures of evicted holds, a re-sent
/// capture, a transfer new again.
fn cold_batch() -> Vec<Command> {
    vec![
        transfer(100, 0, 0),
        transfer(BULK + 1, POST_PENDING, 1),
        transfer(BULK + 2, POST_PENDING, 2),
        transfer(BULK + 1, POST_PENDING, 1),
        transfer(BULK + 3, 0, 0),
        transfer(7, PENDING, 0),
        declined(DECLINED_FROM + 3),
        transfer(DECLINED_FROM + 4, 0, 0),
        transfer(BULK + 5, POST_PENDING, EXPIRING_FROM + 5),
    ]
}

fn open(dir: &Path) -> (Node<FsStorage>, bursar_net::history::HistoryAttached, bursar_wal::RecoveryReport) {
    let (node, attached, report, ()) = open_with(dir, |_| ());
    (node, attached, report)
}

/// Opens the node in `dir` on its history stores, which `prepare` is handed first; with what
/// `prepare` returned.
fn open_with<T>(
    dir: &Path,
    prepare: impl FnOnce(&bursar_net::history::Stores) -> T,
) -> (Node<FsStorage>, bursar_net::history::HistoryAttached, bursar_wal::RecoveryReport, T) {
    let stores = bursar_net::history::open_store(&dir.join("history")).expect("history store");
    let prepared = prepare(&stores);
    let storage = FsStorage::open(dir.join("log")).expect("log dir");
    let (node, report, attached) = Node::open_with_history(storage, WalConfig::default(), Limits::default(), Some(stores)).expect("opens");
    (node, attached.expect("a store was given"), report, prepared)
}

/// Bytes of the newest snapshot file.
fn newest_snapshot_bytes(dir: &Path) -> u64 {
    let snapshots = std::fs::read_dir(dir.join("log")).expect("log dir").filter_map(|e| {
        let e = e.expect("entry");
        e.file_name().to_string_lossy().ends_with(".snap").then(|| (e.file_name(), e.metadata().expect("metadata").len()))
    });
    snapshots.max().expect("a snapshot").1
}

fn submit(node: &mut Node<FsStorage>, now: u64, commands: &[Command]) -> Vec<ResultCode> {
    let mut results = Vec::new();
    node.submit(now, commands, &mut results).expect("submits");
    results
}

/// Submits `commands` at `now` to `node` and to `reference`, checks both answer the same, and
/// returns the answers.
fn submit_both(node: &mut Node<FsStorage>, reference: &mut Engine, now: u64, commands: &[Command]) -> Vec<ResultCode> {
    let mut expected = Vec::new();
    reference.execute(now, commands, &mut expected).expect("reference");
    assert_eq!(submit(node, now, commands), expected);
    expected
}

/// Applies [`bulk`] to `node` and `reference` alike (the same results), then a batch a second
/// later, by which every expiring hold has expired; returns that batch's time.
fn apply_bulk(node: &mut Node<FsStorage>, reference: &mut Engine) -> u64 {
    let mut now = 1_000_000_000u64;
    for batch in bulk() {
        now += 1_000;
        let mut expected = Vec::new();
        reference.execute(now, &batch, &mut expected).expect("reference");
        assert_eq!(submit(node, now, &batch), expected);
    }
    now += 2_000_000_000;
    reference.execute(now, &[], &mut Vec::new()).expect("reference");
    submit(node, now, &[]);
    now
}

/// Waits for the writer to store what it was handed, as a stop does before its final snapshot
/// (no batch in between), and checks the node evicted it: every full chunk but the newest of
/// each kind.
fn drain(node: &mut Node<FsStorage>) {
    assert!(node.history_drain(std::time::Duration::from_secs(60)), "the writer stores what it is handed: {:?}", node.metrics());
    let e = node.engine();
    let chunks = [e.evicted_chunks(), e.sealed_transfer_chunks(), e.evicted_balance_chunks(), e.sealed_balance_chunks()]
        .into_iter()
        .chain([e.evicted_failed_chunks(), e.sealed_failed_chunks(), e.evicted_expired_chunks(), e.sealed_expired_chunks()])
        .collect::<Vec<_>>();
    assert!(
        chunks.chunks(2).all(|pair| pair[0] + 1 == pair[1]),
        "evicted, sealed (transfers, balance entries, failed ids, expired holds): {chunks:?}"
    );
}

/// Balance-history queries of each account with one: every entry (the oldest 8 189 and the
/// newest), and a window in the middle.
fn balance_filters() -> Vec<AccountFilter> {
    let sides = filter_flags::DEBITS | filter_flags::CREDITS;
    let every = AccountFilter { limit: 8189, flags: sides, ..AccountFilter::default() };
    let mut filters = Vec::new();
    for account_id in WITH_HISTORY {
        filters.push(AccountFilter { account_id, ..every });
        filters.push(AccountFilter { account_id, flags: sides | filter_flags::REVERSED, ..every });
        // Transfers take a nanosecond each from the first batch's clock on: the bulk's middle.
        let (timestamp_min, timestamp_max) = (1_000_000_000 + BULK as u64 / 3, 1_000_000_000 + BULK as u64 / 2);
        filters.push(AccountFilter { account_id, timestamp_min, timestamp_max, limit: 100, ..every });
    }
    filters
}

fn compare(node: &mut Node<FsStorage>, reference: &mut Engine) {
    assert_eq!(node.status().state_digest, reference.state_digest());
    for id in [1, 2, 3, 100, 40_000, BULK, BULK + 1, BULK + 2, BULK + 3] {
        assert_eq!(node.engine().transfer(id), reference.transfer(id), "transfer {id}");
    }
    assert!(node.engine().all_transfers().eq(reference.all_transfers()), "every transfer, read through");
    for id in (1..=HOLDS).chain([BULK + 1, BULK + 2, EXPIRING_FROM, EXPIRING_FROM + 5, EXPIRING_FROM + EXPIRING - 1]) {
        assert_eq!(node.engine().hold(id), reference.hold(id), "hold state of {id}, its capture read through");
        assert_eq!(node.engine().lineage(id), reference.lineage(id), "lineage of {id}");
    }
    for id in [DECLINED_FROM, DECLINED_FROM + 3, DECLINED_FROM + DECLINED - 1, DECLINED_FROM + DECLINED] {
        assert_eq!(node.engine().failed_transfer(id), reference.failed_transfer(id), "failed id {id}");
    }
    for account_id in 1..=4 {
        for flags in [filter_flags::DEBITS | filter_flags::CREDITS, filter_flags::CREDITS | filter_flags::REVERSED] {
            let filter = AccountFilter { account_id, limit: 8189, flags, ..AccountFilter::default() };
            assert_eq!(node.engine().get_account_transfers(&filter), reference.get_account_transfers(&filter), "{filter:?}");
        }
    }
    for filter in balance_filters() {
        let balances = node.engine().get_account_balances(&filter);
        assert!(!balances.is_empty(), "{filter:?}");
        assert_eq!(balances, reference.get_account_balances(&filter), "{filter:?}");
    }
    assert_eq!(node.engine().take_history_failure(), None);
}

#[test]
fn evicted_history_answers_as_memory_survives_restarts_and_damage_is_caught() {
    let dir = std::env::temp_dir().join(format!("bursar-history-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut reference = Engine::new(Limits::default());
    let (mut node, attached, _) = open(&dir);
    assert_eq!(attached, Default::default());
    let mut now = apply_bulk(&mut node, &mut reference);
    drain(&mut node);
    assert_eq!(node.engine().evicted_expired_chunks(), 1, "the older of two full chunks of expired holds");
    assert!(node.engine().evicted_chunks() >= 4, "evicted {} chunks", node.engine().evicted_chunks());
    assert!(node.engine().evicted_balance_chunks() >= 6, "evicted {} chunks", node.engine().evicted_balance_chunks());
    assert_eq!(node.engine().evicted_failed_chunks(), 1, "the older of two full chunks of failed ids");
    now += 1_000;
    let mut expected = Vec::new();
    reference.execute(now + 1, &cold_batch(), &mut expected).expect("reference");
    assert_eq!(submit(&mut node, now + 1, &cold_batch()), expected);
    assert!(expected.contains(&ResultCode::Exists), "the re-sent ids are found: {expected:?}");
    // What an operator sees: the prefetch's reads, the evicted transfers, no chunk waiting.
    let metrics = node.metrics();
    assert!(metrics.history_reads > 0, "the re-sent ids and captures were read back: {metrics:?}");
    assert_eq!(metrics.history_evicted, node.engine().evicted_chunks() as u64 * CHUNK_LEN as u64);
    assert_eq!((metrics.history_failed, metrics.history_waiting), (0, 0));
    // The stored ids' index was asked about the batch's ids; what it read in vain is counted.
    assert!(node.engine().ids_stored_chunks() > 0, "the drained chunks' ids are on disk");
    assert!(metrics.ids_asked >= cold_batch().len() as u64, "{metrics:?}");
    assert!(metrics.ids_read_in_vain <= metrics.ids_asked, "{metrics:?}");
    assert_eq!(expected[6..8], [ResultCode::IdAlreadyFailed; 2], "the evicted failed ids still decide");
    assert_eq!(expected[8], ResultCode::PendingTransferExpired, "an evicted expired hold still expired");
    compare(&mut node, &mut reference);

    // The snapshot leaves the evicted chunks to the store; a restart reads them back from it
    // and checks the chunks it holds in memory.
    let evicted = node.engine().evicted_chunks() as u64;
    let balances_evicted = node.engine().evicted_balance_chunks() as u64;
    let snapshot_seq = node.snapshot().expect("snapshot");
    let entries = node.engine().balance_history_len() as u64;
    let full = (BULK + EXPIRING + 10) as u64 * RECORD_SIZE as u64
        + entries * BALANCE_ENTRY_SIZE as u64
        + (DECLINED as u64 + 1) * FAILED_SIZE as u64
        + EXPIRING as u64 * EXPIRED_SIZE as u64;
    let slim = newest_snapshot_bytes(&dir);
    let left_out = evicted * CHUNK_BYTES + balances_evicted * BALANCE_CHUNK_BYTES + FAILED_CHUNK_BYTES + EXPIRED_CHUNK_BYTES;
    assert!(slim < full - left_out + CHUNK_BYTES / 8, "a snapshot of {slim} bytes, {full} with every transfer and entry");
    drop(node);
    let (mut node, attached, report) = open(&dir);
    assert!(report.snapshot.is_some() && report.skipped_snapshots.is_empty(), "{report:?}");
    assert_eq!((attached.transfers.restored, attached.balances.restored), (evicted, balances_evicted), "{attached:?}");
    assert_eq!((attached.failed.restored, node.engine().evicted_failed_chunks()), (1, 1), "{attached:?}");
    assert_eq!((attached.expired.restored, node.engine().evicted_expired_chunks()), (1, 1), "{attached:?}");
    assert_eq!((attached.expired_images.restored, node.engine().expired_chunks_restored_from_images()), (1, 1), "{attached:?}");
    let checked = attached.total();
    assert!(attached.transfers.verified >= 1 && attached.balances.verified >= 1 && checked.repaired == 0, "{attached:?}");
    assert_eq!(node.engine().evicted_chunks() as u64, node.engine().sealed_transfer_chunks() as u64 - 1);
    assert_eq!(node.engine().evicted_balance_chunks() as u64, node.engine().sealed_balance_chunks() as u64 - 1);
    // The stored chunks came back from their restore images: only the first (it holds the
    // holds) was read.
    assert_eq!((node.engine().chunks_restored_from_images() as u64, attached.images.restored), (evicted, evicted), "{attached:?}");
    // Their hold states came from their lineage images.
    assert_eq!((node.engine().chunks_restored_from_lineage() as u64, attached.lineage.restored), (evicted, evicted), "{attached:?}");
    // Their ids stayed on disk, in the stored ids' index: memory holds those of the chunks after.
    assert_eq!((node.engine().ids_stored_chunks() as u64, attached.ids.0), (evicted, evicted + 1), "{attached:?}");
    let in_memory = node.engine().ids_in_memory();
    assert!((in_memory as u128) < 2 * CHUNK_LEN + DECLINED + 10, "{in_memory} ids in memory");
    compare(&mut node, &mut reference);
    // A change-feed follower starts from the slim snapshot too, with the node's store; without
    // it, from the log's start.
    let durable = Arc::new(Durable::default());
    node.set_feed_tail(Arc::clone(&durable));
    durable.publish(node.durable_seq());
    let mut follower = Follower::open(&dir.join("log"), Limits::default(), snapshot_seq + 1, &durable).expect("follower");
    assert_eq!(follower.engine().evicted_chunks() as u64, evicted, "placed at the slim snapshot");
    assert_eq!(follower.engine().evicted_balance_chunks() as u64, balances_evicted);
    let storeless = Arc::new(Durable::default());
    storeless.publish(node.durable_seq());
    let behind = Follower::open(&dir.join("log"), Limits::default(), snapshot_seq + 1, &storeless).expect("follower");
    assert_eq!(behind.engine().evicted_chunks(), 0, "replayed from the log's start");
    assert_eq!(behind.engine().transfers().len(), follower.engine().transfers().len());
    drop(behind);
    // Entries after the snapshot that read evicted records are followed and replayed the same way.
    let again = [transfer(200, 0, 0), transfer(BULK + 4, POST_PENDING, 3), transfer(300, 0, 0)];
    now += 1_000;
    let expected = submit_both(&mut node, &mut reference, now, &again);
    assert_eq!(expected[0], ResultCode::Exists);
    durable.publish(node.durable_seq());
    let mut followed = Vec::new();
    let mut collect = |_, events: &[bursar_engine::FeedEvent]| {
        followed.extend_from_slice(events);
        true
    };
    follower.read_through(durable.seq(), &mut collect).expect("followed");
    let ids: Vec<u128> = followed.iter().map(|e| u128::from_le_bytes(e.record[..16].try_into().expect("an id"))).collect();
    assert!(ids.contains(&200) && ids.contains(&300), "{ids:?}");
    drop(follower);
    drop(node);
    let (mut node, _, report) = open(&dir);
    assert!(report.entries_replayed >= 1 && report.snapshot.is_some(), "{report:?}");
    compare(&mut node, &mut reference);
    drop(node);

    // Without its store the slim snapshot cannot be used: the node rebuilds from the whole log.
    let storage = FsStorage::open(dir.join("log")).expect("log dir");
    let (mut plain, report) = Node::open(storage, WalConfig::default(), Limits::default()).expect("opens from the log");
    assert!(report.snapshot.is_none() && report.skipped_snapshots[0].1.contains("history store"), "{report:?}");
    compare(&mut plain, &mut reference);
    drop(plain);
    let (node, _, _) = open(&dir);

    // A damaged page: a read of it is refused, not believed ...
    let data = std::fs::OpenOptions::new().write(true).open(dir.join("history").join(HISTORY_DATA_FILE)).expect("data");
    data.write_all_at(&[0xA5], 100 * RECORD_SIZE as u64 + 3).expect("damage");
    assert_eq!(node.engine().transfer(101), None, "a record that cannot be read is not taken for the id");
    assert!(node.engine().take_history_failure().expect("the read failed").contains("checksum"));
    let balances = std::fs::OpenOptions::new().write(true).open(dir.join("history").join(BALANCES_DIR).join(HISTORY_DATA_FILE));
    balances.expect("balances").write_all_at(&[0x5A], 200 * BALANCE_ENTRY_SIZE as u64 + 20).expect("damage");
    node.engine().get_account_balances(&balance_filters()[0]);
    assert!(node.engine().take_history_failure().expect("the read failed").contains("checksum"));
    drop(node);
    // ... and the next start skips the snapshot that needs it, rebuilds the state from the log
    // and rewrites the page from it.
    let (mut node, attached, report) = open(&dir);
    assert!(report.skipped_snapshots.iter().any(|(_, why)| why.contains("checksum")), "{report:?}");
    assert_eq!((attached.transfers.restored, attached.transfers.repaired), (0, 1), "{attached:?}");
    assert_eq!((attached.balances.restored, attached.balances.repaired), (0, 1), "{attached:?}");
    compare(&mut node, &mut reference);
    drop(node);

    // As after an upgrade from a build without the stored ids' index: the start holds every id
    // in memory, the writer builds the runs from the images, the ids leave memory again, and a
    // re-sent old id is still found.
    std::fs::remove_dir_all(dir.join("history").join(IDS_DIR)).expect("the index removed");
    let (attached, _) = start_and_build_the_ids_runs(&dir, &mut reference, now + 1_000);
    assert_eq!(attached.ids.0, 0, "{attached:?}");

    // As after an upgrade from a build without lineage images: the start restores the hold
    // states from the records and writes every chunk's lineage image; the next start uses them.
    std::fs::remove_dir_all(dir.join("history").join(LINEAGE_DIR)).expect("the lineage images removed");
    std::fs::remove_dir_all(dir.join("history").join(EXPIRED_DIR).join(EXPIRED_IMAGES_DIR)).expect("the expired holds' images removed");
    let (mut node, attached, _) = open(&dir);
    let sealed = node.engine().sealed_transfer_chunks() as u64;
    assert_eq!((attached.lineage.restored, attached.lineage.appended), (0, sealed), "{attached:?}");
    let expired_sealed = node.engine().sealed_expired_chunks() as u64;
    assert_eq!((attached.expired_images.restored, attached.expired_images.appended), (0, expired_sealed), "{attached:?}");
    compare(&mut node, &mut reference);
    node.snapshot().expect("snapshot");
    let evicted = node.engine().evicted_chunks() as u64;
    drop(node);
    let (mut node, attached, _) = open(&dir);
    assert_eq!((attached.lineage.restored, attached.lineage.repaired), (evicted, 0), "{attached:?}");
    assert_eq!((attached.expired_images.restored, attached.expired_images.repaired), (1, 0), "{attached:?}");
    compare(&mut node, &mut reference);
    drop(node);
    // A lineage store of another layout is emptied and written again, not a reason to stop.
    let lineage_dir = dir.join("history").join(LINEAGE_DIR);
    std::fs::remove_dir_all(&lineage_dir).expect("the lineage images removed");
    bursar_wal::HistoryStore::open(&lineage_dir, 4096).expect("a store of another layout").append(0, &[7; 4096]).expect("a chunk");
    let (mut node, attached, _) = open(&dir);
    assert!(attached.images_dropped.as_deref().is_some_and(|why| why.contains("chunk")), "{attached:?}");
    assert_eq!((attached.lineage.restored, attached.lineage.appended), (0, sealed), "{attached:?}");
    compare(&mut node, &mut reference);
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens the node in `dir`, whose stored ids' index lacks runs: the start holds those ids in
/// memory, the writer builds the runs from the images and the ids leave memory; then, at `now`,
/// a re-sent old id is found and every query answers as `reference` does.
fn start_and_build_the_ids_runs(
    dir: &Path,
    reference: &mut Engine,
    now: u64,
) -> (bursar_net::history::HistoryAttached, bursar_wal::RecoveryReport) {
    let (mut node, attached, report) = open(dir);
    assert_eq!(node.engine().ids_stored_chunks() as u64, attached.ids.0, "{attached:?}");
    drain(&mut node);
    assert_eq!(node.engine().ids_stored_chunks(), node.engine().evicted_chunks(), "every stored chunk's ids indexed");
    let again = [transfer(100, 0, 0), transfer(BULK + 3, 0, 0), transfer(400, 0, 0)];
    let expected = submit_both(&mut node, reference, now, &again);
    assert_eq!(expected[0], ResultCode::Exists);
    compare(&mut node, reference);
    (attached, report)
}

/// The stored ids' index failing alone (its directory gone while the node serves). A chunk's
/// run is held in memory, so the first chunks' ids leave the engine all the same; the merge of
/// them onto disk fails, and later chunks' ids stay in the engine. The stores take every chunk,
/// a stop does not wait for the index, re-sent ids and every query answer as before, and the
/// next start builds the runs again from the images.
#[test]
fn a_failing_ids_index_holds_up_no_stop_and_loses_no_id() {
    let dir = std::env::temp_dir().join(format!("bursar-history-ids-failing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut reference = Engine::new(Limits::default());
    let (mut node, _, _, ids) = open_with(&dir, |stores| Arc::clone(&stores.ids));
    std::fs::remove_dir_all(dir.join("history").join(IDS_DIR)).expect("the index's directory removed");
    let mut now = apply_bulk(&mut node, &mut reference);
    drain(&mut node);
    let fanout = bursar_wal::idruns::MERGE_FANOUT;
    assert_eq!((ids.chunks(), ids.runs()), (fanout as u64, (fanout, fanout)), "the first chunks' runs are held");
    let stored = node.engine().ids_stored_chunks();
    assert!(stored >= 4 && stored == node.engine().evicted_chunks(), "the evicted chunks' ids left the engine: {stored}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ids.merge_failure().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ids.merge_failure().is_some_and(|why| why.contains("merging runs")), "the merge onto disk fails");
    // Another chunk: its run is refused, so its ids stay in the engine.
    let more: Vec<u128> = (MORE_FROM..MORE_FROM + CHUNK_LEN + 10).collect();
    for slice in more.chunks(BATCH as usize) {
        now += 1_000;
        submit_both(&mut node, &mut reference, now, &slice.iter().map(|&id| transfer(id, 0, 0)).collect::<Vec<_>>());
    }
    let started = std::time::Instant::now();
    assert!(node.history_drain(std::time::Duration::from_secs(60)), "the stores take every chunk: {:?}", node.metrics());
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "a stop does not wait for the ids' index");
    let sealed = node.engine().sealed_transfer_chunks() as u64;
    assert!(sealed > fanout as u64 && node.history_stored_chunks() == sealed, "{sealed} chunks, stored {}", node.history_stored_chunks());
    assert_eq!((ids.chunks(), node.engine().ids_stored_chunks()), (fanout as u64, fanout), "the later chunk's ids stay in memory");
    assert!(node.metrics().history_waiting > 0, "the chunks without a run still show as waiting");
    let again = [transfer(200, 0, 0), transfer(MORE_FROM + 7, 0, 0), transfer(BULK + 4, 0, 0)];
    now += 1_000;
    let expected = submit_both(&mut node, &mut reference, now, &again);
    assert_eq!(expected[..2], [ResultCode::Exists; 2]);
    compare(&mut node, &mut reference);
    node.snapshot().expect("snapshot");
    drop(node);
    // The next start builds the runs from the images.
    let (_, report) = start_and_build_the_ids_runs(&dir, &mut reference, now + 1_000);
    assert!(report.snapshot.is_some(), "{report:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk under the history store: the writer's first chunk fails, every chunk stays in
/// memory, the node answers as before and says so in its metrics; a stop does not wait for a
/// writer that fails, and its snapshot carries the chunks. With room again, the next start
/// stores what the stores lack and evicts it, and answers the same; and a disk that fills
/// while the node serves and then gets room again is written again without a restart.
#[test]
fn a_full_disk_keeps_the_history_in_memory_and_the_next_start_stores_it() {
    let dir = std::env::temp_dir().join(format!("bursar-history-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut reference = Engine::new(Limits::default());
    let (mut node, _, _, ()) = open_with(&dir, |stores| fill_disk(stores, true));
    let mut now = apply_bulk(&mut node, &mut reference);
    let started = std::time::Instant::now();
    assert!(!node.history_drain(std::time::Duration::from_secs(60)), "a writer that failed stores nothing more");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "a stop does not wait out a failed writer");
    let metrics = node.metrics();
    assert_eq!((metrics.history_failed, metrics.history_evicted), (1, 0), "{metrics:?}");
    assert!(metrics.history_waiting >= 5, "every full chunk waits: {metrics:?}");
    let e = node.engine();
    assert_eq!([e.evicted_chunks(), e.evicted_balance_chunks(), e.evicted_failed_chunks(), e.evicted_expired_chunks()], [0; 4]);
    now += 1_000;
    submit_both(&mut node, &mut reference, now, &cold_batch());
    compare(&mut node, &mut reference);
    node.snapshot().expect("the snapshot carries what the store could not take");
    drop(node);

    // Room again (a new process opens the stores afresh).
    let (mut node, attached, report, stores) = open_with(&dir, bursar_net::history::Stores::clone);
    assert!(report.snapshot.is_some(), "{report:?}");
    let sealed = node.engine().sealed_transfer_chunks() as u64;
    assert_eq!((attached.transfers.appended, attached.images.appended), (sealed, sealed), "{attached:?}");
    assert!(attached.balances.appended >= 6 && attached.failed.appended == 2 && attached.expired.appended == 2, "{attached:?}");
    drain(&mut node);
    assert_eq!(node.metrics().history_failed, 0);
    compare(&mut node, &mut reference);

    // The disk fills while the node serves, then gets room again: the writer tries again and
    // stores everything without a restart.
    fill_disk(&stores, true);
    let more: Vec<u128> = (30_000_000..30_000_000 + CHUNK_LEN + BATCH).collect();
    for slice in more.chunks(BATCH as usize) {
        let batch: Vec<Command> = slice.iter().map(|&id| transfer(id, 0, 0)).collect();
        now += 1_000;
        let mut expected = Vec::new();
        reference.execute(now, &batch, &mut expected).expect("reference");
        assert_eq!(submit(&mut node, now, &batch), expected);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.metrics().history_failed == 0 {
        assert!(std::time::Instant::now() < deadline, "the writer met the full disk");
        reference.execute(now, &[], &mut Vec::new()).expect("reference");
        submit(&mut node, now, &[]);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(node.metrics().history_waiting >= 1);
    fill_disk(&stores, false);
    drain(&mut node);
    assert_eq!(node.metrics().history_failed, 0, "the failure is over");
    compare(&mut node, &mut reference);
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Makes every one of `stores`' writes fail as on a full disk, or no longer.
fn fill_disk(stores: &bursar_net::history::Stores, full: bool) {
    for store in [&stores.transfers, &stores.balances, &stores.images, &stores.failed, &stores.expired] {
        store.fill_disk_for_tests(full);
    }
}
