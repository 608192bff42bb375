"""asyncio's cold path, borrowed from the running Python: the one list of it.

oxloop owns what runs per event (the tick, timers, the reactor, transports, ``sock_*``, name
resolution) and the hooks asyncio's loop methods are written against (``_make_*_transport``,
``_start_serving`` / ``_stop_serving``, ``_sendfile_native``, signal handling, child watching).
Everything else that runs once per connection, server, task or loop is asyncio's own function,
taken at import time from the running Python's ``asyncio`` modules and set on ``oxloop.Loop``.
Each Python release's arguments, checks, error texts and behaviour (``all_errors=``,
``keep_alive=``, ``cleanup_socket=``, happy eyeballs, the task factory's arguments, which
context an exception handler runs in...) therefore come with it, and blocking-call detectors
that allow a call only from asyncio's own files (blockbuster) see asyncio's files.

A function is borrowed only where it goes through the loop's public methods, the hooks above and
the private attributes ``Loop.__init__`` provides. Checked against ``Lib/asyncio`` of 3.11, 3.12,
3.13 (installed here, and run) and, by reading, of 3.14.5: every name below still exists there, at
the same level, and still calls only what oxloop provides. What 3.14 changed in them:
``create_task`` takes ``**kwargs`` (``eager_start=``...), handed to the task factory or ``Task``;
``_sock_sendfile_native_impl`` calls ``_sock_sendfile_update_filepos(fileno, offset)`` with two
arguments (both borrowed, so they change together); ``_accept_connection`` takes ``backlog + 1``
connections and goes on after ``ConnectionAbortedError``; ``_connect_sock``, ``create_connection``,
``start_tls``, ``_sendfile_fallback`` and ``_sock_sendfile_fallback`` changed inside, through the
same loop methods. The private state they touch:

- ``_task_factory``, ``_exception_handler``, ``_current_handle`` (set by the Rust tick in debug
  mode to the running Handle or TimerHandle; None while a transport's I/O runs, since
  ``default_exception_handler`` reads its ``_source_traceback``), ``_default_executor``,
  ``_executor_shutdown_called``, ``_asyncgens``, ``_asyncgens_shutdown_called``,
  ``_coroutine_origin_tracking_enabled`` / ``_saved_depth``, ``slow_callback_duration``,
  ``_unix_server_sockets`` (3.13+): plain attributes set in ``Loop.__init__``, with asyncio's
  initial values;
- ``_debug``: a property over the Rust loop's debug flag;
- ``_check_closed``: oxloop's own (the closed flag lives in Rust).

Never borrowed: anything touching ``_ready``, ``_scheduled``, ``_selector``, ``_transports``,
``_ssock`` / ``_csock`` or the child watchers (``run_forever``, ``close``, ``call_*``,
``_run_once``, ``add_reader`` and friends, the signal methods, ``_make_subprocess_transport``,
``selector_events._sendfile_native``).

``oxloop.Loop`` lists ``AsyncioColdPath`` first among its bases, so these are what the loop runs;
only ``Loop``'s own body may wrap one (``create_task`` counts tasks for ``oxloop.stats``, then
calls asyncio's through ``super()``).

A borrowed function that calls zero-argument ``super()`` (3.13's ``_stop_serving`` of the Unix
loop) gets ``AsyncioColdPath`` as its ``__class__``, so ``super()`` continues in ``oxloop.Loop``'s
MRO: to oxloop's own hook of the same name, the one asyncio's base class would have provided.
"""

from __future__ import annotations

import types
from asyncio import unix_events

# The running Python's Unix selector loop: looking a name up on it finds the function at the
# level asyncio defines it for this version (base_events, selector_events or unix_events).
_ASYNCIO_LOOP = unix_events._UnixSelectorEventLoop

#: What ``oxloop.Loop`` takes from asyncio, by name, with why it is safe to take.
BORROWED = {
    # -- running and tasks (BaseEventLoop) --------------------------------------------------------
    "__repr__": "public getters only",
    "__del__": "is_closed / is_running / close",
    "_check_running": "is_running and asyncio's running-loop slot",
    "run_until_complete": "ensure_future, add_done_callback, run_forever (oxloop's)",
    "create_task": "_task_factory; the running Python decides what a task factory is passed",
    "set_task_factory": "_task_factory",
    "get_task_factory": "_task_factory",
    "_set_coroutine_origin_tracking": "the two _coroutine_origin_tracking_* attributes",
    # -- async generators -------------------------------------------------------------------------
    "_asyncgen_firstiter_hook": "_asyncgens, _asyncgens_shutdown_called",
    "_asyncgen_finalizer_hook": "_asyncgens, call_soon_threadsafe, create_task",
    "shutdown_asyncgens": "_asyncgens, call_exception_handler",
    # -- executors --------------------------------------------------------------------------------
    "_check_callback": "no state",
    "_check_default_executor": "_executor_shutdown_called",
    "run_in_executor": "_debug, _default_executor, wrap_future",
    "set_default_executor": "_default_executor",
    "shutdown_default_executor": "_default_executor, a thread, call_soon_threadsafe",
    "_do_shutdown": "_default_executor, call_soon_threadsafe",
    # -- errors -----------------------------------------------------------------------------------
    "get_exception_handler": "_exception_handler",
    "set_exception_handler": "_exception_handler",
    "default_exception_handler": "_current_handle (set by the tick in debug mode), logging",
    "call_exception_handler": "_exception_handler; the handle's or task's get_context() (3.12+)",
    # -- name resolution --------------------------------------------------------------------------
    "_ensure_resolved": "oxloop's getaddrinfo for names; numeric hosts need no lookup",
    "_getaddrinfo_debug": "time, slow_callback_duration (oxloop's getaddrinfo calls it)",
    # -- connections and servers ------------------------------------------------------------------
    "_connect_sock": "sock_connect",
    "create_connection": "_ensure_resolved, _connect_sock, staggered_race, the transport hooks",
    "_create_connection_transport": "create_future, _make_socket/_make_ssl_transport",
    "connect_accepted_socket": "_create_connection_transport",
    "_create_server_getaddrinfo": "_ensure_resolved",
    "create_server": "Server, whose only loop calls are _start_serving/_stop_serving hooks",
    "_accept_connection": "_start_serving / _remove_reader, call_later, create_task",
    "_accept_connection2": "create_future, the transport hooks, call_exception_handler",
    "start_tls": "sslproto.SSLProtocol over the transport's public methods, call_soon",
    # -- Unix sockets (unix_events) ---------------------------------------------------------------
    "create_unix_connection": "sock_connect, _create_connection_transport",
    "create_unix_server": "Server; _unix_server_sockets (3.13+, read by _stop_serving)",
    "_stop_serving": "3.13+: unlinks the socket file, then super() = oxloop's _stop_serving; "
    "before 3.13: the selector loop's _remove_reader + close",
    # -- datagrams and pipes ----------------------------------------------------------------------
    "create_datagram_endpoint": "_ensure_resolved, sock_connect, _make_datagram_transport",
    "connect_read_pipe": "create_future, _make_read_pipe_transport",
    "connect_write_pipe": "create_future, _make_write_pipe_transport",
    # -- sendfile ---------------------------------------------------------------------------------
    "sendfile": "the transport's _sendfile_compatible, oxloop's _sendfile_native",
    "_sendfile_fallback": "run_in_executor, _SendfileFallbackProtocol over the transport",
    "sock_sendfile": "_check_sendfile_params, _sock_sendfile_native, _sock_sendfile_fallback",
    "_check_sendfile_params": "no state",
    "_sock_sendfile_native": "os.sendfile through add_writer / remove_writer (public)",
    "_sock_sendfile_native_impl": "add_writer / remove_writer, the future",
    "_sock_sendfile_update_filepos": "no state",
    "_sock_add_cancellation_callback": "remove_writer",
    "_sock_sendfile_fallback": "run_in_executor, sock_sendall",
    # -- subprocesses -----------------------------------------------------------------------------
    "subprocess_exec": "_debug, _log_subprocess, oxloop's _make_subprocess_transport",
    "subprocess_shell": "_debug, _log_subprocess, oxloop's _make_subprocess_transport",
    "_log_subprocess": "logging only",
}


def _borrow(name, owner):
    func = getattr(_ASYNCIO_LOOP, name)
    code = func.__code__
    if "__class__" not in code.co_freevars:
        return func
    # Zero-argument super(): the same code, with `owner` in its `__class__` cell.
    cells = tuple(
        types.CellType(owner) if var == "__class__" else cell
        for var, cell in zip(code.co_freevars, func.__closure__, strict=True)
    )
    new = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__, cells)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__doc__ = func.__doc__
    new.__dict__.update(func.__dict__)
    return new


class AsyncioColdPath:
    """The methods of ``oxloop.Loop`` that are asyncio's own (see ``BORROWED``)."""

    __slots__ = ()


for _name in BORROWED:
    setattr(AsyncioColdPath, _name, _borrow(_name, AsyncioColdPath))
del _name
