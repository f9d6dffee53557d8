//! A stored chunk's restore image: what a restart needs of a chunk of transfers, so it need
//! not read, decode, hash and look up every record again.
//!
//! Per transfer: the id's index hash and its two account links (as `transfer_links` holds
//! them); per chunk: its transfers' state digest sum and whether it is *plain*. A plain chunk
//! has no hold, capture, release or reversal and no id of the standing orders' reserved range:
//! nothing a restore derives from its records (hold states, lineage, exact ids), so restoring it
//! is inserting its hashes into the id index and appending its links, and its records stay on
//! disk. Any other chunk's records are read as before, its links still taken from the image.
//! Links follow the accounts' lists, which a slim snapshot (version 10) closes with each
//! account's last link below the stored chunks; a restore of an older snapshot, or with images
//! missing, reads every record instead.

use super::{Engine, LINK_DEBITED, NONE};
use crate::id_index::id_hash;
use crate::types::{transfer_flags as tf, Transfer};

/// Flags that make a transfer one a restore must read (hold states, lineage).
const NAMED: u16 = tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING | tf::REVERSE;

/// A chunk's restore image (see the module).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkImage {
    /// Each transfer's id hash (the id index's), in order.
    pub hashes: Vec<u64>,
    /// Each transfer's links: the debit account's and the credit account's previous transfer.
    pub links: Vec<[u32; 2]>,
    /// The chunk's transfers' state digest terms, summed ([`crate::transfers_digest_sum`]).
    pub sum: u128,
    /// No transfer a restore must read (see the module).
    pub plain: bool,
}

impl ChunkImage {
    /// The image of `chunk`, whose links are `links`.
    pub fn of(chunk: &[Transfer], links: &[[u32; 2]]) -> ChunkImage {
        assert_eq!(chunk.len(), links.len(), "a link pair per transfer");
        let plain = chunk.iter().all(|t| t.flags & NAMED == 0 && !crate::is_reserved_id(t.id));
        ChunkImage {
            hashes: chunk.iter().map(|t| id_hash(t.id)).collect(),
            links: links.to_vec(),
            sum: crate::transfers_digest_sum(chunk),
            plain,
        }
    }
}

/// Bytes of a stored image of a chunk of `chunk_len` transfers: each transfer's hash (u64), then
/// each one's two links (u32 each), then the sum (u128) and the plain flag (u8), zeros to a whole
/// number of 4 KiB pages.
pub const fn image_bytes(chunk_len: usize) -> usize {
    (chunk_len * 16 + 17).next_multiple_of(4096)
}

impl ChunkImage {
    /// The image as stored ([`image_bytes`] of its length), appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.hashes.iter().for_each(|h| out.extend_from_slice(&h.to_le_bytes()));
        self.links.iter().flatten().for_each(|l| out.extend_from_slice(&l.to_le_bytes()));
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.push(u8::from(self.plain));
        out.resize(start + image_bytes(self.hashes.len()), 0);
    }

    /// An image of a chunk of `chunk_len` from its stored bytes; what is wrong, if anything.
    pub fn decode(bytes: &[u8], chunk_len: usize) -> Result<ChunkImage, String> {
        if bytes.len() != image_bytes(chunk_len) {
            return Err(format!("a restore image of {} bytes, not {}", bytes.len(), image_bytes(chunk_len)));
        }
        let (hashes, rest) = bytes.split_at(chunk_len * 8);
        let image = ChunkImage::decode_after_hashes(rest, chunk_len)?;
        Ok(ChunkImage { hashes: hashes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(), ..image })
    }

    /// Where an image's part after the hashes starts, and its length, for a chunk of `chunk_len`:
    /// what a restore reads of a chunk whose ids are in the history's id index.
    pub const fn after_hashes(chunk_len: usize) -> (usize, usize) {
        (chunk_len * 8, image_bytes(chunk_len) - chunk_len * 8)
    }

    /// An image without its hashes (empty) from its stored bytes after them
    /// ([`ChunkImage::after_hashes`]); what is wrong, if anything.
    pub fn decode_after_hashes(rest: &[u8], chunk_len: usize) -> Result<ChunkImage, String> {
        if rest.len() != ChunkImage::after_hashes(chunk_len).1 {
            return Err(format!("a restore image's links and sum of {} bytes, not {}", rest.len(), ChunkImage::after_hashes(chunk_len).1));
        }
        let (links, rest) = rest.split_at(chunk_len * 8);
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let plain = match rest[16] {
            0 => false,
            1 => true,
            flag => return Err(format!("a restore image's plain flag is {flag}")),
        };
        if rest[17..].iter().any(|&b| b != 0) {
            return Err("a restore image's padding is not zero".into());
        }
        Ok(ChunkImage {
            hashes: Vec::new(),
            links: links.chunks_exact(8).map(|b| [u32_at(&b[..4]), u32_at(&b[4..])]).collect(),
            sum: u128::from_le_bytes(rest[..16].try_into().expect("16 bytes")),
            plain,
        })
    }
}

impl Engine {
    /// The account links of full chunk `k`'s transfers (always in memory): a restore image's.
    pub fn transfer_links_of_chunk(&self, k: usize) -> &[[u32; 2]] {
        let len = self.transfers.chunk_len();
        &self.transfer_links[k * len..(k + 1) * len]
    }

    /// Restores stored chunk `k` from its image, `records` its transfers if it is not plain
    /// (read by the caller): ids indexed by hash (by id where records were read), links
    /// appended; a plain chunk is counted in the digest by its sum and left out of memory.
    /// Checks every link names an earlier transfer.
    /// `records` comes with the reader's sum of their digest terms, if it computed one, which
    /// must be the image's.
    pub(crate) fn restore_image(
        &mut self,
        k: usize,
        image: &ChunkImage,
        records: Option<(Vec<Transfer>, Option<u128>)>,
    ) -> Result<(), String> {
        let len = self.transfers.chunk_len();
        let first = (k * len) as u32;
        // A chunk whose ids the history's id index holds puts only reserved ids in memory, and
        // its image may come without its hashes.
        let ids_stored = k < self.cold.ids_stored;
        let hashes_fit = image.hashes.len() == len || (ids_stored && image.hashes.is_empty());
        // A chunk that is not plain comes without records when its lineage image stands for them.
        if !hashes_fit || image.links.len() != len || (image.plain && records.is_some()) {
            return Err(format!("chunk {k}'s restore image does not fit a chunk of {len}"));
        }
        assert_eq!(self.transfers.len(), first as usize, "chunks are restored in order");
        for (i, pair) in image.links.iter().enumerate() {
            if pair.iter().any(|&link| link != NONE && link & !LINK_DEBITED >= first + i as u32) {
                return Err(format!("chunk {k}'s restore image links transfer {} to a later one", first as usize + i));
            }
        }
        match records {
            None if ids_stored => {
                self.transfer_ids.leave_to_store(len);
                self.digest.settle_transfers_stored(first as usize, len, image.sum);
                self.transfers.push_evicted_chunk();
            }
            None => {
                for (i, &hash) in image.hashes.iter().enumerate() {
                    self.transfer_ids.insert_hashed(hash, first + i as u32, self.cold.kept());
                }
                self.digest.settle_transfers_stored(first as usize, len, image.sum);
                self.transfers.push_evicted_chunk();
            }
            Some((chunk, summed)) => {
                // Hashed here if the reader did not, so the next chunk may be a plain one.
                let sum = summed.unwrap_or_else(|| crate::transfers_digest_sum(&chunk));
                if sum != image.sum || chunk.len() != len {
                    return Err(format!("chunk {k}'s records are not its restore image's"));
                }
                for (i, t) in chunk.iter().enumerate() {
                    if t.id == 0 || t.id == u128::MAX {
                        return Err(format!("transfer id {} is zero or max", t.id));
                    }
                    // A pending hold's id comes back when the chunk is evicted and the hold pinned.
                    if !ids_stored || crate::is_reserved_id(t.id) {
                        self.transfer_ids.insert(t.id, first + i as u32, self.cold.kept());
                    } else {
                        self.transfer_ids.leave_to_store(1);
                    }
                }
                self.digest.settle_transfers_stored(first as usize, len, sum);
                self.transfers.push_chunk(chunk);
            }
        }
        self.transfer_links.extend_from_slice(&image.links);
        Ok(())
    }

    /// Sets each account's newest link (after the stored chunks were restored from images).
    pub(crate) fn set_last_links(&mut self, lasts: &[u32]) {
        assert_eq!(lasts.len(), self.account_meta.len(), "a link per account");
        for (meta, &link) in self.account_meta.iter_mut().zip(lasts) {
            meta.last_transfer = link;
        }
    }
}

/// Each account's newest link below transfer index `end`: what its list holds once only the
/// transfers before `end` are stored. `lasts` is each account's newest link, `links` those of
/// the transfers from `end` on. One pass down those transfers hands each side's account on to
/// the transfer its link names (independent writes), where walking each account's list back
/// would be a dependent read, and a cache miss, per step.
pub(crate) fn last_links_below(lasts: &[u32], end: u32, links: &[[u32; 2]]) -> Vec<u32> {
    let mut below = vec![NONE; lasts.len()];
    // The account whose list goes on at transfer `end + i` on each side.
    let mut owners = vec![[NONE; 2]; links.len()];
    let mut follow = |owners: &mut [[u32; 2]], account: u32, link: u32| {
        if link != NONE && link & !LINK_DEBITED >= end {
            let side = usize::from(link & LINK_DEBITED == 0);
            owners[((link & !LINK_DEBITED) - end) as usize][side] = account;
        } else {
            below[account as usize] = link;
        }
    };
    for (account, &last) in lasts.iter().enumerate() {
        follow(&mut owners, account as u32, last);
    }
    for i in (0..links.len()).rev() {
        for side in 0..2 {
            let account = owners[i][side];
            assert_ne!(account, NONE, "transfer {} is on no account's list on side {side}", end as usize + i);
            follow(&mut owners, account, links[i][side]);
        }
    }
    below
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_round_trips_its_bytes_and_damage_is_named() {
        let image = ChunkImage {
            hashes: vec![1, u64::MAX, 7],
            links: vec![[NONE, 0], [1 | LINK_DEBITED, NONE], [0, 1]],
            sum: u128::MAX - 3,
            plain: true,
        };
        let mut bytes = Vec::new();
        image.encode(&mut bytes);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(ChunkImage::decode(&bytes, 3), Ok(image.clone()));
        // What a restore reads of a chunk whose ids are stored elsewhere: all but the hashes.
        let (skip, len) = ChunkImage::after_hashes(3);
        assert_eq!(ChunkImage::decode_after_hashes(&bytes[skip..skip + len], 3), Ok(ChunkImage { hashes: Vec::new(), ..image }));
        assert!(ChunkImage::decode_after_hashes(&bytes[skip + 8..], 3).is_err(), "a short read");
        assert!(ChunkImage::decode(&bytes, 2).is_err(), "another chunk length");
        let mut flag = bytes.clone();
        flag[3 * 16 + 16] = 2;
        assert!(ChunkImage::decode(&flag, 3).unwrap_err().contains("plain flag"));
        let mut padding = bytes;
        padding[4000] = 1;
        assert!(ChunkImage::decode(&padding, 3).unwrap_err().contains("padding"));
        assert_eq!(image_bytes(1 << crate::CHUNK_BITS), 129 * 4096);
    }

    /// The invariants' check of the accounts' lists catches a link to another account's
    /// transfer, among the transfers in memory.
    #[test]
    fn a_link_to_another_accounts_transfer_is_caught() {
        use crate::test_support::{engine_with_accounts, execute_ok, transfer};
        let mut engine = engine_with_accounts(1..=3);
        execute_ok(&mut engine, 10, &[transfer(7, 1, 2, 1), transfer(8, 2, 3, 1), transfer(9, 1, 3, 1)]);
        engine.check_invariants().expect("invariants");
        assert_eq!(engine.transfer_links[2][0], LINK_DEBITED, "the debit side's previous transfer: 7, debited");
        engine.transfer_links[2][0] = LINK_DEBITED | 1;
        assert!(engine.check_invariants().unwrap_err().contains("another account's transfer"));
    }

    /// The pass agrees with walking each account's list back, at every boundary, over
    /// transfers between random accounts.
    #[test]
    fn last_links_below_agree_with_walking_each_list() {
        let ids: Vec<u128> = (1..=13).collect();
        let mut engine = crate::test_support::engine_with_accounts(ids.iter().copied());
        let mut state = 7u64;
        let commands: Vec<_> = (0..400u128)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let debit = (state >> 33) % 13;
                let credit = (debit + 1 + (state >> 45) % 12) % 13;
                crate::test_support::transfer(1_000 + i, ids[debit as usize], ids[credit as usize], 1)
            })
            .collect();
        crate::test_support::execute_ok(&mut engine, 1, &commands);
        let lasts: Vec<u32> = engine.account_meta.iter().map(|meta| meta.last_transfer).collect();
        for end in [0, 1, 57, 200, 399, 400] {
            let walked: Vec<u32> = lasts
                .iter()
                .map(|&last| {
                    let mut link = last;
                    while link != NONE && link & !LINK_DEBITED >= end {
                        let side = usize::from(link & LINK_DEBITED == 0);
                        link = engine.transfer_links[(link & !LINK_DEBITED) as usize][side];
                    }
                    link
                })
                .collect();
            assert_eq!(last_links_below(&lasts, end, &engine.transfer_links[end as usize..]), walked, "end {end}");
        }
    }
}
