//! The panel's own change-feed follower: while a panel is open it follows the log (the same
//! `Follower` a subscription uses, from a few hundred entries back), keeps the latest large
//! movements and failed scheduled runs, and wakes the panels' event streams as each entry becomes
//! durable, so a panel updates when money moves rather than on a timer. With no panel open it
//! stops and its state copy is freed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bursar_engine::{FeedEvent, FeedEventType, Limits, Record, RunEntry, RunEvent, Transfer};
use bursar_node::feed::{Durable, Follower};

/// Movements and failed runs kept for the panel, each.
pub const MOVEMENTS_LISTED: usize = 10;
/// Entries before the durable end a panel's follower starts at, so it has recent rows at once.
pub const LOOKBACK_ENTRIES: u64 = 256;
/// "Large" without `--panel-large` for the ledger: this many units of its currency.
pub const LARGE_UNITS_DEFAULT: u128 = 10_000;

/// A movement at or above its ledger's threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Movement {
    /// The transfer as stored.
    pub transfer: Transfer,
    /// The log entry it is in.
    pub seq: u64,
}

/// A standing order's run or a trigger's firing that failed (or will be retried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedRun {
    /// The order's id.
    pub order: u128,
    /// Its run-history entry.
    pub entry: RunEntry,
    /// The ledger.
    pub ledger: u32,
    /// Who pays and who is paid.
    pub accounts: [u128; 2],
}

/// What the panel's follower saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Newest first.
    pub large: VecDeque<Movement>,
    /// Newest first.
    pub failed_runs: VecDeque<FailedRun>,
    /// Money booked onto a suspense account (statement lines no order explained), newest first.
    pub unmatched: VecDeque<Movement>,
    /// The last log entry read.
    pub seq: u64,
}

/// The follower and what it saw; started by the first open panel, stopped with the last.
#[derive(Debug)]
pub struct PanelFeed {
    dir: PathBuf,
    limits: Limits,
    /// Per ledger, "large" from this amount on, as written (`"5000.00"`).
    thresholds: Vec<(u32, String)>,
    /// The accounts marked `suspense`: money credited to them is listed as unmatched.
    suspense: Vec<u128>,
    seen: Mutex<Seen>,
    /// Bumped after each entry read: the event streams wait on it.
    changed: tokio::sync::watch::Sender<u64>,
    open_panels: AtomicUsize,
    running: Mutex<Option<Arc<AtomicBool>>>,
}

/// One open panel's hold on the follower; dropping it may stop the follower.
#[derive(Debug)]
pub struct Watching(Arc<PanelFeed>);

impl Drop for Watching {
    fn drop(&mut self) {
        if self.0.open_panels.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(stop) = self.0.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                stop.store(true, Ordering::Release);
            }
        }
    }
}

impl PanelFeed {
    /// A feed over the log in `dir`; `thresholds`: per ledger, the amount from which a movement
    /// is large; `suspense`: the accounts whose credits are unmatched statement lines.
    pub fn new(dir: PathBuf, limits: Limits, thresholds: Vec<(u32, String)>, suspense: Vec<u128>) -> Arc<PanelFeed> {
        Arc::new(PanelFeed {
            dir,
            limits,
            thresholds,
            suspense,
            seen: Mutex::new(Seen::default()),
            changed: tokio::sync::watch::channel(0).0,
            open_panels: AtomicUsize::new(0),
            running: Mutex::new(None),
        })
    }

    /// A panel opened: starts the follower if none runs.
    pub fn watch(self: &Arc<Self>, durable: &Arc<Durable>) -> Watching {
        self.open_panels.fetch_add(1, Ordering::AcqRel);
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.is_none() {
            let stop = Arc::new(AtomicBool::new(false));
            let (feed, durable, stopping) = (Arc::clone(self), Arc::clone(durable), Arc::clone(&stop));
            let spawned = bursar_node::feed::spawn_follower_thread("panel-feed", move || feed.follow(&durable, &stopping));
            if spawned.is_ok() {
                *running = Some(stop);
            }
        }
        Watching(Arc::clone(self))
    }

    /// Changes whenever the follower read an entry.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// What it saw so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn follow(&self, durable: &Arc<Durable>, stop: &AtomicBool) {
        let from = durable.seq().saturating_sub(LOOKBACK_ENTRIES).max(1);
        let mut follower = match Follower::open(&self.dir, self.limits, from, durable) {
            Ok(follower) => follower,
            Err(e) => return eprintln!("bursar: the panel's feed could not start: {e}"),
        };
        follower.set_filter(Box::new(|kind, _, _| matches!(kind, FeedEventType::Transfer | FeedEventType::Run)));
        *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Seen::default();
        while !stop.load(Ordering::Acquire) && !durable.is_closed() {
            let last = durable.seq();
            if last < follower.next_seq() {
                durable.wait_beyond(follower.next_seq() - 1, Duration::from_millis(200));
                continue;
            }
            let mut rows = Vec::new();
            let read = follower.read_through(last, &mut |seq, events| {
                rows.extend(events.iter().filter(|e| matches!(e.kind, FeedEventType::Transfer | FeedEventType::Run)).map(|e| (seq, *e)));
                !stop.load(Ordering::Acquire)
            });
            self.note(&follower, &rows, last);
            if let Err(e) = read {
                return eprintln!("bursar: the panel's feed stopped: {e}");
            }
            self.changed.send_replace(last);
        }
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }

    /// Keeps the large movements and failed runs among `rows`.
    fn note(&self, follower: &Follower, rows: &[(u64, FeedEvent)], last: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (seq, e) in rows {
            match e.kind {
                FeedEventType::Transfer => {
                    let t = Transfer::decode(&e.record);
                    let scale = follower.engine().ledger(t.ledger).map_or(0, |l| l.scale);
                    if t.amount >= self.threshold(t.ledger, scale) {
                        push_newest(&mut seen.large, Movement { transfer: t, seq: *seq });
                    }
                    if self.suspense.contains(&t.credit_account_id) {
                        push_newest(&mut seen.unmatched, Movement { transfer: t, seq: *seq });
                    }
                }
                FeedEventType::Run => {
                    if let Some((order, entry)) = e.run().filter(|(_, r)| matches!(r.event, RunEvent::Failed | RunEvent::Retrying)) {
                        push_newest(&mut seen.failed_runs, FailedRun { order, entry, ledger: e.ledger, accounts: e.accounts });
                    }
                }
                _ => {}
            }
        }
        seen.seq = last;
    }

    /// The smallest amount (minor units) that is large on `ledger`.
    fn threshold(&self, ledger: u32, scale: u8) -> u128 {
        let written = self.thresholds.iter().find(|(l, _)| *l == ledger).map(|(_, amount)| amount.as_str());
        let default = LARGE_UNITS_DEFAULT.saturating_mul(10u128.saturating_pow(u32::from(scale)));
        written.and_then(|amount| minor_units(amount, scale)).unwrap_or(default)
    }
}

fn push_newest<T>(list: &mut VecDeque<T>, item: T) {
    list.push_front(item);
    list.truncate(MOVEMENTS_LISTED);
}

/// `"5000.5"` in minor units of a currency with `scale` decimals; `None` if it is not a plain
/// decimal or has more decimals than the currency.
pub fn minor_units(amount: &str, scale: u8) -> Option<u128> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > usize::from(scale) {
        return None;
    }
    let padded = format!("{whole}{fraction:0<width$}", width = usize::from(scale));
    padded.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::minor_units;

    #[test]
    fn thresholds_are_read_exactly() {
        assert_eq!(minor_units("5000", 2), Some(500_000));
        assert_eq!(minor_units("5000.5", 2), Some(500_050));
        assert_eq!(minor_units("0.01", 2), Some(1));
        assert_eq!(minor_units("1.001", 2), None);
        assert_eq!(minor_units("-1", 2), None);
        assert_eq!(minor_units("1e3", 2), None);
        assert_eq!(minor_units("", 2), None);
    }
}
