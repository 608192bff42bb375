"""The Python half of ``oxloop.Loop``: asyncio's cold-path glue over the Rust core.

The Rust base class (``oxloop._oxloop.Loop``) owns scheduling and I/O watching: ``call_soon``,
``call_later``, ``call_at``, ``call_soon_threadsafe``, ``time``, ``add_reader`` and friends,
``create_future`` and the tick itself. This module adds what asyncio's ``BaseEventLoop`` does around
them (``run_forever`` set-up, ``run_until_complete``, tasks, exception handlers, debug mode, async
generator hooks, executors), mirroring CPython's ``asyncio/base_events.py`` for the running version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import signal
import sys
import threading
import time
import warnings
from asyncio import coroutines, events, futures, tasks

from . import _monitor, _oxloop
from ._sock import SocketMethods
from ._streams import StreamsMixin
from ._subprocess import SubprocessMixin
from ._tls import TLSMixin

logger = logging.getLogger("asyncio")

_PY312 = sys.version_info >= (3, 12)
_PY313 = sys.version_info >= (3, 13)

# Mirrors asyncio.constants.DEBUG_STACK_DEPTH.
_DEBUG_STACK_DEPTH = 10


def _run_until_complete_cb(fut):
    # Mirrors asyncio.base_events._run_until_complete_cb.
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return
    futures._get_loop(fut).stop()


def _format_handle(handle):
    # Mirrors asyncio.base_events._format_handle.
    cb = getattr(handle, "_callback", None)
    if isinstance(getattr(cb, "__self__", None), tasks.Task):
        return repr(cb.__self__)
    return str(handle)


class Loop(
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

    def __init__(self):
        self._exception_handler = None
        self._current_handle = None
        self._task_factory = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = set()
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
        self._signal_handlers = {}
        # The signal self-pipe's read and write fds (asyncio's names for its socketpair), or None.
        self._ssock = self._csock = None
        # The wakeup fd set before ours (signal.set_wakeup_fd's answer), or -1: it still gets the
        # signal bytes while ours is installed, and is restored when our last handler goes.
        self._prev_wakeup_fd = -1
        # Running children by pid (oxloop._subprocess._Child), each with its own exit watch.
        self._children = {}
        self.set_debug(coroutines._is_debug_mode())
        # Tasks made by create_task (oxloop.stats).
        self._tasks_created = 0
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

    def __repr__(self):
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # -- running and stopping ------------------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

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

    def run_until_complete(self, future):
        """Run until the Future is done; a coroutine is wrapped in a Task.

        Return the Future's result, or raise its exception.
        """
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception is raised if the future didn't complete, so there is no need to log
            # the "destroy pending task" message.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised a BaseException; consume it so it is not logged.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def close(self):
        """Close the loop: drop pending callbacks and shut the default executor down.

        The loop must not be running. This is idempotent and irreversible.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        if self._signal_handlers and not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            warnings.warn(
                f"Closing the loop {self!r} on interpreter shutdown stage, skipping signal "
                "handlers removal",
                ResourceWarning,
                source=self,
            )
            self._signal_handlers.clear()
        self._close_children()
        _monitor.disable(self)
        self._close()
        self._close_resolver()
        if self._ssock is not None:
            os.close(self._ssock)
            os.close(self._csock)
            self._ssock = self._csock = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- tasks ---------------------------------------------------------------------------------

    if _PY312:

        def create_task(self, coro, *, name=None, context=None, **kwargs):
            """Schedule a coroutine object; return a Task."""
            self._check_closed()
            if self._task_factory is not None:
                self._tasks_created += 1
                if context is not None:
                    kwargs["context"] = context
                if _PY313:
                    task = self._task_factory(self, coro, name=name, **kwargs)
                else:
                    task = self._task_factory(self, coro, **kwargs)
                    tasks._set_task_name(task, name)
                return task
            self._tasks_created += 1
            task = tasks.Task(coro, loop=self, name=name, context=context, **kwargs)
            if task._source_traceback:
                del task._source_traceback[-1]
            try:
                return task
            finally:
                # Break the cycle task -> frame -> task if the task failed eagerly.
                del task

    else:

        def create_task(self, coro, *, name=None, context=None):
            """Schedule a coroutine object; return a Task."""
            self._check_closed()
            self._tasks_created += 1
            if self._task_factory is None:
                task = tasks.Task(coro, loop=self, name=name, context=context)
                if task._source_traceback:
                    del task._source_traceback[-1]
            else:
                if context is None:
                    task = self._task_factory(self, coro)
                else:
                    task = self._task_factory(self, coro, context=context)
                tasks._set_task_name(task, name)
            return task

    def set_task_factory(self, factory):
        """Set a task factory used by create_task(); None restores the default."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self):
        """Return the task factory, or None if the default one is in use."""
        return self._task_factory

    # -- debug mode ----------------------------------------------------------------------------

    def set_debug(self, enabled):
        """Set the debug mode flag; it takes effect for coroutines at once if running."""
        super().set_debug(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, bool(enabled))

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    def _log_slow_callback(self, handle, seconds):
        # Called by the Rust tick in debug mode; mirrors the warning in BaseEventLoop._run_once.
        logger.warning("Executing %s took %.3f seconds", _format_handle(handle), seconds)

    # -- exception handling --------------------------------------------------------------------

    def get_exception_handler(self):
        """Return the exception handler, or None if the default one is in use."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set handler(loop, context) as the loop's exception handler; None restores the default."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the error in ``context`` with asyncio's format."""
        message = context.get("message")
        if not message:
            message = "Unhandled exception in event loop"
        exception = context.get("exception")
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        if "source_traceback" not in context and getattr(
            self._current_handle, "_source_traceback", None
        ):
            context["handle_traceback"] = self._current_handle._source_traceback
        import traceback

        log_lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n" + tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n" + tb.rstrip()
            else:
                value = repr(value)
            log_lines.append(f"{key}: {value}")
        logger.error("\n".join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Call the loop's exception handler with ``context`` (keys: message, exception, future,
        task, handle, protocol, transport, socket, asyncgen, ...)."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an unexpected "
                    "error in custom exception handler",
                    exc_info=True,
                )

    # -- async generators ----------------------------------------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Shutdown all active asynchronous generators."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing_agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[ag.aclose() for ag in closing_agens], return_exceptions=True)
        for result, agen in zip(results, closing_agens):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    # -- executors -----------------------------------------------------------------------------

    def _check_default_executor(self):
        if self._executor_shutdown_called:
            raise RuntimeError("Executor shutdown has been called")

    def run_in_executor(self, executor, func, *args):
        """Run ``func(*args)`` in ``executor`` (default thread pool if None); return a Future."""
        self._check_closed()
        if self.get_debug():
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            self._check_default_executor()
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def _check_callback(self, callback, method):
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")

    def set_default_executor(self, executor):
        """Set the executor run_in_executor(None, ...) uses; it must be a ThreadPoolExecutor."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    if sys.version_info >= (3, 12):

        async def shutdown_default_executor(self, timeout=None):
            """Schedule the shutdown of the default executor.

            ``timeout`` bounds the wait for the executor's threads to join; past it a
            RuntimeWarning is emitted and the executor is left to finish on its own.
            """
            self._executor_shutdown_called = True
            if self._default_executor is None:
                return
            future = self.create_future()
            thread = threading.Thread(target=self._do_shutdown, args=(future,))
            thread.start()
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                warnings.warn(
                    f"The executor did not finishing joining its threads within {timeout} seconds.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._default_executor.shutdown(wait=False)
            else:
                thread.join()

    else:

        async def shutdown_default_executor(self):
            """Schedule the shutdown of the default executor."""
            self._executor_shutdown_called = True
            if self._default_executor is None:
                return
            future = self.create_future()
            thread = threading.Thread(target=self._do_shutdown, args=(future,))
            thread.start()
            try:
                await future
            finally:
                thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(futures._set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

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
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
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
