"""Write the simulated market's option day aggregates in Massive's flat-file layout.

``<root>/us_options_opra/day_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz``: one gzip CSV per trading day,
header ``ticker,volume,open,close,high,low,window_start,transactions``, every contract that
traded that day (all underlyings), sorted by ticker; ``window_start`` is Unix nanoseconds of
midnight America/New_York. ``root`` is a local folder, or a bucket path on any fsspec filesystem
(an ``s3fs.S3FileSystem`` for S3), so history runs offline too.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from pathlib import Path
from typing import Any

from periscope.marketdata.flatfiles import DAY_AGGS_COLUMNS, day_aggregates_key
from periscope.simulator import payloads
from periscope.simulator.market import Market


def day_aggregates_csv(market: Market, day: dt.date) -> bytes:
    """The gzip-compressed CSV of ``day``."""
    rows = []
    for u in market.universe:
        chain = market.chain(u.ticker, day)
        for i in range(chain.size):
            bar = payloads.option_bar(chain, i)
            if bar is not None:
                ticker = str(chain.columns["ticker"][i])
                window = bar["t"] * 1_000_000
                rows.append(
                    (
                        ticker,
                        int(bar["v"]),
                        bar["o"],
                        bar["c"],
                        bar["h"],
                        bar["l"],
                        window,
                        bar["n"],
                    )
                )
    rows.sort()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(DAY_AGGS_COLUMNS)
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode(), mtime=0)


def write_day_aggregates(
    market: Market, days: list[dt.date], root: str | Path, filesystem: Any = None
) -> list[str]:
    """Write the day-aggregate files of ``days`` under ``root``; returns the paths written.

    Parameters
    ----------
    market
        The simulated market.
    days
        Trading days to write.
    root
        A local folder (``filesystem=None``) or ``bucket/prefix`` on ``filesystem``.
    filesystem
        An fsspec filesystem such as ``s3fs.S3FileSystem``; None writes to the local disk.
    """
    written = []
    for day in days:
        path = f"{str(root).rstrip('/')}/{day_aggregates_key(day)}"
        body = day_aggregates_csv(market, day)
        if filesystem is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(body)
        else:
            filesystem.pipe(path, body)
        written.append(path)
    return written
