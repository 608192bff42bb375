//! `oxloop._oxloop`: asyncio's event loop API over oxloop-core.
//!
//! Layout: [`event_loop`] holds the `Loop` class and its public methods (guards, then a core call);
//! [`run_once`] is one tick; [`handles`] the `Handle`/`TimerHandle` objects; [`errors`] the only
//! place that builds Python exceptions; [`gil`] the GIL-protected cell the loop state lives in; [`transports`] the asyncio
//! transports the reactor dispatches to directly.
//! The Python package `oxloop` subclasses `Loop` with asyncio's `AbstractEventLoop` and adds the
//! cold, Python-level glue (exception handler, executors, async generator hooks).

#[cfg(Py_GIL_DISABLED)]
compile_error!("oxloop relies on the GIL to serialise access to the loop state; free-threaded builds are not supported yet");

mod dns;
mod errors;
mod event_loop;
mod fastcall;
mod ffi;
mod gil;
mod handles;
mod monitor;
mod run_once;
mod serve;
mod sock;
mod transports;

use pyo3::prelude::*;

/// The extension module.
///
/// NOTE: `gil_used = true` sets the `Py_mod_gil` slot to `Py_MOD_GIL_USED` (PyO3's default says
/// the opposite): oxloop's state is serialised by the GIL (`gil.rs`), so a free-threaded
/// interpreter that loaded it would have to turn its GIL back on. Standard builds ignore the slot;
/// free-threaded builds are refused above and in `oxloop/__init__.py` until that is tested.
#[pymodule(gil_used = true)]
fn _oxloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<event_loop::PyLoop>()?;
    fastcall::install(m.py())?;
    m.add_function(wrap_pyfunction!(fastcall::fast_create_task, m)?)?;
    m.add_class::<handles::Handle>()?;
    m.add_class::<handles::TimerHandle>()?;
    event_loop::import_asyncio(m.py())?;
    handles::import_helpers(m.py())?;
    m.add_class::<dns::Resolver>()?;
    m.add_function(wrap_pyfunction!(dns::literal_addrinfo, m)?)?;
    sock::register(m)?;
    m.add_class::<serve::Acceptor>()?;
    m.add_function(wrap_pyfunction!(serve::serve, m)?)?;
    monitor::register(m)?;
    m.add_class::<transports::udp::DatagramCore>()?;
    m.add_class::<transports::stream::SocketTransport>()?;
    m.add_function(wrap_pyfunction!(
        transports::stream::make_socket_transport,
        m
    )?)?;
    m.add_class::<transports::pipe::PipeTransport>()?;
    m.add_class::<transports::pipe::ReadPipeTransport>()?;
    m.add_class::<transports::pipe::WritePipeTransport>()?;
    m.add_function(wrap_pyfunction!(
        transports::pipe::make_read_pipe_transport,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(
        transports::pipe::make_write_pipe_transport,
        m
    )?)?;
    transports::install_finalizers(m.py());
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
