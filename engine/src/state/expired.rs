//! Expired holds (an index and a time each, in the order they expired) in chunks that move to
//! the history store as failed ids do. A finished hold's entry in `finished` names its place
//! here, so only a command naming an expired hold (a re-sent hold, a late capture) reads one:
//! the node prefetches those ([`Engine::prefetch_more`]), a query reads them through. The stored
//! form is the snapshot stream's ([`EXPIRED_SIZE`] bytes).

use super::cold::{held, read_wanted};
use super::{Engine, ExpiredHold, History, FAILED_TAG};
use std::sync::Arc;

/// Bytes of a stored expired hold: the hold's transfer index u32, 4 zero bytes, the expiry's
/// timestamp u64.
pub const EXPIRED_SIZE: usize = 16;

impl ExpiredHold {
    /// The expired hold as stored (see [`EXPIRED_SIZE`]).
    pub fn to_bytes(&self) -> [u8; EXPIRED_SIZE] {
        let mut out = [0u8; EXPIRED_SIZE];
        out[..4].copy_from_slice(&self.index.to_le_bytes());
        out[8..].copy_from_slice(&self.resolved_at.to_le_bytes());
        out
    }

    /// An expired hold from its stored bytes; `None` if its padding is not zero.
    pub fn from_bytes(bytes: &[u8; EXPIRED_SIZE]) -> Option<ExpiredHold> {
        let index = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let resolved_at = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
        (bytes[4..8] == [0; 4]).then_some(ExpiredHold { index, resolved_at })
    }
}

/// `chunk`'s expired holds as stored, appended to `out`.
pub fn encode_expired_chunk(chunk: &[ExpiredHold], out: &mut Vec<u8>) {
    out.reserve(chunk.len() * EXPIRED_SIZE);
    chunk.iter().for_each(|e| out.extend_from_slice(&e.to_bytes()));
}

/// The expired holds of stored bytes (whole records), appended to `out`.
pub fn decode_expired(bytes: &[u8], out: &mut Vec<ExpiredHold>) -> Result<(), String> {
    for (i, b) in bytes.chunks_exact(EXPIRED_SIZE).enumerate() {
        out.push(
            ExpiredHold::from_bytes(b.try_into().expect("an expired hold"))
                .ok_or_else(|| format!("expired hold {i} of the bytes read has padding that is not zero"))?,
        );
    }
    Ok(())
}

impl Engine {
    /// Expired hold `k` while applying: in memory or prefetched; anything else is a prefetch the
    /// node missed, a broken invariant.
    pub(crate) fn expired_stored(&self, k: u32) -> ExpiredHold {
        held(&self.expired, &self.cold.prefetched_expired, k)
            .unwrap_or_else(|| panic!("expired hold {k} is evicted and was not prefetched"))
    }

    /// Expired hold `k` for a query: from memory or the history. A failed read answers a zeroed
    /// entry and is kept for [`Engine::take_history_failure`].
    pub(crate) fn expired_through(&self, k: u32) -> ExpiredHold {
        let mut read = Vec::with_capacity(1);
        self.gather_through(
            &[k],
            |k| held(&self.expired, &self.cold.prefetched_expired, k),
            |cold, out| self.history().read_expired(cold, out),
            &mut read,
        );
        read[0]
    }

    /// Every expired hold, in the order they expired, read through where evicted.
    pub(crate) fn expired_holds(&self) -> Vec<ExpiredHold> {
        let mut all = Vec::with_capacity(self.expired.len());
        self.for_each_through(&self.expired, |history, k, read| history.read_expired_chunk(k, read), |e| all.push(*e));
        all
    }

    /// Full chunks of expired holds (the open chunk not counted): those the node may store.
    pub fn sealed_expired_chunks(&self) -> usize {
        self.expired.sealed_chunks()
    }

    /// Full chunk `k`'s expired holds while in memory.
    pub fn expired_chunk(&self, k: usize) -> Option<&Arc<Vec<ExpiredHold>>> {
        self.expired.sealed_chunk(k)
    }

    /// Chunks of expired holds evicted so far (always the oldest).
    pub fn evicted_expired_chunks(&self) -> usize {
        self.expired.evicted_chunks()
    }

    /// Evicts every full chunk of expired holds below `end` still held, never the newest full
    /// one: what the node does once they are stored durably. Between batches only.
    pub fn evict_expired_chunks_below(&mut self, end: usize) {
        self.evict_table_below(end, |engine| &mut engine.expired);
    }

    /// Reads the evicted expired holds `commands` may name (the holds their ids' hashes name,
    /// finished by an expiry) through `history` and hands them in.
    pub(crate) fn prefetch_expired(&mut self, history: &dyn History, commands: &[crate::command::Command]) -> Result<usize, String> {
        let evicted_end = (self.expired.evicted_chunks() * self.expired.chunk_len()) as u32;
        if evicted_end == 0 {
            return Ok(0);
        }
        let mut wanted = Vec::new();
        for id in commands.iter().flat_map(|c| c.transfer_ids()).filter(|&id| id != 0 && id != u128::MAX) {
            self.stored_candidates(id, |index| {
                let k = self.finished_by(index).filter(|by| by & FAILED_TAG != 0).map(|by| by & !FAILED_TAG);
                if let Some(k) = k.filter(|&k| k < evicted_end && !self.cold.prefetched_expired.contains_key(&k) && !wanted.contains(&k)) {
                    wanted.push(k);
                }
            });
        }
        if wanted.is_empty() {
            return Ok(0);
        }
        let read = read_wanted(&wanted, |wanted, out| history.read_expired(wanted, out))?;
        self.cold.prefetched_expired.extend(wanted.iter().copied().zip(read));
        Ok(wanted.len())
    }
}
