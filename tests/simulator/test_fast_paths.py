"""The simulator's vectorised paths give exactly what the direct per-contract code gave.

The references below are the straightforward implementations the fast paths replaced (the CRR
roll-back over whole arrays, one ``json.dumps`` of a dict per contract, one
``format_option_ticker`` per contract). The market's ground truth and the served JSON must not
move by a bit: the accuracy tests of the analytics are calibrated on them.
"""

import json
import math
import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.marketdata.tickers import format_option_ticker
from periscope.simulator import STRESS_SCENARIOS, Market, SimulationConfig, payloads
from periscope.simulator.black import american_crr_price
from periscope.simulator.market import ChainTruth, _option_tickers


def _crr_reference(spot, strike, t_exp, rate, q, vol, is_call, pv, steps=96):
    t = np.maximum(t_exp, 1e-10)
    dt_ = t / steps
    u = np.exp(vol * np.sqrt(dt_))
    d = 1.0 / u
    growth = np.exp((rate - q) * dt_)
    p = np.clip((growth - d) / (u - d), 0.0, 1.0)
    disc = np.exp(-rate * dt_)
    sign = np.where(is_call, 1.0, -1.0)
    base = spot - pv
    j = np.arange(steps + 1, dtype=np.float64)
    log_u = np.log(u)[:, None]
    nodes = base[:, None] * np.exp(log_u * (2.0 * j[None, :] - steps))
    value = np.maximum(sign[:, None] * (nodes - strike[:, None]), 0.0)
    for i in range(steps - 1, -1, -1):
        value = disc[:, None] * (p[:, None] * value[:, 1:] + (1 - p[:, None]) * value[:, :-1])
        nodes = base[:, None] * np.exp(log_u * (2.0 * j[None, : i + 1] - i))
        unpaid = (pv * (1.0 - i / steps))[:, None]
        exercise = sign[:, None] * (nodes + unpaid - strike[:, None])
        value = np.maximum(value, exercise)
    intrinsic = np.maximum(sign * (spot - strike), 0.0)
    return np.where(t_exp > 0, value[:, 0], intrinsic)


@pytest.mark.parametrize("n", [1, 255, 700])
def test_crr_blocks__bit_identical_to_the_whole_array_rollback(n):
    rng = np.random.default_rng(n)
    spot = np.full(n, 230.0)
    strike = rng.uniform(120.0, 380.0, n)
    t = rng.uniform(0.001, 2.0, n)
    t[:: max(n // 7, 1)] = 0.0
    rate = rng.uniform(0.02, 0.05, n)
    q = np.where(rng.random(n) < 0.5, 0.0, 0.01)
    vol = rng.uniform(0.1, 0.9, n)
    call = rng.random(n) < 0.5
    # dividends in some blocks only, so both roll-back variants run
    pv = np.where(np.arange(n) >= 300, rng.uniform(0.0, 3.0, n), 0.0)
    got = american_crr_price(spot, strike, t, rate, q, vol, call, pv)
    assert np.array_equal(got, _crr_reference(spot, strike, t, rate, q, vol, call, pv))
    assert np.all(got >= np.maximum(np.where(call, spot - strike, strike - spot), 0.0) - 1e-12)


def _num(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _ns(value: np.datetime64) -> int:
    return int((value - np.datetime64(0, "ns")) / np.timedelta64(1, "ns"))


def _snapshot_reference(chain: ChainTruth, i: int) -> dict[str, Any]:
    """The per-contract snapshot object as the simulator first wrote it."""
    c, u = chain.columns, chain.underlying
    strike, right = float(c[schema.STRIKE][i]), str(c[schema.RIGHT][i])
    snap_ns = _ns(c[schema.SNAPSHOT_TIME][i])
    true_price = float(chain.true_price[i])
    mid = true_price
    has_quote = bool(chain.quote_present[i])
    if has_quote:
        mid = 0.5 * (float(c[schema.BID][i]) + float(c[schema.ASK][i]))
    break_even = strike + mid if right == schema.CALL else strike - mid
    last = float(c[schema.LAST_PRICE][i]) if chain.trade_present[i] else true_price
    volume = float(c[schema.VOLUME][i])
    previous = _num(max(true_price * 0.97, 0.01), 2)
    item: dict[str, Any] = {
        "break_even_price": _num(break_even),
        "day": {
            "open": _num(last if volume else previous, 2),
            "high": _num((last * 1.03) if volume else previous, 2),
            "low": _num((last * 0.97) if volume else previous, 2),
            "close": _num(last if volume else previous, 2),
            "previous_close": previous,
            "change": _num((last - previous) if volume else 0.0),
            "change_percent": _num(100 * (last - previous) / previous if volume else 0.0),
            "volume": volume,
            "vwap": _num(last if volume else 0.0, 4),
            "last_updated": snap_ns,
        },
        "details": {
            "contract_type": right,
            "exercise_style": str(c[schema.EXERCISE_STYLE][i]),
            "expiration_date": str(c[schema.EXPIRY][i].astype("datetime64[D]")),
            "shares_per_contract": float(c[schema.SHARES_PER_CONTRACT][i]),
            "strike_price": strike,
            "ticker": str(c[schema.TICKER][i]),
        },
        "open_interest": float(c[schema.OPEN_INTEREST][i]),
        "underlying_asset": {
            "ticker": u.ticker,
            "change_to_break_even": _num(break_even - chain.spot),
            "last_updated": snap_ns,
            "timeframe": "REAL-TIME",
        },
    }
    item["underlying_asset"]["value" if u.kind == "index" else "price"] = _num(chain.spot, 4)
    if not math.isnan(c[schema.VENDOR_DELTA][i]):
        item["greeks"] = {
            g: _num(c[f"vendor_{g}"][i], 6) for g in ("delta", "gamma", "theta", "vega")
        }
    if not math.isnan(c[schema.VENDOR_IV][i]):
        item["implied_volatility"] = _num(c[schema.VENDOR_IV][i], 6)
    if has_quote:
        item["last_quote"] = {
            "ask": float(c[schema.ASK][i]),
            "ask_size": float(c[schema.ASK_SIZE][i]),
            "ask_exchange": 316,
            "bid": float(c[schema.BID][i]),
            "bid_size": float(c[schema.BID_SIZE][i]),
            "bid_exchange": 303,
            "midpoint": _num(mid, 4),
            "last_updated": _ns(c[schema.QUOTE_TIME][i]),
            "timeframe": "REAL-TIME",
        }
    if chain.trade_present[i]:
        item["last_trade"] = {
            "price": float(c[schema.LAST_PRICE][i]),
            "size": int(c[schema.LAST_SIZE][i]),
            "exchange": 309,
            "sip_timestamp": _ns(c[schema.LAST_TIME][i]),
            "conditions": [209],
            "timeframe": "REAL-TIME",
        }
    return item


@pytest.fixture(scope="module")
def market():
    return Market(SimulationConfig(seed=13, n_underlyings=22, n_days=30))


@pytest.mark.parametrize("name", ["I:SPX", "SPY", "AAPL", "INTC", "SYN0002"])
def test_encoded_chain__same_json_as_per_contract_dicts(market, name):
    for day in (market.days[3], market.today):
        chain = market.chain(name, day)
        encoded = payloads.encode_chain(chain)
        assert len(encoded) == chain.size
        step = 1 if chain.size < 3000 else 7  # every contract, or a sample of the index's 10,000
        for i in range(0, chain.size, step):
            item = json.loads(encoded[i])
            want = _snapshot_reference(chain, i)
            assert item == want
            assert list(item) == list(want)  # same key order as Massive sends
        i = chain.size // 2
        assert payloads.contract_snapshot(chain, i) == _snapshot_reference(chain, i)


def test_encoded_chain__missing_quotes_and_trades_as_before():
    market = Market(
        SimulationConfig(
            seed=2, n_underlyings=6, n_days=10, stress=STRESS_SCENARIOS["sparse_short"]
        )
    )
    chain = market.chain("QQQ")
    assert (~chain.quote_present).sum() > 10
    assert (~chain.trade_present).sum() > 10
    assert [json.loads(b) for b in payloads.encode_chain(chain)] == [
        _snapshot_reference(chain, i) for i in range(chain.size)
    ]


def test_rounded__is_pythons_round():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(0.0, 100.0, 20_000),
            np.round(rng.uniform(-50.0, 50.0, 20_000), 3),  # halves at 2 digits
            np.round(rng.uniform(-5.0, 5.0, 20_000), 5),  # halves at 4 digits
            np.round(rng.uniform(-1.0, 1.0, 20_000), 7),  # halves at 6 digits
            [2.675, 0.125, -0.125, 1.00005, 5e-324, 0.0, -0.0, 1e300, np.inf, -np.inf, np.nan],
        ]
    )
    for digits in (2, 4, 6):
        got = payloads._rounded(values, digits)
        want = [round(float(v), digits) for v in values]
        assert [str(g) for g in got] == [str(w) for w in want]


def test_option_tickers__as_format_option_ticker(market):
    chain = market.chain("INTC")  # a root with a digit (INTC1) among the series
    c = chain.columns
    want = [
        format_option_ticker(r, e, "call" if k == schema.CALL else "put", s)
        for r, e, k, s in zip(
            c[schema.ROOT],
            c[schema.EXPIRY].astype("datetime64[D]").tolist(),
            c[schema.RIGHT],
            c[schema.STRIKE],
            strict=True,
        )
    ]
    assert c[schema.TICKER].tolist() == want
    with pytest.raises(InvalidInputError, match="8 digits"):
        _option_tickers(
            np.array(["X"], dtype=object),
            np.array(["2026-01-16"], dtype="datetime64[D]"),
            np.array([True]),
            np.array([123_456.0]),
        )


def test_synthetic_contracts__about_the_target_per_name():
    base = SimulationConfig(seed=7, n_underlyings=28, n_days=10)
    big = Market(SimulationConfig(seed=7, n_underlyings=28, n_days=10, synthetic_contracts=2000))
    regular = Market(base)
    sizes = np.array([big.chain(u.ticker).size for u in big.universe[20:]])
    assert abs(sizes.mean() - 2000) < 60
    assert sizes.min() > 1800
    assert sizes.max() < 2200
    assert np.mean([regular.chain(u.ticker).size for u in regular.universe[20:]]) < 1200
    chain = big.chain("SYN0003")
    assert len(set(chain.columns[schema.TICKER].tolist())) == chain.size
    assert np.all(chain.columns[schema.STRIKE] > 0)
    # the default universe is untouched, and so is everything else about a synthetic name
    assert big.chain("AAPL").dataset().identical(regular.chain("AAPL").dataset())
    assert big.spot("SYN0003", big.today) == regular.spot("SYN0003", regular.today)
    assert big.universe[21].weeklies
    assert not regular.universe[21].weeklies
    with pytest.raises(InvalidInputError, match="at least 200"):
        Market(SimulationConfig(n_underlyings=21, synthetic_contracts=50))


@pytest.mark.slow
def test_cli__synthetic_contracts_flag():
    command = [
        sys.executable,
        "-m",
        "periscope.simulator",
        "--port",
        "0",
        "--underlyings",
        "21",
        "--days",
        "20",
        "--api-key",
        "k",
        "--synthetic-contracts",
        "1500",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            base_url, key = server.stdout.readline().split()
            count, url = 0, f"{base_url}/v3/snapshot/options/SYN0001?limit=250"
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                while url:
                    body = client.get(url).json()
                    count += len(body["results"])
                    url = body.get("next_url")
            assert abs(count - 1500) < 75
        finally:
            server.terminate()
