//! The stored ids' filters: blocked Bloom filters, one per run over its keys (on disk with it,
//! [`crate::idruns`]) and one over all runs' groups of 256 ids (in memory, kept in a file of its
//! own between starts), so a lookup of a new id costs one cache line, not one per run, and ids
//! made in order share one per group.
//!
//! A filter is 512-bit blocks; a key sets [`FILTER_PROBES`] bits of one block, the block its
//! top bits pick (so keys in order fill a filter block by block), the bits from its low 40.
//! [`FILTER_BITS_PER_KEY`] bits a key: about one new key in a thousand is a false "maybe".

use crate::format::crc32c;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Filter bits per key: with [`FILTER_PROBES`] bits set in one 512-bit block, about one new
/// key in a thousand is a false "maybe" (measured in the tests).
pub const FILTER_BITS_PER_KEY: usize = 16;
/// Bits set per key in its block.
pub const FILTER_PROBES: u32 = 8;
/// Bits of a filter block (a cache line).
const BLOCK_BITS: u64 = 512;
/// Keys the first filter over all runs is sized for (2 MiB); each later one twice the last.
pub const GLOBAL_FILTER_KEYS_MIN: u64 = 1 << 20;
/// The file the filter over all runs is kept in between starts.
pub const GLOBAL_FILTER_FILE: &str = "filter";
/// Its first bytes.
pub const GLOBAL_FILTER_MAGIC: [u8; 8] = *b"BRSIDFLT";
/// Its format's version.
pub const GLOBAL_FILTER_VERSION: u32 = 1;
/// Bytes of its header: magic, version, reserved (u32), covered chunks, capacity, keys, words
/// (u64 each), the words' CRC32C and the header's (u32 each).
const GLOBAL_HEADER_BYTES: usize = 56;

/// Words of a filter for `keys` keys: whole 512-bit blocks, at least one.
pub(crate) fn filter_words(keys: u64) -> usize {
    let blocks = (keys * FILTER_BITS_PER_KEY as u64).div_ceil(BLOCK_BITS).max(1);
    (blocks * (BLOCK_BITS / 64)) as usize
}

/// The block of `key` in a filter of `words` words, and the bits it sets there. The bits come
/// from the key's low 40 (a filter has at most 2^32 blocks here, so its block takes at most the
/// top 32), spread by two products.
#[inline]
fn filter_place(words: usize, key: u64) -> (usize, [u32; FILTER_PROBES as usize]) {
    let blocks = (words / 8) as u64;
    let block = ((u128::from(key) * u128::from(blocks)) >> 64) as usize;
    let low = key & ((1 << 40) - 1);
    let (a, b) = (low.wrapping_mul(0x9E37_79B9_7F4A_7C15), low.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    (block, core::array::from_fn(|i| if i < 7 { (a >> (1 + 9 * i)) as u32 & 511 } else { (b >> 55) as u32 }))
}

/// Whether `word(i)`, for each word `i` of a block, has every bit of `bits` set. Each bit is
/// tested where it lies, and one branch taken at the end, not one per bit: a probe's outcome
/// ("no", almost always) is then easy to predict, so the CPU runs ahead into the next probes
/// and their cache misses overlap. No per-word masks are built first: eight read-modify-writes
/// of a small array at computed places cost more than the probe itself.
#[inline]
fn block_holds(bits: [u32; FILTER_PROBES as usize], word: impl Fn(usize) -> u64) -> bool {
    bits.iter().fold(1, |all, &bit| all & (word((bit >> 6) as usize) >> (bit & 63))) & 1 == 1
}

/// Sets `key`'s bits in `filter`, each straight into its word.
pub(crate) fn filter_insert(filter: &mut [u64], key: u64) {
    let (block, bits) = filter_place(filter.len(), key);
    let block: &mut [u64; 8] = (&mut filter[block * 8..block * 8 + 8]).try_into().expect("a block is 8 words");
    bits.iter().for_each(|&bit| block[(bit >> 6) as usize] |= 1 << (bit & 63));
}

/// Whether `filter` may hold `key`.
#[inline]
pub(crate) fn filter_holds(filter: &[u64], key: u64) -> bool {
    let (block, bits) = filter_place(filter.len(), key);
    let block: &[u64; 8] = filter[block * 8..block * 8 + 8].try_into().expect("a block is 8 words");
    block_holds(bits, |i| block[i])
}

/// The filter over every run's keys. Its bits are atomics: the writer sets a run's before the
/// run is published, lookups read them beside it; a set bit is never cleared (a run dropped
/// leaves its keys as false "maybe"s until the next one is built).
#[derive(Debug)]
pub(crate) struct GlobalFilter {
    words: Box<[AtomicU64]>,
    /// Keys it was sized for; past them a filter twice as large is built from the runs.
    capacity: u64,
    /// Distinct keys inserted (short by the false "maybe"s).
    keys: AtomicU64,
}

impl GlobalFilter {
    /// An empty filter for `capacity` keys.
    pub(crate) fn with_capacity(capacity: u64) -> GlobalFilter {
        let capacity = capacity.max(GLOBAL_FILTER_KEYS_MIN);
        let words = (0..filter_words(capacity)).map(|_| AtomicU64::new(0)).collect();
        GlobalFilter { words, capacity, keys: AtomicU64::new(0) }
    }

    /// Whether `more` keys fit before it must be rebuilt larger.
    pub(crate) fn has_room(&self, more: u64) -> bool {
        self.keys.load(Ordering::Relaxed) + more <= self.capacity
    }

    /// Keys inserted so far.
    pub(crate) fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    /// Sets `keys`' bits, counting those that set one (a key inserted again sets none, a new
    /// one almost always does: the count is of distinct keys, short by the false "maybe"s). One
    /// thread inserts (the caller's, the index's writer), so a word is read and written back,
    /// not changed by an atomic read-modify-write; readers beside it see each bit set or not yet.
    pub(crate) fn insert(&self, keys: impl Iterator<Item = u64>) {
        let mut count = 0;
        for key in keys {
            let (block, bits) = filter_place(self.words.len(), key);
            // Which words are written depends on the key alone, not on what they held: no
            // branch waits for a load, so the next keys' cache misses overlap this one's.
            let mut missing = 0;
            for bit in bits {
                let (word, mask) = (&self.words[block * 8 + (bit >> 6) as usize], 1 << (bit & 63));
                let old = word.load(Ordering::Relaxed);
                missing |= mask & !old;
                word.store(old | mask, Ordering::Relaxed);
            }
            count += u64::from(missing != 0);
        }
        self.keys.fetch_add(count, Ordering::Relaxed);
    }

    /// Whether it may hold `key`.
    #[inline]
    pub(crate) fn may_hold(&self, key: u64) -> bool {
        let (block, bits) = filter_place(self.words.len(), key);
        let block = &self.words[block * 8..block * 8 + 8];
        block_holds(bits, |i| block[i].load(Ordering::Relaxed))
    }

    /// Writes it to `dir`'s [`GLOBAL_FILTER_FILE`] as covering the runs' chunks below
    /// `covered` (every key of theirs was inserted before this call), as the log writes its
    /// own small files: a temporary file, synced, renamed, the directory synced.
    pub(crate) fn persist(&self, dir: &Path, covered: u64) -> io::Result<()> {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes()).collect();
        let mut head = [0u8; GLOBAL_HEADER_BYTES];
        head[..8].copy_from_slice(&GLOBAL_FILTER_MAGIC);
        head[8..12].copy_from_slice(&GLOBAL_FILTER_VERSION.to_le_bytes());
        for (i, field) in [covered, self.capacity, self.keys(), self.words.len() as u64].iter().enumerate() {
            head[16 + i * 8..24 + i * 8].copy_from_slice(&field.to_le_bytes());
        }
        head[48..52].copy_from_slice(&crc32c(&[&bytes]).to_le_bytes());
        let sum = crc32c(&[&head[..52]]);
        head[52..56].copy_from_slice(&sum.to_le_bytes());
        crate::storage::write_atomic_in(dir, GLOBAL_FILTER_FILE, &[&head[..], &bytes].concat())
    }

    /// The filter kept in `dir`, with the chunks it covers, if there is a sound one; what is
    /// wrong with it otherwise (a missing file is `Ok(None)`).
    pub(crate) fn load(dir: &Path) -> Result<Option<(GlobalFilter, u64)>, String> {
        let bytes = match fs::read(dir.join(GLOBAL_FILTER_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if bytes.len() < GLOBAL_HEADER_BYTES || bytes[..8] != GLOBAL_FILTER_MAGIC {
            return Err("not a filter of stored ids (magic)".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if u32_at(52) != crc32c(&[&bytes[..52]]) || u32_at(8) != GLOBAL_FILTER_VERSION {
            return Err("its header's checksum or version does not match".into());
        }
        let [covered, capacity, keys, words] = [16, 24, 32, 40].map(u64_at);
        let body = &bytes[GLOBAL_HEADER_BYTES..];
        if words != filter_words(capacity) as u64 || body.len() as u64 != words * 8 || crc32c(&[body]) != u32_at(48) {
            return Err("its size or its checksum does not match".into());
        }
        let words = body.chunks_exact(8).map(|b| AtomicU64::new(u64::from_le_bytes(b.try_into().expect("8 bytes")))).collect();
        Ok(Some((GlobalFilter { words, capacity, keys: AtomicU64::new(keys) }, covered)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words `docs/history-format.md` says a key sets, computed from its text alone.
    fn documented(words: usize, key: u64) -> Vec<u64> {
        let block = ((u128::from(key) * (words / 8) as u128) >> 64) as usize;
        let low = key & ((1 << 40) - 1);
        let (a, b) = (low.wrapping_mul(0x9E37_79B9_7F4A_7C15), low.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let mut expected = vec![0u64; words];
        for bit in (0..7).map(|i| (a >> (1 + 9 * i)) & 511).chain([b >> 55]) {
            expected[block * 8 + (bit / 64) as usize] |= 1 << (bit % 64);
        }
        expected
    }

    /// A run's filter and the filter over all runs set the bits the format documents, so how
    /// they are computed cannot change what the files hold; a probe says "maybe" only with
    /// every one of them set.
    #[test]
    fn a_key_sets_the_documented_bits_and_is_held_only_with_all_of_them() {
        for key in [0, 1, 255, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, u64::MAX] {
            let words = filter_words(1000);
            let mut filter = vec![0u64; words];
            filter_insert(&mut filter, key);
            let expected = documented(words, key);
            assert_eq!(filter, expected, "key {key:#x}");
            assert!(filter_holds(&filter, key));
            for (at, word) in expected.iter().enumerate().filter(|(_, w)| **w != 0) {
                for bit in (0..64).filter(|b| word >> b & 1 == 1) {
                    let mut short = filter.clone();
                    short[at] &= !(1 << bit);
                    assert!(!filter_holds(&short, key), "key {key:#x} held without bit {bit} of word {at}");
                }
            }
            let global = GlobalFilter::with_capacity(0);
            global.insert([key, key].into_iter());
            assert_eq!(global.keys(), 1, "a key inserted twice counts once");
            let words: Vec<u64> = global.words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
            assert_eq!(words, documented(words.len(), key), "key {key:#x} in the filter over all runs");
            assert!(global.may_hold(key));
        }
    }
}
