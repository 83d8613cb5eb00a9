"""``<root>/history.zarr``: daily per-underlying metrics, the source of IV rank and percentile.

One Dataset with dimensions ``time`` x ``underlying`` and float64 variables (ATM IV term points,
IV30, skew, realised volatility...). :func:`append_history` is its only writer and must run in
one process at a time (the flows serialise it). Writing a day that is already stored replaces
that day's cells for the underlyings given (never duplicates a day); new days after the last are
appended; new underlyings or variables, or days inserted before the last one (a backfill), make
it rewrite the store, which stays small (a year of 2,000 underlyings x 20 metrics is ~80 MB).

Times are written as int64 nanoseconds since the epoch, fixed on the first write (xarray's
guessed units corrupt appended times, ``reference/pipeline.md`` §4.4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import xarray as xr

from periscope import schema
from periscope.errors import DatasetNotFoundError, InvalidInputError, StorageError
from periscope.storage import _zarr_io
from periscope.storage.location import resolve

logger = logging.getLogger(__name__)

HISTORY: Final = "history.zarr"
TIME: Final = schema.TIME
UNDERLYING: Final = schema.UNDERLYING
# Four years of trading days per chunk along time; every underlying in one chunk.
TIME_CHUNK: Final = 1024


def _validated(metrics: xr.Dataset) -> xr.Dataset:
    if not isinstance(metrics, xr.Dataset):
        raise InvalidInputError("metrics must be an xarray Dataset")
    if set(metrics.dims) != {TIME, UNDERLYING}:
        raise InvalidInputError(
            f"history metrics have dimensions ({TIME}, {UNDERLYING}), got {dict(metrics.sizes)}"
        )
    for name in (TIME, UNDERLYING):
        if name not in metrics.coords:
            raise InvalidInputError(f"history metrics need a {name!r} coordinate", name=name)
    extra = sorted(str(name) for name in metrics.coords if name not in (TIME, UNDERLYING))
    if extra:
        raise InvalidInputError(f"history metrics take no other coordinates: {extra}")
    if not metrics.data_vars:
        raise InvalidInputError("history metrics have no variables")
    if metrics[TIME].dtype.kind != "M":
        raise InvalidInputError(f"{TIME!r} must be datetime64, got {metrics[TIME].dtype}")
    for name in (TIME, UNDERLYING):
        values = metrics[name].values
        if len(set(values.tolist())) != values.size:
            raise InvalidInputError(f"history metrics repeat a {name}", name=name)
    variables: dict[str, xr.DataArray] = {}
    for key, variable in metrics.data_vars.items():
        name = str(key)
        if set(variable.dims) != {TIME, UNDERLYING}:
            raise InvalidInputError(f"{name!r} must be along ({TIME}, {UNDERLYING})", name=name)
        if variable.dtype.kind not in "fiub":
            raise InvalidInputError(f"{name!r} must be numeric, got {variable.dtype}", name=name)
        # float64 throughout, so that an underlying missing on a day is NaN.
        variables[name] = variable.transpose(TIME, UNDERLYING).astype(np.float64)
    underlyings = np.asarray(metrics[UNDERLYING].values.tolist(), dtype=object)
    times = metrics[TIME].values.astype("datetime64[ns]")
    cleaned = xr.Dataset(variables, attrs=metrics.attrs)
    cleaned = cleaned.assign_coords({TIME: times, UNDERLYING: underlyings})
    return cleaned.sortby(TIME)


def _encoding(dataset: xr.Dataset) -> dict[str, dict[str, Any]]:
    n_underlyings = max(dataset.sizes[UNDERLYING], 1)
    return {str(name): {"chunks": (TIME_CHUNK, n_underlyings)} for name in dataset.data_vars}


def _merge(existing: xr.Dataset, new: xr.Dataset) -> xr.Dataset:
    """Existing history overlaid with ``new``: new cells win, everything else is kept."""
    old_underlyings = existing[UNDERLYING].values.tolist()
    added = [u for u in new[UNDERLYING].values.tolist() if u not in set(old_underlyings)]
    underlyings = np.asarray(old_underlyings + added, dtype=object)
    times = np.union1d(existing[TIME].values, new[TIME].values)
    names = list(existing.data_vars) + [n for n in new.data_vars if n not in existing.data_vars]
    rows = np.searchsorted(times, new[TIME].values)
    position = {u: i for i, u in enumerate(underlyings.tolist())}
    columns = np.array([position[u] for u in new[UNDERLYING].values.tolist()], dtype=np.intp)
    variables = {}
    for name in names:
        values = np.full((times.size, underlyings.size), np.nan)
        if name in existing.data_vars:
            old_rows = np.searchsorted(times, existing[TIME].values)
            values[np.ix_(old_rows, np.arange(len(old_underlyings)))] = existing[name].values
        if name in new.data_vars:
            values[np.ix_(rows, columns)] = new[name].values
        attrs = new[name].attrs if name in new.data_vars else existing[name].attrs
        variables[name] = xr.Variable((TIME, UNDERLYING), values, attrs)
    return xr.Dataset(
        variables,
        coords={TIME: times, UNDERLYING: underlyings},
        attrs={**existing.attrs, **new.attrs},
    )


def append_history(
    root: str, metrics: xr.Dataset, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Add daily per-underlying metrics to ``<root>/history.zarr``.

    Parameters
    ----------
    metrics
        Dimensions ``time`` (datetime64, one entry per day) and ``underlying`` (strings);
        numeric variables along both, stored as float64.

    A day already stored gets its cells for the given underlyings replaced (so re-running a
    day is idempotent); other cells are kept. Single writer: do not call it concurrently.

    Raises
    ------
    InvalidInputError
        ``metrics`` does not have the layout above.
    StorageError
        The write failed, or a time could not be encoded exactly.
    """
    new = _validated(metrics)
    location = resolve(root, storage_options)
    store = location.zarr_store(location.child(HISTORY), read_only=False)
    try:
        existing = _zarr_io.open_dataset(store, group=None, consolidated=False)
    except DatasetNotFoundError:
        existing = None
    if existing is None:
        _zarr_io.write(store, new, group=None, mode="w", encoding=_encoding(new), consolidated=True)
        logger.info("history created: %s", dict(new.sizes))
        return

    encoding = existing[TIME].encoding
    if encoding.get("units") != _zarr_io.TIME_UNITS or encoding.get("dtype") != np.int64:
        # Written by something else with guessed units: appending could store wrong dates.
        raise StorageError(
            f"{HISTORY} stores {TIME!r} as {encoding.get('dtype')} {encoding.get('units')!r}, "
            f"not int64 {_zarr_io.TIME_UNITS!r}; rewrite it with append_history",
            units=encoding.get("units"),
        )
    old_times = existing[TIME].values
    old_underlyings = existing[UNDERLYING].values.tolist()
    known = set(old_underlyings)
    present = np.isin(new[TIME].values, old_times)
    later = new[TIME].values > old_times.max() if old_times.size else ~present
    reshape = (
        any(u not in known for u in new[UNDERLYING].values.tolist())
        or any(name not in existing.data_vars for name in new.data_vars)
        or not bool(np.all(present | later))
    )
    if reshape:
        merged = _merge(existing.load(), new)
        _zarr_io.write(
            store, merged, group=None, mode="w", encoding=_encoding(merged), consolidated=True
        )
        logger.info("history rewritten: %s", dict(merged.sizes))
        return

    # Replace stored days in place, one region (a day's row) at a time.
    for day in new[TIME].values[present]:
        index = int(np.searchsorted(old_times, day))
        row = existing.isel({TIME: slice(index, index + 1)}).load()
        patch = _merge(row, new.sel({TIME: [day]}))
        _zarr_io.write(
            store,
            patch.drop_vars(UNDERLYING),
            group=None,
            mode="r+",
            region={TIME: slice(index, index + 1)},
            consolidated=True,
        )
    # Append the days after the last one, every stored underlying and variable present.
    if bool(np.any(later)):
        tail = new.isel({TIME: np.flatnonzero(later)})
        tail = tail.reindex({UNDERLYING: np.asarray(old_underlyings, dtype=object)})
        for name in existing.data_vars:
            if name not in tail.data_vars:
                tail[name] = xr.full_like(tail[next(iter(tail.data_vars))], np.nan)
        tail = tail.drop_vars(UNDERLYING)
        _zarr_io.write(store, tail, group=None, mode="a", append_dim=TIME, consolidated=True)
    logger.info("history: %d day(s) replaced, %d appended", int(present.sum()), int(np.sum(later)))


def open_history(root: str, *, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """``<root>/history.zarr`` opened lazily (``time`` x ``underlying``).

    Raises
    ------
    DatasetNotFoundError
        No history has been written.
    """
    location = resolve(root, storage_options)
    store = location.zarr_store(location.child(HISTORY), read_only=True)
    return _zarr_io.open_dataset(store, group=None, consolidated=True)
