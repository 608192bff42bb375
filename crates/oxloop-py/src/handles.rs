//! `Handle` and `TimerHandle`: the objects `call_soon`, `call_later`, `call_at`, `add_reader` and
//! `add_writer` return, with asyncio's methods and reprs (mirrors `asyncio/events.py`).
//!
//! A handle is run by the tick in [`crate::run_once`]: the callback is called inside its
//! `contextvars.Context`, and an exception goes to `loop.call_exception_handler` with the context
//! keys `Handle._run` uses. Only `SystemExit` and `KeyboardInterrupt` escape, stopping the loop.
//!
//! # Garbage collection
//! A handle that `call_soon`, `call_later` or `call_at` makes outside debug mode is not tracked by
//! the garbage collector while the loop holds it pending: every tracked allocation feeds the
//! young generation, and every collection would walk each pending handle. The loop, which is
//! tracked, reports instead what such a handle holds (callback, arguments, context) in its own
//! `__traverse__` ([`traverse_pending`]), as long as the loop's reference is the only one. A handle
//! someone else holds is given back to the collector: when the loop lets go of it ([`release`],
//! after it ran, was pruned or the loop closed) and, for handles still pending, at the start of
//! every full collection (`Loop._track_escaped`, called from a `gc.callbacks` hook). Until then
//! its contents count as reachable, which may delay collecting a cycle, never break one.
//!
//! The empty context copy a callback scheduled without `context=` gets (outside debug mode) from a
//! thread that set no variable is not tracked either (`ffi::untrack_empty_context`); it is tracked
//! again before it is entered, handed out by `get_context()`, or freed (a Context's deallocator
//! requires it).

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::event_loop::PyLoop;
use crate::ffi;
use crate::gil::GilCell;

/// What a handle runs, shared by `Handle` and `TimerHandle`.
pub struct Callback {
    /// The callback and its positional arguments; `None` once cancelled (asyncio drops them to
    /// break reference cycles early).
    target: GilCell<Option<(Py<PyAny>, Py<PyTuple>)>>,
    /// The `contextvars.Context` the callback runs in (dropped by `Drop`, see there).
    context: ManuallyDrop<Py<PyAny>>,
    /// Set once by `cancel()`; never cleared.
    cancelled: AtomicBool,
    /// The loop that scheduled this handle (dropped by `Drop`).
    loop_: ManuallyDrop<Py<PyLoop>>,
    /// Debug mode only: `format_helpers.extract_stack` of the scheduling call site.
    source_traceback: Option<Py<PyAny>>,
    /// Debug mode only: the repr captured at `cancel()`, so slow-callback logs still name it.
    repr: GilCell<Option<String>>,
}

impl Callback {
    /// A callback to run `callback(*args)` in `context` (a copy of the current one if `None`).
    pub fn new(
        slf: &Bound<'_, PyLoop>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        debug: bool,
    ) -> PyResult<Self> {
        let py = slf.py();
        let copied = context.is_none();
        let context = match context {
            Some(c) => c.unbind(),
            None => ffi::copy_context(py)?.unbind(),
        };
        let source_traceback = if debug {
            Some(extract_stack(py)?)
        } else {
            None
        };
        let cb = Self {
            target: GilCell::new(Some((callback.unbind(), args.unbind()))),
            context: ManuallyDrop::new(context),
            cancelled: AtomicBool::new(false),
            loop_: ManuallyDrop::new(slf.clone().unbind()),
            source_traceback,
            repr: GilCell::new(None),
        };
        // The copy asyncio makes is this `Callback`'s alone now, and `Drop` tracks it again before
        // letting go (see `ffi::untrack_empty_context`). Debug mode keeps it tracked, as it keeps
        // the handle.
        if copied && !debug {
            ffi::untrack_empty_context(cb.context.bind(py));
        }
        Ok(cb)
    }

    /// The callback, unless cancelled (the monitor names what it sampled by it).
    pub fn callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.target
            .borrow(py)
            .as_ref()
            .map(|(c, _)| c.clone_ref(py))
    }

    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the handle cancelled and drops its callback; `false` if it already was.
    fn cancel(&self, py: Python<'_>, owner: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.cancelled.swap(true, Ordering::Relaxed) {
            return Ok(false);
        }
        if self.loop_.get().debug(py) {
            let r = owner.repr()?.to_string();
            *self.repr.borrow_mut(py) = Some(r);
        }
        let dropped = self.target.borrow_mut(py).take();
        // After the borrow ends (dropping may run arbitrary Python code), as `Bound`s: a `Py`'s
        // drop checks PyO3's thread-local attach count first.
        drop(dropped.map(|(c, a)| (c.into_bound(py), a.into_bound(py))));
        Ok(true)
    }

    /// Runs the callback if not cancelled. `Err` only for `SystemExit`, `KeyboardInterrupt` or an
    /// error raised by the exception handler itself. Mirrors `Handle._run`.
    pub fn run(&self, py: Python<'_>, owner: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.is_cancelled() {
            return Ok(());
        }
        // NOTE: `Bound` clones, not `Py`: dropping a `Py` checks PyO3's thread-local GIL count.
        let (callback, args) = match &*self.target.borrow(py) {
            Some((c, a)) => (c.bind(py).clone(), a.bind(py).clone()),
            None => return Ok(()),
        };
        let context = self.context.bind(py);
        let result = if ffi::is_context(context) {
            ffi::run_in_context(context, || ffi::call_with_tuple(&callback, &args))
        } else {
            // Mirrors Handle._run: `self._context.run(callback, *args)` on whatever was passed as
            // `context=` (a non-Context fails there, with asyncio's error).
            let mut call = vec![callback.clone()];
            call.extend(args.iter());
            context
                .call_method1(intern!(py, "run"), PyTuple::new(py, call)?)
                .map(drop)
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) => self.fail(py, owner, &callback, &args, err),
        }
    }

    /// What `Handle._run` does with the exception `err` of `callback(*args)` (this handle's
    /// callback): `SystemExit` and `KeyboardInterrupt` come back out, the rest goes to
    /// `loop.call_exception_handler`.
    pub fn fail(
        &self,
        py: Python<'_>,
        owner: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        err: PyErr,
    ) -> PyResult<()> {
        if err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py) {
            return Err(err);
        }
        let debug = self.loop_.get().debug(py);
        let source = format_callback_source(py, callback, args, debug)?;
        let context = PyDict::new(py);
        context.set_item(
            intern!(py, "message"),
            format!("Exception in callback {source}"),
        )?;
        context.set_item(intern!(py, "exception"), err.value(py))?;
        context.set_item(intern!(py, "handle"), owner)?;
        if let Some(tb) = &self.source_traceback {
            if tb.bind(py).is_truthy()? {
                context.set_item(intern!(py, "source_traceback"), tb)?;
            }
        }
        self.loop_
            .bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (context,))?;
        Ok(())
    }

    /// asyncio's `Handle._repr_info`, with `extra` (the `when=` of timers) after the state.
    fn repr(&self, py: Python<'_>, class: &str, extra: Option<String>) -> PyResult<String> {
        if let Some(r) = &*self.repr.borrow(py) {
            return Ok(r.clone());
        }
        let mut info = vec![class.to_owned()];
        if self.is_cancelled() {
            info.push("cancelled".to_owned());
        }
        info.extend(extra);
        let target = self
            .target
            .borrow(py)
            .as_ref()
            .map(|(c, a)| (c.clone_ref(py), a.clone_ref(py)));
        if let Some((c, a)) = target {
            let debug = self.loop_.get().debug(py);
            info.push(format_callback_source(py, c.bind(py), a.bind(py), debug)?);
        }
        if let Some(tb) = &self.source_traceback {
            let tb = tb.bind(py);
            if tb.is_truthy()? {
                let frame = tb.get_item(-1)?;
                // NOTE: the attributes, not asyncio's `frame[0]` / `frame[1]`: indexing a
                // FrameSummary reads the source line too (linecache), which on 3.13 imports
                // `tokenize`, so that asyncio's own repr fails at interpreter exit.
                info.push(format!(
                    "created at {}:{}",
                    frame.getattr(intern!(py, "filename"))?,
                    frame.getattr(intern!(py, "lineno"))?
                ));
            }
        }
        Ok(format!("<{}>", info.join(" ")))
    }

    /// Reports what this callback holds to the garbage collector.
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(target) = self.target.try_borrow_in_gc() {
            if let Some((c, a)) = &*target {
                visit.call(c)?;
                visit.call(a)?;
            }
        }
        visit.call(&*self.context)?;
        visit.call(&*self.loop_)?;
        if let Some(tb) = &self.source_traceback {
            visit.call(tb)?;
        }
        Ok(())
    }

    fn callback_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.target
            .borrow(py)
            .as_ref()
            .map(|(c, _)| c.clone_ref(py))
    }

    fn args_attr(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.target
            .borrow(py)
            .as_ref()
            .map(|(_, a)| a.clone_ref(py))
    }
}

impl Drop for Callback {
    /// Releases the references with `Bound`s: a `Py`'s own drop checks PyO3's thread-local GIL
    /// count (a dynamic TLS lookup in a shared library) once per field, on every handle freed.
    fn drop(&mut self) {
        // SAFETY: a `Callback` lives inside a `Handle` or `TimerHandle`, Python objects that are
        // freed (or, on a failed allocation, dropped) only by a thread holding the GIL.
        let py = unsafe { Python::assume_attached() };
        if let Some((c, a)) = self.target.borrow_mut(py).take() {
            drop((c.into_bound(py), a.into_bound(py)));
        }
        // SAFETY: each field is taken once, here, and not used after.
        let (context, loop_) = unsafe {
            (
                ManuallyDrop::take(&mut self.context),
                ManuallyDrop::take(&mut self.loop_),
            )
        };
        let context = context.into_bound(py);
        // A Context's deallocator unlinks it from the collector's list unchecked: one that
        // `ffi::untrack_empty_context` stopped must be tracked again before it may be freed.
        ffi::track_context(&context);
        drop((context, loop_.into_bound(py)));
    }
}

/// Sets whether the garbage collector tracks a new handle (`Handle` or `TimerHandle`): in debug
/// mode, as asyncio's are, or when the loop does not hold it pending (a reader or writer);
/// otherwise the loop reports what it holds (see the module docs). A handle from the free list
/// starts untracked, a freshly allocated one tracked; `pooled` says which, so the common case
/// (an untracked handle from the pool that stays untracked) costs nothing.
#[inline]
fn set_tracking(handle: &Bound<'_, PyAny>, tracked: bool, pooled: bool) {
    if tracked {
        ffi::gc_track(handle);
    } else if !pooled {
        ffi::gc_untrack(handle);
    }
}

/// The loop's `__traverse__` for a handle it holds pending: a tracked handle is visited as an
/// object; an untracked one that only the loop holds is reported through its contents; an
/// untracked one someone else holds too is skipped (its contents then count as reachable, which
/// is safe) until `Loop._track_escaped` or [`release`] tracks it.
#[inline]
pub fn traverse_pending<T>(
    handle: &Py<T>,
    cb: &Callback,
    visit: &PyVisit<'_>,
) -> Result<(), PyTraverseError> {
    let ptr = handle.as_ptr();
    if ffi::gc_is_tracked(ptr) {
        return visit.call(handle);
    }
    // SAFETY: `handle` is a live object the loop holds a reference to; `__traverse__` runs with
    // the GIL held, so the count is stable while we read it.
    if unsafe { pyo3::ffi::Py_REFCNT(ptr) } == 1 {
        cb.traverse(visit)
    } else {
        Ok(())
    }
}

/// The loop lets go of a handle it held pending (it ran, was pruned, or the loop closed): if
/// anyone else still holds it, the garbage collector tracks it again from now on. `handle` is
/// the loop's own reference, about to be dropped.
#[inline]
pub fn release(handle: &Bound<'_, PyAny>) {
    // SAFETY: GIL held (the Bound proves it) and `handle` is live: reading its count is sound.
    if unsafe { pyo3::ffi::Py_REFCNT(handle.as_ptr()) } > 1 {
        ffi::gc_track(handle);
    }
}

/// The asyncio functions handles call in debug mode and in their reprs, looked up once.
struct AsyncioHelpers {
    /// `asyncio.format_helpers._format_callback_source`.
    format_callback_source: Py<PyAny>,
    /// Whether it takes `debug=` (Python 3.13+: a handle's arguments are only shown in debug
    /// mode).
    takes_debug: bool,
    /// `asyncio.format_helpers.extract_stack`.
    extract_stack: Py<PyAny>,
    /// `sys._getframe`.
    getframe: Py<PyAny>,
}

static HELPERS: PyOnceLock<AsyncioHelpers> = PyOnceLock::new();

/// Looks up [`AsyncioHelpers`]; the module's init calls it. NOTE: at import, not on first use: a
/// handle may be made, cancelled or repr'd for the first time by a finalizer at interpreter exit,
/// when nothing can be imported any more (`sys.meta_path is None`), and asyncio's own `Handle`
/// has these as module globals then.
pub fn import_helpers(py: Python<'_>) -> PyResult<()> {
    helpers(py).map(drop)
}

fn helpers(py: Python<'_>) -> PyResult<&AsyncioHelpers> {
    HELPERS.get_or_try_init(py, || {
        let format_helpers = py.import(intern!(py, "asyncio.format_helpers"))?;
        let func = format_helpers.getattr(intern!(py, "_format_callback_source"))?;
        let kwdefaults = func.getattr(intern!(py, "__kwdefaults__"))?;
        let takes_debug = !kwdefaults.is_none() && kwdefaults.contains(intern!(py, "debug"))?;
        Ok::<_, PyErr>(AsyncioHelpers {
            format_callback_source: func.unbind(),
            takes_debug,
            extract_stack: format_helpers
                .getattr(intern!(py, "extract_stack"))?
                .unbind(),
            getframe: py
                .import(intern!(py, "sys"))?
                .getattr(intern!(py, "_getframe"))?
                .unbind(),
        })
    })
}

/// `asyncio.format_helpers._format_callback_source(callback, args)`, with
/// `debug=loop.get_debug()` where the running Python's takes it (as its `Handle` passes it).
fn format_callback_source(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    debug: bool,
) -> PyResult<String> {
    let helpers = helpers(py)?;
    let func = helpers.format_callback_source.bind(py);
    if helpers.takes_debug {
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "debug"), debug)?;
        func.call((callback, args), Some(&kwargs))?.extract()
    } else {
        func.call1((callback, args))?.extract()
    }
}

/// `format_helpers.extract_stack(sys._getframe(0))`: called from Rust, frame 0 is the Python code
/// that called the loop method, which is where asyncio's trimmed traceback ends too.
fn extract_stack(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let helpers = helpers(py)?;
    let frame = helpers.getframe.bind(py).call1((0,))?;
    Ok(helpers.extract_stack.bind(py).call1((frame,))?.unbind())
}

/// A callback scheduled with `call_soon`, `call_soon_threadsafe`, `add_reader` or `add_writer`.
#[pyclass(frozen, weakref, module = "oxloop._oxloop")]
pub struct Handle {
    /// What runs.
    pub cb: Slot<Callback>,
}

/// How many run handles of each class [`recycle`] keeps for reuse.
const POOL_SIZE: usize = 1024;

/// `Handle` objects that ran while only the loop held them, emptied, for [`new_handle`] to fill
/// again: a handle that `call_soon` returns and nobody keeps is reused without a trip through
/// the allocator, its deallocator and PyO3's free list lock. Each is untracked by the collector,
/// has no weak reference and holds nothing, and nothing but this pool can reach it.
static POOL: GilCell<Vec<Py<Handle>>> = GilCell::new(Vec::new());

/// The same for `TimerHandle` ([`new_timer`]).
static TIMER_POOL: GilCell<Vec<Py<TimerHandle>>> = GilCell::new(Vec::new());

/// A handle's contents: always set, except while the handle sits in its pool.
pub struct Slot<T>(UnsafeCell<Option<T>>);

// SAFETY: the cell is written only by `recycle` and `new_handle`/`new_timer`, with the GIL
// held, on a handle no other thread or object can reach (see their docs); every other access
// reads it, with the GIL held. `T: Send` as the handle may be used by whichever thread holds it.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> std::ops::Deref for Slot<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the cell is only written while nothing else can reach the handle (so no shared
        // reference from here is alive then).
        match unsafe { &*self.0.get() } {
            Some(data) => data,
            None => unreachable!("a pooled handle is reachable only from its pool"),
        }
    }
}

impl<T> Slot<T> {
    fn new(data: T) -> Self {
        Self(UnsafeCell::new(Some(data)))
    }

    /// The contents, or `None` for a pooled handle (which no `__traverse__` should meet).
    fn get(&self) -> Option<&T> {
        // SAFETY: as in `deref`.
        unsafe { &*self.0.get() }.as_ref()
    }

    /// Fills a handle just taken from its pool.
    ///
    /// # Safety
    /// GIL held, and nothing but the caller can reach the handle: no reference into the cell.
    unsafe fn fill(&self, data: T) {
        // SAFETY: the caller's guarantee.
        unsafe { *self.0.get() = Some(data) };
    }

    /// Empties a handle about to go to its pool; the caller drops what it returns.
    ///
    /// # Safety
    /// As for [`Slot::fill`].
    unsafe fn take(&self) -> Option<T> {
        // SAFETY: the caller's guarantee.
        unsafe { (*self.0.get()).take() }
    }
}

/// A new `Handle` running `cb`, from the pool when it has one; `tracked` says whether the
/// garbage collector tracks it (see [`set_tracking`]).
pub fn new_handle(py: Python<'_>, cb: Callback, tracked: bool) -> PyResult<Py<Handle>> {
    let pooled = POOL.borrow_mut(py).pop();
    let (handle, pooled) = match pooled {
        Some(handle) => {
            // SAFETY: a pooled handle is reachable only through `handle`, just taken from the
            // pool; GIL held.
            unsafe { handle.get().cb.fill(cb) };
            (handle, true)
        }
        None => (Py::new(py, Handle { cb: Slot::new(cb) })?, false),
    };
    set_tracking(handle.bind(py).as_any(), tracked, pooled);
    Ok(handle)
}

/// A new `TimerHandle` holding `data`, from the pool when it has one; `tracked` as for
/// [`new_handle`].
pub fn new_timer(py: Python<'_>, data: TimerData, tracked: bool) -> PyResult<Py<TimerHandle>> {
    let pooled = TIMER_POOL.borrow_mut(py).pop();
    let (timer, pooled) = match pooled {
        Some(timer) => {
            // SAFETY: as in `new_handle`.
            unsafe { timer.get().data.fill(data) };
            (timer, true)
        }
        None => (
            Py::new(
                py,
                TimerHandle {
                    data: Slot::new(data),
                },
            )?,
            false,
        ),
    };
    set_tracking(timer.bind(py).as_any(), tracked, pooled);
    Ok(timer)
}

/// A handle class with a pool (see [`recycle`]).
pub trait Pooled: pyo3::PyClass + Sized {
    /// What the handle holds.
    type Data;
    /// Its contents.
    fn slot(&self) -> &Slot<Self::Data>;
    /// Its class's pool.
    fn pool() -> &'static GilCell<Vec<Py<Self>>>;
}

impl Pooled for Handle {
    type Data = Callback;
    fn slot(&self) -> &Slot<Callback> {
        &self.cb
    }
    fn pool() -> &'static GilCell<Vec<Py<Self>>> {
        &POOL
    }
}

impl Pooled for TimerHandle {
    type Data = TimerData;
    fn slot(&self) -> &Slot<TimerData> {
        &self.data
    }
    fn pool() -> &'static GilCell<Vec<Py<Self>>> {
        &TIMER_POOL
    }
}

/// The loop lets go of a handle that ran (see [`release`]): when nobody else holds it, it is
/// emptied and kept in its class's pool for reuse. `handle` is the loop's own reference, moved
/// into the pool or dropped here.
#[inline]
pub fn recycle<T: Pooled + pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
    handle: Bound<'_, T>,
) {
    let ptr = handle.as_ptr();
    // SAFETY: GIL held (the Bound proves it) and `handle` is live: reading its count is sound.
    if unsafe { pyo3::ffi::Py_REFCNT(ptr) } > 1 {
        ffi::gc_track(handle.as_any());
        return;
    }
    // A tracked handle (debug mode) or one with weak references is left to the allocator: the
    // collector or a weak reference could still reach it.
    if ffi::gc_is_tracked(ptr) || ffi::has_weakrefs(handle.as_any()) {
        return;
    }
    let py = handle.py();
    // SAFETY: only the loop's reference (moved in here) reaches the handle: no other object, no
    // weak reference, not the collector; no reference into its cell is alive.
    let old = unsafe { handle.get().slot().take() };
    let full = {
        let mut pool = T::pool().borrow_mut(py);
        if pool.len() < POOL_SIZE {
            pool.push(handle.unbind());
            None
        } else {
            Some(handle)
        }
    };
    // After the pool's borrow ends: dropping the contents may run arbitrary Python code.
    drop((full, old));
}

#[pymethods]
impl Handle {
    /// Cancel the callback. If the callback has already been cancelled or run, this is a no-op.
    pub fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().cb.cancel(slf.py(), slf.as_any()).map(drop)
    }

    /// Return True if the callback was cancelled.
    fn cancelled(&self) -> bool {
        self.cb.is_cancelled()
    }

    /// Return the `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        // Whoever gets it may fill it: see `ffi::untrack_empty_context`.
        ffi::track_context(self.cb.context.bind(py));
        self.cb.context.clone_ref(py)
    }

    #[getter(_callback)]
    fn callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.cb.callback_attr(py)
    }

    #[getter(_args)]
    fn args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.cb.args_attr(py)
    }

    #[getter(_cancelled)]
    fn cancelled_attr(&self) -> bool {
        self.cb.is_cancelled()
    }

    #[getter(_source_traceback)]
    fn source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.cb.source_traceback.as_ref().map(|t| t.clone_ref(py))
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> Py<PyLoop> {
        self.cb.loop_.clone_ref(py)
    }

    /// Run the callback now (asyncio's private `Handle._run`).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().cb.run(slf.py(), slf.as_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.cb.repr(py, "Handle", None)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.cb.get() {
            Some(cb) => cb.traverse(&visit),
            None => Ok(()),
        }
    }
}

/// A callback scheduled with `call_later` or `call_at`.
#[pyclass(frozen, weakref, module = "oxloop._oxloop")]
pub struct TimerHandle {
    /// Everything but the object itself, emptied while the handle sits in [`TIMER_POOL`].
    data: Slot<TimerData>,
}

/// What a `TimerHandle` holds.
pub struct TimerData {
    /// What runs.
    pub cb: Callback,
    /// The deadline on the loop's clock (`loop.time()`).
    pub when: f64,
    /// The deadline as passed to `call_at` when it was not a float (an int, say): `when()`
    /// returns it unchanged, as asyncio's `TimerHandle` keeps `_when`.
    pub when_obj: Option<Py<PyAny>>,
    /// True while the timer sits in the loop's timer queue (mirrors `TimerHandle._scheduled`);
    /// cancelling a scheduled timer is counted for lazy cancellation.
    pub scheduled: AtomicBool,
}

impl std::ops::Deref for TimerHandle {
    type Target = TimerData;

    #[inline]
    fn deref(&self) -> &TimerData {
        &self.data
    }
}

impl TimerHandle {
    /// asyncio's `TimerHandle.__eq__`: same when, callback, args and cancelled state (a
    /// cancelled handle has dropped its callback and args, as asyncio's does).
    fn same_as(&self, py: Python<'_>, o: &TimerHandle) -> PyResult<bool> {
        if self.when != o.when || self.cb.is_cancelled() != o.cb.is_cancelled() {
            return Ok(false);
        }
        let (mine, theirs) = (
            (self.cb.callback_attr(py), self.cb.args_attr(py)),
            (o.cb.callback_attr(py), o.cb.args_attr(py)),
        );
        match (mine, theirs) {
            ((Some(c1), Some(a1)), (Some(c2), Some(a2))) => {
                Ok(c1.bind(py).eq(c2.bind(py))? && a1.bind(py).eq(a2.bind(py))?)
            }
            ((None, None), (None, None)) => Ok(true),
            _ => Ok(false),
        }
    }
}

#[pymethods]
impl TimerHandle {
    /// Cancel the callback. If the callback has already been cancelled or run, this is a no-op.
    pub fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.cb.is_cancelled() && this.scheduled.load(Ordering::Relaxed) {
            this.cb.loop_.get().timer_cancelled(py);
        }
        this.cb.cancel(py, slf.as_any()).map(drop)
    }

    /// Return True if the callback was cancelled.
    fn cancelled(&self) -> bool {
        self.cb.is_cancelled()
    }

    /// Return the scheduled callback time (seconds on the loop's clock), as given.
    fn when(&self, py: Python<'_>) -> Py<PyAny> {
        self.when_value(py)
    }

    /// Return the `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        // Whoever gets it may fill it: see `ffi::untrack_empty_context`.
        ffi::track_context(self.cb.context.bind(py));
        self.cb.context.clone_ref(py)
    }

    #[getter(_when)]
    fn when_attr(&self, py: Python<'_>) -> Py<PyAny> {
        self.when_value(py)
    }

    #[getter(_scheduled)]
    fn scheduled_attr(&self) -> bool {
        self.scheduled.load(Ordering::Relaxed)
    }

    #[getter(_callback)]
    fn callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.cb.callback_attr(py)
    }

    #[getter(_args)]
    fn args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.cb.args_attr(py)
    }

    #[getter(_cancelled)]
    fn cancelled_attr(&self) -> bool {
        self.cb.is_cancelled()
    }

    #[getter(_source_traceback)]
    fn source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.cb.source_traceback.as_ref().map(|t| t.clone_ref(py))
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> Py<PyLoop> {
        self.cb.loop_.clone_ref(py)
    }

    /// Run the callback now (asyncio's private `Handle._run`).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().cb.run(slf.py(), slf.as_any())
    }

    // Mirrors asyncio's TimerHandle.__hash__: hash(self._when).
    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyFloat::new(py, self.when).hash()
    }

    // Mirrors asyncio's TimerHandle comparisons: <, > by when; == by (when, callback, args,
    // cancelled); <= and >= are < or ==, and > or ==.
    fn __richcmp__(
        &self,
        other: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Py<PyAny>> {
        use pyo3::basic::CompareOp;
        let py = other.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let o = other.get();
        let result = match op {
            CompareOp::Lt => self.when < o.when,
            CompareOp::Gt => self.when > o.when,
            CompareOp::Le => self.when < o.when || self.same_as(py, o)?,
            CompareOp::Ge => self.when > o.when || self.same_as(py, o)?,
            CompareOp::Eq => self.same_as(py, o)?,
            CompareOp::Ne => !self.same_as(py, o)?,
        };
        Ok(pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let when = self.when_value(py).bind(py).repr()?.to_string();
        self.cb
            .repr(py, "TimerHandle", Some(format!("when={when}")))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(data) = self.data.get() else {
            return Ok(());
        };
        visit.call(&data.when_obj)?;
        data.cb.traverse(&visit)
    }
}

impl TimerHandle {
    /// `_when`: the object given to `call_at`, or the float deadline.
    fn when_value(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.when_obj {
            Some(w) => w.clone_ref(py),
            None => PyFloat::new(py, self.when).into_any().unbind(),
        }
    }
}
