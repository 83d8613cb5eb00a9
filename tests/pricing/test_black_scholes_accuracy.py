"""Every Greek against finite differences of the price, and deep tails against mpmath.

Two references: (1) mpmath at 30 digits, its `diff` taking central differences of a
high-precision BSM price, so each Greek (third order included) is checked to 1e-9; (2) plain
float64 central differences of Periscope's own price and lower Greeks over a random grid, which
checks the closed forms against each other with step-size-limited tolerances.
"""

from __future__ import annotations

from typing import Any

import mpmath as mp
import numpy as np
import numpy.typing as npt
import pytest

from periscope.pricing import black_scholes_greeks, black_scholes_price

# Greek -> (variables, orders) of the derivative of the price; t is calendar time (= -T).
DERIVATIVES = {
    "delta": (("S",), (1,)),
    "gamma": (("S",), (2,)),
    "speed": (("S",), (3,)),
    "vega": (("sigma",), (1,)),
    "volga": (("sigma",), (2,)),
    "vanna": (("S", "sigma"), (1, 1)),
    "zomma": (("S", "sigma"), (2, 1)),
    "theta": (("t",), (1,)),
    "charm": (("S", "t"), (1, 1)),
    "veta": (("sigma", "t"), (1, 1)),
    "color": (("S", "t"), (2, 1)),
    "rho": (("r",), (1,)),
    "dividend_rho": (("q",), (1,)),
}


def _mp_price(S: Any, K: Any, T: Any, r: Any, q: Any, sigma: Any, is_call: bool) -> Any:
    w = sigma * mp.sqrt(T)
    d1 = (mp.log(S / K) + (r - q) * T) / w + w / 2
    d2 = d1 - w
    omega = 1 if is_call else -1
    return omega * (
        S * mp.exp(-q * T) * mp.ncdf(omega * d1) - K * mp.exp(-r * T) * mp.ncdf(omega * d2)
    )


def _cases() -> list[tuple[float, float, float, float, float, float, bool]]:
    rng = np.random.default_rng(11)
    cases = []
    for _ in range(16):
        S = float(rng.uniform(20, 200))
        T = float(np.exp(rng.uniform(np.log(0.02), np.log(5))))
        sigma = float(rng.uniform(0.05, 1.0))
        K = float(S * np.exp(rng.uniform(-1.5, 1.5) * sigma * np.sqrt(T)))
        r, q = float(rng.uniform(-0.01, 0.1)), float(rng.uniform(0, 0.06))
        cases.append((S, K, T, r, q, sigma, bool(rng.random() < 0.5)))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_black_scholes_greeks__match_high_precision_finite_differences(
    case: tuple[float, float, float, float, float, float, bool],
) -> None:
    S, K, T, r, q, sigma, is_call = case
    greeks = black_scholes_greeks(S, K, T, r, q, sigma, is_call)
    with mp.workdps(30):
        point = {
            name: mp.mpf(v)
            for name, v in zip(("S", "t", "r", "q", "sigma"), (S, -T, r, q, sigma), strict=True)
        }

        def price(*values: Any) -> Any:
            x = dict(zip(point, values, strict=True))
            return _mp_price(x["S"], mp.mpf(K), -x["t"], x["r"], x["q"], x["sigma"], is_call)

        assert float(greeks.price) == pytest.approx(float(price(*point.values())), rel=1e-12)
        names = list(point)
        for greek, (variables, orders) in DERIVATIVES.items():
            n = [0] * len(names)
            for variable, order in zip(variables, orders, strict=True):
                n[names.index(variable)] = order
            exact = float(mp.diff(price, tuple(point.values()), tuple(n)))
            ours = float(getattr(greeks, greek))
            # Relative 1e-9, with a floor of 1e-12 in the Greek's scale for values near zero.
            assert ours == pytest.approx(exact, rel=1e-9, abs=1e-12 * max(1.0, abs(S))), greek


def test_black_scholes_price__deep_out_of_the_money_relative_accuracy() -> None:
    # Far tails: the value is a difference of two tiny legs; erfc-accurate N keeps each leg's
    # relative accuracy, so the error is bounded by the cancellation factor (legs / value).
    rng = np.random.default_rng(5)
    with mp.workdps(40):
        for _ in range(200):
            S, T, sigma = 100.0, float(rng.uniform(0.05, 2)), float(rng.uniform(0.1, 0.6))
            z = float(rng.uniform(3, 30))  # standard deviations out of the money
            is_call = bool(rng.random() < 0.5)
            K = S * float(np.exp((1 if is_call else -1) * z * sigma * np.sqrt(T)))
            ours = float(black_scholes_price(S, K, T, 0.02, 0.01, sigma, is_call))
            exact = _mp_price(
                mp.mpf(S), mp.mpf(K), mp.mpf(T), mp.mpf(0.02), mp.mpf(0.01), mp.mpf(sigma), is_call
            )
            assert exact > 0
            assert abs(ours - float(exact)) <= 1e-13 * float(exact) * max(1.0, z * z), (
                S,
                K,
                T,
                sigma,
            )


def _grid(n: int) -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(3)
    S = rng.uniform(50, 150, n)
    T = rng.uniform(0.1, 3.0, n)
    sigma = rng.uniform(0.1, 0.6, n)
    K = S * np.exp(rng.uniform(-1, 1, n) * sigma * np.sqrt(T))
    return {
        "spot": S,
        "strike": K,
        "time_to_expiry": T,
        "rate": rng.uniform(-0.01, 0.08, n),
        "dividend_yield": rng.uniform(0, 0.05, n),
        "volatility": sigma,
        "is_call": rng.random(n) < 0.5,
    }


# Greek -> (lower quantity, bumped argument, derivative order, relative step, rtol). Bumping
# time_to_expiry gives d/dT = -d/dt, hence the sign flip below.
FLOAT_FD = {
    "delta": ("price", "spot", 1, 1e-5, 1e-7),
    "gamma": ("price", "spot", 2, 1e-4, 1e-5),
    "vega": ("price", "volatility", 1, 1e-5, 1e-7),
    "volga": ("vega", "volatility", 1, 1e-5, 1e-6),
    "theta": ("price", "time_to_expiry", 1, 1e-5, 1e-6),
    "rho": ("price", "rate", 1, 1e-4, 1e-7),
    "dividend_rho": ("price", "dividend_yield", 1, 1e-4, 1e-7),
    "vanna": ("delta", "volatility", 1, 1e-5, 1e-6),
    "charm": ("delta", "time_to_expiry", 1, 1e-5, 1e-6),
    "veta": ("vega", "time_to_expiry", 1, 1e-5, 1e-6),
    "speed": ("gamma", "spot", 1, 1e-5, 1e-6),
    "zomma": ("gamma", "volatility", 1, 1e-5, 1e-6),
    "color": ("gamma", "time_to_expiry", 1, 1e-5, 1e-6),
}


@pytest.mark.parametrize("greek", list(FLOAT_FD))
def test_black_scholes_greeks__match_float_central_differences(greek: str) -> None:
    lower, argument, order, step, rtol = FLOAT_FD[greek]
    args = _grid(2000)
    x = np.asarray(args[argument], dtype=np.float64)
    h = step * np.maximum(np.abs(x), 0.1 if argument in ("rate", "dividend_yield") else 1.0)

    def value(shift: float) -> npt.NDArray[np.float64]:
        bumped = args | {argument: x + shift * h}
        return getattr(black_scholes_greeks(**bumped), lower)  # type: ignore[arg-type]

    if order == 1:
        fd = (value(1) - value(-1)) / (2 * h)
    else:
        fd = (value(1) - 2 * value(0) + value(-1)) / h**2
    if argument == "time_to_expiry":
        fd = -fd
    ours = getattr(black_scholes_greeks(**args), greek)  # type: ignore[arg-type]
    scale = np.max(np.abs(ours))
    np.testing.assert_allclose(ours, fd, rtol=rtol, atol=rtol * 1e-2 * scale)
