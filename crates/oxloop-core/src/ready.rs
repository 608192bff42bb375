//! The ready queue: callbacks due to run in the current or next tick.
//!
//! Mirrors `BaseEventLoop._ready` (a deque) and the `ntodo` rule of `BaseEventLoop._run_once`:
//! a tick runs exactly the entries that were queued when it began; anything queued while the tick
//! runs waits for the next tick, so a callback that reschedules itself cannot starve I/O.

use std::collections::VecDeque;

/// FIFO of pending callbacks.
#[derive(Debug)]
pub struct ReadyQueue<T> {
    /// Entries in the order they were queued; the front runs first.
    items: VecDeque<T>,
}

impl<T> Default for ReadyQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ReadyQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            items: VecDeque::with_capacity(64),
        }
    }

    /// Queues `item` behind everything already queued.
    #[inline]
    pub fn push(&mut self, item: T) {
        self.items.push_back(item);
    }

    /// Takes the oldest entry.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// How many entries are queued; a tick runs exactly this many (the `ntodo` of `_run_once`).
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued (the loop may then sleep in the poller).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The queued entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Removes every entry, oldest first (used when the loop closes).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order() {
        let mut q = ReadyQueue::new();
        for i in 0..5 {
            q.push(i);
        }
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_tick_runs_only_what_was_queued_when_it_began() {
        let mut q = ReadyQueue::new();
        q.push(1);
        q.push(2);
        let ntodo = q.len();
        let mut ran = Vec::new();
        for _ in 0..ntodo {
            let item = q.pop().unwrap();
            ran.push(item);
            // Every callback schedules another one: those wait for the next tick.
            q.push(item * 10);
        }
        assert_eq!(ran, vec![1, 2]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(10));
    }
}
