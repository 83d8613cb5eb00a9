"""Settings come from PERISCOPE_* variables; the API key also from MASSIVE_API_KEY."""

from __future__ import annotations

import pytest

from periscope.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MASSIVE_API_KEY", "PERISCOPE_MASSIVE_API_KEY", "PERISCOPE_DATA_ROOT"):
        monkeypatch.delenv(name, raising=False)


def test_settings__defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.data_root == "./data"
    assert settings.massive_api_key is None
    assert settings.dask_address is None


def test_settings__prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERISCOPE_DATA_ROOT", "s3://bucket/periscope")
    monkeypatch.setenv("PERISCOPE_DASK_N_WORKERS", "3")
    settings = Settings(_env_file=None)
    assert settings.data_root == "s3://bucket/periscope"
    assert settings.dask_n_workers == 3


def test_settings__vendor_key_variable_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSIVE_API_KEY", "sk-live-123")
    settings = Settings(_env_file=None)
    assert settings.massive_api_key is not None
    assert settings.massive_api_key.get_secret_value() == "sk-live-123"
    assert "sk-live-123" not in repr(settings)
    assert "sk-live-123" not in str(settings.model_dump())
