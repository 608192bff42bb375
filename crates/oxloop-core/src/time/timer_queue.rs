//! `TimerQueue<T>`: timers ordered by deadline, then by scheduling order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What the queue needs to know about its payload.
pub trait Timer {
    /// Whether the timer was cancelled after it was pushed; cancelled timers are dropped lazily.
    fn cancelled(&self) -> bool;
}

/// Mirrors `_MIN_SCHEDULED_TIMER_HANDLES` in `asyncio/base_events.py`.
const MIN_SCHEDULED_FOR_COMPACTION: usize = 100;
/// Mirrors `_MIN_CANCELLED_TIMER_HANDLES_FRACTION` in `asyncio/base_events.py`.
const MIN_CANCELLED_FRACTION: f64 = 0.5;

/// One heap entry.
#[derive(Debug)]
struct Entry<T> {
    /// `(deadline, push order)` as one integer: the deadline's bits in `f64::total_cmp` order in
    /// the high half, the push order (breaking ties: first scheduled runs first) in the low half.
    /// One integer comparison per heap step instead of a float and an integer one.
    key: u128,
    /// Absolute deadline on the loop's clock, in seconds.
    when: f64,
    /// The caller's timer.
    item: T,
}

/// `when`'s bits mapped so that unsigned order is `f64::total_cmp` order (the mapping
/// `total_cmp` itself uses, shifted into the unsigned range).
#[inline]
fn ordered_bits(when: f64) -> u64 {
    let bits = when.to_bits() as i64;
    let flipped = bits ^ ((((bits >> 63) as u64) >> 1) as i64);
    (flipped as u64) ^ (1 << 63)
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
        other.key.cmp(&self.key)
    }
}

/// A min-heap of timers keyed by `(deadline, seq)`, with lazy cancellation.
#[derive(Debug)]
pub struct TimerQueue<T> {
    /// The scheduled timers, cancelled ones included until pruned.
    heap: BinaryHeap<Entry<T>>,
    /// The next `seq` to hand out; strictly increasing.
    next_seq: u64,
    /// How many entries in `heap` are cancelled (kept exact by `note_cancelled` and `prune`).
    cancelled: usize,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
            cancelled: 0,
        }
    }

    /// Schedules `item` at `when`.
    pub fn push(&mut self, when: f64, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = (u128::from(ordered_bits(when)) << 64) | u128::from(seq);
        self.heap.push(Entry { key, when, item });
    }

    /// Records that one entry still in the heap was cancelled
    /// (mirrors `BaseEventLoop._timer_handle_cancelled`).
    pub fn note_cancelled(&mut self) {
        self.cancelled += 1;
    }

    /// How many timers are in the heap, cancelled ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap holds no timer at all.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many entries in the heap are known to be cancelled.
    pub fn cancelled_count(&self) -> usize {
        self.cancelled
    }

    /// Deadline of the earliest timer, if any.
    pub fn next_deadline(&self) -> Option<f64> {
        self.heap.peek().map(|e| e.when)
    }

    /// Takes the earliest timer if its deadline is at or before `now`. A timer never leaves the
    /// queue early.
    pub fn pop_due(&mut self, now: f64) -> Option<T> {
        if self.heap.peek()?.when <= now {
            self.heap.pop().map(|e| e.item)
        } else {
            None
        }
    }

    /// Every timer in the heap, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.heap.iter().map(|e| &e.item)
    }

    /// Removes every entry (used when the loop closes).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.cancelled = 0;
        self.heap.drain().map(|e| e.item)
    }
}

impl<T: Timer> TimerQueue<T> {
    /// Drops cancelled timers: all of them when they are more than half of a large heap, otherwise
    /// those at the head. Mirrors the start of `BaseEventLoop._run_once`. The removed timers are
    /// appended to `removed` so the caller decides when they are dropped (the binding layer drops
    /// Python objects only once it has released the loop state).
    pub fn prune(&mut self, removed: &mut Vec<T>) {
        let len = self.heap.len();
        if len > MIN_SCHEDULED_FOR_COMPACTION
            && self.cancelled as f64 / len as f64 > MIN_CANCELLED_FRACTION
        {
            // In place: the heap keeps its allocation (it grows back to this size in a busy
            // loop), and `removed` is sized once instead of growing by doubling.
            let mut entries = std::mem::take(&mut self.heap).into_vec();
            removed.reserve(self.cancelled);
            let mut i = 0;
            while i < entries.len() {
                if entries[i].item.cancelled() {
                    removed.push(entries.swap_remove(i).item);
                } else {
                    i += 1;
                }
            }
            self.heap = BinaryHeap::from(entries);
            self.cancelled = 0;
            return;
        }
        while self.heap.peek().is_some_and(|e| e.item.cancelled()) {
            if let Some(e) = self.heap.pop() {
                removed.push(e.item);
            }
            self.cancelled = self.cancelled.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Clock, ManualClock};
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Debug, Clone)]
    struct T(u32, Rc<Cell<bool>>);
    impl Timer for T {
        fn cancelled(&self) -> bool {
            self.1.get()
        }
    }
    fn t(id: u32) -> T {
        T(id, Rc::new(Cell::new(false)))
    }

    fn due(q: &mut TimerQueue<T>, now: f64) -> Vec<u32> {
        std::iter::from_fn(|| q.pop_due(now))
            .filter(|x| !x.cancelled())
            .map(|x| x.0)
            .collect()
    }

    #[test]
    fn key_order_is_total_cmp_order() {
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            12345.678,
            1e300,
            f64::INFINITY,
            f64::NAN,
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    ordered_bits(a).cmp(&ordered_bits(b)),
                    a.total_cmp(&b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn orders_by_deadline_then_push_order() {
        let clock = ManualClock::new(100.0);
        let mut q = TimerQueue::new();
        q.push(clock.now() + 2.0, t(1));
        q.push(clock.now() + 1.0, t(2));
        q.push(clock.now() + 1.0, t(3));
        q.push(clock.now() + 0.5, t(4));
        clock.advance(5.0);
        assert_eq!(due(&mut q, clock.now()), vec![4, 2, 3, 1]);
    }

    #[test]
    fn never_releases_a_timer_early() {
        let clock = ManualClock::new(0.0);
        let mut q = TimerQueue::new();
        q.push(1.0, t(1));
        clock.advance(0.999_999_999);
        assert!(q.pop_due(clock.now()).is_none());
        assert_eq!(q.next_deadline(), Some(1.0));
        clock.advance(0.000_000_001);
        assert_eq!(due(&mut q, clock.now()), vec![1]);
    }

    #[test]
    fn prune_drops_cancelled_head() {
        let mut q = TimerQueue::new();
        let a = t(1);
        q.push(1.0, a.clone());
        q.push(2.0, t(2));
        a.1.set(true);
        q.note_cancelled();
        let mut removed = Vec::new();
        q.prune(&mut removed);
        assert_eq!(removed.len(), 1);
        assert_eq!(q.len(), 1);
        assert_eq!(q.cancelled_count(), 0);
        assert_eq!(q.next_deadline(), Some(2.0));
    }

    #[test]
    fn prune_compacts_when_mostly_cancelled() {
        let mut q = TimerQueue::new();
        let items: Vec<T> = (0..200).map(t).collect();
        for (i, it) in items.iter().enumerate() {
            q.push(i as f64, it.clone());
        }
        // Cancel 150 timers that are not at the head.
        for it in &items[50..] {
            it.1.set(true);
            q.note_cancelled();
        }
        let mut removed = Vec::new();
        q.prune(&mut removed);
        assert_eq!(removed.len(), 150);
        assert_eq!(q.len(), 50);
        assert_eq!(q.cancelled_count(), 0);
        assert_eq!(due(&mut q, 1e9), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn small_heap_keeps_cancelled_tail_until_it_reaches_the_head() {
        let mut q = TimerQueue::new();
        let b = t(2);
        q.push(1.0, t(1));
        q.push(2.0, b.clone());
        b.1.set(true);
        q.note_cancelled();
        q.prune(&mut Vec::new());
        assert_eq!(q.len(), 2);
        assert_eq!(q.cancelled_count(), 1);
    }
}
