//! Server accept loops: the listening socket of `create_server` watched by a native watcher.
//!
//! Where it sits in a tick: when a listening fd is readable, the tick runs [`Acceptor::ready`]
//! in ready-queue order (where asyncio would run its `_accept_connection` reader handle). It
//! accepts up to `backlog` connections with `accept4` (each non-blocking from the start) and,
//! for each, creates the task of the loop's `_accept_connection2` (asyncio's own, borrowed),
//! which makes the protocol and the transport through the same hooks as asyncio's loop.
//!
//! Mirrors `BaseSelectorEventLoop._accept_connection`; what is rare stays in Python
//! (`oxloop._streams`): debug mode runs asyncio's `_accept_connection` itself (it logs each
//! connection), and an accept error other than "nothing pending" goes to `loop._accept_cold`,
//! which pauses accepting on EMFILE and friends or reports the error as asyncio's reader handle
//! would.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::event_loop::{Direction, NativeWatcher, PyLoop, Watcher};
use crate::sock::{accept_raw, listener_kind};

/// One listening socket served by the loop.
#[pyclass(frozen, module = "oxloop._oxloop")]
pub struct Acceptor {
    /// The loop serving the socket.
    loop_: Py<PyLoop>,
    /// The listening socket.
    sock: Py<PyAny>,
    /// Its fd when serving started.
    fd: RawFd,
    /// `(family, type, proto)` of the listening socket, given to each accepted socket.
    kind: (i32, i32, i32),
    /// How many connections one readiness may accept (asyncio's `backlog`).
    backlog: usize,
    /// `(protocol_factory, sock, sslcontext, server, backlog, ssl_handshake_timeout,
    /// ssl_shutdown_timeout)`: the arguments of asyncio's `_accept_connection`.
    args: Py<PyTuple>,
    /// Data address of the `Arc` registered with the loop, to recognise our own registration.
    token: AtomicUsize,
}

/// The `Arc` the loop holds for an [`Acceptor`].
struct Registration(Py<Acceptor>);

impl NativeWatcher for Registration {
    fn ready(&self, py: Python<'_>, _direction: Direction) -> PyResult<()> {
        Acceptor::ready(self.0.bind(py))
    }

    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.0.bind(py).clone().into_any())
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.0)
    }
}

impl Acceptor {
    /// Whether our registration is still the fd's reader (`_stop_serving` or `remove_reader`
    /// may have removed it after the fd was reported ready in this tick).
    fn registered(&self, py: Python<'_>) -> bool {
        let token = self.token.load(Ordering::Relaxed);
        let lp = self.loop_.get();
        let st = lp.state.borrow(py);
        matches!(
            st.fds.watcher(self.fd, Direction::Read),
            Some(Watcher::Native(n)) if Arc::as_ptr(n) as *const () as usize == token
        )
    }

    /// The listening socket is readable. Mirrors `BaseSelectorEventLoop._accept_connection`.
    fn ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.registered(py) {
            return Ok(());
        }
        let lp = this.loop_.bind(py);
        let args = this.args.bind(py);
        if lp.get().debug(py) {
            // asyncio's own loop, which also logs each connection in debug mode.
            cold(lp, args, None)?;
            return Ok(());
        }
        let sock = this.sock.bind(py);
        for _ in 0..this.backlog {
            let (conn, address) = match accept_raw(py, sock, this.fd, Some(this.kind)) {
                Ok(Some(pair)) => (pair.get_item(0)?, pair.get_item(1)?),
                Ok(None) => return Ok(()),
                Err(err)
                    if err.is_instance_of::<pyo3::exceptions::PyConnectionAbortedError>(py) =>
                {
                    // Early exit as asyncio's: the connection went away before it was taken.
                    return Ok(());
                }
                Err(err) => {
                    // asyncio's loop goes on after the out-of-resources pause (only).
                    if cold(lp, args, Some(err))? {
                        continue;
                    }
                    return Ok(());
                }
            };
            let extra = PyDict::new(py);
            extra.set_item(intern!(py, "peername"), address)?;
            // _accept_connection2(protocol_factory, conn, extra, sslcontext, server,
            // ssl_handshake_timeout, ssl_shutdown_timeout)
            let call = (|| -> PyResult<()> {
                let coro = lp.call_method1(
                    intern!(py, "_accept_connection2"),
                    (
                        args.get_item(0)?,
                        conn,
                        extra,
                        args.get_item(2)?,
                        args.get_item(3)?,
                        args.get_item(5)?,
                        args.get_item(6)?,
                    ),
                )?;
                lp.call_method1(intern!(py, "create_task"), (coro,))?;
                Ok(())
            })();
            if let Err(err) = call {
                cold(lp, args, Some(err))?;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Calls the loop's `_accept_cold(err, *args)` (Python, `oxloop._streams`): asyncio's own
/// `_accept_connection` when `err` is `None` (debug mode), else what asyncio does when its
/// accept raised `err`; whether asyncio's accept loop would go on. Only `SystemExit` and
/// `KeyboardInterrupt` come back out of it.
fn cold(lp: &Bound<'_, PyLoop>, args: &Bound<'_, PyTuple>, err: Option<PyErr>) -> PyResult<bool> {
    let py = lp.py();
    let first = match err {
        Some(err) => err.into_value(py).into_any(),
        None => py.None(),
    };
    let mut all = vec![first];
    all.extend(args.iter().map(|a| a.unbind()));
    lp.call_method1(intern!(py, "_accept_cold"), PyTuple::new(py, all)?)?
        .is_truthy()
}

#[pymethods]
impl Acceptor {
    fn __repr__(&self) -> String {
        format!("<Acceptor fd={} backlog={}>", self.fd, self.backlog)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        visit.call(&self.sock)?;
        visit.call(&self.args)
    }
}

/// Serves the listening `sock` (its fd `fd`) on `loop_`: the core of oxloop's
/// `_start_serving`. `args` are asyncio's `_accept_connection` arguments: `(protocol_factory,
/// sock, sslcontext, server, backlog, ssl_handshake_timeout, ssl_shutdown_timeout)`.
#[pyfunction]
pub fn serve(loop_: &Bound<'_, PyLoop>, fd: RawFd, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let py = loop_.py();
    let sock = args.get_item(1)?;
    let backlog: isize = args.get_item(4)?.extract()?;
    let acceptor = Py::new(
        py,
        Acceptor {
            loop_: loop_.clone().unbind(),
            kind: listener_kind(py, &sock)?,
            sock: sock.unbind(),
            fd,
            backlog: usize::try_from(backlog).unwrap_or(0),
            args: args.clone().unbind(),
            token: AtomicUsize::new(0),
        },
    )?;
    let registration: Arc<dyn NativeWatcher> = Arc::new(Registration(acceptor.clone_ref(py)));
    acceptor.get().token.store(
        Arc::as_ptr(&registration) as *const () as usize,
        Ordering::Relaxed,
    );
    loop_
        .get()
        .watch(py, fd, Direction::Read, Watcher::Native(registration))
}
