//! `oxloop._oxloop.Loop`: the scheduling and I/O-watching half of asyncio's event loop API.
//!
//! Each public method checks its guards (closed loop, thread in debug mode, callback shape) and
//! then does its core work on the state below. The Python package subclasses this class together
//! with `asyncio.AbstractEventLoop` and adds the cold glue (`run_until_complete`, exception
//! handlers, executors, async generator hooks); `run_forever` there drives [`PyLoop::_run`].

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use oxloop_core::reactor::{Event, Reactor, Waker};
use oxloop_core::ready::ReadyQueue;
pub use oxloop_core::registry::Direction;
use oxloop_core::registry::{Registry, Slot};
use oxloop_core::sys;
use oxloop_core::time::{Timer, TimerQueue};
use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::errors;
use crate::ffi;
use crate::gil::GilCell;
use crate::handles::{self, Callback, Handle, TimerData, TimerHandle};

/// An entry of the ready queue.
pub enum Ready {
    /// From `call_soon`, `call_soon_threadsafe`, or a ready reader/writer.
    Handle(Py<Handle>),
    /// A timer whose deadline passed.
    Timer(Py<TimerHandle>),
    /// A Rust-side watcher (a transport, a pending `sock_*` call) whose fd is ready: dispatched
    /// in queue order like asyncio's reader/writer handles, without a Python `Handle`.
    Native(Arc<dyn NativeWatcher>, Direction),
}

/// A Rust object watching an fd, called from the tick when the fd is ready.
///
/// Implementations hold their Python objects (`Py<...>`) and report them in `traverse`.
pub trait NativeWatcher: Send + Sync {
    /// The fd is ready in `direction`. Runs with the GIL held and the loop state released, in
    /// ready-queue order. Handle every error inside (protocol callbacks' errors go to the loop's
    /// exception handler, as asyncio does); return `Err` only for `SystemExit` and
    /// `KeyboardInterrupt`, which stop the loop.
    fn ready(&self, py: Python<'_>, direction: Direction) -> PyResult<()>;

    /// The object debug mode names (by its `str`) when this watcher is slow: the transport, say.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;

    /// Reports the Python objects this watcher holds to the garbage collector.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

/// What runs when a watched fd is ready.
pub enum Watcher {
    /// A Python callback from `add_reader` / `add_writer`.
    Handle(Py<Handle>),
    /// A Rust watcher (transports, `sock_*` calls).
    Native(Arc<dyn NativeWatcher>),
}

/// The loop's fd registry: readers and writers, the transport owning each fd (asyncio's
/// `loop._transports`), and the file object an fd was watched under.
pub type Fds = Registry<Watcher, Py<PyAny>, Py<PyAny>>;

/// Reports one registry slot's Python objects to the garbage collector.
fn traverse_slot(
    slot: &Slot<Watcher, Py<PyAny>, Py<PyAny>>,
    visit: &PyVisit<'_>,
) -> Result<(), PyTraverseError> {
    for watcher in [&slot.reader, &slot.writer].into_iter().flatten() {
        watcher.traverse(visit)?;
    }
    visit.call(&slot.owner)?;
    visit.call(&slot.fileobj)
}

impl Watcher {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Watcher::Handle(h) => visit.call(h),
            Watcher::Native(n) => n.traverse(visit),
        }
    }
}

/// A timer's deadline as `push_timer` gets it: computed (`call_later`), or as given to
/// `call_at`, converted only after the loop's guards, as asyncio's `call_at` does.
enum Deadline<'a, 'py> {
    /// Seconds on the loop's clock.
    Float(f64),
    /// The object passed (a float, an int, ...).
    Given(&'a Bound<'py, PyAny>),
}

/// A timer in the timer queue.
pub struct Scheduled(pub Py<TimerHandle>);

impl Timer for Scheduled {
    #[inline]
    fn cancelled(&self) -> bool {
        self.0.get().cb.is_cancelled()
    }
}

/// Loop state; touched only with the GIL held.
pub struct State {
    /// Callbacks to run; a tick runs what was queued when it began.
    pub ready: ReadyQueue<Ready>,
    /// `call_later` / `call_at` timers by deadline.
    pub timers: TimerQueue<Scheduled>,
    /// Every fd the loop watches or a transport owns; the reactor's interest is derived from it.
    pub fds: Fds,
    /// Events of the last poll; kept to reuse its allocation.
    pub events: Vec<Event>,
    /// `stop()` was called; `_run` returns after the current tick.
    pub stopping: bool,
    /// `close()` was called; every scheduling method raises.
    pub closed: bool,
    /// `threading.get_ident()` of the thread running the loop, while it runs.
    pub thread_id: Option<u64>,
    /// asyncio debug mode.
    pub debug: bool,
    /// `time` is overridden (an instance attribute or a subclass method): the scheduler then
    /// calls `self.time()` as asyncio's does, instead of reading the clock itself.
    pub time_override: bool,
    /// Counters, and the monitoring state when monitoring is on (`oxloop.stats`).
    pub stats: crate::monitor::Stats,
}

/// asyncio's event loop: ready queue, timers and I/O watching, in Rust.
#[pyclass(subclass, frozen, name = "Loop", module = "oxloop._oxloop")]
pub struct PyLoop {
    /// Everything Python-facing; see [`GilCell`].
    pub state: GilCell<State>,
    /// The poller; `None` once the loop is closed (its fds are closed then, as asyncio closes
    /// its selector). Locked by the loop thread around a poll (GIL released) and by methods that
    /// change interest (GIL held). Never held while calling into Python.
    pub reactor: Mutex<Option<Reactor>>,
    /// Ends a poll from another thread (`call_soon_threadsafe`).
    pub waker: Arc<Waker>,
    /// Monitoring's probe, shared with its watchdog; set when monitoring first starts.
    pub probe: crate::monitor::ProbeSlot,
}

/// `asyncio.coroutines`, for the rare checks that need it.
static COROUTINES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
/// `asyncio.Future`, for `create_future`; see [`future_class`].
static FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn coroutines(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    COROUTINES
        .get_or_try_init(py, || Ok(py.import("asyncio.coroutines")?.unbind()))
        .map(|m| m.bind(py))
}

/// `asyncio.coroutines._iscoroutinefunction` where it exists (3.14+, whose public
/// `iscoroutinefunction` is deprecated), else `iscoroutinefunction`: what `_check_callback` calls.
static ISCOROUTINEFUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn iscoroutinefunction(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    ISCOROUTINEFUNCTION
        .get_or_try_init(py, || {
            let module = coroutines(py)?;
            let private = intern!(py, "_iscoroutinefunction");
            let func = if module.hasattr(private)? {
                module.getattr(private)?
            } else {
                module.getattr(intern!(py, "iscoroutinefunction"))?
            };
            Ok::<_, PyErr>(func.unbind())
        })
        .map(|f| f.bind(py))
}

/// Looks up what the loop's methods take from asyncio ([`coroutines`], [`iscoroutinefunction`],
/// `asyncio.Future`); the module's init calls it. NOTE: at import, not on first use: debug mode's
/// checks of `call_soon` (say) may run for the first time in a finalizer at interpreter exit,
/// when nothing can be imported any more (`sys.meta_path is None`).
pub fn import_asyncio(py: Python<'_>) -> PyResult<()> {
    iscoroutinefunction(py)?;
    future_class(py)?;
    Ok(())
}

/// `asyncio.Future`, which `create_future` calls (here and in `fastcall`).
pub fn future_class(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    FUTURE.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("Future")?.unbind())
    })
}

impl PyLoop {
    /// `debug` flag, for handles.
    pub fn debug(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).debug
    }

    /// A scheduled timer was cancelled (mirrors `BaseEventLoop._timer_handle_cancelled`).
    pub fn timer_cancelled(&self, py: Python<'_>) {
        self.state.borrow_mut(py).timers.note_cancelled();
    }

    /// Locks the reactor from a thread holding the GIL. If the loop thread is polling, it is woken
    /// first so the wait is short.
    pub fn lock_reactor(&self) -> MutexGuard<'_, Option<Reactor>> {
        match self.reactor.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // NOTE: a failed wake only makes the wait longer; the lock still comes.
                let _ = self.waker.wake();
                self.reactor.lock().unwrap_or_else(|e| e.into_inner())
            }
        }
    }

    /// `_check_closed`, then in debug mode `_check_thread`. Returns the debug flag.
    fn guards(&self, py: Python<'_>, check_thread: bool) -> PyResult<bool> {
        let st = self.state.borrow(py);
        if st.closed {
            return Err(errors::loop_closed());
        }
        if st.debug && check_thread {
            if let Some(tid) = st.thread_id {
                if tid != ffi::thread_ident() {
                    return Err(errors::wrong_thread());
                }
            }
        }
        Ok(st.debug)
    }

    /// `BaseEventLoop._check_callback`. Non-callables and coroutine objects are refused always
    /// (asyncio checks only in debug mode; we check the cheap part always), coroutine functions
    /// in debug mode as asyncio does.
    fn check_callback(
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        method: &str,
        debug: bool,
    ) -> PyResult<()> {
        if !callback.is_callable() {
            let is_coro = coroutines(py)?.call_method1(intern!(py, "iscoroutine"), (callback,))?;
            if is_coro.is_truthy()? {
                return Err(errors::coroutine_callback(method));
            }
            return Err(errors::not_callable(method, callback));
        }
        if debug && iscoroutinefunction(py)?.call1((callback,))?.is_truthy()? {
            return Err(errors::coroutine_callback(method));
        }
        Ok(())
    }

    /// `call_soon` once its arguments are unpacked: guards, callback check, then queue.
    pub fn call_soon_core(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let debug = slf.get().guards(py, true)?;
        Self::check_callback(py, &callback, "call_soon", debug)?;
        Self::push_soon(slf, callback, args, context, debug)
    }

    /// Queues a new `Handle` (the core of `call_soon` and `call_soon_threadsafe`).
    fn push_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        debug: bool,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let handle = handles::new_handle(
            py,
            Callback::new(slf, callback, args, context, debug)?,
            debug,
        )?;
        slf.get()
            .state
            .borrow_mut(py)
            .ready
            .push(Ready::Handle(handle.clone_ref(py)));
        Ok(handle)
    }

    /// Queues a new `TimerHandle` at `when` (the core of `call_at` and `call_later`).
    fn push_timer(
        slf: &Bound<'_, Self>,
        when: Deadline<'_, '_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        // Mirrors call_at: _check_closed (and the debug checks) before the deadline is used.
        let debug = this.guards(py, true)?;
        Self::check_callback(py, &callback, "call_at", debug)?;
        // asyncio keeps `when` as given (`TimerHandle._when`): an int stays an int.
        let (when, when_obj) = match when {
            Deadline::Float(when) => (when, None),
            Deadline::Given(when) => match when.cast::<PyFloat>() {
                Ok(f) => (f.value(), None),
                Err(_) => (when.extract::<f64>()?, Some(when.clone().unbind())),
            },
        };
        let timer = handles::new_timer(
            py,
            TimerData {
                cb: Callback::new(slf, callback, args, context, debug)?,
                when,
                when_obj,
                scheduled: std::sync::atomic::AtomicBool::new(true),
            },
            debug,
        )?;
        this.state
            .borrow_mut(py)
            .timers
            .push(when, Scheduled(timer.clone_ref(py)));
        Ok(timer)
    }

    /// Sets `fd`'s reader or writer to a Python callback (the core of `add_reader` /
    /// `add_writer`); `check_transport` refuses an fd owned by a live transport.
    fn watch_handle(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        direction: Direction,
        check_transport: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // Mirrors add_reader: _ensure_fd_no_transport, then _add_reader's _check_closed, then
        // the selector's fd lookup.
        if check_transport {
            this.ensure_fd_no_transport(py, fd)?;
        }
        let debug = this.guards(py, false)?;
        let fileobj = fd;
        let fd = fileobj_to_fd(fd)?;
        if fileobj.is_instance_of::<PyBool>() && py.version_info() >= (3, 13) {
            // Mirrors select.epoll.register on 3.13+, which asyncio's selector calls.
            let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            PyErr::warn(py, &category, c"bool is used as a file descriptor", 1)?;
        }
        // A reader or writer stays registered until removed: the collector tracks it.
        let handle =
            handles::new_handle(py, Callback::new(slf, callback, args, None, debug)?, true)?;
        this.watch(py, fd, direction, Watcher::Handle(handle))?;
        if !fileobj.is_instance_of::<PyInt>() {
            let old = this
                .state
                .borrow_mut(py)
                .fds
                .set_fileobj(fd, fileobj.clone().unbind());
            drop(old);
        }
        Ok(())
    }

    /// Mirrors `selectors._BaseSelectorImpl._fileobj_lookup`: the fd of `fileobj`, or, when it
    /// has none any more (a closed socket's `fileno()` is -1), the fd it was watched under.
    /// `None` for an int too large to be an fd: nothing can be watched under it.
    fn lookup_fd(&self, py: Python<'_>, fileobj: &Bound<'_, PyAny>) -> PyResult<Option<RawFd>> {
        if fileobj.is_instance_of::<PyInt>() && fileobj.gt(RawFd::MAX)? {
            return Ok(None);
        }
        match fileobj_to_fd(fileobj) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyValueError>(py) => {
                let st = self.state.borrow(py);
                st.fds.find_fileobj(|o| o.is(fileobj)).map(Some).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes `watcher` run when `fd` is ready in `direction`, replacing (and cancelling) the
    /// previous watcher of that direction. Fails with `OSError` if the fd cannot be polled.
    pub fn watch(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: Watcher,
    ) -> PyResult<()> {
        let old = {
            let mut st = self.state.borrow_mut(py);
            if st.closed {
                return Err(errors::loop_closed());
            }
            let mut reactor = self.lock_reactor();
            let Some(reactor) = reactor.as_mut() else {
                return Err(errors::loop_closed());
            };
            match st.fds.watch(reactor, fd, direction, watcher) {
                Ok(old) => old,
                Err((e, watcher)) => {
                    drop(st);
                    drop(watcher);
                    return Err(errors::os_error(py, &e));
                }
            }
        };
        if let Some(Watcher::Handle(old)) = old {
            Handle::cancel(old.bind(py))?;
        }
        Ok(())
    }

    /// Registers `watcher` as [`PyLoop::watch`] does and returns its token: the address of its
    /// `Arc`, never 0, which [`PyLoop::watches`] recognises while it is still the fd's watcher.
    pub fn watch_native(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: Arc<dyn NativeWatcher>,
    ) -> PyResult<usize> {
        let token = Arc::as_ptr(&watcher) as *const () as usize;
        self.watch(py, fd, direction, Watcher::Native(watcher))?;
        Ok(token)
    }

    /// Whether the registration `token` (from [`PyLoop::watch_native`]) is still `fd`'s watcher
    /// for `direction` (`remove_reader`, a second watch or the loop's close may have replaced it).
    pub fn watches(&self, py: Python<'_>, fd: RawFd, direction: Direction, token: usize) -> bool {
        let st = self.state.borrow(py);
        matches!(
            st.fds.watcher(fd, direction),
            Some(Watcher::Native(n)) if Arc::as_ptr(n) as *const () as usize == token
        )
    }

    /// Removes `fd`'s watcher for `direction`; `true` if there was one (the core of
    /// `remove_reader` / `remove_writer`). A Python handle removed this way is cancelled.
    pub fn unwatch(&self, py: Python<'_>, fd: RawFd, direction: Direction) -> PyResult<bool> {
        let gone = {
            let mut st = self.state.borrow_mut(py);
            if st.closed {
                return Ok(false);
            }
            if st.fds.watcher(fd, direction).is_none() {
                return Ok(false);
            }
            let mut reactor = self.lock_reactor();
            let Some(reactor) = reactor.as_mut() else {
                return Ok(false);
            };
            st.fds.unwatch(reactor, fd, direction)
        };
        // The file object and the watcher are dropped after the borrow ends.
        drop(gone.fileobj);
        let old = gone.watcher;
        match old {
            Some(Watcher::Handle(h)) => {
                Handle::cancel(h.bind(py))?;
                Ok(true)
            }
            Some(Watcher::Native(n)) => {
                drop(n);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl PyLoop {
    /// Records `transport` as the owner of `fd` (asyncio's `loop._transports[fd] = transport`).
    pub fn register_transport(&self, py: Python<'_>, fd: RawFd, transport: Py<PyAny>) {
        let old = self.state.borrow_mut(py).fds.set_owner(fd, transport);
        drop(old);
    }

    /// Forgets `transport` as the owner of `fd`, if it still is.
    pub fn unregister_transport(&self, py: Python<'_>, fd: RawFd, transport: &Bound<'_, PyAny>) {
        let old = self
            .state
            .borrow_mut(py)
            .fds
            .release_owner(fd, |t| t.is(transport));
        drop(old);
    }

    /// Mirrors `BaseSelectorEventLoop._ensure_fd_no_transport`: `RuntimeError` if `fd` belongs to
    /// a transport that is not closing.
    pub fn ensure_fd_no_transport(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let fileno = if fd.is_instance_of::<PyInt>() {
            // An int too large for an fd cannot name a transport.
            let Ok(n) = fd.extract::<i64>() else {
                return Ok(());
            };
            n
        } else {
            fd.call_method0(intern!(py, "fileno"))
                .and_then(|n| py.get_type::<PyInt>().call1((n,)))
                .and_then(|n| n.extract::<i64>())
                .map_err(|e| {
                    if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py)
                        || e.is_instance_of::<PyTypeError>(py)
                        || e.is_instance_of::<pyo3::exceptions::PyValueError>(py)
                    {
                        errors::invalid_fileobj(fd)
                    } else {
                        e
                    }
                })?
        };
        let Ok(fileno) = RawFd::try_from(fileno) else {
            return Ok(());
        };
        let transport = self
            .state
            .borrow(py)
            .fds
            .owner(fileno)
            .map(|t| t.clone_ref(py));
        let Some(transport) = transport else {
            return Ok(());
        };
        let transport = transport.into_bound(py);
        if !transport
            .call_method0(intern!(py, "is_closing"))?
            .is_truthy()?
        {
            return Err(errors::fd_used_by_transport(fd, &transport));
        }
        Ok(())
    }
}

/// [`handles::release`] for every handle of a drained ready queue and timer heap.
fn release_all(py: Python<'_>, ready: &[Ready], timers: &[Scheduled]) {
    for r in ready {
        match r {
            Ready::Handle(h) => handles::release(h.bind(py).as_any()),
            Ready::Timer(t) => handles::release(t.bind(py).as_any()),
            Ready::Native(..) => {}
        }
    }
    for t in timers {
        handles::release(t.0.bind(py).as_any());
    }
}

/// `selectors._fileobj_to_fd`: an int, or an object whose `fileno()` gives one.
pub fn fileobj_to_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let py = obj.py();
    let fd: i64 = if obj.is_instance_of::<PyInt>() {
        obj.extract()?
    } else {
        let fileno = obj
            .call_method0(intern!(py, "fileno"))
            .and_then(|n| {
                n.call_method0(intern!(py, "__index__"))
                    .or_else(|_| n.call_method0(intern!(py, "__int__")))
            })
            .and_then(|n| n.extract::<i64>());
        match fileno {
            Ok(fd) => fd,
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py)
                    || e.is_instance_of::<PyTypeError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyValueError>(py) =>
            {
                return Err(errors::invalid_fileobj(obj))
            }
            Err(e) => return Err(e),
        }
    };
    if fd < 0 {
        return Err(errors::invalid_fd(fd));
    }
    RawFd::try_from(fd).map_err(|_| errors::invalid_fd(fd))
}

#[pymethods]
impl PyLoop {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let reactor = Reactor::new().map_err(|e| errors::os_error(py, &e))?;
        let waker = reactor.waker();
        Ok(Self {
            state: GilCell::new(State {
                ready: ReadyQueue::new(),
                timers: TimerQueue::new(),
                fds: Registry::new(),
                events: Vec::new(),
                stopping: false,
                closed: false,
                thread_id: None,
                debug: false,
                time_override: false,
                stats: crate::monitor::Stats::default(),
            }),
            reactor: Mutex::new(Some(reactor)),
            waker,
            probe: Default::default(),
        })
    }

    /// Return the time according to the event loop's clock (`time.monotonic()`'s clock).
    fn time(&self) -> f64 {
        sys::monotonic()
    }

    /// Arrange for a callback to be called as soon as possible, in FIFO order.
    ///
    /// NOTE: `fastcall::install` puts a faster entry point over this one; this method still
    /// serves the argument shapes that one hands back (and their errors).
    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::call_soon_core(slf, callback, args, context)
    }

    /// Like `call_soon()`, but thread-safe: wakes the loop if it is waiting for I/O.
    #[pyo3(signature = (callback, *args, context=None))]
    pub(crate) fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        let debug = this.guards(py, false)?;
        Self::check_callback(py, &callback, "call_soon_threadsafe", debug)?;
        let handle = Self::push_soon(slf, callback, args, context, debug)?;
        this.waker.wake().map_err(|e| errors::os_error(py, &e))?;
        Ok(handle)
    }

    /// Arrange for a callback to be called after `delay` seconds.
    #[pyo3(signature = (delay, callback, *args, context=None))]
    pub(crate) fn call_later(
        slf: &Bound<'_, Self>,
        delay: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        if slf.get().state.borrow(py).time_override {
            // Mirrors call_later: `self.call_at(self.time() + delay, ...)`.
            let when = slf.call_method0(intern!(py, "time"))?.add(delay)?;
            return Self::push_timer(slf, Deadline::Given(&when), callback, args, context);
        }
        let delay: f64 = delay.extract().map_err(|_| {
            let tname = delay
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            PyTypeError::new_err(format!(
                "unsupported operand type(s) for +: 'float' and '{tname}'"
            ))
        })?;
        let when = Deadline::Float(sys::monotonic() + delay);
        Self::push_timer(slf, when, callback, args, context)
    }

    /// Arrange for a callback to be called at time `when` on the loop's clock.
    #[pyo3(signature = (when, callback, *args, context=None))]
    pub(crate) fn call_at(
        slf: &Bound<'_, Self>,
        when: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        Self::push_timer(slf, Deadline::Given(when), callback, args, context)
    }

    /// Stop running the event loop after the current tick.
    fn stop(&self, py: Python<'_>) {
        self.state.borrow_mut(py).stopping = true;
    }

    /// Return whether the event loop is currently running.
    fn is_running(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).thread_id.is_some()
    }

    /// Return True if the event loop was closed.
    fn is_closed(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closed
    }

    /// Return the debug mode flag.
    fn get_debug(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).debug
    }

    /// Set the debug mode flag (the Python subclass adds coroutine origin tracking).
    fn set_debug(&self, py: Python<'_>, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        self.state.borrow_mut(py).debug = enabled.is_truthy()?;
        Ok(())
    }

    /// Create a Future object attached to the loop.
    fn create_future(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let future = future_class(py)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "loop"), slf)?;
        Ok(future.bind(py).call((), Some(&kwargs))?.unbind())
    }

    /// Start watching the file descriptor for read availability.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        Self::watch_handle(slf, fd, callback, args, Direction::Read, true)
    }

    /// Start watching the file descriptor for write availability.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        Self::watch_handle(slf, fd, callback, args, Direction::Write, true)
    }

    /// Stop watching the file descriptor for read availability; True if it was watched.
    fn remove_reader(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.ensure_fd_no_transport(py, fd)?;
        self._remove_reader(py, fd)
    }

    /// Stop watching the file descriptor for write availability; True if it was watched.
    fn remove_writer(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.ensure_fd_no_transport(py, fd)?;
        self._remove_writer(py, fd)
    }

    /// `add_reader` without the transport ownership check (asyncio's private `_add_reader`).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        Self::watch_handle(slf, fd, callback, args, Direction::Read, false)
    }

    /// `add_writer` without the transport ownership check (asyncio's private `_add_writer`).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        Self::watch_handle(slf, fd, callback, args, Direction::Write, false)
    }

    /// `remove_reader` without the transport ownership check (asyncio's private `_remove_reader`).
    fn _remove_reader(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.is_closed(py) {
            return Ok(false);
        }
        match self.lookup_fd(py, fd)? {
            Some(fd) => self.unwatch(py, fd, Direction::Read),
            None => Ok(false),
        }
    }

    /// `remove_writer` without the transport ownership check (asyncio's private `_remove_writer`).
    fn _remove_writer(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.is_closed(py) {
            return Ok(false);
        }
        match self.lookup_fd(py, fd)? {
            Some(fd) => self.unwatch(py, fd, Direction::Write),
            None => Ok(false),
        }
    }

    /// `BaseSelectorEventLoop._ensure_fd_no_transport`, for the Python half (`sock_*` methods).
    fn _ensure_fd_no_transport(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        self.ensure_fd_no_transport(py, fd)
    }

    /// Records `transport` as the owner of `fd` (asyncio's `loop._transports[fd] = transport`).
    fn _register_transport(&self, py: Python<'_>, fd: RawFd, transport: Py<PyAny>) {
        self.register_transport(py, fd, transport);
    }

    /// Forgets `transport` as the owner of `fd`, if it still is.
    fn _unregister_transport(&self, py: Python<'_>, fd: RawFd, transport: &Bound<'_, PyAny>) {
        self.unregister_transport(py, fd, transport);
    }

    /// Runs ticks until `stop()`; the Python `run_forever` wraps it with asyncio's set-up.
    ///
    /// `tick`, if given, is called for each tick instead of the Rust tick: `run_forever` passes a
    /// `_run_once` that was patched on the instance (as asyncio's own tests do to count ticks).
    #[pyo3(signature = (tick=None))]
    fn _run(slf: &Bound<'_, Self>, tick: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            st.thread_id = Some(ffi::thread_ident());
            st.stats.run_begin();
        }
        let result = loop {
            let ran = match &tick {
                None => crate::run_once::run_once(slf),
                Some(tick) => tick.call0().map(drop),
            };
            if let Err(e) = ran {
                break Err(e);
            }
            if this.state.borrow(py).stopping {
                break Ok(());
            }
        };
        let mut st = this.state.borrow_mut(py);
        st.stopping = false;
        st.thread_id = None;
        st.stats.run_end();
        result
    }

    /// One tick (asyncio's private `_run_once`).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        crate::run_once::run_once(slf)
    }

    /// Marks the loop closed and drops every pending callback, timer and watch; the Python
    /// `close()` wraps it with asyncio's checks and executor shutdown.
    fn _close(&self, py: Python<'_>) {
        let (ready, timers, fds) = {
            let mut st = self.state.borrow_mut(py);
            st.closed = true;
            let ready: Vec<Ready> = st.ready.drain().collect();
            let timers: Vec<Scheduled> = st.timers.drain().collect();
            (ready, timers, st.fds.drain())
        };
        // Mirrors BaseSelectorEventLoop.close closing its selector: the epoll fd and the
        // waker's eventfd are released now, not when the loop object is collected.
        if let Some(mut reactor) = self.lock_reactor().take() {
            reactor.close();
        }
        for t in &timers {
            t.0.get().scheduled.store(false, Ordering::Relaxed);
        }
        release_all(py, &ready, &timers);
        drop((ready, timers, fds));
    }

    /// Gives every pending handle that someone besides the loop holds back to the garbage
    /// collector (see `handles`); the `gc.callbacks` hook calls it before each full collection.
    fn _track_escaped(&self, py: Python<'_>) {
        let st = self.state.borrow(py);
        for r in st.ready.iter() {
            match r {
                Ready::Handle(h) => handles::release(h.bind(py).as_any()),
                Ready::Timer(t) => handles::release(t.bind(py).as_any()),
                Ready::Native(..) => {}
            }
        }
        for t in st.timers.iter() {
            handles::release(t.0.bind(py).as_any());
        }
    }

    /// The id of the thread running the loop, or None (asyncio's private `_thread_id`).
    #[getter(_thread_id)]
    fn thread_id(&self, py: Python<'_>) -> Option<u64> {
        self.state.borrow(py).thread_id
    }

    /// Whether `stop()` was called during this run (asyncio's private `_stopping`).
    #[getter(_stopping)]
    fn stopping(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).stopping
    }

    /// Setting it False cancels a pending `stop()`, as assigning asyncio's attribute does (Sanic
    /// does so before `run_forever`).
    #[setter(_stopping)]
    fn set_stopping(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.state.borrow_mut(py).stopping = value.is_truthy()?;
        Ok(())
    }

    /// Whether the loop was closed (asyncio's private `_closed`).
    #[getter(_closed)]
    fn closed_attr(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closed
    }

    /// Whether `time` is overridden; see `State::time_override`. The Python `__init__` sets it
    /// for a subclass overriding `time`; assigning or deleting the `time` attribute updates it.
    #[getter(_time_override)]
    fn time_override(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).time_override
    }

    #[setter(_time_override)]
    fn set_time_override(&self, py: Python<'_>, value: bool) {
        self.state.borrow_mut(py).time_override = value;
    }

    fn __setattr__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, pyo3::types::PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        ffi::generic_setattr(slf.as_any(), name, Some(value))?;
        if name.to_str()? == "time" {
            slf.get().state.borrow_mut(slf.py()).time_override = true;
        }
        Ok(())
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, pyo3::types::PyString>) -> PyResult<()> {
        let py = slf.py();
        ffi::generic_setattr(slf.as_any(), name, None)?;
        if name.to_str()? == "time" {
            // Back to the class's `time`: overridden only if a subclass defines its own.
            let base = py.get_type::<PyLoop>().getattr(intern!(py, "time"))?;
            let own = slf.get_type().getattr(intern!(py, "time"))?;
            slf.get().state.borrow_mut(py).time_override = !own.is(&base);
        }
        Ok(())
    }

    /// Number of queued ready callbacks (asyncio's `len(loop._ready)`).
    fn _ready_count(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).ready.len()
    }

    /// Number of scheduled timers, cancelled ones included (asyncio's `len(loop._scheduled)`).
    fn _timer_count(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).timers.len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(st) = self.state.try_borrow_in_gc() else {
            return Ok(());
        };
        for r in st.ready.iter() {
            match r {
                Ready::Handle(h) => handles::traverse_pending(h, &h.get().cb, &visit)?,
                Ready::Timer(t) => handles::traverse_pending(t, &t.get().cb, &visit)?,
                Ready::Native(n, _) => n.traverse(&visit)?,
            }
        }
        for t in st.timers.iter() {
            handles::traverse_pending(&t.0, &t.0.get().cb, &visit)?;
        }
        for slot in st.fds.slots() {
            traverse_slot(slot, &visit)?;
        }
        if let Some(a) = &st.stats.active {
            visit.call(a.sink())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let (ready, timers, fds) = {
                let Some(mut st) = self.state.try_borrow_mut_in_gc(py) else {
                    return;
                };
                let ready: Vec<Ready> = st.ready.drain().collect();
                let timers: Vec<Scheduled> = st.timers.drain().collect();
                (ready, timers, st.fds.drain())
            };
            release_all(py, &ready, &timers);
            drop((ready, timers, fds));
        });
    }
}
