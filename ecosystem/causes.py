"""Known causes of oxloop-only failures, matched on the failure message (or the test id).

docs/ecosystem.md groups each suite's oxloop-only failures under these causes; a failure that
matches none is listed under "not yet classified". The numbers are the causes of issue 8.
"""

from __future__ import annotations

import re

#: (pattern searched in "test id + message", cause)
CAUSES: list[tuple[str, str]] = [
    (
        r"BlockingError: Blocking call to",
        "blockbuster: oxloop's own Python files make blocking calls (os.read in subprocess "
        "start, os.sendfile, os.stat) that blockbuster allows only from asyncio's files "
        "(issue 8, cause 1)",
    ),
    (
        r"test_web_sendfile_functional.*Not enough data to satisfy content",
        "aiohttp's static files come back empty: blockbuster stops os.sendfile called from "
        "oxloop's own files (issue 8, cause 1)",
    ),
    (
        r"subprocess \d+ is still running|unraisable exception warnings",
        "a child process left running by a subprocess start that blockbuster stopped, "
        "reported at garbage collection (follows from cause 1)",
    ),
    (
        r"Lists differ: \[\] != \[Frame|asyncio/test_connection.py::\w+::(test_backpressure|"
        r"test_acknowledge_ping_non_matching_pong|test_terminate_ping_on_close)",
        "data written reaches the peer's protocol a loop iteration later than on asyncio (the "
        "suite waits two sleep(0)s; oxloop polls I/O every other tick) (issue 8, cause 2)",
    ),
    (
        r"'' != \('(sock|peer)', 1234\)|test_explicit_socket",
        "patches do not reach oxloop's transports: asyncio.Transport.get_extra_info patched on the "
        "class, a socket subclass's Python recv/send (issue 8, cause 5)",
    ),
    (
        r"Invalid file descriptor: -1",
        "remove_reader/remove_writer of a socket closed after add_reader raises ValueError "
        "(issue 8, cause 3)",
    ),
    (
        r"'ctx': 'MISSING'|contextvar|ContextVar",
        "protocol callbacks do not run in the transport's contextvars context (issue 8, cause 4)",
    ),
    (
        r"attribute '\w+' is read-only|is not writable|object attribute '\w+' is read-only"
        r"|has no attribute '__dict__'",
        "transport or loop attributes cannot be assigned or patched (issue 8, causes 5 and 8)",
    ),
    (
        r"test_asyncio_run__default_loop_factory",
        "uvicorn checks isinstance(loop, asyncio's _UnixSelectorEventLoop) (issue 8, cause 6)",
    ),
]

UNCLASSIFIED = "not yet classified"


def cause_of(test: str, message: str) -> str:
    text = f"{test} {message}"
    for pattern, cause in CAUSES:
        if re.search(pattern, text):
            return cause
    return UNCLASSIFIED
