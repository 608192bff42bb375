"""Shared fixtures: every test body runs on oxloop and on asyncio's own loop.

- ``loop``: a fresh loop of each kind (parametrised ``asyncio`` / ``oxloop``), closed afterwards.
  Any call to the loop's exception handler that the test did not expect fails the test: a test
  that expects some reads and clears ``loop.handled_errors``.
- ``on_both(scenario)``: runs ``scenario(loop)`` on a fresh asyncio loop and a fresh oxloop loop and
  returns both results, for tests that compare what happened. The exception-handler calls the
  scenario left in ``loop.handled_errors`` (message and exception type, in order) must be the same
  on both loops.
- Every test also checks that the process's open fd count is back where it started.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal

import oxloop
import pytest

# A run started in the background (CI, nohup, `make &`) inherits SIGINT ignored, and Python then
# keeps it ignored: asyncio.run would not install its Ctrl-C handler and the tests that send
# SIGINT would wait forever. Give the tests the handler an interactive Python has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

LOOPS = {"asyncio": asyncio.new_event_loop, "oxloop": oxloop.new_event_loop}


def _make(kind: str):
    loop = LOOPS[kind]()
    loop.handled_errors = []
    loop.set_exception_handler(lambda lp, ctx: lp.handled_errors.append(ctx))
    return loop


def _close(loop) -> None:
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture(params=sorted(LOOPS))
def loop_kind(request) -> str:
    return request.param


@pytest.fixture
def loop(loop_kind):
    lp = _make(loop_kind)
    asyncio.set_event_loop(None)
    yield lp
    errors = list(lp.handled_errors)
    _close(lp)
    assert not errors, f"unexpected call_exception_handler calls: {errors}"


def handler_calls(loop) -> list[tuple]:
    """What the loop's exception handler was called with: (message, exception type name)."""
    return [
        (ctx.get("message"), type(ctx["exception"]).__name__ if "exception" in ctx else None)
        for ctx in loop.handled_errors
    ]


@pytest.fixture
def on_both():
    def run(scenario):
        results, calls = {}, {}
        for kind in ("asyncio", "oxloop"):
            lp = _make(kind)
            try:
                results[kind] = scenario(lp)
            finally:
                _close(lp)
            calls[kind] = handler_calls(lp)
        assert calls["oxloop"] == calls["asyncio"], (
            "call_exception_handler calls differ between the loops: "
            f"asyncio {calls['asyncio']}, oxloop {calls['oxloop']}"
        )
        return results["asyncio"], results["oxloop"]

    return run


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leak():
    gc.collect()
    before = _open_fds()
    yield
    gc.collect()
    after = _open_fds()
    assert after <= before, f"fd leak: {before} open before the test, {after} after"
