"""Storage: one immutable Zarr store per run, an atomic ``latest.json`` pointer, and history.

Layout under a root (a local folder, default ``./data``, or ``s3://bucket/prefix``)::

    <root>/runs/<run_id>.zarr          one store per pipeline run; a group per stage output
    <root>/staging/<run_id>/<n>.zarr   intermediate per-batch datasets of a run in progress
    <root>/latest.json                 the newest published run (see periscope.storage.pointer)
    <root>/history.zarr                daily per-underlying metrics, time x underlying

A run is written group by group (:func:`write_group`; a large group can instead be laid out
with :func:`create_group` and filled region by region by parallel writers, :func:`write_region`,
then :func:`finish_group`), then :func:`publish` checks, consolidates,
re-reads and seals it and only then moves ``latest.json``. Analysts open data with plain xarray
(``xr.open_zarr(<root>/runs/<id>.zarr, group="surfaces")``) or :func:`open_latest`.

Library functions take the root and explicit s3fs options (``storage_options``, see
:func:`s3_storage_options`); only entry points read :class:`periscope.settings.Settings`.
"""

from periscope.storage.history import append_history, open_history
from periscope.storage.location import Location, resolve, s3_storage_options
from periscope.storage.pointer import publish, read_pointer
from periscope.storage.reader import find_run, open_latest, open_run
from periscope.storage.retention import apply_retention
from periscope.storage.runs import (
    GROUPS,
    RunInfo,
    create_group,
    finish_group,
    list_runs,
    new_run_id,
    parse_run_id,
    run_uri,
    write_group,
    write_region,
)
from periscope.storage.staging import open_staged, stage_uri, write_staged

__all__ = [
    "GROUPS",
    "Location",
    "RunInfo",
    "append_history",
    "apply_retention",
    "create_group",
    "find_run",
    "finish_group",
    "list_runs",
    "new_run_id",
    "open_history",
    "open_latest",
    "open_run",
    "open_staged",
    "parse_run_id",
    "publish",
    "read_pointer",
    "resolve",
    "run_uri",
    "s3_storage_options",
    "stage_uri",
    "write_group",
    "write_region",
    "write_staged",
]
