import datetime as dt

import numpy as np
import pytest

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.schema import QualityFlag


def _columns(n=6):
    now = np.datetime64("2025-01-02T20:45:00", "ns")
    return {
        schema.TICKER: [f"O:SPY250117C00{600 + i}000" for i in range(n)],
        schema.UNDERLYING: ["SPY"] * n,
        schema.ROOT: ["SPY"] * n,
        schema.EXPIRY: [dt.date(2025, 1, 17)] * n,
        schema.SETTLEMENT: ["PM"] * n,
        schema.STRIKE: np.arange(600.0, 600.0 + n),
        schema.RIGHT: ["call"] * n,
        schema.EXERCISE_STYLE: ["american"] * n,
        schema.SHARES_PER_CONTRACT: [100.0] * n,
        schema.BID: [1.0, 0.0, np.nan, 2.0, 1.0, 0.0],
        schema.ASK: [1.2, 0.05, np.nan, 1.9, 1.1, 0.0],
        schema.QUOTE_TIME: [
            now,
            now,
            np.datetime64("NaT", "ns"),
            now,
            now - np.timedelta64(1, "h"),
            now,
        ],
        schema.UNDERLYING_TIME: [now] * n,
        schema.UNDERLYING_PRICE: [600.0] * n,
        schema.VENDOR_IV: [0.2, 0.3, np.nan, 0.2, 0.2, 0.2],
        schema.VENDOR_DELTA: [0.5, 0.1, np.nan, 0.5, 0.5, 0.5],
        schema.VENDOR_GAMMA: [0.01] * n,
        schema.VENDOR_THETA: [-0.1] * n,
        schema.VENDOR_VEGA: [0.2] * n,
    }


def test_build_chain_dataset__derives_mid_spread_and_flags():
    ds = schema.build_chain_dataset(_columns())
    assert ds.sizes == {schema.CONTRACT: 6}
    assert ds[schema.MID].values[0] == pytest.approx(1.1)
    assert ds[schema.RELATIVE_SPREAD].values[0] == pytest.approx(0.2 / 1.1)
    flags = [QualityFlag(int(v)) for v in ds[schema.QUALITY].values]
    assert flags[0] == QualityFlag(0)
    assert QualityFlag.ZERO_BID in flags[1]
    assert QualityFlag.ONE_SIDED in flags[1]
    assert QualityFlag.MISSING_QUOTE in flags[2]
    assert QualityFlag.MISSING_GREEKS in flags[2]
    assert QualityFlag.MISSING_IV in flags[2]
    assert QualityFlag.CROSSED in flags[3]
    assert np.isnan(ds[schema.MID].values[3])
    assert QualityFlag.STALE in flags[4]
    assert QualityFlag.MISSING_QUOTE in flags[5]
    schema.validate_chain(ds)


def test_build_chain_dataset__rejects_missing_coordinate_and_duplicates():
    columns = _columns()
    del columns[schema.STRIKE]
    with pytest.raises(InvalidInputError, match="strike"):
        schema.build_chain_dataset(columns)
    columns = _columns()
    columns[schema.TICKER] = ["O:SPY250117C00600000"] * 6
    with pytest.raises(InvalidInputError, match="twice"):
        schema.build_chain_dataset(columns)


def test_validate_chain__rejects_unknown_right():
    columns = _columns()
    columns[schema.RIGHT] = ["C"] * 6
    with pytest.raises(InvalidInputError, match="rights"):
        schema.build_chain_dataset(columns)


def test_empty_chain__is_valid():
    schema.validate_chain(schema.empty_chain())


def test_settlement_instant__am_and_pm_in_new_york():
    assert schema.settlement_for_root("SPX", dt.date(2025, 3, 21)) == "AM"
    assert schema.settlement_for_root("SPXW", dt.date(2025, 3, 21)) == "PM"
    assert schema.settlement_for_root("SPX", dt.date(2025, 3, 28)) == "PM"
    pm = schema.settlement_instant(dt.date(2025, 7, 18), "PM")
    assert pm == dt.datetime(2025, 7, 18, 20, 0, tzinfo=dt.UTC)
    am = schema.settlement_instant(dt.date(2025, 1, 17), "AM")
    assert am == dt.datetime(2025, 1, 17, 14, 30, tzinfo=dt.UTC)


def test_settlements__vectorised_matches_scalar():
    days = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-12-31"))
    roots = np.array(["SPX", "SPXW", "AAPL"] * 200, dtype=object)[: days.size]
    expected = [schema.settlement_for_root(r, d.item()) for r, d in zip(roots, days, strict=True)]
    assert schema.settlements(roots, days).tolist() == expected
