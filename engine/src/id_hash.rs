//! The hasher for u128 ids: keeps the locality of sequential or time-ordered ids.
//!
//! hashbrown picks a bucket from a hash's low bits and matches a 7-bit tag from its top bits.
//! A mixing hash (SipHash, FxHash) scatters ids 1, 2, 3… over the whole table, so every insert
//! into a table of millions of transfers is a cache and TLB miss. Here ids are taken in aligned
//! runs of `RUN_IDS` (256): within a run, consecutive ids fill consecutive buckets (one cache
//! line holds several); each run as a whole lands where a full 64-bit mix (murmur3's finaliser)
//! of the rest of the id sends it, so any two ranges of ids (gateway A's and gateway B's, an
//! id scheme with the client in bits 48..64) spread out instead of piling onto the same buckets.
//! The tag bits come from a full multiply so SIMD group matching stays selective.
//!
//! Measured: a first version kept whole ranges contiguous (bucket = low word + multiplied high
//! word). Two clients whose ids differed at bit 48 then hashed to the same buckets (2^48 is a
//! multiple of every table size), and the server's throughput with two clients fell to a third
//! of one client's (`create_transfer` probing 39% of the sequencer's time).
//!
//! Deterministic (no per-process random hash seed): a client that chooses ids adversarially can make its own
//! lookups collide. Gateways are authenticated parties, so that is a trust issue of the gateway,
//! recorded in ARCHITECTURE.md.

use core::hash::{BuildHasherDefault, Hasher};

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;
const LOW_BITS: u64 = (1 << 57) - 1;
/// log2 of the ids in one run of consecutive buckets.
pub const RUN_BITS: u32 = 8;
/// Ids in one run of consecutive buckets.
pub const RUN_IDS: u64 = 1 << RUN_BITS;

/// murmur3's 64-bit finaliser: every input bit flips about half the output bits.
const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

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
        let run = fmix64(x >> RUN_BITS) << RUN_BITS;
        let tag = x.wrapping_mul(K2) & !LOW_BITS;
        self.hash = ((run | (x & (RUN_IDS - 1))) & LOW_BITS) | tag;
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
        let base = 4096u128; // a run-aligned id (the high word would shift the alignment)
        for i in 0..RUN_IDS as u128 {
            assert_eq!(hash(base + i) & LOW_BITS, (hash(base) & LOW_BITS) + i as u64);
        }
        let tags: std::collections::BTreeSet<u64> = (0..64u128).map(|i| hash(base + i) >> 57).collect();
        assert!(tags.len() > 32, "tags must vary between neighbours: {}", tags.len());
        assert_ne!(hash(1) & LOW_BITS, hash(1 | 1 << 64) & LOW_BITS, "high words spread");
    }

    #[test]
    fn ranges_offset_by_a_power_of_two_do_not_share_buckets() {
        // Two gateways numbering from the same start, told apart by one high bit (the harness's
        // scheme, and a common one): in a table of 2^20 buckets their ids must not collide more
        // than random placement would.
        let table_mask = (1u64 << 20) - 1;
        for bit in [20u32, 32, 48, 62, 64, 100] {
            let a: std::collections::HashSet<u64> = (0..65_536u128).map(|i| hash((1 << 62) + i) & table_mask).collect();
            let shared = (0..65_536u128).filter(|i| a.contains(&(hash((1 << 62) + (1u128 << bit) + i) & table_mask))).count();
            // Random placement would share about 65 536 × 65 536 / 2^20 = 4 096 buckets.
            assert!(shared < 8_192, "ids offset by 2^{bit} share {shared} of 65 536 buckets");
        }
    }
}
