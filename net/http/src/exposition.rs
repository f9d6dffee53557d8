//! One scrape's figures in the OpenMetrics text format, through `prometheus-client`: the
//! counters and the sync-latency histogram of the `metrics` operation, the log's head and the
//! table sizes, the sequencer's queue, and per ledger its accounts and balance totals. Amounts
//! are integers in the ledger's minor units (saturating at 2^64 − 1), never floats; only
//! durations are in (float) seconds.

use bursar_engine::LedgerTotals;
use bursar_wire::metrics::{bucket_floor_us, Metrics, SYNC_BUCKETS};
use bursar_wire::protocol::Status;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

/// What one scrape reports.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// The node's counters since the process started.
    pub metrics: Metrics,
    /// The log's head and the table sizes.
    pub status: Status,
    /// Every ledger's totals (as many as one reply holds).
    pub ledgers: Vec<LedgerTotals>,
    /// Jobs waiting for the sequencer.
    pub queue_jobs: usize,
}

/// The scrape as OpenMetrics text.
pub fn encode(scrape: &Scrape) -> String {
    let mut registry = Registry::with_prefix("bursar");
    register_node(&mut registry, &scrape.metrics);
    register_status(&mut registry, &scrape.status, scrape.queue_jobs);
    register_ledgers(&mut registry, &scrape.ledgers);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

fn seconds(ns: u64) -> ConstGauge<f64> {
    ConstGauge::new(ns as f64 / 1e9)
}

fn register_node(r: &mut Registry, m: &Metrics) {
    r.register("log_entries", "Log entries written (batches, clock ticks, checkpoints)", ConstCounter::new(m.entries));
    r.register("batches", "Batch entries applied", ConstCounter::new(m.batches));
    r.register("commands", "Commands logged and applied", ConstCounter::new(m.commands));
    r.register("snapshots", "Snapshots written", ConstCounter::new(m.snapshots));
    r.register("snapshots_failed", "Snapshots whose write failed (the log still holds every entry)", ConstCounter::new(m.snapshots_failed));
    r.register_with_unit("sync_max", "The longest log sync", Unit::Seconds, seconds(m.sync_ns_max));
    r.register_with_unit("snapshot_stall_max", "The longest sequencer pause taking a snapshot", Unit::Seconds, seconds(m.snapshot_ns_max));
    r.register_with_unit("apply_max", "The longest time one group of entries took to apply", Unit::Seconds, seconds(m.apply_ns_max));
    r.register_with_unit("sync", "Log sync latency", Unit::Seconds, SyncHistogram::of(m));
    r.register("history_reads", "Records read back from the history store before batches", ConstCounter::new(m.history_reads));
    r.register("ids_asked", "Transfer ids the stored ids' index was asked about", ConstCounter::new(m.ids_asked));
    r.register(
        "ids_read_in_vain",
        "Ids asked whose index pages were read from disk though no run held them (the filters' false positives)",
        ConstCounter::new(m.ids_read_in_vain),
    );
    r.register(
        "history_evicted_transfers",
        "Transfers whose records only the history store holds",
        ConstGauge::new(gauge(m.history_evicted)),
    );
    r.register(
        "history_chunks_waiting",
        "Full chunks handed to the history writer, not yet stored",
        ConstGauge::new(gauge(m.history_waiting)),
    );
    r.register(
        "history_writer_failed",
        "1 while the history writer's writes fail (it tries again every second)",
        ConstGauge::new(gauge(m.history_failed)),
    );
}

/// A count as a gauge's value (saturating: no count of this server reaches 2^63).
fn gauge(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn register_status(r: &mut Registry, s: &Status, queue_jobs: usize) {
    r.register("log_sequence", "The last log entry's sequence number", ConstGauge::new(s.seq as i64));
    r.register("ledgers", "Ledgers", ConstGauge::new(s.ledgers as i64));
    r.register("accounts", "Accounts", ConstGauge::new(s.accounts as i64));
    r.register("transfers", "Stored transfers", ConstGauge::new(s.transfers as i64));
    r.register("queue_jobs", "Requests waiting for the sequencer", ConstGauge::new(queue_jobs as i64));
}

/// A ledger's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LedgerLabels {
    ledger: u32,
    currency: String,
}

fn register_ledgers(r: &mut Registry, ledgers: &[LedgerTotals]) {
    let family = || Family::<LedgerLabels, Gauge<u64, std::sync::atomic::AtomicU64>>::default();
    let (accounts, balanced) = (family(), family());
    let sides = [family(), family(), family(), family()];
    for t in ledgers {
        let labels = LedgerLabels { ledger: t.ledger.id, currency: String::from_utf8_lossy(&t.ledger.currency).into_owned() };
        accounts.get_or_create(&labels).set(u64::from(t.accounts));
        balanced.get_or_create(&labels).set(u64::from(t.is_balanced()));
        let b = &t.totals;
        for (family, amount) in sides.iter().zip([b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending]) {
            family.get_or_create(&labels).set(u64::try_from(amount).unwrap_or(u64::MAX));
        }
    }
    r.register("ledger_accounts", "Accounts on the ledger", accounts);
    r.register("ledger_trial_balance_ok", "1 when posted and pending debits equal credits on the ledger", balanced);
    let [debits_posted, credits_posted, debits_pending, credits_pending] = sides;
    r.register("ledger_debits_posted_minor", "Posted debits over the ledger's accounts, in minor units", debits_posted);
    r.register("ledger_credits_posted_minor", "Posted credits over the ledger's accounts, in minor units", credits_posted);
    r.register("ledger_debits_pending_minor", "Held (pending) debits over the ledger's accounts, in minor units", debits_pending);
    r.register("ledger_credits_pending_minor", "Held (pending) credits over the ledger's accounts, in minor units", credits_pending);
}

/// The node's quarter-octave sync histogram, already counted, as a Prometheus histogram: each
/// bucket's bound is the next bucket's floor; empty buckets are left out (the encoder adds the
/// counts up).
#[derive(Debug)]
struct SyncHistogram {
    sum_seconds: f64,
    count: u64,
    /// Upper bound (seconds) and the syncs in that bucket alone.
    buckets: Vec<(f64, u64)>,
}

impl SyncHistogram {
    fn of(m: &Metrics) -> SyncHistogram {
        let last = SYNC_BUCKETS - 1;
        let mut buckets: Vec<(f64, u64)> =
            (0..last).filter(|&i| m.sync_us_buckets[i] > 0).map(|i| (bucket_floor_us(i + 1) as f64 / 1e6, m.sync_us_buckets[i])).collect();
        buckets.push((f64::INFINITY, m.sync_us_buckets[last]));
        let count = m.sync_us_buckets.iter().sum();
        SyncHistogram { sum_seconds: m.sync_ns_total as f64 / 1e9, count, buckets }
    }
}

impl TypedMetric for SyncHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SyncHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(self.sum_seconds, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bursar_engine::{Balances, Ledger};

    fn scrape() -> Scrape {
        let mut metrics = Metrics {
            commands: 42,
            syncs: 3,
            sync_ns_total: 3_000_000,
            history_evicted: 65_536,
            history_waiting: 2,
            ids_asked: 8_190,
            ids_read_in_vain: 3,
            ..Metrics::default()
        };
        metrics.sync_us_buckets[bursar_wire::metrics::bucket_of_us(900)] = 2;
        metrics.sync_us_buckets[bursar_wire::metrics::bucket_of_us(1_200)] = 1;
        let ledger = Ledger { id: 978, currency: *b"EUR", scale: 2, ..Ledger::default() };
        let totals = Balances { debits_posted: 1_250, credits_posted: 1_250, debits_pending: u128::MAX, credits_pending: u128::MAX };
        let status = Status { seq: 7, clock: 0, chain_hash: [0; 32], state_digest: [0; 32], ledgers: 1, accounts: 3, transfers: 9 };
        Scrape { metrics, status, ledgers: vec![LedgerTotals { ledger, accounts: 3, totals, by_code: Vec::new() }], queue_jobs: 1 }
    }

    #[test]
    fn a_scrape_is_openmetrics_text_with_integer_amounts() {
        let text = encode(&scrape());
        for line in [
            "bursar_commands_total 42",
            "bursar_log_sequence 7",
            "bursar_transfers 9",
            "bursar_queue_jobs 1",
            r#"bursar_ledger_debits_posted_minor{ledger="978",currency="EUR"} 1250"#,
            r#"bursar_ledger_debits_pending_minor{ledger="978",currency="EUR"} 18446744073709551615"#,
            r#"bursar_ledger_trial_balance_ok{ledger="978",currency="EUR"} 1"#,
            "bursar_sync_seconds_count 3",
            "bursar_sync_seconds_sum 0.003",
            r#"bursar_sync_seconds_bucket{le="+Inf"} 3"#,
            "bursar_history_reads_total 0",
            "bursar_history_evicted_transfers 65536",
            "bursar_history_chunks_waiting 2",
            "bursar_history_writer_failed 0",
            "bursar_ids_asked_total 8190",
            "bursar_ids_read_in_vain_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // Cumulative buckets: 2 syncs at most 0.96 ms (the floor of 900 µs's next bucket), 3 in all.
        let le: Vec<&str> = text.lines().filter(|l| l.starts_with("bursar_sync_seconds_bucket")).collect();
        assert_eq!(le.len(), 3, "{le:?}");
        assert!(le[0].ends_with(" 2") && le[1].ends_with(" 3"), "{le:?}");
    }
}
