"""Every simulator fault through the real server over loopback HTTP."""

import numpy as np
import pytest

from periscope import schema
from periscope.errors import MarketDataRejected, MarketDataUnavailable, PayloadError
from periscope.simulator import Fault

CHAIN = "/v3/snapshot/options/SPY"


def _assert_complete(ds, market):
    truth = market.chain("SPY").dataset()
    assert ds.sizes["contract"] == truth.sizes["contract"]
    assert len(set(ds[schema.TICKER].values.tolist())) == ds.sizes["contract"]
    joined = truth.set_index(contract=schema.TICKER).sel(contract=ds[schema.TICKER].values)
    np.testing.assert_array_equal(ds[schema.BID].values, joined[schema.BID].values)
    np.testing.assert_array_equal(ds[schema.STRIKE].values, joined[schema.STRIKE].values)


def test_fetch_chain__clean_run_matches_the_truth(client, market):
    ds = client.fetch_chain("SPY")
    _assert_complete(ds, market)
    assert ds.attrs["pages"] > 3


@pytest.mark.parametrize(
    "fault",
    [
        Fault("rate_limit", times=2, path=CHAIN, retry_after=0.1),
        Fault("server_error", times=2, path=CHAIN, page=2),
        Fault("server_error", times=1, path=CHAIN, status=504),
        Fault("non_json", times=2, path=CHAIN, page=1),
        Fault("truncated_json", times=1, path=CHAIN, page=3),
        Fault("slow", times=1, path=CHAIN, page=1, delay=2.5),
    ],
    ids=lambda f: f"{f.kind}-{f.page}",
)
def test_fetch_chain__recovers_from_transient_faults(client, simulator, market, fault):
    simulator.faults.add(fault)
    ds = client.fetch_chain("SPY")
    _assert_complete(ds, market)
    assert fault.times == 0


def test_fetch_chain__persistent_fault_on_a_later_page_fails_whole_fetch(client, simulator):
    simulator.faults.add(Fault("server_error", times=-1, path=CHAIN, page=2))
    with pytest.raises(MarketDataUnavailable) as info:
        client.fetch_chain("SPY")
    assert info.value.context["page"] == 2
    assert info.value.context["status"] == 502


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        (Fault("loop_cursor", path=CHAIN, page=2), PayloadError, "repeated a cursor"),
        (Fault("duplicate", path=CHAIN, page=1), PayloadError, "repeated a contract"),
        (Fault("schema_break", path=CHAIN, page=1), PayloadError, "ChainPage"),
        (Fault("unauthorized", path=CHAIN), MarketDataRejected, "Unknown API Key"),
        (Fault("forbidden", path=CHAIN), MarketDataRejected, "not entitled"),
        (Fault("not_found", path=CHAIN), MarketDataRejected, "not found"),
    ],
    ids=lambda v: getattr(v, "kind", ""),
)
def test_fetch_chain__fails_loudly_on_broken_answers(client, simulator, fault, error, match):
    simulator.faults.add(fault)
    with pytest.raises(error, match=match) as info:
        client.fetch_chain("SPY")
    if error is MarketDataRejected:
        assert info.value.context["request_id"]


def test_fetch_chain__unknown_underlying_is_rejected(client):
    with pytest.raises(MarketDataRejected) as info:
        client.fetch_chain("NOPE")
    assert info.value.context["status"] == 404


def test_fetch_chain__wrong_key_is_rejected(server):
    from periscope.marketdata import MassiveClient

    with (
        MassiveClient(api_key="wrong", base_url=server.base_url) as c,
        pytest.raises(MarketDataRejected, match="Unknown API Key"),
    ):
        c.fetch_chain("SPY")


def test_fetch_chains__many_underlyings_concurrently(client, market):
    names = [u.ticker for u in market.universe]
    chains = client.fetch_chains(names)
    for name in names:
        assert chains[name].sizes["contract"] == market.chain(name).size


def test_fetch_chain__index_underlying_and_filters(client, market):
    expiry = market.chain("I:SPX").columns[schema.EXPIRY][0]
    ds = client.fetch_chain("I:SPX", expiration_date=str(expiry), contract_type="put")
    assert set(ds[schema.RIGHT].values) == {"put"}
    assert set(ds[schema.ROOT].values) == {"SPXW"}
    assert (ds[schema.EXERCISE_STYLE] == "european").all()
    assert not np.isnan(ds[schema.UNDERLYING_PRICE]).any()


def test_fetch_contract__single_contract(client, market):
    ticker = str(market.chain("AAPL").columns[schema.TICKER][7])
    ds = client.fetch_contract("AAPL", ticker)
    assert ds[schema.TICKER].values.tolist() == [ticker]


def test_fetch_chains__one_failure_fails_all_with_its_underlying(client, simulator, market):
    simulator.faults.add(Fault("server_error", times=-1, path="/v3/snapshot/options/QQQ"))
    names = [u.ticker for u in market.universe]
    with pytest.raises(MarketDataUnavailable) as info:
        client.fetch_chains(names)
    assert info.value.context["underlying"] == "QQQ"
