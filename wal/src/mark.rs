//! The durable mark: how far the log was durable, recorded outside the entries, so recovery
//! can tell a torn write of an unacknowledged group from damage to an acknowledged one.
//!
//! Every entry's `synced_through` vouches for the groups before it, but nothing vouches for the
//! last group: after its sync returns and it is acknowledged, a flipped byte in it looked like a
//! torn write and was cut. So after every sync, before anything is acknowledged, the log writes
//! the last durable sequence number and its chain hash to one slot of a small ring file and
//! syncs that file (`Wal::sync_finish`). A torn write of a slot damages only that slot; the
//! others hold older marks. Recovery refuses to drop any entry at or below the newest valid mark.
//!
//! File `durable.mark`: [`MARK_SLOTS`] slots of [`MARK_SLOT_BYTES`], slot `generation % MARK_SLOTS`
//! written each time. A slot:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BURSMARK` |
//! | 8 | 8 | generation: rises by one with every mark written |
//! | 16 | 8 | seq: entries 1 to seq were durable when it was written |
//! | 24 | 32 | chain hash of entry seq |
//! | 56 | 4 | CRC32C of bytes 0..56 |
//! | 60 | 4036 | zero |

use crate::format::{crc32c, Hash};

/// The mark file's name in the log directory.
pub const MARK_FILE_NAME: &str = "durable.mark";
/// Slots in the ring: a torn write of one leaves seven older marks.
pub const MARK_SLOTS: u64 = 8;
/// Bytes per slot: one 4 KiB block, so no write of one slot touches a sector of another.
pub const MARK_SLOT_BYTES: usize = crate::block::BLOCK_BYTES;
/// Bytes of the whole file.
pub const MARK_FILE_BYTES: u64 = MARK_SLOTS * MARK_SLOT_BYTES as u64;
const MAGIC: &[u8; 8] = b"BURSMARK";
const CHECKED_BYTES: usize = 56;

/// One mark: entries through `seq` (chain hash `hash`) were durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Rises by one with every mark written; the newest valid slot wins.
    pub generation: u64,
    /// The last durable entry's sequence number.
    pub seq: u64,
    /// That entry's chain hash.
    pub hash: Hash,
}

impl Mark {
    /// The slot this mark is written to.
    pub fn slot_offset(&self) -> u64 {
        (self.generation % MARK_SLOTS) * MARK_SLOT_BYTES as u64
    }

    /// The slot's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut slot = vec![0u8; MARK_SLOT_BYTES];
        slot[..8].copy_from_slice(MAGIC);
        slot[8..16].copy_from_slice(&self.generation.to_le_bytes());
        slot[16..24].copy_from_slice(&self.seq.to_le_bytes());
        slot[24..56].copy_from_slice(&self.hash);
        let crc = crc32c(&[&slot[..CHECKED_BYTES]]);
        slot[56..60].copy_from_slice(&crc.to_le_bytes());
        slot
    }

    /// A slot's mark if its magic and checksum hold.
    fn decode(slot: &[u8]) -> Option<Mark> {
        if slot.len() < CHECKED_BYTES + 4 || &slot[..8] != MAGIC {
            return None;
        }
        let stored = u32::from_le_bytes(slot[56..60].try_into().expect("4 bytes"));
        if stored != crc32c(&[&slot[..CHECKED_BYTES]]) {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().expect("8 bytes"));
        Some(Mark { generation: u64_at(8), seq: u64_at(16), hash: slot[24..56].try_into().expect("32 bytes") })
    }
}

/// The newest valid mark in the file's bytes (None: no slot holds one).
pub fn newest(file: &[u8]) -> Option<Mark> {
    file.chunks(MARK_SLOT_BYTES).filter_map(Mark::decode).max_by_key(|mark| mark.generation)
}

/// Whether every slot holds what an undamaged ring under `newest` holds: slot `s` the mark of
/// the newest generation up to `newest.generation` that falls in it, or zeros while no such
/// generation was written. Generations rise by one per mark written, across restarts too, so
/// anything else is damage: a torn or flipped slot, or one zeroed at rest. (The newest slot
/// zeroed before the ring first wraps looks like one not yet written.)
pub fn ring_whole(file: &[u8], newest: &Mark) -> bool {
    (0..MARK_SLOTS).all(|slot| {
        let at = slot as usize * MARK_SLOT_BYTES;
        let Some(bytes) = file.get(at..at + MARK_SLOT_BYTES) else { return false };
        let expected = (newest.generation >= slot).then(|| newest.generation - (newest.generation - slot) % MARK_SLOTS);
        match (Mark::decode(bytes), expected) {
            (Some(mark), Some(generation)) => mark.generation == generation,
            (None, None) => bytes.iter().all(|b| *b == 0),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_damaged_slot_is_skipped() {
        let mut file = vec![0u8; MARK_FILE_BYTES as usize];
        assert_eq!(newest(&file), None);
        for generation in 0..11u64 {
            let mark = Mark { generation, seq: 100 + generation, hash: [generation as u8; 32] };
            let at = mark.slot_offset() as usize;
            file[at..at + MARK_SLOT_BYTES].copy_from_slice(&mark.encode());
        }
        assert_eq!(newest(&file).map(|m| (m.generation, m.seq)), Some((10, 110)));
        // A torn write of the newest slot (generation 10 sits in slot 2): the one before wins.
        file[2 * MARK_SLOT_BYTES + 20] ^= 1;
        assert_eq!(newest(&file).map(|m| (m.generation, m.seq, m.hash)), Some((9, 109, [9; 32])));
        assert_eq!(newest(&file[..40]), None, "a slot cut short is no mark");
    }

    /// A file with marks of generations `0..=last` written in turn.
    fn ring(last: u64) -> Vec<u8> {
        let mut file = vec![0u8; MARK_FILE_BYTES as usize];
        for generation in 0..=last {
            let mark = Mark { generation, seq: 100 + generation, hash: [generation as u8; 32] };
            let at = mark.slot_offset() as usize;
            file[at..at + MARK_SLOT_BYTES].copy_from_slice(&mark.encode());
        }
        file
    }

    #[test]
    fn a_ring_is_whole_until_a_written_slot_is_damaged() {
        for last in [0, 3, 7, 8, 20] {
            let file = ring(last);
            let newest = newest(&file).expect("a mark");
            assert!(ring_whole(&file, &newest), "generations 0..={last}");
            for slot in 0..MARK_SLOTS as usize {
                let written = (slot as u64) <= last;
                let mut flipped = file.clone();
                flipped[slot * MARK_SLOT_BYTES + 20] ^= 1;
                let mut zeroed = file.clone();
                zeroed[slot * MARK_SLOT_BYTES..(slot + 1) * MARK_SLOT_BYTES].fill(0);
                if let Some(after) = super::newest(&flipped) {
                    assert!(!ring_whole(&flipped, &after), "generations 0..={last}, slot {slot} flipped");
                }
                let Some(after) = super::newest(&zeroed) else { continue };
                let unseen = !written || (last < MARK_SLOTS && slot as u64 == last);
                assert_eq!(ring_whole(&zeroed, &after), unseen, "generations 0..={last}, slot {slot} zeroed");
            }
        }
        // A slot holding an older generation than the ring's turn puts there: a stale copy.
        let mut stale = ring(20);
        let old = Mark { generation: 9, seq: 109, hash: [9; 32] };
        stale[old.slot_offset() as usize..][..MARK_SLOT_BYTES].copy_from_slice(&old.encode());
        assert!(!ring_whole(&stale, &newest(&stale).expect("a mark")));
    }
}
