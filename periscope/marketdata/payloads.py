"""Pydantic models of the Massive JSON bodies the client reads.

Every model allows extra fields (``model_extra`` keeps what the vendor adds before the model
knows it) and makes plan-dependent parts optional (``last_quote``, ``last_trade``, ``greeks``,
``implied_volatility``, ``underlying_asset.price``). Only what the client cannot work without is
required: a contract's ``details``. Field meanings: ``reference/massive-api.md`` §1.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Details(_Model):
    """``details`` of an option snapshot."""

    contract_type: str
    exercise_style: str | None = None
    expiration_date: str
    shares_per_contract: float | None = None
    strike_price: float
    ticker: str


class Greeks(_Model):
    """The vendor's Greeks (delta, gamma per $1, theta per day, vega per vol point)."""

    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None


class LastQuote(_Model):
    """``last_quote``: present only on plans with quotes."""

    ask: float | None = None
    ask_size: float | None = None
    bid: float | None = None
    bid_size: float | None = None
    midpoint: float | None = None
    last_updated: int | None = None
    timeframe: str | None = None


class LastTrade(_Model):
    """``last_trade``: present only on plans with trades."""

    price: float | None = None
    size: float | None = None
    sip_timestamp: int | None = None
    timeframe: str | None = None


class Day(_Model):
    """``day``: the session's aggregate of the contract."""

    volume: float | None = None
    close: float | None = None
    last_updated: int | None = None


class UnderlyingAsset(_Model):
    """``underlying_asset``: ``price`` for stocks, ``value`` for indices."""

    ticker: str | None = None
    price: float | None = None
    value: float | None = None
    last_updated: int | None = None
    timeframe: str | None = None


class OptionSnapshot(_Model):
    """One contract of the chain snapshot or the single-contract snapshot."""

    details: Details
    break_even_price: float | None = None
    day: Day | None = None
    greeks: Greeks | None = None
    implied_volatility: float | None = None
    last_quote: LastQuote | None = None
    last_trade: LastTrade | None = None
    open_interest: float | None = None
    underlying_asset: UnderlyingAsset | None = None


class ContractReference(_Model):
    """One row of ``/v3/reference/options/contracts``."""

    ticker: str
    underlying_ticker: str | None = None
    contract_type: str | None = None
    exercise_style: str | None = None
    expiration_date: str
    strike_price: float
    shares_per_contract: float | None = None
    primary_exchange: str | None = None
    cfi: str | None = None
    additional_underlyings: list[dict[str, Any]] | None = None


class Bar(_Model):
    """One aggregate bar; ``t`` is the window start in Unix milliseconds."""

    o: float
    h: float
    low: float = Field(alias="l")
    c: float
    v: float
    vw: float | None = None
    n: int | None = None
    t: int


class TreasuryYields(_Model):
    """One day of ``/fed/v1/treasury-yields`` (yields in percent, absent tenors missing)."""

    date: str


class DividendRow(_Model):
    """One row of ``/stocks/v1/dividends``."""

    ticker: str
    cash_amount: float
    ex_dividend_date: str
    currency: str | None = None
    declaration_date: str | None = None
    record_date: str | None = None
    pay_date: str | None = None
    frequency: int | None = None
    distribution_type: str | None = None


class StockSnapshotTicker(_Model):
    """``ticker`` of the single-stock snapshot."""

    ticker: str
    day: dict[str, Any] | None = None
    lastTrade: dict[str, Any] | None = None  # noqa: N815 - the vendor's spelling
    lastQuote: dict[str, Any] | None = None  # noqa: N815
    prevDay: dict[str, Any] | None = None  # noqa: N815
    updated: int | None = None


class IndexSnapshot(_Model):
    """One item of ``/v3/snapshot/indices``; ``error`` is set for unknown tickers."""

    ticker: str
    value: float | None = None
    last_updated: int | None = None
    error: str | None = None
    message: str | None = None


class Envelope(_Model):
    """The part of every response the client checks: status, request id, cursor."""

    status: str | None = None
    request_id: str | None = None
    next_url: str | None = None
    results: Any = None


class ChainPage(Envelope):
    """A page of the chain snapshot."""

    results: list[OptionSnapshot] | None = None


class ContractSnapshotResponse(Envelope):
    """The single-contract snapshot."""

    results: OptionSnapshot


class ContractsPage(Envelope):
    """A page of the contracts reference."""

    results: list[ContractReference] | None = None


class BarsPage(Envelope):
    """A page of aggregates; ``results`` is absent on days without bars."""

    ticker: str | None = None
    resultsCount: int | None = None  # noqa: N815 - the vendor's spelling
    results: list[Bar] | None = None


class YieldsPage(Envelope):
    """A page of treasury yields."""

    results: list[TreasuryYields] | None = None


class DividendsPage(Envelope):
    """A page of dividends."""

    results: list[DividendRow] | None = None


class IndicesPage(Envelope):
    """A page of index snapshots."""

    results: list[IndexSnapshot] | None = None


class StockSnapshotResponse(Envelope):
    """The single-stock snapshot."""

    ticker: StockSnapshotTicker
