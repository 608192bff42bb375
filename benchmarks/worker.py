"""One benchmark on one loop, in a process of its own: ``python worker.py micro LOOP BENCH N WARMUP``.

The orchestrator (run.py) starts one worker per cell, so a loop that crashes or hangs costs one
cell, never the run. The worker prints ``RESULT <json>`` as its last line: ops, wall time, the
process's CPU time (user + system of all its threads, from getrusage), its peak RSS, and the calls
the loop made to its exception handler (asyncio makes none in these benchmarks, so any call is a
behaviour difference worth reading). ``python worker.py probe`` prints which loops import.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import resource
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loops import factory, probe


def describe_error(exc: BaseException) -> dict:
    """The error cell for ``exc`` and the traceback behind it."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    frames = traceback.extract_tb(exc.__traceback__)
    where = frames[-1].name if frames else "?"
    if isinstance(exc, NotImplementedError):
        error = f"not supported: NotImplementedError ({where})"
    else:
        error = f"{type(exc).__name__}: {exc}"
    return {"error": error, "traceback": tb}


def _rusage() -> tuple[float, float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_stime, ch.ru_utime + ch.ru_stime


def run_micro(loop_name: str, bench_name: str, n: int, warmup: int) -> dict:
    from micro import BY_NAME

    bench = BY_NAME[bench_name]
    loop = factory(loop_name)()
    asyncio.set_event_loop(loop)
    handler_calls = []

    def handler(loop, context):
        handler_calls.append(str(context.get("message")) + " " + repr(context.get("exception")))

    loop.set_exception_handler(handler)
    if warmup:
        loop.run_until_complete(bench.fn(loop, warmup))
    u0, s0, c0 = _rusage()
    t0 = time.perf_counter()
    ops = loop.run_until_complete(bench.fn(loop, n))
    wall = time.perf_counter() - t0
    u1, s1, c1 = _rusage()
    result = {
        "ok": True,
        "ops": ops,
        "wall": wall,
        "user": u1 - u0,
        "sys": s1 - s0,
        "cpu": (u1 - u0) + (s1 - s0),
        "children_cpu": c1 - c0,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "exception_handler_calls": handler_calls[:5],
    }
    try:
        loop.close()
    except Exception as exc:  # noqa: BLE001 - a failing close is noted, the numbers stand
        result["close_error"] = f"{type(exc).__name__}: {exc}"
    return result


def main(argv: list[str]) -> None:
    if argv[0] == "probe":
        print("RESULT " + json.dumps(probe()), flush=True)
        return
    try:
        result = run_micro(argv[1], argv[2], int(argv[3]), int(argv[4]))
    except BaseException as exc:  # noqa: BLE001 - any failure is the cell's error
        result = {"ok": False, **describe_error(exc)}
    print("RESULT " + json.dumps(result), flush=True)
    # Skip interpreter teardown: a loop that hangs or crashes there would cost the cell for nothing
    # it measured (executor threads and child watchers are already done with).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    # A crash in a loop's native code still shows the Python stack; run.py sends SIGUSR1 to a
    # cell that timed out, for the stacks of a hang.
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    main(sys.argv[1:])
