"""``history.zarr``: one row of metrics per underlying and day, the source of IV rank/percentile.

- :func:`history_rows`: a run's metrics (surfaces) plus realised volatility -> rows for one day.
- :func:`update_history` (task): after each published run, append (or replace) today's rows.
- :func:`backfill_history` (task): past days. Against the simulated market it fits the surface
  of every past day from the simulator's own chains (the same :func:`fit_surface` as a live run)
  and takes realised volatility from its daily bars. With a Massive key the REST API has no past
  chain snapshots: the backfill then writes realised volatility from daily aggregates only, and
  the IV columns fill in day by day from the scheduled runs (a flat-file IV backfill from option
  day aggregates is not implemented).
- :func:`rank_against_history`: IV rank and percentile of today's 30-day IV over the past year.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from prefect import task

from flows.fanout import fan_out
from flows.retry import retry_on_unavailable
from flows.source import MarketSource
from periscope import schema, storage
from periscope.errors import DatasetNotFoundError, MarketDataError, MarketDataUnavailable
from periscope.marketdata import AsyncMassiveClient, ClientOptions
from periscope.simulator import Market, SimulationConfig
from periscope.simulator.calendar import trading_days

logger = logging.getLogger(__name__)

RV_WINDOW = 20
RANK_DAYS = 365
MIN_RANK_DAYS = 20
TRADING_DAYS_PER_YEAR = 252.0


def realized_volatility(closes: np.ndarray[Any, Any], window: int = RV_WINDOW) -> float:
    """Annualised close-to-close volatility of the last ``window`` daily returns (NaN if short)."""
    prices = np.asarray(closes, dtype=np.float64)
    prices = prices[np.isfinite(prices) & (prices > 0)]
    if prices.size < window + 1:
        return float("nan")
    returns = np.diff(np.log(prices[-(window + 1) :]))
    return float(np.std(returns, ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR))


def history_rows(
    surfaces: xr.Dataset, day: dt.date, realized: Mapping[str, float] | None = None
) -> xr.Dataset:
    """One day's history rows (``time`` x ``underlying``) from stacked surfaces or metrics.

    Variables: ``iv_<n>d`` (constant-maturity ATM IV at each tenor), ``skew_30d``,
    ``rr25_30d``, ``bf25_30d``, ``term_slope``, ``spot``, ``confidence`` and ``rv_20d``.
    """
    names = np.asarray(surfaces[schema.UNDERLYING].values).astype(object).reshape(-1)
    stacked = surfaces if schema.UNDERLYING in surfaces.dims else surfaces.expand_dims(
        schema.UNDERLYING
    )  # fmt: skip
    columns: dict[str, np.ndarray[Any, Any]] = {}
    cm = stacked[schema.CONSTANT_MATURITY_IV]
    for tenor in schema.TENOR_DAYS:
        columns[f"iv_{tenor}d"] = cm.sel({schema.TENOR: tenor}).values
    at_30 = {schema.TENOR: 30}
    columns["skew_30d"] = stacked[schema.ATM_SKEW].sel(at_30).values
    columns["rr25_30d"] = stacked[schema.RISK_REVERSAL_25].sel(at_30).values
    columns["bf25_30d"] = stacked[schema.BUTTERFLY_25].sel(at_30).values
    columns["term_slope"] = stacked[schema.TERM_STRUCTURE_SLOPE].values
    columns["spot"] = stacked[schema.SPOT].values
    columns["confidence"] = stacked[schema.CONFIDENCE].values
    columns["rv_20d"] = np.array([(realized or {}).get(str(n), np.nan) for n in names])
    time = np.array([np.datetime64(day, "ns")])
    return xr.Dataset(
        {
            name: ((schema.TIME, schema.UNDERLYING), np.asarray(v, dtype=np.float64)[None, :])
            for name, v in columns.items()
        },
        coords={schema.TIME: time, schema.UNDERLYING: names},
    )


def rank_against_history(
    root: str, metrics: xr.Dataset, *, storage_options: dict[str, Any] | None = None
) -> xr.Dataset:
    """``metrics`` plus ``iv30_rank`` and ``iv30_percentile`` over the past year of history.

    Rank is ``(IV30 - min) / (max - min)`` and percentile the share of past days with a lower
    IV30, both over the last 365 calendar days before the metrics' snapshot; NaN with fewer than
    20 days of history (a new name, or before a backfill).
    """
    names = np.asarray(metrics[schema.UNDERLYING].values).astype(str)
    iv30 = np.asarray(
        metrics[schema.CONSTANT_MATURITY_IV].sel({schema.TENOR: 30}).values, dtype=np.float64
    ).reshape(-1)
    rank = np.full(names.size, np.nan)
    percentile = np.full(names.size, np.nan)
    try:
        history = storage.open_history(root, storage_options=storage_options)
    except DatasetNotFoundError:
        history = None
    if history is not None and "iv_30d" in history:
        today = np.datetime64(dt.datetime.now(dt.UTC).date(), "ns")
        window = history["iv_30d"].sel(
            {
                schema.TIME: slice(
                    today - np.timedelta64(RANK_DAYS, "D"), today - np.timedelta64(1, "ns")
                )
            }
        )
        known = set(np.asarray(window[schema.UNDERLYING].values).astype(str).tolist())
        for i, name in enumerate(names):
            if name not in known or not np.isfinite(iv30[i]):
                continue
            past = np.asarray(window.sel({schema.UNDERLYING: name}).values, dtype=np.float64)
            past = past[np.isfinite(past)]
            if past.size < MIN_RANK_DAYS:
                continue
            low, high = past.min(), past.max()
            rank[i] = (iv30[i] - low) / (high - low) if high > low else np.nan
            percentile[i] = float((past < iv30[i]).mean())
    dims = (schema.UNDERLYING,)
    return metrics.assign(
        iv30_rank=(dims, rank, {"units": "1 (0 = year low, 1 = year high)"}),
        iv30_percentile=(dims, percentile, {"units": "1 (share of past-year days below)"}),
    )


async def _fetch_closes(
    source: MarketSource, names: list[str], start: dt.date, end: dt.date
) -> dict[str, float]:
    options = ClientOptions(
        requests_per_second=source.requests_per_second, max_concurrency=source.max_concurrency
    )
    async with AsyncMassiveClient(source.api_key, source.base_url, options=options) as client:
        bars = await asyncio.gather(
            *(client.fetch_daily_bars(name, start, end) for name in names), return_exceptions=True
        )
    out: dict[str, float] = {}
    for name, result in zip(names, bars, strict=True):
        if isinstance(result, MarketDataUnavailable):
            raise result
        if isinstance(result, MarketDataError):
            logger.warning("no daily bars for %s: %s", name, result)
            continue
        if isinstance(result, BaseException):
            raise result
        out[name] = realized_volatility(result[schema.CLOSE].values)
    return out


@task(
    name="update-history",
    retries=2,
    retry_delay_seconds=[5.0, 30.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_unavailable,
    cache_result_in_memory=False,
)
def update_history(
    root: str,
    run_id: str,
    source: MarketSource,
    day: dt.date,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Prefect task: append the published run's metrics (and 20-day RV) as ``day``'s rows.

    Returns the number of underlyings written. Single writer: the flow calls it once per run.
    """
    metrics = storage.open_run(root, run_id, group="metrics", storage_options=storage_options)
    metrics = metrics.load()
    names = np.asarray(metrics[schema.UNDERLYING].values).astype(str).tolist()
    start = day - dt.timedelta(days=2 * RV_WINDOW + 10)
    realized = asyncio.run(_fetch_closes(source, names, start, day))
    rows = history_rows(metrics, day, realized)
    storage.append_history(root, rows, storage_options=storage_options)
    return len(names)


@functools.lru_cache(maxsize=2)
def _market(config: SimulationConfig) -> Market:
    # One simulated market per worker process (deterministic from its config).
    return Market(config)


def simulated_day_rows(day: dt.date, *, config: SimulationConfig, universe: list[str]) -> Any:
    """History rows of one past day of the simulated market: fitted surfaces and 20-day RV."""
    from flows.surfaces import fit_one

    market = _market(config)
    index = market.day_index(day)
    surfaces, realized = [], {}
    for name in universe:
        truth = market.chain(name, day)
        chain = truth.dataset()[[*schema.VARIABLES]]
        surfaces.append(fit_one(chain, truth.underlying.ticker))
        closes = [
            market.day_bar(name, d)[3] for d in market.days[max(0, index - RV_WINDOW) : index + 1]
        ]
        realized[truth.underlying.ticker] = realized_volatility(np.asarray(closes))
    return history_rows(schema.stack_surfaces(surfaces), day, realized)


def missing_days(
    root: str, days: list[dt.date], storage_options: dict[str, Any] | None
) -> list[dt.date]:
    """The days of ``days`` that history does not hold yet (every day without a history)."""
    try:
        history = storage.open_history(root, storage_options=storage_options)
    except DatasetNotFoundError:
        return list(days)
    stored = {dt.date.fromisoformat(str(t)[:10]) for t in np.asarray(history[schema.TIME].values)}
    return [day for day in days if day not in stored]


@task(name="backfill-history", cache_result_in_memory=False)
def backfill_history(
    root: str,
    config: SimulationConfig,
    universe: list[str],
    days: int,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Prefect task: fill the past ``days`` trading days of the simulated market into history.

    Only days missing from history are computed (the nightly run is cheap once filled); the
    days fan out over the Dask cluster, and the rows are appended here, by one writer.
    Returns the number of days written.
    """
    # The market's calendar without building the market (paths) in this process.
    all_days = list(trading_days(config.start, config.n_days))[:-1][-days:]
    todo = missing_days(root, all_days, storage_options)
    if not todo:
        return 0
    parts = fan_out(simulated_day_rows, todo, config=config, universe=universe)
    storage.append_history(root, xr.concat(parts, dim=schema.TIME), storage_options=storage_options)
    return len(todo)
