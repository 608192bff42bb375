"""oxloop: asyncio's event loop, reimplemented in Rust.

Entry points::

    oxloop.run(main())                                  # like asyncio.run, on oxloop
    with asyncio.Runner(loop_factory=oxloop.new_event_loop) as runner: ...
    asyncio.run(main(), loop_factory=oxloop.new_event_loop)   # 3.12+
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


def _free_threaded() -> bool:
    """True on a free-threaded CPython build (3.13t and later), with or without its GIL."""
    if not hasattr(sys, "_is_gil_enabled"):
        return False  # before 3.13: no free-threaded builds
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


if _free_threaded():
    # oxloop's Rust core relies on the GIL to serialise the loop's state with Python code.
    raise ImportError(
        "oxloop does not support free-threaded Python yet (this is a free-threaded "
        "CPython build); use a standard CPython build, or asyncio's own loop"
    )

from . import _monitor, _oxloop  # noqa: E402 - after the free-threading check
from ._loop import Loop  # noqa: E402
from ._monitor import SlowEvent, Stats, TaskTime, stats  # noqa: E402

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
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)


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
    set_policy = asyncio.set_event_loop_policy
    if sys.version_info >= (3, 14):
        # Mirrors asyncio.set_event_loop_policy of 3.14, pointing at the caller of install().
        warnings.warn(
            "'oxloop.install' is deprecated and slated for removal in Python 3.16 (as "
            "asyncio's policies are); use oxloop.run() or "
            "asyncio.Runner(loop_factory=oxloop.new_event_loop)",
            DeprecationWarning,
            stacklevel=2,
        )
        # The warning is ours: set the policy without asyncio's own.
        set_policy = getattr(asyncio.events, "_set_event_loop_policy", set_policy)
    set_policy(EventLoopPolicy())
