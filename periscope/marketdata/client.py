"""The Massive REST client: async inside (:class:`AsyncMassiveClient`), sync for notebooks
(:class:`MassiveClient`). Both return Datasets in the canonical schema, never raw JSON.

Create one client per process and reuse it: it holds the pooled connections, the concurrency
limit and the client-side rate limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
import xarray as xr
from pydantic import SecretStr

from periscope.errors import InvalidInputError, MarketDataError, MarketDataRejected, PayloadError
from periscope.marketdata import history
from periscope.marketdata.cache import CacheKind, ResponseCache
from periscope.marketdata.chain import (
    ChainBlock,
    chain_from_blocks,
    chain_from_snapshots,
    decode_chain_block,
)
from periscope.marketdata.payloads import (
    Bar,
    BarsPage,
    ContractReference,
    ContractSnapshotResponse,
    ContractsPage,
    DividendRow,
    DividendsPage,
    IndicesPage,
    StockSnapshotResponse,
    TreasuryYields,
    YieldsPage,
)
from periscope.marketdata.session import DEFAULT_BASE_URL, ApiSession, ClientOptions, for_model

logger = logging.getLogger(__name__)
T = TypeVar("T")

CHAIN_FILTERS = frozenset(
    {"strike_price", "expiration_date", "contract_type", "order", "sort"}
    | {
        f"{f}.{op}"
        for f in ("strike_price", "expiration_date")
        for op in ("gt", "gte", "lt", "lte")
    }
)


@dataclass(frozen=True, slots=True)
class UnderlyingPrice:
    """The last price of an underlying and when it was observed (UTC)."""

    ticker: str
    price: float
    time: dt.datetime | None


def _filter_params(filters: dict[str, Any], allowed: frozenset[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in filters.items():
        key = name.replace("__", ".").replace("_gte", ".gte").replace("_lte", ".lte")
        for op in ("gt", "lt"):
            if key.endswith(f"_{op}") and not key.endswith(f".{op}"):
                key = key[: -len(op) - 1] + f".{op}"
        if key not in allowed:
            raise InvalidInputError(f"unknown filter {name!r}", allowed=sorted(allowed))
        params[key] = value.isoformat() if isinstance(value, dt.date) else str(value)
    return params


def _from_ns(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value / 1e9, tz=dt.UTC)


class AsyncMassiveClient:
    """Async Massive client.

    Parameters
    ----------
    api_key
        The key; default ``MASSIVE_API_KEY`` from the environment.
    base_url
        Default ``https://api.massive.com``; the simulator's URL for offline runs.
    options
        Timeouts, retries, concurrency and rate limit (:class:`ClientOptions`).
    cache
        An optional on-disk :class:`~periscope.marketdata.cache.ResponseCache`.
    transport
        An httpx transport (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        options: ClientOptions | None = None,
        cache: ResponseCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        stale_after: np.timedelta64 | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("MASSIVE_API_KEY")
        if not key:
            raise InvalidInputError("no API key: pass api_key= or set MASSIVE_API_KEY")
        secret = key if isinstance(key, SecretStr) else SecretStr(key)
        self.session = ApiSession(secret, base_url, options, cache, transport)
        self.options = self.session.options
        self.stale_after = stale_after if stale_after is not None else np.timedelta64(15, "m")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.session.aclose()

    async def __aenter__(self) -> AsyncMassiveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- chains ------------------------------------------------------------------------------
    async def fetch_chain(self, underlying: str, **filters: Any) -> xr.Dataset:
        """The option chain snapshot of ``underlying`` as a canonical chain Dataset.

        Parameters
        ----------
        underlying
            ``AAPL``, or ``I:SPX`` for index options.
        **filters
            ``strike_price``, ``expiration_date``, ``contract_type``, ``sort``, ``order`` and
            ranges as ``strike_price_gte=`` or ``expiration_date__lt=`` (``.gte`` etc. on the
            wire). Pages of 250 are requested.

        Raises
        ------
        MarketDataUnavailable, MarketDataRejected, PayloadError
            See :mod:`periscope.marketdata.session`; a repeated contract is a PayloadError.
        """
        params = _filter_params(filters, CHAIN_FILTERS) | {"limit": "250"}
        path = f"/v3/snapshot/options/{quote(underlying, safe=':')}"
        decode = functools.partial(decode_chain_block, underlying=underlying)
        blocks: list[ChainBlock] = []
        try:
            async for block in self.session.paginate(path, params, decode, CacheKind.SNAPSHOT):
                blocks.append(block)
        except MarketDataError as exc:
            exc.context.setdefault("underlying", underlying)
            exc.context.setdefault("rows_read", sum(block.size for block in blocks))
            raise
        pages = len(blocks)
        logger.info(
            "chain %s: %d contracts in %d pages", underlying, sum(b.size for b in blocks), pages
        )
        attrs = {"source": self.session.base_url, "underlying": underlying, "pages": pages}
        return chain_from_blocks(
            blocks, underlying, dt.datetime.now(dt.UTC), stale_after=self.stale_after, attrs=attrs
        )

    async def fetch_chains(
        self, underlyings: Iterable[str], **filters: Any
    ) -> dict[str, xr.Dataset]:
        """Chains of several underlyings fetched concurrently (under the client's limits).

        The first failure cancels the rest and is raised.
        """
        names = list(underlyings)
        tasks = [asyncio.create_task(self.fetch_chain(name, **filters)) for name in names]
        try:
            chains = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return dict(zip(names, chains, strict=True))

    async def fetch_contract(self, underlying: str, option_ticker: str) -> xr.Dataset:
        """The snapshot of one contract, as a one-contract canonical chain."""
        path = (
            f"/v3/snapshot/options/{quote(underlying, safe=':')}/{quote(option_ticker, safe=':')}"
        )
        response = await self.session.get(
            path, {}, for_model(ContractSnapshotResponse), CacheKind.SNAPSHOT
        )
        return chain_from_snapshots(
            [response.results],
            underlying,
            dt.datetime.now(dt.UTC),
            stale_after=self.stale_after,
            attrs={"source": self.session.base_url, "underlying": underlying},
        )

    # -- reference and history ---------------------------------------------------------------
    async def fetch_contracts(
        self,
        underlying: str,
        as_of: dt.date | None = None,
        *,
        expired: bool | None = None,
        **filters: Any,
    ) -> xr.Dataset:
        """Contracts listed on ``as_of`` (default today) from the contracts reference.

        ``expired=None`` (the default) queries both ``expired=false`` and ``expired=true`` and
        merges them, as back-dated queries need (``reference/massive-api.md`` §1.3).
        """
        day = as_of or dt.date.today()
        base = _filter_params(filters, CHAIN_FILTERS) | {
            "underlying_ticker": underlying,
            "as_of": day.isoformat(),
            "limit": "1000",
        }
        flags = ("false", "true") if expired is None else ("true" if expired else "false",)
        path = "/v3/reference/options/contracts"
        rows: list[ContractReference] = []
        for flag in flags:
            params = base | {"expired": flag}
            async for page in self.session.paginate(
                path, params, for_model(ContractsPage), CacheKind.REFERENCE
            ):
                rows.extend(page.results or ())
        return history.contracts_dataset(rows, underlying, day)

    async def fetch_daily_bars(
        self, ticker: str, start: dt.date, end: dt.date, *, adjusted: bool = True
    ) -> xr.Dataset:
        """Daily bars of a stock, index (``I:``) or option (``O:``) ticker, ``start``-``end``."""
        path = (
            f"/v2/aggs/ticker/{quote(ticker, safe=':')}/range/1/day/"
            f"{start.isoformat()}/{end.isoformat()}"
        )
        params = {"adjusted": str(adjusted).lower(), "sort": "asc", "limit": "50000"}
        kind = CacheKind.HISTORY if end < dt.date.today() else CacheKind.SNAPSHOT
        bars: list[Bar] = []
        async for page in self.session.paginate(path, params, for_model(BarsPage), kind):
            bars.extend(page.results or ())
        return history.bars_dataset(bars, ticker)

    async def fetch_underlying_price(self, ticker: str) -> UnderlyingPrice:
        """Last price of a stock (stock snapshot) or index (``I:``, indices snapshot)."""
        if ticker.startswith("I:"):
            page = await self.session.get(
                "/v3/snapshot/indices",
                {"ticker.any_of": ticker},
                for_model(IndicesPage),
                CacheKind.SNAPSHOT,
            )
            item = next((r for r in page.results or () if r.ticker == ticker), None)
            if item is None or item.error or item.value is None:
                raise MarketDataRejected(
                    f"index {ticker} not found",
                    endpoint="/v3/snapshot/indices",
                    request_id=page.request_id,
                    error=item.error if item else None,
                )
            return UnderlyingPrice(ticker, item.value, _from_ns(item.last_updated))
        path = f"/v2/snapshot/locale/us/markets/stocks/tickers/{quote(ticker)}"
        snap = await self.session.get(
            path, {}, for_model(StockSnapshotResponse), CacheKind.SNAPSHOT
        )
        trade = snap.ticker.lastTrade or {}
        price = trade.get("p") or (snap.ticker.day or {}).get("c")
        if price is None:
            raise PayloadError("stock snapshot without a price", endpoint=path, ticker=ticker)
        return UnderlyingPrice(
            ticker, float(price), _from_ns(trade.get("t") or snap.ticker.updated)
        )

    async def fetch_treasury_yields(self, start: dt.date, end: dt.date) -> xr.Dataset:
        """Treasury constant-maturity yields (decimals) by ``date`` and ``tenor`` (years)."""
        params = {"date.gte": start.isoformat(), "date.lte": end.isoformat(), "limit": "50000"}
        rows: list[TreasuryYields] = []
        path = "/fed/v1/treasury-yields"
        async for page in self.session.paginate(
            path, params, for_model(YieldsPage), CacheKind.RATES
        ):
            rows.extend(page.results or ())
        return history.yields_dataset(rows)

    async def fetch_dividends(
        self, ticker: str, start: dt.date | None = None, end: dt.date | None = None
    ) -> xr.Dataset:
        """Cash dividends of ``ticker`` with ex-dates in ``[start, end]``."""
        params = {"ticker": ticker, "limit": "5000"}
        if start is not None:
            params["ex_dividend_date.gte"] = start.isoformat()
        if end is not None:
            params["ex_dividend_date.lte"] = end.isoformat()
        rows: list[DividendRow] = []
        path = "/stocks/v1/dividends"
        async for page in self.session.paginate(
            path, params, for_model(DividendsPage), CacheKind.REFERENCE
        ):
            rows.extend(page.results or ())
        return history.dividends_dataset(rows)


class MassiveClient:
    """The synchronous facade: the same methods as :class:`AsyncMassiveClient`, blocking.

    It runs its own event loop in a daemon thread, so it also works inside Jupyter (where a loop
    is already running). Close it (or use it as a context manager) to free the connections.

    Examples
    --------
    >>> client = MassiveClient(api_key="...", base_url="http://127.0.0.1:8000")  # doctest: +SKIP
    >>> chain = client.fetch_chain("SPY", expiration_date_gte="2025-01-17")  # doctest: +SKIP
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str = DEFAULT_BASE_URL,
        **kwargs: Any,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="massive-client"
        )
        self._thread.start()

        async def make() -> AsyncMassiveClient:
            return AsyncMassiveClient(api_key, base_url, **kwargs)

        try:
            self._async = self._run(make())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def session(self) -> ApiSession:
        """The underlying HTTP session (request counts, cache)."""
        return self._async.session

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if self._loop.is_closed():
            return
        self._run(self._async.aclose())
        self._stop_loop()

    def __enter__(self) -> MassiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_chain(self, underlying: str, **filters: Any) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_chain`."""
        return self._run(self._async.fetch_chain(underlying, **filters))

    def fetch_chains(self, underlyings: Iterable[str], **filters: Any) -> dict[str, xr.Dataset]:
        """See :meth:`AsyncMassiveClient.fetch_chains`."""
        return self._run(self._async.fetch_chains(underlyings, **filters))

    def fetch_contract(self, underlying: str, option_ticker: str) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_contract`."""
        return self._run(self._async.fetch_contract(underlying, option_ticker))

    def fetch_contracts(
        self,
        underlying: str,
        as_of: dt.date | None = None,
        *,
        expired: bool | None = None,
        **filters: Any,
    ) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_contracts`."""
        return self._run(self._async.fetch_contracts(underlying, as_of, expired=expired, **filters))

    def fetch_daily_bars(
        self, ticker: str, start: dt.date, end: dt.date, *, adjusted: bool = True
    ) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_daily_bars`."""
        return self._run(self._async.fetch_daily_bars(ticker, start, end, adjusted=adjusted))

    def fetch_underlying_price(self, ticker: str) -> UnderlyingPrice:
        """See :meth:`AsyncMassiveClient.fetch_underlying_price`."""
        return self._run(self._async.fetch_underlying_price(ticker))

    def fetch_treasury_yields(self, start: dt.date, end: dt.date) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_treasury_yields`."""
        return self._run(self._async.fetch_treasury_yields(start, end))

    def fetch_dividends(
        self, ticker: str, start: dt.date | None = None, end: dt.date | None = None
    ) -> xr.Dataset:
        """See :meth:`AsyncMassiveClient.fetch_dividends`."""
        return self._run(self._async.fetch_dividends(ticker, start, end))
