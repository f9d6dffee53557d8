//! The hasher for u128 ids: keeps the locality of sequential or time-ordered ids.
//!
//! hashbrown picks a bucket from a hash's low bits and matches a 7-bit tag from its top bits.
//! A mixing hash (SipHash, FxHash) scatters ids 1, 2, 3… over the whole table, so every insert
//! into a table of millions of transfers is a cache and TLB miss. Here the low 57 bits are the
//! id's low word plus a multiplied high word: consecutive ids fill consecutive buckets (one cache
//! line holds several), ids that differ only in their high word still spread out, and the tag
//! bits come from a full multiply so SIMD group matching stays selective.
//!
//! Deterministic (no `RandomState`): a client that chooses ids adversarially can make its own
//! lookups collide. Gateways are authenticated parties, so that is a trust issue of the gateway,
//! recorded in ARCHITECTURE.md.

use core::hash::{BuildHasherDefault, Hasher};

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;
const LOW_BITS: u64 = (1 << 57) - 1;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher {
    hash: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used for ids; a plain FxHash-style fold so other key types still work.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.hash = (self.hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K1);
        }
    }

    fn write_u128(&mut self, id: u128) {
        let x = (id as u64).wrapping_add(((id >> 64) as u64).wrapping_mul(K1));
        let tag = x.wrapping_mul(K2) & !LOW_BITS;
        self.hash = (x & LOW_BITS) | tag;
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u128(id as u128);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` keyed by ids, with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::BuildHasher;

    fn hash(id: u128) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(id)
    }

    #[test]
    fn consecutive_ids_get_consecutive_buckets_and_varied_tags() {
        let base = 1u128 << 64 | 1000;
        for i in 0..64u128 {
            assert_eq!(hash(base + i) & LOW_BITS, (hash(base) & LOW_BITS) + i as u64);
        }
        let tags: std::collections::BTreeSet<u64> = (0..64u128).map(|i| hash(base + i) >> 57).collect();
        assert!(tags.len() > 32, "tags must vary between neighbours: {}", tags.len());
        assert_ne!(hash(1) & LOW_BITS, hash(1 | 1 << 64) & LOW_BITS, "high words spread");
    }
}
