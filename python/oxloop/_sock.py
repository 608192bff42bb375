"""Socket-level methods of ``oxloop.Loop``: ``sock_*``, ``getaddrinfo``/``getnameinfo``, UDP hook.

Mixed into ``Loop`` (see ``_loop.py``). Each ``sock_*`` coroutine mirrors CPython's
``asyncio/selector_events.py`` for the running version: the same checks, then one immediate try of
the socket call. Only when that would block does the Rust side take over
(``_oxloop.sock_wait``): the fd is watched by a native reactor watcher, the call is retried on
readiness, and the future's done callback drops the watch, so cancellation leaves the socket
usable and nothing registered.

Name resolution never blocks the loop: like asyncio it runs ``socket.getaddrinfo`` in the default
executor, except when the host is ``None`` or a numeric address literal; those are resolved at once
in the loop thread with ``AI_NUMERICHOST`` (no DNS can happen), giving ``socket.getaddrinfo``'s own
result.
"""

from __future__ import annotations

import _socket
import socket
from asyncio import base_events

from . import _oxloop, _udp

_HAS_IPv6 = hasattr(socket, "AF_INET6")
# sock_recv / sock_recv_into / sock_sendall try plain sockets in Rust first (_oxloop.sock_try).
_SOCKET = socket.socket
_AGAIN = _oxloop.SOCK_AGAIN
_TRY_RECV = _oxloop.SOCK_TRY_RECV
_TRY_RECV_INTO = _oxloop.SOCK_TRY_RECV_INTO
_TRY_SEND = _oxloop.SOCK_TRY_SEND
_TRY_ACCEPT = _oxloop.SOCK_TRY_ACCEPT
_TRY_CONNECT = _oxloop.SOCK_TRY_CONNECT
_NUMERIC_CHARS = frozenset("0123456789.")
# A socket's family, type and proto as plain ints (socket.socket's properties build enums, a few
# microseconds each; the values are equal).
_FAMILY = _socket.socket.__dict__["family"].__get__
_TYPE = _socket.socket.__dict__["type"].__get__
_PROTO = _socket.socket.__dict__["proto"].__get__
_INET_FAMILIES = (
    frozenset({socket.AF_INET, socket.AF_INET6}) if _HAS_IPv6 else frozenset({socket.AF_INET})
)


def _looks_numeric(host):
    """True if ``host`` is None or may be a numeric address (getaddrinfo will tell for sure)."""
    if host is None:
        return True
    if isinstance(host, (bytes, bytearray)):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str) or not host:
        return False
    # Host names never contain ':'; dotted digits cover IPv4 in every form inet_aton takes.
    return ":" in host or all(c in _NUMERIC_CHARS for c in host)


# ``socket.getaddrinfo``'s exact answer for an IP literal, built in Rust without calling it (only
# the cases whose answer is fully determined: int arguments, no flags, one socket type, a
# canonical IPv4 literal or an unscoped IPv6 one); None otherwise.
_literal_answer = _oxloop.literal_addrinfo


def _encode_query(host, port, family, type_, proto, flags):
    """``socket.getaddrinfo``'s own encoding of its arguments, or None for unusual ones.

    ``str`` hosts go through the ``idna`` codec exactly as CPython's ``socket_getaddrinfo``
    does (so its ``UnicodeError`` is raised here, as it would be there); integer ports become
    their decimal text. Anything else (other types, NUL bytes, huge ints) returns None and takes
    the executor path, where ``socket.getaddrinfo`` itself decides.
    """
    if not (type(family) is type(type_) is type(proto) is type(flags) is int):
        return None
    if host is None or isinstance(host, bytes):
        host_b = host
    elif isinstance(host, str):
        host_b = _idna(host)
    else:
        return None
    if port is None or isinstance(port, bytes):
        port_b = port
    elif isinstance(port, int):
        if not -(2**63) <= port < 2**63:
            return None
        port_b = str(int(port)).encode()
    elif isinstance(port, str) and port.isascii():
        port_b = port.encode()
    else:
        return None
    # NOTE: find(), not `in`: bytes.__contains__ first tries the operand as an int and raises.
    if (host_b and host_b.find(b"\0") >= 0) or (port_b and port_b.find(b"\0") >= 0):
        return None
    return host_b, port_b


def _idna(host):
    """``host.encode("idna")``, without the codec machinery for the usual ASCII host name.

    Mirrors the ASCII fast path of ``encodings.idna.Codec.encode``: the bytes are the ASCII text
    when every label but the last is 1-63 characters and the last under 64; anything else goes
    through the codec itself, so its result or its exact error is the codec's.
    """
    if host.isascii():
        labels = host.split(".")
        if len(labels[-1]) < 64:
            for label in labels[:-1]:
                if not 0 < len(label) < 64:
                    break
            else:
                return host.encode("ascii")
    return host.encode("idna")


# (enum class, int) -> the enum member or the int itself, as socket._intenum_converter answers.
_ENUM_CACHE = {}


def _as_enum(value, enum_cls):
    # Mirrors socket._intenum_converter (its answer per value, cached: an enum call is slow).
    key = (enum_cls, value)
    found = _ENUM_CACHE.get(key)
    if found is None:
        try:
            found = enum_cls(value)
        except ValueError:
            found = value
        if len(_ENUM_CACHE) < 1024:
            _ENUM_CACHE[key] = found
    return found


class SocketMethods:
    """``sock_*``, name resolution and the datagram transport hook; mixed into ``oxloop.Loop``."""

    __slots__ = ()

    #: The loop's host-name resolver (``_oxloop.Resolver``), made on first use.
    _resolver = None

    def _close_resolver(self):
        if self._resolver is not None:
            self._resolver.close()
            self._resolver = None

    # -- helpers -------------------------------------------------------------------------------

    def _sock_check(self, sock):
        base_events._check_ssl_socket(sock)
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _sock_wait(self, sock, kind, args=()):
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        return _oxloop.sock_wait(self, sock, fd, kind, args)

    # -- sock_* --------------------------------------------------------------------------------

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from ``sock``; return them as bytes."""
        if sock.__class__ is _SOCKET:
            # The first try in Rust (asyncio's checks, then the syscall): no exception when it
            # would block.
            result = _oxloop.sock_try(self, sock, _TRY_RECV, n)
            if result is not _AGAIN:
                return result
        else:
            self._sock_check(sock)
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
        return await self._sock_wait(sock, "recv", (n,))

    async def sock_recv_into(self, sock, buf):
        """Receive data from ``sock`` into the writable buffer ``buf``; return the byte count."""
        if sock.__class__ is _SOCKET:
            result = _oxloop.sock_try(self, sock, _TRY_RECV_INTO, buf)
            if result is not _AGAIN:
                return result
        else:
            self._sock_check(sock)
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
        return await self._sock_wait(sock, "recv_into", (buf,))

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to ``bufsize`` bytes; return ``(data, address)``."""
        self._sock_check(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, "recvfrom", (bufsize,))

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into ``buf``; return ``(nbytes, address)``."""
        self._sock_check(sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, "recvfrom_into", (buf, nbytes))

    async def sock_sendall(self, sock, data):
        """Send all of ``data`` to the connected ``sock``; return None."""
        if sock.__class__ is _SOCKET:
            n = _oxloop.sock_try(self, sock, _TRY_SEND, data)  # 0 if it would block
        else:
            self._sock_check(sock)
            try:
                n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
        if n == len(data):
            return
        return await self._sock_wait(sock, "sendall", (memoryview(data), n))

    async def sock_sendto(self, sock, data, address):
        """Send the datagram ``data`` to ``address``; return the number of bytes sent."""
        self._sock_check(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, "sendto", (data, 0, address))

    async def sock_connect(self, sock, address):
        """Connect ``sock`` to ``address`` (resolved first for IPv4/IPv6 sockets)."""
        self._sock_check(sock)
        if sock.__class__ is _SOCKET:
            if _FAMILY(sock) in _INET_FAMILIES:
                resolved = await self._ensure_resolved(
                    address, family=_FAMILY(sock), type=_TYPE(sock), proto=_PROTO(sock), loop=self
                )
                _, _, _, _, address = resolved[0]
            # connect_ex in Rust: no exception raised while the connection goes on.
            if _oxloop.sock_try(self, sock, _TRY_CONNECT, address) is not _AGAIN:
                return None
        else:
            if sock.family == socket.AF_INET or (_HAS_IPv6 and sock.family == socket.AF_INET6):
                resolved = await self._ensure_resolved(
                    address, family=sock.family, type=sock.type, proto=sock.proto, loop=self
                )
                _, _, _, _, address = resolved[0]
            try:
                sock.connect(address)
            except (BlockingIOError, InterruptedError):
                # A connect interrupted by EINTR goes on in the background: wait for writability.
                pass
            else:
                return None
        fut = self._sock_wait(sock, "connect", (address,))
        try:
            return await fut
        finally:
            # Break the cycle through the exception's traceback.
            fut = None

    async def sock_accept(self, sock):
        """Accept a connection on the listening ``sock``; return ``(conn, address)``."""
        if sock.__class__ is _SOCKET:
            # accept4 in Rust (asyncio's checks first): the new socket is non-blocking from the
            # start, and no exception is raised when nothing is pending.
            result = _oxloop.sock_try(self, sock, _TRY_ACCEPT, None)
            if result is not _AGAIN:
                return result
            return await self._sock_wait(sock, "accept")
        self._sock_check(sock)
        try:
            conn, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            return await self._sock_wait(sock, "accept")
        try:
            conn.setblocking(False)
        except BaseException:
            conn.close()
            raise
        return conn, address

    # -- name resolution -----------------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """``socket.getaddrinfo`` without blocking the loop."""
        if self.get_debug():
            func = self._getaddrinfo_debug
        else:
            func = socket.getaddrinfo
            answer = _literal_answer(host, port, family, type, proto, flags)
            if answer is not None:
                return answer
            query = _encode_query(host, port, family, type, proto, flags)
            if query is not None:
                # libc getaddrinfo on oxloop's resolver threads, no GIL involved; a failure
                # (None) is repeated below so the exception is socket.getaddrinfo's own.
                if self._resolver is None:
                    self._resolver = _oxloop.Resolver(self)
                raw = await self._resolver.submit(*query, family, type, proto, flags)
                if raw is not None:
                    return [
                        (_as_enum(f, socket.AddressFamily), _as_enum(t, socket.SocketKind), p, c, a)
                        for f, t, p, c, a in raw
                    ]
            # NOTE: a flags argument that is no int is socket.getaddrinfo's TypeError to raise,
            # in the executor below.
            if isinstance(flags, int) and not flags & socket.AI_CANONNAME and _looks_numeric(host):
                try:
                    return socket.getaddrinfo(
                        host, port, family, type, proto, flags | socket.AI_NUMERICHOST
                    )
                except Exception:  # noqa: BLE001, S110 - the executor call below decides
                    pass  # not numeric after all, or an error the executor call reproduces
        return await self.run_in_executor(None, func, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        """``socket.getnameinfo`` without blocking the loop."""
        numeric = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        if flags & numeric == numeric:
            # Neither a host nor a service lookup can happen: answer at once.
            return socket.getnameinfo(sockaddr, flags)
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # -- UDP -----------------------------------------------------------------------------------

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        return _udp.DatagramTransport(self, sock, protocol, address, waiter, extra)


def _mirror_qualnames(cls):
    """Gives each public method the qualified name of the asyncio method it mirrors, so argument
    errors read the same (``BaseEventLoop.create_datagram_endpoint() got an unexpected keyword
    argument ...``)."""
    from asyncio import base_events, selector_events

    owners = (selector_events.BaseSelectorEventLoop, base_events.BaseEventLoop)
    for name, func in vars(cls).items():
        code = getattr(func, "__code__", None)
        if name.startswith("_") or code is None or not hasattr(code, "co_qualname"):
            continue
        owner = next((o for o in owners if name in vars(o)), None)
        if owner is not None:
            # NOTE: only the code object's name changes; the method stays oxloop's.
            qualname = f"{owner.__name__}.{name}"
            func.__code__ = code.replace(co_qualname=qualname)
            func.__qualname__ = qualname


_mirror_qualnames(SocketMethods)
