"""Loop behaviours asyncio documents or relies on, each run on both loops and compared.

Handles (TimerHandle comparisons), the order of one tick, stop/close at odd moments, a closed
loop's refusals, contextvars in add_reader callbacks, the default executor, the exception handler
and the default handler's log output, and the 3.12+ eager task factory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import socket
import sys
import threading

import pytest


def test_timer_handle_comparisons(on_both):
    # asyncio's TimerHandle compares (when, callback, args, cancelled); <, <= and hash use when.
    def scenario(loop):
        when = loop.time() + 10
        h1 = loop.call_at(when, print, 1)
        h2 = loop.call_at(when, print, 1)
        h3 = loop.call_at(when, print, 2)
        later = loop.call_at(when + 1, print, 1)
        out = [
            h1 == h2,
            h1 != h2,
            h1 == h3,
            h1 == h1,
            h1 < later,
            later > h1,
            h1 <= h2,
            h1 <= h3,
            h1 >= h2,
            hash(h1) == hash(h3),
            h1 == "x",
        ]
        h2.cancel()
        out.append(h1 == h2)
        h1.cancel()
        out.append(h1 == h2)
        h3.cancel()
        later.cancel()
        return out

    a, o = on_both(scenario)
    assert a == o


def test_order_within_one_tick(on_both):
    # One tick runs what was ready, then the I/O callbacks, then the due timers; anything they
    # schedule waits for the next tick.
    def scenario(loop):
        order = []
        r, w = socket.socketpair()
        w.send(b"x")

        def on_readable():
            order.append("io")
            loop.remove_reader(r)
            loop.call_soon(order.append, "soon from io")

        def soon():
            order.append("soon")
            loop.call_soon(order.append, "soon from soon")

        loop.add_reader(r, on_readable)
        loop.call_later(0, order.append, "timer")
        loop.call_soon(soon)
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        r.close()
        w.close()
        return order

    a, o = on_both(scenario)
    assert a == o == ["soon", "io", "timer", "soon from soon", "soon from io"]


def test_stop_before_run_forever_runs_one_tick(on_both):
    def scenario(loop):
        ran = []
        loop.call_soon(ran.append, 1)
        loop.stop()
        loop.call_soon(lambda: (ran.append(2), loop.call_soon(ran.append, 3)))
        loop.run_forever()
        first = list(ran)
        loop.call_soon(loop.stop)
        loop.run_forever()
        return first, ran, loop.is_running()

    a, o = on_both(scenario)
    assert a == o == ([1, 2], [1, 2, 3], False)


def test_close_while_running_is_refused(on_both):
    def scenario(loop):
        seen = []

        def try_close():
            try:
                loop.close()
            except RuntimeError as exc:
                seen.append(str(exc))
            loop.stop()

        loop.call_soon(try_close)
        loop.run_forever()
        return seen, loop.is_closed()

    a, o = on_both(scenario)
    assert a == o == (["Cannot close a running event loop"], False)


def _outcome(call):
    """What ``call()`` does on a closed loop: the exception raised by the call or by the first
    step of the awaitable it returns, or what it returned."""
    aw = None
    try:
        aw = call()
        if hasattr(aw, "__await__"):
            it = aw.__await__()
            it.send(None)
            return "suspended"
        return "returned"
    except StopIteration:
        return "finished"
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return type(exc).__name__, str(exc)
    finally:
        if hasattr(aw, "close"):
            aw.close()


CLOSED_LOOP_CALLS = {
    "call_soon": lambda lp, s, addr: lp.call_soon(print),
    "call_later": lambda lp, s, addr: lp.call_later(1, print),
    "add_reader": lambda lp, s, addr: lp.add_reader(s, print),
    "add_writer": lambda lp, s, addr: lp.add_writer(s, print),
    "remove_reader": lambda lp, s, addr: lp.remove_reader(s),
    # Nothing to read and more than the socket buffer to send: both must wait for the loop.
    "sock_recv": lambda lp, s, addr: lp.sock_recv(s, 10),
    "sock_sendall": lambda lp, s, addr: lp.sock_sendall(s, b"x" * (16 << 20)),
    "sock_connect": lambda lp, s, addr: lp.sock_connect(s, addr),
    "sock_accept": lambda lp, s, addr: lp.sock_accept(s),
    "getaddrinfo": lambda lp, s, addr: lp.getaddrinfo("localhost", 80),
    "create_connection": lambda lp, s, addr: lp.create_connection(asyncio.Protocol, *addr),
    "run_in_executor": lambda lp, s, addr: lp.run_in_executor(None, print),
}


@pytest.mark.parametrize("call", sorted(CLOSED_LOOP_CALLS))
def test_closed_loop_refuses(on_both, call):
    def scenario(loop):
        listener = socket.create_server(("127.0.0.1", 0))
        peer = None
        if call in ("sock_connect", "create_connection"):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        elif call == "sock_accept":
            s = socket.create_server(("127.0.0.1", 0))
        else:
            s, peer = socket.socketpair()
        s.setblocking(False)
        loop.close()
        try:
            return _outcome(lambda: CLOSED_LOOP_CALLS[call](loop, s, listener.getsockname()))
        finally:
            for sock in (listener, s, peer):
                if sock is not None:
                    sock.close()

    a, o = on_both(scenario)
    assert a == o


def test_contextvars_in_add_reader_callbacks(on_both):
    # add_reader copies the context once; every call of the callback runs in that same copy.
    var = contextvars.ContextVar("var", default="unset")

    def scenario(loop):
        seen = []
        r, w = socket.socketpair()
        w.send(b"x")

        def on_readable():
            seen.append(var.get())
            if len(seen) == 1:
                var.set("set in callback")
            else:
                loop.remove_reader(r)
                loop.stop()

        token = var.set("at add_reader")
        loop.add_reader(r, on_readable)
        var.set("after add_reader")
        loop.run_forever()
        outer = var.get()
        var.reset(token)
        r.close()
        w.close()
        return seen, outer

    a, o = on_both(scenario)
    assert a == o == (["at add_reader", "set in callback"], "after add_reader")


def test_custom_default_executor(on_both):
    def scenario(loop):
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom-exec")
        loop.set_default_executor(executor)
        name = loop.run_until_complete(
            loop.run_in_executor(None, lambda: threading.current_thread().name)
        )
        loop.run_until_complete(loop.shutdown_default_executor())
        try:
            executor.submit(print)
            shut = False
        except RuntimeError:
            shut = True
        try:
            loop.set_default_executor(object())
            refused = None
        except TypeError as exc:
            refused = str(exc)
        return name.startswith("custom-exec"), shut, refused

    a, o = on_both(scenario)
    assert a == o
    assert a[:2] == (True, True)


def test_get_exception_handler(on_both):
    def scenario(loop):
        def handler(lp, ctx):
            pass

        out = [loop.get_exception_handler() is not None]  # on_both's recording handler
        loop.set_exception_handler(None)
        out.append(loop.get_exception_handler())
        loop.set_exception_handler(handler)
        out.append(loop.get_exception_handler() is handler)
        try:
            loop.set_exception_handler(42)
        except TypeError as exc:
            out.append(str(exc))
        out.append(loop.get_exception_handler() is handler)
        return out

    a, o = on_both(scenario)
    assert a == o == [True, None, True, "A callable object or None is expected, got 42", True]


class _Named:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


def _boom():
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return exc


def test_default_exception_handler_output(on_both, caplog):
    # The whole log record: the message with each context key, and the exception's traceback.
    def scenario(loop):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            loop.default_exception_handler(
                {
                    "message": "Something failed",
                    "exception": _boom(),
                    "transport": _Named("transport"),
                    "protocol": _Named("protocol"),
                    "zzz": 42,
                }
            )
            loop.default_exception_handler({"future": _Named("future")})
            loop.default_exception_handler({"message": "", "exception": _boom()})

            def failing_handler(lp, ctx):
                raise RuntimeError("handler failed")

            loop.set_exception_handler(failing_handler)
            loop.call_exception_handler({"message": "original", "thing": _Named("thing")})
        out = []
        for rec in caplog.records:
            text = rec.getMessage()
            exc = None
            if rec.exc_info:
                exc = (rec.exc_info[0].__name__, str(rec.exc_info[1]))
            out.append((rec.levelname, text, exc))
        return out

    a, o = on_both(scenario)
    assert a == o
    assert len(a) == 4


def test_exception_handler_gets_callback_errors_in_order(on_both):
    def scenario(loop):
        def fail(n):
            raise KeyError(n)

        loop.call_soon(fail, 1)
        loop.call_later(0, fail, 2)
        loop.call_soon(loop.call_soon, loop.stop)
        loop.run_forever()
        out = [(c["message"].split(" ")[0], repr(c["exception"])) for c in loop.handled_errors]
        return out

    a, o = on_both(scenario)
    assert a == o


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory is 3.12+")
def test_eager_task_factory(on_both):
    def scenario(loop):
        order = []

        async def child(name, suspend):
            order.append(f"{name} start")
            if suspend:
                await asyncio.sleep(0)
            order.append(f"{name} end")
            return name

        async def main():
            t1 = asyncio.create_task(child("eager-done", False))
            order.append(("created 1", t1.done()))
            t2 = asyncio.create_task(child("eager-suspends", True))
            order.append(("created 2", t2.done()))
            return await asyncio.gather(t1, t2)

        loop.set_task_factory(asyncio.eager_task_factory)
        result = loop.run_until_complete(main())
        return order, result

    a, o = on_both(scenario)
    assert a == o
    assert a[0][:2] == ["eager-done start", "eager-done end"]
