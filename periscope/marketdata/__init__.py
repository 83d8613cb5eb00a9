"""Market data from Massive (formerly Polygon.io): REST client, cache, history and flat files.

:class:`MassiveClient` (sync) and :class:`AsyncMassiveClient` speak the REST API and return
Datasets in the canonical schema of :mod:`periscope.schema`; errors follow
:mod:`periscope.errors` (see :mod:`periscope.marketdata.session` for the mapping).
"""

from periscope.marketdata.cache import CacheKind, CacheOptions, ResponseCache
from periscope.marketdata.client import AsyncMassiveClient, MassiveClient, UnderlyingPrice
from periscope.marketdata.flatfiles import (
    FlatFileOptions,
    flat_file_system,
    iter_day_aggregates,
    read_day_aggregates,
)
from periscope.marketdata.session import DEFAULT_BASE_URL, ClientOptions
from periscope.marketdata.tickers import OptionTicker, format_option_ticker, parse_option_ticker

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncMassiveClient",
    "CacheKind",
    "CacheOptions",
    "ClientOptions",
    "FlatFileOptions",
    "MassiveClient",
    "OptionTicker",
    "ResponseCache",
    "UnderlyingPrice",
    "flat_file_system",
    "format_option_ticker",
    "iter_day_aggregates",
    "parse_option_ticker",
    "read_day_aggregates",
]
