//! Audit and inspection from a data directory alone, without the server and without the
//! network: `bursar replay` (verify the whole log, rebuild any moment, check every recorded state
//! digest), `bursar statement` (an account's entries with running balances, rebuilt from the
//! log), `bursar log dump` and `bursar log head`. The log is opened read-only: these commands
//! never change a data directory, and they can run beside a live server.
//!
//! Architecture invariant: this crate needs only `bursar-engine` and `bursar-wal` of Bursar's
//! crates (`tests/tests/architecture.rs` fails otherwise); `--verify-against` asks the caller for the server's
//! head ([`FetchHead`]), so the network stays in the binary.

/// Prints a line to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bursar_engine::batch::Body;
use bursar_engine::replay::{hex, Replayer};
use bursar_engine::statement::StatementLine;
use bursar_engine::{Command, Engine, History, Ledger, Limits, RecordHistory, ResultCode, RECORD_SIZE};
use bursar_wal::{EntryRef, FsStorage, OpenError, RecoveryReport, SnapshotHeader};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::sync::Arc;

/// Where the log is.
#[derive(Args, Debug, Clone)]
pub struct DataArg {
    /// The server's data directory (its `log/` holds the segments and snapshots), or the log directory itself.
    #[arg(long, default_value = "data/server")]
    pub data: PathBuf,
}

impl DataArg {
    fn log_dir(&self) -> PathBuf {
        let nested = self.data.join("log");
        if nested.is_dir() {
            nested
        } else {
            self.data.clone()
        }
    }

    fn storage(&self) -> Result<FsStorage> {
        let dir = self.log_dir();
        FsStorage::open_read_only(&dir).with_context(|| format!("opening {} read-only", dir.display()))
    }

    /// The history stores beside the log (`<data>/history`, with `balances/`, `failed/`,
    /// `expired/` and `image/` in it), read-only, if there are any: where a slim snapshot's oldest
    /// transfers, balance entries, failed ids and expired holds are read back from.
    fn history(&self) -> Result<Option<Arc<dyn History>>> {
        let log = self.log_dir();
        let Some(dir) = log.parent().map(|data| data.join("history")).filter(|dir| dir.is_dir()) else { return Ok(None) };
        let chunk_len = 1usize << bursar_engine::CHUNK_BITS;
        let reader = |dir: &std::path::Path, record_bytes: usize| -> Result<_> {
            let store = bursar_wal::HistoryStore::open_read_only(dir, (chunk_len * record_bytes) as u64)
                .with_context(|| format!("opening {} read-only", dir.display()))?;
            Ok(move |offset, out: &mut [u8]| store.read(offset, out).map_err(|e| e.to_string()))
        };
        let mut history = RecordHistory::new(chunk_len, reader(&dir, RECORD_SIZE)?);
        let balances = dir.join("balances");
        if balances.is_dir() {
            history = history.with_balances(reader(&balances, bursar_engine::BALANCE_ENTRY_SIZE)?);
        }
        let failed = dir.join("failed");
        if failed.is_dir() {
            history = history.with_failed(reader(&failed, bursar_engine::FAILED_SIZE)?);
        }
        let expired = dir.join("expired");
        if expired.is_dir() {
            history = history.with_expired(reader(&expired, bursar_engine::EXPIRED_SIZE)?);
        }
        // The chunks' restore images, if stored: a slim snapshot is restored from them.
        let images = dir.join("image");
        if images.is_dir() {
            let bytes = bursar_engine::image_bytes(chunk_len) as u64;
            let store = Arc::new(
                bursar_wal::HistoryStore::open_read_only(&images, bytes)
                    .with_context(|| format!("opening {} read-only", images.display()))?,
            );
            let stored = Arc::clone(&store);
            let read = move |offset, out: &mut [u8]| store.read(offset, out).map_err(|e| e.to_string());
            history = history.with_images(read, move || stored.chunks() as usize);
        }
        Ok(Some(Arc::new(history)))
    }
}

/// `bursar replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Stop after this sequence number, or at this time (RFC 3339, e.g. 2026-03-31T23:59:59Z, or
    /// nanoseconds since the epoch with a trailing "ns"). The whole log is verified either way.
    #[arg(long)]
    pub until: Option<String>,
    /// Start from a snapshot (the newest at or before --until, or the one at this sequence
    /// number), after checking that it equals the state replayed from genesis to the same entry.
    #[arg(long, num_args = 0..=1, default_missing_value = "newest")]
    pub from_snapshot: Option<String>,
    /// Compare with a running server: replay to its last entry and compare state digests and chain hashes.
    #[arg(long)]
    pub verify_against: Option<SocketAddr>,
    /// The server's certificate (DER), for --verify-against.
    #[arg(long, default_value = "data/server/server.crt")]
    pub cert: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bursar statement`.
#[derive(Args, Debug)]
pub struct StatementArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The account.
    #[arg(long)]
    pub account: u128,
    /// First moment shown (RFC 3339 or "<n>ns"); earlier entries still count in the running balance.
    #[arg(long)]
    pub from: Option<String>,
    /// Last moment shown: the log is replayed up to it.
    #[arg(long)]
    pub to: Option<String>,
    /// CSV instead of text.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `bursar log`.
#[derive(Subcommand, Debug)]
pub enum LogOp {
    /// The entries A..B (inclusive) in human-readable form, with each command's result.
    Dump {
        #[command(flatten)]
        data: DataArg,
        /// A range "A..B", or one sequence number.
        #[arg(long)]
        seq: String,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The latest sequence number and chain hash: publish it, and any later rewrite of history is detectable.
    Head {
        #[command(flatten)]
        data: DataArg,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where a replay stops applying entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every entry.
    End,
    /// Entries up to and including this sequence number.
    Seq(u64),
    /// Entries stamped at or before this time (ns since the epoch); then holds due by then expire.
    Time(u64),
}

/// Parses a moment: RFC 3339 ("2026-03-31T23:59:59Z", fractions allowed) or "<n>ns".
pub fn parse_time(text: &str) -> Result<u64> {
    if let Some(ns) = text.strip_suffix("ns") {
        return ns.parse().with_context(|| format!("{text}: not a number of nanoseconds"));
    }
    let at = humantime::parse_rfc3339_weak(text).with_context(|| format!("{text}: not an RFC 3339 time like 2026-03-31T23:59:59Z"))?;
    let ns = at.duration_since(UNIX_EPOCH).context("a time before 1970")?.as_nanos();
    u64::try_from(ns).context("a time after 2554")
}

fn parse_until(text: &str) -> Result<Until> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Until::Seq(text.parse()?));
    }
    Ok(Until::Time(parse_time(text)?))
}

/// A timestamp as RFC 3339 with nanoseconds (UTC).
pub fn show_time(ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// What a replay saw and proved.
struct Outcome {
    engine: Engine,
    report: RecoveryReport,
    /// The last entry applied, and its chain hash.
    applied_seq: u64,
    applied_hash: [u8; 32],
    batches: u64,
    commands: u64,
    commands_ok: u64,
    checkpoints: u64,
    snapshot: Option<String>,
    /// Holds expired by the virtual tick at `--until TIME`.
    expired_at_until: u32,
    elapsed: Duration,
}

/// Why an audit of a recycled log cannot start.
const NO_SNAPSHOT_AFTER_RECYCLING: &str = "the log's first segments were recycled and no valid snapshot covers them";

/// The most transfers a replay reserves room for up front.
const RESERVE_TRANSFERS_MAX: usize = 64 << 20;

/// What the verifying thread hands the applying one.
struct OwnedEntry {
    seq: u64,
    timestamp: u64,
    hash: [u8; 32],
    segment: u64,
    offset: u64,
    body: Vec<u8>,
}

/// The verifier's reason to stop when the applier has already failed (never reported).
const APPLY_STOPPED: &str = "the replay stopped";

/// Something that watches every applied batch (log dump, statements).
type Observer<'a> = dyn FnMut(&EntryRef<'_>, &Body, &[Command], &[ResultCode], &Engine) + 'a;

/// Verifies the whole log from genesis and applies it up to `until` into a fresh engine (or a
/// snapshot checked against genesis), checking the batch invariants after every batch and every
/// logged checkpoint, then the full invariants at the end.
fn replay(data: &DataArg, until: Until, from_snapshot: Option<&str>, progress: bool, observe: &mut Observer<'_>) -> Result<Outcome> {
    let storage = data.storage()?;
    let started = Instant::now();
    let recycled = bursar_wal::log_recycled(&storage)?;
    // Under recycling entry 1 is gone: the audit starts from a snapshot whose place in the log it
    // verifies (the oldest, unless one is named), and says so.
    let from_snapshot = if recycled { Some(from_snapshot.unwrap_or("oldest")) } else { from_snapshot };
    let snapshot = match from_snapshot {
        Some(which) => Some(chosen_snapshot(&storage, which, until, data.history()?)?),
        None => None,
    };
    let mut applier = Applier::new(progress, reserve_for(data, &storage)?);
    let start_from = match snapshot {
        // A recycled log starts from the snapshot itself: there is no genesis replay to compare with.
        Some((header, restored)) if recycled => Some(applier.start_from(header, restored)),
        other => {
            applier.check_at = other;
            None
        }
    };
    // Two threads, one per core: this one applies while the other verifies checksums and the
    // hash chain (and scans the zero-filled tail) ahead of it, handing over owned entries.
    let (inbox, verifier) = spawn_verifier(storage, start_from, until)?;
    let mut applied = Ok(());
    for owned in inbox.iter() {
        applied = applier.apply(&owned, observe);
        if applied.is_err() {
            break; // dropping the inbox stops the verifier
        }
    }
    drop(inbox);
    applier.bar.finish_and_clear();
    let verified = verifier.join().map_err(|_| anyhow::anyhow!("the verifying thread panicked"))?;
    applied.map_err(|why| anyhow::anyhow!("REPLAY STOPPED: {why}"))?;
    applier.finish(verified.map_err(describe)?, until, started)
}

/// The snapshot `--from-snapshot` names (`newest` at or before `until`, `oldest` valid, or a
/// sequence number), read, checked and restored.
/// A slim snapshot's oldest transfers are read back from `history`.
fn chosen_snapshot(storage: &FsStorage, which: &str, until: Until, history: Option<Arc<dyn History>>) -> Result<(SnapshotHeader, Engine)> {
    let seq = match which {
        "newest" => *bursar_wal::list_snapshots(storage)?
            .iter()
            .find(|s| match until {
                Until::Seq(u) => **s <= u,
                _ => true,
            })
            .context("no snapshot in the data directory")?,
        "oldest" => bursar_wal::oldest_valid_snapshot(storage)?.context(NO_SNAPSHOT_AFTER_RECYCLING)?.0.seq,
        n => n.parse().with_context(|| format!("--from-snapshot {n}: a sequence number or nothing"))?,
    };
    let (header, payload) = bursar_wal::read_snapshot(storage, seq)?;
    let restored =
        Engine::restore_from(&payload, bursar_engine::CHUNK_BITS, history).map_err(|e| anyhow::anyhow!("snapshot at {seq}: {e}"))?;
    if let Until::Seq(u) = until {
        if header.seq > u {
            bail!("the snapshot at {} is after --until {u}", header.seq);
        }
    }
    Ok((header, restored))
}

/// Room for about as many transfers as the segments can hold (a command takes at least 129 log
/// bytes), so the tables do not grow and rehash on the way: virtual memory only.
fn reserve_for(data: &DataArg, storage: &FsStorage) -> Result<usize> {
    let segments = bursar_wal::list_segments(storage)?;
    let bytes: u64 =
        segments.iter().filter_map(|i| std::fs::metadata(data.log_dir().join(bursar_wal::segment_name(*i))).ok()).map(|m| m.len()).sum();
    Ok(((bytes / 129) as usize).min(RESERVE_TRANSFERS_MAX))
}

/// The verifying thread: checks every entry from `start_from` on and hands those up to `until`
/// to the applying thread in order.
#[allow(clippy::type_complexity)]
fn spawn_verifier(
    storage: FsStorage,
    start_from: Option<SnapshotHeader>,
    until: Until,
) -> Result<(crossbeam_channel::Receiver<OwnedEntry>, std::thread::JoinHandle<Result<RecoveryReport, OpenError>>)> {
    let (entries, inbox) = crossbeam_channel::bounded::<OwnedEntry>(64);
    let verifier = std::thread::Builder::new().name("verify".into()).spawn(move || {
        let mut done = false;
        bursar_wal::verify_log_from(&storage, start_from.as_ref(), &mut |entry| {
            done = done
                || match until {
                    Until::End => false,
                    Until::Seq(u) => entry.seq > u,
                    Until::Time(t) => entry.timestamp > t,
                };
            if done {
                return Ok(()); // still verified, not applied
            }
            let owned = OwnedEntry {
                seq: entry.seq,
                timestamp: entry.timestamp,
                hash: entry.hash,
                segment: entry.segment,
                offset: entry.offset,
                body: entry.body.to_vec(),
            };
            entries.send(owned).map_err(|_| APPLY_STOPPED.to_string())
        })
    })?;
    Ok((inbox, verifier))
}

/// The applying side of a replay: the engine, what it has applied, and a snapshot still to be
/// compared with the genesis replay when its entry is reached.
struct Applier {
    engine: Engine,
    replayer: Replayer,
    bar: ProgressBar,
    check_at: Option<(SnapshotHeader, Engine)>,
    snapshot_note: Option<String>,
    applied: (u64, [u8; 32]),
    batches: u64,
    commands: u64,
    commands_ok: u64,
    checkpoints: u64,
}

impl Applier {
    fn new(progress: bool, transfers: usize) -> Applier {
        let bar = if progress { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) } else { ProgressBar::hidden() };
        bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("template"));
        let mut engine = Engine::new(Limits::default());
        engine.reserve(0, transfers);
        Applier {
            engine,
            replayer: Replayer::new(),
            bar,
            check_at: None,
            snapshot_note: None,
            applied: (0, bursar_wal::GENESIS_HASH),
            batches: 0,
            commands: 0,
            commands_ok: 0,
            checkpoints: 0,
        }
    }

    /// Starts from a snapshot of a recycled log; returns its header for the verifier.
    fn start_from(&mut self, header: SnapshotHeader, restored: Engine) -> SnapshotHeader {
        self.engine = restored;
        self.applied = (header.seq, header.chain_hash);
        self.snapshot_note = Some(format!(
            "the log starts after entry 1 (retention recycled its first segments): verified from {}, its checksum and its chain \
             hash at entry {} in the log (reached by the hash chain from the first kept entry), then every later entry; \
             the history before it cannot be proven from this directory",
            bursar_wal::snapshot_name(header.seq),
            header.seq
        ));
        header
    }

    /// Applies one verified entry, checks the batch invariants, and at the snapshot's entry
    /// compares the snapshot with the state replayed so far, then goes on from the snapshot.
    fn apply(&mut self, owned: &OwnedEntry, observe: &mut Observer<'_>) -> Result<(), String> {
        let entry = EntryRef {
            seq: owned.seq,
            timestamp: owned.timestamp,
            body: &owned.body,
            hash: owned.hash,
            segment: owned.segment,
            offset: owned.offset,
        };
        if entry.seq.is_multiple_of(256) {
            self.bar.set_message(format!("entry {}, {} commands applied", entry.seq, self.commands));
            self.bar.tick();
        }
        let body = self.replayer.apply(&mut self.engine, entry.seq, entry.body)?;
        match body {
            Body::Batch { .. } => {
                let commands = self.replayer.commands();
                self.engine.check_batch_invariants(commands).map_err(|e| format!("entry {}: invariant broken: {e}", entry.seq))?;
                self.batches += 1;
                self.commands += commands.len() as u64;
                self.commands_ok += self.replayer.results().iter().filter(|r| r.is_success()).count() as u64;
            }
            Body::Checkpoint(_) => self.checkpoints += 1,
            Body::Limits(_) => {}
        }
        observe(&entry, &body, self.replayer.commands(), self.replayer.results(), &self.engine);
        self.applied = (entry.seq, entry.hash);
        if self.check_at.as_ref().is_some_and(|(h, _)| h.seq == entry.seq) {
            self.compare_snapshot(entry.hash)?;
        }
        Ok(())
    }

    /// The snapshot at the entry just applied against the genesis replay; then its state goes on.
    fn compare_snapshot(&mut self, entry_hash: [u8; 32]) -> Result<(), String> {
        let (header, mut restored) = self.check_at.take().expect("a snapshot to compare");
        let seq = header.seq;
        if header.chain_hash != entry_hash {
            return Err(format!("snapshot at {seq}: its chain hash differs from the log's entry {seq}"));
        }
        if restored.state_digest() != self.engine.state_digest() || restored.digest() != self.engine.digest() {
            return Err(format!("snapshot at {seq}: its state differs from the state replayed from genesis to entry {seq}"));
        }
        self.snapshot_note = Some(format!(
            "{}: chain hash, state digest and full stream digest equal the genesis replay at entry {seq}; replay went on from the snapshot",
            bursar_wal::snapshot_name(seq)
        ));
        self.engine = restored;
        Ok(())
    }

    /// The checks after the last entry, and the outcome.
    fn finish(mut self, report: RecoveryReport, until: Until, started: Instant) -> Result<Outcome> {
        if let Some((header, _)) = self.check_at {
            bail!("snapshot at {}: the log ends at {} before it", header.seq, report.last_seq);
        }
        if let Until::Seq(u) = until {
            if u > report.last_seq {
                bail!("--until {u}: the log ends at entry {}", report.last_seq);
            }
        }
        let mut expired_at_until = 0;
        if let Until::Time(t) = until {
            if t > self.engine.timestamp() {
                // The state as of `t`: holds due by then are released, as the server would have.
                expired_at_until = self.engine.execute(t, &[], &mut Vec::new()).expect("an empty batch").expired;
            }
        }
        let (applied_seq, applied_hash) = self.applied;
        self.engine.check_invariants().map_err(|e| anyhow::anyhow!("after entry {applied_seq}: invariant broken: {e}"))?;
        Ok(Outcome {
            engine: self.engine,
            report,
            applied_seq,
            applied_hash,
            batches: self.batches,
            commands: self.commands,
            commands_ok: self.commands_ok,
            checkpoints: self.checkpoints,
            snapshot: self.snapshot_note,
            expired_at_until,
            elapsed: started.elapsed(),
        })
    }
}

/// Says exactly where a log is broken.
fn describe(e: OpenError) -> anyhow::Error {
    match e {
        OpenError::Corrupt { segment, offset, seq, reason } => {
            anyhow::anyhow!("LOG BROKEN in {segment} at byte offset {offset}, sequence number {seq}: {reason}")
        }
        OpenError::Visitor(why) => anyhow::anyhow!("REPLAY STOPPED: {why}"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// A live server's head, for `--verify-against`: its last entry, chain hash and state digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHead {
    /// Its last applied entry.
    pub seq: u64,
    /// Its state digest there.
    pub state_digest: [u8; 32],
    /// The log's chain hash there.
    pub chain_hash: [u8; 32],
}

/// Asks the server at an address (trusting the certificate file) for its head.
pub type FetchHead<'a> = &'a dyn Fn(SocketAddr, &Path) -> Result<ServerHead>;

/// An amount in a ledger's minor units as an exact decimal with its currency (`12.34 EUR`).
pub fn format_minor(amount: u128, ledger: &Ledger) -> String {
    let currency = String::from_utf8_lossy(&ledger.currency);
    let digits = format!("{amount:0>width$}", width = ledger.scale as usize + 1);
    let (whole, fraction) = digits.split_at(digits.len() - ledger.scale as usize);
    if fraction.is_empty() {
        format!("{whole} {currency}")
    } else {
        format!("{whole}.{fraction} {currency}")
    }
}

/// `bursar replay`.
pub fn run_replay(args: ReplayArgs, fetch_head: FetchHead<'_>) -> Result<()> {
    let mut until = args.until.as_deref().map(parse_until).transpose()?.unwrap_or(Until::End);
    let server = match args.verify_against {
        Some(addr) => {
            if until != Until::End {
                bail!("--verify-against replays to the server's last entry; leave out --until");
            }
            let status = fetch_head(addr, &args.cert)?;
            until = Until::Seq(status.seq);
            Some((addr, status))
        }
        None => None,
    };
    let mut outcome = replay(&args.data, until, args.from_snapshot.as_deref(), !args.json, &mut |_, _, _, _, _| {})?;
    let digest = outcome.engine.state_digest();
    let engine = &outcome.engine;
    let verify = server.map(|(addr, status)| {
        let same = status.state_digest == digest && status.chain_hash == outcome.applied_hash && status.seq == outcome.applied_seq;
        (addr, status, same)
    });
    let ledgers: Vec<Ledger> = engine.ledgers().copied().collect();
    let totals: Vec<_> = ledgers.iter().filter_map(|l| engine.ledger_totals(l.id)).collect();
    let balanced = totals.iter().all(|t| t.is_balanced());
    let verified = Verified { outcome: &outcome, totals: &totals, digest, balanced, verify: verify.as_ref() };
    if args.json {
        out!("{}", replay_json(&verified));
    } else {
        print_replay(&args.data.log_dir(), until, &verified);
    }
    if !balanced {
        bail!("the trial balance does not balance");
    }
    if let Some((addr, status, false)) = verify {
        bail!(
            "the server at {addr} differs from the replay at entry {}: server digest {} chain {}, replay digest {} chain {}",
            status.seq,
            hex(&status.state_digest),
            hex(&status.chain_hash),
            hex(&digest),
            hex(&outcome.applied_hash)
        );
    }
    Ok(())
}

/// What a replay found, for its report.
struct Verified<'a> {
    outcome: &'a Outcome,
    totals: &'a [bursar_engine::LedgerTotals],
    digest: [u8; 32],
    balanced: bool,
    verify: Option<&'a (SocketAddr, ServerHead, bool)>,
}

/// `bursar replay --json`'s object.
fn replay_json(v: &Verified<'_>) -> serde_json::Value {
    let (outcome, totals, digest, balanced, verify) = (v.outcome, v.totals, v.digest, v.balanced, v.verify);
    let (engine, report, secs) = (&outcome.engine, &outcome.report, outcome.elapsed.as_secs_f64());
    let ledgers_json: Vec<_> = totals
        .iter()
        .map(|t| {
            json!({
                "ledger": t.ledger.id,
                "currency": String::from_utf8_lossy(&t.ledger.currency),
                "scale": t.ledger.scale,
                "accounts": t.accounts,
                "debits_posted": t.totals.debits_posted.to_string(),
                "credits_posted": t.totals.credits_posted.to_string(),
                "debits_pending": t.totals.debits_pending.to_string(),
                "credits_pending": t.totals.credits_pending.to_string(),
                "balanced": t.is_balanced(),
            })
        })
        .collect();
    json!({
        "log_last_seq": report.last_seq,
        "log_last_hash": hex(&report.last_hash),
        "log_bytes_verified": report.bytes_verified,
        "torn_tail": report.truncated.as_ref().map(|t| json!({"segment": t.0, "offset": t.1, "seq": t.2})),
        "applied_seq": outcome.applied_seq,
        "applied_hash": hex(&outcome.applied_hash),
        "clock": engine.timestamp(),
        "batches": outcome.batches,
        "commands": outcome.commands,
        "commands_ok": outcome.commands_ok,
        "checkpoints_checked": outcome.checkpoints,
        "expired_at_until": outcome.expired_at_until,
        "snapshot": outcome.snapshot,
        "state_digest": hex(&digest),
        "seconds": secs,
        "commands_per_second": outcome.commands as f64 / secs,
        "ledgers": ledgers_json,
        "balanced": balanced,
        "verify_against": verify.as_ref().map(|(addr, s, same)| json!({
            "addr": addr.to_string(), "seq": s.seq, "state_digest": hex(&s.state_digest), "chain_hash": hex(&s.chain_hash), "equal": same,
        })),
    })
}

/// `bursar replay`'s report in words.
fn print_replay(log_dir: &Path, until: Until, v: &Verified<'_>) {
    let (outcome, totals, digest, balanced, verify) = (v.outcome, v.totals, v.digest, v.balanced, v.verify);
    let (report, secs) = (&outcome.report, outcome.elapsed.as_secs_f64());
    out!("bursar replay: {}", log_dir.display());
    out!(
        "  log           entries 1..{} verified from genesis (CRC32C, sequence, BLAKE3 chain), {:.1} MB",
        report.last_seq,
        report.bytes_verified as f64 / 1e6
    );
    if let Some(t) = &report.truncated {
        out!("  torn tail     {} at offset {}: entry {} onwards unsynced or torn (left as is; the server cuts it on start)", t.0, t.1, t.2);
    }
    out!(
        "  applied       entries 1..{}: {} batches, {} commands ({} ok), invariants after every batch, full audit at the end",
        outcome.applied_seq,
        outcome.batches,
        outcome.commands,
        outcome.commands_ok
    );
    out!("  checkpoints   {} logged state digests equal the replayed state", outcome.checkpoints);
    if let Until::Time(t) = until {
        out!("  as of         {} ({} holds due by then released)", show_time(t), outcome.expired_at_until);
    }
    if let Some(note) = &outcome.snapshot {
        out!("  snapshot      {note}");
    }
    out!(
        "  speed         {:.2} s: {:.2} M commands/s, {:.0} MB/s of log",
        secs,
        outcome.commands as f64 / secs / 1e6,
        report.bytes_verified as f64 / secs / 1e6
    );
    out!("  head          entry {} chain hash {}", outcome.applied_seq, hex(&outcome.applied_hash));
    out!("  state digest  {}", hex(&digest));
    for t in totals {
        let l = &t.ledger;
        out!(
            "  ledger {:<6} {} accounts; posted debits {} credits {}; pending debits {} credits {}: {}",
            l.id,
            t.accounts,
            format_minor(t.totals.debits_posted, l),
            format_minor(t.totals.credits_posted, l),
            format_minor(t.totals.debits_pending, l),
            format_minor(t.totals.credits_pending, l),
            if t.is_balanced() { "balanced" } else { "NOT BALANCED" }
        );
    }
    out!("  trial balance {}", if balanced { "balanced" } else { "NOT BALANCED" });
    if let Some((addr, status, same)) = &verify {
        out!(
            "  server        {addr} at entry {}: state digest {}, chain hash {}: {}",
            status.seq,
            hex(&status.state_digest),
            hex(&status.chain_hash),
            if *same { "EQUAL to the replay" } else { "DIFFERENT from the replay" }
        );
    }
}

fn format_signed(v: i128, ledger: &Ledger) -> String {
    let text = format_minor(v.unsigned_abs(), ledger);
    if v < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// `bursar statement`.
pub fn run_statement(args: StatementArgs) -> Result<()> {
    let to = args.to.as_deref().map(parse_time).transpose()?;
    let from = args.from.as_deref().map(parse_time).transpose()?.unwrap_or(0);
    let until = to.map_or(Until::End, Until::Time);
    let outcome = replay(&args.data, until, None, !(args.json || args.csv), &mut |_, _, _, _, _| {})?;
    let engine = &outcome.engine;
    let lines = engine.statement(args.account).map_err(anyhow::Error::msg)?;
    let account = engine.account(args.account).expect("the statement found it");
    let ledger = *engine.ledger(account.ledger).context("the account's ledger")?;
    let currency = String::from_utf8_lossy(&ledger.currency).to_string();
    let shown: Vec<&StatementLine> = lines.iter().filter(|l| l.timestamp >= from).collect();
    if args.csv {
        statement_csv(&shown, &ledger, &currency);
    } else if args.json {
        statement_json(&shown, &ledger);
    } else {
        let heading = format!(
            "statement of account {} ({currency}, ledger {}), rebuilt from the log up to entry {}",
            args.account, ledger.id, outcome.applied_seq
        );
        statement_text(&heading, &shown, lines.last(), &ledger);
    }
    Ok(())
}

/// `bursar statement --csv`.
fn statement_csv(shown: &[&StatementLine], ledger: &Ledger, currency: &str) {
    let ledger = *ledger;
    out!("timestamp,transfer_id,kind,counterpart,amount,pending_change,currency,code,user_data_128,user_data_64,user_data_32,balance,pending,debit_limit,credit_limit,reverses");
    let plain = Ledger { currency: *b"   ", ..ledger };
    let num = |v: i128| format_signed(v, &plain).trim_end().to_string();
    for l in shown {
        out!(
            "{},{},{},{},{},{},{currency},{},{},{},{},{},{},{},{},{}",
            show_time(l.timestamp),
            l.transfer_id,
            l.kind,
            l.counterpart,
            num(l.posted_change),
            num(l.pending_change),
            l.code,
            l.user_data_128,
            l.user_data_64,
            l.user_data_32,
            num(l.balance),
            num(l.pending),
            l.limits.map_or(String::new(), |x| limit_text(x.debit_limit, &plain).trim_end().to_string()),
            l.limits.map_or(String::new(), |x| limit_text(x.credit_limit, &plain).trim_end().to_string()),
            if l.reverses != 0 { l.reverses.to_string() } else { String::new() }
        );
    }
}

/// A limit in force, in the ledger's currency, or "none".
fn limit_text(limit: Option<u128>, ledger: &Ledger) -> String {
    limit.map_or("none".to_string(), |v| format_minor(v, ledger))
}

/// `bursar statement --json`: one object per line.
fn statement_json(shown: &[&StatementLine], ledger: &Ledger) {
    let ledger = *ledger;
    for l in shown {
        let line = json!({
            "timestamp": l.timestamp, "time": show_time(l.timestamp), "transfer_id": l.transfer_id.to_string(), "kind": l.kind,
            "counterpart": l.counterpart.to_string(), "amount": format_signed(l.posted_change, &ledger),
            "pending_change": format_signed(l.pending_change, &ledger), "code": l.code,
            "user_data_128": l.user_data_128.to_string(), "user_data_64": l.user_data_64, "user_data_32": l.user_data_32,
            "balance": format_signed(l.balance, &ledger), "pending": format_signed(l.pending, &ledger),
        });
        let mut line = line;
        if l.reverses != 0 {
            line["reverses"] = json!(l.reverses.to_string());
        }
        if let Some(limits) = l.limits {
            line["debit_limit"] = json!(limit_text(limits.debit_limit, &ledger));
            line["credit_limit"] = json!(limit_text(limits.credit_limit, &ledger));
        }
        out!("{line}");
    }
}

/// `bursar statement` in a table.
fn statement_text(heading: &str, shown: &[&StatementLine], last: Option<&StatementLine>, ledger: &Ledger) {
    let ledger = *ledger;
    out!("{heading}");
    out!(
        "{:<32} {:>20} {:<8} {:>20} {:>18} {:>18} {:>6} {:>18}",
        "time",
        "transfer",
        "kind",
        "counterpart",
        "amount",
        "pending",
        "code",
        "balance"
    );
    for l in shown {
        if let Some(limits) = l.limits {
            let (debit, credit) = (limit_text(limits.debit_limit, &ledger), limit_text(limits.credit_limit, &ledger));
            out!("{:<32} {:>20} {:<8} debit limit {debit}, credit limit {credit}", show_time(l.timestamp), "", l.kind);
            continue;
        }
        out!(
            "{:<32} {:>20} {:<8} {:>20} {:>18} {:>18} {:>6} {:>18}",
            show_time(l.timestamp),
            l.transfer_id,
            l.kind,
            l.counterpart,
            format_signed(l.posted_change, &ledger),
            format_signed(l.pending_change, &ledger),
            l.code,
            format_signed(l.balance, &ledger)
        );
        if l.reverses != 0 {
            out!("{:<32} {:>20} {:<8} reverses transfer {}", "", "", "", l.reverses);
        }
    }
    out!(
        "closing balance {} (pending {}), equal to the account record",
        format_signed(last.map_or(0, |l| l.balance), &ledger),
        format_signed(last.map_or(0, |l| l.pending), &ledger)
    );
}

/// What `log dump` adds to a transfer's result that concerns its id's remembered failure: the
/// failure that decided it (for `id_already_failed`), or that this failure now decides it.
fn failure_note(command: &Command, result: ResultCode, engine: &Engine) -> Option<String> {
    let t = command.as_transfer()?;
    let failed = engine.failed_transfer(t.id)?;
    if result == ResultCode::IdAlreadyFailed {
        Some(format!("id {} failed at {} with {}", t.id, show_time(failed.timestamp), failed.code))
    } else if result == failed.code {
        Some(format!("id {} decided: later commands with it answer id_already_failed", t.id))
    } else {
        None
    }
}

fn parse_range(text: &str) -> Result<(u64, u64)> {
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
        None => {
            let n = text.trim().parse()?;
            (n, n)
        }
    };
    if a == 0 || b < a {
        bail!("--seq {text}: a range A..B with 1 <= A <= B");
    }
    Ok((a, b))
}

/// `bursar log dump` and `bursar log head`.
pub fn run_log(op: LogOp) -> Result<()> {
    match op {
        LogOp::Dump { data, seq, json } => {
            let (a, b) = parse_range(&seq)?;
            let mut observe = |entry: &EntryRef<'_>, body: &Body, commands: &[Command], results: &[ResultCode], engine: &Engine| {
                if entry.seq < a {
                    return;
                }
                let place = format!("{} @{}", bursar_wal::segment_name(entry.segment), entry.offset);
                match body {
                    Body::Batch { now, rules } if json => {
                        let cmds: Vec<_> = commands
                            .iter()
                            .zip(results)
                            .map(|(c, r)| json!({"command": c.describe(), "result": r.name(), "why": failure_note(c, *r, engine)}))
                            .collect();
                        out!(
                            "{}",
                            json!({"seq": entry.seq, "timestamp": entry.timestamp, "hash": hex(&entry.hash), "at": place, "kind": "batch", "now": now, "rules": rules.version(), "commands": cmds})
                        );
                    }
                    Body::Batch { now, rules } => {
                        let what = if commands.is_empty() { "clock tick".to_string() } else { format!("batch of {}", commands.len()) };
                        out!(
                            "entry {} at {} ({place}) {what}, now {}, rules {}, hash {}",
                            entry.seq,
                            show_time(entry.timestamp),
                            show_time(*now),
                            rules.version(),
                            hex(&entry.hash)
                        );
                        for (k, (c, r)) in commands.iter().zip(results).enumerate() {
                            match failure_note(c, *r, engine) {
                                Some(note) => out!("  [{k}] {} -> {} ({note})", c.describe(), r.name()),
                                None => out!("  [{k}] {} -> {}", c.describe(), r.name()),
                            }
                        }
                    }
                    Body::Checkpoint(cp) if json => out!(
                        "{}",
                        json!({"seq": entry.seq, "timestamp": entry.timestamp, "hash": hex(&entry.hash), "at": place, "kind": "checkpoint", "clock": cp.clock, "state_digest": hex(&cp.digest)})
                    ),
                    Body::Checkpoint(cp) => out!(
                        "entry {} at {} ({place}) checkpoint: state digest {} at clock {} (checked), hash {}",
                        entry.seq,
                        show_time(entry.timestamp),
                        hex(&cp.digest),
                        cp.clock,
                        hex(&entry.hash)
                    ),
                    Body::Limits(l) if json => out!(
                        "{}",
                        json!({"seq": entry.seq, "timestamp": entry.timestamp, "hash": hex(&entry.hash), "at": place, "kind": "limits", "ledgers_max": l.ledgers_max, "accounts_max": l.accounts_max, "transfers_max": l.transfers_max, "query_results_max": l.query_results_max})
                    ),
                    Body::Limits(l) => out!(
                        "entry {} at {} ({place}) limits: ledgers_max {}, accounts_max {}, transfers_max {}, query_results_max {}, hash {}",
                        entry.seq,
                        show_time(entry.timestamp),
                        l.ledgers_max,
                        l.accounts_max,
                        l.transfers_max,
                        l.query_results_max,
                        hex(&entry.hash)
                    ),
                }
            };
            let outcome = replay(&data, Until::Seq(b), None, false, &mut observe)?;
            if outcome.applied_seq < b {
                bail!("the log ends at entry {}", outcome.applied_seq);
            }
            Ok(())
        }
        LogOp::Head { data, json } => {
            let storage = data.storage()?;
            let mut last_timestamp = 0;
            // A recycled log is verified from its oldest valid snapshot, as `replay` does.
            let start = match bursar_wal::log_recycled(&storage)? {
                true => Some(bursar_wal::oldest_valid_snapshot(&storage)?.context(NO_SNAPSHOT_AFTER_RECYCLING)?.0),
                false => None,
            };
            let report = bursar_wal::verify_log_from(&storage, start.as_ref(), &mut |entry| {
                last_timestamp = entry.timestamp;
                Ok(())
            })
            .map_err(describe)?;
            let newest_snapshot = bursar_wal::list_snapshots(&storage)?.first().copied();
            if json {
                out!(
                    "{}",
                    json!({
                        "seq": report.last_seq, "chain_hash": hex(&report.last_hash), "timestamp": last_timestamp,
                        "bytes": report.bytes_verified, "newest_snapshot": newest_snapshot,
                        "torn_tail": report.truncated.as_ref().map(|t| json!({"segment": t.0, "offset": t.1, "seq": t.2})),
                    })
                );
            } else {
                out!("entry {} at {}", report.last_seq, show_time(last_timestamp));
                out!("chain hash {}", hex(&report.last_hash));
                out!("verified: every entry's checksum and the hash chain from genesis ({:.1} MB)", report.bytes_verified as f64 / 1e6);
                if let Some(seq) = newest_snapshot {
                    out!("newest snapshot at entry {seq}");
                }
                if let Some(t) = &report.truncated {
                    out!("torn tail in {} at offset {} (entry {} onwards was not synced)", t.0, t.1, t.2);
                }
            }
            Ok(())
        }
    }
}
