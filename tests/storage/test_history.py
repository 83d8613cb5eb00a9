"""history.zarr: daily per-underlying metrics, appended, replaced, widened, with exact times."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from periscope.errors import DatasetNotFoundError, InvalidInputError, StorageError
from periscope.storage import append_history, open_history


def metrics(days: list[str], underlyings: list[str], base: float, **extra: float) -> xr.Dataset:
    """iv30 = base + day index + underlying index / 100, so every cell is recognisable."""
    n, m = len(days), len(underlyings)
    iv30 = base + np.arange(n)[:, None] + np.arange(m)[None, :] / 100
    variables = {"iv30": (("time", "underlying"), iv30)}
    for name, value in extra.items():
        variables[name] = (("time", "underlying"), np.full((n, m), value))
    return xr.Dataset(
        variables,
        coords={
            "time": np.array(days, dtype="datetime64[ns]"),
            "underlying": np.array(underlyings, dtype=object),
        },
    )


def test_append_history__creates_then_appends_days(tmp_path) -> None:
    root = str(tmp_path)
    with pytest.raises(DatasetNotFoundError):
        open_history(root)
    append_history(root, metrics(["2025-03-10", "2025-03-11"], ["SPY", "QQQ"], 0.1))
    append_history(root, metrics(["2025-03-12"], ["SPY", "QQQ"], 0.5))
    history = open_history(root).load()
    np.testing.assert_array_equal(
        history["time"].values,
        np.array(["2025-03-10", "2025-03-11", "2025-03-12"], dtype="datetime64[ns]"),
    )
    np.testing.assert_allclose(history["iv30"].values, [[0.1, 0.11], [1.1, 1.11], [0.5, 0.51]])
    assert history["underlying"].dtype == object
    assert history["underlying"].values.tolist() == ["SPY", "QQQ"]
    time = zarr.open_group(str(tmp_path / "history.zarr"), mode="r")["time"]
    assert time.dtype == np.int64
    assert time.attrs["units"] == "nanoseconds since 1970-01-01"


def test_append_history__same_day_replaces_never_duplicates(tmp_path) -> None:
    root = str(tmp_path)
    append_history(root, metrics(["2025-03-10", "2025-03-11"], ["SPY", "QQQ"], 0.1))
    append_history(root, metrics(["2025-03-11"], ["QQQ"], 0.9))  # one cell replaced
    append_history(root, metrics(["2025-03-11"], ["QQQ"], 0.9))  # idempotent
    history = open_history(root).load()
    assert history.sizes == {"time": 2, "underlying": 2}
    np.testing.assert_allclose(history["iv30"].values, [[0.1, 0.11], [1.1, 0.9]])


def test_append_history__new_underlyings_and_variables_widen_the_store(tmp_path) -> None:
    root = str(tmp_path)
    append_history(root, metrics(["2025-03-10"], ["SPY"], 0.1))
    append_history(root, metrics(["2025-03-11"], ["QQQ", "SPY"], 0.3, skew=-0.05))
    append_history(root, metrics(["2025-03-12"], ["SPY"], 0.6))  # QQQ missing that day
    history = open_history(root).load()
    assert history["underlying"].values.tolist() == ["SPY", "QQQ"]
    np.testing.assert_allclose(
        history["iv30"].values, [[0.1, np.nan], [0.31, 0.3], [0.6, np.nan]], equal_nan=True
    )
    np.testing.assert_allclose(
        history["skew"].values, [[np.nan] * 2, [-0.05, -0.05], [np.nan] * 2], equal_nan=True
    )


def test_append_history__backfill_inserts_older_days_in_order(tmp_path) -> None:
    root = str(tmp_path)
    append_history(root, metrics(["2025-03-12", "2025-03-13"], ["SPY"], 0.5))
    append_history(root, metrics(["2025-03-10", "2025-03-11"], ["SPY"], 0.1))
    history = open_history(root).load()
    np.testing.assert_array_equal(
        history["time"].values,
        np.array(["2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13"], "datetime64[ns]"),
    )
    np.testing.assert_allclose(history["iv30"].values[:, 0], [0.1, 1.1, 0.5, 1.5])


def test_append_history__intraday_times_stay_exact(tmp_path) -> None:
    # The xarray append bug (pipeline.md §4.4): a first write at midnight picks "days" units and
    # a later 21:30 time is stored wrong. Explicit int64 nanoseconds keep both.
    root = str(tmp_path)
    append_history(root, metrics(["2025-03-10T00:00"], ["SPY"], 0.1))
    append_history(root, metrics(["2025-03-10T21:30:00.000000123"], ["SPY"], 0.2))
    np.testing.assert_array_equal(
        open_history(root)["time"].values,
        np.array(["2025-03-10T00:00", "2025-03-10T21:30:00.000000123"], "datetime64[ns]"),
    )


def test_append_history__lossy_time_encoding_is_an_error(tmp_path) -> None:
    # A history store written elsewhere with xarray's guessed units ("days since ..."): adding
    # an intraday time would be stored wrong, so it must fail instead of warning.
    root = tmp_path / "data"
    first = metrics(["2025-03-10"], ["SPY"], 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's consolidated-metadata notice
        first.to_zarr(root / "history.zarr", mode="w", zarr_format=3)
    with pytest.raises(StorageError, match="not int64 'nanoseconds since 1970-01-01'"):
        append_history(str(root), metrics(["2025-03-11T21:30"], ["SPY"], 0.2))
    np.testing.assert_array_equal(
        open_history(str(root))["time"].values, np.array(["2025-03-10"], "datetime64[ns]")
    )


def test_write__lossy_time_encoding_is_an_error_not_a_warning(tmp_path) -> None:
    # The second line of defence, below the explicit units: xarray's "Times can't be serialized
    # faithfully" warning (it then stores wrong dates) fails the write.
    from periscope.storage import _zarr_io

    store = str(tmp_path / "x.zarr")
    first = metrics(["2025-03-10"], ["SPY"], 0.1)
    days = {"time": {"units": "days since 2025-03-10", "dtype": "int64"}}
    _zarr_io.write(store, first, group=None, mode="w", encoding=days)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside the test suite: warnings only warn
        with pytest.raises(StorageError, match="serialized faithfully"):
            _zarr_io.write(
                store,
                metrics(["2025-03-11T21:30"], ["SPY"], 0.2),
                group=None,
                mode="a",
                append_dim="time",
            )


@pytest.mark.parametrize(
    "bad",
    [
        xr.Dataset({"iv30": ("time", [0.1])}, coords={"time": np.array(["2025-03-10"], "M8[ns]")}),
        metrics(["2025-03-10", "2025-03-10"], ["SPY"], 0.1),
        metrics(["2025-03-10"], ["SPY", "SPY"], 0.1),
        metrics(["2025-03-10"], ["SPY"], 0.1).assign(name=(("time", "underlying"), [["x"]])),
        metrics(["2025-03-10"], ["SPY"], 0.1).assign_coords(sector=("underlying", ["etf"])),
        metrics(["2025-03-10"], ["SPY"], 0.1).assign_coords(time=[1]),
    ],
    ids=[
        "no-underlying",
        "repeated-day",
        "repeated-underlying",
        "string-var",
        "extra-coord",
        "int-time",
    ],
)
def test_append_history__rejects_other_layouts(tmp_path, bad) -> None:
    with pytest.raises(InvalidInputError):
        append_history(str(tmp_path), bad)
