"""The asyncio network backend under httpx, against real sockets on loopback: plain and TLS
connections, timeouts, refused connections, flow control both ways, and idle connections the
server closed."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from periscope.marketdata import network
from periscope.marketdata.network import AsyncioBackend, AsyncioTransport

LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=2)
Handler = Callable[[str, bytes, asyncio.StreamWriter], Awaitable[None]]


async def _serve(
    handler: Handler, tls: ssl.SSLContext | None = None, accepted: list[int] | None = None
) -> asyncio.Server:
    """A minimal HTTP/1.1 server: reads each request (head and body) and calls ``handler``;
    appends to ``accepted`` for each connection."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted is not None:
            accepted.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split()[1]
                length = next(
                    (
                        int(v)
                        for k, _, v in (x.partition(": ") for x in lines)
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                body = bytearray()
                while len(body) < length:  # slowly, so that a large upload has to wait
                    body += await reader.readexactly(min(1 << 20, length - len(body)))
                    await asyncio.sleep(0.001)
                await handler(path, bytes(body), writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(connection, "127.0.0.1", 0, ssl=tls)


def _url(server: asyncio.Server, path: str, scheme: str = "http") -> str:
    port = server.sockets[0].getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}{path}"


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_transport__uses_the_asyncio_backend() -> None:
    transport = AsyncioTransport(LIMITS)
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, AsyncioBackend)


def test_large_bodies__both_ways_with_flow_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """24 MB down to a client that reads slowly (the protocol pauses the socket above its high
    water mark, so its buffer stays bounded) and 24 MB up to a server that reads slowly (writes
    wait for the transport's buffer to drain)."""
    payload = bytes(range(256)) * (24 * 4096)
    largest_buffer = 0
    write_pauses = 0
    receive, pause = network._Connection.data_received, network._Connection.pause_writing

    def watched_receive(self: network._Connection, data: bytes) -> None:
        nonlocal largest_buffer
        receive(self, data)
        largest_buffer = max(largest_buffer, len(self._buffer))

    def watched_pause(self: network._Connection) -> None:
        nonlocal write_pauses
        write_pauses += 1
        pause(self)

    monkeypatch.setattr(network._Connection, "data_received", watched_receive)
    monkeypatch.setattr(network._Connection, "pause_writing", watched_pause)

    async def handler(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        if path == "/down":
            writer.write(_ok(payload))
        else:
            writer.write(_ok(b"%d %d" % (len(body), body == payload)))
        await writer.drain()

    async def main() -> None:
        server = await _serve(handler)
        async with server, httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
            async with client.stream("GET", _url(server, "/down")) as response:
                received = bytearray()
                async for chunk in response.aiter_raw():
                    received += chunk
                    await asyncio.sleep(0.001)  # slower than loopback: the buffer fills up
            assert bytes(received) == payload
            response = await client.post(_url(server, "/up"), content=payload)
            assert response.text == f"{len(payload)} 1"

    asyncio.run(main())
    # paused above the high water mark: at most one read's worth (256 kB) beyond it
    assert network._HIGH_WATER < largest_buffer <= network._HIGH_WATER + (1 << 18)
    assert write_pauses > 0


def test_idle_connection_closed_by_the_server__next_request_reconnects() -> None:
    accepted: list[int] = []

    async def handler(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(_ok(path.encode()))
        await writer.drain()
        writer.close()  # keep-alive announced (HTTP/1.1) but the server hangs up

    async def main() -> None:
        server = await _serve(handler, accepted=accepted)
        async with server, httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
            for k in range(3):
                response = await client.get(_url(server, f"/{k}"))
                assert response.text == f"/{k}"
                await asyncio.sleep(0.05)  # the close reaches the client's protocol

    asyncio.run(main())
    assert len(accepted) == 3  # each request found its pooled connection closed and redialled


def _threaded_server(idle_close: float) -> tuple[str, list[int], Callable[[], None]]:
    """An HTTP/1.1 server in its own thread (so it acts while the test's loop is blocked) that
    answers each GET with its path and closes a connection idle for ``idle_close`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            with connection:
                connection.settimeout(idle_close)
                try:
                    while request := connection.recv(65536):
                        path = request.split(b" ", 2)[1]
                        connection.sendall(_ok(path))
                except TimeoutError:
                    pass  # idle: hang up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(5)
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}", accepted, close


def test_idle_connection_closed_while_the_loop_was_blocked__next_request_reconnects() -> None:
    """The server drops an idle keep-alive connection while the client's loop is busy with
    other work (a notebook computing between fetches): the protocol has not seen the close,
    so the pool must find out by looking at the socket, not send on a dead connection."""
    base, accepted, close = _threaded_server(idle_close=0.1)

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
            assert (await client.get(f"{base}/first")).text == "/first"
            assert (await client.get(f"{base}/second")).text == "/second"
            assert len(accepted) == 1  # kept alive and reused so far
            time.sleep(network._TRUST_PROTOCOL_SECONDS + 0.2)  # blocked; the server hangs up
            assert (await client.get(f"{base}/after")).text == "/after"

    try:
        asyncio.run(main())
    finally:
        close()
    assert len(accepted) == 2


def test_read_timeout_and_refused_connection() -> None:
    async def silent(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)  # longer than the client's timeout

    async def main() -> None:
        server = await _serve(silent)
        timeout = httpx.Timeout(0.2)
        async with (
            server,
            httpx.AsyncClient(transport=AsyncioTransport(LIMITS), timeout=timeout) as client,
        ):
            with pytest.raises(httpx.ReadTimeout):
                await client.get(_url(server, "/"))
        closed = await _serve(silent)
        url = _url(closed, "/")
        closed.close()
        await closed.wait_closed()
        async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)

    asyncio.run(main())


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "periscope test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls__verified_against_the_given_authority_and_rejected_otherwise(tmp_path: Path) -> None:
    cert_path, key_path = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    trusting = ssl.create_default_context(cafile=str(cert_path))

    async def handler(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(_ok(b"secret " * 40_000))  # several TLS records
        await writer.drain()

    accepted: list[int] = []

    async def main() -> None:
        server = await _serve(handler, tls=server_context, accepted=accepted)
        url = _url(server, "/", scheme="https")
        async with server:
            transport = AsyncioTransport(LIMITS, verify=trusting)
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(2):  # the second request reuses the TLS connection
                    response = await client.get(url)
                    assert response.content == b"secret " * 40_000
                    assert response.extensions["network_stream"].get_extra_info("ssl_object")
            assert len(accepted) == 1  # the second request reused the TLS connection
            async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(url)

    asyncio.run(main())


def test_connection_cut_mid_body__transport_error() -> None:
    """A body cut short by a reset or a close is an error (the session retries it), never a
    short body taken for a whole one."""

    async def handler(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 300_000)
        await writer.drain()
        await asyncio.sleep(0.05)
        if path == "/reset":  # linger 0: the close sends RST
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()  # FIN before the announced length

    async def main() -> None:
        server = await _serve(handler)
        async with server, httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as client:
            for path in ("/reset", "/close"):
                with pytest.raises(httpx.TransportError):
                    await client.get(_url(server, path))

    asyncio.run(main())
