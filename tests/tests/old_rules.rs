//! Data written before the rules changed keeps working: a log whose batch bodies are version 1
//! (the original rules) and a version 1 snapshot, as an older build wrote them, open in this
//! build with the state the older build had (its checkpoints match), and new commands then follow
//! the current rules. The log is written here through the WAL directly, body by body, exactly as
//! the older node wrote it (the body layout is the same; only the version differs).

use bursar_engine::batch::{self, Checkpoint};
use bursar_engine::{Command, Engine, Limits, ResultCode, Rules, Transfer};
use bursar_net::Node;
use bursar_wal::{FsStorage, WalConfig};

fn transfer(id: u128, debit: u128, credit: u128, amount: u128, linked: bool) -> Command {
    let flags = if linked { bursar_engine::transfer_flags::LINKED } else { 0 };
    Command::Transfer(Transfer { flags, ..bursar_tests::setup::transfer(id, debit, credit, amount) })
}

/// The batches the older build applied: a chain mixing an existing member with a new one (which
/// committed the new one then), and a declined transfer re-sent successfully under the same id.
fn old_batches() -> Vec<Vec<Command>> {
    let mut setup = bursar_tests::setup::ledger_and_accounts(4);
    setup.push(Command::CreateAccount(bursar_engine::Account {
        id: 9,
        ledger: 1,
        code: 10,
        flags: bursar_engine::account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ..Default::default()
    }));
    vec![
        setup,
        vec![transfer(10, 1, 2, 5, false)],
        vec![transfer(11, 1, 3, 7, true), transfer(10, 1, 2, 5, false)],
        vec![transfer(12, 9, 1, 4, false)],
        vec![transfer(13, 1, 9, 50, false)],
        vec![transfer(12, 9, 1, 4, false)],
    ]
}

fn version_1(body: &mut [u8]) {
    body[..2].copy_from_slice(&Rules::Original.version().to_le_bytes());
}

/// A version 1 snapshot stream of `engine` (no failed ids, limit changes or policies): five counts.
fn snapshot_v1(engine: &Engine) -> Vec<u8> {
    let mut bytes = engine.snapshot_bytes();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    // Version 1's header ends after five counts; this build's has 19 and a digest (224 bytes).
    // (No holds here, so the body is the same.)
    bytes.drain(80..224);
    bytes
}

/// Writes the old log (with a checkpoint and a version 1 snapshot after the third batch, if
/// `snapshot`) and returns the state the older build had.
fn write_old_log(dir: &std::path::Path, snapshot: bool) -> Engine {
    let (mut wal, _) =
        bursar_wal::open(FsStorage::open(dir).expect("dir"), WalConfig::default(), &mut |_, _| Ok(()), &mut |_| Ok(())).expect("fresh log");
    let mut engine = Engine::new(Limits::default());
    let mut results = Vec::new();
    for (k, commands) in old_batches().iter().enumerate() {
        let now = 1_000_000_000 * (k as u64 + 1);
        let mut body = Vec::new();
        batch::encode(now, commands, &mut body);
        version_1(&mut body);
        wal.append(now, &body).expect("append");
        results.clear();
        engine.execute_under(Rules::Original, now, commands, &[], &mut results).expect("batch");
        wal.sync().expect("sync");
        if k == 2 {
            let checkpoint = Checkpoint { clock: engine.timestamp(), digest: engine.state_digest() };
            let mut body = Vec::new();
            batch::encode_checkpoint(&checkpoint, &mut body);
            version_1(&mut body);
            let seq = wal.append(checkpoint.clock, &body).expect("append");
            wal.sync().expect("sync");
            if snapshot {
                let hash = wal.last_hash();
                wal.write_snapshot(seq, hash, &snapshot_v1(&engine)).expect("snapshot");
            }
        }
    }
    assert_eq!(results, vec![ResultCode::Ok], "the declined id went through under the original rules");
    engine
}

#[test]
fn a_log_and_snapshot_of_the_original_rules_open_with_their_state_and_new_commands_follow_the_current_rules() {
    for snapshot in [false, true] {
        let dir = std::env::temp_dir().join(format!("bursar-old-rules-{snapshot}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut old = write_old_log(&dir, snapshot);
        assert_eq!(old.account(3).expect("account").credits_posted, 7, "the mixed chain committed its new member");
        let (mut node, report) = Node::open(FsStorage::open(&dir).expect("dir"), WalConfig::default(), Limits::default()).expect("opens");
        assert_eq!(report.snapshot.is_some(), snapshot, "{report:?}");
        assert_eq!(node.status().state_digest, old.state_digest(), "the older build's state, checkpoint checked");
        let now = 100_000_000_000;
        let mixed = vec![transfer(14, 1, 3, 1, true), transfer(10, 1, 2, 5, false)];
        let declined = vec![transfer(15, 9, 1, 1_000, false)];
        let mut results = Vec::new();
        for commands in [mixed, declined.clone(), declined] {
            let mut codes = Vec::new();
            node.submit(now, &commands, &mut codes).expect("submit");
            results.push(codes);
        }
        assert_eq!(
            results,
            vec![
                vec![ResultCode::LinkedEventFailed, ResultCode::Exists],
                vec![ResultCode::ExceedsCredits],
                vec![ResultCode::IdAlreadyFailed]
            ]
        );
        drop(node);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
