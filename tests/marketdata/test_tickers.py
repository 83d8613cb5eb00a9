import datetime as dt

import pytest

from periscope.errors import InvalidInputError
from periscope.marketdata.tickers import format_option_ticker, parse_option_ticker


@pytest.mark.parametrize(
    ("ticker", "root", "expiry", "right", "strike"),
    [
        ("O:SPY251219C00650000", "SPY", dt.date(2025, 12, 19), "call", 650.0),
        ("O:SPXW230712C04500000", "SPXW", dt.date(2023, 7, 12), "call", 4500.0),
        ("O:SDS1220204C00003000", "SDS1", dt.date(2022, 2, 4), "call", 3.0),  # adjusted root
        ("O:AMD1220520P00090000", "AMD1", dt.date(2022, 5, 20), "put", 90.0),
        ("O:F250117P00012500", "F", dt.date(2025, 1, 17), "put", 12.5),
        ("SPY251219P00022500", "SPY", dt.date(2025, 12, 19), "put", 22.5),
    ],
)
def test_parse_option_ticker__parses_from_the_right(ticker, root, expiry, right, strike):
    parsed = parse_option_ticker(ticker)
    assert (parsed.root, parsed.expiry, parsed.right, parsed.strike) == (
        root,
        expiry,
        right,
        strike,
    )


def test_parse_option_ticker__spxw_is_not_spx():
    assert parse_option_ticker("O:SPXW250117C05000000").root != "SPX"


@pytest.mark.parametrize(
    "ticker",
    [
        "O:AAPL211022C000150000x",
        "O:C00150000",
        "O:AAPL21102XC00150000",
        "O:AAPL211022X00150000",
        "O:AAPL211332C00150000",
        "O:AA-PL211022C00150000",
    ],
)
def test_parse_option_ticker__rejects_malformed(ticker):
    with pytest.raises(InvalidInputError):
        parse_option_ticker(ticker)


def test_format_option_ticker__round_trips():
    ticker = format_option_ticker("SPXW", dt.date(2025, 3, 21), "put", 5812.5)
    assert ticker == "O:SPXW250321P05812500"
    assert str(parse_option_ticker(ticker)) == ticker


def test_format_option_ticker__rejects_unencodable_strike():
    with pytest.raises(InvalidInputError):
        format_option_ticker("X", dt.date(2025, 3, 21), "call", 100_000.0)
