"""Forwards from put-call parity, rate smoothing, forward fallbacks and the zero curve."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.pricing.black import black_price
from periscope.volatility.cleaning import CleaningConfig
from periscope.volatility.forwards import (
    ForwardStatus,
    fill_forwards,
    huber_regression,
    parity_forward,
    parity_forwards,
    smooth_rates,
)
from periscope.volatility.rates import ZeroCurve


def _quotes(
    forward: float,
    discount: float,
    strike: np.ndarray,
    half_spread: float,
    rng: np.random.Generator | None = None,
    tick: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """Two-sided quotes around Black prices (σ = 20 %, T = 0.5), optionally rounded to ticks."""
    call = black_price(forward, strike, 0.5, discount, 0.2, True)
    put = black_price(forward, strike, 0.5, discount, 0.2, False)
    if rng is not None:
        call = call + rng.uniform(-0.4, 0.4, strike.size) * half_spread
        put = put + rng.uniform(-0.4, 0.4, strike.size) * half_spread
    quotes = [call - half_spread, call + half_spread, put - half_spread, put + half_spread]
    if tick:
        quotes = [np.floor(q / tick) * tick if i % 2 == 0 else np.ceil(q / tick) * tick
                  for i, q in enumerate(quotes)]  # fmt: skip
    return tuple(quotes)


def test_parity_forward__exact_quotes_give_forward_and_discount() -> None:
    strike = np.arange(80.0, 121.0, 5.0)
    cb, ca, pb, pa = _quotes(101.3, 0.97, strike, 0.05)
    fit = parity_forward(strike, cb, ca, pb, pa)
    assert fit.forward == pytest.approx(101.3, rel=1e-12)
    assert fit.discount_factor == pytest.approx(0.97, rel=1e-12)
    assert fit.pairs == 8  # 80 is 1.67 ATM deviations (σ√T = 0.141) away: outside the band
    assert fit.lower <= fit.forward <= fit.upper
    known = parity_forward(strike, cb, ca, pb, pa, 0.97)
    assert known.forward == pytest.approx(101.3, rel=1e-12)
    assert np.isnan(known.discount_error)


def test_parity_forward__noisy_ticked_quotes_within_a_hundredth_of_the_spread() -> None:
    rng = np.random.default_rng(3)
    strike = np.arange(90.0, 111.0, 1.0)
    cb, ca, pb, pa = _quotes(100.4, 0.98, strike, 0.05, rng, tick=0.01)
    fit = parity_forward(strike, cb, ca, pb, pa, 0.98)
    assert abs(fit.forward / 100.4 - 1) < 1e-4


def test_parity_forward__one_bad_pair_is_downweighted() -> None:
    # A stale call 1.5 above its value at one strike moves least squares by ~0.15; Huber
    # weights keep the forward within 0.01.
    strike = np.arange(90.0, 111.0, 2.0)
    cb, ca, pb, pa = _quotes(100.0, 0.99, strike, 0.05, np.random.default_rng(1))
    cb[5] += 1.5
    ca[5] += 1.5
    fit = parity_forward(strike, cb, ca, pb, pa, 0.99)
    assert fit.forward == pytest.approx(100.0, abs=0.01)


def test_parity_forward__band_leaves_far_strikes_out() -> None:
    strike = np.arange(50.0, 151.0, 5.0)
    cb, ca, pb, pa = _quotes(100.0, 1.0, strike, 0.05)
    fit = parity_forward(strike, cb, ca, pb, pa, 1.0, config=CleaningConfig(forward_band=0.5))
    # σ√T = 0.2·√0.5 = 0.141; half a deviation is ±7 % of the forward: 95, 100, 105.
    assert fit.pairs == 3
    wide = parity_forward(strike, cb, ca, pb, pa, 1.0, config=CleaningConfig(forward_band=10))
    assert wide.pairs == CleaningConfig().forward_pairs


def test_parity_forward__no_pairs_and_one_pair() -> None:
    none = parity_forward(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    assert none.pairs == 0
    assert np.isnan(none.forward)
    one = parity_forward(
        np.array([100.0]), np.array([5.0]), np.array([5.2]), np.array([4.0]), np.array([4.2]), 0.99
    )
    assert one.pairs == 1
    assert one.forward == pytest.approx(100.0 + 1.0 / 0.99)


def test_parity_forwards__rows_match_single_fits() -> None:
    strikes = [np.arange(90.0, 111.0, 2.5), np.arange(80.0, 121.0, 5.0)]
    rows = [
        _quotes(f, d, k, 0.03) for f, d, k in ((99.0, 0.995, strikes[0]), (104.0, 0.95, strikes[1]))
    ]
    width = max(k.size for k in strikes)
    tables = [np.full((2, width), np.nan) for _ in range(5)]
    for r, k in enumerate(strikes):
        tables[0][r, : k.size] = k
        for j in range(4):
            tables[j + 1][r, : k.size] = rows[r][j]
    fits = parity_forwards(*tables, None)
    np.testing.assert_allclose(fits.forward, [99.0, 104.0], rtol=1e-12)
    np.testing.assert_allclose(fits.discount_factor, [0.995, 0.95], rtol=1e-12)
    for r, k in enumerate(strikes):
        single = parity_forward(k, *rows[r])
        assert fits.forward[r] == pytest.approx(single.forward, rel=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    forward=st.floats(20.0, 5000.0),
    discount=st.floats(0.8, 1.0),
    width=st.floats(0.02, 0.3),
)
def test_parity_forward__recovers_any_forward_and_discount(
    forward: float, discount: float, width: float
) -> None:
    strike = forward * np.exp(np.linspace(-width, width, 11))
    cb, ca, pb, pa = _quotes(forward, discount, strike, 1e-4 * forward)
    fit = parity_forward(strike, cb, ca, pb, pa)
    assert fit.forward == pytest.approx(forward, rel=1e-9)
    assert fit.discount_factor == pytest.approx(discount, rel=1e-6)


def test_huber_regression__line_through_an_outlier() -> None:
    x = np.linspace(0.0, 1.0, 20)
    y = 2.0 + 3.0 * x
    y[7] += 50.0
    beta, cov = huber_regression(np.column_stack([np.ones(20), x]), y, np.full(20, 0.1))
    np.testing.assert_allclose(beta, [2.0, 3.0], atol=1e-6)
    assert np.all(np.isfinite(cov))


def test_smooth_rates__weights_by_error_and_extrapolates_flat() -> None:
    t = np.array([0.01, 0.1, 0.5, 1.0, 2.0])
    true = 0.04 + 0.005 * t
    df = np.exp(-true * t)
    df[0] *= 1.002  # a noisy short expiry with a large error...
    error = np.array([1e-3, 1e-5, 1e-5, 1e-5, 1e-5])  # ...says so
    rates = smooth_rates(t, df, error)
    np.testing.assert_allclose(rates[1:], true[1:], atol=1e-6)
    assert rates[0] == pytest.approx(0.04 + 0.005 * 0.01, abs=1e-6)  # the line, not its DF
    assert smooth_rates(t, np.full(5, np.nan), error).tolist() == [0.0] * 5


def test_smooth_rates__the_huber_regression_estimate_with_noise_and_an_outlier() -> None:
    # smooth_rates runs huber_regression's estimator compiled row-wise: the same line.
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0.02, 2.0, 15))
    error = rng.uniform(1e-5, 1e-4, 15)
    df = np.exp(-(0.045 - 0.004 * t) * t) + error * rng.standard_normal(15)
    df[3] += 0.01  # one bad expiry
    rates = smooth_rates(t, df, error)
    rate_error = error / (df * t)
    beta, _ = huber_regression(np.column_stack([np.ones(15), t]), -np.log(df) / t, rate_error)
    np.testing.assert_allclose(rates, beta[0] + beta[1] * t, rtol=0, atol=1e-8)
    assert rates[0] == pytest.approx(0.045 - 0.004 * t[0], abs=2e-4)


def test_fill_forwards__carry_interpolated_spot_carry_and_missing() -> None:
    t = np.array([0.1, 0.3, 0.5])
    forward = np.array([100.0 * np.exp(0.03 * 0.1), np.nan, 100.0 * np.exp(0.01 * 0.5)])
    status = np.array([0, 4, 0], dtype=np.int8)
    filled, new_status = fill_forwards(t, forward, status, np.ones(3), 100.0)
    assert filled[1] == pytest.approx(100.0 * np.exp(0.02 * 0.3))
    assert new_status.tolist() == [0, ForwardStatus.INTERPOLATED, 0]
    nothing = np.full(3, np.nan)
    filled, new_status = fill_forwards(t, nothing, status, np.exp(-0.04 * t), 100.0)
    np.testing.assert_allclose(filled, 100.0 * np.exp(0.04 * t))
    assert (new_status == ForwardStatus.SPOT_CARRY).all()
    _, new_status = fill_forwards(t, nothing, status, np.ones(3), float("nan"))
    assert (new_status == ForwardStatus.MISSING).all()


# -- zero curve ------------------------------------------------------------------------------


def test_zero_curve__linear_inside_flat_outside() -> None:
    curve = ZeroCurve((0.5, 1.0, 2.0), (0.03, 0.04, 0.045))
    np.testing.assert_allclose(
        curve.zero_rate([0.1, 0.5, 0.75, 1.5, 5.0]), [0.03, 0.03, 0.035, 0.0425, 0.045]
    )
    assert float(curve.discount_factor(2.0)) == pytest.approx(np.exp(-0.09))


@pytest.mark.parametrize(
    ("tenors", "rates"),
    [((), ()), ((1.0, 0.5), (0.01, 0.02)), ((1.0,), (np.nan,)), ((0.0,), (0.01,))],
)
def test_zero_curve__rejects_bad_tenors(
    tenors: tuple[float, ...], rates: tuple[float, ...]
) -> None:
    with pytest.raises(InvalidInputError):
        ZeroCurve(tenors, rates)


def _par_yields(curve: ZeroCurve, tenors: np.ndarray) -> np.ndarray:
    """Par yields of the curve: bills as bond-equivalent zero yields, semi-annual par bonds."""
    out = []
    for tenor in tenors:
        if tenor <= 1.0:
            out.append(2.0 * np.expm1(float(curve.zero_rate(tenor)) / 2.0))
            continue
        times = np.arange(tenor, 0.0, -0.5)[::-1]
        discounts = curve.discount_factor(times)
        out.append(2.0 * (1.0 - discounts[-1]) / discounts.sum())
    return np.array(out)


def test_zero_curve__from_par_yields_round_trips_a_flat_curve() -> None:
    tenors = np.array([1 / 12, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0])
    truth = ZeroCurve.flat(0.04)
    curve = ZeroCurve.from_par_yields(tenors, _par_yields(truth, tenors))
    np.testing.assert_allclose(curve.zero_rate(tenors), 0.04, atol=1e-12)


def test_zero_curve__from_par_yields_upward_curve_close_to_truth() -> None:
    # Coupons between tenors are discounted on the interpolated par curve: a few bp at most.
    tenors = np.array([0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0])
    truth = ZeroCurve(tuple(tenors), tuple(0.03 + 0.002 * tenors))
    curve = ZeroCurve.from_par_yields(tenors, _par_yields(truth, tenors))
    np.testing.assert_allclose(curve.zero_rate(tenors), truth.zero_rate(tenors), atol=3e-4)
    np.testing.assert_allclose(curve.zero_rate(tenors[:4]), truth.zero_rate(tenors[:4]), atol=2e-6)


def test_zero_curve__from_treasury_yields_dataset() -> None:
    tenors = np.array([0.25, 1.0, 2.0])
    values = np.array([[0.05, 0.05, np.nan], [0.04, 0.041, 0.042], [np.nan] * 3])
    dates = np.array(["2025-01-02", "2025-01-03", "2025-01-06"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {schema.TREASURY_YIELD: ((schema.DATE, schema.TENOR), values)},
        coords={schema.DATE: dates, schema.TENOR: tenors},
    )
    latest = ZeroCurve.from_treasury_yields(ds)
    assert latest.tenors == (0.25, 1.0, 2.0)
    assert float(latest.zero_rate(0.25)) == pytest.approx(2 * np.log1p(0.02))
    first = ZeroCurve.from_treasury_yields(ds, dt.date(2025, 1, 2))
    assert first.tenors == (0.25, 1.0)
    with pytest.raises(InvalidInputError):
        ZeroCurve.from_treasury_yields(ds, dt.date(2024, 12, 31))
