"""The ``backfill`` flow: past days of ``history.zarr`` (see :mod:`flows.history`).

Against the simulated market (no key) every missing past day gets its fitted-surface metrics and
realised volatility, fanned out over the Dask cluster by day. With a Massive key only realised
volatility and closes are backfilled from daily aggregates (the REST API has no past chain
snapshots); IV columns accrue from the scheduled runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import numpy as np
import xarray as xr
from prefect import flow, get_run_logger, task
from prefect_dask import DaskTaskRunner

from flows.daily import dask_address
from flows.history import (
    RV_WINDOW,
    backfill_history,
    missing_days,
    realized_volatility,
)
from flows.retry import retry_on_unavailable
from flows.source import (
    MarketSource,
    last_weekday,
    market_size,
    market_source,
    resolve_universe,
    simulation_config,
)
from periscope import schema, storage
from periscope.marketdata import AsyncMassiveClient, ClientOptions
from periscope.settings import Settings
from periscope.simulator import SimulationConfig


async def _daily_closes(
    source: MarketSource, names: list[str], start: dt.date, end: dt.date
) -> list[xr.Dataset]:
    options = ClientOptions(
        requests_per_second=source.requests_per_second, max_concurrency=source.max_concurrency
    )
    async with AsyncMassiveClient(source.api_key, source.base_url, options=options) as client:
        return list(await asyncio.gather(*(client.fetch_daily_bars(n, start, end) for n in names)))


@task(
    name="backfill-realized",
    retries=3,
    retry_delay_seconds=[5.0, 30.0, 120.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_unavailable,
    cache_result_in_memory=False,
)
def backfill_realized(
    root: str,
    source: MarketSource,
    universe: list[str],
    days: int,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Prefect task: closes and 20-day realised volatility of past days from daily aggregates."""
    end = last_weekday() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=int(days * 1.5) + 2 * RV_WINDOW + 10)
    bars = asyncio.run(_daily_closes(source, universe, start, end))
    frames = []
    for name, ds in zip(universe, bars, strict=True):
        closes = np.asarray(ds[schema.CLOSE].values, dtype=np.float64)
        if closes.size == 0:
            continue
        times = np.asarray(ds[schema.TIME].values).astype("datetime64[D]").astype("datetime64[ns]")
        rv = np.array([realized_volatility(closes[: i + 1]) for i in range(closes.size)])
        frames.append(
            xr.Dataset(
                {"spot": (schema.TIME, closes), "rv_20d": (schema.TIME, rv)},
                coords={schema.TIME: times},
            ).expand_dims({schema.UNDERLYING: np.array([name], dtype=object)}, axis=1)
        )
    if not frames:
        return 0
    rows = xr.concat(frames, dim=schema.UNDERLYING, join="outer").isel(
        {schema.TIME: slice(-days, None)}
    )
    todo = missing_days(
        root,
        [dt.date.fromisoformat(str(t)[:10]) for t in rows[schema.TIME].values],
        storage_options,
    )
    if not todo:
        return 0
    keep = np.isin(
        rows[schema.TIME].values.astype("datetime64[D]"), np.array(todo, "datetime64[D]")
    )
    storage.append_history(root, rows.isel({schema.TIME: keep}), storage_options=storage_options)
    return len(todo)


@flow(name="backfill-on-cluster", cache_result_in_memory=False)
def backfill_on_cluster(
    root: str,
    config: SimulationConfig,
    universe: list[str],
    days: int,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """The simulated backfill on the Dask cluster (the day fan-out needs a Dask task runner)."""
    return backfill_history.submit(root, config, universe, days, storage_options).result()


@flow(name="backfill", cache_result_in_memory=False)
def backfill(
    days: int | None = None, universe: list[str] | None = None, root: str | None = None
) -> dict[str, Any]:
    """Fill ``history.zarr`` with the past ``days`` trading days (default settings, a year).

    Returns ``{"days": written, "underlyings": n, "source": ...}``.
    """
    settings = Settings()
    names = resolve_universe(settings, universe)
    data_root = root or settings.data_root
    count = days or settings.history_days
    options = settings.storage_options() or None
    log = get_run_logger()
    if settings.massive_api_key is not None:
        with market_source(settings, names) as (source, _):
            written = backfill_realized(data_root, source, names, count, options)
        log.info("backfilled realised volatility for %d day(s)", written)
        return {"days": written, "underlyings": len(names), "source": "massive"}
    # The market's configuration (deterministic; workers rebuild the market from it).
    config = simulation_config(settings, market_size(names), last_weekday())
    with dask_address(settings) as address:
        written = backfill_on_cluster.with_options(task_runner=DaskTaskRunner(address=address))(
            data_root, config, names, count, options
        )
    log.info("backfilled %d day(s) of simulated history", written)
    return {"days": written, "underlyings": len(names), "source": "simulator"}
