"""American implied volatility: round trips through the tree, QuantLib quotes, statuses."""

from __future__ import annotations

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the conventional alias)
from hypothesis import given, settings
from hypothesis import strategies as st

from periscope.errors import InvalidInputError
from periscope.pricing.binomial import binomial_price
from periscope.volatility.american import implied_volatility_american
from periscope.volatility.status import IVStatus


def test_implied_volatility_american__round_trip_table() -> None:
    spot = np.array([100, 100, 100, 36, 80, 100, 100, 100.0])
    strike = np.array([110, 90, 100, 40, 100, 100, 100, 100.0])
    vol = np.array([0.3, 0.2, 0.05, 0.2, 0.4, 0.01, 1.5, 0.25])
    call = np.array([0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)
    price = binomial_price(spot, strike, 0.5, 0.05, 0.02, vol, call)
    iv, status = implied_volatility_american(
        price, spot, strike, 0.5, 0.05, 0.02, call, return_status=True
    )
    np.testing.assert_allclose(iv, vol, atol=1e-8)
    assert (status == IVStatus.OK).all()


def test_implied_volatility_american__round_trip_with_cash_dividends() -> None:
    dividends = [(0.25, 1.0), (0.75, 1.0)]
    strike = np.array([80.0, 100.0, 120.0])
    price = binomial_price(100, strike, 1, 0.05, 0, 0.3, [True, False, False], dividends=dividends)
    iv = implied_volatility_american(
        price, 100, strike, 1, 0.05, 0, [True, False, False], dividends=dividends
    )
    np.testing.assert_allclose(iv, 0.3, atol=1e-8)


def test_implied_volatility_american__recovers_quantlib_qdfp_volatility() -> None:
    # A QuantLib American put at σ = 27% (QdFp high precision) implies 27% back, up to the
    # tree's 201-step error (~2e-4 in price, i.e. ~1e-3 vol points for vega ~0.3 at T = 0.5).
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.01, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.27, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Put, 105.0), ql.AmericanExercise(today, today + 182)
    )
    option.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    iv = implied_volatility_american(option.NPV(), 100, 105, 182 / 365, 0.05, 0.01, False)
    assert iv == pytest.approx(0.27, abs=1e-4)


def test_implied_volatility_american__statuses() -> None:
    iv, status = implied_volatility_american(
        [5.0, 0.0, 150.0, np.nan, 10.0, -1.0],
        100,
        [110, 100, 100, 100, 100, 100],
        [1, 1, 1, 1, 0, 1],
        0.05,
        0,
        [False, True, True, True, True, True],
        return_status=True,
    )
    assert status.tolist() == [
        IVStatus.BELOW_INTRINSIC,  # a put worth less than exercising now (10)
        IVStatus.BELOW_INTRINSIC,  # a call below S − K e^{−rT}
        IVStatus.ABOVE_MAXIMUM,  # a call worth more than the stock
        IVStatus.INVALID_INPUT,
        IVStatus.INVALID_INPUT,  # T = 0
        IVStatus.INVALID_INPUT,  # negative price
    ]
    assert np.isnan(iv).all()


def test_implied_volatility_american__price_at_exercise_value_is_zero_vol() -> None:
    iv, status = implied_volatility_american(10.0, 90, 100, 1, 0.05, 0, False, return_status=True)
    assert (float(iv), int(status)) == (0.0, IVStatus.OK)


def test_implied_volatility_american__plain_return_and_shapes() -> None:
    price = binomial_price(100, [[90.0, 110.0]], 1, 0.03, 0, 0.2, False)
    iv = implied_volatility_american(price, 100, [[90.0, 110.0]], 1, 0.03, 0, False)
    assert iv.shape == (1, 2)
    np.testing.assert_allclose(iv, 0.2, atol=1e-8)


def test_implied_volatility_american__rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="odd"):
        implied_volatility_american(5.0, 100, 100, 1, 0.05, 0, False, steps=100)
    with pytest.raises(InvalidInputError, match="dividend"):
        implied_volatility_american(5.0, 10, 10, 1, 0.05, 0, False, dividends=[(0.5, 11.0)])


@settings(max_examples=25, deadline=None)
@given(
    moneyness=st.floats(0.8, 1.25),
    vol=st.floats(0.05, 1.0),
    T=st.floats(0.05, 2.0),
    call=st.booleans(),
)
def test_implied_volatility_american__round_trip_property(
    moneyness: float, vol: float, T: float, call: bool
) -> None:
    strike = 100.0 * moneyness
    price = binomial_price(100, strike, T, 0.04, 0.02, vol, call, steps=101)
    iv, status = implied_volatility_american(
        price, 100, strike, T, 0.04, 0.02, call, steps=101, return_status=True
    )
    if status != IVStatus.OK:
        pytest.fail(f"status {IVStatus(int(status))!r}")
    # The solver's contract is σ to within its tolerance (1e-9). Deep out of the money at low
    # volatility the price moves by ~70x σ's relative change, so comparing prices instead would
    # demand more than the tolerance gives.
    if abs(float(iv) - vol) <= 2e-9:
        return
    # Otherwise the price must be flat in σ to rounding (deep ITM American at or near exercise):
    # the σ found reproduces it. (It may sit on either side of the true one: at moneyness 0.8125,
    # σ 0.0625, T 0.5 a call's price moves by 1.5e-12 between σ and σ + 1.6e-8.)
    repriced = binomial_price(100, strike, T, 0.04, 0.02, float(iv), call, steps=101)
    assert repriced == pytest.approx(price, rel=1e-12, abs=1e-12)
