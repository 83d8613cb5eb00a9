"""The exception tree.

::

    PeriscopeError
    ├── InvalidInputError (ValueError)      bad arguments: wrong type, shape or domain
    ├── CalibrationError                    a fit that cannot produce a usable result
    ├── MarketDataError                     anything from a market-data source
    │   ├── MarketDataUnavailable           transient: timeouts, connection errors, 429, 5xx
    │   ├── MarketDataRejected              the request itself was refused: 401, 403, 404
    │   └── PayloadError                    a body that breaks the expected schema
    └── StorageError                        reading or writing datasets
        └── DatasetNotFoundError (LookupError)

Numerical kernels never raise inside a batch: a bad element gets NaN and a status code. Only
whole-call problems (mismatched shapes, wrong types) raise ``InvalidInputError``. Flows retry only
``MarketDataUnavailable``; the API maps this tree to HTTP status codes in one place.
"""

from __future__ import annotations

from typing import Any


class PeriscopeError(Exception):
    """Root of every error Periscope raises on purpose.

    Keyword arguments become ``context``: the endpoint, status, underlying or expiry the error
    is about, so logs and API responses can name what went wrong.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class InvalidInputError(PeriscopeError, ValueError):
    """An argument has the wrong type, shape or domain for the whole call."""


class CalibrationError(PeriscopeError):
    """A model fit could not produce a usable result."""


class MarketDataError(PeriscopeError):
    """A market-data source failed or answered something unusable."""


class MarketDataUnavailable(MarketDataError):
    """A transient failure worth retrying: timeout, connection error, 429 or 5xx."""


class MarketDataRejected(MarketDataError):
    """The source refused the request (401, 403, 404); retrying will not help."""


class PayloadError(MarketDataError):
    """A response body does not match the expected schema."""


class StorageError(PeriscopeError):
    """Reading or writing a dataset failed."""


class DatasetNotFoundError(StorageError, LookupError):
    """The requested run, group or pointer does not exist."""
