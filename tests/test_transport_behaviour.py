"""Transport and server behaviours, each run on both loops and compared.

pause_reading really holding data back, write_eof on a write pipe, datagram write-buffer limits,
Server.wait_closed with a client still connected, 3.13's close_clients/abort_clients, and the two
sock_sendfile error paths (first call, mid-transfer).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile

import pytest


class Collect(asyncio.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.events = []
        self.transport = None
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc).__name__ if exc else None))
        if not self.lost.done():
            self.lost.set_result(exc)


def test_pause_reading_holds_data_back(on_both):
    def scenario(loop):
        async def main():
            a, b = socket.socketpair()
            tr, pr = await loop.connect_accepted_socket(Collect, a)
            tr.pause_reading()
            state = [tr.is_reading()]
            b.sendall(b"held")
            await asyncio.sleep(0.1)
            state.append(bytes(pr.data))
            tr.resume_reading()
            state.append(tr.is_reading())
            for _ in range(100):
                if pr.data:
                    break
                await asyncio.sleep(0.01)
            state.append(bytes(pr.data))
            tr.close()
            b.close()
            await pr.lost
            return state

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == [False, b"", True, b"held"]


@pytest.mark.parametrize("ending", ["eof", "close", "abort", "write error", "pipe close"])
def test_a_closed_transport_leaves_no_watch_on_its_fd(on_both, ending):
    """Whichever way a transport ends (after a flushed write, paused reading...), the fd number it
    had is free: a new fd that reuses the number and is watched with add_reader fires."""

    def scenario(loop):
        async def main():
            events = []
            a, b = socket.socketpair()
            b.setblocking(False)
            if ending == "pipe close":
                t, proto = await loop.connect_write_pipe(Collect, a)
            else:
                t, proto = await loop.connect_accepted_socket(Collect, a)
            fd = a.fileno()
            t.set_write_buffer_limits(high=1, low=0)
            t.write(b"y" * 1_000_000)  # more than the socket takes: the writer is registered
            if ending != "pipe close":
                t.pause_reading()
                t.resume_reading()
            while t.get_write_buffer_size():
                try:
                    b.recv(1 << 20)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            if ending == "eof":
                b.shutdown(socket.SHUT_WR)
            elif ending == "close" or ending == "pipe close":
                t.close()
            elif ending == "abort":
                t.write(b"z" * 1_000_000)
                t.abort()
            else:
                t.write(b"z" * 1_000_000)
                b.close()
                while not proto.lost.done():
                    await asyncio.sleep(0.001)
            await proto.lost
            events.extend(proto.events)
            b.close()
            r, w = os.pipe()
            try:
                ready = loop.create_future()
                loop.add_reader(r, lambda: ready.done() or ready.set_result(r))
                os.write(w, b"x")
                got = await asyncio.wait_for(ready, 5)
                events.append(("reused", got == fd))
                loop.remove_reader(r)
            finally:
                os.close(r)
                os.close(w)
            return events

        return loop.run_until_complete(main())

    on_asyncio, on_oxloop = on_both(scenario)
    assert on_oxloop == on_asyncio


def test_write_eof_on_a_write_pipe(on_both):
    def scenario(loop):
        async def main():
            r, w = os.pipe()
            tr, pr = await loop.connect_write_pipe(Collect, os.fdopen(w, "wb"))
            out = [tr.can_write_eof()]
            tr.write(b"abc")
            tr.write_eof()
            out.append(tr.is_closing())
            await asyncio.wait_for(pr.lost, 5)
            got = b""
            while chunk := os.read(r, 100):
                got += chunk
            os.close(r)
            out += [got, pr.events]
            return out

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == [True, True, b"abc", ["made", ("lost", None)]]


def test_write_pipe_keeps_what_was_written(on_both):
    # A full pipe queues what it cannot take: large bytes (held, not copied), a bytearray and a
    # memoryview changed after write() (their bytes at write() time count), small writes; the
    # reader gets them in order, and the buffer size counts each byte once.
    def scenario(loop):
        async def main():
            import fcntl

            r, w = os.pipe()
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
            tr, pr = await loop.connect_write_pipe(Collect, os.fdopen(w, "wb"))
            big = bytes(range(256)) * 400  # 100 KiB: partly taken by the pipe, the rest queued
            mutable = bytearray(b"m" * 40_000)
            view_source = bytearray(b"v" * 30_000)
            tr.write(big)
            sizes = [tr.get_write_buffer_size()]
            tr.write(b"small")
            tr.write(mutable)
            tr.write(memoryview(view_source))
            tr.write(big[1000:])
            mutable[:] = b"X" * len(mutable)
            view_source[:] = b"Y" * len(view_source)
            sizes.append(tr.get_write_buffer_size() - sizes[0])
            tr.close()
            got = bytearray()
            os.set_blocking(r, False)
            while not pr.lost.done():
                await asyncio.sleep(0)
                try:
                    got += os.read(r, 65536)
                except BlockingIOError:
                    pass
            os.set_blocking(r, True)
            while chunk := os.read(r, 65536):
                got += chunk
            os.close(r)
            want = big + b"small" + b"m" * 40_000 + b"v" * 30_000 + big[1000:]
            return sizes, bytes(got) == want, len(got), pr.events

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o
    assert o[1] is True and o[0][1] == 5 + 40_000 + 30_000 + 102_400 - 1000


def test_datagram_write_buffer_limits(on_both):
    def scenario(loop):
        async def main():
            tr, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            out = [tr.get_write_buffer_limits(), tr.get_write_buffer_size()]
            tr.set_write_buffer_limits(high=100)
            out.append(tr.get_write_buffer_limits())
            tr.set_write_buffer_limits(high=100, low=10)
            out.append(tr.get_write_buffer_limits())
            tr.set_write_buffer_limits()
            out.append(tr.get_write_buffer_limits())
            try:
                tr.set_write_buffer_limits(high=10, low=20)
            except ValueError as exc:
                out.append(str(exc))
            tr.close()
            await asyncio.sleep(0)
            return out

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o


def test_server_wait_closed_with_a_connected_client(on_both):
    # 3.11 returns at once after close(); 3.12+ waits for the connections to end.
    def scenario(loop):
        async def main():
            server = await loop.create_server(Collect, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            tr, pr = await loop.create_connection(Collect, "127.0.0.1", port)
            await asyncio.sleep(0.05)
            server.close()
            waiter = asyncio.ensure_future(server.wait_closed())
            done, _ = await asyncio.wait([waiter], timeout=0.2)
            early = waiter in done
            tr.close()
            await asyncio.wait_for(waiter, 5)
            await pr.lost
            return early, server.is_serving()

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == (sys.version_info < (3, 12), False)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="Server.close_clients is 3.13+")
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_server_close_clients(on_both, method):
    def scenario(loop):
        async def main():
            server = await loop.create_server(Collect, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            clients = [await loop.create_connection(Collect, "127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.05)
            server.close()
            getattr(server, method)()
            for _, pr in clients:
                await asyncio.wait_for(pr.lost, 5)
            await asyncio.wait_for(server.wait_closed(), 5)
            return [pr.events for _, pr in clients]

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o


def test_sendfile_oserror_on_first_call(on_both):
    # sendfile(2) refuses the file at once (a write-only fd): SendfileNotAvailableError, and the
    # file position is left at the start.
    def scenario(loop):
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            with tempfile.NamedTemporaryFile() as tmp:
                tmp.write(b"x" * 1000)
                tmp.flush()
                fd = os.open(tmp.name, os.O_WRONLY)
                with a, b, open(fd, "wb") as f:
                    try:
                        await loop.sock_sendfile(a, f, 0, None, fallback=False)
                        result = "sent"
                    except asyncio.SendfileNotAvailableError as exc:
                        result = ("SendfileNotAvailableError", str(exc))
                    return result, f.tell()

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o
    assert a[0][0] == "SendfileNotAvailableError" and a[1] == 0


def test_sendfile_oserror_mid_transfer(on_both):
    # The peer goes away after some data: the OSError propagates and the file position is
    # advanced by what was sent.
    size = 32 * 1024 * 1024

    def scenario(loop):
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            with a, tempfile.TemporaryFile() as f:
                f.write(b"y" * size)
                f.flush()
                f.seek(0)

                async def reader():
                    got = 0
                    while got < 100_000:
                        got += len(await loop.sock_recv(b, 65536))
                    b.close()

                task = asyncio.ensure_future(reader())
                try:
                    await loop.sock_sendfile(a, f, 0, None)
                    result = "completed"
                except OSError as exc:
                    result = isinstance(exc, ConnectionError)
                await task
                pos = f.tell()
                return result, 0 < pos < size

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == (True, True)


def test_contextvars_in_protocol_callbacks(on_both):
    # asyncio runs a socket transport's protocol callbacks in contexts copied from the code that
    # made the transport: data_received sees the connecting task's values, and what it sets stays
    # in its own context for the next call, never in the task's.
    import contextvars

    var = contextvars.ContextVar("var", default="unset")

    class Seeing(Collect):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.events.append(("made sees", var.get()))

        def data_received(self, data):
            super().data_received(data)
            self.events.append(("data sees", var.get()))
            var.set("set in data_received")

    def scenario(loop):
        async def main():
            a, b = socket.socketpair()
            var.set("task")
            tr, pr = await loop.connect_accepted_socket(Seeing, a)
            var.set("task, later")
            for chunk in (b"1", b"2"):
                b.sendall(chunk)
                for _ in range(100):
                    if len(pr.data) == int(chunk):
                        break
                    await asyncio.sleep(0.01)
            tr.close()
            b.close()
            await pr.lost
            return pr.events, var.get()

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o
