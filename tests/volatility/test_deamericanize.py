"""The early-exercise premium of the de-Americanization trees: the fused kernel against two
separate trees, per-option dividend schedules, and the extrapolated premium against QuantLib."""

from __future__ import annotations

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the conventional alias)

from periscope.pricing._kernels.binomial import binomial_kernel, early_exercise_premium_kernel
from periscope.simulator.black import american_crr_price
from periscope.volatility import deamericanize
from periscope.volatility._deamericanize_kernels import flag_trees, negligible_call_premium
from periscope.volatility.deamericanize import (
    CASH_DIVIDENDS,
    DEFAULT_STEPS,
    NEGLIGIBLE_PREMIUM,
    DividendModel,
    _anchors,
    _interpolated_premiums,
    _known_pv,
    early_exercise_premium,
    european_equivalent,
)
from periscope.volatility.implied import _black_iv_flat


def _options(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    strike = rng.uniform(60.0, 140.0, n)
    t = rng.uniform(0.02, 2.0, n)
    rate = rng.uniform(-0.01, 0.06, n)
    q = rng.uniform(-0.01, 0.04, n)
    sigma = rng.uniform(0.1, 0.6, n)
    is_call = rng.random(n) < 0.5
    return np.full(n, 100.0), strike, t, rate, q, sigma, is_call


def _two_trees(
    args: tuple[np.ndarray, ...], steps: int, div_t: np.ndarray, div_a: np.ndarray
) -> np.ndarray:
    n = args[0].size
    american = [np.empty(n) for _ in range(4)]
    european = [np.empty(n) for _ in range(4)]
    binomial_kernel(*args, True, steps, True, False, False, div_t, div_a, *american)
    binomial_kernel(*args, False, steps, True, False, False, div_t, div_a, *european)
    return american[0] - european[0]


def test_premium_kernel__one_induction_equals_two_trees_with_per_option_schedules() -> None:
    args = _options(300, 3)
    n = args[0].size
    # Row 0: no dividends; row 1: 16 spread payments; row 2: an uneven schedule with a tie.
    schedules = [
        (np.zeros(0), np.zeros(0)),
        ((np.arange(16) + 0.5) / 16, np.full(16, 0.1)),
        (np.array([0.1, 0.35, 0.35, 0.6, 1.1, 1.6]), np.array([0.5, 0.3, 0.2, 0.5, 0.6, 0.7])),
    ]
    width = 16
    div_t, div_a = np.zeros((3, width)), np.zeros((3, width))
    count = np.zeros(3, dtype=np.int64)
    for row, (times, amounts) in enumerate(schedules):
        div_t[row, : times.size], div_a[row, : amounts.size] = times, amounts
        count[row] = times.size
    row_of = np.arange(n, dtype=np.int64) % 3
    for steps in (51, 101):
        fused = np.empty(n)
        early_exercise_premium_kernel(*args, row_of, div_t, div_a, count, steps, False, fused)
        for row, (times, amounts) in enumerate(schedules):
            mine = row_of == row
            subset = tuple(np.ascontiguousarray(a[mine]) for a in args)
            expected = _two_trees(subset, steps, times, amounts)
            np.testing.assert_allclose(fused[mine], expected, rtol=0.0, atol=1e-11)


def test_premium_kernel__degenerate_and_invalid_inputs_as_the_general_kernel() -> None:
    spot, strike, t, rate, q, sigma, is_call = (
        np.full(5, 100.0),
        np.array([100.0, 100.0, -1.0, 100.0, 50.0]),
        np.array([1.0, 0.0, 1.0, np.nan, 1.0]),
        np.array([0.05, 0.05, 0.05, 0.05, 0.05]),
        np.zeros(5),
        np.array([0.0, 0.2, 0.2, 0.2, 0.2]),  # sigma 0: deterministic stock
        np.zeros(5, dtype=bool),
    )
    args = (spot, strike, t, rate, q, sigma, is_call)
    fused = np.empty(5)
    none = np.zeros((1, 1))
    early_exercise_premium_kernel(
        *args, np.zeros(5, dtype=np.int64), none, none, np.zeros(1, dtype=np.int64), 51, False,
        fused,
    )  # fmt: skip
    expected = _two_trees(args, 51, np.zeros(0), np.zeros(0))
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(expected))
    np.testing.assert_allclose(fused[~np.isnan(fused)], expected[~np.isnan(expected)], atol=1e-12)


def _quantlib_premium(
    strike: float, t: float, sigma: float, rate: float, q: float, is_call: bool
) -> tuple[float, float]:
    """QdFp (high precision) American minus analytic European, and the European vega."""
    today = ql.Date(1, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    expiry = today + round(t * 365)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, day_count)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, day_count)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), sigma, day_count)
        ),
    )
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    american = ql.VanillaOption(payoff, ql.AmericanExercise(today, expiry))
    american.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    european = ql.VanillaOption(payoff, ql.EuropeanExercise(expiry))
    european.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return american.NPV() - european.NPV(), european.vega()


def test_early_exercise_premium__extrapolated_trees_match_quantlib_qdfp() -> None:
    # Out-of-the-money options (z standard deviations from the forward), a continuous yield.
    rows = [
        (t, sigma, rate, q, z)
        for t in (0.1, 0.5, 2.0)
        for sigma in (0.15, 0.4)
        for rate, q in ((0.05, 0.02), (0.02, 0.04))
        for z in (-1.5, -0.5, 0.5, 1.5)
    ]
    t = np.array([round(r[0] * 365) / 365 for r in rows])
    sigma, rate, q, z = (np.array([r[i] for r in rows]) for i in (1, 2, 3, 4))
    is_call = z > 0
    forward = 100.0 * np.exp((rate - q) * t)
    strike = forward * np.exp(z * sigma * np.sqrt(t))
    reference = np.array(
        [
            _quantlib_premium(*(float(x) for x in row[:5]), bool(row[5]))
            for row in zip(strike, t, sigma, rate, q, is_call, strict=True)
        ]
    )
    pv = 100.0 - forward * np.exp(-rate * t)
    premium = early_exercise_premium(
        100.0, strike, t, rate, pv, sigma, is_call, dividend_model="yield"
    )
    vol_bp = np.abs(premium - reference[:, 0]) / reference[:, 1] * 1e4
    assert (reference[:, 0] / reference[:, 1] * 1e4).max() > 20.0  # real premiums among them
    # Measured: median 0.004 bp, max 0.23 bp (101 steps, the premium Richardson-extrapolated;
    # 51 steps: 0.016 and 0.47).
    assert np.median(vol_bp) < 0.02
    assert vol_bp.max() < 0.5


def _all_trees(
    strike: np.ndarray, t: np.ndarray, rate: np.ndarray, sigma: np.ndarray,
    div_t: np.ndarray, div_a: np.ndarray, steps: int,
) -> np.ndarray:  # fmt: skip
    """Every option through the fused kernel, no skipping; row i of div_t/div_a is option i's."""
    n = strike.size
    out = np.empty(n)
    early_exercise_premium_kernel(
        np.full(n, 100.0), strike, t, rate, np.zeros(n), sigma, np.ones(n, dtype=bool),
        np.arange(n, dtype=np.int64), div_t, div_a,
        np.full(n, div_t.shape[1], dtype=np.int64), steps, True, out,
    )  # fmt: skip
    return out


def _never_exercised(
    strike: np.ndarray, t: np.ndarray, rate: np.ndarray, div_t: np.ndarray, div_a: np.ndarray,
    steps: int,
) -> np.ndarray:  # fmt: skip
    """Calls paying cash dividends that flag_trees rules out (Merton's rule on the lattice);
    row i of div_t/div_a is option i's."""
    n = strike.size
    tree = np.ones(n, dtype=bool)
    flag_trees(
        strike, t, np.ones(n, dtype=bool), rate, np.zeros(n), np.ones(n, dtype=bool),
        np.arange(n, dtype=np.int64), div_t, div_a, np.full(n, div_t.shape[1], dtype=np.int64),
        steps, tree,
    )  # fmt: skip
    return ~tree


def test_calls_never_exercised__their_tree_premium_is_zero() -> None:
    rng = np.random.default_rng(8)
    n = 4000
    strike = rng.uniform(40.0, 200.0, n)
    t = rng.uniform(0.02, 2.0, n)
    rate = rng.uniform(-0.01, 0.07, n)
    sigma = rng.uniform(0.1, 0.8, n)
    # Four dividends per option at random times (some past expiry), amounts up to 3 % of spot.
    div_t = np.sort(rng.uniform(0.0, 2.2, (n, 4)), axis=1)
    div_a = rng.uniform(0.0, 3.0, (n, 4))
    for steps in (51, 101):
        safe = _never_exercised(strike, t, rate, div_t, div_a, steps)
        premium = _all_trees(strike, t, rate, sigma, div_t, div_a, steps)
        assert 0.15 * n < safe.sum() < 0.85 * n  # the rule is neither vacuous nor everything
        # No node of their lattice exercises: the American induction and the European binomial
        # sum of the same lattice agree to rounding.
        assert (np.abs(premium[safe]) <= 1e-11).all()
        # Where the rule does not hold, early exercise is usually worth something.
        assert (premium[~safe] > 1e-9).mean() > 0.5


def test_early_exercise_premium__call_rule_changes_nothing() -> None:
    rng = np.random.default_rng(9)
    n = 600
    spot = 100.0
    strike = rng.uniform(50.0, 160.0, n)
    t = np.round(rng.uniform(0.02, 2.0, 12), 4)[rng.integers(0, 12, n)]
    rate = np.full(n, 0.045)
    sigma = rng.uniform(0.15, 0.5, n)
    is_call = rng.random(n) < 0.6
    pv = spot * (1.0 - np.exp(-rng.choice([0.005, 0.02, 0.06], 12)[rng.integers(0, 12, n)] * t))
    # The cash model without a schedule: each expiry's 16 spread payments.
    got = early_exercise_premium(spot, strike, t, rate, pv, sigma, is_call, dividend_model="cash")
    expiries, first, inverse = np.unique(t, return_index=True, return_inverse=True)
    mid = (np.arange(CASH_DIVIDENDS) + 0.5) / CASH_DIVIDENDS
    div_t = mid[None, :] * expiries[:, None]
    amount = pv[first] / np.exp(-rate[first, None] * div_t).sum(axis=1)
    div_a = np.repeat(amount[:, None], CASH_DIVIDENDS, axis=1)
    out = np.empty(n)
    early_exercise_premium_kernel(
        np.full(n, spot), strike, t, rate, np.zeros(n), sigma, is_call,
        inverse.astype(np.int64), div_t, div_a, np.full(expiries.size, CASH_DIVIDENDS),
        DEFAULT_STEPS, True, out,
    )  # fmt: skip
    # The trees' premium where no node exercises is zero to rounding (1e-13 of a price).
    np.testing.assert_allclose(got, np.maximum(out, 0.0), rtol=0.0, atol=1e-12)
    # A known schedule (quarterly 0.6 ex-dates) too, calls only.
    schedule = np.column_stack([np.arange(0.1, 2.2, 0.25), np.full(9, 0.6)])
    known = early_exercise_premium(
        spot, strike, t, rate, pv, sigma, np.ones(n, dtype=bool), dividends=schedule
    )
    residual = np.log((spot - _known_pv(schedule, t, rate)) / (spot - pv)) / t
    out = np.empty(n)
    early_exercise_premium_kernel(
        np.full(n, spot), strike, t, rate, residual, sigma, np.ones(n, dtype=bool),
        np.zeros(n, dtype=np.int64), schedule[None, :, 0].copy(), schedule[None, :, 1].copy(),
        np.array([9]), DEFAULT_STEPS, True, out,
    )  # fmt: skip
    np.testing.assert_allclose(known, np.maximum(out, 0.0), rtol=0.0, atol=1e-12)


def test_negligible_call_premium__trees_agree_with_the_bound() -> None:
    rng = np.random.default_rng(10)
    n = 6000
    spot = 100.0
    strike = spot * np.exp(rng.uniform(-0.8, 1.0, n))
    t = rng.uniform(0.01, 2.5, n)
    rate = rng.uniform(0.0, 0.07, n)
    q = rng.uniform(0.001, 0.05, n)
    sigma = rng.uniform(0.08, 0.9, n)
    skip = np.array(
        [
            negligible_call_premium(spot, *option)
            for option in zip(strike, t, rate, q, sigma, strict=True)
        ]
    )
    assert 0.05 * n < skip.sum() < 0.5 * n
    out = np.empty(n)
    early_exercise_premium_kernel(
        np.full(n, spot), strike, t, rate, q, sigma, np.ones(n, dtype=bool),
        np.zeros(n, dtype=np.int64), np.zeros((1, 1)), np.zeros((1, 1)),
        np.zeros(1, dtype=np.int64), DEFAULT_STEPS, True, out,
    )  # fmt: skip
    d1 = (np.log(spot / strike) + (rate - q + 0.5 * sigma**2) * t) / (sigma * np.sqrt(t))
    vega = spot * np.exp(-q * t - 0.5 * d1**2) * np.sqrt(t) / np.sqrt(2 * np.pi)
    # What the trees give for the calls skipped is below the stated share of the vega.
    # (Plus the rounding of the lattice's two values, 1e-13 of a price.)
    assert (np.maximum(out[skip], 0.0) <= NEGLIGIBLE_PREMIUM * vega[skip] + 1e-12).all()
    # And the premium in the yield model is the tree's for every other option.
    pv = spot * -np.expm1(-q * t)
    got = early_exercise_premium(
        spot, strike, t, rate, pv, sigma, np.ones(n, dtype=bool), dividend_model="yield"
    )
    assert (got[skip] == 0.0).all()
    np.testing.assert_allclose(got[~skip], np.maximum(out[~skip], 0.0), rtol=1e-9, atol=1e-12)


def _american_smiles(seed: int) -> tuple[np.ndarray, ...]:
    """Out-of-the-money American quotes of eight expiries x 40 strikes per side on a skewed
    smile, tick-rounded mids (the quotes' own noise), as in a chain."""
    rng = np.random.default_rng(seed)
    spot, rate, q = 100.0, 0.045, 0.015
    t = np.repeat([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0], 80)
    width = 0.25 * np.sqrt(t)
    z = np.tile(np.concatenate([np.linspace(-4.0, 0.0, 40), np.linspace(0.0, 3.0, 40)]), 8)
    forward = spot * np.exp((rate - q) * t)
    strike = np.round(forward * np.exp(z * width), 2)
    is_call = np.tile(np.repeat([False, True], 40), 8)
    sigma = 0.22 - 0.12 * z * width + 0.05 * (z * width) ** 2
    price = american_crr_price(
        np.full(t.size, spot), strike, t, np.full(t.size, rate), np.full(t.size, q), sigma,
        is_call, None, 200,
    )  # fmt: skip
    price = np.round(price * (1.0 + 0.01 * rng.uniform(-1.0, 1.0, t.size)), 2)
    keep = price >= 0.05
    discount = np.exp(-rate * t)
    return price[keep], spot, strike[keep], t[keep], forward[keep], discount[keep], is_call[keep]


@pytest.mark.parametrize("model", ["cash", "yield"])
def test_european_equivalent__anchors_interpolated_close_to_the_fixed_point_in_fewer_trees(
    model: DividendModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _american_smiles(4)
    price, _, strike, t, forward, discount, is_call = args
    # The near-the-money quotes start from a premium (as the forward's pairs give).
    near = np.abs(np.log(strike / forward)) < 0.05 * np.sqrt(t)
    _, exact = european_equivalent(*args, dividend_model=model, rounds=8, tolerance=1e-9)
    initial = np.where(near, exact * 1.01, np.nan)
    trees = [0]
    real = deamericanize._fixed_point

    def counting(*solve_args: object) -> tuple[np.ndarray, ...]:
        european, premium, taken = real(*solve_args)
        trees[0] += int(taken.sum())
        return european, premium, taken

    monkeypatch.setattr(deamericanize, "_fixed_point", counting)
    results, counts = [], []
    for spacing in (0, 4, 6):
        trees[0] = 0
        results.append(
            european_equivalent(
                *args, dividend_model=model, initial_premium=initial, anchor_spacing=spacing
            )
        )
        counts.append(trees[0])

    def volatility(european: np.ndarray) -> np.ndarray:
        return _black_iv_flat(european, forward, strike, t, discount, is_call)[0]

    fixed_point = volatility(price - exact)
    plain, every_fourth, every_sixth = (volatility(result[0]) for result in results)
    for got in (plain, every_fourth, every_sixth):
        assert np.isfinite(got).all()
    # The fixed point to its tolerance (0.5 bp) is within a small share of it. The premiums
    # interpolated between anchors are a fraction of a basis point off even with these quotes'
    # 1 % price noise (more than a chain's ticks; measured, both models: every 4th quote at most
    # 0.62 bp, p99 0.30 bp; every 6th 0.82 and 0.45 bp), about the trees' own error (cash
    # dividends, 101 steps: 1 bp at the 99th percentile), and finer anchors are closer.
    assert np.abs(plain - fixed_point).max() < 0.03e-4
    error_4 = np.abs(every_fourth - fixed_point)
    error_6 = np.abs(every_sixth - fixed_point)
    assert error_4.max() < 0.8e-4
    assert error_6.max() < 1.2e-4
    assert np.quantile(error_4, 0.99) < 0.45e-4
    assert np.quantile(error_6, 0.99) < 0.65e-4
    assert np.quantile(error_4, 0.99) < np.quantile(error_6, 0.99)
    # Anchors are exactly their own fixed point, solved as without anchors.
    anchors = _anchors(strike, np.maximum(t, 1e-12), is_call, 6) | near
    np.testing.assert_array_equal(results[2][1][anchors], results[0][1][anchors])
    # A tree per anchor and round: a third of the trees at every fourth quote, fewer at every
    # sixth.
    assert counts[1] < 0.4 * counts[0], counts
    assert counts[2] < 0.8 * counts[1], counts


def test_anchors__every_nth_and_the_last_per_expiry_and_side() -> None:
    rng = np.random.default_rng(3)
    n = 500
    t = rng.choice([0.1, 0.5, 1.0], n)
    is_call = rng.random(n) < 0.5
    strike = rng.uniform(50.0, 150.0, n)
    anchors = _anchors(strike, t, is_call, 4)
    for expiry in (0.1, 0.5, 1.0):
        for side in (False, True):
            group = np.flatnonzero((t == expiry) & (is_call == side))
            group = group[np.argsort(strike[group])]
            expected = np.arange(group.size) % 4 == 0
            expected[-1] = True
            np.testing.assert_array_equal(anchors[group], expected)
    assert _anchors(strike, t, is_call, 1).all()


def test_interpolated_premiums__linear_share_within_each_expiry_and_side() -> None:
    rng = np.random.default_rng(5)
    n = 400
    t = rng.choice([0.1, 0.5, 1.0], n)
    is_call = rng.random(n) < 0.5
    x = rng.uniform(-0.5, 0.5, n)
    price = rng.uniform(0.5, 5.0, n)
    # A different line per group, so that a node of another group would show.
    slope = 0.02 + 0.1 * t + 0.05 * is_call
    share = 0.03 + slope * x
    anchors = (x < -0.3) | (x > 0.3) | (rng.random(n) < 0.2)
    premium = np.where(anchors, share * price, np.nan)
    premium[np.flatnonzero(anchors)[:5]] = np.nan  # unsolved anchors are no nodes
    # The puts of the longest expiry have no nodes at all: no start there.
    orphans = (t == 1.0) & ~is_call
    anchors &= ~orphans
    targets = np.flatnonzero(~anchors)
    got = _interpolated_premiums(x, t, is_call, price, premium, anchors, targets)
    inside = ~orphans[targets]
    np.testing.assert_allclose(got[inside], (share * price)[targets][inside], rtol=1e-12)
    assert (~inside).any()
    assert np.isnan(got[~inside]).all()
    # Beyond the outermost node the share is held flat.
    node = np.flatnonzero(anchors & np.isfinite(premium) & (t == 0.5) & is_call)
    edge = node[np.argmax(x[node])]
    beyond = _interpolated_premiums(
        np.append(x, 0.9), np.append(t, 0.5), np.append(is_call, True), np.append(price, 2.0),
        np.append(premium, np.nan), np.append(anchors, False), np.array([n]),
    )  # fmt: skip
    np.testing.assert_allclose(beyond, [2.0 * share[edge]], rtol=1e-12)
