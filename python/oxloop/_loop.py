"""The Python half of ``oxloop.Loop``: oxloop's own cold-path glue over the Rust core.

The Rust base class (``oxloop._oxloop.Loop``) owns scheduling and I/O watching: ``call_soon``,
``call_later``, ``call_at``, ``call_soon_threadsafe``, ``time``, ``add_reader`` and friends,
``create_future`` and the tick itself. asyncio's own methods for the rest (tasks, exception
handlers, executors, async generators, connections, servers...) are borrowed from the running
Python (``_borrowed.py``, the one list of them). This module keeps what must be oxloop's:
``run_forever`` around the Rust tick, ``close``, debug mode, and signal handling.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import inspect
import logging
import os
import signal
import sys
import time
import warnings
import weakref
from asyncio import coroutines, events, tasks

from . import _monitor, _oxloop
from ._borrowed import AsyncioColdPath
from ._sock import SocketMethods
from ._streams import StreamsMixin
from ._subprocess import SubprocessMixin
from ._tls import TLSMixin

logger = logging.getLogger("asyncio")

# What asyncio's own checks call: the public name is deprecated from 3.14 on.
_iscoroutinefunction = getattr(coroutines, "_iscoroutinefunction", coroutines.iscoroutinefunction)


def _format_handle(handle):
    # Mirrors asyncio.base_events._format_handle; `handle` may also be what a native watcher
    # reports (a transport), which has no `_callback`.
    cb = getattr(handle, "_callback", None)
    if isinstance(getattr(cb, "__self__", None), tasks.Task):
        return repr(cb.__self__)
    return str(handle)


# Every open loop, for the hook below.
_open_loops = weakref.WeakSet()


def _track_escaped_handles(phase, info, _open_loops=_open_loops):
    # Pending handles are invisible to the garbage collector while only their loop holds them
    # (the loop reports their contents); one that user code holds too is handed back to the
    # collector before each full collection, so a cycle through it is found (see handles.rs).
    # NOTE: `_open_loops` is bound at import, as for close(): a collection can start while
    # interpreter shutdown clears this module's globals.
    if phase == "start" and info["generation"] == 2:
        for loop in list(_open_loops):
            loop._track_escaped()


gc.callbacks.append(_track_escaped_handles)


def _fast_create_task():
    # asyncio's create_task (borrowed) behind a Rust entry point that does its common case,
    # `tasks.Task(coro, loop=self)` with no task factory outside debug mode, without a Python
    # frame; every other call runs asyncio's function (see fastcall.rs).
    slow = AsyncioColdPath.create_task
    sig = str(inspect.signature(slow)).replace("(self", "($self", 1)
    return _oxloop.fast_create_task(slow, f"create_task{sig}\n--\n\n{slow.__doc__ or ''}")


class Loop(
    AsyncioColdPath,
    SocketMethods,
    TLSMixin,
    _oxloop.Loop,
    StreamsMixin,
    SubprocessMixin,
    asyncio.AbstractEventLoop,
):
    """An asyncio event loop whose scheduling and I/O run in Rust.

    Use it wherever asyncio takes a loop: ``oxloop.run(main())``,
    ``asyncio.Runner(loop_factory=oxloop.new_event_loop)``, or ``oxloop.install()``.
    """

    create_task = _fast_create_task()

    def __init__(self):
        # The private attributes asyncio's borrowed methods use, with BaseEventLoop's initial
        # values (see _borrowed.py).
        self._exception_handler = None
        self._current_handle = None
        self._task_factory = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        # Mirrors BaseEventLoop.slow_callback_duration: debug mode logs callbacks slower than this
        # (and monitoring mode, see the property).
        self._slow_callback_duration = 0.1
        # Mirrors BaseEventLoop._clock_resolution (asyncio's timers may fire this early; oxloop's
        # never fire early, but code reads the attribute).
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        # asyncio's selector loops expose their selector here; oxloop polls in Rust and has none.
        self._selector = None
        # Mirrors _UnixSelectorEventLoop._unix_server_sockets (3.13+): listening Unix socket ->
        # the inode of its file, unlinked by _stop_serving when cleanup_socket=True.
        self._unix_server_sockets = {}
        self._signal_handlers = {}
        # The signal self-pipe's read and write fds (asyncio's names for its socketpair), or None.
        self._ssock = self._csock = None
        # The wakeup fd set before ours (signal.set_wakeup_fd's answer), or -1: it still gets the
        # signal bytes while ours is installed, and is restored when our last handler goes.
        self._prev_wakeup_fd = -1
        # Running children by pid (oxloop._subprocess._Child), each with its own exit watch.
        self._children = {}
        # A subclass's own time() drives the scheduler, as asyncio's call_later/_run_once call
        # self.time(); assigning loop.time does the same (the Rust __setattr__ notices).
        if type(self).time is not _oxloop.Loop.time:
            self._time_override = True
        self.set_debug(coroutines._is_debug_mode())
        _open_loops.add(self)
        if _monitor.enabled_by_default():
            _monitor.enable(self)

    @property
    def slow_callback_duration(self):
        """Seconds a callback may hold the loop before debug or monitoring mode reports it."""
        return self._slow_callback_duration

    @slow_callback_duration.setter
    def slow_callback_duration(self, value):
        self._slow_callback_duration = value
        _monitor.set_threshold(self, value)

    # -- running and stopping ------------------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self.get_debug())
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            # A `_run_once` patched on the instance (asyncio's tests count ticks that way) is
            # called for each tick; otherwise the whole run stays in Rust.
            self._run(self.__dict__.get("_run_once"))
        finally:
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def close(self):
        """Close the loop: drop pending callbacks and shut the default executor down.

        The loop must not be running. This is idempotent and irreversible.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        self._close_now()

    def _close_now(
        self,
        _logger=logger,
        _is_finalizing=sys.is_finalizing,
        _warn=warnings.warn,
        _disable_monitor=_monitor.disable,
        _open_loops=_open_loops,
        _close_fd=os.close,
    ):
        # close() past its guards. NOTE: what it uses from this module's globals is bound at
        # import, as asyncio binds `warnings.warn` in BaseEventLoop.__del__: that __del__ calls
        # close() at interpreter exit for a loop still open (one left in asyncio's event loop
        # policy, or in a reference cycle), and it often runs after CPython's module teardown
        # has set the globals of oxloop's modules to None (modules are cleared in the reverse
        # order of their import: oxloop's before asyncio's, which hold the loop).
        if self.get_debug():
            _logger.debug("Close %r", self)
        if self._signal_handlers and not _is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            _warn(
                f"Closing the loop {self!r} on interpreter shutdown stage, skipping signal "
                "handlers removal",
                ResourceWarning,
                source=self,
            )
            self._signal_handlers.clear()
        self._close_children()
        _disable_monitor(self)
        self._close()
        _open_loops.discard(self)
        self._close_resolver()
        if self._ssock is not None:
            _close_fd(self._ssock)
            _close_fd(self._csock)
            self._ssock = self._csock = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- debug mode ----------------------------------------------------------------------------

    @property
    def _debug(self):
        # asyncio's methods read `self._debug`; the flag itself lives in the Rust loop.
        return self.get_debug()

    @_debug.setter
    def _debug(self, enabled):
        _oxloop.Loop.set_debug(self, enabled)

    def set_debug(self, enabled):
        """Set the debug mode flag; it takes effect for coroutines at once if running."""
        super().set_debug(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, bool(enabled))

    def _log_slow_callback(self, handle, seconds):
        # Called by the Rust tick in debug mode; mirrors the warning in BaseEventLoop._run_once.
        logger.warning("Executing %s took %.3f seconds", _format_handle(handle), seconds)

    # -- signals (mirrors asyncio.unix_events._UnixSelectorEventLoop) ---------------------------

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def _ensure_self_pipe(self):
        # Python's C-level signal handler writes the signal number to the wakeup fd; the loop
        # reads it here and runs the registered handler as a loop callback.
        if self._ssock is None:
            # NOTE: a pipe, not asyncio's socketpair: each one-byte write takes a whole buffer
            # (about 1 KiB) in a Unix socket, so a socketpair drops signals after ~280 pending
            # ones; a pipe packs them and holds 65,536. Reading them stays in Python: it is one
            # read(2) per wake-up and a Python handler call per signal either way.
            self._ssock, self._csock = os.pipe()
            os.set_blocking(self._ssock, False)
            os.set_blocking(self._csock, False)
            self.add_reader(self._ssock, self._read_from_self)

    def _read_from_self(self):
        while True:
            try:
                data = os.read(self._ssock, 4096)
                if not data:
                    break
            except InterruptedError:
                continue
            except BlockingIOError:
                break
            if self._prev_wakeup_fd != -1:
                # NOTE: Python keeps one wakeup fd; forwarding the bytes keeps the one the program
                # had set before working (it must be non-blocking, so this cannot block).
                try:
                    os.write(self._prev_wakeup_fd, data)
                except OSError:
                    pass
            for signum in data:
                if signum:
                    self._handle_signal(signum)

    def _handle_signal(self, sig):
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            # Mirrors _add_callback_signalsafe: the handle itself is what runs, so cancelling it
            # before its turn still stops it.
            self.call_soon(_run_signal_handle, handle)

    def add_signal_handler(self, sig, callback, *args):
        """Run ``callback(*args)`` as a loop callback when signal ``sig`` arrives.

        Main thread only; SIGKILL and SIGSTOP cannot be caught (RuntimeError).
        """
        if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        self._ensure_self_pipe()
        try:
            # Raises ValueError outside the main thread: a loop in another thread cannot
            # install signal handlers.
            prev = signal.set_wakeup_fd(self._csock)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        if prev != self._csock:
            self._prev_wakeup_fd = prev
        handle = events.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                self._release_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for signal ``sig``; return True if one was installed."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers:
            self._release_wakeup_fd()
        return True

    def _release_wakeup_fd(self):
        # asyncio sets -1 here; oxloop gives the slot back to whoever had it before, unless
        # someone else took it since (then it stays theirs).
        prev, self._prev_wakeup_fd = self._prev_wakeup_fd, -1
        try:
            current = signal.set_wakeup_fd(-1)
            if current != self._csock:
                signal.set_wakeup_fd(current)
            elif prev != -1:
                signal.set_wakeup_fd(prev)
        except (ValueError, OSError) as exc:
            logger.info("set_wakeup_fd(-1) failed: %s", exc)


def _sighandler_noop(signum, frame):
    """Dummy signal handler: the wakeup fd does the work."""


def _run_signal_handle(handle):
    if not handle._cancelled:
        handle._run()
