"""``loop.getaddrinfo`` / ``loop.getnameinfo``: the same answers as the ``socket`` module.

A table of a few hundred argument combinations (localhost, numeric IPv4/IPv6 with scope ids, empty
and None hosts, None / numeric / service-name ports, families, types, protocols and flags) is
resolved by ``socket.getaddrinfo`` and by each loop; results, or exception types and texts, must
be identical. Nothing leaves the machine: every host is local or numeric.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading

import pytest

HOSTS = [
    None,
    "",
    "localhost",
    "127.0.0.1",
    "127.1",
    "::1",
    "::ffff:127.0.0.1",
    "fe80::1%lo",
    b"127.0.0.1",
    "0.0.0.0",
    "::",
]
PORTS = [None, 0, 80, "80", "http", b"https", "", "no-such-service-xyz"]
FAMILIES = [0, socket.AF_INET, socket.AF_INET6]
TYPES = [0, socket.SOCK_STREAM, socket.SOCK_DGRAM]
FLAGS = [
    0,
    socket.AI_PASSIVE,
    socket.AI_NUMERICHOST,
    socket.AI_CANONNAME,
    socket.AI_PASSIVE | socket.AI_NUMERICSERV,
]


def _table():
    rows = []
    for host, port in itertools.product(HOSTS, PORTS):
        rows.append((host, port, 0, 0, 0, 0))
    for host, family, type_, flags in itertools.product(HOSTS, FAMILIES, TYPES, FLAGS):
        rows.append((host, 443, family, type_, 0, flags))
    # Protocols, including a mismatching one, and an unknown family.
    for host in ("127.0.0.1", "::1", "localhost", None):
        for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, 12345):
            rows.append((host, 7, 0, 0, proto, 0))
        rows.append((host, 7, 12345, 0, 0, 0))
    # Out-of-range and odd ports.
    for port in (65535, 65536, -1, 2.5, "99999"):
        rows.append(("127.0.0.1", port, 0, socket.SOCK_STREAM, 0, 0))
    # Argument types on IP literals: a float is a TypeError even when its value is fine; bools
    # and the socket module's IntEnums are ints.
    stream, tcp = socket.SOCK_STREAM, socket.IPPROTO_TCP
    for host in ("127.0.0.1", "::1", "::ffff:10.0.0.1", "10.0.0.001"):
        rows += [
            (host, 80, 0.0, stream, 0, 0),
            (host, 80, 0, float(stream), 0, 0),
            (host, 80, 0, stream, float(tcp), 0),
            (host, 80, 0, stream, 0, 0.0),
            (host, 80.0, 0, stream, 0, 0),
            (host, True, 0, True, 0, False),
            (host, 80, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, 0),
            (host, 80, socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, 0),
            (host, 80, 0, socket.SOCK_DGRAM, tcp, 0),
            (host, 2**64, 0, stream, 0, 0),
        ]
    return rows


TABLE = _table()


def _expected(args):
    try:
        return "ok", socket.getaddrinfo(*args)
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, str(exc)


def test_table_is_large_enough():
    assert len(TABLE) >= 300


@pytest.mark.parametrize("debug", [False, True])
def test_getaddrinfo_matches_socket_module(loop, debug):
    loop.set_debug(debug)

    async def one(host, port, family, type_, proto, flags):
        try:
            return "ok", await loop.getaddrinfo(
                host, port, family=family, type=type_, proto=proto, flags=flags
            )
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__, str(exc)

    async def main():
        return await asyncio.gather(*(one(*args) for args in TABLE))

    got = loop.run_until_complete(main())
    mismatches = [
        (args, want, have)
        for args, want, have in zip(TABLE, map(_expected, TABLE), got, strict=True)
        if want != have
    ]
    assert not mismatches[:5], f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_numeric_host_needs_no_thread(monkeypatch):
    """oxloop answers a numeric host or None in the loop thread, with no executor (asyncio always
    uses its executor, so this property is oxloop's alone)."""
    import oxloop

    loop = oxloop.new_event_loop()
    loop.set_debug(False)  # debug mode goes through the executor to log as asyncio does
    callers = []
    real = socket.getaddrinfo

    def spy(*args, **kwargs):
        callers.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)

    async def main():
        for host in (None, "127.0.0.1", "::1", "fe80::1%lo"):
            await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM)

    try:
        loop.run_until_complete(main())
        executor = loop._default_executor
    finally:
        loop.close()
    # Canonical literals are answered without calling getaddrinfo at all; the rest are called
    # in the loop thread. Never in a worker thread, and no executor is created.
    assert all(callers) and len(callers) <= 4
    assert executor is None


NAMEINFO = [
    (("127.0.0.1", 80), 0),
    (("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("127.0.0.1", 80), socket.NI_NUMERICSERV),
    (("::1", 443, 0, 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("::1", 443, 0, 0), socket.NI_DGRAM | socket.NI_NUMERICHOST),
    (("127.0.0.1", 70000), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("127.0.0.1",), 0),
    ("not a tuple", 0),
]


@pytest.mark.parametrize("sockaddr, flags", NAMEINFO)
def test_getnameinfo_matches_socket_module(loop, sockaddr, flags):
    try:
        want = "ok", socket.getnameinfo(sockaddr, flags)
    except Exception as exc:  # noqa: BLE001
        want = type(exc).__name__, str(exc)

    async def main():
        try:
            return "ok", await loop.getnameinfo(sockaddr, flags)
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__, str(exc)

    assert loop.run_until_complete(main()) == want


def test_literal_fast_path_is_identical_to_socket_getaddrinfo():
    """Every answer the literal fast path builds equals socket.getaddrinfo's, reprs included."""
    import itertools

    from oxloop._sock import _literal_answer

    hosts = ["127.0.0.1", "0.0.0.0", "1.2.3.4", "127.1", "127.000.0.1", "01.2.3.4", "::1",
             "0:0::1", "::ffff:1.2.3.4", "fe80::1", "2001:db8::1", "::", "1::", "::1%lo",
             "localhost", "", "1.2.3.4.5"]  # fmt: skip
    checked = 0
    # Plain ints, the socket module's IntEnums and floats (which socket.getaddrinfo refuses: the
    # fast path must leave those to it, so `want` below would raise).
    for args in itertools.product(
        hosts,
        [0, 80, 65535, None, "80", True, 80.0],
        [0, socket.AF_INET, socket.AF_INET6, int(socket.AF_INET6), 0.0],
        [0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, 1, 1.0],
        [0, socket.IPPROTO_TCP, socket.IPPROTO_UDP, 6.0],
        [0, socket.AI_PASSIVE, socket.AI_NUMERICHOST, 0.0],
    ):
        answer = _literal_answer(*args)
        if answer is None:
            continue
        checked += 1
        want = socket.getaddrinfo(*args)
        assert [[repr(x) for x in info] for info in answer] == [
            [repr(x) for x in info] for info in want
        ], args
    assert checked > 200


def test_many_concurrent_and_cancelled_lookups(on_both):
    """Concurrent name lookups all answer like socket.getaddrinfo; a cancelled one harms nothing."""

    def scenario(loop):
        async def main():
            want = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
            doomed = loop.create_task(loop.getaddrinfo("localhost", 81))
            await asyncio.sleep(0)
            doomed.cancel()
            answers = await asyncio.gather(
                *(loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM) for _ in range(50))
            )
            try:
                await doomed
            except asyncio.CancelledError:
                cancelled = True
            else:
                cancelled = False
            again = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
            return all(a == want for a in answers), again == want, cancelled

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o == (True, True, True)


IDNA_HOSTS = [
    "localhost",
    "LocalHost",
    "example.com.",
    "a" * 63 + ".b",
    "a" * 64 + ".b",
    "b." + "a" * 63,
    "b." + "a" * 64,
    "a..b",
    ".a",
    "",
    ".",
    "bücher.example",
    "xn--bcher-kva.example",
]


@pytest.mark.parametrize("host", IDNA_HOSTS)
def test_host_encoding_is_the_idna_codecs(host):
    # oxloop encodes str hosts without the codec for plain ASCII names: same bytes, same error.
    from oxloop._sock import _idna

    def outcome(f):
        try:
            return f(host)
        except UnicodeError as exc:
            return type(exc), str(exc)

    assert outcome(_idna) == outcome(lambda h: h.encode("idna"))


# Local names, and names the encoding refuses before any lookup (nothing leaves the machine).
@pytest.mark.parametrize(
    "host", ["localhost", "LocalHost", "a" * 64 + ".b", "b." + "a" * 64, "a..b"]
)
def test_names_with_odd_labels_resolve_as_socket_getaddrinfo_does(loop, host):
    def sync():
        try:
            return sorted(socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            return type(exc), str(exc)

    async def main():
        try:
            return sorted(await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            return type(exc), str(exc)

    assert loop.run_until_complete(main()) == sync()
