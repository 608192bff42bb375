//! One loop tick. Mirrors `BaseEventLoop._run_once`:
//!
//! 1. drop cancelled timers (lazily) and compute the poll timeout: zero if callbacks are ready or
//!    the loop is stopping, else until the earliest timer (at most a day), else forever;
//! 2. poll the reactor, releasing the GIL if the poll may block;
//! 3. queue the handles of ready readers and writers (dropping cancelled ones), then due timers;
//! 4. run exactly the callbacks queued when step 3 ended, with the GIL held for the whole batch.
//!
//! The per-callback hook point is [`run_ready`]: in debug mode each callback is timed and slow ones
//! are logged (`slow_callback_duration`) naming the handle or its task.

use std::time::Duration;

use oxloop_core::sys;
use pyo3::intern;
use pyo3::prelude::*;

use crate::errors;
use std::sync::Arc;

use crate::event_loop::{Direction, PyLoop, Ready, Watcher};

/// Mirrors `MAXIMUM_SELECT_TIMEOUT` in `asyncio/base_events.py`.
const MAXIMUM_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

/// Runs one tick of `slf`.
pub fn run_once(slf: &Bound<'_, PyLoop>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();

    // 1. Prune and compute the timeout.
    let mut pruned = Vec::new();
    let (timeout, poll, mut events) = {
        let mut st = this.state.borrow_mut(py);
        st.timers.prune(&mut pruned);
        let timeout = if !st.ready.is_empty() || st.stopping {
            Some(Duration::ZERO)
        } else {
            st.timers.next_deadline().map(|when| {
                let t = (when - sys::monotonic()).clamp(0.0, MAXIMUM_SELECT_TIMEOUT);
                Duration::from_secs_f64(t)
            })
        };
        // A zero-timeout poll is skipped when no fd is watched, and when the previous tick polled:
        // callbacks queued by I/O handlers then run at once, as libuv runs them in the same
        // iteration, instead of costing one empty poll each. The next tick polls again, so a loop
        // that always has callbacks ready still sees I/O every other tick.
        let poll =
            timeout != Some(Duration::ZERO) || (!st.watches.is_empty() && !st.polled_last_tick);
        st.polled_last_tick = poll;
        (timeout, poll, std::mem::take(&mut st.events))
    };
    drop(pruned);

    // 2. Poll. A zero-timeout poll cannot block: keep the GIL (a pending wake-up stays in the
    // eventfd and is consumed by the next blocking poll).
    events.clear();
    let polled = if timeout == Some(Duration::ZERO) {
        if poll {
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
    // Mirrors PEP 475 in `select.epoll.poll`: a signal that interrupted the wait runs its Python
    // handler now (Ctrl-C under asyncio.Runner, SIGINT's KeyboardInterrupt), not at the next
    // callback, which may be a day away. Outside the main thread this is a cheap no-op.
    if timeout != Some(Duration::ZERO) {
        if let Err(e) = py.check_signals() {
            this.state.borrow_mut(py).events = events;
            return Err(e);
        }
    }

    // 3. Queue ready I/O handles, then due timers.
    let mut cancelled_io = Vec::new();
    let mut tick = {
        let mut st = this.state.borrow_mut(py);
        for ev in &events {
            for (ready, direction) in [
                (ev.readable, Direction::Read),
                (ev.writable, Direction::Write),
            ] {
                if !ready {
                    continue;
                }
                let Some(watch) = st.watches.get(&ev.fd) else {
                    continue;
                };
                let slot = match direction {
                    Direction::Read => &watch.reader,
                    Direction::Write => &watch.writer,
                };
                let entry = match slot {
                    None => continue,
                    // Mirrors _process_events: a cancelled reader/writer is removed, not run.
                    Some(Watcher::Handle(h)) if h.get().cb.is_cancelled() => {
                        cancelled_io.push((ev.fd, direction));
                        continue;
                    }
                    Some(Watcher::Handle(h)) => Ready::Handle(h.clone_ref(py)),
                    Some(Watcher::Native(n)) => Ready::Native(Arc::clone(n), direction),
                };
                st.ready.push(entry);
            }
        }
        st.events = events;
        let now = if st.timers.is_empty() {
            0.0
        } else {
            sys::monotonic()
        };
        while let Some(timer) = st.timers.pop_due(now) {
            timer
                .0
                .get()
                .scheduled
                .store(false, std::sync::atomic::Ordering::Relaxed);
            st.ready.push(Ready::Timer(timer.0));
        }
        st.ready.begin_tick()
    };
    for (fd, direction) in cancelled_io {
        this.unwatch(py, fd, direction)?;
    }

    // 4. Run what is ready now.
    let debug = this.debug(py);
    // `close()` from a callback empties the queue: the tick ends early then.
    loop {
        let Some(item) = this.state.borrow_mut(py).ready.next_in_tick(&mut tick) else {
            break;
        };
        run_ready(slf, item, debug)?;
    }
    Ok(())
}

/// Runs one ready entry; in debug mode, times it and reports a slow callback.
#[inline]
fn run_ready(slf: &Bound<'_, PyLoop>, item: Ready, debug: bool) -> PyResult<()> {
    let py = slf.py();
    if !debug {
        return match &item {
            Ready::Handle(h) => h.get().cb.run(py, h.bind(py).as_any()),
            Ready::Timer(t) => t.get().cb.run(py, t.bind(py).as_any()),
            Ready::Native(n, direction) => n.ready(py, *direction),
        };
    }
    // The debug path: what asyncio's `_run_once` does when `self._debug` is set.
    let owner = match &item {
        Ready::Handle(h) if h.get().cb.is_cancelled() => return Ok(()),
        Ready::Timer(t) if t.get().cb.is_cancelled() => return Ok(()),
        Ready::Handle(h) => h.bind(py).clone().into_any(),
        Ready::Timer(t) => t.bind(py).clone().into_any(),
        Ready::Native(n, _) => n.describe(py)?,
    };
    slf.setattr(intern!(py, "_current_handle"), &owner)?;
    let t0 = sys::monotonic();
    let result = match &item {
        Ready::Handle(h) => h.get().cb.run(py, &owner),
        Ready::Timer(t) => t.get().cb.run(py, &owner),
        Ready::Native(n, direction) => n.ready(py, *direction),
    };
    let dt = sys::monotonic() - t0;
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
