"""Signal handlers, executors and async generator hooks, compared with asyncio's loop."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time


def _error(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)
    return None


def test_signal_handler_runs_as_a_loop_callback(on_both):
    def scenario(loop):
        seen = []

        def on_usr1(tag):
            seen.append((tag, asyncio.get_running_loop() is loop))
            loop.stop()

        loop.add_signal_handler(signal.SIGUSR1, on_usr1, "usr1")
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        loop.run_forever()
        removed = [
            loop.remove_signal_handler(signal.SIGUSR1),
            loop.remove_signal_handler(signal.SIGUSR1),
        ]
        return seen, removed, signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

    a, o = on_both(scenario)
    assert a == o == ([("usr1", True)], [True, False], True)


def test_signal_burst_every_delivery_is_handled(loop):
    # POSIX coalesces a pending signal: count deliveries by sending one at a time.
    seen = []
    loop.add_signal_handler(signal.SIGUSR2, lambda: seen.append(1))

    async def storm():
        for _ in range(200):
            os.kill(os.getpid(), signal.SIGUSR2)
            await asyncio.sleep(0)
            while len(seen) < _ + 1:
                await asyncio.sleep(0.0005)

    loop.run_until_complete(asyncio.wait_for(storm(), 30))
    loop.remove_signal_handler(signal.SIGUSR2)
    assert len(seen) == 200


def test_bad_signal_arguments(on_both):
    async def coro_fn():
        pass

    def scenario(loop):
        return [
            _error(loop.add_signal_handler, signal.SIGKILL, print),
            _error(loop.add_signal_handler, signal.SIGSTOP, print),
            _error(loop.add_signal_handler, 10_000, print),
            _error(loop.add_signal_handler, "x", print),
            _error(loop.add_signal_handler, signal.SIGUSR1, coro_fn),
            _error(loop.remove_signal_handler, 10_000),
        ]

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == ("RuntimeError", "sig 9 cannot be caught")


def test_signal_handlers_only_from_the_main_thread(on_both):
    def scenario(loop):
        out = []
        t = threading.Thread(
            target=lambda: out.append(_error(loop.add_signal_handler, signal.SIGUSR1, print))
        )
        t.start()
        t.join()
        return out

    a, o = on_both(scenario)
    assert a == o
    assert o[0][0] == "RuntimeError"


def test_run_in_executor_and_shutdown(on_both):
    def scenario(loop):
        async def main():
            r1 = await loop.run_in_executor(None, sum, [1, 2, 3])
            r2 = await loop.run_in_executor(None, time.sleep, 0.001)
            await loop.shutdown_default_executor()
            try:
                loop.run_in_executor(None, print)
            except RuntimeError as e:
                err = str(e)
            return r1, r2, err

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == (6, None, "Executor shutdown has been called")


def test_async_generators_are_finalized_by_the_loop(on_both):
    def scenario(loop):
        log = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                log.append("closed")

        async def main():
            g = agen()
            await g.__anext__()
            del g  # finalizer hook schedules aclose() on the loop
            await asyncio.sleep(0.001)
            g2 = agen()
            await g2.__anext__()
            return g2

        g2 = loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
        del g2
        return log

    a, o = on_both(scenario)
    assert a == o == ["closed", "closed"]
