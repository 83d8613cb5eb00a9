"""Ingest: a batch of underlyings -> canonical chains fetched concurrently -> one staged dataset.

The work is plain functions (:func:`fetch_batch`, :func:`ingest_batch`); the Prefect task
:func:`ingest_chains` wraps one batch and retries only transient market-data errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import xarray as xr
from prefect import task

from flows.retry import retry_on_unavailable
from flows.source import MarketSource
from periscope import schema, storage
from periscope.errors import (
    InvalidInputError,
    MarketDataRejected,
    MarketDataUnavailable,
    PayloadError,
)
from periscope.marketdata import AsyncMassiveClient, ClientOptions
from periscope.volatility.rates import ZeroCurve

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """What a batch task hands on: the staged dataset's URI and a few small facts."""

    index: int
    uri: str | None
    underlyings: tuple[str, ...]
    contracts: int = 0
    failed: dict[str, str] = field(default_factory=dict)


async def fetch_batch(source: MarketSource, underlyings: list[str]) -> dict[str, Any]:
    """Chains of ``underlyings`` fetched concurrently through one async client.

    Returns ``{name: Dataset}`` for the names served and ``{name: error}`` (str) for names the
    source rejected or answered with a broken payload; a transient error
    (:class:`MarketDataUnavailable`, after the client's own retries) is raised so the task can
    retry the batch.
    """
    options = ClientOptions(
        requests_per_second=source.requests_per_second,
        max_concurrency=source.max_concurrency,
    )
    async with AsyncMassiveClient(source.api_key, source.base_url, options=options) as client:
        results = await asyncio.gather(
            *(client.fetch_chain(name) for name in underlyings), return_exceptions=True
        )
    out: dict[str, Any] = {}
    for name, result in zip(underlyings, results, strict=True):
        if isinstance(result, MarketDataUnavailable):
            raise result
        if isinstance(result, MarketDataRejected | PayloadError):
            logger.warning("chain %s skipped: %s", name, result)
            out[name] = str(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            out[name] = result
    return out


async def _treasury_yields(source: MarketSource, day: dt.date) -> xr.Dataset:
    options = ClientOptions(requests_per_second=source.requests_per_second, max_concurrency=1)
    async with AsyncMassiveClient(source.api_key, source.base_url, options=options) as client:
        # Two weeks back: the latest published yields may be a few days old (holidays).
        return await client.fetch_treasury_yields(day - dt.timedelta(days=14), day)


def fetch_rate_curve(source: MarketSource, day: dt.date) -> ZeroCurve | None:
    """The day's zero curve from the source's treasury yields, or None when unavailable.

    The surfaces then take each expiry's discount factor from the curve and fit only the forward
    to put-call parity (much tighter forwards for American chains); without a curve both come
    from parity, so a missing or rejected yields endpoint degrades accuracy, not the run.
    """
    try:
        yields = asyncio.run(_treasury_yields(source, day))
        return ZeroCurve.from_treasury_yields(yields, day)
    except (MarketDataRejected, MarketDataUnavailable, PayloadError, InvalidInputError) as exc:
        logger.warning("no treasury curve for %s (%s); rates come from put-call parity", day, exc)
        return None


def concat_chains(chains: list[xr.Dataset]) -> xr.Dataset:
    """Chains of several underlyings as one chain along ``contract`` (tickers stay unique)."""
    if len(chains) == 1:
        return chains[0]
    return xr.concat(
        chains, dim=schema.CONTRACT, combine_attrs="drop_conflicts", data_vars="all", join="exact"
    )


def ingest_batch(
    source: MarketSource, underlyings: list[str], root: str, run_id: str, index: int
) -> StagedBatch:
    """Fetch one batch and stage it as ``chains-<index>``; see :func:`fetch_batch`."""
    fetched = asyncio.run(fetch_batch(source, underlyings))
    chains = [
        ds for ds in fetched.values() if isinstance(ds, xr.Dataset) and ds.sizes[schema.CONTRACT]
    ]
    failed = {name: value for name, value in fetched.items() if isinstance(value, str)}
    empty = [
        n
        for n, ds in fetched.items()
        if isinstance(ds, xr.Dataset) and not ds.sizes[schema.CONTRACT]
    ]
    failed |= dict.fromkeys(empty, "no contracts listed")
    if not chains:
        return StagedBatch(index, None, (), 0, failed)
    chain = concat_chains(chains)
    uri = storage.write_staged(root, run_id, f"chains-{index:05d}", chain)
    names = tuple(str(ds.attrs.get("underlying", ds[schema.UNDERLYING].values[0])) for ds in chains)
    return StagedBatch(index, uri, names, int(chain.sizes[schema.CONTRACT]), failed)


@task(
    name="ingest-chains",
    retries=3,
    retry_delay_seconds=[2.0, 10.0, 30.0],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_unavailable,
    cache_result_in_memory=False,
    task_run_name="ingest-chains-{index}",
)
def ingest_chains(
    source: MarketSource, underlyings: list[str], root: str, run_id: str, index: int
) -> StagedBatch:
    """Prefect task: one batch of underlyings to a staged chain dataset (URI returned)."""
    return ingest_batch(source, underlyings, root, run_id, index)
