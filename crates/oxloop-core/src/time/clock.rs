//! Clocks: the real monotonic one and a manual one for tests that must never sleep.

use std::cell::Cell;

/// A source of the loop's time, in seconds.
pub trait Clock {
    /// The current time in seconds, on the clock's own epoch.
    fn now(&self) -> f64;
}

/// `CLOCK_MONOTONIC`, the clock behind `time.monotonic()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> f64 {
        crate::sys::monotonic()
    }
}

/// A clock that moves only when told to (CPython's `TestLoop` does the same for its tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    /// The time the clock reads; only [`ManualClock::advance`] changes it.
    now: Cell<f64>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: f64) -> Self {
        Self {
            now: Cell::new(start),
        }
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: f64) {
        self.now.set(self.now.get() + seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.now.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let c = MonotonicClock;
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(a > 0.0);
    }

    #[test]
    fn manual_moves_only_when_told() {
        let c = ManualClock::new(10.0);
        assert_eq!(c.now(), 10.0);
        c.advance(0.5);
        assert_eq!(c.now(), 10.5);
    }
}
