//! The `bursar` command line: `start` (the server), `client` (talk to it), `replay`, `statement`
//! and `log` (audit and inspect a data directory without the server), `bench` (the load harness)
//! and `demo` (a payment day through a durable node, restarted from disk).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use bursar_engine::Limits;
use bursar_net::Node;
use bursar_wal::{FsStorage, WalConfig};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bursar", version, about = "Bursar: an in-memory transaction engine for payment platforms")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Prints a line to stdout; a closed pipe (`| head`, a supervisor that stopped reading) ends the
/// output quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

use bursar_audit as audit;
mod bench_cmd;
mod client_cmd;
mod demo;
mod desk_cmd;
mod exchange_cmd;
mod orders_cmd;
mod watch_cmd;

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Talk to a running server: create ledgers and accounts, move money, look things up.
    Client(client_cmd::ClientArgs),
    /// The currency-exchange desk's cashier: orders, statement import and matching, payout files.
    Desk(desk_cmd::DeskArgs),
    /// Start the server: recover the node from the data directory (newest snapshot + log),
    /// listen for gateways over QUIC (TLS 1.3, self-signed certificate generated on first start),
    /// and on SIGINT/SIGTERM stop accepting, finish what was accepted, snapshot, and exit 0.
    Start {
        /// Data directory: the log, snapshots and the server certificate.
        #[arg(long, default_value = "data/server")]
        data: PathBuf,
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:7413")]
        listen: std::net::SocketAddr,
        /// Require gateways to present a certificate issued by this CA (DER): mutual TLS.
        #[arg(long)]
        client_ca: Option<PathBuf>,
        /// The tuning flags.
        #[command(flatten)]
        options: StartOptions,
        /// An account the panel lists with its role, `ROLE:ID` (`payout:9851`: how much is on
        /// the account payouts leave from); repeat for more, up to 64.
        #[arg(long = "panel-account", value_parser = marked_account)]
        panel_accounts: Vec<(String, u128)>,
        /// From what amount the panel lists a movement among the large ones on a ledger,
        /// `LEDGER:AMOUNT` (`978:5000.00`); repeatable. Default: 10 000 units of its currency.
        #[arg(long = "panel-large", value_parser = large_threshold)]
        panel_large: Vec<(u32, String)>,
    },
    /// Verify the whole log from genesis and replay it (to its end or to --until) into a fresh
    /// engine: every checksum, the hash chain, every logged state digest, the invariants after
    /// every batch; print the state digest, the ledger totals and the trial balance. Read-only.
    Replay(audit::ReplayArgs),
    /// An account's statement rebuilt from the log alone: every entry with its counterpart,
    /// amount, code, user data and running balance.
    Statement(audit::StatementArgs),
    /// Inspect the log: dump entries, or print the head (latest sequence number and chain hash).
    #[command(subcommand)]
    Log(audit::LogOp),
    /// Measure a server under load: an embedded one on a fresh data directory (real WAL, fsync per
    /// log entry, QUIC on loopback) or --addr; throughput, latency percentiles, server-side sync
    /// figures; then check the server holds exactly what the run sent. Defaults mirror
    /// TigerBeetle's `benchmark`; `--preset quick` runs in well under a minute.
    Bench(bench_cmd::BenchArgs),
    /// Run a payment day through a durable node (accounts, transfers, holds captured, released
    /// and expired), every batch fsynced before it applies; restart from disk and check the state
    /// is identical; print throughput, ledger totals and the trial balance.
    Demo {
        /// Data directory. The default `data/demo` belongs to the demo and is emptied first; any
        /// other directory must be empty or absent.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Customer accounts to open.
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
        /// Posted transfers to apply.
        #[arg(long, default_value_t = 1_000_000)]
        transfers: u64,
        /// Seed of the workload.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Runs the command; an error is printed as its chain of causes in words, never with a
/// backtrace (a user's mistake is not a crash), and exits with status 1.
fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bursar: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Start { data, listen, client_ca, options, panel_accounts, panel_large } => {
            start(&data, listen, client_ca.as_deref(), options, PanelArgs { marked: panel_accounts, large: panel_large })
        }
        Cmd::Client(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(client_cmd::run(args))
        }
        Cmd::Desk(args) => {
            // Two threads: an import keeps a few lookups in flight while it decodes answers.
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            if !runtime.block_on(desk_cmd::run(args))? {
                // Done, but the cashier must look: a balance differs (printed on stderr).
                std::process::exit(desk_cmd::EXIT_BALANCE_MISMATCH);
            }
            Ok(())
        }
        Cmd::Demo { data, accounts, transfers, seed } => demo::run(data, accounts, transfers, seed),
        Cmd::Replay(args) => audit::run_replay(args, &server_head),
        Cmd::Statement(args) => audit::run_statement(args),
        Cmd::Log(op) => audit::run_log(op),
        Cmd::Bench(args) => bench_cmd::run(args),
    }
}

/// `bursar start`'s tuning flags.
#[derive(clap::Args, Clone, Copy, Debug)]
struct StartOptions {
    /// Snapshot every N log entries (0: only at shutdown). The sequencer pauses only while the
    /// state is encoded; the write and sync run on another thread. See bench/README.md.
    #[arg(long, default_value_t = bursar_net::sequencer::SNAPSHOT_EVERY_ENTRIES_DEFAULT)]
    snapshot_every_entries: u64,
    /// Log the state digest every N entries (and before every snapshot), for `bursar replay`
    /// to check. O(1) amortized per change; each checkpoint is a 120-byte entry in the next sync.
    #[arg(long, default_value_t = bursar_net::node::CHECKPOINT_EVERY_ENTRIES_DEFAULT)]
    checkpoint_every_entries: u64,
    /// Room for this many accounts in total, reserved and touched at start (about 300 bytes
    /// each with the snapshot copy, resident): the account table never grows (growing
    /// rehashes it on the sequencer thread, a stall) and the hot path takes no page faults.
    /// Default: what a fifth of a quarter of the available memory holds, at most 1 048 576.
    #[arg(long)]
    reserve_accounts: Option<u64>,
    /// Room for this many transfers in total, reserved at start and, when given, touched then
    /// (resident whether used or not, and no page faults on the hot path): 15 to 30 bytes each
    /// for the id index (13 a bucket, a power of two of them at most 7/8 full) and 8 for the
    /// links; about 150 more with `--history memory`, which keeps every record. Past it the
    /// index grows a few buckets per insert (no pause), holding the old table and one twice its
    /// size until the move ends: reserve what a large history will need so memory never holds
    /// both. Default: what four fifths of a quarter of the available memory hold, at most
    /// 16 777 216; 0 for none.
    #[arg(long)]
    reserve_transfers: Option<u64>,
    /// What happens to log segments that snapshots cover. `keep-all` (the default) keeps the
    /// whole history, so `bursar replay` can prove it from the first entry. `recycle` keeps
    /// the two newest snapshots and reuses the segments before the older one (overwriting
    /// written blocks is much faster than zero-filling fresh ones); the history before that
    /// snapshot is gone for good.
    #[arg(long, value_enum, default_value_t = RetentionArg::KeepAll)]
    retention: RetentionArg,
    /// Prepare this many MiB of log segments before serving (zero-filled, or recycled spares),
    /// as TigerBeetle's `format` preallocates its data file: until the log has filled them,
    /// no segment is zero-filled while it serves (about 130 bytes per transfer). 0: one
    /// segment ahead, prepared in the background.
    #[arg(long, default_value_t = 0)]
    reserve_log_mib: u64,
    /// Size of each new log segment, in MiB (at least 2: a segment holds a full request's entry).
    /// Existing segments keep their size.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    segment_mib: u64,
    /// Where operators' HTTP endpoints listen (loopback by default): Prometheus `/metrics`,
    /// `/healthz`, and `/readyz` (ready once recovery is done). Port 0: any free port.
    #[arg(long, default_value = "127.0.0.1:9413")]
    http: std::net::SocketAddr,
    /// Serve no HTTP endpoints.
    #[arg(long)]
    no_http: bool,
    /// Change-feed subscriptions served at once (`bursar client watch`); each holds a second
    /// copy of the state while it lasts. 0: no feed.
    #[arg(long, default_value_t = bursar_net::feed::SUBSCRIPTIONS_MAX_DEFAULT)]
    feed_subscriptions: usize,
    /// Where transfers live once newer ones fill their chunk. `disk` (the default) moves full
    /// chunks of 32 768 transfers to `<data>/history` and reads them back when named: about
    /// 11–18 resident bytes per stored transfer, snapshots of the hot state only
    /// (`docs/history-format.md`). `memory` keeps every transfer ever made resident (about 181
    /// bytes each, and every snapshot copies them all).
    #[arg(long, value_enum, default_value_t = HistoryArg::Disk)]
    history: HistoryArg,
    /// Most accounts the books may hold (default 8 388 608). Given, it is logged and holds from
    /// then on, at every later start and in `bursar replay`, until given again; lower than the
    /// accounts held, it refuses new ones and keeps every one it holds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..u32::MAX as i64))]
    accounts_max: Option<u32>,
    /// Most transfers the books may hold, failed ids included (default 67 108 864, at most
    /// 2 147 483 647). Logged as --accounts-max is. Each costs about 11–18 resident bytes with
    /// the history on disk (the default), about 181 with `--history memory`: size it to the
    /// machine.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..(1i64 << 31)))]
    transfers_max: Option<u32>,
    /// For crash tests: every log write's blocks reach the file in a random order (this seed's)
    /// with a pause before the sync, so a kill -9 leaves the files as a power cut could. Every
    /// sync still syncs; the server is only slower. See `bursar_wal::powercut`.
    #[arg(long, hide = true)]
    power_cut_seed: Option<u64>,
}

/// `--history`: where transfers live once their chunk is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum HistoryArg {
    /// In the history store, `<data>/history`; memory keeps the newest.
    Disk,
    /// In memory, every one.
    Memory,
}

/// `--retention`: the log's [`bursar_wal::Retention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RetentionArg {
    /// Keep every segment (the whole history).
    KeepAll,
    /// Recycle the segments before the older of the two newest snapshots.
    Recycle,
}

/// `--panel-account ROLE:ID`.
fn marked_account(text: &str) -> std::result::Result<(String, u128), String> {
    let (role, id) = text.split_once(':').ok_or_else(|| format!("{text:?}: ROLE:ID, e.g. payout:9851"))?;
    let id = id.trim().parse::<u128>().map_err(|e| format!("{id:?}: not an account id: {e}"))?;
    let role = role.trim();
    if role.is_empty() || role.len() > 32 {
        return Err(format!("{role:?}: a role is 1 to 32 characters"));
    }
    Ok((role.to_string(), id))
}

/// What the panel shows besides the books: the marked accounts, and from what amount a movement
/// is large, per ledger.
struct PanelArgs {
    marked: Vec<(String, u128)>,
    large: Vec<(u32, String)>,
}

/// `--panel-large LEDGER:AMOUNT`.
fn large_threshold(text: &str) -> std::result::Result<(u32, String), String> {
    let (ledger, amount) = text.split_once(':').ok_or_else(|| format!("{text:?}: LEDGER:AMOUNT, e.g. 978:5000.00"))?;
    let ledger = ledger.trim().parse::<u32>().map_err(|e| format!("{ledger:?}: not a ledger id: {e}"))?;
    let amount = amount.trim();
    bursar_http::movements::minor_units(amount, 18).ok_or_else(|| format!("{amount:?}: a plain decimal amount, e.g. 5000.00"))?;
    Ok((ledger, amount.to_string()))
}

fn start(
    data: &Path,
    listen: std::net::SocketAddr,
    client_ca: Option<&Path>,
    options: StartOptions,
    PanelArgs { marked, large }: PanelArgs,
) -> Result<()> {
    let started = Instant::now();
    // Before the first allocation of a chunk: freed chunks go back to the kernel, not to an
    // arena that keeps them resident (see there).
    bursar_wal::map_large_allocations();
    // Before anything is created: a port another process holds is named, and no data directory
    // is left behind for it.
    std::net::UdpSocket::bind(listen).with_context(|| {
        format!("{listen} is in use by another process (another bursar server?): stop it, or pass --listen with a free address")
    })?;
    let retention = match options.retention {
        RetentionArg::KeepAll => bursar_wal::Retention::KeepAll,
        RetentionArg::Recycle => bursar_wal::Retention::RecycleBeforeSnapshots,
    };
    // The HTTP endpoints answer from before recovery (`/readyz` says when it is done); a taken
    // address is named before the data directory is touched.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let http = if options.no_http { None } else { Some(start_http(&runtime, options.http)?) };
    if let Some((state, _)) = &http {
        let suspense = marked.iter().filter(|(role, _)| role == "suspense").map(|(_, id)| *id).collect();
        state.set_marked(marked);
        state.set_feed(bursar_http::movements::PanelFeed::new(data.join("log"), Limits::default(), large, suspense));
    }
    let config = WalConfig { retention, ..wal_config(options.segment_mib) };
    let dir = data.join("log");
    let storage = FsStorage::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let serving = Serving { data, listen, client_ca, options, started, runtime: &runtime, http: http.as_ref() };
    let served = match options.power_cut_seed {
        Some(seed) => {
            out!("bursar: TESTING: unsynced log writes land in random blocks (power-cut seed {seed})");
            let storage = bursar_wal::powercut::PowerCut::new(storage, seed);
            serve_node(&serving, open_with_history(storage, config, data, options.history)?)
        }
        None => serve_node(&serving, open_with_history(storage, config, data, options.history)?),
    };
    if let Some((_, stop)) = http {
        let _ = stop.send(());
    }
    served
}

/// A recovered node, what recovery found, and what the check of its history store found.
type Opened<S> = (Node<S>, bursar_wal::RecoveryReport, Option<bursar_net::history::HistoryAttached>);

/// Recovers the node on `storage`; with `--history disk`, with its history store in
/// `<data>/history` (see `bursar_node::history`).
fn open_with_history<S: bursar_wal::Storage>(storage: S, config: WalConfig, data: &Path, history: HistoryArg) -> Result<Opened<S>> {
    let dir = data.join("history");
    let store = if history == HistoryArg::Disk { Some(bursar_net::history::open_store(&dir)?) } else { None };
    Node::open_with_history(storage, config, Limits::default(), store).map_err(|e| {
        let hint = if history == HistoryArg::Memory && e.to_string().contains("history store") {
            format!(" (a server with its history on disk left them in {}: start without --history memory)", dir.display())
        } else {
            String::new()
        };
        anyhow::anyhow!("recovering {}: {e}{hint}", data.display())
    })
}

/// Says what the check of the history store at start found.
fn report_history(attached: &bursar_net::history::HistoryAttached, data: &Path) {
    for why in &attached.ids.1 {
        eprintln!("bursar: the stored ids' index dropped {why}; rebuilding it from the images");
    }
    if let Some(why) = &attached.images_dropped {
        eprintln!("bursar: a store of images derived from the history was unusable ({why}); it was emptied and written again");
    }
    let attached = attached.total();
    if attached.repaired + attached.dropped > 0 {
        eprintln!(
            "bursar: WARNING: {} history chunks differed from the recovered state and were rewritten, {} beyond it dropped",
            attached.repaired, attached.dropped
        );
    }
    out!(
        "bursar: history store {}: {} chunks checked ({} read back for the snapshot), {} stored now; memory keeps the newest",
        data.join("history").display(),
        attached.restored + attached.verified + attached.repaired,
        attached.restored,
        attached.appended,
    );
}

/// Binds and serves the HTTP endpoints on `runtime`; returns their state (recovering until the
/// node serves) and what stops them.
fn start_http(
    runtime: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
) -> Result<(std::sync::Arc<bursar_http::HttpState>, tokio::sync::oneshot::Sender<()>)> {
    let listener = runtime.block_on(bursar_http::bind(addr)).with_context(|| {
        format!("HTTP on {addr}: the address is in use or not this machine's: pass --http with a free one, or --no-http")
    })?;
    let bound = listener.local_addr()?;
    let state = bursar_http::HttpState::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(bursar_http::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    out!("bursar: http on {bound}: /metrics (Prometheus), /healthz, /readyz");
    Ok((state, stop))
}

/// What serving a recovered node needs besides the node.
struct Serving<'a> {
    data: &'a Path,
    listen: std::net::SocketAddr,
    client_ca: Option<&'a Path>,
    options: StartOptions,
    started: Instant,
    runtime: &'a tokio::runtime::Runtime,
    http: Option<&'a (std::sync::Arc<bursar_http::HttpState>, tokio::sync::oneshot::Sender<()>)>,
}

/// Bytes a reserved account or transfer takes, with the snapshot copy (about).
const RESERVED_BYTES_EACH: u64 = 300;

/// The room to reserve: as given, else from a quarter of the memory available now (four fifths
/// for transfers, at most 16 M; a fifth for accounts, at most 1 M), so a server on the defaults
/// does not pause while its tables grow.
fn reservation(accounts: Option<u64>, transfers: Option<u64>) -> (u64, u64) {
    let budget = available_memory_bytes().unwrap_or(0) / 4 / RESERVED_BYTES_EACH;
    (accounts.unwrap_or((budget / 5).min(1 << 20)), transfers.unwrap_or((budget * 4 / 5).min(1 << 24)))
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Serves a recovered node until a signal or a log failure (see [`start`]).
fn serve_node<S: bursar_wal::Storage + 'static>(serving: &Serving<'_>, (mut node, report, history): Opened<S>) -> Result<()> {
    let Serving { data, listen, client_ca, options, started, runtime, http } = *serving;
    use bursar_net::{assembly, sequencer, tls};
    node.set_checkpoint_every_entries(options.checkpoint_every_entries);
    let (accounts, transfers) = reservation(options.reserve_accounts, options.reserve_transfers);
    if accounts + transfers > 0 {
        let reserving = Instant::now();
        // Given: touched now, as the operator asked. Chosen: capacity only, resident as it fills.
        let given = options.reserve_accounts.is_some() || options.reserve_transfers.is_some();
        if given {
            node.reserve(accounts as usize, transfers as usize);
        } else {
            node.reserve_untouched(accounts as usize, transfers as usize);
        }
        let how = if given {
            "reserved and touched".to_string()
        } else {
            "reserved (a quarter of the available memory; resident only as it fills; --reserve-accounts or --reserve-transfers touches it at start, 0 for none)".to_string()
        };
        out!("bursar: room for {accounts} accounts and {transfers} transfers {how} in {:.0} ms", reserving.elapsed().as_secs_f64() * 1e3);
    }
    let snapshot_every_entries = options.snapshot_every_entries;
    let fresh = report.last_seq == 0 && report.snapshot.is_none();
    if fresh {
        out!("bursar: a new node in {} (an empty log; its books start with no ledgers)", data.display());
    } else {
        out!(
            "bursar: recovered {} in {:.0} ms: snapshot at {}, {} entries replayed, last entry {}{}{}",
            data.display(),
            started.elapsed().as_secs_f64() * 1e3,
            report.snapshot.map_or(0, |s| s.seq),
            report.entries_replayed,
            report.last_seq,
            report
                .truncated
                .as_ref()
                .map_or(String::new(), |t| format!(" (TORN TAIL CUT: {} at offset {}, from entry {}, {} bytes)", t.0, t.1, t.2, t.3)),
            if report.tail_vouched { "" } else { " (the log past its end searched: the durable mark could not vouch for it)" },
        );
    }
    let held = *node.engine().limits();
    let wanted = bursar_engine::Limits {
        accounts_max: options.accounts_max.unwrap_or(held.accounts_max),
        transfers_max: options.transfers_max.unwrap_or(held.transfers_max),
        ..held
    };
    if node.change_limits(wanted)? {
        out!("bursar: limits changed and logged: at most {} accounts and {} transfers", wanted.accounts_max, wanted.transfers_max);
    } else {
        out!(
            "bursar: limits: at most {} accounts and {} transfers (holding {} and {}; --accounts-max and --transfers-max change them)",
            held.accounts_max,
            held.transfers_max,
            node.engine().accounts().len(),
            node.engine().transfers().len()
        );
    }
    for (name, why) in &report.skipped_snapshots {
        eprintln!("bursar: WARNING: snapshot {name} is damaged or does not match the log ({why}); recovered without it, from an older snapshot or the log's start");
    }
    if !report.removed_leftovers.is_empty() {
        out!(
            "bursar: removed {} temporary files of writes cut short by a crash: {}",
            report.removed_leftovers.len(),
            report.removed_leftovers.join(", ")
        );
    }
    if let Some(attached) = &history {
        report_history(attached, data);
    }
    let reserving = Instant::now();
    let prepared = node.reserve_log(options.reserve_log_mib.saturating_mul(1 << 20)).context("reserving log space")?;
    if prepared > 0 {
        out!("bursar: prepared {prepared} log segments ahead in {:.0} ms", reserving.elapsed().as_secs_f64() * 1e3);
    }
    let had_certificate = data.join("server.crt").exists();
    let identity = tls::load_or_generate(data).context("certificate")?;
    if !had_certificate {
        out!(
            "bursar: generated a self-signed certificate for localhost: {} (clients pass it with --cert)",
            data.join("server.crt").display()
        );
    }
    let client_ca = match client_ca {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading the client CA {}", path.display()))?.into()),
        None => None,
    };
    let http = http.map(|(state, _)| state.clone());
    let limits = *node.engine().limits();
    let node = runtime.block_on(async move {
        let sequencer = sequencer::SequencerConfig { snapshot_every_entries, ..sequencer::SequencerConfig::default() };
        let mutual = client_ca.is_some();
        let feed = (options.feed_subscriptions > 0).then(|| bursar_net::feed::FeedConfig {
            dir: data.join("log"),
            limits,
            subscriptions_max: options.feed_subscriptions,
        });
        let config = assembly::ServerConfig { listen, sequencer, client_ca, feed, ..assembly::ServerConfig::default() };
        let running = assembly::Running::start(node, &identity, config).map_err(anyhow::Error::msg)?;
        if mutual {
            out!("bursar: mutual TLS: gateways must present a certificate from the configured CA");
        }
        if let Some(http) = &http {
            http.set_token(panel_token(data)?);
            http.ready(running.sequencer());
        }
        out!("bursar: listening on {} (QUIC, TLS 1.3, ALPN bursar/1)", running.addr());
        out!("bursar: certificate {} (SHA-256 {})", identity.cert_path.display(), identity.fingerprint());
        // Until a signal, or until the sequencer stops by itself (a log failure: the server then
        // exits non-zero, so a supervisor restarts it and recovery reads the log).
        let stopped = running.serve_until(async {
            shutdown_signal().await;
            if let Some(http) = &http {
                http.stopping();
            }
            out!("bursar: stopping: finishing accepted requests and taking a snapshot");
        });
        stopped.await.map_err(|e| anyhow::anyhow!("the sequencer stopped: {e}; restart to recover from the log"))
    })?;
    out!("bursar: stopped cleanly at entry {}", node.wal().synced_seq());
    Ok(())
}

/// The bearer token of the HTTP `/api/`: `panel.token` in the data directory, made on first
/// start (32 random bytes as hex, readable by the owner only) and printed then.
fn panel_token(data: &Path) -> Result<String> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data.join("panel.token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        out!("bursar: /api/ token in {} (send `Authorization: Bearer <token>`)", path.display());
        return Ok(token.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(token.as_bytes()).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", path.display()))?;
    out!("bursar: generated the /api/ token {token} (kept in {}; send `Authorization: Bearer <token>`)", path.display());
    Ok(token)
}

/// The head of the server at `addr` (for `bursar replay --verify-against`).
fn server_head(addr: std::net::SocketAddr, cert: &Path) -> Result<audit::ServerHead> {
    let der = bursar_net::tls::read_certificate(cert).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = runtime.block_on(async {
        let client = bursar_net::client::Client::connect(addr, der, "localhost").await.with_context(|| format!("connecting to {addr}"))?;
        anyhow::Ok(client.status().await?)
    })?;
    Ok(audit::ServerHead { seq: status.seq, state_digest: status.state_digest, chain_hash: status.chain_hash })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// The log's settings for segments of `segment_mib` MiB: entries up to 16 MiB, or what such a
/// segment holds if that is less (a full request's entry is about 1 MiB).
fn wal_config(segment_mib: u64) -> WalConfig {
    let segment_size_bytes = segment_mib << 20;
    let room = segment_size_bytes - (bursar_wal::format::SEGMENT_HEADER_SIZE + bursar_wal::format::ENTRY_HEADER_SIZE + 8) as u64;
    let default = WalConfig::default();
    let entry_body_max_bytes = room.min(u64::from(default.entry_body_max_bytes)) as u32;
    WalConfig { segment_size_bytes, entry_body_max_bytes, ..default }
}

pub(crate) fn open_node(dir: &Path, config: WalConfig) -> Result<(Node<FsStorage>, bursar_wal::RecoveryReport)> {
    let storage = FsStorage::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    Ok(Node::open(storage, config, Limits::default())?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command kind can be sent from `bursar client` under its protocol name (kebab-cased):
    /// adding a kind without its CLI command fails here.
    #[test]
    fn the_client_has_a_command_for_every_kind() {
        let cli = super::Cli::command();
        let client = cli.find_subcommand("client").expect("bursar client");
        for kind in bursar_engine::CommandKind::ALL {
            use bursar_engine::CommandKind as K;
            // Standing orders and triggers are grouped: `standing-order create`, `trigger pause`...
            let path: Vec<String> = match kind {
                K::CreateStandingOrder => vec!["standing-order".into(), "create".into()],
                K::CreateTrigger => vec!["trigger".into(), "create".into()],
                K::PauseOrder | K::ResumeOrder | K::CancelOrder | K::AmendOrder => {
                    vec!["standing-order".into(), kind.name().trim_end_matches("_order").into()]
                }
                _ => vec![kind.name().replace('_', "-")],
            };
            let found = path.iter().try_fold(client, |command, name| command.find_subcommand(name));
            assert!(found.is_some(), "bursar client has no `{}` for {kind:?}", path.join(" "));
        }
    }
}
