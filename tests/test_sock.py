"""``loop.sock_*`` on oxloop and asyncio: echo, cancellation, bad input, sendfile.

Every scenario runs on both loops (``loop`` fixture) and, where the outcome is a value or an
exception, the two loops' outcomes are compared (``on_both``). Loopback addresses only.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import tempfile

import pytest

SIZES = [1, 1000, 65536 + 7, 3 * 1024 * 1024 + 11]


def _payload(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(min(n, 65536))) * (n // 65536 + 1)


def _pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def _tcp_pair(loop):
    """A connected TCP pair on 127.0.0.1, made with sock_accept and sock_connect."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        try:
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            server, addr = await accept
        except BaseException:
            client.close()
            raise
        assert addr == client.getsockname()
        assert server.gettimeout() == 0
        return client, server


def _outcome(loop, coro_fn):
    """Runs ``coro_fn()`` and returns ('ok', result) or (exception type name, str(exception))."""
    try:
        return "ok", loop.run_until_complete(coro_fn())
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, str(exc)


async def _echo(loop, a, b, data):
    async def reader():
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(b, 1 << 20)
            assert chunk
            got += chunk
        return bytes(got)

    task = asyncio.ensure_future(reader())
    await loop.sock_sendall(a, data)
    return await task


@pytest.mark.parametrize("size", SIZES)
def test_echo_socketpair(loop, size):
    data = _payload(size)[:size]
    a, b = _pair()
    with a, b:
        assert loop.run_until_complete(_echo(loop, a, b, data)) == data
        assert loop.run_until_complete(_echo(loop, b, a, data)) == data


@pytest.mark.parametrize("size", SIZES)
def test_echo_tcp(loop, size):
    data = _payload(size)[:size]

    async def main():
        client, server = await _tcp_pair(loop)
        with client, server:
            assert await _echo(loop, client, server, data) == data
            assert await _echo(loop, server, client, data) == data

    loop.run_until_complete(main())


def test_recv_into_and_memoryview(loop):
    a, b = _pair()
    with a, b:

        async def main():
            buf = bytearray(10)
            task = asyncio.ensure_future(loop.sock_recv_into(b, buf))
            await asyncio.sleep(0)
            assert not task.done()
            await loop.sock_sendall(a, memoryview(b"hello world")[:5])
            n = await task
            return n, bytes(buf[:n])

        assert loop.run_until_complete(main()) == (5, b"hello")


def test_udp_sendto_recvfrom(loop):
    async def main():
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c,
        ):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            c.setblocking(False)
            c.bind(("127.0.0.1", 0))
            pending = asyncio.ensure_future(loop.sock_recvfrom(s, 100))
            await asyncio.sleep(0)
            assert not pending.done()
            assert await loop.sock_sendto(c, b"ping", s.getsockname()) == 4
            data, addr = await pending
            assert (data, addr) == (b"ping", c.getsockname())
            buf = bytearray(64)
            into = asyncio.ensure_future(loop.sock_recvfrom_into(s, buf, 3))
            await asyncio.sleep(0)
            await loop.sock_sendto(c, b"abcdef", s.getsockname())
            n, addr = await into
            assert (n, bytes(buf[:n]), addr) == (3, b"abc", c.getsockname())

    loop.run_until_complete(main())


@pytest.mark.parametrize("op", ["recv", "recv_into", "recvfrom", "accept", "sendall", "connect"])
def test_cancel_leaves_socket_usable(loop, op):
    """A cancelled call leaves no watcher and the socket works for the next call."""

    async def main():
        a, b = _pair()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        try:
            if op == "recv":
                sock, coro = b, loop.sock_recv(b, 10)
            elif op == "recv_into":
                sock, coro = b, loop.sock_recv_into(b, bytearray(10))
            elif op == "recvfrom":
                sock, coro = b, loop.sock_recvfrom(b, 10)
            elif op == "accept":
                sock, coro = listener, loop.sock_accept(listener)
            elif op == "sendall":
                a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                sock, coro = a, loop.sock_sendall(a, b"x" * (4 << 20))
            else:
                # A SYN to a listener whose backlog is full stays unanswered: connect pends.
                fillers = [socket.socket() for _ in range(8)]
                for f in fillers:
                    f.setblocking(False)
                    try:
                        f.connect(listener.getsockname())
                    except BlockingIOError:
                        pass
                sock = socket.socket()
                sock.setblocking(False)
                coro = loop.sock_connect(sock, listener.getsockname())
            task = asyncio.ensure_future(coro)
            for _ in range(3):
                await asyncio.sleep(0)
            if op == "connect" and task.done():
                pytest.skip("the kernel completed the connect at once")
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            # No stale watcher: nothing is registered on the fd any more.
            assert not loop.remove_reader(sock.fileno())
            assert not loop.remove_writer(sock.fileno())
            if op in ("recv", "recv_into", "recvfrom"):
                await loop.sock_sendall(a, b"after")
                assert await loop.sock_recv(b, 10) == b"after"
            elif op == "accept":
                with socket.socket() as c:
                    c.setblocking(False)
                    await loop.sock_connect(c, listener.getsockname())
                    conn, _ = await loop.sock_accept(listener)
                    conn.close()
            elif op == "sendall":
                # The socket still carries data both ways.
                await loop.sock_sendall(b, b"back")
                assert await loop.sock_recv(a, 10) == b"back"
            else:
                sock.close()
                for f in fillers:
                    f.close()
        finally:
            a.close()
            b.close()
            listener.close()

    loop.run_until_complete(main())


def test_second_waiter_replaces_first_no_leak(loop):
    """Two pending reads on one socket: as asyncio does, the last registration wins."""
    a, b = _pair()
    with a, b:

        async def main():
            first = asyncio.ensure_future(loop.sock_recv(b, 10))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(loop.sock_recv(b, 10))
            await asyncio.sleep(0)
            await loop.sock_sendall(a, b"data")
            assert await second == b"data"
            assert not first.done()
            first.cancel()
            await asyncio.sleep(0)

        loop.run_until_complete(main())


def test_connect_refused(on_both):
    def scenario(loop):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as s:
            s.setblocking(False)
            return _outcome(loop, lambda: loop.sock_connect(s, ("127.0.0.1", port)))[0]

    aio, ox = on_both(scenario)
    assert aio == ox == "ConnectionRefusedError"


def test_connect_resolves_like_asyncio(on_both):
    def scenario(loop):
        async def main():
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                port = listener.getsockname()[1]
                with socket.socket() as s:
                    s.setblocking(False)
                    await loop.sock_connect(s, ("localhost", port))
                    peer = s.getpeername()
                    conn, _ = listener.accept()
                    conn.close()
                    return peer[0]

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


BAD_CALLS = {
    "recv_closed": lambda lp, s: lp.sock_recv(s, 10),
    "sendall_closed": lambda lp, s: lp.sock_sendall(s, b"x"),
    "accept_closed": lambda lp, s: lp.sock_accept(s),
    "connect_port_too_big": lambda lp, s: lp.sock_connect(s, ("127.0.0.1", 70000)),
    "connect_port_negative": lambda lp, s: lp.sock_connect(s, ("127.0.0.1", -1)),
    "connect_bad_address": lambda lp, s: lp.sock_connect(s, "not a tuple"),
    "connect_unknown_family_host": lambda lp, s: lp.sock_connect(s, ("::1", 80)),
    "sendto_port_too_big": lambda lp, s: lp.sock_sendto(s, b"x", ("127.0.0.1", 65536)),
    "recv_negative": lambda lp, s: lp.sock_recv(s, -1),
    "recv_into_readonly": lambda lp, s: lp.sock_recv_into(s, b"readonly"),
    "sendall_not_bytes": lambda lp, s: lp.sock_sendall(s, "text"),
    "recv_not_connected": lambda lp, s: lp.sock_recv(s, 10),
    "recv_str_size": lambda lp, s: lp.sock_recv(s, "10"),
    "recv_float_size": lambda lp, s: lp.sock_recv(s, 1.5),
    "recv_huge_size": lambda lp, s: lp.sock_recv(s, 2**70),
    "recv_into_not_connected": lambda lp, s: lp.sock_recv_into(s, bytearray(4)),
    "recv_into_strided": lambda lp, s: lp.sock_recv_into(s, memoryview(bytearray(8))[::2]),
    "sendall_not_connected": lambda lp, s: lp.sock_sendall(s, b"x"),
    "sendall_strided": lambda lp, s: lp.sock_sendall(s, memoryview(b"abcdef")[::2]),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
@pytest.mark.parametrize("debug", [False, True])
def test_bad_input_same_exception(on_both, name, debug):
    def scenario(loop):
        loop.set_debug(debug)
        kind = socket.SOCK_DGRAM if "sendto" in name else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind)
        s.setblocking(False)
        if name.endswith("_closed"):
            s.close()
        try:
            return _outcome(loop, lambda: BAD_CALLS[name](loop, s))
        finally:
            s.close()

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[0] != "ok"


@pytest.mark.parametrize(
    "call",
    [
        "recv",
        "recv_into",
        "recvfrom",
        "recvfrom_into",
        "sendall",
        "sendto",
        "connect",
        "accept",
        "sendfile",
    ],
)
def test_blocking_socket_refused_in_debug_mode(on_both, call):
    def scenario(loop):
        loop.set_debug(True)
        a, b = socket.socketpair()
        with a, b, tempfile.TemporaryFile() as f:
            args = {
                "recv": (a, 1),
                "recv_into": (a, bytearray(1)),
                "recvfrom": (a, 1),
                "recvfrom_into": (a, bytearray(1)),
                "sendall": (a, b"x"),
                "sendto": (a, b"x", None),
                "connect": (a, ("127.0.0.1", 1)),
                "accept": (a,),
                "sendfile": (a, f),
            }[call]
            return _outcome(loop, lambda: getattr(loop, "sock_" + call)(*args))

    aio, ox = on_both(scenario)
    assert aio == ox == ("ValueError", "the socket must be non-blocking")


@pytest.mark.parametrize("size", [0, 1, 100_000, 2 * 1024 * 1024 + 3])
@pytest.mark.parametrize("native", [True, False])
def test_sendfile(on_both, size, native):
    data = _payload(size)[:size]

    def scenario(loop):
        async def main():
            a, b = _pair()
            with a, b, tempfile.TemporaryFile() as f:
                f.write(data)
                f.flush()
                f.seek(0)
                source = f if native else _NoFileno(f)

                # Sizes 0 and 1 start at the end of the file (or past it): nothing is sent.
                offset = min(5, size)

                async def reader():
                    got = bytearray()
                    while len(got) < len(data) - offset:
                        got += await loop.sock_recv(b, 1 << 20)
                    return bytes(got)

                task = asyncio.ensure_future(reader())
                sent = await loop.sock_sendfile(a, source, offset, None)
                got = await task
                return sent, got == data[offset:], f.tell()

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


class _NoFileno:
    """A binary file without fileno(): forces the read-and-send fallback."""

    mode = "rb"

    def __init__(self, f):
        self._f = f

    def seek(self, *args):
        return self._f.seek(*args)

    def readinto(self, buf):
        return self._f.readinto(buf)


SENDFILE_BAD = {
    "text_mode": lambda lp, s, f, d: lp.sock_sendfile(s, open(os.devnull)),  # noqa: SIM115 - closed by the test
    "dgram": lambda lp, s, f, d: lp.sock_sendfile(d, f),
    "count_zero": lambda lp, s, f, d: lp.sock_sendfile(s, f, 0, 0),
    "count_str": lambda lp, s, f, d: lp.sock_sendfile(s, f, 0, "1"),
    "offset_negative": lambda lp, s, f, d: lp.sock_sendfile(s, f, -1),
    "offset_float": lambda lp, s, f, d: lp.sock_sendfile(s, f, 1.0),
    "no_fallback": lambda lp, s, f, d: lp.sock_sendfile(s, _NoFileno(f), fallback=False),
}


@pytest.mark.parametrize("name", sorted(SENDFILE_BAD))
def test_sendfile_bad_input(on_both, name):
    def scenario(loop):
        a, b = _pair()
        opened = []
        real_open = open

        def tracking_open(*args, **kwargs):
            fobj = real_open(*args, **kwargs)
            opened.append(fobj)
            return fobj

        d = socket.socket(type=socket.SOCK_DGRAM)
        with a, b, d, tempfile.TemporaryFile() as f:
            f.write(b"data")
            f.seek(0)
            import builtins

            builtins.open = tracking_open
            try:
                return _outcome(loop, lambda: SENDFILE_BAD[name](loop, a, f, d))
            finally:
                builtins.open = real_open
                for fobj in opened:
                    fobj.close()

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[0] != "ok"


def test_sendfile_peer_gone(on_both):
    def scenario(loop):
        async def main():
            a, b = _pair()
            with a, tempfile.TemporaryFile() as f:
                f.write(b"x" * (4 << 20))
                f.flush()
                b.close()
                try:
                    await loop.sock_sendfile(a, f)
                except OSError as exc:
                    return type(exc).__name__, exc.errno in (errno.EPIPE, errno.ECONNRESET)
                return "no error"

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


def test_unix_stream_accept_connect_echo(on_both):
    """AF_UNIX addresses are passed through unresolved, as asyncio does."""

    def scenario(loop):
        async def main():
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "s.sock")
                with (
                    socket.socket(socket.AF_UNIX) as listener,
                    socket.socket(socket.AF_UNIX) as client,
                ):
                    listener.bind(path)
                    listener.listen()
                    listener.setblocking(False)
                    client.setblocking(False)
                    accept = asyncio.ensure_future(loop.sock_accept(listener))
                    await loop.sock_connect(client, path)
                    server, _ = await accept
                    with server:
                        data = _payload(200_000)
                        return await _echo(loop, client, server, data) == data

        return loop.run_until_complete(main())

    assert on_both(scenario) == (True, True)


def test_sendfile_cancelled_mid_transfer(loop, request):
    """A cancelled sock_sendfile leaves the file position after the bytes that went out, no
    watcher on the socket, and the socket usable."""
    request.applymarker(
        pytest.mark.xfail(
            strict=True,
            reason="asyncio's sock_sendfile (oxloop borrows it) removes its writer on cancel, so "
            "the file-position update its callback would do never runs",
        )
    )

    async def main():
        a, b = _pair()
        with a, b, tempfile.TemporaryFile() as f:
            f.write(_payload(8 << 20))
            f.flush()
            task = asyncio.ensure_future(loop.sock_sendfile(a, f, 0))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not task.done()  # the peer does not read: the transfer stalls
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            assert not loop.remove_writer(a.fileno())
            received = 0
            while True:
                try:
                    chunk = b.recv(1 << 20)
                except BlockingIOError:
                    break
                received += len(chunk)
            assert f.tell() == received > 0
            await loop.sock_sendall(a, b"still works")
            assert await loop.sock_recv(b, 100) == b"still works"

    loop.run_until_complete(main())
