"""Reference data and history through the client against the simulator over loopback."""

import numpy as np

from periscope import schema


def test_fetch_contracts__as_of_a_past_date_merges_both_expired_values(client, market):
    as_of = market.days[-1]
    listed = client.fetch_contracts("SPY", as_of, expired=False)
    expired = client.fetch_contracts("SPY", as_of, expired=True)
    both = client.fetch_contracts("SPY", as_of)
    assert both.sizes["contract"] == listed.sizes["contract"] + expired.sizes["contract"]
    assert (expired[schema.EXPIRY] < np.datetime64(as_of, "ns")).all()
    truth = market.chain("SPY", as_of)
    assert set(listed[schema.TICKER].values) == set(truth.columns[schema.TICKER].tolist())
    assert list(both[schema.TICKER].values) == sorted(both[schema.TICKER].values)


def test_fetch_contracts__filters_and_past_dates(client, market):
    as_of = market.days[5]
    ds = client.fetch_contracts("I:SPX", as_of, expired=False, contract_type="call")
    assert set(ds[schema.RIGHT].values) == {"call"}
    assert ds.attrs["as_of"] == as_of.isoformat()
    assert (ds[schema.EXPIRY] >= np.datetime64(as_of, "ns")).all()


def test_fetch_daily_bars__stock_and_option(client, market):
    bars = client.fetch_daily_bars("AAPL", market.days[0], market.days[-1])
    assert bars.sizes[schema.TIME] == len(market.days)
    np.testing.assert_allclose(
        bars[schema.CLOSE].values[-1], market.spot("AAPL", market.days[-1]), rtol=1e-6
    )
    chain = market.chain("AAPL", market.days[-1]).dataset()
    ticker = str(chain[schema.TICKER].values[int(np.argmax(chain[schema.VOLUME].values))])
    option = client.fetch_daily_bars(ticker, market.days[-5], market.days[-1])
    assert option.sizes[schema.TIME] >= 1
    assert (option[schema.VOLUME] > 0).all()
    assert option.attrs["ticker"] == ticker


def test_fetch_underlying_price__stock_and_index(client, market):
    stock = client.fetch_underlying_price("AAPL")
    index = client.fetch_underlying_price("I:SPX")
    assert stock.price == round(market.spot("AAPL", market.today), 4)
    assert index.price == round(market.spot("I:SPX", market.today), 4)
    assert index.time is not None


def test_fetch_treasury_yields__decimals_by_tenor(client, market):
    ds = client.fetch_treasury_yields(market.days[0], market.days[9])
    assert ds[schema.TREASURY_YIELD].shape == (10, 11)
    curve = market.rate_curve(market.days[0])
    np.testing.assert_allclose(
        ds[schema.TREASURY_YIELD].sel(tenor=1.0).values[0], curve.par_yield(1.0), atol=1e-5
    )


def test_fetch_dividends__cash_dividends_of_a_stock(client, market):
    ds = client.fetch_dividends("AAPL", market.days[0], market.days[-1])
    truth = [d for d in market.dividends("AAPL") if market.days[0] <= d.ex_date <= market.days[-1]]
    assert ds.sizes[schema.DIVIDEND] == len(truth)
    assert client.fetch_dividends("SPY").sizes[schema.DIVIDEND] == 0
