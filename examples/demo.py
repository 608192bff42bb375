"""A first look at oxloop (placeholder; replaced by the showcase)."""
import asyncio

import oxloop


async def main():
    loop = asyncio.get_running_loop()
    print(f"running on {type(loop).__module__}.{type(loop).__name__}")


oxloop.run(main())
