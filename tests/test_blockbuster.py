"""Blocking-call detectors: blockbuster allows a few blocking calls only from asyncio's own files.

aiohttp's and AnyIO's test suites run under blockbuster. It refuses ``os.stat`` unless called
from ``asyncio/unix_events.py`` (``create_unix_server``, ``_stop_serving``), ``os.sendfile``
unless from ``asyncio/base_events.py`` ``sendfile`` or ``unix_events.py``
``_sock_sendfile_native_impl``, and the ``os.read`` inside ``subprocess.Popen`` unless from
``base_events.py`` ``subprocess_exec`` / ``subprocess_shell``. oxloop borrows those asyncio
functions (``oxloop/_borrowed.py``), so the same scenario passes on both loops.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile

import pytest

blockbuster = pytest.importorskip("blockbuster")

PAYLOAD = os.urandom(300_000)


class _Sink(asyncio.Protocol):
    """Collects what a connection receives; ``done`` resolves at EOF."""

    def __init__(self, loop, expected):
        self.data = bytearray()
        self.expected = expected
        self.done = loop.create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.expected and not self.done.done():
            self.done.set_result(bytes(self.data))


def test_unix_server_sendfile_and_subprocess_under_blockbuster(on_both):
    with tempfile.TemporaryDirectory() as d:
        file_path = os.path.join(d, "payload.bin")
        with open(file_path, "wb") as f:
            f.write(PAYLOAD)

        def scenario(loop):
            # A fresh path per loop: removing a stale socket file is flagged on any loop.
            path = os.path.join(d, f"{type(loop).__name__}.sock")

            async def main():
                sinks = []

                def factory():
                    sinks.append(_Sink(loop, len(PAYLOAD)))
                    return sinks[-1]

                # create_unix_server: os.stat of a stale socket file.
                server = await loop.create_unix_server(factory, path)
                transport, _ = await loop.create_unix_connection(asyncio.Protocol, path)
                with open(file_path, "rb") as f:  # opening is not a flagged call
                    # loop.sendfile over a transport: os.sendfile.
                    sent = await loop.sendfile(transport, f)
                    received = await asyncio.wait_for(sinks[0].done, 10)
                transport.close()
                server.close()  # _stop_serving: os.stat / os.unlink of the socket file (3.13+)
                await server.wait_closed()
                # subprocess_exec: the os.read inside subprocess.Popen.
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    "import sys; sys.stdout.write(sys.stdin.read().upper())",
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                out, _ = await proc.communicate(b"hello")
                return sent, len(received), out, proc.returncode

            with blockbuster.blockbuster_ctx():
                result = loop.run_until_complete(main())
            return (*result, os.path.exists(path))

        aio, ox = on_both(scenario)
    assert aio[:4] == ox[:4] == (len(PAYLOAD), len(PAYLOAD), b"HELLO", 0)
    # The socket file: unlinked by asyncio's _stop_serving from 3.13 on.
    assert aio[4] == ox[4] == (sys.version_info < (3, 13))


def test_sock_sendfile_under_blockbuster(on_both):
    with tempfile.TemporaryFile() as f:
        f.write(PAYLOAD)
        f.flush()

        def scenario(loop):
            async def main():
                a, b = socket.socketpair()
                with a, b:
                    a.setblocking(False)
                    b.setblocking(False)
                    reader = loop.create_task(_read_exactly(loop, b, len(PAYLOAD)))
                    sent = await loop.sock_sendfile(a, f, 0)
                    return sent, await reader

            with blockbuster.blockbuster_ctx():
                return loop.run_until_complete(main())

        aio, ox = on_both(scenario)
    assert aio == ox == (len(PAYLOAD), PAYLOAD)


async def _read_exactly(loop, sock, n):
    data = bytearray()
    while len(data) < n:
        data += await loop.sock_recv(sock, n - len(data))
    return bytes(data)
