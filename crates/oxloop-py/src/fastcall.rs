//! `Loop.call_soon` read straight from the vectorcall arguments.
//!
//! CPython's C `Task` calls `loop.call_soon(step, context=ctx)` on every step, and futures call
//! it for every done callback, so the argument handling of `call_soon` is on the hottest path of
//! an asyncio program. PyO3's generic extraction (descriptions, keyword matching, a varargs
//! tuple built item by item) costs about a tenth of the whole call. At module import,
//! [`install`] puts a `METH_FASTCALL | METH_KEYWORDS` method descriptor over PyO3's `call_soon`:
//! it takes the two shapes asyncio uses (positional arguments, and the one keyword `context`)
//! directly, and hands every other shape (no callback, an unknown or repeated keyword) to PyO3's
//! method, so argument errors read as before.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use pyo3::{ffi, intern};

use crate::event_loop::PyLoop;

/// PyO3's own `call_soon` descriptor: the slow path for unusual argument shapes.
static SLOW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `call_soon(callback, *args, context=None)` for the shapes described in the module docs.
///
/// # Safety
/// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` method of `Loop`: `slf` is a `Loop`,
/// `args` holds `nargs` positional arguments followed by one value per name in `kwnames` (a
/// tuple, or NULL), all borrowed for the duration of the call.
unsafe fn call_soon(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: a non-NULL `kwnames` is a tuple of str (vectorcall protocol).
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) }
    };
    let fast = nargs >= 1
        && (nkw == 0
            // SAFETY: `kwnames` holds `nkw` == 1 items.
            || (nkw == 1 && is_context(py, unsafe { ffi::PyTuple_GET_ITEM(kwnames, 0) })));
    if !fast {
        // SAFETY: the caller's guarantees are passed on unchanged.
        return unsafe { call_slow(py, slf, args, nargs, kwnames) };
    }
    // SAFETY: `slf` is a live object borrowed for the call; CPython's method descriptor checked
    // that it is an instance of `Loop` before calling us, and `cast` checks again.
    let slf = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let slf = slf.cast::<PyLoop>()?;
    // SAFETY: `args` holds at least `nargs` >= 1 borrowed references.
    let callback = unsafe { Bound::from_borrowed_ptr(py, *args) };
    let rest = nargs - 1;
    // SAFETY: PyTuple_New returns a new tuple of `rest` NULL slots or NULL with an exception set.
    let tuple = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(rest))? };
    for i in 0..rest {
        // SAFETY: `args[1..nargs]` are borrowed references: each gets its own reference, stolen
        // by the fresh tuple's slot `i`, which is in range and still empty.
        unsafe {
            let item = *args.offset(i + 1);
            ffi::Py_INCREF(item);
            ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i, item);
        }
    }
    // SAFETY: the tuple was created by PyTuple_New above and every slot is now filled.
    let tuple = unsafe { tuple.cast_into_unchecked::<PyTuple>() };
    let context = if nkw == 1 {
        // SAFETY: the keyword value follows the `nargs` positional ones.
        let value = unsafe { *args.offset(nargs) };
        // SAFETY: a borrowed reference, live for the call.
        (value != unsafe { ffi::Py_None() }).then(|| unsafe { Bound::from_borrowed_ptr(py, value) })
    } else {
        None
    };
    let handle = PyLoop::call_soon_core(slf, callback, tuple, context)?;
    Ok(handle.into_ptr())
}

/// Whether the keyword name `name` (a str) is `context`. The C Task's name is its own str, not
/// the interned one, so equal text counts too.
#[inline]
fn is_context(py: Python<'_>, name: *mut ffi::PyObject) -> bool {
    let interned = intern!(py, "context").as_ptr();
    // SAFETY: `name` is a live str from `kwnames`; the comparison only reads it.
    name == interned
        || unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) } == 0
}

/// Hands the call to PyO3's `call_soon` (the descriptor called with `self` first).
///
/// # Safety
/// As for [`call_soon`].
unsafe fn call_slow(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let Some(slow) = SLOW.get(py) else {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "oxloop: call_soon is not initialised",
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

/// Installs the fast `call_soon` on `Loop`; see the module docs.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyLoop>();
    let slow = ty.getattr(intern!(py, "call_soon"))?;
    let _ = SLOW.set(py, slow.unbind());
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"call_soon".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: pyo3::impl_::trampoline::get_trampoline_function!(
                fastcall_cfunction_with_keywords,
                call_soon
            ),
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"call_soon($self, callback, *args, context=None)\n--\n\nArrange for a callback to be called as soon as possible, in FIFO order.".as_ptr(),
    }));
    // SAFETY: `ty` is the live `Loop` type object and `def` lives for the rest of the process
    // (leaked above), as a method descriptor's definition must.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))? };
    ty.setattr(intern!(py, "call_soon"), descr)?;
    Ok(())
}
