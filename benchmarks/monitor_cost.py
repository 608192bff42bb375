"""Instruction cost of monitoring mode, measured with callgrind (robust on a shared machine).

``python benchmarks/monitor_cost.py [BENCH ...]`` runs each case on ``oxloop`` and on
``oxloop+monitor`` under ``valgrind --tool=callgrind``, at N and 2N operations, and reports the
loop thread's instructions per operation (the difference of the two runs over N, so start-up
cancels out) and the monitoring overhead in percent. Cases: scheduling micro-benchmarks from
``micro.py`` and ``echo_protocol_unix`` / ``echo_sock_unix`` (an echo server on the loop under
test, 1 KiB ping-pong from a blocking client thread; only the loop thread is counted).

The watchdog samples on wall-clock time, so what its samples cost (charging a task: a call into
Python on the loop thread, at most once per 2 ms period in a real run) depends on how fast the
machine runs valgrind, not on the work: on a shared machine it moved the figures by up to 10%.
By default the period is an hour (``--period``, seconds), so no sample falls in the run and the
count is the per-tick and per-callback hooks' alone, the part that grows with load; ``--period
0.1`` (the real 2 ms scaled by valgrind's slowdown of about 50) includes the samples. The
watchdog thread's own instructions are reported apart. Both modes import the modules monitoring
mode imports, so the figures compare the loop's work alone.

``--json PATH`` also writes the figures there; ``make bench`` writes
``benchmarks/results/monitor-cost.json`` and the report shows it beside the wall-clock cost.

Case mode (internal): ``python monitor_cost.py --case LOOP BENCH N PERIOD``.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DEFAULT = (
    "call_soon",
    "sleep0_pingpong",
    "future_roundtrip",
    "tasks_gather_100k",
    "echo_protocol_unix",
    "echo_sock_unix",
)
SIZES = {
    "call_soon": 20_000,
    "sleep0_pingpong": 10_000,
    "future_roundtrip": 10_000,
    "tasks_gather_100k": 5_000,
    "queue": 10_000,
    "call_later": 10_000,
    "echo_protocol_unix": 2_000,
    "echo_sock_unix": 2_000,
}


def case(loop_name: str, bench: str, n: int, period: float) -> None:
    from loops import factory
    from oxloop import _live, _monitor, _otel

    # Both modes import what monitoring mode imports (the live socket, OpenTelemetry if
    # installed): a bigger heap makes every garbage collection dearer, a cost of having the
    # modules loaded, not of the loop's hot path.
    _otel.register()
    del _live
    _monitor.SAMPLE_PERIOD = period
    loop = factory(loop_name)()
    if bench.startswith("echo_"):
        import net

        kind = bench.split("_")[1]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s")
            address, keep = loop.run_until_complete(net.start_server(loop, kind, "unix", path))
            done = loop.create_future()

            def client():
                with socket.socket(socket.AF_UNIX) as c:
                    c.connect(address)
                    msg = b"x" * 1024
                    for _ in range(n):
                        c.sendall(msg)
                        got = 0
                        while got < len(msg):
                            got += len(c.recv(65536))
                loop.call_soon_threadsafe(done.set_result, None)

            threading.Thread(target=client).start()
            loop.run_until_complete(done)
    else:
        from micro import BY_NAME

        loop.run_until_complete(BY_NAME[bench].fn(loop, n))
    sys.stdout.flush()
    os._exit(0)


def instructions(loop_name, bench, n, period) -> tuple[int, int]:
    """(loop thread's instructions, other threads' instructions) of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--case",
                loop_name,
                bench,
                str(n),
                str(period),
            ],
            check=True,
            capture_output=True,
            # Dict lookups depend on the hash seed: fix it, or counts vary by a few percent.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        counts = {}
        for path in glob.glob(out + "-*"):
            with open(path) as f:
                text = f.read()
            thread = int(re.search(r"^thread: (\d+)", text, re.M).group(1))
            counts[thread] = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    return counts[1], sum(v for k, v in counts.items() if k != 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="*", default=DEFAULT)
    parser.add_argument("--period", type=float, default=3600.0)
    parser.add_argument("--case", nargs=4)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.case:
        loop_name, bench, n, period = args.case
        case(loop_name, bench, int(n), float(period))
        return
    print(
        f"{'benchmark':<22} {'oxloop instr/op':>16} {'+monitor instr/op':>18} {'cost':>7}"
        f" {'watchdog instr':>15}"
    )
    rows = []
    for bench in args.benches:
        n = SIZES.get(bench, 10_000)
        per_op = {}
        watchdog = 0
        for loop_name in ("oxloop", "oxloop+monitor"):
            a, _ = instructions(loop_name, bench, n, args.period)
            b, other = instructions(loop_name, bench, 2 * n, args.period)
            per_op[loop_name] = (b - a) / n
            if loop_name != "oxloop":
                watchdog = other
        off, on = per_op["oxloop"], per_op["oxloop+monitor"]
        rows.append({"bench": bench, "off": off, "on": on, "watchdog": watchdog})
        print(
            f"{bench:<22} {off:>16,.0f} {on:>18,.0f} {100 * (on - off) / off:>+6.2f}%"
            f" {watchdog:>15,}",
            flush=True,
        )
    if args.json:
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.json, "w") as f:
            json.dump({"date": date, "python": sys.version.split()[0], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
