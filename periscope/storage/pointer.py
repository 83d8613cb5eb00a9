"""The ``latest.json`` pointer and publishing a run.

``<root>/latest.json`` names the newest published run. It is replaced atomically (a temporary
file and ``os.replace`` on a local disk; a single PUT on S3) and only after the run it names has
been checked complete, consolidated, re-read and sealed, so a reader following it never sees a
partial run and a run killed half-way never moves it. Its content::

    {
      "format": 1,
      "run_id": "20250314T154500Z-3f9a1c",
      "path": "runs/20250314T154500Z-3f9a1c.zarr",   # relative to the folder of latest.json
      "uri": "/abs/data/runs/20250314T154500Z-3f9a1c.zarr",  # or s3://bucket/prefix/runs/...
      "groups": ["chains", "metrics", "risk", "signals", "surfaces"],
      "created_at": "2025-03-14T15:45:00Z",
      "published_at": "2025-03-14T15:52:10.123456Z",
      "meta": {...}
    }

Use ``path`` (joined to the folder that holds ``latest.json``) to open the run: it stays right
when the data folder is moved, copied or mounted elsewhere. ``uri`` is where the writer put it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any, Final

import zarr

from periscope.errors import DatasetNotFoundError, InvalidInputError, StorageError
from periscope.storage import _zarr_io
from periscope.storage.location import Location, resolve
from periscope.storage.runs import (
    RunInfo,
    format_time,
    parse_run_id,
    parse_time,
    read_run_info,
    run_uri_at,
    seal,
)
from periscope.storage.staging import remove_staging

logger = logging.getLogger(__name__)

POINTER: Final = "latest.json"
POINTER_FORMAT: Final = 1


def pointer_uri(location: Location) -> str:
    return location.child(POINTER)


def read_pointer_at(location: Location) -> RunInfo | None:
    data = location.read_bytes(pointer_uri(location))
    if data is None:
        return None
    try:
        document = json.loads(data)
        run_id = document["run_id"]
        created = parse_run_id(run_id)
        return RunInfo(
            run_id=run_id,
            uri=location.child(document["path"]),
            created=created,
            groups=tuple(document["groups"]),
            published=True,
            published_at=parse_time(document["published_at"]),
            meta=dict(document.get("meta") or {}),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"unreadable pointer {pointer_uri(location)}: {exc}") from exc


def read_pointer(root: str, *, storage_options: Mapping[str, Any] | None = None) -> RunInfo | None:
    """The run ``latest.json`` names, or None before the first publish.

    Raises
    ------
    StorageError
        The pointer exists but cannot be read or parsed.
    """
    return read_pointer_at(resolve(root, storage_options))


def _write_pointer(location: Location, info: RunInfo) -> None:
    document = {
        "format": POINTER_FORMAT,
        "run_id": info.run_id,
        "path": location.relative(info.uri),
        "uri": info.uri,
        "groups": list(info.groups),
        "created_at": format_time(info.created),
        "published_at": format_time(info.published_at or info.created),
        "meta": dict(info.meta),
    }
    location.replace_bytes(pointer_uri(location), (json.dumps(document, indent=2) + "\n").encode())


def _group_names(store: Any) -> list[str]:
    try:
        node = zarr.open_group(store, mode="r", use_consolidated=False, zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return []
    with _zarr_io.zarr_warnings():  # a killed writer's temporary files are not groups
        return sorted(name for name, _ in node.groups())


def publish(
    root: str,
    run_id: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RunInfo:
    """Seal a run and point ``latest.json`` at it.

    Steps: check that every group was completely written (its written marker and all chunks
    present); consolidate the run's metadata; re-open every group through the consolidated
    metadata and decode a sample of each variable; seal the run (the ``periscope`` root
    attribute, written together with the consolidated metadata); replace ``latest.json``
    atomically, unless it already names a newer run (the pointer never moves back in time);
    remove the run's staging area.

    Publishing a run that is already published does not change it; it only re-does the
    pointer and the staging clean-up, so a retried publish is harmless.

    Parameters
    ----------
    meta
        JSON-serialisable metadata stored with the run (and in the pointer).

    Raises
    ------
    DatasetNotFoundError
        The run does not exist or has no groups.
    StorageError
        A group is incomplete or does not read back, or a write failed. The pointer is
        unchanged.
    """
    location = resolve(root, storage_options)
    uri = run_uri_at(location, run_id)
    metadata = dict(meta or {})
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"meta must be JSON-serialisable: {exc}") from exc

    info = read_run_info(location, run_id)
    if not info.published:
        store = location.zarr_store(uri, read_only=False)
        groups = _group_names(store)
        if not groups:
            raise DatasetNotFoundError(f"run {run_id} has no groups to publish", run_id=run_id)
        _zarr_io.raise_if_incomplete(store, groups, run_id)
        _zarr_io.consolidate(store)
        for group in groups:
            _zarr_io.read_sample(location.zarr_store(uri, read_only=True), group)
        published_at = dt.datetime.now(dt.UTC)
        seal(
            location,
            run_id,
            {
                "run_id": run_id,
                "created_at": format_time(info.created),
                "published_at": format_time(published_at),
                "groups": groups,
                "meta": metadata,
            },
        )
        info = read_run_info(location, run_id)
        if not info.published:
            raise StorageError(f"run {run_id} did not seal", run_id=run_id)
        logger.info("run %s sealed with groups %s", run_id, ", ".join(groups))

    current = read_pointer_at(location)
    if current is not None and current.created > info.created:
        logger.warning(
            "run %s published but latest.json stays on the newer run %s", run_id, current.run_id
        )
    else:
        _write_pointer(location, info)
        logger.info("latest.json -> %s", run_id)
    remove_staging(location, run_id)
    return info
