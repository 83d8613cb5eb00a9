"""msgspec Structs of the chain snapshot: the fast, exact decoding path.

Each Struct lists every field Massive documents (``reference/massive-api.md`` §1.1) and forbids
unknown ones, so a page decoded here has lost nothing. A page with a field these Structs do not
know (or with a schema problem) falls back to the pydantic models of
:mod:`periscope.marketdata.payloads`, which keep extra fields or report the problem.
Decoding is about eight times faster than ``json.loads`` plus pydantic on chain pages.

The Structs are ``gc=False`` (they hold only scalars, strings, lists of ints and other Structs,
so they can never be part of a reference cycle): tens of thousands of contracts per chain would
otherwise be tracked by the cyclic garbage collector, whose passes cost as much as the decoding.
Fields are keyword-only and listed in the order Massive sends them, which msgspec matches fastest.
"""

from __future__ import annotations

import msgspec


class _Struct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    pass


class DetailsStruct(_Struct, kw_only=True):
    """``details``."""

    contract_type: str
    exercise_style: str | None = None
    expiration_date: str
    shares_per_contract: float | None = None
    strike_price: float
    ticker: str


class QuoteStruct(_Struct):
    """``last_quote``."""

    ask: float | None = None
    ask_size: float | None = None
    ask_exchange: int | None = None
    bid: float | None = None
    bid_size: float | None = None
    bid_exchange: int | None = None
    midpoint: float | None = None
    last_updated: int | None = None
    timeframe: str | None = None


class TradeStruct(_Struct):
    """``last_trade``."""

    price: float | None = None
    size: float | None = None
    exchange: int | None = None
    sip_timestamp: int | None = None
    conditions: list[int] | None = None
    timeframe: str | None = None
    decimal_size: str | None = None


class GreeksStruct(_Struct):
    """``greeks``."""

    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None


class DayStruct(_Struct):
    """``day``."""

    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: float | None = None
    vwap: float | None = None
    last_updated: int | None = None


class UnderlyingStruct(_Struct):
    """``underlying_asset``."""

    ticker: str | None = None
    change_to_break_even: float | None = None
    last_updated: int | None = None
    timeframe: str | None = None
    price: float | None = None
    value: float | None = None


class SnapshotStruct(_Struct, kw_only=True):
    """One contract of the chain snapshot."""

    break_even_price: float | None = None
    day: DayStruct | None = None
    details: DetailsStruct
    greeks: GreeksStruct | None = None
    implied_volatility: float | None = None
    open_interest: float | None = None
    underlying_asset: UnderlyingStruct | None = None
    last_quote: QuoteStruct | None = None
    last_trade: TradeStruct | None = None
    fmv: float | None = None
    fmv_last_updated: int | None = None


class ChainPageStruct(_Struct):
    """A page of the chain snapshot."""

    status: str | None = None
    request_id: str | None = None
    next_url: str | None = None
    results: list[SnapshotStruct] | None = None


CHAIN_PAGE_DECODER = msgspec.json.Decoder(ChainPageStruct)
