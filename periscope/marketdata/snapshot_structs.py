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

Absent values the chain reads default to what its columns hold for "missing" (NaN for numbers,
:data:`NAT` for nanosecond times) and absent parts to an empty, frozen instance, so every column is
read by one C-level pass (``attrgetter("last_quote.bid")`` into ``np.fromiter``) with no test for
None; an explicit ``null`` still decodes (to None) and takes the chain's general path. The Structs
are frozen, which lets one empty part be the default of every item.
"""

from __future__ import annotations

import math

import msgspec

NAN = math.nan
NAT = -(2**63)  # numpy's NaT as int64 nanoseconds


class _Struct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False, frozen=True):
    pass


class DetailsStruct(_Struct, kw_only=True, frozen=True):
    """``details``."""

    contract_type: str
    exercise_style: str | None = None
    expiration_date: str
    shares_per_contract: float | None = NAN
    strike_price: float
    ticker: str


class QuoteStruct(_Struct, frozen=True):
    """``last_quote``."""

    ask: float | None = NAN
    ask_size: float | None = NAN
    ask_exchange: int | None = None
    bid: float | None = NAN
    bid_size: float | None = NAN
    bid_exchange: int | None = None
    midpoint: float | None = None
    last_updated: int | None = NAT
    timeframe: str | None = None


class TradeStruct(_Struct, frozen=True):
    """``last_trade``."""

    price: float | None = NAN
    size: float | None = NAN
    exchange: int | None = None
    sip_timestamp: int | None = NAT
    conditions: list[int] | None = None
    timeframe: str | None = None
    decimal_size: str | None = None


class GreeksStruct(_Struct, frozen=True):
    """``greeks``."""

    delta: float | None = NAN
    gamma: float | None = NAN
    theta: float | None = NAN
    vega: float | None = NAN


class DayStruct(_Struct, frozen=True):
    """``day``."""

    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: float | None = NAN
    vwap: float | None = None
    last_updated: int | None = None


class UnderlyingStruct(_Struct, frozen=True):
    """``underlying_asset``."""

    ticker: str | None = None
    change_to_break_even: float | None = None
    last_updated: int | None = NAT
    timeframe: str | None = None
    price: float | None = NAN
    value: float | None = NAN


NO_QUOTE = QuoteStruct()
NO_TRADE = TradeStruct()
NO_GREEKS = GreeksStruct()
NO_DAY = DayStruct()
NO_UNDERLYING = UnderlyingStruct()


class SnapshotStruct(_Struct, kw_only=True, frozen=True):
    """One contract of the chain snapshot."""

    break_even_price: float | None = None
    day: DayStruct | None = NO_DAY
    details: DetailsStruct
    greeks: GreeksStruct | None = NO_GREEKS
    implied_volatility: float | None = NAN
    open_interest: float | None = NAN
    underlying_asset: UnderlyingStruct | None = NO_UNDERLYING
    last_quote: QuoteStruct | None = NO_QUOTE
    last_trade: TradeStruct | None = NO_TRADE
    fmv: float | None = None
    fmv_last_updated: int | None = None


class ChainPageStruct(_Struct, frozen=True):
    """A page of the chain snapshot."""

    status: str | None = None
    request_id: str | None = None
    next_url: str | None = None
    results: list[SnapshotStruct] | None = None


CHAIN_PAGE_DECODER = msgspec.json.Decoder(ChainPageStruct)
