"""The daily flow end to end against the simulated market over loopback HTTP: a published run
plain xarray opens through latest.json, history and artifacts; transient faults retried and
recovered; rejected requests failing the run without publishing; real Dask CLI processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from flows.daily import daily
from flows.source import last_weekday, simulated_market
from periscope import storage
from periscope.settings import Settings
from periscope.simulator import Fault, Simulator, SimulatorServer

NAME = "KO"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def open_latest_with_plain_xarray(root: Path, group: str) -> xr.Dataset:
    pointer = json.loads((root / "latest.json").read_text())
    return xr.open_zarr(pointer["uri"], group=group)


def task_runs_named(prefix: str) -> list:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return [run for run in client.read_task_runs(limit=200) if run.name.startswith(prefix)]


def artifact(key: str) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return str(found[-1].data)


@pytest.fixture
def massive_like_server(pipeline_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """The simulated market served as if it were Massive: the run takes the keyed path."""
    settings = Settings(simulator_days=40)
    simulator = Simulator(simulated_market(settings, [NAME], last_weekday()), api_key="test-key")
    with SimulatorServer(simulator) as server:
        monkeypatch.setenv("MASSIVE_API_KEY", "test-key")
        monkeypatch.setenv("PERISCOPE_MASSIVE_BASE_URL", server.base_url)
        yield simulator


def test_daily__publishes_a_run_that_plain_xarray_opens(pipeline_env: Path) -> None:
    result = daily(universe=[NAME])

    root = pipeline_env
    pointer = json.loads((root / "latest.json").read_text())
    assert pointer["run_id"] == result["run_id"]
    assert sorted(pointer["groups"]) == ["chains", "metrics", "risk", "surfaces"]
    chains = open_latest_with_plain_xarray(root, "chains")
    assert set(chains["underlying"].values.tolist()) == {NAME}
    assert chains.sizes["contract"] == result["contracts"] > 100
    surfaces = open_latest_with_plain_xarray(root, "surfaces")
    assert surfaces["underlying"].values.tolist() == [NAME]
    iv = surfaces["implied_volatility"].sel(underlying=NAME, log_moneyness=0.0).values
    assert np.nanmin(iv) > 0.05
    assert np.nanmax(iv) < 1.0
    risk = open_latest_with_plain_xarray(root, "risk")
    assert dict(risk.sizes) == {
        "contract": chains.sizes["contract"],
        "spot_shift": 3,
        "vol_shift": 2,
        "horizon": 2,
    }
    assert list(risk["ticker"].values) == list(chains["ticker"].values)
    priced = np.isfinite(risk["price"].sel(spot_shift=0.0, vol_shift=0.0, horizon=0.0).values)
    assert priced.mean() > 0.5
    metrics = open_latest_with_plain_xarray(root, "metrics")
    assert {"iv30_rank", "iv30_percentile", "constant_maturity_iv"} <= set(metrics.data_vars)
    # Today's history row: IV term points from the run, realised volatility from daily bars.
    history = storage.open_history(str(root)).load()
    row = history.sel(underlying=NAME).isel(time=-1)
    assert np.isfinite(row["iv_30d"].item())
    assert np.isfinite(row["rv_20d"].item())
    assert row["iv_30d"].item() == pytest.approx(
        float(metrics["constant_maturity_iv"].sel(underlying=NAME, tenor=30).values)
    )
    # Per-stage wall times, in the result and in the run summary.
    stages = ("ingest", "fit_surfaces", "sensitivity_grids", "publish", "history")
    assert set(stages) < set(result["timings"])
    assert result["timings"]["total"] >= sum(result["timings"][s] for s in stages) > 0
    # The keyed artifacts of the run.
    assert "| sensitivity_grids |" in artifact("run-summary")
    assert result["uri"] in artifact("run-summary")
    assert NAME in artifact("fit-diagnostics")
    assert not list((root / "staging").glob("*"))  # publish cleaned the staging area


def test_daily__transient_faults_are_retried_and_the_run_recovers(
    massive_like_server: Simulator, pipeline_env: Path
) -> None:
    # More 502s than the client's own retries (4): the first task attempt fails with
    # MarketDataUnavailable and the Prefect-level retry succeeds.
    fault = massive_like_server.faults.add(
        Fault("server_error", times=6, path=f"/v3/snapshot/options/{NAME}")
    )
    before = {run.id for run in task_runs_named("ingest-chains")}

    result = daily(universe=[NAME])

    assert fault.times == 0
    runs = [run for run in task_runs_named("ingest-chains") if run.id not in before]
    assert len(runs) == 1
    assert runs[0].run_count == 2  # failed once, retried once
    assert json.loads((pipeline_env / "latest.json").read_text())["run_id"] == result["run_id"]


def test_daily__rejected_requests_fail_the_run_without_publishing(
    massive_like_server: Simulator, pipeline_env: Path
) -> None:
    massive_like_server.faults.add(Fault("unauthorized", times=-1))
    with pytest.raises(Exception, match="nothing to publish"):
        daily(universe=[NAME])
    assert not (pipeline_env / "latest.json").exists()
    assert not any(run.published for run in storage.list_runs(str(pipeline_env)))


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker`` as separate processes on loopback."""
    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    env = os.environ | {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        worker = subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
             "--nthreads", "2", "--host", "127.0.0.1", "--no-dashboard",
             "--memory-limit", "2GiB"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def test_daily__runs_on_dask_scheduler_and_worker_processes(
    pipeline_env: Path, dask_processes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERISCOPE_DASK_ADDRESS", dask_processes)
    import distributed.client
    from distributed import Client

    # prefect-dask's runner prefers any Client already alive in the process over the address it
    # is given, and the session's in-process cluster leaves its workers' clients alive here. A
    # CLI process has no such client; hide them so the run really goes to the external scheduler.
    monkeypatch.setattr(distributed.client, "_global_clients", weakref.WeakValueDictionary())

    result = daily(universe=[NAME])

    assert (pipeline_env / "latest.json").exists()
    with Client(dask_processes) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        pids = client.run(os.getpid)
    # The worker process (not this one) ran the six stage tasks and the two batch fan-outs.
    assert os.getpid() not in pids.values()
    assert sum(executed.values()) >= 8
    surfaces = open_latest_with_plain_xarray(pipeline_env, "surfaces")
    assert surfaces["underlying"].values.tolist() == [NAME]
    assert result["diagnostics"][0]["status"] in ("ok", "partial")
