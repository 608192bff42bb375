"""oxloop: asyncio's event loop, reimplemented in Rust.

Entry points::

    oxloop.run(main())                                  # like asyncio.run, on oxloop
    with asyncio.Runner(loop_factory=oxloop.new_event_loop) as runner: ...
    oxloop.install()                                    # policy-based code (deprecated from 3.14)
    python -m oxloop app.py                             # any asyncio program, unchanged
    python -m oxloop --monitor app.py                   # ... with monitoring mode on
    python -m oxloop top [PID]                          # live view of a monitored program
    oxloop.stats()                                      # what the running loop has been doing
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from asyncio import unix_events as _unix_events

from . import _monitor, _oxloop
from ._loop import Loop
from ._monitor import SlowEvent, Stats, TaskTime, stats

__all__ = (
    "Loop",
    "new_event_loop",
    "run",
    "EventLoopPolicy",
    "install",
    "stats",
    "Stats",
    "TaskTime",
    "SlowEvent",
)
__version__ = _oxloop.__version__


def new_event_loop() -> Loop:
    """Return a new oxloop event loop."""
    return Loop()


def run(main, *, debug=None, monitor=None, graceful_shutdown=None):
    """Run the coroutine ``main`` on a new oxloop loop and return its result.

    Same semantics as ``asyncio.run``: the loop is created and closed here, remaining tasks are
    cancelled, async generators and the default executor are shut down, and Ctrl-C cancels the
    main task (as ``asyncio.Runner`` does).

    ``monitor=True`` turns monitoring mode on for the loop (``None``: as ``OXLOOP_MONITOR``
    says): loop lag, busy time and time per task in ``oxloop.stats()``, slow and blocking code
    logged with its task and line, the live view of ``python -m oxloop top``.

    ``graceful_shutdown`` (seconds, or ``True`` for 30): SIGTERM then cancels the main task as
    Ctrl-C does; open transports get to flush their buffers and the default executor to finish,
    all within that many seconds of the signal; then ``SystemExit(0)`` is raised if everything
    finished in time, ``SystemExit(124)`` if the timeout cut it short. A second SIGTERM stops at
    once (``SystemExit(143)``). Off by default: SIGTERM then does what it does under asyncio.run.
    """
    if asyncio.events._get_running_loop() is not None:
        # Mirrors asyncio.run: refuse before creating (and then closing) a loop.
        raise RuntimeError("oxloop.run() cannot be called from a running event loop")
    factory = new_event_loop
    if monitor is not None:

        def factory():
            loop = new_event_loop()
            if monitor:
                _monitor.enable(loop)
            else:
                _monitor.disable(loop)
            return loop

    if graceful_shutdown is not None and graceful_shutdown is not False:
        from ._shutdown import run_graceful

        timeout = 30.0 if graceful_shutdown is True else float(graceful_shutdown)
        return run_graceful(main, debug=debug, loop_factory=factory, timeout=timeout)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    return _run_legacy(main, debug=debug)


def _run_legacy(main, *, debug=None):
    # Python 3.9 and 3.10 have no asyncio.Runner: mirror that version's asyncio.run.
    from asyncio import coroutines, events, tasks

    if not coroutines.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            to_cancel = tasks.all_tasks(loop)
            for task in to_cancel:
                task.cancel()
            if to_cancel:
                loop.run_until_complete(tasks.gather(*to_cancel, return_exceptions=True))
                for task in to_cancel:
                    if task.cancelled():
                        continue
                    if task.exception() is not None:
                        loop.call_exception_handler(
                            {
                                "message": "unhandled exception during asyncio.run() shutdown",
                                "exception": task.exception(),
                                "task": task,
                            }
                        )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()


# The running Python's own default policy: everything but the loop class stays asyncio's
# (on 3.11, get_event_loop() in the main thread still creates a loop; child watchers as usual).
_DefaultPolicy = getattr(_unix_events, "_UnixDefaultEventLoopPolicy", None) or getattr(
    _unix_events, "_DefaultEventLoopPolicy"
)


class EventLoopPolicy(_DefaultPolicy):
    """asyncio's default event loop policy, making oxloop loops.

    Policies are deprecated from Python 3.14; prefer ``oxloop.run()`` or
    ``asyncio.Runner(loop_factory=oxloop.new_event_loop)``.
    """

    _loop_factory = Loop

    def __repr__(self):
        return f"<{self.__class__.__module__}.{self.__class__.__name__}>"


def install() -> None:
    """Make oxloop the loop of ``asyncio.new_event_loop()`` and ``asyncio.run()`` via the policy.

    Deprecated from Python 3.14, as asyncio's policies are.
    """
    if sys.version_info >= (3, 14):
        warnings.warn(
            "oxloop.install() is deprecated from Python 3.14 (asyncio policies are); "
            "use oxloop.run() or asyncio.Runner(loop_factory=oxloop.new_event_loop)",
            DeprecationWarning,
            stacklevel=2,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(EventLoopPolicy())
        return
    asyncio.set_event_loop_policy(EventLoopPolicy())
