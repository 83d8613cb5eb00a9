"""Massive-shaped JSON for the simulated market (see ``reference/massive-api.md`` §1).

Per-contract snapshot objects are serialised once per chain and kept as bytes, so a page is a
join of pre-encoded items: the server stays fast enough to benchmark clients against. The objects
of a chain are computed column-wise over numpy arrays and encoded with msgspec (a few
microseconds per contract; Python dicts through ``json.dumps`` took about sixty).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from periscope import schema
from periscope.simulator.market import ChainTruth, Market

_NS = np.timedelta64(1, "ns")
_GREEKS = ("delta", "gamma", "theta", "vega")
_ENCODER = msgspec.json.Encoder()


def _ns(value: np.datetime64) -> int:
    return int((value - np.datetime64(0, "ns")) / _NS)


def _ns_list(values: npt.NDArray[np.datetime64]) -> list[int]:
    """:func:`_ns` of every element: through float64, as the served times always were (exact to
    about 0.1 microsecond); NaT gives an arbitrary number (never served)."""
    ns = values.astype("datetime64[ns]").view(np.int64).astype(np.float64)
    return ns.astype(np.int64).tolist()  # type: ignore[no-any-return]


def _num(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _rounded(values: npt.NDArray[np.float64], digits: int) -> list[float]:
    """``_num`` of every element: exactly Python's ``round(value, digits)``, vectorised.

    ``round`` is correctly rounded (the double nearest the decimal rounding of the exact
    value). ``rint(x · 10^d) / 10^d`` gives the same double unless ``x · 10^d`` lands within its
    own rounding error of a half (or is not finite, or too large to be an exact integer); those
    few elements go through ``round`` itself.
    """
    scale = 10.0**digits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * scale
        result = np.rint(scaled) / scale
        distance = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5)
        exact = np.isfinite(scaled) & (np.abs(scaled) < 2.0**52)
        exact &= distance > 1e-9 * np.maximum(np.abs(scaled), 1.0)
    out: list[float] = result.tolist()
    for i in np.flatnonzero(~exact).tolist():
        out[i] = round(float(values[i]), digits)
    return out


def cfi_code(right: str, exercise_style: str) -> str:
    """ISO 10962 CFI of a listed option: call/put, American/European, stock/index, physical/cash."""
    cp = "C" if right == schema.CALL else "P"
    if exercise_style == "european":
        return f"O{cp}EICS"
    return f"O{cp}ASPS"


def _snapshot_columns(chain: ChainTruth, pick: npt.NDArray[np.intp]) -> dict[str, list[Any]]:
    """Every value of the snapshot objects of contracts ``pick``, one list per field.

    Computed column-wise: the arithmetic is done once over numpy arrays (the same IEEE
    operations as per contract). Numbers are rounded with Python's ``round`` semantics
    (correctly rounded in decimal, unlike ``np.round``; see :func:`_rounded`).
    """
    c = chain.columns
    strike = c[schema.STRIKE][pick]
    right = c[schema.RIGHT][pick]
    true_price = chain.true_price[pick]
    has_quote = chain.quote_present[pick]
    has_trade = chain.trade_present[pick]
    bid, ask = c[schema.BID][pick], c[schema.ASK][pick]
    with np.errstate(invalid="ignore"):
        mid = np.where(has_quote, 0.5 * (bid + ask), true_price)
    break_even = np.where(right == schema.CALL, strike + mid, strike - mid)
    last = np.where(has_trade, c[schema.LAST_PRICE][pick], true_price)
    volume = c[schema.VOLUME][pick]
    traded = volume != 0  # a NaN volume counts as traded, as ``if volume`` did
    previous = _rounded(np.maximum(true_price * 0.97, 0.01), 2)
    prev = np.array(previous)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = _rounded(np.where(traded, last - prev, 0.0), 4)
        change_pct = _rounded(np.where(traded, 100 * (last - prev) / prev, 0.0), 4)
    expiry = c[schema.EXPIRY][pick].astype("datetime64[D]")
    return {
        "break_even_price": _rounded(break_even, 4),
        "open": _rounded(np.where(traded, last, prev), 2),
        "high": _rounded(np.where(traded, last * 1.03, prev), 2),
        "low": _rounded(np.where(traded, last * 0.97, prev), 2),
        "previous_close": previous,
        "change": change,
        "change_percent": change_pct,
        "volume": volume.tolist(),
        "vwap": _rounded(np.where(traded, last, 0.0), 4),
        "updated": _ns_list(c[schema.SNAPSHOT_TIME][pick]),
        "contract_type": right.tolist(),
        "exercise_style": c[schema.EXERCISE_STYLE][pick].tolist(),
        "expiration_date": np.datetime_as_string(expiry, unit="D").tolist(),
        "shares_per_contract": c[schema.SHARES_PER_CONTRACT][pick].tolist(),
        "strike_price": strike.tolist(),
        "ticker": c[schema.TICKER][pick].tolist(),
        "open_interest": c[schema.OPEN_INTEREST][pick].tolist(),
        "change_to_break_even": _rounded(break_even - chain.spot, 4),
        "has_greeks": (~np.isnan(c[schema.VENDOR_DELTA][pick])).tolist(),
        "delta": _rounded(c[schema.VENDOR_DELTA][pick], 6),
        "gamma": _rounded(c[schema.VENDOR_GAMMA][pick], 6),
        "theta": _rounded(c[schema.VENDOR_THETA][pick], 6),
        "vega": _rounded(c[schema.VENDOR_VEGA][pick], 6),
        "has_iv": (~np.isnan(c[schema.VENDOR_IV][pick])).tolist(),
        "implied_volatility": _rounded(c[schema.VENDOR_IV][pick], 6),
        "has_quote": has_quote.tolist(),
        "ask": ask.tolist(),
        "ask_size": c[schema.ASK_SIZE][pick].tolist(),
        "bid": bid.tolist(),
        "bid_size": c[schema.BID_SIZE][pick].tolist(),
        "midpoint": _rounded(mid, 4),
        "quote_updated": _ns_list(c[schema.QUOTE_TIME][pick]),
        "has_trade": has_trade.tolist(),
        "price": c[schema.LAST_PRICE][pick].tolist(),
        "size": np.where(has_trade, c[schema.LAST_SIZE][pick], 0).astype(np.int64).tolist(),
        "sip_timestamp": _ns_list(c[schema.LAST_TIME][pick]),
    }


# The JSON of one snapshot object, in Massive's key order, with the values' JSON texts put in.
_BASE = (
    b'{"break_even_price":%b,"day":{"open":%b,"high":%b,"low":%b,"close":%b,'
    b'"previous_close":%b,"change":%b,"change_percent":%b,"volume":%b,"vwap":%b,'
    b'"last_updated":%b},"details":{"contract_type":%b,"exercise_style":%b,'
    b'"expiration_date":%b,"shares_per_contract":%b,"strike_price":%b,"ticker":%b},'
    b'"open_interest":%b,"underlying_asset":{"ticker":%b,"change_to_break_even":%b,'
    b'"last_updated":%b,"timeframe":"REAL-TIME",%b:%b}'
)
_GREEKS_PART = b',"greeks":{"delta":%b,"gamma":%b,"theta":%b,"vega":%b}'
_IV_PART = b',"implied_volatility":%b'
_QUOTE_PART = (
    b',"last_quote":{"ask":%b,"ask_size":%b,"ask_exchange":316,"bid":%b,"bid_size":%b,'
    b'"bid_exchange":303,"midpoint":%b,"last_updated":%b,"timeframe":"REAL-TIME"}'
)
_TRADE_PART = (
    b',"last_trade":{"price":%b,"size":%b,"exchange":309,"sip_timestamp":%b,'
    b'"conditions":[209],"timeframe":"REAL-TIME"}'
)


def _tokens(values: list[Any]) -> list[bytes]:
    """The JSON text of each value (numbers, and strings without commas), encoded at once."""
    if not values:
        return []
    return _ENCODER.encode(values)[1:-1].split(b",")


def snapshot_items(
    chain: ChainTruth, indices: npt.NDArray[np.intp] | None = None
) -> list[dict[str, Any]]:
    """The chain-snapshot objects of the contracts ``indices`` of ``chain`` (default: all)."""
    pick = np.arange(chain.size) if indices is None else np.asarray(indices, dtype=np.intp)
    if pick.size == 0:
        return []
    col = _snapshot_columns(chain, pick)
    u = chain.underlying
    spot_field = "value" if u.kind == "index" else "price"
    spot_value = _num(chain.spot, 4)
    items: list[dict[str, Any]] = []
    for i in range(pick.size):
        item: dict[str, Any] = {
            "break_even_price": col["break_even_price"][i],
            "day": {
                "open": col["open"][i],
                "high": col["high"][i],
                "low": col["low"][i],
                "close": col["open"][i],
                "previous_close": col["previous_close"][i],
                "change": col["change"][i],
                "change_percent": col["change_percent"][i],
                "volume": col["volume"][i],
                "vwap": col["vwap"][i],
                "last_updated": col["updated"][i],
            },
            "details": {
                name: col[name][i]
                for name in (
                    "contract_type",
                    "exercise_style",
                    "expiration_date",
                    "shares_per_contract",
                    "strike_price",
                    "ticker",
                )
            },
            "open_interest": col["open_interest"][i],
            "underlying_asset": {
                "ticker": u.ticker,
                "change_to_break_even": col["change_to_break_even"][i],
                "last_updated": col["updated"][i],
                "timeframe": "REAL-TIME",
                spot_field: spot_value,
            },
        }
        if col["has_greeks"][i]:
            item["greeks"] = {name: col[name][i] for name in _GREEKS}
        if col["has_iv"][i]:
            item["implied_volatility"] = col["implied_volatility"][i]
        if col["has_quote"][i]:
            item["last_quote"] = {
                "ask": col["ask"][i],
                "ask_size": col["ask_size"][i],
                "ask_exchange": 316,
                "bid": col["bid"][i],
                "bid_size": col["bid_size"][i],
                "bid_exchange": 303,
                "midpoint": col["midpoint"][i],
                "last_updated": col["quote_updated"][i],
                "timeframe": "REAL-TIME",
            }
        if col["has_trade"][i]:
            item["last_trade"] = {
                "price": col["price"][i],
                "size": col["size"][i],
                "exchange": 309,
                "sip_timestamp": col["sip_timestamp"][i],
                "conditions": [209],
                "timeframe": "REAL-TIME",
            }
        items.append(item)
    return items


def contract_snapshot(chain: ChainTruth, i: int) -> dict[str, Any]:
    """The chain-snapshot object of contract ``i`` of ``chain``."""
    return snapshot_items(chain, np.array([i], dtype=np.intp))[0]


def encode_chain(chain: ChainTruth) -> list[bytes]:
    """Every contract's snapshot object, compact JSON, in chain order.

    The same objects as :func:`snapshot_items`, written without building them: each field's
    values are JSON-encoded for the whole chain at once (msgspec) and put into a byte template
    per contract (about 3 microseconds a contract; dicts through ``json.dumps`` took sixty).
    """
    if chain.size == 0:
        return []
    col = _snapshot_columns(chain, np.arange(chain.size))
    t = {name: _tokens(values) for name, values in col.items() if not name.startswith("has_")}
    u = chain.underlying
    ticker = _ENCODER.encode(u.ticker)
    spot_field = b'"value"' if u.kind == "index" else b'"price"'
    spot_value = _ENCODER.encode(_num(chain.spot, 4))
    out: list[bytes] = []
    for i, (greeks, iv, quote, trade) in enumerate(
        zip(col["has_greeks"], col["has_iv"], col["has_quote"], col["has_trade"], strict=True)
    ):
        updated = t["updated"][i]
        body = _BASE % (
            t["break_even_price"][i],
            t["open"][i],
            t["high"][i],
            t["low"][i],
            t["open"][i],
            t["previous_close"][i],
            t["change"][i],
            t["change_percent"][i],
            t["volume"][i],
            t["vwap"][i],
            updated,
            t["contract_type"][i],
            t["exercise_style"][i],
            t["expiration_date"][i],
            t["shares_per_contract"][i],
            t["strike_price"][i],
            t["ticker"][i],
            t["open_interest"][i],
            ticker,
            t["change_to_break_even"][i],
            updated,
            spot_field,
            spot_value,
        )
        if greeks:
            body += _GREEKS_PART % (t["delta"][i], t["gamma"][i], t["theta"][i], t["vega"][i])
        if iv:
            body += _IV_PART % t["implied_volatility"][i]
        if quote:
            body += _QUOTE_PART % (
                t["ask"][i],
                t["ask_size"][i],
                t["bid"][i],
                t["bid_size"][i],
                t["midpoint"][i],
                t["quote_updated"][i],
            )
        if trade:
            body += _TRADE_PART % (t["price"][i], t["size"][i], t["sip_timestamp"][i])
        out.append(body + b"}")
    return out


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
