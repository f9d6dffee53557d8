//! The node's counters and its sync-latency histogram, as the `metrics` operation reports them:
//! totals since the process started, so a client (the `bursar bench` harness) reads them before
//! and after a run and takes the difference, percentiles included.
//!
//! The histogram has quarter-octave buckets of microseconds (4 per power of two, about 19%
//! wide): exact below 4 µs, and its last bucket holds everything from 2^32 µs (71 minutes) up.

use bursar_engine::RECORD_SIZE;

/// Buckets of the sync-latency histogram.
pub const SYNC_BUCKETS: usize = 128;
/// The u64 values of the counters record (the rest of it is zero).
const COUNTERS: usize = 16;
/// Records of a metrics reply: the counters, then the buckets (16 per record).
pub const METRICS_RECORDS: usize = 1 + SYNC_BUCKETS / 16;

/// The bucket that holds a latency of `us` microseconds.
pub fn bucket_of_us(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // floor(log2 us), at least 2
    let quarter = ((us >> (octave - 2)) & 3) as usize;
    (4 * (octave - 1) + quarter).min(SYNC_BUCKETS - 1)
}

/// The smallest latency (µs) bucket `index` holds; the next bucket's bound is its exclusive end.
pub fn bucket_floor_us(index: usize) -> u64 {
    if index < 4 {
        return index as u64;
    }
    let (octave, quarter) = (index / 4 + 1, (index % 4) as u64);
    (4 + quarter) << (octave - 2)
}

/// Counters since the node was opened (this process), and sync latencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// Log entries written: batches, clock ticks and checkpoints.
    pub entries: u64,
    /// Batch entries (a clock tick is an empty batch).
    pub batches: u64,
    /// Commands logged and applied.
    pub commands: u64,
    /// Syncs that returned (each made one or more entries durable).
    pub syncs: u64,
    /// Time spent in those syncs, nanoseconds.
    pub sync_ns_total: u64,
    /// The longest sync, nanoseconds.
    pub sync_ns_max: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// The longest time the sequencer spent taking one snapshot (checkpoint, sync, encoding the
    /// state; the write itself runs on another thread), nanoseconds.
    pub snapshot_ns_max: u64,
    /// Snapshots whose write failed (nothing is lost: the log holds every entry).
    pub snapshots_failed: u64,
    /// The longest time one group of entries took to apply in the engine (ns): with the
    /// longest sync and the longest snapshot stall, where the sequencer's longest pause came from
    /// ([`Metrics::longest_stall`]).
    pub apply_ns_max: u64,
    /// Records read back from the history store before batches (the prefetch), since the node
    /// was opened.
    pub history_reads: u64,
    /// Now: transfers whose records only the history store holds (evicted from memory).
    pub history_evicted: u64,
    /// Now: full chunks (of any kind) handed to the history writer and not yet stored. Each is
    /// in memory until stored; a number that keeps growing is a writer that cannot keep up.
    pub history_waiting: u64,
    /// Now: 1 while the history writer's writes fail (a full disk, say; it tries again every
    /// second, and newer chunks stay in memory meanwhile: nothing is lost), else 0.
    pub history_failed: u64,
    /// Transfer ids the stored ids' index was asked about (each id a batch names, once the
    /// history store holds ids), since the node was opened.
    pub ids_asked: u64,
    /// Of those, ids for which pages of the index were read from disk and held none of them:
    /// new ids that every filter let through (its false "maybe"s). Divided by `ids_asked`: the
    /// filters' false-positive rate.
    pub ids_read_in_vain: u64,
    /// Syncs by latency: see [`bucket_of_us`].
    pub sync_us_buckets: [u64; SYNC_BUCKETS],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            entries: 0,
            batches: 0,
            commands: 0,
            syncs: 0,
            sync_ns_total: 0,
            sync_ns_max: 0,
            snapshots: 0,
            snapshot_ns_max: 0,
            snapshots_failed: 0,
            apply_ns_max: 0,
            history_reads: 0,
            history_evicted: 0,
            history_waiting: 0,
            history_failed: 0,
            ids_asked: 0,
            ids_read_in_vain: 0,
            sync_us_buckets: [0; SYNC_BUCKETS],
        }
    }
}

impl Metrics {
    /// Counts one sync that took `ns` nanoseconds.
    pub fn record_sync(&mut self, ns: u64) {
        self.syncs += 1;
        self.sync_ns_total += ns;
        self.sync_ns_max = self.sync_ns_max.max(ns);
        self.sync_us_buckets[bucket_of_us(ns / 1_000)] += 1;
    }

    /// What happened between `earlier` and `self` (two readings of the same process). The maxima
    /// and the gauges (what holds now) are the later reading's: they have no difference.
    pub fn since(&self, earlier: &Metrics) -> Metrics {
        let mut buckets = [0; SYNC_BUCKETS];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = self.sync_us_buckets[i].saturating_sub(earlier.sync_us_buckets[i]);
        }
        Metrics {
            entries: self.entries.saturating_sub(earlier.entries),
            batches: self.batches.saturating_sub(earlier.batches),
            commands: self.commands.saturating_sub(earlier.commands),
            syncs: self.syncs.saturating_sub(earlier.syncs),
            sync_ns_total: self.sync_ns_total.saturating_sub(earlier.sync_ns_total),
            sync_ns_max: self.sync_ns_max,
            snapshots: self.snapshots.saturating_sub(earlier.snapshots),
            snapshot_ns_max: self.snapshot_ns_max,
            snapshots_failed: self.snapshots_failed.saturating_sub(earlier.snapshots_failed),
            apply_ns_max: self.apply_ns_max,
            history_reads: self.history_reads.saturating_sub(earlier.history_reads),
            history_evicted: self.history_evicted,
            history_waiting: self.history_waiting,
            history_failed: self.history_failed,
            ids_asked: self.ids_asked.saturating_sub(earlier.ids_asked),
            ids_read_in_vain: self.ids_read_in_vain.saturating_sub(earlier.ids_read_in_vain),
            sync_us_buckets: buckets,
        }
    }

    /// The upper bound (µs) of the bucket holding the `quantile` (0..=1) sync; 0 without syncs.
    pub fn sync_quantile_us(&self, quantile: f64) -> u64 {
        let total: u64 = self.sync_us_buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.sync_us_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return if i + 1 < SYNC_BUCKETS { bucket_floor_us(i + 1) } else { u64::MAX };
            }
        }
        unreachable!("rank is at most the total")
    }

    /// The wire form: [`METRICS_RECORDS`] records of 128 bytes. Record 0: entries, batches,
    /// commands, syncs, sync_ns_total, sync_ns_max, snapshots, snapshot_ns_max, snapshots_failed,
    /// apply_ns_max, history_reads, history_evicted, history_waiting, history_failed, ids_asked,
    /// ids_read_in_vain (u64 each, in that order from offset 0). Records 1..=8: the bucket
    /// counts, u64 each.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(METRICS_RECORDS * RECORD_SIZE);
        for v in self.counters() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(RECORD_SIZE, 0);
        for count in &self.sync_us_buckets {
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }

    fn counters(&self) -> [u64; COUNTERS] {
        [
            self.entries,
            self.batches,
            self.commands,
            self.syncs,
            self.sync_ns_total,
            self.sync_ns_max,
            self.snapshots,
            self.snapshot_ns_max,
            self.snapshots_failed,
            self.apply_ns_max,
            self.history_reads,
            self.history_evicted,
            self.history_waiting,
            self.history_failed,
            self.ids_asked,
            self.ids_read_in_vain,
        ]
    }

    /// The sequencer's longest pause and where it was: `sync`, `apply` or `snapshot`. A large
    /// group's sync is collected after the group is applied, so a long apply shows in the sync
    /// figure too: a sync no more than a tenth longer than the longest apply is the apply's.
    pub fn longest_stall(&self) -> (u64, &'static str) {
        let sync_cause = if self.apply_ns_max.saturating_mul(11) >= self.sync_ns_max.saturating_mul(10) { "apply" } else { "sync" };
        [(self.sync_ns_max, sync_cause), (self.snapshot_ns_max, "snapshot")].into_iter().max_by_key(|(ns, _)| *ns).expect("two candidates")
    }

    /// Reads the wire form; `None` if it is shorter or not whole records. Records past
    /// [`METRICS_RECORDS`] (a later server's) are left unread.
    pub fn from_bytes(bytes: &[u8]) -> Option<Metrics> {
        const _: () = assert!(COUNTERS * 8 == RECORD_SIZE, "the counters fill record 0");
        if bytes.len() < METRICS_RECORDS * RECORD_SIZE || !bytes.len().is_multiple_of(RECORD_SIZE) {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let mut metrics = Metrics {
            entries: u64_at(0),
            batches: u64_at(8),
            commands: u64_at(16),
            syncs: u64_at(24),
            sync_ns_total: u64_at(32),
            sync_ns_max: u64_at(40),
            snapshots: u64_at(48),
            snapshot_ns_max: u64_at(56),
            snapshots_failed: u64_at(64),
            apply_ns_max: u64_at(72),
            history_reads: u64_at(80),
            history_evicted: u64_at(88),
            history_waiting: u64_at(96),
            history_failed: u64_at(104),
            ids_asked: u64_at(112),
            ids_read_in_vain: u64_at(120),
            sync_us_buckets: [0; SYNC_BUCKETS],
        };
        for (i, b) in metrics.sync_us_buckets.iter_mut().enumerate() {
            *b = u64_at(RECORD_SIZE + 8 * i);
        }
        Some(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_contiguous_and_about_a_fifth_wide() {
        let mut previous = 0;
        for us in 0..100_000u64 {
            let b = bucket_of_us(us);
            assert!(b == previous || b == previous + 1, "{us} µs jumps from bucket {previous} to {b}");
            assert!(bucket_floor_us(b) <= us && us < bucket_floor_us(b + 1), "{us} µs outside bucket {b}");
            previous = b;
        }
        for b in 8..SYNC_BUCKETS - 1 {
            let (lo, hi) = (bucket_floor_us(b), bucket_floor_us(b + 1));
            assert!(hi - lo <= lo / 4, "bucket {b} [{lo}, {hi}) wider than a quarter of its floor");
        }
        assert_eq!(bucket_of_us(u64::MAX), SYNC_BUCKETS - 1);
    }

    #[test]
    fn quantiles_difference_and_wire_round_trip() {
        let mut before = Metrics::default();
        before.record_sync(50_000_000); // a 50 ms sync before the run
        let mut after = before.clone();
        for _ in 0..98 {
            after.record_sync(700_000); // 0.7 ms
        }
        after.record_sync(3_000_000);
        after.record_sync(9_000_000);
        after.entries = 100;
        (before.history_reads, before.history_waiting) = (5, 9);
        (after.history_reads, after.history_evicted, after.history_waiting, after.history_failed) = (12, 65_536, 2, 1);
        (before.ids_asked, before.ids_read_in_vain) = (1_000, 1);
        (after.ids_asked, after.ids_read_in_vain) = (9_000, 4);
        let run = after.since(&before);
        assert_eq!(run.syncs, 100);
        // A counter's difference; a gauge's later value.
        assert_eq!((run.history_reads, run.history_evicted, run.history_waiting, run.history_failed), (7, 65_536, 2, 1));
        assert_eq!((run.ids_asked, run.ids_read_in_vain), (8_000, 3));
        assert_eq!(run.sync_quantile_us(0.5), bucket_floor_us(bucket_of_us(700) + 1));
        assert!((700..=900).contains(&run.sync_quantile_us(0.98)));
        assert!((3_000..=3_700).contains(&run.sync_quantile_us(0.99)));
        assert!((9_000..=11_000).contains(&run.sync_quantile_us(1.0)));
        assert_eq!(Metrics::default().sync_quantile_us(0.99), 0);
        let bytes = after.to_bytes();
        assert_eq!(bytes.len(), METRICS_RECORDS * RECORD_SIZE);
        assert_eq!(Metrics::from_bytes(&bytes), Some(after.clone()));
        assert_eq!((u64::from_le_bytes(bytes[112..120].try_into().unwrap()), bytes[120]), (9_000, 4), "the ids' counters");
        // A later server's longer reply is read as far as this one knows it.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[7; RECORD_SIZE]);
        assert_eq!(Metrics::from_bytes(&longer), Some(after));
        assert_eq!(Metrics::from_bytes(&bytes[..RECORD_SIZE]), None);
        assert_eq!(Metrics::from_bytes(&longer[..longer.len() - 1]), None, "whole records only");
    }
}

#[cfg(test)]
mod stall_tests {
    use super::Metrics;

    #[test]
    fn the_longest_pause_is_named_by_its_cause() {
        let m = |sync, apply, snapshot| Metrics { sync_ns_max: sync, apply_ns_max: apply, snapshot_ns_max: snapshot, ..Metrics::default() };
        assert_eq!(m(978, 977, 0).longest_stall(), (978, "apply"), "a sync collected after a long apply");
        assert_eq!(m(900, 10, 0).longest_stall(), (900, "sync"));
        assert_eq!(m(10, 5, 60).longest_stall(), (60, "snapshot"));
        let bytes = m(1, 2, 3).to_bytes();
        assert_eq!(Metrics::from_bytes(&bytes).map(|r| r.apply_ns_max), Some(2));
    }
}
