"""Black-Scholes-Merton price plus Greeks: Periscope's kernels against plain numpy/scipy.

The peer is the usual vectorized implementation (scipy.special.ndtr for N, numpy for the rest),
computing the same seven outputs as ``black_scholes_greeks(..., order=1)`` on the same inputs:
price, delta, gamma, vega, theta, rho, dividend rho. Targets (issue 2): >= 10 million options
per second on one core for price plus first-order Greeks, and >= 3 times the peer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from benchmarks._timing import best_seconds, pin_to_one_core, rate
from periscope.pricing import black_scholes_greeks, black_scholes_price

Array = npt.NDArray[np.float64]
TARGET_RATE = 10e6
TARGET_RATIO = 3.0


def _inputs(n: int) -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(2024)
    S = rng.uniform(50.0, 150.0, n)
    T = rng.uniform(0.02, 3.0, n)
    sigma = rng.uniform(0.05, 0.8, n)
    return {
        "spot": S,
        "strike": S * np.exp(rng.uniform(-1.0, 1.0, n) * sigma * np.sqrt(T)),
        "time_to_expiry": T,
        "rate": rng.uniform(0.0, 0.08, n),
        "dividend_yield": rng.uniform(0.0, 0.04, n),
        "volatility": sigma,
        "is_call": rng.random(n) < 0.5,
    }


def numpy_price_and_greeks(
    S: Array, K: Array, T: Array, r: Array, q: Array, sigma: Array, is_call: npt.NDArray[np.bool_]
) -> tuple[Array, ...]:
    """The peer: textbook vectorized BSM with scipy's ndtr, same outputs as order=1."""
    omega = np.where(is_call, 1.0, -1.0)
    sqrt_t = np.sqrt(T)
    w = sigma * sqrt_t
    d1 = (np.log(S / K) + (r - q) * T) / w + 0.5 * w
    d2 = d1 - w
    a = S * np.exp(-q * T)
    b = K * np.exp(-r * T)
    n1 = ndtr(omega * d1)
    n2 = ndtr(omega * d2)
    a_pdf = a * np.exp(-0.5 * d1 * d1) / np.sqrt(2.0 * np.pi)
    price = omega * (a * n1 - b * n2)
    delta = omega * np.exp(-q * T) * n1
    gamma = a_pdf / (S * S * w)
    vega = a_pdf * sqrt_t
    theta = -0.5 * a_pdf * sigma / sqrt_t + omega * (q * a * n1 - r * b * n2)
    rho = omega * b * T * n2
    dividend_rho = -omega * a * T * n1
    return price, delta, gamma, vega, theta, rho, dividend_rho


def run(quick: bool) -> str:
    """Time the three Periscope calls and the peer; return a markdown section."""
    pin_to_one_core()
    n = 100_000 if quick else 1_000_000
    repeat = 3 if quick else 7
    x = _inputs(n)
    args = tuple(x.values())

    # Same inputs, same answers: check before timing.
    ours = black_scholes_greeks(*args, order=1)
    peer = numpy_price_and_greeks(*args)  # type: ignore[arg-type]
    for name, theirs in zip(
        ("price", "delta", "gamma", "vega", "theta", "rho", "dividend_rho"), peer, strict=True
    ):
        np.testing.assert_allclose(getattr(ours, name), theirs, rtol=1e-9, atol=1e-12)

    t_first = best_seconds(lambda: black_scholes_greeks(*args, order=1), repeat=repeat)
    t_all = best_seconds(lambda: black_scholes_greeks(*args), repeat=repeat)
    t_price = best_seconds(lambda: black_scholes_price(*args), repeat=repeat)
    t_peer = best_seconds(lambda: numpy_price_and_greeks(*args), repeat=repeat)  # type: ignore[arg-type]

    rows = [
        ("Periscope price + first-order Greeks (`order=1`)", t_first, t_peer / t_first),
        ("Periscope price + all 13 Greeks", t_all, t_peer / t_all),
        ("Periscope price only", t_price, None),
        ("numpy/scipy (ndtr) price + first-order Greeks", t_peer, 1.0),
    ]
    lines = [
        "## Black-Scholes-Merton price and Greeks (one core)",
        "",
        f"{n:,} random options (spot 50-150, strike within ±1 sd, T 0.02-3 y, vol 5-80 %); "
        "first-order set = price, delta, gamma, vega, theta, rho, dividend rho. "
        "Ratio = peer time / Periscope time for the same work (the 13-Greek row does more).",
        "",
        "| implementation | rate | ratio vs numpy/scipy |",
        "| --- | ---: | ---: |",
    ]
    for label, seconds, ratio in rows:
        shown = "" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {label} | {rate(n, seconds)} | {shown} |")
    first_rate = n / t_first
    verdict = "met" if first_rate >= TARGET_RATE and t_peer / t_first >= TARGET_RATIO else "MISSED"
    lines += [
        "",
        f"Targets (>= {TARGET_RATE / 1e6:.0f} M/s and >= {TARGET_RATIO:.0f}x for price + "
        f"first-order Greeks): {verdict}.",
        "",
    ]
    return "\n".join(lines)
