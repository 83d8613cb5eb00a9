"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
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
    (rounds,) = call_seconds([function], repeat, min_seconds)
    return min(sum(calls) / len(calls) for calls in rounds)


def call_seconds(
    functions: Sequence[Callable[[], Any]], repeat: int = 5, min_seconds: float = 0.2
) -> list[list[list[float]]]:
    """:func:`best_seconds`'s rounds of several functions, interleaved: round ``r`` of every
    function runs before round ``r + 1`` of any. Returns, per function and round, the thread CPU
    time of each call (seconds).

    The other tenants of a shared host load its cores in waves of seconds, which inflate the
    thread CPU time of everything running then (measured on this project's machines: one
    process fitting the same surface over and over took 17-18 ms per call for seconds at a
    time, then 22-29 ms). Interleaved, the rounds of each function spread over the whole run
    instead of falling into one wave together.
    """
    for function in functions:
        function()  # warm-up: JIT compilation, caches
    times: list[list[list[float]]] = [[] for _ in functions]
    for _ in range(repeat):
        for function, rounds in zip(functions, times, strict=True):
            calls: list[float] = []
            start = time.thread_time()
            while True:
                before = time.thread_time()
                function()
                now = time.thread_time()
                calls.append(now - before)
                if now - start >= min_seconds:
                    break
            rounds.append(calls)
    return times


def rate(items: int, seconds: float) -> str:
    """Items per second in millions, formatted for a table."""
    return f"{items / seconds / 1e6:,.3f} M/s"
