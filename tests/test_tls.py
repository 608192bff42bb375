"""TLS over oxloop's transports, compared with asyncio's loop (issue 4).

A certificate authority is made by each test session (trustme); nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def pki():
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ctx)
    other_ca = trustme.CA()
    untrusting_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    other_ca.configure_trust(untrusting_ctx)
    return {"server": server_ctx, "client": client_ctx, "untrusting": untrusting_ctx}


async def _echo_server(server_ctx, **kwargs):
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx, **kwargs)


@pytest.mark.parametrize("size", [1, 1000, 1 << 20, 5 << 20])
def test_tls_echo_byte_for_byte(on_both, pki, size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    def scenario(loop):
        async def main():
            server = await _echo_server(pki["server"])
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=pki["client"], server_hostname="localhost"
            )
            ssl_obj = writer.get_extra_info("ssl_object")
            info = (
                isinstance(ssl_obj, ssl.SSLObject),
                ssl_obj.version(),
                writer.get_extra_info("peercert")["subjectAltName"],
                writer.get_extra_info("cipher") is not None,
                writer.get_extra_info("compression"),
            )
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(len(payload))
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return got == payload, info

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o
    assert o[0] is True


def test_tls_200_concurrent_handshakes(on_both, pki):
    def scenario(loop):
        async def main():
            server = await _echo_server(pki["server"], backlog=256)
            port = server.sockets[0].getsockname()[1]

            async def client(i):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=pki["client"], server_hostname="localhost"
                )
                msg = f"hello {i}".encode()
                writer.write(msg)
                got = await reader.readexactly(len(msg))
                writer.close()
                await writer.wait_closed()
                return got == msg

            results = await asyncio.gather(*(client(i) for i in range(200)))
            server.close()
            await server.wait_closed()
            return sum(results)

        return loop.run_until_complete(asyncio.wait_for(main(), 120))

    a, o = on_both(scenario)
    assert a == o == 200


def test_start_tls_upgrades_a_plain_connection(on_both, pki):
    def scenario(loop):
        async def main():
            upgraded = loop.create_future()

            async def handle(reader, writer):
                line = await reader.readline()  # plain text first, like SMTP's STARTTLS
                writer.write(b"GO\n")
                await writer.drain()
                await writer.start_tls(pki["server"])
                secret = await reader.readline()
                upgraded.set_result((line, secret, writer.get_extra_info("ssl_object") is not None))
                writer.write(b"bye\n")
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await writer.start_tls(pki["client"], server_hostname="localhost")
            writer.write(b"secret\n")
            bye = await reader.readline()
            result = await upgraded
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return result, bye

        return loop.run_until_complete(asyncio.wait_for(main(), 30))

    a, o = on_both(scenario)
    assert a == o == ((b"STARTTLS\n", b"secret\n", True), b"bye\n")


def test_untrusted_server_fails_verification(on_both, pki):
    def scenario(loop):
        async def main():
            server = await _echo_server(pki["server"])
            port = server.sockets[0].getsockname()[1]
            try:
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=pki["untrusting"], server_hostname="localhost"
                )
            except ssl.SSLCertVerificationError as e:
                outcome = ("SSLCertVerificationError", e.verify_message)
            else:
                outcome = "connected"
            server.close()
            await server.wait_closed()
            return outcome

        return loop.run_until_complete(asyncio.wait_for(main(), 30))

    a, o = on_both(scenario)
    # The server side logs the failed handshake on both loops; that is expected here.
    assert a == o
    assert o[0] == "SSLCertVerificationError"


def test_bad_tls_arguments(on_both, pki):
    def scenario(loop):
        async def attempt(**kwargs):
            try:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, **kwargs)
            except (TypeError, ValueError) as e:
                return type(e).__name__, str(e)
            except OSError as e:
                return "OSError", e.errno

        async def attempt_server(**kwargs):
            try:
                server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, **kwargs)
            except (TypeError, ValueError) as e:
                return type(e).__name__, str(e)
            # Accepted at creation (asyncio checks the context only per connection).
            server.close()
            await server.wait_closed()
            return "created"

        async def main():
            return [
                await attempt(ssl=True),
                await attempt(server_hostname="x"),
                await attempt(ssl_handshake_timeout=1),
                await attempt(ssl=pki["client"], ssl_handshake_timeout=0),
                await attempt_server(ssl=True),
                await attempt_server(ssl_handshake_timeout=1),
                await attempt_server(ssl="not a context"),
            ]

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o


class _Tls(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(None)


def test_tls_transport_write_eof_pause_and_abort(on_both, pki):
    # asyncio's TLS transport: no half-close, reading paused really holds data back, abort()
    # loses the connection at once with no error.
    def scenario(loop):
        async def main():
            server = await _echo_server(pki["server"])
            port = server.sockets[0].getsockname()[1]
            tr, pr = await loop.create_connection(
                lambda: _Tls(loop),
                "127.0.0.1",
                port,
                ssl=pki["client"],
                server_hostname="localhost",
            )
            out = [tr.can_write_eof()]
            try:
                tr.write_eof()
                out.append("write_eof returned")
            except Exception as exc:  # noqa: BLE001 - the exception is the result compared
                out.append(type(exc).__name__)
            tr.pause_reading()
            out.append(tr.is_reading())
            tr.write(b"echo me")
            await asyncio.sleep(0.2)
            out.append(bytes(pr.data))
            tr.resume_reading()
            out.append(tr.is_reading())
            for _ in range(200):
                if pr.data:
                    break
                await asyncio.sleep(0.01)
            out.append(bytes(pr.data))
            tr.abort()
            out.append(tr.is_closing())
            await asyncio.wait_for(pr.lost, 5)
            out.append(pr.events)
            server.close()
            await server.wait_closed()
            return out

        return loop.run_until_complete(main())

    a, o = on_both(scenario)
    assert a == o
    assert a[0] is False and a[3] == b"" and a[5] == b"echo me"
