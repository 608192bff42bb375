"""oxloop.stats(), monitoring mode, slow and blocking code named, the live view, OpenTelemetry.

Monitoring is oxloop's own feature, so most tests run on oxloop alone; what asyncio also has
(the order callbacks run in) is compared with asyncio's loop while monitoring is on. Times are
asserted only where time is the behaviour (a callback holding the loop for 0.3 s), with
generous bounds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import oxloop
import pytest
from oxloop import _live, _monitor

HERE = os.path.abspath(__file__)


def line_of(marker: str) -> int:
    """The line of this file holding ``marker`` in a comment."""
    with open(HERE) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith(f"# {marker}"):
                return number
    raise LookupError(marker)


def monitor_threads() -> int:
    """Threads of this process named oxloop-monitor (Rust threads included)."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                n += f.read().strip() == "oxloop-monitor"
        except OSError:
            pass
    return n


@pytest.fixture(autouse=True, scope="module")
def live_socket():
    # The process's live socket stays open once monitoring was on: open it before the fd counts.
    _live.serve()


@pytest.fixture
def monitored():
    loop = oxloop.new_event_loop()
    _monitor.enable(loop)
    yield loop
    loop.close()


# -- stats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("monitor", [False, True], ids=["off", "on"])
def test_counts_agree_with_the_program(monitor):
    loop = oxloop.new_event_loop()
    if monitor:
        _monitor.enable(loop)
    try:
        before = oxloop.stats(loop)
        ran = []
        for i in range(1000):
            loop.call_soon(ran.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
        after = oxloop.stats(loop)
        assert len(ran) == 1000
        assert after.callbacks - before.callbacks == 1001
        assert after.ticks - before.ticks == 1

        async def child():
            await asyncio.sleep(0)

        async def main():
            await asyncio.gather(*(loop.create_task(child()) for _ in range(7)))
            return oxloop.stats()

        s = loop.run_until_complete(main())
        # main and its 7 children, counted with monitoring on or off
        assert s.tasks_created - before.tasks_created == 8
        assert s.tasks_pending == 1  # main itself, while it asks
        assert s.monitoring is monitor
        assert s.uptime > 0
        if monitor:
            assert s.busy_time is not None and s.wait_time is not None
            assert 0.0 <= s.busy_ratio <= 1.0
            assert s.lag_p50 is not None and s.lag_p50 <= s.lag_p99 <= s.lag_max
        else:
            assert (s.busy_time, s.wait_time, s.lag_p99, s.top_tasks) == (None, None, None, ())
    finally:
        loop.close()


def test_stats_needs_an_oxloop_loop():
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError):
            oxloop.stats(loop)
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="no running event loop"):
        oxloop.stats()


def test_io_events_are_counted(monitored):
    r, w = os.pipe()
    try:
        got = []
        monitored.add_reader(r, lambda: (got.append(os.read(r, 10)), monitored.stop()))
        os.write(w, b"x")
        before = oxloop.stats(monitored).io_events
        monitored.run_forever()
        monitored.remove_reader(r)
        assert got == [b"x"]
        assert oxloop.stats(monitored).io_events - before == 1
    finally:
        os.close(r)
        os.close(w)


def test_lag_shows_a_held_loop(monitored):
    async def main():
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        loop.call_later(0.01, fired.set_result, None)
        time.sleep(0.3)  # the timer is due during this
        await fired
        return oxloop.stats()

    s = monitored.run_until_complete(main())
    assert s.lag_max >= 0.25
    assert s.lag_p50 <= s.lag_max


def test_lag_shows_a_held_loop_without_a_timer(monitored):
    # No timer is due: the entry queued behind the held callback still shows its wait.
    async def main():
        loop = asyncio.get_running_loop()
        after = loop.create_future()

        def hold():
            loop.call_soon(after.set_result, None)
            time.sleep(0.3)

        loop.call_soon(hold)
        await after
        return oxloop.stats()

    s = monitored.run_until_complete(main())
    assert s.lag_max >= 0.25
    assert s.lag_p50 <= s.lag_max


def test_lag_counts_every_wake_up_from_the_poller(monitored):
    # Each round trip wakes the loop from a poll that could block, with no timer due: a zero lag
    # sample each (counted, and filed into the window once per sampling period). The median stays
    # zero and a hold still shows as the maximum.
    from oxloop import _oxloop

    rounds = 300

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)

            def peer():
                for _ in range(rounds):
                    b.sendall(b"x")
                    b.recv(1)

            t = threading.Thread(target=peer)
            t.start()
            for _ in range(rounds):
                assert await loop.sock_recv(a, 1) == b"x"
                await loop.sock_sendall(a, b"y")
            t.join()
            quiet = _oxloop.loop_stats(loop)

            def hold():
                b.sendall(b"z")  # ready while the loop is held
                time.sleep(0.3)

            loop.call_soon(hold)
            assert await loop.sock_recv(a, 1) == b"z"
        return quiet, _oxloop.loop_stats(loop)

    quiet, held = monitored.run_until_complete(main())
    assert rounds <= quiet["lag_count"] <= quiet["ticks"]
    assert quiet["lag_p50"] == 0.0
    assert quiet["lag_max"] < 0.25
    assert held["lag_count"] > quiet["lag_count"]
    assert held["lag_p50"] == 0.0
    assert held["lag_max"] >= 0.25


def test_busy_and_waiting_time(monitored):
    async def main():
        await asyncio.sleep(0.3)  # waiting in the poller
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # busy
            pass
        return oxloop.stats()

    s = monitored.run_until_complete(main())
    assert s.wait_time >= 0.25
    assert s.busy_time >= 0.25
    assert 0.25 < s.busy_ratio < 0.75


# -- slow and blocking code, named -------------------------------------------------------------


def crunch(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # CRUNCH
        pass


def test_cpu_bound_step_among_thousands_is_named(monitored, caplog):
    async def cheap(i):
        for _ in range(50):
            await asyncio.sleep(0)

    async def hog():
        for _ in range(50):
            await asyncio.sleep(0)
        crunch(1.0)

    async def main():
        tasks = []
        for i in range(200):
            tasks.append(asyncio.create_task(cheap(i), name=f"cheap-{i}"))
            if i % 10 == 9:
                # Creating 200 tasks in one step costs 0.4 s in debug mode on a loaded machine:
                # in steps of 10, main never holds the loop near the threshold.
                await asyncio.sleep(0)
        tasks.append(asyncio.create_task(hog(), name="the-hog"))
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.05)  # the watchdog reports once the loop moves on
        return oxloop.stats()

    # Above what creating 200 tasks costs in debug mode on a loaded machine (0.2 s seen), and a
    # third of the crunch, so a watchdog that wakes late still samples inside it.
    monitored.slow_callback_duration = 0.3
    with caplog.at_level(logging.WARNING, logger="oxloop"):
        s = monitored.run_until_complete(main())
    assert s.slow_callbacks == 1
    (event,) = s.slow_events
    assert (event.task, event.coro, event.function) == (
        "the-hog",
        "test_cpu_bound_step_among_thousands_is_named.<locals>.hog",
        "crunch",
    )
    assert event.where == f"{HERE}:{line_of('CRUNCH')}"
    assert 0.9 <= event.duration <= 3.0
    assert not event.blocking
    (record,) = [r for r in caplog.records if r.name == "oxloop"]
    assert record.getMessage() == (
        f"task 'the-hog' ({event.coro}()) held the loop for {event.duration:.3f} s at "
        f"{HERE}:{line_of('CRUNCH')} in crunch"
    )
    # Sampling charges the hog with most of the loop's time.
    top = s.top_tasks[0]
    assert (top.name, top.coro, top.done) == ("the-hog", event.coro, True)
    assert top.time >= 0.6
    assert all(t.time < top.time for t in s.top_tasks[1:])


def test_sleep_is_named_while_it_blocks(monitored, caplog):
    ended = []

    async def fetch():
        await asyncio.sleep(0)
        time.sleep(1.6)  # BLOCKS
        ended.append(time.monotonic())

    logged = []

    class Handler(logging.Handler):
        def emit(self, record):
            logged.append((time.monotonic(), record.getMessage()))

    handler = Handler()
    logging.getLogger("oxloop").addHandler(handler)
    try:

        async def main():
            await asyncio.create_task(fetch(), name="fetcher")
            await asyncio.sleep(0.05)
            return oxloop.stats()

        s = monitored.run_until_complete(main())
    finally:
        logging.getLogger("oxloop").removeHandler(handler)
    early, final = s.slow_events
    where = f"{HERE}:{line_of('BLOCKS')}"
    # Reported after a second, while time.sleep was still running, with its line.
    assert early.blocking and early.where == where and early.task == "fetcher"
    assert 0.9 <= early.duration < 1.6
    assert logged[0][0] < ended[0]
    assert "is holding the loop for" in logged[0][1] and where in logged[0][1]
    assert not final.blocking and final.where == where and final.duration >= 1.5
    assert s.slow_callbacks == 1


def test_the_step_is_named_not_the_loop_work_after_it(monitored):
    # After a step returns, the loop charges its samples to its task (Monitor._sample) before
    # the next step starts. Made slow here (the GIL released, as a finalizer or a busy machine
    # could), that work is where the watchdog's later captures land: they must not replace the
    # step's own line with the line the loop thread is at after the step.
    monitor = _monitor._monitors[monitored]
    sample = monitor._sample
    after_step = []

    def slow_sample(what, micros):
        if after_step and after_step.pop():
            time.sleep(0.3)  # AFTER THE STEP
        sample(what, micros)

    monitor._sample = slow_sample

    async def stepper():
        await asyncio.sleep(0)
        time.sleep(0.3)  # STEP BLOCKS
        after_step.append(True)
        await asyncio.sleep(0)

    async def main():
        await asyncio.create_task(stepper(), name="stepper")
        await asyncio.sleep(0.05)  # the watchdog reports once the loop moves on
        return oxloop.stats()

    monitored.slow_callback_duration = 0.1
    s = monitored.run_until_complete(main())
    assert not after_step  # the slow charge ran, right after the step
    (event,) = [e for e in s.slow_events if not e.blocking]
    assert (event.task, event.function) == ("stepper", "stepper")
    assert event.where == f"{HERE}:{line_of('STEP BLOCKS')}"
    assert all(e.where == event.where for e in s.slow_events)


def test_plain_callback_is_named_by_its_function(monitored):
    def callback():
        crunch(0.2)

    async def main():
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.1)
        await asyncio.sleep(0.05)  # the watchdog reports once the loop moves on
        return oxloop.stats()

    s = monitored.run_until_complete(main())
    (event,) = s.slow_events
    assert event.task is None and event.function == "crunch"
    assert _monitor.format_event(event).startswith("a callback held the loop for")


def test_threshold_follows_slow_callback_duration(monitored):
    monitored.slow_callback_duration = 1.0

    async def main():
        crunch(0.2)
        await asyncio.sleep(0.05)
        return oxloop.stats()

    assert monitored.run_until_complete(main()).slow_callbacks == 0


def test_logging_is_rate_limited(monitored, caplog, monkeypatch):
    monkeypatch.setattr(_monitor, "LOG_BURST", 2)
    monitored.slow_callback_duration = 0.02

    async def main():
        for _ in range(4):
            crunch(0.1)  # five times the threshold, as sampling on a loaded machine needs
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return oxloop.stats()

    with caplog.at_level(logging.WARNING, logger="oxloop"):
        s = monitored.run_until_complete(main())
    assert s.slow_callbacks == 4
    assert len([r for r in caplog.records if r.name == "oxloop"]) == 2


# -- monitoring mode ---------------------------------------------------------------------------


def test_monitoring_keeps_asyncio_order(on_both):
    def scenario(loop):
        if isinstance(loop, oxloop.Loop):
            _monitor.enable(loop)
        order = []

        async def worker(i):
            for step in range(3):
                order.append((i, step))
                await asyncio.sleep(0)

        async def main():
            loop.call_soon(order.append, "soon")
            loop.call_later(0, order.append, "later")
            await asyncio.gather(*(worker(i) for i in range(3)))

        loop.run_until_complete(main())
        return order

    aio, ox = on_both(scenario)
    assert aio == ox


def test_no_thread_unless_monitored():
    base = monitor_threads()
    loop = oxloop.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    assert monitor_threads() == base
    _monitor.enable(loop)
    # The new thread names itself once it starts.
    assert wait_for(lambda: monitor_threads() == base + 1)
    loop.close()
    # Joined by close(); the kernel may list the exiting thread a moment after the join returns.
    assert wait_for(lambda: monitor_threads() == base)


def run_py(code, *args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, *args, "-c", code] if args == () else [sys.executable, *args],
        input=None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


REPORT = """
import asyncio, oxloop
async def main():
    s = oxloop.stats()
    print(s.monitoring, type(asyncio.get_running_loop()).__name__)
"""


def test_switches(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(REPORT + "asyncio.run(main())\n")
    base = {"OXLOOP_MONITOR": ""}
    cases = [
        (["-m", "oxloop", str(script)], base, "False Loop"),
        (["-m", "oxloop", "--monitor", str(script)], base, "True Loop"),
        (["-m", "oxloop", str(script)], {"OXLOOP_MONITOR": "1"}, "True Loop"),
        (["-m", "oxloop", str(script)], {"OXLOOP_MONITOR": "0"}, "False Loop"),
    ]
    for args, env, expected in cases:
        p = run_py(None, *args, env=env)
        assert (p.returncode, p.stdout.strip(), p.stderr) == (0, expected, ""), args
    mod = tmp_path / "appmod.py"
    mod.write_text(REPORT + "asyncio.run(main())\n")
    p = subprocess.run(
        [sys.executable, "-m", "oxloop", "--monitor", "-m", "appmod"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "OXLOOP_MONITOR": ""},
    )
    assert (p.returncode, p.stdout.strip()) == (0, "True Loop"), p.stderr
    for flag, expected in (("True", "True Loop"), ("False", "False Loop")):
        p = run_py(REPORT + f"oxloop.run(main(), monitor={flag})\n", env={"OXLOOP_MONITOR": "1"})
        assert (p.returncode, p.stdout.strip()) == (0, expected), p.stderr


# -- the live view -----------------------------------------------------------------------------


APP = textwrap.dedent(
    """
    import asyncio, sys, time, oxloop

    async def fetch():
        while True:
            await asyncio.sleep(0.2)
            time.sleep(0.15)  # APP-BLOCKS

    async def chatter():
        while True:
            await asyncio.sleep(0.001)

    async def main():
        tasks = [asyncio.create_task(fetch(), name="fetcher")]
        tasks += [asyncio.create_task(chatter(), name=f"chatter-{i}") for i in range(3)]
        print("ready", flush=True)
        await asyncio.gather(*tasks)

    oxloop.run(main())
    """
)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_top_attaches_to_a_running_program(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP)
    with subprocess.Popen(
        [sys.executable, "-m", "oxloop", "--monitor", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as app:
        check_top(app, script)
    # The program ended: its socket is gone and top says so.
    assert not os.path.exists(_live.socket_path(app.pid))
    top = subprocess.run(
        [sys.executable, "-m", "oxloop", "top", str(app.pid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert top.returncode == 1 and "no oxloop live socket" in top.stderr


def test_top_ignores_a_stale_socket(tmp_path, monkeypatch):
    # A program killed by a signal leaves its socket behind. In a directory of this test's own:
    # a socket left in the shared one by an earlier run with the same pid would be in the way.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with subprocess.Popen([sys.executable, "-c", "pass"]) as app:
        pass
    path = _live.socket_path(app.pid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    top = subprocess.run(
        [sys.executable, "-m", "oxloop", "top", str(app.pid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert top.returncode == 1 and f"process {app.pid} is not running" in top.stderr
    assert not os.path.exists(path)


def check_top(app, script):
    try:
        assert app.stdout.readline().strip() == "ready"
        path = _live.socket_path(app.pid)
        assert wait_for(lambda: os.path.exists(path))
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        time.sleep(1.0)  # a few blocking events
        top = subprocess.run(
            [sys.executable, "-m", "oxloop", "top", str(app.pid), "-n", "2", "-d", "0.2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert top.returncode == 0, top.stderr
        screen = top.stdout.split("\n\n\n")[-1]
        assert f"pid {app.pid}" in screen
        assert "lag (last 10 s)" in screen and "callbacks/s" in screen
        table = screen.split("TASK")[1]
        assert table.split("\n")[1].startswith("fetcher ")  # the busiest task
        assert f"task 'fetcher' (fetch())  {script}:{APP_LINE} in fetch" in screen
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=30)


APP_LINE = next(i for i, t in enumerate(APP.splitlines(), 1) if t.endswith("# APP-BLOCKS"))


def test_top_exits_when_the_program_ends(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio, oxloop\n"
        "async def main():\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(1.5)\n"
        "oxloop.run(main(), monitor=True)\n"
    )
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as app:
        assert app.stdout.readline().strip() == "ready"
        top = subprocess.run(
            [sys.executable, "-m", "oxloop", "top", str(app.pid), "-n", "1000", "-d", "0.1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert top.returncode == 0
    assert top.stdout.rstrip().endswith(f"oxloop top: process {app.pid} ended")


# -- OpenTelemetry -----------------------------------------------------------------------------


def test_opentelemetry_metrics(monitored):
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(sdk.MeterProvider(metric_readers=[reader]))
    from oxloop import _otel

    _otel._registered = False
    assert _otel.register()

    async def main():
        # Three times the threshold: the watchdog sees a step start up to a late wake-up after
        # it did (sampling, see monitor.rs), which on a loaded machine can be tens of ms.
        crunch(0.3)
        await asyncio.sleep(0.05)

    monitored.run_until_complete(main())
    data = reader.get_metrics_data()
    points = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    if p.attributes.get("loop") == hex(id(monitored)):
                        points[(m.name, p.attributes.get("quantile"))] = p.value
    s = oxloop.stats(monitored)
    assert points[("oxloop.loop.slow_events", None)] == s.slow_callbacks == 1
    assert points[("oxloop.loop.lag", "max")] > 0
    assert 0 < points[("oxloop.loop.busy_ratio", None)] <= 1
    assert points[("oxloop.loop.callbacks", None)] > 0


def test_nothing_imported_without_opentelemetry():
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import asyncio, oxloop\n"
        "from oxloop import _otel\n"
        "async def main(): pass\n"
        "oxloop.run(main(), monitor=True)\n"
        "print(_otel.register(), [m for m in sys.modules if m.startswith('opentelemetry.')])\n"
    )
    p = run_py(code)
    assert (p.returncode, p.stdout.strip()) == (0, "False []"), p.stderr
