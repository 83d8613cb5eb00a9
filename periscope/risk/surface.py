"""Sensitivity grids of a whole chain, with volatilities read from its fitted surface Dataset.

The surface is the published one (:mod:`periscope.schema` surface layout, one underlying):
``time_to_expiry``, ``forward`` and ``discount_factor`` per expiry, and either its eSSVI
parameters or only its ``implied_volatility`` grid on (expiry, log-moneyness).

- With eSSVI parameters (every fitted surface), volatilities are the published eSSVI surface
  itself, rebuilt by :class:`periscope.volatility.query.SurfaceQuery` (its total-variance
  interpolation between expiries): exact, never refitted.
- Without them (a surface built from a grid alone), the total variance ``w = σ² T`` is
  interpolated linearly in log-moneyness on each expiry's grid row and linearly in time between
  expiries, with flat volatility beyond the first and last expiry and beyond |k| = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.risk.grid import (
    CONTRACT,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_SPOT_SHIFTS,
    DEFAULT_VOL_SHIFTS,
    Sticky,
    VolatilityFunction,
    sensitivity_grid,
)
from periscope.volatility.query import SurfaceQuery

FloatArray = npt.NDArray[np.float64]


def surface_volatility(surface: xr.Dataset) -> VolatilityFunction:
    """A :data:`VolatilityFunction` over one underlying's surface (see the module docstring).

    Raises
    ------
    InvalidInputError
        The surface is stacked (has an ``underlying`` dimension).
    """
    if schema.UNDERLYING in surface.dims:
        raise InvalidInputError("surface_volatility takes one underlying's surface")
    published = np.asarray(surface[schema.EXPIRY_STATUS].values) == schema.ExpiryStatus.OK
    params = np.asarray(surface[schema.ESSVI_PARAMETERS].values, dtype=np.float64)
    if bool((published & np.isfinite(params).all(axis=1)).any()):
        query = SurfaceQuery(surface)

        def essvi(log_moneyness: FloatArray, time_to_expiry: FloatArray) -> FloatArray:
            t = np.asarray(time_to_expiry, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                w = query.total_variance(log_moneyness, np.where(t > 0, t, 1.0))
                vol = np.where(
                    np.isfinite(t) & (t > 0), np.sqrt(w / np.where(t > 0, t, 1.0)), np.nan
                )
            return np.asarray(vol, dtype=np.float64)

        return essvi
    return _grid_volatility(surface)


def _grid_volatility(surface: xr.Dataset) -> VolatilityFunction:
    times = np.asarray(surface[schema.TIME_TO_EXPIRY].values, dtype=np.float64)
    iv = np.asarray(surface[schema.IMPLIED_VOLATILITY].values, dtype=np.float64)
    grid = np.asarray(surface[schema.LOG_MONEYNESS].values, dtype=np.float64)
    usable = np.isfinite(times) & (times > 0) & np.isfinite(iv).all(axis=1)
    order = np.argsort(times[usable])
    t_rows = times[usable][order]
    w_rows = (iv[usable][order] ** 2) * t_rows[:, None]

    def volatility(log_moneyness: FloatArray, time_to_expiry: FloatArray) -> FloatArray:
        k = np.asarray(log_moneyness, dtype=np.float64)
        t = np.asarray(time_to_expiry, dtype=np.float64)
        shape = np.broadcast_shapes(k.shape, t.shape)
        k, t = np.broadcast_to(k, shape).ravel(), np.broadcast_to(t, shape).ravel()
        if t_rows.size == 0:
            return np.full(shape, np.nan)
        # Total variance of every query point on every published expiry (flat beyond |k| grid).
        w = np.stack([np.interp(k, grid, row) for row in w_rows])  # (rows, points)
        hi = np.clip(np.searchsorted(t_rows, t), 1, max(t_rows.size - 1, 1))
        lo = hi - 1
        cols = np.arange(k.size)
        if t_rows.size == 1:
            sigma2 = w[0] / t_rows[0]
        else:
            t_lo, t_hi = t_rows[lo], t_rows[hi]
            weight = np.clip((t - t_lo) / (t_hi - t_lo), 0.0, 1.0)
            w_t = (1.0 - weight) * w[lo, cols] + weight * w[hi, cols]
            t_ref = (1.0 - weight) * t_lo + weight * t_hi
            # Inside the published range w is interpolated in time; outside, the volatility of
            # the nearest expiry is held flat.
            sigma2 = w_t / t_ref
        with np.errstate(invalid="ignore"):
            out = np.sqrt(np.where(np.isfinite(t) & (t > 0), sigma2, np.nan))
        return np.asarray(out, dtype=np.float64).reshape(shape)

    return volatility


def chain_sensitivity_grid(
    chain: xr.Dataset,
    surface: xr.Dataset,
    *,
    spot_shifts: Sequence[float] = DEFAULT_SPOT_SHIFTS,
    vol_shifts: Sequence[float] = DEFAULT_VOL_SHIFTS,
    horizon_days: Sequence[float] = DEFAULT_HORIZON_DAYS,
    sticky: Sticky = "moneyness",
) -> xr.Dataset:
    """:func:`~periscope.risk.sensitivity_grid` of every contract of one underlying's chain.

    Each contract takes its expiry's time to expiry, forward and discount factor from the
    surface (rate ``-ln(DF)/T``, carry yield ``rate - ln(F/S)/T``) and its volatility from
    :func:`surface_volatility`. Contracts whose expiry has no published slice (too few quotes,
    expired, not fitted) get NaN everywhere. The chain's contract coordinates (ticker, strike,
    expiry, right...) are kept.

    Raises
    ------
    InvalidInputError
        The chain and surface are of different underlyings, or the surface has no spot.
    """
    if schema.UNDERLYING in surface.dims:
        raise InvalidInputError("chain_sensitivity_grid takes one underlying's surface")
    name = str(surface[schema.UNDERLYING].item())
    chain_names = set(np.asarray(chain[schema.UNDERLYING].values).astype(str).tolist())
    if chain_names - {name}:
        raise InvalidInputError(
            f"chain of {sorted(chain_names)} with the surface of {name}", underlying=name
        )
    spot = float(surface[schema.SPOT].item())
    if not (np.isfinite(spot) and spot > 0):
        raise InvalidInputError(f"the surface of {name} has no spot", underlying=name)
    expiry = np.asarray(chain[schema.EXPIRY].values).astype("datetime64[ns]")
    per_expiry = surface[[schema.TIME_TO_EXPIRY, schema.FORWARD, schema.DISCOUNT_FACTOR]]
    aligned = per_expiry.reindex({schema.EXPIRY: np.unique(expiry)})
    index = np.searchsorted(aligned[schema.EXPIRY].values, expiry)
    t = np.asarray(aligned[schema.TIME_TO_EXPIRY].values, dtype=np.float64)[index]
    forward = np.asarray(aligned[schema.FORWARD].values, dtype=np.float64)[index]
    discount = np.asarray(aligned[schema.DISCOUNT_FACTOR].values, dtype=np.float64)[index]
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (t > 0) & (forward > 0) & (discount > 0)
        t_safe = np.where(valid, t, 1.0)
        rate = np.where(valid, -np.log(np.where(valid, discount, 1.0)) / t_safe, np.nan)
        carry = np.where(valid, np.log(np.where(valid, forward, spot) / spot) / t_safe, np.nan)
    is_call = np.asarray(chain[schema.RIGHT].values).astype(str) == schema.CALL
    grid = sensitivity_grid(
        spot,
        np.asarray(chain[schema.STRIKE].values, dtype=np.float64),
        np.where(valid, t, np.nan),
        is_call,
        rate,
        rate - carry,
        surface_volatility(surface),
        spot_shifts=spot_shifts,
        vol_shifts=vol_shifts,
        horizon_days=horizon_days,
        sticky=sticky,
    )
    coords = {
        coord: (CONTRACT, np.asarray(chain[coord].values))
        for coord in schema.COORDS
        if coord in chain.coords
    }
    grid = grid.assign_coords(coords)
    grid["time_to_expiry"] = (CONTRACT, np.where(valid, t, np.nan), {"units": "years"})
    grid.attrs["underlying"] = name
    return grid
