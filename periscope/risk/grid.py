"""Sensitivity grids: price and Greeks of every contract over spot x volatility x horizon shifts.

The model is Black-Scholes-Merton on each contract's forward: ``dividend_yield`` is the
continuous carry that reproduces the fitted forward of the contract's expiry (so discrete cash
dividends enter through the forward), and volatilities come from a fitted surface through a
:data:`VolatilityFunction`. American contracts are valued with this European approximation; the
early-exercise premium is ignored (small for out-of-the-money options, which dominate a chain, and
for calls on names without dividends; it understates deep in-the-money puts). The binomial engine
(:func:`periscope.pricing.binomial_price`) is the accurate alternative when a grid must carry it.

Smile dynamics under a spot shift ``s`` (``S' = S (1 + s)``):

- ``"sticky-strike"``: each contract keeps the volatility of its strike; the surface is read at
  the log-moneyness ``ln(K / F)`` of the unshifted forward ``F``.
- ``"sticky-moneyness"``: the smile moves with the spot; the surface is read at
  ``ln(K / F')`` with the shifted forward ``F' = F (1 + s)``: after a rally a fixed strike sits
  lower on the smile, so under a negative skew its volatility rises.

A volatility shift ``v`` is added to that volatility (floored at zero). A horizon of ``h`` days
values each contract ``h/365`` years later with the same spot shift and the volatility of its own
expiry slice (the surface does not roll down); a contract that expires before the horizon is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope.errors import InvalidInputError
from periscope.pricing import black_scholes_greeks

FloatArray = npt.NDArray[np.float64]
# (log_moneyness, time_to_expiry) -> implied volatility, both float arrays of one shape.
VolatilityFunction = Callable[[FloatArray, FloatArray], FloatArray]
Sticky = Literal["strike", "moneyness"]

CONTRACT = "contract"
SPOT_SHIFT = "spot_shift"
VOL_SHIFT = "vol_shift"
HORIZON = "horizon"
GRID_VARIABLES = ("price", "delta", "gamma", "vega", "theta", "pnl")
GRID_ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "price": {"units": "quote currency per share"},
    "delta": {"units": "1 per unit of underlying price"},
    "gamma": {"units": "1 per unit of underlying price squared"},
    "vega": {"units": "quote currency per share per 1.00 volatility"},
    "theta": {"units": "quote currency per share per year"},
    "pnl": {"units": "quote currency per share", "description": "price minus price now"},
}
MODEL = "Black-Scholes-Merton on the fitted forward (European approximation)"
# Contracts priced per call of the pricer: 2,048 x 63 scenarios keeps its float64 inputs and
# outputs (14 values a scenario) near 15 MB, in cache-friendly pieces, for any chain size.
BLOCK_CONTRACTS = 2048
_DAYS_PER_YEAR = 365.0

DEFAULT_SPOT_SHIFTS = (-0.10, -0.05, -0.02, 0.0, 0.02, 0.05, 0.10)
DEFAULT_VOL_SHIFTS = (-0.05, 0.0, 0.05)
DEFAULT_HORIZON_DAYS = (0.0, 1.0, 7.0)


def _vector(name: str, values: npt.ArrayLike, size: int | None = None) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 and size is not None:
        array = np.full(size, float(array))
    if array.ndim != 1 or (size is not None and array.size != size):
        expected = f"({size},)" if size is not None else "1-d"
        raise InvalidInputError(f"{name} must have shape {expected}, got {array.shape}", name=name)
    return array


def check_grid(
    spot_shifts: Sequence[float],
    vol_shifts: Sequence[float],
    horizon_days: Sequence[float],
    sticky: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The three shift vectors as float64 arrays, checked (see :func:`sensitivity_grid`)."""
    if sticky not in ("strike", "moneyness"):
        raise InvalidInputError(f"sticky must be 'strike' or 'moneyness', got {sticky!r}")
    ds_shift = _vector("spot_shifts", spot_shifts)
    dv_shift = _vector("vol_shifts", vol_shifts)
    days = _vector("horizon_days", horizon_days)
    if not (ds_shift.size and dv_shift.size and days.size):
        raise InvalidInputError("every shift grid needs at least one point")
    if np.any(ds_shift <= -1.0) or np.any(days < 0) or not np.all(np.isfinite(days)):
        raise InvalidInputError("spot shifts must be > -1 and horizons finite and >= 0")
    return ds_shift, dv_shift, days


def sensitivity_grid(
    spot: float,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    is_call: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: VolatilityFunction,
    *,
    spot_shifts: Sequence[float] = DEFAULT_SPOT_SHIFTS,
    vol_shifts: Sequence[float] = DEFAULT_VOL_SHIFTS,
    horizon_days: Sequence[float] = DEFAULT_HORIZON_DAYS,
    sticky: Sticky = "moneyness",
) -> xr.Dataset:
    """Price, delta, gamma, vega, theta and P&L of contracts over a scenario grid.

    Parameters
    ----------
    spot
        Price of the underlying now, > 0.
    strike, time_to_expiry, is_call
        One element per contract: strike (> 0), years to expiry now (> 0), call or put.
    rate, dividend_yield
        Continuously compounded rate and carry yield per contract (or scalars), decimals. The
        carry reproduces the contract's forward, ``F = S exp((rate - dividend_yield) T)``.
    volatility
        The fitted surface: implied volatility at (log-moneyness ``ln(K/F)``, time to expiry).
    spot_shifts
        Relative spot shifts (``0.05`` = +5 %), each > -1.
    vol_shifts
        Additive volatility shifts (decimals: ``0.01`` = one vol point).
    horizon_days
        Calendar days forward, >= 0.
    sticky
        ``"moneyness"`` (default) or ``"strike"``: see the module docstring.

    Returns
    -------
    xarray.Dataset
        Dimensions ``contract``, ``spot_shift``, ``vol_shift``, ``horizon``; variables
        ``price``, ``delta``, ``gamma``, ``vega`` (per 1.00 of volatility), ``theta`` (per year)
        and ``pnl`` (price minus the unshifted price now), float64; coordinates ``spot_shift``,
        ``vol_shift``, ``horizon`` (days), ``shifted_spot`` (along ``spot_shift``) and
        ``volatility`` (contract x spot_shift: the surface volatility before the vol shift).
        Contracts expired before a horizon are NaN there.

    Raises
    ------
    InvalidInputError
        Shapes differ, a shift grid is empty or out of its domain, or ``sticky`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> flat = lambda k, t: np.full_like(k, 0.2)
    >>> grid = sensitivity_grid(100.0, [100.0], [0.5], [True], 0.03, 0.0, flat,
    ...                         spot_shifts=[0.0], vol_shifts=[0.0], horizon_days=[0.0])
    >>> round(float(grid["price"].squeeze()), 4)
    6.371
    """
    ds_shift, dv_shift, days = check_grid(spot_shifts, vol_shifts, horizon_days, sticky)
    if not np.isfinite(spot) or spot <= 0:
        raise InvalidInputError(f"spot must be finite and > 0, got {spot!r}", name="spot")
    k = _vector("strike", strike)
    n = k.size
    t = _vector("time_to_expiry", time_to_expiry, n)
    call = np.asarray(is_call, dtype=bool)
    if call.shape != (n,):
        raise InvalidInputError(f"is_call must have shape ({n},), got {call.shape}")
    r = _vector("rate", rate, n)
    q = _vector("dividend_yield", dividend_yield, n)

    shifted_spot = spot * (1.0 + ds_shift)  # (a,)
    shape = (n, ds_shift.size, dv_shift.size, days.size)
    values = {name: np.empty(shape) for name in GRID_VARIABLES}
    surface_vol = np.empty((n, ds_shift.size))
    fill_grid(
        spot, k, t, call, r, q, volatility, ds_shift, dv_shift, days, sticky, values, surface_vol
    )
    return grid_dataset(
        values,
        surface_vol,
        (ds_shift, dv_shift, days),
        shifted_spot=(SPOT_SHIFT, shifted_spot),
        attrs={"model": MODEL, "sticky": sticky, "spot": float(spot)},
    )


def grid_dataset(
    values: Mapping[str, npt.NDArray[np.float64]],
    surface_vol: npt.NDArray[np.float64],
    shifts: tuple[FloatArray, FloatArray, FloatArray],
    *,
    shifted_spot: tuple[Any, npt.NDArray[np.float64]],
    attrs: Mapping[str, Any],
    coords: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The grid Dataset of filled ``values`` (:func:`fill_grid`'s outputs) and the surface
    volatility of each (contract, spot shift), over ``shifts`` (spot, volatility, days).

    ``shifted_spot`` is the coordinate as ``(dims, values)``; ``coords`` and ``data`` add
    per-contract coordinates and variables.
    """
    ds_shift, dv_shift, days = shifts
    dims = (CONTRACT, SPOT_SHIFT, VOL_SHIFT, HORIZON)
    variables = {name: (dims, values[name], dict(GRID_ATTRIBUTES[name])) for name in GRID_VARIABLES}
    return xr.Dataset(
        variables | dict(data or {}),
        coords={
            SPOT_SHIFT: (SPOT_SHIFT, ds_shift, {"units": "1 (relative)"}),
            VOL_SHIFT: (VOL_SHIFT, dv_shift, {"units": "1 (decimal volatility, additive)"}),
            HORIZON: (HORIZON, days, {"units": "calendar days"}),
            "shifted_spot": shifted_spot,
            "volatility": ((CONTRACT, SPOT_SHIFT), surface_vol),
        }
        | dict(coords or {}),
        attrs=dict(attrs),
    )


def fill_grid(
    spot: float,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    is_call: npt.NDArray[np.bool_],
    rate: FloatArray,
    dividend_yield: FloatArray,
    volatility: VolatilityFunction,
    spot_shifts: FloatArray,
    vol_shifts: FloatArray,
    horizon_days: FloatArray,
    sticky: Sticky,
    out: Mapping[str, npt.NDArray[np.floating[Any]]],
    volatility_out: npt.NDArray[np.floating[Any]],
    *,
    block: int = BLOCK_CONTRACTS,
) -> None:
    """The grid of :func:`sensitivity_grid` written into preallocated arrays, block by block.

    Inputs are validated 1-d float64 arrays of ``n`` contracts (``is_call`` boolean) and the
    three shift vectors; ``out`` maps every name of :data:`GRID_VARIABLES` to an array of shape
    ``(n, spot_shifts, vol_shifts, horizons)`` of any float dtype (float32 halves a stored
    grid), ``volatility_out`` is ``(n, spot_shifts)``. Contracts are priced ``block`` at a
    time, so the float64 temporaries of the pricer (about 14 values per scenario) stay a few
    megabytes whatever the chain's size.
    """
    n = strike.size
    a, v, h = spot_shifts.size, vol_shifts.size, horizon_days.size
    shifted_spot = spot * (1.0 + spot_shifts)
    for start in range(0, n, max(1, block)):
        stop = min(start + block, n)
        k, t = strike[start:stop], time_to_expiry[start:stop]
        r, q, call = rate[start:stop], dividend_yield[start:stop], is_call[start:stop]
        b = k.size
        forward = spot * np.exp((r - q) * t)  # (b,)
        # Volatility of each contract per spot shift, read on its own expiry slice.
        if sticky == "strike":
            k_read = np.repeat(np.log(k / forward)[:, None], a, axis=1)
        else:
            k_read = np.log(k[:, None] / (forward[:, None] * (1.0 + spot_shifts[None, :])))
        t_read = np.repeat(t[:, None], a, axis=1)
        surface_vol = np.asarray(volatility(k_read, t_read), dtype=np.float64).reshape(b, a)
        volatility_out[start:stop] = surface_vol

        shape = (b, a, v, h)
        sigma = np.maximum(surface_vol[:, :, None, None] + vol_shifts[None, None, :, None], 0.0)
        remaining = t[:, None, None, None] - horizon_days[None, None, None, :] / _DAYS_PER_YEAR
        with np.errstate(invalid="ignore"):
            alive = remaining >= 0.0
        greeks = black_scholes_greeks(
            np.broadcast_to(shifted_spot[None, :, None, None], shape),
            np.broadcast_to(k[:, None, None, None], shape),
            np.broadcast_to(np.where(alive, remaining, np.nan), shape),
            np.broadcast_to(r[:, None, None, None], shape),
            np.broadcast_to(q[:, None, None, None], shape),
            np.broadcast_to(sigma, shape),
            np.broadcast_to(call[:, None, None, None], shape),
            order=1,
        )
        base_vol = np.asarray(volatility(np.log(k / forward), t), dtype=np.float64).reshape(b)
        base = black_scholes_greeks(spot, k, t, r, q, base_vol, call, order=1).price
        out["price"][start:stop] = greeks.price
        out["delta"][start:stop] = greeks.delta
        out["gamma"][start:stop] = greeks.gamma
        out["vega"][start:stop] = greeks.vega
        out["theta"][start:stop] = greeks.theta
        out["pnl"][start:stop] = greeks.price - base[:, None, None, None]
