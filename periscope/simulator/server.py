"""A Massive-compatible HTTP API over the simulated market (starlette).

Same paths, JSON shapes, ``next_url`` cursors (base64url of the query and an offset, carrying the
filters so they need not be re-sent), bearer or ``apiKey`` authentication, an optional per-key
rate limit answering 429 with ``Retry-After``, and the switchable faults of
:mod:`periscope.simulator.faults`. Endpoints: see :data:`ROUTES_HELP`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.marketdata.tickers import parse_option_ticker
from periscope.simulator import payloads
from periscope.simulator.curves import TREASURY_TENORS
from periscope.simulator.faults import Fault, FaultPlan, RateLimiter
from periscope.simulator.market import ChainTruth, Market

logger = logging.getLogger(__name__)

ROUTES_HELP = (
    "/v3/snapshot/options/{underlying}",
    "/v3/snapshot/options/{underlying}/{contract}",
    "/v3/reference/options/contracts",
    "/v3/reference/options/contracts/{ticker}",
    "/v2/aggs/ticker/{ticker}/range/1/day/{from}/{to}",
    "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
    "/v3/snapshot/indices?ticker.any_of=I:SPX",
    "/fed/v1/treasury-yields",
    "/stocks/v1/dividends",
)
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>"
)
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_MAX_LISTINGS = 4096


class ApiError(Exception):
    """An error answer: HTTP status and Massive-style body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _not_found(message: str) -> ApiError:
    return ApiError(404, {"status": "NOT_FOUND", "message": message})


@dataclass(slots=True)
class Page:
    """A paginated listing: encoded items, page limits, extra envelope fields."""

    items: list[bytes]
    default_limit: int
    max_limit: int
    extra: dict[str, Any] = field(default_factory=dict)


def _encode_cursor(params: dict[str, str], offset: int) -> str:
    raw = json.dumps({"p": params, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dict[str, str], int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        return dict(data["p"]), int(data["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, {"status": "ERROR", "error": "invalid cursor"}) from exc


def _mask(values: np.ndarray[Any, Any], params: dict[str, str], name: str, cast: Any) -> Any:
    mask = np.ones(values.shape, dtype=bool)
    if name in params:
        mask &= values == cast(params[name])
    for op in _RANGE_OPS:
        key = f"{name}.{op}"
        if key in params:
            bound = cast(params[key])
            mask &= {"gt": values > bound, "gte": values >= bound, "lt": values < bound}.get(
                op, values <= bound
            )
    return mask


def _date(text: str) -> np.datetime64:
    try:
        return np.datetime64(dt.date.fromisoformat(text[:10]), "D")
    except ValueError as exc:
        raise ApiError(400, {"status": "ERROR", "error": f"bad date {text!r}"}) from exc


class Simulator:
    """The simulated Massive API: market, accepted key, faults, rate limit and the app.

    Parameters
    ----------
    market
        The simulated market served.
    api_key
        The one key accepted (``Authorization: Bearer`` or ``apiKey`` query).
    rate_limit
        Requests per second per key before 429s; None for no limit.
    """

    def __init__(
        self, market: Market, api_key: str = "sim-key", rate_limit: float | None = None
    ) -> None:
        self.market = market
        self.api_key = api_key
        self.today = market.today
        self.faults = FaultPlan()
        self.rate_limiter = RateLimiter(rate_limit) if rate_limit else None
        self.request_count = 0
        self._lock = threading.Lock()
        self._encoded: dict[tuple[str, dt.date], list[bytes]] = {}
        self._index: dict[tuple[str, dt.date], dict[str, int]] = {}
        # Filtered, sorted listings (references to the encoded items), least recently used
        # dropped first; enough for every name of a large universe with the default query.
        self._listings: OrderedDict[tuple[Any, ...], list[bytes]] = OrderedDict()

    def warm(self) -> None:
        """Build and encode today's chain of every underlying now rather than on first request."""
        for u in self.market.universe:
            self._encoded_chain(self.market.chain(u.ticker, self.today))

    # -- cached chain data ------------------------------------------------------------------
    def _chain(self, underlying: str) -> ChainTruth:
        try:
            return self.market.chain(underlying, self.today)
        except InvalidInputError:
            raise _not_found(f"Underlying {underlying} not found.") from None

    def _encoded_chain(self, chain: ChainTruth) -> list[bytes]:
        key = (chain.underlying.ticker, chain.day)
        with self._lock:
            if key not in self._encoded:
                self._encoded[key] = payloads.encode_chain(chain)
            return self._encoded[key]

    def _position(self, chain: ChainTruth, ticker: str) -> int | None:
        key = (chain.underlying.ticker, chain.day)
        with self._lock:
            if key not in self._index:
                tickers = chain.columns[schema.TICKER].tolist()
                self._index[key] = {t: i for i, t in enumerate(tickers)}
            return self._index[key].get(ticker)

    def _underlying_of_option(self, ticker: str) -> str:
        try:
            root = parse_option_ticker(ticker).root
        except InvalidInputError:
            raise _not_found(f"Ticker {ticker} not found.") from None
        for u in self.market.universe:
            if root in u.roots or root.rstrip("0123456789") in u.roots:
                return u.ticker
        raise _not_found(f"Ticker {ticker} not found.")

    @staticmethod
    def _filter_chain(chain: ChainTruth, params: dict[str, str]) -> np.ndarray[Any, Any]:
        c = chain.columns
        mask = _mask(c[schema.STRIKE], params, "strike_price", float)
        mask &= _mask(c[schema.EXPIRY], params, "expiration_date", _date)
        if "contract_type" in params:
            mask &= c[schema.RIGHT] == params["contract_type"]
        selected = np.flatnonzero(mask)
        sort = params.get("sort", "ticker")
        keys = {
            "ticker": c[schema.TICKER],
            "expiration_date": c[schema.EXPIRY],
            "strike_price": c[schema.STRIKE],
        }.get(sort)
        if keys is None:
            raise ApiError(400, {"status": "ERROR", "error": f"invalid sort {sort!r}"})
        order = selected[np.argsort(keys[selected], kind="stable")]
        return order[::-1] if params.get("order") == "desc" else order

    # -- endpoints --------------------------------------------------------------------------
    def _listing_key(self, params: dict[str, str], underlying: str) -> tuple[Any, ...]:
        ticker = self.market.underlying(underlying).ticker  # InvalidInputError if unknown
        return (
            ticker,
            self.today,
            tuple(sorted((k, v) for k, v in params.items() if k != "limit")),
        )

    def cached_chain_page(self, params: dict[str, str], underlying: str) -> Page | None:
        """The chain-snapshot listing if it is cached (so answering costs no chain building)."""
        try:
            key = self._listing_key(params, underlying)
        except InvalidInputError:
            return None
        with self._lock:
            items = self._listings.get(key)
            if items is not None:
                self._listings.move_to_end(key)
        return None if items is None else Page(items, 10, 250)

    def chain_snapshot(self, params: dict[str, str], underlying: str) -> Page:
        if (page := self.cached_chain_page(params, underlying)) is not None:
            return page
        chain = self._chain(underlying)
        key = self._listing_key(params, underlying)
        with self._lock:
            items = self._listings.get(key)
        if items is None:
            encoded = self._encoded_chain(chain)
            items = [encoded[i] for i in self._filter_chain(chain, params)]
            with self._lock:
                self._listings[key] = items
                while len(self._listings) > _MAX_LISTINGS:
                    self._listings.popitem(last=False)
        return Page(items, 10, 250)

    def contract_snapshot(self, params: dict[str, str], underlying: str, contract: str) -> Any:
        chain = self._chain(underlying)
        i = self._position(chain, contract)
        if i is None:
            raise _not_found(f"Option contract {contract} not found.")
        return payloads.contract_snapshot(chain, i)

    def _reference_chain(self, params: dict[str, str]) -> tuple[ChainTruth | None, np.datetime64]:
        as_of = dt.date.fromisoformat(params.get("as_of", self.today.isoformat()))
        if as_of > self.today:
            raise ApiError(
                403,
                {
                    "status": "NOT_AUTHORIZED",
                    "message": "Your plan doesn't "
                    "include this data timeframe. Please upgrade your plan.",
                },
            )
        days = [d for d in self.market.days if d <= as_of]
        if not days:
            return None, np.datetime64(as_of, "D")
        underlying = params.get("underlying_ticker", "")
        try:
            self.market.underlying(underlying)
        except InvalidInputError:
            return None, np.datetime64(as_of, "D")
        if params.get("expired", "false") == "true":
            return self.market.expired_chain(underlying, days[-1]), np.datetime64(as_of, "D")
        return self.market.chain(underlying, days[-1]), np.datetime64(as_of, "D")

    def contracts(self, params: dict[str, str]) -> Page:
        if "underlying_ticker" not in params:
            raise ApiError(
                400, {"status": "ERROR", "error": "the simulator needs underlying_ticker"}
            )
        chain, as_of = self._reference_chain(params)
        if chain is None:
            return Page([], 10, 1000)
        order = self._filter_chain(chain, params)
        expiry = chain.columns[schema.EXPIRY].astype("datetime64[D]")
        expired = params.get("expired", "false") == "true"
        keep = expiry[order] < as_of if expired else expiry[order] >= as_of
        items = [
            json.dumps(payloads.contract_reference(chain, int(i)), separators=(",", ":")).encode()
            for i in order[keep]
        ]
        return Page(items, 10, 1000)

    def contract(self, params: dict[str, str], ticker: str) -> Any:
        params = {**params, "underlying_ticker": self._underlying_of_option(ticker)}
        for expired in ("false", "true"):
            chain, _ = self._reference_chain({**params, "expired": expired})
            if chain is not None and (i := self._position(chain, ticker)) is not None:
                return payloads.contract_reference(chain, i)
        raise _not_found(f"Ticker {ticker} not found.")

    def aggregates(
        self,
        params: dict[str, str],
        ticker: str,
        multiplier: str,
        timespan: str,
        start: str,
        end: str,
    ) -> Page:
        if multiplier != "1" or timespan != "day":
            raise ApiError(400, {"status": "ERROR", "error": "the simulator serves 1/day bars"})
        first, last = _date(start).item(), _date(end).item()
        if first > self.today:
            raise ApiError(
                403,
                {
                    "status": "NOT_AUTHORIZED",
                    "message": "Your plan doesn't "
                    "include this data timeframe. Please upgrade your plan.",
                },
            )
        days = [d for d in self.market.days if first <= d <= min(last, self.today)]
        bars: list[dict[str, Any]] = []
        if ticker.startswith("O:"):
            underlying = self._underlying_of_option(ticker)
            for day in days:
                chain = self.market.chain(underlying, day)
                i = self._position(chain, ticker)
                bar = payloads.option_bar(chain, i) if i is not None else None
                if bar is not None:
                    bars.append(bar)
        else:
            try:
                self.market.underlying(ticker)
            except InvalidInputError:
                raise _not_found(f"Ticker {ticker} not found.") from None
            bars = [payloads.underlying_bar(self.market, ticker, day) for day in days]
        if params.get("sort") == "desc":
            bars.reverse()
        items = [json.dumps(bar, separators=(",", ":")).encode() for bar in bars]
        extra = {"ticker": ticker, "adjusted": True, "queryCount": len(items)}
        return Page(items, 5000, 50000, extra)

    def stock_snapshot(self, params: dict[str, str], ticker: str) -> Any:
        try:
            u = self.market.underlying(ticker)
        except InvalidInputError:
            raise _not_found(f"Ticker {ticker} not found.") from None
        updated = self.market.chain(u.ticker, self.today).columns[schema.SNAPSHOT_TIME][0]
        ns = int((updated - np.datetime64(0, "ns")) / np.timedelta64(1, "ns"))
        return {"ticker": payloads.stock_snapshot(self.market, u.ticker, self.today, ns)}

    def indices(self, params: dict[str, str]) -> Page:
        items = []
        item: dict[str, Any]
        for ticker in params.get("ticker.any_of", params.get("ticker", "")).split(","):
            try:
                u = self.market.underlying(ticker)
            except InvalidInputError:
                item = {"ticker": ticker, "error": "NOT_FOUND", "message": "Ticker not found."}
            else:
                chain = self.market.chain(u.ticker, self.today)
                updated = chain.columns[schema.SNAPSHOT_TIME][0]
                o, h, low, c, _ = self.market.day_bar(u.ticker, self.today)
                item = {
                    "ticker": u.ticker,
                    "type": "indices",
                    "market_status": "open",
                    "value": round(c, 4),
                    "timeframe": "REAL-TIME",
                    "last_updated": int(
                        (updated - np.datetime64(0, "ns")) / np.timedelta64(1, "ns")
                    ),
                    "session": {
                        "open": round(o, 4),
                        "high": round(h, 4),
                        "low": round(low, 4),
                        "close": round(c, 4),
                    },
                }
            items.append(json.dumps(item, separators=(",", ":")).encode())
        return Page(items, 10, 250)

    def treasury_yields(self, params: dict[str, str]) -> Page:
        days = np.array(self.market.days, dtype="datetime64[D]")
        days = days[_mask(days, params, "date", _date) & (days <= np.datetime64(self.today))]
        items = []
        for day in days.tolist():
            curve = self.market.rate_curve(day)
            row: dict[str, Any] = {"date": day.isoformat()}
            for name, tenor in TREASURY_TENORS:
                row[name] = round(curve.par_yield(tenor) * 100.0, 3)
            items.append(json.dumps(row, separators=(",", ":")).encode())
        if params.get("sort", "date").endswith(".desc"):
            items.reverse()
        return Page(items, 100, 50000)

    def dividends(self, params: dict[str, str]) -> Page:
        tickers = params.get("ticker.any_of", params.get("ticker", "")).split(",")
        items = []
        for ticker in filter(None, tickers):
            try:
                dividends = self.market.dividends(ticker)
            except InvalidInputError:
                continue
            dates = np.array([d.ex_date for d in dividends], dtype="datetime64[D]")
            keep = _mask(dates, params, "ex_dividend_date", _date) if dates.size else []
            for dividend, ok in zip(dividends, keep, strict=True):
                declared = dividend.ex_date - dt.timedelta(days=30)
                if not ok or declared > self.today:
                    continue
                row = {
                    "id": f"{ticker}-{dividend.ex_date.isoformat()}",
                    "ticker": ticker,
                    "cash_amount": dividend.cash_amount,
                    "currency": "USD",
                    "declaration_date": declared.isoformat(),
                    "ex_dividend_date": dividend.ex_date.isoformat(),
                    "record_date": (dividend.ex_date + dt.timedelta(days=1)).isoformat(),
                    "pay_date": (dividend.ex_date + dt.timedelta(days=14)).isoformat(),
                    "frequency": 4,
                    "distribution_type": "recurring",
                    "historical_adjustment_factor": 1.0,
                    "split_adjusted_cash_amount": dividend.cash_amount,
                }
                items.append(json.dumps(row, separators=(",", ":")).encode())
        return Page(items, 100, 5000)

    # -- HTTP plumbing ----------------------------------------------------------------------
    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        key = key or request.query_params.get("apiKey", "")
        if not key:
            raise ApiError(401, {"status": "ERROR", "error": "API Key was not provided"})
        if key != self.api_key:
            raise ApiError(401, {"status": "ERROR", "error": "Unknown API Key"})
        return key

    def _route(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, handler)

        return endpoint

    async def _serve(self, request: Request, handler: Callable[..., Any]) -> Response:
        request_id = uuid.uuid4().hex
        with self._lock:
            self.request_count += 1
        query = {k: v for k, v in request.query_params.items() if k != "apiKey"}
        try:
            key = self._authenticate(request)
            if self.rate_limiter is not None and (wait := self.rate_limiter.acquire(key)) > 0:
                return self._rate_limited(request_id, wait)
            offset = 0
            if "cursor" in query:
                query, offset = _decode_cursor(query["cursor"])
            fault = self.faults.take(request.url.path, offset // self._limit_hint(query))
            if fault is not None:
                response = await self._fault_response(fault, request_id)
                if response is not None:
                    return response
            result: Any = None
            if handler == self.chain_snapshot:  # pages of a listing already built: at once
                result = self.cached_chain_page(query, **request.path_params)
            if result is None:
                # Off the event loop: building a chain the first time takes a moment.
                result = await run_in_threadpool(handler, query, **request.path_params)
        except ApiError as exc:
            body = {**exc.body, "request_id": request_id}
            return Response(json.dumps(body), exc.status, media_type="application/json")
        if isinstance(result, Page):
            return self._page(request, result, query, offset, request_id, fault)
        body = {"status": "OK", "request_id": request_id, "results": result}
        if handler == self.stock_snapshot:
            body = {"status": "OK", "request_id": request_id, **result}
        return Response(json.dumps(body), 200, media_type="application/json")

    @staticmethod
    def _limit_hint(query: dict[str, str]) -> int:
        try:
            return max(1, int(query.get("limit", "10")))
        except ValueError:
            return 10

    @staticmethod
    def _rate_limited(request_id: str, wait: float) -> Response:
        body = {
            "status": "ERROR",
            "request_id": request_id,
            "error": "You've exceeded the maximum requests per minute, please wait or upgrade "
            "your subscription to continue. https://massive.com/pricing",
        }
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        return Response(json.dumps(body), 429, headers=headers, media_type="application/json")

    async def _fault_response(self, fault: Fault, request_id: str) -> Response | None:
        logger.debug("simulated fault %s", fault.kind)
        if fault.kind == "rate_limit":
            response = self._rate_limited(request_id, fault.retry_after)
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
            return response
        if fault.kind == "server_error":
            return Response(_HTML_502, fault.status, media_type="text/html")
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "non_json":
            return Response(
                b"<html><body>Service temporarily unavailable</body></html>",
                200,
                media_type="text/html",
            )
        if fault.kind == "schema_break":
            broken = {"status": "OK", "request_id": request_id, "results": {"unexpected": True}}
            return Response(json.dumps(broken), 200, media_type="application/json")
        errors: dict[str, tuple[int, dict[str, str]]] = {
            "unauthorized": (401, {"status": "ERROR", "error": "Unknown API Key"}),
            "forbidden": (
                403,
                {
                    "status": "NOT_AUTHORIZED",
                    "message": "You are not entitled "
                    "to this data. Please upgrade your plan at https://massive.com/pricing",
                },
            ),
            "not_found": (
                404,
                {"status": "NOT_FOUND", "message": "The requested resource was not found."},
            ),
        }
        if fault.kind in errors:
            status, body = errors[fault.kind]
            return Response(
                json.dumps({**body, "request_id": request_id}),
                status,
                media_type="application/json",
            )
        return None  # truncated_json, loop_cursor, duplicate act on the page itself

    def _page(
        self,
        request: Request,
        page: Page,
        query: dict[str, str],
        offset: int,
        request_id: str,
        fault: Fault | None,
    ) -> Response:
        limit = min(
            self._limit_hint({"limit": query.get("limit", str(page.default_limit))}), page.max_limit
        )
        chunk = page.items[offset : offset + limit]
        head: dict[str, Any] = {"status": "OK", "request_id": request_id, **page.extra}
        if page.extra:
            head["resultsCount"] = len(chunk)
        parts = [json.dumps(head)[:-1].encode()]
        if chunk:
            parts.append(b',"results":[' + b",".join(chunk) + b"]")
        following = offset + limit
        if fault is not None and fault.kind == "duplicate":
            following -= min(5, len(chunk))
        if fault is not None and fault.kind == "loop_cursor":
            following = max(0, offset - limit)
        if (following < len(page.items) and following != offset) or (
            fault is not None and fault.kind == "loop_cursor"
        ):
            base = str(request.base_url).rstrip("/")
            next_url = f"{base}{request.url.path}?cursor={_encode_cursor(query, following)}"
            parts.append(b',"next_url":' + json.dumps(next_url).encode())
        body = b"".join(parts) + b"}"
        if fault is not None and fault.kind == "truncated_json":
            body = body[: len(body) // 2]
        return Response(body, 200, media_type="application/json")

    def app(self) -> Starlette:
        """The starlette application serving :data:`ROUTES_HELP`."""
        routes = [
            Route("/v3/snapshot/options/{underlying}", self._route(self.chain_snapshot)),
            Route(
                "/v3/snapshot/options/{underlying}/{contract}",
                self._route(self.contract_snapshot),
            ),
            Route("/v3/reference/options/contracts", self._route(self.contracts)),
            Route("/v3/reference/options/contracts/{ticker}", self._route(self.contract)),
            Route(
                "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}",
                self._route(self.aggregates),
            ),
            Route(
                "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
                self._route(self.stock_snapshot),
            ),
            Route("/v3/snapshot/indices", self._route(self.indices)),
            Route("/fed/v1/treasury-yields", self._route(self.treasury_yields)),
            Route("/stocks/v1/dividends", self._route(self.dividends)),
        ]
        return Starlette(routes=routes)
