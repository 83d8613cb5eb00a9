"""Chains built page by page (columns extracted as each page is decoded) are the chains built
from every decoded item at once, and the client's connection lanes change nothing it returns."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import xarray as xr

from periscope import schema
from periscope.marketdata import ClientOptions, MassiveClient
from periscope.marketdata.chain import (
    chain_block,
    chain_from_blocks,
    chain_from_snapshots,
    decode_chain_block,
    decode_chain_page,
)
from periscope.marketdata.payloads import ChainPage
from periscope.simulator import Simulator

NOW = dt.datetime(2026, 1, 2, 15, tzinfo=dt.UTC)


def _pages(simulator: Simulator, underlying: str, size: int = 250) -> list[bytes]:
    items = simulator.chain_snapshot({}, underlying).items
    return [
        b'{"status":"OK","results":[' + b",".join(items[i : i + size]) + b"]}"
        for i in range(0, len(items), size)
    ]


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a, b)
    for name, variable in a.variables.items():
        values, other = variable.values, b[name].values
        assert values.dtype == other.dtype, name
        if values.dtype.kind == "M":
            assert np.array_equal(values.view(np.int64), other.view(np.int64)), name
        elif values.dtype.kind == "f":
            assert np.array_equal(values, other, equal_nan=True), name
        else:
            assert values.tolist() == other.tolist(), name


def test_blocks__same_chain_as_all_items_at_once(simulator: Simulator) -> None:
    for underlying in ("I:SPX", "AAPL"):
        pages = _pages(simulator, underlying, 97)
        items = [item for body in pages for item in decode_chain_page(body).results or ()]
        blocks = [decode_chain_block(body, underlying) for body in pages]
        assert [b.size for b in blocks][:-1] == [97] * (len(blocks) - 1)
        assert blocks[0].next_url is None  # these test pages carry no cursor
        built = chain_from_blocks(blocks, underlying, NOW, attrs={"pages": len(pages)})
        _assert_same(
            built, chain_from_snapshots(items, underlying, NOW, attrs={"pages": len(pages)})
        )
        truth = simulator.market.chain(underlying)
        assert built.sizes[schema.CONTRACT] == truth.size
        assert sorted(built[schema.TICKER].values.tolist()) == sorted(
            truth.columns[schema.TICKER].tolist()
        )


def test_blocks__pydantic_fallback_items_and_absent_parts(simulator: Simulator) -> None:
    objects = [json.loads(body) for body in simulator.chain_snapshot({}, "SPY").items[:60]]
    for k, item in enumerate(objects):
        item["a_field_massive_added_later"] = k  # forces the pydantic models
        if k % 3 == 0:
            del item["last_quote"]
        if k % 4 == 0:
            del item["underlying_asset"]
        if k % 5 == 0:
            del item["details"]["exercise_style"]
    page = decode_chain_page(json.dumps({"status": "OK", "results": objects}).encode())
    assert isinstance(page, ChainPage)
    items = list(page.results or ())
    # two blocks of pydantic items, in order, give the one-block chain
    split = [chain_block(items[:25], "SPY"), chain_block(items[25:], "SPY")]
    chain = chain_from_blocks(split, "SPY", NOW)
    _assert_same(chain, chain_from_snapshots(items, "SPY", NOW))
    assert np.isnan(chain[schema.BID].values[::3]).all()
    assert np.isnat(chain[schema.QUOTE_TIME].values[::3]).all()
    assert chain[schema.UNDERLYING].values[::4].tolist() == ["SPY"] * 15  # the requested name
    assert np.isnan(chain[schema.UNDERLYING_PRICE].values[::4]).all()
    assert set(chain[schema.EXERCISE_STYLE].values.tolist()) == {"american"}


def test_blocks__empty_chain() -> None:
    chain = chain_from_blocks([], "AAPL", NOW)
    assert chain.sizes[schema.CONTRACT] == 0
    assert chain[schema.QUOTE_TIME].dtype == np.dtype("datetime64[ns]")


def test_lanes__concurrent_fetches_match_one_at_a_time(server, simulator: Simulator) -> None:
    names = [u.ticker for u in simulator.market.universe]
    wide = ClientOptions(requests_per_second=None, max_concurrency=5)  # three lanes
    narrow = ClientOptions(requests_per_second=None, max_concurrency=1)
    with MassiveClient(api_key=server.api_key, base_url=server.base_url, options=wide) as a:
        assert len(a.session._lanes) == 3
        together = a.fetch_chains(names)
        assert max(a.session._in_flight) == 0  # every request accounted for
    with MassiveClient(api_key=server.api_key, base_url=server.base_url, options=narrow) as b:
        assert len(b.session._lanes) == 1
        for name in names:
            one = b.fetch_chain(name)
            mine = together[name]
            assert one[schema.TICKER].values.tolist() == mine[schema.TICKER].values.tolist()
            assert np.array_equal(one[schema.BID].values, mine[schema.BID].values, equal_nan=True)


def test_blocks__absent_null_and_pydantic_items_give_one_chain(simulator: Simulator) -> None:
    """The Structs' one-pass columns (absent = NaN / NaT / an empty part), the general path an
    explicit ``null`` takes, and the pydantic fallback read the same chain."""
    objects = [json.loads(body) for body in simulator.chain_snapshot({}, "AAPL").items[:80]]
    for k, item in enumerate(objects):
        if k % 3 == 0:
            del item["last_quote"]
        if k % 4 == 0:
            item.pop("greeks", None)
            item["day"].pop("volume")
        if k % 5 == 0:
            del item["underlying_asset"]["last_updated"]
    absent = json.dumps({"status": "OK", "results": objects}).encode()
    nulls = json.loads(absent)
    for k, item in enumerate(nulls["results"]):  # the same gaps as explicit nulls
        if k % 3 == 0:
            item["last_quote"] = None
        if k % 4 == 0:
            item["greeks"] = None
            item["day"]["volume"] = None
        if k % 5 == 0:
            item["underlying_asset"]["last_updated"] = None
    extra = json.loads(absent)
    extra["results"][0]["a_field_massive_added_later"] = 1  # forces the pydantic models
    pages = [absent, json.dumps(nulls).encode(), json.dumps(extra).encode()]
    decoded = [decode_chain_page(body) for body in pages]
    assert [isinstance(page, ChainPage) for page in decoded] == [False, False, True]
    chains = [chain_from_snapshots(page.results or [], "AAPL", NOW) for page in decoded]
    _assert_same(chains[0], chains[1])
    _assert_same(chains[0], chains[2])
    assert np.isnan(chains[0][schema.BID].values[::3]).all()
    assert np.isnan(chains[0][schema.VENDOR_DELTA].values[::4]).all()
    assert np.isnan(chains[0][schema.VOLUME].values[::4]).all()
    assert np.isnat(chains[0][schema.UNDERLYING_TIME].values[::5]).all()
    assert np.isfinite(chains[0][schema.BID].values[1::3]).all()
