"""The simulated market against its own ground truth."""

import datetime as dt

import numpy as np
import pytest

from periscope import schema
from periscope.marketdata.tickers import parse_option_ticker
from periscope.schema import QualityFlag
from periscope.simulator import Market, SimulationConfig
from periscope.simulator.black import american_crr_price, black_scholes_greeks, black_scholes_price
from periscope.simulator.calendar import listings, third_friday


@pytest.fixture(scope="module")
def market():
    return Market(SimulationConfig(seed=3, n_days=40))


def test_market__is_deterministic_by_seed(market):
    again = Market(SimulationConfig(seed=3, n_days=40))
    a, b = market.chain("AAPL").dataset(), again.chain("AAPL").dataset()
    assert a.identical(b)
    other = Market(SimulationConfig(seed=4, n_days=40)).chain("AAPL").dataset()
    assert not np.array_equal(other[schema.BID].values, a[schema.BID].values, equal_nan=True)


def test_market__larger_universe_extends_the_default(market):
    big = Market(SimulationConfig(seed=3, n_days=40, n_underlyings=25))
    assert big.universe[:20] == market.universe
    assert big.spot("MSFT", big.today) == market.spot("MSFT", market.today)
    assert big.universe[-1].ticker == "SYN0005"


def test_market__scales_past_a_thousand_names():
    big = Market(SimulationConfig(seed=3, n_days=60, n_underlyings=1200))
    assert len(big.universe) == 1200
    assert big.chain("SYN1180").size > 0


def test_black_scholes_price__textbook_value():
    # Hull, Options Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, σ=20%, T=0.5
    args = [np.array([x]) for x in (42.0, 40.0, 0.5, 0.1, 0.0, 0.2)]
    call = black_scholes_price(*args, np.array([True]))
    put = black_scholes_price(*args, np.array([False]))
    assert call[0] == pytest.approx(4.76, abs=0.005)
    assert put[0] == pytest.approx(0.81, abs=0.005)


def test_black_scholes_greeks__match_finite_differences():
    s, k, t, r, q, v = (np.array([x]) for x in (100.0, 95.0, 0.4, 0.03, 0.01, 0.25))
    call = np.array([True])
    g = black_scholes_greeks(s, k, t, r, q, v, call)
    h = 1e-3
    price = lambda **kw: black_scholes_price(  # noqa: E731
        kw.get("s", s), k, kw.get("t", t), r, q, kw.get("v", v), call
    )[0]
    assert g["delta"][0] == pytest.approx((price(s=s + h) - price(s=s - h)) / (2 * h), rel=1e-5)
    gamma = (price(s=s + h) - 2 * price() + price(s=s - h)) / h**2
    assert g["gamma"][0] == pytest.approx(gamma, rel=1e-3)
    assert g["vega"][0] == pytest.approx(
        (price(v=v + h) - price(v=v - h)) / (2 * h) / 100, rel=1e-5
    )
    theta = -(price(t=t + h) - price(t=t - h)) / (2 * h) / 365
    assert g["theta"][0] == pytest.approx(theta, rel=1e-4)


def test_american_crr_price__bounds_and_convergence():
    s = np.full(3, 100.0)
    k = np.array([90.0, 100.0, 120.0])
    t, r, q, v = np.full(3, 1.0), np.full(3, 0.05), np.zeros(3), np.full(3, 0.3)
    puts = np.zeros(3, dtype=bool)
    american = american_crr_price(s, k, t, r, q, v, puts, steps=400)
    european = black_scholes_price(s, k, t, r, q, v, puts)
    assert (american >= european - 1e-9).all()
    assert (american >= k - s).all()
    calls = np.ones(3, dtype=bool)  # no dividends: an American call is worth the European one
    np.testing.assert_allclose(
        american_crr_price(s, k, t, r, q, v, calls, steps=400),
        black_scholes_price(s, k, t, r, q, v, calls),
        rtol=2e-3,
    )


def test_chain__index_prices_are_black_scholes_at_the_true_volatility(market):
    chain = market.chain("I:SPX")
    c = chain.columns
    spot = np.full(chain.size, chain.spot)
    is_call = c[schema.RIGHT] == "call"
    price = black_scholes_price(
        spot,
        c[schema.STRIKE],
        chain.time_to_expiry,
        chain.rate,
        chain.dividend_yield,
        chain.true_volatility,
        is_call,
    )
    np.testing.assert_allclose(price, chain.true_price, rtol=1e-12)
    # put-call parity of the truth
    ds = chain.dataset().set_index(
        contract=[schema.EXPIRY, schema.STRIKE, schema.ROOT, schema.RIGHT]
    )
    calls = ds.sel(right="call")
    puts = ds.sel(right="put")
    lhs = calls["true_price"].values - puts["true_price"].values
    t, r, q = calls["time_to_expiry"].values, calls["rate"].values, calls["dividend_yield"].values
    rhs = chain.spot * np.exp(-q * t) - calls[schema.STRIKE].values * np.exp(-r * t)
    np.testing.assert_allclose(lhs, rhs, atol=1e-8 * chain.spot)


def test_chain__quotes_bracket_the_truth_except_stale_and_crossed(market):
    ds = market.chain("SPY").dataset()
    flags = ds[schema.QUALITY].values
    clean = (flags & (QualityFlag.STALE | QualityFlag.CROSSED | QualityFlag.MISSING_QUOTE)) == 0
    bid, ask, truth = (ds[v].values[clean] for v in (schema.BID, schema.ASK, "true_price"))
    assert (bid <= truth + 1e-9).all()
    assert (ask >= truth - 1e-9).all()
    assert (flags & QualityFlag.STALE).any()
    assert (flags & QualityFlag.ZERO_BID).any()


def test_chain__spreads_widen_in_the_wings_and_greeks_vanish_deep_in_the_money(market):
    ds = market.chain("AAPL").dataset()
    z = np.abs(np.log(ds[schema.STRIKE] / ds["forward"])) / (
        ds["true_volatility"] * np.sqrt(ds["time_to_expiry"])
    )
    otm = np.where(
        ds[schema.RIGHT] == "call",
        ds[schema.STRIKE] > ds["forward"],
        ds[schema.STRIKE] < ds["forward"],
    )
    spread = ds[schema.RELATIVE_SPREAD].values
    near = spread[(z < 0.5).values & otm & np.isfinite(spread)]
    far = spread[(z > 2).values & otm & np.isfinite(spread)]
    assert np.median(far) > 2 * np.median(near)
    deep_itm = (z > 3).values & ~otm
    assert np.isnan(ds[schema.VENDOR_DELTA].values[deep_itm]).all()


def test_chain__vendor_iv_is_close_to_but_not_the_truth(market):
    ds = market.chain("MSFT").dataset()
    ok = np.isfinite(ds[schema.VENDOR_IV].values)
    ratio = ds[schema.VENDOR_IV].values[ok] / ds["true_volatility"].values[ok]
    assert abs(np.median(ratio) - 1) < 0.005
    assert 0.003 < ratio.std() < 0.03


def test_chain__calendar_has_0dte_am_pm_and_adjusted_contracts(market):
    spx = market.chain("I:SPX").dataset()
    today = np.datetime64(market.today, "ns")
    assert (spx[schema.EXPIRY] == today).any()  # 0DTE, PM-settled SPXW
    monthly = spx.where(spx[schema.ROOT] == "SPX", drop=True)
    assert set(monthly[schema.SETTLEMENT].values) == {"AM"}
    weekly = spx.where(spx[schema.ROOT] == "SPXW", drop=True)
    assert set(weekly[schema.SETTLEMENT].values) == {"PM"}
    intc = market.chain("INTC").dataset()
    adjusted = intc.where(intc[schema.ROOT] == "INTC1", drop=True)
    assert adjusted.sizes["contract"] > 0
    assert set(adjusted[schema.SHARES_PER_CONTRACT].values) == {150.0}
    assert parse_option_ticker(str(adjusted[schema.TICKER].values[0])).root == "INTC1"


def test_listings__third_friday_and_leaps():
    assert third_friday(2025, 3) == dt.date(2025, 3, 21)
    from periscope.simulator.universe import DEFAULT_UNIVERSE

    aapl = next(u for u in DEFAULT_UNIVERSE if u.ticker == "AAPL")
    expiries = [x.expiry for x in listings(aapl, dt.date(2025, 1, 6))]
    assert dt.date(2026, 1, 16) in expiries
    assert dt.date(2025, 1, 10) in expiries
    assert expiries == sorted(expiries)


def test_unusual_activity__planted_events_show_in_the_chain():
    market = Market(SimulationConfig(seed=3, n_days=40, n_underlyings=6))
    events = [e for day in market.days[-4:] for e in market.unusual_activity(day)]
    assert events
    for event in events[:5]:
        ds = market.chain(event.underlying, event.day).dataset().set_index(contract=schema.TICKER)
        row = ds.sel(contract=event.ticker)
        assert float(row[schema.VOLUME]) == event.volume >= 4 * event.open_interest


def test_surface__ssvi_is_butterfly_and_calendar_free(market):
    surface = market.surface("I:SPX", market.today)
    k = np.linspace(-1.5, 1.0, 201)
    t = np.array([0.02, 0.1, 0.5, 1.0, 2.0])
    w = np.array([surface.total_variance(k, np.full(k.size, ti)) for ti in t])
    assert (np.diff(w, axis=0) > 0).all()  # calendar: total variance increases with T
    assert surface.rho < 0
    assert surface.eta * (1 + abs(surface.rho)) <= 2
