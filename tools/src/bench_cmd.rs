//! `bursar bench`: load a Bursar server the way payment gateways would and report what it did.
//! The harness itself (workload, clients, checks) is `bursar_bench::harness`; this file parses
//! the flags, runs the embedded server or targets `--addr`, draws the progress bar, and writes
//! the summary, `--json` and the `--plot` chart (SVG).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bursar_bench::harness::{self, Embedded, IdOrder, Load, Mix, Report, Stop, Target, Workload, TIMELINE_STEP};
use bursar_bench::{Choice, Zipf, LEDGER, SETTLEMENT};
use bursar_engine::BATCH_COMMANDS_MAX;
use clap::{Args, ValueEnum};

/// Named workloads; explicit flags override their parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// TigerBeetle's `benchmark` defaults: 10 000 accounts, 10 M posted transfers, requests of
    /// 8 189, uniform, one client, closed loop. Needs about 0.7 GiB of memory and 2.6 GB of disk
    /// (the log and the history store).
    Tigerbeetle,
    /// The same shape with 1 M transfers: well under a minute on a 2-core machine.
    Quick,
}

/// `bursar bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Base workload.
    #[arg(long, value_enum, default_value_t = Preset::Tigerbeetle)]
    pub preset: Preset,
    /// Accounts the run creates (fresh ids of its own).
    #[arg(long)]
    pub accounts: Option<u64>,
    /// Commands to send (a lookup id counts as one); the run's size unless --duration is given.
    #[arg(long)]
    pub transfers: Option<u64>,
    /// Run for this long instead of a number of commands (e.g. 30s, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Commands per request.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Concurrent gateway clients (one QUIC connection each).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Account choice: `uniform`, `hot:N:P` (N accounts take P% of picks) or `zipf:S` (weight 1/k^S).
    #[arg(long, default_value = "uniform")]
    pub choice: String,
    /// Command mix, weights: `transfer:70,hold:10,debit:5,credit:5,chain:5,reverse:5,lookup:5`. A
    /// hold is followed in the same request (or `--capture-after` requests later) by its full
    /// capture, half capture or release; a chain
    /// is three linked transfers; a reverse is a transfer followed by a refund of half of it; a
    /// lookup is a whole request of account lookups; a decline is a transfer to an account that
    /// does not exist (`credit_account_not_found`: its id is remembered as failed for good); an
    /// expire is a hold of one second nothing captures (the run waits for it to expire).
    #[arg(long, default_value = "transfer:1")]
    pub mix: String,
    /// Give every account of the run a channel list and a velocity rule first (checked on every
    /// transfer, refusing nothing): what account controls cost.
    #[arg(long)]
    pub policy: bool,
    /// Make every account of the run with the `history` flag (TigerBeetle's `--flag-history`):
    /// each transfer then adds a balance entry per side, kept and queried as history.
    #[arg(long)]
    pub account_history: bool,
    /// Capture or release each hold this many requests (of the same client) after it, not in its
    /// own request: card payments are captured long after their authorisation, so holds wait in
    /// the server meanwhile. Those still waiting when the run's commands are spent are sent after.
    #[arg(long, default_value_t = 0)]
    pub capture_after: usize,
    /// Transfer ids `sequential` (each client counts up: time-based ids, TigerBeetle's advice) or
    /// `random` (128 random bits, as UUIDv4s).
    #[arg(long, default_value = "sequential", value_parser = ["sequential", "random"])]
    pub ids: String,
    /// Seed of the workload.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Open loop at this many commands per second (all clients together); without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Load an already-running server instead of an embedded one.
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// With --addr: the server's certificate (DER), as printed by `bursar start`.
    #[arg(long, default_value = "data/server/server.crt")]
    pub cert: PathBuf,
    /// With --addr: write the benchmark's ledger, accounts and transfers into a server that holds
    /// other books too. Without it, such a server is refused: a benchmark never mixes test data
    /// into real books by accident.
    #[arg(long)]
    pub write_into_live_books: bool,
    /// With --addr: the TLS server name.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// The embedded server's data directory (must not exist; removed after the run unless --keep).
    /// Under the current directory by default, so the syncs go to the same disk as `bursar start`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep the embedded server's data directory (to replay or audit the run's log).
    #[arg(long)]
    pub keep: bool,
    /// Write the results as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a latency-percentile and throughput-over-time chart (SVG) to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_choice(text: &str, accounts: u64) -> Result<Choice> {
    let parts: Vec<&str> = text.split(':').collect();
    Ok(match parts.as_slice() {
        ["uniform"] => Choice::Uniform,
        ["hot", n, p] => Choice::Hot {
            hot: n.parse().context("hot:N:P: N must be a whole number")?,
            percent: p.trim_end_matches('%').parse().context("hot:N:P: P must be a whole percentage")?,
        },
        ["zipf", s] => {
            let s: f64 = s.parse().context("zipf:S: S must be a number")?;
            if !(s.is_finite() && s > 0.0) {
                bail!("zipf:S: S must be above 0");
            }
            Choice::Zipf(Zipf::new(accounts, s))
        }
        _ => bail!("--choice `{text}`: expected uniform, hot:N:P or zipf:S"),
    })
}

fn workload(args: &BenchArgs) -> Result<Workload> {
    let transfers_default = match args.preset {
        Preset::Tigerbeetle => 10_000_000,
        Preset::Quick => 1_000_000,
    };
    let accounts = args.accounts.unwrap_or(10_000);
    if accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    let workload = Workload {
        accounts,
        stop: match args.duration {
            Some(d) => Stop::Duration(d),
            None => Stop::Commands(args.transfers.unwrap_or(transfers_default)),
        },
        batch: args.batch.unwrap_or(BATCH_COMMANDS_MAX),
        clients: args.clients.unwrap_or(1),
        choice: parse_choice(&args.choice, accounts)?,
        mix: Mix::parse(&args.mix).map_err(anyhow::Error::msg).context("--mix")?,
        seed: args.seed,
        load: match args.rate {
            Some(commands_per_s) => Load::Open { commands_per_s },
            None => Load::Closed,
        },
        policy: args.policy,
        account_history: args.account_history,
        capture_after: args.capture_after,
        ids: if args.ids == "random" { IdOrder::Random } else { IdOrder::Sequential },
    };
    workload.check().map_err(anyhow::Error::msg)?;
    Ok(workload)
}

/// Runs `bursar bench`; fails (non-zero exit) when the run's own checks fail.
pub fn run(args: BenchArgs) -> Result<()> {
    let workload = workload(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = (!args.quiet).then(|| progress_bar(&workload, Arc::clone(&done)));
    let (report, where_) = runtime.block_on(async {
        match args.addr {
            Some(addr) => {
                let cert = bursar_net::tls::read_certificate(&args.cert).map_err(anyhow::Error::msg)?;
                let target = Target { addr, cert, server_name: args.server_name.clone() };
                check_books(&target, &workload, args.write_into_live_books).await?;
                let report = harness::run(&target, &workload, done).await.map_err(anyhow::Error::msg)?;
                Ok::<_, anyhow::Error>((report, format!("server at {addr}")))
            }
            None => {
                let dir = args.data.clone().unwrap_or_else(|| PathBuf::from(format!("data/bench-{}", std::process::id())));
                // Room for the whole run, as an operator sizes a server (`bursar start --reserve-*`):
                // a table that grows mid-run costs every batch more until it is done.
                let transfers = match workload.stop {
                    Stop::Commands(n) => n,
                    Stop::Duration(_) => 0,
                };
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()).map(Path::to_path_buf);
                let server = Embedded::start(&dir, workload.accounts + 1, transfers).await.map_err(anyhow::Error::msg)?;
                let outcome = harness::run(&server.target, &workload, done).await;
                let stopped = server.stop().await;
                if !args.keep {
                    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                    if let Some(created) = parent {
                        let _ = std::fs::remove_dir(created); // only if empty: it was created for this run
                    }
                }
                let report = outcome.map_err(anyhow::Error::msg)?;
                stopped.map_err(anyhow::Error::msg).context("stopping the embedded server")?;
                let kept = if args.keep { format!(", kept in {}", dir.display()) } else { String::new() };
                Ok((report, format!("embedded server (fsync per log entry{kept})")))
            }
        }
    })?;
    if let Some((bar, ticker)) = progress {
        ticker.store(u64::MAX, Ordering::Relaxed);
        bar.finish_and_clear();
    }
    print_summary(&report, &where_);
    if let Some(path) = &args.plot {
        plot(&report, path).with_context(|| format!("writing the chart {}", path.display()))?;
        out!("  chart           {}", path.display());
    }
    // JSON last, so `--json -` leaves it at the end of stdout.
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&to_json(&report)).expect("plain values serialize");
        if path == Path::new("-") {
            out!("{json}");
        } else {
            std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if !report.verified() {
        bail!("the run's own checks FAILED (see above): the server did not hold what the run sent");
    }
    Ok(())
}

/// Refuses a server that holds books other than earlier benchmark runs' (its only ledger the
/// benchmark's, with the benchmark's settlement account), unless told to write into them; says
/// what the run will write.
async fn check_books(target: &Target, workload: &Workload, into_live_books: bool) -> Result<()> {
    let client = bursar_net::client::Client::connect(target.addr, target.cert.clone(), &target.server_name)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    let status = client.status().await?;
    let ledger = client.ledger_totals(vec![LEDGER]).await?.pop().flatten();
    let only_benchmarks =
        status.ledgers == 0 || (status.ledgers == 1 && ledger.is_some_and(|l| l.ledger.settlement_account_id == SETTLEMENT));
    let commands = match workload.stop {
        Stop::Commands(n) => format!("{n} commands"),
        Stop::Duration(d) => format!("{} s of commands", d.as_secs_f64()),
    };
    if !only_benchmarks && !into_live_books {
        bail!(
            "the server at {} holds books of its own ({} ledgers, {} accounts, {} transfers); bursar bench would add ledger {LEDGER}, {} accounts and {commands} to them. Point it at a server started for benchmarks, or pass --write-into-live-books",
            target.addr,
            status.ledgers,
            status.accounts,
            status.transfers,
            workload.accounts
        );
    }
    out!(
        "bursar bench: writing ledger {LEDGER} (if absent), {} accounts and {commands} into the server at {}",
        workload.accounts,
        target.addr
    );
    Ok(())
}

/// A progress bar fed from the answered-commands counter by a small thread; storing `u64::MAX`
/// in the returned flag stops the thread.
fn progress_bar(workload: &Workload, done: Arc<AtomicU64>) -> (indicatif::ProgressBar, Arc<AtomicU64>) {
    let (bar, style) = match workload.stop {
        Stop::Commands(n) => (indicatif::ProgressBar::new(n), "{bar:40} {human_pos}/{human_len} commands, {msg}, eta {eta}"),
        Stop::Duration(d) => (indicatif::ProgressBar::new(d.as_secs().max(1)), "{bar:40} {pos}/{len} s, {msg}"),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(style).expect("valid template"));
    let stop = Arc::new(AtomicU64::new(0));
    let (b, flag, by_time) = (bar.clone(), Arc::clone(&stop), matches!(workload.stop, Stop::Duration(_)));
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let mut last = (std::time::Instant::now(), 0u64);
        while flag.load(Ordering::Relaxed) != u64::MAX {
            let answered = done.load(Ordering::Relaxed);
            b.set_position(if by_time { started.elapsed().as_secs() } else { answered });
            let seconds = last.0.elapsed().as_secs_f64();
            if seconds >= 1.0 {
                b.set_message(rate_words(answered.saturating_sub(last.1) as f64 / seconds));
                last = (std::time::Instant::now(), answered);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    (bar, stop)
}

/// A rate in commands per second, to three significant digits ("1.23 M/s", "845 k/s").
fn rate_words(per_s: f64) -> String {
    let (value, unit) = if per_s >= 1e6 {
        (per_s / 1e6, "M/s")
    } else if per_s >= 1e3 {
        (per_s / 1e3, "k/s")
    } else {
        (per_s, "/s")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {unit}")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

fn describe(workload: &Workload) -> String {
    let stop = match workload.stop {
        Stop::Commands(n) => format!("{n} commands"),
        Stop::Duration(d) => format!("{}", humantime::format_duration(d)),
    };
    let choice = match &workload.choice {
        Choice::Uniform => "uniform".to_string(),
        Choice::Hot { hot, percent } => format!("{hot} hot accounts take {percent}%"),
        Choice::Zipf(z) => format!("zipf s={}", z.s),
    };
    let load = match workload.load {
        Load::Closed => "closed loop".to_string(),
        Load::Open { commands_per_s } => format!("open loop at {commands_per_s:.0} commands/s"),
    };
    let m = workload.mix;
    format!(
        "{} accounts{}, {stop} in requests of {}, {} client(s), {load}, {choice}, mix transfer:{} hold:{} debit:{} credit:{} chain:{} reverse:{} lookup:{} decline:{} expire:{}{}, seed {}{}",
        workload.accounts,
        match (workload.policy, workload.account_history) {
            (true, true) => " with a channel list, a velocity rule and a balance history each",
            (true, false) => " with a channel list and a velocity rule each",
            (false, true) => " with a balance history each",
            (false, false) => "",
        },
        workload.batch,
        workload.clients,
        m.transfer,
        m.hold,
        m.debit,
        m.credit,
        m.chain,
        m.reverse,
        m.lookup,
        m.decline,
        m.expire,
        if workload.capture_after > 0 { format!(" (holds resolved {} requests later)", workload.capture_after) } else { String::new() },
        workload.seed,
        if workload.ids == IdOrder::Random { ", random transfer ids" } else { "" }
    )
}

fn print_summary(r: &Report, where_: &str) {
    let l = &r.latency_us;
    out!("bursar bench: {where_}");
    out!("  workload        {}", describe(&r.workload));
    out!("  setup           {} accounts created in {:.2} s; id base {}", r.workload.accounts, r.setup.as_secs_f64(), r.id_base);
    out!(
        "  throughput      {:.3} M commands/s: {} commands and {} lookups in {:.2} s, {} requests",
        r.throughput() / 1e6,
        r.expected.commands,
        r.expected.lookups,
        r.elapsed.as_secs_f64(),
        r.requests
    );
    out!(
        "  latency         p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms{}",
        ms(l.value_at_quantile(0.5)),
        ms(l.value_at_quantile(0.9)),
        ms(l.value_at_quantile(0.99)),
        ms(l.value_at_quantile(0.999)),
        ms(l.max()),
        if matches!(r.workload.load, Load::Open { .. }) { " (from each request's intended send time)" } else { "" }
    );
    if r.rejected.is_empty() {
        out!("  rejected        none");
    } else {
        out!("  rejected        {}", r.rejected.iter().map(|(code, n)| format!("{code}: {n}")).collect::<Vec<_>>().join(", "));
    }
    if r.busy_retries > 0 {
        out!("  busy            {} retries after `busy` (same ids)", r.busy_retries);
    }
    let s = &r.server;
    out!(
        "  server          {} log entries ({} batches), {} syncs, {:.0} commands per sync",
        s.entries,
        s.batches,
        s.syncs,
        s.commands as f64 / s.syncs.max(1) as f64
    );
    out!(
        "  sync latency    mean {:.2} ms  p50 ≤ {:.2} ms  p99 ≤ {:.2} ms  max {:.2} ms{}",
        s.sync_ns_total as f64 / s.syncs.max(1) as f64 / 1e6,
        ms(s.sync_quantile_us(0.5)),
        ms(s.sync_quantile_us(0.99)),
        s.sync_ns_max as f64 / 1e6,
        if s.snapshots > 0 {
            format!("; {} snapshots, longest stall {:.0} ms", s.snapshots, s.snapshot_ns_max as f64 / 1e6)
        } else {
            String::new()
        }
    );
    let (stall_ns, cause) = s.longest_stall();
    out!("  longest pause   {:.2} ms, in the {cause} (longest apply {:.2} ms)", stall_ns as f64 / 1e6, s.apply_ns_max as f64 / 1e6);
    if s.history_evicted > 0 || s.history_reads > 0 {
        out!(
            "  history store   {} transfers only on disk, {} records read back for batches, {} chunks waiting for the writer{}",
            s.history_evicted,
            s.history_reads,
            s.history_waiting,
            if s.history_failed != 0 { "; THE WRITER FAILED (see the server's log)" } else { "" }
        );
    }
    if s.ids_asked > 0 {
        out!(
            "  stored ids      {} ids asked, {} read from disk in vain (false positive rate {:.4}%)",
            s.ids_asked,
            s.ids_read_in_vain,
            100.0 * s.ids_read_in_vain as f64 / s.ids_asked as f64
        );
    }
    for c in &r.checks {
        out!("  {} {}: {}", if c.passed { "check ok  " } else { "CHECK FAIL" }, c.what, c.detail);
    }
}

fn to_json(r: &Report) -> serde_json::Value {
    let l = &r.latency_us;
    let s = &r.server;
    let w = &r.workload;
    serde_json::json!({
        "workload": {
            "description": describe(w),
            "accounts": w.accounts,
            "batch": w.batch,
            "clients": w.clients,
            "seed": w.seed,
            "open_loop_commands_per_s": match w.load { Load::Open { commands_per_s } => Some(commands_per_s), Load::Closed => None },
        },
        "target": r.target,
        "setup_s": r.setup.as_secs_f64(),
        "elapsed_s": r.elapsed.as_secs_f64(),
        "commands": r.expected.commands,
        "lookups": r.expected.lookups,
        "requests": r.requests,
        "throughput_commands_per_s": r.throughput(),
        "latency_ms": {
            "p50": ms(l.value_at_quantile(0.5)),
            "p90": ms(l.value_at_quantile(0.9)),
            "p99": ms(l.value_at_quantile(0.99)),
            "p99_9": ms(l.value_at_quantile(0.999)),
            "max": ms(l.max()),
            "mean": l.mean() / 1e3,
        },
        "rejected": r.rejected,
        "busy_retries": r.busy_retries,
        "server": {
            "entries": s.entries,
            "batches": s.batches,
            "commands": s.commands,
            "syncs": s.syncs,
            "commands_per_sync": s.commands as f64 / s.syncs.max(1) as f64,
            "sync_mean_ms": s.sync_ns_total as f64 / s.syncs.max(1) as f64 / 1e6,
            "sync_p50_ms_at_most": ms(s.sync_quantile_us(0.5)),
            "sync_p99_ms_at_most": ms(s.sync_quantile_us(0.99)),
            "sync_max_ms": s.sync_ns_max as f64 / 1e6,
            "snapshots": s.snapshots,
            "snapshot_stall_max_ms": s.snapshot_ns_max as f64 / 1e6,
            "apply_max_ms": s.apply_ns_max as f64 / 1e6,
            "longest_pause_cause": s.longest_stall().1,
            "history_reads": s.history_reads,
            "ids_asked": s.ids_asked,
            "ids_read_in_vain": s.ids_read_in_vain,
        },
        "timeline": {
            "step_ms": TIMELINE_STEP.as_millis() as u64,
            "commands": r.timeline,
        },
        "checks": r.checks.iter().map(|c| serde_json::json!({ "what": c.what, "passed": c.passed, "detail": c.detail })).collect::<Vec<_>>(),
        "verified": r.verified(),
    })
}

/// The chart: request latency by percentile ("nines" on the x axis) above, commands per second
/// over the run below.
fn plot(r: &Report, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let (upper, lower) = root.split_vertically(380);

    // x = -log10(1 - q): 1 at p90, 2 at p99, 3 at p99.9.
    // The axis ends where the samples do: n requests resolve percentiles up to 1 - 1/n.
    let x_max = (r.latency_us.len().max(10) as f64).log10().min(6.0);
    let nines = |q: f64| (-(1.0 - q).max(1e-12).log10()).min(x_max);
    let points: Vec<(f64, f64)> =
        r.latency_us.iter_quantiles(1).map(|v| (nines(v.quantile_iterated_to()), ms(v.value_iterated_to()))).collect();
    let y_max = ms(r.latency_us.max()).max(0.001) * 1.1;
    let mut chart = ChartBuilder::on(&upper)
        .caption(format!("request latency by percentile ({})", describe_short(r)), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max.floor() as usize + 1)
        .x_label_formatter(&|x| {
            // Labels at whole nines only: 0%, 90%, 99%, 99.9%…
            if (x - x.round()).abs() > 1e-6 {
                return String::new();
            }
            format!("{:.*}%", (x.round() as usize).saturating_sub(2), 100.0 - 100.0 * 10f64.powf(-x.round()))
        })
        .draw()
        .map_err(|e| failed(&e))?;
    chart.draw_series(LineSeries::new(points, &BLUE)).map_err(|e| failed(&e))?;

    let step = TIMELINE_STEP.as_secs_f64();
    let rates: Vec<(f64, f64)> = r.timeline.iter().enumerate().map(|(i, n)| ((i as f64 + 1.0) * step, *n as f64 / step / 1e6)).collect();
    let t_max = rates.last().map_or(1.0, |p| p.0);
    let r_max = rates.iter().map(|p| p.1).fold(0.001, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&lower)
        .caption("throughput over the run", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..r_max)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(format!("M commands/s (per {} ms)", TIMELINE_STEP.as_millis()))
        .draw()
        .map_err(|e| failed(&e))?;
    chart.draw_series(LineSeries::new(rates, &RED)).map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

fn describe_short(r: &Report) -> String {
    format!(
        "{} commands, requests of {}, {} client(s), {:.2} M/s",
        r.expected.commands + r.expected.lookups,
        r.workload.batch,
        r.workload.clients,
        r.throughput() / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::rate_words;

    #[test]
    fn rates_read_to_three_significant_digits() {
        assert_eq!(rate_words(1_234_567.0), "1.23 M/s");
        assert_eq!(rate_words(845_123.4), "845 k/s");
        assert_eq!(rate_words(12_345.0), "12.3 k/s");
        assert_eq!(rate_words(7.0), "7.00 /s");
    }
}
