"""A small service with a hidden blocking call, to watch with monitoring mode.

python -m oxloop --monitor examples/monitor_demo.py     # slow and blocking code is logged
python -m oxloop top                                    # in another terminal: the live view
"""

import asyncio
import hashlib
import time


async def fetch(i: int) -> None:
    while True:
        await asyncio.sleep(1.0)
        time.sleep(0.25)  # a blocking call in a coroutine: the loop stops for everyone


async def checksum() -> None:
    data = b"x" * 200_000
    while True:
        await asyncio.sleep(0.01)
        for _ in range(20):
            data = hashlib.sha256(data).digest() * 6_000  # CPU-bound work in small steps


async def ticker() -> None:
    while True:
        await asyncio.sleep(0.001)


async def main() -> None:
    tasks = [asyncio.create_task(fetch(0), name="fetcher")]
    tasks.append(asyncio.create_task(checksum(), name="checksummer"))
    tasks += [asyncio.create_task(ticker(), name=f"ticker-{i}") for i in range(20)]
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
