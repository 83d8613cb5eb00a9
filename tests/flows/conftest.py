"""Fixtures of the flow tests: one Prefect test harness per session (``PREFECT_HOME`` in a temp
dir), an in-process Dask cluster, a simulated Massive API on loopback, and a published run built
from synthetic data (for the CLI tests, without Prefect)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

# Before Prefect is imported by any test module: its state never touches ~/.prefect, no
# telemetry, and a start-up timeout a loaded 2-core machine can meet.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="periscope-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"

from periscope import schema, storage
from periscope.pricing import black_price

SPOT = 100.0
RATE = 0.04


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect API (a subprocess server on a temporary SQLite DB) for every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """A Dask cluster of threads in this process: numba kernels compile once per session."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def pipeline_env(monkeypatch: pytest.MonkeyPatch, dask_address: str, tmp_path: Path) -> Path:
    """Settings of a small, fast run against the in-process cluster; returns the data root."""
    root = tmp_path / "data"
    monkeypatch.setenv("PERISCOPE_DATA_ROOT", str(root))
    monkeypatch.setenv("PERISCOPE_DASK_ADDRESS", dask_address)
    monkeypatch.setenv("PERISCOPE_SIMULATOR_DAYS", "40")
    monkeypatch.setenv("PERISCOPE_PIPELINE_RETRY_DELAYS", "[0.2]")
    monkeypatch.setenv("PERISCOPE_RISK_SPOT_SHIFTS", "[-0.05, 0.0, 0.05]")
    monkeypatch.setenv("PERISCOPE_RISK_VOL_SHIFTS", "[0.0, 0.01]")
    monkeypatch.setenv("PERISCOPE_RISK_HORIZON_DAYS", "[0.0, 1.0]")
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    monkeypatch.delenv("PERISCOPE_MASSIVE_API_KEY", raising=False)
    return root


# -- a published run from synthetic data ----------------------------------------------------
def synthetic_smile(k: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The surface of the synthetic run: a put skew flattening with maturity."""
    return 0.25 - 0.2 * k / np.sqrt(1.0 + t) + 0.15 * k**2


def synthetic_run_data() -> tuple[xr.Dataset, xr.Dataset]:
    """One underlying (``XYZ``): a surface with three expiries and a chain priced off it."""
    times = np.array([30.0, 91.0, 182.0]) / 365.0
    expiry = np.array(["2026-02-13", "2026-04-16", "2026-07-16"], dtype="datetime64[D]")
    forward = SPOT * np.exp(RATE * times)
    k_grid = schema.LOG_MONEYNESS_GRID
    iv = synthetic_smile(k_grid[None, :], times[:, None])
    surface = schema.build_surface_dataset(
        "XYZ",
        expiry,
        {
            schema.TIME_TO_EXPIRY: times,
            schema.FORWARD: forward,
            schema.DISCOUNT_FACTOR: np.exp(-RATE * times),
            schema.IMPLIED_VOLATILITY: iv,
            schema.SPOT: SPOT,
            schema.EXPIRY_STATUS: np.zeros(3, dtype=np.int8),
            schema.SURFACE_STATUS: np.int8(schema.SurfaceStatus.OK),
            schema.CONFIDENCE: 0.9,
            schema.CONSTANT_MATURITY_IV: np.full(len(schema.TENOR_DAYS), 0.25),
        },
    )
    strikes = np.arange(70.0, 131.0, 5.0)
    rows: dict[str, list] = {name: [] for name in (*schema.COORDS, schema.BID, schema.ASK)}
    for j, day in enumerate(expiry):
        for strike in strikes:
            for right in ("call", "put"):
                k = np.log(strike / forward[j])
                vol = synthetic_smile(np.array(k), np.array(times[j]))
                price = float(
                    black_price(forward[j], strike, times[j], np.exp(-RATE * times[j]), vol,
                                right == "call")
                )  # fmt: skip
                rows[schema.TICKER].append(f"O:XYZ{day!s}{right[0]}{strike:.0f}")
                rows[schema.UNDERLYING].append("XYZ")
                rows[schema.ROOT].append("XYZ")
                rows[schema.EXPIRY].append(day)
                rows[schema.SETTLEMENT].append("PM")
                rows[schema.STRIKE].append(strike)
                rows[schema.RIGHT].append(right)
                rows[schema.EXERCISE_STYLE].append("european")
                rows[schema.SHARES_PER_CONTRACT].append(100.0)
                rows[schema.BID].append(price)  # a zero-width market: mid = model price
                rows[schema.ASK].append(price)
    columns = {name: np.asarray(values) for name, values in rows.items()}
    for name in schema.STRING_COORDS:
        columns[name] = columns[name].astype(object)
    chain = schema.build_chain_dataset(columns)
    return surface, chain


@pytest.fixture
def synthetic_data() -> tuple[xr.Dataset, xr.Dataset]:
    """(surface, chain) of the synthetic underlying ``XYZ`` (see :func:`synthetic_run_data`)."""
    return synthetic_run_data()


@pytest.fixture
def smile() -> object:
    """The synthetic surface's volatility function ``(k, t) -> σ``."""
    return synthetic_smile


@pytest.fixture
def published_root(tmp_path: Path) -> tuple[Path, str]:
    """A data root holding one published run of the synthetic data; returns (root, run_id)."""
    root = tmp_path / "data"
    surface, chain = synthetic_run_data()
    run_id = storage.new_run_id(dt.datetime(2026, 1, 2, 21, 30, tzinfo=dt.UTC))
    stacked = schema.stack_surfaces([surface])
    storage.write_group(str(root), run_id, "chains", chain)
    storage.write_group(str(root), run_id, "surfaces", stacked)
    storage.publish(
        str(root), run_id, meta={"kind": "end-of-day", "underlyings": 1, "contracts": 78}
    )
    return root, run_id
