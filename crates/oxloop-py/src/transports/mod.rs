//! asyncio transports over the Rust reactor.
//!
//! A transport owns one fd (through the Python socket object that holds it) and is dispatched
//! straight from the tick through [`crate::event_loop::NativeWatcher`]: a readable fd runs one
//! `recv` and one protocol call, a writable fd one vectored send of the write buffer, with no
//! Python `Handle` in between. [`stream`] holds the socket stream transport (TCP and Unix),
//! [`pipe`] the read and write pipe transports.
//!
//! `isinstance(transport, asyncio.Transport)` must hold, but `asyncio.BaseTransport` declares
//! `__slots__ = ('_extra',)`, so no extension type can share a Python subclass with it (an
//! instance lay-out conflict). The transport's `__class__` therefore names a Python subclass of
//! `asyncio.Transport` (asyncio's `_FlowControlMixin`) built once here ([`AsyncioNames::transport_class`]); `isinstance` consults
//! `__class__` after the real type, as it does for `unittest.mock` specs.

pub mod pipe;
pub mod stream;
pub mod udp;

use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyClass, PyTraverseError};

use std::os::fd::RawFd;
use std::sync::Arc;

use oxloop_core::transport::{Lifecycle, Side, Steps};

use crate::event_loop::{Direction, NativeWatcher, PyLoop, Watcher};

/// A transport, or another Rust object watching an fd (a pending `sock_*` call, a server's accept
/// loop, the resolver), that the reactor calls when its fd is ready.
pub trait Reactive: PyClass + Sync + Send {
    /// The fd is ready in `direction`; see [`NativeWatcher::ready`].
    fn on_ready(slf: &Bound<'_, Self>, direction: Direction) -> PyResult<()>;
}

/// A transport that closes its socket or pipe when collected while open.
///
/// The work needs the Python objects the transport holds, so it must run before the garbage
/// collector clears them (and the socket object's own slots) in a reference cycle: as asyncio's
/// `__del__`, it is the type's `tp_finalize` ([`install_finalizers`]), which the collector calls
/// before any clearing. A transport freed by its count falling to zero runs it from `Drop`.
pub trait Finalize: PyClass {
    /// Warns and closes what is still open; a no-op the second time. `obj` is the transport
    /// itself when the collector finalizes it, `None` when it is freed by its count falling to
    /// zero (nothing can then be handed its object).
    fn finalize(&self, py: Python<'_>, obj: Option<&Bound<'_, PyAny>>);
}

/// `tp_finalize` of a [`Finalize`] transport type.
unsafe extern "C" fn finalize_slot<
    T: Finalize + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
>(
    obj: *mut pyo3::ffi::PyObject,
) {
    // SAFETY: the interpreter calls tp_finalize with the GIL held and `obj` a live object of a
    // type this slot was installed on (T or a subclass of T).
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `obj` is live for the duration of the call (the caller holds a reference).
    let obj = unsafe { Bound::from_borrowed_ptr(py, obj) };
    // A finalizer must leave the current exception as it found it (PEP 442).
    let pending = PyErr::take(py);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Ok(t) = obj.cast::<T>() {
            t.get().finalize(py, Some(obj.as_any()));
        }
    }));
    if ran.is_err() {
        // NOTE: a panic must not unwind into C; the transport stays unfinalized, Drop retries.
        pyo3::exceptions::PyRuntimeError::new_err("oxloop transport finalizer panicked")
            .write_unraisable(py, Some(&obj));
    }
    if let Some(err) = pending {
        err.restore(py);
    }
}

/// Installs the transports' finalizers (see [`Finalize`]) on their types.
pub fn install_finalizers(py: Python<'_>) {
    crate::ffi::set_finalizer(
        &py.get_type::<stream::SocketTransport>(),
        finalize_slot::<stream::SocketTransport>,
    );
    for ty in [
        py.get_type::<pipe::PipeTransport>(),
        py.get_type::<pipe::ReadPipeTransport>(),
        py.get_type::<pipe::WritePipeTransport>(),
    ] {
        crate::ffi::set_finalizer(&ty, finalize_slot::<pipe::PipeTransport>);
    }
}

/// A transport whose [`Lifecycle`] decides what happens on close, abort, flush and EOF; its
/// [`Steps`] are carried out by [`apply`], the one place that maps them to reactor and protocol
/// calls for sockets and pipes alike.
pub trait Transport: Reactive {
    /// The transport's fd.
    fn fd(slf: &Bound<'_, Self>) -> RawFd;
    /// The loop, or `None` once the connection is lost.
    fn loop_of(slf: &Bound<'_, Self>) -> Option<Py<PyLoop>>;
    /// The protocol, or `None` once the connection is lost.
    fn protocol_of(slf: &Bound<'_, Self>) -> Option<Py<PyAny>>;
    /// The context its protocol callbacks run in (see [`transport_context`]).
    fn context_of<'a>(slf: &'a Bound<'_, Self>) -> Option<&'a Py<PyAny>>;
    /// Runs `f` on the transport's lifecycle.
    fn lifecycle<R>(slf: &Bound<'_, Self>, f: impl FnOnce(&mut Lifecycle) -> R) -> R;
    /// Drops the unsent bytes of the write buffer.
    fn drop_buffer(slf: &Bound<'_, Self>);
    /// `connection_lost(exc)` now, then closes the fd's owner and forgets loop and protocol.
    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()>;
}

/// Carries out `steps` in [`Steps::ORDER`]; `exc` is what `connection_lost` receives.
///
/// [`Steps::SCHEDULE_LOST`] is asyncio's `loop.call_soon(self._call_connection_lost, exc)`:
/// `connection_lost` runs once, from the ready queue, in the transport's context. An error is
/// returned after the steps that could still run.
pub fn apply<T: Transport>(
    slf: &Bound<'_, T>,
    steps: Steps,
    exc: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    let mut result = Ok(());
    for step in Steps::ORDER {
        if !steps.has(step) {
            continue;
        }
        let done = match step {
            Steps::DROP_BUFFER => {
                T::drop_buffer(slf);
                Ok(())
            }
            Steps::STOP_WRITING => unregister(slf, Direction::Write),
            Steps::STOP_READING => unregister(slf, Direction::Read),
            Steps::START_READING => watch(slf, Direction::Read),
            Steps::SHUTDOWN => oxloop_core::sys::shutdown_write(T::fd(slf))
                .map_err(|e| crate::errors::os_error(py, &e)),
            Steps::SCHEDULE_EOF => match (T::loop_of(slf), T::protocol_of(slf)) {
                (Some(lp), Some(protocol)) => protocol
                    .bind(py)
                    .getattr(intern!(py, "eof_received"))
                    .and_then(|cb| (cb,).into_pyobject(py))
                    .and_then(|args| call_soon_in(lp.bind(py), T::context_of(slf), args)),
                _ => Ok(()),
            },
            Steps::SCHEDULE_LOST => match T::loop_of(slf) {
                Some(lp) => slf
                    .as_any()
                    .getattr(intern!(py, "_call_connection_lost"))
                    .and_then(|cb| (cb, exc).into_pyobject(py))
                    .and_then(|args| call_soon_in(lp.bind(py), T::context_of(slf), args)),
                None => Ok(()),
            },
            Steps::CALL_LOST => T::call_connection_lost(slf, exc),
            _ => Ok(()),
        };
        if result.is_ok() {
            result = done;
        }
    }
    result
}

/// Registers the transport as its fd's reader or writer (a [`Dispatch`]).
pub fn watch<T: Transport>(slf: &Bound<'_, T>, direction: Direction) -> PyResult<()> {
    let py = slf.py();
    let Some(lp) = T::loop_of(slf) else {
        return Ok(());
    };
    let dispatch = Arc::new(Dispatch {
        target: slf.clone().unbind(),
        context: T::context_of(slf).map(|c| c.clone_ref(py)),
    });
    lp.get()
        .watch(py, T::fd(slf), direction, Watcher::Native(dispatch))?;
    T::lifecycle(slf, |lc| lc.registered(side(direction)));
    Ok(())
}

/// Unregisters the transport as its fd's reader or writer, if it is.
pub fn unwatch<T: Transport>(slf: &Bound<'_, T>, direction: Direction) -> PyResult<()> {
    let was = T::lifecycle(slf, |lc| lc.stop(side(direction)));
    if was.is_empty() {
        return Ok(());
    }
    unregister(slf, direction)
}

/// Removes the transport's reader or writer from the loop (its lifecycle already forgot it).
fn unregister<T: Transport>(slf: &Bound<'_, T>, direction: Direction) -> PyResult<()> {
    match T::loop_of(slf) {
        Some(lp) => lp.get().unwatch(slf.py(), T::fd(slf), direction).map(drop),
        None => Ok(()),
    }
}

/// The lifecycle's name for a reactor direction.
fn side(direction: Direction) -> Side {
    match direction {
        Direction::Read => Side::Read,
        Direction::Write => Side::Write,
    }
}

/// The loop's reader or writer for a [`Reactive`] object's fd: the one [`NativeWatcher`] shape.
pub struct Dispatch<T: Reactive> {
    /// The transport.
    pub target: Py<T>,
    /// The transport's `contextvars.Context` (see [`transport_context`]): what the protocol
    /// callbacks of a ready event run in (`None` only if the transport has none: see its
    /// `context` field).
    pub context: Option<Py<PyAny>>,
}

impl<T: Reactive> NativeWatcher for Dispatch<T> {
    fn ready(&self, py: Python<'_>, direction: Direction) -> PyResult<()> {
        match &self.context {
            Some(context) => crate::ffi::run_in_context(context.bind(py), || {
                T::on_ready(self.target.bind(py), direction)
            }),
            None => T::on_ready(self.target.bind(py), direction),
        }
    }

    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.target.bind(py).clone().into_any())
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.target)?;
        visit.call(&self.context)
    }
}

/// The context a new transport's protocol callbacks run in: a copy of the current one, taken
/// when the transport is made (inside `create_connection`, the server's accept, ...).
///
/// asyncio gets the same effect from its handles: the transport's `_add_reader` is scheduled
/// with `call_soon` at construction, so `data_received` and `eof_received` run in a copy of the
/// creation context. oxloop keeps that one context for every callback of the transport
/// (`connection_made`, reads, `resume_writing`, `connection_lost`, pipe and datagram callbacks),
/// as uvloop does; asyncio runs `connection_lost` in the context of whoever called `close()`.
pub fn transport_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(crate::ffi::copy_context(py)?.unbind())
}

/// `loop.call_soon(*args, context=context)`.
pub fn call_soon_in(
    lp: &Bound<'_, PyLoop>,
    context: Option<&Py<PyAny>>,
    args: Bound<'_, PyTuple>,
) -> PyResult<()> {
    let py = lp.py();
    let kwargs = PyDict::new(py);
    if let Some(context) = context {
        kwargs.set_item(intern!(py, "context"), context)?;
    }
    lp.call_method(intern!(py, "call_soon"), args, Some(&kwargs))?;
    Ok(())
}

/// Mirrors `asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`: writes after the connection
/// was lost are logged from this count on.
pub const LOG_THRESHOLD_FOR_CONNLOST_WRITES: usize = 5;

/// Mirrors `max_size` of asyncio's transports: at most this much is read per readiness event.
pub const MAX_SIZE: usize = 256 * 1024;

/// One read of at most [`MAX_SIZE`] bytes from `fd` (`recv` for a socket), as one `bytes`
/// (see [`read_bytes`]).
pub fn read_chunk<'py>(
    py: Python<'py>,
    fd: std::os::fd::RawFd,
    socket: bool,
) -> PyResult<std::io::Result<Bound<'py, pyo3::types::PyBytes>>> {
    read_bytes(py, fd, MAX_SIZE, socket)
}

/// From this many bytes, the previous read of an fd makes its next read go straight into a
/// `bytes` rather than through [`SCRATCH`]: copying less costs less than the allocation of a
/// `capacity`-sized `bytes` and its shrinking (measured: +4% instructions per 1 KiB echo).
const DIRECT_MIN: usize = 16 * 1024;

thread_local! {
    /// Where small reads land before they are copied into a `bytes` of the size read; grows to
    /// the largest capacity asked (at most [`MAX_SIZE`] for transports, 1 MiB for `sock_recv`).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// By fd number: whether its last read reached [`DIRECT_MIN`] bytes. Only a hint: a stale
    /// entry (the fd closed and reused) costs one copy or one shrink, never a wrong result.
    static BIG_READS: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One read of at most `capacity` bytes from `fd` (`recv` for a socket), as one `bytes` of the
/// size read, as `socket.recv(capacity)` returns it.
///
/// An fd whose last read was large reads straight into a new `bytes` of `capacity`, then
/// shrunk (as `socket.recv` and rloop do): one copy, the kernel's, instead of a second one
/// from a scratch buffer (3-5 us per 100 KiB read); see [`crate::ffi::bytes_read_into`] for
/// why this costs no page faults. Others read into the thread's scratch buffer and copy.
pub fn read_bytes<'py>(
    py: Python<'py>,
    fd: std::os::fd::RawFd,
    capacity: usize,
    socket: bool,
) -> PyResult<std::io::Result<Bound<'py, pyo3::types::PyBytes>>> {
    let slot = usize::try_from(fd).ok();
    let big = slot.is_some_and(|i| BIG_READS.with(|b| b.borrow().get(i).copied() == Some(true)));
    let read = if big {
        crate::ffi::bytes_read_into(py, capacity, |buf| oxloop_core::sys::read(fd, buf, socket))?
    } else {
        SCRATCH.with(|cell| {
            let mut guard = cell.try_borrow_mut();
            let mut fresh = Vec::new();
            // NOTE: only a re-entrant read (none exists today) would find the buffer busy.
            let buf: &mut Vec<u8> = match guard.as_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            if buf.len() < capacity {
                buf.resize(capacity, 0);
            }
            oxloop_core::sys::read(fd, &mut buf[..capacity], socket)
                .map(|n| pyo3::types::PyBytes::new(py, &buf[..n]))
        })
    };
    if let (Some(i), Ok(data)) = (slot, &read) {
        let now_big = data.as_bytes().len() >= DIRECT_MIN;
        if now_big != big && i < (1 << 20) {
            BIG_READS.with(|b| {
                let mut b = b.borrow_mut();
                if b.len() <= i {
                    b.resize(i + 1, false);
                }
                b[i] = now_big;
            });
        }
    }
    Ok(read)
}

/// Reports an error that escaped a transport's reactor callback, as asyncio's `Handle._run`
/// reports one escaping `<callback>()`; `SystemExit` and `KeyboardInterrupt` propagate.
pub fn report_callback_error(
    py: Python<'_>,
    lp: Option<Py<PyLoop>>,
    callback: &str,
    err: PyErr,
) -> PyResult<()> {
    if is_fatal_to_loop(py, &err) {
        return Err(err);
    }
    let Some(lp) = lp else { return Ok(()) };
    let context = PyDict::new(py);
    context.set_item("message", format!("Exception in callback {callback}()"))?;
    context.set_item("exception", err.value(py))?;
    lp.bind(py)
        .call_method1(intern!(py, "call_exception_handler"), (context,))?;
    Ok(())
}

/// `write()`'s fast path: with nothing queued, `bytes` go to the fd at once and only the rest is
/// queued (by `queue(buffer, sent)`); otherwise all of it is queued behind the rest
/// (`queue(buffer, 0)`). `Ok(true)` when the queue just became non-empty (the caller registers
/// the writer); `Err` for a write error other than "try later".
#[inline(always)]
fn send_then_queue<H: AsRef<[u8]>>(
    buffer: &mut oxloop_core::transport::WriteBuffer<H>,
    fd: std::os::fd::RawFd,
    bytes: &[u8],
    socket: bool,
    queue: impl FnOnce(&mut oxloop_core::transport::WriteBuffer<H>, usize),
) -> std::io::Result<bool> {
    if !buffer.is_empty() {
        queue(buffer, 0);
        return Ok(false);
    }
    let n = match oxloop_core::sys::write(fd, bytes, socket) {
        Ok(n) => n,
        Err(e) if oxloop_core::sys::is_retry(&e) => 0,
        Err(e) => return Err(e),
    };
    if n == bytes.len() {
        return Ok(false);
    }
    queue(buffer, n);
    Ok(true)
}

/// [`send_then_queue`] that queues a copy of what the fd did not take.
pub fn send_or_buffer<H: AsRef<[u8]>>(
    buffer: &mut oxloop_core::transport::WriteBuffer<H>,
    fd: std::os::fd::RawFd,
    bytes: &[u8],
    socket: bool,
) -> std::io::Result<bool> {
    send_then_queue(buffer, fd, bytes, socket, |b, sent| b.push(&bytes[sent..]))
}

/// [`send_then_queue`] for an immutable `bytes`: what the fd does not take is queued as a
/// reference to `data`, not a copy (a remainder under 16 KiB is still copied).
pub fn send_or_hold(
    buffer: &mut oxloop_core::transport::WriteBuffer<pyo3::pybacked::PyBackedBytes>,
    fd: std::os::fd::RawFd,
    data: &Bound<'_, pyo3::types::PyBytes>,
    socket: bool,
) -> std::io::Result<bool> {
    use pyo3::types::PyBytesMethods;
    send_then_queue(buffer, fd, data.as_bytes(), socket, |b, sent| {
        b.push_held(data.clone().into(), sent)
    })
}

/// Whether `data` is one of the bytes-like types transports accept.
pub fn is_bytes_like(data: &Bound<'_, PyAny>) -> bool {
    use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
    data.is_instance_of::<PyBytes>()
        || data.is_instance_of::<PyByteArray>()
        || data.is_instance_of::<PyMemoryView>()
}

/// Mirrors `_FlowControlMixin._set_write_buffer_limits`'s checks and error. Ints take the core's
/// path; other numbers (a float, say) get asyncio's Python arithmetic and comparisons, so a bad
/// type fails with the same `TypeError` and a bad value with the same `ValueError`. A fractional
/// limit is floored: the buffer size is a whole number of bytes either way.
pub fn write_buffer_limits(
    high: Option<&Bound<'_, PyAny>>,
    low: Option<&Bound<'_, PyAny>>,
) -> PyResult<oxloop_core::transport::Limits> {
    let high = high.filter(|h| !h.is_none());
    let low = low.filter(|l| !l.is_none());
    let as_int = |v: Option<&Bound<'_, PyAny>>| match v {
        None => Some(None),
        Some(v) if v.is_instance_of::<pyo3::types::PyInt>() => v.extract::<i64>().ok().map(Some),
        Some(_) => None,
    };
    if let (Some(h), Some(l)) = (as_int(high), as_int(low)) {
        return oxloop_core::transport::Limits::new(h, l).map_err(|(h, l)| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "high ({h}) must be >= low ({l}) must be >= 0"
            ))
        });
    }
    let Some(py) = high.or(low).map(|v| v.py()) else {
        return Ok(oxloop_core::transport::Limits::default());
    };
    let high = match (high, low) {
        (Some(h), _) => h.clone(),
        (None, None) => (64_i64 * 1024).into_pyobject(py)?.into_any(),
        (None, Some(l)) => l.mul(4)?,
    };
    let low = match low {
        Some(l) => l.clone(),
        None => high.floor_div(4)?,
    };
    if !(high.ge(&low)? && low.ge(0)?) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "high ({}) must be >= low ({}) must be >= 0",
            high.repr()?,
            low.repr()?
        )));
    }
    let floor = |v: &Bound<'_, PyAny>| -> PyResult<usize> {
        Ok(match v.extract::<usize>() {
            Ok(n) => n,
            Err(_) => v.extract::<f64>()?.floor() as usize,
        })
    };
    Ok(oxloop_core::transport::Limits {
        low: floor(&low)?,
        high: floor(&high)?,
    })
}

/// `_maybe_pause_protocol` (`pause`) / `_maybe_resume_protocol` of any transport, once `due`
/// (its write buffer crossed a water mark): [`flow_call`].
pub fn flow<T: Transport>(slf: &Bound<'_, T>, pause: bool, due: bool) -> PyResult<()> {
    if !due {
        return Ok(());
    }
    flow_call(
        T::loop_of(slf),
        slf.as_any(),
        T::protocol_of(slf),
        T::context_of(slf),
        pause,
    )
}

/// Calls `protocol.pause_writing()` (or `resume_writing()`) in the transport's `context`,
/// reporting its error as `_FlowControlMixin` does.
///
/// NOTE: asyncio calls `pause_writing` from `write()` in the writer's context; oxloop runs it in
/// the transport's, like every other protocol callback (uvloop does the same). When that context
/// is already entered (a `write()` from `data_received`), the call runs where it is.
pub fn flow_call(
    lp: Option<Py<PyLoop>>,
    transport: &Bound<'_, PyAny>,
    protocol: Option<Py<PyAny>>,
    context: Option<&Py<PyAny>>,
    pause: bool,
) -> PyResult<()> {
    let py = transport.py();
    let Some(protocol) = protocol else {
        return Ok(());
    };
    let (method, message) = if pause {
        (
            intern!(py, "pause_writing"),
            "protocol.pause_writing() failed",
        )
    } else {
        (
            intern!(py, "resume_writing"),
            "protocol.resume_writing() failed",
        )
    };
    let call = || protocol.bind(py).call_method0(method).map(drop);
    let result = match context {
        Some(context) => crate::ffi::run_in_context_if_free(context.bind(py), call),
        None => call(),
    };
    if let Err(err) = result {
        if is_fatal_to_loop(py, &err) {
            return Err(err);
        }
        if let Some(lp) = lp {
            report(
                lp.bind(py),
                message,
                err.value(py).as_any(),
                transport,
                Some(protocol),
            )?;
        }
    }
    Ok(())
}

/// `asyncio.trsock.TransportSocket(sock)`: what `get_extra_info('socket')` answers.
pub fn transport_socket(py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    Ok(names(py)?
        .transport_socket
        .bind(py)
        .call1((sock,))?
        .unbind())
}

/// `get_extra_info(name, default)`: `lookup(name)` (the transport's extra info), else
/// `default`, unless `get_extra_info` was replaced on one of asyncio's transport classes the
/// transport reports as its `__class__` (`mock.patch.object(asyncio.Transport,
/// "get_extra_info")`): then that replacement answers, bound to the transport as Python would
/// bind it.
pub fn extra_info<'py>(
    transport: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    default: Option<Py<PyAny>>,
    lookup: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<Option<Py<PyAny>>>,
) -> PyResult<Py<PyAny>> {
    let py = transport.py();
    let method = intern!(py, "get_extra_info");
    let found = transport
        .getattr(intern!(py, "__class__"))?
        .getattr(method)?;
    if !found.is(names(py)?.get_extra_info.bind(py)) {
        let patched = class_attr(transport, method)?;
        return Ok(match default {
            Some(d) => patched.call1((name, d))?,
            None => patched.call1((name,))?,
        }
        .unbind());
    }
    Ok(match lookup(name)? {
        Some(v) => v,
        None => default.unwrap_or_else(|| py.None()),
    })
}

/// `getattr(transport, name)` as if `transport` were an instance of its `__class__` (one of
/// asyncio's transport classes): the attribute found along that class's MRO, bound through its
/// `__get__`. The transport types fall back to it (the socket transport through [`AsyncioAttr`],
/// the pipe transports through `__getattr__`), so asyncio's methods that
/// oxloop does not define (`pause_reading` of a write pipe, raising NotImplementedError) and
/// methods patched onto asyncio's classes are found; `AttributeError` with asyncio's text
/// otherwise.
pub fn class_attr<'py>(
    transport: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = transport.py();
    let cls = transport.getattr(intern!(py, "__class__"))?;
    for klass in cls.getattr(intern!(py, "__mro__"))?.try_iter()? {
        let raw = match klass?.getattr(intern!(py, "__dict__"))?.get_item(name) {
            Ok(raw) => raw,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => continue,
            Err(e) => return Err(e),
        };
        return match raw.get_type().getattr(intern!(py, "__get__")) {
            Ok(get) => get.call1((&raw, transport, &cls)),
            Err(_) => Ok(raw),
        };
    }
    let cls_name = cls.getattr(intern!(py, "__name__"))?;
    Err(pyo3::exceptions::PyAttributeError::new_err(format!(
        "'{cls_name}' object has no attribute '{name}'"
    )))
}

/// An attribute of asyncio's transport class that an oxloop transport type lacks, installed on
/// that type (see [`inherit_from`]): reading it binds whatever the class holds under that name
/// now ([`class_attr`]), so a later patch of the class reaches the transport too.
///
/// NOTE: a non-data descriptor on the type, not a `__getattr__`: a type with its own attribute
/// lookup makes CPython build a bound method on every `transport.write(...)` call (a GC-tracked
/// allocation per call); with the generic lookup the call goes straight to the method.
#[pyclass(frozen, module = "oxloop._oxloop")]
pub struct AsyncioAttr {
    /// The attribute's name on asyncio's class.
    name: Py<pyo3::types::PyString>,
}

#[pymethods]
impl AsyncioAttr {
    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        obj: Option<&Bound<'py, PyAny>>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match obj {
            Some(obj) if !obj.is_none() => class_attr(obj, slf.get().name.bind(slf.py())),
            _ => Ok(slf.clone().into_any()),
        }
    }
}

/// Gives the transport type `ty` every public or private attribute of asyncio's class `cls`
/// (what its instances report as `__class__`) that `ty` does not define, as an [`AsyncioAttr`];
/// dunder names are left alone (`__del__` would install a finalizer, say). An instance attribute
/// of the same name still wins, as on asyncio's pure-Python transports.
fn inherit_from(ty: &Bound<'_, pyo3::types::PyType>, cls: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = ty.py();
    for name in cls.dir()?.iter() {
        let name = name.cast_into::<pyo3::types::PyString>()?;
        let text = name.to_str()?;
        if (text.starts_with("__") && text.ends_with("__")) || ty.hasattr(&name)? {
            continue;
        }
        let attr = Py::new(
            py,
            AsyncioAttr {
                name: name.clone().unbind(),
            },
        )?;
        ty.setattr(&name, attr)?;
    }
    Ok(())
}

/// Whether `err` must stop the loop instead of going to the exception handler.
pub fn is_fatal_to_loop(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
        || err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
}

/// `loop.call_exception_handler({'message', 'exception', 'transport', 'protocol'})`, the context
/// asyncio's transports report with.
pub fn report(
    lp: &Bound<'_, PyLoop>,
    message: &str,
    exc: &Bound<'_, PyAny>,
    transport: &Bound<'_, PyAny>,
    protocol: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = lp.py();
    let context = PyDict::new(py);
    context.set_item("message", message)?;
    context.set_item("exception", exc)?;
    context.set_item("transport", transport)?;
    context.set_item("protocol", protocol)?;
    lp.call_method1(intern!(py, "call_exception_handler"), (context,))?;
    Ok(())
}

/// Logs `"%r {msg}"` about `transport` on the asyncio logger at `level` (with `exc` as
/// `exc_info`), only in debug mode.
pub fn debug_log(
    lp: &Bound<'_, PyLoop>,
    level: &str,
    transport: &Bound<'_, PyAny>,
    msg: &str,
    exc: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = lp.py();
    if !lp.get().debug(py) {
        return Ok(());
    }
    let logger = names(py)?.logger.bind(py);
    match exc {
        Some(exc) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", exc)?;
            logger.call_method(level, ("%r: %s", transport, msg), Some(&kwargs))?;
        }
        None => {
            logger.call_method1(level, (format!("%r {msg}"), transport))?;
        }
    }
    Ok(())
}

/// What a transport collected while open does, as asyncio's `__del__`: warns `unclosed
/// transport <repr>` (a `ResourceWarning`), then closes `owner`, the socket or pipe object.
pub fn close_unclosed(py: Python<'_>, repr: &str, owner: &Py<PyAny>) {
    warn_unclosed(py, repr);
    if let Err(err) = owner.bind(py).call_method0(intern!(py, "close")) {
        err.write_unraisable(py, None);
    }
}

/// Warns `unclosed transport <repr>` (a `ResourceWarning`).
fn warn_unclosed(py: Python<'_>, repr: &str) {
    let category = py.get_type::<pyo3::exceptions::PyResourceWarning>();
    let msg = std::ffi::CString::new(format!("unclosed transport {repr}")).unwrap_or_default();
    if let Err(err) = PyErr::warn(py, &category, &msg, 1) {
        err.write_unraisable(py, None);
    }
}

/// The asyncio objects the transports use, imported once.
pub struct AsyncioNames {
    /// `asyncio.trsock.TransportSocket`.
    pub transport_socket: Py<PyAny>,
    /// `asyncio.base_events._set_nodelay`.
    pub set_nodelay: Py<PyAny>,
    /// `asyncio.futures._set_result_unless_cancelled`.
    pub set_result_unless_cancelled: Py<PyAny>,
    /// `asyncio.protocols.BufferedProtocol`.
    pub buffered_protocol: Py<PyAny>,
    /// `logging.getLogger("asyncio")`.
    pub logger: Py<PyAny>,
    /// `asyncio.constants._SendfileMode.TRY_NATIVE`.
    pub sendfile_try_native: Py<PyAny>,
    /// What a read pipe transport reports as its `__class__` (a `ReadTransport`).
    pub read_pipe_class: Py<PyAny>,
    /// What a write pipe transport reports as its `__class__` (a `_FlowControlMixin`).
    pub write_pipe_class: Py<PyAny>,
    /// `socket.socket`: a transport's socket whose class overrides its I/O methods is used
    /// through them.
    pub socket_class: Py<PyAny>,
    /// `asyncio.BaseTransport.get_extra_info`, to notice a replacement (see [`extra_info`]).
    pub get_extra_info: Py<PyAny>,
    /// The class a stream transport reports as its `__class__`: a subclass of
    /// `asyncio.Transport` (through `_FlowControlMixin`) named `_SelectorSocketTransport` like
    /// asyncio's own.
    pub transport_class: Py<PyAny>,
    /// True where `Server._attach` / `Server._detach` take the transport (Python 3.13+, whose
    /// `Server` keeps its transports for `close_clients()` / `abort_clients()`).
    pub server_takes_transport: bool,
    /// True where a datagram transport's `sendto(b"")` sends an empty datagram (Python 3.13+;
    /// before, it did nothing).
    pub sends_empty_datagrams: bool,
    /// What a buffered datagram counts in the write buffer size beyond its payload: 8 (a UDP
    /// header) on Python 3.13+, whose `_SelectorDatagramTransport` counts it, 0 before.
    pub datagram_header_size: usize,
    /// True where the socket transport has its own `writelines` (Python 3.12+: its own
    /// RuntimeError texts, a memoryview of each item); before, `WriteTransport.writelines`.
    pub own_writelines: bool,
    /// The running Python's `_SelectorSocketTransport.write` TypeError text up to the type's
    /// name (3.14 and late 3.13 releases name `bytes, bytearray, or memoryview`; before, `a
    /// bytes-like object`): taken from asyncio itself, see [`probe_write_type_error`].
    pub write_type_error: String,
}

/// What the running Python's `_SelectorSocketTransport.write(None, None)` raises, minus the type
/// name: the method checks `data`'s type before it touches `self`, so the probe runs nothing else.
/// Falls back to the text of 3.11-3.13.0 if asyncio's method ever stops raising that way.
fn probe_write_type_error(py: Python<'_>) -> String {
    const FALLBACK: &str = "data argument must be a bytes-like object, not ";
    let probe = || -> PyResult<Option<String>> {
        let write = py
            .import("asyncio.selector_events")?
            .getattr("_SelectorSocketTransport")?
            .getattr("write")?;
        let Err(err) = write.call1((py.None(), py.None())) else {
            return Ok(None);
        };
        if !err.is_instance_of::<PyTypeError>(py) {
            return Ok(None);
        }
        let text = err.value(py).str()?.to_string();
        Ok(text.strip_suffix("'NoneType'").map(str::to_owned))
    };
    probe()
        .ok()
        .flatten()
        .unwrap_or_else(|| FALLBACK.to_owned())
}

static NAMES: PyOnceLock<AsyncioNames> = PyOnceLock::new();

/// The cached asyncio objects.
pub fn names(py: Python<'_>) -> PyResult<&AsyncioNames> {
    NAMES.get_or_try_init(py, || {
        let asyncio = py.import("asyncio")?;
        // asyncio's socket and write pipe transports are `_FlowControlMixin`s; `loop.sendfile`'s
        // fallback checks for it.
        let flow = py
            .import("asyncio.transports")?
            .getattr("_FlowControlMixin")?;
        let marker = |name: &str, base: &Bound<'_, PyAny>| -> PyResult<Py<PyAny>> {
            let ns = PyDict::new(py);
            ns.set_item("__slots__", PyTuple::empty(py))?;
            ns.set_item("__module__", "oxloop._oxloop")?;
            ns.set_item(
                "__doc__",
                "What an oxloop transport reports as its __class__.",
            )?;
            let cls = py
                .get_type::<pyo3::types::PyType>()
                .call1((name, (base,), ns))?;
            Ok(cls.unbind())
        };
        Ok::<_, PyErr>(AsyncioNames {
            transport_socket: py
                .import("asyncio.trsock")?
                .getattr("TransportSocket")?
                .unbind(),
            set_nodelay: py
                .import("asyncio.base_events")?
                .getattr("_set_nodelay")?
                .unbind(),
            set_result_unless_cancelled: py
                .import("asyncio.futures")?
                .getattr("_set_result_unless_cancelled")?
                .unbind(),
            buffered_protocol: asyncio.getattr("BufferedProtocol")?.unbind(),
            logger: py
                .import("logging")?
                .call_method1("getLogger", ("asyncio",))?
                .unbind(),
            sendfile_try_native: py
                .import("asyncio.constants")?
                .getattr("_SendfileMode")?
                .getattr("TRY_NATIVE")?
                .unbind(),
            socket_class: py.import("socket")?.getattr("socket")?.unbind(),
            get_extra_info: asyncio
                .getattr("BaseTransport")?
                .getattr("get_extra_info")?
                .unbind(),
            read_pipe_class: marker("_UnixReadPipeTransport", &asyncio.getattr("ReadTransport")?)?,
            write_pipe_class: marker("_UnixWritePipeTransport", &flow)?,
            transport_class: marker("_SelectorSocketTransport", &flow)?,
            server_takes_transport: py.version_info() >= (3, 13),
            sends_empty_datagrams: py.version_info() >= (3, 13),
            datagram_header_size: if py.version_info() >= (3, 13) { 8 } else { 0 },
            own_writelines: py.version_info() >= (3, 12),
            write_type_error: probe_write_type_error(py),
        })
        .and_then(|names| {
            let socket = py.get_type::<stream::SocketTransport>();
            inherit_from(&socket, names.transport_class.bind(py))?;
            // What lacks an attribute is reported as asyncio reports its own transport.
            crate::ffi::set_message_name(&socket, c"_SelectorSocketTransport");
            Ok(names)
        })
    })
}
