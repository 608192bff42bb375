//! asyncio transports over the Rust reactor.
//!
//! A transport owns one fd (through the Python socket object that holds it) and is dispatched
//! straight from the tick through [`crate::event_loop::NativeWatcher`]: a readable fd runs one
//! `recv` and one protocol call, a writable fd one vectored send of the write buffer, with no
//! Python `Handle` in between. [`stream`] holds the socket stream transport (TCP and Unix).
//!
//! `isinstance(transport, asyncio.Transport)` must hold, but `asyncio.BaseTransport` declares
//! `__slots__ = ('_extra',)`, so no extension type can share a Python subclass with it (an
//! instance lay-out conflict). The transport's `__class__` therefore names a Python subclass of
//! `asyncio.Transport` (asyncio's `_FlowControlMixin`) built once here ([`AsyncioNames::transport_class`]); `isinstance` consults
//! `__class__` after the real type, as it does for `unittest.mock` specs.

pub mod stream;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

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
    /// The class a stream transport reports as its `__class__`: a subclass of
    /// `asyncio.Transport` (through `_FlowControlMixin`) named `_SelectorSocketTransport` like
    /// asyncio's own.
    pub transport_class: Py<PyAny>,
}

static NAMES: PyOnceLock<AsyncioNames> = PyOnceLock::new();

/// The cached asyncio objects.
pub fn names(py: Python<'_>) -> PyResult<&AsyncioNames> {
    NAMES.get_or_try_init(py, || {
        let asyncio = py.import("asyncio")?;
        // asyncio's socket transports are `_FlowControlMixin`s; `loop.sendfile`'s fallback
        // checks for it.
        let base = py.import("asyncio.transports")?.getattr("_FlowControlMixin")?;
        let ns = PyDict::new(py);
        ns.set_item("__slots__", PyTuple::empty(py))?;
        ns.set_item("__module__", "oxloop._oxloop")?;
        ns.set_item(
            "__doc__",
            "What an oxloop socket transport reports as its __class__ (see oxloop._oxloop).",
        )?;
        let transport_class = py
            .get_type::<pyo3::types::PyType>()
            .call1(("_SelectorSocketTransport", (base,), ns))?;
        Ok::<_, PyErr>(AsyncioNames {
            transport_socket: py.import("asyncio.trsock")?.getattr("TransportSocket")?.unbind(),
            set_nodelay: py.import("asyncio.base_events")?.getattr("_set_nodelay")?.unbind(),
            set_result_unless_cancelled: py
                .import("asyncio.futures")?
                .getattr("_set_result_unless_cancelled")?
                .unbind(),
            buffered_protocol: asyncio.getattr("BufferedProtocol")?.unbind(),
            logger: py.import("logging")?.call_method1("getLogger", ("asyncio",))?.unbind(),
            sendfile_try_native: py
                .import("asyncio.constants")?
                .getattr("_SendfileMode")?
                .getattr("TRY_NATIVE")?
                .unbind(),
            transport_class: transport_class.unbind(),
        })
    })
}
