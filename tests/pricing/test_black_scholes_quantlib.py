"""Black-Scholes-Merton prices and Greeks against QuantLib's BlackCalculator on a random grid.

QuantLib 1.44 `BlackCalculator(PlainVanillaPayoff(type, strike), forward, stdDev, discount)` with
forward = S e^{(r-q)T}, stdDev = σ√T, discount = e^{-rT} is exactly BSM; its Greeks take the spot
and the maturity: delta(S), gamma(S), vega(T), theta(S, T) (per year, from the pricing PDE),
rho(T), dividendRho(T), elasticity(S). Periscope must agree to 1e-10 relative, with a floor
for values near zero: |ours - QuantLib| <= 1e-10 max(|QuantLib|, 1e-4 scale), where scale is the
natural size of the quantity (S for values in currency, 1 for delta, 1 / S for gamma). Below the
floor this is an absolute tolerance of 1e-14 scale, a few dozen ulps of the scale. QuantLib's
own errors reach that size there: it evaluates N as (1 + erf)/2, so N carries an absolute error
of about one ulp of 1 and loses relative accuracy in the lower tail (1e-7 relative at N = 1e-8,
measured on this grid against mpmath); its theta is also a difference of terms of size S.
Periscope's tails are checked against mpmath in test_black_scholes_accuracy.py instead.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql  # noqa: N813 (the conventional alias)

from periscope.pricing import black_price, black_scholes_greeks

N_OPTIONS = 10_000
RTOL = 1e-10
FLOOR = 1e-4


def _grid() -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(20240601)
    S = rng.uniform(10.0, 500.0, N_OPTIONS)
    # Log-moneyness within ±1.5 standard deviations... and beyond: ±(0.05 + 3 σ√T).
    T = np.exp(rng.uniform(np.log(1 / 365), np.log(5.0), N_OPTIONS))
    sigma = rng.uniform(0.05, 1.2, N_OPTIONS)
    K = S * np.exp(rng.uniform(-1, 1, N_OPTIONS) * (0.05 + 3 * sigma * np.sqrt(T)))
    return {
        "S": S,
        "K": K,
        "T": T,
        "r": rng.uniform(-0.02, 0.10, N_OPTIONS),
        "q": rng.uniform(0.0, 0.08, N_OPTIONS),
        "sigma": sigma,
        "is_call": rng.random(N_OPTIONS) < 0.5,
    }


def _quantlib(g: dict[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.float64]]:
    names = ("price", "delta", "gamma", "vega", "theta", "rho", "dividend_rho", "elasticity")
    out = {name: np.empty(N_OPTIONS) for name in names}
    call, put = ql.Option.Call, ql.Option.Put
    for i in range(N_OPTIONS):
        S, K, T = float(g["S"][i]), float(g["K"][i]), float(g["T"][i])
        r, q, sigma = float(g["r"][i]), float(g["q"][i]), float(g["sigma"][i])
        forward = S * np.exp((r - q) * T)
        calc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(call if g["is_call"][i] else put, K),
            forward,
            sigma * np.sqrt(T),
            np.exp(-r * T),
        )
        out["price"][i] = calc.value()
        out["delta"][i] = calc.delta(S)
        out["gamma"][i] = calc.gamma(S)
        out["vega"][i] = calc.vega(T)
        out["theta"][i] = calc.theta(S, T)
        out["rho"][i] = calc.rho(T)
        out["dividend_rho"][i] = calc.dividendRho(T)
        out["elasticity"][i] = calc.elasticity(S)
    return out


@pytest.fixture(scope="module")
def grid() -> dict[str, npt.NDArray[np.generic]]:
    return _grid()


@pytest.fixture(scope="module")
def quantlib(grid: dict[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.float64]]:
    return _quantlib(grid)


def _floor(name: str, S: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if name in ("delta", "elasticity"):
        return np.full_like(S, FLOOR)
    if name == "gamma":
        return FLOOR / S
    return FLOOR * S  # price, vega, theta, rho, dividend rho: currency units


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize(
    "name", ["price", "delta", "gamma", "vega", "theta", "rho", "dividend_rho", "elasticity"]
)
def test_black_scholes_greeks__match_quantlib_on_random_grid(
    grid: dict[str, npt.NDArray[np.float64]],
    quantlib: dict[str, npt.NDArray[np.float64]],
    name: str,
    order: int,
) -> None:
    g = grid
    greeks = black_scholes_greeks(
        g["S"],
        g["K"],
        g["T"],
        g["r"],
        g["q"],
        g["sigma"],
        g["is_call"],
        order=order,  # type: ignore[call-overload]
    )
    # Elasticity Δ S / V is not a field: derived from ours as QuantLib derives it.
    ours = greeks.delta * g["S"] / greeks.price if name == "elasticity" else getattr(greeks, name)
    theirs = quantlib[name]
    allowed = RTOL * np.maximum(np.abs(theirs), _floor(name, g["S"]))
    if name == "theta":
        # QuantLib's theta is -(ln(D) V + ln(F/S) S delta + σ²T S² gamma / 2) / T (the pricing
        # PDE with r and r - q recovered from the discount and the forward): the rounding of D
        # and F gives it an absolute error of about eps (V + S |delta|) / T, which dwarfs theta
        # at short expiries. Periscope's closed form is checked against mpmath separately.
        eps = np.finfo(np.float64).eps
        allowed += (
            4 * eps * (np.abs(quantlib["price"]) + g["S"] * np.abs(quantlib["delta"])) / g["T"]
        )
    error = np.abs(ours - theirs) / allowed * RTOL
    if name == "elasticity":
        # Δ S / V divides by the value: where the value is tiny (deep out of the money) both
        # sides inherit the value's cancellation error. Compare where V > 1e-6 S.
        error = error[quantlib["price"] > 1e-6 * g["S"]]
    worst = int(np.argmax(error))
    assert error[worst] <= RTOL, (name, error[worst], {k: v[worst] for k, v in g.items()})


def test_black_price__matches_quantlib_black_formula(
    grid: dict[str, npt.NDArray[np.float64]], quantlib: dict[str, npt.NDArray[np.float64]]
) -> None:
    g = grid
    forward = g["S"] * np.exp((g["r"] - g["q"]) * g["T"])
    discount = np.exp(-g["r"] * g["T"])
    ours = black_price(forward, g["K"], g["T"], discount, g["sigma"], g["is_call"])
    theirs = np.array(
        [
            ql.blackFormula(
                ql.Option.Call if c else ql.Option.Put, float(k), float(f), float(s), float(d)
            )
            for c, k, f, s, d in zip(
                g["is_call"], g["K"], forward, g["sigma"] * np.sqrt(g["T"]), discount, strict=True
            )
        ]
    )
    error = np.abs(ours - theirs) / np.maximum(np.abs(theirs), FLOOR * g["S"])
    assert error.max() <= RTOL
