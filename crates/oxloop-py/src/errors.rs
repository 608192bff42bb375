//! The one place that builds Python exceptions for the binding layer.
//!
//! OS errors become `OSError(errno, strerror)` so Python picks the subclass
//! (`ConnectionResetError`, ...) and sets `.errno`; PyO3's own `From<io::Error>` drops errno.

use std::io;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

/// `RuntimeError('Event loop is closed')`, as `BaseEventLoop._check_closed` raises it.
pub fn loop_closed() -> PyErr {
    PyRuntimeError::new_err("Event loop is closed")
}

/// asyncio's error for a non-thread-safe call from a foreign thread (debug mode).
pub fn wrong_thread() -> PyErr {
    PyRuntimeError::new_err(
        "Non-thread-safe operation invoked on an event loop other than the current one",
    )
}

/// `OSError(errno, strerror)` with the same strerror text `os.strerror` gives.
pub fn os_error(py: Python<'_>, err: &io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(errno) => {
            let strerror = py
                .import("os")
                .and_then(|os| os.call_method1("strerror", (errno,)))
                .and_then(|s| s.extract::<String>())
                .unwrap_or_else(|_| err.to_string());
            PyOSError::new_err((errno, strerror))
        }
        None => PyOSError::new_err(err.to_string()),
    }
}

/// The `TypeError` of `BaseEventLoop._check_callback` for a coroutine.
pub fn coroutine_callback(method: &str) -> PyErr {
    PyTypeError::new_err(format!("coroutines cannot be used with {method}()"))
}

/// The `TypeError` of `BaseEventLoop._check_callback` for a non-callable.
pub fn not_callable(method: &str, callback: &Bound<'_, PyAny>) -> PyErr {
    let r = callback.repr().map(|r| r.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!(
        "a callable object was expected by {method}(), got {r}"
    ))
}

/// `selectors._fileobj_to_fd`'s errors.
pub fn invalid_fileobj(obj: &Bound<'_, PyAny>) -> PyErr {
    let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
    PyValueError::new_err(format!("Invalid file object: {r}"))
}

/// `selectors._fileobj_to_fd`'s error for a negative number.
pub fn invalid_fd(fd: i64) -> PyErr {
    PyValueError::new_err(format!("Invalid file descriptor: {fd}"))
}

/// `BaseSelectorEventLoop._ensure_fd_no_transport`'s error.
pub fn fd_used_by_transport(fd: &Bound<'_, PyAny>, transport: &Bound<'_, PyAny>) -> PyErr {
    let fd = fd.repr().map(|r| r.to_string()).unwrap_or_default();
    let tr = transport.repr().map(|r| r.to_string()).unwrap_or_default();
    PyRuntimeError::new_err(format!("File descriptor {fd} is used by transport {tr}"))
}
