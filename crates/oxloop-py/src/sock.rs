//! Pending `sock_*` calls: the slow path of `loop.sock_recv` and friends.
//!
//! The Python half (`oxloop._sock`) tries the socket call at once, as asyncio does. Only when the
//! call would block does it ask [`sock_wait`] for a future: a [`SockWait`] is registered with the
//! loop as a native watcher ([`Dispatch`]) on the socket's fd (no Python `Handle`), retries the call each time
//! the tick reports the fd ready, and resolves the future with the call's result or exception.
//!
//! Cancellation safety: the `SockWait` is also the future's done callback. Whenever the future
//! completes (result, exception or `cancel()`), the registration is removed if it is still the
//! fd's current watcher, so a cancelled call leaves the socket usable and no stale watcher
//! behind. Mirrors `_sock_read_done` / `_sock_write_done` in `asyncio/selector_events.py`.
//!
//! # Implementation
//! The retried calls go through the Python socket object's own methods (`recv`, `sendto`, ...):
//! they take every address family and buffer type Python accepts and raise exactly Python's
//! exceptions. The measured cost of the method call is small next to the wake-up itself, and the
//! fast path (the first attempt) is the same code asyncio runs. Only `connect`'s completion check
//! (`SO_ERROR`) is a raw `getsockopt`.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{
    PyBlockingIOError, PyInterruptedError, PyKeyboardInterrupt, PyOSError, PySystemExit,
    PyValueError,
};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PySlice, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::event_loop::{Direction, PyLoop};
use crate::gil::GilCell;
use crate::transports::{Dispatch, Reactive};

/// What a pending call retries when its fd is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `sock.recv(*args)`.
    Recv,
    /// `sock.recv_into(*args)`.
    RecvInto,
    /// `sock.recvfrom(*args)`.
    RecvFrom,
    /// `sock.recvfrom_into(*args)`.
    RecvFromInto,
    /// `sock.sendto(*args)`.
    SendTo,
    /// `sock.send(view[pos:])` until the whole view is sent; `args` is `(view, pos)`.
    SendAll,
    /// A non-blocking `connect` in progress; `args` is `(address,)`, used in the error text.
    Connect,
    /// `sock.accept()`, the new socket made non-blocking.
    Accept,
    /// Nothing to retry: the future gets `None` once the fd is readable.
    Readable,
    /// Nothing to retry: the future gets `None` once the fd is writable.
    Writable,
}

impl Kind {
    fn parse(name: &str) -> PyResult<Self> {
        Ok(match name {
            "recv" => Kind::Recv,
            "recv_into" => Kind::RecvInto,
            "recvfrom" => Kind::RecvFrom,
            "recvfrom_into" => Kind::RecvFromInto,
            "sendto" => Kind::SendTo,
            "sendall" => Kind::SendAll,
            "connect" => Kind::Connect,
            "accept" => Kind::Accept,
            "readable" => Kind::Readable,
            "writable" => Kind::Writable,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown sock_wait kind {name:?}"
                )))
            }
        })
    }

    fn direction(self) -> Direction {
        match self {
            Kind::Recv
            | Kind::RecvInto
            | Kind::RecvFrom
            | Kind::RecvFromInto
            | Kind::Accept
            | Kind::Readable => Direction::Read,
            Kind::SendTo | Kind::SendAll | Kind::Connect | Kind::Writable => Direction::Write,
        }
    }
}

/// The Python objects of a pending call.
struct Parts {
    /// The future the caller awaits.
    fut: Py<PyAny>,
    /// The socket object the call retries on.
    sock: Py<PyAny>,
    /// The call's arguments (see [`Kind`]).
    args: Py<PyTuple>,
    /// `SendAll` only: how many bytes of the view were sent so far.
    pos: usize,
}

/// One pending `sock_*` call, watching its fd through the loop's reactor.
#[pyclass(frozen, module = "oxloop._oxloop")]
pub struct SockWait {
    /// The loop the fd is watched on.
    loop_: Py<PyLoop>,
    /// The socket's fd when the call started.
    fd: RawFd,
    /// What is retried on readiness.
    kind: Kind,
    /// The future, socket and arguments; `None` once the call finished or the GC cleared it.
    parts: GilCell<Option<Parts>>,
    /// Data address of the `Arc` registered with the loop, to recognise our own registration
    /// among the fd's watchers (0 before registration).
    token: AtomicUsize,
    /// The socket is a plain non-blocking `socket.socket`: `recv`, `recv_into` and `sendall`
    /// are retried as raw syscalls on `fd` (see [`sock_try`]) instead of through its methods.
    raw: bool,
}

impl Reactive for SockWait {
    #[inline(always)]
    fn on_ready(slf: &Bound<'_, Self>, _direction: Direction) -> PyResult<()> {
        SockWait::ready(slf)
    }
}

/// `BlockingIOError` or `InterruptedError`: the call would block, try again when ready.
pub(crate) fn is_retry(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyBlockingIOError>(py) || err.is_instance_of::<PyInterruptedError>(py)
}

/// `SystemExit` or `KeyboardInterrupt`: must stop the loop, never be swallowed.
pub(crate) fn is_fatal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR)`.
fn so_error(fd: RawFd) -> std::io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes getsockopt expects for SO_ERROR; a
    // stale fd only makes the kernel answer EBADF.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl SockWait {
    /// The fd is ready: retry the call and settle the future if it is done.
    fn ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let parts = this.parts.borrow(py).as_ref().map(|p| {
            (
                p.fut.clone_ref(py),
                p.sock.clone_ref(py),
                p.args.clone_ref(py),
                p.pos,
            )
        });
        let Some((fut, sock, args, pos)) = parts else {
            return this.unregister(py);
        };
        let fut = fut.bind(py);
        let result = (|| -> PyResult<()> {
            if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                // Cancelled since the fd was reported ready: stop watching now rather than wait
                // for the done callback (it finds nothing left to do).
                return this.unregister(py);
            }
            match this.attempt(py, sock.bind(py), args.bind(py), pos) {
                Ok(Step::Sent(n)) => {
                    if let Some(p) = this.parts.borrow_mut(py).as_mut() {
                        p.pos = n;
                    }
                    Ok(())
                }
                Ok(Step::Done(value)) => {
                    this.unregister(py)?;
                    fut.call_method1(intern!(py, "set_result"), (value,))
                        .map(drop)
                }
                Err(err) if is_retry(py, &err) => Ok(()),
                Err(err) if is_fatal(py, &err) => Err(err),
                Err(err) => {
                    this.unregister(py)?;
                    fut.call_method1(intern!(py, "set_exception"), (err.value(py),))
                        .map(drop)
                }
            }
        })();
        match result {
            Ok(()) => Ok(()),
            Err(err) if is_fatal(py, &err) => Err(err),
            Err(err) => this.report(py, slf.as_any(), err),
        }
    }

    /// One try of the call.
    fn attempt(
        &self,
        py: Python<'_>,
        sock: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        pos: usize,
    ) -> PyResult<Step> {
        let call = |name: &Bound<'_, pyo3::types::PyString>| -> PyResult<Step> {
            Ok(Step::Done(sock.call_method1(name, args)?.unbind()))
        };
        if self.raw {
            if let Some(step) = self.attempt_raw(py, sock, args, pos) {
                return step;
            }
        }
        match self.kind {
            Kind::Recv => call(intern!(py, "recv")),
            Kind::RecvInto => call(intern!(py, "recv_into")),
            Kind::RecvFrom => call(intern!(py, "recvfrom")),
            Kind::RecvFromInto => call(intern!(py, "recvfrom_into")),
            Kind::SendTo => call(intern!(py, "sendto")),
            Kind::SendAll => {
                // Mirrors BaseSelectorEventLoop._sock_sendall.
                let view = args.get_item(0)?;
                let len = view.len()?;
                let rest = view.get_item(PySlice::new(py, pos as isize, isize::MAX, 1))?;
                let n: usize = sock.call_method1(intern!(py, "send"), (rest,))?.extract()?;
                let pos = pos + n;
                if pos >= len {
                    Ok(Step::Done(py.None()))
                } else {
                    Ok(Step::Sent(pos))
                }
            }
            Kind::Connect => {
                // Mirrors BaseSelectorEventLoop._sock_connect_cb.
                let err = so_error(self.fd).map_err(|e| crate::errors::os_error(py, &e))?;
                if err != 0 {
                    let address = args.get_item(0)?.str()?;
                    return Err(PyOSError::new_err((
                        err,
                        format!("Connect call failed {address}"),
                    )));
                }
                Ok(Step::Done(py.None()))
            }
            Kind::Accept => Ok(Step::Done(accept_method(py, sock)?.unbind())),
            Kind::Readable | Kind::Writable => Ok(Step::Done(py.None())),
        }
    }

    /// One try of `recv`, `recv_into` or `sendall` as a raw syscall on `fd`; `None` for other
    /// calls and arguments the raw path does not take (the socket method then runs).
    fn attempt_raw(
        &self,
        py: Python<'_>,
        sock: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        pos: usize,
    ) -> Option<PyResult<Step>> {
        let os_error = |e: std::io::Error| crate::errors::os_error(py, &e);
        match self.kind {
            Kind::Recv => {
                let n = args.get_item(0).ok()?;
                let bytes = recv_bytes(py, self.fd, &n)?;
                Some(bytes.and_then(|r| r.map(|b| Step::Done(b.unbind())).map_err(os_error)))
            }
            Kind::RecvInto => {
                let buf = args.get_item(0).ok()?;
                let n =
                    crate::ffi::with_bytes_mut(&buf, |b| oxloop_core::sys::read(self.fd, b, true))
                        .ok()?;
                Some(
                    n.map_err(os_error)
                        .and_then(|n| Ok(Step::Done(n.into_pyobject(py)?.into_any().unbind()))),
                )
            }
            Kind::SendAll => {
                // Mirrors BaseSelectorEventLoop._sock_sendall, on the view's bytes.
                let view = args.get_item(0).ok()?;
                let sent = crate::ffi::with_bytes(&view, |data| {
                    let rest = data.get(pos..).unwrap_or_default();
                    oxloop_core::sys::write(self.fd, rest, true).map(|n| (pos + n, data.len()))
                })
                .ok()?;
                Some(sent.map_err(os_error).map(|(pos, len)| {
                    if pos >= len {
                        Step::Done(py.None())
                    } else {
                        Step::Sent(pos)
                    }
                }))
            }
            Kind::Accept => {
                let step = accept_raw(py, sock, self.fd, None).transpose()?;
                Some(step.map(|pair| Step::Done(pair.into_any().unbind())))
            }
            _ => None,
        }
    }

    /// Removes our registration from the loop if it is still the fd's watcher.
    fn unregister(&self, py: Python<'_>) -> PyResult<()> {
        let token = self.token.swap(0, Ordering::Relaxed);
        if token == 0 {
            return Ok(());
        }
        let lp = self.loop_.get();
        let direction = self.kind.direction();
        if lp.watches(py, self.fd, direction, token) {
            lp.unwatch(py, self.fd, direction)?;
        }
        Ok(())
    }

    /// An unexpected error (the future refused its result, say) goes to the exception handler,
    /// as asyncio's `Handle._run` would send it.
    fn report(&self, py: Python<'_>, owner: &Bound<'_, PyAny>, err: PyErr) -> PyResult<()> {
        let context = PyDict::new(py);
        context.set_item(
            intern!(py, "message"),
            format!("Exception in callback {}", owner.repr()?),
        )?;
        context.set_item(intern!(py, "exception"), err.value(py))?;
        self.loop_
            .bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (context,))?;
        Ok(())
    }
}

/// The outcome of one try.
enum Step {
    /// `SendAll` made progress: this many bytes are sent in total.
    Sent(usize),
    /// Finished with this result.
    Done(Py<PyAny>),
}

#[pymethods]
impl SockWait {
    /// The future's done callback: drop the fd registration (cancellation included).
    fn __call__(&self, py: Python<'_>, _fut: &Bound<'_, PyAny>) -> PyResult<()> {
        let parts = self.parts.borrow_mut(py).take();
        let result = self.unregister(py);
        drop(parts);
        result
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.parts.borrow(py).is_some() {
            "pending"
        } else {
            "done"
        };
        format!("<SockWait {:?} fd={} {state}>", self.kind, self.fd)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        if let Some(parts) = self.parts.try_borrow_in_gc() {
            if let Some(p) = &*parts {
                visit.call(&p.fut)?;
                visit.call(&p.sock)?;
                visit.call(&p.args)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let parts = self
                .parts
                .try_borrow_mut_in_gc(py)
                .and_then(|mut p| p.take());
            drop(parts);
        });
    }
}

/// Waits for `fd` (the fileno of `sock`) to be ready for the call `kind` (`"recv"`, `"sendall"`,
/// ...), retrying it on each readiness; returns the future that gets its result.
#[pyfunction]
pub fn sock_wait(
    loop_: &Bound<'_, PyLoop>,
    sock: &Bound<'_, PyAny>,
    fd: RawFd,
    kind: &str,
    args: &Bound<'_, PyTuple>,
) -> PyResult<Py<PyAny>> {
    let py = loop_.py();
    let kind = Kind::parse(kind)?;
    let fut = loop_.call_method0(intern!(py, "create_future"))?;
    let wait = Py::new(
        py,
        SockWait {
            loop_: loop_.clone().unbind(),
            fd,
            kind,
            parts: GilCell::new(Some(Parts {
                fut: fut.clone().unbind(),
                sock: sock.clone().unbind(),
                args: args.clone().unbind(),
                pos: if kind == Kind::SendAll {
                    args.get_item(1)?.extract()?
                } else {
                    0
                },
            })),
            token: AtomicUsize::new(0),
            raw: matches!(
                kind,
                Kind::Recv | Kind::RecvInto | Kind::SendAll | Kind::Accept
            ) && is_plain_nonblocking(py, sock)?,
        },
    )?;
    let watcher = Arc::new(Dispatch {
        target: wait.clone_ref(py),
        context: None,
    });
    let token = loop_
        .get()
        .watch_native(py, fd, kind.direction(), watcher)?;
    wait.get().token.store(token, Ordering::Relaxed);
    fut.call_method1(intern!(py, "add_done_callback"), (wait,))?;
    Ok(fut.unbind())
}

/// `sock_try` operation: `sock.recv(arg)`.
const TRY_RECV: u8 = 0;
/// `sock_try` operation: `sock.recv_into(arg)`.
const TRY_RECV_INTO: u8 = 1;
/// `sock_try` operation: `sock.send(arg)`.
const TRY_SEND: u8 = 2;
/// `sock_try` operation: `sock.accept()`, the new socket made non-blocking.
const TRY_ACCEPT: u8 = 3;
/// `sock_try` operation: `sock.connect(arg)`; `None` when connected at once.
const TRY_CONNECT: u8 = 4;
/// The largest `sock_recv` size read in Rust; larger ones use `sock.recv`.
const MAX_RECV: usize = 1 << 20;

/// `recv(fd, n)` into a new `bytes` of the received size (see
/// [`crate::transports::read_bytes`]), for an exact `int` `n` up to `MAX_RECV`; `None` for any
/// other `n` (the socket method then decides).
fn recv_bytes<'py>(
    py: Python<'py>,
    fd: RawFd,
    n: &Bound<'py, PyAny>,
) -> Option<PyResult<std::io::Result<Bound<'py, PyAny>>>> {
    let n = n
        .cast_exact::<pyo3::types::PyInt>()
        .ok()?
        .extract::<usize>()
        .ok()?;
    if n > MAX_RECV {
        return None;
    }
    Some(crate::transports::read_bytes(py, fd, n, true).map(|r| r.map(Bound::into_any)))
}

/// Whether `sock` is a plain `socket.socket` in non-blocking mode (`gettimeout() == 0`).
fn is_plain_nonblocking(py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !sock.get_type().is(socket_type(py)?.bind(py)) {
        return Ok(false);
    }
    Ok(sock
        .call_method0(intern!(py, "gettimeout"))?
        .cast::<pyo3::types::PyFloat>()
        .is_ok_and(|t| t.value() == 0.0))
}

/// `sock.accept()` through the socket's own method, the new socket made non-blocking (mirrors
/// `BaseSelectorEventLoop._sock_accept`).
pub(crate) fn accept_method<'py>(
    py: Python<'py>,
    sock: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let pair = sock.call_method0(intern!(py, "accept"))?;
    let conn = pair.get_item(0)?;
    if let Err(err) = conn.call_method1(intern!(py, "setblocking"), (false,)) {
        // The new socket has no other owner yet: close it rather than leak it.
        let _ = conn.call_method0(intern!(py, "close"));
        return Err(err);
    }
    Ok(pair)
}

/// The `(family, type, proto)` a listening socket passes to the sockets it accepts, read from
/// `_socket.socket`'s own fields (the `socket.socket` properties would build enums).
pub(crate) fn listener_kind(py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<(i32, i32, i32)> {
    let fields = SOCKET_FIELDS.get_or_try_init(py, || {
        let base = py.import("_socket")?.getattr("socket")?;
        let field = |name: &str| -> PyResult<Py<PyAny>> {
            Ok(base.getattr("__dict__")?.get_item(name)?.unbind())
        };
        Ok::<_, PyErr>([field("family")?, field("type")?, field("proto")?])
    })?;
    let get = |i: usize| -> PyResult<i32> {
        fields[i]
            .bind(py)
            .call_method1(intern!(py, "__get__"), (sock,))?
            .extract()
    };
    Ok((get(0)?, get(1)?, get(2)?))
}

/// `_socket.socket`'s `family`, `type` and `proto` descriptors.
static SOCKET_FIELDS: PyOnceLock<[Py<PyAny>; 3]> = PyOnceLock::new();

/// One `accept4` on the listening socket `fd` (a non-blocking plain `socket.socket` of kind
/// `kind`, read from `sock` when `None`: see [`listener_kind`]): `(conn, address)` as
/// `sock.accept()` followed by `conn.setblocking(False)` gives them, `None` when no connection
/// is pending (or the call was interrupted), or the `OSError`.
pub(crate) fn accept_raw<'py>(
    py: Python<'py>,
    sock: &Bound<'py, PyAny>,
    fd: RawFd,
    kind: Option<(i32, i32, i32)>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    use std::os::fd::IntoRawFd;
    let (conn, peer) = match oxloop_core::sys::socket::accept(fd) {
        Ok(accepted) => accepted,
        Err(e) if oxloop_core::sys::is_retry(&e) => return Ok(None),
        Err(e) => return Err(crate::errors::os_error(py, &e)),
    };
    let (family, type_, proto) = match kind {
        Some(kind) => kind,
        None => listener_kind(py, sock)?,
    };
    let raw = conn.into_raw_fd();
    let socket_type = socket_type(py)?;
    // NOTE: SOCK_NONBLOCK makes the new object's timeout 0 without a syscall (the fd already
    // is non-blocking); `type` still reads back without the flag, as after setblocking(False).
    let conn = match socket_type
        .bind(py)
        .call1((family, type_ | libc::SOCK_NONBLOCK, proto, raw))
    {
        Ok(conn) => conn,
        Err(err) => {
            // SAFETY: the socket object refused the fd before taking it: we still own it.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
            return Err(err);
        }
    };
    use oxloop_core::sys::socket::PeerAddr;
    let address = match peer {
        PeerAddr::V4(host, port) => (host, port).into_pyobject(py)?.into_any(),
        PeerAddr::V6(host, port, flow, scope) => {
            (host, port, flow, scope).into_pyobject(py)?.into_any()
        }
        PeerAddr::UnixPath(path) => {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(&path)
                .into_pyobject(py)?
                .into_any()
        }
        PeerAddr::UnixAbstract(name) => pyo3::types::PyBytes::new(py, &name).into_any(),
        PeerAddr::Other(_) => conn.call_method0(intern!(py, "getpeername"))?,
    };
    Ok(Some(PyTuple::new(py, [conn, address])?))
}

/// `socket.socket`.
fn socket_type(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    SOCKET_TYPE.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("socket")?.getattr("socket")?.unbind())
    })
}

/// `socket.socket`.
static SOCKET_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The sentinel `sock_try` returns when the call would block.
static AGAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn again(py: Python<'_>) -> PyResult<Py<PyAny>> {
    AGAIN
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("builtins")?.getattr("object")?.call0()?.unbind())
        })
        .map(|a| a.clone_ref(py))
}

/// The first try of `sock_recv` / `sock_recv_into` / `sock_sendall` on a plain `socket.socket`,
/// with asyncio's checks in asyncio's order (the SSL check cannot apply to this exact type; then
/// the non-blocking check in debug mode). Mirrors the start of
/// `BaseSelectorEventLoop.sock_recv` and friends: returns the call's result, or `SOCK_AGAIN`
/// (for a send: 0 bytes) when it would block; other errors raise as the socket method does.
///
/// On a non-blocking socket the call is a raw syscall on its fd, with the GIL held (it cannot
/// block): no Python exception is raised and caught when it would block, and the GIL is not
/// handed around. Any other case (a socket with a timeout, an argument the raw path does not
/// take) calls the socket's own method, so results and errors are the socket module's.
#[pyfunction]
pub fn sock_try(
    loop_: &Bound<'_, PyLoop>,
    sock: &Bound<'_, PyAny>,
    op: u8,
    arg: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let py = loop_.py();
    let timeout = sock.call_method0(intern!(py, "gettimeout"))?;
    let nonblocking = timeout
        .cast::<pyo3::types::PyFloat>()
        .is_ok_and(|t| t.value() == 0.0);
    if !nonblocking && loop_.get().debug(py) {
        return Err(PyValueError::new_err("the socket must be non-blocking"));
    }
    let fd: RawFd = if nonblocking {
        sock.call_method0(intern!(py, "fileno"))?.extract()?
    } else {
        -1
    };
    if fd >= 0 && op == TRY_ACCEPT {
        return match accept_raw(py, sock, fd, None)? {
            Some(pair) => Ok(pair.into_any().unbind()),
            None => again(py),
        };
    }
    if fd >= 0 && op == TRY_CONNECT {
        // connect_ex: the same address parsing and errors as connect, without raising when the
        // connection goes on in the background. Mirrors BaseSelectorEventLoop._sock_connect.
        let err: i32 = match sock.call_method1(intern!(py, "connect_ex"), (arg,)) {
            Ok(err) => err.extract()?,
            Err(err) if is_fatal(py, &err) => return Err(err),
            // A bad address: connect raises the same error under its own name.
            Err(_) => -1,
        };
        return match err {
            -1 => match sock.call_method1(intern!(py, "connect"), (arg,)) {
                Ok(_) => Ok(py.None()),
                Err(err) if is_retry(py, &err) => again(py),
                Err(err) => Err(err),
            },
            0 => Ok(py.None()),
            libc::EINPROGRESS | libc::EAGAIN | libc::EINTR => again(py),
            errno => Err(crate::errors::os_error(
                py,
                &std::io::Error::from_raw_os_error(errno),
            )),
        };
    }
    if fd >= 0 {
        let raw: Option<std::io::Result<Py<PyAny>>> = match op {
            TRY_RECV => match recv_bytes(py, fd, arg) {
                Some(read) => Some(read?.map(Bound::unbind)),
                None => None,
            },
            TRY_RECV_INTO => crate::ffi::with_bytes_mut(arg, |buf| {
                oxloop_core::sys::read(fd, buf, true)
                    .map(|k| k.into_pyobject(py).map(|k| k.into_any().unbind()))
            })
            .ok()
            .map(|r| r.and_then(|k| k.map_err(std::io::Error::other))),
            TRY_SEND
                if arg.is_exact_instance_of::<pyo3::types::PyBytes>()
                    || arg.is_exact_instance_of::<pyo3::types::PyByteArray>() =>
            {
                crate::ffi::with_bytes(arg, |data| {
                    match oxloop_core::sys::write(fd, data, true) {
                        Ok(n) => Ok(n),
                        Err(e) if oxloop_core::sys::is_retry(&e) => Ok(0),
                        Err(e) => Err(e),
                    }
                    .map(|n| n.into_pyobject(py).map(|n| n.into_any().unbind()))
                })
                .ok()
                .map(|r| r.and_then(|k| k.map_err(std::io::Error::other)))
            }
            _ => None,
        };
        match raw {
            Some(Ok(value)) => return Ok(value),
            Some(Err(e)) if oxloop_core::sys::is_retry(&e) => return again(py),
            Some(Err(e)) => return Err(crate::errors::os_error(py, &e)),
            None => {}
        }
    }
    // The socket's own method: blocking sockets, closed ones, unusual arguments.
    let name = match op {
        TRY_RECV => intern!(py, "recv"),
        TRY_RECV_INTO => intern!(py, "recv_into"),
        TRY_CONNECT => intern!(py, "connect"),
        TRY_ACCEPT => {
            return match accept_method(py, sock) {
                Ok(pair) => Ok(pair.unbind()),
                Err(err) if is_retry(py, &err) => again(py),
                Err(err) => Err(err),
            }
        }
        _ => intern!(py, "send"),
    };
    match sock.call_method1(name, (arg,)) {
        Ok(value) => Ok(value.unbind()),
        Err(err) if is_retry(py, &err) => {
            if op == TRY_SEND {
                Ok(0i32.into_pyobject(py)?.into_any().unbind())
            } else {
                again(py)
            }
        }
        Err(err) => Err(err),
    }
}

/// Adds this module's functions and classes to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SockWait>()?;
    m.add_function(wrap_pyfunction!(sock_wait, m)?)?;
    m.add_function(wrap_pyfunction!(sock_try, m)?)?;
    m.add("SOCK_AGAIN", again(m.py())?)?;
    m.add("SOCK_TRY_RECV", TRY_RECV)?;
    m.add("SOCK_TRY_RECV_INTO", TRY_RECV_INTO)?;
    m.add("SOCK_TRY_SEND", TRY_SEND)?;
    m.add("SOCK_TRY_ACCEPT", TRY_ACCEPT)?;
    m.add("SOCK_TRY_CONNECT", TRY_CONNECT)?;
    Ok(())
}
