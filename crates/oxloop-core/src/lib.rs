//! oxloop-core: the event-loop machinery behind oxloop, with no Python in it.
//!
//! One loop tick (driven by the binding crate's `run_once`) uses these pieces in order:
//!
//! 1. [`time::TimerQueue::prune`] drops cancelled timers, then the poll timeout is derived from
//!    [`ready::ReadyQueue`] (work pending: do not sleep) and [`time::TimerQueue::next_deadline`].
//! 2. [`reactor::Reactor::poll`] waits for I/O readiness or a [`reactor::Waker`] nudge from another
//!    thread (the caller releases the GIL around it).
//! 3. Due timers move from the [`time::TimerQueue`] to the [`ready::ReadyQueue`].
//! 4. The ready queue runs exactly the callbacks that were queued when the tick began.
//!
//! The queues are generic over their payload so this crate stays free of Python: the binding crate
//! fills them with Python handles, the tests here with plain integers and a fake clock.
//! All raw syscalls live in [`sys`].

pub mod dns;
pub mod reactor;
pub mod ready;
pub mod registry;
pub mod stats;
pub mod sys;
pub mod tick;
pub mod time;
pub mod transport;
