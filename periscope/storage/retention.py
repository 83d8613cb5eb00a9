"""Retention: remove old runs and the debris of runs that died, never the one readers follow.

Published runs older than ``keep_days`` go; unpublished (partial) runs and staging areas go once
older than ``grace``, which must exceed the longest a run takes to write and publish (a younger
unpublished run may still be in progress). The run ``latest.json`` names is always kept, however
old. Readers that opened a run just before it is removed lose it: keep ``keep_days`` well above
the time a reader holds a run open.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
from collections.abc import Mapping
from typing import Any

from periscope.errors import InvalidInputError
from periscope.storage.location import resolve
from periscope.storage.pointer import read_pointer_at
from periscope.storage.runs import parse_run_id, read_run_info, run_ids, run_uri_at
from periscope.storage.staging import remove_staging, staged_run_ids

logger = logging.getLogger(__name__)


def apply_retention(
    root: str,
    *,
    keep_days: int,
    grace: dt.timedelta,
    now: dt.datetime | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Remove runs past retention; return the removed run ids (oldest first).

    Parameters
    ----------
    keep_days
        Published runs created more than this many days before ``now`` are removed.
    grace
        Unpublished runs and staging areas created more than this before ``now`` are removed.
    now
        The current time (default: now; naive means UTC).

    A run's root metadata is removed first, so a run half-removed by a crash reads as partial
    and the next pass finishes it.
    """
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 0:
        raise InvalidInputError(f"keep_days must be a non-negative integer, got {keep_days!r}")
    if grace < dt.timedelta(0):
        raise InvalidInputError(f"grace must not be negative, got {grace}")
    moment = dt.datetime.now(dt.UTC) if now is None else now
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
    published_before = moment - dt.timedelta(days=keep_days)
    partial_before = moment - grace

    location = resolve(root, storage_options)
    pointer = read_pointer_at(location)
    protected = pointer.run_id if pointer is not None else None
    removed = []
    for run_id in run_ids(location):
        created = parse_run_id(run_id)
        if run_id == protected or created >= max(published_before, partial_before):
            continue
        info = read_run_info(location, run_id)
        limit = published_before if info.published else partial_before
        if created >= limit:
            continue
        uri = run_uri_at(location, run_id)
        if not info.groups and not location.has_objects(uri):
            continue  # an empty folder left by an earlier removal (filer-backed S3 servers)
        location.remove(posixpath.join(uri, "zarr.json"))
        location.remove(uri, recursive=True)
        removed.append(run_id)
        logger.info(
            "retention removed %s run %s", "published" if info.published else "partial", run_id
        )
    for run_id in staged_run_ids(location):
        if run_id != protected and parse_run_id(run_id) < partial_before:
            remove_staging(location, run_id)  # no-op for an already emptied area
    return removed
