//! The ready queue: callbacks due to run in the current or next tick.
//!
//! Mirrors `BaseEventLoop._ready` (a deque) and the `ntodo` rule of `BaseEventLoop._run_once`:
//! a tick runs exactly the entries that were queued when it began; anything queued while the tick
//! runs waits for the next tick, so a callback that reschedules itself cannot starve I/O.
//! [`ReadyQueue::begin_tick`] and [`ReadyQueue::next_in_tick`] enforce that rule for the tick.

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

    /// Starts a tick: the returned [`Tick`] lets [`ReadyQueue::next_in_tick`] hand out exactly the
    /// entries queued now (the `ntodo` of `_run_once`), never one queued while the tick runs.
    pub fn begin_tick(&self) -> Tick {
        Tick {
            left: self.items.len(),
        }
    }

    /// The next entry of the tick `tick`, oldest first; `None` once the tick has had every entry
    /// that was queued when it began, or when the queue was emptied meanwhile (the loop closed).
    #[inline]
    pub fn next_in_tick(&mut self, tick: &mut Tick) -> Option<T> {
        if tick.left == 0 {
            return None;
        }
        tick.left -= 1;
        let item = self.items.pop_front();
        if item.is_none() {
            tick.left = 0;
        }
        item
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

/// One tick's share of the ready queue: how many entries it may still take.
#[derive(Debug)]
pub struct Tick {
    /// Entries queued when the tick began and not yet taken; only decreases.
    left: usize,
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
        let mut tick = q.begin_tick();
        let mut ran = Vec::new();
        while let Some(item) = q.next_in_tick(&mut tick) {
            ran.push(item);
            // Every callback schedules another one: those wait for the next tick.
            q.push(item * 10);
        }
        assert_eq!(ran, vec![1, 2]);
        let mut next = q.begin_tick();
        let second: Vec<_> = std::iter::from_fn(|| q.next_in_tick(&mut next)).collect();
        assert_eq!(second, vec![10, 20]);
    }

    #[test]
    fn a_tick_ends_when_the_queue_is_emptied_under_it() {
        let mut q = ReadyQueue::new();
        for i in 0..3 {
            q.push(i);
        }
        let mut tick = q.begin_tick();
        assert_eq!(q.next_in_tick(&mut tick), Some(0));
        // close() from a callback drops what is pending: the tick ends there, and an entry
        // queued afterwards waits for the next tick.
        q.drain().for_each(drop);
        assert_eq!(q.next_in_tick(&mut tick), None);
        q.push(7);
        assert_eq!(q.next_in_tick(&mut tick), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn an_empty_tick_takes_nothing() {
        let mut q: ReadyQueue<u8> = ReadyQueue::new();
        let mut tick = q.begin_tick();
        q.push(1);
        assert_eq!(q.next_in_tick(&mut tick), None);
        assert_eq!(q.len(), 1);
    }
}
