"""Staging: intermediate per-batch datasets of a run, ``<root>/staging/<run_id>/<name>.zarr``.

Pipeline tasks pass URIs, not arrays: a task writes its batch with :func:`write_staged` and
returns the URI; the next task opens it with :func:`open_staged`. Publishing a run removes its
staging area; retention removes areas left behind by runs that died.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

import xarray as xr

from periscope.errors import InvalidInputError
from periscope.storage import _zarr_io
from periscope.storage.location import Location, resolve
from periscope.storage.runs import parse_run_id

logger = logging.getLogger(__name__)

STAGING_FOLDER: Final = "staging"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$")


def staging_area(location: Location, run_id: str) -> str:
    parse_run_id(run_id)
    return location.child(STAGING_FOLDER, run_id)


def _stage_uri_at(location: Location, run_id: str, name: str) -> str:
    if not isinstance(name, str) or _NAME.match(name) is None or ".." in name:
        raise InvalidInputError(f"not a staging name: {name!r}", name=name)
    return f"{staging_area(location, run_id)}/{name}.zarr"


def stage_uri(root: str, run_id: str, name: str) -> str:
    """``<root>/staging/<run_id>/<name>.zarr`` (root made absolute)."""
    return _stage_uri_at(resolve(root), run_id, name)


def write_staged(
    root: str,
    run_id: str,
    name: str,
    ds: xr.Dataset,
    *,
    storage_options: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Write (or replace) a staged dataset and return its URI."""
    location = resolve(root, storage_options)
    uri = _stage_uri_at(location, run_id, name)
    store = location.zarr_store(uri, read_only=False)
    # Not consolidated: a staged dataset is opened once, and skipping consolidation keeps
    # zarr's consolidation notice (and its process-wide warning filters) out of the many
    # concurrent batch writes.
    _zarr_io.write(store, ds, group=None, mode="w", encoding=encoding, consolidated=False)
    logger.debug("staged %s (%s)", uri, dict(ds.sizes))
    return uri


def open_staged(
    uri: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    isel: Mapping[str, slice] | None = None,
) -> xr.Dataset:
    """Open a dataset written by :func:`write_staged` (lazily; strings as objects), or only the
    part ``isel`` selects (``{"contract": slice(a, b)}``: only that part's strings are read).

    Raises
    ------
    DatasetNotFoundError
        Nothing is staged at ``uri``.
    """
    location = resolve(uri, storage_options)
    store = location.zarr_store(location.uri, read_only=True)
    return _zarr_io.open_dataset(store, group=None, consolidated=False, isel=isel)


def remove_staging(location: Location, run_id: str) -> None:
    """Remove a run's staging area (nothing to do if it has none)."""
    area = staging_area(location, run_id)
    if location.has_objects(area):
        location.remove(area, recursive=True)
        logger.info("removed staging area of run %s", run_id)


def staged_run_ids(location: Location) -> list[str]:
    """Run ids that have a staging area (possibly an empty one)."""
    ids = []
    for name in location.list_names(location.child(STAGING_FOLDER)):
        try:
            parse_run_id(name)
        except InvalidInputError:
            continue
        ids.append(name)
    return ids
