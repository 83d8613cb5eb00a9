"""Chain-snapshot pages to the canonical chain ``Dataset`` (:mod:`periscope.schema`).

Pages are decoded by :func:`decode_chain_page`: msgspec Structs first (exact and fast), the
pydantic models of :mod:`periscope.marketdata.payloads` when a page has fields the Structs do not
know (kept in ``model_extra``) or a schema problem (reported as ``PayloadError``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError, PayloadError
from periscope.marketdata.payloads import ChainPage, OptionSnapshot
from periscope.marketdata.session import BodyNotJson, for_model
from periscope.marketdata.snapshot_structs import (
    CHAIN_PAGE_DECODER,
    ChainPageStruct,
    SnapshotStruct,
)
from periscope.marketdata.tickers import option_root

ChainItem = OptionSnapshot | SnapshotStruct
_NAN = float("nan")
_NAT = int(np.iinfo(np.int64).min)
_decode_pydantic = for_model(ChainPage)

# Columns in the order of the tuple built per contract by ``_row``: floats, then times (Unix ns,
# ``_NAT`` when missing), then strings.
_FLOATS = (
    schema.STRIKE,
    schema.SHARES_PER_CONTRACT,
    schema.BID,
    schema.ASK,
    schema.BID_SIZE,
    schema.ASK_SIZE,
    schema.LAST_PRICE,
    schema.LAST_SIZE,
    schema.VOLUME,
    schema.OPEN_INTEREST,
    schema.VENDOR_IV,
    schema.VENDOR_DELTA,
    schema.VENDOR_GAMMA,
    schema.VENDOR_THETA,
    schema.VENDOR_VEGA,
    schema.UNDERLYING_PRICE,
)
_TIMES = (schema.QUOTE_TIME, schema.LAST_TIME, schema.UNDERLYING_TIME)
_STRINGS = (schema.TICKER, schema.UNDERLYING, "expiry_text", schema.RIGHT, schema.EXERCISE_STYLE)
_FIELDS = _FLOATS + _TIMES + _STRINGS
# Every ticker of a chain checked by one regex pass over the tickers joined by newlines.
_TICKER_LINES = re.compile(r"^(?:O:)?([A-Za-z0-9]+?)\d{6}[CP]\d{8}$", re.MULTILINE)


def decode_chain_page(body: bytes) -> ChainPageStruct | ChainPage:
    """Decode one chain-snapshot page (see the module docstring).

    Raises
    ------
    BodyNotJson
        The body is not JSON (the session retries it).
    PayloadError
        JSON that breaks the schema.
    """
    try:
        return CHAIN_PAGE_DECODER.decode(body)
    except msgspec.ValidationError:
        return _decode_pydantic(body)
    except msgspec.DecodeError as exc:
        raise BodyNotJson from exc


def _row(item: ChainItem, underlying: str, index_like: bool) -> tuple[Any, ...]:
    d = item.details
    q, t, g, a = item.last_quote, item.last_trade, item.greeks, item.underlying_asset
    nan, nat = _NAN, _NAT
    price = None
    if a is not None:
        price = a.price if a.price is not None else a.value
    quote_time = q.last_updated if q is not None else None
    trade_time = t.sip_timestamp if t is not None else None
    underlying_time = a.last_updated if a is not None else None
    return (  # None in a float column becomes NaN in numpy
        d.strike_price,
        d.shares_per_contract,
        q.bid if q is not None else nan,
        q.ask if q is not None else nan,
        q.bid_size if q is not None else nan,
        q.ask_size if q is not None else nan,
        t.price if t is not None else nan,
        t.size if t is not None else nan,
        item.day.volume if item.day is not None else nan,
        item.open_interest,
        item.implied_volatility,
        g.delta if g is not None else nan,
        g.gamma if g is not None else nan,
        g.theta if g is not None else nan,
        g.vega if g is not None else nan,
        price,
        quote_time if quote_time is not None else nat,
        trade_time if trade_time is not None else nat,
        underlying_time if underlying_time is not None else nat,
        d.ticker,
        (a.ticker if a is not None else None) or underlying,
        d.expiration_date,
        d.contract_type,
        d.exercise_style or ("european" if index_like else "american"),
    )


def _expiries(texts: tuple[str, ...]) -> npt.NDArray[np.datetime64]:
    """``YYYY-MM-DD`` strings to ``datetime64[D]``, each distinct date parsed once."""
    days = {text: int(np.datetime64(text, "D").astype(np.int64)) for text in dict.fromkeys(texts)}
    return np.fromiter(map(days.__getitem__, texts), np.int64, len(texts)).view("datetime64[D]")


def _roots(tickers: tuple[str, ...]) -> list[str]:
    """The root of every ticker (:func:`option_root`), in one regex pass when all are valid."""
    joined = "\n".join(tickers)
    if joined.count("\n") == len(tickers) - 1:
        roots: list[str] = _TICKER_LINES.findall(joined)
        if len(roots) == len(tickers):  # one line per ticker and every line matched
            return roots
    return [option_root(ticker) for ticker in tickers]  # raises for the first bad ticker


def chain_from_snapshots(
    snapshots: Iterable[ChainItem],
    underlying: str,
    snapshot_time: dt.datetime,
    *,
    stale_after: np.timedelta64 = schema.DEFAULT_STALE_AFTER,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build the canonical chain from snapshot items of one underlying.

    Parameters
    ----------
    snapshots
        Decoded chain-snapshot items (Structs or pydantic models), in any order.
    underlying
        The requested underlying, used when an item lacks ``underlying_asset.ticker``.
    snapshot_time
        When the snapshot was taken (the response time), timezone-aware.
    stale_after
        Passed to :func:`periscope.schema.build_chain_dataset`.
    attrs
        Dataset attributes.

    Raises
    ------
    PayloadError
        A ticker is malformed or appears twice, or a value does not fit the schema.
    """
    index_like = underlying.startswith("I:")
    rows = [_row(item, underlying, index_like) for item in snapshots]
    size = len(rows)
    transposed = list(zip(*rows, strict=True)) if rows else [()] * len(_FIELDS)
    raw: dict[str, tuple[Any, ...]] = dict(zip(_FIELDS, transposed, strict=True))
    columns: dict[str, Any] = {}
    for name in _FLOATS:
        columns[name] = np.array(raw[name], dtype=np.float64)
    for name in _TIMES:
        columns[name] = np.array(raw[name], dtype=np.int64).view("datetime64[ns]")
    tickers = raw[schema.TICKER]
    for name in (schema.TICKER, schema.UNDERLYING, schema.RIGHT, schema.EXERCISE_STYLE):
        columns[name] = np.array(raw[name], dtype=object)
    try:
        expiry = _expiries(raw["expiry_text"])
        roots = _roots(tickers)
    except (InvalidInputError, ValueError) as exc:
        raise PayloadError(f"malformed contract: {exc}", underlying=underlying) from exc
    columns[schema.EXPIRY] = expiry
    columns[schema.ROOT] = np.array(roots, dtype=object)
    columns[schema.SETTLEMENT] = schema.settlements(columns[schema.ROOT], expiry)
    snap_ns = np.datetime64(int(snapshot_time.timestamp() * 1e9), "ns")
    columns[schema.SNAPSHOT_TIME] = np.full(size, snap_ns)
    if len(set(tickers)) != size:
        seen: set[str] = set()
        repeated = next(t for t in tickers if t in seen or seen.add(t))  # type: ignore[func-returns-value]
        raise PayloadError(
            "the listing repeated a contract", underlying=underlying, ticker=repeated
        )
    try:
        return schema.build_chain_dataset(columns, attrs=attrs, stale_after=stale_after)
    except InvalidInputError as exc:
        raise PayloadError(f"chain does not fit the schema: {exc}", underlying=underlying) from exc
