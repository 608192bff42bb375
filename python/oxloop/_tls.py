"""TLS for ``oxloop.Loop``: Python's own ``ssl`` module over oxloop's Rust transports.

The TLS record work is asyncio's ``sslproto.SSLProtocol`` (an ``ssl.MemoryBIO`` pair driven as a
``BufferedProtocol``), so every ``SSLContext`` a user builds behaves as it does on asyncio's loop:
OpenSSL semantics, client certificates, ALPN, SNI, session reuse, close_notify on shutdown. The
socket underneath is an oxloop ``SocketTransport``: reads land straight in the protocol's buffer
(``get_buffer``/``buffer_updated``) from the Rust reactor. Mirrors
``_SelectorEventLoop._make_ssl_transport``; ``start_tls`` is asyncio's own (``_borrowed.py``).
"""

from __future__ import annotations

from asyncio import constants, sslproto


class TLSMixin:
    """``_make_ssl_transport`` for ``oxloop.Loop``."""

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
        call_connection_made=True,
    ):
        # NOTE: `call_connection_made` is in BaseEventLoop._make_ssl_transport's signature on
        # CPython's main branch; SSLProtocol takes it on every supported version.
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made,
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport
