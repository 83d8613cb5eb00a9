"""Periscope: open options analytics.

Subpackages and modules
-----------------------
pricing
    Black-Scholes-Merton and Black-76 prices and Greeks, binomial trees, Monte Carlo.
volatility
    Implied volatility (European at "Let's Be Rational" accuracy, American through the tree).
marketdata
    The Massive API client: chain snapshots, reference data, history, flat files, caching.
simulator
    The built-in synthetic market with ground truth and its Massive-compatible HTTP server.
schema
    The canonical chain Dataset: dimensions, variables and quality flags, defined once.
errors
    The exception tree shared by the library, the flows and the API.
settings
    The one configuration model, read by entry points only.
"""

from periscope.errors import (
    CalibrationError,
    DatasetNotFoundError,
    InvalidInputError,
    MarketDataError,
    MarketDataRejected,
    MarketDataUnavailable,
    PayloadError,
    PeriscopeError,
    StorageError,
)

__all__ = [
    "CalibrationError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "MarketDataError",
    "MarketDataRejected",
    "MarketDataUnavailable",
    "PayloadError",
    "PeriscopeError",
    "StorageError",
]

__version__ = "0.1.0"
