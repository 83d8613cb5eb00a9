"""The one numba policy: nogil, numpy error model, on-disk cache unless turned off."""

from __future__ import annotations

import math

import numpy as np
import pytest

from periscope._numba import cache_enabled, kernel


@kernel
def _ratio(a: float, b: float) -> float:
    return a / b


def test_kernel__division_by_zero_gives_ieee_values_not_exceptions() -> None:
    assert _ratio(1.0, 0.0) == math.inf
    assert math.isnan(_ratio(0.0, 0.0))


def test_kernel__compiled_without_the_gil() -> None:
    assert _ratio.targetoptions["nogil"] is True
    assert _ratio.targetoptions.get("parallel", False) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("1", True), ("yes", True), ("0", False), ("false", False), ("No", False)],
)
def test_cache_enabled__from_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("PERISCOPE_NUMBA_CACHE", value)
    assert cache_enabled() is expected


def test_kernel__works_on_arrays() -> None:
    @kernel
    def total(values: np.ndarray) -> float:
        acc = 0.0
        for v in values:
            acc += v
        return acc

    assert total(np.arange(4.0)) == 6.0
