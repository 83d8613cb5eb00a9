"""Retention: old published runs go after keep_days, partial ones after the grace period."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from periscope.errors import InvalidInputError
from periscope.storage import (
    apply_retention,
    list_runs,
    new_run_id,
    publish,
    read_pointer,
    write_group,
    write_staged,
)

T0 = dt.datetime(2025, 3, 3, 21, 0, tzinfo=dt.UTC)
SMALL = xr.Dataset({"x": ("i", np.arange(3.0))})


def _run(root: str, days: float, *, published: bool) -> str:
    run_id = new_run_id(T0 + dt.timedelta(days=days))
    write_group(root, run_id, "metrics", SMALL)
    if published:
        publish(root, run_id)
    return run_id


def test_apply_retention__keeps_recent_and_the_pointer(tmp_path: Path) -> None:
    root = str(tmp_path)
    old = _run(root, 0, published=True)
    middle = _run(root, 5, published=True)
    partial_old = _run(root, 6, published=False)
    newest = _run(root, 9, published=True)
    partial_new = _run(root, 10, published=False)  # still being written, maybe
    write_staged(root, partial_old, "batch-0", SMALL)
    write_staged(root, partial_new, "batch-0", SMALL)
    now = T0 + dt.timedelta(days=10, hours=3)

    removed = apply_retention(root, keep_days=7, grace=dt.timedelta(hours=6), now=now)
    assert removed == [old, partial_old]
    assert [r.run_id for r in list_runs(root)] == [middle, newest, partial_new]
    assert not (tmp_path / "staging" / partial_old).exists()
    assert (tmp_path / "staging" / partial_new).exists()
    assert apply_retention(root, keep_days=7, grace=dt.timedelta(hours=6), now=now) == []

    # However old, the run latest.json names stays.
    far = now + dt.timedelta(days=365)
    removed = apply_retention(root, keep_days=1, grace=dt.timedelta(hours=6), now=far)
    assert removed == [middle, partial_new]
    assert [r.run_id for r in list_runs(root)] == [newest]
    assert read_pointer(root).run_id == newest


def test_apply_retention__half_removed_run_reads_partial_and_is_finished(tmp_path: Path) -> None:
    root = str(tmp_path)
    run_id = _run(root, 0, published=True)
    _run(root, 1, published=True)
    # A retention pass that died after removing the root metadata.
    (tmp_path / "runs" / f"{run_id}.zarr" / "zarr.json").unlink()
    assert not next(r for r in list_runs(root) if r.run_id == run_id).published
    now = T0 + dt.timedelta(days=2)
    assert apply_retention(root, keep_days=30, grace=dt.timedelta(hours=1), now=now) == [run_id]


def test_apply_retention__validates(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        apply_retention(str(tmp_path), keep_days=-1, grace=dt.timedelta(0))
    with pytest.raises(InvalidInputError):
        apply_retention(str(tmp_path), keep_days=1, grace=dt.timedelta(hours=-1))
    assert apply_retention(str(tmp_path), keep_days=1, grace=dt.timedelta(0)) == []
