//! Failed transfer ids (decided once: `failed`) in chunks that move to the history store as
//! transfers' do. The id index keeps each one's hash with a tag bit, so only a command naming an
//! id whose hash matches a failed one reads its record: the node prefetches those
//! ([`Engine::prefetch_more`]), a query reads them through. The stored form of a failed id is its
//! snapshot stream form ([`FAILED_SIZE`] bytes).

use super::cold::{held, read_wanted};
use super::{Engine, FailedTransfer, History, IdSlot};
use crate::result::ResultCode;
use std::sync::Arc;

/// Bytes of a stored failed id: the id u128, the timestamp u64, the result code u32, 4 zero bytes.
pub const FAILED_SIZE: usize = 32;

/// Id 0, which matches nothing: what a query gets for a failed id it could not read back.
impl Default for FailedTransfer {
    fn default() -> FailedTransfer {
        FailedTransfer { id: 0, timestamp: 0, code: ResultCode::IdAlreadyFailed }
    }
}

impl FailedTransfer {
    /// The failed id as stored (see [`FAILED_SIZE`]).
    pub fn to_bytes(&self) -> [u8; FAILED_SIZE] {
        let mut out = [0u8; FAILED_SIZE];
        out[..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp.to_le_bytes());
        out[24..28].copy_from_slice(&(self.code as u32).to_le_bytes());
        out
    }

    /// A failed id from its stored bytes; what is wrong with them, if anything.
    pub fn from_bytes(bytes: &[u8; FAILED_SIZE]) -> Result<FailedTransfer, String> {
        let id = u128::from_le_bytes(bytes[..16].try_into().expect("16 bytes"));
        let value = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
        let code = ResultCode::from_u32(value).filter(|code| code.is_decided_once());
        let Some(code) = code else {
            return Err(format!("failed id {id} with result code {value}, which does not decide an id"));
        };
        if bytes[28..] != [0; 4] {
            return Err(format!("failed id {id}: padding is not zero"));
        }
        Ok(FailedTransfer { id, timestamp: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")), code })
    }
}

/// `chunk`'s failed ids as stored, appended to `out`.
pub fn encode_failed_chunk(chunk: &[FailedTransfer], out: &mut Vec<u8>) {
    out.reserve(chunk.len() * FAILED_SIZE);
    chunk.iter().for_each(|f| out.extend_from_slice(&f.to_bytes()));
}

/// The failed ids of stored bytes (whole records), appended to `out`.
pub fn decode_failed(bytes: &[u8], out: &mut Vec<FailedTransfer>) -> Result<(), String> {
    for b in bytes.chunks_exact(FAILED_SIZE) {
        out.push(FailedTransfer::from_bytes(b.try_into().expect("a failed id"))?);
    }
    Ok(())
}

impl Engine {
    /// Failed id `i` while applying: in memory or prefetched; anything else is a prefetch the
    /// node missed, a broken invariant.
    pub(crate) fn failed_stored(&self, i: u32) -> FailedTransfer {
        held(&self.failed, &self.cold.prefetched_failed, i)
            .unwrap_or_else(|| panic!("failed id index {i} is evicted and was not prefetched"))
    }

    /// Failed id `i` for a query: from memory or the history. A failed read answers id 0 (which
    /// matches nothing) and is kept for [`Engine::take_history_failure`].
    pub(crate) fn failed_through(&self, i: u32) -> FailedTransfer {
        let mut read = Vec::with_capacity(1);
        self.gather_through(
            &[i],
            |i| held(&self.failed, &self.cold.prefetched_failed, i),
            |cold, out| self.history().read_failed(cold, out),
            &mut read,
        );
        read[0]
    }

    /// Every remembered failure, oldest first, read through where evicted (O(failed ids), a
    /// chunk at a time).
    pub fn failed_transfers(&self) -> Vec<FailedTransfer> {
        let mut all = Vec::with_capacity(self.failed.len());
        self.for_each_failed(|f| all.push(*f));
        all
    }

    /// Full chunks of failed ids (the open chunk not counted): those the node may store.
    pub fn sealed_failed_chunks(&self) -> usize {
        self.failed.sealed_chunks()
    }

    /// Full chunk `k`'s failed ids while in memory.
    pub fn failed_chunk(&self, k: usize) -> Option<&Arc<Vec<FailedTransfer>>> {
        self.failed.sealed_chunk(k)
    }

    /// Chunks of failed ids evicted so far (always the oldest).
    pub fn evicted_failed_chunks(&self) -> usize {
        self.failed.evicted_chunks()
    }

    /// Failed ids per chunk (as many as transfers per chunk).
    pub fn failed_chunk_len(&self) -> usize {
        self.failed.chunk_len()
    }

    /// Evicts every full chunk of failed ids below `end` still held, never the newest full one:
    /// what the node does once they are stored durably. Between batches only.
    pub fn evict_failed_chunks_below(&mut self, end: usize) {
        self.evict_table_below(end, |engine| &mut engine.failed);
    }

    /// Evicted failed ids the ids `ids` may name (their hash matches), neither in memory nor
    /// prefetched, appended to `wanted` (each once).
    pub(crate) fn failed_wanted(&self, ids: impl Iterator<Item = u128>, wanted: &mut Vec<u32>) {
        let evicted_end = (self.failed.evicted_chunks() * self.failed.chunk_len()) as u32;
        if evicted_end == 0 {
            return;
        }
        for id in ids.filter(|&id| id != 0 && id != u128::MAX) {
            self.transfer_ids.candidates(id, |value| {
                if let IdSlot::Failed(i) = IdSlot::of(value) {
                    if i < evicted_end && !self.cold.prefetched_failed.contains_key(&i) && !wanted.contains(&i) {
                        wanted.push(i);
                    }
                }
            });
        }
    }

    /// Reads the evicted failed ids `commands` may name through `history` and hands them in.
    pub(crate) fn prefetch_failed(&mut self, history: &dyn History, commands: &[crate::command::Command]) -> Result<usize, String> {
        let mut wanted = Vec::new();
        self.failed_wanted(commands.iter().flat_map(|c| c.transfer_ids()), &mut wanted);
        if wanted.is_empty() {
            return Ok(0);
        }
        let read = read_wanted(&wanted, |wanted, out| history.read_failed(wanted, out))?;
        self.cold.prefetched_failed.extend(wanted.iter().copied().zip(read));
        Ok(wanted.len())
    }

    /// Calls `f` with every failed id, oldest first, read through to the history where evicted
    /// (checks and audits). A failed read is kept for [`Engine::take_history_failure`] and its
    /// chunk skipped.
    pub(crate) fn for_each_failed(&self, f: impl FnMut(&FailedTransfer)) {
        self.for_each_through(&self.failed, |history, k, read| history.read_failed_chunk(k, read), f);
    }
}
