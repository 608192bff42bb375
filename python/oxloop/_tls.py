"""TLS for ``oxloop.Loop``: Python's own ``ssl`` module over oxloop's Rust transports.

The TLS record work is asyncio's ``sslproto.SSLProtocol`` (an ``ssl.MemoryBIO`` pair driven as a
``BufferedProtocol``), so every ``SSLContext`` a user builds behaves as it does on asyncio's loop:
OpenSSL semantics, client certificates, ALPN, SNI, session reuse, close_notify on shutdown. The
socket underneath is an oxloop ``SocketTransport``: reads land straight in the protocol's buffer
(``get_buffer``/``buffer_updated``) from the Rust reactor. Mirrors ``BaseEventLoop.start_tls`` and
``_SelectorEventLoop._make_ssl_transport`` of the running Python.
"""

from __future__ import annotations

import ssl
from asyncio import constants, sslproto


class TLSMixin:
    """``_make_ssl_transport`` and ``start_tls`` for ``oxloop.Loop``."""

    def _make_ssl_transport(
        self,
        rawsock,
        protocol,
        sslcontext,
        waiter=None,
        *,
        server_side=False,
        server_hostname=None,
        extra=None,
        server=None,
        ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT,
    ):
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    async def start_tls(
        self,
        transport,
        protocol,
        sslcontext,
        *,
        server_side=False,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Upgrade ``transport`` to TLS; return the new transport ``protocol`` must use at once."""
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
            )
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False,
        )
        # Pause first so the TLS protocol sees no data before connection_made().
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport
