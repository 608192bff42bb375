"""Instruction cost of monitoring mode, measured with callgrind (robust on a shared machine).

``python benchmarks/monitor_cost.py [ROW ...]`` runs each row on ``oxloop`` and on
``oxloop+monitor`` with ``instructions.py``'s children and counting: the loop thread's
instructions (callgrind, ``--separate-threads``) at N and 2N operations, after the same warm-up,
so ``(I(2N) - I(N)) / N`` is the work per operation with start-up cancelled out. Rows are
scheduling micro-benchmarks of ``micro.py`` and the network rows ``echo_protocol_unix``
(``make bench``'s protocol echo server on a Unix socket, 1 KiB ping-pong from a blocking client
process that valgrind does not follow; only the loop thread is counted) and ``instructions.py``'s
``protocol_echo_1KiB`` / ``sock_echo_1KiB`` (both ends on the loop). ``echo_sock_unix`` can be
asked for, but its count depends on timing (see ``NETWORK``).

The two columns differ in monitoring alone, as with ``instructions.py --idle-thread``: every child
imports the modules monitoring mode imports (a bigger heap makes every garbage collection dearer,
a cost of the modules being loaded, not of the hot path) and runs an idle thread (glibc takes its
multi-threaded paths in a process that ever started a thread, as a monitored one has its
watchdog: about 300 instructions per echo that are not the monitor's).

Heap layout moves single rows by a few percent either way: glibc's ``_int_malloc`` serves the
same 1 KiB ``bytes`` from a different bin when an unrelated allocation sits elsewhere (seen: +80
instructions per echo, 227 against 307, with no code of the monitor's in it). So each network row
runs in ``--layouts`` heap layouts (the child mallocs and keeps a pad of a different size before
it makes the loop; both columns get the same pads), and the table shows the median of the
per-layout differences and their range. Scheduling rows allocate no large objects per operation
and run in one layout unless ``--layouts-all``.

The watchdog samples on wall-clock time, so what its samples cost (charging a task: a call into
Python on the loop thread, at most once per 2 ms period in a real run) depends on how fast the
machine runs valgrind, not on the work. By default the period is an hour (``--period``, seconds),
so no sample falls in the run and the count is the per-tick and per-callback hooks' alone, the
part that grows with load; ``--period 0.1`` (the real 2 ms scaled by valgrind's slowdown of about
50) includes the samples. The other threads' instructions (the watchdog, and the idle thread
and echo rows' waiting thread that both columns run) are reported as the difference between
the columns.

``--json PATH`` also writes the figures there; ``make bench`` writes
``benchmarks/results/monitor-cost.json`` and ``report.py`` puts the table in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import instructions  # noqa: E402

SCHEDULING = ("call_soon", "sleep0_pingpong", "future_roundtrip", "tasks_gather_100k")
# NOTE: echo_sock_unix is not a default row: its server's work per operation depends on whether
# the client's next message is already there when sock_recv is called (then no tick), a race
# that valgrind's slowdown decides, so its count moved by up to 50% between identical runs.
# sock_echo_1KiB, both ends on the loop, measures the same sock_* paths deterministically.
NETWORK = ("echo_protocol_unix", "protocol_echo_1KiB", "sock_echo_1KiB")
DEFAULT = SCHEDULING + NETWORK
# Operations N per row (the runs do N and 2N after a warm-up of min(N, 200)).
SIZES = {
    "call_soon": 20_000,
    "sleep0_pingpong": 10_000,
    "future_roundtrip": 10_000,
    "tasks_gather_100k": 5_000,
    "queue": 10_000,
    "call_later": 10_000,
    "echo_protocol_unix": 2_000,
    "echo_sock_unix": 2_000,
    "protocol_echo_1KiB": 2_000,
    "sock_echo_1KiB": 2_000,
}
# Heap pads (bytes, malloc'd before the loop) of the layouts, in order; more than these cycle on.
PADS = (0, 1_536, 4_608, 10_752, 23_040, 47_616)
# The issue's line for the cost of monitoring mode, by kind of row.
TARGET = {"network": 1.0, "scheduling": 3.0}


def kind(row: str) -> str:
    return "network" if row.startswith(("echo_", "sock_echo", "protocol_echo")) else "scheduling"


def measure(row: str, loop: str, n: int, pad: int, period: float) -> tuple[int, int, int]:
    """(loop thread, other threads, loop thread in oxloop's code) instructions for ``n``
    operations of ``row``."""
    env = {
        instructions.IDLE_THREAD_ENV: "1",
        instructions.MONITORED_RUN_ENV: "1",
        instructions.HEAP_PAD_ENV: str(pad),
        instructions.SAMPLE_PERIOD_ENV: str(period),
    }
    return instructions.thread_instructions(loop, row, n, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", default=DEFAULT)
    parser.add_argument("--period", type=float, default=3600.0, help="sampling period, seconds")
    parser.add_argument("--layouts", type=int, default=3, help="heap layouts per network row")
    parser.add_argument("--layouts-all", action="store_true", help="as many for every row")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at once")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    plan = []
    for row in args.rows:
        many = args.layouts_all or kind(row) == "network"
        for i in range(args.layouts if many else 1):
            plan.append((row, PADS[i % len(PADS)] + 64 * (i // len(PADS))))
    jobs = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for row, pad in plan:
            n = SIZES.get(row, 10_000)
            for loop in ("oxloop", "oxloop+monitor"):
                for count in (n, 2 * n):
                    jobs[row, pad, loop, count] = pool.submit(
                        measure, row, loop, count, pad, args.period
                    )
        print(f"{len(jobs)} valgrind runs, {args.jobs} at a time", flush=True)
        print(
            f"{'row':<20} {'kind':<10} {'off instr/op':>12} {'on instr/op':>12} {'cost':>7}"
            f" {'range':>15} {'layouts':>7} {'in oxloop':>9} {'hooks':>6} {'others':>8}"
        )
        rows = []
        for row in args.rows:
            n = SIZES.get(row, 10_000)
            runs = []
            for r, pad in plan:
                if r != row:
                    continue
                per = {}
                for loop in ("oxloop", "oxloop+monitor"):
                    (a, _, own_a), (b, other, own_b) = (
                        jobs[row, pad, loop, c].result() for c in (n, 2 * n)
                    )
                    per[loop] = ((b - a) / n, other, (own_b - own_a) / n)
                (off, other_off, own_off), (on, other_on, own_on) = (
                    per["oxloop"],
                    per["oxloop+monitor"],
                )
                runs.append(
                    {
                        "pad": pad,
                        "off": off,
                        "on": on,
                        "cost": 100 * (on - off) / off,
                        "own_off": own_off,
                        "own_on": own_on,
                        "others": other_on - other_off,
                    }
                )
            costs = [r["cost"] for r in runs]
            result = {
                "bench": row,
                "kind": kind(row),
                "off": statistics.median(r["off"] for r in runs),
                "on": statistics.median(r["on"] for r in runs),
                "cost": statistics.median(costs),
                "cost_min": min(costs),
                "cost_max": max(costs),
                "target": TARGET[kind(row)],
                "others": statistics.median(r["others"] for r in runs),
                # oxloop's own code: the hooks' instructions, which heap layout does not move.
                "own_off": statistics.median(r["own_off"] for r in runs),
                "own_on": statistics.median(r["own_on"] for r in runs),
                "runs": runs,
            }
            rows.append(result)
            print(
                f"{row:<20} {result['kind']:<10} {result['off']:>12,.0f} {result['on']:>12,.0f}"
                f" {result['cost']:>+6.2f}% {min(costs):>+6.2f}..{max(costs):+.2f}%"
                f" {len(runs):>7} {result['own_off']:>9,.0f}"
                f" {result['own_on'] - result['own_off']:>+6.0f} {result['others']:>8,.0f}",
                flush=True,
            )
    if args.json:
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": date,
                    "python": sys.version.split()[0],
                    "method": "loop thread, callgrind, idle thread and import parity",
                    "period": args.period,
                    "rows": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
