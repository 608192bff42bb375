"""add_signal_handler / remove_signal_handler: asyncio's checks, errors and clean-up, on both loops.

Results are compared between oxloop and asyncio's own loop with ``on_both``; the one deliberate
divergence (a wakeup fd the program had set before is kept working and restored) is tested on
oxloop alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import oxloop
import pytest


def describe(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


def test_bad_arguments(on_both):
    def scenario(loop):
        async def coro():
            pass

        results = []
        cases = [
            (signal.SIGKILL, lambda: None),
            (signal.SIGSTOP, lambda: None),
            (0, lambda: None),
            (1000, lambda: None),
            (-1, lambda: None),
            ("SIGUSR1", lambda: None),
            (signal.SIGUSR1, coro),
            (signal.SIGUSR1, coro()),
        ]
        for sig, callback in cases:
            try:
                loop.add_signal_handler(sig, callback)
            except (TypeError, ValueError, RuntimeError) as exc:
                results.append(describe(exc))
            if asyncio.iscoroutine(callback):
                callback.close()
        for sig in (0, 1000, "x"):
            try:
                loop.remove_signal_handler(sig)
            except (TypeError, ValueError) as exc:
                results.append(describe(exc))
        results.append(loop.remove_signal_handler(signal.SIGUSR2))
        results.append(signal.set_wakeup_fd(-1))
        return results

    aio, ox = on_both(scenario)
    assert aio == ox
    assert ox[0] == ("RuntimeError", f"sig {signal.SIGKILL:d} cannot be caught")
    assert ox[2] == ("ValueError", "invalid signal number 0")
    assert ox[5] == ("TypeError", "sig must be an int, not 'SIGUSR1'")
    assert ox[-2:] == [False, -1]


def test_closed_loop(on_both):
    def scenario(loop):
        loop.close()
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except RuntimeError as exc:
            return describe(exc)

    assert on_both(scenario) == (("RuntimeError", "Event loop is closed"),) * 2


def test_not_main_thread(on_both):
    def scenario(loop):
        results = []

        def worker():
            lp = type(loop)()
            try:
                lp.add_signal_handler(signal.SIGUSR1, lambda: None)
            except RuntimeError as exc:
                results.append(describe(exc))
            finally:
                lp.close()

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        results.append(signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)
        return results

    aio, ox = on_both(scenario)
    assert aio == ox
    assert ox[0][0] == "RuntimeError"
    assert ox[1] is True


def test_handlers_run_as_callbacks(on_both):
    def scenario(loop):
        calls = []

        async def main():
            done = loop.create_future()

            def handler(*args):
                calls.append((args, asyncio.get_running_loop() is loop))
                if len(calls) == 2:
                    done.set_result(None)

            loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
            loop.add_signal_handler(signal.SIGUSR2, handler)
            os.kill(os.getpid(), signal.SIGUSR1)
            # Nothing runs inside the signal handler itself: only once the loop gets control.
            calls.append("after kill")
            os.kill(os.getpid(), signal.SIGUSR2)
            await done
            removed = [
                loop.remove_signal_handler(signal.SIGUSR1),
                loop.remove_signal_handler(signal.SIGUSR1),
                loop.remove_signal_handler(signal.SIGUSR2),
            ]
            return removed, signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

        return loop.run_until_complete(main()), calls

    aio, ox = on_both(scenario)
    assert aio == ox
    assert ox == (
        ([True, False, True], True),
        ["after kill", (("a", 1), True), ((), True)],
    )


def test_sigint_restores_default_int_handler(on_both):
    def scenario(loop):
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        installed = signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        removed = loop.remove_signal_handler(signal.SIGINT)
        return installed, removed, signal.getsignal(signal.SIGINT) is signal.default_int_handler

    assert on_both(scenario) == ((True, True, True),) * 2


def test_cancelled_handle_does_not_run(on_both):
    def scenario(loop):
        calls = []

        async def main():
            loop.add_signal_handler(signal.SIGUSR1, calls.append, "ran")
            handle = loop._signal_handlers[signal.SIGUSR1]
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.05)
            handle.cancel()
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.05)
            # The cancelled handle was dropped (remove_signal_handler) on the second signal.
            return signal.SIGUSR1 in loop._signal_handlers

        return loop.run_until_complete(main()), calls

    assert on_both(scenario) == ((False, ["ran"]),) * 2


def test_handler_error_goes_to_exception_handler(on_both):
    def scenario(loop):
        async def main():
            def boom():
                raise ZeroDivisionError

            loop.add_signal_handler(signal.SIGUSR1, boom)
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.05)
            loop.remove_signal_handler(signal.SIGUSR1)
            errors = [type(ctx["exception"]).__name__ for ctx in loop.handled_errors]
            loop.handled_errors.clear()
            return errors

        return loop.run_until_complete(main())

    assert on_both(scenario) == (["ZeroDivisionError"],) * 2


def test_close_removes_handlers(on_both):
    def scenario(loop):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        loop.close()
        return (
            signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            signal.set_wakeup_fd(-1),
        )

    assert on_both(scenario) == ((True, True, -1),) * 2


@pytest.fixture
def program_wakeup():
    """An oxloop loop, and a non-blocking socketpair whose write end can be a wakeup fd."""
    loop = oxloop.new_event_loop()
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    try:
        yield loop, r, w
    finally:
        signal.set_wakeup_fd(-1)
        loop.close()
        r.close()
        w.close()


def test_program_wakeup_fd_kept_and_restored(program_wakeup):
    # asyncio overwrites a wakeup fd the program had set and leaves -1 behind; oxloop forwards
    # the signal bytes to it while its own is installed, then gives the slot back.
    loop, r, w = program_wakeup
    assert signal.set_wakeup_fd(w.fileno()) == -1

    async def main():
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "handled")
        os.kill(os.getpid(), signal.SIGUSR1)
        result = await got
        return result, r.recv(10)

    assert loop.run_until_complete(main()) == ("handled", bytes([signal.SIGUSR1]))
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.set_wakeup_fd(-1) == w.fileno()


def test_wakeup_fd_taken_over_stays(program_wakeup):
    # Someone set another wakeup fd while oxloop's was installed: removing the last handler
    # leaves theirs in place.
    loop, _, w = program_wakeup
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    signal.set_wakeup_fd(w.fileno())
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.set_wakeup_fd(-1) == w.fileno()


@pytest.mark.parametrize("runner", ["oxloop.run", "asyncio.run"])
def test_ctrl_c_cancels_main_task(runner):
    # Mirrors asyncio.Runner: SIGINT while the loop waits cancels the main task, then
    # KeyboardInterrupt is raised; the wait must not outlive the signal.
    run = oxloop.run if runner == "oxloop.run" else asyncio.run
    seen = []

    async def main():
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with pytest.raises(KeyboardInterrupt):
        run(main())
    assert seen == ["cancelled"]


# An idle loop woken by SIGINT must be back within this many seconds (it sleeps 30 s otherwise).
IDLE_WAKE_BOUND = 5.0


def test_sigint_wakes_idle_loop():
    # No callback is due for 30 s: the signal alone must get the handler (a thread sends it).
    def idle(loop):
        async def main():
            await asyncio.sleep(30)

        timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                loop.run_until_complete(main())
        finally:
            timer.join()
        # Woken by the signal, not by the 30 s timer (a margin a loaded 2-core machine keeps).
        assert time.monotonic() - t0 < IDLE_WAKE_BOUND

    loop = oxloop.new_event_loop()
    try:
        idle(loop)
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


SCRIPT = """
import asyncio, signal, sys

async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, "term")
    print(type(loop).__module__, flush=True)
    try:
        print(await stop, flush=True)
    except asyncio.CancelledError:
        print("cancelled", flush=True)
        raise

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_program_signals_end_to_end(tmp_path, sig):
    # The same program under `python` and `python -m oxloop`: Ctrl-C cancels the main task
    # (then KeyboardInterrupt ends the process as SIGINT does), SIGTERM reaches the program.
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    results = []
    for prefix in ([], ["-m", "oxloop"]):
        proc = subprocess.Popen(
            [sys.executable, *prefix, str(script)], stdout=subprocess.PIPE, text=True
        )
        try:
            first = proc.stdout.readline().strip()
            proc.send_signal(sig)
            rest = proc.stdout.read().split()
            results.append((first, rest, proc.wait(timeout=10)))
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    aio, ox = results
    assert aio[0] == "asyncio.unix_events"
    assert ox[0] == "oxloop._loop"
    assert aio[1:] == ox[1:]
    expected = (["cancelled"], -signal.SIGINT) if sig == signal.SIGINT else (["term"], 0)
    assert ox[1:] == expected
