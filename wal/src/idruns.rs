//! The stored ids' index: sorted runs of (key, value) on disk, filters in memory, so that "is
//! this id stored, and where" is answered from memory for almost every new id and with a page
//! read otherwise.
//!
//! Bytes only: the owner hands in, per chunk of records it stored, each record's 64-bit hash and
//! a 32-bit value (its index), and asks which values a hash may name. A run covers chunks
//! `first..end`. A single chunk's run is held in memory only: the owner stored the chunk
//! durably before it handed its ids in, and adds it again after a restart. Merger threads merge
//! [`MERGE_FANOUT`] adjacent runs of one size into one on disk, so runs cover 1 (in memory), 8,
//! 64, … chunks, and a key is written about log8(chunks) - 1 times. One merges the held runs,
//! the other those on disk, so that a merge of a billion keys does not hold up the held runs. A run on disk
//! lives in `{first:010}-{end:010}.run`, written whole to a temporary name, synced and renamed,
//! so a run file is complete or absent. The runs are derived data (the owner can always
//! rebuild them from what it stored): a run that fails its checks at open is deleted and
//! reported, and runs past a gap are dropped, so the runs always cover a prefix of the chunks.
//!
//! A lookup probes the filter over all runs' groups of 256 ids ([`crate::idfilter`]), then, for
//! a "maybe", each run's filter, and where that says "maybe" reads the 4 KiB page the run's
//! fences (each page's first key, in memory) name, verifying its CRC32C. Where new ids of
//! stored groups keep reaching the runs' filters, a filter over the keys of the runs on disk
//! is built and probed before theirs (`Shared::build_keys`). The format is in
//! `docs/history-format.md`, "The stored ids' index".

use crate::format::crc32c;
use crate::history::write_paced;
use crate::idfilter::{filter_holds, filter_insert, filter_words, GlobalFilter, GLOBAL_FILTER_FILE};
use parking_lot::{Condvar, Mutex, RwLock};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A run file's first bytes.
pub const IDRUN_MAGIC: [u8; 8] = *b"BRSIDRUN";
/// The run format's version.
pub const IDRUN_VERSION: u32 = 1;
/// Bytes per checksummed page of entries (the last 4 are the page's CRC32C).
pub const IDRUN_PAGE_BYTES: usize = 4096;
/// Bytes of one entry: the key (u64, [`idrun_key`]), then the value (u32), little-endian.
pub const IDRUN_ENTRY_BYTES: usize = 12;
/// Entries per page.
pub const IDRUN_ENTRIES_PER_PAGE: usize = (IDRUN_PAGE_BYTES - 4) / IDRUN_ENTRY_BYTES;
/// Bytes of a run's header, a page so that the entries' pages are aligned.
const HEADER_BYTES: u64 = IDRUN_PAGE_BYTES as u64;
/// Bytes of the header that carry fields (the rest is zero).
const HEADER_FIELDS_BYTES: usize = 60;
/// Entries a merge writes between looks at whether the index is stopping.
const STOP_CHECK_ENTRIES: u64 = 1 << 16;
/// Runs of one size merged into one: with a filter over all runs a lookup checks one filter,
/// so many runs cost little; fewer merges cost less (each key is rewritten about log8(chunks)
/// times, four times at 100 M transfers).
pub const MERGE_FANOUT: usize = 8;
const _: () = assert!(MERGE_FANOUT.is_power_of_two(), "a merge picks its smallest head by halves");
/// Groups below which the filter over all runs grows fourfold when the ids are in no order
/// (2^24 groups: a filter of 32 MiB).
const GLOBAL_FILTER_FOURFOLD_BELOW: u64 = 1 << 24;
/// Keys the groups' filter let through that no run's filter held, since the last run was added,
/// at which the filter over all keys is built: at least this many ...
const KEYS_FILTER_WASTED_MIN: u64 = 1024;
/// ... and at least one in this many of the hashes asked meanwhile. Ids made in order and new
/// pass the groups' filter about once in a thousand, and ids found pass every filter: neither
/// builds it. A new id beside a stored one (a capture whose id was made with its hold's) does.
const KEYS_FILTER_WASTED_SHARE: u64 = 16;
/// Probes of held runs since the last single chunk's run was added from which the next one is
/// given a filter. Building one costs an insert per key on the writer; a probe without it
/// searches the run's entries, a few cache misses where the filter takes one, on the thread
/// that asks. New ids made in order pass the groups' filter only in the group a chunk's end
/// splits (fewer than 256 a chunk, times at most [`MERGE_FANOUT`] held runs, short of this), so
/// they never build one; lookups of stored ids (a capture's hold) probe every held run for each
/// and build them all.
const HELD_FILTER_PROBES_MIN: u64 = 4096;
/// Runs beyond what the merge policy leaves at which the merger competes for CPU like any thread.
const RUNS_BEHIND: usize = 8;
/// Most chunks a run may cover (`end - first`); chunks are counted in u32 values.
const RUN_CHUNKS_MAX: u64 = 1 << 32;
/// Most single chunks' runs held in memory (16 bytes an id) waiting for the merger: an add
/// waits for room (or fails if the merger has failed: the owner keeps those ids itself then).
const HELD_RUNS_MAX: usize = 8 * MERGE_FANOUT;

/// One (hash, value) pair.
pub type IdEntry = (u64, u32);

/// The key a hash is stored under: murmur3's 64-bit finaliser, a bijection. The owner's hashes
/// may keep neighbours' low bits apart and their high bits equal; keys are uniform, so a run
/// sorted by key fills its filter block by block (the filter's block is the key's top bits),
/// and a merge builds its filter in one sequential pass.
#[inline]
pub fn idrun_key(hash: u64) -> u64 {
    let mut h = hash;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash a key was made from ([`idrun_key`] undone: its steps inverted, last first).
#[inline]
pub fn idrun_hash(key: u64) -> u64 {
    let mut h = key ^ (key >> 33);
    h = h.wrapping_mul(0x9cb4_b2f8_1293_37db);
    h ^= h >> 33;
    h = h.wrapping_mul(0x4f74_430c_22a5_4005);
    h ^ (h >> 33)
}

/// What the filter over all runs holds for a key: its hash's group of 256 (the owner's hashes
/// keep runs of 256 consecutive ids in one group, [`IDRUN_GROUP_BITS`]), mixed. Ids made in
/// order then probe one cache line per group, and a group no run holds any id of answers "new"
/// for all of its ids; ids in no order each have a group of their own.
#[inline]
pub fn idrun_group(key: u64) -> u64 {
    idrun_key(idrun_hash(key) >> IDRUN_GROUP_BITS)
}

/// Low bits of a hash that tell the ids of one group apart.
pub const IDRUN_GROUP_BITS: u32 = 8;

/// A run: its place and filter in memory, its entries on disk or held in memory.
#[derive(Debug)]
struct Run {
    first: u64,
    end: u64,
    entries: u64,
    /// The filter's blocks, 8 words each.
    filter: Vec<u64>,
    body: Body,
}

/// Where a run's entries are.
#[derive(Debug)]
enum Body {
    /// In the run's file; each page's first key in memory.
    File { path: PathBuf, file: File, fences: Vec<u64> },
    /// In memory, sorted: a single chunk's run until it is merged (gone at a stop).
    Held(Vec<IdEntry>),
}

/// The index (see the module): what it holds is shared with its merger threads, which the
/// owner's drop stops and waits for.
#[derive(Debug)]
pub struct IdRuns {
    shared: Arc<Shared>,
    mergers: Vec<JoinHandle<()>>,
}

/// Which runs a merger thread merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Runs held in memory: small merges, often.
    Held,
    /// Runs on disk: larger merges, seldom.
    Written,
}

/// What the owner and the merger share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// The runs, oldest chunks first, covering `0..chunks()` without gap or overlap.
    runs: RwLock<Arc<Vec<Arc<Run>>>>,
    /// The filter over every run's keys: set before a run is published, so a lookup that
    /// takes the runs and then this filter finds every key of those runs "maybe".
    global: RwLock<Arc<GlobalFilter>>,
    /// The filter over the keys of every run on disk, once built ([`Shared::build_keys`]),
    /// set before a run is published on disk ([`Shared::add_keys`]) as `global` is: a lookup
    /// takes it after the runs.
    /// A key its group let through then probes it, one cache line, rather than every such
    /// run's filter (the held runs are probed as before: their filters, where they have one,
    /// are small). Not kept in a file: a start builds it again when the lookups need it.
    keys: RwLock<Option<Arc<GlobalFilter>>>,
    /// Held while `keys` is inserted into and the run holding those keys is published, and
    /// while a larger `keys` catches up and replaces it.
    keys_turn: Mutex<()>,
    /// Set when `keys` should be built, or built larger: the merger of the runs on disk does
    /// it between its merges, so the held runs' merges never wait for it.
    keys_wanted: AtomicBool,
    /// Hashes asked, and keys the groups' filter let through that no run on disk held, since
    /// [`Shared::add_keys`] last ran, while there is no filter over their keys.
    asked: AtomicU64,
    wasted: AtomicU64,
    /// Since the index was opened: hashes asked ([`IdLookups::asked`]), and of them those whose
    /// pages were read from disk though no run held them ([`IdLookups::read_in_vain`]).
    asked_total: AtomicU64,
    read_in_vain_total: AtomicU64,
    /// Probes of held runs (a key its group let through, times the held runs) since the last
    /// single chunk's run was added: from [`HELD_FILTER_PROBES_MIN`], the next one is given a
    /// filter (see [`Run::held`]).
    held_probes: AtomicU64,
    /// The chunks the filter's file covered when last written.
    persisted: Mutex<u64>,
    /// Wakes the mergers when a run is added, or at drop to stop.
    merge: (Mutex<MergeState>, Condvar),
    /// Set at drop (under the merge state's lock, so no merger misses it): the mergers end, and
    /// a merge under way gives up (its runs stay as they are), so a stop never waits out a merge
    /// of large runs.
    stopping: AtomicBool,
}

#[derive(Debug, Default)]
struct MergeState {
    /// What the merger last failed at (it stops merging, lookups go on).
    failure: Option<String>,
    /// Merges under way (their runs stay in the list until each is done).
    busy: usize,
}

/// How the index's lookups went since it was opened: how often the filters kept a new id off
/// the disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IdLookups {
    /// Id hashes asked about.
    pub asked: u64,
    /// Of those, hashes that a run on disk's filter let through (its pages are read for them)
    /// and no run held: new ids that every filter let through (false "maybe"s that cost a read).
    pub read_in_vain: u64,
}

/// What [`IdRuns::open`] found that it could not use, and deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdRunsOpened {
    /// Each run file dropped, and why.
    pub dropped: Vec<String>,
}

impl IdRuns {
    /// Opens (or creates) the index in `dir` and starts its merger threads. Runs that fail their
    /// checks, runs a larger one covers (a merge's leftovers), runs past a gap and temporary
    /// files are deleted and named in the report.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<(Arc<IdRuns>, IdRunsOpened)> {
        let (shared, opened) = Shared::open(dir.as_ref())?;
        let mut runs = IdRuns { shared: Arc::new(shared), mergers: Vec::new() };
        for (level, name) in [(Level::Held, "bursar-idheld"), (Level::Written, "bursar-idruns")] {
            let merging = Arc::clone(&runs.shared);
            // On failure the drop stops and joins the merger already started.
            runs.mergers.push(std::thread::Builder::new().name(name.into()).spawn(move || merge_loop(&merging, level))?);
        }
        Ok((Arc::new(runs), opened))
    }

    /// Chunks covered: the runs hold every entry of chunks `0..chunks()`.
    pub fn chunks(&self) -> u64 {
        self.shared.chunks()
    }

    /// How many runs there are now, and how many of them are held in memory.
    pub fn runs(&self) -> (usize, usize) {
        let runs = self.shared.runs.read();
        (runs.len(), held_runs(&runs))
    }

    /// What the merger failed at, if it did (it stops merging; lookups and adds go on).
    pub fn merge_failure(&self) -> Option<String> {
        self.shared.merge_failure()
    }

    /// Adds the run of chunks `first..end` (`first` must be [`IdRuns::chunks`]) holding
    /// `entries` (hash, value), turned into keys ([`idrun_key`]) and sorted here. A single
    /// chunk's run is held in memory (the owner stored the chunk itself, and adds it again
    /// after a restart); that waits while [`HELD_RUNS_MAX`] are held already, and fails if the
    /// merger failed. A larger run is written and synced before it counts.
    pub fn add(&self, first: u64, end: u64, entries: Vec<IdEntry>) -> io::Result<()> {
        self.shared.add(first, end, entries)
    }

    /// Drops the runs that cover any chunk at or past `chunks` (their owner cut or rewrote
    /// those chunks), deleting their files; waits for a merge under way first.
    pub fn truncate(&self, chunks: u64) -> io::Result<()> {
        self.shared.truncate(chunks)
    }

    /// Every entry that `hashes` name, appended to `out` (in no particular order): the filter
    /// rules out almost every hash no run holds; a "maybe" reads one page (rarely two).
    pub fn candidates(&self, hashes: &[u64], out: &mut Vec<IdEntry>) -> io::Result<()> {
        self.shared.candidates(hashes, out)
    }

    /// How the lookups went since the index was opened.
    pub fn lookups(&self) -> IdLookups {
        let s = &self.shared;
        IdLookups { asked: s.asked_total.load(Ordering::Relaxed), read_in_vain: s.read_in_vain_total.load(Ordering::Relaxed) }
    }
}

impl Shared {
    fn open(dir: &Path) -> io::Result<(Shared, IdRunsOpened)> {
        fs::create_dir_all(dir)?;
        let mut opened = IdRunsOpened::default();
        let (mut found, mut damaged) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            match run_range(&path) {
                Some((first, end)) => match Run::open(&path, first, end) {
                    Ok(run) => found.push(run),
                    Err(e) => {
                        opened.dropped.push(format!("{}: {e}", path.display()));
                        damaged.push(path);
                    }
                },
                None if path.extension().is_some_and(|e| e == "tmp") => opened.dropped.push(format!("{}: unfinished", path.display())),
                None => {}
            }
        }
        let (kept, left) = cover(found);
        opened.dropped.extend(left.iter().map(|run| format!("{}: covered by another run, or past a gap", run.name())));
        damaged.iter().try_for_each(|path| remove_if_present(path))?;
        delete_dropped(dir, &left)?;
        let kept: Vec<Arc<Run>> = kept.into_iter().map(Arc::new).collect();
        let (global, persisted) = open_global(dir, &kept, &mut opened)?;
        let runs = Shared {
            dir: dir.to_path_buf(),
            runs: RwLock::new(Arc::new(kept)),
            global: RwLock::new(Arc::new(global)),
            keys: RwLock::new(None),
            keys_turn: Mutex::new(()),
            keys_wanted: AtomicBool::new(false),
            asked: AtomicU64::new(0),
            wasted: AtomicU64::new(0),
            asked_total: AtomicU64::new(0),
            read_in_vain_total: AtomicU64::new(0),
            held_probes: AtomicU64::new(0),
            persisted: Mutex::new(persisted),
            merge: Default::default(),
            stopping: AtomicBool::new(false),
        };
        Ok((runs, opened))
    }

    /// Writes the filter over all runs to its file if the runs on disk cover a quarter more
    /// chunks than when it was last written (so a restart after a crash inserts at most about a
    /// fifth of the keys again), or `always`. The file claims only the chunks on disk; it holds
    /// the held runs' keys too, which a restart adds again.
    fn persist_global(&self, always: bool) -> io::Result<()> {
        let mut persisted = self.persisted.lock();
        let covered = self.chunks_on_disk();
        if covered == *persisted || (!always && covered - *persisted < (*persisted / 4).max(1)) {
            return Ok(());
        }
        let global = Arc::clone(&self.global.read());
        global.persist(&self.dir, covered)?;
        *persisted = covered;
        Ok(())
    }

    fn chunks(&self) -> u64 {
        self.runs.read().last().map_or(0, |run| run.end)
    }

    /// Chunks covered by runs on disk, from the first: what a restart finds.
    fn chunks_on_disk(&self) -> u64 {
        self.runs.read().iter().take_while(|run| !run.is_held()).last().map_or(0, |run| run.end)
    }

    fn merge_failure(&self) -> Option<String> {
        self.merge.0.lock().failure.clone()
    }

    fn add(&self, first: u64, end: u64, mut entries: Vec<IdEntry>) -> io::Result<()> {
        assert_eq!(first, self.chunks(), "runs are added in chunk order");
        assert!(first < end && end - first <= RUN_CHUNKS_MAX, "a run covers at least one chunk");
        // The groups from the hashes in the owner's order first: ids made in order come a
        // group at a time, so most repeats go before the sort.
        let mut groups: Vec<u64> = entries.iter().map(|&(hash, _)| hash >> IDRUN_GROUP_BITS).collect();
        groups.dedup();
        groups.iter_mut().for_each(|group| *group = idrun_key(*group));
        groups.sort_unstable();
        groups.dedup();
        entries.iter_mut().for_each(|entry| entry.0 = idrun_key(entry.0));
        sort_uniform(&mut entries);
        // A run on disk is published with its keys in the filter over them, in turn with the
        // held runs' merger and a rebuild of that filter.
        let (run, _turn) = if end - first == 1 {
            self.wait_for_held_room()?;
            let filtered = self.held_probes.swap(0, Ordering::Relaxed) >= HELD_FILTER_PROBES_MIN;
            (Run::held(first, end, entries, filtered), None)
        } else {
            let run = write_run(&self.dir, first, end, entries.iter().copied(), entries.len() as u64)?;
            (run, Some(self.add_keys(&[&entries])))
        };
        let global = Arc::clone(&self.global.read());
        if global.has_room(groups.len() as u64) {
            global.insert(groups.into_iter());
        } else {
            // Only this thread adds runs, so none is published while the larger one is built.
            // The list is taken out of its lock first: a merge waiting to publish would
            // otherwise hold up every lookup behind it (a waiting writer stops new readers).
            let runs = Arc::clone(&self.runs.read());
            let groups_now = global.keys() + groups.len() as u64;
            // Ids in no order have a group each, so the filter fills as fast as the runs grow:
            // while it is small it grows fourfold then, to be rebuilt from every run half as
            // often; past that, twice, so that it stays within twice what it holds.
            let keys_now = runs.iter().map(|run| run.entries).sum::<u64>() + run.entries;
            let growth = if groups_now * 2 > keys_now && groups_now < GLOBAL_FILTER_FOURFOLD_BELOW { 4 } else { 2 };
            let larger = filter_of_runs(&runs, groups_now * growth)?;
            larger.insert(groups.into_iter());
            *self.global.write() = Arc::new(larger);
        }
        let mut runs = self.runs.write();
        let mut next = Vec::clone(&runs);
        next.push(Arc::new(run));
        *runs = Arc::new(next);
        drop(runs);
        self.merge.1.notify_all();
        Ok(())
    }

    /// Inserts the keys of `new`, runs about to go on disk (held runs being merged, or a run
    /// added whole), into the filter over the runs on disk if there is one, and returns the
    /// turn to hold while the run holding them is published. Asks for that filter to be built
    /// ([`Shared::build_keys`]) if it is full, or if there is none and, since this was last
    /// called, the groups' filter let through many new ids that no run on disk held
    /// ([`KEYS_FILTER_WASTED_MIN`], [`KEYS_FILTER_WASTED_SHARE`]): each of those probed every
    /// such run's filter, a cache miss a run. Unused, it costs nothing. Past its capacity it
    /// takes keys until the larger one replaces it, answering "maybe" a little more often.
    fn add_keys(&self, new: &[&[IdEntry]]) -> parking_lot::MutexGuard<'_, ()> {
        let turn = self.keys_turn.lock();
        let (asked, wasted) = (self.asked.swap(0, Ordering::Relaxed), self.wasted.swap(0, Ordering::Relaxed));
        let count = new.iter().map(|entries| entries.len() as u64).sum();
        let wanted = match self.keys.read().clone() {
            Some(keys) => {
                let full = !keys.has_room(count);
                new.iter().for_each(|entries| keys.insert(entries.iter().map(|&(key, _)| key)));
                full
            }
            None => wasted >= KEYS_FILTER_WASTED_MIN && wasted * KEYS_FILTER_WASTED_SHARE >= asked,
        };
        if wanted && !self.keys_wanted.swap(true, Ordering::Relaxed) {
            self.merge.1.notify_all();
        }
        turn
    }

    /// Builds the filter over the keys of the runs on disk, for twice the keys they hold, and
    /// puts it in place of the last: on the merger of the runs on disk, outside the turn, so
    /// that the held runs' merges go on meanwhile. Then, in turn, it takes the keys of the runs
    /// published on disk since (a held merge's, a whole run's, or a merge of runs it read:
    /// their keys again) before it is published.
    fn build_keys(&self) -> io::Result<()> {
        let on_disk = |runs: &[Arc<Run>]| runs.iter().filter(|run| !run.is_held()).cloned().collect::<Vec<_>>();
        let read = on_disk(&self.runs.read());
        let keys = GlobalFilter::with_capacity(2 * read.iter().map(|run| run.entries).sum::<u64>());
        for run in &read {
            if self.stopping.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the index is stopping"));
            }
            insert_runs(&keys, core::slice::from_ref(run), |key| key)?;
        }
        let _turn = self.keys_turn.lock();
        let since: Vec<Arc<Run>> = on_disk(&self.runs.read()).into_iter().filter(|run| !read.iter().any(|r| Arc::ptr_eq(r, run))).collect();
        insert_runs(&keys, &since, |key| key)?;
        *self.keys.write() = Some(Arc::new(keys));
        self.keys_wanted.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the filter over all keys is built.
    #[cfg(test)]
    fn keys_filter_built(&self) -> bool {
        self.keys.read().is_some()
    }

    fn truncate(&self, chunks: u64) -> io::Result<()> {
        let mut state = self.merge.0.lock();
        while state.busy > 0 {
            self.merge.1.wait(&mut state);
        }
        let mut runs = self.runs.write();
        let (kept, cut): (Vec<_>, Vec<_>) = runs.iter().cloned().partition(|run| run.end <= chunks);
        *runs = Arc::new(kept);
        drop(runs);
        // The filter's file would claim the keys of runs added in place of those cut: gone.
        let mut persisted = self.persisted.lock();
        if *persisted > chunks {
            remove_if_present(&self.dir.join(GLOBAL_FILTER_FILE))?;
            *persisted = 0;
        }
        drop(persisted);
        cut.iter().try_for_each(|run| run.remove_file())
    }

    /// Waits while [`HELD_RUNS_MAX`] runs are held in memory (the merger is behind, and runs in
    /// the foreground by then); fails if the merger failed (then none of them would leave
    /// memory before the next start), naming why.
    fn wait_for_held_room(&self) -> io::Result<()> {
        let mut state = self.merge.0.lock();
        loop {
            let held = held_runs(&self.runs.read());
            if let Some(why) = &state.failure {
                return Err(io::Error::other(format!("the ids of {held} chunks wait in memory to be merged onto disk ({why})")));
            }
            if held < HELD_RUNS_MAX {
                return Ok(());
            }
            self.merge.1.notify_all();
            self.merge.1.wait_for(&mut state, std::time::Duration::from_millis(10));
        }
    }

    fn candidates(&self, hashes: &[u64], out: &mut Vec<IdEntry>) -> io::Result<()> {
        // The runs first: the filter taken after them holds all their keys.
        let runs = Arc::clone(&self.runs.read());
        if runs.is_empty() {
            return Ok(());
        }
        self.asked_total.fetch_add(hashes.len() as u64, Ordering::Relaxed);
        let global = Arc::clone(&self.global.read());
        let on_disk = self.keys.read().clone();
        // Ids made in order come a group at a time: the last group's answer is asked again
        // only when the group changes.
        let mut last: Option<(u64, bool)> = None;
        let mut group_may_hold = |hash: u64| {
            let group = hash >> IDRUN_GROUP_BITS;
            match last {
                Some((g, answer)) if g == group => answer,
                _ => last.insert((group, global.may_hold(idrun_key(group)))).1,
            }
        };
        // (key, hash, whether a run on disk may hold it) for every hash its group let through.
        let keys: Vec<(u64, u64, bool)> = hashes
            .iter()
            .filter(|&&hash| group_may_hold(hash))
            .map(|&hash| (idrun_key(hash), hash))
            .map(|(key, hash)| (key, hash, on_disk.as_ref().is_none_or(|on_disk| on_disk.may_hold(key))))
            .collect();
        if on_disk.is_none() {
            self.asked.fetch_add(hashes.len() as u64, Ordering::Relaxed);
        }
        if keys.is_empty() {
            return Ok(());
        }
        // (run, page, key's place in `keys`) for every page a key may be on, in runs whose
        // filter says "maybe".
        let mut wanted = Vec::new();
        // Per key: whether a run on disk's filter let it through (its pages are read), and
        // whether any run held it.
        let (mut to_disk, mut held) = (vec![false; keys.len()], vec![false; keys.len()]);
        self.held_probes.fetch_add((keys.len() * held_runs(&runs)) as u64, Ordering::Relaxed);
        for (r, run) in runs.iter().enumerate() {
            let probed =
                |&(_, &(key, _, may_be_on_disk)): &(usize, &(u64, u64, bool))| (run.is_held() || may_be_on_disk) && run.may_hold(key);
            for (i, &(key, hash, _)) in keys.iter().enumerate().filter(probed) {
                match &run.body {
                    Body::File { fences, .. } => {
                        to_disk[i] = true;
                        wanted.extend(pages_of(fences, key).map(|p| (r, p, i)));
                    }
                    Body::Held(entries) => {
                        let from = out.len();
                        out.extend(entries_of(entries, key).map(|(_, value)| (hash, value)));
                        held[i] |= out.len() > from;
                    }
                }
            }
        }
        // Without the filter over the keys on disk: the keys no run on disk let through, to ask
        // for it.
        if on_disk.is_none() && runs.iter().any(|run| !run.is_held()) {
            self.wasted.fetch_add(to_disk.iter().filter(|&&sent| !sent).count() as u64, Ordering::Relaxed);
        }
        wanted.sort_unstable();
        let mut pages: Vec<(usize, usize)> = wanted.iter().map(|&(r, p, _)| (r, p)).collect();
        pages.dedup();
        // [`READ_PAGES`] pages at a time: a larger buffer would be mapped afresh, and faulted
        // in page by page, for every lookup of many ids.
        let mut from = 0;
        for group in pages.chunks(READ_PAGES) {
            let bytes = read_pages(&runs, group)?;
            let last = group[group.len() - 1];
            let to = from + wanted[from..].partition_point(|&(r, p, _)| (r, p) <= last);
            for &(r, p, i) in &wanted[from..to] {
                let (key, hash, _) = keys[i];
                let at = group.binary_search(&(r, p)).expect("every wanted page was read") * IDRUN_PAGE_BYTES;
                let entries = page_entries(&bytes[at..at + IDRUN_PAGE_BYTES], runs[r].entries_on(p));
                let from = out.len();
                out.extend(entries_on_page(entries, key).map(|(_, value)| (hash, value)));
                held[i] |= out.len() > from;
            }
            from = to;
        }
        let in_vain = to_disk.iter().zip(&held).filter(|&(&sent, &held)| sent && !held).count();
        self.read_in_vain_total.fetch_add(in_vain as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until no merge is under way or due.
    #[cfg(test)]
    pub(crate) fn wait_merged(&self) {
        let mut state = self.merge.0.lock();
        let due = |runs: &[Arc<Run>]| {
            [Level::Held, Level::Written].iter().any(|&level| next_merge(runs, level).is_some()) || self.keys_wanted.load(Ordering::Relaxed)
        };
        while state.busy > 0 || (state.failure.is_none() && !self.stopping.load(Ordering::Relaxed) && due(&self.runs.read())) {
            self.merge.1.notify_all();
            self.merge.1.wait_for(&mut state, std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for IdRuns {
    fn drop(&mut self) {
        let state = self.shared.merge.0.lock();
        self.shared.stopping.store(true, Ordering::Relaxed);
        drop(state);
        self.shared.merge.1.notify_all();
        for merger in self.mergers.drain(..) {
            let _ = merger.join();
        }
        // Best effort: without it the next start inserts the runs' keys again.
        let _ = self.shared.persist_global(true);
    }
}

/// A merger: merges the smallest [`MERGE_FANOUT`] adjacent runs of equal size at its `level`,
/// until stopped. In the background while the runs are few (CPU others leave), in the
/// foreground once more than [`RUNS_BEHIND`] beyond a binary counter's wait (every lookup checks
/// every run's filter) or more than twice [`MERGE_FANOUT`] are held.
fn merge_loop(index: &Shared, level: Level) {
    let mut background = crate::background_thread().is_ok();
    let merge = &index.merge;
    loop {
        let pair = {
            let mut state = merge.0.lock();
            loop {
                if index.stopping.load(Ordering::Relaxed) {
                    return;
                }
                let keys_wanted = level == Level::Written && index.keys_wanted.load(Ordering::Relaxed);
                let pair = if state.failure.is_none() { next_merge(&index.runs.read(), level) } else { None };
                if pair.is_some() || (keys_wanted && state.failure.is_none()) {
                    state.busy += 1;
                    break pair;
                }
                merge.1.wait(&mut state);
            }
        };
        let Some(pair) = pair else {
            // Between merges, never during one: the filter over the keys on disk.
            let built = index.build_keys();
            let mut state = merge.0.lock();
            state.busy -= 1;
            match built {
                // Given up at a stop: the next start builds it again when the lookups need it.
                Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                    state.failure = Some(format!("building the filter over the keys in {}: {e}", index.dir.display()))
                }
                _ => {}
            }
            drop(state);
            merge.1.notify_all();
            continue;
        };
        let behind = {
            let runs = index.runs.read();
            let levels = runs.last().map_or(0, |run| run.end.max(1).ilog(MERGE_FANOUT as u64) as usize + 1);
            runs.len() > levels * (MERGE_FANOUT - 1) + RUNS_BEHIND || held_runs(&runs) > 2 * MERGE_FANOUT
        };
        if behind == background {
            background =
                if behind { crate::foreground_thread().map(|()| false).unwrap_or(true) } else { crate::background_thread().is_ok() };
        }
        let merged = index.merge_group(pair).and_then(|()| index.persist_global(false));
        let mut state = merge.0.lock();
        state.busy -= 1;
        // A merge given up at a stop is no failure: its runs stay, and the next start merges them.
        match merged {
            Err(e) if !index.stopping.load(Ordering::Relaxed) => {
                state.failure = Some(format!("merging runs in {}: {e}", index.dir.display()))
            }
            _ => {}
        }
        drop(state);
        merge.1.notify_all();
    }
}

/// Runs held in memory.
fn held_runs(runs: &[Arc<Run>]) -> usize {
    runs.iter().filter(|run| run.is_held()).count()
}

/// The runs to merge next at `level`, if any: the [`MERGE_FANOUT`] adjacent runs of equal size
/// with the smallest size.
fn next_merge(runs: &[Arc<Run>], level: Level) -> Option<Vec<Arc<Run>>> {
    let size = |run: &Arc<Run>| run.end - run.first;
    let at_level = |run: &Arc<Run>| run.is_held() == (level == Level::Held);
    runs.windows(MERGE_FANOUT)
        .filter(|group| group.iter().all(|run| size(run) == size(&group[0]) && at_level(run)))
        .min_by_key(|group| size(&group[0]))
        .map(<[Arc<Run>]>::to_vec)
}

impl Shared {
    /// Merges `group` (adjacent runs, oldest first) into one run and puts it in their place.
    fn merge_group(&self, group: Vec<Arc<Run>>) -> io::Result<()> {
        let entries = group.iter().map(|run| run.entries).sum();
        let (first, end) = (group[0].first, group[group.len() - 1].end);
        let mut merging = Merging::new(group.iter().map(|run| RunReader::new(run)).collect())?;
        let error = std::cell::Cell::new(None);
        let mut taken = 0u64;
        let merged = std::iter::from_fn(|| {
            taken += 1;
            if taken.is_multiple_of(STOP_CHECK_ENTRIES) && self.stopping.load(Ordering::Relaxed) {
                error.set(Some(io::Error::new(io::ErrorKind::Interrupted, "the index is stopping")));
                return None;
            }
            merging.next().map_err(|e| error.set(Some(e))).ok().flatten()
        });
        let run = write_run(&self.dir, first, end, merged, entries);
        if let Some(e) = error.take() {
            remove_if_present(&self.dir.join(format!("{}.tmp", run_name(first, end))))?;
            return Err(e);
        }
        let run = run?;
        let held: Option<Vec<&[IdEntry]>> = group.iter().map(|run| run.held_entries()).collect();
        let _turn = held.map(|held| self.add_keys(&held));
        let mut runs = self.runs.write();
        let at = runs.iter().position(|r| Arc::ptr_eq(r, &group[0])).expect("only its merger removes a run while it merges");
        assert!(group.iter().enumerate().all(|(i, run)| Arc::ptr_eq(&runs[at + i], run)), "merged runs are adjacent");
        let mut next = Vec::clone(&runs);
        next.splice(at..at + group.len(), [Arc::new(run)]);
        *runs = Arc::new(next);
        drop(runs);
        group.iter().try_for_each(|run| run.remove_file())
    }
}

/// Runs' entries merged in order: each reader's next entry packed into one number, (ended,
/// key, value), so the smallest of them is the next entry (the oldest run's first among
/// equals) and an ended reader's is never smaller than a live one's. The heads are
/// [`MERGE_FANOUT`] wide, a missing reader's ended: the smallest is picked by a fixed tree of
/// comparisons without branches, as keys are uniform and a branch per comparison would be
/// mispredicted about every other entry.
struct Merging<'r> {
    readers: Vec<RunReader<'r>>,
    heads: [u128; MERGE_FANOUT],
}

/// A reader's head once it has ended.
const ENDED: u128 = 1 << 96;

impl<'r> Merging<'r> {
    /// The merge of `readers` (at most [`MERGE_FANOUT`], asserted), each's first entry read.
    fn new(mut readers: Vec<RunReader<'r>>) -> io::Result<Merging<'r>> {
        assert!(readers.len() <= MERGE_FANOUT, "a merge reads at most {MERGE_FANOUT} runs");
        let mut heads = [ENDED; MERGE_FANOUT];
        for (head, reader) in heads.iter_mut().zip(&mut readers) {
            *head = pack(reader.peek()?);
        }
        Ok(Merging { readers, heads })
    }

    /// The smallest next entry, taken; `None` once every reader has ended.
    fn next(&mut self) -> io::Result<Option<IdEntry>> {
        let (head, best) = smallest(&self.heads);
        if head >= ENDED {
            return Ok(None);
        }
        let reader = &mut self.readers[best];
        reader.at += 1;
        self.heads[best] = pack(reader.peek()?);
        Ok(Some(((head >> 32) as u64, head as u32)))
    }
}

/// The smallest of `heads` and its place, the first among equals: pairs, then pairs of their
/// winners, each pick a select rather than a branch.
#[inline]
fn smallest(heads: &[u128; MERGE_FANOUT]) -> (u128, usize) {
    #[inline(always)]
    fn pick(a: (u128, usize), b: (u128, usize)) -> (u128, usize) {
        let mask = u128::from(b.0 < a.0).wrapping_neg();
        (a.0 ^ ((a.0 ^ b.0) & mask), a.1 ^ ((a.1 ^ b.1) & mask as usize))
    }
    let mut round: [(u128, usize); MERGE_FANOUT] = core::array::from_fn(|i| (heads[i], i));
    let mut width = MERGE_FANOUT;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            round[i] = pick(round[2 * i], round[2 * i + 1]);
        }
    }
    round[0]
}

/// An entry as a [`Merging`] head.
#[inline]
fn pack(entry: Option<IdEntry>) -> u128 {
    entry.map_or(ENDED, |(key, value)| (key as u128) << 32 | value as u128)
}

/// A run's entries read in order, [`READ_PAGES`] pages at a time through its open file (so a
/// merge that deletes the file meanwhile does not stop it), each page checked.
struct RunReader<'r> {
    run: &'r Run,
    next_page: usize,
    entries: Vec<IdEntry>,
    at: usize,
    bytes: Vec<u8>,
}

/// Pages a [`RunReader`] reads at once: 512 KiB, under the 1 MiB from which `bursar start`
/// has allocations mapped afresh (and faulted in page by page) each time.
const READ_PAGES: usize = 128;
/// Bytes a run is written in at once (as [`READ_PAGES`]).
const WRITE_BUFFER_BYTES: usize = 512 << 10;

impl<'r> RunReader<'r> {
    fn new(run: &'r Run) -> RunReader<'r> {
        RunReader { run, next_page: 0, entries: Vec::new(), at: 0, bytes: Vec::new() }
    }

    /// The next entry, not taken (`at += 1` takes it).
    #[inline]
    fn peek(&mut self) -> io::Result<Option<IdEntry>> {
        if self.at == self.entries.len() && !self.refill()? {
            return Ok(None);
        }
        Ok(Some(self.entries[self.at]))
    }

    /// Reads the next pages' entries (a held run's all at once); false at the run's end.
    fn refill(&mut self) -> io::Result<bool> {
        let (path, file, fences) = match &self.run.body {
            Body::File { path, file, fences } => (path, file, fences),
            Body::Held(held) => {
                let first = self.next_page == 0 && !held.is_empty();
                self.next_page = 1;
                self.entries.clear();
                if first {
                    self.entries.extend_from_slice(held);
                }
                self.at = 0;
                return Ok(first);
            }
        };
        let pages = (fences.len() - self.next_page).min(READ_PAGES);
        if pages == 0 {
            return Ok(false);
        }
        self.bytes.resize(pages * IDRUN_PAGE_BYTES, 0);
        file.read_exact_at(&mut self.bytes, HEADER_BYTES + (self.next_page * IDRUN_PAGE_BYTES) as u64)?;
        self.entries.clear();
        self.at = 0;
        for (i, page) in self.bytes.chunks_exact(IDRUN_PAGE_BYTES).enumerate() {
            let p = self.next_page + i;
            check_page(page, path, p)?;
            self.entries.extend(page_entries(page, self.run.entries_on(p)).iter().map(entry));
        }
        self.next_page += pages;
        Ok(true)
    }
}

/// The filter over all of `runs`, from its file if sound (then only the keys of runs past what
/// it covered are inserted), else built from every run's keys; and the chunks its file covers.
fn open_global(dir: &Path, runs: &[Arc<Run>], opened: &mut IdRunsOpened) -> io::Result<(GlobalFilter, u64)> {
    let keys: u64 = runs.iter().map(|run| run.entries).sum();
    let loaded = match GlobalFilter::load(dir) {
        Ok(loaded) => loaded,
        Err(why) => {
            opened.dropped.push(format!("{}: {why}", dir.join(GLOBAL_FILTER_FILE).display()));
            None
        }
    };
    let chunks = runs.last().map_or(0, |run| run.end);
    match loaded {
        // Past its capacity it answers "maybe" a little more often until the next run's add
        // builds a larger one.
        Some((global, covered)) if covered <= chunks => {
            let past: Vec<Arc<Run>> = runs.iter().filter(|run| run.end > covered).cloned().collect();
            insert_runs(&global, &past, idrun_group)?;
            Ok((global, covered))
        }
        // Ids made in order have a group per 256; sized for that first, and built again twice
        // as large as it turned out to need if the ids were in no order.
        _ => Ok((filter_of_runs(runs, keys / 128)?, 0)),
    }
}

/// A filter holding the group of every key of `runs`, for at least `capacity` groups and twice
/// as many as it holds.
fn filter_of_runs(runs: &[Arc<Run>], capacity: u64) -> io::Result<GlobalFilter> {
    let global = GlobalFilter::with_capacity(capacity);
    insert_runs(&global, runs, idrun_group)?;
    if global.has_room(global.keys()) {
        return Ok(global);
    }
    let larger = GlobalFilter::with_capacity(global.keys() * 2);
    insert_runs(&larger, runs, idrun_group)?;
    Ok(larger)
}

/// Inserts `what` of every key of `runs` into `filter` (its group, or the key itself), each
/// run's page by page.
fn insert_runs(filter: &GlobalFilter, runs: &[Arc<Run>], what: fn(u64) -> u64) -> io::Result<()> {
    for run in runs {
        let mut reader = RunReader::new(run);
        while reader.refill()? {
            filter.insert(reader.entries.iter().map(|&(key, _)| what(key)));
        }
    }
    Ok(())
}

/// The run whose file `path` is, from its name, if it names one.
fn run_range(path: &Path) -> Option<(u64, u64)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".run")?;
    let (first, end) = name.split_once('-')?;
    let (first, end) = (first.parse().ok()?, end.parse().ok()?);
    (first < end).then_some((first, end))
}

/// The file name of the run of chunks `first..end`.
fn run_name(first: u64, end: u64) -> String {
    format!("{first:010}-{end:010}.run")
}

/// The runs that cover chunks from 0 on without gap (at each place the one reaching farthest),
/// and the rest.
fn cover(mut found: Vec<Run>) -> (Vec<Run>, Vec<Run>) {
    found.sort_by_key(|run| (run.first, std::cmp::Reverse(run.end)));
    let (mut kept, mut left) = (Vec::new(), Vec::new());
    let mut at = 0;
    for run in found {
        if run.first == at {
            at = run.end;
            kept.push(run);
        } else {
            left.push(run);
        }
    }
    (kept, left)
}

/// Deletes the runs left out, and temporary files.
fn delete_dropped(dir: &Path, left: &[Run]) -> io::Result<()> {
    left.iter().try_for_each(Run::remove_file)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            remove_if_present(&path)?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes the run of chunks `first..end` holding `count` sorted entries, to a temporary file
/// that is synced and then renamed to the run's name. Returns it opened.
fn write_run(dir: &Path, first: u64, end: u64, entries: impl Iterator<Item = IdEntry>, count: u64) -> io::Result<Run> {
    let path = dir.join(run_name(first, end));
    let temp = dir.join(format!("{}.tmp", run_name(first, end)));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&temp)?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, PacedFile { file: &file, at: 0 });
    out.write_all(&[0; HEADER_BYTES as usize])?;
    let mut filter = vec![0u64; filter_words(count)];
    let (fences, written) = write_pages(&mut out, entries, &mut filter)?;
    if written != count {
        drop(out);
        remove_if_present(&temp)?;
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a run of {written} entries, {count} expected")));
    }
    let tail_sum = write_tail(&mut out, &fences, &filter)?;
    out.flush()?;
    drop(out);
    let header = Header { first, end, entries: count, pages: fences.len() as u64, filter_words: filter.len() as u64, tail_sum };
    file.write_all_at(&header.encode(), 0)?;
    file.sync_data()?;
    fs::rename(&temp, &path)?;
    Ok(Run { first, end, entries: count, filter, body: Body::File { path, file, fences } })
}

/// A run file written from its start with the history store's paced writes
/// ([`write_paced`]): a large merge then never queues tens of megabytes ahead of the log's syncs.
struct PacedFile<'f> {
    file: &'f File,
    at: u64,
}

impl Write for PacedFile<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        write_paced(self.file, bytes, self.at)?;
        self.at += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the entries in pages, each with its CRC32C; fills `filter`. Returns the fences and
/// how many entries there were.
fn write_pages(out: &mut impl Write, entries: impl Iterator<Item = IdEntry>, filter: &mut [u64]) -> io::Result<(Vec<u64>, u64)> {
    let mut page = [0u8; IDRUN_PAGE_BYTES];
    let (mut fences, mut on_page, mut count) = (Vec::new(), 0, 0u64);
    let mut last = None;
    for (hash, value) in entries {
        assert!(last <= Some((hash, value)), "a run's entries are sorted");
        last = Some((hash, value));
        if on_page == 0 {
            fences.push(hash);
        }
        let at = on_page * IDRUN_ENTRY_BYTES;
        page[at..at + 8].copy_from_slice(&hash.to_le_bytes());
        page[at + 8..at + 12].copy_from_slice(&value.to_le_bytes());
        filter_insert(filter, hash);
        (on_page, count) = (on_page + 1, count + 1);
        if on_page == IDRUN_ENTRIES_PER_PAGE {
            seal_page(out, &mut page)?;
            on_page = 0;
        }
    }
    if on_page > 0 {
        seal_page(out, &mut page)?;
    }
    Ok((fences, count))
}

/// Writes `page` with its CRC32C and clears it.
fn seal_page(out: &mut impl Write, page: &mut [u8; IDRUN_PAGE_BYTES]) -> io::Result<()> {
    let sum = crc32c(&[&page[..IDRUN_PAGE_BYTES - 4]]);
    page[IDRUN_PAGE_BYTES - 4..].copy_from_slice(&sum.to_le_bytes());
    out.write_all(page)?;
    page.fill(0);
    Ok(())
}

/// Writes the fences and the filter; returns their CRC32C.
fn write_tail(out: &mut impl Write, fences: &[u64], filter: &[u64]) -> io::Result<u32> {
    let bytes: Vec<u8> = fences.iter().chain(filter).flat_map(|w| w.to_le_bytes()).collect();
    out.write_all(&bytes)?;
    Ok(crc32c(&[&bytes]))
}

/// A run file's header (its first page; the fields, then zeros).
#[derive(Debug, PartialEq, Eq)]
struct Header {
    first: u64,
    end: u64,
    entries: u64,
    pages: u64,
    filter_words: u64,
    /// The CRC32C of the fences and the filter.
    tail_sum: u32,
}

impl Header {
    /// Magic (8), version (4), first, end, entries, pages, filter words (u64 each), the
    /// tail's sum, and the CRC32C of all that (u32 each).
    fn encode(&self) -> [u8; HEADER_FIELDS_BYTES] {
        let mut out = [0u8; HEADER_FIELDS_BYTES];
        out[..8].copy_from_slice(&IDRUN_MAGIC);
        out[8..12].copy_from_slice(&IDRUN_VERSION.to_le_bytes());
        for (i, field) in [self.first, self.end, self.entries, self.pages, self.filter_words].iter().enumerate() {
            out[12 + i * 8..20 + i * 8].copy_from_slice(&field.to_le_bytes());
        }
        out[52..56].copy_from_slice(&self.tail_sum.to_le_bytes());
        let sum = crc32c(&[&out[..56]]);
        out[56..60].copy_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; HEADER_FIELDS_BYTES]) -> Result<Header, String> {
        if bytes[..8] != IDRUN_MAGIC {
            return Err("not a run of stored ids (magic)".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if u32_at(56) != crc32c(&[&bytes[..56]]) {
            return Err("the header's checksum does not match".into());
        }
        if u32_at(8) != IDRUN_VERSION {
            return Err(format!("version {}, this build reads {IDRUN_VERSION}", u32_at(8)));
        }
        let [first, end, entries, pages, filter_words] = [12, 20, 28, 36, 44].map(u64_at);
        Ok(Header { first, end, entries, pages, filter_words, tail_sum: u32_at(52) })
    }
}

impl Run {
    /// Opens the run file at `path` (named for chunks `first..end`): checks its header, reads
    /// and checks its fences and filter.
    fn open(path: &Path, first: u64, end: u64) -> Result<Run, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut head = [0u8; HEADER_FIELDS_BYTES];
        file.read_exact_at(&mut head, 0).map_err(|e| format!("reading the header: {e}"))?;
        let header = Header::decode(&head)?;
        if (header.first, header.end) != (first, end) {
            return Err(format!("the header says chunks {}..{}, the name {first}..{end}", header.first, header.end));
        }
        let pages = header.entries.div_ceil(IDRUN_ENTRIES_PER_PAGE as u64);
        if header.pages != pages || header.filter_words != filter_words(header.entries) as u64 {
            return Err(format!("{} entries in {} pages with a filter of {} words", header.entries, header.pages, header.filter_words));
        }
        let tail_at = HEADER_BYTES + pages * IDRUN_PAGE_BYTES as u64;
        if len != tail_at + (pages + header.filter_words) * 8 {
            return Err(format!("{len} bytes, not the {} its header implies", tail_at + (pages + header.filter_words) * 8));
        }
        let mut tail = vec![0u8; ((pages + header.filter_words) * 8) as usize];
        file.read_exact_at(&mut tail, tail_at).map_err(|e| format!("reading the fences and filter: {e}"))?;
        if crc32c(&[&tail]) != header.tail_sum {
            return Err("the fences' and filter's checksum does not match".into());
        }
        let mut words = tail.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let fences: Vec<u64> = words.by_ref().take(pages as usize).collect();
        let filter = words.collect();
        Ok(Run { first, end, entries: header.entries, filter, body: Body::File { path: path.to_path_buf(), file, fences } })
    }

    /// The run of chunks `first..end` held in memory, of sorted `entries`; `filtered`: with a
    /// filter over them. Without one (empty: a built filter has a block at least), a probe
    /// searches the entries themselves, a few cache misses where the filter takes one, but
    /// building it costs an insert per key, and where lookups seldom get past the groups'
    /// filter (ids made in order, and new) almost no held run is ever probed.
    fn held(first: u64, end: u64, entries: Vec<IdEntry>, filtered: bool) -> Run {
        let mut filter = Vec::new();
        if filtered {
            filter = vec![0u64; filter_words(entries.len() as u64)];
            entries.iter().for_each(|&(key, _)| filter_insert(&mut filter, key));
        }
        Run { first, end, entries: entries.len() as u64, filter, body: Body::Held(entries) }
    }

    fn is_held(&self) -> bool {
        matches!(self.body, Body::Held(_))
    }

    /// The entries of a held run.
    fn held_entries(&self) -> Option<&[IdEntry]> {
        match &self.body {
            Body::Held(entries) => Some(entries),
            Body::File { .. } => None,
        }
    }

    /// The run's file, or its chunks if it is held: for messages.
    fn name(&self) -> String {
        match &self.body {
            Body::File { path, .. } => path.display().to_string(),
            Body::Held(_) => format!("the run of chunks {}..{} held in memory", self.first, self.end),
        }
    }

    /// Deletes the run's file, if it has one.
    fn remove_file(&self) -> io::Result<()> {
        match &self.body {
            Body::File { path, .. } => remove_if_present(path),
            Body::Held(_) => Ok(()),
        }
    }

    /// Whether the filter says `key` may be in the run; always, for a held run without one.
    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        self.filter.is_empty() || filter_holds(&self.filter, key)
    }

    /// Entries on page `p`.
    fn entries_on(&self, p: usize) -> usize {
        (self.entries as usize - p * IDRUN_ENTRIES_PER_PAGE).min(IDRUN_ENTRIES_PER_PAGE)
    }

    /// The run's file and its path; asserted: only a run on disk has pages.
    fn file(&self) -> (&File, &Path) {
        match &self.body {
            Body::File { path, file, .. } => (file, path),
            Body::Held(_) => panic!("a held run has no pages to read"),
        }
    }

    /// Reads page `p` into `out`, checking its CRC32C.
    fn read_page(&self, p: usize, out: &mut [u8]) -> io::Result<()> {
        let (file, path) = self.file();
        file.read_exact_at(out, HEADER_BYTES + (p * IDRUN_PAGE_BYTES) as u64)?;
        check_page(out, path, p)
    }

    /// As [`Run::read_page`] if the page cache holds the page; `Ok(false)` otherwise (`out`
    /// then unspecified).
    fn read_page_if_cached(&self, p: usize, out: &mut [u8]) -> io::Result<bool> {
        let (file, path) = self.file();
        if !crate::sys::read_cached(file, HEADER_BYTES + (p * IDRUN_PAGE_BYTES) as u64, out)? {
            return Ok(false);
        }
        check_page(out, path, p).map(|()| true)
    }
}

/// Sorts `entries` as `sort_unstable` does, in about two passes when their keys are uniform
/// (as [`idrun_key`]'s are): into buckets by the keys' top bits, about 8 entries a bucket, then
/// each bucket on its own. Skewed keys cost no more than one sort of the whole.
fn sort_uniform(entries: &mut Vec<IdEntry>) {
    const ENTRIES_PER_BUCKET: usize = 8;
    if entries.len() < 64 * ENTRIES_PER_BUCKET {
        entries.sort_unstable();
        return;
    }
    let bits = (entries.len() / ENTRIES_PER_BUCKET).ilog2();
    let bucket = |key: u64| (key >> (64 - bits)) as usize;
    let mut starts = vec![0usize; (1 << bits) + 1];
    entries.iter().for_each(|&(key, _)| starts[bucket(key) + 1] += 1);
    (1..starts.len()).for_each(|b| starts[b] += starts[b - 1]);
    let mut next = starts.clone();
    let mut sorted = vec![(0, 0); entries.len()];
    for &entry in entries.iter() {
        let at = &mut next[bucket(entry.0)];
        sorted[*at] = entry;
        *at += 1;
    }
    starts.windows(2).for_each(|w| sorted[w[0]..w[1]].sort_unstable());
    *entries = sorted;
}

/// The pages of a run with these fences an entry of `key` may be on (none if the key is below
/// the first page's).
fn pages_of(fences: &[u64], key: u64) -> std::ops::Range<usize> {
    // The last page starting below the key may end with it, and later pages may start with it.
    let start = fences.partition_point(|&fence| fence < key).saturating_sub(1);
    start..fences.partition_point(|&fence| fence <= key).max(start)
}

/// The entries of `key` in sorted `entries`.
fn entries_of(entries: &[IdEntry], key: u64) -> impl Iterator<Item = IdEntry> + '_ {
    entries[first_not_below(entries, key)..].iter().copied().take_while(move |e| e.0 == key)
}

/// Where `key` is, or would be, in sorted `entries`: the first entry whose key is not below it.
/// Keys are uniform, so the key's share of the key space guesses its place within about the
/// square root of the entries: from there, steps that double until they pass it, then a binary
/// search between the last two. A few cache lines where a binary search of the whole reads
/// one per halving. Keys in any other spread still cost at most twice a binary search's steps.
fn first_not_below(entries: &[IdEntry], key: u64) -> usize {
    let n = entries.len();
    let guess = ((u128::from(key) * n as u128) >> 64) as usize;
    // Everything below `from` is below the key, and nothing from `to` on is.
    let (from, to) = if guess < n && entries[guess].0 < key {
        let (mut from, mut step) = (guess + 1, 1);
        loop {
            let probe = guess + step;
            if probe >= n {
                break (from, n);
            }
            if entries[probe].0 >= key {
                break (from, probe);
            }
            (from, step) = (probe + 1, step * 2);
        }
    } else {
        let (mut to, mut step) = (guess, 1);
        loop {
            if step > guess {
                break (0, to);
            }
            let probe = guess - step;
            if entries[probe].0 < key {
                break (probe + 1, to);
            }
            (to, step) = (probe, step * 2);
        }
    };
    from + entries[from..to].partition_point(|e| e.0 < key)
}

/// Most page reads [`read_pages`] keeps in flight (one thread each), and fewest a thread is
/// started for: as the history store's `read_many`.
const PAGE_READERS_MAX: usize = 16;
const PAGE_READS_PER_READER_MIN: usize = 4;

/// Pages `pages` ((run, page) each) of `runs`, one after another in the result, each checked.
/// What the page cache holds is read at once on this thread; the rest side by side when there
/// are many (as the history store's `read_many`), so a cold index answers many lookups in the
/// time of a few, and a warm one starts no thread.
fn read_pages(runs: &[Arc<Run>], pages: &[(usize, usize)]) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; pages.len() * IDRUN_PAGE_BYTES];
    let mut cold: Vec<(usize, usize, &mut [u8])> = Vec::new();
    for (&(r, p), out) in pages.iter().zip(bytes.chunks_exact_mut(IDRUN_PAGE_BYTES)) {
        if !runs[r].read_page_if_cached(p, out)? {
            cold.push((r, p, out));
        }
    }
    let readers = cold.len().div_ceil(PAGE_READS_PER_READER_MIN).min(PAGE_READERS_MAX);
    if readers <= 1 {
        cold.into_iter().try_for_each(|(r, p, out)| runs[r].read_page(p, out))?;
        return Ok(bytes);
    }
    // Reader i takes the cold reads i, i + readers, ...
    let mut slots: Vec<Vec<(usize, usize, &mut [u8])>> = (0..readers).map(|_| Vec::new()).collect();
    for (i, read) in cold.into_iter().enumerate() {
        slots[i % readers].push(read);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = slots
            .into_iter()
            .map(|slot| scope.spawn(move || slot.into_iter().try_for_each(|(r, p, out)| runs[r].read_page(p, out))))
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("a page reader panicked"))
    })?;
    Ok(bytes)
}

/// Checks page `p` of the run at `path` against its CRC32C.
fn check_page(page: &[u8], path: &Path, p: usize) -> io::Result<()> {
    let stored = u32::from_le_bytes(page[IDRUN_PAGE_BYTES - 4..].try_into().expect("4 bytes"));
    if crc32c(&[&page[..IDRUN_PAGE_BYTES - 4]]) == stored {
        return Ok(());
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: page {p} fails its checksum", path.display())))
}

/// The first `count` entries of a page, 12 bytes each.
fn page_entries(page: &[u8], count: usize) -> &[[u8; IDRUN_ENTRY_BYTES]] {
    page[..count * IDRUN_ENTRY_BYTES].as_chunks().0
}

/// The entries of `key` on a page (sorted by key): the first not below it, then those equal.
fn entries_on_page(entries: &[[u8; IDRUN_ENTRY_BYTES]], key: u64) -> impl Iterator<Item = IdEntry> + '_ {
    entries[entries.partition_point(|e| entry(e).0 < key)..].iter().map(entry).take_while(move |&(k, _)| k == key)
}

/// An entry's key and value.
#[inline]
fn entry(e: &[u8; IDRUN_ENTRY_BYTES]) -> IdEntry {
    (u64::from_le_bytes(e[..8].try_into().expect("8 bytes")), u32::from_le_bytes(e[8..].try_into().expect("4 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idfilter::GLOBAL_FILTER_KEYS_MIN;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bursar-idruns-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A deterministic spread of hashes (the simulation's generator).
    fn hashes(seed: u64, n: usize) -> Vec<u64> {
        let mut rng = crate::sim::Rng(seed);
        (0..n).map(|_| rng.next_u64()).collect()
    }

    /// Chunk `k` of `len` entries: hashes of seed `k`, values the indexes; a few hashes repeat
    /// an earlier chunk's (two ids sharing a hash).
    fn chunk(k: u64, len: usize) -> Vec<IdEntry> {
        let mut out: Vec<IdEntry> = hashes(k, len).into_iter().enumerate().map(|(i, h)| (h, (k as usize * len + i) as u32)).collect();
        if k > 0 {
            out[0].0 = hashes(k - 1, 1)[0];
        }
        out
    }

    fn add_chunks(runs: &IdRuns, chunks: std::ops::Range<u64>, len: usize) {
        for k in chunks {
            runs.add(k, k + 1, chunk(k, len)).expect("added");
        }
    }

    /// Run files and temporary files in `dir`.
    fn run_files(dir: &Path) -> usize {
        let paths = fs::read_dir(dir).expect("listed").map(|e| e.expect("an entry").path());
        paths.filter(|path| path.extension().is_some_and(|x| x == "run" || x == "tmp")).count()
    }

    /// How many of `hashes` the filter over all runs says "maybe" for (their group may be
    /// stored), and how many of those some run's own filter does too (what a lookup reads
    /// pages for).
    fn maybe_count(index: &IdRuns, hashes: &[u64]) -> (usize, usize) {
        let runs = Arc::clone(&index.shared.runs.read());
        let global = Arc::clone(&index.shared.global.read());
        let maybe: Vec<u64> =
            hashes.iter().filter(|&&hash| global.may_hold(idrun_key(hash >> IDRUN_GROUP_BITS))).map(|&hash| idrun_key(hash)).collect();
        (maybe.len(), maybe.iter().filter(|&&key| runs.iter().any(|run| run.may_hold(key))).count())
    }

    fn sorted(mut entries: Vec<IdEntry>) -> Vec<IdEntry> {
        entries.sort_unstable();
        entries
    }

    /// Every entry the index answers for `hashes`, sorted.
    fn found(runs: &IdRuns, hashes: &[u64]) -> Vec<IdEntry> {
        let mut out = Vec::new();
        runs.candidates(hashes, &mut out).expect("read");
        sorted(out)
    }

    /// The hashes of `entries`, in their order.
    fn hashes_of(entries: &[IdEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.0).collect()
    }

    #[test]
    fn a_key_gives_back_its_hash_and_a_group_is_its_ids_of_one_run_of_256() {
        for hash in hashes(5, 10_000).into_iter().chain([0, 1, u64::MAX]) {
            assert_eq!(idrun_hash(idrun_key(hash)), hash);
            assert_eq!(idrun_group(idrun_key(hash)), idrun_group(idrun_key(hash ^ 0xFF)));
            assert_ne!(idrun_group(idrun_key(hash)), idrun_group(idrun_key(hash ^ 0x100)));
        }
    }

    #[test]
    fn lookups_agree_with_every_entry_through_merges_and_reopening() {
        let dir = temp_dir("agree");
        let len = 100;
        let (runs, opened) = IdRuns::open(&dir).expect("opened");
        assert!(opened.dropped.is_empty());
        add_chunks(&runs, 0..75, len);
        runs.shared.wait_merged();
        // 75 chunks: runs of 64 and 8 (merged onto disk), and three of 1, held in memory.
        assert_eq!((runs.chunks(), runs.runs()), (75, (5, 3)));
        assert_eq!(run_files(&dir), 2);
        let all: Vec<IdEntry> = (0..75).flat_map(|k| chunk(k, len)).collect();
        let check = |runs: &IdRuns| {
            for probe in all.iter().step_by(7) {
                let expected: Vec<IdEntry> = all.iter().copied().filter(|e| e.0 == probe.0).collect();
                assert_eq!(found(runs, &[probe.0]), sorted(expected), "hash {:x}", probe.0);
            }
            assert!(found(runs, &hashes(99, 5000)).is_empty(), "hashes never added are not found");
        };
        check(&runs);
        drop(runs);
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.is_empty(), "{opened:?}");
        // The held runs are gone; their owner adds them again, as after a crash.
        assert_eq!((runs.chunks(), runs.runs()), (72, (2, 0)));
        add_chunks(&runs, 72..75, len);
        check(&runs);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_filter_rules_out_almost_every_new_hash() {
        let dir = temp_dir("filter");
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add_chunks(&runs, 0..8, 25_000);
        runs.shared.wait_merged();
        assert_eq!(runs.runs(), (1, 0));
        let new = hashes(1234, 200_000);
        let (maybe, read_new) = maybe_count(&runs, &new);
        // 16 bits a key in 512-bit blocks: about 0.1% (the test allows twice that).
        assert!(maybe < new.len() / 500, "{maybe} false maybes of {}", new.len());
        assert!(read_new <= maybe, "{read_new} of {maybe}");
        // The lookups count what they asked, and the new hashes whose pages they read in vain:
        // exactly those every filter let through. New hashes in stored hashes' groups (the
        // groups' filter lets them all through) give the runs' filter something to miss.
        let stored: Vec<u64> = (0..8).flat_map(|k| hashes_of(&chunk(k, 25_000))).collect();
        let neighbours: Vec<u64> = stored.iter().map(|h| h ^ 0xA5).collect();
        let (maybe, read) = maybe_count(&runs, &neighbours);
        assert_eq!(maybe, neighbours.len(), "every neighbour's group is stored");
        assert!(read > 0 && read < neighbours.len() / 500, "{read} of {} read", neighbours.len());
        assert!(found(&runs, &new).is_empty() && found(&runs, &neighbours).is_empty());
        let asked_stored = &stored[..1_000];
        assert!(found(&runs, asked_stored).len() >= asked_stored.len(), "stored hashes found, not in vain");
        let asked = (new.len() + neighbours.len() + asked_stored.len()) as u64;
        assert_eq!(runs.lookups(), IdLookups { asked, read_in_vain: (read_new + read) as u64 });
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_run_is_dropped_with_those_after_it_and_a_damaged_page_is_named() {
        let dir = temp_dir("damage");
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add_chunks(&runs, 0..128, 50);
        runs.shared.wait_merged();
        assert_eq!(runs.runs(), (2, 0));
        drop(runs);
        // A flipped bit in the first run's first page: named at lookup, the run kept (its tail is fine).
        let first = dir.join(run_name(0, 64));
        let mut bytes = fs::read(&first).expect("read");
        bytes[HEADER_BYTES as usize + 5] ^= 1;
        fs::write(&first, &bytes).expect("written");
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.is_empty());
        let page_zero = (0..64).flat_map(|k| chunk(k, 50)).min_by_key(|e| idrun_key(e.0)).expect("an entry");
        let error = runs.candidates(&[page_zero.0], &mut Vec::new()).expect_err("a damaged page");
        assert!(error.to_string().contains("page 0 fails its checksum"), "{error}");
        drop(runs);
        // A damaged filter: the run is dropped at open, and the run after it with it (a gap).
        let len = bytes.len();
        bytes[len - 3] ^= 1;
        fs::write(&first, &bytes).expect("written");
        fs::write(dir.join("0000000128-0000000129.run.tmp"), b"half").expect("written");
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert_eq!(opened.dropped.len(), 3, "{opened:?}");
        assert!(opened.dropped.iter().any(|why| why.contains("fences' and filter's checksum")), "{opened:?}");
        assert_eq!((runs.chunks(), runs.runs()), (0, (0, 0)));
        assert_eq!(run_files(&dir), 0, "dropped files are deleted");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_merge_left_half_done_is_tidied_at_open_and_truncation_drops_the_runs_past_it() {
        let dir = temp_dir("leftover");
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add_chunks(&runs, 0..64, 50);
        runs.shared.wait_merged();
        drop(runs);
        // As if a merge of 0..64 had been renamed but its parts (eight runs of 8) not yet deleted.
        let merged = fs::read(dir.join(run_name(0, 64))).expect("read");
        for k in (0..64).step_by(8) {
            let keys = sorted((k..k + 8).flat_map(|c| chunk(c, 50)).map(|(hash, value)| (idrun_key(hash), value)).collect());
            write_run(&dir, k, k + 8, keys.into_iter(), 400).expect("written");
        }
        assert_eq!(fs::read(dir.join(run_name(0, 64))).expect("read"), merged);
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert_eq!(opened.dropped.len(), 8, "{opened:?}");
        assert_eq!((runs.chunks(), runs.runs()), (64, (1, 0)));
        add_chunks(&runs, 64..65, 50);
        runs.truncate(64).expect("cut");
        assert_eq!(runs.chunks(), 64);
        runs.truncate(1).expect("cut");
        assert_eq!((runs.chunks(), runs.runs()), (0, (0, 0)));
        assert_eq!(run_files(&dir), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The filter over all runs is kept at a stop and read at the next start; one that covers
    /// fewer runs (a crash) gets the later runs' keys; a damaged one is rebuilt and named; a
    /// truncation past it deletes it. Every stored hash is found whichever way it was built (in
    /// one lookup of more pages than are read at once).
    #[test]
    fn the_filter_over_all_runs_survives_restarts_crashes_and_damage() {
        let dir = temp_dir("global");
        let len = 400;
        let all = |chunks: u64| -> Vec<IdEntry> { (0..chunks).flat_map(|k| chunk(k, len)).collect() };
        let found_all = |runs: &IdRuns, chunks: u64| {
            let entries = all(chunks);
            let mut per_hash = std::collections::BTreeMap::<u64, usize>::new();
            entries.iter().for_each(|e| *per_hash.entry(e.0).or_default() += 1);
            let hashes = hashes_of(&entries);
            assert_eq!(found(runs, &hashes).len(), hashes.iter().map(|h| per_hash[h]).sum::<usize>(), "every entry found");
        };
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add_chunks(&runs, 0..64, len);
        runs.shared.wait_merged();
        drop(runs);
        let kept = fs::read(dir.join(GLOBAL_FILTER_FILE)).expect("kept at the stop");
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.is_empty(), "{opened:?}");
        found_all(&runs, 64);
        add_chunks(&runs, 64..128, len);
        runs.shared.wait_merged();
        drop(runs);
        // As after a crash: the file from before chunks 64 to 127.
        fs::write(dir.join(GLOBAL_FILTER_FILE), &kept).expect("written");
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.is_empty(), "{opened:?}");
        found_all(&runs, 128);
        drop(runs);
        let mut damaged = fs::read(dir.join(GLOBAL_FILTER_FILE)).expect("read");
        damaged[100] ^= 4;
        fs::write(dir.join(GLOBAL_FILTER_FILE), &damaged).expect("written");
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.iter().any(|why| why.contains("checksum")), "{opened:?}");
        found_all(&runs, 128);
        runs.shared.persist_global(true).expect("kept");
        runs.truncate(64).expect("cut");
        assert!(!dir.join(GLOBAL_FILTER_FILE).exists(), "a file claiming cut runs is deleted");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A chunk's run is held in memory and found there; a merger that cannot write leaves them
    /// held, and an add fails then with the merger's reason and adds nothing.
    #[test]
    fn held_runs_are_found_and_kept_when_the_merger_cannot_write() {
        let dir = temp_dir("held");
        let len = 20;
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add_chunks(&runs, 0..3, len);
        assert_eq!((runs.chunks(), runs.runs(), run_files(&dir)), (3, (3, 3), 0));
        assert_eq!(found(&runs, &hashes_of(&chunk(1, len))).len(), len + 1, "each entry of chunk 1, and chunk 0's of its first hash");
        fs::remove_dir_all(&dir).expect("removed");
        add_chunks(&runs, 3..8, len);
        runs.shared.wait_merged();
        assert!(runs.merge_failure().is_some());
        let error = runs.add(8, 9, chunk(8, len)).expect_err("the merger failed");
        assert!(error.to_string().contains("the ids of 8 chunks wait in memory to be merged onto disk (merging runs in"), "{error}");
        assert_eq!((runs.chunks(), runs.runs()), (8, (8, 8)));
        assert_eq!(found(&runs, &hashes_of(&chunk(5, len))).len(), len, "held runs are still found");
        drop(runs);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_merge_picks_the_smallest_head_the_first_among_equals() {
        let mut rng = crate::sim::Rng(11);
        for _ in 0..10_000 {
            // Few distinct values, so that equal heads are common.
            let heads: [u128; MERGE_FANOUT] =
                core::array::from_fn(|_| if rng.next_u64().is_multiple_of(5) { ENDED } else { u128::from(rng.next_u64() % 4) });
            let min = *heads.iter().min().expect("heads");
            assert_eq!(smallest(&heads), (min, heads.iter().position(|&h| h == min).expect("there")), "{heads:?}");
        }
    }

    /// A held run gets a filter only after lookups probed held runs [`HELD_FILTER_PROBES_MIN`]
    /// times since the last one was added, and answers the same with it or without.
    #[test]
    fn held_runs_get_a_filter_only_where_lookups_probe_them_and_answer_alike_either_way() {
        let dir = temp_dir("held-filter");
        let len = 2 * HELD_FILTER_PROBES_MIN as usize;
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        let filtered = |k: usize| !runs.shared.runs.read()[k].filter.is_empty();
        let new = hashes(999, 4096);
        runs.add(0, 1, chunk(0, len)).expect("added");
        assert!(!filtered(0), "no lookup probed a held run yet");
        assert!(found(&runs, &new).is_empty());
        assert_eq!(found(&runs, &hashes_of(&chunk(0, len))), sorted(chunk(0, len)), "found by searching the entries");
        runs.add(1, 2, chunk(1, len)).expect("added");
        assert!(filtered(1), "the lookups since the last add probed a held run {len} times and more");
        runs.add(2, 3, chunk(2, len)).expect("added");
        assert!(!filtered(2), "no lookup since the last add");
        let all: Vec<IdEntry> = (0..3).flat_map(|k| chunk(k, len)).collect();
        for k in 0..3 {
            let asked = hashes_of(&chunk(k, len));
            let expected = all.iter().copied().filter(|e| asked.contains(&e.0)).collect();
            assert_eq!(found(&runs, &asked), sorted(expected), "chunk {k}");
        }
        assert!(found(&runs, &new).is_empty());
        drop(runs);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_is_placed_as_a_binary_search_places_it_in_uniform_skewed_and_repeated_keys() {
        let uniform: Vec<IdEntry> = sorted(hashes(6, 5_000).into_iter().map(|h| (h, 1)).collect());
        let skewed: Vec<IdEntry> = sorted(hashes(7, 5_000).into_iter().map(|h| (h >> 40, 2)).collect());
        let repeated: Vec<IdEntry> = sorted((0..5_000u64).map(|i| (u64::MAX - i % 3, i as u32)).collect());
        for entries in [uniform, skewed, repeated, vec![], vec![(7, 1)]] {
            let present = entries.iter().map(|e| e.0);
            let around = present.clone().flat_map(|k| [k.wrapping_sub(1), k.wrapping_add(1)]);
            for key in present.chain(around).chain(hashes(8, 500)).chain([0, 1, u64::MAX]) {
                assert_eq!(first_not_below(&entries, key), entries.partition_point(|e| e.0 < key), "key {key}");
            }
        }
    }

    #[test]
    fn the_bucket_sort_sorts_uniform_skewed_and_repeated_keys() {
        let uniform = hashes(3, 40_000).into_iter().map(|h| (h, h as u32));
        let skewed = hashes(4, 40_000).into_iter().map(|h| (h >> 20, 7));
        let repeated = (0..40_000u64).map(|i| (u64::MAX - i % 3, i as u32));
        for entries in [uniform.collect::<Vec<IdEntry>>(), skewed.collect(), repeated.collect(), vec![(5, 1), (2, 2)]] {
            let mut ours = entries.clone();
            sort_uniform(&mut ours);
            assert_eq!(ours, sorted(entries));
        }
    }

    /// Chunk `k` of `len` entries as ids made in order give them: whole groups of 256, here
    /// the even ids of each. The odd ids beside them are new ids of stored groups, as a
    /// capture's is when it was made with its hold's.
    fn grouped_chunk(k: u64, len: usize) -> Vec<IdEntry> {
        let groups = hashes(1000 + k, len / 128);
        let ids = groups.into_iter().flat_map(|group| (0..128).map(move |i| (group & !0xFF) | (2 * i)));
        ids.enumerate().map(|(i, hash)| (hash, (k as usize * len + i) as u32)).collect()
    }

    #[test]
    fn new_ids_beside_stored_ones_build_the_filter_over_the_keys_on_disk_which_answers_alike() {
        let dir = temp_dir("keys");
        let len = 8192;
        let add = |runs: &IdRuns, chunks: std::ops::Range<u64>| {
            chunks.for_each(|k| runs.add(k, k + 1, grouped_chunk(k, len)).expect("added"));
            runs.shared.wait_merged();
        };
        let stored = |chunks: u64| sorted((0..chunks).flat_map(|k| grouped_chunk(k, len)).collect());
        let beside = |chunks: u64| stored(chunks).iter().map(|&(hash, _)| hash | 1).collect::<Vec<_>>();
        let fresh = hashes(77, 5000);
        let (runs, _) = IdRuns::open(&dir).expect("opened");
        add(&runs, 0..8);
        // New ids of new groups, and stored ids: neither builds it at the next merge.
        assert!(found(&runs, &fresh).is_empty());
        let first = stored(8);
        assert_eq!(found(&runs, &hashes_of(&first)), first);
        add(&runs, 8..16);
        assert!(!runs.shared.keys_filter_built(), "new groups' ids and stored ids do not build it");
        // New ids beside stored ones probe every run's filter; the next merge builds it.
        assert!(found(&runs, &beside(16)).is_empty());
        add(&runs, 16..24);
        assert!(runs.shared.keys_filter_built(), "new ids of stored groups build it");
        // Past its first capacity (2^20 keys) it is built again, larger; the answers are those
        // of the runs throughout, on disk or held, and after a reopen (which leaves it unbuilt
        // until the lookups need it again).
        let check = |runs: &IdRuns, chunks: u64| {
            let stored = stored(chunks);
            assert_eq!(found(runs, &hashes_of(&stored)), stored);
            assert!(found(runs, &beside(chunks)).is_empty());
            assert!(found(runs, &fresh).is_empty());
        };
        check(&runs, 24);
        add(&runs, 24..140);
        assert_eq!(runs.runs(), (7, 4), "two runs of 64 chunks, one of 8, four held");
        let built = Arc::clone(runs.shared.keys.read().as_ref().expect("built"));
        assert!(built.keys() > GLOBAL_FILTER_KEYS_MIN, "{} keys: built again past its first capacity", built.keys());
        check(&runs, 140);
        drop((runs, built));
        let (runs, _) = IdRuns::open(&dir).expect("reopened");
        assert!(!runs.shared.keys_filter_built(), "not kept in a file");
        add(&runs, 136..140);
        check(&runs, 140);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A merge under way when the index stops gives up: no temporary file is left, its runs
    /// stay as they were, and the next start finds them all.
    #[test]
    fn a_merge_gives_up_when_the_index_stops() {
        let dir = temp_dir("stopping");
        let len = 2_000;
        // The index's state without its mergers: this test merges by hand.
        let (shared, _) = Shared::open(&dir).expect("opened");
        for k in 0..64 {
            shared.add(k, k + 1, chunk(k, len)).expect("added");
        }
        loop {
            // The list's guard is dropped before the merge takes its lock.
            let Some(group) = next_merge(&shared.runs.read(), Level::Held) else { break };
            shared.merge_group(group).expect("merged");
        }
        assert_eq!((shared.runs.read().len(), run_files(&dir)), (8, 8));
        shared.stopping.store(true, Ordering::Relaxed);
        let group = next_merge(&shared.runs.read(), Level::Written).expect("eight runs of 8");
        let error = shared.merge_group(group).expect_err("given up");
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
        assert_eq!((shared.chunks(), shared.runs.read().len(), run_files(&dir)), (64, 8, 8), "nothing written or left");
        drop(shared);
        let (runs, opened) = IdRuns::open(&dir).expect("reopened");
        assert!(opened.dropped.is_empty(), "{opened:?}");
        assert_eq!(runs.chunks(), 64);
        drop(runs);
        let _ = fs::remove_dir_all(&dir);
    }
}
