"""Binomial trees: literature values, QuantLib cross-checks, node Greeks, dividends, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the conventional alias)
from hypothesis import given, settings
from hypothesis import strategies as st

from periscope.errors import InvalidInputError
from periscope.pricing.binomial import binomial_greeks, binomial_price

TODAY = ql.Date(2, 1, 2025)
DAY_COUNT = ql.Actual365Fixed()


def _process(spot: float, rate: float, dividend_yield: float, volatility: float) -> ql.Process:
    ql.Settings.instance().evaluationDate = TODAY
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, dividend_yield, DAY_COUNT)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, rate, DAY_COUNT)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(TODAY, ql.NullCalendar(), volatility, DAY_COUNT)
        ),
    )


def _american(strike: float, days: int, is_call: bool) -> ql.VanillaOption:
    kind = ql.Option.Call if is_call else ql.Option.Put
    exercise = ql.AmericanExercise(TODAY, TODAY + days)
    return ql.VanillaOption(ql.PlainVanillaPayoff(kind, strike), exercise)


def _qdfp(
    spot: float, strike: float, days: int, r: float, q: float, vol: float, call: bool
) -> float:
    """QuantLib's Andersen-Lake-Offengenden engine, high-precision: the American reference."""
    option = _american(strike, days, call)
    scheme = ql.QdFpAmericanEngine.highPrecisionScheme()
    option.setPricingEngine(ql.QdFpAmericanEngine(_process(spot, r, q, vol), scheme))
    return float(option.NPV())


def _fd_escrowed(
    spot: float, strike: float, days: int, r: float, vol: float, call: bool, dividends: list
) -> float:
    """QuantLib's finite differences, 1000x1000, escrowed cash-dividend model (the tree's model)."""
    option = _american(strike, days, call)
    schedule = ql.DividendVector(
        [TODAY + round(t * 365) for t, _ in dividends], [a for _, a in dividends]
    )
    engine = ql.FdBlackScholesVanillaEngine(
        _process(spot, r, 0.0, vol), schedule, 1000, 1000, 0, ql.FdmSchemeDesc.Douglas(),
        False, -ql.nullDouble(), ql.FdBlackScholesVanillaEngine.Escrowed,
    )  # fmt: skip
    option.setPricingEngine(engine)
    return float(option.NPV())


def _black_scholes(
    S: float, K: float, T: float, r: float, q: float, vol: float, call: bool
) -> float:
    d1 = (math.log(S / K) + (r - q + 0.5 * vol * vol) * T) / (vol * math.sqrt(T))
    d2 = d1 - vol * math.sqrt(T)
    n = lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))  # noqa: E731
    w = 1.0 if call else -1.0
    return w * (S * math.exp(-q * T) * n(w * d1) - K * math.exp(-r * T) * n(w * d2))


# --- literature values -------------------------------------------------------------------------


def test_binomial_price__hull_two_step_index_call() -> None:
    # Hull, OFOD, index option on a 2-step CRR tree: S=810, K=800, r=5%, q=2%, σ=20%, T=0.5 →
    # 53.39 (quant.md 6.3).
    price = binomial_price(
        810, 800, 0.5, 0.05, 0.02, 0.2, True, american=False, method="crr", steps=2
    )
    assert price == pytest.approx(53.3947, abs=1e-4)


@pytest.mark.parametrize(
    ("steps", "expected"), [(5, 4.4885), (30, 4.263), (50, 4.272), (100, 4.278), (500, 4.283)]
)
def test_binomial_price__hull_crr_american_put(steps: int, expected: float) -> None:
    # Hull, OFOD: American put S=K=50, r=10%, σ=40%, T=5/12 on textbook CRR trees (quant.md 6.3).
    price = binomial_price(50, 50, 5 / 12, 0.10, 0.0, 0.40, False, method="crr", steps=steps)
    assert price == pytest.approx(expected, abs=6e-4)


def test_binomial_price__quant_md_atm_american_put_reference() -> None:
    # QdFp high-precision reference 6.0903706 (quant.md 4.1): S=K=100, r=5%, σ=20%, T=1.
    assert binomial_price(100, 100, 1, 0.05, 0, 0.2, False) == pytest.approx(6.0903706, abs=2e-3)
    assert binomial_price(100, 100, 1, 0.05, 0, 0.2, False, steps=801) == pytest.approx(
        6.0903706, abs=5e-4
    )


# --- European against Black-Scholes -----------------------------------------------------------

EUROPEAN_CASES = [
    (100, 100, 1.0, 0.05, 0.0, 0.2, True),
    (60, 65, 0.25, 0.08, 0.0, 0.3, True),  # Haug 2.1334
    (100, 95, 0.5, 0.10, 0.05, 0.2, False),  # Haug 2.4648
    (42, 40, 0.75, 0.04, 0.08, 0.35, True),  # Haug 5.0975
    (75, 70, 0.5, 0.10, 0.05, 0.35, False),  # Haug 4.0870
    (100, 130, 2.0, 0.03, 0.01, 0.25, True),
    (100, 70, 0.1, 0.01, 0.0, 0.5, False),
]


@pytest.mark.parametrize("case", EUROPEAN_CASES)
def test_binomial_price__european_leisen_reimer_matches_black_scholes(case: tuple) -> None:
    S, K, T, r, q, vol, call = case
    tree = float(binomial_price(S, K, T, r, q, vol, call, american=False))
    assert tree == pytest.approx(_black_scholes(S, K, T, r, q, vol, call), rel=1e-4)


# --- American against QuantLib QdFp -------------------------------------------------------------

AMERICAN_CASES = [
    (spot, 40.0, days, 0.06, q, vol, call)
    for spot in (36.0, 40.0, 44.0)
    for days, vol in ((365, 0.2), (730, 0.2), (365, 0.4), (91, 0.3))
    for call, q in ((False, 0.0), (True, 0.05))
] + [(100.0, 100.0, 365, 0.05, 0.0, 0.2, False), (105.0, 100.0, 365, 0.03, 0.07, 0.25, True)]


def test_binomial_price__american_within_qdfp_tolerances() -> None:
    # Issue 3 targets: 2e-3 at 201 steps and 5e-4 at 801, over moneyness 0.9-1.1.
    cases = np.array([c[:6] for c in AMERICAN_CASES], dtype=float)
    calls = np.array([c[6] for c in AMERICAN_CASES])
    reference = np.array([_qdfp(*c) for c in AMERICAN_CASES])
    S, K, days, r, q, vol = cases.T
    coarse = binomial_price(S, K, days / 365, r, q, vol, calls, steps=201)
    fine = binomial_price(S, K, days / 365, r, q, vol, calls, steps=801)
    assert np.abs(coarse - reference).max() < 2e-3
    assert np.abs(fine - reference).max() < 5e-4


def _wide_grid(size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Moneyness 0.7-1.3, 7 days to 3 years, σ 0.1-0.6, r 0-8%, q 0-6%, puts and calls."""
    rng = np.random.default_rng(seed)
    spot = 100.0 * rng.uniform(0.7, 1.3, size)
    days = rng.integers(7, 3 * 365 + 1, size)
    vol = rng.uniform(0.1, 0.6, size)
    r = rng.uniform(0.0, 0.08, size)
    q = rng.uniform(0.0, 0.06, size)
    call = rng.random(size) < 0.5
    reference = np.array(
        [_qdfp(*c) for c in zip(spot, np.full(size, 100.0), days, r, q, vol, call, strict=True)]
    )
    return spot, days / 365, r, q, vol, call, reference


def test_binomial_price__american_wide_grid_against_qdfp() -> None:
    # Issue 3 targets (2e-3 at 201 steps, 5e-4 at 801) over a realistic domain, 120 random options.
    # They hold for almost every option; the exception is a spot within a few nodes of the
    # early-exercise boundary (deep ITM puts at high r, calls at high q), where the error depends
    # on where the boundary falls between the first nodes (~2|rK − qB|Δt, oscillating in n, so
    # neither Richardson extrapolation nor Broadie-Detemple smoothing removes it). Measured on
    # 400 options (seed 7): max 9.7e-3 at 201 and 1.4e-3 at 801, 5 of 400 beyond each target.
    # Here (120 options): max 5.3e-3 and 8.5e-4.
    spot, T, r, q, vol, call, reference = _wide_grid(120, 20250102)
    coarse = np.abs(binomial_price(spot, 100.0, T, r, q, vol, call, steps=201) - reference)
    fine = np.abs(binomial_price(spot, 100.0, T, r, q, vol, call, steps=801) - reference)
    assert np.median(coarse) < 1e-4
    assert np.median(fine) < 1e-5
    assert (coarse <= 2e-3).mean() >= 0.95  # 0.958 measured on this grid
    assert (fine <= 5e-4).mean() >= 0.98  # 0.992 measured
    assert coarse.max() < 1.2e-2
    assert fine.max() < 2e-3


def test_binomial_price__crr_smoothing_and_extrapolation_bbsr() -> None:
    # Broadie-Detemple BBSR: CRR with Black-Scholes values one step before expiry, then
    # Richardson with n/2 steps, against plain CRR (which oscillates) on the same wide grid.
    spot, T, r, q, vol, call, reference = _wide_grid(40, 7)
    bbsr = binomial_price(spot, 100.0, T, r, q, vol, call, steps=200, method="crr", smooth=True)
    plain = binomial_price(spot, 100.0, T, r, q, vol, call, steps=200, method="crr")
    assert np.abs(bbsr - reference).max() < 5e-3
    assert np.median(np.abs(bbsr - reference)) < 0.1 * np.median(np.abs(plain - reference))
    # European BBS: smooth O(1/n) error, half at twice the steps.
    bs = _black_scholes(100.0, 100.0, 1.0, 0.05, 0.01, 0.25, True)
    e200, e400 = (
        float(binomial_price(100, 100, 1, 0.05, 0.01, 0.25, True, american=False, method="crr",
                             steps=n, smooth=True)) - bs
        for n in (200, 400)
    )  # fmt: skip
    assert abs(e200) < 5e-3
    assert e400 / e200 == pytest.approx(0.5, abs=0.02)


def test_binomial_price__american_quant_md_k40_references() -> None:
    # quant.md 6.2, QdFp high precision: puts K=40, r=6%.
    rows = [
        (36, 0.2, 1, 4.4867),
        (36, 0.2, 2, 4.8483),
        (36, 0.4, 1, 7.1090),
        (40, 0.2, 1, 2.3196),
        (44, 0.2, 1, 1.1130),
    ]
    for spot, vol, T, expected in rows:
        assert binomial_price(spot, 40, T, 0.06, 0, vol, False) == pytest.approx(expected, abs=2e-3)


def test_binomial_price__crr_and_leisen_reimer_agree_at_many_steps() -> None:
    crr = binomial_price(100, 100, 1, 0.05, 0, 0.2, False, method="crr", steps=2000)
    lr = binomial_price(100, 100, 1, 0.05, 0, 0.2, False, steps=801)
    assert crr == pytest.approx(lr, abs=2e-3)


def test_binomial_price__american_call_without_dividends_is_european() -> None:
    american = binomial_price(100, 90, 1, 0.05, 0.0, 0.3, True)
    european = binomial_price(100, 90, 1, 0.05, 0.0, 0.3, True, american=False)
    assert american == pytest.approx(european, abs=2e-4)


# --- discrete dividends -------------------------------------------------------------------------

DIVIDEND_CASES = [
    (100.0, 100.0, 365, True, [(0.5, 2.0)]),
    (100.0, 100.0, 365, False, [(0.5, 8.0)]),
    (100.0, 90.0, 365, True, [(100 / 365, 3.0), (280 / 365, 3.0)]),
    (50.0, 50.0, 730, False, [(0.25 * k, 1.0) for k in range(1, 8)]),
    (40.0, 35.0, 365, True, [(0.1, 0.5), (0.35, 0.5), (0.6, 0.5), (0.85, 0.5)]),
]


@pytest.mark.parametrize("case", DIVIDEND_CASES)
def test_binomial_price__cash_dividends_match_quantlib_escrowed_fd(case: tuple) -> None:
    spot, strike, days, call, dividends = case
    reference = _fd_escrowed(spot, strike, days, 0.05, 0.25, call, dividends)
    tree = binomial_price(spot, strike, days / 365, 0.05, 0.0, 0.25, call, dividends=dividends)
    assert tree == pytest.approx(reference, abs=1e-2)


def test_binomial_price__call_exercises_early_before_a_large_dividend() -> None:
    dividends = [(0.5, 10.0)]
    american = binomial_price(120, 100, 1, 0.05, 0, 0.2, True, dividends=dividends)
    european = binomial_price(120, 100, 1, 0.05, 0, 0.2, True, dividends=dividends, american=False)
    # Exercising just before the dividend is worth at least S − K discounted for half a year less.
    assert american > european + 1.0
    assert american >= 120 - 100


def test_binomial_price__dividend_on_the_expiry_date() -> None:
    dividends = [(1.0, 5.0)]
    reference = _fd_escrowed(100, 110, 365, 0.05, 0.25, True, dividends)
    tree = binomial_price(100, 110, 1, 0.05, 0, 0.25, True, dividends=dividends, steps=801)
    assert tree == pytest.approx(reference, abs=1e-2)
    # A European holder gets the ex-dividend stock: S − PV(D) in Black-Scholes.
    european = binomial_price(100, 110, 1, 0.05, 0, 0.25, True, dividends=dividends, american=False)
    expected = _black_scholes(100 - 5 * math.exp(-0.05), 110, 1, 0.05, 0, 0.25, True)
    assert european == pytest.approx(expected, rel=1e-4)


def test_binomial_price__dividends_after_expiry_are_ignored() -> None:
    plain = binomial_price(100, 100, 0.5, 0.05, 0, 0.2, False)
    late = binomial_price(100, 100, 0.5, 0.05, 0, 0.2, False, dividends=[(0.75, 3.0)])
    assert late == plain


def test_binomial_price__dividend_larger_than_spot_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="dividend cannot exceed the stock price"):
        binomial_price(10, 10, 1, 0.05, 0, 0.2, False, dividends=[(0.5, 12.0)])
    with pytest.raises(InvalidInputError, match="dividends"):
        binomial_price(10, 10, 1, 0.05, 0, 0.2, False, dividends=[(0.2, 6.0), (0.6, 6.0)])


@pytest.mark.parametrize("bad", [[(0.5,)], [(-0.1, 1.0)], [(0.5, -1.0)], [(0.5, np.nan)], "x"])
def test_binomial_price__malformed_dividend_schedule_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="dividends"):
        binomial_price(100, 100, 1, 0.05, 0, 0.2, False, dividends=bad)  # type: ignore[arg-type]


# --- Greeks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spot", "call", "american", "dividends"),
    [
        (100.0, False, True, None),
        (90.0, False, True, None),
        (110.0, True, False, None),
        (100.0, True, True, [(0.4, 3.0)]),
        (95.0, True, True, None),
    ],
)
def test_binomial_greeks__match_central_differences(
    spot: float, call: bool, american: bool, dividends: list | None
) -> None:
    # The node Greeks of an 801-step tree against central differences of a 3201-step tree: a
    # finer tree, because an American tree price has small kinks in S where the exercise
    # boundary crosses a node, which differences with a small bump would pick up.
    strike, T, r, q, vol = 100.0, 1.0, 0.05, 0.02, 0.25
    g = binomial_greeks(
        spot, strike, T, r, q, vol, call, american=american, dividends=dividends, steps=801
    )

    def price(s: float, t: float, shift: float = 0.0) -> float:
        divs = None if dividends is None else [(d - shift, a) for d, a in dividends]
        return float(
            binomial_price(
                s, strike, t, r, q, vol, call, american=american, dividends=divs, steps=3201
            )
        )

    h = 1.0
    up, mid, down = price(spot + h, T), price(spot, T), price(spot - h, T)
    assert g.price == pytest.approx(mid, abs=5e-4)
    assert g.delta == pytest.approx((up - down) / (2 * h), abs=1e-3)
    assert g.gamma == pytest.approx((up - 2 * mid + down) / (h * h), rel=2e-2)
    # Calendar theta: a day later the expiry and every dividend are that much closer.
    dt = 0.01
    later = price(spot, T - dt, dt)
    earlier = price(spot, T + dt, -dt)
    assert g.theta == pytest.approx((later - earlier) / (2 * dt), rel=2e-2)


def test_binomial_greeks__european_match_black_scholes_closed_forms() -> None:
    S, K, T, r, q, vol = 49.0, 50.0, 20 / 52, 0.05, 0.0, 0.2  # Hull's Greeks example
    g = binomial_greeks(S, K, T, r, q, vol, True, american=False, steps=801)
    assert g.price == pytest.approx(2.4005, abs=1e-4)
    assert g.delta == pytest.approx(0.5216, abs=1e-3)
    assert g.gamma == pytest.approx(0.0655, abs=5e-4)
    assert g.theta == pytest.approx(-4.3053, abs=1e-2)


# --- edge cases ---------------------------------------------------------------------------------


def test_binomial_price__zero_time_is_intrinsic() -> None:
    prices = binomial_price([90, 100, 110], 100, 0.0, 0.05, 0, 0.2, [False, True, True])
    np.testing.assert_array_equal(prices, [10.0, 0.0, 10.0])
    g = binomial_greeks(110, 100, 0.0, 0.05, 0, 0.2, True)
    assert (g.delta, g.gamma) == (1.0, 0.0)


def test_binomial_price__zero_volatility_is_the_deterministic_value() -> None:
    # Put K=100, S=90, r=5%: exercise at once (10) beats waiting (K e^{-rT} − S < 10).
    assert binomial_price(90, 100, 1, 0.05, 0, 0.0, False) == pytest.approx(10.0)
    # European call: discounted forward intrinsic.
    expected = 100 * math.exp(-0.01) - 95 * math.exp(-0.05)
    assert binomial_price(100, 95, 1, 0.05, 0.01, 0.0, True, american=False) == pytest.approx(
        expected
    )


def test_binomial_price__deep_in_and_out_of_the_money() -> None:
    deep_otm = binomial_price(100, 300, 0.25, 0.05, 0, 0.2, True)
    deep_itm_put = binomial_price(100, 300, 0.25, 0.05, 0, 0.2, False)
    assert 0.0 <= deep_otm < 1e-12
    assert deep_itm_put == pytest.approx(200.0)  # exercised at once
    tiny_vol = binomial_price(100, 50, 1, 0.05, 0, 1e-4, True, american=False)
    assert tiny_vol == pytest.approx(100 - 50 * math.exp(-0.05), rel=1e-12)


def test_binomial_price__invalid_elements_are_nan_and_shapes_broadcast() -> None:
    prices = binomial_price(np.array([[100.0], [np.nan]]), [90, 100, -1], 1, 0.05, 0, 0.2, False)
    assert prices.shape == (2, 3)
    assert np.isnan(prices[1]).all()
    assert np.isnan(prices[0, 2])
    assert np.isfinite(prices[0, :2]).all()
    assert binomial_price([], 100, 1, 0.05, 0, 0.2, False).shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 200}, "odd"),
        ({"steps": 0}, "at least"),
        ({"method": "tian"}, "method"),
        ({"steps": 2.5}, "integer"),
    ],
)
def test_binomial_price__bad_tree_settings_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        binomial_price(100, 100, 1, 0.05, 0, 0.2, False, **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    spot=st.floats(50, 150),
    strike=st.floats(50, 150),
    T=st.floats(0.05, 2.0),
    vol=st.floats(0.05, 0.8),
    r=st.floats(0.0, 0.1),
)
def test_binomial_price__american_bounds_and_parity(
    spot: float, strike: float, T: float, vol: float, r: float
) -> None:
    call, put = binomial_price(spot, strike, T, r, 0.0, vol, [True, False], steps=101)
    european_put = binomial_price(spot, strike, T, r, 0.0, vol, False, steps=101, american=False)
    assert put >= max(strike - spot, 0.0) - 1e-12
    assert put >= european_put - 1e-3
    # American bounds on C − P without dividends: S − K ≤ C − P ≤ S − K e^{−rT}.
    assert spot - strike - 2e-3 <= call - put <= spot - strike * math.exp(-r * T) + 2e-3
