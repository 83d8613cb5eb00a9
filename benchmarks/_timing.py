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
    """Best wall time of one call of ``function`` over ``repeat`` rounds.

    Each round calls it as many times as fit in ``min_seconds`` (at least once) and keeps the
    mean; the best round is the least disturbed by other load on a shared machine.
    """
    function()  # warm-up: JIT compilation, caches
    best = float("inf")
    for _ in range(repeat):
        calls = 0
        start = time.perf_counter()
        while True:
            function()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def rate(items: int, seconds: float) -> str:
    """Items per second in millions, formatted for a table."""
    return f"{items / seconds / 1e6:,.3f} M/s"
