"""Massive-shaped JSON for the simulated market (see ``reference/massive-api.md`` §1).

Per-contract snapshot objects are serialised once per chain and kept as bytes, so a page is a
join of pre-encoded items: the server stays fast enough to benchmark clients against.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np

from periscope import schema
from periscope.simulator.market import ChainTruth, Market

_NS = np.timedelta64(1, "ns")


def _ns(value: np.datetime64) -> int:
    return int((value - np.datetime64(0, "ns")) / _NS)


def _num(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def cfi_code(right: str, exercise_style: str) -> str:
    """ISO 10962 CFI of a listed option: call/put, American/European, stock/index, physical/cash."""
    cp = "C" if right == schema.CALL else "P"
    if exercise_style == "european":
        return f"O{cp}EICS"
    return f"O{cp}ASPS"


def contract_snapshot(chain: ChainTruth, i: int) -> dict[str, Any]:
    """The chain-snapshot object of contract ``i`` of ``chain``."""
    c = chain.columns
    u = chain.underlying
    strike = float(c[schema.STRIKE][i])
    right = str(c[schema.RIGHT][i])
    snap_ns = _ns(c[schema.SNAPSHOT_TIME][i])
    true_price = float(chain.true_price[i])
    mid = true_price
    has_quote = bool(chain.quote_present[i])
    if has_quote:
        bid, ask = float(c[schema.BID][i]), float(c[schema.ASK][i])
        mid = 0.5 * (bid + ask)
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
            "delta": _num(c[schema.VENDOR_DELTA][i], 6),
            "gamma": _num(c[schema.VENDOR_GAMMA][i], 6),
            "theta": _num(c[schema.VENDOR_THETA][i], 6),
            "vega": _num(c[schema.VENDOR_VEGA][i], 6),
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


def encode_chain(chain: ChainTruth) -> list[bytes]:
    """Every contract's snapshot object, JSON-encoded, in chain order."""
    return [
        json.dumps(contract_snapshot(chain, i), separators=(",", ":")).encode()
        for i in range(chain.size)
    ]


def contract_reference(chain: ChainTruth, i: int) -> dict[str, Any]:
    """The contracts-reference object of contract ``i``."""
    c = chain.columns
    shares = float(c[schema.SHARES_PER_CONTRACT][i])
    right = str(c[schema.RIGHT][i])
    style = str(c[schema.EXERCISE_STYLE][i])
    item: dict[str, Any] = {
        "cfi": cfi_code(right, style),
        "contract_type": right,
        "exercise_style": style,
        "expiration_date": str(c[schema.EXPIRY][i].astype("datetime64[D]")),
        "primary_exchange": "BATO",
        "shares_per_contract": shares,
        "strike_price": float(c[schema.STRIKE][i]),
        "ticker": str(c[schema.TICKER][i]),
        "underlying_ticker": chain.underlying.ticker,
    }
    if shares != 100:
        item["additional_underlyings"] = [
            {"type": "equity", "underlying": chain.underlying.symbol, "amount": shares}
        ]
        item["correction"] = 0
    return item


def midnight_ms(day: dt.date) -> int:
    """Unix milliseconds of midnight America/New_York on ``day`` (how daily bars are stamped)."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=schema.NEW_YORK)
    return int(start.timestamp() * 1000)


def underlying_bar(market: Market, ticker: str, day: dt.date) -> dict[str, Any]:
    """The daily aggregate of an underlying on ``day``."""
    o, h, low, c, v = market.day_bar(ticker, day)
    return {
        "o": _num(o),
        "h": _num(h),
        "l": _num(low),
        "c": _num(c),
        "v": v,
        "vw": _num((h + low + c) / 3),
        "n": int(v // 150),
        "t": midnight_ms(day),
    }


def option_bar(chain: ChainTruth, i: int) -> dict[str, Any] | None:
    """The daily aggregate of contract ``i`` on the chain's day, None when it did not trade."""
    volume = float(chain.columns[schema.VOLUME][i])
    if volume <= 0:
        return None
    close = max(_num(chain.true_price[i], 2), 0.01)
    return {
        "o": _num(close * 0.98, 2),
        "h": _num(close * 1.04, 2),
        "l": _num(close * 0.95, 2),
        "c": close,
        "v": volume,
        "vw": close,
        "n": int(volume // 5 + 1),
        "t": midnight_ms(chain.day),
    }


def stock_snapshot(market: Market, ticker: str, day: dt.date, updated_ns: int) -> dict[str, Any]:
    """The ``ticker`` object of the single-stock snapshot."""
    o, h, low, c, v = market.day_bar(ticker, day)
    d = market.day_index(day)
    prev = market.days[d - 1] if d else day
    po, ph, pl, pc, pv = market.day_bar(ticker, prev)
    spread = max(round(c * 0.0001, 2), 0.01)
    return {
        "ticker": ticker,
        "day": {"o": _num(o), "h": _num(h), "l": _num(low), "c": _num(c), "v": v, "vw": _num(c)},
        "prevDay": {"o": _num(po), "h": _num(ph), "l": _num(pl), "c": _num(pc), "v": pv},
        "lastQuote": {
            "P": _num(c + spread, 2),
            "S": 3,
            "p": _num(c - spread, 2),
            "s": 4,
            "t": updated_ns,
        },
        "lastTrade": {"p": _num(c), "s": 100, "x": 4, "c": [], "i": "1", "t": updated_ns},
        "todaysChange": _num(c - pc),
        "todaysChangePerc": _num(100 * (c - pc) / pc),
        "updated": updated_ns,
    }
