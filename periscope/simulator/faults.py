"""Switchable faults of the simulated API, and its per-key rate limit.

A test arms faults on a running server (``server.faults.add(Fault("server_error", times=3))``);
each matching request consumes one. Kinds:

``rate_limit``      429 with ``Retry-After`` and Massive's ``ERROR`` body
``server_error``    5xx (``status``, default 502) with an nginx HTML body
``slow``            sleep ``delay`` seconds, then answer normally
``non_json``        200 with an HTML body
``truncated_json``  200 with the first half of the JSON body
``schema_break``    200 whose ``results`` is an object instead of a list
``loop_cursor``     ``next_url`` points back at the previous page's cursor
``duplicate``       the next page starts five contracts before this one ended
``unauthorized`` / ``forbidden`` / ``not_found``   401 / 403 / 404 with Massive's bodies
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "slow",
    "non_json",
    "truncated_json",
    "schema_break",
    "loop_cursor",
    "duplicate",
    "unauthorized",
    "forbidden",
    "not_found",
]


@dataclass(slots=True)
class Fault:
    """One armed fault.

    Attributes
    ----------
    kind
        What goes wrong (see the module docstring).
    times
        How many matching requests it affects; a negative number means every one.
    path
        Only requests whose path starts with this are affected.
    page
        Only this page of a paginated listing (0 = the first request, without a cursor).
    status
        HTTP status of ``server_error``.
    retry_after
        Seconds in the ``Retry-After`` header of ``rate_limit``.
    delay
        Seconds a ``slow`` response waits.
    """

    kind: FaultKind
    times: int = 1
    path: str = ""
    page: int | None = None
    status: int = 502
    retry_after: float = 1.0
    delay: float = 2.0


class FaultPlan:
    """The armed faults of one server; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Arm ``fault``; returns it."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, path: str, page: int) -> Fault | None:
        """The first armed fault matching this request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.times == 0 or not path.startswith(fault.path):
                    continue
                if fault.page is not None and fault.page != page:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None


class RateLimiter:
    """Token buckets per API key: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0 if a request may go ahead now, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
