"""oxloop's UDP transport: asyncio's ``DatagramTransport`` over a Rust core.

``DatagramTransport`` is what ``loop.create_datagram_endpoint`` returns. Reads, ``sendto`` and the
send buffer live in ``_oxloop.DatagramCore`` (the protocol's ``datagram_received`` is called
straight from the reactor); this class keeps asyncio's cold paths: extra info, close/abort,
``connection_lost`` and write flow control (asyncio's own ``_FlowControlMixin``). Mirrors
``_SelectorDatagramTransport`` in ``asyncio/selector_events.py``.

It is an instance of both ``asyncio.DatagramTransport`` and, like asyncio's own UDP transport,
``asyncio.Transport``.
"""

from __future__ import annotations

import logging
import warnings
from asyncio import futures, transports, trsock

from . import _oxloop

logger = logging.getLogger("asyncio")


class DatagramTransport(transports._FlowControlMixin, transports.DatagramTransport):
    """A UDP (or Unix datagram) transport."""

    max_size = 256 * 1024  # Buffer size passed to recvfrom().

    # Used by __del__: set even if __init__ fails early.
    _sock = None
    _core = None

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(extra, loop)
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._protocol = protocol
        self._protocol_connected = True
        self._address = address
        self._core = _oxloop.DatagramCore(
            loop, self, sock, protocol, address, bool(self._extra["peername"])
        )
        # NOTE: the hot calls go straight to the core's bound methods (no Python frame); a
        # subclass that overrides them keeps its own.
        if type(self).sendto is DatagramTransport.sendto:
            self.sendto = self._core.sendto
        if type(self).get_write_buffer_size is DatagramTransport.get_write_buffer_size:
            self.get_write_buffer_size = self._core.buffer_size
        loop._register_transport(self._sock_fd, self)
        # Every protocol callback runs in the context captured by the core at creation.
        self._context = self._core.context
        self._loop.call_soon(self._protocol.connection_made, self, context=self._context)
        # Only start reading when connection_made() has been called.
        self._loop.call_soon(self._add_reader)
        if waiter is not None:
            # Only wake up the waiter when connection_made() has been called.
            self._loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        info = [self.__class__.__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._loop is not None and not self._loop.is_closed():
            info.append("read=polling" if self._core.polling(False) else "read=idle")
            state = "polling" if self._core.polling(True) else "idle"
            info.append(f"write=<{state}, bufsize={self.get_write_buffer_size()}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
            self._sock = None
            if self._core is not None:
                try:
                    self._core.release()
                except Exception:  # noqa: BLE001, S110 - the loop may be gone at shutdown
                    pass

    @property
    def _conn_lost(self):
        return self._core.conn_lost

    @property
    def _closing(self):
        return self._core.is_closing()

    def sendto(self, data, addr=None):
        """Send ``data`` to ``addr`` (or to the connected peer); never blocks."""
        self._core.sendto(data, addr)

    def get_write_buffer_size(self):
        """Return the number of bytes waiting in the send buffer."""
        return self._core.buffer_size()

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True
        self._core.set_protocol(protocol)

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._core.is_closing()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        if self._core.pause_reading() and self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._core.resume_reading() and self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def _add_reader(self):
        self._core.start_reading()

    def abort(self):
        """Close at once: buffered datagrams are dropped."""
        self._force_close(None)

    def close(self):
        """Close once the send buffer is flushed; connection_lost(None) follows."""
        self._core.close()

    def _fatal_error(self, exc, message="Fatal error on transport"):
        # Called by the core for errors that are not OSError of a single send or receive.
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=exc)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._force_close(exc)

    def _force_close(self, exc):
        self._core.abort(exc)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._loop._unregister_transport(self._sock_fd, self)
            self._core.release()
            self._sock.close()
            self._sock = None
            self._protocol = None
            self._loop = None
