"""From a chain to smiles: forwards and volatilities against the simulator's truth, planted
faults, bad rows, de-Americanization and the stress regimes of the simulator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.pricing.binomial import binomial_price
from periscope.pricing.black import black_price
from periscope.simulator.market import STRESS_SCENARIOS, Market, SimulationConfig
from periscope.volatility import quotes
from periscope.volatility.cleaning import CleaningConfig, QuoteFlag
from periscope.volatility.deamericanize import (
    CASH_DIVIDENDS,
    CashDividends,
    early_exercise_premium,
)
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


def test_prepare_smiles__duplicate_contracts_keep_the_tightest_quote(market: Market) -> None:
    truth = market.chain("XOM", market.days[5]).dataset()
    size = truth.sizes[schema.CONTRACT]
    single = prepare_smiles(truth)
    two_sided = np.flatnonzero((truth.bid.values > 0) & (truth.ask.values > truth.bid.values))
    picked = truth.isel({schema.CONTRACT: two_sided[[3, 40, 41, 200]]})
    copies = []
    for tag, ask in (("W", picked.ask + 0.05), ("T", (picked.bid + picked.ask) / 2)):
        copy = picked.assign(ask=ask)
        copies.append(copy.assign_coords(ticker=picked.ticker.str.replace("O:", f"O:{tag}")))
    prepared = prepare_smiles(xr.concat([truth, *copies], dim=schema.CONTRACT))
    duplicate = (prepared.flags & QuoteFlag.NONSTANDARD) != 0
    # The tighter copy wins: the original and the wider copy are marked, nothing else.
    assert not duplicate[size + 4 :].any()
    assert duplicate[size : size + 4].all()
    assert duplicate[two_sided[[3, 40, 41, 200]]].all()
    others = np.setdiff1d(np.arange(size), two_sided[[3, 40, 41, 200]])
    np.testing.assert_array_equal(
        duplicate[others], (single.flags[others] & QuoteFlag.NONSTANDARD) != 0
    )


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
        times = (np.arange(CASH_DIVIDENDS) + 0.5) * 0.75 / CASH_DIVIDENDS
        schedule = np.column_stack([times, np.full(CASH_DIVIDENDS, 2.0 / CASH_DIVIDENDS)])
        pv = float((2.0 / CASH_DIVIDENDS * np.exp(-rate * times)).sum())
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


def _vega(forward, strike, t, discount, sigma):  # type: ignore[no-untyped-def]
    d1 = np.log(forward / strike) / (sigma * np.sqrt(t)) + 0.5 * sigma * np.sqrt(t)
    return discount * forward * np.exp(-0.5 * d1**2) / np.sqrt(2 * np.pi) * np.sqrt(t)


@pytest.mark.parametrize("model", ["yield", "cash"])
def test_european_equivalent__reduced_trees_within_a_fraction_of_a_vol_bp(model: str) -> None:
    # Out-of-the-money quotes from a week to two years: the default trees (101 steps, rounds
    # until the volatility settles) against 801-step trees iterated to the fixed point.
    rng = np.random.default_rng(3)
    n = 150
    spot = 100.0
    t = np.exp(rng.uniform(np.log(7 / 365), np.log(2.0), n))
    sigma = rng.uniform(0.15, 0.5, n)
    rate, q = rng.uniform(0.01, 0.06, n), rng.uniform(0.0, 0.03, n)
    is_call = rng.random(n) < 0.5
    forward = spot * np.exp((rate - q) * t)
    strike = forward * np.exp(np.where(is_call, 1, -1) * rng.uniform(0, 2, n) * sigma * np.sqrt(t))
    price = binomial_price(spot, strike, t, rate, q, sigma, is_call, steps=401)
    discount = np.exp(-rate * t)
    args = (price, spot, strike, t, forward, discount, is_call)
    reference, _ = european_equivalent(
        *args,
        dividend_model=model,
        steps=801,
        rounds=6,
        tolerance=0.0,  # type: ignore[arg-type]
    )
    fast, premium = european_equivalent(*args, dividend_model=model)  # type: ignore[arg-type]
    vol_bp = np.abs(fast - reference) / _vega(forward, strike, t, discount, sigma) * 1e4
    assert (premium > 0).mean() > 0.5
    assert np.median(vol_bp) < 0.3
    assert vol_bp.max() < 2.5


def test_early_exercise_premium__zero_exactly_where_early_exercise_never_pays() -> None:
    spot, strike, t = 100.0, np.array([90.0, 100.0, 110.0]), np.full(3, 0.5)
    sigma = np.full(3, 0.3)
    calls, puts = np.ones(3, dtype=bool), np.zeros(3, dtype=bool)
    rate = np.full(3, 0.05)
    # No dividends (PV = S - F DF = 0) and a positive rate: calls are never exercised early.
    no_dividends = np.zeros(3)
    premium = early_exercise_premium(
        spot, strike, t, rate, no_dividends, sigma, calls, dividend_model="yield"
    )
    assert premium.tolist() == [0.0, 0.0, 0.0]
    assert (early_exercise_premium(spot, strike, t, rate, no_dividends, sigma, puts) > 0).all()
    # A zero rate: puts are never exercised early, whatever the dividends.
    zero = np.zeros(3)
    premium = early_exercise_premium(spot, strike, t, zero, np.full(3, 1.0), sigma, puts)
    assert premium.tolist() == [0.0, 0.0, 0.0]
    # A known cash dividend before expiry makes the in-the-money call worth exercising early;
    # one after expiry does not.
    before = np.array([[0.25, 3.0]])
    after = np.array([[0.75, 3.0]])
    pv_before = np.full(3, 3.0 * np.exp(-0.05 * 0.25))
    with_dividend = early_exercise_premium(
        spot, strike, t, rate, pv_before, sigma, calls, dividends=before
    )
    assert with_dividend[0] > 0.1
    assert early_exercise_premium(
        spot, strike, t, rate, no_dividends, sigma, calls, dividends=after
    ).tolist() == [0.0, 0.0, 0.0]
    # NaN in, NaN out.
    assert np.isnan(
        early_exercise_premium(spot, strike, t, rate, pv_before * np.nan, sigma, calls)
    ).all()


def test_european_equivalent__known_cash_dividends_recover_the_volatility() -> None:
    spot, rate, sigma = 100.0, 0.04, 0.3
    schedule = np.array([[0.1, 1.0], [0.35, 1.0], [0.6, 1.0], [0.85, 1.0]])
    t = np.repeat([0.2, 0.5, 1.0], 4)
    strike = np.tile([85.0, 95.0, 105.0, 115.0], 3)
    times, amounts = schedule[:, 0], schedule[:, 1]
    pv = np.array([(amounts * np.exp(-rate * times))[times <= e].sum() for e in t])
    forward = (spot - pv) * np.exp(rate * t)
    is_call = strike >= forward
    discount = np.exp(-rate * t)
    american = binomial_price(
        spot, strike, t, rate, 0.0, sigma, is_call, steps=801, dividends=schedule
    )
    european, premium = european_equivalent(
        american, spot, strike, t, forward, discount, is_call, dividends=schedule
    )
    assert (premium > 0).all()
    implied = implied_volatility_black(european, forward, strike, t, discount, is_call)
    np.testing.assert_allclose(implied, sigma, atol=1e-4)
    # The warm start from a premium already found changes nothing but the work.
    again, _ = european_equivalent(
        american, spot, strike, t, forward, discount, is_call, dividends=schedule,
        initial_premium=premium,
    )  # fmt: skip
    np.testing.assert_allclose(again, european, atol=2e-4)


def test_cash_dividends__schedule_from_rows_and_datasets() -> None:
    rows = [(dt.date(2025, 6, 2), 0.5), (dt.date(2025, 3, 3), 0.5), (dt.date(2025, 1, 2), 0.4)]
    dividends = CashDividends.from_rows(rows)
    assert dividends.ex_date.tolist() == [
        dt.date(2025, 1, 2), dt.date(2025, 3, 3), dt.date(2025, 6, 2)
    ]  # fmt: skip
    # Valued on 3 March 2025 at 15:45 New York: that day's dividend went ex at the open.
    valuation = dt.datetime(2025, 3, 3, 15, 45, tzinfo=schema.NEW_YORK).astimezone(dt.UTC)
    schedule = dividends.schedule(np.datetime64(valuation.replace(tzinfo=None), "ns"))
    ex = dt.datetime(2025, 6, 2, 9, 30, tzinfo=schema.NEW_YORK)
    assert schedule.shape == (1, 2)
    assert schedule[0, 0] == pytest.approx((ex - valuation).total_seconds() / (365 * 86400))
    assert schedule[0, 1] == 0.5

    table = xr.Dataset(
        {schema.CASH_AMOUNT: (schema.DIVIDEND, [0.5, 0.7, 0.5])},
        coords={
            schema.TICKER: (schema.DIVIDEND, np.array(["KO", "XOM", "KO"], dtype=object)),
            schema.EX_DIVIDEND_DATE: (
                schema.DIVIDEND,
                np.array(["2025-06-02", "2025-05-12", "2025-09-01"], dtype="datetime64[ns]"),
            ),
        },
    )
    ko = CashDividends.from_dataset(table, ticker="KO")
    assert ko.amount.tolist() == [0.5, 0.5]
    assert CashDividends.from_dataset(table).amount.size == 3
    with pytest.raises(InvalidInputError):
        CashDividends(np.array(["2025-01-02"], dtype="datetime64[D]"), np.array([-1.0]))
    with pytest.raises(InvalidInputError):
        CashDividends(np.array(["2025-01-02"], dtype="datetime64[D]"), np.array([1.0, 2.0]))


def _dividend_chain(  # type: ignore[no-untyped-def]
    schedule_rows: list[tuple[dt.date, float]], seed: int = 0
):
    """An American chain on a stock paying ``schedule_rows``, priced by 401-step trees paying
    them on their ex-dates (escrowed model, smile in σ), quotes rounded out to cents."""
    rng = np.random.default_rng(seed)
    spot, rate = 100.0, 0.045
    snapshot = dt.datetime(2025, 3, 3, 15, 45, tzinfo=schema.NEW_YORK).astimezone(dt.UTC)
    valuation = np.datetime64(snapshot.replace(tzinfo=None), "ns")
    schedule = CashDividends.from_rows(schedule_rows).schedule(valuation)
    columns: dict[str, list[object]] = {name: [] for name in (*schema.COORDS, "bid", "ask")}
    forwards = {}
    for days in (30, 61, 91, 182, 273, 365):
        expiry = snapshot.date() + dt.timedelta(days=days)
        t = (schema.settlement_instant(expiry, schema.PM) - snapshot).total_seconds() / (
            365 * 86400
        )
        live = schedule[:, 0] <= t
        pv = float((schedule[live, 1] * np.exp(-rate * schedule[live, 0])).sum())
        forward = (spot - pv) * np.exp(rate * t)
        forwards[np.datetime64(expiry, "D")] = forward
        width = 0.3 * np.sqrt(t)
        strike = np.unique(np.round(forward * np.exp(np.linspace(-2.5, 2, 40) * width)))
        sigma = 0.3 - 0.15 * np.log(strike / forward)
        for is_call in (True, False):
            price = binomial_price(
                spot, strike, t, rate, 0.0, sigma, is_call, steps=401, dividends=schedule
            )
            half = 0.01 + 0.005 * price * (1 + rng.uniform(0, 1, strike.size))
            bid = np.floor((price - half) / 0.01) * 0.01
            columns["bid"] += np.where(bid < 0.01, 0.0, bid).tolist()
            columns["ask"] += np.maximum(np.ceil((price + half) / 0.01) * 0.01, 0.01).tolist()
            columns[schema.STRIKE] += strike.tolist()
            columns[schema.RIGHT] += [schema.CALL if is_call else schema.PUT] * strike.size
            columns[schema.EXPIRY] += [np.datetime64(expiry, "D")] * strike.size
            columns[schema.SETTLEMENT] += [schema.PM] * strike.size
    n = len(columns["bid"])
    arrays: dict[str, object] = {name: np.asarray(values) for name, values in columns.items()}
    arrays[schema.EXPIRY] = np.asarray(columns[schema.EXPIRY], dtype="datetime64[D]")
    arrays[schema.TICKER] = np.array([f"O:DIV{i:06d}" for i in range(n)], dtype=object)
    for name, value in ((schema.UNDERLYING, "DIV"), (schema.ROOT, "DIV")):
        arrays[name] = np.full(n, value, dtype=object)
    arrays[schema.EXERCISE_STYLE] = np.full(n, "american", dtype=object)
    arrays[schema.SHARES_PER_CONTRACT] = np.full(n, 100.0)
    arrays[schema.UNDERLYING_PRICE] = np.full(n, spot)
    for name in (schema.QUOTE_TIME, schema.UNDERLYING_TIME, schema.SNAPSHOT_TIME):
        arrays[name] = np.full(n, valuation)
    return schema.build_chain_dataset(arrays), forwards, ZeroCurve.flat(rate)


def test_prepare_smiles__known_dividends_give_forwards_within_1e4() -> None:
    # Quarterly dividends of 1.0 (4 % a year): the first goes ex in 20 days.
    rows = [(dt.date(2025, 3, 23) + dt.timedelta(days=91 * i), 1.0) for i in range(6)]
    chain, forwards, curve = _dividend_chain(rows)
    dividends = CashDividends.from_rows(rows)
    errors = {}
    for label, kwargs in (("schedule", {"dividends": dividends}), ("spread", {})):
        prepared = prepare_smiles(chain, curve, **kwargs)  # type: ignore[arg-type]
        ok = prepared.forward_status == ForwardStatus.OK
        assert ok.sum() == 6
        truth = np.array([forwards[day] for day in prepared.expiry.astype("datetime64[D]")])
        errors[label] = np.abs(prepared.forward / truth - 1)
        if label == "schedule":
            # The smile's mid volatilities: the tree's σ back, within the quotes' rounding.
            used = prepared.used_in_fit & (np.abs(prepared.log_moneyness) < 0.2)
            k = prepared.log_moneyness[used]
            error = prepared.iv_mid[used] - (0.3 - 0.15 * k)
            assert np.sqrt(np.mean(error**2)) < 5e-4
            assert np.abs(error).max() < 3e-3
    assert errors["schedule"].max() < 1e-4
    # Spreading the same PV evenly misplaces the early exercise of calls before ex-dates.
    assert errors["spread"].max() > 2 * errors["schedule"].max()


@pytest.mark.parametrize("ticker", ["I:SPX", "JPM"])
def test_prepare_smiles__fit_volatilities_only_give_the_same_smiles(
    market: Market, ticker: str
) -> None:
    chain = market.chain(ticker, market.days[3]).dataset()
    full = prepare_smiles(chain)
    lean = prepare_smiles(chain, all_volatilities=False)
    np.testing.assert_array_equal(lean.flags, full.flags)
    np.testing.assert_array_equal(lean.forward, full.forward)
    assert len(lean.smiles) == len(full.smiles)
    for a, b in zip(lean.smiles, full.smiles, strict=True):
        for name in ("strike", "log_moneyness", "iv_bid", "iv_mid", "iv_ask", "vega"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # Only the smiles' candidates are inverted; the full run also inverts the others.
    candidates = full.flags == 0
    np.testing.assert_array_equal(lean.iv_mid[candidates], full.iv_mid[candidates])
    assert (lean.iv_status[~candidates] == NOT_INVERTED).all()
    assert np.isnan(lean.iv_mid[~candidates]).all()
    if ticker == "I:SPX":  # European: the in-the-money side has volatilities in the full run
        assert np.isfinite(full.iv_mid[~candidates]).sum() > 100


@pytest.mark.parametrize(
    ("model", "tickers", "bound"), [("yield", ("SPY", "QQQ"), 1.5e-4), ("cash", ("AAPL",), 1e-4)]
)
def test_prepare_smiles__american_forwards_near_their_fixed_point(
    model: str, tickers: tuple[str, ...], bound: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default four rounds (three coarse, an Aitken step of the forwards and the discount
    # factors, one fine) against fourteen rounds at 101 steps (the premiums' volatilities
    # converge with them), on the expiries up to a year. With the forwards' step alone the
    # ETFs' reach 3.7e-4.
    market = Market(SimulationConfig(seed=11, n_underlyings=6, n_days=3))
    config = CleaningConfig(dividend_model=model)  # type: ignore[arg-type]
    converged = CleaningConfig(
        dividend_model=model,  # type: ignore[arg-type]
        american_iterations=14,
        deamericanize_rounds=6,
    )
    errors = []
    for ticker in tickers:
        for day in market.days:
            chain = market.chain(ticker, day).dataset()
            fast = prepare_smiles(chain, config=config, all_volatilities=False)
            with monkeypatch.context() as patch:
                patch.setattr(quotes, "_COARSE_STEPS", 101)
                reference = prepare_smiles(chain, config=converged, all_volatilities=False)
            year = fast.expiry_time <= 1.0
            errors.append(np.abs(fast.forward[year] / reference.forward[year] - 1))
    error = np.concatenate(errors)
    assert error.size >= 10 * len(market.days) * len(tickers)
    assert error.max() <= bound
    assert np.median(error) <= 1e-5
