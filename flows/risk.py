"""Risk: the sensitivity grid of every listed contract, batch by batch.

:func:`risk_batch` runs on a Dask worker: it opens a batch's staged chains and surfaces by URI,
computes :func:`periscope.risk.chain_sensitivity_grid` of the whole batch against the stacked
surfaces in one call (each contract on its own underlying's surface; names without a usable
surface stay NaN, so the grid lines up contract for contract with the chains) and stages it as
float32: the grid is a scenario view, not a book of record, and float32 halves the run's size.

Size: contracts x scenarios x 6 variables x 4 bytes; the default 7 x 3 x 3 = 63 scenarios make
1.5 KB a contract, 1.5 GB for 1 million contracts. Each batch is priced in blocks of contracts
(:data:`periscope.risk.grid.BLOCK_CONTRACTS`) and stored in Zarr chunks of :data:`RISK_CHUNK`
contracts with every scenario of a contract in one chunk (what a reader of a few contracts, and
the run's assembly, want).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from prefect import task
from zarr.codecs import BloscCodec

from flows.fanout import fan_out
from flows.surfaces import FitResult
from periscope import schema, storage
from periscope.risk import chain_sensitivity_grid

logger = logging.getLogger(__name__)

# Contracts per Zarr chunk of the grid: 20,000 x 63 scenarios x 4 bytes = 5 MB a chunk.
RISK_CHUNK = 20_000
# Blosc LZ4 with byte shuffle for the grid's floats: measured on a 70,000-contract grid against
# Zarr's default (Zstandard level 0, no shuffle), 7 % smaller, writes 4x and reads 7x faster
# (the grid is written twice, staged then published, and read by every analyst).
RISK_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The scenario grid of a run."""

    spot_shifts: tuple[float, ...]
    vol_shifts: tuple[float, ...]
    horizon_days: tuple[float, ...]
    sticky: str = "moneyness"


@dataclass(frozen=True, slots=True)
class RiskResult:
    """A batch's staged grid: URI, contracts and how many had no usable volatility."""

    index: int
    uri: str | None
    contracts: int
    unpriced: int


def contract_chunks(
    ds: xr.Dataset, chunk: int, compressors: tuple[Any, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Zarr encoding: every variable along ``contract`` in chunks of ``chunk`` contracts, whole
    along its other dimensions (one chunk holds all the scenarios of its contracts); float
    variables with ``compressors`` when given."""
    encoding: dict[str, dict[str, Any]] = {}
    for name, variable in ds.variables.items():
        if schema.CONTRACT not in variable.dims or variable.dtype.kind == "O":
            continue
        sizes = [
            max(1, min(chunk, size)) if dim == schema.CONTRACT else max(1, size)
            for dim, size in zip(variable.dims, variable.shape, strict=True)
        ]
        encoding[str(name)] = {"chunks": tuple(sizes)}
        if compressors is not None and variable.dtype.kind == "f":
            encoding[str(name)]["compressors"] = compressors
    return encoding


def risk_batch(fit: FitResult, *, root: str, run_id: str, spec: GridSpec) -> RiskResult:
    """Sensitivity grids of one batch: every contract of its chains, float32, staged."""
    staged = storage.open_staged(fit.chain_uri)
    # The grid needs the contracts' coordinates only, not the quotes.
    chain = staged.drop_vars(list(staged.data_vars)).load()
    surfaces = storage.open_staged(fit.uri).load()
    grid = chain_sensitivity_grid(
        chain,
        surfaces,
        spot_shifts=spec.spot_shifts,
        vol_shifts=spec.vol_shifts,
        horizon_days=spec.horizon_days,
        sticky="strike" if spec.sticky == "strike" else "moneyness",
        dtype=np.float32,
    )
    contracts = int(grid.sizes[schema.CONTRACT])
    if not contracts:
        return RiskResult(fit.index, None, 0, 0)
    unpriced = int(np.isnan(grid["price"].values[:, 0, 0, 0]).sum())
    if unpriced:
        logger.info("risk batch %d: %d of %d contracts unpriced", fit.index, unpriced, contracts)
    encoding = contract_chunks(grid, RISK_CHUNK, RISK_COMPRESSORS)
    uri = storage.write_staged(root, run_id, f"risk-{fit.index:05d}", grid, encoding=encoding)
    return RiskResult(fit.index, uri, contracts, unpriced)


@task(name="sensitivity-grids", cache_result_in_memory=False)
def sensitivity_grids(
    fits: list[FitResult], root: str, run_id: str, spec: GridSpec
) -> list[RiskResult]:
    """Prefect task: the sensitivity grids of every batch across the Dask cluster (the largest
    batches first, as for the fits)."""
    ordered = sorted(fits, key=lambda fit: -fit.contracts)
    return fan_out(risk_batch, ordered, root=root, run_id=run_id, spec=spec)
