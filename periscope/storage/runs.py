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
    _zarr_io.mark_written(store, group, len(ds.variables))
    logger.info("run %s: wrote group %s (%s)", run_id, group, dict(ds.sizes))
    return uri


def _unpublished_store(location: Location, run_id: str, group: str) -> Any:
    """The writable store of an unpublished run (StorageError if it is published)."""
    uri = run_uri_at(location, run_id)
    check_group(group)
    if read_run_info(location, run_id).published:
        raise StorageError(f"run {run_id} is published and immutable", run_id=run_id)
    return location.zarr_store(uri, read_only=False)


def create_group(
    root: str,
    run_id: str,
    group: str,
    prototype: xr.Dataset,
    *,
    dim: str,
    size: int,
    chunk: int,
    compressors: tuple[Any, ...] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> int:
    """Lay out a group of ``size`` elements along ``dim`` for writers to fill region by region.

    The group gets every variable of ``prototype`` (its first elements along ``dim`` stand in
    for the data: dtypes, attributes, time units, coordinates without ``dim``; none of their
    values is kept), then its arrays along ``dim`` are sized to ``size`` in chunks of
    ``chunk`` (whole along every other dimension; float arrays compressed with
    ``compressors`` when given). Writers then fill it with :func:`write_region`, each a range
    of whole chunks, in parallel and in any order; the group is not marked written (and so
    cannot be published) until :func:`finish_group`, and ``publish`` refuses it while any
    chunk is missing.

    Returns
    -------
    int
        The number of arrays of the group (for :func:`finish_group`).

    Raises
    ------
    InvalidInputError
        ``prototype`` has no ``dim``, or ``size`` / ``chunk`` are not positive.
    StorageError
        The run is published, or a write failed.
    """
    if dim not in prototype.dims or size < 1 or chunk < 1:
        raise InvalidInputError(
            f"create_group needs a prototype along {dim!r} and a positive size and chunk",
            group=group,
        )
    location = resolve(root, storage_options)
    store = _unpublished_store(location, run_id, group)
    head = prototype.isel({dim: slice(0, min(chunk, size))})
    encoding: dict[str, dict[str, Any]] = {}
    for name, variable in head.variables.items():
        if dim not in variable.dims:
            continue
        chunks = tuple(chunk if d == dim else max(1, n) for d, n in variable.sizes.items())
        encoding[str(name)] = {"chunks": chunks}
        if compressors is not None and variable.dtype.kind == "f":
            encoding[str(name)]["compressors"] = compressors
    _zarr_io.write(store, head, group=group, mode="w", encoding=encoding)
    # Down to nothing first (zarr deletes the chunks beyond a shrunk extent), so the
    # prototype's values leave no chunk behind: a region never written shows as missing.
    _zarr_io.resize_along(store, group, dim, 0)
    _zarr_io.resize_along(store, group, dim, size)
    logger.info("run %s: laid out group %s (%s = %d)", run_id, group, dim, size)
    return len(head.variables)


def write_region(
    root: str,
    run_id: str,
    group: str,
    ds: xr.Dataset,
    *,
    dim: str,
    start: int,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``ds`` into elements ``start ... start + len`` along ``dim`` of a group laid out by
    :func:`create_group` (variables without ``dim`` are left as laid out).

    Writers running at once must write disjoint ranges of whole chunks (``start`` a multiple
    of the chunk, the length too unless the range ends the group): a chunk shared by two
    writers would be read, modified and written by both, and one would lose.

    Raises
    ------
    StorageError
        The run is published, the group is not laid out, or the write failed.
    """
    location = resolve(root, storage_options)
    store = _unpublished_store(location, run_id, group)
    part = ds.drop_vars([name for name, v in ds.variables.items() if dim not in v.dims])
    stop = start + int(part.sizes[dim])
    _zarr_io.write(store, part, group=group, mode="r+", region={dim: slice(start, stop)})


def finish_group(
    root: str,
    run_id: str,
    group: str,
    arrays: int,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Mark a group laid out by :func:`create_group` as written, once every region is.

    ``publish`` still checks that every chunk of it exists before sealing the run.
    """
    location = resolve(root, storage_options)
    _zarr_io.mark_written(_unpublished_store(location, run_id, group), group, arrays)


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
