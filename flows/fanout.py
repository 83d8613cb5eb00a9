"""Fan a batch function out over the Dask cluster a Prefect task runs on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from distributed import get_worker, rejoin, secede
from prefect_dask import get_dask_client

logger = logging.getLogger(__name__)


def _on_worker() -> bool:
    try:
        get_worker()
    except ValueError:
        return False
    return True


def fan_out[T](function: Callable[..., T], items: Sequence[Any], /, **common: Any) -> list[T]:
    """``[function(item, **common) for item in items]`` computed across the cluster.

    Called inside a Prefect task that runs under ``DaskTaskRunner``: ``get_dask_client()`` gives
    a client of the same cluster and ``client.map`` spreads the items over every worker. Items
    are batches (identifiers and URIs), never per-contract work, so there are tens of Dask tasks
    rather than millions; results must be small (URIs and a few numbers).

    The calling task secedes from its worker's thread pool while it waits, so its thread does not
    sit idle on a slot the mapped tasks need (on a one-thread worker that would deadlock).
    """
    if not items:
        return []
    call = functools.partial(function, **common) if common else function
    with get_dask_client() as client:
        futures = client.map(call, list(items), pure=False)
        seceded = _on_worker()
        if seceded:
            secede()
        try:
            results: list[T] = client.gather(futures)
        finally:
            if seceded:
                rejoin()
            del futures
    return results
