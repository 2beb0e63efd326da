//! A bounded priority queue of timed events: earliest first, and among
//! events at the same millisecond, the one scheduled first (so a run is a
//! pure function of its seed).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Events pending at once, at most; more is a runaway feedback loop.
pub const EVENTS_MAX: usize = 1 << 24;

/// The heap orders small keys; the events themselves (a few hundred bytes
/// with a frame inside) stay put in slots, so sifting moves 24 bytes.
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at_ms: u64, event: E) {
        assert!(self.heap.len() < EVENTS_MAX, "event queue unbounded growth");
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(event);
                i
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((at_ms, self.seq, slot)));
    }

    /// When the next event is due.
    pub fn peek_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn pop(&mut self) -> Option<(u64, E)> {
        let Reverse((at_ms, _, slot)) = self.heap.pop()?;
        let event = self.slots[slot as usize].take().expect("a queued slot");
        self.free.push(slot);
        Some((at_ms, event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut q = EventQueue::default();
        q.push(20, "c");
        q.push(10, "a");
        q.push(20, "d");
        q.push(10, "b");
        assert_eq!(q.pop(), Some((10, "a")));
        // A slot freed and reused keeps the order by time and scheduling.
        q.push(10, "b2");
        q.push(5, "z");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![(5, "z"), (10, "b"), (10, "b2"), (20, "c"), (20, "d")]
        );
        assert!(q.is_empty());
    }
}
