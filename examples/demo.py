"""oxloop in two minutes: run it with `make demo`.

Each section prints what it shows. Nothing here is oxloop-specific API except the entry points:
the same asyncio code runs on asyncio's loop and on oxloop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time

import oxloop

request_id = contextvars.ContextVar("request_id", default="-")


def section(title: str) -> None:
    print(f"\n== {title}")


async def handle(i: int) -> str:
    request_id.set(f"req-{i}")
    await asyncio.sleep(0.001 * (i % 5))
    return f"{request_id.get()} done"


async def tour() -> None:
    loop = asyncio.get_running_loop()

    section("1. The running loop is oxloop's")
    print(f"asyncio.get_running_loop() -> {loop!r}")

    section("2. Tasks, gather and contextvars work unchanged")
    results = await asyncio.gather(*(handle(i) for i in range(5)))
    print(results)

    section("3. Timers: ordered by deadline, never early, on time.monotonic()'s clock")
    fired = []
    start = loop.time()
    for delay in (0.03, 0.01, 0.02):
        loop.call_later(delay, lambda d=delay: fired.append((d, loop.time() - start)))
    await asyncio.sleep(0.05)
    for delay, at in fired:
        print(f"  call_later({delay}) fired after {at * 1000:.2f} ms")

    section("4. call_soon_threadsafe wakes a sleeping loop at once")
    woke = loop.create_future()
    sent = time.monotonic()
    threading.Thread(
        target=lambda: loop.call_soon_threadsafe(woke.set_result, time.monotonic())
    ).start()
    print(f"  woken {(await woke - sent) * 1e6:.0f} µs after the other thread asked")

    section("5. Errors go to the exception handler with asyncio's context keys")
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    loop.call_soon(lambda: 1 / 0)
    await asyncio.sleep(0)
    print(f"  {seen[0]['message']!r}: {seen[0]['exception']!r}")
    loop.set_exception_handler(None)

    section("6. Debug mode names slow callbacks")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.02)
    await asyncio.sleep(0)
    loop.set_debug(False)


async def blocking_service() -> None:
    async def fetch() -> None:
        await asyncio.sleep(0.01)
        time.sleep(0.2)  # a blocking call hidden in a coroutine

    async def ticker() -> None:
        for _ in range(100):
            await asyncio.sleep(0.001)

    await asyncio.gather(asyncio.create_task(fetch(), name="fetcher"), ticker())
    s = oxloop.stats()
    top = ", ".join(f"{t.name} {t.time * 1000:.0f} ms" for t in s.top_tasks[:3])
    print(
        f"  oxloop.stats(): {s.ticks} ticks, {s.callbacks} callbacks, lag p99 "
        f"{s.lag_p99 * 1000:.1f} ms, max {s.lag_max * 1000:.1f} ms, busy {s.busy_ratio:.0%}; "
        f"top tasks: {top}"
    )


def monitoring() -> None:
    section("7. Monitoring mode names the task and the line that block the loop")
    oxloop.run(blocking_service(), monitor=True)


def micro_benchmark() -> None:
    section("8. A quick side-by-side: 200k call_soon callbacks (see `make bench` for the real one)")
    n = 200_000

    def run(factory) -> float:
        loop = factory()
        try:
            counter = [0]

            def cb():
                counter[0] += 1
                if counter[0] == n:
                    loop.stop()

            t0 = time.perf_counter()
            for _ in range(n):
                loop.call_soon(cb)
            loop.run_forever()
            return time.perf_counter() - t0
        finally:
            loop.close()

    timings = {"asyncio": [], "oxloop": []}
    for _ in range(5):  # interleaved, median of 5
        timings["asyncio"].append(run(asyncio.new_event_loop))
        timings["oxloop"].append(run(oxloop.new_event_loop))
    med = {k: sorted(v)[len(v) // 2] for k, v in timings.items()}
    for k, v in med.items():
        print(f"  {k:8s} {n / v / 1e6:6.2f} M callbacks/s")
    print(f"  oxloop is {med['asyncio'] / med['oxloop']:.1f}x asyncio on this machine, this run")


if __name__ == "__main__":
    logging.basicConfig(format="  [log] %(levelname)s %(message)s")
    oxloop.run(tour())
    monitoring()
    micro_benchmark()
