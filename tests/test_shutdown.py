"""Graceful stop on SIGTERM (``oxloop.run(main(), graceful_shutdown=...)``), in subprocesses.

Without the opt-in, SIGTERM does to ``oxloop.run`` exactly what it does to ``asyncio.run``
(compared). With it, the main task is cancelled, the default executor finishes, open transports
flush what they buffered, and the exit status says how it went.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent(
    """
    import asyncio, sys, time, oxloop

    JOB = float(sys.argv[2])
    IGNORE_CANCEL = sys.argv[3] == "stubborn"

    def job():
        time.sleep(JOB)
        print("executor done", flush=True)

    class Serve(asyncio.Protocol):
        def connection_made(self, transport):
            # Far more than the socket buffers hold: most of it waits in the transport.
            transport.write(b"x" * 8_000_000)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(Serve, sys.argv[4])
        print("ready", flush=True)
        if JOB:
            loop.run_in_executor(None, job)
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                print("main cancelled", flush=True)
                if not IGNORE_CANCEL:
                    raise

    RUN = sys.argv[1]
    if RUN == "asyncio":
        asyncio.run(main())
    elif RUN == "oxloop":
        oxloop.run(main())
    else:
        oxloop.run(main(), graceful_shutdown=float(RUN))
    print("not reached", flush=True)
    """
)


def start(tmp_path, run, job=0.5, mode="normal"):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    path = str(tmp_path / "s.sock")
    proc = subprocess.Popen(
        [sys.executable, str(script), run, str(job), mode, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    return proc, path


def test_without_opt_in_sigterm_is_as_under_asyncio(tmp_path):
    results = []
    for run in ("asyncio", "oxloop"):
        proc, _ = start(tmp_path, run)
        with proc:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        results.append((proc.returncode, out, err))
    assert results[0] == results[1]
    assert results[0][0] == -signal.SIGTERM


def test_sigterm_cancels_drains_and_exits_0(tmp_path):
    proc, path = start(tmp_path, "10")
    with proc, socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        time.sleep(0.3)  # the server wrote; most of the payload waits in its transport
        proc.send_signal(signal.SIGTERM)
        received = 0
        while chunk := client.recv(1 << 20):
            received += len(chunk)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == "main cancelled\nexecutor done\n"
    assert err == ""
    assert received == 8_000_000


def test_timeout_exit_status(tmp_path):
    # The executor job outlives the timeout.
    proc, _ = start(tmp_path, "0.3", job=3.0)
    with proc:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 124
    assert "graceful shutdown timed out after 0.3 s" in err
    assert out.startswith("main cancelled\n")


def test_main_ignoring_cancellation_times_out(tmp_path):
    proc, _ = start(tmp_path, "0.3", job=0.0, mode="stubborn")
    with proc:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 124
    assert "not reached" not in out


def test_second_sigterm_stops_at_once(tmp_path):
    proc, _ = start(tmp_path, "30", job=0.0, mode="stubborn")
    with proc:
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "main cancelled\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "second SIGTERM" in err


@pytest.mark.parametrize("value", [True, 5])
def test_normal_return_is_unchanged(value):
    code = (
        "import oxloop\n"
        "async def main(): return 42\n"
        f"print(oxloop.run(main(), graceful_shutdown={value!r}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "42\n", "")
