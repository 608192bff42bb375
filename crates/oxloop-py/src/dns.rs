//! `oxloop._oxloop.Resolver`: `loop.getaddrinfo` for host names without Python's thread pool.
//!
//! A query goes to oxloop-core's resolver threads, which call libc's `getaddrinfo` holding no
//! GIL; their eventfd is watched by the loop like a transport (a [`Dispatch`]), and in the
//! tick the finished queries' futures get their raw results. The Python side
//! (`oxloop._sock.SocketMethods.getaddrinfo`) encodes the arguments exactly as
//! `socket.getaddrinfo` does and converts the raw tuples into its exact answer; a failed lookup
//! (or an address family Python would not decode) resolves to `None`, and the Python side then
//! repeats the call through `socket.getaddrinfo` in the executor, so errors are CPython's own.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use oxloop_core::dns::{Query, Resolver as Pool};
use oxloop_core::sys::{self, SockAddr};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyInt, PyList, PyString};
use pyo3::{intern, PyTraverseError};

use crate::errors;
use crate::event_loop::{Direction, PyLoop, Watcher};
use crate::gil::GilCell;
use crate::transports::{Dispatch, Reactive};

/// Mutable state of the resolver.
struct Inner {
    /// The worker pool; `None` once closed.
    pool: Option<Pool>,
    /// The loop; `None` once closed.
    loop_: Option<Py<PyLoop>>,
    /// Futures of queries not yet answered, by query id.
    futures: HashMap<u64, Py<PyAny>>,
    /// The next query id.
    next_id: u64,
    /// The pool's eventfd is watched by the loop: from the first query until `close()`.
    // NOTE: not only while queries are pending: watching and unwatching cost two epoll_ctl
    // calls per lookup, and an idle eventfd costs nothing to watch.
    watching: bool,
}

/// Host-name resolution for one loop; see the module docs.
#[pyclass(frozen, module = "oxloop._oxloop")]
pub struct Resolver {
    /// Everything; touched with the GIL held.
    st: GilCell<Inner>,
}

impl Reactive for Resolver {
    #[inline(always)]
    fn on_ready(slf: &Bound<'_, Self>, _direction: Direction) -> PyResult<()> {
        Resolver::deliver(slf)
    }
}

impl Resolver {
    /// Hands finished queries to their futures.
    fn deliver(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let answered: Vec<_> = {
            let mut st = slf.get().st.borrow_mut(py);
            let Some(pool) = st.pool.as_mut() else {
                return Ok(());
            };
            let done = pool.take_done();
            done.into_iter()
                .filter_map(|d| Some((st.futures.remove(&d.id)?, d)))
                .collect()
        };
        for (fut, d) in answered {
            let fut = fut.bind(py);
            if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                continue; // cancelled while the lookup ran
            }
            let value = match d.result {
                Ok(infos) => raw_answer(py, &infos)?,
                Err(_) => py.None().into_bound(py),
            };
            fut.call_method1(intern!(py, "set_result"), (value,))?;
        }
        Ok(())
    }
}

/// `[(family, type, proto, canonname, sockaddr), ...]` with plain ints, or None if an entry
/// has an address family Python would decode differently.
fn raw_answer<'py>(
    py: Python<'py>,
    infos: &[oxloop_core::sys::AddrInfo],
) -> PyResult<Bound<'py, PyAny>> {
    let list = PyList::empty(py);
    for ai in infos {
        let addr = match &ai.addr {
            SockAddr::V4(host, port) => (host.as_str(), *port).into_pyobject(py)?.into_any(),
            SockAddr::V6(host, port, flow, scope) => (host.as_str(), *port, *flow, *scope)
                .into_pyobject(py)?
                .into_any(),
            SockAddr::Other(_) => return Ok(py.None().into_bound(py)),
        };
        list.append((
            ai.family,
            ai.socktype,
            ai.protocol,
            ai.canonname.as_str(),
            addr,
        ))?;
    }
    Ok(list.into_any())
}

#[pymethods]
impl Resolver {
    #[new]
    fn new(py: Python<'_>, loop_: Bound<'_, PyLoop>) -> PyResult<Self> {
        let pool = Pool::new().map_err(|e| errors::os_error(py, &e))?;
        Ok(Self {
            st: GilCell::new(Inner {
                pool: Some(pool),
                loop_: Some(loop_.unbind()),
                futures: HashMap::new(),
                next_id: 0,
                watching: false,
            }),
        })
    }

    /// Starts `getaddrinfo(host, service, ...)` on a resolver thread; returns a future of the
    /// raw answer, or of None if the lookup failed. `host` and `service` are already encoded
    /// (bytes without NUL, or None), as `socket.getaddrinfo` encodes them.
    #[pyo3(signature = (host, service, family, socktype, protocol, flags))]
    fn submit(
        slf: &Bound<'_, Self>,
        host: Option<Vec<u8>>,
        service: Option<Vec<u8>>,
        family: i32,
        socktype: i32,
        protocol: i32,
        flags: i32,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let cstr = |b: Option<Vec<u8>>| -> PyResult<Option<CString>> {
            b.map(|b| {
                CString::new(b)
                    .map_err(|_| pyo3::exceptions::PyValueError::new_err("embedded null byte"))
            })
            .transpose()
        };
        let (host, service) = (cstr(host)?, cstr(service)?);
        let loop_ = match &slf.get().st.borrow(py).loop_ {
            Some(l) => l.clone_ref(py),
            None => return Err(errors::loop_closed()),
        };
        let future = loop_
            .bind(py)
            .call_method0(intern!(py, "create_future"))?
            .unbind();
        let (fd, watch) = {
            let mut st = slf.get().st.borrow_mut(py);
            let id = st.next_id;
            st.next_id += 1;
            let Some(pool) = st.pool.as_mut() else {
                return Err(errors::loop_closed());
            };
            pool.submit(Query {
                id,
                host,
                service,
                family,
                socktype,
                protocol,
                flags,
            })
            .map_err(|e| errors::os_error(py, &e))?;
            let fd = pool.fd();
            st.futures.insert(id, future.clone_ref(py));
            let watch = !st.watching;
            st.watching = true;
            (fd, watch)
        };
        if watch {
            let watcher = Watcher::Native(Arc::new(Dispatch {
                target: slf.clone().unbind(),
                context: None,
            }));
            if let Err(e) = loop_.get().watch(py, fd, Direction::Read, watcher) {
                slf.get().st.borrow_mut(py).watching = false;
                return Err(e);
            }
        }
        Ok(future)
    }

    /// Stops the resolver threads and closes the eventfd (the loop is closing).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let (pool, loop_, futures, watching) = {
            let mut st = self.st.borrow_mut(py);
            let futures: Vec<_> = st.futures.drain().map(|(_, f)| f).collect();
            (
                st.pool.take(),
                st.loop_.take(),
                futures,
                std::mem::take(&mut st.watching),
            )
        };
        if let (Some(pool), Some(loop_), true) = (&pool, &loop_, watching) {
            loop_.get().unwatch(py, pool.fd(), Direction::Read)?;
        }
        drop((pool, loop_, futures));
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(st) = self.st.try_borrow_in_gc() else {
            return Ok(());
        };
        if let Some(l) = &st.loop_ {
            visit.call(l)?;
        }
        for f in st.futures.values() {
            visit.call(f)?;
        }
        Ok(())
    }
}

/// `socket.AF_INET`, `socket.AF_INET6`, `socket.SOCK_STREAM`, `socket.SOCK_DGRAM`: the enum
/// members `socket.getaddrinfo` puts in its answers.
static ENUMS: PyOnceLock<[Py<PyAny>; 4]> = PyOnceLock::new();

/// An `int` (or a subclass: `bool`, `socket.AF_INET`...) as `i64`, the value
/// `socket.getaddrinfo` reads from it; `None` for anything else (a `float` it would refuse, an
/// `__index__` type) and for values out of range.
fn int_value(obj: &Bound<'_, PyAny>) -> Option<i64> {
    obj.cast::<PyInt>().ok()?.extract().ok()
}

/// `socket.getaddrinfo(host, port, family, type, proto, flags)`'s exact answer for an IP
/// literal, built in the loop thread without calling it; `None` when the answer is not known
/// this way (the caller then asks `getaddrinfo`).
///
/// Only the cases whose answer is fully determined: `int` arguments (anything else may be an
/// error `socket.getaddrinfo` must raise), no flags, an exact `int` port in 0-65535, one socket type
/// (stream or datagram, so one entry) with proto 0 or its own, and a host that is a canonical
/// IPv4 literal or an unscoped IPv6 literal of a family the call allows (see
/// [`oxloop_core::sys::parse_literal`]).
#[pyfunction]
#[pyo3(signature = (host, port, family, type_, proto, flags))]
pub fn literal_addrinfo<'py>(
    host: &Bound<'py, PyAny>,
    port: &Bound<'py, PyAny>,
    family: &Bound<'py, PyAny>,
    type_: &Bound<'py, PyAny>,
    proto: &Bound<'py, PyAny>,
    flags: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let py = host.py();
    let (Some(family), Some(socktype), Some(proto), Some(0)) = (
        int_value(family),
        int_value(type_),
        int_value(proto),
        int_value(flags),
    ) else {
        return Ok(None);
    };
    let want_proto = match socktype {
        x if x == i64::from(libc::SOCK_STREAM) => libc::IPPROTO_TCP,
        x if x == i64::from(libc::SOCK_DGRAM) => libc::IPPROTO_UDP,
        _ => return Ok(None),
    };
    if proto != 0 && proto != i64::from(want_proto) {
        return Ok(None);
    }
    // NOTE: an exact int: socket.getaddrinfo refuses a port of an int subclass ("Int or String
    // expected"), unlike the other arguments.
    let port = port
        .cast_exact::<PyInt>()
        .ok()
        .and_then(|p| p.extract::<u16>().ok());
    let Some(port) = port else {
        return Ok(None);
    };
    let Ok(host_str) = host.cast_exact::<PyString>() else {
        return Ok(None);
    };
    let Ok(text) = host_str.to_str() else {
        return Ok(None);
    };
    let Some(literal) = sys::parse_literal(text) else {
        return Ok(None);
    };
    let enums = ENUMS.get_or_try_init(py, || -> PyResult<_> {
        let socket = py.import("socket")?;
        let get = |name: &str| socket.getattr(name).map(Bound::unbind);
        Ok([
            get("AF_INET")?,
            get("AF_INET6")?,
            get("SOCK_STREAM")?,
            get("SOCK_DGRAM")?,
        ])
    })?;
    let kind = if want_proto == libc::IPPROTO_TCP {
        &enums[2]
    } else {
        &enums[3]
    };
    let (fam, addr) = match literal {
        sys::Literal::V4 if family == 0 || family == i64::from(libc::AF_INET) => {
            (&enums[0], (host, port).into_pyobject(py)?.into_any())
        }
        sys::Literal::V6(canonical) if family == 0 || family == i64::from(libc::AF_INET6) => (
            &enums[1],
            (canonical, port, 0, 0).into_pyobject(py)?.into_any(),
        ),
        _ => return Ok(None),
    };
    let entry = (fam.bind(py), kind.bind(py), want_proto, "", addr).into_pyobject(py)?;
    Ok(Some(PyList::new(py, [entry])?))
}
