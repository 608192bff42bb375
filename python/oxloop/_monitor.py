"""Loop statistics and monitoring mode (``oxloop.stats``, ``monitor=True``, ``OXLOOP_MONITOR=1``).

The Rust loop keeps integer counters per tick at all times. With monitoring on it also records
loop lag, and a watchdog thread (Rust) samples every ``SAMPLE_PERIOD`` seconds, without taking
the GIL, which callback runs or whether the loop waits in the poller. The
:class:`Monitor` below is its Python side: it charges samples to tasks, captures the loop
thread's stack while the loop is held, and logs slow events through the ``oxloop`` logger.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import os
import sys
import sysconfig
import time
import traceback
import weakref
from collections import deque
from typing import Optional

from . import _oxloop

__all__ = ("Stats", "TaskTime", "SlowEvent", "stats")

logger = logging.getLogger("oxloop")

#: How often the watchdog samples what the loop runs, in seconds.
SAMPLE_PERIOD = 0.002
#: Slow-event log lines allowed per ``LOG_WINDOW`` seconds; the rest are counted, not logged.
LOG_BURST = 10
LOG_WINDOW = 60.0
#: Tasks and callbacks remembered for ``top_tasks`` (the least busy are forgotten first).
MAX_ENTRIES = 2000
#: Recent slow events kept for ``stats().slow_events`` and ``oxloop top``.
MAX_EVENTS = 50


@dataclasses.dataclass(frozen=True)
class TaskTime:
    """Loop time used by one task (or, for code outside tasks, one kind of callback)."""

    #: The task's name (``Task.get_name()``), or the callback's qualified name.
    name: str
    #: The coroutine's qualified name, or ``None`` for a plain callback.
    coro: Optional[str]
    #: Seconds of loop time, estimated by sampling (resolution: ``Stats.sample_period``).
    time: float
    #: Steps (callbacks) the sampler caught running; a step longer than a period counts once.
    steps: int
    #: Whether the task is done (it stays listed for what it used).
    done: bool


@dataclasses.dataclass(frozen=True)
class SlowEvent:
    """A callback or task step that held the loop at least ``loop.slow_callback_duration``."""

    #: Wall-clock time (``time.time()``) when it was reported.
    at: float
    #: Seconds the loop was held (so far, if ``blocking``); accurate to one sample period.
    duration: float
    #: Name of the task whose step held the loop, or ``None`` (a plain callback, or unknown).
    task: Optional[str]
    #: Qualified name of that task's coroutine, or ``None``.
    coro: Optional[str]
    #: ``file:line`` of the innermost application frame the loop thread was running while held,
    #: or ``None`` if no stack could be captured (code holding the GIL throughout).
    where: Optional[str]
    #: The function at ``where``.
    function: Optional[str]
    #: The loop thread's stack at capture, innermost last (``traceback`` format lines).
    stack: tuple[str, ...]
    #: ``True`` for a report made while the loop was still held (long blocks are reported early).
    blocking: bool


@dataclasses.dataclass(frozen=True)
class Stats:
    """What a loop has been doing; ``oxloop.stats()`` returns one.

    Counters are kept at all times; the timing figures (``None`` when monitoring is off) need
    monitoring mode: ``oxloop.run(main(), monitor=True)``, ``python -m oxloop --monitor`` or
    ``OXLOOP_MONITOR=1``.
    """

    #: Whether monitoring mode is on for this loop.
    monitoring: bool
    #: Seconds since the loop first ran.
    uptime: float
    #: Loop iterations.
    ticks: int
    #: Ready entries run: callbacks, timers, I/O handlers (transports count once per event).
    callbacks: int
    #: Readiness events the poller returned.
    io_events: int
    #: Tasks the loop's ``create_task`` returned (``asyncio.create_task``, ``ensure_future`` and
    #: ``TaskGroup`` go through it; counted at all times), and tasks not done now.
    tasks_created: int
    tasks_pending: int
    #: Seconds the loop ran callbacks and its own work / waited in the poller, while monitored.
    #: The time waiting is sampled (every ``sample_period``, so within a few periods over any
    #: stretch of seconds); busy time is the loop's running time (measured) minus it.
    busy_time: Optional[float]
    wait_time: Optional[float]
    #: ``busy_time / (busy_time + wait_time)``.
    busy_ratio: Optional[float]
    #: Loop lag over the last 10 seconds, in seconds: how long the first entry of a tick waited
    #: between becoming ready and running (p50 and p99 within 12.5%, max exact among samples).
    #: Every tick with a due timer (its lateness) or after a poll that could block (zero) is a
    #: sample; ticks that run what the previous batch queued are sampled once per
    #: ``sample_period`` (the time since that batch began).
    lag_p50: Optional[float]
    lag_p99: Optional[float]
    lag_max: Optional[float]
    #: Callbacks or task steps that held the loop at least ``slow_callback_duration``.
    slow_callbacks: int
    #: Tasks by loop time, busiest first (at most 10).
    top_tasks: tuple[TaskTime, ...]
    #: Recent slow events, oldest first.
    slow_events: tuple[SlowEvent, ...]
    #: The watchdog's sampling period in seconds (the resolution of ``top_tasks`` times).
    sample_period: Optional[float]


def stats(loop=None) -> Stats:
    """Return the :class:`Stats` of ``loop`` (the running loop by default)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if not isinstance(loop, _oxloop.Loop):
        raise TypeError(f"oxloop.stats() needs an oxloop loop, got {loop!r}")
    raw = _oxloop.loop_stats(loop)
    monitor = _monitors.get(loop)
    pending = sum(1 for t in asyncio.all_tasks(loop) if not t.done()) if not loop.is_closed() else 0
    busy = wait = ratio = None
    if raw["monitoring"]:
        wait = raw["wait"]
        busy = max(raw["running"] - wait, 0.0)
        ratio = busy / raw["running"] if raw["running"] > 0 else 0.0
    return Stats(
        monitoring=raw["monitoring"],
        uptime=raw["uptime"],
        ticks=raw["ticks"],
        callbacks=raw["callbacks"],
        io_events=raw["io_events"],
        tasks_created=raw["tasks_created"],
        tasks_pending=pending,
        busy_time=busy,
        wait_time=wait,
        busy_ratio=ratio,
        lag_p50=raw.get("lag_p50"),
        lag_p99=raw.get("lag_p99"),
        lag_max=raw.get("lag_max"),
        slow_callbacks=monitor.slow_count if monitor else 0,
        top_tasks=monitor.top(10) if monitor else (),
        slow_events=tuple(monitor.events) if monitor else (),
        sample_period=raw.get("sample_period"),
    )


# -- monitoring mode ---------------------------------------------------------------------------

#: Monitors of the loops monitored now.
_monitors: "weakref.WeakKeyDictionary[object, Monitor]" = weakref.WeakKeyDictionary()


def enabled_by_default() -> bool:
    """Whether new loops are monitored: ``OXLOOP_MONITOR`` set to a non-empty value but ``0``."""
    return os.environ.get("OXLOOP_MONITOR", "") not in ("", "0")


def enable(loop) -> "Monitor":
    """Turn monitoring on for ``loop`` (idempotent); starts the watchdog and the live socket."""
    monitor = _monitors.get(loop)
    if monitor is None:
        monitor = _monitors[loop] = Monitor(loop)
        _oxloop.monitor_start(loop, monitor, SAMPLE_PERIOD, float(loop.slow_callback_duration))
        from . import _live, _otel

        _live.serve()
        _otel.register()
    return monitor


def disable(loop, _monitors=_monitors, _stop=_oxloop.monitor_stop) -> None:
    """Turn monitoring off for ``loop``: joins its watchdog. Statistics gathered so far stay."""
    # NOTE: the globals are bound at import: Loop.close calls this at interpreter exit too,
    # after module teardown may have set them to None (see Loop._close_now).
    if _monitors.get(loop) is not None:
        _stop(loop)


def set_threshold(loop, seconds) -> None:
    """``loop.slow_callback_duration`` changed."""
    if _monitors.get(loop) is not None:
        _oxloop.monitor_threshold(loop, float(seconds))


@atexit.register
def _stop_all():
    # Watchdog threads must not outlive the interpreter's ability to take the GIL.
    for loop in list(_monitors.keys()):
        _oxloop.monitor_stop(loop)


_STDLIB = tuple(
    os.path.normcase(p) + os.sep
    for p in {sysconfig.get_paths()["stdlib"], os.path.dirname(os.path.abspath(__file__))}
)


def _is_application(filename: str) -> bool:
    return not os.path.normcase(filename).startswith(_STDLIB) and "site-packages" not in filename


class Monitor:
    """The Python side of a monitored loop (the Rust watchdog calls the ``_`` methods)."""

    def __init__(self, loop):
        self._loop = weakref.ref(loop)
        # id (or a callback's name) -> [weakref to the task or None, name, coro, µs, steps]
        self._entries: dict = {}
        self.events: deque = deque(maxlen=MAX_EVENTS)
        self.slow_count = 0
        self._logged: deque = deque()
        self._suppressed = 0

    # Called on the loop thread, at most once per sampling period.
    def _sample(self, what, micros):
        owner = getattr(what, "__self__", None)
        if isinstance(owner, asyncio.Task):
            key = id(owner)
            entry = self._entries.get(key)
            if entry is None or entry[0]() is not owner:
                coro = owner.get_coro()
                qualname = getattr(coro, "__qualname__", None) or type(coro).__qualname__
                entry = self._entries[key] = [weakref.ref(owner), owner.get_name(), qualname, 0, 0]
            else:
                entry[1] = owner.get_name()
        else:
            if what is None:
                key = "(cancelled)"
            else:
                target = owner if owner is not None and hasattr(owner, "get_extra_info") else what
                key = getattr(target, "__qualname__", None) or type(target).__qualname__
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [None, key, None, 0, 0]
        entry[3] += micros
        entry[4] += 1
        if len(self._entries) > MAX_ENTRIES:
            self._forget()

    def _forget(self):
        ranked = sorted(self._entries.items(), key=lambda kv: kv[1][3])
        for key, _ in ranked[: len(ranked) // 4]:
            del self._entries[key]

    def top(self, n):
        entries = sorted(list(self._entries.values()), key=lambda e: -e[3])[:n]
        out = []
        for ref, name, coro, samples, steps in entries:
            task = ref() if ref is not None else None
            done = ref is not None and (task is None or task.done())
            out.append(TaskTime(name, coro, samples * 1e-6, steps, done))
        return tuple(out)

    # Called on the watchdog thread (with the GIL) while the loop is held.
    def _capture(self):
        loop = self._loop()
        tid = loop._thread_id if loop is not None else None
        frame = sys._current_frames().get(tid) if tid is not None else None
        if frame is None:
            return None
        task = asyncio.current_task(loop)
        stack = traceback.extract_stack(frame)
        del frame
        where = function = None
        for fs in reversed(stack):
            if _is_application(fs.filename):
                where, function = f"{fs.filename}:{fs.lineno}", fs.name
                break
        if where is None and stack:
            where, function = f"{stack[-1].filename}:{stack[-1].lineno}", stack[-1].name
        name = coro = None
        if task is not None:
            name = task.get_name()
            c = task.get_coro()
            coro = getattr(c, "__qualname__", None) or type(c).__qualname__
        return (name, coro, where, function, tuple(stack.format()[-20:]))

    def _slow(self, seconds, capture):
        self._record(seconds, capture, blocking=False)

    def _blocking(self, seconds, capture):
        self._record(seconds, capture, blocking=True)

    def _record(self, seconds, capture, *, blocking):
        name, coro, where, function, stack = capture or (None, None, None, None, ())
        if not blocking:
            self.slow_count += 1
        event = SlowEvent(time.time(), seconds, name, coro, where, function, stack, blocking)
        self.events.append(event)
        self._log(event)

    def _log(self, event):
        now = time.monotonic()
        while self._logged and now - self._logged[0] > LOG_WINDOW:
            self._logged.popleft()
        if len(self._logged) >= LOG_BURST:
            self._suppressed += 1
            return
        self._logged.append(now)
        suppressed, self._suppressed = self._suppressed, 0
        logger.warning(
            "%s%s",
            format_event(event),
            f" ({suppressed} more slow events not logged)" if suppressed else "",
        )


def format_event(event: SlowEvent) -> str:
    """One line naming what held the loop, where, and for how long."""
    if event.task is not None:
        who = f"task {event.task!r} ({event.coro}())"
    elif event.where is not None:
        who = "a callback"
    else:
        who = "a callback or task step"
    where = f" at {event.where} in {event.function}" if event.where else ""
    held = "is holding" if event.blocking else "held"
    so_far = " so far" if event.blocking else ""
    return f"{who} {held} the loop for {event.duration:.3f} s{so_far}{where}"
