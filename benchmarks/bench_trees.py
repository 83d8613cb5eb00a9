"""American options on binomial trees: Periscope's batched Leisen-Reimer against QuantLib's
``BinomialLRVanillaEngine`` called option by option, both at 201 steps, on one core."""

from __future__ import annotations

import time

import numpy as np
import QuantLib as ql  # noqa: N813 (the conventional alias)

from benchmarks._timing import best_seconds, pin_to_one_core
from periscope.pricing.binomial import binomial_price

STEPS = 201


def _quantlib_prices(spots: np.ndarray, strikes: np.ndarray, calls: np.ndarray) -> np.ndarray:
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    quote = ql.SimpleQuote(100.0)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(quote),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.01, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.25, dc)),
    )
    engine = ql.BinomialLRVanillaEngine(process, STEPS)
    out = np.empty(len(spots))
    exercise = ql.AmericanExercise(today, today + 365)
    for i, (spot, strike, call) in enumerate(zip(spots, strikes, calls, strict=True)):
        quote.setValue(float(spot))
        kind = ql.Option.Call if call else ql.Option.Put
        option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, float(strike)), exercise)
        option.setPricingEngine(engine)
        out[i] = option.NPV()
    return out


def run(quick: bool) -> str:
    """Options per second at 201 steps; the ratio is Periscope / QuantLib."""
    pin_to_one_core()
    rng = np.random.default_rng(0)
    n = 2_000 if quick else 20_000
    n_ql = 100 if quick else 1_000
    spots = rng.uniform(70, 130, n)
    strikes = np.full(n, 100.0)
    calls = rng.random(n) < 0.5

    def ours() -> np.ndarray:
        return binomial_price(spots, strikes, 1.0, 0.05, 0.01, 0.25, calls, steps=STEPS)

    def plain() -> np.ndarray:
        return binomial_price(
            spots, strikes, 1.0, 0.05, 0.01, 0.25, calls, steps=STEPS, extrapolate=False
        )

    seconds = best_seconds(ours, repeat=3)
    seconds_plain = best_seconds(plain, repeat=3)
    # QuantLib's per-option loop runs once (it is slow), timed the same way as best_seconds:
    # CPU time of this thread, which the shared machine's other processes do not inflate.
    start = time.thread_time()
    reference = _quantlib_prices(spots[:n_ql], strikes[:n_ql], calls[:n_ql])
    seconds_ql = (time.thread_time() - start) / n_ql
    # QuantLib's LR tree is not extrapolated: compare it with the plain tree.
    gap = np.abs(plain()[:n_ql] - reference).max()
    rate = n / seconds
    rate_plain = n / seconds_plain
    rate_ql = 1.0 / seconds_ql
    return "\n".join(
        [
            "## Binomial trees (American, Leisen-Reimer, 201 steps, one core)\n",
            "| engine | options/s | ratio vs QuantLib |",
            "| --- | ---: | ---: |",
            f"| Periscope `binomial_price` (Richardson, default) | {rate:,.0f} | "
            f"{rate / rate_ql:.1f}x |",
            f"| Periscope `binomial_price(extrapolate=False)` | {rate_plain:,.0f} | "
            f"{rate_plain / rate_ql:.1f}x |",
            f"| QuantLib `BinomialLRVanillaEngine`, per option | {rate_ql:,.0f} | 1.0x |",
            "",
            f"Target >= 20,000 options/s/core. Times are CPU seconds of the calling thread "
            f"(`time.thread_time`): best of 3 rounds for Periscope, one pass over {n_ql} options "
            f"for QuantLib. Largest gap between the plain tree and QuantLib's LR tree over "
            f"{n_ql} options: {gap:.1e}.\n",
        ]
    )
