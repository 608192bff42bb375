"""What changes with the running Python comes with it: each scenario runs on asyncio's loop and on
oxloop and is compared, on every supported version (a feature the running Python lacks is
skipped, since neither loop has it there)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import sys
import tempfile
from asyncio import base_events, unix_events

import oxloop
import pytest
from oxloop import _borrowed

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)
# The policy getter and setter without 3.14's deprecation warnings (the same functions).
_get_policy = getattr(asyncio.events, "_get_event_loop_policy", asyncio.get_event_loop_policy)
_set_policy = getattr(asyncio.events, "_set_event_loop_policy", asyncio.set_event_loop_policy)


def test_borrowed_methods_are_the_running_pythons():
    for name in _borrowed.BORROWED:
        ours = getattr(_borrowed.AsyncioColdPath, name)
        theirs = getattr(unix_events._UnixSelectorEventLoop, name)
        # The same code object: a rebinding for zero-argument super() changes only the cell.
        assert ours.__code__ is theirs.__code__, name
    # The table comes first in oxloop.Loop's MRO: only Loop's own body can wrap one of them.
    assert oxloop.Loop.__mro__[1] is _borrowed.AsyncioColdPath
    assert oxloop.Loop.create_connection is base_events.BaseEventLoop.create_connection


@pytest.mark.skipif(not PY313, reason="Server.close_clients/abort_clients are new in 3.13")
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_server_close_and_abort_clients(on_both, how):
    def scenario(loop):
        async def main():
            lost = []

            class P(asyncio.Protocol):
                def connection_lost(self, exc):
                    lost.append(type(exc).__name__ if exc else None)

            server = await loop.create_server(P, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            while len(server._clients) < 3:
                await asyncio.sleep(0)
            server.close()
            getattr(server, how)()
            await asyncio.wait_for(server.wait_closed(), 5)
            eofs = [await r.read() for r, _ in clients]
            for _, w in clients:
                w.close()
            return sorted(map(str, lost)), eofs

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    assert len(ox[0]) == 3


@pytest.mark.skipif(not PY313, reason="create_server(keep_alive=) is new in 3.13")
def test_create_server_keep_alive(on_both):
    def scenario(loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, keep_alive=True)
            sock = server.sockets[0]
            on = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            server.close()
            await server.wait_closed()
            return bool(on)

        return loop.run_until_complete(main())

    assert on_both(scenario) == (True, True)


@pytest.mark.skipif(not PY313, reason="create_unix_server(cleanup_socket=) is new in 3.13")
def test_unix_server_cleanup_socket(on_both):
    def scenario(loop):
        async def main(path, cleanup):
            server = await loop.create_unix_server(asyncio.Protocol, path, cleanup_socket=cleanup)
            server.close()
            await server.wait_closed()
            return os.path.exists(path)

        with tempfile.TemporaryDirectory() as d:
            return [
                loop.run_until_complete(main(os.path.join(d, f"{c}.sock"), c))
                for c in (True, False)
            ]

    assert on_both(scenario) == ([False, True], [False, True])


@pytest.mark.skipif(not PY312, reason="create_connection(all_errors=) is new in 3.12")
def test_create_connection_all_errors(on_both):
    def scenario(loop):
        async def main():
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            try:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, all_errors=True)
            except ExceptionGroup as eg:
                return eg.message, [type(e).__name__ for e in eg.exceptions]

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox == ("create_connection failed", ["ConnectionRefusedError"])


def test_task_factory_arguments_follow_the_running_python(on_both):
    def scenario(loop):
        seen = []

        def factory(loop, coro, **kwargs):
            seen.append(sorted(kwargs))
            return asyncio.Task(coro, loop=loop, **kwargs)

        async def noop():
            pass

        loop.set_task_factory(factory)
        task = loop.create_task(noop(), name="named")
        loop.run_until_complete(task)
        ctx = contextvars.copy_context()
        loop.run_until_complete(loop.create_task(noop(), name="again", context=ctx))
        return seen, task.get_name()

    aio, ox = on_both(scenario)
    assert aio == ox
    assert ox[1] == "named"


def test_handle_repr_shows_arguments_as_the_running_python_does(on_both):
    def scenario(loop):
        def callback(secret):
            pass

        reprs = []
        for debug in (False, True):
            loop.set_debug(debug)
            handle = loop.call_soon(callback, "s3cret")
            reprs.append("s3cret" in repr(handle))
            handle.cancel()
        loop.set_debug(False)
        return reprs

    aio, ox = on_both(scenario)
    assert aio == ox


def test_exception_handler_runs_in_the_callbacks_context(on_both):
    var = contextvars.ContextVar("var", default="outside")

    def scenario(loop):
        seen = []
        loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))

        def callback():
            var.set("inside")
            raise ZeroDivisionError

        loop.call_soon(callback, context=contextvars.copy_context())
        loop.call_soon(loop.stop)
        loop.run_forever()
        return seen

    aio, ox = on_both(scenario)
    assert aio == ox == (["inside"] if PY312 else ["outside"])


def test_install_warns_from_3_14(monkeypatch):
    old = _get_policy()
    monkeypatch.setattr(sys, "version_info", (3, 14, 0, "final", 0))
    try:
        with pytest.warns(DeprecationWarning, match="oxloop.install") as record:
            oxloop.install()
        # Only oxloop's warning, pointing at the caller of install().
        assert len(record) == 1
        assert record[0].filename == __file__
        assert isinstance(_get_policy(), oxloop.EventLoopPolicy)
    finally:
        monkeypatch.undo()
        _set_policy(old)


@pytest.mark.skipif(not PY313, reason="a Server tracks its transports from 3.13")
def test_transport_collected_while_open_leaves_its_server(on_both):
    """An open transport the GC collects (its loop gone, a protocol <-> transport cycle) closes its
    socket and leaves its server, as 3.13's _SelectorTransport.__del__ does: the server's client
    set no longer holds it."""
    import gc
    import warnings

    def scenario(loop):
        server_box = []

        # NOTE: the loop is an argument, not a closure variable: the scenario deletes its own
        # reference below so the GC can collect the loop.
        async def main(loop):
            class P(asyncio.Protocol):
                def connection_made(self, t):
                    self.t = t  # protocol <-> transport cycle

            server = await loop.create_server(P, "127.0.0.1", 0)
            server_box.append(server)
            port = server.sockets[0].getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            while len(server._clients) < 1:
                await asyncio.sleep(0)
            return client

        client = loop.run_until_complete(main(loop))
        server = server_box[0]
        server.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        del loop
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
            gc.collect()
        client.settimeout(5)
        eof = client.recv(10)
        client.close()
        return len(server._clients), eof, server._waiters is None

    aio, ox = on_both(scenario)
    assert aio == ox


def test_transport_write_type_error_is_the_running_pythons(on_both):
    """A str written to a socket transport: asyncio's TypeError text, which 3.14 reworded."""

    def scenario(loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            try:
                transport.write("text")
            except TypeError as exc:
                return str(exc)
            finally:
                transport.close()
                server.close()
                await server.wait_closed()

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio.endswith("not 'str'")


def test_tasks_are_asyncios_c_tasks_seen_by_all_tasks(on_both):
    """Tasks on oxloop are CPython's C Task (3.14 registers them per thread for all_tasks() and
    ``python -m asyncio ps``), found by all_tasks(loop) and current_task() as on asyncio's loop."""

    def scenario(loop):
        async def child(started):
            started.set()
            await asyncio.sleep(3600)

        async def main():
            started = asyncio.Event()
            t = loop.create_task(child(started), name="child")
            await started.wait()
            names = sorted(x.get_name() for x in asyncio.all_tasks(loop))
            current = asyncio.current_task().get_name()
            c_task = type(t) is asyncio.tasks._CTask
            t.cancel()
            return names, current, c_task

        return loop.run_until_complete(loop.create_task(main(), name="main"))

    aio, ox = on_both(scenario)
    assert aio == ox == (["child", "main"], "main", True)


@pytest.mark.skipif(not PY314, reason="asyncio.capture_call_graph is new in 3.14")
def test_call_graph_of_an_oxloop_task(on_both):
    """3.14's asyncio.capture_call_graph: the same coroutine stack and awaiting tasks on oxloop
    (written from 3.14's Lib/asyncio/graph.py; not run here before a 3.14 interpreter was at
    hand)."""

    def scenario(loop):
        async def leaf(ready, out):
            graph = asyncio.capture_call_graph()
            out.append(
                (
                    [entry.frame.f_code.co_name for entry in graph.call_stack],
                    [edge.future.get_name() for edge in graph.awaited_by],
                )
            )
            ready.set()

        async def parent():
            ready, out = asyncio.Event(), []
            await loop.create_task(leaf(ready, out), name="leaf")
            await ready.wait()
            return out[0]

        return loop.run_until_complete(loop.create_task(parent(), name="parent"))

    aio, ox = on_both(scenario)
    assert aio == ox
    assert aio[1] == ["parent"]


def test_subprocess_transport_closed_after_its_loop(on_both):
    """Closing a subprocess transport after its loop closed: 3.13.0 and older close the pipes and
    raise ``Event loop is closed``; 3.14 leaves them (gh-114177): oxloop asks asyncio."""
    import gc
    import warnings

    def pidfds():
        fds = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]":
                    fds.add(int(fd))
            except OSError:
                pass
        return fds

    def scenario(loop):
        pidfds_before = pidfds()

        async def main():
            transport, _ = await loop.subprocess_exec(
                asyncio.SubprocessProtocol,
                sys.executable,
                "-c",
                "import time; time.sleep(60)",
                stdin=-1,
                stdout=-1,
            )
            return transport

        # The child runs on until after close(): killed earlier, its pipes' end could reach
        # the loop (and close the pipe transports) before loop.close() or not, on either loop.
        transport = loop.run_until_complete(main())
        pid = transport.get_pid()
        loop.close()
        try:
            transport.close()
            outcome = "closed"
        except RuntimeError as exc:
            outcome = str(exc)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        with warnings.catch_warnings():
            # What is left of the pipes goes with the transport, as on asyncio's loop.
            warnings.simplefilter("ignore", ResourceWarning)
            del transport
            gc.collect()
        if not type(loop).__module__.startswith("oxloop"):
            # asyncio's PidfdChildWatcher (3.12, 3.13) leaves its pidfd open when the loop
            # closes before the child's exit was read; oxloop closes its own with the loop.
            for fd in pidfds() - pidfds_before:
                os.close(fd)
        return outcome

    aio, ox = on_both(scenario)
    assert aio == ox


@pytest.mark.skipif(not PY314, reason="create_task passes eager_start= on to Task from 3.14")
def test_create_task_eager_start(on_both):
    """3.14's ``create_task(coro, eager_start=True)``: the C Task starts at once, which it only
    does where ``_asyncio`` knows the loop as the running one (written from 3.14's source; not run
    here before a 3.14 interpreter was at hand)."""

    def scenario(loop):
        async def child(order):
            order.append("child started")
            await asyncio.sleep(0)
            order.append("child done")

        async def main():
            order = []
            task = asyncio.create_task(child(order), eager_start=True)
            order.append("created")
            await task
            return order

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert aio == ox == ["child started", "created", "child done"]


@pytest.mark.skipif(
    not (3, 13) <= sys.version_info < (3, 15), reason="Py_mod_gil slots as in 3.13 and 3.14"
)
def test_extension_declares_that_it_needs_the_gil():
    """The extension's Py_mod_gil slot says Py_MOD_GIL_USED (NULL), so a free-threaded interpreter
    would turn its GIL on to load it (PyO3's default says Py_MOD_GIL_NOT_USED)."""
    import ctypes

    from oxloop import _oxloop

    class Slot(ctypes.Structure):
        _fields_ = [("slot", ctypes.c_int), ("value", ctypes.c_void_p)]

    class ModuleDef(ctypes.Structure):
        # PyModuleDef: PyModuleDef_Base (PyObject_HEAD, m_init, m_index, m_copy), then ours.
        _fields_ = [
            ("ob_refcnt", ctypes.c_ssize_t),
            ("ob_type", ctypes.c_void_p),
            ("m_init", ctypes.c_void_p),
            ("m_index", ctypes.c_ssize_t),
            ("m_copy", ctypes.c_void_p),
            ("m_name", ctypes.c_char_p),
            ("m_doc", ctypes.c_char_p),
            ("m_size", ctypes.c_ssize_t),
            ("m_methods", ctypes.c_void_p),
            ("m_slots", ctypes.POINTER(Slot)),
        ]

    get_def = ctypes.pythonapi.PyModule_GetDef
    get_def.restype = ctypes.c_void_p
    get_def.argtypes = [ctypes.py_object]
    module_def = ModuleDef.from_address(get_def(_oxloop))
    assert module_def.m_name == b"_oxloop"
    slots = {}
    i = 0
    while module_def.m_slots[i].slot:
        slots[module_def.m_slots[i].slot] = module_def.m_slots[i].value
        i += 1
    py_mod_gil = 4
    assert py_mod_gil in slots
    assert slots[py_mod_gil] is None  # Py_MOD_GIL_USED
