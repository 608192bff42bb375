"""Graceful stop on SIGTERM: ``oxloop.run(main(), graceful_shutdown=30)``.

Process managers and containers stop a program with SIGTERM; asyncio.run leaves it to kill the
process. With this opt-in, SIGTERM cancels the main task as Ctrl-C does under asyncio.Runner,
then, within ``timeout`` seconds of the signal, the remaining tasks are cancelled and awaited,
open transports are closed after flushing what they buffered, and the default executor finishes
its jobs. The exit status says what happened:

- ``0``: stopped by SIGTERM, everything finished in time (``SystemExit(0)``);
- ``124``: the timeout cut the stop short (as ``timeout(1)`` reports);
- ``143``: a second SIGTERM asked to stop at once (128 + SIGTERM, as a shell reports a kill).

Threads of the executor that are still running past the timeout are not interrupted (Python
cannot); the interpreter waits for them at exit, as it always does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time

from . import _oxloop

logger = logging.getLogger("oxloop")

EXIT_TIMEOUT = 124
EXIT_FORCED = 128 + signal.SIGTERM


class _Stop:
    def __init__(self, loop, main, timeout):
        self.loop = loop
        self.main = main
        self.timeout = timeout
        self.deadline = None
        self.status = None  # None until SIGTERM; then 0, or why not

    def on_sigterm(self):
        if self.deadline is not None:
            logger.warning("second SIGTERM: stopping now")
            self.status = EXIT_FORCED
            self.loop.stop()
            return
        self.deadline = time.monotonic() + self.timeout
        self.status = 0
        self.loop.call_later(self.timeout, self.on_timeout)
        for task in asyncio.all_tasks(self.loop):
            if task.get_coro() is self.main:
                task.cancel()

    def on_timeout(self):
        if self.status == 0:
            logger.warning("graceful shutdown timed out after %s s", self.timeout)
            self.status = EXIT_TIMEOUT
            self.loop.stop()

    def remaining(self):
        return max(self.deadline - time.monotonic(), 0.0)

    async def drain(self):
        loop = self.loop
        # The other tasks, as asyncio.run cancels them, but within the timeout.
        others = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
        for t in others:
            t.cancel()
        if others:
            await asyncio.wait(others, timeout=self.remaining())
        # Transports: close() writes what is buffered before closing.
        transports = [t for t in _oxloop.loop_transports(loop) if not t.is_closing()]
        for t in transports:
            t.close()
        while self.remaining() > 0 and any(
            t.get_write_buffer_size() for t in _oxloop.loop_transports(loop)
        ):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # connection_lost callbacks
        # The default executor's jobs.
        executor = loop._default_executor
        if executor is not None:
            done = loop.create_future()

            def join():
                executor.shutdown(wait=True)
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

            threading.Thread(target=join, name="oxloop-executor-drain", daemon=True).start()
            try:
                await asyncio.wait_for(done, self.remaining())
            except asyncio.TimeoutError:
                pass
            else:
                loop._default_executor = None
        pending = any(not t.done() for t in others) or any(
            t.get_write_buffer_size() for t in _oxloop.loop_transports(loop)
        )
        if pending or loop._default_executor is not None:
            if loop._default_executor is not None:
                # Do not let asyncio's shutdown wait again without a bound.
                loop._default_executor.shutdown(wait=False)
                loop._default_executor = None
            logger.warning("graceful shutdown timed out after %s s", self.timeout)
            self.status = EXIT_TIMEOUT


def run_graceful(main, *, debug, loop_factory, timeout):
    """``oxloop.run`` with a SIGTERM handler that stops gracefully (see the module docs)."""
    runner = asyncio.Runner(debug=debug, loop_factory=loop_factory)
    loop = runner.get_loop()
    stop = _Stop(loop, main, timeout)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        loop.add_signal_handler(signal.SIGTERM, stop.on_sigterm)
    try:
        try:
            result = runner.run(main)
        except asyncio.CancelledError:
            if stop.status is None:
                raise
            result = None
        except RuntimeError as exc:
            # loop.stop() by the timeout or a second SIGTERM, main still running.
            if stop.status in (None, 0) or "stopped before Future" not in str(exc):
                raise
            result = None
        if stop.status is None:
            return result
        if stop.status == 0:
            try:
                runner.run(stop.drain())
            except RuntimeError:
                if stop.status == 0:
                    raise
    finally:
        if in_main_thread and not loop.is_closed():
            loop.remove_signal_handler(signal.SIGTERM)
        if stop.status in (None, 0):
            runner.close()
        else:
            _abandon(loop)
    sys.stdout.flush()
    raise SystemExit(stop.status)


def _abandon(loop):
    # Past the timeout: what is left is cancelled once and the loop closed without waiting for
    # it (asyncio.Runner.close would wait for every task, without a bound).
    for task in asyncio.all_tasks(loop):
        task.cancel()
        task._log_destroy_pending = False
    if loop._default_executor is not None:
        loop._default_executor.shutdown(wait=False)
        loop._default_executor = None
    loop.close()
