"""Reference cycles through handles are collected, on oxloop as on asyncio's loop.

oxloop keeps the handles it holds pending out of the garbage collector's lists (the loop reports
what they hold instead), gives a handle back to the collector once someone else holds it, and
lets an unclosed loop be collected. Each scenario runs on both loops and must end the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import warnings
import weakref

import pytest
from conftest import LOOPS


class Node:
    """An object a cycle can pass through."""


def _collect() -> None:
    with warnings.catch_warnings():
        # An unclosed loop warns when it is collected; that is the expected outcome here.
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(3):
            gc.collect()


def _new(kind: str):
    loop = LOOPS[kind]()
    loop.errors = []
    loop.set_exception_handler(lambda lp, ctx: lp.errors.append(ctx))
    return loop


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize("held", [False, True], ids=["dropped", "held"])
@pytest.mark.parametrize("how", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_unclosed_loop_with_a_pending_cycle_is_collected(kind, held, how):
    # loop -> pending handle -> callback -> node -> loop, and with `held` also node -> handle.
    loop = _new(kind)
    node = Node()
    node.loop = loop

    def callback(n=node):
        pass

    if how == "call_soon":
        handle = loop.call_soon(callback)
    elif how == "call_soon_threadsafe":
        # From an empty context, whose copy oxloop keeps out of the collector's lists.
        handle = contextvars.Context().run(loop.call_soon_threadsafe, callback)
    elif how == "call_later":
        handle = loop.call_later(3600, callback)
    else:
        handle = loop.call_at(loop.time() + 3600, callback)
    if held:
        node.handle = handle
    refs = [weakref.ref(x) for x in (loop, node, callback)]
    del loop, node, callback, handle
    _collect()
    assert [r() for r in refs] == [None, None, None]


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_unclosed_loop_with_a_sleeping_task_is_collected(kind):
    # The task's frame holds asyncio.sleep's TimerHandle, pending in the loop's timer heap.
    loop = _new(kind)

    async def sleeper():
        await asyncio.sleep(3600)

    task = loop.create_task(sleeper())
    loop.run_until_complete(asyncio.sleep(0))
    assert not task.done()
    refs = [weakref.ref(loop), weakref.ref(task)]
    errors = loop.errors
    del loop, task
    _collect()
    assert [r() for r in refs] == [None, None]
    # The pending task's destruction is reported, as asyncio reports it.
    assert [e["message"] for e in errors] == ["Task was destroyed but it is pending!"]


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize("state", ["ran", "cancelled"])
def test_cycle_through_a_finished_handle_is_collected(kind, state):
    # node -> handle -> callback -> node, on a loop that stays open: once the handle ran or was
    # cancelled, nothing but the cycle holds it.
    loop = _new(kind)
    try:
        node = Node()
        ran = []

        def callback(n=node):
            ran.append(n is not None)

        node.handle = loop.call_soon(callback)
        if state == "cancelled":
            node.handle.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        assert ran == ([True] if state == "ran" else [])
        refs = [weakref.ref(node), weakref.ref(callback)]
        del node, callback
        _collect()
        assert [r() for r in refs] == [None, None]
    finally:
        loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_pending_timer_in_a_cycle_on_a_running_loop_is_collected_after_it_fires(kind):
    # A timer held by the object its callback references: the cycle is garbage once it fired.
    loop = _new(kind)
    try:
        node = Node()
        fired = loop.create_future()

        def callback(n=node):
            fired.set_result(True)

        node.timer = loop.call_later(0.001, callback)
        ref = weakref.ref(node)
        del node, callback
        assert loop.run_until_complete(fired) is True
        _collect()
        assert ref() is None
    finally:
        loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_handle_held_outside_keeps_its_loop_and_callback_intact(kind):
    # The loop and the callback form a cycle that is garbage except for the handle held here:
    # the collector must keep both, and the handle must still run.
    loop = _new(kind)
    node = Node()
    node.loop = loop
    calls = []

    def callback(n=node):
        calls.append(n)

    handle = loop.call_soon(callback)
    loop_ref = weakref.ref(loop)
    del loop, node, callback
    _collect()
    assert handle._loop is loop_ref()
    assert loop_ref() is not None
    handle._run()
    assert len(calls) == 1 and calls[0].loop is loop_ref()
    loop = loop_ref()
    loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_handles_are_weak_referenceable(kind):
    loop = _new(kind)
    try:
        handle = loop.call_soon(print)
        timer = loop.call_later(3600, print)
        refs = [weakref.ref(handle), weakref.ref(timer)]
        assert [r() for r in refs] == [handle, timer]
        handle.cancel()
        timer.cancel()
    finally:
        loop.close()


def _context_of(handle):
    # Handle.get_context() is new in 3.12; asyncio's handle has `_context` before that.
    get = getattr(handle, "get_context", None)
    return get() if get is not None else handle._context


VAR: contextvars.ContextVar = contextvars.ContextVar("test_gc_var")


def _schedule_from_empty_context(loop, how, callback):
    # From an empty context, whose copy oxloop keeps out of the collector's lists while empty.
    if how == "call_later":
        return contextvars.Context().run(loop.call_later, 0, callback)
    return contextvars.Context().run(getattr(loop, how), callback)


SCHEDULERS = ["call_soon", "call_soon_threadsafe", "call_later"]


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize("how", SCHEDULERS)
def test_cycle_through_a_context_the_callback_filled_is_collected(kind, how):
    # node -> handle -> its context -> node: the callback, scheduled from an empty context,
    # stores node in its context.
    loop = _new(kind)
    try:
        node = Node()
        ran = []

        def callback(n=node):
            VAR.set(n)
            ran.append(VAR.get() is n)

        node.handle = _schedule_from_empty_context(loop, how, callback)
        loop.run_until_complete(asyncio.sleep(0.01))
        assert ran == [True]
        ref = weakref.ref(node)
        del node, callback
        _collect()
        assert ref() is None
    finally:
        loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize("how", SCHEDULERS)
def test_cycle_through_a_pending_handles_context_filled_from_outside_is_collected(kind, how):
    # node -> context -> node, where the context is a pending handle's (empty when scheduled),
    # filled through get_context() by code outside the loop; the handle is cancelled.
    loop = _new(kind)
    try:
        handle = _schedule_from_empty_context(loop, how, print)
        node = Node()
        node.context = _context_of(handle)
        node.context.run(VAR.set, node)
        handle.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        ref = weakref.ref(node)
        del node, handle
        _collect()
        assert ref() is None
    finally:
        loop.close()
