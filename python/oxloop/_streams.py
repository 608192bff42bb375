"""Stream networking hooks of ``oxloop.Loop``: socket transports, serving, pipes, sendfile.

asyncio's own ``create_connection``, ``create_server``, ``create_unix_server``,
``connect_accepted_socket``, ``start_tls``, ``sendfile``, ``connect_read_pipe`` ... are borrowed
from the running Python (``_borrowed.py``). They reach oxloop through the hooks here: every
connection gets an ``oxloop._oxloop.SocketTransport`` that the Rust reactor drives directly
(reads, writes, protocol calls), every pipe a Rust pipe transport. The ``Server`` object is
asyncio's own ``base_events.Server``: it only talks to the loop through ``_start_serving`` /
``_stop_serving`` / ``create_future``.
"""

from __future__ import annotations

import socket

from . import _oxloop

# Listening sockets served by oxloop's native accept loop (_oxloop.serve); any other goes
# through asyncio's _accept_connection as a reader.
_NATIVE_ACCEPT = frozenset({socket.AF_INET, socket.AF_INET6, socket.AF_UNIX})


class StreamsMixin:
    """The transport and serving hooks asyncio's stream methods are written against."""

    # -- transports ----------------------------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return _oxloop.make_socket_transport(self, sock, protocol, waiter, extra, server)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _oxloop.make_read_pipe_transport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _oxloop.make_write_pipe_transport(self, pipe, protocol, waiter, extra)

    # -- serving -------------------------------------------------------------------------------

    def _start_serving(
        self,
        protocol_factory,
        sock,
        sslcontext=None,
        server=None,
        backlog=100,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        # Mirrors BaseSelectorEventLoop._start_serving. A plain socket is served by a native
        # watcher that accepts in Rust and runs asyncio's _accept_connection2 (borrowed) per
        # connection, and asyncio's _accept_connection in debug mode and after an accept error;
        # any other socket gets asyncio's _accept_connection (borrowed) as a reader.
        args = (
            protocol_factory,
            sock,
            sslcontext,
            server,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        fd = sock.fileno()
        if sock.__class__ is socket.socket and fd >= 0 and sock.family in _NATIVE_ACCEPT:
            _oxloop.serve(self, fd, args)
        else:
            self._add_reader(fd, self._accept_connection, *args)

    def _stop_serving(self, sock):
        # Mirrors BaseSelectorEventLoop._stop_serving. On 3.13+ the Unix loop's _stop_serving
        # (borrowed) reaches this one through super() after noting the socket file to unlink.
        self._remove_reader(sock.fileno())
        sock.close()

    # -- sendfile ------------------------------------------------------------------------------

    async def _sendfile_native(self, transp, file, offset, count):
        # Mirrors BaseSelectorEventLoop._sendfile_native over oxloop's transport registry: the
        # transport gives its fd up while asyncio's sock_sendfile (borrowed: os.sendfile from
        # asyncio's unix_events) writes to it, then takes it back.
        fd = transp._sock_fd
        self._unregister_transport(fd, transp)
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            return await self.sock_sendfile(transp._sock, file, offset, count, fallback=False)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
            if not transp.is_closing():
                self._register_transport(fd, transp)
