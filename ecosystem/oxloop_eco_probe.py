"""pytest plugin (``-p oxloop_eco_probe``): records which event loop classes each test ran.

Every loop that starts running calls ``asyncio.events._set_running_loop(loop)`` (asyncio's
``run_forever`` and oxloop's both look it up on the module at call time), so wrapping that one
function sees every loop a test runs, in the test's own thread and in the threads it starts,
whatever created the loop (a fixture, ``asyncio.Runner``, a server thread). At the end of the
session the loops, pytest's own counts (its terminal summary's) and each test's outcome go to the
JSON file named by ``OXLOOP_ECO_PROBE_OUT``.

This is the proof that a suite run through ``python -m oxloop -m pytest`` ran its tests on oxloop
and not on a loop the suite picked for itself.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import json
import os

import pytest

_current: str | None = None
_seen: dict[str, set[str]] = {}
_original = asyncio.events._set_running_loop


def _set_running_loop(loop):
    if loop is not None:
        key = _current if _current is not None else "<outside any test>"
        cls = type(loop)
        _seen.setdefault(key, set()).add(f"{cls.__module__}.{cls.__qualname__}")
    return _original(loop)


asyncio.events._set_running_loop = _set_running_loop
asyncio._set_running_loop = _set_running_loop


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _current
    _current = item.nodeid
    try:
        yield
    finally:
        _current = None


_ORDER = ("error", "failed", "xpassed", "passed", "xfailed", "skipped")


def _message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        return str(report.longrepr[-1])
    return str(report.longrepr or "")


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("OXLOOP_ECO_PROBE_OUT")
    if not out:
        return
    stats = session.config.pluginmanager.get_plugin("terminalreporter").stats
    counts = {key: len(stats.get(key, ())) for key in _ORDER}
    # One outcome per test, the worst of its phases (a teardown error after a pass is an error).
    outcomes: dict[str, tuple[str, str]] = {}
    for key in _ORDER:
        for report in stats.get(key, ()):
            nodeid = getattr(report, "nodeid", None)
            if not nodeid or nodeid in outcomes:
                continue
            outcomes[nodeid] = (key, _message(report) if key in ("error", "failed") else "")
    result = {
        "exitstatus": int(exitstatus),
        "counts": counts,
        "outcomes": {k: list(v) for k, v in outcomes.items()},
        "loops": {k: sorted(v) for k, v in _seen.items()},
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=0)
