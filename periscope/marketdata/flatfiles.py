"""Massive flat files over S3 (s3fs): option day aggregates streamed one trading day at a time.

Files live at ``s3://flatfiles/us_options_opra/day_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz`` behind the
endpoint ``https://files.massive.com``, with S3 access keys separate from the REST API key. A
file is decompressed and parsed as a stream in blocks of rows, by column name (the vendor adds
and reorders columns), so memory holds one day's parsed arrays, never a month.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from pydantic import SecretStr

from periscope import schema
from periscope.errors import InvalidInputError, MarketDataUnavailable, PayloadError
from periscope.marketdata.tickers import parse_option_ticker

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://files.massive.com"
DEFAULT_BUCKET = "flatfiles"
DAY_AGGS_COLUMNS = (
    "ticker",
    "volume",
    "open",
    "close",
    "high",
    "low",
    "window_start",
    "transactions",
)
WINDOW_START = "window_start"


@dataclass(frozen=True, slots=True)
class FlatFileOptions:
    """Where the flat files are and the S3 keys to read them."""

    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    endpoint_url: str = DEFAULT_ENDPOINT
    bucket: str = DEFAULT_BUCKET


def flat_file_system(options: FlatFileOptions) -> Any:
    """An ``s3fs.S3FileSystem`` for the flat files (anonymous without keys)."""
    import s3fs  # imported lazily: only history needs it

    key = options.access_key.get_secret_value() if options.access_key else None
    secret = options.secret_key.get_secret_value() if options.secret_key else None
    return s3fs.S3FileSystem(
        key=key,
        secret=secret,
        anon=key is None,
        client_kwargs={"endpoint_url": options.endpoint_url, "region_name": "us-east-1"},
    )


def day_aggregates_key(day: dt.date, dataset: str = "day_aggs_v1") -> str:
    """``us_options_opra/day_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz``."""
    return f"us_options_opra/{dataset}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


def _parse_block(rows: list[list[str]], index: dict[str, int]) -> dict[str, np.ndarray[Any, Any]]:
    block: dict[str, np.ndarray[Any, Any]] = {
        "ticker": np.array([row[index["ticker"]] for row in rows], dtype=object)
    }
    for name in ("volume", "open", "close", "high", "low", "transactions"):
        block[name] = np.array([row[index[name]] or "nan" for row in rows], dtype=np.float64)
    block[WINDOW_START] = np.array([int(row[index[WINDOW_START]]) for row in rows], dtype=np.int64)
    return block


def read_day_aggregates(
    filesystem: Any, day: dt.date, bucket: str = DEFAULT_BUCKET, block_rows: int = 50_000
) -> xr.Dataset:
    """One day of option day aggregates as a Dataset along ``contract``.

    Coordinates: ``ticker`` and, parsed from it, ``root``, ``expiry``, ``strike``, ``right``;
    variables ``open``, ``high``, ``low``, ``close``, ``volume``, ``transactions``; the window
    start is the ``time`` attribute.

    Raises
    ------
    FileNotFoundError
        No file for ``day`` (a holiday, or not published yet).
    PayloadError
        A required column is missing or a row is malformed.
    MarketDataUnavailable
        The object store failed while streaming.
    """
    path = f"{bucket}/{day_aggregates_key(day)}"
    blocks = []
    try:
        with filesystem.open(path, "rb") as raw, gzip.open(raw, "rt", newline="") as text:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                raise PayloadError("empty flat file", path=path)
            index = {name: i for i, name in enumerate(header)}
            missing = [c for c in DAY_AGGS_COLUMNS if c not in index]
            if missing:
                raise PayloadError(f"flat file lacks columns {missing}", path=path)
            rows: list[list[str]] = []
            for row in reader:
                rows.append(row)
                if len(rows) >= block_rows:
                    blocks.append(_parse_block(rows, index))
                    rows = []
            if rows:
                blocks.append(_parse_block(rows, index))
    except FileNotFoundError:
        raise
    except (ValueError, IndexError, EOFError, gzip.BadGzipFile) as exc:
        raise PayloadError(f"malformed flat file: {exc}", path=path) from exc
    except OSError as exc:
        raise MarketDataUnavailable(f"reading the flat file failed: {exc}", path=path) from exc
    columns = {
        name: np.concatenate([b[name] for b in blocks]) if blocks else np.array([])
        for name in (*DAY_AGGS_COLUMNS,)
    }
    tickers = columns["ticker"].astype(object)
    try:
        parsed = [parse_option_ticker(str(t)) for t in tickers]
    except InvalidInputError as exc:
        raise PayloadError(f"malformed ticker in flat file: {exc}", path=path) from exc
    coords = {
        schema.TICKER: (schema.CONTRACT, tickers),
        schema.ROOT: (schema.CONTRACT, np.array([p.root for p in parsed], dtype=object)),
        schema.EXPIRY: (
            schema.CONTRACT,
            np.array([p.expiry for p in parsed], dtype="datetime64[D]").astype("datetime64[ns]"),
        ),
        schema.STRIKE: (schema.CONTRACT, np.array([p.strike for p in parsed], dtype=np.float64)),
        schema.RIGHT: (schema.CONTRACT, np.array([p.right for p in parsed], dtype=object)),
    }
    data = {
        name: (schema.CONTRACT, columns[name].astype(np.float64))
        for name in (
            schema.OPEN,
            schema.HIGH,
            schema.LOW,
            schema.CLOSE,
            schema.VOLUME,
            schema.TRANSACTIONS,
        )
    }
    logger.info("flat file %s: %d contracts", path, tickers.size)
    return xr.Dataset(data, coords=coords, attrs={"day": day.isoformat(), "source": path})


def iter_day_aggregates(
    filesystem: Any, start: dt.date, end: dt.date, bucket: str = DEFAULT_BUCKET
) -> Iterator[xr.Dataset]:
    """Yield :func:`read_day_aggregates` for each weekday in ``[start, end]`` that has a file.

    Days without a file (holidays) are skipped with a log line; one day is in memory at a time.
    """
    day = start
    while day <= end:
        if day.weekday() < 5:
            try:
                yield read_day_aggregates(filesystem, day, bucket)
            except FileNotFoundError:
                logger.info("no flat file for %s", day)
        day += dt.timedelta(days=1)
