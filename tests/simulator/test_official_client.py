"""Fidelity: the official `massive` client reads the simulator unchanged."""

import datetime as dt

import massive
import pytest


@pytest.fixture
def rest(server):
    client = massive.RESTClient(api_key=server.api_key, base=server.base_url, retries=0)
    yield client
    client.client.clear()  # close its urllib3 pools rather than leave sockets to the GC


def test_massive_client__reads_a_chain(rest, server):
    chain = list(rest.list_snapshot_options_chain("SPY", params={"limit": 250}))
    truth = server.simulator.market.chain("SPY")
    assert len(chain) == truth.size
    assert len({c.details.ticker for c in chain}) == truth.size
    first = chain[0]
    assert first.details.shares_per_contract == 100
    assert first.last_quote.bid is not None
    index = list(
        rest.list_snapshot_options_chain("I:SPX", params={"limit": 250, "contract_type": "put"})
    )
    assert index
    assert all(c.details.contract_type == "put" for c in index)
    assert index[0].underlying_asset.value is not None


def test_massive_client__reads_contracts_and_aggregates(rest, server):
    market = server.simulator.market
    contracts = list(rest.list_options_contracts(underlying_ticker="AAPL", limit=1000))
    assert contracts
    assert all(c.underlying_ticker == "AAPL" for c in contracts)
    bars = list(rest.list_aggs("AAPL", 1, "day", market.days[0], market.days[-1], limit=50000))
    assert len(bars) == len(market.days)
    ticker = contracts[len(contracts) // 2].ticker
    option_bars = list(rest.list_aggs(ticker, 1, "day", market.days[0], market.days[-1]))
    assert all(b.volume > 0 for b in option_bars)
    snap = rest.get_snapshot_option("AAPL", ticker)
    assert snap.details.ticker == ticker
    assert isinstance(market.days[0], dt.date)
