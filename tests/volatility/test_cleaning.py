"""Quote cleaning: each flag on a hand-made table, thresholds, counts."""

from __future__ import annotations

import numpy as np

from periscope.volatility.cleaning import (
    QUOTE_PROBLEMS,
    CleaningConfig,
    QuoteFlag,
    count_flags,
    flag_quotes,
)

NOW = np.datetime64("2025-01-10T20:45:00", "ns")


def _table() -> dict[str, np.ndarray]:
    # One row per case: clean, missing ask, zero bid, NaN bid, crossed, too wide, stale,
    # non-standard, expired, locked (bid == ask: kept).
    return {
        "bid": np.array([1.00, 1.00, 0.00, np.nan, 1.20, 0.10, 1.00, 1.00, 1.00, 1.00]),
        "ask": np.array([1.10, np.nan, 0.05, 1.00, 1.10, 0.50, 1.10, 1.10, 1.10, 1.00]),
        "quote_time": np.array(
            [NOW] * 6 + [NOW - np.timedelta64(16, "m")] + [NOW] * 3, dtype="datetime64[ns]"
        ),
        "time_to_expiry": np.array([0.1] * 8 + [0.0] + [0.1]),
        "standard": np.array([True] * 7 + [False] + [True] * 2),
    }


def test_flag_quotes__each_problem_gets_its_bit() -> None:
    t = _table()
    flags = flag_quotes(
        t["bid"],
        t["ask"],
        t["quote_time"],
        np.full(10, NOW),
        t["time_to_expiry"],
        t["standard"],
    )
    assert flags.dtype == np.uint16
    expected = [
        0,
        QuoteFlag.MISSING_QUOTE,  # a bid alone is no price
        QuoteFlag.ZERO_BID,
        QuoteFlag.ZERO_BID,
        QuoteFlag.CROSSED,
        QuoteFlag.TOO_WIDE,  # (0.5 - 0.1) / 0.3 = 1.33 > 1
        QuoteFlag.STALE,  # 16 minutes > 15
        QuoteFlag.NONSTANDARD,
        QuoteFlag.EXPIRED,
        0,  # a locked market is a price
    ]
    assert [QuoteFlag(int(f)) for f in flags] == [QuoteFlag(int(e)) for e in expected]
    assert not (flags & ~np.uint16(QUOTE_PROBLEMS)).any()


def test_flag_quotes__thresholds_come_from_the_config() -> None:
    t = _table()
    loose = CleaningConfig(
        max_relative_spread=2.0, stale_after=np.timedelta64(1, "h"), min_time_to_expiry=-1.0
    )
    flags = flag_quotes(
        t["bid"],
        t["ask"],
        t["quote_time"],
        np.full(10, NOW),
        t["time_to_expiry"],
        t["standard"],
        loose,
    )
    assert flags[5] == 0
    assert flags[6] == 0
    assert flags[8] == 0


def test_flag_quotes__unknown_times_are_not_stale() -> None:
    flags = flag_quotes(
        np.array([1.0, 1.0]),
        np.array([1.1, 1.1]),
        np.array(["NaT", NOW - np.timedelta64(1, "D")], dtype="datetime64[ns]"),
        np.array([NOW, "NaT"], dtype="datetime64[ns]"),
        np.array([0.1, 0.1]),
        np.array([True, True]),
    )
    assert flags.tolist() == [0, 0]


def test_count_flags__counts_every_bit_and_the_used_rows() -> None:
    flags = np.array(
        [0, QuoteFlag.STALE, QuoteFlag.STALE | QuoteFlag.CROSSED, QuoteFlag.NOT_OTM],
        dtype=np.uint16,
    )
    counts = count_flags(flags)
    assert counts["stale"] == 2
    assert counts["crossed"] == 1
    assert counts["not_otm"] == 1
    assert counts["used"] == 1
    assert counts["total"] == 4
    assert set(counts) == {str(f.name).lower() for f in QuoteFlag} | {"used", "total"}


def test_flag_quotes__empty_input() -> None:
    empty = np.zeros(0)
    flags = flag_quotes(
        empty,
        empty,
        np.zeros(0, dtype="datetime64[ns]"),
        np.zeros(0, dtype="datetime64[ns]"),
        empty,
        np.zeros(0, dtype=bool),
    )
    assert flags.shape == (0,)
    assert count_flags(flags)["total"] == 0
