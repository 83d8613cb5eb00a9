"""Sensitivity grids of a whole chain, with volatilities read from its fitted surface Dataset.

The surface is the published one (:mod:`periscope.schema` surface layout: one underlying, or a
stack of them along ``underlying`` for a chain of several names, each contract valued on its
own name's surface):
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

import itertools
from collections.abc import Sequence
from typing import Any

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
    GRID_VARIABLES,
    MODEL,
    SPOT_SHIFT,
    Sticky,
    VolatilityFunction,
    check_grid,
    fill_grid,
    grid_dataset,
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


def _per_contract(
    surface: xr.Dataset, expiry: npt.NDArray[np.datetime64], spot: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Time to expiry, rate and carry yield of each contract from its expiry's slice of one
    underlying's surface; NaN where the expiry has no usable slice."""
    listed = np.asarray(surface[schema.EXPIRY].values).astype("datetime64[ns]")
    nan = np.full(expiry.size, np.nan)
    if listed.size == 0 or expiry.size == 0:
        return nan, nan, nan
    order = np.argsort(listed)
    at = np.clip(np.searchsorted(listed[order], expiry), 0, listed.size - 1)
    found = listed[order][at] == expiry
    row = order[at]

    def column(name: str) -> FloatArray:
        values = np.asarray(surface[name].values, dtype=np.float64)[row]
        return np.where(found, values, np.nan)

    t, forward, discount = (
        column(schema.TIME_TO_EXPIRY),
        column(schema.FORWARD),
        column(schema.DISCOUNT_FACTOR),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (t > 0) & (forward > 0) & (discount > 0)
        t_safe = np.where(valid, t, 1.0)
        rate = np.where(valid, -np.log(np.where(valid, discount, 1.0)) / t_safe, np.nan)
        carry = np.where(valid, np.log(np.where(valid, forward, spot) / spot) / t_safe, np.nan)
    return np.where(valid, t, np.nan), rate, rate - carry


def chain_sensitivity_grid(
    chain: xr.Dataset,
    surface: xr.Dataset,
    *,
    spot_shifts: Sequence[float] = DEFAULT_SPOT_SHIFTS,
    vol_shifts: Sequence[float] = DEFAULT_VOL_SHIFTS,
    horizon_days: Sequence[float] = DEFAULT_HORIZON_DAYS,
    sticky: Sticky = "moneyness",
    dtype: npt.DTypeLike = np.float64,
) -> xr.Dataset:
    """:func:`~periscope.risk.sensitivity_grid` of every contract of a chain.

    Each contract takes its expiry's time to expiry, forward and discount factor from the
    surface (rate ``-ln(DF)/T``, carry yield ``rate - ln(F/S)/T``) and its volatility from
    :func:`surface_volatility`. Contracts whose expiry has no published slice (too few quotes,
    expired, not fitted) get NaN everywhere. The chain's contract coordinates (ticker, strike,
    expiry, right...) are kept, in the chain's order.

    Parameters
    ----------
    chain
        A canonical chain (``contract`` dimension).
    surface
        One underlying's surface (the chain must be of that underlying), or a stack of surfaces
        (``underlying`` dimension, as a run's ``surfaces`` group) for a chain of several
        underlyings: each contract is then valued on its own underlying's surface, and the
        contracts of an underlying without a stacked surface or without a spot (a failed fit)
        are NaN.
    spot_shifts, vol_shifts, horizon_days, sticky
        The scenario grid, as for :func:`~periscope.risk.sensitivity_grid`.
    dtype
        Float dtype of the grid variables and of ``volatility`` (``float32`` halves a stored
        grid; the pricing itself is float64).

    Returns
    -------
    xarray.Dataset
        As :func:`~periscope.risk.sensitivity_grid`, plus the chain's coordinates and
        ``time_to_expiry`` (contract). With one surface, ``shifted_spot`` is along
        ``spot_shift`` and the spot is the ``spot`` attribute; with a stack, ``shifted_spot``
        is (contract, spot_shift).

    Raises
    ------
    InvalidInputError
        One surface: the chain is of another underlying, or the surface has no spot. Either:
        a shift grid out of its domain, or an unknown ``sticky``.
    """
    stacked = schema.UNDERLYING in surface.dims
    names = np.asarray(chain[schema.UNDERLYING].values).astype(str)
    if not stacked:
        name = str(surface[schema.UNDERLYING].item())
        others = set(names.tolist()) - {name}
        if others:
            raise InvalidInputError(
                f"chain of {sorted(others | {name})} with the surface of {name}", underlying=name
            )
        spot = float(surface[schema.SPOT].item())
        if not (np.isfinite(spot) and spot > 0):
            raise InvalidInputError(f"the surface of {name} has no spot", underlying=name)
    ds_shift, dv_shift, days = check_grid(spot_shifts, vol_shifts, horizon_days, sticky)
    n = int(chain.sizes[CONTRACT])
    out_type = np.dtype(dtype)
    shape = (n, ds_shift.size, dv_shift.size, days.size)
    values = {name: np.full(shape, np.nan, dtype=out_type) for name in GRID_VARIABLES}
    vol_grid = np.full((n, ds_shift.size), np.nan, dtype=out_type)
    shifted = np.full((n, ds_shift.size), np.nan)
    time_to_expiry = np.full(n, np.nan)
    strike = np.asarray(chain[schema.STRIKE].values, dtype=np.float64)
    is_call = np.asarray(chain[schema.RIGHT].values).astype(str) == schema.CALL
    expiry = np.asarray(chain[schema.EXPIRY].values).astype("datetime64[ns]")
    position = (
        {str(u): i for i, u in enumerate(np.asarray(surface[schema.UNDERLYING].values))}
        if stacked
        else {}
    )
    # Contracts grouped by underlying (a stable sort keeps each group in chain order).
    order = np.argsort(names, kind="stable")
    bounds = np.flatnonzero(np.r_[True, names[order][1:] != names[order][:-1], True])
    for first, last in itertools.pairwise(bounds if n else []):
        index = order[first:last]
        name = str(names[index[0]])
        if stacked:
            if name not in position:
                continue
            one = surface.isel({schema.UNDERLYING: position[name]})
            spot = float(one[schema.SPOT].item())
            if not (np.isfinite(spot) and spot > 0):
                continue
        else:
            one = surface
        t, rate, carry_yield = _per_contract(one, expiry[index], spot)
        contiguous = bool(index[-1] - index[0] + 1 == index.size)
        part = slice(index[0], index[-1] + 1) if contiguous else index
        out = {name: values[name][part] for name in GRID_VARIABLES}
        vol_out = vol_grid[part]
        fill_grid(
            spot, strike[index], t, is_call[index], rate, carry_yield,
            surface_volatility(one), ds_shift, dv_shift, days, sticky, out, vol_out,
        )  # fmt: skip
        if not contiguous:  # fancy indexing copied: write back
            for name in GRID_VARIABLES:
                values[name][index] = out[name]
            vol_grid[index] = vol_out
        shifted[index] = spot * (1.0 + ds_shift)
        time_to_expiry[index] = t

    coords = {
        coord: (CONTRACT, np.asarray(chain[coord].values))
        for coord in schema.COORDS
        if coord in chain.coords
    }
    attrs: dict[str, Any] = {"model": MODEL, "sticky": sticky}
    if stacked:
        shifted_spot: tuple[Any, FloatArray] = ((CONTRACT, SPOT_SHIFT), shifted)
    else:
        shifted_spot = (SPOT_SHIFT, spot * (1.0 + ds_shift))
        attrs |= {"spot": spot, "underlying": str(surface[schema.UNDERLYING].item())}
    return grid_dataset(
        values,
        vol_grid,
        (ds_shift, dv_shift, days),
        shifted_spot=shifted_spot,
        attrs=attrs,
        coords=coords,
        data={"time_to_expiry": (CONTRACT, time_to_expiry, {"units": "years"})},
    )
