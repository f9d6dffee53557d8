//! An append-only table in fixed chunks of [`CHUNK_LEN`] records (fewer in tests). A full chunk never changes
//! again, so a snapshot's copy shares it (an `Arc`) instead of copying it: a server that keeps a
//! snapshot copy current pays a pointer per 32 768 transfers, not 128 bytes per transfer. Only
//! the open (last) chunk is copied when a snapshot begins; it is written copy-on-write after.
//! Records never move once pushed, so indexes stay valid, and reading one is a shift, a mask and
//! one more (cached) pointer. A full chunk the owner has stored elsewhere can be *evicted*: its
//! records leave memory, [`Chunked::get`] answers `None` for them, and the owner reads them from
//! where it stored them.

use std::sync::Arc;

/// Records per chunk (a power of two): 4 MiB of 128-byte transfers.
pub const CHUNK_LEN: usize = 1 << CHUNK_BITS;
/// log2 of [`CHUNK_LEN`].
pub const CHUNK_BITS: u32 = 15;
/// Evicted chunks kept for reuse at most (beyond them, an evicted chunk's memory is freed).
const SPARE_RECYCLED_MAX: usize = 2;

/// An append-only sequence of records in shared chunks (see the module).
#[derive(Debug)]
pub struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
    /// Empty chunks allocated (and touched) ahead, taken by the pushes that open a chunk.
    spare: Vec<Vec<T>>,
    /// Evicted chunks another owner (a snapshot's copy, the history writer) still shared when
    /// they were evicted: reused as soon as they are this table's alone, so a server that
    /// evicts as fast as it fills allocates (and faults in) no new chunk.
    retired: Vec<Arc<Vec<T>>>,
    /// log2 of the records per chunk: [`CHUNK_BITS`] but in tests that want many chunks.
    bits: u32,
}

/// A clone shares the full chunks and copies the open one (as [`Chunked::snapshot`]).
impl<T: Clone> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        self.snapshot()
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked::with_chunk_bits(CHUNK_BITS)
    }
}

impl<T> Chunked<T> {
    /// An empty table of chunks of `2^bits` records (1 to [`CHUNK_BITS`]; fewer than the
    /// default make tests reach many chunks with few records).
    pub fn with_chunk_bits(bits: u32) -> Self {
        assert!((1..=CHUNK_BITS).contains(&bits), "chunk bits {bits} outside 1..={CHUNK_BITS}");
        Chunked { chunks: Vec::new(), len: 0, spare: Vec::new(), retired: Vec::new(), bits }
    }

    /// Records per chunk.
    #[inline]
    pub fn chunk_len(&self) -> usize {
        1 << self.bits
    }
}

impl<T: Clone> Chunked<T> {
    /// Records held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Record `index`, if held in memory (`None` past the end and in an evicted chunk).
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index >> self.bits)?.get(index & (self.chunk_len() - 1))
    }

    /// Whether record `index` was pushed and its chunk evicted.
    pub fn is_evicted(&self, index: usize) -> bool {
        index < self.len && self.chunks[index >> self.bits].is_empty()
    }

    /// Full chunks (the open one, if any, is not counted).
    pub fn sealed_chunks(&self) -> usize {
        self.len >> self.bits
    }

    /// Chunk `k`'s records as held: empty if evicted, fewer than the chunk length if open.
    pub fn chunk(&self, k: usize) -> &[T] {
        self.chunks.get(k).map_or(&[], |chunk| chunk.as_slice())
    }

    /// Chunks, the open one counted.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Chunk `k`'s records, if it is full and held in memory.
    pub fn sealed_chunk(&self, k: usize) -> Option<&Arc<Vec<T>>> {
        self.sealed().get(k).filter(|chunk| !chunk.is_empty())
    }

    /// Drops full chunk `k` from memory (its records are stored elsewhere). Never the newest
    /// full chunk: a rolled-back chain may reopen that one.
    pub fn evict(&mut self, k: usize) {
        assert!(k + 1 < self.sealed_chunks(), "chunk {k} is not an older full chunk of {}", self.sealed_chunks());
        if self.chunks[k].is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.chunks[k], Arc::new(Vec::new()));
        // Its memory takes a later chunk's records: now, or once no one else shares it.
        if self.spare.len() + self.retired.len() < SPARE_RECYCLED_MAX {
            self.retired.push(chunk);
        }
    }

    /// Chunks evicted so far, oldest first.
    pub fn evicted_chunks(&self) -> usize {
        self.sealed().iter().take_while(|chunk| chunk.is_empty()).count()
    }

    /// The last record.
    pub fn last(&self) -> Option<&T> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// Appends a record.
    #[inline]
    pub fn push(&mut self, record: T) {
        if self.len & (self.chunk_len() - 1) == 0 {
            let chunk = self.take_spare();
            self.chunks.push(Arc::new(chunk));
        }
        self.open_chunk().push(record);
        self.len += 1;
    }

    /// Appends a whole chunk of records at a chunk boundary (both asserted): a restore's chunk
    /// read back from the store, kept as it was read instead of copied record by record.
    pub fn push_chunk(&mut self, chunk: Vec<T>) {
        assert!(self.len & (self.chunk_len() - 1) == 0 && self.chunks.len() == self.len >> self.bits, "at a chunk boundary");
        assert_eq!(chunk.len(), self.chunk_len(), "a whole chunk");
        self.chunks.push(Arc::new(chunk));
        self.len += self.chunk_len();
    }

    /// Appends a whole chunk of records at a chunk boundary as evicted (its records stored
    /// elsewhere and not read into memory: a restore from a chunk's image).
    pub fn push_evicted_chunk(&mut self) {
        assert!(self.len & (self.chunk_len() - 1) == 0 && self.chunks.len() == self.len >> self.bits, "at a chunk boundary");
        self.chunks.push(Arc::new(Vec::new()));
        self.len += self.chunk_len();
    }

    /// An empty vector with room for a chunk: a spare one or an evicted one no one shares any
    /// more, else a new one.
    pub fn take_spare(&mut self) -> Vec<T> {
        self.spare.pop().or_else(|| self.unshared_retired()).unwrap_or_else(|| Vec::with_capacity(self.chunk_len()))
    }

    /// An evicted chunk no one else shares any more, emptied.
    fn unshared_retired(&mut self) -> Option<Vec<T>> {
        let at = self.retired.iter().position(|chunk| Arc::strong_count(chunk) == 1)?;
        let mut chunk = Arc::try_unwrap(self.retired.swap_remove(at)).ok()?;
        chunk.clear();
        Some(chunk)
    }

    /// Removes the last record (a rolled-back chain's).
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let record = self.open_chunk().pop();
        self.len -= 1;
        if self.len & (self.chunk_len() - 1) == 0 {
            // Emptied by a rollback at a chunk's start: kept for the next push, not freed.
            if let Some(Ok(chunk)) = self.chunks.pop().map(Arc::try_unwrap) {
                self.spare.push(chunk);
            }
        }
        record
    }

    /// The last chunk, to write: copied first if a snapshot's copy shares it.
    fn open_chunk(&mut self) -> &mut Vec<T> {
        let chunk_len = self.chunk_len();
        let last = self.chunks.last_mut().expect("a chunk is open");
        if Arc::get_mut(last).is_none() {
            let mut own = Vec::with_capacity(chunk_len);
            own.extend_from_slice(last);
            *last = Arc::new(own);
        }
        Arc::get_mut(last).expect("the open chunk is this table's own")
    }

    /// Every record, oldest first; the table must hold them all in memory (asserted).
    pub fn iter(&self) -> Iter<'_, T> {
        assert!(self.sealed().iter().all(|chunk| !chunk.is_empty()), "a chunk of the table was evicted");
        let chunk: fn(&Arc<Vec<T>>) -> &Vec<T> = |chunk| chunk;
        self.chunks.iter().flat_map(chunk)
    }

    /// Every record in one vector (tests and tools, not the request path).
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }

    /// The records from `start` on, oldest first; they must be in memory (asserted).
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> + '_ {
        let first = start >> self.bits;
        assert!(self.chunks.iter().skip(first).take(self.sealed_chunks().saturating_sub(first)).all(|c| !c.is_empty()), "evicted");
        let skip = start & (self.chunk_len() - 1);
        self.chunks.iter().skip(first).enumerate().flat_map(move |(k, chunk)| chunk[if k == 0 { skip } else { 0 }..].iter())
    }

    /// A copy for a snapshot: the full chunks shared, the open chunk copied (so the table's next
    /// push does not copy it back).
    pub fn snapshot(&self) -> Chunked<T> {
        let mut chunks: Vec<Arc<Vec<T>>> = self.sealed().to_vec();
        if self.len & (self.chunk_len() - 1) != 0 {
            let open = self.chunks.last().expect("an open chunk");
            let mut copy = Vec::with_capacity(self.chunk_len());
            copy.extend_from_slice(open);
            chunks.push(Arc::new(copy));
        }
        Chunked { chunks, len: self.len, spare: Vec::new(), retired: Vec::new(), bits: self.bits }
    }

    /// Brings `copy` up to this table's full chunks (sharing them); a record of the open chunk
    /// it held is dropped (the next [`Chunked::snapshot`] copies it again).
    pub fn share_sealed_into(&self, copy: &mut Chunked<T>) {
        let sealed = self.sealed();
        if copy.bits != self.bits {
            *copy = Chunked::with_chunk_bits(self.bits);
        }
        copy.chunks.truncate(copy.len >> self.bits);
        let shared_prefix = copy.chunks.len() <= sealed.len() && copy.chunks.iter().zip(sealed).all(|(a, b)| Arc::ptr_eq(a, b));
        if !shared_prefix {
            copy.chunks.clear();
        }
        let from = copy.chunks.len();
        copy.chunks.extend(sealed[from..].iter().cloned());
        copy.len = copy.chunks.len() * self.chunk_len();
    }

    fn sealed(&self) -> &[Arc<Vec<T>>] {
        &self.chunks[..self.len >> self.bits]
    }

    /// Room for `additional` more records' chunk pointers (the chunks come as they fill).
    pub fn reserve(&mut self, additional: usize) {
        self.chunks.reserve((self.len + additional).div_ceil(self.chunk_len()).saturating_sub(self.chunks.len()));
    }

    /// As [`Chunked::reserve`], and the chunks for them allocated and every page touched now
    /// (with `placeholder`), so pushing them takes no page fault.
    pub fn preallocate(&mut self, additional: usize, placeholder: T) {
        self.reserve(additional);
        let free = self.chunks.len() * self.chunk_len() - self.len;
        let chunks = additional.saturating_sub(free).div_ceil(self.chunk_len()).saturating_sub(self.spare.len());
        for _ in 0..chunks {
            let mut chunk = Vec::with_capacity(self.chunk_len());
            chunk.resize(self.chunk_len(), placeholder.clone());
            chunk.clear();
            self.spare.push(chunk);
        }
    }

    /// Records the table has room for without allocating a chunk.
    pub fn capacity(&self) -> usize {
        (self.chunks.len() + self.spare.len()) * self.chunk_len()
    }
}

/// The iterator of [`Chunked::iter`].
pub type Iter<'a, T> = core::iter::FlatMap<core::slice::Iter<'a, Arc<Vec<T>>>, &'a Vec<T>, fn(&Arc<Vec<T>>) -> &Vec<T>>;

impl<'a, T: Clone> IntoIterator for &'a Chunked<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: Clone> core::ops::Index<usize> for Chunked<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(record) => record,
            None => panic!("record {index} of {} is past the end or evicted", self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Chunked, CHUNK_LEN};

    /// Pushes and pops across chunk ends; a snapshot shares the full chunks, copies the open one,
    /// and keeps its records while the table goes on; catching up shares only full chunks.
    #[test]
    fn chunks_are_shared_with_snapshots_and_never_change_under_them() {
        let mut table: Chunked<u64> = Chunked::default();
        let n = 2 * CHUNK_LEN + 10;
        (0..n as u64).for_each(|v| table.push(v));
        assert_eq!((table.len(), table[CHUNK_LEN], table.last()), (n, CHUNK_LEN as u64, Some(&(n as u64 - 1))));
        let snapshot = table.snapshot();
        for _ in 0..11 {
            table.pop();
        }
        table.push(7);
        assert_eq!(table.len(), n - 10);
        assert_eq!(table[n - 11], 7);
        assert_eq!(snapshot.len(), n);
        assert!(snapshot.iter().copied().eq(0..n as u64), "the snapshot kept what it saw");
        assert!(table.iter_from(CHUNK_LEN - 2).copied().take(3).eq([CHUNK_LEN as u64 - 2, CHUNK_LEN as u64 - 1, CHUNK_LEN as u64]));
        let mut copy = Chunked::default();
        table.share_sealed_into(&mut copy);
        assert_eq!(copy.len(), 2 * CHUNK_LEN);
        table.pop();
        table.pop();
        assert_eq!(table.len(), 2 * CHUNK_LEN - 2, "a pop across a chunk end reopens the full one, copy-on-write");
        assert_eq!(copy[2 * CHUNK_LEN - 1], 7, "the copy still holds what the table popped");
        table.share_sealed_into(&mut copy);
        assert_eq!(copy.len(), CHUNK_LEN, "a copy that diverged keeps only what it shares");
        let mut spare: Chunked<u64> = Chunked::default();
        spare.preallocate(CHUNK_LEN + 1, 0);
        assert_eq!(spare.capacity(), 2 * CHUNK_LEN);
    }

    /// An evicted chunk answers `None`; the newest full chunk and the open one stay.
    #[test]
    fn evicted_chunks_leave_memory_and_answer_none() {
        let mut table: Chunked<u64> = Chunked::default();
        (0..3 * CHUNK_LEN as u64 + 5).for_each(|v| table.push(v));
        let copy = table.snapshot();
        table.evict(0);
        table.evict(1);
        assert_eq!((table.get(5), table.get(CHUNK_LEN + 5), table.get(2 * CHUNK_LEN + 5)), (None, None, Some(&(2 * CHUNK_LEN as u64 + 5))));
        assert!(table.is_evicted(CHUNK_LEN) && !table.is_evicted(2 * CHUNK_LEN) && !table.is_evicted(3 * CHUNK_LEN + 5));
        assert_eq!((table.evicted_chunks(), table.sealed_chunk(1).is_none(), table.sealed_chunk(2).is_some()), (2, true, true));
        assert_eq!(copy.get(5), Some(&5), "a snapshot that shared the chunk keeps it");
        assert!(table.iter_from(2 * CHUNK_LEN).copied().eq(2 * CHUNK_LEN as u64..3 * CHUNK_LEN as u64 + 5));
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.clone().evict(2))).is_err(), "the newest full chunk stays");
    }
}
