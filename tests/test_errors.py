"""Bad input and callback errors: asyncio's exceptions, messages and handler contexts."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket

import pytest


def _error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the point is to compare whatever is raised
        return type(e).__name__, str(e)
    return None


def test_bad_callbacks_are_refused_like_asyncio_debug_mode(on_both):
    async def coro_fn():
        pass

    def scenario(loop):
        loop.set_debug(True)  # asyncio checks callbacks in debug mode
        coro = coro_fn()
        out = [
            _error(loop.call_soon, 1),
            _error(loop.call_soon, coro),
            _error(loop.call_soon, coro_fn),
            _error(loop.call_later, 0, "x"),
            _error(loop.call_at, loop.time(), None),
            _error(loop.call_soon_threadsafe, 1.5),
            _error(loop.call_soon_threadsafe, coro),
        ]
        coro.close()
        loop.set_debug(False)
        return out

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == ("TypeError", "a callable object was expected by call_soon(), got 1")
    assert o[1] == ("TypeError", "coroutines cannot be used with call_soon()")


def test_oxloop_refuses_non_callables_outside_debug_mode_too():
    import oxloop

    loop = oxloop.new_event_loop()
    try:
        with pytest.raises(TypeError, match=r"a callable object was expected by call_soon\(\)"):
            loop.call_soon(1)
    finally:
        loop.close()


def test_none_delays_and_deadlines(on_both):
    def scenario(loop):
        return [
            _error(loop.call_later, None, print),
            _error(loop.call_at, None, print),
        ]

    a, o = on_both(scenario)
    assert a == o == [("TypeError", "delay must not be None"), ("TypeError", "when cannot be None")]


def test_closed_loop_refuses_everything(on_both):
    def scenario(loop):
        loop.close()
        coro = asyncio.sleep(0)
        out = [
            _error(loop.call_soon, print),
            _error(loop.call_later, 1, print),
            _error(loop.call_at, 1, print),
            _error(loop.call_soon_threadsafe, print),
            _error(loop.run_forever),
            _error(loop.run_until_complete, coro),
            _error(loop.create_task, coro),
            _error(loop.run_in_executor, None, print),
            loop.remove_reader(0),
            loop.remove_writer(0),
        ]
        coro.close()
        return out

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == ("RuntimeError", "Event loop is closed")


def test_bad_file_objects(on_both):
    class NoFileno:
        def __repr__(self):
            return "<NoFileno>"

    class BadFileno:
        def fileno(self):
            return "nope"

        def __repr__(self):
            return "<BadFileno>"

    def scenario(loop):
        return [
            _error(loop.add_reader, -1, print),
            _error(loop.add_reader, NoFileno(), print),
            _error(loop.add_writer, BadFileno(), print),
            _error(loop.remove_reader, "x"),
            _error(loop.add_reader, 1_000_000, print),
        ]

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == ("ValueError", "Invalid file descriptor: -1")


def test_regular_file_cannot_be_watched(on_both, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")

    def scenario(loop):
        with open(path, "rb") as f:
            err = _error(loop.add_reader, f, print)
        return err

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == "PermissionError"


def test_exception_handler_validation(on_both):
    def scenario(loop):
        return [
            _error(loop.set_exception_handler, 1),
            _error(loop.set_task_factory, 1),
            _error(loop.set_default_executor, object()),
        ]

    a, o = on_both(scenario)
    assert a == o
    assert o[0] == ("TypeError", "A callable object or None is expected, got 1")


def test_callback_exception_reaches_the_handler_with_asyncio_context(on_both):
    def boom(x):
        raise ValueError(f"boom {x}")

    def scenario(loop):
        loop.call_soon(boom, 1)
        loop.call_later(0, boom, 2)
        loop.call_soon(loop.call_soon, loop.stop)
        loop.run_forever()
        out = []
        for ctx in loop.handled_errors:
            out.append((sorted(ctx), ctx["message"], repr(ctx["exception"])))
            assert ctx["handle"] is not None
        loop.handled_errors.clear()
        return out

    a, o = on_both(scenario)
    assert a == o
    assert {"exception", "handle", "message"} <= set(o[0][0])  # + source_traceback in debug mode
    assert o[0][1].startswith("Exception in callback ")


def test_default_exception_handler_logs_like_asyncio(on_both, caplog):
    def boom():
        raise KeyError("k")

    def scenario(loop):
        loop.set_exception_handler(None)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_soon(boom)
            loop.call_soon(loop.call_soon, loop.stop)
            loop.run_forever()
        records = [
            (r.levelname, r.getMessage().splitlines()[0], r.exc_info[0]) for r in caplog.records
        ]
        return records

    a, o = on_both(scenario)
    assert a == o
    assert o[0][0] == "ERROR" and o[0][2] is KeyError


def test_failing_custom_handler_falls_back_to_default(on_both, caplog):
    def scenario(loop):
        def bad_handler(lp, ctx):
            raise RuntimeError("handler broke")

        loop.set_exception_handler(bad_handler)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"message": "original"})
        return [r.getMessage().splitlines()[0] for r in caplog.records]

    a, o = on_both(scenario)
    assert a == o == ["Unhandled error in exception handler"]


def test_system_exit_in_callback_stops_the_loop(on_both):
    def scenario(loop):
        seen = []

        def leave():
            raise SystemExit(3)

        loop.call_soon(seen.append, 1)
        loop.call_soon(leave)
        loop.call_soon(seen.append, 2)
        try:
            loop.run_forever()
        except SystemExit as e:
            seen.append(("exit", e.code))
        seen.append(loop.is_running())
        # The callback after the failing one is still queued: it runs on the next run.
        loop.call_soon(loop.stop)
        loop.run_forever()
        return seen

    a, o = on_both(scenario)
    assert a == o == [1, ("exit", 3), False, 2]


def test_keyboard_interrupt_propagates_from_run_until_complete(on_both):
    def scenario(loop):
        async def main():
            raise KeyboardInterrupt

        try:
            loop.run_until_complete(main())
        except KeyboardInterrupt:
            return "interrupted"

    a, o = on_both(scenario)
    assert a == o == "interrupted"


def test_oserror_keeps_errno(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        fd = r.fileno()
        r.close()
        w.close()
        with pytest.raises(OSError) as info:
            loop.add_reader(fd, print)
        return type(info.value).__name__, info.value.errno, info.value.strerror

    a, o = on_both(scenario)
    assert a == o == ("OSError", errno.EBADF, os.strerror(errno.EBADF))
