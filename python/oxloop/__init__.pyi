"""Type stubs for the public ``oxloop`` API."""

import asyncio
from asyncio.unix_events import _UnixDefaultEventLoopPolicy
from typing import Any, Coroutine, Optional, TypeVar, Union

from ._loop import Loop as Loop
from ._monitor import SlowEvent as SlowEvent
from ._monitor import Stats as Stats
from ._monitor import TaskTime as TaskTime

_T = TypeVar("_T")

__version__: str

def new_event_loop() -> Loop: ...
def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: Optional[bool] = None,
    monitor: Optional[bool] = None,
    graceful_shutdown: Union[bool, float, None] = None,
) -> _T: ...
def stats(loop: Optional[asyncio.AbstractEventLoop] = None) -> Stats: ...

# As at run time: the running Python's own default policy class (no deprecated name on 3.14).
class EventLoopPolicy(_UnixDefaultEventLoopPolicy):
    def get_event_loop(self) -> asyncio.AbstractEventLoop: ...
    def set_event_loop(self, loop: Optional[asyncio.AbstractEventLoop]) -> None: ...
    def new_event_loop(self) -> Loop: ...

def install() -> None: ...
