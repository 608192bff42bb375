//! One loop tick's decisions, without Python. Mirrors `BaseEventLoop._run_once`.
//!
//! The binding crate's `run_once` drives a tick through these steps and only adds what needs
//! Python: releasing the GIL around a blocking poll, running handles, the monitor's hooks.
//!
//! 1. [`prepare`]: cancelled timers leave the heap ([`TimerQueue::prune`]'s thresholds), then the
//!    poll timeout: zero if callbacks are ready or the loop is stopping, else the time to the
//!    earliest deadline capped at [`MAXIMUM_SELECT_TIMEOUT`], else infinite; and whether to poll
//!    at all ([`PollSkip`]).
//! 2. The caller polls the reactor (or not).
//! 3. The ready watchers are queued ([`crate::registry::Registry::ready`]), then
//!    [`queue_due`] moves timers whose deadline is at or before now (never early) to the ready
//!    queue, equal deadlines in scheduling order.
//! 4. [`ReadyQueue::begin_tick`] fixes the batch: the tick runs exactly what was queued when it
//!    began; what the batch queues waits for the next tick. [`PollSkip::batch_done`] records
//!    whether the next tick may skip its zero-timeout poll.

use std::cell::Cell;
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
    /// Whether to poll. Always true when the poll may block; a zero-timeout poll may be skipped
    /// (see [`PollSkip`]).
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
    skip: &mut PollSkip,
    now: impl FnOnce() -> f64,
) -> Plan {
    timers.prune(pruned);
    let timeout = timeout(!ready.is_empty(), stopping, timers.next_deadline(), now);
    let poll = skip.should_poll(timeout, watched);
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

thread_local! {
    /// Set by [`note_io`] since the last poll of this thread's loop.
    static IO_NOTED: Cell<bool> = const { Cell::new(false) };
}

/// Records that the running loop did something that may make one of its own fds ready (a send
/// or write on a socket or pipe, a shutdown, a new watch): its next tick must poll, as asyncio's
/// does, so a peer watched by the same loop gets the data in asyncio's number of iterations.
#[inline]
pub fn note_io() {
    IO_NOTED.with(|f| f.set(true));
}

/// Returns and clears the [`note_io`] flag.
#[inline]
fn take_io_noted() -> bool {
    IO_NOTED.with(|f| f.replace(false))
}

/// The poll-skip rule: a zero-timeout poll is skipped when no fd is watched, and when nothing
/// the loop did since its last poll can have made an fd ready: every callback since was a quiet
/// one (a transport's read, whose protocol writes only through calls that [`note_io`]) and no
/// [`note_io`] happened. It would find only what arrived from outside in the meantime, which the
/// next poll sees; asyncio would poll here. Skipping changes no order a program can observe, and
/// saves the empty poll of the tick after an I/O event in request/response traffic.
#[derive(Debug, Default)]
pub struct PollSkip {
    /// The last batch ran only quiet callbacks, without error, and no [`note_io`] came since.
    may_skip: bool,
}

impl PollSkip {
    /// A rule that polls on the next tick.
    pub const fn new() -> Self {
        Self { may_skip: false }
    }

    /// Anything may have happened (a new run of the loop): the next tick polls.
    #[inline]
    pub fn reset(&mut self) {
        self.may_skip = false;
    }

    /// Whether a tick with this `timeout` polls. A poll that may block always does; a
    /// zero-timeout one only if an fd is `watched` and the skip is not allowed.
    #[inline]
    pub fn should_poll(&mut self, timeout: Option<Duration>, watched: bool) -> bool {
        let poll = timeout != Some(Duration::ZERO) || (watched && !self.may_skip);
        if poll {
            // What was done before this poll is seen by it.
            take_io_noted();
        }
        poll
    }

    /// The batch ended; `ok` if no callback stopped the loop with an error, `quiet` if every
    /// callback it ran was quiet.
    #[inline]
    pub fn batch_done(&mut self, ok: bool, quiet: bool) {
        let io = take_io_noted();
        // After an error the next tick polls: anything may have happened.
        self.may_skip = ok && quiet && !io;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Clock, ManualClock};

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
        let mut skip = PollSkip::new();
        let mut pruned = Vec::new();
        let plan = prepare(ready, timers, &mut pruned, false, false, &mut skip, || {
            clock.now()
        });
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
        let plan = prepare(
            &ready,
            &mut timers,
            &mut pruned,
            false,
            false,
            &mut PollSkip::new(),
            || clock.now(),
        );
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
        prepare(
            &ready,
            &mut timers,
            &mut pruned,
            false,
            false,
            &mut PollSkip::new(),
            || 0.0,
        );
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
        prepare(
            &ready,
            &mut timers,
            &mut pruned,
            false,
            false,
            &mut PollSkip::new(),
            || 0.0,
        );
        assert_eq!(pruned.len(), 61);
        assert_eq!(timers.len(), 59);
    }

    #[test]
    fn poll_skip_rule() {
        let zero = Some(Duration::ZERO);
        let mut skip = PollSkip::new();
        // Nothing watched: a zero-timeout poll has nothing to find.
        assert!(!skip.should_poll(zero, false));
        // A poll that may block always happens.
        assert!(skip.should_poll(None, false));
        assert!(skip.should_poll(Some(Duration::from_millis(1)), true));
        // Watched fds: poll, unless the last batch was quiet and did no I/O.
        assert!(skip.should_poll(zero, true));
        skip.batch_done(true, true);
        assert!(!skip.should_poll(zero, true));
        // A write in the batch: the next tick polls, so a peer on this loop gets it in
        // asyncio's number of iterations.
        note_io();
        skip.batch_done(true, true);
        assert!(skip.should_poll(zero, true));
        // A callback that is not quiet, or an error: poll.
        skip.batch_done(true, false);
        assert!(skip.should_poll(zero, true));
        skip.batch_done(false, true);
        assert!(skip.should_poll(zero, true));
        // A poll consumes what was noted before it.
        skip.batch_done(true, true);
        note_io();
        assert!(skip.should_poll(None, true));
        skip.batch_done(true, true);
        assert!(!skip.should_poll(zero, true));
        skip.reset();
        assert!(skip.should_poll(zero, true));
    }
}
