"""make_cluster: a real LocalCluster of worker processes, or an external scheduler's address."""

from __future__ import annotations

import os

import httpx
import pytest
from distributed import Client

from cluster import WORKER_ENVIRONMENT, make_cluster
from periscope.settings import Settings


def test_make_cluster__external_address_is_returned_unchanged() -> None:
    settings = Settings(dask_address="tcp://10.1.2.3:8786")
    assert make_cluster(settings) == "tcp://10.1.2.3:8786"


def test_make_cluster__address_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERISCOPE_DASK_ADDRESS", "tcp://127.0.0.1:9999")
    assert make_cluster(Settings()) == "tcp://127.0.0.1:9999"


@pytest.mark.slow
def test_make_cluster__local_processes_on_loopback_with_single_threaded_math() -> None:
    settings = Settings(dask_n_workers=1, dask_dashboard_address="127.0.0.1:0")
    cluster = make_cluster(settings)
    assert not isinstance(cluster, str)
    with cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 1
        # The worker is a separate process and sees the single-thread caps.
        env = client.submit(lambda: {k: os.environ.get(k) for k in WORKER_ENVIRONMENT}).result()
        assert env == WORKER_ENVIRONMENT
        assert client.submit(sum, [1, 2, 3]).result() == 6


@pytest.mark.slow
def test_make_cluster__dashboard_serves_on_loopback() -> None:
    settings = Settings(dask_n_workers=1, dask_dashboard_address="127.0.0.1:0")
    cluster = make_cluster(settings)
    assert not isinstance(cluster, str)
    with cluster:
        link = cluster.dashboard_link
        assert link.startswith("http://127.0.0.1:")
        # Bokeh is installed, so the status page is the real dashboard (without it,
        # distributed answers 200 too, with a page saying the dashboard needs bokeh).
        response = httpx.get(link, timeout=30.0, follow_redirects=True)
        assert response.status_code == 200
        assert "<title>Dask Diagnostic UI</title>" in response.text
        assert "needs bokeh" not in response.text.lower()
