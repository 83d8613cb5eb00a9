"""Option chains over loopback HTTP: Periscope's client vs the official ``massive`` client.

Both read from the same simulator server, started as a separate process
(``python -m periscope.simulator``), after a warm-up that makes the server cache its pages. Runs
alternate between the clients and the best of several rounds is kept. Measured:

* one large chain (``I:SPX``, every listed contract): ``MassiveClient.fetch_chain`` (a canonical
  Dataset) vs ``RESTClient.list_snapshot_options_chain(..., params={"limit": 250})`` materialised
  to a list of model objects;
* a chain of about 5,000 contracts: ``I:SPX`` filtered server-side by ``expiration_date.lte``
  (the earliest expiries holding 5,000 contracts), the same filter sent by both clients;
* the whole default universe (20 underlyings): ``fetch_chains`` (concurrent) vs the official
  client looping over the underlyings;
* client CPU per contract (``time.process_time`` of the benchmark process, the server being in
  its own process), the steadiest figure on a shared machine;
* peak Python memory (tracemalloc) of one large-chain fetch for each;
* the machine's load average, since both clients and the server share its cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import massive
import numpy as np

from periscope import schema
from periscope.marketdata import ClientOptions, MassiveClient
from periscope.simulator.universe import DEFAULT_UNIVERSE

LARGE = "I:SPX"
MID_SIZE = 5_000


def _timed(function: Callable[[], int]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process and the count returned by ``function``."""
    cpu, start = time.process_time(), time.perf_counter()
    count = function()
    return time.perf_counter() - start, time.process_time() - cpu, count


def _peak_mb(function: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def run(quick: bool) -> str:
    """Run the benchmark; returns a markdown section."""
    rounds = 1 if quick else 8
    command = [sys.executable, "-m", "periscope.simulator", "--port", "0", "--api-key", "bench"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            base_url, key = server.stdout.readline().split()
            return _measure(base_url, key, rounds)
        finally:
            server.terminate()


def _measure(base_url: str, key: str, rounds: int) -> str:
    names = [u.ticker for u in DEFAULT_UNIVERSE]
    options = ClientOptions(requests_per_second=None, max_concurrency=8)
    official = massive.RESTClient(api_key=key, base=base_url)
    with MassiveClient(api_key=key, base_url=base_url, options=options) as ours:
        ours.fetch_chains(names)  # warm-up: the server builds and caches every chain

        def ours_large() -> int:
            return int(ours.fetch_chain(LARGE).sizes["contract"])

        def official_large() -> int:
            return len(list(official.list_snapshot_options_chain(LARGE, params={"limit": 250})))

        def ours_universe() -> int:
            return sum(int(ds.sizes["contract"]) for ds in ours.fetch_chains(names).values())

        def official_universe() -> int:
            return sum(
                len(list(official.list_snapshot_options_chain(name, params={"limit": 250})))
                for name in names
            )

        # the expiry by which I:SPX lists 5,000 contracts: its chain up to there is the mid-size one
        expiries = np.sort(ours.fetch_chain(LARGE)[schema.EXPIRY].values)
        cutoff = str(expiries[MID_SIZE - 1].astype("datetime64[D]"))

        def ours_mid() -> int:
            return int(ours.fetch_chain(LARGE, expiration_date_lte=cutoff).sizes["contract"])

        def official_mid() -> int:
            params = {"limit": 250, "expiration_date.lte": cutoff}
            return len(list(official.list_snapshot_options_chain(LARGE, params=params)))

        official_large()
        workloads: dict[str, Callable[[], int]] = {
            "ours_mid": ours_mid,
            "official_mid": official_mid,
            "ours_large": ours_large,
            "official_large": official_large,
            "ours_universe": ours_universe,
            "official_universe": official_universe,
        }
        load_before = os.getloadavg()[0]
        results = {name: (float("inf"), 0) for name in workloads}
        cpu = {name: float("inf") for name in workloads}
        for _ in range(rounds):  # alternate, so load on the shared machine hits both alike
            for name, function in workloads.items():
                seconds, cpu_seconds, count = _timed(function)
                results[name] = (min(results[name][0], seconds), count)
                cpu[name] = min(cpu[name], cpu_seconds)
        load_after = os.getloadavg()[0]
        peak_ours = _peak_mb(ours_large)
        peak_official = _peak_mb(official_large)
    official.client.clear()

    def rate(name: str) -> float:
        seconds, count = results[name]
        return count / seconds

    def micros(name: str) -> float:
        return 1e6 * cpu[name] / results[name][1]

    mid_n = results["ours_mid"][1]
    large_n = results["ours_large"][1]
    universe_n = results["ours_universe"][1]
    if (
        results["official_mid"][1] != mid_n
        or results["official_large"][1] != large_n
        or results["official_universe"][1] != universe_n
    ):
        raise RuntimeError(f"the clients read different numbers of contracts: {results}")
    lines = [
        "## Market data: option chains over loopback HTTP",
        "",
        "Simulator server in its own process; best of "
        f"{rounds} alternating rounds. Ratio = Periscope / official `massive` client. "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before and {load_after:.1f} "
        "after the runs.",
        "",
        "| workload | contracts | Periscope (contracts/s) | massive (contracts/s) | ratio "
        "| client CPU µs/contract (Periscope / massive) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| one chain ({LARGE}, expiries to {cutoff}) | {mid_n:,} | {rate('ours_mid'):,.0f} | "
        f"{rate('official_mid'):,.0f} | {rate('ours_mid') / rate('official_mid'):.2f}x | "
        f"{micros('ours_mid'):.1f} / {micros('official_mid'):.1f} |",
        f"| one chain ({LARGE}, every contract) | {large_n:,} | {rate('ours_large'):,.0f} | "
        f"{rate('official_large'):,.0f} | {rate('ours_large') / rate('official_large'):.2f}x | "
        f"{micros('ours_large'):.1f} / {micros('official_large'):.1f} |",
        f"| default universe ({len(names)} names) | {universe_n:,} | "
        f"{rate('ours_universe'):,.0f} | {rate('official_universe'):,.0f} | "
        f"{rate('ours_universe') / rate('official_universe'):.2f}x | "
        f"{micros('ours_universe'):.1f} / {micros('official_universe'):.1f} |",
        "",
        f"Peak Python memory (tracemalloc) of one {LARGE} fetch: Periscope {peak_ours:.0f} MB "
        f"(canonical Dataset), massive {peak_official:.0f} MB (list of model objects).",
        "",
    ]
    return "\n".join(lines)
