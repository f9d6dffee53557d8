//! An open-addressing table of 12-byte slots that grows a little at each insert: the shape of
//! the transfer id index ([`crate::id_index`]) and of the tables keyed by transfer index
//! ([`crate::index_table`]).
//!
//! Layout and probing follow hashbrown (SwissTable): a power of two of buckets at most 7/8 full
//! (or less, per kind of entry), a control byte per bucket (here 0 empty so fresh pages stay
//! untouched, 1 a tombstone, `0x80 | 7 bits of the hash` full), groups of 16 control bytes
//! matched as one `u128`, triangular probing from the bucket the hash's low bits pick. A removal
//! empties its bucket outright where no probe can have gone past it: hashbrown's rule (an empty
//! bucket within 16 on both sides), or its block of 16 buckets was never part of a full group an
//! insert probed past. The hashes put runs of consecutive keys on consecutive buckets, so groups
//! fill whole and hashbrown's rule alone would leave a tombstone for almost every removal.
//!
//! Growth does not stop the sequencer: when the table is full a new one takes new inserts, and
//! each insert moves `MIGRATE_PER_INSERT` (16) buckets of the old one over; a lookup reads the
//! old one too wherever its key could still be there, until it is empty. The new table is twice
//! the size, or the same size when tombstones rather than entries filled the old one (hashbrown
//! would rehash in place: a stall proportional to the table). Moving needs only the slot's
//! hash. The emptied table is handed to the node to free.

use core::marker::PhantomData;

/// Control bytes read and matched as one word (a `u128`: hashbrown's SSE2 width).
const GROUP: usize = 16;
/// A bucket never used, or emptied where no probe went past it: probing stops at a group
/// holding one. Zero, so an allocation's fresh pages are an empty table without being written.
const EMPTY: u8 = 0;
/// A bucket emptied by a removal that a probe may have passed, or by moving to the new table:
/// probing goes past it.
const DELETED: u8 = 1;
const LSB: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
const MSB: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
/// Old buckets moved at each insert while growing. At 16 the old table is empty before the new
/// one fills: the move takes a sixteenth as many inserts as the old one has buckets, and the
/// new one has room for twice the entries the old one held and for 3/8 of its buckets.
/// Moving is sequential and cheap; what costs while both tables live is a lookup that must
/// probe the old, full one too (see `Moving::may_hold`), so a shorter move costs less in all: 16 keeps both for a sixteenth of the inserts that filled the old one.
pub(crate) const MIGRATE_PER_INSERT: usize = 16;
const MIN_BUCKETS: usize = 16;

/// What a table holds per bucket: three words (zero in a fresh table, whose pages the kernel
/// then hands out as they are first written), from which the bucket's 64-bit hash follows.
pub(crate) type Words = [u32; 3];

/// How a table's entries are hashed, and how full it may get.
pub(crate) trait Slot: Send + 'static {
    /// Eighths of the buckets that may be filled (tombstones included) before the table grows:
    /// 7 where memory matters most, less where shorter probes do.
    const LOAD_EIGHTHS: usize;

    /// The hash an entry was placed by.
    fn hash(words: &Words) -> u64;
}

/// The control byte of a full bucket holding `hash`: 7 bits that differ between neighbours.
#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 57) as u8
}

/// The bytes of `group` equal to `byte` (high bit of each), with rare false positives above
/// a true match; callers check the control byte again.
#[inline]
fn match_byte(group: u128, byte: u8) -> u128 {
    let cmp = group ^ (LSB * u128::from(byte));
    cmp.wrapping_sub(LSB) & !cmp & MSB
}

/// The empty bytes of `group` (high bit of each), exactly: a byte's low 7 bits plus 0x7F carry
/// into its high bit unless they are all zero, and no carry leaves a byte.
#[inline]
fn empty_bytes(group: u128) -> u128 {
    !(((group & !MSB) + !MSB) | group | !MSB)
}

/// Buckets for `items` entries of `S`: a power of two at most `S::LOAD_EIGHTHS` full.
pub(crate) fn buckets_for<S: Slot>(items: usize) -> usize {
    (items.saturating_mul(8).div_ceil(S::LOAD_EIGHTHS)).next_power_of_two().max(MIN_BUCKETS)
}

/// One open-addressing table (see the module documentation).
pub(crate) struct Table<S> {
    /// One byte per bucket, then the first `GROUP` again so a group read wraps.
    ctrl: Vec<u8>,
    slots: Vec<Words>,
    pub(crate) items: usize,
    /// Empty buckets that may still be filled before the table is 7/8 full.
    pub(crate) growth_left: usize,
    /// The farthest any entry was put from its home bucket, in buckets (wrapping): every entry
    /// homed at `h` lies within `h..=h + farthest`.
    pub(crate) farthest: usize,
    /// Per aligned block of 16 buckets, whether a probe ever went past a full group that
    /// overlaps it (until the table is rebuilt). A removal in a block no probe went past
    /// empties its bucket outright: no entry's probe can depend on it.
    passed: Vec<bool>,
    slot: PhantomData<S>,
}

// By hand: a derive would ask `S` to be `Clone` and `Default`, which it never holds.
impl<S> Clone for Table<S> {
    fn clone(&self) -> Table<S> {
        let (ctrl, slots, passed) = (self.ctrl.clone(), self.slots.clone(), self.passed.clone());
        Table { ctrl, slots, items: self.items, growth_left: self.growth_left, farthest: self.farthest, passed, slot: PhantomData }
    }
}

impl<S> Default for Table<S> {
    fn default() -> Table<S> {
        Table { ctrl: Vec::new(), slots: Vec::new(), items: 0, growth_left: 0, farthest: 0, passed: Vec::new(), slot: PhantomData }
    }
}

impl<S: Slot> Table<S> {
    fn with_buckets(buckets: usize) -> Table<S> {
        debug_assert!(buckets.is_power_of_two() && buckets >= MIN_BUCKETS);
        // Zeroed allocations: the kernel hands out pages as they are first written.
        let growth_left = buckets / 8 * S::LOAD_EIGHTHS;
        let (ctrl, slots, passed) = (vec![EMPTY; buckets + GROUP], vec![[0; 3]; buckets], vec![false; buckets / GROUP]);
        Table { ctrl, slots, items: 0, growth_left, farthest: 0, passed, slot: PhantomData }
    }

    pub(crate) fn buckets(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn group_at(&self, pos: usize) -> u128 {
        u128::from_le_bytes(self.ctrl[pos..pos + GROUP].try_into().expect("a group is 16 bytes"))
    }

    fn set_ctrl(&mut self, i: usize, byte: u8) {
        self.ctrl[i] = byte;
        if i < GROUP {
            let buckets = self.slots.len();
            self.ctrl[buckets + i] = byte;
        }
    }

    /// Calls `each` with the slot of every entry whose tag matches `hash`'s, in probe order,
    /// until it answers true (it compares the slot's key); returns that bucket.
    #[inline]
    fn find(&self, hash: u64, mut each: impl FnMut(&Words) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let (tag, mask) = (tag_of(hash), self.mask());
        let (mut pos, mut stride) = (hash as usize & mask, 0);
        loop {
            let group = self.group_at(pos);
            let mut matches = match_byte(group, tag);
            while matches != 0 {
                let i = (pos + matches.trailing_zeros() as usize / 8) & mask;
                matches &= matches - 1;
                if self.ctrl[i] == tag && each(&self.slots[i]) {
                    return Some(i);
                }
            }
            if empty_bytes(group) != 0 {
                return None;
            }
            stride += GROUP;
            pos = (pos + stride) & mask;
        }
    }

    /// The slot in bucket `i` (one [`Table::find`] returned).
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &Words {
        &self.slots[i]
    }

    /// Puts `slot` in the first empty or deleted bucket of its hash's probe sequence. The
    /// caller has checked there is room.
    fn insert(&mut self, slot: Words) {
        debug_assert!(self.growth_left > 0);
        let (hash, mask) = (S::hash(&slot), self.mask());
        let (mut pos, mut stride) = (hash as usize & mask, 0);
        let i = loop {
            let free = !self.group_at(pos) & MSB;
            if free != 0 {
                break (pos + free.trailing_zeros() as usize / 8) & mask;
            }
            self.pass(pos);
            stride += GROUP;
            pos = (pos + stride) & mask;
        };
        self.put(i, hash, slot);
    }

    /// As [`Table::insert`], in the same probe that looks for an entry `same` accepts: then
    /// nothing is put and the answer is false.
    fn insert_unique(&mut self, slot: Words, mut same: impl FnMut(&Words) -> bool) -> bool {
        debug_assert!(self.growth_left > 0);
        let (hash, mask) = (S::hash(&slot), self.mask());
        let (tag, mut free) = (tag_of(hash), None);
        let (mut pos, mut stride) = (hash as usize & mask, 0);
        loop {
            let group = self.group_at(pos);
            let mut matches = match_byte(group, tag);
            while matches != 0 {
                let i = (pos + matches.trailing_zeros() as usize / 8) & mask;
                matches &= matches - 1;
                if self.ctrl[i] == tag && same(&self.slots[i]) {
                    return false;
                }
            }
            let unfilled = !group & MSB;
            if free.is_none() {
                if unfilled != 0 {
                    free = Some((pos + unfilled.trailing_zeros() as usize / 8) & mask);
                } else {
                    self.pass(pos);
                }
            }
            if empty_bytes(group) != 0 {
                break;
            }
            stride += GROUP;
            pos = (pos + stride) & mask;
        }
        self.put(free.expect("a group with an empty bucket has a free one"), hash, slot);
        true
    }

    /// Notes that a probe went past the full group at `pos`.
    fn pass(&mut self, pos: usize) {
        let blocks = self.passed.len();
        self.passed[pos / GROUP] = true;
        self.passed[(pos / GROUP + 1) % blocks] = true;
    }

    /// Fills free bucket `i` with `slot`, of hash `hash`.
    fn put(&mut self, i: usize, hash: u64, slot: Words) {
        if self.ctrl[i] == EMPTY {
            self.growth_left -= 1;
        }
        let mask = self.mask();
        self.farthest = self.farthest.max(i.wrapping_sub(hash as usize) & mask);
        self.set_ctrl(i, tag_of(hash));
        self.slots[i] = slot;
        self.items += 1;
    }

    /// Empties full bucket `i`: outright if no probe went past a full group holding it (its
    /// block was never passed, or every 16 buckets around it hold an empty one: hashbrown's
    /// rule), else as a tombstone.
    fn erase(&mut self, i: usize) {
        debug_assert!(self.ctrl[i] & 0x80 != 0, "bucket {i} is full");
        let before = empty_bytes(self.group_at(i.wrapping_sub(GROUP) & self.mask()));
        let after = empty_bytes(self.group_at(i));
        let full_run = (before.leading_zeros() + after.trailing_zeros()) as usize / 8;
        if self.passed[i / GROUP] && full_run >= GROUP {
            self.set_ctrl(i, DELETED);
        } else {
            self.set_ctrl(i, EMPTY);
            self.growth_left += 1;
        }
        self.items -= 1;
    }

    /// Every full bucket's slot, in bucket order.
    fn iter(&self) -> impl Iterator<Item = &Words> + '_ {
        self.slots.iter().zip(&self.ctrl).filter(|(_, &c)| c & 0x80 != 0).map(|(s, _)| s)
    }
}

/// A table emptied by growing, kept for the node to free off the sequencer thread (unmapping
/// a table of hundreds of megabytes takes tens of milliseconds).
pub struct RetiredTable {
    buckets: usize,
    _memory: Box<dyn Send>,
}

impl core::fmt::Debug for RetiredTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RetiredTable {{ buckets: {} }}", self.buckets)
    }
}

/// A table being emptied into the new one, and the first bucket not yet moved.
struct Moving<S> {
    table: Table<S>,
    next: usize,
}

impl<S> Clone for Moving<S> {
    fn clone(&self) -> Moving<S> {
        Moving { table: self.table.clone(), next: self.next }
    }
}

impl<S: Slot> Moving<S> {
    /// Whether an entry of this hash may still be in the table being emptied: not when every
    /// bucket it could have been put in is already moved. Most lookups of a new key then probe
    /// one table, not two (the old one is full: its misses probe far).
    #[inline]
    fn may_hold(&self, hash: u64) -> bool {
        (hash as usize & self.table.mask()) + self.table.farthest >= self.next
    }
}

/// A [`Table`] that grows a little at each insert (see the module documentation).
pub(crate) struct Growing<S> {
    pub(crate) table: Table<S>,
    moving: Option<Moving<S>>,
    /// The last table emptied, until taken ([`Growing::take_retired`]) or replaced.
    retired: Option<Table<S>>,
}

impl<S> Clone for Growing<S> {
    fn clone(&self) -> Growing<S> {
        Growing { table: self.table.clone(), moving: self.moving.clone(), retired: None }
    }
}

impl<S> Default for Growing<S> {
    fn default() -> Growing<S> {
        Growing { table: Table::default(), moving: None, retired: None }
    }
}

impl<S: Slot> Growing<S> {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.table.items + self.moving.as_ref().map_or(0, |m| m.table.items)
    }

    /// Entries the table holds before it next grows.
    pub(crate) fn capacity(&self) -> usize {
        self.table.items + self.table.growth_left
    }

    pub(crate) fn is_moving(&self) -> bool {
        self.moving.is_some()
    }

    /// The first slot of `hash` that `each` accepts, in the current table and then, while
    /// growing, where the old one may still hold it.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut each: impl FnMut(&Words) -> bool) -> Option<&Words> {
        if let Some(i) = self.table.find(hash, &mut each) {
            return Some(self.table.slot(i));
        }
        let moving = self.moving.as_ref().filter(|m| m.may_hold(hash))?;
        moving.table.find(hash, &mut each).map(|i| moving.table.slot(i))
    }

    /// Adds `slot` (the caller found its key absent).
    #[inline]
    pub(crate) fn insert(&mut self, slot: Words) {
        self.move_some(MIGRATE_PER_INSERT);
        if self.table.growth_left == 0 {
            self.grow();
        }
        self.table.insert(slot);
    }

    /// Adds `slot` unless an entry `same` accepts is held (then answers false), in one probe.
    #[inline]
    pub(crate) fn insert_unique(&mut self, slot: Words, mut same: impl FnMut(&Words) -> bool) -> bool {
        self.move_some(MIGRATE_PER_INSERT);
        if self.table.growth_left == 0 {
            self.grow();
        }
        let hash = S::hash(&slot);
        if self.moving.as_ref().is_some_and(|m| m.may_hold(hash) && m.table.find(hash, &mut same).is_some()) {
            return false;
        }
        self.table.insert_unique(slot, same)
    }

    /// Removes and returns the first slot of `hash` that `each` accepts.
    pub(crate) fn remove(&mut self, hash: u64, mut each: impl FnMut(&Words) -> bool) -> Option<Words> {
        if let Some(i) = self.table.find(hash, &mut each) {
            let slot = *self.table.slot(i);
            self.table.erase(i);
            return Some(slot);
        }
        let moving = self.moving.as_mut().filter(|m| m.may_hold(hash))?;
        let i = moving.table.find(hash, &mut each)?;
        let slot = *moving.table.slot(i);
        moving.table.erase(i);
        Some(slot)
    }

    /// Every slot held, in table order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Words> + '_ {
        self.table.iter().chain(self.moving.iter().flat_map(|m| m.table.iter()))
    }

    /// Whether a table the last growth emptied waits to be taken.
    #[cfg(test)]
    pub(crate) fn holds_retired(&self) -> bool {
        self.retired.is_some()
    }

    /// The table the last growth emptied, if not taken yet: for the caller to free.
    pub(crate) fn take_retired(&mut self) -> Option<RetiredTable> {
        self.retired.take().map(|t| RetiredTable { buckets: t.buckets(), _memory: Box::new(t) })
    }

    /// Room for `items` entries in all without growing: one rebuild now (start-up, not a stall).
    pub(crate) fn reserve(&mut self, items: usize) {
        if buckets_for::<S>(items) <= self.table.buckets() && self.capacity() >= items {
            return;
        }
        self.start_moving(buckets_for::<S>(items));
        self.move_some(usize::MAX);
    }

    /// Writes every page of the table (its own bytes back, through `black_box` so the write is
    /// not elided), so inserts take no page faults.
    pub(crate) fn touch(&mut self) {
        const PAGE_BYTES: usize = 4096;
        let table = &mut self.table;
        for i in (0..table.ctrl.len()).step_by(PAGE_BYTES) {
            table.ctrl[i] = core::hint::black_box(table.ctrl[i]);
        }
        for i in (0..table.slots.len()).step_by(PAGE_BYTES / core::mem::size_of::<Words>()) {
            table.slots[i] = core::hint::black_box(table.slots[i]);
        }
    }

    /// Starts growing, the table being full: new inserts go to a new one with room for twice
    /// the entries held (twice the size when entries filled it, the same or half when
    /// tombstones did; never less than half, so the move ends before the new one fills), and
    /// the current one is moved over a little at each insert.
    #[cold]
    fn grow(&mut self) {
        // Growing again before the last move ended cannot happen (see MIGRATE_PER_INSERT);
        // if it did, `start_moving` finishes that move first.
        self.start_moving(buckets_for::<S>(self.len().saturating_mul(2)).max(self.table.buckets() / 2));
    }

    /// Makes a table of `buckets` the current one and the current one the table being emptied
    /// (after finishing any move under way, so every entry stays findable).
    fn start_moving(&mut self, buckets: usize) {
        self.move_some(usize::MAX);
        let old = core::mem::replace(&mut self.table, Table::with_buckets(buckets));
        self.moving = Some(Moving { table: old, next: 0 });
    }

    /// Moves up to `buckets` buckets of the table being emptied into the current one.
    #[inline]
    fn move_some(&mut self, buckets: usize) {
        let Some(moving) = &mut self.moving else { return };
        let end = moving.next.saturating_add(buckets).min(moving.table.buckets());
        for i in moving.next..end {
            if moving.table.ctrl[i] & 0x80 != 0 {
                let slot = moving.table.slots[i];
                moving.table.set_ctrl(i, DELETED);
                moving.table.items -= 1;
                assert!(self.table.growth_left > 0, "the new table fills before the old one is moved");
                self.table.insert(slot);
            }
        }
        moving.next = end;
        if end == moving.table.buckets() {
            assert_eq!(moving.table.items, 0, "every entry moved");
            self.retired = self.moving.take().map(|m| m.table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries holding their own hash.
    struct H;

    impl Slot for H {
        const LOAD_EIGHTHS: usize = 7;

        fn hash(words: &Words) -> u64 {
            u64::from(words[1]) << 32 | u64::from(words[0])
        }
    }

    fn h(hash: u64) -> Words {
        [hash as u32, (hash >> 32) as u32, 0]
    }

    /// The exact empty matcher agrees with a byte-by-byte reading of every control value mix.
    #[test]
    fn empty_bytes_is_exact() {
        let values = [EMPTY, DELETED, 0x80, 0x81, 0xFF, 0x7F, 0x02];
        for start in 0..values.len() * values.len() {
            let bytes: [u8; 16] = core::array::from_fn(|k| values[(start + k * k * 3 + k / 2) % values.len()]);
            let expected = bytes.iter().enumerate().fold(0u128, |m, (k, &b)| m | (u128::from(b == 0) << (8 * k + 7)));
            assert_eq!(empty_bytes(u128::from_le_bytes(bytes)), expected, "{bytes:?}");
        }
    }

    /// Entries that come and go in a table whose size holds still: removals mostly empty their
    /// buckets outright, and growing rebuilds at the same size when tombstones filled it, so
    /// the table stays at the size its live entries need.
    #[test]
    fn churn_keeps_the_table_at_the_size_its_entries_need() {
        let mut g: Growing<H> = Growing::default();
        let live = 10_000u64;
        let mut same_size_rebuilds = 0;
        for k in 0..400_000u64 {
            let hash = crate::id_index::id_hash(u128::from(k));
            g.insert(h(hash));
            if k >= live {
                let old = crate::id_index::id_hash(u128::from(k - live));
                assert_eq!(g.remove(old, |s| H::hash(s) == old), Some(h(old)));
            }
            if let Some(m) = &g.moving {
                same_size_rebuilds += usize::from(m.next == 0 && m.table.buckets() == g.table.buckets());
            }
            assert!(g.len() as u64 == (k + 1).min(live));
        }
        assert!(g.table.buckets() <= buckets_for::<H>(2 * live as usize), "{} buckets for {live} entries", g.table.buckets());
        assert!(same_size_rebuilds > 0, "tombstones were cleared by a rebuild");
        let all: std::collections::HashSet<u64> = g.iter().map(H::hash).collect();
        assert_eq!(all.len() as u64, live);
        assert!((400_000 - live..400_000).all(|k| all.contains(&crate::id_index::id_hash(u128::from(k)))));
    }

    /// A run of keys removed from blocks no insert probed past leaves no tombstone, where
    /// hashbrown's rule alone (the run fills whole groups) would leave one for each.
    #[test]
    fn a_removal_no_probe_depends_on_leaves_no_tombstone() {
        let hash = |k: u64| crate::id_index::id_hash(u128::from(k));
        let mut g: Growing<H> = Growing::default();
        g.reserve(1_000);
        let room = g.capacity();
        for k in 4096..4096 + 64 {
            g.insert(h(hash(k)));
        }
        for k in 4096..4096 + 64 {
            assert!(g.remove(hash(k), |s| H::hash(s) == hash(k)).is_some());
        }
        assert_eq!(g.capacity(), room, "every bucket empty again");
        assert!(g.table.ctrl.iter().all(|&c| c == EMPTY));
    }

    /// Growing moves a bounded number of buckets per insert: the old table empties before the
    /// new one fills, and while both are live every entry is found.
    #[test]
    fn growth_is_spread_over_inserts() {
        let hash = |k: u64| crate::id_index::id_hash(u128::from(k));
        let mut g: Growing<H> = Growing::default();
        g.reserve(1_000);
        let buckets = g.table.buckets();
        let mut grew_at = None;
        for k in 1..=20_000u64 {
            g.insert(h(hash(k)));
            if g.moving.is_some() && grew_at.is_none() {
                grew_at = Some(k);
            }
            if let Some(moving) = &g.moving {
                assert!(moving.next <= (k - grew_at.unwrap_or(k) + 1) as usize * MIGRATE_PER_INSERT);
            }
            assert!((1..=k).step_by(97).all(|j| g.find(hash(j), |s| H::hash(s) == hash(j)) == Some(&h(hash(j)))));
        }
        assert!(grew_at.is_some() && g.table.buckets() > buckets && g.moving.is_none());
        assert!(g.take_retired().is_some() && g.take_retired().is_none(), "the emptied table is handed out once");
    }

    /// A key is refused while it still sits in the table being emptied, and once moved.
    #[test]
    fn insert_unique_finds_a_key_in_either_table() {
        let hash = |k: u64| crate::id_index::id_hash(u128::from(k));
        let mut g: Growing<H> = Growing::default();
        g.reserve(1_000);
        let mut k = 0;
        while !g.is_moving() {
            assert!(g.insert_unique(h(hash(k)), |s| H::hash(s) == hash(k)));
            k += 1;
        }
        let unmoved = (0..k).filter(|&j| g.moving.as_ref().is_some_and(|m| m.table.find(hash(j), |s| H::hash(s) == hash(j)).is_some()));
        let unmoved: Vec<u64> = unmoved.collect();
        assert!(!unmoved.is_empty(), "some keys wait in the old table");
        for j in unmoved.into_iter().chain(0..k) {
            assert!(!g.insert_unique(h(hash(j)), |s| H::hash(s) == hash(j)), "key {j} held twice");
        }
        assert_eq!(g.len() as u64, k);
    }
}
