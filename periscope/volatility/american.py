"""Implied volatility of American options by bracketed inversion of the binomial tree.

This is the first step of de-Americanization (Burkovska et al., Quant. Finance 18(7), 2018): imply
σ from an American quote with the tree, then price the European at that σ for surface fitting.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from periscope._arrays import FloatArray, prepare_inputs
from periscope.pricing._kernels.binomial import american_iv_kernel
from periscope.pricing.binomial import (
    DEFAULT_STEPS,
    TreeMethod,
    check_dividends_below_spot,
    dividend_schedule,
    validate_steps,
)

__all__ = ["implied_volatility_american"]

DEFAULT_TOLERANCE = 1e-9
"""Absolute tolerance on the volatility (the bracket's half-width at the end)."""

_MAX_ITERATIONS = 100


@overload
def implied_volatility_american(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    steps: int = ...,
    method: TreeMethod = ...,
    dividends: npt.ArrayLike | None = ...,
    tolerance: float = ...,
    return_status: Literal[False] = ...,
) -> FloatArray: ...


@overload
def implied_volatility_american(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    steps: int = ...,
    method: TreeMethod = ...,
    dividends: npt.ArrayLike | None = ...,
    tolerance: float = ...,
    return_status: Literal[True],
) -> tuple[FloatArray, npt.NDArray[np.int64]]: ...


def implied_volatility_american(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    steps: int = DEFAULT_STEPS,
    method: TreeMethod = "leisen_reimer",
    dividends: npt.ArrayLike | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    return_status: bool = False,
) -> FloatArray | tuple[FloatArray, npt.NDArray[np.int64]]:
    """Volatility at which the American binomial tree reproduces ``price``.

    Parameters
    ----------
    price
        American option price ≥ 0 (currency units).
    spot, strike, time_to_expiry, rate, dividend_yield, is_call
        As in :func:`periscope.pricing.binomial_price`: S > 0, K > 0, T > 0 in years, decimal
        continuously compounded r and q.
    steps, method, dividends
        The tree used for pricing (:func:`periscope.pricing.binomial_price`, with its default
        Richardson extrapolation); ``dividends`` are ``(time, amount)`` cash dividends.
    tolerance
        Absolute tolerance on σ.
    return_status
        Also return an :class:`~periscope.volatility.status.IVStatus` code per element (as int64
        values; ``IVStatus(code)`` names them).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        σ (decimal, per √year) with the broadcast shape of the inputs, NaN where no volatility
        exists; with ``return_status`` also the status codes. ``BELOW_INTRINSIC``: the price is
        below the σ = 0 tree value (at least the exercise value). ``ABOVE_MAXIMUM``: not reached
        at σ = 1000%. ``INVALID_INPUT``: NaN, T ≤ 0, negative price, non-positive spot or strike.

    Notes
    -----
    The tree value increases with σ; Brent's method on [0, σ_hi] (σ_hi doubled from 50% until it
    brackets the price) keeps the root bracketed, so it always converges where a root exists.
    Each iteration prices a tree: about 15 trees per option.

    Examples
    --------
    >>> from periscope.pricing import binomial_price
    >>> p = binomial_price(100.0, 110.0, 0.5, 0.05, 0.0, 0.3, False)
    >>> round(float(implied_volatility_american(p, 100.0, 110.0, 0.5, 0.05, 0.0, False)), 8)
    0.3
    """
    n, leisen_reimer = validate_steps(steps, method, 1)
    prepared = prepare_inputs(
        {
            "price": price,
            "spot": spot,
            "strike": strike,
            "time_to_expiry": time_to_expiry,
            "rate": rate,
            "dividend_yield": dividend_yield,
        },
        {"is_call": is_call},
    )
    f = prepared.floats
    div_t, div_a = dividend_schedule(dividends)
    check_dividends_below_spot(div_t, div_a, f["spot"], f["time_to_expiry"], f["rate"])
    size = f["spot"].shape[0]
    volatility = np.empty(size)
    status = np.empty(size, dtype=np.int64)
    american_iv_kernel(
        f["price"], f["spot"], f["strike"], f["time_to_expiry"], f["rate"], f["dividend_yield"],
        prepared.flags["is_call"], n, leisen_reimer, False, True, div_t, div_a,
        float(tolerance), _MAX_ITERATIONS, volatility, status,
    )  # fmt: skip
    vols = prepared.reshape(volatility).astype(np.float64)
    if return_status:
        return vols, prepared.reshape(status).astype(np.int64)
    return vols
