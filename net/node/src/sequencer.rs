//! The sequencer: one thread owns the node; network tasks hand it whole requests over a bounded
//! queue. It gathers whatever is waiting (from any number of connections) into one log entry,
//! makes it durable with one sync (group commit across clients), applies it, and only then
//! releases each reply. It reads the clock (the engine never does) and ticks it when a hold is
//! due even if no traffic arrives; the tick is logged like any batch, so replay is exact.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bursar_engine::batch::Input;
use bursar_engine::{Command, Engine, ResultCode, BATCH_COMMANDS_MAX};
use bursar_wal::Storage;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::oneshot;

use bursar_wire::protocol::{LimitsRecord, Outcome, OutcomeStatus, ProtocolError, Request};
use bursar_wire::reply::Reply;

use crate::feed::Durable;
use crate::node::Node;
use crate::pool::Pool;

/// A request waiting for the sequencer, with where to send its typed reply (the transport
/// encodes it).
#[derive(Debug)]
pub struct Job {
    /// The decoded request.
    pub request: Request,
    /// Receives the reply.
    pub reply: oneshot::Sender<Reply>,
}

/// Limits of the sequencer.
#[derive(Clone, Copy, Debug)]
pub struct SequencerConfig {
    /// Requests waiting at most; more get `busy`.
    pub queue_jobs_max: usize,
    /// How often an idle sequencer looks whether a hold is due.
    pub tick_interval: Duration,
    /// Take a snapshot after this many log entries (0: only at shutdown). The sequencer stalls
    /// only while the state is encoded; the checksum, write and sync run on the storage's writer
    /// thread while batches go on (see bench/README.md for the stall measured).
    pub snapshot_every_entries: u64,
    /// Take a snapshot when stopping (the default; off only where the data is thrown away after,
    /// as in the `bursar bench` embedded server).
    pub snapshot_on_stop: bool,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            queue_jobs_max: 4096,
            tick_interval: Duration::from_millis(100),
            snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES_DEFAULT,
            snapshot_on_stop: true,
        }
    }
}

/// Log entries between periodic snapshots unless configured otherwise: at full batches (8 189
/// transfers each) about 8 M transfers, so a restart replays at most that many after the newest
/// snapshot.
pub const SNAPSHOT_EVERY_ENTRIES_DEFAULT: u64 = 1024;

/// Command vectors kept for reuse at most (each up to `BATCH_COMMANDS_MAX` commands, about
/// 1.2 MiB): the sequencer hands a batch's vector back once the batch is answered, and the
/// network side decodes the next request into it (see `pool.rs`).
pub const COMMAND_VECS_POOLED_MAX: usize = 32;

/// The network side's handle: submit jobs, or learn that the queue is full.
#[derive(Clone, Debug)]
pub struct SequencerHandle {
    jobs: Sender<Job>,
    spare_commands: Pool<Command>,
    /// Becomes true when the sequencer thread has stopped (shutdown, or a log failure).
    stopped: tokio::sync::watch::Receiver<bool>,
    /// The log's durable end, published after every sync (the change feed follows it).
    durable: Arc<Durable>,
}

impl SequencerHandle {
    /// Queues a job; a full queue gives the job back so the caller can answer `busy`.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    /// Jobs waiting for the sequencer now (at most `SequencerConfig::queue_jobs_max`).
    pub fn queue_len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the sequencer has stopped: a refused job then means `shutting_down`, not `busy`.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Resolves once the sequencer has stopped: after a shutdown, or after a log failure that
    /// stopped it (a server then stops serving, so that a restart recovers from the log).
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|stopped| *stopped).await; // Err: the thread is gone, so stopped too
    }

    /// An empty command vector to decode a request into: one the sequencer is done with if any
    /// (its capacity kept), else a new one.
    pub fn spare_commands(&self) -> Vec<Command> {
        self.spare_commands.take()
    }

    /// The log's durable end as published after every sync, for the change feed.
    pub fn durable(&self) -> &Arc<Durable> {
        &self.durable
    }
}

/// Buffers the sequencer keeps from batch to batch.
#[derive(Debug, Default)]
struct Scratch {
    /// Commands of several requests joined into one log entry, one vector per such entry, and
    /// the ends of its requests that close an open chain (see `Engine::execute_requests`).
    joined: Vec<(Vec<Command>, Vec<u32>)>,
    results: Vec<ResultCode>,
}

/// The sequencer thread; joining it yields the node (after its final snapshot) or what stopped it.
pub type SequencerThread<S> = std::thread::JoinHandle<Result<Node<S>, String>>;

/// Nanoseconds since the Unix epoch.
fn wall_clock_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Starts the sequencer thread. It runs until every handle is dropped, then takes a snapshot
/// and returns the node (or the error that stopped it) from its join handle.
pub fn start<S: Storage + 'static>(mut node: Node<S>, config: SequencerConfig) -> std::io::Result<(SequencerHandle, SequencerThread<S>)> {
    let (jobs, inbox) = bounded(config.queue_jobs_max);
    let spare_commands = Pool::new(COMMAND_VECS_POOLED_MAX);
    let recycler = spare_commands.clone();
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let durable = Arc::new(Durable::default());
    durable.publish(node.durable_seq());
    node.set_feed_tail(Arc::clone(&durable));
    let publisher = Arc::clone(&durable);
    let thread = std::thread::Builder::new().name("sequencer".into()).spawn(move || {
        let outcome = run(node, inbox, recycler, config, &publisher);
        publisher.close();
        let _ = stopping.send(true);
        outcome
    })?;
    Ok((SequencerHandle { jobs, spare_commands, stopped, durable }, thread))
}

fn run<S: Storage>(
    mut node: Node<S>,
    inbox: Receiver<Job>,
    recycler: Pool<Command>,
    config: SequencerConfig,
    durable: &Durable,
) -> Result<Node<S>, String> {
    node.keep_snapshot_copy_current(config.snapshot_every_entries > 0);
    let mut waiting: Vec<Job> = Vec::new();
    let mut scratch = Scratch::default();
    loop {
        match inbox.recv_timeout(tick_wait(&node, config.tick_interval)) {
            Ok(job) => waiting.push(job),
            Err(RecvTimeoutError::Timeout) => {
                report_snapshot(node.snapshot_poll());
                let now = wall_clock_ns();
                let due = [node.engine().next_expiry(), node.engine().next_run_due()].into_iter().flatten().min();
                if due.is_some_and(|at| at <= now) {
                    node.submit(now, &[], &mut Vec::new()).map_err(|e| e.to_string())?;
                    durable.publish(node.durable_seq());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(job) = inbox.try_recv() {
            waiting.push(job);
            if waiting.len() >= BATCH_COMMANDS_MAX {
                break;
            }
        }
        let processed = process(&mut node, &mut waiting, &mut scratch, &recycler);
        durable.publish(node.durable_seq());
        processed?;
        report_snapshot(node.snapshot_poll());
        let due = config.snapshot_every_entries > 0 && node.entries_since_snapshot() >= config.snapshot_every_entries;
        if due && !node.snapshot_writing() {
            match node.snapshot_begin() {
                // The storage could not start the write (no thread, say): like a failed write.
                Err(e @ crate::NodeError::Log(bursar_wal::WalError::Snapshot(_))) => report_snapshot(Some(Err(e))),
                Err(e) => return Err(e.to_string()),
                Ok(_) => {}
            }
        }
    }
    report_snapshot(node.snapshot_end());
    if config.snapshot_on_stop {
        if !node.history_drain(crate::history::DRAIN_AT_STOP) {
            eprintln!("bursar: the history store did not take every full chunk in time; the final snapshot carries the rest");
        }
        node.snapshot().map_err(|e| e.to_string())?;
        durable.publish(node.durable_seq());
    }
    Ok(node)
}

/// A periodic snapshot that failed costs nothing but recovery time (the log holds every entry):
/// say so and go on; the next interval tries again.
fn report_snapshot(outcome: Option<Result<u64, crate::NodeError>>) {
    if let Some(Err(e)) = outcome {
        eprintln!("bursar: a periodic snapshot failed ({e}); the log still holds every entry, the next interval tries again");
    }
}

/// Log entries made durable by one sync at most: when full-size requests queue up, each is its
/// own entry (8 189 commands at most) and up to this many share a sync. Bounds the bytes one sync
/// writes (about 4 MiB) and the latency the first of them waits for the others' writing.
/// Measured on this machine's disk (fdatasync ~0.9 ms, hidden behind the ~2 ms apply of a full
/// batch) it changed neither throughput nor p99 beyond the run-to-run noise; it is there for
/// disks whose sync costs more than applying a batch.
pub const ENTRIES_PER_SYNC_MAX: usize = 4;

/// Applies the waiting jobs in arrival order: consecutive submits share one log entry (up to the
/// batch limit), and consecutive entries share one sync (up to [`ENTRIES_PER_SYNC_MAX`]); a query
/// first flushes the submits before it, so it sees their effects. A log failure answers everyone `shutting_down` and stops the sequencer.
fn process<S: Storage>(node: &mut Node<S>, waiting: &mut Vec<Job>, scratch: &mut Scratch, recycler: &Pool<Command>) -> Result<(), String> {
    // Jobs of the pending submits, and where each entry's jobs end.
    let mut jobs: Vec<Job> = Vec::new();
    let mut entry_ends: Vec<usize> = Vec::new();
    let mut entry_len = 0;
    for job in waiting.drain(..) {
        match &job.request {
            Request::Submit(batch) => {
                if !jobs.is_empty() && entry_len + batch.len() > BATCH_COMMANDS_MAX {
                    entry_ends.push(jobs.len());
                    entry_len = 0;
                    if entry_ends.len() == ENTRIES_PER_SYNC_MAX {
                        flush(node, &mut jobs, &mut entry_ends, scratch, recycler)?;
                    }
                }
                entry_len += batch.len();
                jobs.push(job);
            }
            _ => {
                if !jobs.is_empty() {
                    entry_ends.push(jobs.len());
                    entry_len = 0;
                    flush(node, &mut jobs, &mut entry_ends, scratch, recycler)?;
                }
                answer_query(node, job);
            }
        }
    }
    if !jobs.is_empty() {
        entry_ends.push(jobs.len());
        flush(node, &mut jobs, &mut entry_ends, scratch, recycler)?;
    }
    Ok(())
}

fn commands_of(job: &Job) -> &[Command] {
    match &job.request {
        Request::Submit(batch) => batch,
        _ => unreachable!("only submits are grouped"),
    }
}

/// Logs the pending entries (`entry_ends` marks where each entry's jobs end), makes them durable
/// with one sync, applies them, and answers every job. An entry of one request is applied from
/// the request's own vector; the requests of a shared entry are joined in a scratch vector, with
/// the end of every request but the last whose last command is linked: its chain closes there,
/// in the logged input too, and never runs on into the next client's commands.
fn flush<S: Storage>(
    node: &mut Node<S>,
    jobs: &mut Vec<Job>,
    entry_ends: &mut Vec<usize>,
    scratch: &mut Scratch,
    recycler: &Pool<Command>,
) -> Result<(), String> {
    let mut start = 0;
    let mut joined = 0;
    for &end in entry_ends.iter() {
        if end - start > 1 {
            if scratch.joined.len() == joined {
                scratch.joined.push(Default::default());
            }
            join_requests(&jobs[start..end], &mut scratch.joined[joined]);
            joined += 1;
        }
        start = end;
    }
    let mut batches: Vec<Input<'_>> = Vec::with_capacity(entry_ends.len());
    let (mut start, mut joined) = (0, 0);
    for &end in entry_ends.iter() {
        if end - start > 1 {
            let (commands, request_ends) = &scratch.joined[joined];
            batches.push(Input { commands, request_ends });
            joined += 1;
        } else {
            batches.push(Input::single(commands_of(&jobs[start])));
        }
        start = end;
    }
    scratch.results.clear();
    let outcome = node.submit_entries(wall_clock_ns(), &batches, &mut scratch.results);
    drop(batches);
    let mut at = 0;
    for job in jobs.drain(..) {
        let reply = match (&outcome, &job.request) {
            (Ok(_), Request::Submit(batch)) => {
                let results = scratch.results[at..at + batch.len()].to_vec();
                at += batch.len();
                Reply::Submit(results)
            }
            (Err(crate::NodeError::History(_)), _) => Reply::Error(ProtocolError::HistoryUnreadable),
            _ => Reply::Error(ProtocolError::ShuttingDown),
        };
        let _ = job.reply.send(reply); // a client that went away needs no answer
        if let Request::Submit(commands) = job.request {
            recycler.give_back(commands);
        }
    }
    entry_ends.clear();
    match outcome {
        // Nothing was logged or applied: those requests are refused, the server goes on.
        Err(crate::NodeError::History(why)) => {
            eprintln!("bursar: ERROR: a batch was refused: reading the history store failed ({why})");
            Ok(())
        }
        outcome => outcome.map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// Joins the commands of `jobs` into `into`, recording the end of every request but the last
/// that leaves a chain open.
fn join_requests(jobs: &[Job], (commands, request_ends): &mut (Vec<Command>, Vec<u32>)) {
    commands.clear();
    request_ends.clear();
    for (k, job) in jobs.iter().enumerate() {
        let own = commands_of(job);
        commands.extend_from_slice(own);
        // An empty request ends nothing: its "last command" would be the one before it.
        if k + 1 < jobs.len() && own.last().is_some_and(Command::is_linked) {
            request_ends.push(commands.len() as u32 - 1);
        }
    }
}

/// What became of a transfer id: stored, decided by a failure, or neither.
fn outcome(engine: &Engine, id: u128) -> Outcome {
    if let Some(t) = engine.transfer(id) {
        return Outcome { id, status: OutcomeStatus::Stored, timestamp: t.timestamp, code: ResultCode::Ok };
    }
    match engine.failed_transfer(id) {
        Some(f) => Outcome { id, status: OutcomeStatus::Failed, timestamp: f.timestamp, code: f.code },
        None => Outcome { id, status: OutcomeStatus::Unknown, timestamp: 0, code: ResultCode::Ok },
    }
}

/// How long the idle sequencer waits for a request before it ticks: until the next standing-order
/// run is due (none when one is due now: a storm drains at full speed), at most `interval`.
fn tick_wait<S: Storage>(node: &Node<S>, interval: Duration) -> Duration {
    match node.engine().next_run_due() {
        Some(at) => Duration::from_nanos(at.saturating_sub(wall_clock_ns())).min(interval),
        None => interval,
    }
}

/// Every ledger's totals in id order, as many as one reply frame holds (a ledger takes its
/// record, its totals row and a row per account code): ledger totals asked with no ids.
fn every_ledger(engine: &bursar_engine::Engine) -> Vec<Option<bursar_engine::LedgerTotals>> {
    let mut ids: Vec<u32> = engine.ledgers().map(|l| l.id).collect();
    ids.sort_unstable();
    let (mut out, mut records) = (Vec::new(), 0usize);
    for id in ids {
        let Some(totals) = engine.ledger_totals(id) else { continue };
        records += 2 + totals.by_code.len();
        if records > bursar_wire::protocol::FRAME_RECORDS_MAX {
            break;
        }
        out.push(Some(totals));
    }
    out
}

fn answer_query<S: Storage>(node: &mut Node<S>, job: Job) {
    let reply = match &job.request {
        Request::Status => Reply::Status(node.status()),
        Request::Metrics => Reply::Metrics(Box::new(node.metrics())),
        Request::LookupAccounts(ids) => {
            Reply::Accounts(ids.iter().map(|id| node.engine().account(*id).copied().unwrap_or_default()).collect())
        }
        Request::LookupTransfers(ids) => {
            Reply::Transfers(node.engine().transfers_by_id(ids).into_iter().map(Option::unwrap_or_default).collect())
        }
        Request::GetAccountTransfers(filter) => Reply::AccountTransfers(node.engine().get_account_transfers(filter)),
        Request::GetAccountBalances(filter) => Reply::Balances(node.engine().get_account_balances(filter)),
        Request::LedgerTotals(ids) if ids.is_empty() => Reply::LedgerTotals(every_ledger(node.engine())),
        Request::LedgerTotals(ids) => Reply::LedgerTotals(ids.iter().map(|id| node.engine().ledger_totals(*id)).collect()),
        Request::LookupOutcomes(ids) => Reply::Outcomes(ids.iter().map(|id| outcome(node.engine(), *id)).collect()),
        Request::LookupLimits(ids) => Reply::Limits(
            ids.iter().map(|id| node.engine().balance_limits(*id).map(|limits| LimitsRecord { account_id: *id, limits })).collect(),
        ),
        Request::LookupLineage(id) => Reply::Lineage(Box::new(node.engine().lineage(*id))),
        Request::LookupPolicy(id) => Reply::Policy(Box::new(node.engine().account_policy(*id))),
        Request::LookupOrders(ids) => Reply::Orders(ids.iter().map(|id| node.engine().order(*id).cloned()).collect()),
        Request::LookupAccountOrders(id) => Reply::AccountOrders(node.engine().orders_of(*id).into_iter().cloned().collect()),
        Request::LookupQuotes(ids) => Reply::Quotes(ids.iter().map(|id| node.engine().quote(*id)).collect()),
        Request::ExpiringHolds(limit) => Reply::ExpiringHolds(node.engine().holds_expiring(*limit as usize)),
        // The transport serves subscriptions from the log; one that reaches the sequencer has none.
        Request::Subscribe(_) => Reply::Error(ProtocolError::FeedUnavailable),
        Request::Submit(_) => unreachable!("submits are grouped"),
    };
    // An answer built from a failed read of the history store is not sent.
    let reply = match node.engine().take_history_failure() {
        Some(why) => {
            eprintln!("bursar: ERROR: a query was refused: reading the history store failed ({why})");
            Reply::Error(ProtocolError::HistoryUnreadable)
        }
        None => reply,
    };
    let _ = job.reply.send(reply);
}
