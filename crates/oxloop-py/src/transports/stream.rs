//! The socket stream transport (TCP and Unix sockets): asyncio's `_SelectorSocketTransport` in
//! Rust.
//!
//! In a tick, a readable socket runs [`SocketTransport::read_ready`] (one `recv` into a buffer
//! shared by every transport of the thread, one `bytes` object, one `data_received` call; or
//! `get_buffer`/`recv_into`/`buffer_updated` for a `BufferedProtocol`) and a writable one runs
//! [`SocketTransport::write_ready`] (one vectored send of the write buffer). `write()` sends at
//! once when nothing is queued and queues the rest.
//!
//! Guarantees, as in asyncio: `connection_made` runs before any other protocol call;
//! `connection_lost` runs exactly once, then the socket is closed and the transport forgets its
//! loop, protocol and server; errors of protocol callbacks go to the loop's exception handler
//! with asyncio's messages and context keys, and close the transport.
//!
//! # Implementation
//! The state lives in a [`GilCell`]; every method copies out what it needs (the protocol, say),
//! releases the borrow and only then calls into Python, so a protocol may call back into the
//! transport freely. The loop's reader/writer for the fd is a [`Dispatch`] holding the transport;
//! `reading`/`writing` mirror whether it is registered, so an event queued in the same tick as a
//! `pause_reading()` is dropped, as asyncio drops a cancelled handle.

use std::io;
use std::os::fd::RawFd;

use oxloop_core::sys;
use oxloop_core::transport::{Lifecycle, Side, WriteBuffer};
use pyo3::exceptions::{PyConnectionError, PyOSError, PyRuntimeError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView};
use pyo3::{intern, PyTraverseError};

use super::{
    apply, call_soon_in, close_unclosed, debug_log, extra_info, flow, is_bytes_like,
    is_fatal_to_loop, names, read_chunk, report, report_callback_error, send_or_buffer,
    transport_context, transport_socket, unwatch, watch, write_buffer_limits, Finalize, Reactive,
    Transport, LOG_THRESHOLD_FOR_CONNLOST_WRITES,
};
use crate::errors;
use crate::event_loop::{Direction, PyLoop};
use crate::ffi;
use crate::gil::GilCell;

/// The mutable state of a transport.
struct Inner {
    /// The loop; `None` once the connection is lost (asyncio sets `_loop = None`).
    loop_: Option<Py<PyLoop>>,
    /// The socket object, owner of the fd; `None` once closed.
    sock: Option<Py<PyAny>>,
    /// The protocol; `None` once the connection is lost.
    protocol: Option<Py<PyAny>>,
    /// The protocol is an `asyncio.BufferedProtocol` (reads go through `get_buffer`).
    buffered: bool,
    /// `set_protocol()` was called (asyncio's `_protocol_connected`).
    protocol_connected: bool,
    /// What `get_extra_info()` answers beyond `'socket'`, `'sockname'` and `'peername'`: the
    /// caller's `extra` dict, kept only when it holds other keys (an accepted connection's is
    /// just `{'peername': addr}`, which costs a dict per idle connection).
    extra: Option<Py<PyDict>>,
    /// `get_extra_info('sockname')`, read from the socket on first request or before it closes
    /// (a connected socket's own address does not change); `None` until then.
    sockname: Option<Py<PyAny>>,
    /// `get_extra_info('peername')`: the caller's, else read once at creation.
    peername: Py<PyAny>,
    /// `get_extra_info('socket')`, an `asyncio.trsock.TransportSocket` made on first request
    /// (or when the socket closes, so that it still answers afterwards).
    transport_socket: Option<Py<PyAny>>,
    /// The `Server` this connection counts towards, until the connection is lost.
    server: Option<Py<PyAny>>,
    /// Bytes written but not yet sent, and the flow-control state.
    buffer: WriteBuffer,
    /// Open, closing or lost; paused reading, `write_eof()`, the reactor registrations.
    lc: Lifecycle,
    /// The future `loop.sendfile` waits on for the buffer to drain.
    empty_waiter: Option<Py<PyAny>>,
}

/// A socket stream transport; asyncio's `_SelectorSocketTransport`.
// NOTE: `dict`, as asyncio's pure-Python transports have one: tests and libraries assign
// `transport.write = mock`, and Python-level callers then find the instance attribute.
#[pyclass(
    frozen,
    weakref,
    dict,
    module = "oxloop._oxloop",
    name = "SocketTransport"
)]
pub struct SocketTransport {
    /// True once the fields are written. Python 3.11 allocates the instance `__dict__` after
    /// the object is GC-tracked and before PyO3 writes its fields, so a collection can traverse
    /// a zero-filled object: it reads `false` here, and `__traverse__` visits nothing.
    initialized: bool,
    /// The socket's fd, fixed at creation (asyncio's `_sock_fd`).
    fd: RawFd,
    /// The socket's class overrides `recv`, `recv_into` or `send` (a socket subclass, a test
    /// double): reads and writes then call those methods, as asyncio's transport does, instead
    /// of the raw syscalls on the fd.
    py_io: bool,
    /// The context every protocol callback runs in; see [`transport_context`]. Always `Some`
    /// once made: an `Option` because the GC may traverse the object before its fields are
    /// written (3.11 allocates its `__dict__` after tracking it), when they read as zero.
    context: Option<Py<PyAny>>,
    /// Everything else.
    st: GilCell<Inner>,
}

impl Reactive for SocketTransport {
    fn on_ready(slf: &Bound<'_, Self>, direction: Direction) -> PyResult<()> {
        match direction {
            Direction::Read => Self::read_ready(slf),
            Direction::Write => Self::write_ready(slf),
        }
    }
}

impl Transport for SocketTransport {
    fn fd(slf: &Bound<'_, Self>) -> RawFd {
        slf.get().fd
    }

    fn loop_of(slf: &Bound<'_, Self>) -> Option<Py<PyLoop>> {
        slf.get().loop_(slf.py())
    }

    fn protocol_of(slf: &Bound<'_, Self>) -> Option<Py<PyAny>> {
        slf.get().protocol(slf.py())
    }

    fn context_of<'a>(slf: &'a Bound<'_, Self>) -> Option<&'a Py<PyAny>> {
        slf.get().context.as_ref()
    }

    fn lifecycle<R>(slf: &Bound<'_, Self>, f: impl FnOnce(&mut Lifecycle) -> R) -> R {
        f(&mut slf.get().st.borrow_mut(slf.py()).lc)
    }

    fn drop_buffer(slf: &Bound<'_, Self>) {
        slf.get().st.borrow_mut(slf.py()).buffer.clear();
    }

    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        Self::call_connection_lost(slf, exc)
    }
}

impl SocketTransport {
    /// Creates the transport and schedules `connection_made`, the start of reading and the
    /// waiter's result, as `_SelectorSocketTransport.__init__` does.
    pub fn create(
        loop_: &Bound<'_, PyLoop>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        waiter: Option<&Bound<'_, PyAny>>,
        extra: Option<Bound<'_, PyDict>>,
        server: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<SocketTransport>> {
        let py = loop_.py();
        let n = names(py)?;
        // Mirrors _SelectorTransport.__init__: 'peername' unless given ('sockname' is read
        // later, see the field).
        let given = match &extra {
            Some(extra) => extra.get_item(intern!(py, "peername"))?,
            None => None,
        };
        let peername = match given {
            Some(name) => name,
            None => sock_address(sock, intern!(py, "getpeername"))?,
        };
        // The caller's dict is kept only for keys the fields above do not answer.
        let mut others = false;
        if let Some(extra) = &extra {
            for key in extra.keys() {
                let key = key.extract::<String>().unwrap_or_default();
                others |= !matches!(key.as_str(), "socket" | "sockname" | "peername");
            }
        }
        let extra = extra.filter(|_| others).map(Bound::unbind);
        let fd: RawFd = sock.call_method0(intern!(py, "fileno"))?.extract()?;
        let buffered = protocol.is_instance(n.buffered_protocol.bind(py))?;
        let tr = Py::new(
            py,
            SocketTransport {
                initialized: true,
                fd,
                py_io: overrides_io(sock, n)?,
                context: Some(transport_context(py)?),
                st: GilCell::new(Inner {
                    loop_: Some(loop_.clone().unbind()),
                    sock: Some(sock.clone().unbind()),
                    protocol: Some(protocol.clone().unbind()),
                    buffered,
                    protocol_connected: true,
                    extra,
                    sockname: None,
                    peername: peername.unbind(),
                    transport_socket: None,
                    server: server.map(|s| s.clone().unbind()),
                    buffer: WriteBuffer::new(),
                    lc: Lifecycle::new(),
                    empty_waiter: None,
                }),
            },
        )?;
        let bound = tr.bind(py);
        if let Some(server) = server {
            // Mirrors _SelectorTransport.__init__ of the running Python.
            if n.server_takes_transport {
                server.call_method1(intern!(py, "_attach"), (bound,))?;
            } else {
                server.call_method0(intern!(py, "_attach"))?;
            }
        }
        loop_
            .get()
            .register_transport(py, fd, bound.clone().into_any().unbind());
        n.set_nodelay.bind(py).call1((sock,))?;
        let call_soon = loop_.getattr(intern!(py, "call_soon"))?;
        call_soon_in(
            loop_,
            bound.get().context.as_ref(),
            (protocol.getattr(intern!(py, "connection_made"))?, bound).into_pyobject(py)?,
        )?;
        call_soon.call1((bound.getattr(intern!(py, "_start_reading"))?,))?;
        if let Some(waiter) = waiter {
            call_soon.call1((n.set_result_unless_cancelled.bind(py), waiter, py.None()))?;
        }
        Ok(tr)
    }

    /// The loop, or `None` once the connection is lost.
    fn loop_(&self, py: Python<'_>) -> Option<Py<PyLoop>> {
        self.st.borrow(py).loop_.as_ref().map(|l| l.clone_ref(py))
    }

    /// The protocol, or `None` once the connection is lost.
    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st
            .borrow(py)
            .protocol
            .as_ref()
            .map(|p| p.clone_ref(py))
    }

    /// Logs `"%r {msg}"` at debug level in debug mode.
    fn debug_log(slf: &Bound<'_, Self>, msg: &str, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let Some(lp) = slf.get().loop_(py) else {
            return Ok(());
        };
        debug_log(lp.bind(py), "debug", slf.as_any(), msg, exc)
    }

    /// Mirrors `_SelectorTransport._fatal_error`: OS errors are only logged in debug mode, other
    /// errors go to the loop's exception handler; then the transport is force-closed.
    fn fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let py = slf.py();
        if exc.is_instance_of::<PyOSError>() {
            Self::debug_log(slf, message, Some(exc))?;
        } else if let Some(lp) = slf.get().loop_(py) {
            report(
                lp.bind(py),
                message,
                exc,
                slf.as_any(),
                slf.get().protocol(py),
            )?;
        }
        Self::force_close(slf, Some(exc))
    }

    /// [`Self::fatal_error`] for an error a protocol callback raised; `SystemExit` and
    /// `KeyboardInterrupt` propagate instead.
    fn callback_failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        if is_fatal_to_loop(py, &err) {
            return Err(err);
        }
        Self::fatal_error(slf, err.value(py).as_any(), message)
    }

    /// Mirrors `_SelectorTransport._force_close`: drop the buffer, stop reading and writing,
    /// and schedule `connection_lost(exc)` unless it already is.
    fn force_close(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let steps = slf.get().st.borrow_mut(slf.py()).lc.abort();
        apply(slf, steps, exc)
    }

    /// Mirrors `_FlowControlMixin._maybe_pause_protocol`.
    fn maybe_pause_protocol(slf: &Bound<'_, Self>) -> PyResult<()> {
        let due = slf.get().st.borrow_mut(slf.py()).buffer.should_pause();
        flow(slf, true, due)
    }

    /// Mirrors `_FlowControlMixin._maybe_resume_protocol`.
    fn maybe_resume_protocol(slf: &Bound<'_, Self>) -> PyResult<()> {
        let due = slf.get().st.borrow_mut(slf.py()).buffer.should_resume();
        flow(slf, false, due)
    }

    /// The fd is readable: mirrors `_read_ready__data_received` / `_read_ready__get_buffer`.
    fn read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (protocol, buffered) = {
            let st = this.st.borrow(py);
            if st.lc.is_lost() || !st.lc.is_registered(Side::Read) {
                return Ok(());
            }
            let Some(protocol) = st.protocol.as_ref() else {
                return Ok(());
            };
            (protocol.clone_ref(py).into_bound(py), st.buffered)
        };
        if buffered {
            return Self::read_into_buffer(slf, &protocol);
        }
        let data = if this.py_io {
            let sock = this.st.borrow(py).sock.as_ref().map(|s| s.clone_ref(py));
            let Some(sock) = sock else { return Ok(()) };
            let recv = sock
                .bind(py)
                .call_method1(intern!(py, "recv"), (super::MAX_SIZE,));
            match Self::py_io_outcome(slf, recv, "Fatal read error on socket transport")? {
                Some(data) => data,
                None => return Ok(()),
            }
        } else {
            let read = read_chunk(py, this.fd, true)?;
            match read {
                Ok(data) => data.into_any(),
                Err(e) if sys::is_retry(&e) => return Ok(()),
                Err(e) => return Self::read_failed(slf, &e),
            }
        };
        if data.len()? == 0 {
            return Self::read_eof(slf, &protocol);
        }
        if let Err(err) = protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Self::callback_failed(
                slf,
                err,
                "Fatal error: protocol.data_received() call failed.",
            )?;
        }
        Ok(())
    }

    /// A `BufferedProtocol` read: `get_buffer(-1)`, `recv_into`, `buffer_updated(n)`.
    fn read_into_buffer(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let buf = protocol
            .call_method1(intern!(py, "get_buffer"), (-1,))
            .and_then(|buf| {
                if buf.len()? == 0 {
                    return Err(PyRuntimeError::new_err(
                        "get_buffer() returned an empty buffer",
                    ));
                }
                Ok(buf)
            });
        let buf = match buf {
            Ok(buf) => buf,
            Err(err) => {
                return Self::callback_failed(
                    slf,
                    err,
                    "Fatal error: protocol.get_buffer() call failed.",
                )
            }
        };
        let fd = slf.get().fd;
        if slf.get().py_io {
            let sock = slf
                .get()
                .st
                .borrow(py)
                .sock
                .as_ref()
                .map(|s| s.clone_ref(py));
            let Some(sock) = sock else { return Ok(()) };
            let recv = sock
                .bind(py)
                .call_method1(intern!(py, "recv_into"), (&buf,));
            let nbytes: usize =
                match Self::py_io_outcome(slf, recv, "Fatal read error on socket transport")? {
                    Some(n) => n.extract()?,
                    None => return Ok(()),
                };
            drop(buf);
            return Self::buffer_updated(slf, protocol, nbytes);
        }
        let nbytes = match ffi::with_bytes_mut(&buf, |bytes| sys::read(fd, bytes, true)) {
            Err(err) => {
                return Self::callback_failed(slf, err, "Fatal read error on socket transport")
            }
            Ok(Err(e)) if sys::is_retry(&e) => return Ok(()),
            Ok(Err(e)) => return Self::read_failed(slf, &e),
            Ok(Ok(n)) => n,
        };
        drop(buf);
        Self::buffer_updated(slf, protocol, nbytes)
    }

    /// `nbytes` were read into the protocol's buffer: EOF, or `buffer_updated(nbytes)`.
    fn buffer_updated(
        slf: &Bound<'_, Self>,
        protocol: &Bound<'_, PyAny>,
        nbytes: usize,
    ) -> PyResult<()> {
        let py = slf.py();
        if nbytes == 0 {
            return Self::read_eof(slf, protocol);
        }
        if let Err(err) = protocol.call_method1(intern!(py, "buffer_updated"), (nbytes,)) {
            Self::callback_failed(
                slf,
                err,
                "Fatal error: protocol.buffer_updated() call failed.",
            )?;
        }
        Ok(())
    }

    /// A read failed with an OS error.
    fn read_failed(slf: &Bound<'_, Self>, e: &io::Error) -> PyResult<()> {
        let py = slf.py();
        let exc = errors::os_error(py, e);
        Self::fatal_error(
            slf,
            exc.value(py).as_any(),
            "Fatal read error on socket transport",
        )
    }

    /// Mirrors `_read_ready__on_eof`.
    fn read_eof(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        Self::debug_log(slf, "received EOF", None)?;
        let keep_open = match protocol
            .call_method0(intern!(py, "eof_received"))
            .and_then(|r| r.is_truthy())
        {
            Ok(k) => k,
            Err(err) => {
                return Self::callback_failed(
                    slf,
                    err,
                    "Fatal error: protocol.eof_received() call failed.",
                )
            }
        };
        if keep_open {
            // The protocol may still write, but nothing more can be read.
            unwatch(slf, Direction::Read)
        } else {
            Self::close(slf)
        }
    }

    /// The fd is writable: mirrors `_SelectorSocketTransport._write_ready`.
    fn write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let sent = {
            let st = this.st.borrow(py);
            if st.lc.is_lost() || !st.lc.is_registered(Side::Write) || st.buffer.is_empty() {
                return Ok(());
            }
            if this.py_io {
                drop(st);
                return Self::py_write_ready(slf);
            }
            if st.buffer.is_fragmented() {
                let mut slices = Vec::new();
                st.buffer.slices(&mut slices);
                sys::writev(this.fd, &slices, true)
            } else {
                sys::write(this.fd, st.buffer.front(), true)
            }
        };
        match sent {
            Err(e) if sys::is_retry(&e) => Ok(()),
            Err(e) => {
                let exc = errors::os_error(py, &e);
                Self::write_failed(slf, exc.value(py).as_any())
            }
            Ok(n) => Self::sent(slf, n),
        }
    }

    /// A send of the buffer failed: mirrors `_write_ready`'s error branch.
    fn write_failed(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        unwatch(slf, Direction::Write)?;
        this.st.borrow_mut(py).buffer.clear();
        Self::fatal_error(slf, exc, "Fatal write error on socket transport")?;
        let waiter = this
            .st
            .borrow(py)
            .empty_waiter
            .as_ref()
            .map(|w| w.clone_ref(py));
        if let Some(waiter) = waiter {
            waiter
                .bind(py)
                .call_method1(intern!(py, "set_exception"), (exc,))?;
        }
        Ok(())
    }

    /// `n` bytes of the buffer were sent: mirrors the rest of `_write_ready`.
    fn sent(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.st.borrow_mut(py).buffer.consume(n);
        Self::maybe_resume_protocol(slf)?; // may append to the buffer
        let (empty, waiter) = {
            let st = this.st.borrow(py);
            (
                st.buffer.is_empty(),
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if !empty {
            return Ok(());
        }
        if let Some(waiter) = waiter {
            waiter
                .bind(py)
                .call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        // A closing transport loses its connection now, a half-closed one shuts its write side.
        let steps = this.st.borrow_mut(py).lc.flushed();
        if let Err(err) = apply(slf, steps, None) {
            let callback = "_SelectorSocketTransport._write_ready";
            report_callback_error(py, this.loop_(py), callback, err)?;
        }
        Ok(())
    }

    /// The outcome of a call to the socket object's own I/O method (see `py_io`): its result,
    /// or `None` when it would block or failed (then handled as asyncio's transport handles it:
    /// `_fatal_error(exc, message)`); `SystemExit` and `KeyboardInterrupt` propagate.
    fn py_io_outcome<'py>(
        slf: &Bound<'py, Self>,
        result: PyResult<Bound<'py, PyAny>>,
        message: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyBlockingIOError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyInterruptedError>(py) =>
            {
                Ok(None)
            }
            Err(e) if is_fatal_to_loop(py, &e) => Err(e),
            Err(e) => {
                Self::fatal_error(slf, e.value(py).as_any(), message)?;
                Ok(None)
            }
        }
    }

    /// `write()` through the socket's own `send` (see `py_io`): mirrors asyncio's `write`.
    fn py_write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let queued = !this.st.borrow(py).buffer.is_empty();
        let mut n = 0;
        if !queued {
            let sock = this.st.borrow(py).sock.as_ref().map(|s| s.clone_ref(py));
            let Some(sock) = sock else { return Ok(()) };
            let sent = sock.bind(py).call_method1(intern!(py, "send"), (data,));
            let sent = match sent {
                Err(e)
                    if e.is_instance_of::<pyo3::exceptions::PyBlockingIOError>(py)
                        || e.is_instance_of::<pyo3::exceptions::PyInterruptedError>(py) =>
                {
                    Ok(0)
                }
                other => other.and_then(|n| n.extract::<usize>()),
            };
            match sent {
                Ok(sent) => n = sent,
                Err(e) if is_fatal_to_loop(py, &e) => return Err(e),
                Err(e) => {
                    return Self::fatal_error(
                        slf,
                        e.value(py).as_any(),
                        "Fatal write error on socket transport",
                    )
                }
            }
        }
        let register = ffi::with_bytes(data, |bytes| {
            let rest = &bytes[n.min(bytes.len())..];
            this.st.borrow_mut(py).buffer.push(rest);
            !queued && !rest.is_empty()
        })?;
        if register {
            if let Err(err) = watch(slf, Direction::Write) {
                this.st.borrow_mut(py).buffer.clear();
                return Err(err);
            }
        }
        Self::maybe_pause_protocol(slf)
    }

    /// The fd is writable: one `sock.send` of the buffer (see `py_io`).
    fn py_write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (sock, data) = {
            let st = this.st.borrow(py);
            let Some(sock) = st.sock.as_ref().map(|s| s.clone_ref(py)) else {
                return Ok(());
            };
            let mut slices = Vec::new();
            st.buffer.slices(&mut slices);
            let data: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
            (sock, PyBytes::new(py, &data))
        };
        match sock.bind(py).call_method1(intern!(py, "send"), (data,)) {
            Ok(n) => Self::sent(slf, n.extract()?),
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyBlockingIOError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyInterruptedError>(py) =>
            {
                Ok(())
            }
            Err(e) if is_fatal_to_loop(py, &e) => Err(e),
            Err(e) => Self::write_failed(slf, e.value(py).as_any()),
        }
    }

    /// Mirrors `_SelectorSocketTransport._call_connection_lost`: `connection_lost(exc)`, then
    /// close the socket and drop the loop, protocol and server.
    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (connected, protocol) = {
            let st = this.st.borrow(py);
            (
                st.protocol_connected,
                st.protocol.as_ref().map(|p| p.clone_ref(py)),
            )
        };
        let result = match (connected, protocol) {
            (true, Some(protocol)) => protocol
                .bind(py)
                .call_method1(intern!(py, "connection_lost"), (exc,))
                .map(drop),
            _ => Ok(()),
        };
        let (sock, protocol, lp, server, waiter) = {
            let mut st = this.st.borrow_mut(py);
            (
                st.sock.take(),
                st.protocol.take(),
                st.loop_.take(),
                st.server.take(),
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if let Some(lp) = &lp {
            lp.get().unregister_transport(py, this.fd, slf.as_any());
        }
        // `get_extra_info('socket')` and `('sockname')` still answer once the socket is closed,
        // as asyncio's do.
        if let Some(sock) = &sock {
            if this.st.borrow(py).transport_socket.is_none() {
                let made = transport_socket(py, sock.bind(py))?;
                this.st.borrow_mut(py).transport_socket = Some(made);
            }
            if this.st.borrow(py).sockname.is_none() {
                let name = sock_address(sock.bind(py), intern!(py, "getsockname"))?;
                this.st.borrow_mut(py).sockname = Some(name.unbind());
            }
        }
        let closed = match &sock {
            Some(sock) => sock.bind(py).call_method0(intern!(py, "close")).map(drop),
            None => Ok(()),
        };
        drop((sock, protocol, lp));
        // Mirrors _SelectorTransport._call_connection_lost of the running Python.
        let detached = match server {
            Some(server) if names(py)?.server_takes_transport => server
                .bind(py)
                .call_method1(intern!(py, "_detach"), (slf,))
                .map(drop),
            Some(server) => server
                .bind(py)
                .call_method0(intern!(py, "_detach"))
                .map(drop),
            None => Ok(()),
        };
        if let Some(waiter) = waiter {
            let err = PyConnectionError::new_err("Connection is closed by peer");
            waiter
                .bind(py)
                .call_method1(intern!(py, "set_exception"), (err.value(py),))?;
        }
        result.and(closed).and(detached)
    }

    /// `get_extra_info('sockname')`: read once, while the socket is open (see the field).
    fn sockname(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (known, sock) = {
            let st = self.st.borrow(py);
            (
                st.sockname.as_ref().map(|n| n.clone_ref(py)),
                st.sock.as_ref().map(|s| s.clone_ref(py)),
            )
        };
        if let Some(known) = known {
            return Ok(known);
        }
        let Some(sock) = sock else {
            return Ok(py.None());
        };
        let name = sock_address(sock.bind(py), intern!(py, "getsockname"))?.unbind();
        self.st.borrow_mut(py).sockname = Some(name.clone_ref(py));
        Ok(name)
    }
}

#[pymethods]
impl SocketTransport {
    /// Write ``data`` (bytes-like) to the socket; what cannot be sent at once is buffered.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !is_bytes_like(data) {
            let tname = data.get_type().name()?.to_string();
            // The running Python's text (it changed in 3.14), see `probe_write_type_error`.
            let text = &names(py)?.write_type_error;
            return Err(PyTypeError::new_err(format!("{text}'{tname}'")));
        }
        {
            let mut st = this.st.borrow_mut(py);
            if st.lc.eof_written() {
                return Err(PyRuntimeError::new_err(
                    "Cannot call write() after write_eof()",
                ));
            }
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err(
                    "unable to write; sendfile is in progress",
                ));
            }
            if data.len()? == 0 {
                return Ok(());
            }
            if st.lc.is_lost() {
                let warn = st.lc.write_after_lost(LOG_THRESHOLD_FOR_CONNLOST_WRITES);
                drop(st);
                if warn {
                    names(py)?
                        .logger
                        .bind(py)
                        .call_method1("warning", ("socket.send() raised exception.",))?;
                }
                return Ok(());
            }
        }
        let fd = this.fd;
        if this.py_io {
            return Self::py_write(slf, data);
        }
        // Returns Ok(true) if the rest was buffered and the writer must be registered.
        let outcome = ffi::with_bytes(data, |bytes| {
            send_or_buffer(&mut this.st.borrow_mut(py).buffer, fd, bytes, true)
        })?;
        match outcome {
            Err(e) => {
                let exc = errors::os_error(py, &e);
                Self::fatal_error(
                    slf,
                    exc.value(py).as_any(),
                    "Fatal write error on socket transport",
                )
            }
            Ok(register) => {
                if register {
                    if let Err(err) = watch(slf, Direction::Write) {
                        this.st.borrow_mut(py).buffer.clear();
                        return Err(err);
                    }
                }
                Self::maybe_pause_protocol(slf)
            }
        }
    }

    /// Write a list (or any iterable) of bytes-like objects: ``write(b''.join(list_of_data))``.
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        if !names(py)?.own_writelines {
            // Mirrors WriteTransport.writelines (3.11): `self.write(b"".join(...))`, so a
            // `write` assigned on the instance sees it.
            let data = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (list_of_data,))?;
            slf.call_method1(intern!(py, "write"), (data,))?;
            return Ok(());
        }
        // Mirrors _SelectorSocketTransport.writelines (3.12+): its own checks and a memoryview
        // of each item (all taken before anything is buffered), then one write of them.
        {
            let st = slf.get().st.borrow(py);
            if st.lc.eof_written() {
                return Err(PyRuntimeError::new_err(
                    "Cannot call writelines() after write_eof()",
                ));
            }
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err(
                    "unable to writelines; sendfile is in progress",
                ));
            }
        }
        if !list_of_data.is_truthy()? {
            return Ok(());
        }
        let views = list_of_data
            .try_iter()?
            .map(|item| item.and_then(|item| PyMemoryView::from(&item)))
            .collect::<PyResult<Vec<_>>>()?;
        let data = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (views,))?;
        Self::write(slf, &data)
    }

    /// Close the write end after the buffered data is sent; the protocol may still read.
    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = {
            let mut st = slf.get().st.borrow_mut(slf.py());
            let buffered = !st.buffer.is_empty();
            st.lc.write_eof(buffered)
        };
        apply(slf, steps, None)
    }

    /// Whether ``write_eof()`` is supported: always, for sockets.
    fn can_write_eof(&self) -> bool {
        true
    }

    /// Close the transport: buffered data is still sent, then ``connection_lost(None)`` is called.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = {
            let mut st = slf.get().st.borrow_mut(slf.py());
            let buffered = !st.buffer.is_empty();
            st.lc.close(buffered)
        };
        apply(slf, steps, None)
    }

    /// Close at once: buffered data is dropped, ``connection_lost(None)`` is called soon.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::force_close(slf, None)
    }

    /// Whether the transport is closing or closed.
    fn is_closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).lc.is_closing()
    }

    /// Whether the transport is receiving.
    fn is_reading(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).lc.wants_reading()
    }

    /// Stop calling the protocol's ``data_received()`` until ``resume_reading()``.
    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = {
            let mut st = slf.get().st.borrow_mut(slf.py());
            if !st.lc.wants_reading() {
                return Ok(());
            }
            st.lc.pause_reading()
        };
        apply(slf, steps, None)?;
        Self::debug_log(slf, "pauses reading", None)
    }

    /// Resume calling the protocol's ``data_received()``.
    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = {
            let mut st = slf.get().st.borrow_mut(slf.py());
            if st.lc.is_closing() || !st.lc.is_paused() {
                return Ok(());
            }
            st.lc.resume_reading()
        };
        apply(slf, steps, None)?;
        Self::debug_log(slf, "resumes reading", None)
    }

    /// Set a new protocol.
    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let buffered = protocol.is_instance(names(py)?.buffered_protocol.bind(py))?;
        let old = {
            let mut st = self.st.borrow_mut(py);
            st.buffered = buffered;
            st.protocol_connected = true;
            st.protocol.replace(protocol.clone().unbind())
        };
        drop(old);
        Ok(())
    }

    /// Return the current protocol.
    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    /// Get optional transport information: 'socket', 'sockname', 'peername', ...
    #[pyo3(signature = (name, default=None))]
    fn get_extra_info(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        extra_info(slf.as_any(), name, default, |key| {
            let py = slf.py();
            let st = slf.get().st.borrow(py);
            let key_str = key
                .cast::<pyo3::types::PyString>()
                .ok()
                .and_then(|k| k.to_str().ok().map(str::to_owned));
            let own = match key_str.as_deref().unwrap_or_default() {
                "sockname" => {
                    drop(st);
                    return slf.get().sockname(py).map(Some);
                }
                "peername" => Some(st.peername.clone_ref(py)),
                "socket" => {
                    let sock = st.sock.as_ref().map(|s| s.clone_ref(py));
                    let made = st.transport_socket.as_ref().map(|t| t.clone_ref(py));
                    drop(st);
                    return match (made, sock) {
                        (Some(made), _) => Ok(Some(made)),
                        (None, Some(sock)) => {
                            let made = transport_socket(py, sock.bind(py))?;
                            slf.get().st.borrow_mut(py).transport_socket = Some(made.clone_ref(py));
                            Ok(Some(made))
                        }
                        (None, None) => Ok(None),
                    };
                }
                _ => None,
            };
            if own.is_some() {
                return Ok(own);
            }
            match &st.extra {
                Some(extra) => Ok(extra.bind(py).get_item(key)?.map(Bound::unbind)),
                None => Ok(None),
            }
        })
    }

    /// Set the high- and low-water limits for write flow control.
    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        slf: &Bound<'_, Self>,
        high: Option<&Bound<'_, PyAny>>,
        low: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits = write_buffer_limits(high, low)?;
        slf.get().st.borrow_mut(slf.py()).buffer.set_limits(limits);
        Self::maybe_pause_protocol(slf)
    }

    /// Return ``(low, high)``, the write flow-control limits.
    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let limits = self.st.borrow(py).buffer.limits();
        (limits.low, limits.high)
    }

    /// Return the number of bytes buffered for writing.
    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).buffer.len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let st = self.st.borrow(py);
        let mut info = vec!["_SelectorSocketTransport".to_string()];
        if st.sock.is_none() {
            info.push("closed".into());
        } else if st.lc.is_closing() {
            info.push("closing".into());
        }
        info.push(format!("fd={}", self.fd));
        if let Some(lp) = &st.loop_ {
            if !lp.get().state.borrow(py).closed {
                info.push(
                    if st.lc.is_registered(Side::Read) {
                        "read=polling"
                    } else {
                        "read=idle"
                    }
                    .into(),
                );
                let state = if st.lc.is_registered(Side::Write) {
                    "polling"
                } else {
                    "idle"
                };
                info.push(format!("write=<{state}, bufsize={}>", st.buffer.len()));
            }
        }
        format!("<{}>", info.join(" "))
    }

    /// Starts reading if not paused or closing (asyncio's `_add_reader(fd, _read_ready)`).
    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = slf.get().st.borrow_mut(slf.py()).lc.start_reading();
        apply(slf, steps, None)
    }

    /// Calls ``connection_lost(exc)`` and closes the socket (scheduled by close/abort).
    #[pyo3(signature = (exc))]
    fn _call_connection_lost(
        slf: &Bound<'_, Self>,
        exc: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Self::call_connection_lost(slf, exc)
    }

    /// A future done when the write buffer is empty (for ``loop.sendfile``).
    fn _make_empty_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (lp, empty) = {
            let st = self.st.borrow(py);
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err("Empty waiter is already set"));
            }
            (
                st.loop_.as_ref().map(|l| l.clone_ref(py)),
                st.buffer.is_empty(),
            )
        };
        let Some(lp) = lp else {
            return Err(PyRuntimeError::new_err("Transport is closed"));
        };
        let waiter = lp.bind(py).call_method0(intern!(py, "create_future"))?;
        if empty {
            waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        self.st.borrow_mut(py).empty_waiter = Some(waiter.clone().unbind());
        Ok(waiter.unbind())
    }

    /// Forgets the empty waiter.
    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.st.borrow_mut(py).empty_waiter.take();
        drop(old);
    }

    /// Reports an error that must close the transport (asyncio's `_fatal_error`).
    #[pyo3(signature = (exc, message="Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        Self::fatal_error(slf, exc, message)
    }

    /// The socket object, or None once closed.
    #[getter]
    fn _sock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st.borrow(py).sock.as_ref().map(|s| s.clone_ref(py))
    }

    /// The socket's fd.
    #[getter]
    fn _sock_fd(&self) -> RawFd {
        self.fd
    }

    /// The loop, or None once the connection is lost.
    #[getter(_loop)]
    fn get_loop(&self, py: Python<'_>) -> Option<Py<PyLoop>> {
        self.loop_(py)
    }

    /// The protocol (asyncio's `_protocol`).
    #[getter]
    fn _protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    /// Whether `pause_writing()` is in effect.
    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).buffer.paused()
    }

    /// Whether `close()` was called.
    #[getter]
    fn _closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).lc.is_closing()
    }

    /// `loop.sendfile` may try `os.sendfile` on this transport.
    #[getter]
    fn _sendfile_compatible(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(names(py)?.sendfile_try_native.clone_ref(py))
    }

    /// `loop.start_tls` may upgrade this transport (mirrors `_SelectorSocketTransport`).
    #[getter]
    fn _start_tls_compatible(&self) -> bool {
        true
    }

    /// Closes at once, dropping buffered data; `connection_lost(exc)` follows (asyncio's private
    /// `_SelectorTransport._force_close`, which `sslproto.SSLProtocol` calls on fatal errors).
    #[pyo3(signature = (exc))]
    fn _force_close(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        Self::force_close(slf, exc)
    }

    /// A subclass of ``asyncio.Transport``, so ``isinstance(t, asyncio.Transport)`` holds (see
    /// the module docs).
    #[getter(__class__)]
    fn class(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(names(py)?.transport_class.clone_ref(py))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if !self.initialized {
            return Ok(());
        }
        let Some(st) = self.st.try_borrow_in_gc() else {
            return Ok(());
        };
        visit.call(&self.context)?;
        visit.call(&st.loop_)?;
        visit.call(&st.sock)?;
        visit.call(&st.protocol)?;
        visit.call(&st.extra)?;
        visit.call(&st.sockname)?;
        visit.call(&st.peername)?;
        visit.call(&st.transport_socket)?;
        visit.call(&st.server)?;
        visit.call(&st.empty_waiter)?;
        Ok(())
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let dropped = {
                let Some(mut st) = self.st.try_borrow_mut_in_gc(py) else {
                    return;
                };
                (
                    st.loop_.take(),
                    st.protocol.take(),
                    st.server.take(),
                    st.empty_waiter.take(),
                )
            };
            drop(dropped);
        });
    }
}

impl Finalize for SocketTransport {
    /// A transport collected while open warns and closes its socket, as asyncio's `__del__`;
    /// on 3.13+ it also leaves its server, so `Server.wait_closed()` does not wait for it.
    fn finalize(&self, py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) {
        let Some(mut st) = self.st.try_borrow_mut_in_gc(py) else {
            return;
        };
        let Some(sock) = st.sock.take() else { return };
        let server = st.server.as_ref().map(|s| s.clone_ref(py));
        drop(st);
        close_unclosed(
            py,
            &format!("<_SelectorSocketTransport fd={}>", self.fd),
            &sock,
        );
        // Mirrors _SelectorTransport.__del__ of 3.13+ (earlier versions do not detach there).
        if let (Some(server), Some(obj)) = (server, obj) {
            let detached = names(py).and_then(|n| {
                if n.server_takes_transport {
                    server
                        .bind(py)
                        .call_method1(intern!(py, "_detach"), (obj,))?;
                }
                Ok(())
            });
            if let Err(err) = detached {
                err.write_unraisable(py, None);
            }
        }
    }
}

impl Drop for SocketTransport {
    /// Freed without the GC (its count fell to zero): the references are intact, finalize now.
    fn drop(&mut self) {
        Python::attach(|py| self.finalize(py, None));
    }
}

/// `sock.getsockname()` / `sock.getpeername()` (`method`), or None if it fails with `OSError`,
/// as `_SelectorTransport.__init__` reads them.
fn sock_address<'py>(
    sock: &Bound<'py, PyAny>,
    method: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = sock.py();
    match sock.call_method0(method) {
        Ok(name) => Ok(name),
        Err(e) if e.is_instance_of::<PyOSError>(py) => Ok(py.None().into_bound(py)),
        Err(e) => Err(e),
    }
}

/// Whether `sock`'s class has its own `recv`, `recv_into` or `send` (not `socket.socket`'s).
fn overrides_io(sock: &Bound<'_, PyAny>, n: &super::AsyncioNames) -> PyResult<bool> {
    let py = sock.py();
    let ty = sock.get_type();
    let base = n.socket_class.bind(py);
    for name in [
        intern!(py, "recv"),
        intern!(py, "recv_into"),
        intern!(py, "send"),
    ] {
        let own = match ty.getattr(name) {
            Ok(own) => own,
            Err(_) => return Ok(true),
        };
        if !own.is(&base.getattr(name)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates a socket transport (the loop's `_make_socket_transport`).
#[pyfunction]
#[pyo3(signature = (loop_, sock, protocol, waiter=None, extra=None, server=None))]
pub fn make_socket_transport(
    loop_: &Bound<'_, PyLoop>,
    sock: &Bound<'_, PyAny>,
    protocol: &Bound<'_, PyAny>,
    waiter: Option<&Bound<'_, PyAny>>,
    extra: Option<Bound<'_, PyDict>>,
    server: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<SocketTransport>> {
    let waiter = waiter.filter(|w| !w.is_none());
    let server = server.filter(|s| !s.is_none());
    SocketTransport::create(loop_, sock, protocol, waiter, extra, server)
}
