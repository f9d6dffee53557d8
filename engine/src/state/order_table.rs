//! The orders' table: chunks of 64 orders shared copy-on-write with snapshot copies, so a
//! snapshot copies a pointer per chunk (not a million orders) and the engine, changing an order
//! the snapshot writer still reads, copies that one chunk first.

use std::sync::Arc;

use super::orders::Order;

/// Orders per chunk: a chunk copied on write is a few dozen microseconds of work.
const CHUNK_ORDERS: usize = 64;

/// The engine's orders by index (number - 1).
#[derive(Clone, Debug, Default)]
pub struct OrderTable {
    chunks: Vec<Arc<Vec<Order>>>,
    len: usize,
    /// Run-history entries over all orders (a snapshot's length without reading every order).
    history_entries: usize,
}

impl OrderTable {
    /// Orders held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The order at `index`.
    pub fn get(&self, index: usize) -> Option<&Order> {
        (index < self.len).then(|| &self.chunks[index / CHUNK_ORDERS][index % CHUNK_ORDERS])
    }

    /// Run-history entries over all orders.
    pub fn history_entries(&self) -> usize {
        self.history_entries
    }

    /// Every order, by index.
    pub fn iter(&self) -> impl Iterator<Item = &Order> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// Changes the order at `index` through `change`: its chunk is copied first if a snapshot
    /// copy shares it.
    pub(crate) fn update<T>(&mut self, index: usize, change: impl FnOnce(&mut Order) -> T) -> T {
        assert!(index < self.len, "order index {index} past {}", self.len);
        let order = &mut Arc::make_mut(&mut self.chunks[index / CHUNK_ORDERS])[index % CHUNK_ORDERS];
        let before = order.history.len();
        let out = change(order);
        self.history_entries = self.history_entries + order.history.len() - before;
        out
    }

    pub(crate) fn push(&mut self, order: Order) {
        if self.len.is_multiple_of(CHUNK_ORDERS) {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK_ORDERS)));
        }
        let last = self.chunks.last_mut().expect("a chunk with room");
        self.history_entries += order.history.len();
        Arc::make_mut(last).push(order);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<Order> {
        let last = self.chunks.last_mut()?;
        let order = Arc::make_mut(last).pop();
        if last.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        self.history_entries -= order.as_ref().map_or(0, |o| o.history.len());
        order
    }
}

impl core::ops::Index<usize> for OrderTable {
    type Output = Order;
    fn index(&self, index: usize) -> &Order {
        self.get(index).unwrap_or_else(|| panic!("order index {index} past {}", self.len))
    }
}

impl PartialEq for OrderTable {
    fn eq(&self, other: &OrderTable) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for OrderTable {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StandingOrder;

    fn order(number: u32) -> Order {
        let spec = super::super::orders::OrderSpec::Standing(StandingOrder { id: number as u128, ..Default::default() });
        let mut state = [0u8; 128];
        state[0..4].copy_from_slice(&number.to_le_bytes());
        state[5] = spec.kind_byte();
        Order::from_parts(&spec.to_bytes(), &state, Default::default()).expect("an order")
    }

    #[test]
    fn a_copy_shares_chunks_until_one_side_changes_an_order() {
        let mut table = OrderTable::default();
        (1..=200).for_each(|n| table.push(order(n)));
        let copy = table.clone();
        table.update(70, |o| o.amount = 5);
        assert_eq!((copy[70].amount, table[70].amount), (0, 5), "the copy keeps the order as it was");
        assert!(Arc::ptr_eq(&copy.chunks[0], &table.chunks[0]), "untouched chunks stay shared");
        assert!(!Arc::ptr_eq(&copy.chunks[1], &table.chunks[1]), "the changed chunk was copied");
        assert_eq!(table.pop().map(|o| o.number), Some(200));
        assert_eq!((table.len(), table.iter().count(), copy.len()), (199, 199, 200));
        while table.pop().is_some() {}
        assert!(table.is_empty() && table.chunks.is_empty());
    }
}
