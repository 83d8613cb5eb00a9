"""prepare_inputs: validation, broadcasting and flattening shared by every numerical wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from periscope._arrays import prepare_inputs
from periscope.errors import InvalidInputError


def test_prepare_inputs__broadcasts_and_flattens() -> None:
    prepared = prepare_inputs(
        {"spot": [[100.0], [110.0]], "strike": [90, 100, 110]}, {"is_call": True}
    )
    assert prepared.shape == (2, 3)
    assert prepared.floats["spot"].tolist() == [100.0] * 3 + [110.0] * 3
    assert prepared.floats["strike"].dtype == np.float64
    assert prepared.floats["strike"].flags.c_contiguous
    assert prepared.flags["is_call"].dtype == np.bool_
    assert prepared.reshape(np.arange(6.0)).shape == (2, 3)


def test_prepare_inputs__scalars_give_zero_dimensional_shape() -> None:
    prepared = prepare_inputs({"spot": 100.0, "strike": 95})
    assert prepared.shape == ()
    assert prepared.floats["spot"].shape == (1,)


def test_prepare_inputs__empty_arrays() -> None:
    prepared = prepare_inputs({"spot": np.array([]), "strike": 100.0})
    assert prepared.shape == (0,)
    assert prepared.floats["strike"].size == 0


def test_prepare_inputs__mismatched_shape_names_the_argument() -> None:
    with pytest.raises(InvalidInputError, match="strike has shape \\(3,\\)") as info:
        prepare_inputs({"spot": np.ones(2), "strike": np.ones(3)})
    assert info.value.context == {"argument": "strike"}


@pytest.mark.parametrize("bad", ["100", ["a", "b"], None, 1 + 2j, {"x": 1}])
def test_prepare_inputs__non_numeric_names_the_argument(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="volatility"):
        prepare_inputs({"spot": 100.0, "volatility": bad})


@pytest.mark.parametrize("bad", [2, [0, 3], np.nan, 0.5])
def test_prepare_inputs__flags_must_be_boolean(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="is_call"):
        prepare_inputs({"spot": 100.0}, {"is_call": bad})


def test_prepare_inputs__integer_flags_are_accepted() -> None:
    prepared = prepare_inputs({"spot": 100.0}, {"is_call": [1, 0]})
    assert prepared.flags["is_call"].tolist() == [True, False]


def test_prepare_inputs__outputs_are_writeable_for_one_kernel_specialization() -> None:
    same_shape = np.ones(3)
    prepared = prepare_inputs({"spot": same_shape, "strike": 100.0, "rate": np.ones((1, 3))})
    for flat in prepared.floats.values():
        assert flat.flags.writeable
        assert flat.flags.c_contiguous
