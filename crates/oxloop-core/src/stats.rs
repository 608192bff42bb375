//! Loop statistics that need no Python: a windowed histogram of loop lag.
//!
//! With monitoring on, ticks that run callbacks record lag samples (how long the first entry
//! waited to run: every tick with a due timer or after a poll that could block, the others once
//! per sampling period; see the binding crate's `monitor.rs`). [`LagWindow`] keeps them in
//! one-second slots over the last [`WINDOW_SECS`] seconds, so quantiles describe the recent past,
//! not the whole run.
//!
//! Most samples of a busy loop are zero (the tick after a poll that could block): those are only
//! counted ([`LagWindow::record_zero`], one add), and the count is folded into the slot of the
//! current second at most once per sampling period ([`LagWindow::flush`]), by the next
//! [`LagWindow::record`], or, without changing the window, when it is read (under the second of
//! the last fold, so a loop that went quiet does not show them forever). A zero is so filed under
//! a second at most one flush late, and quantiles count it exactly as if it were recorded.
//!
//! # Implementation
//!
//! Buckets are log-linear (HDR-style): values below 8 ns have a bucket each; above, each power of
//! two is split into 8 sub-buckets, so a bucket is at most 12.5% wide and a quantile is reported
//! within that error. Recording is a `leading_zeros`, a shift and an increment; no allocation after
//! construction. A slot is cleared when it is reused for a new second.

/// How many one-second slots a [`LagWindow`] keeps.
pub const WINDOW_SECS: usize = 10;

/// Number of buckets: 8 exact ones, then 8 per power of two from 2^3 to 2^63.
const BUCKETS: usize = 8 + 61 * 8;

/// The bucket of a value in nanoseconds.
#[inline]
fn bucket(v: u64) -> usize {
    if v < 8 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // e >= 3
    let sub = ((v >> (e - 3)) & 7) as usize;
    (e - 2) * 8 + sub
}

/// The largest value (inclusive) that falls in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < 8 {
        return i as u64;
    }
    let e = i / 8 + 2;
    let sub = (i % 8) as u64;
    let low = (8 + sub) << (e - 3);
    low.saturating_add((1u64 << (e - 3)) - 1)
}

/// One second of samples.
struct Slot {
    /// The second (of the caller's clock) these counts belong to; `u64::MAX` if never used.
    second: u64,
    /// Samples per bucket.
    counts: Box<[u32; BUCKETS]>,
    /// Number of samples (the sum of `counts`).
    n: u64,
    /// Largest sample, exact.
    max: u64,
}

impl Slot {
    fn new() -> Self {
        Self {
            second: u64::MAX,
            counts: Box::new([0; BUCKETS]),
            n: 0,
            max: 0,
        }
    }
}

/// Quantiles of a window, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quantiles {
    /// Number of samples in the window.
    pub count: u64,
    /// Median (upper edge of its bucket, at most `max`).
    pub p50: u64,
    /// 99th percentile (upper edge of its bucket, at most `max`).
    pub p99: u64,
    /// Largest sample, exact.
    pub max: u64,
}

/// Lag samples of the last [`WINDOW_SECS`] seconds.
pub struct LagWindow {
    /// Ring of slots indexed by `second % WINDOW_SECS`.
    slots: Vec<Slot>,
    /// Zero samples recorded since the last fold into a slot (see the module docs).
    zeros: u64,
    /// The second of the last fold, `None` before the first: the pending zeros were recorded
    /// after it, within about a sampling period while the loop ticks, so a read counts them
    /// while that second is in its window (a loop that went quiet does not show them forever).
    folded: Option<u64>,
}

impl Default for LagWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl LagWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self {
            slots: (0..WINDOW_SECS).map(|_| Slot::new()).collect(),
            zeros: 0,
            folded: None,
        }
    }

    /// The slot of `second`, emptied first if it held an older second.
    fn slot(&mut self, second: u64) -> &mut Slot {
        let slot = &mut self.slots[(second % WINDOW_SECS as u64) as usize];
        if slot.second != second {
            slot.counts.fill(0);
            slot.n = 0;
            slot.max = 0;
            slot.second = second;
        }
        slot
    }

    /// Records `lag_ns`, observed during `second` (any monotonic count of seconds); folds the
    /// pending zeros into that second first.
    #[inline]
    pub fn record(&mut self, second: u64, lag_ns: u64) {
        self.flush(second);
        let slot = self.slot(second);
        slot.counts[bucket(lag_ns)] += 1;
        slot.n += 1;
        slot.max = slot.max.max(lag_ns);
    }

    /// Records a zero lag without a clock: it is filed under the second of the next
    /// [`LagWindow::flush`] or [`LagWindow::record`].
    #[inline]
    pub fn record_zero(&mut self) {
        self.zeros += 1;
    }

    /// Files the zeros recorded since the last fold under `second`.
    pub fn flush(&mut self, second: u64) {
        self.folded = Some(second);
        let zeros = std::mem::take(&mut self.zeros);
        if zeros != 0 {
            let slot = self.slot(second);
            slot.counts[0] =
                slot.counts[0].saturating_add(u32::try_from(zeros).unwrap_or(u32::MAX));
            slot.n += zeros;
        }
    }

    /// The zeros not yet filed that a read of the window ending with `second` counts.
    fn pending(&self, second: u64) -> u64 {
        match self.folded {
            Some(s) if s > second || second - s >= WINDOW_SECS as u64 => 0,
            _ => self.zeros,
        }
    }

    /// Quantiles of the samples recorded in the window that ends with `second`.
    pub fn quantiles(&self, second: u64) -> Quantiles {
        let live = |s: &&Slot| {
            s.second != u64::MAX && s.second <= second && second - s.second < WINDOW_SECS as u64
        };
        let mut counts = [0u64; BUCKETS];
        let mut q = Quantiles::default();
        for slot in self.slots.iter().filter(live) {
            for (total, c) in counts.iter_mut().zip(slot.counts.iter()) {
                *total += u64::from(*c);
            }
            q.count += slot.n;
            q.max = q.max.max(slot.max);
        }
        // Zeros not yet filed count with the second of the last fold.
        let pending = self.pending(second);
        counts[0] += pending;
        q.count += pending;
        if q.count == 0 {
            return q;
        }
        let rank = |p: f64| ((q.count as f64 * p).ceil() as u64).max(1);
        let (r50, r99) = (rank(0.50), rank(0.99));
        let mut seen = 0u64;
        let (mut p50, mut p99) = (None, None);
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if p50.is_none() && seen >= r50 {
                p50 = Some(bucket_high(i).min(q.max));
            }
            if p99.is_none() && seen >= r99 {
                p99 = Some(bucket_high(i).min(q.max));
                break;
            }
        }
        q.p50 = p50.unwrap_or(q.max);
        q.p99 = p99.unwrap_or(q.max);
        q
    }

    /// Samples per bucket over the window ending with `second`, as (upper edge ns, count) for the
    /// non-empty buckets: what an exporter turns into a histogram.
    pub fn buckets(&self, second: u64) -> Vec<(u64, u64)> {
        let mut counts = [0u64; BUCKETS];
        for slot in &self.slots {
            if slot.second != u64::MAX
                && slot.second <= second
                && second - slot.second < WINDOW_SECS as u64
            {
                for (total, c) in counts.iter_mut().zip(slot.counts.iter()) {
                    *total += u64::from(*c);
                }
            }
        }
        counts[0] += self.pending(second);
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (bucket_high(i), *c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= last, "bucket order at {v}");
            assert!(v <= bucket_high(b), "{v} above its bucket's edge");
            if b > 0 {
                assert!(v > bucket_high(b - 1), "{v} at or below the previous edge");
            }
            last = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_a_bucket_width() {
        let mut w = LagWindow::new();
        for v in 1..=1000u64 {
            w.record(5, v * 1000);
        }
        let q = w.quantiles(5);
        assert_eq!(q.count, 1000);
        assert_eq!(q.max, 1_000_000);
        assert!((500_000..=562_500).contains(&q.p50), "{q:?}");
        assert!((990_000..=1_000_000).contains(&q.p99), "{q:?}");
    }

    #[test]
    fn old_seconds_leave_the_window() {
        let mut w = LagWindow::new();
        w.record(1, 5_000_000);
        w.record(2, 10);
        assert_eq!(w.quantiles(2).max, 5_000_000);
        assert_eq!(w.quantiles(1 + WINDOW_SECS as u64).max, 10);
        assert_eq!(w.quantiles(2 + WINDOW_SECS as u64).count, 0);
        // A reused slot starts empty.
        w.record(1 + WINDOW_SECS as u64, 7);
        let q = w.quantiles(1 + WINDOW_SECS as u64);
        assert_eq!((q.count, q.max), (2, 10));
        assert_eq!(w.buckets(1 + WINDOW_SECS as u64).len(), 2);
    }

    #[test]
    fn counted_zeros_read_as_recorded_ones() {
        // The same samples, once recorded one by one and once with the zeros only counted.
        let (mut each, mut counted) = (LagWindow::new(), LagWindow::new());
        for i in 0..1000u64 {
            let lag = if i % 10 == 9 { 2_000_000 + i } else { 0 };
            each.record(3, lag);
            if lag == 0 {
                counted.record_zero();
            } else {
                counted.record(3, lag);
            }
        }
        // 100 zeros after the last non-zero sample are still pending: the read counts them.
        for _ in 0..100 {
            each.record(3, 0);
            counted.record_zero();
        }
        assert_eq!(counted.quantiles(3), each.quantiles(3));
        assert_eq!(counted.buckets(3), each.buckets(3));
        assert_eq!(counted.quantiles(3).p50, 0);
        // Filed under the second of the flush, they leave the window with it.
        counted.flush(4);
        assert_eq!(counted.quantiles(4), each.quantiles(4));
        assert_eq!(counted.quantiles(3 + WINDOW_SECS as u64).count, 100);
        assert_eq!(counted.quantiles(4 + WINDOW_SECS as u64).count, 0);
        // Zeros counted after the fold of second 4 leave the window with that second, even if
        // the loop never ticks again to file them.
        counted.record_zero();
        assert_eq!(counted.quantiles(5).count, each.quantiles(5).count + 1);
        assert_eq!(counted.quantiles(4 + WINDOW_SECS as u64).count, 0);
    }
}
