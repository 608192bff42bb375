"""Type stubs for the public ``oxloop`` API."""

import asyncio
from typing import Any, Coroutine, Optional, TypeVar

from ._loop import Loop as Loop

_T = TypeVar("_T")

__version__: str

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: Optional[bool] = None) -> _T: ...

class EventLoopPolicy(asyncio.AbstractEventLoopPolicy):
    def get_event_loop(self) -> asyncio.AbstractEventLoop: ...
    def set_event_loop(self, loop: Optional[asyncio.AbstractEventLoop]) -> None: ...
    def new_event_loop(self) -> Loop: ...

def install() -> None: ...
