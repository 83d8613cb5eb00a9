"""Assemble a run's groups from its staged batches, then publish it (``latest.json`` moves last).

Groups written: ``chains`` (every contract), ``surfaces`` (stacked per underlying), ``metrics``
(the per-tenor and per-underlying numbers, plus IV rank and percentile against history) and
``risk`` (the sensitivity grids). Large groups are concatenated lazily from the staged stores
and written chunk by chunk, so the assembling worker never holds a whole 1M-contract grid.
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
from flows.risk import RISK_CHUNK, RISK_COMPRESSORS, RiskResult, contract_chunks
from flows.surfaces import FitResult
from periscope import schema, storage

logger = logging.getLogger(__name__)

# Contracts per Zarr chunk of the chains group (a few MB per variable); the risk group's is
# RISK_CHUNK (flows.risk), the chunking its batches are staged with.
CONTRACT_CHUNK = 250_000
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


def _as_dask(part: xr.Dataset, dim: str, token: str) -> xr.Dataset:
    """Numeric variables along ``dim`` as Dask arrays (streamed when written); everything else,
    strings above all (Zarr cannot stream object dtype), loaded into memory.

    ``token`` (the staged URI) names the Dask arrays: without it Dask would hash every array's
    content to name it, seconds per group at scale for nothing (a staged store does not change
    while the run is assembled).
    """
    out = part.copy()
    for name, variable in part.variables.items():
        if variable.dtype.kind != "O" and dim in variable.dims and name in part.data_vars:
            out[name] = part[name].chunk({dim: -1}, token=f"{token}/{name}")
        elif name in part.data_vars:
            out[name] = part[name].load()
        else:
            out[name].load()
    return out


def _lazy_concat(uris: list[str], dim: str, chunk: int) -> xr.Dataset:
    """The staged datasets of ``uris`` along ``dim``, numeric variables as Dask arrays in
    uniform chunks (one Zarr chunk per Dask chunk), so writing streams chunk by chunk."""
    parts = [_as_dask(storage.open_staged(uri), dim, uri) for uri in uris]
    combined = parts[0] if len(parts) == 1 else xr.concat(
        parts, dim=dim, data_vars="all", coords="different", compat="equals",
        combine_attrs="drop_conflicts",
    )  # fmt: skip
    size = min(chunk, max(1, combined.sizes[dim]))
    numeric = {
        name: combined[name].chunk({dim: size})
        for name in combined.data_vars
        if combined[name].dtype.kind != "O" and dim in combined[name].dims
    }
    return combined.assign(numeric)


def assemble_and_publish(
    root: str,
    run_id: str,
    fits: list[FitResult],
    risks: list[RiskResult],
    *,
    meta: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> PublishedRun:
    """Write every group of the run from its staged batches and publish it."""
    fits = sorted(fits, key=lambda fit: fit.index)
    if not fits:
        raise ValueError(f"run {run_id} has no surfaces to publish")
    chains = _lazy_concat([fit.chain_uri for fit in fits], schema.CONTRACT, CONTRACT_CHUNK)
    storage.write_group(root, run_id, "chains", chains, storage_options=storage_options)
    surfaces = stack_batches([storage.open_staged(fit.uri).load() for fit in fits])
    storage.write_group(root, run_id, "surfaces", surfaces, storage_options=storage_options)
    metrics = rank_against_history(root, metrics_of(surfaces), storage_options=storage_options)
    storage.write_group(root, run_id, "metrics", metrics, storage_options=storage_options)
    risk_uris = [r.uri for r in sorted(risks, key=lambda r: r.index) if r.uri is not None]
    if risk_uris:
        risk = _lazy_concat(risk_uris, schema.CONTRACT, RISK_CHUNK)
        storage.write_group(
            root,
            run_id,
            "risk",
            risk,
            storage_options=storage_options,
            encoding=contract_chunks(risk, RISK_CHUNK, RISK_COMPRESSORS),
        )
    contracts = int(chains.sizes[schema.CONTRACT])
    full_meta = meta | {
        "underlyings": int(surfaces.sizes[schema.UNDERLYING]),
        "contracts": contracts,
    }
    info = storage.publish(root, run_id, meta=full_meta, storage_options=storage_options)
    logger.info("published run %s at %s", run_id, info.uri)
    return PublishedRun(
        run_id=run_id,
        uri=info.uri,
        root=root,
        groups=tuple(info.groups),
        underlyings=int(surfaces.sizes[schema.UNDERLYING]),
        contracts=contracts,
        meta=full_meta,
    )


@task(name="publish-run", cache_result_in_memory=False)
def publish_run(
    root: str,
    run_id: str,
    fits: list[FitResult],
    risks: list[RiskResult],
    meta: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> PublishedRun:
    """Prefect task: assemble the run's groups and move ``latest.json`` to it."""
    return assemble_and_publish(
        root, run_id, fits, risks, meta=meta, storage_options=storage_options
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
