"""Closed-form Black-Scholes-Merton prices and Greeks, and a CRR tree for American exercise.

These are the simulator's own vectorised NumPy formulas (the simulator must not depend on the
analytics it is used to test). Symbols: ``S`` spot, ``K`` strike, ``T`` years, ``r`` continuous
rate, ``q`` continuous dividend yield, ``σ`` volatility (decimal).

    d1 = (ln(S/K) + (r - q + σ²/2) T) / (σ √T),   d2 = d1 - σ √T
    call = S e^{-qT} N(d1) - K e^{-rT} N(d2),     put = K e^{-rT} N(-d2) - S e^{-qT} N(-d1)

(Hull, *Options, Futures and Other Derivatives*, 10th ed., §17.4.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_SQRT_2PI = np.sqrt(2.0 * np.pi)
# Contracts per block of the CRR node table (193 node prices x 8 bytes each), kept in cache.
_CRR_BLOCK = 256


def _d1_d2(
    spot: FloatArray,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    rate: FloatArray,
    dividend_yield: FloatArray,
    volatility: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    vol_sqrt_t = volatility * np.sqrt(np.maximum(time_to_expiry, 1e-12))
    d1 = (
        np.log(spot / strike) + (rate - dividend_yield + 0.5 * volatility**2) * time_to_expiry
    ) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t, vol_sqrt_t


def black_scholes_price(
    spot: FloatArray,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    rate: FloatArray,
    dividend_yield: FloatArray,
    volatility: FloatArray,
    is_call: BoolArray,
) -> FloatArray:
    """European price per share; intrinsic value (discounted) when ``time_to_expiry <= 0``."""
    d1, d2, _ = _d1_d2(spot, strike, time_to_expiry, rate, dividend_yield, volatility)
    fwd_disc = spot * np.exp(-dividend_yield * time_to_expiry)
    strike_disc = strike * np.exp(-rate * time_to_expiry)
    call = fwd_disc * ndtr(d1) - strike_disc * ndtr(d2)
    put = strike_disc * ndtr(-d2) - fwd_disc * ndtr(-d1)
    price = np.where(is_call, call, put)
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    return np.asarray(np.where(time_to_expiry > 0, price, intrinsic), dtype=np.float64)


def black_scholes_greeks(
    spot: FloatArray,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    rate: FloatArray,
    dividend_yield: FloatArray,
    volatility: FloatArray,
    is_call: BoolArray,
) -> dict[str, FloatArray]:
    """Delta, gamma (per $1), theta (per calendar day) and vega (per volatility point, 0.01)."""
    t = np.maximum(time_to_expiry, 1e-12)
    d1, d2, vol_sqrt_t = _d1_d2(spot, strike, t, rate, dividend_yield, volatility)
    q_disc = np.exp(-dividend_yield * t)
    r_disc = np.exp(-rate * t)
    pdf = np.exp(-0.5 * d1**2) / _SQRT_2PI
    delta = np.where(is_call, q_disc * ndtr(d1), -q_disc * ndtr(-d1))
    gamma = q_disc * pdf / (spot * vol_sqrt_t)
    vega = spot * q_disc * pdf * np.sqrt(t)
    common = -spot * q_disc * pdf * volatility / (2.0 * np.sqrt(t))
    theta_call = (
        common - rate * strike * r_disc * ndtr(d2) + dividend_yield * spot * q_disc * ndtr(d1)
    )
    theta_put = (
        common + rate * strike * r_disc * ndtr(-d2) - dividend_yield * spot * q_disc * ndtr(-d1)
    )
    theta = np.where(is_call, theta_call, theta_put)
    return {"delta": delta, "gamma": gamma, "theta": theta / 365.0, "vega": vega / 100.0}


def american_crr_price(
    spot: FloatArray,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    rate: FloatArray,
    dividend_yield: FloatArray,
    volatility: FloatArray,
    is_call: BoolArray,
    dividend_pv: FloatArray | None = None,
    steps: int = 96,
) -> FloatArray:
    """American price per share on a Cox-Ross-Rubinstein tree, vectorised over contracts.

    Discrete cash dividends use the escrowed-dividend model: the tree runs on
    ``spot - dividend_pv`` (the present value of the dividends paid before expiry, per contract)
    and the exercise value at a node adds back the part of that present value still unpaid,
    assumed to accrue linearly in time (an approximation good to well inside a bid/ask spread).

    The node prices ``base · u^k`` (k = -steps..steps) are computed once per contract by NumPy
    (a node of step ``i`` is ``k = 2j - i``: the same product and exponential the whole-array
    roll-back computed per step), over blocks of contracts that stay in cache; the roll-back
    itself is a numba kernel doing the same IEEE operations in the same order, so the prices are
    bit for bit those of the NumPy roll-back the market's ground truth was computed with.
    """
    # Imported on first use: numba's import (about a second) stays off the simulator's start-up.
    from periscope.simulator._kernels import crr_rollback

    n = spot.shape[0]
    if n == 0:
        return np.zeros(0)
    pv = np.zeros(n) if dividend_pv is None else dividend_pv
    t = np.maximum(time_to_expiry, 1e-10)
    dt = t / steps
    u = np.exp(volatility * np.sqrt(dt))
    d = 1.0 / u
    growth = np.exp((rate - dividend_yield) * dt)
    p = np.clip((growth - d) / (u - d), 0.0, 1.0)
    down = 1 - p
    disc = np.exp(-rate * dt)
    sign = np.where(is_call, 1.0, -1.0)
    base = spot - pv
    log_u = np.log(u)
    powers = np.arange(-steps, steps + 1, dtype=np.float64)
    price = np.empty(n)
    for lo in range(0, n, _CRR_BLOCK):
        block = slice(lo, min(lo + _CRR_BLOCK, n))
        # nodes[c, k + steps] = base u^k of contract c
        nodes = base[block, None] * np.exp(log_u[block, None] * powers)
        crr_rollback(
            nodes,
            strike[block],
            p[block],
            down[block],
            disc[block],
            sign[block],
            pv[block],
            steps,
            price[block],
        )
    intrinsic = np.maximum(sign * (spot - strike), 0.0)
    return np.asarray(np.where(time_to_expiry > 0, price, intrinsic), dtype=np.float64)
