"""Write a run's small groups, then publish it (``latest.json`` moves last).

The large, contract-indexed groups ``chains`` and ``risk`` are already in the run store: the
sensitivity-grid ranges wrote them in place (:mod:`flows.risk`). Publishing adds ``surfaces``
(stacked per underlying) and ``metrics`` (the per-tenor and per-underlying numbers, plus IV rank
and percentile against history), then checks every group complete (marker and every chunk),
consolidates, re-reads, seals the run and moves the pointer (:func:`periscope.storage.publish`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from prefect import task

from flows.history import rank_against_history
from flows.risk import GridsResult
from flows.surfaces import FitResult
from periscope import schema, storage

logger = logging.getLogger(__name__)

# Surface variables that make up the metrics group: per tenor, per delta and per underlying.
METRIC_VARIABLES = (
    schema.SPOT,
    schema.SNAPSHOT_TIME,
    schema.SURFACE_STATUS,
    schema.CONFIDENCE,
    schema.TERM_STRUCTURE_SLOPE,
    schema.CONSTANT_MATURITY_IV,
    schema.ATM_SKEW,
    schema.RISK_REVERSAL_25,
    schema.RISK_REVERSAL_10,
    schema.BUTTERFLY_25,
    schema.BUTTERFLY_10,
    schema.TENOR_EXTRAPOLATED,
    schema.DELTA_IMPLIED_VOLATILITY,
)


@dataclass(frozen=True, slots=True)
class PublishedRun:
    """What the flow reports about a published run."""

    run_id: str
    uri: str
    root: str
    groups: tuple[str, ...]
    underlyings: int
    contracts: int
    meta: dict[str, Any] = field(default_factory=dict)


def stack_batches(batches: list[xr.Dataset]) -> xr.Dataset:
    """Stacked surfaces of several batches as one stack (union of expiries, layout fills)."""
    if len(batches) == 1:
        return batches[0]
    expiries = np.unique(np.concatenate([b[schema.EXPIRY].values for b in batches]))
    reasons = list(
        dict.fromkeys(r for b in batches for r in b[schema.CLEANING_REASON].values.tolist())
    )
    fills = {name: fill for name, (_, _, fill) in schema.SURFACE_LAYOUT.items()}
    padded = [
        b.reindex(
            {schema.EXPIRY: expiries, schema.CLEANING_REASON: np.array(reasons, dtype=object)},
            fill_value=fills,
        )
        for b in batches
    ]
    return xr.concat(padded, dim=schema.UNDERLYING, data_vars="all", coords="minimal", join="exact")


def metrics_of(surfaces: xr.Dataset) -> xr.Dataset:
    """The metrics group: the surface's per-tenor, per-delta and scalar variables."""
    return surfaces[list(METRIC_VARIABLES)].drop_vars(
        [name for name in (schema.LOG_MONEYNESS, schema.EXPIRY) if name in surfaces.coords],
        errors="ignore",
    )


def assemble_and_publish(
    root: str,
    run_id: str,
    fits: list[FitResult],
    grids: GridsResult,
    *,
    meta: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> PublishedRun:
    """Write the run's surfaces and metrics next to its chains and grids, and publish it."""
    fits = sorted(fits, key=lambda fit: fit.index)
    if not fits:
        raise ValueError(f"run {run_id} has no surfaces to publish")
    surfaces = stack_batches(
        [storage.open_staged(fit.uri, storage_options=storage_options).load() for fit in fits]
    )
    storage.write_group(root, run_id, "surfaces", surfaces, storage_options=storage_options)
    metrics = rank_against_history(root, metrics_of(surfaces), storage_options=storage_options)
    storage.write_group(root, run_id, "metrics", metrics, storage_options=storage_options)
    underlyings = int(surfaces.sizes[schema.UNDERLYING])
    full_meta = meta | {
        "underlyings": underlyings,
        "contracts": grids.contracts,
        "unpriced_contracts": grids.unpriced,
    }
    info = storage.publish(root, run_id, meta=full_meta, storage_options=storage_options)
    logger.info("published run %s at %s", run_id, info.uri)
    return PublishedRun(
        run_id=run_id,
        uri=info.uri,
        root=root,
        groups=tuple(info.groups),
        underlyings=underlyings,
        contracts=grids.contracts,
        meta=full_meta,
    )


@task(name="publish-run", cache_result_in_memory=False)
def publish_run(
    root: str,
    run_id: str,
    fits: list[FitResult],
    grids: GridsResult,
    meta: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> PublishedRun:
    """Prefect task: write the run's small groups and move ``latest.json`` to it."""
    return assemble_and_publish(
        root, run_id, fits, grids, meta=meta, storage_options=storage_options
    )


@task(name="apply-retention", cache_result_in_memory=False)
def apply_retention(
    root: str,
    keep_days: int,
    grace: dt.timedelta,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Prefect task: remove runs past retention and abandoned partial runs (never the latest)."""
    return storage.apply_retention(
        root, keep_days=keep_days, grace=grace, storage_options=storage_options
    )
