//! A bounded pool of vectors handed between threads for reuse: fresh 1 MiB allocations cost a
//! page fault per 4 KiB (about a third of all CPU under `bursar bench` before the pools), and
//! the bound keeps the memory the pool holds fixed whatever the load.

use crossbeam_channel::{bounded, Receiver, Sender};

/// Empty vectors with their capacity kept, at most `max` of them.
#[derive(Debug)]
pub struct Pool<T> {
    give: Sender<Vec<T>>,
    take: Receiver<Vec<T>>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool { give: self.give.clone(), take: self.take.clone() }
    }
}

impl<T> Pool<T> {
    /// A pool that keeps at most `max` vectors.
    pub fn new(max: usize) -> Pool<T> {
        let (give, take) = bounded(max);
        Pool { give, take }
    }

    /// An empty vector: one given back earlier if any (its capacity kept), else a new one.
    pub fn take(&self) -> Vec<T> {
        self.take.try_recv().unwrap_or_default()
    }

    /// Keeps `vector` (emptied) for a later `take`; a full pool drops it.
    pub fn give_back(&self, mut vector: Vec<T>) {
        vector.clear();
        let _ = self.give.try_send(vector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector given back comes out again empty with its capacity; past the bound, vectors are
    /// dropped and `take` makes new ones.
    #[test]
    fn vectors_come_back_empty_and_the_pool_stays_bounded() {
        let pool: Pool<u8> = Pool::new(1);
        let mut first = pool.take();
        first.extend_from_slice(&[1, 2, 3]);
        let capacity = first.capacity();
        pool.give_back(first);
        pool.give_back(vec![9; 100]); // the pool is full: dropped
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() == capacity);
        assert_eq!(pool.take().capacity(), 0, "nothing else was kept");
    }
}
