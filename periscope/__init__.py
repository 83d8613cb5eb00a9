"""Periscope: open options analytics.

Subpackages
-----------
pricing
    Black-Scholes-Merton and Black-76 prices and Greeks (numba kernels).
volatility
    Implied volatility (Jäckel's "Let's Be Rational" class of accuracy).
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
