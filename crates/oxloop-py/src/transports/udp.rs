//! `DatagramCore`: the hot half of oxloop's UDP transport (reads, `sendto`, the send buffer).
//!
//! The transport users see is `oxloop._udp.DatagramTransport`, a Python subclass of asyncio's
//! `DatagramTransport` (asyncio's transport classes carry `__slots__` layouts a native class cannot
//! share, so the Python class holds this core instead of inheriting from it). The core watches the
//! socket's fd as a [`NativeWatcher`]: when readable, the tick calls [`DatagramCore::read_ready`],
//! which receives one datagram and calls the protocol's `datagram_received` straight from Rust (no
//! Python `Handle`); when writable (only while the send buffer holds data), it flushes the buffer.
//! The cold paths (close, abort, connection_lost, flow control) stay in the Python class, which
//! the core calls back for `_fatal_error`, `_maybe_pause_protocol` and `_maybe_resume_protocol`.
//!
//! Mirrors `_SelectorDatagramTransport` in `asyncio/selector_events.py`.
//!
//! # Implementation
//! Sends go through the Python socket's `send`/`sendto`, which convert every address family
//! exactly as Python does. Receives on an IPv4/IPv6 socket are a raw `recvfrom` into a
//! per-thread buffer reused across reads (asyncio allocates `max_size` bytes per read), then one
//! `bytes` of the datagram's length and the address tuple CPython builds (host text from
//! `inet_ntop`, as CPython's); other families (Unix datagrams) call the socket's `recvfrom`. The transport owns the socket: the Python class
//! closes it in `_call_connection_lost` and calls [`DatagramCore::release`], which drops every
//! Python object held here and so breaks the transport/core cycle.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView};
use pyo3::{intern, PyTraverseError};

use crate::event_loop::{Direction, NativeWatcher, PyLoop, Watcher};
use crate::gil::GilCell;
use crate::sock::{is_fatal, is_retry};

/// Mirrors `_SelectorTransport.max_size`: the buffer size passed to `recvfrom`.
const MAX_SIZE: usize = 256 * 1024;
/// Mirrors `asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

thread_local! {
    /// The receive buffer of inet reads, shared by every transport of this thread (a tick reads
    /// one datagram at a time); `MAX_SIZE` bytes once first used.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A datagram's sender, as CPython's `makesockaddr` builds it for an inet socket.
enum Sender {
    /// `(host, port)`.
    V4(String, u16),
    /// `(host, port, flowinfo, scope_id)`.
    V6(String, u16, u32, u32),
}

/// `recvfrom` on an `AF_INET` or `AF_INET6` socket into `buf`: the datagram's length and sender.
fn recvfrom_inet(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Sender)> {
    // SAFETY: sockaddr_storage is plain old data, valid when all zero.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes; `storage` and `len` are live
    // locals and `len` is the storage's size, so the kernel never writes past it. A stale fd only
    // makes the kernel answer EBADF.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let sender = match i32::from(storage.ss_family) {
        libc::AF_INET6 => {
            // SAFETY: the kernel reported AF_INET6, so `storage` holds a sockaddr_in6, and
            // sockaddr_storage is large and aligned enough for any address type.
            let a = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Sender::V6(
                oxloop_core::sys::ntop_v6(&a.sin6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )
        }
        _ => {
            // SAFETY: an AF_INET socket (the only other caller) reports a sockaddr_in, which
            // sockaddr_storage is large and aligned enough to hold.
            let a = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Sender::V4(ip.to_string(), u16::from_be(a.sin_port))
        }
    };
    Ok((n as usize, sender))
}

/// Mutable state of a datagram transport.
struct UdpState {
    /// The socket; `None` after [`DatagramCore::release`].
    sock: Option<Py<PyAny>>,
    /// The protocol receiving `datagram_received` / `error_received`.
    protocol: Option<Py<PyAny>>,
    /// The Python transport object this core belongs to.
    transport: Option<Py<PyAny>>,
    /// The remote address of a connected endpoint (`remote_addr`), else `None`.
    address: Option<Py<PyAny>>,
    /// The socket has a peer (`get_extra_info('peername')` is truthy): send with `send()`.
    connected: bool,
    /// `getpeername()` succeeds, even with an empty name (an `AF_UNIX` socketpair): a
    /// `sendto(data)` without an address then goes to that peer with `send()`, as uvloop does
    /// (asyncio fails with a TypeError from `sock.sendto(data, None)`).
    has_peer: bool,
    /// Datagrams waiting for the socket to be writable: `(bytes, address)`, oldest first.
    buffer: VecDeque<(Py<PyAny>, Py<PyAny>)>,
    /// Sum of `len(data)` plus the header size over `buffer` (asyncio's `_buffer_size`).
    buffer_size: usize,
    /// Non-zero once `connection_lost` is scheduled; counts writes attempted after that.
    conn_lost: u32,
}

impl UdpState {
    /// Takes every Python object out, for the caller to drop once no borrow is held.
    #[allow(clippy::type_complexity)]
    fn take_objects(&mut self) -> (Vec<Py<PyAny>>, VecDeque<(Py<PyAny>, Py<PyAny>)>) {
        let objects = [
            self.sock.take(),
            self.protocol.take(),
            self.transport.take(),
            self.address.take(),
        ];
        (
            objects.into_iter().flatten().collect(),
            std::mem::take(&mut self.buffer),
        )
    }
}

/// The Rust half of a UDP transport; see the module docs.
#[pyclass(frozen, module = "oxloop._oxloop")]
pub struct DatagramCore {
    /// The loop the socket is watched on.
    loop_: Py<PyLoop>,
    /// The socket's fd, the key of its watches.
    fd: RawFd,
    /// The socket is `AF_INET` or `AF_INET6`: reads take the raw path (see the module docs).
    inet: bool,
    /// The context every protocol callback runs in (captured when the transport is made; see
    /// [`super::transport_context`]).
    context: Py<PyAny>,
    /// Everything else; never borrowed across a call into Python.
    state: GilCell<UdpState>,
}

/// The `Arc` the loop holds for a [`DatagramCore`].
struct Registration(
    /// The transport core; the loop's watch keeps it alive while reading or flushing.
    Py<DatagramCore>,
);

impl NativeWatcher for Registration {
    fn ready(&self, py: Python<'_>, direction: Direction) -> PyResult<()> {
        let core = self.0.bind(py);
        let result = crate::ffi::run_in_context(core.get().context.bind(py), || match direction {
            Direction::Read => DatagramCore::read_ready(core),
            Direction::Write => DatagramCore::write_ready(core),
        });
        match result {
            Ok(()) => Ok(()),
            Err(err) if is_fatal(py, &err) => Err(err),
            Err(err) => core.get().report(py, direction, err),
        }
    }

    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let transport = self
            .0
            .get()
            .state
            .borrow(py)
            .transport
            .as_ref()
            .map(|t| t.clone_ref(py));
        Ok(match transport {
            Some(t) => t.into_bound(py),
            None => self.0.bind(py).clone().into_any(),
        })
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.0)
    }
}

/// What a send attempt did with an `OSError` or other failure.
enum Failure {
    /// `BlockingIOError` / `InterruptedError`: try again when writable.
    Retry,
    /// Handled (reported to the protocol or the transport): stop here.
    Handled,
}

impl DatagramCore {
    fn objects(&self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyAny>, Py<PyAny>)> {
        let st = self.state.borrow(py);
        match (&st.sock, &st.protocol, &st.transport) {
            (Some(s), Some(p), Some(t)) => {
                Some((s.clone_ref(py), p.clone_ref(py), t.clone_ref(py)))
            }
            _ => None,
        }
    }

    /// Mirrors `_SelectorDatagramTransport._read_ready`.
    fn read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.state.borrow(py).conn_lost != 0 {
            return Ok(());
        }
        let Some((sock, protocol, transport)) = this.objects(py) else {
            return Ok(());
        };
        if this.inet {
            let received = READ_BUF.with_borrow_mut(|buf| {
                buf.resize(MAX_SIZE, 0);
                recvfrom_inet(this.fd, buf).map(|(n, from)| (PyBytes::new(py, &buf[..n]), from))
            });
            match received {
                Ok((data, from)) => {
                    let addr = match from {
                        Sender::V4(host, port) => (host, port).into_pyobject(py)?.into_any(),
                        Sender::V6(host, port, flow, scope) => {
                            (host, port, flow, scope).into_pyobject(py)?.into_any()
                        }
                    };
                    protocol
                        .bind(py)
                        .call_method1(intern!(py, "datagram_received"), (data, addr))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    let exc = crate::errors::os_error(py, &e);
                    protocol
                        .bind(py)
                        .call_method1(intern!(py, "error_received"), (exc.value(py),))?;
                }
            }
            return Ok(());
        }
        match sock
            .bind(py)
            .call_method1(intern!(py, "recvfrom"), (MAX_SIZE,))
        {
            Ok(pair) => {
                let (data, addr): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
                protocol
                    .bind(py)
                    .call_method1(intern!(py, "datagram_received"), (data, addr))?;
            }
            Err(err) if is_retry(py, &err) => {}
            Err(err) if err.is_instance_of::<PyOSError>(py) => {
                protocol
                    .bind(py)
                    .call_method1(intern!(py, "error_received"), (err.value(py),))?;
            }
            Err(err) if is_fatal(py, &err) => return Err(err),
            Err(err) => {
                transport.bind(py).call_method1(
                    intern!(py, "_fatal_error"),
                    (err.value(py), "Fatal read error on datagram transport"),
                )?;
            }
        }
        Ok(())
    }

    /// One `send`/`sendto` of `data`; errors other than would-block are handled as asyncio does.
    fn send_one(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        objects: &(Py<PyAny>, Py<PyAny>, Py<PyAny>),
    ) -> PyResult<Result<(), Failure>> {
        let (sock, protocol, transport) = objects;
        let (connected, has_peer) = {
            let st = self.state.borrow(py);
            (st.connected, st.has_peer)
        };
        let sock = sock.bind(py);
        let sent = if connected || (has_peer && addr.is_none()) {
            sock.call_method1(intern!(py, "send"), (data,))
        } else {
            sock.call_method1(intern!(py, "sendto"), (data, addr))
        };
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(err) if is_retry(py, &err) => Ok(Err(Failure::Retry)),
            Err(err) if err.is_instance_of::<PyOSError>(py) => {
                protocol
                    .bind(py)
                    .call_method1(intern!(py, "error_received"), (err.value(py),))?;
                Ok(Err(Failure::Handled))
            }
            Err(err) if is_fatal(py, &err) => Err(err),
            Err(err) => {
                transport.bind(py).call_method1(
                    intern!(py, "_fatal_error"),
                    (err.value(py), "Fatal write error on datagram transport"),
                )?;
                Ok(Err(Failure::Handled))
            }
        }
    }

    /// Mirrors `_SelectorDatagramTransport._sendto_ready`: flush the buffer while writable.
    fn write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Some(objects) = this.objects(py) else {
            return Ok(());
        };
        let header = super::names(py)?.datagram_header_size;
        loop {
            let next = {
                let mut st = this.state.borrow_mut(py);
                st.buffer.pop_front().map(|(d, a)| {
                    let n = d.bind(py).len().unwrap_or(0) + header;
                    st.buffer_size -= n.min(st.buffer_size);
                    (d, a, n)
                })
            };
            let Some((data, addr, n)) = next else { break };
            match this.send_one(py, data.bind(py), addr.bind(py), &objects)? {
                Ok(()) => {}
                Err(Failure::Retry) => {
                    let mut st = this.state.borrow_mut(py);
                    st.buffer.push_front((data, addr));
                    st.buffer_size += n;
                    break;
                }
                Err(Failure::Handled) => return Ok(()),
            }
        }
        let transport = objects.2.bind(py);
        transport.call_method0(intern!(py, "_maybe_resume_protocol"))?; // may append to buffer
        if this.state.borrow(py).buffer.is_empty() {
            this.loop_.get().unwatch(py, this.fd, Direction::Write)?;
            if transport.getattr(intern!(py, "_closing"))?.is_truthy()? {
                transport.call_method1(intern!(py, "_call_connection_lost"), (py.None(),))?;
            }
        }
        Ok(())
    }

    fn watch(slf: &Bound<'_, Self>, direction: Direction) -> PyResult<()> {
        let registration: Arc<dyn NativeWatcher> = Arc::new(Registration(slf.clone().unbind()));
        slf.get().loop_.get().watch(
            slf.py(),
            slf.get().fd,
            direction,
            Watcher::Native(registration),
        )
    }

    fn is_watching(&self, py: Python<'_>, direction: Direction) -> bool {
        let st = self.loop_.get().state.borrow(py);
        st.fds.watcher(self.fd, direction).is_some()
    }

    /// A protocol callback raised: report it as asyncio's `Handle._run` would.
    fn report(&self, py: Python<'_>, direction: Direction, err: PyErr) -> PyResult<()> {
        let transport = self
            .state
            .borrow(py)
            .transport
            .as_ref()
            .map(|t| t.clone_ref(py));
        let method = match direction {
            Direction::Read => "_read_ready",
            Direction::Write => "_sendto_ready",
        };
        let context = PyDict::new(py);
        let name = match &transport {
            Some(t) => t.bind(py).repr()?.to_string(),
            None => "<closed transport>".to_owned(),
        };
        context.set_item(
            intern!(py, "message"),
            format!("Exception in callback {name}.{method}()"),
        )?;
        context.set_item(intern!(py, "exception"), err.value(py))?;
        if let Some(t) = transport {
            context.set_item(intern!(py, "transport"), t)?;
        }
        self.loop_
            .bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (context,))?;
        Ok(())
    }
}

#[pymethods]
impl DatagramCore {
    #[new]
    #[pyo3(signature = (loop_, transport, sock, protocol, address, connected))]
    fn new(
        loop_: &Bound<'_, PyLoop>,
        transport: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        address: Option<&Bound<'_, PyAny>>,
        connected: bool,
    ) -> PyResult<Self> {
        let fd = crate::event_loop::fileobj_to_fd(sock)?;
        let family: i32 = sock.getattr(intern!(loop_.py(), "family"))?.extract()?;
        Ok(Self {
            loop_: loop_.clone().unbind(),
            fd,
            inet: family == libc::AF_INET || family == libc::AF_INET6,
            context: super::transport_context(loop_.py())?,
            state: GilCell::new(UdpState {
                sock: Some(sock.clone().unbind()),
                protocol: Some(protocol.clone().unbind()),
                transport: Some(transport.clone().unbind()),
                address: address.filter(|a| !a.is_none()).map(|a| a.clone().unbind()),
                connected,
                has_peer: sock
                    .call_method0(intern!(loop_.py(), "getpeername"))
                    .is_ok(),
                buffer: VecDeque::new(),
                buffer_size: 0,
                conn_lost: 0,
            }),
        })
    }

    /// The context the transport's protocol callbacks run in.
    #[getter]
    fn context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// Mirrors `_SelectorDatagramTransport.sendto`.
    #[pyo3(signature = (data, addr=None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !(data.is_instance_of::<PyBytes>()
            || data.is_instance_of::<PyByteArray>()
            || data.is_instance_of::<PyMemoryView>())
        {
            let tname = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "data argument must be a bytes-like object, not {}",
                tname.repr()?
            )));
        }
        // Mirrors the running Python's _SelectorDatagramTransport.sendto.
        if !super::names(py)?.sends_empty_datagrams && !data.is_truthy()? {
            return Ok(());
        }
        let mut addr = match addr {
            Some(a) => a.clone(),
            None => py.None().into_bound(py),
        };
        let address = this
            .state
            .borrow(py)
            .address
            .as_ref()
            .map(|a| a.clone_ref(py));
        if let Some(address) = &address {
            let address = address.bind(py);
            if !(addr.is_none() || addr.eq(address)?) {
                return Err(PyValueError::new_err(format!(
                    "Invalid address: must be None or {}",
                    address.str()?
                )));
            }
            addr = address.clone();
        }
        let (conn_lost, buffered) = {
            let st = this.state.borrow(py);
            (st.conn_lost, !st.buffer.is_empty())
        };
        if conn_lost != 0 && address.is_some() {
            if conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                super::names(py)?
                    .logger
                    .bind(py)
                    .call_method1(intern!(py, "warning"), ("socket.send() raised exception.",))?;
            }
            this.state.borrow_mut(py).conn_lost += 1;
            return Ok(());
        }
        let Some(objects) = this.objects(py) else {
            // Closed and released: nothing can be sent any more.
            return Ok(());
        };
        if !buffered {
            // Attempt to send it right away first.
            match this.send_one(py, data, &addr, &objects)? {
                Ok(()) | Err(Failure::Handled) => return Ok(()),
                Err(Failure::Retry) => Self::watch(slf, Direction::Write)?,
            }
        }
        // Ensure that what we buffer is immutable.
        let n = data.len()? + super::names(py)?.datagram_header_size;
        let copy = py.get_type::<PyBytes>().call1((data,))?;
        {
            let mut st = this.state.borrow_mut(py);
            st.buffer.push_back((copy.unbind(), addr.unbind()));
            st.buffer_size += n;
        }
        objects
            .2
            .bind(py)
            .call_method0(intern!(py, "_maybe_pause_protocol"))?;
        Ok(())
    }

    /// asyncio's `_buffer_size`.
    fn buffer_size(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).buffer_size
    }

    /// Whether datagrams wait in the send buffer (asyncio's `bool(self._buffer)`).
    fn has_buffer(&self, py: Python<'_>) -> bool {
        !self.state.borrow(py).buffer.is_empty()
    }

    /// Drops the send buffer and stops waiting for writability (`_force_close`).
    fn clear_buffer(&self, py: Python<'_>) -> PyResult<()> {
        let buffer = {
            let mut st = self.state.borrow_mut(py);
            st.buffer_size = 0;
            std::mem::take(&mut st.buffer)
        };
        drop(buffer);
        self.loop_
            .get()
            .unwatch(py, self.fd, Direction::Write)
            .map(drop)
    }

    /// asyncio's `_conn_lost` counter.
    #[getter]
    fn conn_lost(&self, py: Python<'_>) -> u32 {
        self.state.borrow(py).conn_lost
    }

    #[setter]
    fn set_conn_lost(&self, py: Python<'_>, value: u32) {
        self.state.borrow_mut(py).conn_lost = value;
    }

    /// Replaces the protocol that receives datagrams.
    fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) {
        let old = self.state.borrow_mut(py).protocol.replace(protocol);
        drop(old);
    }

    /// Starts watching the socket for datagrams.
    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().state.borrow(slf.py()).sock.is_none() {
            return Ok(());
        }
        Self::watch(slf, Direction::Read)
    }

    /// Stops watching the socket for datagrams.
    fn stop_reading(&self, py: Python<'_>) -> PyResult<()> {
        self.loop_
            .get()
            .unwatch(py, self.fd, Direction::Read)
            .map(drop)
    }

    /// Stops waiting for writability.
    fn stop_writing(&self, py: Python<'_>) -> PyResult<()> {
        self.loop_
            .get()
            .unwatch(py, self.fd, Direction::Write)
            .map(drop)
    }

    /// Whether the socket is watched for reading (`True`) / writing, for `repr()`.
    fn polling(&self, py: Python<'_>, write: bool) -> bool {
        self.is_watching(
            py,
            if write {
                Direction::Write
            } else {
                Direction::Read
            },
        )
    }

    /// Drops every Python object held (after `connection_lost`); the fd is no longer watched.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let lp = self.loop_.get();
        lp.unwatch(py, self.fd, Direction::Read)?;
        lp.unwatch(py, self.fd, Direction::Write)?;
        let dropped = self.state.borrow_mut(py).take_objects();
        drop(dropped);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        visit.call(&self.context)?;
        let Some(st) = self.state.try_borrow_in_gc() else {
            return Ok(());
        };
        for obj in [&st.sock, &st.protocol, &st.transport, &st.address]
            .into_iter()
            .flatten()
        {
            visit.call(obj)?;
        }
        for (d, a) in &st.buffer {
            visit.call(d)?;
            visit.call(a)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let dropped = self
                .state
                .try_borrow_mut_in_gc(py)
                .map(|mut st| st.take_objects());
            drop(dropped);
        });
    }
}
