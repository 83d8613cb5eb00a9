"""Surfaces: staged chains of a batch -> one fitted surface per underlying -> staged stack.

:func:`fit_batch` runs on a Dask worker (opens its chains by URI, writes its surfaces by URI);
the Prefect task :func:`fit_surfaces` fans the batches out with :func:`flows.fanout.fan_out`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from prefect import task

from flows.fanout import fan_out
from flows.ingest import StagedBatch
from periscope import schema, storage
from periscope.volatility.rates import ZeroCurve

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FitResult:
    """A batch's staged surfaces and its per-underlying diagnostics (small rows for the UI)."""

    index: int
    uri: str
    chain_uri: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def contracts(self) -> int:
        """Contracts of the batch's chains."""
        return sum(int(row.get("contracts") or 0) for row in self.diagnostics)


def split_by_underlying(chain: xr.Dataset) -> dict[str, xr.Dataset]:
    """One chain per underlying, in order of first appearance."""
    names = np.asarray(chain[schema.UNDERLYING].values).astype(str)
    unique, first = np.unique(names, return_index=True)
    return {
        str(name): chain.isel({schema.CONTRACT: np.flatnonzero(names == name)})
        for name in unique[np.argsort(first)]
    }


def _finite(values: Any) -> np.ndarray[Any, Any]:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def diagnostics_row(surface: xr.Dataset, contracts: int) -> dict[str, Any]:
    """The fit diagnostics of one surface as a flat row (artifact table, run summary)."""
    status = int(surface[schema.SURFACE_STATUS].item())
    slices = np.asarray(surface[schema.EXPIRY_STATUS].values)
    rmse = _finite(surface[schema.RMSE_BP].values)
    worst = _finite(surface[schema.MAX_ABS_ERROR_BP].values)
    cm = surface[schema.CONSTANT_MATURITY_IV].sel({schema.TENOR: 30}).item()
    return {
        "underlying": str(surface[schema.UNDERLYING].item()),
        "status": schema.SurfaceStatus(status).name.lower(),
        "contracts": contracts,
        "expiries_fitted": int((slices == schema.ExpiryStatus.OK).sum()),
        "expiries": int((slices != schema.ExpiryStatus.NOT_LISTED).sum()),
        "quotes_used": int(np.asarray(surface[schema.QUOTES_USED].values).sum()),
        "quotes_dropped": int(np.asarray(surface[schema.QUOTES_DROPPED].values).sum()),
        "rmse_bp_median": round(float(np.median(rmse)), 1) if rmse.size else None,
        "max_error_bp": round(float(worst.max()), 1) if worst.size else None,
        "butterfly_violations": int(np.asarray(surface[schema.BUTTERFLY_VIOLATIONS]).sum()),
        "calendar_violations": int(np.asarray(surface[schema.CALENDAR_VIOLATIONS]).sum()),
        "iv30": round(float(cm), 4) if np.isfinite(cm) else None,
        "confidence": round(float(surface[schema.CONFIDENCE].item()), 3),
        "message": str(surface[schema.STATUS_MESSAGE].item()),
    }


def fit_one(chain: xr.Dataset, underlying: str, rate_curve: ZeroCurve | None = None) -> xr.Dataset:
    """The fitted surface of one underlying; an unexpected error becomes a FAILED surface.

    A failure of one name must not sink a batch of hundreds: it is recorded with its message
    (``surface_status`` FAILED) and shows in the diagnostics table.
    """
    from periscope.volatility.surface import fit_surface

    try:
        return fit_surface(chain, rate_curve)
    except Exception as exc:
        logger.exception("surface fit of %s failed", underlying)
        return schema.empty_surface(
            underlying, status=schema.SurfaceStatus.FAILED, message=f"{type(exc).__name__}: {exc}"
        )


def fit_batch(
    batch: StagedBatch, *, root: str, run_id: str, rate_curve: ZeroCurve | None = None
) -> FitResult:
    """Fit every underlying of a staged chain batch (discount factors from ``rate_curve`` when
    given) and stage the stacked surfaces."""
    if batch.uri is None:
        raise ValueError("fit_batch needs a staged batch")
    chain = storage.open_staged(batch.uri).load()
    surfaces, rows = [], []
    for name, sub in split_by_underlying(chain).items():
        surface = fit_one(sub, name, rate_curve)
        surfaces.append(surface)
        rows.append(diagnostics_row(surface, int(sub.sizes[schema.CONTRACT])))
    stacked = schema.stack_surfaces(surfaces)
    uri = storage.write_staged(root, run_id, f"surfaces-{batch.index:05d}", stacked)
    return FitResult(batch.index, uri, batch.uri, rows)


@task(name="fit-surfaces", cache_result_in_memory=False)
def fit_surfaces(
    batches: list[StagedBatch], root: str, run_id: str, rate_curve: ZeroCurve | None = None
) -> list[FitResult]:
    """Prefect task: fit the surfaces of every staged batch across the Dask cluster.

    The largest batches go first, so that the last ones to finish are small and the workers
    run out of work at about the same time.
    """
    staged = sorted(
        (batch for batch in batches if batch.uri is not None), key=lambda b: -b.contracts
    )
    return fan_out(fit_batch, staged, root=root, run_id=run_id, rate_curve=rate_curve)
