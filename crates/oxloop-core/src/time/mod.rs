//! Time: the loop's clock and the queue of timers.
//!
//! The clock is `CLOCK_MONOTONIC` at full (nanosecond) resolution, the same clock as Python's
//! `time.monotonic()`, so `loop.time()` and `time.monotonic()` agree. The [`TimerQueue`] never
//! releases a timer before its deadline.
//!
//! # Implementation
//! The queue is a binary heap keyed by `(deadline, seq)`: `seq` is a counter that breaks ties in
//! scheduling order, as `TimerHandle.__lt__` plus `heapq`'s stability does for asyncio. Cancelling a
//! timer is lazy (mirrors `BaseEventLoop._run_once`): the entry stays in the heap and is dropped when
//! it reaches the head, or all at once when cancelled entries outnumber live ones.

mod clock;
mod timer_queue;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use timer_queue::{Timer, TimerQueue};
