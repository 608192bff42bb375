"""Echo network benchmark: a server on the loop under test, one client program for every loop.

Server (``python net.py server LOOP KIND FAMILY ADDRESS``): an echo server written one of three ways
on the loop under test, ``protocol`` (``create_server`` + ``asyncio.Protocol``), ``streams``
(``start_server``) or ``sock`` (``sock_accept`` / ``sock_recv`` / ``sock_sendall``), over ``tcp``
(127.0.0.1, a free port) or ``unix`` (ADDRESS is the socket path). It prints ``READY <json address>``
or ``ERROR <json>`` on stdout, then answers its stdin: ``stats`` prints its own ``getrusage`` (all
threads: user + system CPU, peak RSS), ``quit`` stops the loop.

``http`` is an HTTP/1.1 keep-alive server on ``create_server`` + httptools (TCP only), driven by
``wrk`` from the orchestrator.

Client (``python net.py client FAMILY ADDRESS SIZE CONNS REQUESTS WARMUP [IDLE]``): always CPython's own
asyncio loop, whatever loop the server runs. CONNS connections each ping-pong messages of SIZE bytes
and compare every echoed byte with what was sent. With IDLE, it first opens that many silent
connections, prints ``IDLE`` and waits for a line (the server's memory is read then). After WARMUP requests it prints ``WARM`` and waits
for ``GO`` on stdin, so the orchestrator can read the server's CPU before and after the measured
part; then it prints ``RESULT <json>``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import random
import resource
import signal
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loops import factory
from worker import describe_error

READ_SIZE = 102400  # what uvloop's echo benchmark servers read at once


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


_HTTP_BODY = b"Hello, World!" * 8
_HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(_HTTP_BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + _HTTP_BODY
)


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive on Protocol + httptools, as uvloop's HTTP benchmark server does."""

    def connection_made(self, transport):
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:  # noqa: BLE001 - a malformed request ends the connection
            self.transport.close()

    def on_message_complete(self):
        self.transport.write(_HTTP_RESPONSE)


async def _stream_echo(reader, writer):
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def _sock_echo(loop, conn):
    with conn:
        while True:
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                break
            await loop.sock_sendall(conn, data)


def _listening_socket(family: str, address: str) -> socket.socket:
    if family == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address)
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_server(loop, kind: str, family: str, address: str):
    """Start the echo server; return (address clients connect to, objects to keep alive)."""
    if kind == "http":
        server = await loop.create_server(HttpProtocol, "127.0.0.1", 0)
        return _bound(server.sockets[0], family), server
    if kind in ("protocol", "streams"):
        if kind == "protocol":
            tcp, unix, handler = loop.create_server, loop.create_unix_server, EchoProtocol
        else:
            tcp, unix, handler = asyncio.start_server, asyncio.start_unix_server, _stream_echo
        if family == "tcp":
            server = await tcp(handler, "127.0.0.1", 0)
        else:
            server = await unix(handler, address)
        return _bound(server.sockets[0], family), server
    if kind == "sock":
        sock = _listening_socket(family, address)

        async def accept_forever():
            while True:
                conn, _ = await loop.sock_accept(sock)
                conn.setblocking(False)
                if family == "tcp":
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                loop.create_task(_sock_echo(loop, conn))

        # Fail here, not in a background task, if the loop lacks sock_accept.
        accepter = loop.create_task(accept_forever())
        await asyncio.sleep(0)
        if accepter.done():
            accepter.result()
        return _bound(sock, family), (sock, accepter)
    raise ValueError(f"unknown server kind {kind!r}")


def _bound(sock, family):
    name = sock.getsockname()
    return list(name[:2]) if family == "tcp" else name


def _stats() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as f:
        rss_kib = int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return {"user": ru.ru_utime, "sys": ru.ru_stime, "maxrss_kib": ru.ru_maxrss, "rss_kib": rss_kib}


def serve(loop_name: str, kind: str, family: str, address: str) -> None:
    if loop_name == "native":
        # The same service in Rust, same control protocol: the ceiling for every kind (one echo
        # server stands for protocol, streams and sock_*; HTTP is its own mode).
        from loops import NATIVE_ECHO

        extra = ["http"] if kind == "http" else []
        os.execv(NATIVE_ECHO, [NATIVE_ECHO, family, address, *extra])
    try:
        loop = factory(loop_name)()
        asyncio.set_event_loop(loop)
        bound, _server = loop.run_until_complete(start_server(loop, kind, family, address))
    except BaseException as exc:  # noqa: BLE001 - reported as the cell's error
        print("ERROR " + json.dumps(describe_error(exc)), flush=True)
        return

    def control():
        for line in sys.stdin:
            if line.strip() == "stats":
                print("STATS " + json.dumps(_stats()), flush=True)
            elif line.strip() == "quit":
                break
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=control, daemon=True).start()
    print("READY " + json.dumps(bound), flush=True)
    loop.run_forever()
    os._exit(0)  # skip teardown: its cost and its failures are not what is measured


async def _connect(family, address):
    if family == "tcp":
        return await asyncio.open_connection(address[0], address[1])
    return await asyncio.open_unix_connection(address)


async def _ping_pong(conn, messages, count):
    """Send ``count`` messages on one connection, each echo checked byte for byte."""
    reader, writer = conn
    for i in range(count):
        msg = messages[i % len(messages)]
        writer.write(msg)
        got = await reader.readexactly(len(msg))
        if got != msg:
            bad = next(j for j in range(len(msg)) if got[j] != msg[j])
            raise AssertionError(f"echo differs at byte {bad} of message {i}")


async def _open_idle(family, address, count):
    """Open ``count`` connections that stay silent, a batch at a time (the backlog is finite)."""
    idle = []
    for start in range(0, count, 200):
        batch = min(200, count - start)
        idle += await asyncio.gather(*[_connect(family, address) for _ in range(batch)])
    # One byte each way, so the server has accepted every connection before it is measured.
    await asyncio.gather(*[_ping_pong(conn, [b"."], 1) for conn in idle])
    return idle


def client(family, address, size, conns, requests, warmup, idle=0) -> None:
    # The client is the same program for every server loop: CPython's own default loop.
    loop = asyncio.SelectorEventLoop()
    asyncio.set_event_loop(loop)
    per_conn = max(1, requests // conns)
    rng = random.Random(size * 1000 + conns)
    messages = [[rng.randbytes(size) for _ in range(4)] for _ in range(conns)]
    try:
        if idle:
            # Many idle connections, then a hot subset doing the measured ping-pong.
            idle_streams = loop.run_until_complete(_open_idle(family, address, idle))
            print("IDLE", flush=True)
            sys.stdin.readline()
        streams = loop.run_until_complete(
            asyncio.gather(*[_connect(family, address) for _ in range(conns)])
        )
        loop.run_until_complete(
            asyncio.gather(
                *[
                    _ping_pong(s, m, max(1, warmup // conns))
                    for s, m in zip(streams, messages, strict=True)
                ]
            )
        )
        print("WARM", flush=True)
        sys.stdin.readline()
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        loop.run_until_complete(
            asyncio.gather(
                *[_ping_pong(s, m, per_conn) for s, m in zip(streams, messages, strict=True)]
            )
        )
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        result = {
            "ok": True,
            "requests": per_conn * conns,
            "wall": wall,
            "client_cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        }
        for _, writer in streams:
            writer.close()
        if idle:
            for _, writer in idle_streams:
                writer.close()
    except BaseException as exc:  # noqa: BLE001 - reported as the cell's error
        result = {"ok": False, **describe_error(exc)}
        result["error"] = "client: " + result["error"]
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)


def main(argv):
    try:
        if argv[0] == "server":
            serve(*argv[1:5])
        elif argv[0] == "client":
            family, address = argv[1], json.loads(argv[2])
            client(family, address, *map(int, argv[3:]))
        else:
            raise SystemExit(f"unknown mode {argv[0]!r}")
    except Exception:
        traceback.print_exc()
        raise


if __name__ == "__main__":
    # A crash in a loop's native code still shows the Python stack; run.py sends SIGUSR1 to a
    # cell that timed out, for the stacks of a hang.
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    main(sys.argv[1:])
