"""Storage roots for the tests: a local folder, and a bucket on moto's S3 server on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import xarray as xr

from periscope.simulator.market import Market
from periscope.storage import s3_storage_options


@dataclass(frozen=True)
class Root:
    """A storage root and the s3fs options to reach it."""

    uri: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def kw(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options or None}


@pytest.fixture(scope="session")
def chain() -> xr.Dataset:
    """A realistic chain (strings, NaN, NaT, uint8 flags) from the simulated market."""
    return Market().chain("SPY").dataset()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    # moto's web server logs every request at INFO; hundreds per test are noise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    import boto3

    # Bucket names are per test so that tests never see each other's runs.
    bucket = f"periscope-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_root(moto_endpoint: str) -> Root:
    # The s3fs instances stay in fsspec's instance cache for the session, on purpose: zarr's
    # asynchronous instances have no finaliser for their HTTP session, so clearing the cache
    # would garbage-collect open sessions ("Unclosed client session" warnings).
    bucket = make_bucket(moto_endpoint)
    options = s3_storage_options(
        endpoint_url=moto_endpoint, key="test", secret="test", region="us-east-1"
    )
    return Root(f"s3://{bucket}/periscope", options)


@pytest.fixture
def local_root(tmp_path: Any) -> Root:
    return Root(str(tmp_path / "data"))


def _numbered(k: int, size: int = 1_000) -> xr.Dataset:
    return xr.Dataset(
        {"value": ("item", np.full(size, float(k))), "code": ("item", np.full(size, k))},
        coords={"item": np.arange(size), "label": ("item", np.array([f"r{k}"] * size, object))},
        attrs={"k": k},
    )


@pytest.fixture(scope="session")
def numbered() -> Any:
    """``numbered(k, size)``: a dataset whose every value says which run wrote it (``k``), so a
    read that mixes runs or sees a partial write shows."""
    return _numbered


def _round_trip(uri: str, storage_options: dict[str, Any], chain: xr.Dataset) -> None:
    """Everything storage does, on one root: runs, staging, a refused partial run, the pointer,
    plain-xarray access through ``latest.json``, history and retention."""
    import datetime as dt
    import json

    from periscope.errors import StorageError
    from periscope.storage import (
        append_history,
        apply_retention,
        create_group,
        finish_group,
        list_runs,
        new_run_id,
        open_history,
        open_latest,
        open_run,
        open_staged,
        publish,
        read_pointer,
        resolve,
        write_group,
        write_region,
        write_staged,
    )

    root = Root(uri, storage_options)
    options = root.kw
    # Few arrays (every S3 request counts on a shared test machine), every kind of dtype:
    # object strings, float64 with NaN, datetime64 with NaT, uint8.
    small = (
        chain[["bid", "last_time", "quality"]]
        .reset_coords()[["bid", "last_time", "quality", "ticker", "expiry"]]
        .set_coords(["ticker", "expiry"])
        .isel(contract=slice(0, 300))
    )
    t0 = dt.datetime(2025, 3, 14, 20, 0, tzinfo=dt.UTC)
    first, broken, second = (new_run_id(t0 + dt.timedelta(hours=h)) for h in (0, 1, 2))

    staged = write_staged(root.uri, first, "batch-0", small, **options)
    xr.testing.assert_identical(open_staged(staged, **options).load(), small)
    write_group(root.uri, first, "chains", open_staged(staged, **options), **options)
    write_group(root.uri, first, "surfaces", _numbered(1, 50), **options)
    info = publish(root.uri, first, meta={"underlyings": ["SPY"]}, **options)
    assert info.groups == ("chains", "surfaces")
    back = open_latest(root.uri, "chains", **options).load()
    xr.testing.assert_identical(back, small)
    assert {name: v.dtype for name, v in back.variables.items()} == {
        name: v.dtype for name, v in small.variables.items()
    }

    location = resolve(root.uri, root.storage_options)
    assert not location.has_objects(location.child("staging", first))
    pointer_bytes = location.read_bytes(location.child("latest.json"))
    assert pointer_bytes is not None
    pointer = json.loads(pointer_bytes)
    assert pointer["path"] == f"runs/{first}.zarr"
    # Plain xarray, given the same s3fs options, opens what the pointer names.
    plain = xr.open_zarr(
        f"{root.uri}/{pointer['path']}", group="chains", storage_options=root.storage_options
    )
    np.testing.assert_array_equal(plain["bid"].values, small["bid"].values)

    # A run with a chunk missing (a crashed writer) is refused and the pointer stays.
    write_group(
        root.uri,
        broken,
        "risk",
        _numbered(2, 400),
        encoding={"value": {"chunks": (100,)}},
        **options,
    )
    location.remove(f"{location.child('runs', broken + '.zarr')}/risk/value/c/2")
    with pytest.raises(StorageError, match="3 of 4 chunks"):
        publish(root.uri, broken, **options)
    assert location.read_bytes(location.child("latest.json")) == pointer_bytes

    write_group(root.uri, second, "surfaces", _numbered(3, 50), **options)
    # A large group as the pipeline writes it: laid out, filled by regions in any order.
    arrays = create_group(
        root.uri, second, "chains", small, dim="contract", size=300, chunk=128, **options
    )
    for start in (256, 0, 128):
        part = small.isel(contract=slice(start, start + 128))
        write_region(root.uri, second, "chains", part, dim="contract", start=start, **options)
    finish_group(root.uri, second, "chains", arrays, **options)
    publish(root.uri, second, **options)
    current = read_pointer(root.uri, **options)
    assert current is not None
    assert current.run_id == second
    xr.testing.assert_identical(open_latest(root.uri, "chains", **options).load(), small)
    assert [(r.run_id, r.published) for r in list_runs(root.uri, **options)] == [
        (first, True),
        (broken, False),
        (second, True),
    ]
    asof = t0 + dt.timedelta(minutes=90)  # after the broken run, before the second one
    assert int(open_run(root.uri, asof=asof, group="surfaces", **options)["code"][0]) == 1

    days = np.array(["2025-03-13", "2025-03-14"], dtype="datetime64[ns]")
    metrics = xr.Dataset(
        {"iv30": (("time", "underlying"), [[0.2, 0.3], [0.21, 0.31]])},
        coords={"time": days, "underlying": np.array(["SPY", "QQQ"], dtype=object)},
    )
    append_history(root.uri, metrics, **options)
    append_history(root.uri, metrics.isel(time=[1]) + 0.01, **options)  # replace a day
    history = open_history(root.uri, **options).load()
    np.testing.assert_allclose(history["iv30"].values, [[0.2, 0.3], [0.22, 0.32]])
    assert history["underlying"].values.tolist() == ["SPY", "QQQ"]

    # A year later: the first run is past retention, the broken one past its grace period;
    # the second is as old but the pointer names it.
    removed = apply_retention(
        root.uri,
        keep_days=30,
        grace=dt.timedelta(hours=6),
        now=t0 + dt.timedelta(days=365),
        **options,
    )
    assert removed == [first, broken]
    assert [r.run_id for r in list_runs(root.uri, **options)] == [second]
    assert int(open_latest(root.uri, "surfaces", **options)["code"][0]) == 3


@pytest.fixture(scope="session")
def round_trip() -> Any:
    """``round_trip(uri, storage_options, chain)``: the scenario every backend must pass."""
    return _round_trip
