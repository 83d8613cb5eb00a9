"""Opening published runs: the latest one, a given one, or the newest as of a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import xarray as xr

from periscope.errors import DatasetNotFoundError, InvalidInputError
from periscope.storage import _zarr_io
from periscope.storage.location import Location, resolve
from periscope.storage.pointer import read_pointer_at
from periscope.storage.runs import RunInfo, check_group, parse_run_id, read_run_info, run_ids


def _open_group(location: Location, info: RunInfo, group: str) -> xr.Dataset:
    check_group(group)
    if group not in info.groups:
        raise DatasetNotFoundError(
            f"run {info.run_id} has no group {group!r} (it has {', '.join(info.groups)})",
            run_id=info.run_id,
            group=group,
        )
    store = location.zarr_store(info.uri, read_only=True)
    return _zarr_io.open_dataset(store, group=group, consolidated=info.published)


def open_latest(
    root: str, group: str, *, storage_options: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """One group of the run ``latest.json`` names, opened lazily.

    Raises
    ------
    DatasetNotFoundError
        Nothing is published yet, or the run has no such group.
    """
    location = resolve(root, storage_options)
    info = read_pointer_at(location)
    if info is None:
        raise DatasetNotFoundError(f"no published run under {location.uri}", root=location.uri)
    return _open_group(location, info, group)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def find_run(
    root: str,
    *,
    asof: dt.datetime,
    storage_options: Mapping[str, Any] | None = None,
) -> RunInfo:
    """The newest published run created at or before ``asof`` (naive means UTC).

    Raises
    ------
    DatasetNotFoundError
        No published run is that old.
    """
    location = resolve(root, storage_options)
    limit = _utc(asof)
    # Run ids sort by creation time: walk back from the newest candidate, reading only the
    # runs needed to find a published one.
    candidates = [run_id for run_id in run_ids(location) if parse_run_id(run_id) <= limit]
    for run_id in reversed(candidates):
        info = read_run_info(location, run_id)
        if info.published:
            return info
    raise DatasetNotFoundError(
        f"no published run at or before {limit.isoformat()}", asof=limit.isoformat()
    )


def open_run(
    root: str,
    run_id: str | None = None,
    *,
    asof: dt.datetime | None = None,
    group: str,
    storage_options: Mapping[str, Any] | None = None,
    require_published: bool = True,
) -> xr.Dataset:
    """One group of a run: ``run_id``, else the newest published run at or before ``asof``,
    else the latest (as :func:`open_latest`).

    Parameters
    ----------
    require_published
        Refuse an unpublished (partial or in-progress) run; set False to inspect one.

    Raises
    ------
    DatasetNotFoundError
        No such run, no published run matches, or the run has no such group.
    InvalidInputError
        Both ``run_id`` and ``asof`` given.
    """
    if run_id is not None and asof is not None:
        raise InvalidInputError("give run_id or asof, not both")
    location = resolve(root, storage_options)
    if run_id is not None:
        info = read_run_info(location, run_id)
        if not info.groups:
            raise DatasetNotFoundError(f"no run {run_id}", run_id=run_id)
        if require_published and not info.published:
            raise DatasetNotFoundError(f"run {run_id} is not published", run_id=run_id)
    elif asof is not None:
        info = find_run(root, asof=asof, storage_options=storage_options)
    else:
        return open_latest(root, group, storage_options=storage_options)
    return _open_group(location, info, group)
