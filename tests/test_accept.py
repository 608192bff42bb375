"""``sock_accept``, ``sock_connect`` and server accept loops, compared on asyncio's loop and oxloop.

oxloop accepts with ``accept4`` in Rust and serves listening sockets with a native watcher; these
scenarios check that what a program sees is asyncio's: the accepted socket and address, errors,
what cancellation leaves behind, how many connections one readiness takes (``backlog``), the
pause on EMFILE, and a server closed while connections are pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import socket
import tempfile

import pytest


def _listener(family=socket.AF_INET, address=("127.0.0.1", 0), backlog=16):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(address)
    s.listen(backlog)
    s.setblocking(False)
    return s


def _describe(conn, address, client):
    """What sock_accept returned, in terms that do not depend on the run (no fd numbers)."""
    return {
        "class": type(conn).__name__,
        "family": conn.family,
        "type": conn.type,
        "proto": conn.proto,
        "timeout": conn.gettimeout(),
        "blocking": os.get_blocking(conn.fileno()),
        "inheritable": conn.get_inheritable(),
        "address_type": type(address).__name__,
        "address_is_peer": address == client.getsockname(),
        "repr_prefix": repr(conn).split(" fd=")[0],
    }


@pytest.mark.parametrize("kind", ["tcp", "unix_path", "unix_abstract", "unix_unnamed_peer"])
def test_sock_accept_returns_what_asyncio_returns(on_both, kind):
    def scenario(loop):
        async def main():
            with tempfile.TemporaryDirectory() as d:
                if kind == "tcp":
                    listener, client = _listener(), socket.socket()
                    target = listener.getsockname()
                else:
                    where = (
                        "\0oxloop-accept-%d" % os.getpid()
                        if kind == "unix_abstract"
                        else (os.path.join(d, "s"))
                    )
                    listener, client = (
                        _listener(socket.AF_UNIX, where),
                        socket.socket(socket.AF_UNIX),
                    )
                    target = where
                    if kind != "unix_unnamed_peer":
                        client.bind(where + "-client")
                with listener, client:
                    client.setblocking(False)
                    accept = asyncio.ensure_future(loop.sock_accept(listener))
                    await asyncio.sleep(0)  # the accept waits in the reactor
                    await loop.sock_connect(client, target)
                    conn, address = await accept
                    with conn:
                        waited = _describe(conn, address, client)
                    # And the first try succeeding at once (the connection is already queued).
                    with socket.socket(client.family) as c2:
                        c2.setblocking(False)
                        await loop.sock_connect(c2, target)
                        conn, address = await loop.sock_accept(listener)
                        with conn:
                            immediate = _describe(conn, address, c2)
                    return waited, immediate

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


def test_sock_accept_blocking_listener(on_both):
    """A listening socket with a timeout (allowed outside debug mode): accepted as asyncio does."""

    def scenario(loop):
        loop.set_debug(False)  # debug mode refuses the socket (tested in test_sock.py)

        async def main():
            with socket.socket() as listener, socket.socket() as client:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                listener.settimeout(5)
                client.connect(listener.getsockname())
                conn, address = await loop.sock_accept(listener)
                with conn:
                    return _describe(conn, address, client)

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


def test_sock_accept_on_non_listening_socket(on_both):
    def scenario(loop):
        with socket.socket() as s:
            s.setblocking(False)
            try:
                loop.run_until_complete(loop.sock_accept(s))
            except OSError as exc:
                return type(exc).__name__, exc.errno, str(exc)

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[1] == errno.EINVAL


def test_sock_connect_unix_refused_and_missing(on_both):
    def scenario(loop):
        out = []
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            for make in (False, True):
                if make:
                    # A socket file with nobody listening.
                    with socket.socket(socket.AF_UNIX) as dead:
                        dead.bind(path)
                with socket.socket(socket.AF_UNIX) as s:
                    s.setblocking(False)
                    try:
                        loop.run_until_complete(loop.sock_connect(s, path))
                    except OSError as exc:
                        out.append((type(exc).__name__, exc.errno, exc.strerror))
        return out

    aio, ox = on_both(scenario)
    assert aio == ox
    assert [e[1] for e in aio] == [errno.ENOENT, errno.ECONNREFUSED]


def test_cancelled_connect_leaves_fd_reusable(loop):
    """A connect cancelled while pending leaves no watcher: add_reader on the fd works."""

    async def main():
        with _listener(backlog=0) as listener:
            # Fill the accept queue so the next SYN stays unanswered and the connect pends.
            fillers = [socket.socket() for _ in range(8)]
            sock = socket.socket()
            try:
                for f in fillers:
                    f.setblocking(False)
                    try:
                        f.connect(listener.getsockname())
                    except BlockingIOError:
                        pass
                sock.setblocking(False)
                task = asyncio.ensure_future(loop.sock_connect(sock, listener.getsockname()))
                for _ in range(3):
                    await asyncio.sleep(0)
                if task.done():
                    pytest.skip("the kernel completed the connect at once")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert not loop.remove_writer(sock.fileno())
                fired = loop.create_future()
                loop.add_writer(sock.fileno(), fired.set_result, "writer")
                loop.add_reader(sock.fileno(), lambda: None)
                assert loop.remove_reader(sock.fileno())
                assert loop.remove_writer(sock.fileno())
            finally:
                sock.close()
                for f in fillers:
                    f.close()

    loop.run_until_complete(main())


class _Recorder(asyncio.Protocol):
    """Counts connections; closes each at once."""

    def __init__(self, made):
        self.made = made

    def connection_made(self, transport):
        self.made.append(transport.get_extra_info("peername"))
        transport.close()


def test_server_backlog_per_readiness(on_both):
    """One readiness accepts at most ``backlog`` connections, as asyncio's _accept_connection."""

    def scenario(loop):
        async def main():
            made = []
            backlog = 2
            # Listening before serving starts, so connections queue up first.
            sock = _listener(backlog=backlog)
            server = await loop.create_server(
                lambda: _Recorder(made), sock=sock, backlog=backlog, start_serving=False
            )
            address = sock.getsockname()
            clients = []
            try:
                # backlog + 1 connections fit the kernel's accept queue.
                for _ in range(backlog + 1):
                    c = socket.socket()
                    c.connect(address)
                    clients.append(c)
                await server.start_serving()
                counts = []
                for _ in range(6):
                    await asyncio.sleep(0)
                    counts.append(len(made))
                peers = sorted(made) == sorted(c.getsockname() for c in clients)
                return counts, peers
            finally:
                for c in clients:
                    c.close()
                server.close()
                await server.wait_closed()

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[0][-1] == 3 and aio[1]


def test_server_closed_with_connections_pending(on_both):
    """close() while connections wait to be accepted: none is accepted, nothing is reported."""

    def scenario(loop):
        async def main():
            made = []
            server = await loop.create_server(lambda: _Recorder(made), "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            listen_fd = server.sockets[0].fileno()
            with socket.socket() as c:
                c.connect(address)
                server.close()
                await server.wait_closed()
                for _ in range(4):
                    await asyncio.sleep(0)
                # The fd number may be reused at once: nothing of the old server watches it.
                r, w = socket.socketpair()
                with r, w:
                    reused = r.fileno() == listen_fd
                    fired = loop.create_future()
                    loop.add_reader(r.fileno(), fired.set_result, "read")
                    w.send(b"x")
                    got = await fired
                    loop.remove_reader(r.fileno())
                c.settimeout(5)
                try:
                    eof = c.recv(1)
                except ConnectionResetError:
                    eof = "reset"
                return made, got, eof, reused or "fd not reused"

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[0] == []


# NOTE: asyncio's _accept_connection2 then fails to attach the transport to the closed server (an
# AssertionError before 3.13, reported in debug mode only) and leaves it to the GC: on both loops.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_server_close_in_same_tick_as_readiness(on_both):
    """The listening fd is ready, and a callback earlier in the same tick closes the server."""

    def scenario(loop):
        async def main():
            made = []
            server = await loop.create_server(lambda: _Recorder(made), "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            with socket.socket() as c:
                c.connect(address)
                # The next poll reports the listener ready; close() runs before its watcher.
                loop.call_soon(lambda: loop.call_soon(server.close))
                await asyncio.sleep(0)
                await server.wait_closed()
                for _ in range(4):
                    await asyncio.sleep(0)
                return len(made)

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox


@pytest.mark.parametrize("debug", [False, True])
def test_server_serves_many_in_debug_and_not(on_both, debug):
    def scenario(loop):
        loop.set_debug(debug)

        async def handle(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            address = server.sockets[0].getsockname()

            async def client(i):
                r, w = await asyncio.open_connection(*address)
                w.write(b"%d" % i)
                got = await r.read()
                w.close()
                await w.wait_closed()
                return got

            got = await asyncio.gather(*[client(i) for i in range(20)])
            server.close()
            await server.wait_closed()
            return got

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox == [b"%d" % i for i in range(20)]


def test_server_on_socket_subclass(on_both):
    """A listening socket of another class is served through its own accept(), as asyncio."""

    class Listener(socket.socket):
        accepted = 0

        def accept(self):
            pair = super().accept()
            Listener.accepted += 1
            return pair

    def scenario(loop):
        Listener.accepted = 0

        async def main():
            made = []
            with Listener() as sock:
                sock.bind(("127.0.0.1", 0))
                server = await loop.create_server(lambda: _Recorder(made), sock=sock)
                with socket.socket() as c:
                    c.connect(sock.getsockname())
                    while not made:
                        await asyncio.sleep(0)
                server.close()
                await server.wait_closed()
            return len(made), Listener.accepted

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox == (1, 1)


def test_accept_out_of_fds_pauses_then_resumes(on_both):
    """EMFILE: the exception handler gets asyncio's context, accepting pauses, then resumes."""

    def scenario(loop):
        async def main():
            made = []
            server = await loop.create_server(lambda: _Recorder(made), "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            client = socket.socket()
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            lowest_free = os.dup(0)
            os.close(lowest_free)
            try:
                # No fd number is free below the limit: accept fails with EMFILE.
                resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
                client.connect(address)
                while not loop.handled_errors:
                    await asyncio.sleep(0)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            context = loop.handled_errors[0]
            shape = (
                context["message"],
                type(context["exception"]).__name__,
                context["exception"].errno,
                type(context["socket"]).__name__,
                context["socket"].fileno() == server.sockets[0].fileno(),
            )
            # Accepting resumes after ACCEPT_RETRY_DELAY.
            while not made:
                await asyncio.sleep(0.05)
            # asyncio's accept loop scheduled one retry per backlog slot: let every one of them
            # run before the server closes (a retry after close reports a ValueError).
            await asyncio.sleep(asyncio.constants.ACCEPT_RETRY_DELAY + 0.5)
            client.close()
            server.close()
            await server.wait_closed()
            return shape, len(made)

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[0][:3] == ("socket.accept() out of system resource", "OSError", errno.EMFILE)


def _first_report(on_both, provoke):
    """What the first exception-handler call says when ``provoke(loop, server)`` (a context
    manager, entered while the server runs) makes its accept loop fail, the same on both loops;
    the message is cut before the callback's arguments (their reprs hold addresses)."""

    def scenario(loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            with provoke(loop, server):
                while not loop.handled_errors:
                    await asyncio.sleep(0)
            context = loop.handled_errors[0]
            shape = (
                context["message"].split("(")[0],
                repr(context["exception"]),
                type(context["handle"]).__name__,
                context["handle"].cancelled(),
            )
            server.close()
            await server.wait_closed()
            loop.handled_errors.clear()
            return shape

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    return aio


def test_accept_error_reported_as_asyncio_reports_it(on_both):
    """An accept error other than EMFILE and friends (EINVAL: the listener was shut down) goes to
    the exception handler as the failure of asyncio's ``_accept_connection`` reader handle."""

    @contextlib.contextmanager
    def shut_down(loop, server):
        # A listening socket shut down for reading is readable, and accept fails with EINVAL.
        server.sockets[0].shutdown(socket.SHUT_RD)
        yield

    assert _first_report(on_both, shut_down) == (
        "Exception in callback BaseSelectorEventLoop._accept_connection",
        repr(OSError(errno.EINVAL, os.strerror(errno.EINVAL))),
        "Handle",
        False,
    )


def test_accept_task_failure_reported_as_asyncio_reports_it(on_both):
    """An error making the connection's task (here the task factory's) goes to the exception
    handler as the failure of asyncio's ``_accept_connection`` reader handle."""

    def refuse(loop, coro, **kwargs):
        # Close what asyncio's loop would leave to the collector (a ResourceWarning).
        coro.cr_frame.f_locals["conn"].close()
        coro.close()
        raise RuntimeError("no task")

    @contextlib.contextmanager
    def connect_refusing_tasks(loop, server):
        loop.set_task_factory(refuse)
        try:
            with socket.create_connection(server.sockets[0].getsockname()):
                yield
        finally:
            loop.set_task_factory(None)

    assert _first_report(on_both, connect_refusing_tasks) == (
        "Exception in callback BaseSelectorEventLoop._accept_connection",
        "RuntimeError('no task')",
        "Handle",
        False,
    )
