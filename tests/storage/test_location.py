"""Roots, S3 options from explicit arguments and from Settings, the atomic pointer write."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from periscope.errors import InvalidInputError
from periscope.settings import Settings
from periscope.storage import resolve, s3_storage_options


def test_resolve__local_paths_become_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    location = resolve("./data")
    assert location.is_local
    assert location.uri == str(tmp_path / "data")
    assert resolve(f"file://{tmp_path}/data/").uri == str(tmp_path / "data")
    assert location.child("runs", "x.zarr") == str(tmp_path / "data" / "runs" / "x.zarr")
    assert location.relative(location.child("runs", "x.zarr")) == "runs/x.zarr"


def test_resolve__s3_roots() -> None:
    location = resolve("s3://bucket/some/prefix/", {"anon": True})
    assert not location.is_local
    assert location.uri == "s3://bucket/some/prefix"
    assert location.relative(location.child("runs", "x.zarr")) == "runs/x.zarr"
    assert location.fs_path(location.child("latest.json")) == "bucket/some/prefix/latest.json"
    for bad in ("s3://", "gs://bucket/x", "https://example.com/x"):
        with pytest.raises(InvalidInputError):
            resolve(bad)


def test_s3_storage_options__explicit_and_secret() -> None:
    options = s3_storage_options(
        endpoint_url="http://127.0.0.1:9000",
        key=SecretStr("AKIA"),
        secret=SecretStr("s3cr3t"),
        region="eu-west-1",
    )
    assert options == {
        "use_listings_cache": False,
        "key": "AKIA",
        "secret": "s3cr3t",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
    }
    assert s3_storage_options() == {"use_listings_cache": False}
    assert s3_storage_options(anonymous=True)["anon"] is True


def test_settings__storage_options(monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("PERISCOPE_STORAGE") or name == "PERISCOPE_DATA_ROOT":
            monkeypatch.delenv(name)
    assert Settings(_env_file=None).storage_options() == {}
    monkeypatch.setenv("PERISCOPE_DATA_ROOT", "s3://bucket/periscope")
    monkeypatch.setenv("PERISCOPE_STORAGE_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("PERISCOPE_STORAGE_ACCESS_KEY", "key-id")
    monkeypatch.setenv("PERISCOPE_STORAGE_SECRET_KEY", "very-secret")
    monkeypatch.setenv("PERISCOPE_STORAGE_REGION", "us-east-1")
    monkeypatch.setenv("PERISCOPE_STORAGE_GRACE", "PT2H")
    settings = Settings(_env_file=None)
    assert settings.storage_grace == dt.timedelta(hours=2)
    assert settings.storage_keep_days == 30
    assert "very-secret" not in repr(settings)
    options = settings.storage_options()
    assert options["secret"] == "very-secret"
    assert options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:8333"


def test_replace_bytes__atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    location = resolve(tmp_path)
    target = location.child("latest.json")
    location.replace_bytes(target, b"one")
    location.replace_bytes(target, b"two")
    assert Path(target).read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json"]
    assert location.read_bytes(location.child("missing.json")) is None
