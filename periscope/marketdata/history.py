"""Reference and history payloads to Datasets: contracts as of a date, bars, yields, dividends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError, PayloadError
from periscope.marketdata.payloads import Bar, ContractReference, DividendRow, TreasuryYields
from periscope.marketdata.tickers import parse_option_ticker

# Tenors of the treasury-yields endpoint in years, by field name.
TREASURY_TENORS: Mapping[str, float] = {
    "yield_1_month": 1 / 12,
    "yield_3_month": 0.25,
    "yield_6_month": 0.5,
    "yield_1_year": 1.0,
    "yield_2_year": 2.0,
    "yield_3_year": 3.0,
    "yield_5_year": 5.0,
    "yield_7_year": 7.0,
    "yield_10_year": 10.0,
    "yield_20_year": 20.0,
    "yield_30_year": 30.0,
}


def contracts_dataset(
    rows: Iterable[ContractReference], underlying: str, as_of: dt.date
) -> xr.Dataset:
    """Listed contracts as of a date: the chain's coordinates along ``contract``, no quotes.

    Rows repeated across the ``expired=true``/``false`` queries are kept once; the result is
    sorted by ticker. Attrs: ``underlying``, ``as_of``.
    """
    unique: dict[str, ContractReference] = {}
    for row in rows:
        unique.setdefault(row.ticker, row)
    tickers = sorted(unique)
    cols: dict[str, list[Any]] = {name: [] for name in schema.COORDS}
    for ticker in tickers:
        row = unique[ticker]
        try:
            root = parse_option_ticker(ticker).root
            expiry = dt.date.fromisoformat(row.expiration_date)
        except (InvalidInputError, ValueError) as exc:
            raise PayloadError(f"malformed contract {ticker!r}", underlying=underlying) from exc
        cols[schema.TICKER].append(ticker)
        cols[schema.UNDERLYING].append(row.underlying_ticker or underlying)
        cols[schema.ROOT].append(root)
        cols[schema.EXPIRY].append(expiry)
        cols[schema.SETTLEMENT].append(schema.settlement_for_root(root, expiry))
        cols[schema.STRIKE].append(row.strike_price)
        cols[schema.RIGHT].append(row.contract_type or "other")
        default_style = "european" if underlying.startswith("I:") else "american"
        cols[schema.EXERCISE_STYLE].append(row.exercise_style or default_style)
        shares = row.shares_per_contract
        cols[schema.SHARES_PER_CONTRACT].append(np.nan if shares is None else shares)
    coords = {
        name: (
            schema.CONTRACT,
            np.array(values, dtype="datetime64[ns]" if name == schema.EXPIRY else None)
            if name in (schema.EXPIRY, schema.STRIKE, schema.SHARES_PER_CONTRACT)
            else np.array(values, dtype=object),
        )
        for name, values in cols.items()
    }
    if not tickers:
        coords[schema.EXPIRY] = (schema.CONTRACT, np.array([], dtype="datetime64[ns]"))
        coords[schema.STRIKE] = (schema.CONTRACT, np.array([], dtype=np.float64))
        coords[schema.SHARES_PER_CONTRACT] = (schema.CONTRACT, np.array([], dtype=np.float64))
    return xr.Dataset(coords=coords, attrs={"underlying": underlying, "as_of": as_of.isoformat()})


def bars_dataset(bars: Iterable[Bar], ticker: str) -> xr.Dataset:
    """Bars to :func:`periscope.schema.build_bars_dataset`, sorted by time, duplicates dropped."""
    unique = {bar.t: bar for bar in bars}
    ordered = [unique[t] for t in sorted(unique)]
    times = np.array([bar.t for bar in ordered], dtype=np.int64).astype("datetime64[ms]")
    values = {
        schema.OPEN: [bar.o for bar in ordered],
        schema.HIGH: [bar.h for bar in ordered],
        schema.LOW: [bar.low for bar in ordered],
        schema.CLOSE: [bar.c for bar in ordered],
        schema.VOLUME: [bar.v for bar in ordered],
        schema.VWAP: [np.nan if bar.vw is None else bar.vw for bar in ordered],
        schema.TRANSACTIONS: [np.nan if bar.n is None else bar.n for bar in ordered],
    }
    return schema.build_bars_dataset(times, values, ticker)


def yields_dataset(rows: Iterable[TreasuryYields]) -> xr.Dataset:
    """Treasury yields as decimals over ``date`` x ``tenor`` (years)."""
    ordered = sorted(rows, key=lambda row: row.date)
    values = np.full((len(ordered), len(TREASURY_TENORS)), np.nan)
    for i, row in enumerate(ordered):
        extra = row.model_extra or {}
        for j, name in enumerate(TREASURY_TENORS):
            if extra.get(name) is not None:
                values[i, j] = float(extra[name]) / 100.0
    dates = np.array([row.date for row in ordered], dtype="datetime64[D]").astype("datetime64[ns]")
    return xr.Dataset(
        {schema.TREASURY_YIELD: ((schema.DATE, schema.TENOR), values)},
        coords={schema.DATE: dates, schema.TENOR: np.array(list(TREASURY_TENORS.values()))},
        attrs={"source": "treasury constant-maturity yields, converted from percent"},
    )


def dividends_dataset(rows: Iterable[DividendRow]) -> xr.Dataset:
    """Cash dividends along ``dividend``, sorted by ex-date."""
    ordered = sorted(rows, key=lambda row: (row.ex_dividend_date, row.ticker))
    ex = np.array([r.ex_dividend_date for r in ordered], dtype="datetime64[D]")
    pay = np.array([r.pay_date or "NaT" for r in ordered], dtype="datetime64[D]")
    return xr.Dataset(
        {
            schema.CASH_AMOUNT: (schema.DIVIDEND, np.array([r.cash_amount for r in ordered])),
            schema.PAY_DATE: (schema.DIVIDEND, pay.astype("datetime64[ns]")),
        },
        coords={
            schema.TICKER: (schema.DIVIDEND, np.array([r.ticker for r in ordered], dtype=object)),
            schema.EX_DIVIDEND_DATE: (schema.DIVIDEND, ex.astype("datetime64[ns]")),
        },
    )
