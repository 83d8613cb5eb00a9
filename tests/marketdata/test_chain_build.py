"""The chain builder's fast paths (one regex pass over the tickers, dates parsed once)."""

from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np
import pytest

from periscope import schema
from periscope.errors import PayloadError
from periscope.marketdata.chain import chain_from_snapshots, decode_chain_page
from periscope.marketdata.snapshot_structs import ChainPageStruct, SnapshotStruct

NOW = dt.datetime(2026, 1, 2, 15, tzinfo=dt.UTC)


def _item(ticker: str, expiry: str = "2026-01-16", strike: float = 100.0) -> dict[str, object]:
    return {
        "details": {
            "contract_type": "call",
            "exercise_style": "american",
            "expiration_date": expiry,
            "shares_per_contract": 100,
            "strike_price": strike,
            "ticker": ticker,
        },
        "last_quote": {"bid": 1.0, "ask": 1.2, "last_updated": 1767366000000000000},
        "underlying_asset": {"ticker": "SDS", "price": 101.0},
    }


def _decode(items: list[dict[str, object]]) -> list[SnapshotStruct]:
    page = decode_chain_page(msgspec.json.encode({"status": "OK", "results": items}))
    assert isinstance(page, ChainPageStruct)  # the msgspec fast path
    return list(page.results or ())


def test_roots_and_expiries__parsed_from_every_ticker() -> None:
    items = _decode(
        [
            _item("O:SDS260116C00100000"),
            _item("O:SDS1260220P00005500", "2026-02-20", 5.5),
            _item("SDS260116P00100000"),
        ]
    )
    ds = chain_from_snapshots(items, "SDS", NOW)
    assert ds[schema.ROOT].values.tolist() == ["SDS", "SDS1", "SDS"]
    assert ds[schema.EXPIRY].values.astype("datetime64[D]").tolist() == [
        dt.date(2026, 1, 16),
        dt.date(2026, 2, 20),
        dt.date(2026, 1, 16),
    ]
    assert np.isnan(ds[schema.LAST_PRICE].values).all()
    assert ds[schema.QUOTE_TIME].values[0] == np.datetime64(1767366000000000000, "ns")
    assert np.isnat(ds[schema.LAST_TIME].values).all()


@pytest.mark.parametrize(
    "bad",
    ["O:SDS260116X00100000", "O:SDS260116C0010000", "O:SDS260116C00100000\nO:SDS260116C00200000"],
)
def test_malformed_ticker__payload_error(bad: str) -> None:
    items = _decode([_item("O:SDS260116C00300000"), _item(bad)])
    with pytest.raises(PayloadError, match="malformed contract"):
        chain_from_snapshots(items, "SDS", NOW)


def test_malformed_expiry__payload_error() -> None:
    items = _decode([_item("O:SDS260116C00300000", "2026-13-40")])
    with pytest.raises(PayloadError, match="malformed contract"):
        chain_from_snapshots(items, "SDS", NOW)
