//! Pipe transports: asyncio's `_UnixReadPipeTransport` and `_UnixWritePipeTransport` in Rust,
//! for `connect_read_pipe` / `connect_write_pipe` (pipes, sockets and character devices).
//!
//! In a tick, a readable read pipe runs one `read(2)` into the thread's shared read buffer and one
//! `data_received` call; a writable write pipe one `writev(2)` of its buffer. A write pipe also
//! watches its fd for reading (pipes and sockets only, as asyncio does): the read end closing
//! makes it readable, which closes the transport (`BrokenPipeError` if data was pending).
//!
//! Guarantees, as in asyncio: `connection_made` first; `connection_lost` once the transport is
//! closed, then the pipe object is closed and the transport forgets its loop and protocol. Unlike
//! the socket transport, an error raised by `data_received` does not close a read pipe: it goes to
//! the exception handler as an error of the `_read_ready` callback, as asyncio's handle reports it.
//!
//! # Implementation
//! [`PipeTransport`] is the base class holding what both kinds share (loop, pipe, protocol,
//! extra, lifecycle) and their common methods; [`ReadPipeTransport`] and [`WritePipeTransport`]
//! extend it with their own state.

use std::os::fd::RawFd;

use oxloop_core::sys::{self, FileKind};
use oxloop_core::transport::{Lifecycle, Side, WriteBuffer};
use pyo3::exceptions::{PyAssertionError, PyBrokenPipeError, PyOSError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{intern, PyClass, PyClassInitializer, PyTraverseError};

use super::{
    apply, call_soon_in, class_attr, close_unclosed, debug_log, extra_info, flow, is_bytes_like,
    names, read_chunk, report, report_callback_error, send_or_buffer, send_or_hold,
    transport_context, unwatch, watch, write_buffer_limits, Finalize, Reactive, Transport,
    LOG_THRESHOLD_FOR_CONNLOST_WRITES,
};
use crate::errors;
use crate::event_loop::{Direction, PyLoop};
use crate::ffi;
use crate::gil::GilCell;

/// What both pipe transports hold.
struct Common {
    /// The loop; `None` once the connection is lost.
    loop_: Option<Py<PyLoop>>,
    /// The pipe object, owner of the fd; `None` once closed.
    pipe: Option<Py<PyAny>>,
    /// The protocol; `None` once the connection is lost.
    protocol: Option<Py<PyAny>>,
    /// `get_extra_info()`'s dict (with `'pipe'`).
    extra: Py<PyDict>,
    /// Open, closing or lost; paused reading and the reactor registrations.
    lc: Lifecycle,
}

/// The base of both pipe transports.
// NOTE: `dict`, as asyncio's pure-Python pipe transports have one: code and tests patch
// methods on a transport instance (CPython's test_subprocess mocks `pause_reading`).
#[pyclass(
    subclass,
    frozen,
    weakref,
    dict,
    module = "oxloop._oxloop",
    name = "PipeTransport"
)]
pub struct PipeTransport {
    /// True once the fields are written. Python 3.11 allocates the instance `__dict__` after
    /// the object is GC-tracked and before PyO3 writes its fields, so a collection can traverse
    /// a zero-filled object: it reads `false` here, and `__traverse__` visits nothing.
    initialized: bool,
    /// The pipe's fd, fixed at creation (asyncio's `_fileno`).
    fd: RawFd,
    /// asyncio's class name, for reprs and warnings.
    name: &'static str,
    /// The context every protocol callback runs in; see [`transport_context`]. Always `Some`
    /// once made: an `Option` because the GC may traverse the object before its fields are
    /// written (3.11 allocates its `__dict__` after tracking it), when they read as zero.
    context: Option<Py<PyAny>>,
    /// The shared state.
    c: GilCell<Common>,
}

impl PipeTransport {
    /// Checks the fd kind, makes it non-blocking, and fills `extra['pipe']`, as both asyncio
    /// constructors do; any other kind of file is refused with `ValueError(refusal)`.
    fn open(
        loop_: &Bound<'_, PyLoop>,
        pipe: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        extra: Option<Bound<'_, PyDict>>,
        name: &'static str,
        refusal: &str,
    ) -> PyResult<(PipeTransport, FileKind)> {
        let py = loop_.py();
        let extra = extra.unwrap_or_else(|| PyDict::new(py));
        extra.set_item("pipe", pipe)?;
        let fd: RawFd = pipe.call_method0(intern!(py, "fileno"))?.extract()?;
        let kind = sys::file_kind(fd).map_err(|e| errors::os_error(py, &e))?;
        if kind == FileKind::Other {
            return Err(PyValueError::new_err(refusal.to_string()));
        }
        sys::set_nonblocking(fd).map_err(|e| errors::os_error(py, &e))?;
        let c = Common {
            loop_: Some(loop_.clone().unbind()),
            pipe: Some(pipe.clone().unbind()),
            protocol: Some(protocol.clone().unbind()),
            extra: extra.unbind(),
            lc: Lifecycle::new(),
        };
        Ok((
            PipeTransport {
                initialized: true,
                fd,
                name,
                context: Some(transport_context(py)?),
                c: GilCell::new(c),
            },
            kind,
        ))
    }

    fn loop_(&self, py: Python<'_>) -> Option<Py<PyLoop>> {
        self.c.borrow(py).loop_.as_ref().map(|l| l.clone_ref(py))
    }

    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.c.borrow(py).protocol.as_ref().map(|p| p.clone_ref(py))
    }

    fn closing(&self, py: Python<'_>) -> bool {
        self.c.borrow(py).lc.is_closing()
    }

    /// Runs `f` on the lifecycle.
    fn lc<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Lifecycle) -> R) -> R {
        f(&mut self.c.borrow_mut(py).lc)
    }

    /// Debug-mode log line about `transport`.
    fn log(
        &self,
        transport: &Bound<'_, PyAny>,
        level: &str,
        msg: &str,
        exc: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        match self.loop_(transport.py()) {
            Some(lp) => debug_log(lp.bind(transport.py()), level, transport, msg, exc),
            None => Ok(()),
        }
    }

    /// The `_fatal_error` of both pipe transports: `quiet` errors are only logged in debug mode,
    /// others go to the exception handler.
    fn report_fatal(
        &self,
        transport: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        message: &str,
        quiet: bool,
    ) -> PyResult<()> {
        let py = transport.py();
        if quiet {
            return self.log(transport, "debug", message, Some(exc));
        }
        match self.loop_(py) {
            Some(lp) => report(lp.bind(py), message, exc, transport, self.protocol(py)),
            None => Ok(()),
        }
    }

    /// Schedules `connection_made`, then `start` (start watching), then the waiter's result.
    fn schedule_start(
        &self,
        transport: &Bound<'_, PyAny>,
        start: Option<Bound<'_, PyAny>>,
        waiter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = transport.py();
        let (Some(lp), Some(protocol)) = (self.loop_(py), self.protocol(py)) else {
            return Ok(());
        };
        let call_soon = lp.bind(py).getattr(intern!(py, "call_soon"))?;
        call_soon_in(
            lp.bind(py),
            self.context.as_ref(),
            (
                protocol.bind(py).getattr(intern!(py, "connection_made"))?,
                transport,
            )
                .into_pyobject(py)?,
        )?;
        if let Some(cb) = start {
            call_soon.call1((cb,))?;
        }
        if let Some(waiter) = waiter.filter(|w| !w.is_none()) {
            call_soon.call1((
                names(py)?.set_result_unless_cancelled.bind(py),
                waiter,
                py.None(),
            ))?;
        }
        Ok(())
    }

    /// asyncio's pipe `__repr__`; `state` is the polling part shown while the loop is open.
    fn repr(&self, py: Python<'_>, state: impl FnOnce() -> String) -> String {
        let c = self.c.borrow(py);
        let mut info = vec![self.name.to_string()];
        if c.pipe.is_none() {
            info.push("closed".into());
        } else if c.lc.is_closing() {
            info.push("closing".into());
        }
        info.push(format!("fd={}", self.fd));
        let open_loop = c
            .loop_
            .as_ref()
            .is_some_and(|l| !l.get().state.borrow(py).closed);
        if c.pipe.is_some() && open_loop {
            info.push(state());
        } else if c.pipe.is_some() {
            info.push("open".into());
        } else {
            info.push("closed".into());
        }
        format!("<{}>", info.join(" "))
    }
}

#[pymethods]
impl PipeTransport {
    /// Set a new protocol.
    fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) {
        let old = self.c.borrow_mut(py).protocol.replace(protocol);
        drop(old);
    }

    /// Return the current protocol.
    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    /// Whether the transport is closing or closed.
    fn is_closing(&self, py: Python<'_>) -> bool {
        self.closing(py)
    }

    /// Get optional transport information ('pipe', ...).
    #[pyo3(signature = (name, default=None))]
    fn get_extra_info(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let extra = slf.get().c.borrow(slf.py()).extra.clone_ref(slf.py());
        extra_info(slf.as_any(), name, default, |key| {
            Ok(extra.bind(key.py()).get_item(key)?.map(Bound::unbind))
        })
    }

    /// What oxloop does not define is looked up on asyncio's class (see `class_attr`).
    fn __getattr__<'py>(
        slf: &Bound<'py, Self>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        class_attr(slf.as_any(), name)
    }

    /// Calls ``connection_lost(exc)``, then closes the pipe and forgets loop and protocol.
    #[pyo3(signature = (exc))]
    fn _call_connection_lost(
        &self,
        py: Python<'_>,
        exc: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let result = match self.protocol(py) {
            Some(p) => p
                .bind(py)
                .call_method1(intern!(py, "connection_lost"), (exc,))
                .map(drop),
            None => Ok(()),
        };
        let (pipe, protocol, lp) = {
            let mut c = self.c.borrow_mut(py);
            (c.pipe.take(), c.protocol.take(), c.loop_.take())
        };
        let closed = match &pipe {
            Some(pipe) => pipe.bind(py).call_method0(intern!(py, "close")).map(drop),
            None => Ok(()),
        };
        drop((pipe, protocol, lp));
        result.and(closed)
    }

    /// The pipe's fd.
    #[getter]
    fn _fileno(&self) -> RawFd {
        self.fd
    }

    /// The pipe object, or None once closed.
    #[getter]
    fn _pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.c.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
    }

    /// Replaces the pipe object; None makes the transport forget it (asyncio's tests do so to
    /// skip the unclosed-transport warning).
    #[setter(_pipe)]
    fn set_pipe(&self, py: Python<'_>, pipe: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.c.borrow_mut(py).pipe, pipe);
        drop(old);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if !self.initialized {
            return Ok(());
        }
        let Some(c) = self.c.try_borrow_in_gc() else {
            return Ok(());
        };
        visit.call(&self.context)?;
        visit.call(&c.loop_)?;
        visit.call(&c.pipe)?;
        visit.call(&c.protocol)?;
        visit.call(&c.extra)
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let dropped = self
                .c
                .try_borrow_mut_in_gc(py)
                .map(|mut c| (c.loop_.take(), c.protocol.take()));
            drop(dropped);
        });
    }
}

impl Finalize for PipeTransport {
    /// A transport collected while open warns and closes its pipe, as asyncio's `__del__`.
    fn finalize(&self, py: Python<'_>, _obj: Option<&Bound<'_, PyAny>>) {
        let Some(mut c) = self.c.try_borrow_mut_in_gc(py) else {
            return;
        };
        let Some(pipe) = c.pipe.take() else { return };
        drop(c);
        close_unclosed(py, &format!("<{} fd={} open>", self.name, self.fd), &pipe);
    }
}

impl Drop for PipeTransport {
    /// Freed without the GC (its count fell to zero): the references are intact, finalize now.
    fn drop(&mut self) {
        Python::attach(|py| self.finalize(py, None));
    }
}

// --------------------------------------------------------------------------------------------
// Read pipes
// --------------------------------------------------------------------------------------------

/// The read end of a pipe; asyncio's `_UnixReadPipeTransport`.
#[pyclass(extends = PipeTransport, frozen, module = "oxloop._oxloop", name = "ReadPipeTransport")]
pub struct ReadPipeTransport {}

impl Reactive for ReadPipeTransport {
    fn on_ready(slf: &Bound<'_, Self>, _direction: Direction) -> PyResult<()> {
        Self::read_ready(slf)
    }
}

/// A read or write pipe transport: a subclass of [`PipeTransport`], which holds what the
/// lifecycle needs.
pub trait PipeKind: PyClass<BaseType = PipeTransport> + Reactive {
    /// Drops the unsent bytes of the write buffer, if the kind has one.
    fn drop_buffer(slf: &Bound<'_, Self>);
}

impl PipeKind for ReadPipeTransport {
    fn drop_buffer(_slf: &Bound<'_, Self>) {}
}

impl PipeKind for WritePipeTransport {
    fn drop_buffer(slf: &Bound<'_, Self>) {
        slf.get().st.borrow_mut(slf.py()).buffer.clear();
    }
}

impl<T: PipeKind> Transport for T {
    fn fd(slf: &Bound<'_, Self>) -> RawFd {
        slf.as_super().get().fd
    }

    fn loop_of(slf: &Bound<'_, Self>) -> Option<Py<PyLoop>> {
        slf.as_super().get().loop_(slf.py())
    }

    fn protocol_of(slf: &Bound<'_, Self>) -> Option<Py<PyAny>> {
        slf.as_super().get().protocol(slf.py())
    }

    fn context_of<'a>(slf: &'a Bound<'_, Self>) -> Option<&'a Py<PyAny>> {
        slf.as_super().get().context.as_ref()
    }

    fn lifecycle<R>(slf: &Bound<'_, Self>, f: impl FnOnce(&mut Lifecycle) -> R) -> R {
        slf.as_super().get().lc(slf.py(), f)
    }

    fn drop_buffer(slf: &Bound<'_, Self>) {
        <T as PipeKind>::drop_buffer(slf);
    }

    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        slf.as_super().get()._call_connection_lost(slf.py(), exc)
    }
}

impl ReadPipeTransport {
    /// Mirrors `_UnixReadPipeTransport._read_ready`.
    fn read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let base = slf.as_super().get();
        if !base.lc(py, |lc| lc.is_registered(Side::Read)) {
            return Ok(());
        }
        let Some(protocol) = base.protocol(py) else {
            return Ok(());
        };
        let read = read_chunk(py, base.fd, false)?;
        let data = match read {
            Ok(data) => data,
            Err(e) if sys::is_retry(&e) => return Ok(()),
            Err(e) => {
                let exc = errors::os_error(py, &e);
                return Self::fatal_error(
                    slf,
                    exc.value(py).as_any(),
                    "Fatal read error on pipe transport",
                );
            }
        };
        if !data.as_bytes().is_empty() {
            if let Err(err) = protocol
                .bind(py)
                .call_method1(intern!(py, "data_received"), (data,))
            {
                report_callback_error(
                    py,
                    base.loop_(py),
                    "_UnixReadPipeTransport._read_ready",
                    err,
                )?;
            }
            return Ok(());
        }
        base.log(slf.as_any(), "info", "was closed by peer", None)?;
        let steps = base.lc(py, Lifecycle::eof_ends);
        apply(slf, steps, None)
    }

    /// Mirrors `_UnixReadPipeTransport._fatal_error`: `EIO` (a pty whose other side closed) is
    /// only logged in debug mode.
    fn fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let py = slf.py();
        let eio = exc.is_instance_of::<PyOSError>()
            && exc.getattr(intern!(py, "errno"))?.extract::<i32>().ok() == Some(libc::EIO);
        slf.as_super()
            .get()
            .report_fatal(slf.as_any(), exc, message, eio)?;
        Self::close_with(slf, Some(exc))
    }

    /// Mirrors `_UnixReadPipeTransport._close`.
    fn close_with(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let steps = slf.as_super().get().lc(slf.py(), Lifecycle::abort);
        apply(slf, steps, exc)
    }

    fn reading_wanted(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().lc(slf.py(), |lc| lc.wants_reading())
    }
}

#[pymethods]
impl ReadPipeTransport {
    /// Whether the transport is receiving.
    fn is_reading(slf: &Bound<'_, Self>) -> bool {
        Self::reading_wanted(slf)
    }

    /// Stop calling the protocol's ``data_received()`` until ``resume_reading()``.
    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super().get();
        let steps = base.lc(slf.py(), |lc| {
            lc.wants_reading().then(|| lc.pause_reading())
        });
        let Some(steps) = steps else { return Ok(()) };
        apply(slf, steps, None)?;
        base.log(slf.as_any(), "debug", "pauses reading", None)
    }

    /// Resume calling the protocol's ``data_received()``.
    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super().get();
        let steps = base.lc(slf.py(), |lc| {
            (!lc.is_closing() && lc.is_paused()).then(|| lc.resume_reading())
        });
        let Some(steps) = steps else { return Ok(()) };
        apply(slf, steps, None)?;
        base.log(slf.as_any(), "debug", "resumes reading", None)
    }

    /// Close the transport; ``connection_lost(None)`` is called soon.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.as_super().get().closing(slf.py()) {
            return Ok(());
        }
        Self::close_with(slf, None)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let reading = (slf.as_super().get()).lc(slf.py(), |lc| lc.is_registered(Side::Read));
        slf.as_super().get().repr(slf.py(), || {
            if reading { "polling" } else { "idle" }.to_string()
        })
    }

    /// Starts reading unless paused or closing (asyncio's `_add_reader`).
    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let steps = slf.as_super().get().lc(slf.py(), Lifecycle::start_reading);
        apply(slf, steps, None)
    }

    /// A subclass of ``asyncio.ReadTransport`` (see the ``transports`` module docs).
    #[getter(__class__)]
    fn class(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(names(py)?.read_pipe_class.clone_ref(py))
    }
}

/// Creates a read pipe transport (the loop's `_make_read_pipe_transport`).
#[pyfunction]
#[pyo3(signature = (loop_, pipe, protocol, waiter=None, extra=None))]
pub fn make_read_pipe_transport(
    loop_: &Bound<'_, PyLoop>,
    pipe: &Bound<'_, PyAny>,
    protocol: &Bound<'_, PyAny>,
    waiter: Option<&Bound<'_, PyAny>>,
    extra: Option<Bound<'_, PyDict>>,
) -> PyResult<Py<ReadPipeTransport>> {
    let py = loop_.py();
    let (base, _) = PipeTransport::open(
        loop_,
        pipe,
        protocol,
        extra,
        "_UnixReadPipeTransport",
        "Pipe transport is for pipes/sockets only.",
    )?;
    let sub = ReadPipeTransport {};
    let tr = Py::new(py, PyClassInitializer::from(base).add_subclass(sub))?;
    let bound = tr.bind(py);
    let start = bound.getattr(intern!(py, "_start_reading"))?;
    bound
        .as_super()
        .get()
        .schedule_start(bound.as_any(), Some(start), waiter)?;
    Ok(tr)
}

// --------------------------------------------------------------------------------------------
// Write pipes
// --------------------------------------------------------------------------------------------

/// The state only a write pipe has.
struct WriteState {
    /// Bytes written but not yet taken by the pipe, and the flow-control state; a large
    /// `bytes` is held there, not copied (`bytes` cannot change).
    // NOTE: a held `bytes` is not visited by `__traverse__`: it refers to nothing, so no cycle
    // can pass through it.
    buffer: WriteBuffer<PyBackedBytes>,
    /// Non-zero once the pipe failed; counts writes after that (asyncio's pipe `_conn_lost`,
    /// which, unlike a socket's, counts write errors too).
    conn_lost: usize,
}

/// The write end of a pipe; asyncio's `_UnixWritePipeTransport`.
#[pyclass(extends = PipeTransport, frozen, module = "oxloop._oxloop", name = "WritePipeTransport")]
pub struct WritePipeTransport {
    /// Writing state.
    st: GilCell<WriteState>,
}

impl Reactive for WritePipeTransport {
    fn on_ready(slf: &Bound<'_, Self>, direction: Direction) -> PyResult<()> {
        match direction {
            Direction::Read => Self::peer_closed(slf),
            Direction::Write => Self::write_ready(slf),
        }
    }
}

impl WritePipeTransport {
    /// The read side of the pipe closed (asyncio's `_read_ready`).
    fn peer_closed(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if !slf
            .as_super()
            .get()
            .lc(py, |lc| lc.is_registered(Side::Read))
        {
            return Ok(());
        }
        let pending = !slf.get().st.borrow(py).buffer.is_empty();
        slf.as_super()
            .get()
            .log(slf.as_any(), "info", "was closed by peer", None)?;
        if pending {
            let exc = PyBrokenPipeError::new_err(()).value(py).clone().into_any();
            Self::close_with(slf, Some(&exc))
        } else {
            Self::close_with(slf, None)
        }
    }

    /// Mirrors `_UnixWritePipeTransport._write_ready`.
    fn write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let base = slf.as_super().get();
        if !base.lc(py, |lc| lc.is_registered(Side::Write)) {
            return Ok(());
        }
        let sent = {
            let st = this.st.borrow(py);
            if st.buffer.is_empty() {
                return Ok(());
            }
            let mut slices = Vec::new();
            st.buffer.slices(&mut slices);
            sys::writev(base.fd, &slices, false)
        };
        let n = match sent {
            Ok(n) => n,
            Err(e) if sys::is_retry(&e) => return Ok(()),
            Err(e) => {
                {
                    let mut st = this.st.borrow_mut(py);
                    st.buffer.clear();
                    st.conn_lost += 1;
                }
                unwatch(slf, Direction::Write)?;
                let exc = errors::os_error(py, &e);
                return Self::fatal_error(
                    slf,
                    exc.value(py).as_any(),
                    "Fatal write error on pipe transport",
                );
            }
        };
        let drained = {
            let mut st = this.st.borrow_mut(py);
            st.buffer.consume(n);
            st.buffer.is_empty()
        };
        if !drained {
            return Ok(());
        }
        unwatch(slf, Direction::Write)?;
        Self::flow(slf, false)?; // a closing pipe refuses writes: nothing is appended then
                                 // A closing pipe loses its connection now.
        let steps = base.lc(py, Lifecycle::flushed);
        let lp = base.loop_(py);
        if let Err(err) = apply(slf, steps, None) {
            report_callback_error(py, lp, "_UnixWritePipeTransport._write_ready", err)?;
        }
        Ok(())
    }

    /// Mirrors `_UnixWritePipeTransport._fatal_error`: OS errors are only logged in debug mode.
    fn fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let quiet = exc.is_instance_of::<PyOSError>();
        slf.as_super()
            .get()
            .report_fatal(slf.as_any(), exc, message, quiet)?;
        Self::close_with(slf, Some(exc))
    }

    /// Mirrors `_UnixWritePipeTransport._close` (`connection_lost` once, though).
    fn close_with(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let steps = slf.as_super().get().lc(slf.py(), Lifecycle::abort);
        apply(slf, steps, exc)
    }

    /// `_maybe_pause_protocol` (`pause`) or `_maybe_resume_protocol`.
    fn flow(slf: &Bound<'_, Self>, pause: bool) -> PyResult<()> {
        let due = {
            let mut st = slf.get().st.borrow_mut(slf.py());
            if pause {
                st.buffer.should_pause()
            } else {
                st.buffer.should_resume()
            }
        };
        flow(slf, pause, due)
    }
}

#[pymethods]
impl WritePipeTransport {
    /// Write ``data`` to the pipe; what cannot be written at once is buffered.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let base = slf.as_super().get();
        if !is_bytes_like(data) {
            return Err(PyAssertionError::new_err(data.repr()?.to_string()));
        }
        if data.len()? == 0 {
            return Ok(());
        }
        if base.closing(py) || this.st.borrow(py).conn_lost > 0 {
            let warn = {
                let mut st = this.st.borrow_mut(py);
                st.conn_lost += 1;
                st.conn_lost > LOG_THRESHOLD_FOR_CONNLOST_WRITES
            };
            if warn {
                names(py)?.logger.bind(py).call_method1(
                    "warning",
                    ("pipe closed by peer or os.write(pipe, data) raised exception.",),
                )?;
            }
            return Ok(());
        }
        let outcome = match data.cast_exact::<PyBytes>() {
            Ok(bytes) => send_or_hold(&mut this.st.borrow_mut(py).buffer, base.fd, bytes, false),
            // A bytearray or memoryview may change after write() returns: copied.
            Err(_) => ffi::with_bytes(data, |bytes| {
                send_or_buffer(&mut this.st.borrow_mut(py).buffer, base.fd, bytes, false)
            })?,
        };
        match outcome {
            Err(e) => {
                this.st.borrow_mut(py).conn_lost += 1;
                let exc = errors::os_error(py, &e);
                Self::fatal_error(
                    slf,
                    exc.value(py).as_any(),
                    "Fatal write error on pipe transport",
                )
            }
            Ok(register) => {
                if register {
                    watch(slf, Direction::Write)?;
                }
                Self::flow(slf, true)
            }
        }
    }

    /// Write a list (or any iterable) of bytes-like objects.
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let data = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (list_of_data,))?;
        // Mirrors WriteTransport.writelines: `self.write(...)`, so a `write` assigned on the
        // instance sees it.
        slf.call_method1(intern!(py, "write"), (data,))?;
        Ok(())
    }

    /// Whether ``write_eof()`` is supported: always.
    fn can_write_eof(&self) -> bool {
        true
    }

    /// Close the pipe once the buffered data is written.
    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let buffered = !slf.get().st.borrow(py).buffer.is_empty();
        let steps = slf.as_super().get().lc(py, |lc| lc.close(buffered));
        apply(slf, steps, None)
    }

    /// Close the transport after the buffered data is written.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super().get();
        if base._pipe(slf.py()).is_some() && !base.closing(slf.py()) {
            Self::write_eof(slf)?;
        }
        Ok(())
    }

    /// Close at once, dropping buffered data.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::close_with(slf, None)
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
        Self::flow(slf, true)
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

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let writing = (slf.as_super().get()).lc(slf.py(), |lc| lc.is_registered(Side::Write));
        let size = slf.get().st.borrow(slf.py()).buffer.len();
        slf.as_super().get().repr(slf.py(), || {
            format!(
                "{} bufsize={size}",
                if writing { "polling" } else { "idle" }
            )
        })
    }

    /// Starts watching for the read end closing (pipes and sockets).
    fn _watch_peer(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.as_super().get().closing(slf.py()) {
            return Ok(());
        }
        watch(slf, Direction::Read)
    }

    /// Whether `pause_writing()` is in effect.
    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).buffer.paused()
    }

    /// A subclass of ``asyncio.WriteTransport`` (see the ``transports`` module docs).
    #[getter(__class__)]
    fn class(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(names(py)?.write_pipe_class.clone_ref(py))
    }
}

/// Creates a write pipe transport (the loop's `_make_write_pipe_transport`).
#[pyfunction]
#[pyo3(signature = (loop_, pipe, protocol, waiter=None, extra=None))]
pub fn make_write_pipe_transport(
    loop_: &Bound<'_, PyLoop>,
    pipe: &Bound<'_, PyAny>,
    protocol: &Bound<'_, PyAny>,
    waiter: Option<&Bound<'_, PyAny>>,
    extra: Option<Bound<'_, PyDict>>,
) -> PyResult<Py<WritePipeTransport>> {
    let py = loop_.py();
    let (base, kind) = PipeTransport::open(
        loop_,
        pipe,
        protocol,
        extra,
        "_UnixWritePipeTransport",
        "Pipe transport is only for pipes, sockets and character devices",
    )?;
    let state = WriteState {
        buffer: WriteBuffer::default(),
        conn_lost: 0,
    };
    let tr = Py::new(
        py,
        PyClassInitializer::from(base).add_subclass(WritePipeTransport {
            st: GilCell::new(state),
        }),
    )?;
    let bound = tr.bind(py);
    // The read end closing makes a pipe or socket readable (a tty would not tell).
    let watch_peer = matches!(kind, FileKind::Fifo | FileKind::Socket);
    let start = if watch_peer {
        Some(bound.getattr(intern!(py, "_watch_peer"))?)
    } else {
        None
    };
    bound
        .as_super()
        .get()
        .schedule_start(bound.as_any(), start, waiter)?;
    Ok(tr)
}
