"""oxloop.run, asyncio.Runner with oxloop, the policy, install(), and python -m oxloop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import oxloop
import pytest


async def _which_loop():
    return type(asyncio.get_running_loop()).__module__


def test_run_returns_the_result_on_oxloop():
    assert oxloop.run(_which_loop()).startswith("oxloop")


def test_run_matches_asyncio_run_semantics():
    async def main():
        async def lingering():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append("cancelled at shutdown")
                raise

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                log.append("agen closed")

        asyncio.get_running_loop().create_task(lingering())
        async for _ in agen():
            break
        await asyncio.sleep(0)
        return "done"

    results = []
    for runner in (asyncio.run, oxloop.run):
        log = []
        results.append((runner(main()), sorted(log)))
    assert results[0] == results[1] == ("done", ["agen closed", "cancelled at shutdown"])


def test_run_propagates_exceptions_and_refuses_nesting():
    async def fails():
        raise LookupError("x")

    with pytest.raises(LookupError):
        oxloop.run(fails())

    async def nested():
        coro = _which_loop()
        try:
            oxloop.run(coro)
        finally:
            coro.close()

    for runner in (asyncio.run, oxloop.run):
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            runner(nested())


def test_run_debug_flag():
    async def debug():
        return asyncio.get_running_loop().get_debug()

    assert oxloop.run(debug(), debug=True) is True


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs main thread"
)
def test_ctrl_c_cancels_the_main_task_like_asyncio():
    async def main():
        try:
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            outcome.append("main cancelled")
            raise

    results = []
    for runner in (asyncio.run, oxloop.run):
        outcome = []
        try:
            runner(main())
        except KeyboardInterrupt:
            outcome.append("KeyboardInterrupt")
        results.append(outcome)
    assert results[0] == results[1] == ["main cancelled", "KeyboardInterrupt"]


def test_asyncio_runner_with_loop_factory():
    with asyncio.Runner(loop_factory=oxloop.new_event_loop) as runner:
        assert runner.run(_which_loop()).startswith("oxloop")
        assert isinstance(runner.get_loop(), asyncio.AbstractEventLoop)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run takes loop_factory from 3.12")
def test_asyncio_run_with_loop_factory_warns_nowhere():
    # The policy-free way 3.14 recommends: nothing deprecated on the way.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert asyncio.run(_which_loop(), loop_factory=oxloop.new_event_loop) == "oxloop._loop"


# The policy getter and setter without 3.14's deprecation warnings (the same functions).
_get_policy = getattr(asyncio.events, "_get_event_loop_policy", asyncio.get_event_loop_policy)
_set_policy = getattr(asyncio.events, "_set_event_loop_policy", asyncio.set_event_loop_policy)


def test_policy_behaves_like_the_default_policy():
    old = _get_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # install() warns from 3.14
            oxloop.install()
        policy = _get_policy()
        assert isinstance(policy, oxloop.EventLoopPolicy)
        assert isinstance(policy, asyncio.unix_events._UnixDefaultEventLoopPolicy)
        if sys.version_info >= (3, 14):
            # 3.14's policy no longer creates a loop in get_event_loop() (asyncio's neither).
            with pytest.raises(RuntimeError, match="There is no current event loop"):
                asyncio.get_event_loop()
            asyncio.set_event_loop(asyncio.new_event_loop())
        # On 3.11 get_event_loop() in the main thread still creates a loop (as asyncio's does).
        # On 3.12 and 3.13 it warns first.
        warns = (3, 12) <= sys.version_info < (3, 14)
        with pytest.warns(DeprecationWarning) if warns else _nullcontext():
            loop = asyncio.get_event_loop()
        assert isinstance(loop, oxloop.Loop)
        assert loop.run_until_complete(_which_loop()).startswith("oxloop")
        assert asyncio.run(_which_loop()).startswith("oxloop")
        loop.close()
        asyncio.set_event_loop(None)
    finally:
        _set_policy(old)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _run_python(args, **kwargs):
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=env, **kwargs
    )


def test_python_dash_m_oxloop_runs_an_unchanged_script(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys

            async def main():
                await asyncio.sleep(0.001)
                print(type(asyncio.get_running_loop()).__module__, sys.argv[1:], __name__)

            asyncio.run(main())
            """
        )
    )
    # No DeprecationWarning from oxloop's own code on any version (3.14 deprecates the policy
    # setter that python -m oxloop needs: it uses the private one, as asyncio does).
    proc = _run_python(["-W", "error::DeprecationWarning", "-m", "oxloop", str(script), "a", "b"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "oxloop._loop ['a', 'b'] __main__"


def test_python_dash_m_oxloop_dash_m_module(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "import asyncio\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__module__\n"
        "print(asyncio.run(main()))\n"
    )
    proc = _run_python(["-m", "oxloop", "-m", "mymod"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "oxloop._loop"


def test_python_dash_m_oxloop_repl_supports_top_level_await():
    proc = _run_python(
        ["-m", "oxloop"],
        input="await asyncio.sleep(0, result=6 * 7)\ntype(asyncio.get_running_loop()).__name__\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "42" in proc.stdout
    assert "'Loop'" in proc.stdout


def test_ctrl_c_reaches_an_idle_loop_like_asyncio():
    # The loop sleeps in the poller; SIGINT must still interrupt it at once.
    def interrupt_soon():
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    async def idle():
        interrupt_soon()
        await asyncio.sleep(30)

    # Each run must end well before its 30 s sleep: a margin a loaded 2-core machine keeps.
    bound = 5.0
    results = []
    for runner in (asyncio.run, oxloop.run):
        t0 = time.monotonic()
        try:
            runner(idle())
        except KeyboardInterrupt:
            results.append(("KeyboardInterrupt", time.monotonic() - t0 < bound))

    def plain(loop):
        interrupt_soon()
        loop.call_later(30, loop.stop)
        t0 = time.monotonic()
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            results.append(("plain KeyboardInterrupt", time.monotonic() - t0 < bound))
        finally:
            loop.close()

    plain(asyncio.new_event_loop())
    plain(oxloop.new_event_loop())
    assert results == [("KeyboardInterrupt", True)] * 2 + [("plain KeyboardInterrupt", True)] * 2
