"""The Kubernetes manifests and the Docker image agree with the local cluster's settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cluster import WORKER_ENVIRONMENT

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _dask_cluster() -> dict[str, Any]:
    docs = _documents(INFRA / "k8s" / "daskcluster.yaml")
    (cluster,) = [d for d in docs if d["kind"] == "DaskCluster"]
    return cluster


def test_daskcluster__is_an_operator_resource_in_the_periscope_namespace() -> None:
    cluster = _dask_cluster()
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    assert cluster["metadata"]["namespace"] == "periscope"
    namespaces = _documents(INFRA / "k8s" / "namespace.yaml")
    assert namespaces[0]["metadata"]["name"] == "periscope"


def test_daskcluster__workers_are_single_threaded_like_local_workers() -> None:
    (worker,) = _dask_cluster()["spec"]["worker"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in worker["env"]}
    assert {k: env[k] for k in WORKER_ENVIRONMENT} == WORKER_ENVIRONMENT
    # The kernel cache stays on (its default): a restarted worker process loads, not compiles.
    assert "PERISCOPE_NUMBA_CACHE" not in env
    args = worker["args"]
    assert args[:2] == ["dask", "worker"]
    assert args[args.index("--nthreads") + 1] == "1"
    # The memory limit Dask enforces fits inside the pod's limit.
    dask_limit = args[args.index("--memory-limit") + 1]
    assert dask_limit.removesuffix("iB") == worker["resources"]["limits"]["memory"].removesuffix(
        "i"
    )


def test_daskcluster__scheduler_service_exposes_the_comm_port_inside_the_cluster() -> None:
    scheduler = _dask_cluster()["spec"]["scheduler"]
    (container,) = scheduler["spec"]["containers"]
    assert container["args"] == ["dask", "scheduler"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    service = scheduler["service"]
    assert service["type"] == "ClusterIP"
    assert {p["targetPort"] for p in service["ports"]} == set(ports)
    assert service["selector"]["dask.org/cluster-name"] == _dask_cluster()["metadata"]["name"]


def test_autoscaler_targets_the_cluster_with_sane_bounds() -> None:
    docs = _documents(INFRA / "k8s" / "daskcluster.yaml")
    (scaler,) = [d for d in docs if d["kind"] == "DaskAutoscaler"]
    assert scaler["spec"]["cluster"] == _dask_cluster()["metadata"]["name"]
    assert 1 <= scaler["spec"]["minimum"] <= scaler["spec"]["maximum"]


def test_image__one_tag_for_scheduler_and_workers_and_the_same_thread_caps() -> None:
    spec = _dask_cluster()["spec"]
    images = {
        spec["worker"]["spec"]["containers"][0]["image"],
        spec["scheduler"]["spec"]["containers"][0]["image"],
    }
    assert len(images) == 1
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert images.pop() in dockerfile  # the build command in the Dockerfile names the tag
    for name, value in WORKER_ENVIRONMENT.items():
        assert re.search(rf"\b{name}={value}\b", dockerfile), name
    assert "UV_PYTHON_DOWNLOADS=never" in dockerfile
    assert "--locked" in dockerfile
