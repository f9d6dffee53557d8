//! The log's write buffer: a `Vec<u8>` whose contents start on a 4 KiB boundary in memory, so
//! the storage can hand them to an `O_DIRECT` write without copying them first.

use std::sync::Arc;

/// Bytes of the blocks an `O_DIRECT` write covers whole: its offset in the file, its length and
/// its buffer's address are all multiples of this.
pub const BLOCK_BYTES: usize = 4096;

/// A growable byte buffer whose contents (`bytes()`) start at a `BLOCK_BYTES`-aligned address.
///
/// It is a `Vec<u8>` with `lead` filler bytes in front: callers that fill a `Vec` (the log's
/// `append_with`) can still do so through [`BlockBuffer::vec`], and [`BlockBuffer::realign`]
/// restores the alignment if their growth moved the allocation (a copy, rare: the buffer keeps
/// its capacity between groups). The vector sits in an `Arc` so that the storage's sync thread
/// can write from it ([`BlockBuffer::share`]) while the log's thread hashes it; changing it while
/// it is shared is a bug, and panics.
#[derive(Debug)]
pub struct BlockBuffer {
    vec: Arc<Vec<u8>>,
    lead: usize,
}

/// Part of a [`BlockBuffer`]'s contents, shared read-only with the storage (a write in flight)
/// until dropped: the buffer refuses changes meanwhile.
#[derive(Clone, Debug)]
pub struct SharedBytes {
    vec: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.range.clone()]
    }
}

impl BlockBuffer {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> BlockBuffer {
        let mut buffer = BlockBuffer { vec: Arc::new(Vec::with_capacity(capacity + BLOCK_BYTES)), lead: 0 };
        buffer.realign();
        buffer
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        &self.vec[self.lead..]
    }

    /// Length of the contents.
    pub fn len(&self) -> usize {
        self.vec.len() - self.lead
    }

    /// Whether the contents are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying vector and where the contents start in it, for code that appends to a
    /// `Vec`; call [`BlockBuffer::realign`] after growing it.
    pub fn vec(&mut self) -> (&mut Vec<u8>, usize) {
        (Arc::get_mut(&mut self.vec).expect("a block buffer is not changed while it is shared"), self.lead)
    }

    /// Bytes `range` of the contents, shared read-only (for a write in flight) until dropped.
    pub fn share(&self, range: std::ops::Range<usize>) -> SharedBytes {
        assert!(range.end <= self.len(), "sharing {range:?} of {} bytes", self.len());
        SharedBytes { vec: Arc::clone(&self.vec), range: self.lead + range.start..self.lead + range.end }
    }

    /// Appends `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.vec().0.extend_from_slice(bytes);
        self.realign();
    }

    /// Sets the contents' length, filling with zeros when it grows.
    pub fn resize(&mut self, len: usize) {
        let lead = self.lead;
        self.vec().0.resize(lead + len, 0);
        self.realign();
    }

    /// Cuts the contents to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        let lead = self.lead;
        self.vec().0.truncate(lead + len);
    }

    /// Drops the first `n` bytes of the contents (moving the rest to the front).
    pub fn drop_front(&mut self, n: usize) {
        assert!(n <= self.len(), "dropping {n} bytes of {}", self.len());
        let lead = self.lead;
        self.vec().0.drain(lead..lead + n);
    }

    /// Moves the contents so they start at an aligned address again, if a reallocation moved them.
    pub fn realign(&mut self) {
        let lead = self.lead;
        let vec = self.vec().0;
        let mut lead_now = lead;
        loop {
            let want = vec.as_ptr().align_offset(BLOCK_BYTES);
            assert!(want < BLOCK_BYTES, "a byte pointer can always be aligned");
            if want == lead_now {
                break;
            }
            if want < lead_now {
                vec.drain(want..lead_now);
            } else if vec.capacity() - vec.len() >= want - lead_now {
                // Fits without reallocating, so the address, and with it `want`, stays.
                vec.splice(lead_now..lead_now, std::iter::repeat_n(0, want - lead_now));
            } else {
                vec.reserve(BLOCK_BYTES);
                continue;
            }
            lead_now = want;
        }
        self.lead = lead_now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(buffer: &BlockBuffer) -> bool {
        (buffer.bytes().as_ptr() as usize).is_multiple_of(BLOCK_BYTES)
    }

    /// Growth far past the capacity (reallocations), drops from the front and truncation keep
    /// the contents intact and aligned.
    #[test]
    fn contents_stay_aligned_and_intact_through_growth() {
        let mut buffer = BlockBuffer::with_capacity(10);
        let mut model = Vec::new();
        assert!(aligned(&buffer) && buffer.is_empty());
        for round in 0..200usize {
            let piece: Vec<u8> = (0..round * 37 % 5000).map(|i| (i + round) as u8).collect();
            if round % 3 == 0 {
                let (vec, _) = buffer.vec();
                vec.extend_from_slice(&piece);
                buffer.realign();
            } else {
                buffer.extend_from_slice(&piece);
            }
            model.extend_from_slice(&piece);
            if round % 7 == 0 {
                let n = model.len() / 3;
                buffer.drop_front(n);
                model.drain(..n);
            }
            if round % 11 == 0 {
                buffer.truncate(model.len() / 2);
                model.truncate(model.len() / 2);
            }
            assert!(aligned(&buffer), "round {round}");
            assert_eq!(buffer.bytes(), &model[..], "round {round}");
        }
        buffer.resize(model.len() + 100);
        assert!(buffer.bytes()[model.len()..].iter().all(|b| *b == 0));
        assert!(aligned(&buffer));
        let shared = buffer.share(3..buffer.len());
        assert_eq!(shared.as_ref(), &buffer.bytes()[3..]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| buffer.truncate(0)));
        assert!(result.is_err(), "a shared buffer refuses changes");
        drop(shared);
        buffer.truncate(0);
        assert!(buffer.is_empty());
    }
}
