"""Instructions per operation under valgrind: a benchmark that a busy machine cannot disturb.

    python benchmarks/instructions.py call_soon,sleep0_pingpong oxloop,uvloop [--n 2000,10000]

Wall-clock rows move with whatever else the machine runs; instruction counts do not. Each
(row, loop) cell runs twice under ``valgrind --tool=cachegrind --cache-sim=no`` with ``n1`` and
``n2`` operations (warm-up included in both) and prints ``(I(n2) - I(n1)) / (n2 - n1)``, the
instructions per operation with start-up and warm-up cancelled out. Rows are those of
``micro.py`` plus ``sock_echo_1KiB`` (a 1 KiB ``sock_sendall`` / ``sock_recv`` round trip over a
socketpair, both ends on the loop), ``protocol_echo_1KiB`` (the same client against an
``asyncio.Protocol`` echo on the other end, through ``connect_accepted_socket``),
``sock_accept_connect`` (one TCP connection per op made with ``sock_connect`` and taken with
``sock_accept``, then both ends closed), ``server_accept`` (one TCP connection per op to a
``create_server`` server whose protocol closes it at once; the client connects with
``sock_connect`` and waits for EOF with ``sock_recv``), and ``echo_protocol_unix`` /
``echo_sock_unix`` (the echo servers of ``make bench`` on a Unix socket, 1 KiB ping-pong from a
blocking client in another process, which valgrind does not follow: the server's work). Instructions are not time (syscalls and
cache misses are not counted, nor waiting for the GIL), so timer and cross-thread rows vary by a
few percent.
A loop named ``NAME=PATH`` runs oxloop from PATH (a copy of ``python/`` built at another commit).

``oxloop+monitor`` (monitoring mode on) is a loop like the others. Its watchdog samples on
wall-clock time, so what samples cost depends on how fast valgrind runs, not on the work: the
child sets the sampling period to ``SAMPLE_PERIOD`` (an hour, so none falls in the run), and when
that column is asked for every column counts the loop thread alone (callgrind,
``--separate-threads``) and every oxloop column imports the modules monitoring mode imports.
What remains is the hooks' cost per tick and per callback (``monitor_cost.py`` says more).

``--idle-thread`` starts one thread in every child that waits, doing nothing, for the run to
end. A monitored process has a second thread (the watchdog), and glibc takes its multi-threaded
paths in any process that ever started a thread (locked malloc arenas, the cancellation-point
code of ``send``/``recv``/``epoll_wait``): about 300 instructions per echo operation that have
nothing to do with the loop. With the flag every column pays them, so the monitored column's
difference is the monitor's own work; a program that already runs a thread (an executor, a
resolver, a logging queue) is in that case.

Two environment variables tune a child, for ``monitor_cost.py``: ``OXLOOP_BENCH_HEAP_PAD`` (bytes
allocated with malloc before the loop is made and kept: another heap layout for the same work,
see there) and ``OXLOOP_BENCH_SAMPLE_PERIOD`` (the monitored column's sampling period).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


# The monitored column's sampling period, in seconds: no sample within a run.
SAMPLE_PERIOD = 3600.0
# Set in a child's environment by ``--idle-thread``.
IDLE_THREAD_ENV = "OXLOOP_BENCH_IDLE_THREAD"
# Set in a child's environment when a monitored column is asked for.
MONITORED_RUN_ENV = "OXLOOP_BENCH_MONITORED_RUN"
# Bytes a child allocates (malloc) and keeps before it makes the loop: another heap layout.
HEAP_PAD_ENV = "OXLOOP_BENCH_HEAP_PAD"
# The monitored column's sampling period in a child, if not SAMPLE_PERIOD.
SAMPLE_PERIOD_ENV = "OXLOOP_BENCH_SAMPLE_PERIOD"


async def protocol_echo(loop, n):
    a, b = socket.socketpair()
    a.setblocking(False)
    data = b"x" * 1024

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, chunk):
            self.transport.write(chunk)

    transport, _ = await loop.connect_accepted_socket(Echo, b)
    with a:
        for _ in range(n):
            await loop.sock_sendall(a, data)
            got = 0
            while got < len(data):
                got += len(await loop.sock_recv(a, 65536))
    transport.close()
    return n


async def sock_echo(loop, n):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    data = b"x" * 1024

    async def server():
        while d := await loop.sock_recv(b, 65536):
            await loop.sock_sendall(b, d)

    with a, b:
        task = loop.create_task(server())
        for _ in range(n):
            await loop.sock_sendall(a, data)
            got = 0
            while got < len(data):
                got += len(await loop.sock_recv(a, 65536))
        a.shutdown(socket.SHUT_WR)
        await task
    return n


def _client():
    c = socket.socket()
    c.setblocking(False)
    # Closed with a reset: no TIME_WAIT, so thousands of connections do not run out of ports.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    return c


async def sock_accept_connect(loop, n):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.setblocking(False)
        address = listener.getsockname()
        for _ in range(n):
            with _client() as c:
                accept = asyncio.ensure_future(loop.sock_accept(listener))
                await loop.sock_connect(c, address)
                conn, _ = await accept
                conn.close()
    return n


class _CloseAtOnce(asyncio.Protocol):
    def connection_made(self, transport):
        transport.close()


async def server_accept(loop, n):
    server = await loop.create_server(_CloseAtOnce, "127.0.0.1", 0, backlog=128)
    address = server.sockets[0].getsockname()
    for _ in range(n):
        with _client() as c:
            await loop.sock_connect(c, address)
            if await loop.sock_recv(c, 1) != b"":
                raise AssertionError("the server sent data")
    server.close()
    await server.wait_closed()
    return n


# The echo rows' client: ``n`` 1 KiB round trips to the Unix socket ``argv[1]``.
_ECHO_CLIENT = """
import socket, sys
with socket.socket(socket.AF_UNIX) as c:
    c.connect(sys.argv[1])
    msg = b"x" * 1024
    for _ in range(int(sys.argv[2])):
        c.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(c.recv(65536))
"""


async def _echo_server(loop, n, kind):
    """``n`` 1 KiB round trips from a blocking client to ``net``'s ``kind`` echo server.

    The client is another process, which valgrind does not follow (children it execs run
    natively): its work is not counted, and the loop thread's count does not depend on how
    valgrind interleaves it with the server, as a client thread's did (up to 3% per row).
    """
    import net

    with tempfile.TemporaryDirectory() as tmp:
        address, keep = await net.start_server(loop, kind, "unix", os.path.join(tmp, "s"))
        done = loop.create_future()
        client = subprocess.Popen([sys.executable, "-c", _ECHO_CLIENT, address, str(n)])

        def wait():
            # Blocked in waitpid until the client ends: no instructions meanwhile.
            code = client.wait()
            loop.call_soon_threadsafe(done.set_result, code)

        threading.Thread(target=wait).start()
        if await done:
            raise RuntimeError("the echo client failed")
        if kind == "sock":
            sock, accepter = keep
            accepter.cancel()
            sock.close()
        else:
            keep.close()
    return n


async def echo_protocol_unix(loop, n):
    return await _echo_server(loop, n, "protocol")


async def echo_sock_unix(loop, n):
    return await _echo_server(loop, n, "sock")


EXTRA = {
    "echo_protocol_unix": echo_protocol_unix,
    "echo_sock_unix": echo_sock_unix,
    "sock_echo_1KiB": sock_echo,
    "protocol_echo_1KiB": protocol_echo,
    "sock_accept_connect": sock_accept_connect,
    "server_accept": server_accept,
}


def run_one(loop_name: str, row: str, n: int) -> None:
    """The child: ``row`` with ``n`` operations on a fresh ``loop_name`` loop, after a warm-up."""
    from loops import factory
    from micro import BY_NAME

    if loop_name.startswith("oxloop") and os.environ.get(MONITORED_RUN_ENV):
        from oxloop import _live, _monitor, _otel

        # Every oxloop column imports what monitoring mode imports, as in monitor_cost.py: the
        # modules' objects and types change what each garbage collection and type-attribute
        # cache lookup costs (seen: +14% on future_roundtrip from the executable's path alone),
        # a cost of their being loaded, not of the loop's hot path.
        _otel.register()
        del _live
        _monitor.SAMPLE_PERIOD = float(os.environ.get(SAMPLE_PERIOD_ENV, SAMPLE_PERIOD))
    fn = EXTRA[row] if row in EXTRA else BY_NAME[row].fn
    pad = bytes(int(os.environ.get(HEAP_PAD_ENV, "0")))
    if os.environ.get(IDLE_THREAD_ENV):
        done = threading.Event()
        threading.Thread(target=done.wait, daemon=True).start()
    loop = factory(loop_name)()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(fn(loop, max(1, min(n, 200))))
    loop.run_until_complete(fn(loop, n))
    loop.close()
    del pad


def instructions(loop: str, row: str, n: int, main_thread: bool = False) -> int:
    """Instructions of one child run: all threads, or with ``main_thread`` the loop thread only."""
    if main_thread:
        return thread_instructions(loop, row, n)[0]
    env, child = _child(loop, row, n)
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    out = subprocess.run(cmd + child, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode or not found:
        raise RuntimeError(f"{loop} {row}: {out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def _child(loop: str, row: str, n: int) -> tuple[dict, list[str]]:
    """The environment and command line of the child that runs ``row`` on ``loop``."""
    env = dict(os.environ)
    name, _, path = loop.partition("=")
    if path:
        env["PYTHONPATH"] = path
        name = "oxloop" + ("+monitor" if name.endswith("+monitor") else "")
    return env, [sys.executable, __file__, "--child", name, row, str(n)]


def thread_instructions(
    loop: str, row: str, n: int, extra_env: dict | None = None
) -> tuple[int, int, int]:
    """(the loop thread's instructions, the other threads' together, the loop thread's in
    oxloop's extension module) of one child run, with ``extra_env`` added to its environment."""
    env, child = _child(loop, row, n)
    env.update(extra_env or {})
    # Dict lookups depend on the hash seed: fix it, or single-thread counts vary by a percent.
    env.setdefault("PYTHONHASHSEED", "0")
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes"]
        cmd.append(f"--callgrind-out-file={base}")
        out = subprocess.run(cmd + child, capture_output=True, text=True, env=env, check=False)
        if out.returncode:
            raise RuntimeError(f"{loop} {row}: {out.stderr[-2000:]}")
        counts, own = {}, 0
        for path in glob.glob(base + "-*"):
            with open(path) as f:
                text = f.read()
            thread = int(re.search(r"^thread: (\d+)$", text, re.M).group(1))
            counts[thread] = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
            if thread == 1:
                own = sum(n for ob, n in _by_object(text).items() if "/_oxloop." in ob)
    if 1 not in counts:
        raise RuntimeError(f"{loop} {row}: no main-thread profile")
    return counts.pop(1), sum(counts.values()), own


def _by_object(profile: str) -> dict[str, int]:
    """Self instructions per object file (executable or shared library) of a callgrind profile."""
    names: dict[str, str] = {}
    totals: dict[str, int] = {}
    current = ""
    after_calls = False
    for line in profile.splitlines():
        if line[:1].isdigit() or line[:1] in ("+", "-", "*"):
            # A cost line; the one after ``calls=`` is the call's inclusive cost, not self cost.
            if not after_calls:
                fields = line.split()
                if len(fields) >= 2:
                    totals[current] = totals.get(current, 0) + int(fields[1])
            after_calls = False
            continue
        after_calls = line.startswith("calls=")
        key, eq, value = line.partition("=")
        if eq and key in ("ob", "cob"):
            # Name compression: "(id) name" defines an id, "(id)" refers to it.
            found = re.match(r"\((\d+)\)(?: (.*))?$", value)
            if found:
                if found.group(2):
                    names[found.group(1)] = found.group(2)
                value = names.get(found.group(1), value)
            if key == "ob":
                current = value
    return totals


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        run_one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", help="comma-separated rows of micro.py, or of EXTRA")
    parser.add_argument("loops", help="comma-separated loops (asyncio, uvloop, rloop, oxloop...)")
    parser.add_argument("--n", default="2000,10000", help="the two operation counts, n1,n2")
    parser.add_argument(
        "--idle-thread",
        action="store_true",
        help="start an idle thread in every child (a multi-threaded process, as a monitored one is)",
    )
    args = parser.parse_args()
    if args.idle_thread:
        os.environ[IDLE_THREAD_ENV] = "1"
        print("(every child runs an idle thread)", flush=True)
    n1, n2 = (int(x) for x in args.n.split(","))
    loops = args.loops.split(",")
    # A monitored column: count the loop thread alone, in every column alike (see above).
    main_thread = any(lp.partition("=")[0].endswith("+monitor") for lp in loops)
    if main_thread:
        os.environ[MONITORED_RUN_ENV] = "1"
        print("(loop thread only: an oxloop+monitor column was asked for)", flush=True)
    for row in args.rows.split(","):
        for loop in loops:
            i1 = instructions(loop, row, n1, main_thread)
            i2 = instructions(loop, row, n2, main_thread)
            per_op = (i2 - i1) / (n2 - n1)
            print(
                f"{row:24s} {loop.partition('=')[0]:10s} {per_op:10.0f} instructions/op", flush=True
            )


if __name__ == "__main__":
    main()
