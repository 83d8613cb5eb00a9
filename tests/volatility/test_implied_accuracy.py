"""Implied volatility against an exact Black formula (mpmath, 40 digits).

The rule for "the price carries information about the volatility": a price known to rounding
(half an ulp, ``EPS/2`` relative) pins the volatility down to ``EPS/2 * kappa`` relative, with
``kappa = price / (sigma * dprice/dsigma)``. Where ``kappa <= 100`` (rounding moves the
volatility by at most ~1e-14) the solver must be within 1e-12; everywhere it must be within
``1e-13 + 16 EPS kappa``, i.e. as accurate as the input allows. The round trip
price -> volatility -> exact price must come back within ``1e-14 * max(1, 1/kappa)`` relative
(``1/kappa`` is the price's elasticity to volatility: one ulp of volatility moves a deep
out-of-the-money price by that many ulps).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from periscope.volatility import IVStatus, implied_volatility_black
from periscope.volatility._normalized_black import (
    CODY_ASYMPTOTIC_Y,
    CODY_SMALL_Y,
    TAU,
    erfcx,
    normalized_black_otm_call,
)

mp.mp.dps = 40
EPS = 2.220446049250313e-16


def _exact_price(F: float, K: float, T: float, D: float, sigma: float, is_call: bool) -> object:
    F_, K_, D_ = mp.mpf(F), mp.mpf(K), mp.mpf(D)
    s = mp.mpf(sigma) * mp.sqrt(mp.mpf(T))
    d1 = mp.log(F_ / K_) / s + s / 2
    d2 = d1 - s
    theta = 1 if is_call else -1
    return D_ * theta * (F_ * mp.ncdf(theta * d1) - K_ * mp.ncdf(theta * d2))


def _kappa(F: float, K: float, T: float, D: float, sigma: float, price: float) -> float:
    """price / (sigma * vega): relative volatility change per relative price change."""
    s = sigma * math.sqrt(T)
    h = math.log(F / K) / s
    sigma_vega = D * math.sqrt(F * K) * s * math.exp(-0.5 * (h * h + 0.25 * s * s))
    sigma_vega /= math.sqrt(2.0 * math.pi)
    return price / sigma_vega if sigma_vega > 0.0 else math.inf


def _check_one(F: float, K: float, T: float, D: float, sigma: float, is_call: bool) -> float:
    """Invert the exact price; assert accuracy and round trip; return the relative error."""
    exact = _exact_price(F, K, T, D, sigma, is_call)
    price = float(exact)
    vol, status = implied_volatility_black(price, F, K, T, D, is_call, return_status=True)
    assert status == IVStatus.OK, (F, K, T, D, sigma, is_call, price)
    vol = float(vol)
    kappa = _kappa(F, K, T, D, sigma, price)
    error = abs(vol / sigma - 1.0)
    assert error <= 1e-13 + 16.0 * EPS * kappa, (F, K, T, D, sigma, is_call, kappa, error)
    if kappa <= 100.0:
        assert error <= 1e-12
    back = _exact_price(F, K, T, D, vol, is_call)
    round_trip = float(abs(back / mp.mpf(price) - 1))
    assert round_trip <= 1e-14 * max(1.0, 1.0 / kappa), (F, K, T, D, sigma, round_trip, kappa)
    return error


def test_normalized_black__matches_mpmath_in_every_region() -> None:
    # Each of the four forms (asymptotic, small t, CDF difference, erfcx) against the exact
    # value; the bound allows the inherent conditioning 1 + h^2 of b in its inputs.
    rng = np.random.default_rng(3)
    regions = set()
    for _ in range(2000):
        x = -(10.0 ** rng.uniform(-10.0, 1.5))
        s = 10.0 ** rng.uniform(-3.0, 1.5)
        exact = mp.exp(mp.mpf(x) / 2) * mp.ncdf(mp.mpf(x) / s + mp.mpf(s) / 2) - mp.exp(
            -mp.mpf(x) / 2
        ) * mp.ncdf(mp.mpf(x) / s - mp.mpf(s) / 2)
        if exact < mp.mpf("1e-300"):
            continue
        h, t = x / s, s / 2
        regions.add((h < -10 and h + t < -10 + TAU, t < TAU, h + t > 0.85))
        value = normalized_black_otm_call(x, s)
        assert float(abs(value / exact - 1)) <= 8.0 * EPS * (1.0 + h * h), (x, s)
    assert len(regions) >= 4


def test_implied_volatility_black__exact_inverse_on_a_wide_grid() -> None:
    rng = np.random.default_rng(17)
    checked = informative = 0
    worst = 0.0
    for _ in range(1200):
        F = 10.0 ** rng.uniform(-2.0, 4.0)
        K = F * math.exp(rng.uniform(-5.0, 5.0))
        T = 10.0 ** rng.uniform(-4.0, math.log10(30.0))
        sigma = 10.0 ** rng.uniform(-2.0, math.log10(5.0))
        D = rng.uniform(0.3, 1.2)
        is_call = bool(rng.random() < 0.5)
        price = float(_exact_price(F, K, T, D, sigma, is_call))
        intrinsic = D * max((F - K) if is_call else (K - F), 0.0)
        bound = D * (F if is_call else K)
        if not (intrinsic < price < bound and price > 1e-300):
            continue  # underflow to 0, or rounded onto a bound: no volatility in the number
        error = _check_one(F, K, T, D, sigma, is_call)
        checked += 1
        if _kappa(F, K, T, D, sigma, price) <= 100.0:
            informative += 1
            worst = max(worst, error)
    assert checked > 450
    assert informative > 300
    assert worst <= 1e-12


@pytest.mark.parametrize("log_moneyness", [-1.0, -5.0, -20.0, 1.0, 5.0, 20.0])
@pytest.mark.parametrize("target", ["1e-300", "1e-200", "1e-100", "1e-30"])
def test_implied_volatility_black__deep_out_of_the_money_tiny_prices(
    log_moneyness: float, target: str
) -> None:
    # F = 1, K = F e^{-x}: x < 0 is an out-of-the-money call, x > 0 an out-of-the-money put;
    # the volatility giving exactly the target price is solved for in 40 digits.
    F, T, D = 1.0, 1.0, 1.0
    K = math.exp(-log_moneyness)
    is_call = log_moneyness < 0
    goal = mp.log(mp.mpf(target))
    guess = abs(log_moneyness) / math.sqrt(-2.0 * float(goal))
    sigma_mp = mp.findroot(
        lambda v: mp.log(_exact_price(F, K, T, D, v, is_call)) - goal,
        (0.3 * guess, 3.0 * guess),
        solver="illinois",
    )
    sigma = float(sigma_mp)
    price = float(_exact_price(F, K, T, D, sigma, is_call))
    assert 1e-301 < price < 1e-29
    _check_one(F, K, T, D, sigma, is_call)


@pytest.mark.parametrize("T", [1e-6, 1e-8, 1e-10, 1e-12])
@pytest.mark.parametrize("moneyness", [-1.0, -0.2, 0.0, 0.2, 1.0])
@pytest.mark.parametrize("is_call", [True, False])
def test_implied_volatility_black__very_short_expiries(
    T: float, moneyness: float, is_call: bool
) -> None:
    # Strikes within a standard deviation or so of the forward, so the time value is visible.
    sigma = 0.3
    F = 100.0
    K = F * math.exp(moneyness * sigma * math.sqrt(T))
    _check_one(F, K, T, 1.0, sigma, is_call)


@pytest.mark.parametrize("moneyness", [2.0, 4.0, 6.0])
@pytest.mark.parametrize("is_call", [True, False])
def test_implied_volatility_black__in_the_money_through_parity(
    moneyness: float, is_call: bool
) -> None:
    # Deep in the money by `moneyness` standard deviations: only the time value is inverted.
    sigma, T, F = 0.25, 0.5, 100.0
    shift = moneyness * sigma * math.sqrt(T)
    K = F * math.exp(-shift if is_call else shift)
    _check_one(F, K, T, 0.97, sigma, is_call)


@settings(max_examples=150, deadline=None)
@given(
    log_moneyness=st.floats(-5.0, 5.0),
    log10_time=st.floats(-4.0, math.log10(30.0)),
    sigma=st.floats(0.01, 5.0),
    discount=st.floats(0.5, 1.0),
    is_call=st.booleans(),
)
def test_implied_volatility_black__round_trip_property(
    log_moneyness: float, log10_time: float, sigma: float, discount: float, is_call: bool
) -> None:
    F = 100.0
    K = F * math.exp(-log_moneyness)
    T = 10.0**log10_time
    price = float(_exact_price(F, K, T, discount, sigma, is_call))
    intrinsic = discount * max((F - K) if is_call else (K - F), 0.0)
    bound = discount * (F if is_call else K)
    # The rule (module docstring): the price must hold a time value at all (not underflowed,
    # not rounded onto intrinsic or the upper bound); accuracy is then scaled by kappa.
    assume(intrinsic < price < bound and price > 1e-300)
    _check_one(F, K, T, discount, sigma, is_call)


def test_erfcx__matches_mpmath_in_each_of_codys_intervals() -> None:
    # Cody's rational forms (small |y| through erf, 0.46875 < y <= 4, y > 4 in 1/y^2) and the
    # reflection for negative y, each against exp(y^2) erfc(y) in 40 digits: a few ulps.
    rng = np.random.default_rng(11)
    pieces = {
        "reflection": rng.uniform(-6.0, -CODY_SMALL_Y, 300),
        "erf": rng.uniform(-CODY_SMALL_Y, CODY_SMALL_Y, 300),
        "rational": rng.uniform(CODY_SMALL_Y, CODY_ASYMPTOTIC_Y, 600),
        "asymptotic": 10.0 ** rng.uniform(math.log10(CODY_ASYMPTOTIC_Y), 150.0, 300),
    }
    edges = [0.0, CODY_SMALL_Y, -CODY_SMALL_Y, CODY_ASYMPTOTIC_Y]
    for name, ys in pieces.items():
        worst = 0.0
        for y in [*ys.tolist(), *edges]:
            exact = mp.exp(mp.mpf(y) ** 2) * mp.erfc(mp.mpf(y))
            worst = max(worst, float(abs(erfcx(y) / exact - 1)) / EPS)
        assert worst <= 4.0, (name, worst)
