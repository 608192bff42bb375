//! `Loop.call_soon` (and `call_soon_threadsafe`, `call_later`, `call_at`) read straight from the
//! vectorcall arguments.
//!
//! CPython's C `Task` calls `loop.call_soon(step, context=ctx)` on every step, and futures call
//! it for every done callback, so the argument handling of `call_soon` is on the hottest path of
//! an asyncio program. PyO3's generic extraction (descriptions, keyword matching, a varargs
//! tuple built item by item) costs about a tenth of the whole call. At module import,
//! [`install`] puts a `METH_FASTCALL | METH_KEYWORDS` method descriptor over PyO3's `call_soon`
//! (and over its siblings, which take the same shapes after their `delay` or `when`):
//! it takes the two shapes asyncio uses (positional arguments, and the one keyword `context`)
//! directly, and hands every other shape (no callback, an unknown or repeated keyword) to PyO3's
//! method, so argument errors read as before.
//!
//! The same mechanism serves the no-argument methods asyncio calls per future, task or timer:
//! `Loop.get_debug` (every `Future` and `Task` asks), `Loop.create_future`, and `cancel` of
//! `Handle` and `TimerHandle`; a call with arguments goes to PyO3's method, which refuses it.
//!
//! CPython calls these entries through [`entry`], our own trampoline rather than PyO3's: PyO3's
//! bumps its thread-local attach count on the way in and out (two dynamic TLS lookups in a
//! shared library) and checks its deferred-decref pool (measured: about 60 instructions of a
//! `call_soon`'s 2,400 on 3.11).
//! [`entry`] keeps the part that matters for soundness (no panic unwinds into C) and leaves the
//! count alone; its SAFETY comment says why that is sound, and the tick drains PyO3's pool
//! ([`drain_deferred`]), which PyO3's trampoline would otherwise have done on these calls.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use pyo3::{ffi, intern};

use crate::event_loop::PyLoop;
use crate::handles::{Handle, TimerHandle};

/// PyO3's own descriptors of the methods below: the slow path for unusual argument shapes.
static SLOW_CALL_SOON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_CALL_SOON_THREADSAFE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_CALL_LATER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_CALL_AT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_GET_DEBUG: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_CREATE_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_HANDLE_CANCEL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SLOW_TIMER_CANCEL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// asyncio's own `create_task` (borrowed, see `_borrowed.py`): the slow path of [`create_task`].
static SLOW_CREATE_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `asyncio.tasks`, whose `Task` asyncio's `create_task` looks up on every call.
static TASKS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
/// `("loop",)`: see [`loop_kwnames`].
static LOOP_KWNAMES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// A Rust function behind a `METH_FASTCALL | METH_KEYWORDS` entry, as [`entry`] calls it.
type FastFn = for<'py> unsafe fn(
    Python<'py>,
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject>;

/// Names the [`FastFn`] an [`entry`] calls (a function pointer cannot be a const generic).
trait Target {
    /// The function called.
    const F: FastFn;
}

/// `entry!(f)`: the C entry point that calls the [`FastFn`] `f` through [`entry`].
macro_rules! entry {
    ($f:path) => {{
        struct T;
        impl Target for T {
            const F: FastFn = $f;
        }
        entry::<T> as Fast
    }};
}

/// The C entry point of a fast method: calls `M::F` and turns its error into a raised exception,
/// and a panic into `pyo3_runtime.PanicException` (as PyO3's trampoline does), so no panic
/// unwinds into CPython.
///
/// # Safety
/// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` method of `Loop` (see [`unpack`]).
unsafe extern "C" fn entry<M: Target>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a C method only from a thread attached to the interpreter (holding
    // the GIL), which is all `assume_attached` requires. Unlike PyO3's trampoline we do not
    // raise PyO3's thread-local attach count: that count only tells PyO3 whether it may
    // `Py_DECREF` a dropped `Py<T>` at once (else it defers the decref to its pool, drained at
    // the next PyO3 entry or tick, see `drain_deferred`) and whether `Python::attach` needs
    // `PyGILState_Ensure` (re-entrant while attached). Both stay correct when the count is
    // zero; when the loop runs, the count is already above zero (`run_forever` entered through
    // PyO3). Nothing here detaches (`py.detach` saves and restores the count as found).
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { M::F(py, slf, args, nargs, kwnames) }
    }));
    let err = match outcome {
        Ok(Ok(result)) => return result,
        Ok(Err(err)) => err,
        Err(payload) => panic_error(payload),
    };
    err.restore(py);
    std::ptr::null_mut()
}

/// `PanicException` with a panic's message (what PyO3's trampoline raises for a panic).
#[cold]
fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let message = if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panic from Rust code".to_owned()
    };
    pyo3::panic::PanicException::new_err((message,))
}

/// Drops the references PyO3 deferred (a `Py<T>` dropped while its attach count was zero, on
/// any thread): [`entry`] does not drain them as PyO3's trampoline does, so the tick calls this
/// every `DRAIN_EVERY` ticks that keep the GIL (re-attaching after a blocking poll drains them).
#[inline]
pub fn drain_deferred(_attached: Python<'_>) {
    // NOTE: PyO3 has no public drain; `attach` on an attached thread is its cheapest route
    // (raise the count, drain if its dirty flag is set, lower the count).
    Python::attach(|_| ());
}

/// The arguments of `method(*lead, callback, *args, context=None)`, unpacked.
struct Unpacked<'py> {
    /// `self`.
    slf: Bound<'py, PyLoop>,
    /// The leading positional arguments: `[callback]`, or `[delay or when, callback]`.
    lead: [Bound<'py, PyAny>; 2],
    /// The remaining positional arguments.
    rest: Bound<'py, PyTuple>,
    /// `context=`, if given and not None.
    context: Option<Bound<'py, PyAny>>,
}

/// Unpacks a vectorcall with at least `nlead` (1 or 2) positional arguments and at most the
/// keyword `context`; `None` for any other shape (the slow path then decides).
///
/// # Safety
/// Called with the arguments CPython passes a `METH_FASTCALL | METH_KEYWORDS` method of `Loop`:
/// `slf` is a `Loop`, `args` holds `nargs` positional arguments followed by one value per name in
/// `kwnames` (a tuple, or NULL), all borrowed for the duration of the call.
unsafe fn unpack<'py>(
    py: Python<'py>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    nlead: ffi::Py_ssize_t,
) -> Option<PyResult<Unpacked<'py>>> {
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: a non-NULL `kwnames` is a tuple of str (vectorcall protocol).
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) }
    };
    let fast = nargs >= nlead
        && (nkw == 0
            // SAFETY: `kwnames` holds `nkw` == 1 items.
            || (nkw == 1 && is_context(py, unsafe { ffi::PyTuple_GET_ITEM(kwnames, 0) })));
    if !fast {
        return None;
    }
    // SAFETY: `slf` is a live object borrowed for the call, and an instance of `Loop` (or a
    // subclass): a method descriptor checks `self`'s type before every call, whether it is
    // called bound, through `Loop.call_soon(obj, ...)` or through `types.MethodType`.
    let slf = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyLoop>() };
    // SAFETY: `args` holds at least `nargs` >= `nlead` >= 1 borrowed references; with `nlead`
    // 1 the second slot repeats the first and is not used.
    let lead = unsafe {
        [
            Bound::from_borrowed_ptr(py, *args),
            Bound::from_borrowed_ptr(py, *args.offset(nlead - 1)),
        ]
    };
    let rest = nargs - nlead;
    if rest == 0 {
        // The C Task's `call_soon(step, context=ctx)` and most others: no tuple to fill.
        return Some(Ok(Unpacked {
            slf,
            lead,
            rest: PyTuple::empty(py),
            // SAFETY: the caller's guarantees, and `nkw` counts `kwnames`.
            context: unsafe { context(py, args, nargs, nkw) },
        }));
    }
    // SAFETY: PyTuple_New returns a new tuple of `rest` NULL slots or NULL with an exception set.
    let tuple = match unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(rest)) } {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    for i in 0..rest {
        // SAFETY: `args[nlead..nargs]` are borrowed references: each gets its own reference,
        // stolen by the fresh tuple's slot `i`, which is in range and still empty.
        unsafe {
            let item = *args.offset(nlead + i);
            ffi::Py_INCREF(item);
            ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i, item);
        }
    }
    // SAFETY: the tuple was created by PyTuple_New above and every slot is now filled.
    let rest = unsafe { tuple.cast_into_unchecked::<PyTuple>() };
    Some(Ok(Unpacked {
        slf,
        lead,
        rest,
        // SAFETY: as above.
        context: unsafe { context(py, args, nargs, nkw) },
    }))
}

/// The value of `context=` (the one keyword, `nkw` == 1), unless None.
///
/// # Safety
/// As for [`unpack`], with `nkw` the number of keyword names.
#[inline(always)]
unsafe fn context<'py>(
    py: Python<'py>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    nkw: ffi::Py_ssize_t,
) -> Option<Bound<'py, PyAny>> {
    if nkw != 1 {
        return None;
    }
    // SAFETY: the keyword value follows the `nargs` positional ones.
    let value = unsafe { *args.offset(nargs) };
    // SAFETY: a borrowed reference, live for the call.
    (value != unsafe { ffi::Py_None() }).then(|| unsafe { Bound::from_borrowed_ptr(py, value) })
}

/// Defines the entry point `$name` of a `Loop` method: `$fast`, an expression of the vectorcall
/// arguments named in its bars, answers the argument shapes it takes (`Some`); every other call
/// (`None`) goes to the descriptor in `$slow`. The second form's `$fast` unpacks `$nlead` leading
/// positional arguments and the keyword `context` (see [`unpack`]), then runs `$body`.
macro_rules! fast_method {
    (
        $(#[$doc:meta])*
        $name:ident, $slow:ident,
        |$py:ident, $slf:ident, $args:ident, $nargs:ident, $kwnames:ident| $fast:expr
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` method of `Loop` (see
        /// [`unpack`]).
        unsafe fn $name(
            $py: Python<'_>,
            $slf: *mut ffi::PyObject,
            $args: *const *mut ffi::PyObject,
            $nargs: ffi::Py_ssize_t,
            $kwnames: *mut ffi::PyObject,
        ) -> PyResult<*mut ffi::PyObject> {
            let fast: Option<PyResult<*mut ffi::PyObject>> = $fast;
            match fast {
                Some(result) => result,
                // SAFETY: the caller's guarantees are passed on unchanged.
                None => unsafe { call_slow($py, &$slow, $slf, $args, $nargs, $kwnames) },
            }
        }
    };
    ($name:ident, $slow:ident, $nlead:expr, |$u:ident| $body:expr) => {
        fast_method!(
            /// See the module docs.
            $name, $slow,
            |py, slf, args, nargs, kwnames| {
                // SAFETY: the caller's guarantees are passed on unchanged.
                match unsafe { unpack(py, slf, args, nargs, kwnames, $nlead) } {
                    Some(Ok($u)) => Some($body.map(|r| r.into_ptr())),
                    Some(Err(err)) => Some(Err(err)),
                    None => None,
                }
            }
        );
    };
}

fast_method!(call_soon, SLOW_CALL_SOON, 1, |u| {
    let [callback, _] = u.lead;
    PyLoop::call_soon_core(&u.slf, callback, u.rest, u.context)
});
fast_method!(call_soon_threadsafe, SLOW_CALL_SOON_THREADSAFE, 1, |u| {
    let [callback, _] = u.lead;
    PyLoop::call_soon_threadsafe(&u.slf, callback, u.rest, u.context)
});
fast_method!(call_later, SLOW_CALL_LATER, 2, |u| {
    let [delay, callback] = u.lead;
    PyLoop::call_later(&u.slf, &delay, callback, u.rest, u.context)
});
fast_method!(call_at, SLOW_CALL_AT, 2, |u| {
    let [when, callback] = u.lead;
    PyLoop::call_at(&u.slf, &when, callback, u.rest, u.context)
});
fast_method!(
    /// `loop.get_debug()`, which asyncio's `Future` and `Task` ask on every creation.
    get_debug, SLOW_GET_DEBUG,
    |py, slf, _args, nargs, kwnames| {
        (nargs == 0 && kwnames.is_null()).then(|| {
            // SAFETY: as in `unpack`: `slf` is a live `Loop` (the descriptor checked its type).
            let this = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyLoop>() };
            let debug = this.get().state.borrow(py).debug;
            // SAFETY: Py_True/Py_False are live objects; the caller gets a new reference.
            Ok(unsafe { bool_ptr(debug) })
        })
    }
);
fast_method!(
    /// `loop.create_future()`: `asyncio.Future(loop=self)`, called with vectorcall.
    create_future, SLOW_CREATE_FUTURE,
    |py, slf, _args, nargs, kwnames| {
        // SAFETY: the caller's guarantees are passed on unchanged.
        (nargs == 0 && kwnames.is_null()).then(|| unsafe { new_future(py, slf) })
    }
);
fast_method!(
    /// `Handle.cancel()`.
    handle_cancel, SLOW_HANDLE_CANCEL,
    |py, slf, _args, nargs, kwnames| {
        (nargs == 0 && kwnames.is_null()).then(|| {
            // SAFETY: the descriptor checked that `slf` is a `Handle`; it is borrowed for the
            // call.
            let h = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<Handle>() };
            // SAFETY: Py_None is a live object; the caller gets a new reference.
            Handle::cancel(&h).map(|()| unsafe { none_ptr() })
        })
    }
);
fast_method!(
    /// `TimerHandle.cancel()`.
    timer_cancel, SLOW_TIMER_CANCEL,
    |py, slf, _args, nargs, kwnames| {
        (nargs == 0 && kwnames.is_null()).then(|| {
            // SAFETY: as in `handle_cancel`, for `TimerHandle`.
            let t =
                unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<TimerHandle>() };
            // SAFETY: as in `handle_cancel`.
            TimerHandle::cancel(&t).map(|()| unsafe { none_ptr() })
        })
    }
);

/// A new reference to `True` or `False`.
///
/// # Safety
/// GIL held.
#[inline]
unsafe fn bool_ptr(value: bool) -> *mut ffi::PyObject {
    // SAFETY: the caller holds the GIL; the singletons are live for the interpreter's life.
    unsafe {
        let ptr = if value {
            ffi::Py_True()
        } else {
            ffi::Py_False()
        };
        ffi::Py_INCREF(ptr);
        ptr
    }
}

/// A new reference to `None`.
///
/// # Safety
/// GIL held.
#[inline]
unsafe fn none_ptr() -> *mut ffi::PyObject {
    // SAFETY: as in `bool_ptr`.
    unsafe {
        let ptr = ffi::Py_None();
        ffi::Py_INCREF(ptr);
        ptr
    }
}

/// `asyncio.Future(loop=slf)` (what `create_future` returns).
///
/// # Safety
/// `slf` is a live `Loop` borrowed for the call; GIL held.
unsafe fn new_future(py: Python<'_>, slf: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
    let future = crate::event_loop::future_class(py)?;
    let argv = [slf];
    // SAFETY: `argv` holds one keyword value (`loop`), borrowed for the call; the result is a
    // new reference or NULL with an exception set.
    let result = unsafe {
        ffi::PyObject_Vectorcall(future.as_ptr(), argv.as_ptr(), 0, loop_kwnames(py).as_ptr())
    };
    if result.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(result)
    }
}

/// `("loop",)`, the keyword names of `Task(coro, loop=self)` and `Future(loop=self)`.
fn loop_kwnames(py: Python<'_>) -> &Py<PyTuple> {
    LOOP_KWNAMES.get_or_init(py, || {
        PyTuple::new(py, [intern!(py, "loop")])
            .expect("a one-item tuple")
            .unbind()
    })
}

fast_method!(
    /// `loop.create_task(coro)`; see [`plain_task`]. Every other call (keywords, a task factory,
    /// debug mode, a closed loop, bad arguments) goes to asyncio's own function, which decides
    /// and raises as the running Python does. Both paths count the tasks they return
    /// (`oxloop.stats().tasks_created`).
    create_task, SLOW_CREATE_TASK,
    |py, slf, args, nargs, kwnames| {
        // SAFETY: the caller's guarantees are passed on unchanged.
        let task = match unsafe { plain_task(py, slf, args, nargs, kwnames) } {
            Some(task) => task,
            // SAFETY: as above.
            None => unsafe { call_slow(py, &SLOW_CREATE_TASK, slf, args, nargs, kwnames) },
        };
        Some(task.inspect(|_| {
            // SAFETY: as in `unpack`: `slf` is a live `Loop` (the descriptor checked its type).
            let this = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyLoop>() };
            this.get().state.borrow_mut(py).stats.tasks_created += 1;
        }))
    }
);

/// `loop.create_task(coro)` without a task factory, outside debug mode, on an open loop: what
/// asyncio's `create_task` does then, `tasks.Task(coro, loop=self)`, without its Python frame;
/// `None` for any other call.
///
/// # Safety
/// As for [`unpack`].
#[inline(always)]
unsafe fn plain_task(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> Option<PyResult<*mut ffi::PyObject>> {
    if nargs != 1 || !kwnames.is_null() {
        return None;
    }
    // SAFETY: as in `unpack`: `slf` is a live `Loop` (the descriptor checked its type).
    let this = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyLoop>() };
    let plain = {
        let st = this.get().state.borrow(py);
        !st.closed && !st.debug
    };
    if !plain {
        return None;
    }
    match this.getattr(intern!(py, "_task_factory")) {
        Ok(factory) if factory.is_none() => {}
        Ok(_) => return None,
        Err(err) => return Some(Err(err)),
    }
    let task = tasks_module(py).and_then(|tasks| tasks.bind(py).getattr(intern!(py, "Task")));
    let task = match task {
        Ok(task) => task,
        Err(err) => return Some(Err(err)),
    };
    let kwnames = loop_kwnames(py);
    // SAFETY: `args[0]` is the borrowed coroutine; `slf` is borrowed too.
    let argv = [unsafe { *args }, slf];
    // SAFETY: `argv` holds one positional argument and one keyword value, both borrowed for the
    // call; the result is a new reference or NULL with an exception set.
    let result =
        unsafe { ffi::PyObject_Vectorcall(task.as_ptr(), argv.as_ptr(), 1, kwnames.as_ptr()) };
    Some(if result.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(result)
    })
}

/// The `create_task` method descriptor for `Loop`: [`create_task`] over asyncio's `slow`
/// function, documented by `doc` (its text signature first, for `inspect.signature`).
#[pyfunction]
pub fn fast_create_task(
    py: Python<'_>,
    slow: Py<PyAny>,
    doc: String,
) -> PyResult<Bound<'_, PyAny>> {
    let _ = SLOW_CREATE_TASK.set(py, slow);
    descriptor(
        py.get_type::<PyLoop>(),
        c"create_task",
        entry!(create_task),
        doc,
    )
}

/// The first str equal to `context` that was not the interned one (3.11's C Task passes its
/// own static str): kept alive here, so later calls match it by address.
static CONTEXT_ALIAS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether the keyword name `name` (a str) is `context`. The C Task's name is its own str, not
/// the interned one, so equal text counts too.
#[inline]
fn is_context(py: Python<'_>, name: *mut ffi::PyObject) -> bool {
    let interned = intern!(py, "context").as_ptr();
    if name == interned || CONTEXT_ALIAS.get(py).is_some_and(|a| a.as_ptr() == name) {
        return true;
    }
    // SAFETY: `name` is a live str from `kwnames`; the comparison only reads it.
    let equal = unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) } == 0;
    if equal {
        // SAFETY: `name` is a live object borrowed for the call; the alias takes its own reference.
        let _ = CONTEXT_ALIAS.set(py, unsafe { Bound::from_borrowed_ptr(py, name) }.unbind());
    }
    equal
}

/// Hands the call to PyO3's `call_soon` (the descriptor called with `self` first).
///
/// # Safety
/// As for [`unpack`].
unsafe fn call_slow(
    py: Python<'_>,
    slow: &PyOnceLock<Py<PyAny>>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let Some(slow) = slow.get(py) else {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "oxloop: Loop method not initialised",
        ));
    };
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: a non-NULL `kwnames` is a tuple (vectorcall protocol).
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) }
    };
    let total = usize::try_from(nargs + nkw).unwrap_or(0);
    let mut all = Vec::with_capacity(total + 1);
    all.push(slf);
    // SAFETY: `args` holds `nargs + nkw` borrowed references.
    all.extend_from_slice(unsafe { std::slice::from_raw_parts(args, total) });
    // SAFETY: `all` holds borrowed references live for the call; vectorcall borrows them and
    // returns a new reference or NULL with an exception set.
    let result = unsafe {
        ffi::PyObject_Vectorcall(slow.as_ptr(), all.as_ptr(), (nargs + 1) as usize, kwnames)
    };
    if result.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(result)
    }
}

fn tasks_module(py: Python<'_>) -> PyResult<&Py<PyModule>> {
    TASKS.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import(intern!(py, "asyncio.tasks"))?.unbind())
    })
}

/// Installs the fast methods on `Loop`; see the module docs.
pub fn install(py: Python<'_>) -> PyResult<()> {
    // NOTE: looked up now, not on first use: `create_task` may run for the first time in a
    // finalizer at interpreter exit, when nothing can be imported any more.
    tasks_module(py)?;
    type Method = (
        &'static str,
        &'static std::ffi::CStr,
        Fast,
        &'static PyOnceLock<Py<PyAny>>,
    );
    let on_loop: [Method; 6] = [
        (
            "call_soon",
            c"call_soon",
            entry!(call_soon),
            &SLOW_CALL_SOON,
        ),
        (
            "call_soon_threadsafe",
            c"call_soon_threadsafe",
            entry!(call_soon_threadsafe),
            &SLOW_CALL_SOON_THREADSAFE,
        ),
        (
            "call_later",
            c"call_later",
            entry!(call_later),
            &SLOW_CALL_LATER,
        ),
        ("call_at", c"call_at", entry!(call_at), &SLOW_CALL_AT),
        (
            "get_debug",
            c"get_debug",
            entry!(get_debug),
            &SLOW_GET_DEBUG,
        ),
        (
            "create_future",
            c"create_future",
            entry!(create_future),
            &SLOW_CREATE_FUTURE,
        ),
    ];
    let on_handle: [Method; 1] = [(
        "cancel",
        c"cancel",
        entry!(handle_cancel),
        &SLOW_HANDLE_CANCEL,
    )];
    let on_timer: [Method; 1] = [(
        "cancel",
        c"cancel",
        entry!(timer_cancel),
        &SLOW_TIMER_CANCEL,
    )];
    let types = [
        (py.get_type::<PyLoop>(), &on_loop[..]),
        (py.get_type::<Handle>(), &on_handle[..]),
        (py.get_type::<TimerHandle>(), &on_timer[..]),
    ];
    for (ty, methods) in types {
        for &(name, cname, fast, slow_cell) in methods {
            let slow = ty.getattr(name)?;
            // The docstring with its text signature, as PyO3 wrote it, for `inspect.signature`.
            let doc = format!(
                "{name}{}\n--\n\n{}",
                slow.getattr(intern!(py, "__text_signature__"))?
                    .extract::<String>()?,
                slow.getattr(intern!(py, "__doc__"))?.extract::<String>()?
            );
            let _ = slow_cell.set(py, slow.unbind());
            ty.setattr(name, descriptor(ty.clone(), cname, fast, doc)?)?;
        }
    }
    Ok(())
}

/// The signature of a `METH_FASTCALL | METH_KEYWORDS` C function.
type Fast = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// A method descriptor of `ty` named `cname` that calls `fast`, documented by `doc`.
fn descriptor<'py>(
    ty: Bound<'py, pyo3::types::PyType>,
    cname: &'static std::ffi::CStr,
    fast: Fast,
    doc: String,
) -> PyResult<Bound<'py, PyAny>> {
    let py = ty.py();
    let doc: &'static std::ffi::CStr = Box::leak(
        std::ffi::CString::new(doc)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?
            .into_boxed_c_str(),
    );
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: cname.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: fast,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: `ty` is a live type object and `def` lives for the rest of the process
    // (leaked above), as a method descriptor's definition must.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def)) }
}
