"""From a chain to smiles: forwards and volatilities against the simulator's truth, planted
faults, bad rows, de-Americanization and the stress regimes of the simulator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from periscope import schema
from periscope.pricing.binomial import binomial_price
from periscope.pricing.black import black_price
from periscope.simulator.market import STRESS_SCENARIOS, Market, SimulationConfig
from periscope.volatility.cleaning import CleaningConfig, QuoteFlag
from periscope.volatility.forwards import ForwardStatus
from periscope.volatility.implied import implied_volatility_black
from periscope.volatility.quotes import NOT_INVERTED, european_equivalent, prepare_smiles
from periscope.volatility.rates import ZeroCurve

# The default universe's first 16 names: index (I:SPX), ETFs (SPY...), stocks up to XOM.
CONFIG = SimulationConfig(seed=11, n_underlyings=16, n_days=30)


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(CONFIG)


def _true_curve(market: Market, day: dt.date) -> ZeroCurve:
    tenors = np.linspace(1e-3, 4.0, 200)
    return ZeroCurve(tuple(tenors), tuple(market.rate_curve(day).zero_rate(tenors)))


def _errors(prepared, truth: xr.Dataset, longest: float) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Relative forward errors of the liquid expiries (parity OK, 2 days to ``longest``) and
    mid-IV errors of their used quotes within two ATM deviations."""
    forward_errors, iv_errors = [], []
    for j in range(prepared.expiry.size):
        t = prepared.expiry_time[j]
        if prepared.forward_status[j] != ForwardStatus.OK or not 2 / 365 <= t <= longest:
            continue
        members = prepared.slice_index == j
        forward_errors.append(prepared.forward[j] / np.median(truth.forward.values[members]) - 1)
        near = np.abs(prepared.log_moneyness) < 2 * 0.3 * np.sqrt(t)
        used = members & prepared.used_in_fit & near
        iv_errors += (prepared.iv_mid[used] - truth.true_volatility.values[used]).tolist()
    return np.abs(forward_errors), np.array(iv_errors)


def test_prepare_smiles__index_forwards_discounts_and_volatilities(market: Market) -> None:
    for day in (market.days[3], market.days[23]):
        truth = market.chain("I:SPX", day).dataset()
        prepared = prepare_smiles(truth)  # no curve: discount factors from parity
        forward_errors, iv_errors = _errors(prepared, truth, 3.0)
        assert forward_errors.size > 30
        assert forward_errors.max() < 2e-5
        rate = np.array(
            [
                np.median(truth.rate.values[prepared.slice_index == j])
                for j in range(prepared.expiry.size)
            ]
        )
        true_df = np.exp(-rate * prepared.expiry_time)
        ok = prepared.expiry_time > 7 / 365
        np.testing.assert_allclose(prepared.discount_factor[ok], true_df[ok], rtol=1e-3)
        # European quotes on ticks: the mid IV is within a few hundredths of a vol point.
        assert np.sqrt(np.mean(iv_errors**2)) < 1e-3


def test_prepare_smiles__smiles_are_consistent_with_the_contract_arrays(market: Market) -> None:
    truth = market.chain("I:SPX", market.days[12]).dataset()
    prepared = prepare_smiles(truth)
    size = truth.sizes[schema.CONTRACT]
    for name in ("flags", "iv_bid", "iv_mid", "iv_ask", "iv_status", "used_in_fit"):
        assert getattr(prepared, name).shape == (size,)
    np.testing.assert_array_equal(prepared.used_in_fit, prepared.flags == 0)
    times = [smile.time_to_expiry for smile in prepared.smiles]
    assert times == sorted(times)
    assert len(prepared.smiles) == int(prepared.has_smile.sum())
    assert sum(s.size for s in prepared.smiles) == prepared.counts["used"]
    for smile in prepared.smiles:
        assert np.all(np.diff(smile.strike) >= 0)
        assert np.all(np.isfinite(smile.iv_mid))
        assert np.all(smile.vega > 0)
        np.testing.assert_array_equal(smile.is_call, smile.strike >= smile.forward)
        np.testing.assert_allclose(smile.log_moneyness, np.log(smile.strike / smile.forward))
        finite = np.isfinite(smile.iv_bid)
        assert np.all(smile.iv_bid[finite] <= smile.iv_mid[finite])
        assert np.all(smile.iv_mid <= smile.iv_ask)
    assert prepared.expiry_counts["total"].sum() == size
    assert prepared.underlying == "I:SPX"
    assert prepared.spot == pytest.approx(market.spot("I:SPX", market.days[12]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ticker", "model", "tolerance"),
    [
        ("SPY", "yield", 1e-4),
        ("QQQ", "yield", 1e-4),
        ("AAPL", "cash", 1e-4),
        # With a 2-3 % dividend yield the truth's own exercise model (linear accrual of the
        # unpaid dividends on a 96-step tree) and ours (cash dividends spread evenly) differ in
        # the premium by up to ~2e-4 of the forward.
        ("XOM", "cash", 2e-4),
        ("JPM", "cash", 2e-4),
    ],
)
def test_prepare_smiles__american_forwards_within_1e4(
    market: Market, ticker: str, model: str, tolerance: float
) -> None:
    # ETFs pay a yield in the simulator, stocks cash dividends: the caller says which.
    config = CleaningConfig(dividend_model=model)  # type: ignore[arg-type]
    for day in (market.days[4], market.days[21]):
        truth = market.chain(ticker, day).dataset()
        prepared = prepare_smiles(truth, _true_curve(market, day), config=config)
        forward_errors, iv_errors = _errors(prepared, truth, 0.5)
        assert forward_errors.size >= 4
        assert np.median(forward_errors) < tolerance / 2
        assert forward_errors.max() < tolerance
        # The truth's own American prices come from a 96-step CRR tree: ~1e-3 of noise.
        assert np.sqrt(np.mean(iv_errors**2)) < 2.5e-3
        american = truth.exercise_style.values == "american"
        inverted = prepared.iv_status != NOT_INVERTED
        assert american.all()
        np.testing.assert_array_equal(inverted & ~prepared.used_in_fit, False)


def test_prepare_smiles__flags_count_the_planted_faults(market: Market) -> None:
    # The simulator plants ~0.3 % missing, ~0.2 % crossed and ~3 % stale quotes.
    chain = market.chain("I:SPX", market.days[7])
    prepared = prepare_smiles(chain.dataset())
    total = prepared.counts["total"]
    missing = (prepared.flags & QuoteFlag.MISSING_QUOTE) != 0
    np.testing.assert_array_equal(missing, ~chain.quote_present)
    assert 0.001 < prepared.counts["crossed"] / total < 0.0035
    assert 0.022 < prepared.counts["stale"] / total < 0.038
    stale_age = (
        np.datetime64(chain.snapshot.replace(tzinfo=None), "ns") - chain.columns[schema.QUOTE_TIME]
    )
    planted = stale_age > np.timedelta64(15, "m")
    assert prepared.counts["stale"] == int(planted.sum())
    assert prepared.counts["not_otm"] > 0.4 * total
    for name, per_expiry in prepared.expiry_counts.items():
        assert per_expiry.sum() == prepared.counts[name]


def test_prepare_smiles__bad_rows_are_flagged_never_raised(market: Market) -> None:
    truth = market.chain("XOM", market.days[5]).dataset()
    bid, ask = truth.bid.values.copy(), truth.ask.values.copy()
    bid[:5] = -1.0
    ask[5:10] = np.nan
    ask[10:15] = 0.0
    shares = truth.shares_per_contract.values.copy()
    shares[15:20] = 150.0
    broken = truth.assign(bid=(schema.CONTRACT, bid), ask=(schema.CONTRACT, ask))
    broken = broken.assign_coords(shares_per_contract=(schema.CONTRACT, shares))
    prepared = prepare_smiles(broken)
    assert ((prepared.flags[:5] & QuoteFlag.ZERO_BID) != 0).all()
    assert ((prepared.flags[5:15] & QuoteFlag.MISSING_QUOTE) != 0).all()
    assert ((prepared.flags[15:20] & QuoteFlag.NONSTANDARD) != 0).all()
    assert not prepared.used_in_fit[:20].any()
    assert prepared.smiles

    # Expired: value the same chain after its first expiry has settled.
    late = truth.assign(
        snapshot_time=truth.snapshot_time + np.timedelta64(40, "D"),
        underlying_time=truth.underlying_time + np.timedelta64(40, "D"),
        quote_time=truth.quote_time + np.timedelta64(40, "D"),
    )
    expired = prepare_smiles(late)
    assert expired.counts["expired"] > 0
    assert not expired.used_in_fit[expired.time_to_expiry <= 0].any()

    # No underlying price: European treatment of the American quotes, still no exception.
    blind = prepare_smiles(truth.assign(underlying_price=truth.underlying_price * np.nan))
    assert np.isnan(blind.spot)
    assert blind.smiles


def test_prepare_smiles__empty_chain() -> None:
    prepared = prepare_smiles(schema.empty_chain())
    assert prepared.smiles == []
    assert prepared.flags.shape == (0,)
    assert prepared.expiry.shape == (0,)
    assert prepared.counts["total"] == 0


def test_prepare_smiles__few_quotes_flag_whole_expiries(market: Market) -> None:
    truth = market.chain("AAPL", market.days[9]).dataset()
    prepared = prepare_smiles(truth, config=CleaningConfig(min_quotes=40))
    few = ~prepared.has_smile
    assert few.any()
    flagged = (prepared.flags & QuoteFlag.FEW_QUOTES) != 0
    assert not (flagged & prepared.has_smile[prepared.slice_index]).any()
    assert all(smile.size >= 40 for smile in prepared.smiles)


@pytest.mark.parametrize("model", ["yield", "cash"])
def test_european_equivalent__recovers_the_black_price(model: str) -> None:
    spot, rate, t = 100.0, 0.05, np.full(6, 0.75)
    strike = np.array([80.0, 90.0, 100.0, 100.0, 110.0, 120.0])
    is_call = np.array([False, False, False, True, True, True])
    sigma = 0.3
    if model == "yield":
        q = 0.02
        forward = spot * np.exp((rate - q) * t)
        american = binomial_price(spot, strike, t, rate, q, sigma, is_call)
    else:  # the cash model spreads the dividends' PV evenly: price the same schedule here
        times = (np.arange(8) + 0.5) * 0.75 / 8
        schedule = np.column_stack([times, np.full(8, 0.25)])
        pv = float((0.25 * np.exp(-rate * times)).sum())
        forward = (spot - pv) * np.exp(rate * t)
        american = binomial_price(spot, strike, t, rate, 0.0, sigma, is_call, dividends=schedule)
    discount = np.exp(-rate * t)
    european, premium = european_equivalent(
        american,
        spot,
        strike,
        t,
        forward,
        discount,
        is_call,
        dividend_model=model,  # type: ignore[arg-type]
    )
    assert (premium >= 0).all()
    assert premium[0] > 0.01  # the puts' early exercise is worth something at 5 %
    np.testing.assert_allclose(
        implied_volatility_black(european, forward, strike, t, discount, is_call), sigma, atol=2e-4
    )
    np.testing.assert_allclose(
        european, black_price(forward, strike, t, discount, sigma, is_call), atol=5e-3
    )


def test_stress_scenarios__override_truth_and_thin_short_expiries() -> None:
    base = Market(SimulationConfig(seed=11, n_underlyings=6, n_days=5))
    day = base.days[2]
    regular = base.surface("AAPL", day)
    steep = Market(
        SimulationConfig(seed=11, n_underlyings=6, n_days=5, stress=STRESS_SCENARIOS["steep_skew"])
    ).surface("AAPL", day)
    assert steep.rho == pytest.approx(regular.rho - 0.35)
    assert steep.eta * (1 + abs(steep.rho)) <= 2.0 + 1e-12
    inverted = Market(
        SimulationConfig(seed=11, n_underlyings=6, n_days=5, stress=STRESS_SCENARIOS["inverted"])
    ).surface("SPY", day)
    short, long = inverted.implied_volatility(np.zeros(2), np.array([0.02, 2.0]))
    assert short > 1.5 * long
    event = Market(
        SimulationConfig(seed=11, n_underlyings=6, n_days=5, stress=STRESS_SCENARIOS["earnings"])
    ).surface("I:SPX", day)
    assert event.event_variance == pytest.approx(0.0064)

    sparse_market = Market(
        SimulationConfig(
            seed=11, n_underlyings=6, n_days=5, stress=STRESS_SCENARIOS["sparse_short"]
        )
    )
    sparse = sparse_market.chain("AAPL", day)
    dense = base.chain("AAPL", day)
    short_expiry = dense.time_to_expiry < 21 / 365
    assert sparse.quote_present[short_expiry].mean() < 0.3
    # Longer expiries keep the regular quotes, draw for draw.
    np.testing.assert_array_equal(
        sparse.columns[schema.BID][~short_expiry], dense.columns[schema.BID][~short_expiry]
    )
    prepared = prepare_smiles(sparse.dataset())
    assert prepared.counts["missing_quote"] > 0.5 * short_expiry.sum()
