"""Chain-snapshot pages to the canonical chain ``Dataset`` (:mod:`periscope.schema`).

Pages are decoded by :func:`decode_chain_page`: msgspec Structs first (exact and fast), the
pydantic models of :mod:`periscope.marketdata.payloads` when a page has fields the Structs do not
know (kept in ``model_extra``) or a schema problem (reported as ``PayloadError``). The client turns
each page into a :class:`ChainBlock` of columns as soon as it is decoded
(:func:`decode_chain_block`) and builds the Dataset from the blocks (:func:`chain_from_blocks`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
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
    NAT,
    ChainPageStruct,
    SnapshotStruct,
)
from periscope.marketdata.tickers import option_root

ChainItem = OptionSnapshot | SnapshotStruct
_NAN = float("nan")
_decode_pydantic = for_model(ChainPage)
_EXPIRY_TEXT = "expiry_text"
_NUMBERS = (
    *schema.FLOAT_COORDS,
    *schema.FLOAT_VARIABLES,
    schema.QUOTE_TIME,
    schema.LAST_TIME,
    schema.UNDERLYING_TIME,
)
_EMPTY_DTYPES = dict.fromkeys(_NUMBERS, "float64") | dict.fromkeys(
    (schema.QUOTE_TIME, schema.LAST_TIME, schema.UNDERLYING_TIME), "datetime64[ns]"
)
_STRINGS = (schema.TICKER, schema.UNDERLYING, schema.RIGHT, schema.EXERCISE_STYLE, _EXPIRY_TEXT)

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


@dataclass(frozen=True, slots=True)
class ChainBlock:
    """The columns of one page of a chain snapshot, extracted as soon as the page is decoded.

    Reading a page's values while its freshly decoded objects are still in the CPU's cache, and
    then letting them go, is several times cheaper than keeping every object of a large chain
    until the end (and the peak memory is the columns, not the objects).
    """

    next_url: str | None
    size: int
    numbers: dict[str, npt.NDArray[Any]]
    strings: dict[str, list[str]]


def _path(item: Any, path: str) -> Any:
    """``item`` followed along the dotted ``path``; None where a part is absent."""
    for name in path.split("."):
        if item is None:
            return None
        item = getattr(item, name)
    return item


def _floats(items: list[ChainItem], path: str) -> npt.NDArray[np.float64]:
    """The numbers at ``path`` (``"last_quote.bid"``) of every item, NaN where absent."""
    try:
        try:  # Structs: absent values are NaN, absent parts empty instances (one C-level pass)
            return np.fromiter(map(attrgetter(path), items), np.float64, len(items))
        except (TypeError, AttributeError):  # a None on the way (explicit nulls, pydantic)
            return np.array([_path(item, path) for item in items], dtype=np.float64)
    except OverflowError as exc:  # an integer beyond any float
        raise PayloadError(f"{path} out of range: {exc}") from exc


def _times(items: list[ChainItem], path: str) -> npt.NDArray[np.datetime64]:
    """Unix nanoseconds at ``path`` as ``datetime64[ns]``, NaT where absent."""
    try:
        try:
            ns = np.fromiter(map(attrgetter(path), items), np.int64, len(items))
        except (TypeError, AttributeError):
            values = (_path(item, path) for item in items)
            ns = np.array([NAT if v is None else v for v in values], dtype=np.int64)
    except OverflowError as exc:  # nanoseconds beyond int64 (year 2262)
        raise PayloadError(f"{path} out of range: {exc}") from exc
    return ns.view("datetime64[ns]")


def _strings(items: list[ChainItem], path: str) -> list[Any]:
    try:
        return list(map(attrgetter(path), items))
    except AttributeError:
        return [_path(item, path) for item in items]


def chain_block(items: list[ChainItem], underlying: str, next_url: str | None = None) -> ChainBlock:
    """The columns of snapshot ``items`` (Structs or pydantic models) of ``underlying``."""
    price = _floats(items, "underlying_asset.price")
    numbers = {
        schema.STRIKE: _floats(items, "details.strike_price"),
        schema.SHARES_PER_CONTRACT: _floats(items, "details.shares_per_contract"),
        schema.BID: _floats(items, "last_quote.bid"),
        schema.ASK: _floats(items, "last_quote.ask"),
        schema.BID_SIZE: _floats(items, "last_quote.bid_size"),
        schema.ASK_SIZE: _floats(items, "last_quote.ask_size"),
        schema.LAST_PRICE: _floats(items, "last_trade.price"),
        schema.LAST_SIZE: _floats(items, "last_trade.size"),
        schema.VOLUME: _floats(items, "day.volume"),
        schema.OPEN_INTEREST: _floats(items, "open_interest"),
        schema.VENDOR_IV: _floats(items, "implied_volatility"),
        schema.VENDOR_DELTA: _floats(items, "greeks.delta"),
        schema.VENDOR_GAMMA: _floats(items, "greeks.gamma"),
        schema.VENDOR_THETA: _floats(items, "greeks.theta"),
        schema.VENDOR_VEGA: _floats(items, "greeks.vega"),
        # ``price`` for stocks, ``value`` for indices
        schema.UNDERLYING_PRICE: np.where(
            np.isnan(price), _floats(items, "underlying_asset.value"), price
        ),
        schema.QUOTE_TIME: _times(items, "last_quote.last_updated"),
        schema.LAST_TIME: _times(items, "last_trade.sip_timestamp"),
        schema.UNDERLYING_TIME: _times(items, "underlying_asset.last_updated"),
    }
    default_style = "european" if underlying.startswith("I:") else "american"
    strings = {
        schema.TICKER: _strings(items, "details.ticker"),
        schema.UNDERLYING: [t or underlying for t in _strings(items, "underlying_asset.ticker")],
        schema.RIGHT: _strings(items, "details.contract_type"),
        schema.EXERCISE_STYLE: [
            s or default_style for s in _strings(items, "details.exercise_style")
        ],
        _EXPIRY_TEXT: _strings(items, "details.expiration_date"),
    }
    return ChainBlock(next_url, len(items), numbers, strings)


def decode_chain_block(body: bytes, underlying: str) -> ChainBlock:
    """:func:`decode_chain_page` then :func:`chain_block` (the decoded objects are dropped)."""
    page = decode_chain_page(body)
    return chain_block(list(page.results or ()), underlying, page.next_url)


def _expiries(texts: list[str]) -> npt.NDArray[np.datetime64]:
    """``YYYY-MM-DD`` strings to ``datetime64[D]``, each distinct date parsed once."""
    days = {text: int(np.datetime64(text, "D").astype(np.int64)) for text in dict.fromkeys(texts)}
    return np.fromiter(map(days.__getitem__, texts), np.int64, len(texts)).view("datetime64[D]")


def _roots(tickers: list[str]) -> list[str]:
    """The root of every ticker (:func:`option_root`), in one regex pass when all are valid."""
    joined = "\n".join(tickers)
    if joined.count("\n") == len(tickers) - 1:
        roots: list[str] = _TICKER_LINES.findall(joined)
        if len(roots) == len(tickers):  # one line per ticker and every line matched
            return roots
    return [option_root(ticker) for ticker in tickers]  # raises for the first bad ticker


def chain_from_blocks(
    blocks: Sequence[ChainBlock],
    underlying: str,
    snapshot_time: dt.datetime,
    *,
    stale_after: np.timedelta64 = schema.DEFAULT_STALE_AFTER,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build the canonical chain from the blocks of one underlying's pages, in their order.

    Raises as :func:`chain_from_snapshots`.
    """
    size = sum(block.size for block in blocks)
    columns: dict[str, Any] = {}
    for name in _NUMBERS:
        parts = [block.numbers[name] for block in blocks]
        column = np.concatenate(parts) if parts else np.array([], dtype=_EMPTY_DTYPES[name])
        columns[name] = column
    strings: dict[str, list[str]] = {}
    for name in _STRINGS:
        strings[name] = [value for block in blocks for value in block.strings[name]]
    tickers = strings[schema.TICKER]
    for name in (schema.TICKER, schema.UNDERLYING, schema.RIGHT, schema.EXERCISE_STYLE):
        columns[name] = np.array(strings[name], dtype=object)
    try:
        expiry = _expiries(strings[_EXPIRY_TEXT])
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
    block = chain_block(list(snapshots), underlying)
    return chain_from_blocks(
        [block], underlying, snapshot_time, stale_after=stale_after, attrs=attrs
    )
