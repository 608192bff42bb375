"""Debug mode: slow callbacks, foreign-thread calls, source tracebacks, unclosed loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import warnings

import pytest

# The slow callbacks below take SLOW seconds against a threshold of THRESHOLD: far enough apart
# that preemption on a loaded machine neither hides the slow one nor makes a fast one slow
# (the messages are also filtered to the slow callback's).
SLOW, THRESHOLD = 0.2, 0.1


def test_slow_callback_is_logged_with_its_handle(on_both, caplog):
    def slow_one():
        time.sleep(SLOW)

    def scenario(loop):
        loop.set_debug(True)
        loop.slow_callback_duration = THRESHOLD
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.call_soon(slow_one)
            loop.call_soon(loop.call_soon, loop.stop)
            loop.run_forever()
        loop.set_debug(False)
        msgs = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
        return [m.split(" at ")[0] for m in msgs if "slow_one" in m]

    a, o = on_both(scenario)
    assert a == o
    assert o[0].startswith("Executing <Handle ") and o[0].endswith("slow_one()")


def test_slow_task_step_names_the_task(on_both, caplog):
    async def slow_task():
        time.sleep(SLOW)

    def scenario(loop):
        loop.set_debug(True)
        loop.slow_callback_duration = THRESHOLD
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_until_complete(loop.create_task(slow_task(), name="the-slow-one"))
        loop.set_debug(False)
        return [
            r.getMessage().startswith("Executing <Task")
            for r in caplog.records
            if "took" in r.getMessage() and "the-slow-one" in r.getMessage()
        ]

    a, o = on_both(scenario)
    assert a == o == [True]


def test_non_threadsafe_call_from_another_thread_is_detected(on_both):
    def scenario(loop):
        loop.set_debug(True)
        errors = []

        def from_thread():
            for fn in (loop.call_soon, lambda cb: loop.call_later(0, cb)):
                try:
                    fn(print)
                except RuntimeError as e:
                    errors.append(str(e))
            loop.call_soon_threadsafe(loop.stop)

        loop.call_soon(lambda: threading.Thread(target=from_thread).start())
        loop.run_forever()
        loop.set_debug(False)
        return errors

    a, o = on_both(scenario)
    assert a == o
    assert (
        o == ["Non-thread-safe operation invoked on an event loop other than the current one"] * 2
    )


def test_source_traceback_points_at_the_caller(on_both):
    def scenario(loop):
        loop.set_debug(True)
        h = loop.call_soon(print)
        line = sys._getframe().f_lineno - 1
        tb = h._source_traceback
        h.cancel()
        loop.set_debug(False)
        return tb[-1][0] == __file__, tb[-1][1] == line

    a, o = on_both(scenario)
    assert a == o == (True, True)


def test_cancelled_handle_repr_is_kept_in_debug_mode(on_both):
    def scenario(loop):
        loop.set_debug(True)
        h = loop.call_soon(print, 1)
        h.cancel()
        loop.set_debug(False)
        return repr(h).startswith("<Handle cancelled print(1) created at ")

    a, o = on_both(scenario)
    assert a == o == True  # noqa: E712


def test_coroutine_origin_tracking_follows_debug_mode(on_both):
    def scenario(loop):
        loop.set_debug(True)

        async def main():
            return sys.get_coroutine_origin_tracking_depth()

        depth = loop.run_until_complete(main())
        loop.set_debug(False)
        return depth, sys.get_coroutine_origin_tracking_depth()

    a, o = on_both(scenario)
    assert a == o and o[0] > 0 and o[1] == 0


@pytest.mark.parametrize("kind", ["asyncio", "oxloop"])
def test_unclosed_loop_warns(kind):
    import oxloop

    factory = {"asyncio": asyncio.new_event_loop, "oxloop": oxloop.new_event_loop}[kind]
    loop = factory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del loop
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("unclosed event loop <") for m in msgs)
