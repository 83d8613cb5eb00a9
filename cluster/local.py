"""A local cluster of worker processes on loopback, or the address of an existing scheduler."""

from __future__ import annotations

import logging
import os

from distributed import LocalCluster

from periscope.settings import Settings

logger = logging.getLogger(__name__)

# One level of parallelism at a time: Dask workers are the parallelism, so the BLAS/OpenMP and
# numba thread pools inside each worker stay at one thread instead of oversubscribing the cores.
WORKER_ENVIRONMENT: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def make_cluster(settings: Settings) -> LocalCluster | str:
    """Start a local Dask cluster, or name the external scheduler to join.

    Parameters
    ----------
    settings
        ``dask_address`` set: return it unchanged (the caller connects). Otherwise start a
        ``LocalCluster`` with ``dask_n_workers`` worker processes (default: one per core),
        ``dask_threads_per_worker`` threads each, ``dask_memory_limit`` per worker, the scheduler
        and dashboard bound to 127.0.0.1 only.

    Returns
    -------
    LocalCluster or str
        The running cluster (close it when done) or the scheduler address.

    Examples
    --------
    >>> from distributed import Client
    >>> cluster = make_cluster(Settings(dask_n_workers=1, dask_dashboard_address="127.0.0.1:0"))
    >>> with cluster, Client(cluster) as client:
    ...     client.submit(sum, [1, 2, 3]).result()
    6
    """
    if settings.dask_address:
        logger.info("joining the Dask scheduler at %s", settings.dask_address)
        return settings.dask_address
    # Spawned worker processes inherit the parent's environment; set the thread caps before
    # they start, without overriding a value an operator chose on purpose.
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    n_workers = settings.dask_n_workers or max(1, os.cpu_count() or 1)
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=settings.dask_threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=settings.dask_dashboard_address,
        memory_limit=settings.dask_memory_limit,
    )
    logger.info(
        "started a local Dask cluster: %d worker process(es), dashboard port %s",
        n_workers,
        cluster.scheduler.http_server.port if cluster.scheduler.http_server else "none",
    )
    return cluster
