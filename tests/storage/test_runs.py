"""Runs, publishing and the pointer, on the local disk and on S3 (moto on loopback)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from periscope.errors import DatasetNotFoundError, InvalidInputError, StorageError
from periscope.storage import (
    GROUPS,
    create_group,
    finish_group,
    list_runs,
    new_run_id,
    open_latest,
    open_run,
    open_staged,
    parse_run_id,
    publish,
    read_pointer,
    resolve,
    run_uri,
    stage_uri,
    write_group,
    write_region,
    write_staged,
)

T0 = dt.datetime(2025, 3, 14, 15, 45, tzinfo=dt.UTC)


def test_new_run_id__sorts_by_time_and_is_unique() -> None:
    ids = [new_run_id(T0 + dt.timedelta(seconds=s)) for s in (0, 1, 59, 3600, 86_400)]
    assert ids == sorted(ids)
    assert ids[0].startswith("20250314T154500Z-")
    assert len({new_run_id(T0) for _ in range(200)}) == 200
    assert parse_run_id(ids[3]) == T0 + dt.timedelta(hours=1)
    naive = new_run_id(dt.datetime(2025, 3, 14, 15, 45))
    assert parse_run_id(naive) == T0
    eastern = dt.datetime(2025, 3, 14, 11, 45, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert parse_run_id(new_run_id(eastern)) == T0


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "latest",
        "20250314T154500Z",
        "20250314T154500Z-XYZ123",
        "../20250314T154500Z-abcdef",
        "20251399T154500Z-abcdef",
    ],
)
def test_parse_run_id__rejects_other_names(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_run_id(bad)


def test_run_uri__under_the_absolute_root(tmp_path: Path) -> None:
    run_id = new_run_id(T0)
    assert run_uri(str(tmp_path), run_id) == f"{tmp_path}/runs/{run_id}.zarr"
    assert run_uri("s3://bucket/prefix/", run_id) == f"s3://bucket/prefix/runs/{run_id}.zarr"
    assert stage_uri("s3://b/p", run_id, "batch-0") == f"s3://b/p/staging/{run_id}/batch-0.zarr"
    with pytest.raises(InvalidInputError):
        stage_uri("s3://b/p", run_id, "../x")
    with pytest.raises(InvalidInputError):
        run_uri("gs://bucket", run_id)


def test_publish__round_trips_a_chain_with_dtypes(local_root, chain) -> None:
    run_id = new_run_id()
    uri = write_group(local_root.uri, run_id, "chains", chain)
    assert uri == run_uri(local_root.uri, run_id)
    write_group(local_root.uri, run_id, "surfaces", chain.isel(contract=slice(0, 40)))
    assert read_pointer(local_root.uri) is None
    with pytest.raises(DatasetNotFoundError):
        open_latest(local_root.uri, "chains")

    info = publish(local_root.uri, run_id, meta={"universe": ["SPY"], "n": 1})
    assert info.published
    assert info.groups == ("chains", "surfaces")
    assert info.meta == {"universe": ["SPY"], "n": 1}

    back = open_latest(local_root.uri, "chains").load()
    xr.testing.assert_identical(back, chain)
    for name, variable in chain.variables.items():
        assert back[name].dtype == variable.dtype, name
    assert back["ticker"].dtype == object
    assert isinstance(back["ticker"].values[0], str)
    assert np.isnat(back["last_time"].values).sum() == np.isnat(chain["last_time"].values).sum()
    assert int(back["quality"].max()) == int(chain["quality"].max())

    pointer = read_pointer(local_root.uri)
    assert pointer == info
    assert open_run(local_root.uri, run_id, group="surfaces").sizes["contract"] == 40


def test_publish__times_are_int64_nanoseconds_on_disk(local_root, chain) -> None:
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "chains", chain)
    publish(local_root.uri, run_id)
    group = zarr.open_group(run_uri(local_root.uri, run_id), path="chains", mode="r")
    for name in ("expiry", "quote_time", "snapshot_time"):
        array = group[name]
        assert array.dtype == np.int64, name
        assert array.attrs["units"] == "nanoseconds since 1970-01-01", name


def test_latest_json__opens_with_plain_xarray_from_the_data_folder(tmp_path, chain) -> None:
    root = tmp_path / "data"
    run_id = new_run_id()
    write_group(str(root), run_id, "chains", chain)
    publish(str(root), run_id)
    # What the README shows an analyst, from the parent of the data folder, no Periscope.
    os.chdir(tmp_path)
    pointer = json.loads(Path("data/latest.json").read_text())
    assert pointer["run_id"] == run_id
    assert pointer["groups"] == ["chains"]
    assert pointer["path"] == f"runs/{run_id}.zarr"
    assert pointer["uri"] == str(root / "runs" / f"{run_id}.zarr")
    plain = xr.open_zarr(Path("data") / pointer["path"], group="chains")
    np.testing.assert_array_equal(plain["ticker"].values.astype(object), chain["ticker"].values)
    np.testing.assert_array_equal(plain["bid"].values, chain["bid"].values)
    np.testing.assert_array_equal(plain["quote_time"].values, chain["quote_time"].values)


def test_write_group__rewrite_replaces_the_group(local_root, numbered) -> None:
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "signals", numbered(1, 500))
    write_group(local_root.uri, run_id, "risk", numbered(7, 10))
    write_group(local_root.uri, run_id, "signals", numbered(2, 300))
    publish(local_root.uri, run_id)
    signals = open_latest(local_root.uri, "signals").load()
    assert signals.sizes["item"] == 300
    assert (signals["value"] == 2).all()
    assert signals.attrs == {"k": 2}
    assert (open_latest(local_root.uri, "risk")["code"] == 7).all()


def test_write_group__published_runs_are_immutable(local_root, numbered) -> None:
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "risk", numbered(1))
    publish(local_root.uri, run_id)
    with pytest.raises(StorageError, match="immutable"):
        write_group(local_root.uri, run_id, "risk", numbered(2))
    with pytest.raises(InvalidInputError):
        write_group(local_root.uri, new_run_id(), "Bad/Group", numbered(2))


def test_publish__again_is_harmless(local_root, numbered) -> None:
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "risk", numbered(1))
    first = publish(local_root.uri, run_id, meta={"a": 1})
    again = publish(local_root.uri, run_id, meta={"ignored": True})
    assert again == first
    assert read_pointer(local_root.uri) == first


def test_publish__refuses_an_incomplete_group(local_root, numbered) -> None:
    earlier = new_run_id(T0)
    write_group(local_root.uri, earlier, "risk", numbered(1))
    publish(local_root.uri, earlier)
    before = Path(local_root.uri, "latest.json").read_bytes()

    run_id = new_run_id(T0 + dt.timedelta(minutes=5))
    write_group(
        local_root.uri, run_id, "risk", numbered(2, 1_000), encoding={"value": {"chunks": (100,)}}
    )
    # A chunk that never landed, as after a crash mid-write.
    chunk = Path(run_uri(local_root.uri, run_id), "risk", "value", "c", "3")
    chunk.unlink()
    with pytest.raises(StorageError, match=r"risk/value has 9 of 10 chunks"):
        publish(local_root.uri, run_id)
    assert Path(local_root.uri, "latest.json").read_bytes() == before
    assert not next(r for r in list_runs(local_root.uri) if r.run_id == run_id).published

    # A group whose write stopped before its arrays were all recorded is refused too.
    group = zarr.open_group(run_uri(local_root.uri, run_id), path="risk", mode="r+")
    del group.attrs["_periscope_written"]
    with pytest.raises(StorageError, match="not completely written"):
        publish(local_root.uri, run_id)

    # Re-writing the group (the retry) repairs the run.
    write_group(local_root.uri, run_id, "risk", numbered(2, 1_000))
    assert publish(local_root.uri, run_id).run_id == run_id
    assert read_pointer(local_root.uri).run_id == run_id


def test_publish__a_killed_writers_temporary_files_are_not_groups(local_root, numbered) -> None:
    """zarr replaces a metadata file through ``zarr.<hex>.partial``; a writer killed in between
    leaves it behind. Publish neither takes it for a group nor trips on zarr's warning about it
    (warnings are errors in this suite), whether the run is complete or not."""
    run_id = new_run_id()
    write_group(
        local_root.uri, run_id, "risk", numbered(2, 1_000), encoding={"value": {"chunks": (100,)}}
    )
    run = Path(run_uri(local_root.uri, run_id))
    (run / "zarr.0123456789abcdef0123456789abcdef.partial").write_bytes(b'{"zarr_form')
    (run / "risk" / "zarr.fedcba9876543210fedcba9876543210.partial").write_bytes(b"{")
    chunk = run / "risk" / "value" / "c" / "3"
    saved = chunk.read_bytes()
    chunk.unlink()
    with pytest.raises(StorageError, match=r"risk/value has 9 of 10 chunks"):
        publish(local_root.uri, run_id)
    chunk.write_bytes(saved)
    info = publish(local_root.uri, run_id)
    assert list(info.groups) == ["risk"]
    assert (
        open_latest(local_root.uri, "risk")["value"].values == numbered(2, 1_000)["value"].values
    ).all()


def test_publish__pointer_never_moves_back_in_time(local_root, numbered) -> None:
    old, new = new_run_id(T0), new_run_id(T0 + dt.timedelta(hours=1))
    for k, run_id in enumerate((old, new)):
        write_group(local_root.uri, run_id, "risk", numbered(k))
    publish(local_root.uri, new)
    info = publish(local_root.uri, old)
    assert info.published
    assert read_pointer(local_root.uri).run_id == new


def test_publish__errors(local_root) -> None:
    with pytest.raises(DatasetNotFoundError):
        publish(local_root.uri, new_run_id())
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "risk", xr.Dataset({"x": ("i", [1.0])}))
    with pytest.raises(InvalidInputError, match="JSON"):
        publish(local_root.uri, run_id, meta={"when": dt.datetime.now()})


def test_list_runs__states_times_and_groups(local_root, numbered) -> None:
    ids = [new_run_id(T0 + dt.timedelta(minutes=m)) for m in (0, 10, 20)]
    for k, run_id in enumerate(ids):
        write_group(local_root.uri, run_id, "metrics", numbered(k, 10))
        write_group(local_root.uri, run_id, "signals", numbered(k, 10))
    publish(local_root.uri, ids[0])
    publish(local_root.uri, ids[1])
    runs = list_runs(local_root.uri)
    assert [r.run_id for r in runs] == ids
    assert [r.published for r in runs] == [True, True, False]
    assert [r.created for r in runs] == [T0 + dt.timedelta(minutes=m) for m in (0, 10, 20)]
    assert all(r.groups == ("metrics", "signals") for r in runs)
    assert runs[2].published_at is None
    assert runs[0].published_at is not None
    assert set(runs[0].groups) <= set(GROUPS)


def test_open_run__by_id_and_asof(local_root, numbered) -> None:
    ids = [new_run_id(T0 + dt.timedelta(hours=h)) for h in (0, 1, 2)]
    for k, run_id in enumerate(ids):
        write_group(local_root.uri, run_id, "metrics", numbered(k, 10))
    publish(local_root.uri, ids[0])
    publish(local_root.uri, ids[1])  # ids[2] stays unpublished

    def k_of(ds: xr.Dataset) -> int:
        return int(ds["code"][0])

    assert k_of(open_run(local_root.uri, ids[0], group="metrics")) == 0
    assert k_of(open_run(local_root.uri, group="metrics")) == 1  # latest
    at = T0 + dt.timedelta(minutes=90)
    assert k_of(open_run(local_root.uri, asof=at, group="metrics")) == 1
    assert k_of(open_run(local_root.uri, asof=T0, group="metrics")) == 0
    later = T0 + dt.timedelta(days=1)  # the newest run is unpublished: skipped
    assert k_of(open_run(local_root.uri, asof=later, group="metrics")) == 1
    with pytest.raises(DatasetNotFoundError):
        open_run(local_root.uri, asof=T0 - dt.timedelta(seconds=1), group="metrics")
    with pytest.raises(DatasetNotFoundError, match="not published"):
        open_run(local_root.uri, ids[2], group="metrics")
    partial = open_run(local_root.uri, ids[2], group="metrics", require_published=False)
    assert k_of(partial) == 2
    with pytest.raises(DatasetNotFoundError, match="no group"):
        open_run(local_root.uri, ids[0], group="risk")
    with pytest.raises(InvalidInputError):
        open_run(local_root.uri, ids[0], asof=T0, group="metrics")


def test_staging__round_trip_and_removed_on_publish(local_root, chain, numbered) -> None:
    run_id = new_run_id()
    uris = [
        write_staged(
            local_root.uri,
            run_id,
            f"batch-{i}",
            chain.isel(contract=slice(i * 10, i * 10 + 10)),
        )
        for i in range(3)
    ]
    assert uris[1] == stage_uri(local_root.uri, run_id, "batch-1")
    back = open_staged(uris[2]).load()
    xr.testing.assert_identical(back, chain.isel(contract=slice(20, 30)))
    with pytest.raises(DatasetNotFoundError):
        open_staged(stage_uri(local_root.uri, run_id, "missing"))
    write_group(local_root.uri, run_id, "risk", numbered(1, 10))
    publish(local_root.uri, run_id)
    location = resolve(local_root.uri)
    assert not location.has_objects(location.child("staging", run_id))


def test_write_group__dask_batches_of_uneven_sizes(local_root) -> None:
    # What a flow gets by concatenating staged batches: dask chunks Zarr cannot take as they are.
    pytest.importorskip("dask")
    parts = [
        xr.Dataset({"x": ("i", np.arange(n, dtype=float) + n)}).chunk({"i": n}) for n in (5, 7, 3)
    ]
    ds = xr.concat(parts, dim="i")
    assert ds["x"].chunks == ((5, 7, 3),)
    run_id = new_run_id()
    write_group(local_root.uri, run_id, "risk", ds, encoding={"x": {"chunks": (4,)}})
    publish(local_root.uri, run_id)
    back = open_latest(local_root.uri, "risk")
    assert back["x"].encoding["chunks"] == (4,)
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)


def test_create_group__regions_fill_it_and_publish_checks_every_one(local_root, chain) -> None:
    from zarr.codecs import BloscCodec

    n = chain.sizes["contract"]
    grid = xr.Dataset(
        {"price": (("contract", "shift"), np.outer(np.arange(n), [1.0, 2.0]).astype(np.float32))},
        coords={"shift": [-0.1, 0.1], "ticker": ("contract", chain["ticker"].values)},
        attrs={"model": "test"},
    )
    run_id = new_run_id()
    blosc = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)
    arrays = create_group(
        local_root.uri, run_id, "risk", grid, dim="contract", size=n, chunk=100, compressors=blosc
    )
    assert arrays == 3
    starts = list(range(0, n, 100))
    for start in starts[1:]:  # every region but the first, in reverse
        part = grid.isel(contract=slice(start, start + 100))
        write_region(local_root.uri, run_id, "risk", part, dim="contract", start=start)
    with pytest.raises(StorageError, match="not completely written"):
        publish(local_root.uri, run_id)  # not finished
    finish_group(local_root.uri, run_id, "risk", arrays)
    # One region missing: the prototype left no chunk behind.
    with pytest.raises(StorageError, match=rf"risk/price has {len(starts) - 1} of {len(starts)}"):
        publish(local_root.uri, run_id)
    write_region(
        local_root.uri, run_id, "risk", grid.isel(contract=slice(0, 100)), dim="contract", start=0
    )
    publish(local_root.uri, run_id)
    back = open_latest(local_root.uri, "risk")
    assert back["price"].encoding["chunks"] == (100, 2)
    group = zarr.open_group(run_uri(local_root.uri, run_id), path="risk", mode="r")
    assert group["ticker"].chunks == (100,)  # strings chunked too
    assert type(back["price"].encoding["compressors"][0]).__name__ == "BloscCodec"
    xr.testing.assert_identical(back.load(), grid)
    with pytest.raises(StorageError, match="immutable"):
        write_region(
            local_root.uri, run_id, "risk", grid.isel(contract=[0]), dim="contract", start=0
        )
    with pytest.raises(InvalidInputError):
        create_group(local_root.uri, new_run_id(), "risk", grid, dim="strike", size=1, chunk=1)
