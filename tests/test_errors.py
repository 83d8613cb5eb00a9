"""The exception tree: hierarchy, builtin bases, and context in messages."""

from __future__ import annotations

import pytest

from periscope import errors


@pytest.mark.parametrize(
    ("error", "parents"),
    [
        (errors.InvalidInputError, (errors.PeriscopeError, ValueError)),
        (errors.CalibrationError, (errors.PeriscopeError,)),
        (errors.MarketDataUnavailable, (errors.MarketDataError, errors.PeriscopeError)),
        (errors.MarketDataRejected, (errors.MarketDataError, errors.PeriscopeError)),
        (errors.PayloadError, (errors.MarketDataError, errors.PeriscopeError)),
        (errors.DatasetNotFoundError, (errors.StorageError, LookupError)),
    ],
)
def test_error_tree__parents(error: type[Exception], parents: tuple[type[Exception], ...]) -> None:
    for parent in parents:
        assert issubclass(error, parent)


def test_periscope_error__context_is_kept_and_shown() -> None:
    error = errors.MarketDataRejected("forbidden", endpoint="/v3/snapshot/options/SPY", status=403)
    assert error.context == {"endpoint": "/v3/snapshot/options/SPY", "status": 403}
    assert str(error) == "forbidden (endpoint='/v3/snapshot/options/SPY', status=403)"


def test_periscope_error__message_alone_without_context() -> None:
    assert str(errors.CalibrationError("slice did not converge")) == "slice did not converge"
