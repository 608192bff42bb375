//! Server accept loops: the listening socket of `create_server` watched by a native watcher
//! ([`Dispatch`]).
//!
//! Where it sits in a tick: when a listening fd is readable, the tick runs `Acceptor::on_ready`
//! in ready-queue order (where asyncio would run its `_accept_connection` reader handle), in a
//! copy of the context `_start_serving` was called in (that handle's context). It
//! accepts up to `backlog` connections with `accept4` (each non-blocking from the start) and,
//! for each, creates the task of the loop's `_accept_connection2` (asyncio's own, borrowed),
//! which makes the protocol and the transport through the same hooks as asyncio's loop.
//!
//! Mirrors `BaseSelectorEventLoop._accept_connection`; what is rare is asyncio's own, run as
//! the reader handle asyncio's loop would run: in debug mode (which logs each connection) and
//! after an accept error other than "nothing pending" (EMFILE and friends, ...), it hands
//! the readiness to the loop's `_accept_connection` (borrowed), which accepts again and handles
//! the error as the running Python does: it reports it, stops watching the socket through
//! `_remove_reader` and serves it again later through `_start_serving`, both oxloop's hooks.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyConnectionAbortedError, PyOSError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::event_loop::{Direction, PyLoop};
use crate::handles::{self, Callback};
use crate::sock::{accept_raw, listener_kind};
use crate::transports::{transport_context, Dispatch, Reactive};

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

impl Reactive for Acceptor {
    /// The listening socket is readable. Mirrors `BaseSelectorEventLoop._accept_connection`.
    #[inline(always)]
    fn on_ready(slf: &Bound<'_, Self>, _direction: Direction) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // `_stop_serving` or `remove_reader` may have removed our registration after the fd was
        // reported ready in this tick.
        let token = this.token.load(Ordering::Relaxed);
        if !this
            .loop_
            .get()
            .watches(py, this.fd, Direction::Read, token)
        {
            return Ok(());
        }
        let lp = this.loop_.bind(py);
        let args = this.args.bind(py);
        if lp.get().debug(py) {
            // asyncio's own loop, which also logs each connection in debug mode.
            return in_asyncio(lp, args, None);
        }
        let sock = this.sock.bind(py);
        for _ in 0..this.backlog {
            let (conn, address) = match accept_raw(py, sock, this.fd, Some(this.kind)) {
                Ok(Some(pair)) => (pair.get_item(0)?, pair.get_item(1)?),
                Ok(None) => return Ok(()),
                Err(err) if err.is_instance_of::<PyConnectionAbortedError>(py) => {
                    // The connection went away before it was taken. asyncio up to 3.13.0 stops
                    // here; later releases (gh-127529) accept on: the running Python's own loop
                    // decides.
                    return in_asyncio(lp, args, None);
                }
                // NOTE: asyncio's accept loop goes on from here: it accepts again, so it meets
                // the error again (EMFILE lasts) or takes what is pending since.
                Err(err) if err.is_instance_of::<PyOSError>(py) => {
                    return in_asyncio(lp, args, None)
                }
                Err(err) => return in_asyncio(lp, args, Some(err)),
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
                return in_asyncio(lp, args, Some(err));
            }
        }
        Ok(())
    }
}

/// What asyncio's reader handle for `loop._accept_connection(*args)` does: with `err` None, run
/// it (asyncio's accept loop, borrowed); else report `err` as raised by it. Errors go to the
/// exception handler as `Handle._run` sends them; only `SystemExit` and `KeyboardInterrupt`
/// come back out.
fn in_asyncio(
    lp: &Bound<'_, PyLoop>,
    args: &Bound<'_, PyTuple>,
    err: Option<PyErr>,
) -> PyResult<()> {
    let py = lp.py();
    let callback = lp.getattr(intern!(py, "_accept_connection"))?;
    let debug = lp.get().debug(py);
    // Whoever keeps it (an exception handler, say) leaves it to the collector.
    let handle = handles::new_handle(
        py,
        Callback::new(lp, callback.clone(), args.clone(), None, debug)?,
        true,
    )?;
    let handle = handle.bind(py);
    match err {
        None => handle.get().cb.run(py, handle.as_any()),
        Some(err) => handle
            .get()
            .cb
            .fail(py, handle.as_any(), &callback, args, err),
    }
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
    // Mirrors asyncio's `_start_serving`, whose `add_reader` handle copies the caller's context:
    // each accept, the `_accept_connection2` task it creates and so every protocol callback of
    // the connection see the variables set where serving started (uvicorn relies on it).
    let watcher = Arc::new(Dispatch {
        target: acceptor.clone_ref(py),
        context: Some(transport_context(py)?),
    });
    let token = loop_.get().watch_native(py, fd, Direction::Read, watcher)?;
    acceptor.get().token.store(token, Ordering::Relaxed);
    Ok(())
}
