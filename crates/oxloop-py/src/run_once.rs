//! One loop tick. Mirrors `BaseEventLoop._run_once`; every decision is the core's
//! ([`oxloop_core::tick`]: the timeout, pruning, which timers are due, the batch boundary,
//! whether to poll). This file maps them to Python:
//!
//! 1. [`tick::prepare`]; the pruned timers are released once the state borrow ends;
//! 2. poll the reactor, releasing the GIL if the poll may block, then let a signal handler run;
//! 3. queue the handles of ready readers and writers ([`oxloop_core::registry::Registry::ready`];
//!    cancelled `add_reader` handles are removed instead), then [`tick::queue_due`];
//! 4. run exactly the callbacks queued when step 3 ended, with the GIL held for the whole batch.
//!
//! Loop statistics hook in at three points ([`crate::monitor::Stats`]): before the poll, after
//! queueing, after the batch; with monitoring on, each callback runs through
//! [`crate::monitor::Tick::run`].
//!
//! The per-callback hook point is [`run_ready`]: in debug mode each callback is timed and slow ones
//! are logged (`slow_callback_duration`) naming the handle or its task.

use oxloop_core::sys;
use oxloop_core::tick;
use pyo3::intern;
use pyo3::prelude::*;

use crate::errors;
use std::sync::Arc;

use crate::event_loop::{PyLoop, Ready, Watcher};

/// How often (in ticks) a busy loop, one that never releases the GIL to poll, drains PyO3's
/// deferred decrefs; a tick that releases it drains them when it takes the GIL back.
const DRAIN_EVERY: u64 = 64;

/// Runs one tick of `slf`.
pub fn run_once(slf: &Bound<'_, PyLoop>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();

    // 1. Prune and compute the timeout.
    let time_override = this.state.borrow(py).time_override;
    let mut pruned = Vec::new();
    let now = if time_override {
        now_overridden(slf)?
    } else {
        0.0
    };
    let (plan, mut events, ticks) = {
        let mut st = this.state.borrow_mut(py);
        let st = &mut *st;
        let watched = st.fds.watched() > 0;
        let plan = tick::prepare(
            &st.ready,
            &mut st.timers,
            &mut pruned,
            st.stopping,
            watched,
            || if time_override { now } else { sys::monotonic() },
        );
        st.stats.before_poll(plan.may_block());
        (plan, std::mem::take(&mut st.events), st.stats.ticks)
    };
    let timeout = plan.timeout;
    // NOTE: the emptiness check spares every tick without pruned timers the iterator's drop.
    if !pruned.is_empty() {
        release_pruned(py, pruned);
    }

    // 2. Poll. A zero-timeout poll cannot block: keep the GIL (a pending wake-up stays in the
    // eventfd and is consumed by the next blocking poll).
    events.clear();
    let polled = if !plan.may_block() {
        if plan.poll {
            match this.lock_reactor().as_mut() {
                None => Err(None),
                Some(reactor) => reactor
                    .poll(timeout)
                    .map(|ev| events.extend_from_slice(ev))
                    .map_err(Some),
            }
        } else {
            Ok(())
        }
    } else {
        let reactor = &this.reactor;
        let events = &mut events;
        py.detach(move || {
            let mut guard = reactor.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                None => Err(None),
                Some(reactor) => reactor
                    .poll(timeout)
                    .map(|ev| events.extend_from_slice(ev))
                    .map_err(Some),
            }
        })
    };
    let polled = match polled {
        // A signal ended the wait: no events; its Python handler runs just below.
        Err(Some(e)) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
        Err(Some(e)) => Err(errors::os_error(py, &e)),
        Err(None) => Err(errors::loop_closed()),
        Ok(()) => Ok(()),
    };
    if let Err(e) = polled {
        this.state.borrow_mut(py).events = events;
        return Err(e);
    }
    if !plan.may_block() && ticks % DRAIN_EVERY == 0 {
        // The GIL was kept: drain PyO3's deferred decrefs (see `fastcall::drain_deferred`).
        crate::fastcall::drain_deferred(py);
    }
    // Mirrors PEP 475 in `select.epoll.poll`: a signal that interrupted the wait runs its Python
    // handler now (Ctrl-C under asyncio.Runner, SIGINT's KeyboardInterrupt), not at the next
    // callback, which may be a day away. Outside the main thread this is a cheap no-op.
    if plan.may_block() {
        if let Err(e) = py.check_signals() {
            this.state.borrow_mut(py).events = events;
            return Err(e);
        }
    }

    // 3. Queue ready I/O handles, then due timers.
    let now_overridden = if time_override {
        Some(now_overridden(slf)?)
    } else {
        None
    };
    let mut cancelled_io = Vec::new();
    let mut first_timer = None;
    let (mut batch, mut probe) = {
        let mut st = this.state.borrow_mut(py);
        let st = &mut *st;
        let ready = &mut st.ready;
        st.fds.ready(&events, |fd, direction, watcher| {
            let entry = match watcher {
                // Mirrors _process_events: a cancelled reader/writer is removed, not run.
                Watcher::Handle(h) if h.get().cb.is_cancelled() => {
                    cancelled_io.push((fd, direction));
                    return;
                }
                Watcher::Handle(h) => Ready::Handle(h.clone_ref(py)),
                Watcher::Native(n) => Ready::Native(Arc::clone(n), direction),
            };
            ready.push(entry);
        });
        let nevents = events.len();
        st.events = events;
        let mut clock = None;
        tick::queue_due(
            &mut st.timers,
            &mut st.ready,
            || *clock.insert(now_overridden.unwrap_or_else(sys::monotonic)),
            |timer| {
                let t = timer.0.get();
                t.scheduled
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                first_timer.get_or_insert(t.when);
                Ready::Timer(timer.0)
            },
        );
        let ntodo = st.ready.len();
        // The clock reading that found the timer due doubles as the lag sample's (real time only).
        let due = first_timer.zip(clock).filter(|_| !time_override);
        let probe = st.stats.queued(&this.probe, nevents, due, ntodo);
        (st.ready.begin_tick(), probe)
    };
    for (fd, direction) in cancelled_io {
        this.unwatch(py, fd, direction)?;
    }

    // 4. Run what is ready now.
    let debug = this.debug(py);
    let mut ran = 0;
    let result = (|| {
        // `close()` from a callback empties the queue: the tick ends early then.
        loop {
            // NOTE: not `while let`: its temporary borrow would last through the callback.
            let Some(item) = this.state.borrow_mut(py).ready.next_in_tick(&mut batch) else {
                break;
            };
            ran += 1;
            // Monitoring off: this one predictable check is its whole per-callback cost.
            let result = match &mut probe {
                None => run_ready(slf, &item, debug, || {}),
                Some(probe) => probe.run(slf, &item, debug),
            };
            release_ran(py, item);
            result?;
        }
        Ok(())
    })();
    drop(probe);
    let mut st = this.state.borrow_mut(py);
    st.stats.batch_done(ran);
    drop(st);
    result
}

/// Mirrors _run_once's pruning, `handle._scheduled = False`; the loop's reference to each pruned
/// timer then goes to the pool (or to the collector if someone else holds the handle).
#[inline(never)]
fn release_pruned(py: Python<'_>, pruned: Vec<crate::event_loop::Scheduled>) {
    for t in pruned {
        let t = t.0.into_bound(py);
        t.get()
            .scheduled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        crate::handles::recycle(t);
    }
}

/// `self.time()` of a loop whose `time` is overridden (mirrors `_run_once` calling `self.time()`).
fn now_overridden(slf: &Bound<'_, PyLoop>) -> PyResult<f64> {
    slf.call_method0(intern!(slf.py(), "time"))?.extract()
}

/// The loop lets go of an entry that ran (or failed): a handle goes back to its pool if nobody
/// else holds it, or to the garbage collector if someone does ([`crate::handles::recycle`]).
/// The loop's reference moves there, so no `Py` drop (and its thread-local check) is left here.
#[inline(always)]
fn release_ran(py: Python<'_>, item: Ready) {
    match item {
        Ready::Handle(h) => crate::handles::recycle(h.into_bound(py)),
        Ready::Timer(t) => crate::handles::recycle(t.into_bound(py)),
        Ready::Native(..) => {}
    }
}

/// Runs one ready entry; in debug mode, times it and reports a slow callback. `ran` is called
/// once the callback returned, while its handle still holds it (the caller recycles the handle
/// afterwards, see [`release_ran`]); not if the entry fails before its callback runs (debug
/// mode's `describe`).
#[inline(always)]
pub fn run_ready(
    slf: &Bound<'_, PyLoop>,
    item: &Ready,
    debug: bool,
    ran: impl FnOnce(),
) -> PyResult<()> {
    let py = slf.py();
    if !debug {
        return match item {
            Ready::Handle(h) => {
                let result = h.get().cb.run(py, h.bind(py).as_any());
                ran();
                result
            }
            Ready::Timer(t) => {
                let result = t.get().cb.run(py, t.bind(py).as_any());
                ran();
                result
            }
            Ready::Native(n, direction) => {
                let result = n.ready(py, *direction);
                ran();
                result
            }
        };
    }
    // The debug path: what asyncio's `_run_once` does when `self._debug` is set. Debug mode keeps
    // every handle tracked by the garbage collector, as asyncio's are.
    match item {
        Ready::Handle(h) => crate::ffi::gc_track(h.bind(py).as_any()),
        Ready::Timer(t) => crate::ffi::gc_track(t.bind(py).as_any()),
        Ready::Native(..) => {}
    }
    let cancelled = match item {
        Ready::Handle(h) => h.get().cb.is_cancelled(),
        Ready::Timer(t) => t.get().cb.is_cancelled(),
        Ready::Native(..) => false,
    };
    if cancelled {
        ran();
        return Ok(());
    }
    let owner = match item {
        Ready::Handle(h) => h.bind(py).clone().into_any(),
        Ready::Timer(t) => t.bind(py).clone().into_any(),
        Ready::Native(n, _) => n.describe(py)?,
    };
    // NOTE: a native watcher's owner is a transport (or a server, a sock_* call), not a Handle:
    // asyncio's `default_exception_handler` reads `_current_handle._source_traceback`, and would
    // fail on it and lose the report (logging "Exception in default exception handler"). It stays
    // None, so a report from `data_received` in debug mode has no `handle_traceback` line.
    if !matches!(item, Ready::Native(..)) {
        slf.setattr(intern!(py, "_current_handle"), &owner)?;
    }
    let t0 = sys::monotonic();
    let result = match item {
        Ready::Handle(h) => h.get().cb.run(py, &owner),
        Ready::Timer(t) => t.get().cb.run(py, &owner),
        Ready::Native(n, direction) => n.ready(py, *direction),
    };
    let dt = sys::monotonic() - t0;
    ran();
    slf.setattr(intern!(py, "_current_handle"), py.None())?;
    result?;
    let slow: f64 = slf
        .getattr(intern!(py, "slow_callback_duration"))?
        .extract()?;
    if dt >= slow {
        slf.call_method1(intern!(py, "_log_slow_callback"), (owner, dt))?;
    }
    Ok(())
}
