"""Monte Carlo path-steps per second on one core: Periscope's batched numba kernels against a
straightforward vectorized numpy version and QuantLib's MC engines, on the same problems.

GBM: arithmetic Asian call with 252 fixings (the path has to be walked step by step).
Heston: European call by Andersen's QE scheme, 100 steps (quant.md 4.2 parameters).
"""

from __future__ import annotations

import math
import time

import numpy as np
import QuantLib as ql  # noqa: N813 (the conventional alias)

from benchmarks._timing import best_seconds, pin_to_one_core
from periscope.pricing.montecarlo import (
    ArithmeticAsian,
    European,
    GeometricBrownianMotion,
    Heston,
    monte_carlo_price,
)

TODAY = ql.Date(2, 1, 2025)


def _numpy_asian(n_paths: int, n_steps: int, seed: int) -> float:
    """The obvious numpy version: all normals, cumulative sums, averages."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / n_steps
    z = rng.standard_normal((n_paths, n_steps))
    log_paths = math.log(100.0) + np.cumsum((0.05 - 0.02) * dt + 0.2 * math.sqrt(dt) * z, axis=1)
    average = np.exp(log_paths).mean(axis=1)
    return float(math.exp(-0.05) * np.maximum(average - 100.0, 0.0).mean())


def _numpy_heston_qe(n_paths: int, n_steps: int, seed: int) -> float:
    """Andersen's QE, vectorized over paths with numpy (no martingale correction)."""
    rng = np.random.default_rng(seed)
    kappa, theta, xi, rho, T = 1.5, 0.04, 0.3, -0.7, 1.0
    dt = T / n_steps
    e = math.exp(-kappa * dt)
    k0 = -rho * kappa * theta * dt / xi
    k1 = 0.5 * dt * (kappa * rho / xi - 0.5) - rho / xi
    k2 = 0.5 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = 0.5 * dt * (1 - rho * rho)
    x = np.full(n_paths, math.log(100.0))
    v = np.full(n_paths, 0.04)
    for _ in range(n_steps):
        m = theta + (v - theta) * e
        s2 = v * xi * xi * e * (1 - e) / kappa + theta * xi * xi * (1 - e) ** 2 / (2 * kappa)
        psi = s2 / (m * m)
        zv = rng.standard_normal(n_paths)
        zs = rng.standard_normal(n_paths)
        inv = 2.0 / np.maximum(psi, 1e-12)
        b2 = inv - 1 + np.sqrt(inv) * np.sqrt(np.maximum(inv - 1, 0.0))
        quad = m / (1 + b2) * (np.sqrt(b2) + zv) ** 2
        p = (psi - 1) / (psi + 1)
        beta = (1 - p) / m
        u = 0.5 * (1 + np.tanh(zv))  # a cheap uniform stand-in, as a quick script would
        expo = np.where(u <= p, 0.0, np.log((1 - p) / np.maximum(1 - u, 1e-300)) / beta)
        v_next = np.where(psi <= 1.5, quad, expo)
        x += k0 + k1 * v + k2 * v_next + np.sqrt(np.maximum(k3 * (v + v_next), 0)) * zs
        v = v_next
    return float(np.maximum(np.exp(x) - 100.0, 0.0).mean())


def _quantlib_asian(n_paths: int, n_steps: int) -> float:
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, 0.02, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), 0.2, dc)),
    )
    fixings = [TODAY + round(365 * (i + 1) / n_steps) for i in range(n_steps)]
    option = ql.DiscreteAveragingAsianOption(
        ql.Average.Arithmetic, 0.0, 0, fixings, ql.PlainVanillaPayoff(ql.Option.Call, 100.0),
        ql.EuropeanExercise(TODAY + 365),
    )  # fmt: skip
    engine = ql.MCDiscreteArithmeticAPEngine(
        process, "pseudorandom", False, False, False, n_paths, seed=1
    )
    option.setPricingEngine(engine)
    return float(option.NPV())


def _quantlib_heston(n_paths: int, n_steps: int) -> float:
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    flat = ql.YieldTermStructureHandle(ql.FlatForward(TODAY, 0.0, dc))
    process = ql.HestonProcess(
        flat, flat, ql.QuoteHandle(ql.SimpleQuote(100.0)), 0.04, 1.5, 0.04, 0.3, -0.7
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, 100.0), ql.EuropeanExercise(TODAY + 365)
    )
    engine = ql.MCEuropeanHestonEngine(
        process, "pr", timeSteps=n_steps, antitheticVariate=False, requiredSamples=n_paths, seed=1
    )
    option.setPricingEngine(engine)
    return float(option.NPV())


def _timed(function: object, repeat: int) -> float:
    """Best CPU time of this thread over ``repeat`` calls (after a warm-up call)."""
    assert callable(function)
    return best_seconds(function, repeat=repeat, min_seconds=0.0)


def _timed_once(function: object) -> float:
    """CPU time of this thread for one call: QuantLib's engines are slow enough to run once."""
    assert callable(function)
    start = time.thread_time()
    function()
    return time.thread_time() - start


def run(quick: bool) -> str:
    """Million path-steps per second; ratios are Periscope / peer."""
    pin_to_one_core()
    n_paths = 2**14 if quick else 2**16
    n_ql = 2**12 if quick else 2**14
    repeat = 2 if quick else 3
    rows = []

    gbm = GeometricBrownianMotion(100.0, 0.05, 0.02, 0.2)
    steps = 252
    asian = ArithmeticAsian(100.0, 1.0, True)
    ours = _timed(
        lambda: monte_carlo_price(
            gbm, asian, n_paths=n_paths, n_steps=steps, antithetic=False, control_variate=False
        ),
        repeat,
    )
    ours_cv = _timed(lambda: monte_carlo_price(gbm, asian, n_paths=n_paths, n_steps=steps), repeat)
    numpy_s = _timed(lambda: _numpy_asian(n_paths, steps, 1), repeat)
    ql_rate = n_ql * steps / _timed_once(lambda: _quantlib_asian(n_ql, steps))
    rate = n_paths * steps / ours
    rows += [
        ("GBM Asian, Periscope (plain)", rate, rate / (n_paths * steps / numpy_s), rate / ql_rate),
        ("GBM Asian, Periscope (antithetic + geometric control)", n_paths * steps / ours_cv,
         None, None),
        ("GBM Asian, numpy", n_paths * steps / numpy_s, None, None),
        ("GBM Asian, QuantLib MCDiscreteArithmeticAPEngine", ql_rate, None, None),
    ]  # fmt: skip

    heston = Heston(100.0, 0.0, 0.0, 0.04, 1.5, 0.04, 0.3, -0.7)
    steps = 100
    call = European(100.0, 1.0, True)
    ours = _timed(
        lambda: monte_carlo_price(
            heston, call, n_paths=n_paths, n_steps=steps, antithetic=False, control_variate=False
        ),
        repeat,
    )
    numpy_s = _timed(lambda: _numpy_heston_qe(n_paths, steps, 1), repeat)
    ql_rate = n_ql * steps / _timed_once(lambda: _quantlib_heston(n_ql, steps))
    rate = n_paths * steps / ours
    rows += [
        ("Heston QE, Periscope", rate, rate / (n_paths * steps / numpy_s), rate / ql_rate),
        ("Heston QE, numpy", n_paths * steps / numpy_s, None, None),
        ("Heston QE, QuantLib MCEuropeanHestonEngine", ql_rate, None, None),
    ]

    def ratio(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}x"

    lines = [
        "## Monte Carlo (one core, million path-steps per second)\n",
        "| engine | M path-steps/s | vs numpy | vs QuantLib |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {r / 1e6:,.1f} | {ratio(a)} | {ratio(b)} |" for name, r, a, b in rows]
    lines.append(
        f"\nTargets: >= 30 M/s GBM, >= 10 M/s Heston QE. {n_paths} paths (QuantLib {n_ql}). "
        "Times are CPU seconds of the calling thread (`time.thread_time`; every engine here "
        f"runs single-threaded in it): best of {repeat} calls after a warm-up for Periscope and "
        "numpy, one call for QuantLib. Periscope's figures include drawing the normals (numpy's "
        "PCG64 ziggurat, inside the compiled kernels) and the batch bookkeeping.\n"
    )
    return "\n".join(lines)
