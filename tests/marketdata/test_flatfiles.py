"""Flat files over S3 against moto's S3 server on loopback, and on the local disk."""

import datetime as dt
import gzip

import numpy as np
import pytest

from periscope import schema
from periscope.errors import PayloadError
from periscope.marketdata.flatfiles import (
    FlatFileOptions,
    day_aggregates_key,
    flat_file_system,
    iter_day_aggregates,
    read_day_aggregates,
)
from periscope.simulator import Market, SimulationConfig
from periscope.simulator.flatfiles import write_day_aggregates


@pytest.fixture(scope="module")
def small_market():
    return Market(SimulationConfig(seed=2, n_underlyings=3, n_days=6))


@pytest.fixture(scope="module")
def s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def filesystem(s3):
    import boto3
    from pydantic import SecretStr

    client = boto3.client(
        "s3",
        endpoint_url=s3,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket="flatfiles")
    options = FlatFileOptions(SecretStr("test"), SecretStr("test"), endpoint_url=s3)
    fs = flat_file_system(options)
    yield fs
    fs.clear_instance_cache()
    for item in client.list_objects_v2(Bucket="flatfiles").get("Contents", []):
        client.delete_object(Bucket="flatfiles", Key=item["Key"])
    client.delete_bucket(Bucket="flatfiles")


def test_read_day_aggregates__round_trips_through_s3(filesystem, small_market):
    days = list(small_market.days[-3:])
    paths = write_day_aggregates(small_market, days, "flatfiles", filesystem)
    assert paths[0] == f"flatfiles/{day_aggregates_key(days[0])}"
    datasets = list(iter_day_aggregates(filesystem, days[0] - dt.timedelta(days=3), days[-1]))
    assert [ds.attrs["day"] for ds in datasets] == [d.isoformat() for d in days]
    ds = datasets[-1]
    truth = [small_market.chain(u.ticker, days[-1]).dataset() for u in small_market.universe]
    traded = sum(int((t[schema.VOLUME] > 0).sum()) for t in truth)
    assert ds.sizes["contract"] == traded
    assert (ds[schema.VOLUME] > 0).all()
    assert list(ds[schema.TICKER].values) == sorted(ds[schema.TICKER].values)
    spy = truth[1].set_index(contract=schema.TICKER)
    some = [t for t in ds[schema.TICKER].values if t.startswith("O:SPY")][:20]
    np.testing.assert_array_equal(
        ds.set_index(contract=schema.TICKER)[schema.VOLUME].sel(contract=some).values,
        spy[schema.VOLUME].sel(contract=some).values,
    )


def test_read_day_aggregates__small_blocks_and_reordered_columns(tmp_path, small_market):
    day = small_market.days[-1]
    write_day_aggregates(small_market, [day], tmp_path)
    path = tmp_path / day_aggregates_key(day)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[0].split(",")
    order = [header.index(c) for c in reversed(header)] + [0]
    rebuilt = [",".join([*(row.split(",")[i] for i in order[:-1]), "x"]) for row in lines[1:]]
    text = ",".join([*reversed(header), "extra"]) + "\n" + "\n".join(rebuilt) + "\n"
    path.write_bytes(gzip.compress(text.encode()))

    import fsspec

    fs = fsspec.filesystem("file")
    ds = read_day_aggregates(fs, day, bucket=str(tmp_path), block_rows=7)
    assert ds.sizes["contract"] == len(lines) - 1
    assert ds[schema.CLOSE].dtype == np.float64


def test_read_day_aggregates__missing_column_is_payload_error(tmp_path):
    import fsspec

    day = dt.date(2025, 1, 2)
    path = tmp_path / day_aggregates_key(day)
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(b"ticker,volume\nO:SPY250117C00600000,3\n"))
    with pytest.raises(PayloadError, match="lacks columns"):
        read_day_aggregates(fsspec.filesystem("file"), day, bucket=str(tmp_path))
