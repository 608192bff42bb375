//! The loop's clock: `CLOCK_MONOTONIC`, the clock of Python's `time.monotonic()`.

use rustix::time::{clock_gettime, ClockId};

/// Seconds on `CLOCK_MONOTONIC`, the clock of Python's `time.monotonic()`.
#[inline]
pub fn monotonic() -> f64 {
    let ts = clock_gettime(ClockId::Monotonic);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_matches_std_instant_pace() {
        let a = monotonic();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic();
        assert!(b - a >= 0.002);
    }
}
