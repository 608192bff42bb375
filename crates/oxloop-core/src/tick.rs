//! One loop tick's decisions, without Python. Mirrors `BaseEventLoop._run_once`.
//!
//! The binding crate's `run_once` drives a tick through these steps and only adds what needs
//! Python: releasing the GIL around a blocking poll, running handles, the monitor's hooks.
//!
//! 1. [`prepare`]: cancelled timers leave the heap ([`TimerQueue::prune`]'s thresholds), then the
//!    poll timeout: zero if callbacks are ready or the loop is stopping, else the time to the
//!    earliest deadline capped at [`MAXIMUM_SELECT_TIMEOUT`], else infinite; and whether to poll
//!    at all: every tick does, as asyncio's does, except a zero-timeout one while no fd is
//!    watched (it could only find the waker, whose callbacks are already queued).
//! 2. The caller polls the reactor (or not).
//! 3. The ready watchers are queued ([`crate::registry::Registry::ready`]), then
//!    [`queue_due`] moves timers whose deadline is at or before now (never early) to the ready
//!    queue, equal deadlines in scheduling order.
//! 4. [`ReadyQueue::begin_tick`] fixes the batch: the tick runs exactly what was queued when it
//!    began; what the batch queues waits for the next tick.
//!
//! # Why every tick polls
//! Libraries count loop iterations (a write reaches the peer within N of them). An earlier rule
//! skipped the zero-timeout poll after a batch of transport reads that wrote nothing; a protocol
//! that sends with a plain socket call from `data_received` then reached its peer one iteration
//! later than on asyncio. Polling every tick matches asyncio in every case, for one empty
//! `epoll_wait` (about 0.25 us) per request in request/response traffic.

use std::time::Duration;

use crate::ready::ReadyQueue;
use crate::time::{Timer, TimerQueue};

/// Mirrors `MAXIMUM_SELECT_TIMEOUT` in `asyncio/base_events.py`: the longest single wait.
pub const MAXIMUM_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

/// Step 1's outcome: how long to wait for I/O, and whether to ask the poller at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The poll timeout: `None` waits until an fd is ready or the waker fires.
    pub timeout: Option<Duration>,
    /// Whether to poll: always, except a zero-timeout poll while no fd is watched.
    pub poll: bool,
}

impl Plan {
    /// Whether the poll may block (the caller releases the GIL around it, and reads the clock
    /// before it for the loop statistics).
    #[inline]
    pub fn may_block(&self) -> bool {
        self.timeout != Some(Duration::ZERO)
    }
}

/// The poll timeout of `_run_once`: zero if `ready_pending` or `stopping`, else until
/// `next_deadline` (read against `now`, never negative, at most [`MAXIMUM_SELECT_TIMEOUT`]),
/// else `None` (forever). `now` is read only when a deadline needs it.
#[inline]
pub fn timeout(
    ready_pending: bool,
    stopping: bool,
    next_deadline: Option<f64>,
    now: impl FnOnce() -> f64,
) -> Option<Duration> {
    if ready_pending || stopping {
        return Some(Duration::ZERO);
    }
    next_deadline.map(|when| {
        let t = (when - now()).clamp(0.0, MAXIMUM_SELECT_TIMEOUT);
        // NOTE: a NaN deadline (call_at(float('nan'))) clamps to NaN: wait not at all, as
        // asyncio's `max(0, nan)` gives 0.
        Duration::try_from_secs_f64(t).unwrap_or(Duration::ZERO)
    })
}

/// Step 1: prunes cancelled timers into `pruned` (the caller drops them once it released the
/// loop state), then plans the poll. `watched` says whether any fd is watched.
#[inline]
pub fn prepare<T, S: Timer>(
    ready: &ReadyQueue<T>,
    timers: &mut TimerQueue<S>,
    pruned: &mut Vec<S>,
    stopping: bool,
    watched: bool,
    now: impl FnOnce() -> f64,
) -> Plan {
    timers.prune(pruned);
    let timeout = timeout(!ready.is_empty(), stopping, timers.next_deadline(), now);
    let poll = watched || timeout != Some(Duration::ZERO);
    Plan { timeout, poll }
}

/// Step 3's timers: moves every timer due at `now` (deadline at or before it: never early) to
/// `ready`, earliest first and equal deadlines in scheduling order, each through `into`.
/// Returns how many moved. `now` is read only if a timer is scheduled.
#[inline]
pub fn queue_due<T, S>(
    timers: &mut TimerQueue<S>,
    ready: &mut ReadyQueue<T>,
    now: impl FnOnce() -> f64,
    mut into: impl FnMut(S) -> T,
) -> usize {
    if timers.is_empty() {
        return 0;
    }
    let now = now();
    let mut n = 0;
    while let Some(timer) = timers.pop_due(now) {
        ready.push(into(timer));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Clock, ManualClock};
    use std::cell::Cell;

    /// A timer that knows its name and whether it was cancelled.
    #[derive(Debug, Clone)]
    struct T(&'static str, std::rc::Rc<Cell<bool>>);

    impl Timer for T {
        fn cancelled(&self) -> bool {
            self.1.get()
        }
    }

    fn timer(name: &'static str) -> (T, std::rc::Rc<Cell<bool>>) {
        let flag = std::rc::Rc::new(Cell::new(false));
        (T(name, flag.clone()), flag)
    }

    /// Runs one tick's steps 1, 3 and 4 against `clock` with no I/O; returns the plan and the
    /// names run, while each run callback may queue `follow` entries.
    fn tick(
        ready: &mut ReadyQueue<&'static str>,
        timers: &mut TimerQueue<T>,
        clock: &ManualClock,
        follow: &[&'static str],
    ) -> (Plan, Vec<&'static str>) {
        let mut pruned = Vec::new();
        let plan = prepare(ready, timers, &mut pruned, false, false, || clock.now());
        queue_due(timers, ready, || clock.now(), |t| t.0);
        let mut batch = ready.begin_tick();
        let mut ran = Vec::new();
        while let Some(name) = ready.next_in_tick(&mut batch) {
            ran.push(name);
            for f in follow {
                ready.push(f);
            }
        }
        (plan, ran)
    }

    #[test]
    fn a_timer_never_runs_early() {
        let clock = ManualClock::new(100.0);
        let mut ready = ReadyQueue::new();
        let mut timers = TimerQueue::new();
        timers.push(101.0, timer("t").0);
        let (plan, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert_eq!(plan.timeout, Some(Duration::from_secs(1)));
        assert!(ran.is_empty());
        clock.advance(0.999_999);
        let (plan, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert!(ran.is_empty(), "one microsecond early");
        assert!(plan.timeout.unwrap() > Duration::ZERO);
        clock.advance(0.000_001);
        let (_, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert_eq!(ran, vec!["t"]);
    }

    #[test]
    fn equal_deadlines_run_in_scheduling_order_after_earlier_ones() {
        let clock = ManualClock::new(0.0);
        let mut ready = ReadyQueue::new();
        let mut timers = TimerQueue::new();
        for (when, name) in [(2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (3.0, "e")] {
            timers.push(when, timer(name).0);
        }
        clock.advance(2.0);
        let (_, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert_eq!(ran, vec!["a", "b", "c", "d"]);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn ready_callbacks_run_before_timers_due_in_the_same_tick() {
        let clock = ManualClock::new(5.0);
        let mut ready = ReadyQueue::new();
        let mut timers = TimerQueue::new();
        timers.push(5.0, timer("timer").0);
        ready.push("soon");
        let (plan, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert_eq!(plan.timeout, Some(Duration::ZERO));
        assert_eq!(ran, vec!["soon", "timer"]);
    }

    #[test]
    fn a_tick_runs_exactly_what_was_queued_when_it_began() {
        let clock = ManualClock::new(0.0);
        let mut ready = ReadyQueue::new();
        let mut timers: TimerQueue<T> = TimerQueue::new();
        ready.push("a");
        ready.push("b");
        // Each callback queues another: those wait for the next tick, which does not sleep.
        let (_, ran) = tick(&mut ready, &mut timers, &clock, &["again"]);
        assert_eq!(ran, vec!["a", "b"]);
        assert_eq!(ready.len(), 2);
        let (plan, ran) = tick(&mut ready, &mut timers, &clock, &[]);
        assert_eq!(plan.timeout, Some(Duration::ZERO));
        assert_eq!(ran, vec!["again", "again"]);
    }

    #[test]
    fn timeout_values() {
        let now = || 10.0;
        assert_eq!(timeout(false, false, None, now), None);
        assert_eq!(timeout(true, false, None, now), Some(Duration::ZERO));
        assert_eq!(timeout(false, true, Some(99.0), now), Some(Duration::ZERO));
        assert_eq!(
            timeout(false, false, Some(10.25), now),
            Some(Duration::from_millis(250))
        );
        // A deadline in the past: do not wait.
        assert_eq!(timeout(false, false, Some(3.0), now), Some(Duration::ZERO));
        // A deadline a year away: wait at most a day, then look again.
        assert_eq!(
            timeout(false, false, Some(10.0 + 365.0 * 86400.0), now),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            timeout(false, false, Some(f64::INFINITY), now),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            timeout(false, false, Some(f64::NAN), now),
            Some(Duration::ZERO)
        );
        // The clock is not read when nothing needs it.
        let unread = || -> f64 { panic!("clock read") };
        assert_eq!(
            timeout(true, false, Some(1.0), unread),
            Some(Duration::ZERO)
        );
        assert_eq!(timeout(false, false, None, unread), None);
    }

    #[test]
    fn cancelled_timers_are_pruned_and_do_not_set_the_timeout() {
        let clock = ManualClock::new(0.0);
        let ready: ReadyQueue<&str> = ReadyQueue::new();
        let mut timers = TimerQueue::new();
        let (head, head_cancel) = timer("head");
        timers.push(1.0, head);
        timers.push(50.0, timer("later").0);
        head_cancel.set(true);
        timers.note_cancelled();
        let mut pruned = Vec::new();
        let plan = prepare(&ready, &mut timers, &mut pruned, false, false, || {
            clock.now()
        });
        // The cancelled head left; the timeout is the live timer's.
        assert_eq!(pruned.len(), 1);
        assert_eq!(plan.timeout, Some(Duration::from_secs(50)));
        assert_eq!(timers.len(), 1);

        // Below the compaction threshold only the head goes: a cancelled timer behind a live
        // one stays until it reaches the head.
        let mut timers = TimerQueue::new();
        timers.push(1.0, timer("live").0);
        let (mid, mid_cancel) = timer("mid");
        timers.push(2.0, mid);
        mid_cancel.set(true);
        timers.note_cancelled();
        let mut pruned = Vec::new();
        prepare(&ready, &mut timers, &mut pruned, false, false, || 0.0);
        assert!(pruned.is_empty());
        assert_eq!(timers.len(), 2);

        // More than 100 timers and more than half cancelled: all cancelled ones go at once.
        let mut timers = TimerQueue::new();
        let mut flags = Vec::new();
        for i in 0..120 {
            let (t, f) = timer("t");
            timers.push(f64::from(i), t);
            flags.push(f);
        }
        for f in flags.iter().skip(1).take(61) {
            f.set(true);
            timers.note_cancelled();
        }
        let mut pruned = Vec::new();
        prepare(&ready, &mut timers, &mut pruned, false, false, || 0.0);
        assert_eq!(pruned.len(), 61);
        assert_eq!(timers.len(), 59);
    }

    #[test]
    fn every_tick_polls_while_an_fd_is_watched() {
        let mut ready: ReadyQueue<&str> = ReadyQueue::new();
        let mut timers: TimerQueue<T> = TimerQueue::new();
        let mut pruned = Vec::new();
        let mut plan = |ready: &ReadyQueue<&str>, stopping, watched| {
            prepare(ready, &mut timers, &mut pruned, stopping, watched, || 0.0)
        };
        // Nothing ready, nothing scheduled: wait for I/O, whether or not an fd is watched.
        for watched in [false, true] {
            let p = plan(&ready, false, watched);
            assert_eq!((p.timeout, p.poll, p.may_block()), (None, true, true));
        }
        // Callbacks ready: a poll that does not wait, skipped only when no fd is watched.
        ready.push("cb");
        let p = plan(&ready, false, true);
        assert_eq!(
            (p.timeout, p.poll, p.may_block()),
            (Some(Duration::ZERO), true, false)
        );
        assert!(!plan(&ready, false, false).poll);
        // Stopping: the same.
        let empty = ReadyQueue::new();
        assert!(plan(&empty, true, true).poll);
        assert!(!plan(&empty, true, false).poll);
    }
}
