"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def pin_to_one_core() -> None:
    """Run the rest of this process on one core, so "per core" figures mean what they say."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def best_seconds(function: Callable[[], Any], repeat: int = 5, min_seconds: float = 0.2) -> float:
    """Best CPU time of the calling thread for one call of ``function`` over ``repeat`` rounds.

    Every benchmarked call (ours and the peers') runs single-threaded in the calling thread, so
    its thread CPU time is what it costs; wall time on a shared 2-core machine mostly measures
    the other processes. Each round calls ``function`` as many times as fit in ``min_seconds``
    (at least once) and keeps the mean; the best round is the least disturbed (cache, frequency).
    Do not use this for work that runs in other threads or processes (Dask, thread pools).
    """
    function()  # warm-up: JIT compilation, caches
    best = float("inf")
    for _ in range(repeat):
        calls = 0
        start = time.thread_time()
        while True:
            function()
            calls += 1
            elapsed = time.thread_time() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def rate(items: int, seconds: float) -> str:
    """Items per second in millions, formatted for a table."""
    return f"{items / seconds / 1e6:,.3f} M/s"
