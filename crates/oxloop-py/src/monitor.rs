//! Loop statistics and monitoring mode: what the loop does, cheap enough to leave on.
//!
//! Where it sits in a tick ([`crate::run_once`]):
//!
//! - always: a few integer counters per tick in [`Stats`] (ticks, callbacks run, I/O events) and
//!   one clock read per `run_forever` (uptime);
//! - with monitoring on ([`Active`]): per tick, a relaxed store before a poll that may block and
//!   one after the batch (the sampler counts time waiting in the poller from them), one load (has
//!   the sampler sampled since the last look?) and, after a poll that could block, one counter
//!   increment (a zero lag sample); the rest of the lag bookkeeping ([`Active::sample`]) runs
//!   only on ticks that find a timer due and once per sampling period. Per callback two relaxed
//!   stores before it (its sequence number, the running marker), one after (the marker cleared)
//!   and one relaxed load (has the sampler hit it?). No reference count moves per tick: the
//!   batch borrows the probe from the loop ([`ProbeSlot`]), and callbacks are numbered by
//!   [`Stats::callbacks`]. Off, the tick's per-callback cost is one predictable `Option` check.
//!
//! # Implementation
//!
//! Per-callback timing (two clock reads around a ~200 ns callback) would cost more than the
//! budget, so time is attributed by sampling. A watchdog thread (Rust, never holding the GIL while
//! it samples) wakes every `period` and reads [`Probe::seq`]: the sequence number of the callback
//! running now, or [`IDLE`] between batches. If a callback runs, it adds a hit to
//! [`Probe::hits`] (the time since its previous sample); the loop thread, after each callback,
//! sees the hits and hands them with the callback to the Python sink (`_sample`), which charges
//! that time to the callback's task.
//! A sequence number unchanged for half the slow threshold means the loop is held: the watchdog
//! then takes the GIL (which a blocked loop thread releases in `time.sleep`, or yields at the
//! interpreter's switch interval) and has the sink capture the loop thread's Python stack
//! (`_capture`) *while it blocks*, and keeps it only if [`Probe::running`] still holds that
//! number once the stack is taken: the loop thread clears the marker when the callback returns,
//! and cannot while the watchdog holds the GIL, so a stack taken while the loop did its own work
//! after the step (charging samples, recycling the handle) is never reported as the step's line.
//! When the number changes after at least the threshold, the
//! watchdog reports one slow event (`_slow`) with its duration (within one period) and that stack;
//! a loop still held after ten times the threshold (at least a second) is reported at once too
//! (`_blocking`), so a loop that never comes back is named.
//!
//! Time waiting in the poller is sampled too: before a poll that may block the loop thread
//! stores [`WAITING`] in [`Probe::seq`], and each sample that finds it there adds the time since
//! the previous sample to [`Probe::wait_ns`]. Busy time is the loop's running time (two clock
//! reads per `run_forever`) minus that.
//!
//! Loop lag is the time a tick's first entry waited: a due timer from its deadline (the tick read
//! the clock to find it due: exact, every such tick); I/O after a poll that could block from the
//! poll's end (zero, every such tick); entries queued by the previous batch, when no timer is due,
//! from the start of that batch (an upper bound), sampled: once per sampling period the watchdog
//! asks for a stamp ([`Probe::want_stamp`]), the next tick reads the clock as its batch starts and
//! the tick after it reads it again and records the sample. No clock read on the other ticks.
//! A callback that held the loop across samples is not missed: the watchdog keeps the longest
//! hold it saw ([`Probe::held_ns`]) and the next tick records it as a lag sample (within one
//! period), so a held loop shows in the lag with or without a timer.
//! The window's second comes from the watchdog too ([`Probe::second`]), so recording a lag reads
//! no clock. The zero lags of ticks after a poll that could block, most ticks of a network
//! server, are only counted ([`LagWindow::record_zero`]) and filed under the watchdog's second
//! when the loop thread next sees [`Probe::want_stamp`] (once per period) or records another
//! sample; a read of the window counts the ones not yet filed, so the quantiles are those of
//! every sample, as if each were recorded (`oxloop_core::stats` says more).
//!
//! The probe lives as long as its loop: [`PyLoop`] holds it in a [`ProbeSlot`], made by the first
//! [`monitor_start`] and reset by the next ones (the watchdog of the previous session was
//! joined), so a tick's [`Tick`] borrows it for the batch instead of cloning an `Arc`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oxloop_core::stats::LagWindow;
use oxloop_core::sys;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::event_loop::{PyLoop, Ready};
use crate::run_once::run_ready;

/// [`Probe::seq`] between batches: no callback runs.
pub const IDLE: u64 = 0;

/// [`Probe::seq`] while the loop thread is in a poll that may block.
pub const WAITING: u64 = u64::MAX;

/// What the loop thread and the watchdog share, lock-free.
pub struct Probe {
    /// Sequence number of the callback running now or, between two callbacks of a batch, of the
    /// one that ran last (the loop's work between them is charged to it); [`IDLE`] outside a
    /// batch, [`WAITING`] in a poll that may block. Written only by the loop thread.
    seq: AtomicU64,
    /// Sequence number of the callback whose code runs now, [`IDLE`] once it returned: a stack
    /// captured while it equals [`Probe::seq`] is that callback's. Written only by the loop
    /// thread.
    running: AtomicU64,
    /// Microseconds of loop time the watchdog's samples found a callback running, not yet
    /// charged to one (each sample counts the time since the previous one).
    hits: AtomicU64,
    /// Nanoseconds of samples that found the loop thread [`WAITING`]; written only by the
    /// watchdog.
    wait_ns: AtomicU64,
    /// Set by the watchdog at the end of each sample (after [`Probe::held_ns`] and
    /// [`Probe::second`], with release ordering), cleared by the loop thread when it takes a lag
    /// stamp: the one flag a tick checks to know whether anything but a zero lag is to record.
    want_stamp: AtomicBool,
    /// `sys::monotonic()` in whole seconds at the watchdog's last sample: the lag window's slot.
    second: AtomicU64,
    /// The longest time, in nanoseconds, the watchdog has seen one callback hold the loop since
    /// the loop thread last took it: entries queued behind it waited at least that long. The
    /// loop thread reads it after it sees [`Probe::want_stamp`].
    held_ns: AtomicU64,
    /// Set to end the watchdog.
    stop: AtomicBool,
    /// Slow-callback threshold in nanoseconds (`loop.slow_callback_duration`).
    threshold_ns: AtomicU64,
    /// Sampling period in nanoseconds; set before the watchdog starts.
    period_ns: AtomicU64,
}

/// Where a loop keeps its probe: empty until monitoring first starts, then the same probe for
/// the loop's life (a field of [`PyLoop`], so a batch's [`Tick`] can borrow it).
pub type ProbeSlot = OnceLock<Arc<Probe>>;

impl Probe {
    fn new() -> Self {
        Probe {
            seq: AtomicU64::new(IDLE),
            running: AtomicU64::new(IDLE),
            hits: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            want_stamp: AtomicBool::new(false),
            second: AtomicU64::new(0),
            held_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            threshold_ns: AtomicU64::new(0),
            period_ns: AtomicU64::new(0),
        }
    }

    /// Readies the probe for a new monitoring session; no watchdog runs.
    fn reset(&self, period: f64, threshold: f64) {
        for a in [&self.seq, &self.running, &self.hits, &self.wait_ns] {
            a.store(0, Ordering::Relaxed);
        }
        self.held_ns.store(0, Ordering::Relaxed);
        self.want_stamp.store(false, Ordering::Relaxed);
        self.second
            .store(sys::monotonic() as u64, Ordering::Relaxed);
        self.threshold_ns
            .store(secs_to_ns(threshold), Ordering::Relaxed);
        self.period_ns
            .store(secs_to_ns(period).max(100_000), Ordering::Relaxed);
        self.stop.store(false, Ordering::Release);
    }
}

/// Per-loop counters (always on) and the monitoring state (when on). Lives in the loop `State`.
#[derive(Default)]
pub struct Stats {
    /// Ticks run.
    pub ticks: u64,
    /// Ready entries run (callbacks, timers, I/O handlers).
    pub callbacks: u64,
    /// Readiness events returned by the poller.
    pub io_events: u64,
    /// Tasks `loop.create_task` returned (counted in `fastcall::create_task`).
    pub tasks_created: u64,
    /// Loop clock when the loop first ran; `None` until then.
    pub first_run: Option<f64>,
    /// Monitoring state; `None` when monitoring is off.
    pub active: Option<Box<Active>>,
}

/// Monitoring state of a loop.
pub struct Active {
    /// Shared with the watchdog; the one in the loop's [`ProbeSlot`].
    probe: Arc<Probe>,
    /// The Python `oxloop._monitor.Monitor` receiving samples and slow events.
    sink: Py<PyAny>,
    /// The watchdog thread, joined when monitoring stops.
    watchdog: Option<JoinHandle<()>>,
    /// Lag samples of the recent window.
    lag: LagWindow,
    /// Seconds the loop ran (inside `run_forever`) while monitored, excluding the current run.
    running: f64,
    /// Loop clock at the start of the current run, if running.
    run_start: Option<f64>,
    /// Loop clock when the previous batch started, if that tick read it (a timer was due, or
    /// the watchdog asked for a stamp); `None` otherwise.
    stamp: Option<f64>,
    /// This tick's poll could block.
    tick_blocking: bool,
    /// Loop clock when monitoring started.
    since: f64,
}

impl Stats {
    /// `run_forever` starts.
    pub fn run_begin(&mut self) {
        let now = sys::monotonic();
        self.first_run.get_or_insert(now);
        if let Some(a) = &mut self.active {
            a.run_start = Some(now);
            a.stamp = Some(now);
        }
    }

    /// `run_forever` ends.
    pub fn run_end(&mut self) {
        if let Some(a) = &mut self.active {
            if let Some(start) = a.run_start.take() {
                a.running += sys::monotonic() - start;
            }
        }
    }

    /// Step 1 of a tick: whether the poll may block.
    #[inline]
    pub fn before_poll(&mut self, blocking: bool) {
        self.ticks += 1;
        if let Some(a) = &mut self.active {
            a.tick_blocking = blocking;
            if blocking {
                a.probe.seq.store(WAITING, Ordering::Relaxed);
            }
        }
    }

    /// End of step 3: `nevents` came from the poll, `first_timer` is the deadline of the first due
    /// timer queued and the clock reading that found it due, `ntodo` entries will run. Returns the
    /// per-callback probe, borrowed from the loop's `slot`, when monitoring.
    #[inline]
    pub fn queued<'a>(
        &mut self,
        slot: &'a ProbeSlot,
        nevents: usize,
        first_timer: Option<(f64, f64)>,
        ntodo: usize,
    ) -> Option<Tick<'a>> {
        self.io_events += nevents as u64;
        let a = self.active.as_deref_mut()?;
        // NOTE: `Probe::seq` stays `WAITING` until the batch's first callback (or the end of an
        // empty batch): the sampler counts the few microseconds of queueing as waiting.
        // Acquire: a set flag makes the watchdog's `held_ns` and `second` of that sample visible.
        let want = a.probe.want_stamp.load(Ordering::Acquire);
        if first_timer.is_none() && !want && a.stamp.is_none() {
            // The common tick: no timer due, no stamp to take or use, no sample since the last
            // one. After a poll that could block its lag is zero, counted without a clock.
            if a.tick_blocking && ntodo > 0 {
                a.lag.record_zero();
            }
        } else {
            a.sample(first_timer, ntodo, want);
        }
        // Callbacks are numbered by the loop's count of them: no counter of the probe's own.
        Some(Tick {
            probe: slot.get()?,
            seq: self.callbacks,
        })
    }

    /// Step 4 ended after running `ran` entries.
    #[inline]
    pub fn batch_done(&mut self, ran: usize) {
        self.callbacks += ran as u64;
    }
}

/// The per-tick view of [`Probe`] the batch uses; dropping it marks the loop idle.
pub struct Tick<'a> {
    /// Shared with the watchdog; borrowed from the loop's [`ProbeSlot`].
    probe: &'a Probe,
    /// The last sequence number used: [`Stats::callbacks`] when the batch started, plus the
    /// callbacks run since (never [`IDLE`] once one ran, never [`WAITING`]).
    seq: u64,
}

impl Tick<'_> {
    /// Runs one ready entry under the sampler's eye.
    #[inline]
    pub fn run(&mut self, slf: &Bound<'_, PyLoop>, item: &Ready, debug: bool) -> PyResult<()> {
        self.seq += 1;
        let probe = self.probe;
        probe.seq.store(self.seq, Ordering::Relaxed);
        probe.running.store(self.seq, Ordering::Relaxed);
        // The hook runs once the callback returned and before its handle is emptied for reuse
        // (see `handles::recycle`), so a sampled callback is named without holding a reference
        // to every callback.
        run_ready(slf, item, debug, || {
            probe.running.store(IDLE, Ordering::Relaxed);
            if probe.hits.load(Ordering::Relaxed) != 0 {
                charge(slf, probe, item);
            }
        })
    }
}

/// Hands the hits the sampler took to the sink with what ran. Rare: at most once a period.
#[cold]
#[inline(never)]
fn charge(slf: &Bound<'_, PyLoop>, probe: &Probe, item: &Ready) {
    let py = slf.py();
    let hits = probe.hits.swap(0, Ordering::Relaxed);
    let sink = match &slf.get().state.borrow(py).stats.active {
        Some(a) => a.sink.clone_ref(py),
        None => return,
    };
    let what = match item {
        Ready::Handle(h) => h.get().cb.callback(py),
        Ready::Timer(t) => t.get().cb.callback(py),
        Ready::Native(n, _) => n.describe(py).ok().map(Bound::unbind),
    };
    if let Err(e) = sink.call_method1(py, intern!(py, "_sample"), (what, hits)) {
        e.write_unraisable(py, Some(sink.bind(py)));
    }
}

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        self.probe.seq.store(IDLE, Ordering::Relaxed);
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        // A loop collected without close(): the watchdog ends on its own at its next wake.
        self.probe.stop.store(true, Ordering::Release);
        if let Some(w) = &self.watchdog {
            w.thread().unpark();
        }
    }
}

/// The watchdog thread: samples [`Probe::seq`] every period (see the module docs).
fn watchdog(probe: Arc<Probe>, sink: Py<PyAny>) {
    let period = Duration::from_nanos(probe.period_ns.load(Ordering::Relaxed));
    let mut last = IDLE;
    let mut since = Instant::now();
    let mut capture: Option<Py<PyAny>> = None;
    let mut captured_at: Option<Instant> = None;
    let mut told_blocking = false;
    let mut woke = Instant::now();
    while !probe.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(period);
        if probe.stop.load(Ordering::Acquire) {
            break;
        }
        let now = Instant::now();
        // A late wake (a busy machine) stands for the time since the previous one, up to a cap.
        let slept = (now - woke).min(period * 25);
        woke = now;
        probe
            .second
            .store(sys::monotonic() as u64, Ordering::Relaxed);
        // Asks the loop thread for a stamp, publishing this sample's `held_ns` and `second`.
        let ask = || probe.want_stamp.store(true, Ordering::Release);
        let seq = probe.seq.load(Ordering::Relaxed);
        let threshold = Duration::from_nanos(probe.threshold_ns.load(Ordering::Relaxed));
        if seq != last {
            let held = now - since;
            if last != IDLE && last != WAITING && held >= threshold {
                let capture = capture.take();
                report(&sink, "_slow", held, capture);
            }
            capture = None;
            captured_at = None;
            told_blocking = false;
            last = seq;
            since = now;
        }
        if seq == WAITING {
            probe
                .wait_ns
                .fetch_add(slept.as_nanos() as u64, Ordering::Relaxed);
            ask();
            continue;
        }
        if seq == IDLE {
            ask();
            continue;
        }
        probe
            .hits
            .fetch_add(slept.as_micros() as u64, Ordering::Relaxed);
        let held = now - since;
        probe
            .held_ns
            .fetch_max(held.as_nanos() as u64, Ordering::Relaxed);
        ask();
        if held >= threshold / 2 && captured_at.is_none_or(|t| now - t >= threshold) {
            captured_at = Some(now);
            let got = Python::attach(|py| {
                let c = sink.call_method0(py, intern!(py, "_capture"));
                // The loop may have moved on while this thread waited for the GIL, to the next
                // callback or to its own work after this one returned: the stack is this
                // callback's only if it still runs (the loop thread cannot change `running`
                // while this thread holds the GIL, so the check covers the capture).
                if probe.running.load(Ordering::Relaxed) != seq {
                    return None;
                }
                match c {
                    Ok(c) => Some(c),
                    Err(e) => {
                        e.write_unraisable(py, Some(sink.bind(py)));
                        None
                    }
                }
            });
            if got.is_some() {
                capture = got;
            }
        }
        let long = (threshold * 10).max(Duration::from_secs(1));
        if !told_blocking && held >= long {
            told_blocking = true;
            let c = Python::attach(|py| capture.as_ref().map(|c| c.clone_ref(py)));
            report(&sink, "_blocking", held, c);
        }
    }
    Python::attach(move |_py| {
        drop(capture);
        drop(sink);
    });
}

/// Calls `sink.<method>(seconds, capture)` with the GIL.
fn report(sink: &Py<PyAny>, method: &str, held: Duration, capture: Option<Py<PyAny>>) {
    Python::attach(|py| {
        if let Err(e) = sink.call_method1(py, method, (held.as_secs_f64(), capture)) {
            e.write_unraisable(py, Some(sink.bind(py)));
        }
    });
}

/// Starts monitoring `loop_`: samples every `period` seconds, slow events over `threshold`
/// seconds go to `sink` (`_sample`, `_capture`, `_slow`, `_blocking`). No-op if already on.
#[pyfunction]
pub fn monitor_start(
    loop_: &Bound<'_, PyLoop>,
    sink: Bound<'_, PyAny>,
    period: f64,
    threshold: f64,
) -> PyResult<()> {
    let py = loop_.py();
    let this = loop_.get();
    let mut st = this.state.borrow_mut(py);
    if st.stats.active.is_some() {
        return Ok(());
    }
    // NOTE: the probe is reused by a later session: the previous watchdog was joined by
    // `monitor_stop` (`Active`'s drop, which does not join, only runs with the loop's state).
    let probe = Arc::clone(this.probe.get_or_init(|| Arc::new(Probe::new())));
    probe.reset(period, threshold);
    let thread_probe = Arc::clone(&probe);
    let thread_sink = sink.clone().unbind();
    let watchdog = std::thread::Builder::new()
        .name("oxloop-monitor".into())
        .spawn(move || watchdog(thread_probe, thread_sink))
        .map_err(|e| crate::errors::os_error(py, &e))?;
    let now = sys::monotonic();
    let running = st.thread_id.is_some();
    st.stats.active = Some(Box::new(Active {
        probe,
        sink: sink.unbind(),
        watchdog: Some(watchdog),
        lag: LagWindow::new(),
        running: 0.0,
        run_start: running.then_some(now),
        stamp: Some(now),
        tick_blocking: false,
        since: now,
    }));
    Ok(())
}

/// Stops monitoring `loop_` and joins the watchdog. No-op if off.
#[pyfunction]
pub fn monitor_stop(loop_: &Bound<'_, PyLoop>) {
    let py = loop_.py();
    let active = loop_.get().state.borrow_mut(py).stats.active.take();
    if let Some(mut active) = active {
        active.probe.stop.store(true, Ordering::Release);
        if let Some(w) = active.watchdog.take() {
            w.thread().unpark();
            // The watchdog may be waiting for the GIL: release it while joining.
            py.detach(move || {
                let _ = w.join();
            });
        }
        drop(active);
    }
}

/// Sets the slow-event threshold of a monitored loop, in seconds.
#[pyfunction]
pub fn monitor_threshold(loop_: &Bound<'_, PyLoop>, threshold: f64) {
    let py = loop_.py();
    if let Some(a) = &loop_.get().state.borrow(py).stats.active {
        a.probe
            .threshold_ns
            .store(secs_to_ns(threshold), Ordering::Relaxed);
    }
}

/// The loop's counters and, when monitored, its timings, as a dict (`oxloop.stats` builds the
/// public object from it).
#[pyfunction]
pub fn loop_stats<'py>(loop_: &Bound<'py, PyLoop>) -> PyResult<Bound<'py, PyDict>> {
    let py = loop_.py();
    let st = loop_.get().state.borrow(py);
    let s = &st.stats;
    let d = PyDict::new(py);
    let now = sys::monotonic();
    d.set_item("ticks", s.ticks)?;
    d.set_item("callbacks", s.callbacks)?;
    d.set_item("io_events", s.io_events)?;
    d.set_item("tasks_created", s.tasks_created)?;
    d.set_item("uptime", s.first_run.map_or(0.0, |t| now - t))?;
    d.set_item("monitoring", s.active.is_some())?;
    if let Some(a) = &s.active {
        let running = a.running + a.run_start.map_or(0.0, |t| now - t);
        let q = a.lag.quantiles(now as u64);
        d.set_item("monitored_for", now - a.since)?;
        d.set_item("running", running)?;
        let wait = a.probe.wait_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        d.set_item("wait", wait.min(running))?;
        d.set_item("lag_count", q.count)?;
        d.set_item("lag_p50", q.p50 as f64 * 1e-9)?;
        d.set_item("lag_p99", q.p99 as f64 * 1e-9)?;
        d.set_item("lag_max", q.max as f64 * 1e-9)?;
        let buckets: Vec<(f64, u64)> = a
            .lag
            .buckets(now as u64)
            .into_iter()
            .map(|(edge, n)| (edge as f64 * 1e-9, n))
            .collect();
        d.set_item("lag_buckets", buckets)?;
        d.set_item(
            "sample_period",
            a.probe.period_ns.load(Ordering::Relaxed) as f64 * 1e-9,
        )?;
    }
    Ok(d)
}

impl Active {
    /// A tick's lag sample and stamp, when it has a due timer, a stamp to use or take, or the
    /// watchdog sampled since the last such tick (`want`, already loaded; see the module docs).
    #[cold]
    #[inline(never)]
    fn sample(&mut self, first_timer: Option<(f64, f64)>, ntodo: usize, want: bool) {
        let probe = &*self.probe;
        let held = if want {
            probe.held_ns.swap(0, Ordering::Relaxed)
        } else {
            0
        };
        let stamp = self.stamp.take();
        // The clock reading that found a timer due, if any: reused, never read again here.
        let timer_now = first_timer.map(|(_, now)| now);
        // A clock read done here for this tick's lag sample.
        let mut read = None;
        let second = probe.second.load(Ordering::Relaxed);
        if want {
            probe.want_stamp.store(false, Ordering::Relaxed);
            self.lag.flush(second);
        }
        if ntodo > 0 {
            // In nanoseconds.
            let lag = match (first_timer, self.tick_blocking, stamp) {
                (None, true, _) => Some(0),
                (Some((when, now)), true, _) | (Some((when, now)), false, None) => {
                    Some(secs_to_ns(now - when))
                }
                (Some((when, now)), false, Some(s)) => Some(secs_to_ns(now - s.min(when))),
                (None, false, Some(s)) => Some(secs_to_ns(*read.insert(sys::monotonic()) - s)),
                (None, false, None) => (held != 0).then_some(0),
            };
            if let Some(lag) = lag {
                self.lag.record(second, lag.max(held));
            }
        }
        // Stamp this batch's start for the next tick when a timer's reading has it anyway, or
        // the watchdog asked for one (once per period). NOTE: not from `read`, unless asked:
        // stamping from the lag sample's own reading would sample, and read the clock, on every
        // tick from then on.
        if let Some(now) = timer_now {
            self.stamp = Some(now);
        } else if want {
            self.stamp = Some(read.unwrap_or_else(sys::monotonic));
        }
    }

    /// The sink, for the garbage collector.
    pub fn sink(&self) -> &Py<PyAny> {
        &self.sink
    }
}

fn secs_to_ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9) as u64
    } else {
        0
    }
}

/// Registers the module functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(monitor_start, m)?)?;
    m.add_function(wrap_pyfunction!(monitor_stop, m)?)?;
    m.add_function(wrap_pyfunction!(monitor_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(loop_stats, m)?)?;
    m.add_function(wrap_pyfunction!(loop_transports, m)?)?;
    Ok(())
}

/// The loop's open socket transports (asyncio's `loop._transports` values), for a graceful stop
/// that lets them flush.
#[pyfunction]
pub fn loop_transports(loop_: &Bound<'_, PyLoop>) -> Vec<Py<PyAny>> {
    let py = loop_.py();
    let st = loop_.get().state.borrow(py);
    st.fds.owners().map(|t| t.clone_ref(py)).collect()
}
