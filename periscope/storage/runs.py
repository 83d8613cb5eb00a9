"""Runs: one immutable Zarr v3 store per pipeline run, ``<root>/runs/<run_id>.zarr``.

A run holds one group per stage output (:data:`GROUPS`: chains, surfaces, metrics, risk,
signals), each an xarray Dataset. Stages write groups with :func:`write_group` while the run is
unpublished (re-writing a group replaces it, so retries are idempotent);
:func:`periscope.storage.publish` then checks, consolidates and seals the run. A published run
carries a ``periscope`` attribute on its root group (run id, times, groups, caller metadata) and
is never written again.

Run ids are ``YYYYMMDDTHHMMSSZ-xxxxxx``: the UTC creation time to the second, then six random
hex digits, so they sort by time and two runs started in the same second do not collide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import xarray as xr

from periscope.errors import InvalidInputError, StorageError
from periscope.storage import _zarr_io
from periscope.storage.location import Location, resolve

logger = logging.getLogger(__name__)

RUNS_FOLDER: Final = "runs"
RUN_SUFFIX: Final = ".zarr"
GROUPS: Final = ("chains", "surfaces", "metrics", "risk", "signals")
# The root-group attribute that seals a published run.
RUN_ATTRIBUTE: Final = "periscope"
_RUN_ID: Final = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{6})$")
_GROUP: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TIME_FORMAT: Final = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class RunInfo:
    """What is known about one run.

    Attributes
    ----------
    run_id
        ``YYYYMMDDTHHMMSSZ-xxxxxx``.
    uri
        Absolute URI of the run's store (local path or ``s3://...``).
    created
        Creation time (UTC, from the run id).
    groups
        Groups present in the store, sorted.
    published
        The run passed :func:`periscope.storage.publish`: complete, consolidated, re-read and
        sealed. An unpublished run is partial or still being written.
    published_at
        When it was sealed (UTC), or None.
    meta
        Caller metadata given to ``publish`` (JSON values).
    """

    run_id: str
    uri: str
    created: dt.datetime
    groups: tuple[str, ...]
    published: bool
    published_at: dt.datetime | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)


def new_run_id(now: dt.datetime | None = None) -> str:
    """A new run id for a run created at ``now`` (default: the current time; naive means UTC).

    >>> new_run_id(dt.datetime(2025, 3, 14, 15, 45, tzinfo=dt.UTC))[:17]
    '20250314T154500Z-'
    """
    moment = _utc(now) if now is not None else dt.datetime.now(dt.UTC)
    return f"{moment.strftime(_TIME_FORMAT)}-{secrets.token_hex(3)}"


def parse_run_id(run_id: str) -> dt.datetime:
    """The creation time (UTC) a run id encodes.

    Raises
    ------
    InvalidInputError
        ``run_id`` is not of the form ``YYYYMMDDTHHMMSSZ-xxxxxx``.
    """
    match = _RUN_ID.match(run_id) if isinstance(run_id, str) else None
    if match is None:
        raise InvalidInputError(f"not a run id: {run_id!r}", run_id=run_id)
    try:
        return dt.datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise InvalidInputError(f"not a run id: {run_id!r}", run_id=run_id) from exc


def check_group(group: str) -> str:
    """``group`` if it is a valid group name (lowercase identifier), else InvalidInputError."""
    if not isinstance(group, str) or _GROUP.match(group) is None:
        raise InvalidInputError(f"not a group name: {group!r}", group=group)
    return group


def run_uri(root: str, run_id: str) -> str:
    """``<root>/runs/<run_id>.zarr`` with the root made absolute."""
    return run_uri_at(resolve(root), run_id)


def run_uri_at(location: Location, run_id: str) -> str:
    parse_run_id(run_id)
    return location.child(RUNS_FOLDER, run_id + RUN_SUFFIX)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    return _utc(dt.datetime.fromisoformat(text))


def write_group(
    root: str,
    run_id: str,
    group: str,
    ds: xr.Dataset,
    *,
    storage_options: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Write one group of an unpublished run, replacing the group if it exists.

    Parameters
    ----------
    root, run_id, group
        Where: ``<root>/runs/<run_id>.zarr``, group ``group`` (see :data:`GROUPS`).
    ds
        The dataset. Times become int64 nanoseconds since the epoch, strings variable-length.
    storage_options
        s3fs options for an S3 root.
    encoding
        Extra per-variable Zarr encoding (``chunks``, ``compressors``...).

    Returns
    -------
    str
        The run's URI (open the group with ``xr.open_zarr(uri, group=group)``).

    Raises
    ------
    StorageError
        The run is already published (runs are immutable), or the write failed.
    """
    location = resolve(root, storage_options)
    uri = run_uri_at(location, run_id)
    check_group(group)
    if read_run_info(location, run_id).published:
        raise StorageError(f"run {run_id} is published and immutable", run_id=run_id)
    store = location.zarr_store(uri, read_only=False)
    _zarr_io.write(store, ds, group=group, mode="w", encoding=encoding)
    _zarr_io.mark_written(store, group, ds)
    logger.info("run %s: wrote group %s (%s)", run_id, group, dict(ds.sizes))
    return uri


def _root_document(location: Location, uri: str) -> dict[str, Any] | None:
    data = location.read_bytes(posixpath.join(uri, "zarr.json"))
    if data is None:
        return None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"unreadable metadata in {uri}: {exc}", uri=uri) from exc
    if not isinstance(document, dict):
        raise StorageError(f"unreadable metadata in {uri}", uri=uri)
    return document


def read_run_info(location: Location, run_id: str) -> RunInfo:
    """The state of one run, from its root ``zarr.json`` (one small read) and, if it is not
    published, a listing of its groups."""
    uri = run_uri_at(location, run_id)
    created = parse_run_id(run_id)
    document = _root_document(location, uri)
    sealed = (document or {}).get("attributes", {}).get(RUN_ATTRIBUTE)
    consolidated = (document or {}).get("consolidated_metadata")
    if isinstance(sealed, dict) and isinstance(consolidated, dict):
        return RunInfo(
            run_id=run_id,
            uri=uri,
            created=created,
            groups=tuple(sorted(sealed.get("groups", []))),
            published=True,
            published_at=parse_time(sealed["published_at"]),
            meta=dict(sealed.get("meta", {})),
        )
    # A group is there once its metadata is: a folder alone is not enough (a writer killed
    # before it wrote any, or a filer-backed S3 server keeping emptied folders).
    names = [
        name
        for name in location.list_names(uri)
        if _GROUP.match(name) and location.read_bytes(posixpath.join(uri, name, "zarr.json"))
    ]
    return RunInfo(run_id=run_id, uri=uri, created=created, groups=tuple(names), published=False)


def seal(location: Location, run_id: str, attributes: Mapping[str, Any]) -> None:
    """Add the ``periscope`` attribute to a run's consolidated root metadata, in one write.

    Editing the root document directly (rather than through zarr, then re-consolidating) keeps
    the consolidated block and the seal in the same atomic replace: a run is never sealed
    without its consolidated metadata.
    """
    uri = run_uri_at(location, run_id)
    document = _root_document(location, uri)
    if document is None or "consolidated_metadata" not in document:
        raise StorageError(f"run {run_id} has no consolidated metadata", run_id=run_id)
    document.setdefault("attributes", {})[RUN_ATTRIBUTE] = dict(attributes)
    location.replace_bytes(
        posixpath.join(uri, "zarr.json"), json.dumps(document, indent=2).encode()
    )


def run_ids(location: Location) -> list[str]:
    """Ids of the run stores under the root, sorted (oldest first)."""
    ids = []
    for name in location.list_names(location.child(RUNS_FOLDER)):
        if name.endswith(RUN_SUFFIX) and _RUN_ID.match(name[: -len(RUN_SUFFIX)]):
            ids.append(name[: -len(RUN_SUFFIX)])
    return sorted(ids)


def list_runs(root: str, *, storage_options: Mapping[str, Any] | None = None) -> list[RunInfo]:
    """Every run under ``root`` that has at least one group, oldest first, published or not."""
    location = resolve(root, storage_options)
    infos = (read_run_info(location, run_id) for run_id in run_ids(location))
    return [info for info in infos if info.groups]
