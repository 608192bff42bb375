//! The few CPython C-API calls PyO3 has no safe wrapper for.

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{ffi, Bound, PyAny, PyResult};

/// `threading.get_ident()` of the calling thread.
pub fn thread_ident() -> u64 {
    // SAFETY: PyThread_get_thread_ident has no preconditions; it reads the calling thread's id.
    unsafe { ffi::PyThread_get_thread_ident() as u64 }
}

/// `contextvars.copy_context()`.
pub fn copy_context(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: called with the GIL held (the token proves it); returns a new reference or NULL with
    // an exception set, which `from_owned_ptr_or_err` turns into PyErr.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent()) }
}

/// Stops the garbage collector from tracking `context`, a `contextvars.Context` copy that a new
/// handle's `Callback` holds alone, if it has no variables. Not entered and empty, it refers to
/// no object a cycle could pass through; untracked, it is neither walked by young collections
/// nor moved into the old generations, whose growth sets off full collections.
/// [`run_in_context`] and `get_context()` of either handle kind track it again before it can hold anything, and
/// the `Callback` before letting go of it: a Context's deallocator requires it tracked.
///
/// NOTE: asyncio copies the caller's context for every callback; a thread that never set a
/// variable (an executor worker, any producer thread, often the main thread) has an empty one.
/// Tracked, such copies pending by the ten thousand cost about half of `call_soon_threadsafe`'s
/// CPU in collections, and a tenth of `call_later`'s.
pub fn untrack_empty_context(context: &Bound<'_, PyAny>) {
    // SAFETY: GIL held (the Bound proves it); `context` is a live Context (the caller's
    // guarantee), whose length is its variable count and cannot fail.
    if unsafe { ffi::PyObject_Size(context.as_ptr()) } == 0 {
        gc_untrack(context);
    }
}

/// Tracks `obj` again if it is a `contextvars.Context` that [`untrack_empty_context`] stopped.
/// Anything else is left alone: asyncio takes any object as `context=`, and most are no
/// collector objects at all.
#[inline]
pub fn track_context(obj: &Bound<'_, PyAny>) {
    if is_context(obj) {
        gc_track(obj);
    }
}

/// Whether `obj` is exactly a `contextvars.Context`.
#[inline]
pub fn is_context(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: GIL held; `obj` is a live object. PyContext_CheckExact only compares its type.
    unsafe { ffi::PyContext_CheckExact(obj.as_ptr()) != 0 }
}

/// Runs `f` with `context` entered, as `context.run(f)` does, without building a bound method.
pub fn run_in_context<'py, R>(
    context: &Bound<'py, PyAny>,
    f: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    let py = context.py();
    // Once entered, a context may hold anything: one `untrack_empty_context` stopped is tracked.
    track_context(context);
    // SAFETY: GIL held; `context` is a live object. PyContext_Enter type-checks it and fails with
    // TypeError (not a Context) or RuntimeError (already entered) instead of misbehaving.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    let result = f();
    // SAFETY: the context was entered above by this thread and not exited since.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    result
}

/// `object.__setattr__(obj, name, value)`, or `object.__delattr__(obj, name)` when `value` is
/// `None`: the generic attribute store (instance `__dict__` and data descriptors).
pub fn generic_setattr(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, pyo3::types::PyString>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let value = value.map_or(std::ptr::null_mut(), |v| v.as_ptr());
    // SAFETY: GIL held (the Bound proves it); `obj` and `name` are live objects, `value` is a
    // live object or NULL, which PyObject_GenericSetAttr documents as deletion. It returns -1 with
    // an exception set on failure.
    if unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value) } != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    Ok(())
}

/// [`run_in_context`], or `f()` in the current context when `context` is already entered
/// (`PyContext_Enter` refuses to enter a context twice).
pub fn run_in_context_if_free<'py, R>(
    context: &Bound<'py, PyAny>,
    f: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    let py = context.py();
    // SAFETY: as in `run_in_context`.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        let err = PyErr::fetch(py);
        if !err.is_instance_of::<pyo3::exceptions::PyRuntimeError>(py) {
            return Err(err);
        }
        return f();
    }
    let result = f();
    // SAFETY: the context was entered above by this thread and not exited since.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    result
}

/// Sets `ty`'s `tp_finalize` slot, which PyO3 does not offer: the garbage collector calls it
/// before clearing an unreachable object, as it calls a Python class's `__del__`.
pub fn set_finalizer(
    ty: &Bound<'_, pyo3::types::PyType>,
    finalize: unsafe extern "C" fn(*mut ffi::PyObject),
) {
    // SAFETY: GIL held; `ty` is a live, fully initialised heap type owned by this module. The
    // slot is read by the collector only, and any concurrent reader would need the GIL too.
    unsafe { (*ty.as_type_ptr()).tp_finalize = Some(finalize) };
}

/// `callback(*args)` through vectorcall on the tuple's items, skipping `PyObject_Call`'s
/// tuple-to-vector unpacking. The result is discarded.
#[inline]
pub fn call_with_tuple(callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let py = callback.py();
    let nargs = args.len();
    // SAFETY: GIL held; `args` is a live tuple, so its item array holds `nargs` valid borrowed
    // references for the duration of the call (the tuple is kept alive by `args`). Vectorcall
    // does not take ownership of the arguments and returns a new reference or NULL with an
    // exception set.
    let result = unsafe {
        let items = (*(args.as_ptr() as *mut ffi::PyTupleObject))
            .ob_item
            .as_ptr();
        ffi::PyObject_Vectorcall(callback.as_ptr(), items, nargs, std::ptr::null_mut())
    };
    if result.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `result` is a new, non-null reference that we own and release here.
    unsafe { ffi::Py_DECREF(result) };
    Ok(())
}

/// Runs `f` over the bytes of a contiguous buffer object (`bytes`, `bytearray`, `memoryview`,
/// ...), as `socket.send` reads its argument. Fails with `BufferError`/`TypeError` as
/// `PyObject_GetBuffer` does.
pub fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    // An exact `bytes` (what nearly every `write` gets) is immutable: its storage is read in
    // place, without exporting and releasing a buffer.
    if let Ok(bytes) = obj.cast_exact::<pyo3::types::PyBytes>() {
        return Ok(f(bytes.as_bytes()));
    }
    with_buffer(obj, ffi::PyBUF_SIMPLE, |ptr, len| {
        // SAFETY: `ptr`/`len` describe the exported buffer, which stays valid and unmoved until
        // it is released after `f` returns; `f` runs no Python code (the GIL is held throughout,
        // so no other thread can resize the exporter either).
        f(unsafe { std::slice::from_raw_parts(ptr, len) })
    })
}

/// Runs `f` over the bytes of a writable contiguous buffer object, as `socket.recv_into` does.
pub fn with_bytes_mut<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&mut [u8]) -> R) -> PyResult<R> {
    with_buffer(obj, ffi::PyBUF_WRITABLE, |ptr, len| {
        // SAFETY: as in `with_bytes`; PyBUF_WRITABLE guarantees the exporter allows writes, and
        // nothing else reads or writes the memory while `f` runs (GIL held, no Python code).
        f(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    })
}

/// Exports `obj`'s buffer with `flags`, calls `f(ptr, len)`, then releases it.
fn with_buffer<R>(
    obj: &Bound<'_, PyAny>,
    flags: std::os::raw::c_int,
    f: impl FnOnce(*mut u8, usize) -> R,
) -> PyResult<R> {
    let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: GIL held; `view` is a valid place for PyObject_GetBuffer to fill. On failure it
    // sets an exception and leaves nothing to release.
    if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) } != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    // SAFETY: PyObject_GetBuffer succeeded, so `view` is initialised.
    let mut view = unsafe { view.assume_init() };
    let len = usize::try_from(view.len).unwrap_or(0);
    let ptr = view.buf.cast::<u8>();
    let result = if len == 0 || ptr.is_null() {
        f(std::ptr::NonNull::dangling().as_ptr(), 0)
    } else {
        f(ptr, len)
    };
    // SAFETY: `view` was filled by a successful PyObject_GetBuffer and is released exactly once.
    unsafe { ffi::PyBuffer_Release(&mut view) };
    Ok(result)
}

/// Whether the garbage collector tracks `obj` (`gc.is_tracked`).
#[inline]
pub fn gc_is_tracked(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: callers pass a live object they hold a reference to, with the GIL held (or from a
    // `__traverse__`, which runs with the GIL held); the call only reads its GC header.
    unsafe { ffi::PyObject_GC_IsTracked(obj) == 1 }
}

/// Stops the garbage collector from tracking `obj`, a live instance of a GC type. The owner then
/// takes over: its own `__traverse__` visits what `obj` holds, or it tracks `obj` again (see
/// [`gc_track`]) before anyone else can reach it.
#[inline]
pub fn gc_untrack(obj: &Bound<'_, PyAny>) {
    // SAFETY: GIL held (the Bound proves it); `obj` is live and its type is a GC type (every
    // PyO3 class is); untracking an untracked object is a no-op.
    unsafe { ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

/// Tracks `obj` again if [`gc_untrack`] stopped it.
#[inline]
pub fn gc_track(obj: &Bound<'_, PyAny>) {
    if !gc_is_tracked(obj.as_ptr()) {
        // SAFETY: GIL held; `obj` is live, fully initialised, of a GC type and not tracked, which
        // is all PyObject_GC_Track requires.
        unsafe { ffi::PyObject_GC_Track(obj.as_ptr().cast()) }
    }
}

/// Whether any weak reference to `obj` may exist: `false` for a type without weak reference
/// support, `true` (not looked up) for a type that manages its weak references itself (3.12+).
#[inline]
pub fn has_weakrefs(obj: &Bound<'_, PyAny>) -> bool {
    let ptr = obj.as_ptr();
    // SAFETY: GIL held; `obj` is live, so its type object is too.
    let offset = unsafe { (*ffi::Py_TYPE(ptr)).tp_weaklistoffset };
    if offset <= 0 {
        return offset != 0;
    }
    // SAFETY: a positive `tp_weaklistoffset` is the offset, inside the object, of the head of its
    // weak reference list (a `PyObject *`, NULL when there is none).
    unsafe { !(*ptr.cast::<u8>().offset(offset).cast::<*mut ffi::PyObject>()).is_null() }
}

/// Makes CPython's messages about instances of `ty` name it `name`: the `tp_name` that
/// "'X' object has no attribute 'y'" and "descriptor 'm' for 'X' objects doesn't apply" print.
/// `__name__`, `__qualname__`, `__module__` and the type's repr are unchanged (they come from
/// the heap type's own fields and dict).
pub fn set_message_name(ty: &Bound<'_, pyo3::types::PyType>, name: &'static std::ffi::CStr) {
    // SAFETY: GIL held (the Bound proves it), so no other thread reads the type's fields while
    // this one writes. `ty` is a live heap type; `tp_name` is a borrowed C string the type never
    // frees (CPython frees a heap type's own copy through `_ht_tpname`, a separate field), and
    // `name` lives for the whole program.
    unsafe { (*ty.as_type_ptr()).tp_name = name.as_ptr() };
}

// NOTE: pyo3-ffi declares `_PyBytes_Resize` crate-private; CPython exports it on every
// supported version (it is what `socket.recv` uses to shrink its own result).
extern "C" {
    fn _PyBytes_Resize(
        bytes: *mut *mut ffi::PyObject,
        newsize: ffi::Py_ssize_t,
    ) -> std::os::raw::c_int;
}

/// The size of the block [`bytes_read_into`] frees once (the transports' largest read).
const MALLOC_PRIMER: usize = 256 * 1024;

/// Whether [`bytes_read_into`] has freed its one [`MALLOC_PRIMER`] block.
static MALLOC_PRIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A new `bytes` filled by `read` in place: `read` gets `capacity` uninitialised-but-writable
/// bytes and returns how many it wrote; the object is then shrunk to that size, as
/// `socket.recv` builds its result. One copy (the kernel's) instead of two (kernel to a
/// scratch buffer, scratch buffer to the `bytes`). An error of `read` is returned as is.
///
/// `read` must not call into Python (the object is not valid until it returns).
///
/// NOTE: the first call in the process first allocates and frees one whole [`MALLOC_PRIMER`]
/// block. glibc's malloc serves blocks of 128 KiB and more with mmap, until the first time such
/// an mmapped block is freed whole: then it raises its mmap threshold (and its heap trim
/// threshold) past that size. A block shrunk before it is freed (every read here) never does
/// that, so without this each 256 KiB transport read would mmap fresh pages and fault them in
/// (27 page faults and one mmap per 100 KiB read, measured; 0 with it). asyncio's
/// `sock.recv(256 KiB)` frees such a block on its first would-block read, so its process gets
/// the same thresholds. Other allocators are unaffected.
pub fn bytes_read_into<'py>(
    py: Python<'py>,
    capacity: usize,
    read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) -> PyResult<std::io::Result<Bound<'py, pyo3::types::PyBytes>>> {
    if !MALLOC_PRIMED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: GIL held; the new `bytes` (or NULL on MemoryError, then cleared) is released
        // at once, at its full size.
        unsafe {
            let block = ffi::PyBytes_FromStringAndSize(std::ptr::null(), MALLOC_PRIMER as _);
            if block.is_null() {
                ffi::PyErr_Clear();
            } else {
                ffi::Py_DECREF(block);
            }
        }
    }
    let size = ffi::Py_ssize_t::try_from(capacity)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("size too large"))?;
    // SAFETY: GIL held; a NULL source asks for an uninitialised `bytes` of `size` bytes, which
    // this function alone owns until it is resized and handed out.
    let mut obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a live `bytes` of `capacity` bytes; its storage is writable while no one
    // else holds a reference (none does). u8 has no invalid values, so handing out the
    // uninitialised storage as `&mut [u8]` for the kernel to fill is sound in practice, as
    // CPython's own `sock_recv` does; only the `n` bytes `read` reports are kept.
    let buf =
        unsafe { std::slice::from_raw_parts_mut(ffi::PyBytes_AsString(obj).cast(), capacity) };
    let n = match read(buf) {
        Ok(n) => n.min(capacity),
        Err(e) => {
            // SAFETY: `obj` is the reference created above, released exactly once.
            unsafe { ffi::Py_DECREF(obj) };
            return Ok(Err(e));
        }
    };
    // SAFETY: `obj` is a `bytes` with refcount 1 that nothing else references, which
    // `_PyBytes_Resize` requires; on failure it releases `obj`, sets NULL and raises.
    if n != capacity && unsafe { _PyBytes_Resize(&mut obj, n as ffi::Py_ssize_t) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a new, owned reference to a live `bytes`.
    Ok(Ok(unsafe {
        Bound::from_owned_ptr(py, obj).cast_into_unchecked()
    }))
}
