"""The HTTP layer of the Massive client: auth, timeouts, retries, rate limit, cache, pagination.

Error mapping (``STYLE.md``, ``reference/massive-api.md`` §3.3):

* timeouts, connection errors, 429 (``Retry-After`` honoured), 5xx (often nginx HTML), and 200
  bodies that are not JSON → :class:`~periscope.errors.MarketDataUnavailable`, retried up to
  ``max_retries`` times with exponential backoff and full jitter;
* 400/401/403/404 → :class:`~periscope.errors.MarketDataRejected` carrying the body's
  ``message``/``error`` and ``request_id``; never retried;
* JSON that breaks the schema, a repeated cursor or more pages than ``max_pages`` →
  :class:`~periscope.errors.PayloadError`.

A page that still fails after its retries fails the whole listing, with the page number and rows
read so far in the error's context: never silent truncation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from periscope.errors import MarketDataRejected, MarketDataUnavailable, PayloadError
from periscope.marketdata.cache import CacheKind, ResponseCache, cache_key
from periscope.marketdata.network import AsyncioTransport

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.massive.com"
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
Decoder = Callable[[bytes], T]
_LANE_CONNECTIONS = 2
_SEND_TURNS = 16  # turns of the event loop a decode waits for a prefetch to send its request
_NEXT_URL = re.compile(rb'"next_url"\s*:\s*"((?:[^"\\]|\\.)*)"')


class BodyNotJson(Exception):
    """Raised by a decoder when a 200 body is not JSON (the session retries it)."""


def for_model[ModelT: BaseModel](model: type[ModelT]) -> Callable[[bytes], ModelT]:
    """A decoder validating a body as the pydantic ``model``.

    Raises :class:`BodyNotJson` for bodies that are not JSON and
    :class:`~periscope.errors.PayloadError` for JSON that does not match.
    """

    def decode(body: bytes) -> ModelT:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            if _is_json_failure(exc):
                raise BodyNotJson from exc
            raise PayloadError(
                f"response does not match {model.__name__}: {exc.errors()[0]['msg']}",
                request_id=_request_id(body),
            ) from exc

    return decode


def _sniff_next_url(body: bytes) -> str | None:
    """``next_url`` read from the raw body (it comes last), before the page is decoded."""
    start = body.rfind(b'"next_url"')
    match = _NEXT_URL.match(body, start) if start >= 0 else None
    if match is None:
        return None
    try:
        url: str = json.loads(b'"' + match.group(1) + b'"')
    except ValueError:
        return None
    return url


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def _transports(count: int, connections: int, proxy: str | None) -> list[httpx.AsyncBaseTransport]:
    """``count`` pools of ``connections`` each, sharing one TLS context (loading the CA
    bundle is the slow part of making one)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    context = httpx.create_ssl_context()
    if proxy is not None:
        return [
            httpx.AsyncHTTPTransport(limits=limits, proxy=proxy, verify=context)
            for _ in range(count)
        ]
    return [AsyncioTransport(limits, verify=context) for _ in range(count)]


def _environment_proxy(base_url: str) -> str | None:
    """The proxy the environment sets for ``base_url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ...,
    honouring ``NO_PROXY``), as ``httpx.AsyncClient`` would use by default."""
    parts = urlsplit(base_url)
    if parts.hostname is None or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = f"http://{proxy}"  # "proxy.corp:3128", as httpx reads it too
    return proxy or None


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Timeouts, retry policy, concurrency and rate limit of a client.

    ``prefetch_pages`` requests the next page of a listing while the current one is decoded
    (its cursor is read from the raw body and confirmed by the decoded one).
    ``requests_per_second`` is the client-side limit (the free tier allows 5 per minute:
    ``5 / 60``; paid tiers should stay under 100/s); ``burst`` is how many may go at once after
    a quiet spell. Cache hits count against neither.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    max_concurrency: int = 8
    requests_per_second: float | None = 50.0
    burst: float = 10.0
    max_pages: int = 2000
    prefetch_pages: bool = True


class AsyncRateLimiter:
    """A token bucket shared by the tasks of one event loop."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may go."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_details(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, None
    if not isinstance(body, dict):
        return str(body)[:200], None
    message = body.get("message") or body.get("error") or response.reason_phrase
    return str(message), body.get("request_id")


def _is_json_failure(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors())


class ApiSession:
    """Pooled httpx transports with Massive's auth, error mapping and paging.

    Parameters
    ----------
    api_key
        Sent as ``Authorization: Bearer``; never logged nor put in URLs.
    base_url
        Every request, including ``next_url`` pages, goes to this host.
    options
        See :class:`ClientOptions`.
    cache
        An optional :class:`~periscope.marketdata.cache.ResponseCache`.
    transport
        An httpx transport to use instead of the network (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        api_key: SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        options: ClientOptions | None = None,
        cache: ResponseCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        opts = self.options
        concurrency = max(opts.max_concurrency, 1)
        # Lanes of at most two connections, each request on the lane with the fewest in flight
        # (so it always finds a free connection). httpx's pool examines every connection it holds
        # (idle ones with a poll of their socket) whenever a request starts or ends, which with
        # eight connections cost a tenth of a chain fetch; two per pool keep that small. A given
        # transport (tests) is used by one lane.
        lanes = 1 if transport is not None else -(-concurrency // _LANE_CONNECTIONS)
        per_lane = min(concurrency, _LANE_CONNECTIONS)
        # Requests go straight to httpx transports, not through ``httpx.AsyncClient``: the
        # client's send path (auth and redirect flows, cookies, hooks, its response wrapper)
        # cost a third of the HTTP time of a 250-contract page (measured: 1.34 ms against
        # 0.90 ms of CPU per page) and we use none of it. What it did that we need is here:
        # default headers, timeouts, and the proxy from the environment. Direct connections
        # use our asyncio network backend (:mod:`periscope.marketdata.network`).
        proxy = _environment_proxy(self.base_url)
        self._lanes: list[httpx.AsyncBaseTransport] = (
            [transport] if transport is not None else _transports(lanes, per_lane, proxy)
        )
        self._headers = httpx.Headers(
            {
                "Authorization": f"Bearer {api_key.get_secret_value()}",
                "Accept-Encoding": "gzip",
                "User-Agent": "periscope",
            }
        )
        self._timeout = httpx.Timeout(opts.read_timeout, connect=opts.connect_timeout).as_dict()
        self._in_flight = [0] * lanes
        self._semaphore = asyncio.Semaphore(opts.max_concurrency)
        self._limiter = (
            AsyncRateLimiter(opts.requests_per_second, opts.burst)
            if opts.requests_per_second
            else None
        )
        self.requests_sent = 0

    async def aclose(self) -> None:
        """Close the pooled connections."""
        for lane in self._lanes:
            await lane.aclose()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.options.max_backoff_seconds, self.options.backoff_seconds * 2**attempt)
        return random.uniform(0.0, ceiling)  # full jitter (AWS architecture blog, 2015)

    async def _send(
        self, path: str, params: Mapping[str, str], sent: asyncio.Event | None = None
    ) -> httpx.Response:
        async with self._semaphore:
            if self._limiter is not None:
                await self._limiter.acquire()
            self.requests_sent += 1
            # One absolute URL, parsed once (path plus params through the client's base URL
            # parses it three times, a tenth of the cost of a small request).
            query = f"?{httpx.QueryParams(params)}" if params else ""
            lane = min(range(len(self._lanes)), key=self._in_flight.__getitem__)
            extensions: dict[str, Any] = {"timeout": self._timeout}
            if sent is not None:  # httpcore's trace tells when the request is on the wire

                async def trace(name: str, info: Mapping[str, Any]) -> None:
                    if name.endswith("send_request_body.complete"):
                        sent.set()

                extensions["trace"] = trace
            request = httpx.Request(
                "GET",
                httpx.URL(f"{self.base_url}{path}{query}"),
                headers=self._headers,
                extensions=extensions,
            )
            self._in_flight[lane] += 1
            try:
                response = await self._lanes[lane].handle_async_request(request)
                response.request = request
                try:
                    await response.aread()
                finally:
                    await response.aclose()  # returns the connection to the pool
                return response
            finally:
                self._in_flight[lane] -= 1

    async def get(
        self,
        path: str,
        params: Mapping[str, str],
        decode: Callable[[bytes], T],
        kind: CacheKind,
        on_body: Callable[[bytes], asyncio.Event | None] | None = None,
        sent: asyncio.Event | None = None,
    ) -> T:
        """GET ``path`` and decode the body with ``decode``, with retries and the cache.

        ``on_body`` sees each raw 200 body before it is decoded (used to prefetch pages); when
        it returns an event (set once a prefetch's request is sent: ``sent`` of that ``get``),
        decoding waits a few turns of the event loop for it, so the server works on the next
        page while this one is decoded.

        Raises
        ------
        MarketDataUnavailable
            Still failing transiently after the retries.
        MarketDataRejected
            A 4xx answer.
        PayloadError
            A JSON body that ``decode`` rejects.
        """
        key = cache_key(path, params)
        if self.cache is not None and (body := self.cache.get(key)) is not None:
            if sent is not None:
                sent.set()
            if on_body is not None:
                on_body(body)
            return decode(body)
        last: MarketDataUnavailable | None = None
        for attempt in range(self.options.max_retries + 1):
            if last is not None:
                delay = self._backoff(attempt - 1)
                retry_after = last.context.get("retry_after")
                if retry_after is not None:
                    delay = max(delay, float(retry_after))
                logger.info("retrying %s in %.2fs after: %s", path, delay, last.message)
                await asyncio.sleep(delay)
            try:
                response = await self._send(path, params, sent)
            except httpx.TimeoutException as exc:
                last = MarketDataUnavailable(f"timeout: {type(exc).__name__}", endpoint=path)
                continue
            except httpx.TransportError as exc:
                last = MarketDataUnavailable(f"connection error: {exc!r}", endpoint=path)
                continue
            except httpx.DecodingError as exc:  # a body its Content-Encoding does not decode
                last = MarketDataUnavailable(f"undecodable body: {exc}", endpoint=path)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                message, request_id = _error_details(response)
                retry_after = _retry_after(response) if status in (429, 503) else None
                if retry_after is not None and retry_after > self.options.max_retry_after_seconds:
                    raise MarketDataUnavailable(
                        "rate limited for longer than allowed",
                        endpoint=path,
                        status=status,
                        retry_after=retry_after,
                        request_id=request_id,
                    )
                last = MarketDataUnavailable(
                    f"HTTP {status}: {message[:120]}",
                    endpoint=path,
                    status=status,
                    request_id=request_id,
                    retry_after=retry_after,
                )
                continue
            if status >= 400:
                message, request_id = _error_details(response)
                raise MarketDataRejected(
                    message, endpoint=path, status=status, request_id=request_id
                )
            if sent is not None:
                sent.set()  # answered (the trace may not have run: other transports)
            if on_body is not None and (next_sent := on_body(response.content)) is not None:
                # A new task runs only when this one yields, and decoding does not: without
                # this the next page would be requested after this one is decoded (no overlap).
                for _ in range(_SEND_TURNS):
                    if next_sent.is_set():
                        break
                    await asyncio.sleep(0)
            try:
                result = decode(response.content)
            except BodyNotJson:
                last = MarketDataUnavailable(
                    "HTTP 200 with a body that is not JSON",
                    endpoint=path,
                    status=status,
                    content_type=response.headers.get("content-type"),
                )
                continue
            except PayloadError as exc:
                exc.context.setdefault("endpoint", path)
                raise
            if self.cache is not None:
                self.cache.put(key, response.content, kind)
            return result
        assert last is not None
        raise MarketDataUnavailable(
            f"{last.message} (gave up after {self.options.max_retries + 1} attempts)",
            **last.context,
        )

    async def paginate(
        self,
        path: str,
        params: Mapping[str, str],
        decode: Callable[[bytes], T],
        kind: CacheKind,
    ) -> AsyncIterator[T]:
        """Yield each decoded page of a listing, following ``next_url`` on our own base URL.

        Pages must have a ``next_url`` attribute. A cursor seen twice, or more than
        ``max_pages`` pages, raises :class:`~periscope.errors.PayloadError`; a page that fails
        after its retries raises with ``page`` in the context. With ``prefetch_pages`` the
        next page is requested while the current one is decoded.
        """
        seen: set[str] = set()
        page_path, page_params = path, dict(params)
        prefetched: dict[str, asyncio.Task[T]] = {}

        def start_prefetch(body: bytes) -> asyncio.Event | None:
            url = _sniff_next_url(body)
            if url is None or url in prefetched or not self.options.prefetch_pages:
                return None
            if len(prefetched) >= 2:
                return None
            cursor_path, cursor_params = _split_url(url)
            if f"{cursor_path}?{urlsplit(url).query}" in seen:
                return None
            sent = asyncio.Event()
            prefetched[url] = asyncio.create_task(
                self.get(cursor_path, cursor_params, decode, kind, start_prefetch, sent)
            )
            return sent

        pending: asyncio.Task[T] | None = None
        try:
            for page in range(self.options.max_pages):
                try:
                    if pending is not None:
                        result = await pending
                        pending = None
                    else:
                        result = await self.get(
                            page_path, page_params, decode, kind, start_prefetch
                        )
                except (MarketDataUnavailable, MarketDataRejected, PayloadError) as exc:
                    exc.context.setdefault("page", page)
                    raise
                yield result
                next_url: str | None = getattr(result, "next_url", None)
                task = prefetched.pop(next_url, None) if next_url else None
                if task is None:  # the sniffed cursor was not the decoded one
                    for stale in prefetched.values():
                        _discard(stale)
                    prefetched.clear()
                if not next_url:
                    if task is not None:
                        _discard(task)
                    return
                parts = urlsplit(next_url)
                cursor = f"{parts.path}?{parts.query}"
                if cursor in seen:
                    if task is not None:
                        _discard(task)
                    raise PayloadError("pagination repeated a cursor", endpoint=path, page=page + 1)
                seen.add(cursor)
                page_path, page_params = _split_url(next_url)
                pending = task  # already requested; it prefetches its own successor
            raise PayloadError(
                f"more than {self.options.max_pages} pages",
                endpoint=path,
                max_pages=self.options.max_pages,
            )
        finally:
            if pending is not None:
                _discard(pending)
            for task in prefetched.values():
                _discard(task)


def _discard(task: asyncio.Task[Any]) -> None:
    """Cancel a prefetch no longer needed, marking any error it had as retrieved."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.cancel()


def _request_id(body: bytes) -> str | None:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    return data.get("request_id") if isinstance(data, dict) else None
