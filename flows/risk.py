"""Risk: per underlying, the sensitivity grid of every listed contract, batch by batch.

:func:`risk_batch` runs on a Dask worker: it opens a batch's staged chains and surfaces by URI,
computes :func:`periscope.risk.chain_sensitivity_grid` per underlying and stages the result
(float32: the grid is a scenario view, not a book of record, and halves the run's size).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr
from prefect import task

from flows.fanout import fan_out
from flows.surfaces import FitResult, split_by_underlying
from periscope import schema, storage
from periscope.errors import InvalidInputError
from periscope.risk import GRID_VARIABLES, chain_sensitivity_grid

logger = logging.getLogger(__name__)


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


def risk_batch(fit: FitResult, *, root: str, run_id: str, spec: GridSpec) -> RiskResult:
    """Sensitivity grids of one batch (every underlying with a usable surface)."""
    chains = split_by_underlying(storage.open_staged(fit.chain_uri).load())
    surfaces = storage.open_staged(fit.uri).load()
    grids = []
    for name, chain in chains.items():
        surface = surfaces.sel({schema.UNDERLYING: name})
        try:
            grid = chain_sensitivity_grid(
                chain,
                surface,
                spot_shifts=spec.spot_shifts,
                vol_shifts=spec.vol_shifts,
                horizon_days=spec.horizon_days,
                sticky="strike" if spec.sticky == "strike" else "moneyness",
            )
        except InvalidInputError as exc:  # no spot: the surface failed; nothing to shift
            logger.warning("no sensitivity grid for %s: %s", name, exc)
            continue
        grids.append(grid)
    if not grids:
        return RiskResult(fit.index, None, 0, 0)
    combined = xr.concat(grids, dim="contract", data_vars="all", combine_attrs="drop_conflicts")
    for name in GRID_VARIABLES:
        combined[name] = combined[name].astype(np.float32)
    combined["volatility"] = combined["volatility"].astype(np.float32)
    unpriced = int(np.isnan(combined["price"].values[:, 0, 0, 0]).sum())
    uri = storage.write_staged(root, run_id, f"risk-{fit.index:05d}", combined)
    return RiskResult(fit.index, uri, int(combined.sizes["contract"]), unpriced)


@task(name="sensitivity-grids", cache_result_in_memory=False)
def sensitivity_grids(
    fits: list[FitResult], root: str, run_id: str, spec: GridSpec
) -> list[RiskResult]:
    """Prefect task: the sensitivity grids of every batch across the Dask cluster."""
    return fan_out(risk_batch, fits, root=root, run_id=run_id, spec=spec)
