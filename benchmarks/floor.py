"""The Python floor of the call_soon rows: what any loop must pay under them, in instructions.

    python benchmarks/floor.py [--n 2000,10000]

Each row is ``micro.py``'s Python work (the scheduling loop, the attribute lookup of
``loop.call_soon``, the callbacks' bodies) with ``loop.call_soon`` replaced by the cheapest C
call there is, a bound ``list.append``, and the callbacks run by a C loop
(``deque(map(operator.call, batch), 0)``). No handle, no context: what a loop adds above this
number is its own cost, including the ``contextvars`` copy and enter/exit asyncio requires per
callback. Counted as ``instructions.py`` counts: cachegrind at two sizes, the difference per op.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import operator
import re
import subprocess
import sys

BATCH = 1000  # as micro.py


class FloorLoop:
    """Holds ``call_soon`` as an instance attribute, so the call site reads as in micro.py."""


def _drive(n, schedule, ready, run):
    remaining = n
    while remaining > 0:
        k = min(BATCH, remaining)
        remaining -= k
        schedule(k)
        batch = ready[:]
        ready.clear()
        collections.deque(run(batch), 0)


def call_soon(n):
    loop, ready, count = FloorLoop(), [], 0
    loop.call_soon = ready.append

    def cb():
        nonlocal count
        count += 1

    def schedule(k):
        for _ in range(k):
            loop.call_soon(cb)

    _drive(n, schedule, ready, lambda b: map(operator.call, b))
    assert count == n


def call_soon_args(n):
    # The callback and its arguments travel as one tuple, as a loop's handle holds them.
    loop, ready, total = FloorLoop(), [], 0
    loop.call_soon = ready.append

    def cb(a, b, c):
        nonlocal total
        total += a + b + c

    def schedule(k):
        for i in range(k):
            loop.call_soon((cb, i, 1, 2))

    _drive(n, schedule, ready, lambda b: itertools.starmap(operator.call, b))


ROWS = {"call_soon": call_soon, "call_soon_args": call_soon_args}


def _instructions(row: str, n: int) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    cmd += [sys.executable, __file__, "--child", row, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return int(re.search(r"I\s+refs:\s+([\d,]+)", out.stderr).group(1).replace(",", ""))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        ROWS[sys.argv[2]](200)
        ROWS[sys.argv[2]](int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="2000,10000", help="the two operation counts, n1,n2")
    n1, n2 = (int(x) for x in parser.parse_args().n.split(","))
    for row in ROWS:
        per_op = (_instructions(row, n2) - _instructions(row, n1)) / (n2 - n1)
        print(f"{row:24s} {'floor':10s} {per_op:10.0f} instructions/op", flush=True)


if __name__ == "__main__":
    main()
