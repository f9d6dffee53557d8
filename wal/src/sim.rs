//! Simulated storage for tests: written and durable bytes kept apart, and a seeded fault model
//! that loses unsynced bytes, tears the last write at any byte, writes unsynced pages out of
//! order, flips bits, and fails writes and syncs.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{Contents, Storage};

/// Which faults to inject, in percent per operation.
/// SplitMix64: the seeded generator every Bursar simulation, fuzz harness and benchmark workload
/// uses, so one u64 reproduces a run. Small and fast; not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Which faults to inject, in percent per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Chance that a `write_at` fails (nothing written).
    pub write_fail_percent: u64,
    /// Chance that a `sync` fails (some unsynced bytes may or may not have reached the disk).
    pub sync_fail_percent: u64,
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order: (offset, bytes).
    unsynced: Vec<(usize, Vec<u8>)>,
}

#[derive(Debug)]
struct State {
    files: BTreeMap<String, SimFile>,
    rng: Rng,
    faults: Faults,
}

impl State {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.chance(percent)
    }

    /// Applies some of a file's unsynced writes to its durable bytes, as a power cut might.
    fn settle_unsynced(&mut self, name: &str) {
        let unsynced = std::mem::take(&mut self.files.get_mut(name).expect("file").unsynced);
        let mut durable = std::mem::take(&mut self.files.get_mut(name).expect("file").durable);
        if self.chance(50) {
            // In order, the last one torn at any byte.
            let keep = self.below(unsynced.len() as u64 + 1) as usize;
            for (i, (offset, bytes)) in unsynced.iter().take(keep).enumerate() {
                let len = if i + 1 == keep { self.below(bytes.len() as u64 + 1) as usize } else { bytes.len() };
                durable[*offset..*offset + len].copy_from_slice(&bytes[..len]);
            }
        } else {
            // Page writeback out of order: any subset of 512-byte sectors of any write.
            for (offset, bytes) in &unsynced {
                for (k, sector) in bytes.chunks(512).enumerate() {
                    if self.chance(50) {
                        let at = offset + k * 512;
                        durable[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
            }
        }
        self.files.get_mut(name).expect("file").durable = durable;
    }
}

/// A simulated disk. Clones share the same disk, so a test can keep a handle to crash it.
#[derive(Clone, Debug)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty disk whose faults are driven by `seed`.
    pub fn new(seed: u64, faults: Faults) -> SimStorage {
        SimStorage { state: Arc::new(Mutex::new(State { files: BTreeMap::new(), rng: Rng(seed), faults })) }
    }

    /// Power cut: every file keeps its durable bytes plus an arbitrary part of what was written
    /// since its last sync (in order and torn, or as scattered sectors). Faults are switched off
    /// afterwards so the restart itself is clean.
    pub fn crash(&self) {
        let mut state = self.state.lock();
        let names: Vec<String> = state.files.keys().cloned().collect();
        for name in names {
            state.settle_unsynced(&name);
            let file = state.files.get_mut(&name).expect("file");
            file.written = file.durable.clone();
        }
        state.faults = Faults::default();
    }

    /// Flips one bit of a file's durable (and written) bytes.
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) {
        let mut state = self.state.lock();
        let file = state.files.get_mut(name).expect("file exists");
        file.durable[offset] ^= 1 << bit;
        file.written[offset] ^= 1 << bit;
    }

    /// Overwrites bytes of a file, durably (for tamper tests).
    pub fn overwrite(&self, name: &str, offset: usize, bytes: &[u8]) {
        let mut state = self.state.lock();
        let file = state.files.get_mut(name).expect("file exists");
        file.durable[offset..offset + bytes.len()].copy_from_slice(bytes);
        file.written[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// A file's durable bytes.
    pub fn durable(&self, name: &str) -> Option<Vec<u8>> {
        self.state.lock().files.get(name).map(|f| f.durable.clone())
    }

    /// Names of the files on the disk.
    pub fn list_names(&self) -> Vec<String> {
        self.state.lock().files.keys().cloned().collect()
    }

    /// Changes the fault model from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl Storage for SimStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.lock().files.keys().cloned().collect())
    }

    fn prepare(&mut self, name: &str, head: &[u8], len: u64) -> io::Result<()> {
        let mut bytes = vec![0u8; len as usize];
        bytes[..head.len()].copy_from_slice(head);
        let file = SimFile { written: bytes.clone(), durable: bytes, unsynced: Vec::new() };
        self.state.lock().files.insert(name.to_string(), file);
        Ok(())
    }

    fn prepare_from(&mut self, spare: &str, name: &str, head: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let mut file = state.files.remove(spare).ok_or_else(|| not_found(spare))?;
        // The head is durable at once, as `prepare` makes files; the rest stays as it was.
        file.written[..head.len()].copy_from_slice(head);
        file.durable[..head.len()].copy_from_slice(head);
        state.files.insert(name.to_string(), file);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state.lock();
        let file = state.files.remove(from).ok_or_else(|| not_found(from))?;
        state.files.insert(to.to_string(), file);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.state.lock().files.remove(name).map(|_| ()).ok_or_else(|| not_found(name))
    }

    fn finish_prepare(&mut self, name: &str) -> io::Result<()> {
        if self.state.lock().files.contains_key(name) {
            Ok(())
        } else {
            Err(not_found(name))
        }
    }

    fn read(&self, name: &str) -> io::Result<Contents> {
        let state = self.state.lock();
        let file = state.files.get(name).ok_or_else(|| not_found(name))?;
        Ok(Box::new(file.written.clone()))
    }

    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let percent = state.faults.write_fail_percent;
        if state.chance(percent) {
            return Err(io::Error::other("injected write failure"));
        }
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        let offset = offset as usize;
        if offset + bytes.len() > file.written.len() {
            return Err(io::Error::other("write past the end of a preallocated file"));
        }
        file.written[offset..offset + bytes.len()].copy_from_slice(bytes);
        file.unsynced.push((offset, bytes.to_vec()));
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        let mut state = self.state.lock();
        if !state.files.contains_key(name) {
            return Err(not_found(name));
        }
        let percent = state.faults.sync_fail_percent;
        if state.chance(percent) {
            // Like a real failed fsync: all, some or none of the data may have reached the disk,
            // and the kernel may have dropped the rest of the dirty pages.
            if state.chance(30) {
                let file = state.files.get_mut(name).expect("checked");
                file.durable = file.written.clone();
                file.unsynced.clear();
            } else {
                state.settle_unsynced(name);
            }
            return Err(io::Error::other("injected sync failure"));
        }
        let file = state.files.get_mut(name).expect("checked");
        file.durable = file.written.clone();
        file.unsynced.clear();
        Ok(())
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let percent = state.faults.sync_fail_percent;
        if state.chance(percent) {
            return Err(io::Error::other("injected sync failure"));
        }
        state.files.insert(name.to_string(), SimFile { written: bytes.to_vec(), durable: bytes.to_vec(), unsynced: Vec::new() });
        Ok(())
    }
}
