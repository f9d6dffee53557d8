//! The audit tools against real data directories: a clean log replays (from genesis and from a
//! snapshot) and `--until` rebuilds an earlier moment; a tampered log (a byte changed in an old
//! entry, an entry removed, two swapped, a forged entry with a valid checksum, a checkpoint
//! whose digest the replay does not reach) is refused with the exact place; and against a live
//! server, the replayed digest equals the server's and a statement rebuilt from the log equals
//! the balances the server reports.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};

use bursar_engine::batch::{self, Checkpoint};
use bursar_engine::{Command, Limits, ResultCode, Transfer};
use bursar_net::Node;
use bursar_wal::{format, FsStorage, WalConfig};

const CONFIG: WalConfig = WalConfig {
    segment_size_bytes: 1 << 20,
    entry_body_max_bytes: 64 << 10,
    sync: bursar_wal::SyncPolicy::EveryBatch,
    retention: bursar_wal::Retention::KeepAll,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bursar-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bursar(args: &[&str], data: &Path) -> Output {
    Process::new(env!("CARGO_BIN_EXE_bursar")).args(args).arg("--data").arg(data).output().expect("run bursar")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn setup() -> Vec<Command> {
    bursar_tests::setup::ledger_and_accounts(10)
}

fn transfers(batch: u128) -> Vec<Command> {
    (0..10u128)
        .map(|k| {
            let id = 100 + batch * 10 + k;
            let debit = 1 + id % 10;
            let credit = 1 + (id + 3) % 10;
            Command::Transfer(Transfer {
                id,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: 1 + id,
                ledger: 1,
                code: 7,
                ..Default::default()
            })
        })
        .collect()
}

/// One entry's place: (seq, segment file, offset, stored length, is a batch).
type Place = (u64, String, u64, usize, bool);

/// A log of 20 equal-sized transfer batches with checkpoints every 4 entries and a snapshot;
/// returns every entry's place.
fn make_log(dir: &Path) -> Vec<Place> {
    let log = dir.join("log");
    let (mut node, _) = Node::open(FsStorage::open(&log).expect("dir"), CONFIG, Limits::default()).expect("open");
    node.set_checkpoint_every_entries(4);
    let mut now = 1_700_000_000_000_000_000u64;
    let mut results = Vec::new();
    node.submit(now, &setup(), &mut results).expect("setup");
    assert!(results.iter().all(|r| *r == ResultCode::Ok));
    for b in 0..20 {
        now += 1_000_000_000;
        results.clear();
        node.submit(now, &transfers(b), &mut results).expect("batch");
        assert!(results.iter().all(|r| *r == ResultCode::Ok), "{results:?}");
        if b == 12 {
            node.snapshot().expect("snapshot");
        }
    }
    drop(node);
    let mut places = Vec::new();
    bursar_wal::verify_log(&FsStorage::open_read_only(&log).expect("dir"), &mut |e| {
        let is_batch = matches!(batch::decode_body(e.body, &mut Vec::new(), &mut Vec::new()), Ok(batch::Body::Batch { .. }));
        places.push((e.seq, bursar_wal::segment_name(e.segment), e.offset, format::stored_len(e.body.len()), is_batch));
        Ok(())
    })
    .expect("clean log");
    places
}

fn edit_segment(dir: &Path, segment: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join("log").join(segment);
    let mut bytes = std::fs::read(&path).expect("segment");
    edit(&mut bytes);
    std::fs::write(&path, bytes).expect("write segment");
}

fn assert_refused(dir: &Path, segment: &str, offset: u64, seq: u64, why: &str) {
    let out = bursar(&["replay"], dir);
    let said = text(&out);
    assert!(!out.status.success(), "a tampered log replayed: {said}");
    let place = format!("LOG BROKEN in {segment} at byte offset {offset}, sequence number {seq}");
    assert!(said.contains(&place), "expected «{place}» in: {said}");
    assert!(said.contains(why), "expected «{why}» in: {said}");
    // The server refuses to start on it too.
    let storage = FsStorage::open(dir.join("log")).expect("dir");
    assert!(Node::open(storage, CONFIG, Limits::default()).is_err());
}

#[test]
fn a_clean_log_replays_from_genesis_from_a_snapshot_and_to_any_entry() {
    let dir = temp_dir("clean");
    let places = make_log(&dir);
    let last = places.last().expect("entries").0;
    let full = bursar(&["replay", "--json"], &dir);
    assert!(full.status.success(), "{}", text(&full));
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).expect("json");
    assert_eq!(full["applied_seq"], last);
    assert!(full["checkpoints_checked"].as_u64().expect("number") >= 5, "{full}");
    assert_eq!(full["commands_ok"], 11 + 200);
    assert_eq!(full["balanced"], true);

    let from_snapshot = bursar(&["replay", "--json", "--from-snapshot"], &dir);
    assert!(from_snapshot.status.success(), "{}", text(&from_snapshot));
    let from_snapshot: serde_json::Value = serde_json::from_slice(&from_snapshot.stdout).expect("json");
    assert_eq!(from_snapshot["state_digest"], full["state_digest"]);
    assert!(from_snapshot["snapshot"].as_str().expect("a note").contains("equal the genesis replay"));

    // The state after entry 2 holds exactly the first transfer batch.
    let early = bursar(&["replay", "--json", "--until", "2"], &dir);
    assert!(early.status.success(), "{}", text(&early));
    let early: serde_json::Value = serde_json::from_slice(&early.stdout).expect("json");
    assert_eq!(early["applied_seq"], 2);
    assert_eq!(early["commands_ok"], 21);
    assert_ne!(early["state_digest"], full["state_digest"]);
    // The same moment by time: the second batch was stamped one second after the first.
    let at = bursar(&["replay", "--json", "--until", "1700000001000000000ns"], &dir);
    let at: serde_json::Value = serde_json::from_slice(&at.stdout).expect("json");
    assert_eq!(at["commands_ok"], 21);

    let head = bursar(&["log", "head", "--json"], &dir);
    let head: serde_json::Value = serde_json::from_slice(&head.stdout).expect("json");
    assert_eq!(head["seq"], last);
    assert_eq!(head["chain_hash"], full["applied_hash"]);

    let dump = bursar(&["log", "dump", "--seq", "2..3"], &dir);
    let said = text(&dump);
    assert!(dump.status.success(), "{said}");
    assert!(
        said.contains("entry 2 at") && said.contains("transfer id=100 debit=1 credit=4 amount=101") && said.contains("-> ok"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_changed_byte_in_an_old_entry_is_located() {
    let dir = temp_dir("byte");
    let places = make_log(&dir);
    let (seq, segment, offset, len, _) = places[2].clone();
    edit_segment(&dir, &segment, |b| b[offset as usize + len - 20] ^= 0x01);
    assert_refused(&dir, &segment, offset, seq, &format!("entry {seq} is damaged"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The last entry was synced and acknowledged: damage to it is refused and named by the audit
/// and by the server's recovery (the durable mark vouches for it), never cut as a torn tail.
#[test]
fn a_changed_byte_in_the_last_acknowledged_entry_is_located() {
    let dir = temp_dir("last");
    let places = make_log(&dir);
    let (seq, segment, offset, len, _) = places.last().cloned().expect("entries");
    edit_segment(&dir, &segment, |b| b[offset as usize + len - 20] ^= 0x01);
    assert_refused(&dir, &segment, offset, seq, "durable and may have been acknowledged");
    let start = Process::new(env!("CARGO_BIN_EXE_bursar"))
        .args(["start", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--reserve-accounts", "0", "--reserve-transfers", "0"])
        .arg("--data")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(!start.status.success(), "the server started on a log missing an acknowledged entry: {}", text(&start));
    assert!(text(&start).contains(&format!("sequence {seq}")), "{}", text(&start));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_removed_entry_is_located() {
    let dir = temp_dir("removed");
    let places = make_log(&dir);
    let (seq, segment, offset, len, _) = places[5].clone();
    edit_segment(&dir, &segment, |b| {
        let at = offset as usize;
        b.drain(at..at + len);
        b.extend(std::iter::repeat_n(0, len));
    });
    assert_refused(&dir, &segment, offset, seq, &format!("expected {seq}, found {}", seq + 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_swapped_entries_are_located() {
    let dir = temp_dir("swapped");
    let places = make_log(&dir);
    let k = (3..places.len() - 1)
        .find(|&k| places[k].4 && places[k + 1].4 && places[k].3 == places[k + 1].3)
        .expect("two equal batches in a row");
    let (seq, segment, offset, len, _) = places[k].clone();
    edit_segment(&dir, &segment, |b| {
        let at = offset as usize;
        let (first, second) = b[at..at + 2 * len].split_at_mut(len);
        first.swap_with_slice(second);
    });
    assert_refused(&dir, &segment, offset, seq, &format!("expected {seq}, found {}", seq + 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forged_entry_with_a_valid_checksum_breaks_the_chain_at_the_next_entry() {
    let dir = temp_dir("forged");
    let places = make_log(&dir);
    let k = (3..places.len() - 1).find(|&k| places[k].4).expect("a batch");
    let (seq, segment, offset, _, _) = places[k].clone();
    let next = places[k + 1].clone();
    let index: u64 =
        segment.strip_prefix("wal-").and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse().ok()).expect("a segment name");
    edit_segment(&dir, &segment, |b| {
        let at = offset as usize;
        let format::Slot::Valid(header) = format::read_entry(b, at, index) else { panic!("entry {seq} is valid") };
        let mut body = format::entry_body(b, at, &header).to_vec();
        // The first transfer's amount (record offset 48) gets a digit more: same length, new money.
        let record = 16 + 16;
        body[record + 48] = body[record + 48].wrapping_add(100);
        let mut forged = Vec::new();
        format::encode_entry(&header, &body, index, &mut forged);
        b[at..at + forged.len()].copy_from_slice(&forged);
    });
    assert_refused(&dir, &next.1, next.2, next.0, "hash chain broken");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_the_replay_does_not_reach_stops_it_with_the_sequence_number() {
    let dir = temp_dir("checkpoint");
    let log = dir.join("log");
    let open = |_: &bursar_wal::SnapshotHeader, _: &[u8]| Ok(());
    let (mut wal, _) = bursar_wal::open(FsStorage::open(&log).expect("dir"), CONFIG, &mut { open }, &mut |_| Ok(())).expect("open");
    let mut engine = bursar_engine::Engine::new(Limits::default());
    let mut body = Vec::new();
    let now = 1_700_000_000_000_000_000u64;
    batch::encode(now, &setup(), &mut body);
    engine.execute(now, &setup(), &mut Vec::new()).expect("batch");
    wal.append(now, &body).expect("append");
    // A writer whose engine diverged: the digest it logs is not the replayed one.
    let mut wrong = engine.state_digest();
    wrong[0] ^= 1;
    body.clear();
    batch::encode_checkpoint(&Checkpoint { clock: engine.timestamp(), digest: wrong }, &mut body);
    wal.append(engine.timestamp(), &body).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let out = bursar(&["replay"], &dir);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("REPLAY STOPPED: entry 2: state digest differs from the one logged"), "{said}");
    assert!(Node::open(FsStorage::open(&log).expect("dir"), CONFIG, Limits::default()).is_err(), "the server must refuse it too");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the server binary on an ephemeral loopback port.
fn start(dir: &Path) -> (std::process::Child, SocketAddr) {
    common::start_server(env!("CARGO_BIN_EXE_bursar"), dir, &["--checkpoint-every-entries", "4"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_server_and_the_replay_agree_and_statements_match_its_balances() {
    let dir = temp_dir("live");
    // A raised capacity is a logged entry: the replay applies it where the server did.
    let extra = ["--checkpoint-every-entries", "4", "--transfers-max", "100000000"];
    let (mut server, addr, said) = common::start_server_saying(env!("CARGO_BIN_EXE_bursar"), &dir, &extra);
    assert!(said.iter().any(|l| l.contains("limits changed and logged: at most 8388608 accounts and 100000000 transfers")), "{said:?}");
    let cert = std::fs::read(dir.join("server.crt")).expect("certificate");
    let client = bursar_net::client::Client::connect(addr, cert.into(), "localhost").await.expect("connect");
    assert!(client.submit(setup()).await.expect("setup").iter().all(|r| *r == ResultCode::Ok));
    for b in 0..30 {
        assert!(client.submit(transfers(b)).await.expect("batch").iter().all(|r| *r == ResultCode::Ok));
    }
    let hold = Transfer { id: 9_000, debit_account_id: 1, credit_account_id: 2, amount: 250, ledger: 1, code: 9, ..Default::default() };
    let capture = Transfer { id: 9_001, pending_id: 9_000, amount: 199, ..Default::default() };
    assert_eq!(client.submit(vec![Command::Hold(hold)]).await.expect("hold"), vec![ResultCode::Ok]);
    assert_eq!(client.submit(vec![Command::Capture(capture)]).await.expect("capture"), vec![ResultCode::Ok]);

    let cert_path = dir.join("server.crt");
    let addr_text = addr.to_string();
    let verify = bursar(&["replay", "--verify-against", &addr_text, "--cert", cert_path.to_str().expect("utf-8")], &dir);
    let said = text(&verify);
    assert!(verify.status.success(), "{said}");
    assert!(said.contains("EQUAL to the replay"), "{said}");
    // The server logged a checkpoint every 4 entries and the replay checked each one.
    assert!(said.contains("  checkpoints   8 logged state digests equal the replayed state"), "{said}");
    let dump = text(&bursar(&["log", "dump", "--seq", "1"], &dir));
    assert!(dump.contains("limits: ledgers_max 65536, accounts_max 8388608, transfers_max 100000000"), "{dump}");

    for account in [1u128, 2, 7] {
        let statement = bursar(&["statement", "--account", &account.to_string(), "--json"], &dir);
        assert!(statement.status.success(), "{}", text(&statement));
        let stdout = String::from_utf8(statement.stdout).expect("utf-8");
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().expect("lines")).expect("json");
        let live = client.lookup_accounts(vec![account]).await.expect("lookup")[0].expect("exists");
        let balance = live.credits_posted as i128 - live.debits_posted as i128;
        let sign = if balance < 0 { "-" } else { "" };
        let expected = format!("{sign}{}.{:02} EUR", balance.unsigned_abs() / 100, balance.unsigned_abs() % 100);
        assert_eq!(last["balance"], expected, "account {account}: {stdout}");
        assert_eq!(
            stdout.lines().count(),
            client
                .get_account_transfers(bursar_engine::AccountFilter {
                    account_id: account,
                    limit: 1_000,
                    flags: bursar_engine::filter_flags::DEBITS | bursar_engine::filter_flags::CREDITS,
                    ..Default::default()
                })
                .await
                .expect("transfers")
                .len()
        );
    }
    server.kill().expect("kill");
    server.wait().expect("wait");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One server per data directory: a second `bursar start` on it is refused with the first's pid
/// while the audit tools keep reading beside it. When the server dies under a `bursar bench`,
/// the bench says how many commands had been acknowledged, and the log holds at least those.
#[test]
fn a_second_server_is_refused_and_a_failed_bench_counts_what_was_acknowledged() {
    let dir = temp_dir("lock");
    let (mut server, addr) = start(&dir);
    let second = Process::new(env!("CARGO_BIN_EXE_bursar"))
        .args(["start", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--reserve-accounts", "0", "--reserve-transfers", "0"])
        .arg("--data")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(!second.status.success(), "a second server started on the same directory");
    assert!(text(&second).contains(&format!("pid {}", server.id())), "{}", text(&second));
    assert!(bursar(&["log", "head"], &dir).status.success(), "a reader works beside the server");

    let cert = dir.join("server.crt");
    let bench = Process::new(env!("CARGO_BIN_EXE_bursar"))
        .args(["bench", "--quiet", "--accounts", "100", "--duration", "120s", "--batch", "500", "--addr", &addr.to_string(), "--cert"])
        .arg(&cert)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bench");
    // Bounded wait until the bench's transfers are in the log, then kill the server mid-run.
    let mut logged = 0;
    for _ in 0..600 {
        let head = bursar(&["log", "head", "--json"], &dir);
        logged = serde_json::from_slice::<serde_json::Value>(&head.stdout).ok().and_then(|j| j["seq"].as_u64()).unwrap_or(0);
        if logged > 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(logged > 20, "the bench never got going");
    server.kill().expect("kill -9");
    server.wait().expect("reaped");
    let out = bench.wait_with_output().expect("bench ends");
    let said = text(&out);
    assert!(!out.status.success(), "the bench outlived its server: {said}");
    let acknowledged: u64 = said
        .split(" commands had been acknowledged")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no acknowledged count in: {said}"));
    let replay = bursar(&["replay", "--json"], &dir);
    assert!(replay.status.success(), "{}", text(&replay));
    let replay: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("json");
    let applied_ok = replay["commands_ok"].as_u64().expect("number");
    assert!(applied_ok >= acknowledged, "{acknowledged} acknowledged, only {applied_ok} in the log");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under retention the first segments are recycled: the audit starts from the oldest kept
/// snapshot, verifies its place in the log and every entry after it, says so, and reaches the
/// live state; damage after it is still located.
#[test]
fn a_recycled_log_is_audited_from_its_oldest_snapshot() {
    let dir = temp_dir("recycled");
    let config = WalConfig { segment_size_bytes: 128 << 10, retention: bursar_wal::Retention::RecycleBeforeSnapshots, ..CONFIG };
    let (mut node, _) = Node::open(FsStorage::open(dir.join("log")).expect("dir"), config, Limits::default()).expect("open");
    let mut results = Vec::new();
    let mut now = 1_700_000_000_000_000_000u64;
    node.submit(now, &setup(), &mut results).expect("setup");
    for b in 0..400 {
        now += 1_000_000;
        node.submit(now, &transfers(b), &mut results).expect("batch");
        if b % 100 == 99 {
            node.snapshot().expect("snapshot");
        }
    }
    let live = node.status().state_digest;
    drop(node);
    assert!(!dir.join("log").join(bursar_wal::segment_name(0)).exists(), "segment 0 was recycled");
    let out = bursar(&["replay", "--json"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let hex: String = live.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(json["state_digest"], hex, "the audit reaches the live state");
    let note = json["snapshot"].as_str().expect("a note");
    assert!(note.contains("recycled") && note.contains("cannot be proven"), "{note}");
    let newest = bursar(&["replay", "--json", "--from-snapshot"], &dir);
    assert!(newest.status.success(), "{}", text(&newest));
    let head = bursar(&["log", "head", "--json"], &dir);
    assert!(head.status.success(), "{}", text(&head));
    let head: serde_json::Value = serde_json::from_slice(&head.stdout).expect("json");
    assert_eq!(head["chain_hash"], json["applied_hash"], "log head agrees with the replay");

    // A byte changed in an entry after the oldest kept snapshot is still located.
    let mut places = Vec::new();
    let storage = FsStorage::open_read_only(dir.join("log")).expect("dir");
    let oldest = *bursar_wal::list_snapshots(&storage).expect("list").last().expect("a snapshot");
    let (header, _) = bursar_wal::read_snapshot(&storage, oldest).expect("read");
    bursar_wal::verify_log_from(&storage, Some(&header), &mut |e| {
        places.push((e.seq, bursar_wal::segment_name(e.segment), e.offset, format::stored_len(e.body.len())));
        Ok(())
    })
    .expect("clean");
    let (seq, segment, offset, len) = places[3].clone();
    edit_segment(&dir, &segment, |b| b[offset as usize + len - 20] ^= 0x01);
    let out = bursar(&["replay"], &dir);
    assert!(!out.status.success());
    assert!(text(&out).contains(&format!("sequence number {seq}")), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
