"""An httpcore network backend on plain asyncio, and the httpx transport that uses it.

httpx's default async backend goes through anyio, which yields to the event loop at every read
and write (a "checkpoint") and polls a pooled socket with ``select`` each time a request wants to
reuse it. For a chain snapshot (pages of 250 contracts, about 250 kB each) that overhead was about
a sixth of the client's CPU per request (measured: 0.47 against 0.58-0.65 ms of CPU for a tiny
request, 0.74-0.80 against 0.90-0.97 ms for a 250-contract page, and a fifth fewer Python calls
over a whole chain). Here an :class:`asyncio.Protocol` buffers what arrives; a read returns at
once when bytes are buffered and only waits (under its timeout) when none are; whether a
connection reused soon after its last use was closed is known from the protocol instead of a
poll (one that sat idle longer is polled, since the loop may not have run in the meantime).

The semantics are httpcore's: reads return at most ``max_bytes`` and ``b""`` at the end of the
stream; timeouts and socket errors become httpcore's ``ConnectTimeout``/``ConnectError``,
``ReadTimeout``/``ReadError`` and ``WriteTimeout``/``WriteError``, which httpx maps to its own.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# Stop reading from the socket while this much is buffered and unread (a few pages), resume
# below a quarter of it: memory stays bounded when the reader is slower than the network.
_HIGH_WATER = 4 * 1024 * 1024
_LOW_WATER = _HIGH_WATER // 4
# A connection idle for longer than this may have been closed while the event loop was blocked
# (say by a notebook computing between two fetches), which the protocol cannot have seen yet.
_TRUST_PROTOCOL_SECONDS = 0.5

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _Connection(asyncio.Protocol):
    """The receive buffer and flow control of one connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._last_used = time.monotonic()

    # -- protocol callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake_reader()
        if len(self._buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():  # done: a cancelled wait
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the stream's side -------------------------------------------------------------------
    def closed_or_readable(self) -> bool:
        """True when the peer closed the connection or sent bytes nobody asked for."""
        if self._eof or self._buffer:
            return True
        if time.monotonic() - self._last_used < _TRUST_PROTOCOL_SECONDS or self.transport is None:
            return False
        return _socket_readable(self.transport.get_extra_info("socket"))

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        if not self._buffer and not self._eof:
            self._readable = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._readable
            finally:
                self._readable = None
        self._last_used = time.monotonic()
        if self._buffer:
            chunk = bytes(self._buffer[:max_bytes])
            del self._buffer[:max_bytes]  # cheap: bytearray deletes from the front in place
            if self._reading_paused and len(self._buffer) < _LOW_WATER and self.transport:
                self.transport.resume_reading()
                self._reading_paused = False
            return chunk
        if self._error is not None:
            raise self._error
        return b""

    async def write(self, data: bytes, timeout: float | None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise self._error or ConnectionResetError("the connection is closed")
        self._last_used = time.monotonic()
        transport.write(data)
        waiter = self._writable
        if waiter is not None and not waiter.done():
            async with asyncio.timeout(timeout):
                await waiter
            if self._error is not None:
                raise self._error


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether ``sock`` has bytes or an end of stream to read (closed sockets count)."""
    if sock is None or sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])  # pragma: no cover (Windows)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (optionally TLS) connection for httpcore."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    @property
    def _transport(self) -> asyncio.Transport:
        assert self._connection.transport is not None
        return self._connection.transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self._connection.read(max_bytes, timeout)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(f"no data within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            await self._connection.write(buffer, timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(f"could not send within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        transport = self._transport
        transport.close()
        if transport.get_extra_info("ssl_object") is not None:
            # close() on TLS waits (up to 30 s) for the peer's close_notify before closing the
            # socket, which then outlives a loop that ends now; like anyio, do not wait.
            transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._connection,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        assert isinstance(transport, asyncio.Transport)
        self._connection.transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            return self._connection.closed_or_readable()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections made by the running asyncio loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    # both address families tried, staggered, as anyio does (RFC 8305)
                    happy_eyeballs_delay=0.25,
                    interleave=1,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _connected(transport, connection, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_unix_connection(_Connection, path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _connected(transport, connection, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _connected(
    transport: asyncio.BaseTransport,
    connection: _Connection,
    options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    """The stream of a new connection, once ``options`` are set on its socket."""
    sock: socket.socket = transport.get_extra_info("socket")
    try:
        for option in options or ():
            sock.setsockopt(*option)
    except OSError as exc:
        transport.close()
        raise httpcore.ConnectError(f"socket option {option}: {exc}") from exc
    return AsyncioStream(connection)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool uses :class:`AsyncioBackend`.

    Direct connections only (a proxy takes httpx's own transport). ``verify`` is as httpx's:
    True, False or an ``ssl.SSLContext`` (one context can serve several transports).
    """

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        super().__init__(limits=limits, verify=context)
        # httpx builds its pool in __init__ and offers no backend parameter; this replaces it
        # with the same settings (tests/marketdata/test_network.py checks the pool in use).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
