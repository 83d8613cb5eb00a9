"""Black-Scholes-Merton and Black-76: textbook values, edge cases, input handling."""

from __future__ import annotations

import doctest
import math

import mpmath
import numpy as np
import pytest

import periscope.pricing
from periscope._numba import kernel
from periscope.errors import InvalidInputError
from periscope.pricing import (
    FirstOrderGreeks,
    Greeks,
    black_price,
    black_scholes_greeks,
    black_scholes_price,
)
from periscope.pricing import black as black_module
from periscope.pricing import black_scholes as black_scholes_module
from periscope.pricing._kernels import elementary

GREEK_NAMES = (
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "dividend_rho",
    "vanna",
    "volga",
    "charm",
    "veta",
    "speed",
    "zomma",
    "color",
)

# Haug, "Option Pricing Formulas" (1998), values as tabulated in QuantLib's
# test-suite/europeanoption.cpp (tolerance 1e-4 there). Columns: is_call, K, S, q, r, T, σ, value.
HAUG_PRICES = [
    (True, 65.0, 60.0, 0.00, 0.08, 0.25, 0.30, 2.1334),
    (False, 95.0, 100.0, 0.05, 0.10, 0.50, 0.20, 2.4648),
    # Black-76 futures option: q = r turns BSM into Black on F = S.
    (False, 19.0, 19.0, 0.10, 0.10, 0.75, 0.28, 1.7011),
    (True, 19.0, 19.0, 0.10, 0.10, 0.75, 0.28, 1.7011),
    # Garman-Kohlhagen currency option: q is the foreign rate.
    (True, 1.60, 1.56, 0.08, 0.06, 0.50, 0.12, 0.0291),
    (False, 70.0, 75.0, 0.05, 0.10, 0.50, 0.35, 4.0870),
    (True, 40.0, 42.0, 0.08, 0.04, 0.75, 0.35, 5.0975),
]

# Haug (1998) p. 24 grid: K = 100, q = r = 0.10; (T, σ, S, call, put).
HAUG_GRID = [
    (0.1, 0.15, 90.0, 0.0205, 9.9210),
    (0.1, 0.15, 100.0, 1.8734, 1.8734),
    (0.1, 0.15, 110.0, 9.9413, 0.0408),
    (0.1, 0.25, 90.0, 0.3150, 10.2155),
    (0.1, 0.25, 100.0, 3.1217, 3.1217),
    (0.1, 0.25, 110.0, 10.3556, 0.4551),
    (0.1, 0.35, 90.0, 0.9474, 10.8479),
    (0.1, 0.35, 100.0, 4.3693, 4.3693),
    (0.1, 0.35, 110.0, 11.1381, 1.2376),
    (0.5, 0.15, 90.0, 0.8069, 10.3192),
    (0.5, 0.15, 100.0, 4.0232, 4.0232),
    (0.5, 0.15, 110.0, 10.5769, 1.0646),
    (0.5, 0.25, 90.0, 2.7026, 12.2149),
    (0.5, 0.25, 100.0, 6.6997, 6.6997),
    (0.5, 0.25, 110.0, 12.7857, 3.2734),
    (0.5, 0.35, 90.0, 4.9329, 14.4452),
    (0.5, 0.35, 100.0, 9.3679, 9.3679),
    (0.5, 0.35, 110.0, 15.3086, 5.7963),
]

# Haug (1998) pp. 11-16 Greeks, via QuantLib's europeanoption.cpp (tolerance 1e-4);
# vega per 1.00 of volatility, theta per year. Columns: greek, is_call, K, S, q, r, T, σ, value.
HAUG_GREEKS = [
    ("delta", True, 100.0, 105.0, 0.10, 0.10, 0.5, 0.36, 0.5946),
    ("delta", False, 100.0, 105.0, 0.10, 0.10, 0.5, 0.36, -0.3566),
    ("gamma", True, 60.0, 55.0, 0.0, 0.10, 0.75, 0.30, 0.0278),
    ("gamma", False, 60.0, 55.0, 0.0, 0.10, 0.75, 0.30, 0.0278),
    ("vega", True, 60.0, 55.0, 0.0, 0.10, 0.75, 0.30, 18.9358),
    ("vega", False, 60.0, 55.0, 0.0, 0.10, 0.75, 0.30, 18.9358),
    ("theta", False, 405.0, 430.0, 0.05, 0.07, 1 / 12, 0.20, -31.1924),
    ("rho", True, 75.0, 72.0, 0.0, 0.09, 1.0, 0.19, 38.7325),
    ("dividend_rho", False, 490.0, 500.0, 0.05, 0.08, 0.25, 0.15, 42.2254),
]


@pytest.mark.parametrize(("is_call", "K", "S", "q", "r", "T", "sigma", "expected"), HAUG_PRICES)
def test_black_scholes_price__haug_reference_values(
    is_call: bool, K: float, S: float, q: float, r: float, T: float, sigma: float, expected: float
) -> None:
    assert black_scholes_price(S, K, T, r, q, sigma, is_call) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("T", "sigma", "S", "call", "put"), HAUG_GRID)
def test_black_scholes_price__haug_p24_grid(
    T: float, sigma: float, S: float, call: float, put: float
) -> None:
    prices = black_scholes_price(S, 100.0, T, 0.10, 0.10, sigma, [True, False])
    np.testing.assert_allclose(prices, [call, put], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("greek", "is_call", "K", "S", "q", "r", "T", "sigma", "expected"), HAUG_GREEKS
)
def test_black_scholes_greeks__haug_reference_values(
    greek: str,
    is_call: bool,
    K: float,
    S: float,
    q: float,
    r: float,
    T: float,
    sigma: float,
    expected: float,
) -> None:
    for order in (1, 3):
        greeks = black_scholes_greeks(S, K, T, r, q, sigma, is_call, order=order)  # type: ignore[call-overload]
        assert getattr(greeks, greek) == pytest.approx(expected, abs=1e-4)


def test_black_scholes_greeks__haug_elasticity() -> None:
    # Haug (1998) p. 13: put elasticity Δ S / V = -4.8775 (QuantLib europeanoption.cpp).
    g = black_scholes_greeks(105.0, 100.0, 0.5, 0.10, 0.10, 0.36, False)
    assert g.delta * 105.0 / g.price == pytest.approx(-4.8775, abs=1e-4)
    # Haug: theta per day is theta / 365 (QuantLib thetaPerDay).
    put = black_scholes_greeks(430.0, 405.0, 1 / 12, 0.07, 0.05, 0.20, False)
    assert put.theta / 365 == pytest.approx(-0.0855, abs=1e-4)


def test_black_scholes_price__hull_examples() -> None:
    # Hull, "Options, Futures, and Other Derivatives", BSM example: S = 42, K = 40, r = 10 %,
    # σ = 20 %, T = 0.5 -> call 4.76 (4.7594), put 0.81 (0.8086).
    prices = black_scholes_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, [True, False])
    np.testing.assert_allclose(prices, [4.7594, 0.8086], atol=1e-4, rtol=0)
    # Hull, index option: S = 810, K = 800, r = 5 %, q = 2 %, σ = 20 %, T = 0.5 -> 56.2761
    # (the BSM value quoted beside the two-step tree in quant.md 6.3).
    assert black_scholes_price(810.0, 800.0, 0.5, 0.05, 0.02, 0.20, True) == pytest.approx(
        56.2761, abs=1e-4
    )


def test_black_scholes_greeks__hull_example() -> None:
    # Hull, Greeks example: S = 49, K = 50, r = 5 %, σ = 20 %, T = 20/52 (call): 2.4005,
    # Δ 0.5216, Γ 0.0655, vega 12.1055 (per 1.00), Θ -4.3053/yr (-0.0118/day), ρ 8.9070.
    g = black_scholes_greeks(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.20, True)
    got = [g.price, g.delta, g.gamma, g.vega, g.theta, g.rho]
    np.testing.assert_allclose(got, [2.4005, 0.5216, 0.0655, 12.1055, -4.3053, 8.9070], atol=1e-4)
    assert g.theta / 365 == pytest.approx(-0.0118, abs=1e-4)


def test_black_price__haug_futures_option() -> None:
    # Haug (1998) Black-76 example, as in QuantLib europeanoption.cpp: F = K = 19, r = 10 %,
    # T = 0.75, σ = 28 % -> 1.7011 for both put and call.
    prices = black_price(19.0, 19.0, 0.75, math.exp(-0.075), 0.28, [True, False])
    np.testing.assert_allclose(prices, [1.7011, 1.7011], atol=1e-4, rtol=0)


def test_black_price__equals_black_scholes_on_the_forward() -> None:
    rng = np.random.default_rng(7)
    n = 1000
    S, K = rng.uniform(20, 200, n), rng.uniform(20, 200, n)
    T, r, q = rng.uniform(0, 3, n), rng.uniform(-0.01, 0.1, n), rng.uniform(0, 0.05, n)
    sigma, is_call = rng.uniform(0, 1, n), rng.random(n) < 0.5
    bsm = black_scholes_price(S, K, T, r, q, sigma, is_call)
    black = black_price(S * np.exp((r - q) * T), K, T, np.exp(-r * T), sigma, is_call)
    # The forward's rounding moves ln(F/K) by an ulp: relative 1e-12 with a floor of 1e-12 S.
    assert (np.abs(black - bsm) <= 1e-12 * np.maximum(np.abs(bsm), S)).all()


# Edge cases: (S, K, T, r, q, σ, is_call, expected price). NaN means "invalid element".
EDGE_CASES = {
    "expiry_call_in_the_money": (110.0, 100.0, 0.0, 0.05, 0.02, 0.2, True, 10.0),
    "expiry_put_in_the_money": (90.0, 100.0, 0.0, 0.05, 0.02, 0.2, False, 10.0),
    "expiry_call_out_of_the_money": (90.0, 100.0, 0.0, 0.05, 0.02, 0.2, True, 0.0),
    "expiry_at_the_money": (100.0, 100.0, 0.0, 0.05, 0.02, 0.2, True, 0.0),
    "zero_vol_call_forward_in_the_money": (
        100.0,
        100.0,
        1.0,
        0.05,
        0.0,
        0.0,
        True,
        100.0 - 100.0 * math.exp(-0.05),
    ),
    "zero_vol_put_forward_out_of_the_money": (100.0, 100.0, 1.0, 0.05, 0.0, 0.0, False, 0.0),
    "zero_vol_put_forward_in_the_money": (
        100.0,
        110.0,
        1.0,
        0.0,
        0.03,
        0.0,
        False,
        110.0 - 100.0 * math.exp(-0.03),
    ),
    "deep_in_the_money_call": (1000.0, 1.0, 1.0, 0.0, 0.0, 0.2, True, 999.0),
    # ln(K/S) = 6.9 at σ = 0.2: d1 = -34.4, the value 1.9e-262 is still resolved (QuantLib agrees).
    "deep_out_of_the_money_call": (1.0, 1000.0, 1.0, 0.0, 0.0, 0.2, True, 1.9109369780355e-262),
    "huge_volatility_call_is_the_discounted_spot": (
        100.0,
        100.0,
        1.0,
        0.05,
        0.02,
        1e4,
        True,
        100.0 * math.exp(-0.02),
    ),
    # QuantLib blackFormula(Call, 100, 100 e^{-0.01}, 0.2, e^{0.01}) = 7.513058243602447.
    "negative_rate": (100.0, 100.0, 1.0, -0.01, 0.0, 0.2, True, 7.513058243602447),
    "nan_spot": (math.nan, 100.0, 1.0, 0.05, 0.0, 0.2, True, math.nan),
    "nan_rate": (100.0, 100.0, 1.0, math.nan, 0.0, 0.2, True, math.nan),
    "infinite_strike": (100.0, math.inf, 1.0, 0.05, 0.0, 0.2, True, math.nan),
    "negative_volatility": (100.0, 100.0, 1.0, 0.05, 0.0, -0.2, True, math.nan),
    "negative_time": (100.0, 100.0, -1.0, 0.05, 0.0, 0.2, True, math.nan),
    "zero_spot": (0.0, 100.0, 1.0, 0.05, 0.0, 0.2, True, math.nan),
    "negative_strike": (100.0, -1.0, 1.0, 0.05, 0.0, 0.2, True, math.nan),
}


@pytest.mark.parametrize(
    ("S", "K", "T", "r", "q", "sigma", "is_call", "expected"),
    list(EDGE_CASES.values()),
    ids=list(EDGE_CASES),
)
def test_black_scholes_price__edge_cases(
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    sigma: float,
    is_call: bool,
    expected: float,
) -> None:
    price = black_scholes_price(S, K, T, r, q, sigma, is_call)
    if math.isnan(expected):
        assert np.isnan(price)
        greeks = black_scholes_greeks(S, K, T, r, q, sigma, is_call)
        assert all(np.isnan(getattr(greeks, name)) for name in ("price", *GREEK_NAMES))
    else:
        assert price == pytest.approx(expected, rel=1e-12, abs=0)
        greeks = black_scholes_greeks(S, K, T, r, q, sigma, is_call)
        assert greeks.price == pytest.approx(float(price), rel=1e-14, abs=0)


def test_black_scholes_price__one_bad_element_spoils_only_itself() -> None:
    sigma = np.array([0.2, np.nan, -0.1, 0.3])
    prices = black_scholes_price(100.0, 100.0, 1.0, 0.05, 0.0, sigma, True)
    assert np.isnan(prices[1:3]).all()
    expected = [black_scholes_price(100.0, 100.0, 1.0, 0.05, 0.0, s, True) for s in (0.2, 0.3)]
    np.testing.assert_array_equal(prices[[0, 3]], expected)


def test_black_scholes_greeks__expiry_limits() -> None:
    # At expiry: delta is the step (1/0 for a call, -1/0 for a put), ±0.5 exactly at the money;
    # the diverging Greeks are NaN at the money and 0 away from it.
    S = np.array([110.0, 90.0, 100.0])
    call = black_scholes_greeks(S, 100.0, 0.0, 0.05, 0.02, 0.2, True)
    put = black_scholes_greeks(S, 100.0, 0.0, 0.05, 0.02, 0.2, False)
    np.testing.assert_array_equal(call.delta, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(put.delta, [0.0, -1.0, -0.5])
    np.testing.assert_array_equal(call.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(call.gamma[:2], [0.0, 0.0])
    np.testing.assert_array_equal(call.vega, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(call.rho, [0.0, 0.0, 0.0])
    # In the money at expiry the value is S - K: theta = q S - r K, charm = q.
    assert call.theta[0] == pytest.approx(0.02 * 110 - 0.05 * 100)
    assert call.charm[0] == pytest.approx(0.02)
    assert put.theta[1] == pytest.approx(0.05 * 100 - 0.02 * 90)
    for name in ("gamma", "theta", "vanna", "volga", "charm", "veta", "speed", "zomma", "color"):
        assert np.isnan(getattr(call, name)[2]), name


def test_black_scholes_greeks__zero_volatility_is_deterministic() -> None:
    # σ = 0: the value is max(S e^{-qT} - K e^{-rT}, 0) and its derivatives.
    S, K, T, r, q = 100.0, 90.0, 2.0, 0.03, 0.01
    g = black_scholes_greeks(S, K, T, r, q, 0.0, True)
    a, b = S * math.exp(-q * T), K * math.exp(-r * T)
    assert g.price == pytest.approx(a - b, rel=1e-15)
    assert g.delta == pytest.approx(math.exp(-q * T), rel=1e-15)
    assert g.rho == pytest.approx(b * T, rel=1e-15)
    assert g.dividend_rho == pytest.approx(-a * T, rel=1e-15)
    assert g.theta == pytest.approx(q * a - r * b, rel=1e-14)
    # ... and the closed forms at a tiny volatility converge to it.
    tiny = black_scholes_greeks(S, K, T, r, q, 1e-6, True)
    for name in ("price", "delta", "rho", "dividend_rho", "theta", "charm", "gamma", "vega"):
        assert getattr(tiny, name) == pytest.approx(getattr(g, name), abs=1e-9), name
    # At the kink (forward == strike) vega is its finite limit S e^{-qT} √T φ(0).
    kink = black_scholes_greeks(100.0, 100.0, 1.0, 0.0, 0.0, 0.0, True)
    assert kink.vega == pytest.approx(100.0 / math.sqrt(2 * math.pi), rel=1e-15)
    assert kink.delta == 0.5


def test_black_scholes_price__shapes_broadcast() -> None:
    spot = np.linspace(80, 120, 6).reshape(2, 3)
    strike = np.array([[90.0], [110.0]])
    vol = np.array([0.1, 0.2, 0.3])
    prices = black_scholes_price(spot, strike, 1.0, 0.01, 0.0, vol, True)
    assert prices.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = black_scholes_price(spot[i, j], strike[i, 0], 1.0, 0.01, 0.0, vol[j], True)
            assert prices[i, j] == one
    greeks = black_scholes_greeks(spot, strike, 1.0, 0.01, 0.0, vol, True)
    assert all(getattr(greeks, name).shape == (2, 3) for name in GREEK_NAMES)


def test_black_scholes_price__zero_dimensional_and_empty() -> None:
    scalar = black_scholes_price(100, 100, 1, 0, 0, 0.2, 1)
    assert isinstance(scalar, np.ndarray)
    assert scalar.shape == ()
    assert scalar.dtype == np.float64
    empty = black_scholes_price(np.empty((0, 3)), 100.0, 1.0, 0.0, 0.0, 0.2, True)
    assert empty.shape == (0, 3)
    greeks = black_scholes_greeks(np.empty(0), 100.0, 1.0, 0.0, 0.0, 0.2, True)
    assert greeks.color.shape == (0,)
    assert black_price([], 100.0, 1.0, 1.0, 0.2, True).shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"strike": np.ones(3)}, "strike"),
        ({"volatility": np.ones((2, 3))}, "volatility"),
        ({"is_call": [True, False, True]}, "is_call"),
        ({"spot": "100"}, "spot"),
        ({"rate": ["a", "b"]}, "rate"),
        ({"dividend_yield": None}, "dividend_yield"),
        ({"is_call": 2}, "is_call"),
        ({"time_to_expiry": 1 + 1j}, "time_to_expiry"),
    ],
)
def test_black_scholes_price__bad_arguments_raise_naming_the_argument(
    kwargs: dict[str, object], argument: str
) -> None:
    arguments: dict[str, object] = {
        "spot": np.full(2, 100.0),
        "strike": 100.0,
        "time_to_expiry": 1.0,
        "rate": 0.0,
        "dividend_yield": 0.0,
        "volatility": 0.2,
        "is_call": True,
    } | kwargs
    for function in (black_scholes_price, black_scholes_greeks):
        with pytest.raises(InvalidInputError, match=argument) as info:
            function(**arguments)  # type: ignore[operator]
        assert info.value.context["argument"] == argument


def test_black_price__bad_arguments_raise_naming_the_argument() -> None:
    with pytest.raises(InvalidInputError, match="discount_factor"):
        black_price(np.full(2, 100.0), 100.0, 1.0, np.ones(3), 0.2, True)
    with pytest.raises(InvalidInputError, match="forward"):
        black_price("x", 100.0, 1.0, 1.0, 0.2, True)
    invalid = black_price([100.0, 100.0, -1.0], 100.0, 1.0, [0.0, 0.9, 0.9], 0.2, True)
    assert np.isnan(invalid[[0, 2]]).all()
    assert np.isfinite(invalid[1])


def test_black_scholes_greeks__order_option() -> None:
    args = (np.array([90.0, 110.0]), 100.0, 0.5, 0.03, 0.01, 0.25, [True, False])
    fast = black_scholes_greeks(*args, order=1)
    full = black_scholes_greeks(*args)
    assert type(fast) is FirstOrderGreeks
    assert type(full) is Greeks
    for name in ("price", "delta", "gamma", "vega", "theta", "rho", "dividend_rho"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(full, name))
    with pytest.raises(InvalidInputError, match="order"):
        black_scholes_greeks(*args, order=2)  # type: ignore[call-overload]


def test_norm_cdf__matches_mpmath_on_both_tails() -> None:
    mpmath.mp.dps = 40
    xs = np.concatenate([np.linspace(-37.5, 8.5, 2001), np.linspace(-1.0, 1.0, 201)])
    worst = 0.0
    for x in xs:
        exact = mpmath.ncdf(mpmath.mpf(float(x)))
        worst = max(worst, float(abs((elementary.norm_cdf(float(x)) - exact) / exact)))
    # Down to N(-37.5) = 5e-308 (below it results are subnormal and lose digits). φ's rounding
    # of x² costs about x²/4 ulps: 1e-13 at x = -37, 4e-15 inside |x| < 10.
    assert worst < 1e-13


def test_pricing__all_is_sorted_and_complete() -> None:
    names = periscope.pricing.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(periscope.pricing, name)


@pytest.mark.parametrize("module", [black_scholes_module, black_module])
def test_black_scholes_price__docstring_examples_run(module: object) -> None:
    failures, tried = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0


@kernel
def _exp_and_log(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.shape[0]):
        out[0, i] = elementary.exp_(x[i])
        out[1, i] = elementary.log_(abs(x[i]) + 1e-320)


def test_exp_and_log__within_two_ulp_of_mpmath() -> None:
    mpmath.mp.dps = 40
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-708, 709, 1500), rng.uniform(-2, 2, 500), [0.0, 1e-300]])
    out = np.empty((2, x.size))
    _exp_and_log(x, out)
    for value, e, lg in zip(x, out[0], out[1], strict=True):
        v = mpmath.mpf(float(value))
        assert abs(e - mpmath.exp(v)) <= 2 * np.spacing(float(mpmath.exp(v)))
        exact_log = mpmath.log(abs(v) + mpmath.mpf(1e-320))
        assert abs(lg - exact_log) <= 2 * np.spacing(abs(float(exact_log)))
    # Beyond the double range: overflow to inf, underflow flushed to 0.
    _exp_and_log(np.array([710.0, -710.0]), out[:, :2])
    assert out[0, 0] == np.inf
    assert out[0, 1] == 0.0
