"""Making or joining a Dask cluster from :class:`periscope.settings.Settings`.

``make_cluster(settings)`` returns a loopback ``LocalCluster`` of worker processes, or the address
of an existing scheduler when ``PERISCOPE_DASK_ADDRESS`` is set; both plug into
``prefect_dask.DaskTaskRunner(cluster=...)`` / ``DaskTaskRunner(address=...)`` and into
``distributed.Client``.
"""

from cluster.local import WORKER_ENVIRONMENT, make_cluster

__all__ = ["WORKER_ENVIRONMENT", "make_cluster"]
