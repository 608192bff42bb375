"""Details real libraries and their test suites rely on (issue 8), each compared with asyncio.

Iterations a write takes to reach a peer, contextvars of protocol callbacks, patchable transports,
`remove_reader` of a closed socket, the errors of bad calls, quiet collection of open transports.
"""

from __future__ import annotations

import asyncio
import socket

import pytest


# -- loop iterations from a write to the peer's callback ----------------------------------------


async def _pair(loop, peer_protocol):
    a, b = socket.socketpair()
    ta, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    tb, pb = await loop.connect_accepted_socket(peer_protocol, b)
    return ta, tb, pb


class _Recorder(asyncio.Protocol):
    def __init__(self):
        self.got = []

    def data_received(self, data):
        self.got.append(data)


async def _sleeps_until(cond):
    n = 0
    while not cond():
        await asyncio.sleep(0)
        n += 1
        assert n < 50
    return n


def _counts_write_to_peer(loop, busy):
    async def main():
        stop = False

        async def spin():
            while not stop:
                await asyncio.sleep(0)

        spinner = loop.create_task(spin()) if busy else None
        ta, tb, pb = await _pair(loop, _Recorder)
        counts = []
        for _ in range(8):
            n = len(pb.got)
            ta.write(b"x")
            counts.append(await _sleeps_until(lambda: len(pb.got) > n))
        stop = True
        if spinner:
            await spinner
        ta.close()
        tb.close()
        await asyncio.sleep(0.01)
        return counts

    return loop.run_until_complete(main())


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_write_reaches_peer_in_no_more_iterations_than_asyncio(on_both, busy):
    aio, ox = on_both(lambda lp: _counts_write_to_peer(lp, busy))
    assert all(o <= a for o, a in zip(ox, aio)), (aio, ox)


def test_echo_reply_in_no_more_iterations_than_asyncio(on_both):
    # The peer answers from data_received: the round trip must not take longer than asyncio's.
    def scenario(loop):
        class Echo(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t

            def data_received(self, data):
                self.t.write(data)

        async def main():
            a, b = socket.socketpair()
            client = _Recorder()
            ta, _ = await loop.connect_accepted_socket(lambda: client, a)
            tb, _ = await loop.connect_accepted_socket(Echo, b)
            counts = []
            for _ in range(6):
                n = len(client.got)
                ta.write(b"ping")
                counts.append(await _sleeps_until(lambda: len(client.got) > n))
            ta.close()
            tb.close()
            await asyncio.sleep(0.01)
            return counts

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert all(o <= a for o, a in zip(ox, aio)), (aio, ox)


def test_raw_send_and_new_writer_seen_in_no_more_iterations_than_asyncio(on_both):
    # Data sent with a plain socket call, and a writer added for a writable fd.
    def scenario(loop):
        async def main():
            ta, tb, pb = await _pair(loop, _Recorder)
            raw, raw_peer = socket.socketpair()
            traw, praw = await loop.connect_accepted_socket(_Recorder, raw_peer)
            counts = []
            for _ in range(4):
                n = len(praw.got)
                raw.send(b"y")
                counts.append(await _sleeps_until(lambda: len(praw.got) > n))
            fired = []
            w1, w2 = socket.socketpair()
            loop.add_writer(w1, fired.append, 1)
            counts.append(await _sleeps_until(lambda: fired))
            loop.remove_writer(w1)
            for s in (w1, w2, raw):
                s.close()
            for t in (ta, tb, traw):
                t.close()
            await asyncio.sleep(0.01)
            return counts

        return loop.run_until_complete(main())

    aio, ox = on_both(scenario)
    assert all(o <= a for o, a in zip(ox, aio)), (aio, ox)
