"""add_reader / add_writer / remove_*: level-triggered readiness, replacement, closing."""

from __future__ import annotations

import socket


def test_reader_is_level_triggered(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        r.setblocking(False)
        calls = []

        def on_readable():
            calls.append(loop.time())
            if len(calls) == 3:  # read nothing twice: must be called again each tick
                calls.append(r.recv(100))
                loop.remove_reader(r)
                loop.stop()

        w.send(b"hello")
        loop.add_reader(r, on_readable)
        loop.run_forever()
        r.close()
        w.close()
        return len(calls), calls[-1]

    a, o = on_both(scenario)
    assert a == o == (4, b"hello")


def test_writer_and_reader_on_one_fd(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        for s in (r, w):
            s.setblocking(False)
        seen = []

        def on_writable():
            seen.append("writable")
            w.send(b"x" * 10)
            loop.remove_writer(w)

        def on_readable():
            seen.append(("readable", len(r.recv(100))))
            loop.stop()

        loop.add_reader(r.fileno(), on_readable)
        loop.add_writer(w.fileno(), on_writable)
        loop.run_forever()
        removed = [loop.remove_reader(r), loop.remove_reader(r), loop.remove_writer(w)]
        r.close()
        w.close()
        return seen, removed

    a, o = on_both(scenario)
    assert a == o == (["writable", ("readable", 10)], [True, False, False])


def test_replacing_a_reader_cancels_the_old_handle(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        seen = []
        loop.add_reader(r, seen.append, "old")
        loop.add_reader(r, lambda: (seen.append("new"), loop.remove_reader(r), loop.stop()))
        w.send(b"x")
        loop.run_forever()
        r.close()
        w.close()
        return seen

    a, o = on_both(scenario)
    assert a == o == ["new"]


def test_closing_a_watched_fd_does_not_break_the_loop(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        loop.add_reader(r, print)
        r.close()  # closed behind the loop's back
        seen = []
        loop.call_later(0.01, seen.append, "timer")
        loop.call_later(0.02, loop.stop)
        loop.run_forever()
        # asyncio's selector finds the closed socket object's registration and drops it.
        try:
            removed = loop.remove_reader(r)
        except Exception as exc:  # noqa: BLE001 - the exception is the result compared
            removed = type(exc).__name__
        w.close()
        return seen, removed

    a, o = on_both(scenario)
    assert a == o == (["timer"], True)


def test_reader_args_and_exception(on_both):
    def scenario(loop):
        r, w = socket.socketpair()

        def on_readable(tag):
            loop.remove_reader(r)
            loop.call_soon(loop.stop)
            raise ValueError(tag)

        loop.add_reader(r, on_readable, "tagged")
        w.send(b"x")
        loop.run_forever()
        errors = [str(c["exception"]) for c in loop.handled_errors]
        loop.handled_errors.clear()
        r.close()
        w.close()
        return errors

    a, o = on_both(scenario)
    assert a == o == ["tagged"]


def test_watches_are_dropped_when_the_loop_closes(on_both):
    def scenario(loop):
        r, w = socket.socketpair()
        loop.add_reader(r, print)
        loop.add_writer(w, print)
        loop.close()
        out = [loop.remove_reader(r), loop.remove_writer(w)]
        r.close()
        w.close()
        return out

    a, o = on_both(scenario)
    assert a == o == [False, False]
