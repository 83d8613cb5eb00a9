"""Writing and reading xarray Datasets in Zarr v3 with encodings that round-trip.

The rules (see ``reference/pipeline.md`` §4.4 for the failures behind them):

- times (``datetime64``) are written as int64 nanoseconds since the Unix epoch, durations
  (``timedelta64``) as int64 nanoseconds, always explicitly: xarray's guessed units break on
  append, and a lossy time encoding raises instead of warning;
- strings are written as variable-length strings (object dtype); numpy's ``StringDType`` and
  fixed-width ``<U`` arrays are converted first (neither has a stable v3 form), and strings read
  back, which zarr returns as ``StringDType``, become object arrays again;
- the input's own encoding is dropped (stale chunk or codec settings from another store break a
  write); callers pass an explicit ``encoding`` for chunking;
- every chunk is written, even one equal to the fill value, so that a complete array has all its
  chunks and a half-written one can be told apart (see :func:`check_complete`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal

import xarray as xr
import zarr
from zarr.errors import ZarrUserWarning

from periscope.errors import DatasetNotFoundError, StorageError

TIME_UNITS: Final = "nanoseconds since 1970-01-01"
DURATION_UNITS: Final = "nanoseconds"
# Set on a group's attributes (the number of its arrays) once all of them are written; publish
# refuses a group without it. Removed from what readers get back through this package.
WRITTEN_ATTRIBUTE: Final = "_periscope_written"


@contextlib.contextmanager
def zarr_warnings() -> Iterator[None]:
    """Silence the v3 consolidated-metadata notice and stray temporary files; make
    time-encoding warnings errors.

    Zarr warns on every consolidation that consolidated metadata is not yet part of the v3
    spec; Periscope consolidates on purpose (one GET per open on S3). A writer killed while
    zarr replaced a metadata file leaves its temporary ``zarr.<hex>.partial`` beside it, which
    zarr skips with a warning when it lists the group's members. A time that cannot be
    encoded faithfully must fail the write rather than store a wrong date.

    Before Python 3.14 ``catch_warnings`` swaps process-wide filters, so in a process where
    other threads enter it too the filters can briefly be another thread's: the notice may then
    print, and history writes check the stored time units explicitly rather than rely on this.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Consolidated metadata is currently not part",
            category=ZarrUserWarning,
        )
        warnings.filterwarnings(
            "ignore",
            message="Object at .* is not recognized as a component of a Zarr hierarchy",
            category=ZarrUserWarning,
        )
        warnings.filterwarnings("error", category=xr.SerializationWarning)
        # A plain UserWarning in xarray 2026.9: it then stores the times with other units than
        # the store's, i.e. wrong dates (pipeline.md §4.4).
        warnings.filterwarnings("error", message="Times can't be serialized faithfully")
        yield


def _strings_as_objects(dataset: xr.Dataset, kinds: str) -> xr.Dataset:
    names = [name for name, variable in dataset.variables.items() if variable.dtype.kind in kinds]
    for name in names:
        converted = dataset[name].astype(object)
        if name in dataset.data_vars:
            dataset[name] = converted
        else:
            dataset = dataset.assign_coords({name: converted})
    return dataset


def _uniform_chunks(dataset: xr.Dataset) -> xr.Dataset:
    """Rechunk dask-backed variables whose chunks Zarr cannot take (uneven before the last,
    as after concatenating batches of different sizes) to their largest chunk."""
    for name, variable in list(dataset.variables.items()):
        if variable.chunks is None:
            continue
        fix = {
            dim: max(sizes)
            for dim, sizes in zip(variable.dims, variable.chunks, strict=True)
            if len(sizes) > 1 and (len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0])
        }
        if not fix:
            continue
        if name in dataset.data_vars:
            dataset[name] = dataset[name].chunk(fix)
        else:
            dataset = dataset.assign_coords({name: dataset[name].chunk(fix)})
    return dataset


def prepare(
    dataset: xr.Dataset, encoding: Mapping[str, Mapping[str, Any]] | None
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The dataset to write (strings as objects, even dask chunks, no inherited encoding) and
    its encoding."""
    prepared = _uniform_chunks(_strings_as_objects(dataset.copy(deep=False), "UT"))
    chosen: dict[str, dict[str, Any]] = {}
    for name, variable in prepared.variables.items():
        variable.encoding = {}
        if variable.dtype.kind == "M":
            chosen[str(name)] = {"units": TIME_UNITS, "dtype": "int64"}
        elif variable.dtype.kind == "m":
            chosen[str(name)] = {"units": DURATION_UNITS, "dtype": "int64"}
    for name, extra in (encoding or {}).items():
        chosen.setdefault(name, {}).update(extra)
    return prepared, chosen


def restore(dataset: xr.Dataset) -> xr.Dataset:
    """Strings back to object arrays; Periscope's bookkeeping attribute removed."""
    dataset.attrs.pop(WRITTEN_ATTRIBUTE, None)
    return _strings_as_objects(dataset, "T")


def write(
    store: Any,
    dataset: xr.Dataset,
    *,
    group: str | None,
    mode: Literal["w", "a", "r+"],
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    consolidated: bool = False,
    append_dim: str | None = None,
    region: Mapping[str, slice] | None = None,
) -> None:
    """``Dataset.to_zarr`` with Periscope's encodings, translating failures to StorageError."""
    prepared, chosen = prepare(dataset, encoding)
    if append_dim is not None or region is not None:
        chosen = {}  # the store already fixes the encoding of existing variables
    with zarr_warnings():
        try:
            prepared.to_zarr(
                store,
                mode=mode,
                group=group,
                encoding=chosen or None,
                consolidated=consolidated,
                zarr_format=3,
                write_empty_chunks=True,
                # Dask chunks that straddle the Zarr chunks of an explicit encoding are
                # rechunked rather than refused.
                align_chunks=True,
                append_dim=append_dim,
                region=dict(region) if region is not None else None,
            )
        except (OSError, ValueError, TypeError, xr.SerializationWarning, UserWarning) as exc:
            raise StorageError(f"writing {group or 'dataset'} failed: {exc}", group=group) from exc


def open_dataset(
    store: Any,
    *,
    group: str | None,
    consolidated: bool | None = True,
    isel: Mapping[str, slice] | None = None,
) -> xr.Dataset:
    """Open lazily (no dask), strings restored, only ``isel`` of it when given (selected
    before the strings are read, so a slice of a large dataset reads only its own strings).
    Raises DatasetNotFoundError if absent."""
    try:
        dataset = xr.open_zarr(
            store, group=group, consolidated=consolidated, chunks=None, zarr_format=3
        )
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as exc:
        raise DatasetNotFoundError(f"no dataset {group or ''} in {store}", group=group) from exc
    except (OSError, ValueError) as exc:
        raise StorageError(f"opening {group or 'dataset'} failed: {exc}", group=group) from exc
    if isel:
        dataset = dataset.isel(dict(isel))
    return restore(dataset)


def mark_written(store: Any, group: str, count: int) -> None:
    """Record on the group that all ``count`` of its arrays are written (one small metadata
    write; a dataset written by xarray has one array per variable, coordinates included)."""
    node = zarr.open_group(store, path=group, mode="r+", use_consolidated=False, zarr_format=3)
    node.attrs[WRITTEN_ATTRIBUTE] = count


def resize_along(store: Any, group: str, dim: str, size: int) -> None:
    """Set the length of every array of ``group`` that has dimension ``dim`` to ``size``.

    Growing an array only rewrites its metadata (existing chunks stay); the chunks past the
    old extent are then missing until written, which :func:`check_complete` reports.
    """
    node = zarr.open_group(store, path=group, mode="r+", use_consolidated=False, zarr_format=3)
    with zarr_warnings():
        arrays = [array for _, array in node.arrays()]
    for array in arrays:
        names = array.metadata.dimension_names or ()  # type: ignore[union-attr]
        if dim in names:
            shape = list(array.shape)
            shape[list(names).index(dim)] = size
            array.resize(tuple(shape))


def check_complete(store: Any, group: str) -> list[str]:
    """Problems that make ``group`` unfit to publish (empty list: complete).

    A group is complete when it carries the written marker, every array it names exists, and
    every array has all of its chunks (Periscope writes empty chunks too).
    """
    try:
        node = zarr.open_group(store, path=group, mode="r", use_consolidated=False, zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return [f"group {group!r} does not exist"]
    expected = node.attrs.get(WRITTEN_ATTRIBUTE)
    if isinstance(expected, bool) or not isinstance(expected, int):
        return [f"group {group!r} was not completely written"]
    problems = []
    with zarr_warnings():
        arrays = dict(node.arrays())
    if len(arrays) != expected:
        problems.append(f"group {group!r} has {len(arrays)} of {expected} arrays")
    for name, array in arrays.items():
        # "<", not "!=": with sharding, zarr counts an edge shard's chunks beyond the extent.
        if array.nchunks_initialized < array.nchunks:
            problems.append(
                f"{group}/{name} has {array.nchunks_initialized} of {array.nchunks} chunks"
            )
    return problems


def read_sample(store: Any, group: str) -> None:
    """Open ``group`` through its consolidated metadata and decode one element of each variable.

    Raises
    ------
    StorageError
        The group cannot be opened or decoded.
    """
    dataset = open_dataset(store, group=group, consolidated=True)
    try:
        dataset.isel({dim: slice(0, 1) for dim in dataset.dims}).load()
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"group {group!r} does not read back: {exc}", group=group) from exc


def consolidate(store: Any) -> None:
    """Consolidate the metadata of the whole hierarchy into the root ``zarr.json``."""
    with zarr_warnings():
        try:
            zarr.consolidate_metadata(store, zarr_format=3)
        except (OSError, ValueError) as exc:
            raise StorageError(f"consolidating {store} failed: {exc}") from exc


def raise_if_incomplete(store: Any, groups: list[str], run_id: str) -> None:
    problems = [problem for group in groups for problem in check_complete(store, group)]
    if problems:
        raise StorageError(f"run {run_id} is incomplete: " + "; ".join(problems), run_id=run_id)
