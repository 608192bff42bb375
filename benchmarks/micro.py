"""Scheduling micro-benchmarks: each runs a fixed amount of work on the running loop.

A benchmark is ``async def bench(loop, n) -> int``: it does ``n`` units of work on ``loop``, checks
the result (a wrong count raises, so a misbehaving loop is an error cell, not a fast one) and returns
the number of operations done. The worker times it and turns it into ops/s. The same ``n`` and the
same seeded random numbers are used for every loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Callbacks scheduled per driver step: big enough that the loop's per-tick cost is amortised the
# way a busy server amortises it, small enough to keep the ready queue in cache.
BATCH = 1000
SEED = 20260521


class Mismatch(AssertionError):
    """The loop did the work but got a different answer than asyncio would."""


def _check(got, want, what: str) -> None:
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, expected {want!r}")


async def _batched(loop, n: int, schedule: Callable[[int], None]) -> None:
    """Call ``schedule(k)`` for batches of up to BATCH until n, one batch per loop tick."""
    done = loop.create_future()
    remaining = n

    def step():
        nonlocal remaining
        if remaining <= 0:
            done.set_result(None)
            return
        k = min(BATCH, remaining)
        remaining -= k
        schedule(k)
        loop.call_soon(step)

    loop.call_soon(step)
    await done


async def call_soon(loop, n):
    count = 0

    def cb():
        nonlocal count
        count += 1

    def schedule(k):
        for _ in range(k):
            loop.call_soon(cb)

    await _batched(loop, n, schedule)
    await asyncio.sleep(0)
    _check(count, n, "callbacks run")
    return n


async def call_soon_args(loop, n):
    total = 0

    def cb(a, b, c):
        nonlocal total
        total += a + b + c

    def schedule(k):
        for i in range(k):
            loop.call_soon(cb, i, 1, 2)

    await _batched(loop, n, schedule)
    await asyncio.sleep(0)
    want = (n // BATCH) * (BATCH * (BATCH - 1) // 2) + (n % BATCH) * (n % BATCH - 1) // 2 + 3 * n
    _check(total, want, "sum of callback arguments")
    return n


async def call_later(loop, n):
    """n timers with random delays under 1 ms, scheduled 10k at a time; each batch must fire."""
    rng = random.Random(SEED)
    fired = late = pending = 0
    batch_done = None

    def cb(when):
        nonlocal pending, fired, late
        fired += 1
        if loop.time() < when:
            late += 1  # fired before its deadline: asyncio never does
        pending -= 1
        if pending == 0:
            batch_done.set_result(None)

    for start in range(0, n, 10 * BATCH):
        pending = min(10 * BATCH, n - start)
        batch_done = loop.create_future()
        for _ in range(pending):
            delay = rng.random() * 0.001
            loop.call_later(delay, cb, loop.time() + delay)
        await batch_done
    _check(fired, n, "timers fired")
    _check(late, 0, "timers that fired before their deadline")
    return n


async def call_later_cancel(loop, n):
    """Schedule a timer 1-10 s ahead and cancel it at once; a tick after every batch."""
    rng = random.Random(SEED)
    fired = 0

    def cb():
        nonlocal fired
        fired += 1

    for start in range(0, n, BATCH):
        for _ in range(min(BATCH, n - start)):
            loop.call_later(1.0 + 9.0 * rng.random(), cb).cancel()
        await asyncio.sleep(0)
    _check(fired, 0, "cancelled timers that fired")
    return n


async def tasks_gather(loop, n):
    async def work(i):
        return i

    results = await asyncio.gather(*[loop.create_task(work(i)) for i in range(n)])
    _check(sum(results), n * (n - 1) // 2, "sum of task results")
    return n


async def sleep0_pingpong(loop, n):
    """Two tasks taking turns: each yields with sleep(0); n switches in all."""
    order = []

    async def player(tag):
        for _ in range(n // 2):
            order.append(tag)
            await asyncio.sleep(0)

    await asyncio.gather(player(0), player(1))
    _check(len(order), 2 * (n // 2), "turns taken")
    _check(order[:4], [0, 1, 0, 1], "turn order")
    return 2 * (n // 2)


async def future_roundtrip(loop, n):
    total = 0
    for i in range(n):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, i)
        total += await fut
    _check(total, n * (n - 1) // 2, "sum of future results")
    return n


async def queue(loop, n):
    q = asyncio.Queue(maxsize=100)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        total = 0
        for _ in range(n):
            total += await q.get()
        return total

    _, total = await asyncio.gather(producer(), consumer())
    _check(total, n * (n - 1) // 2, "sum of items consumed")
    return n


async def call_soon_threadsafe(loop, n):
    """One foreign thread schedules n callbacks as fast as it can; the loop runs them."""
    done = loop.create_future()
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    def produce():
        for _ in range(n):
            loop.call_soon_threadsafe(cb)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        await done
    finally:
        thread.join()
    return n


async def run_in_executor(loop, n):
    """n trivial calls through a 4-thread pool (the same explicit pool on every loop), 50 at a time."""
    total = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, n, 50):
            k = min(50, n - start)
            results = await asyncio.gather(
                *[loop.run_in_executor(pool, abs, -i) for i in range(start, start + k)]
            )
            total += sum(results)
    _check(total, n * (n - 1) // 2, "sum of executor results")
    return n


async def subprocess_spawn(loop, n):
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec("/bin/true")
        _check(await proc.wait(), 0, "exit status of /bin/true")
    return n


PIPE_CHUNK = bytes(range(256)) * 256  # 64 KiB


async def subprocess_pipe(loop, n):
    """Push n MiB through `cat` and read it back; every byte is checked (CRC-32)."""
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    chunks = n * 16

    async def write():
        for _ in range(chunks):
            proc.stdin.write(PIPE_CHUNK)
            await proc.stdin.drain()
        proc.stdin.close()

    async def read():
        crc, size = 0, 0
        while True:
            data = await proc.stdout.read(256 * 1024)
            if not data:
                return crc, size
            crc = zlib.crc32(data, crc)
            size += len(data)

    _, (crc, size) = await asyncio.gather(write(), read())
    _check(await proc.wait(), 0, "exit status of cat")
    _check(size, chunks * len(PIPE_CHUNK), "bytes read back")
    want = 0
    for _ in range(chunks):
        want = zlib.crc32(PIPE_CHUNK, want)
    _check(crc, want, "CRC-32 of the bytes read back")
    return n


async def _getaddrinfo(loop, n, host):
    want = None
    for _ in range(n):
        infos = await loop.getaddrinfo(host, 80, type=1)  # SOCK_STREAM
        addrs = sorted(info[4][:2] for info in infos)
        if want is None:
            want = addrs
            if not addrs:
                raise Mismatch(f"getaddrinfo({host!r}) returned nothing")
        _check(addrs, want, f"getaddrinfo({host!r}) answer")
    return n


async def getaddrinfo_localhost(loop, n):
    return await _getaddrinfo(loop, n, "localhost")


async def getaddrinfo_numeric(loop, n):
    return await _getaddrinfo(loop, n, "127.0.0.1")


@dataclass(frozen=True)
class Micro:
    """One row of the micro table."""

    name: str
    fn: Callable[..., Awaitable[int]]
    #: Work of a full run; a quick run does a quarter (never below 1).
    n: int
    #: What one operation is, for the table.
    unit: str = "op"
    #: Warm-up work, run in the same process first and discarded.
    warmup: int = 0
    #: If set, this size is used in both full and quick runs (the issue fixes it).
    fixed: bool = False


MICRO = [
    Micro("call_soon", call_soon, 400_000, "callback", 40_000),
    Micro("call_soon_args", call_soon_args, 400_000, "callback", 40_000),
    Micro("call_later", call_later, 150_000, "timer", 15_000),
    Micro("call_later_cancel", call_later_cancel, 300_000, "timer", 30_000),
    Micro("tasks_gather_100k", tasks_gather, 100_000, "task", 10_000, fixed=True),
    Micro("sleep0_pingpong", sleep0_pingpong, 200_000, "switch", 20_000),
    Micro("future_roundtrip", future_roundtrip, 100_000, "future", 10_000),
    Micro("queue", queue, 300_000, "item", 30_000),
    Micro("call_soon_threadsafe", call_soon_threadsafe, 100_000, "callback", 10_000),
    Micro("run_in_executor", run_in_executor, 10_000, "call", 1_000),
    Micro("subprocess_spawn", subprocess_spawn, 300, "spawn", 30),
    Micro("subprocess_pipe_100MiB", subprocess_pipe, 100, "MiB", 10, fixed=True),
    Micro("getaddrinfo_localhost", getaddrinfo_localhost, 4_000, "lookup", 400),
    Micro("getaddrinfo_numeric", getaddrinfo_numeric, 4_000, "lookup", 400),
]
BY_NAME = {m.name: m for m in MICRO}


def size(bench: Micro, quick: bool) -> int:
    if bench.fixed or not quick:
        return bench.n
    return max(1, bench.n // 4)


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py; this module is imported by the worker")
