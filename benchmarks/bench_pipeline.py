"""The pipeline end to end at scale: the real ``daily`` Prefect flow against the simulated market.

What runs: the same flow as ``periscope run`` (ingest over loopback HTTP from the built-in
simulator, surface fits and sensitivity grids fanned out over Dask, publish, history), with a
temporary Prefect API server (started once, as the CLI does) and one local Dask cluster of two
worker processes, started once and warmed up before the runs. The flow itself is measured rather
than its stage functions alone because the target is the pipeline end to end: its overhead
(Prefect task runs, staging by URI, the fan-out) is part of what an operator waits for, and at
scale it is small (seconds against minutes). Per-stage wall times come from the flow's own
clock (``result["timings"]``, also in the run-summary artifact).

Measured:

* cold start: Prefect API server start, Dask cluster start, and the first call on each worker
  (numba compiles the pricing and surface kernels in every new worker process; on-disk caching
  is off by default), which a one-off ``periscope run`` pays on top of the warm figures;
* for each universe (quick: 3 names; full: the default 8 and 500 names): per-stage wall time,
  contracts and contracts/s, the risk group's size on disk, and peak memory: the high-water RSS
  (``VmHWM``, reset before the run through ``/proc/<pid>/clear_refs``) of the driver process
  (the flow, and the simulator serving every chain) and of each worker;
* worker scaling: the compute stages (surface fits and sensitivity grids, the stage functions
  the flow's tasks call, on staged chains of the same universe) restricted to one worker of the
  warm cluster, then spread over both, and the speed-up.

The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from periscope.settings import Settings

QUICK_UNIVERSE = 3
FULL_UNIVERSES = (8, 500)
# Universe sizes of the end-to-end runs instead of the above, comma-separated ("100,500").
SIZES_ENV = "PERISCOPE_BENCH_PIPELINE_SIZES"
QUICK_SCALING = 6
FULL_SCALING = 48
STAGES = ("ingest", "fit_surfaces", "sensitivity_grids", "publish", "history")
SCALING_RANGE = 5_000  # contracts per grid range in the scaling runs (about 12 ranges)
WARM_NAME = "KO"  # a small chain: compiling, not computing, is what the warm-up is for
# Contracts a synthetic name lists (the universe: 500 names x about 2,000 contracts).
SYNTHETIC_CONTRACTS = 2_000


# -- memory ---------------------------------------------------------------------------------
def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb(pid: int) -> float:
    """High-water resident set size of ``pid`` since its last reset, MB."""
    return _status_kb(pid, "VmHWM") / 1024


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


# -- the run --------------------------------------------------------------------------------
@contextlib.contextmanager
def _environment(root: Path) -> Iterator[Settings]:
    """Settings of the bench's runs: a private data root and Prefect home, the default grid."""
    saved = dict(os.environ)
    os.environ["PERISCOPE_DATA_ROOT"] = str(root)
    os.environ["PERISCOPE_DASK_DASHBOARD_ADDRESS"] = "127.0.0.1:0"
    os.environ["PERISCOPE_DASK_N_WORKERS"] = "2"
    os.environ["PREFECT_HOME"] = str(root / "prefect")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    # Synthetic names list about 2,000 contracts each: 500 names make the 1M-contract universe.
    os.environ["PERISCOPE_SIMULATOR_SYNTHETIC_CONTRACTS"] = str(SYNTHETIC_CONTRACTS)
    for name in ("MASSIVE_API_KEY", "PERISCOPE_MASSIVE_API_KEY", "PERISCOPE_DASK_ADDRESS"):
        os.environ.pop(name, None)
    try:
        yield Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _timed[T](function: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def _warm_worker(staged: Any, root: str, run_id: str) -> float:
    """On one worker: fit and grid one small staged chain (compiles every kernel); seconds."""
    from flows.risk import grid_range, lay_out_groups, plan_ranges
    from flows.surfaces import fit_batch

    start = time.perf_counter()
    fit = fit_batch(staged, root=root, run_id=run_id)
    spec = _spec(Settings())
    ranges = plan_ranges([fit])
    lay_out_groups(ranges, root, run_id, spec)
    for part in ranges:
        grid_range(part, root=root, run_id=run_id, spec=spec)
    return time.perf_counter() - start


def _grids(
    ranges: list[Any], root: str, run_id: str, spec: Any, client: Any, pool: list[str]
) -> None:
    """The sensitivity-grid stage as the flow runs it, on the workers of ``pool``."""
    from flows.risk import grid_range, lay_out_groups
    from periscope import storage

    arrays = client.submit(
        lay_out_groups, ranges, root, run_id, spec, workers=pool, pure=False
    ).result()
    client.gather(
        client.map(
            grid_range, ranges, root=root, run_id=run_id, spec=spec, workers=pool, pure=False
        )
    )
    for group, count in arrays.items():
        storage.finish_group(root, run_id, group, count)


def _stage_chains(
    settings: Settings, root: Path, names: list[str], batch_size: int
) -> tuple[str, list[Any]]:
    """Ingest ``names`` in batches in this process (the simulator on loopback); staged."""
    from flows.daily import batches_of
    from flows.ingest import ingest_batch
    from flows.source import market_source
    from periscope.storage import new_run_id

    run_id = new_run_id()
    with market_source(settings, names) as (source, _):
        staged = [
            ingest_batch(source, batch, str(root), run_id, i)
            for i, batch in enumerate(batches_of(names, batch_size))
        ]
    return run_id, staged


def _spec(settings: Settings) -> Any:
    from flows.risk import GridSpec

    return GridSpec(
        tuple(settings.risk_spot_shifts),
        tuple(settings.risk_vol_shifts),
        tuple(settings.risk_horizon_days),
        settings.risk_sticky,
    )


def _universe(settings: Settings, size: int) -> list[str]:
    from flows.source import resolve_universe

    return resolve_universe(settings.model_copy(update={"pipeline_universe_size": size}))


def _run_flow(
    client: Any, root: Path, names: list[str], worker_pids: Sequence[int]
) -> dict[str, Any]:
    from flows.daily import daily

    pids = [os.getpid(), *worker_pids]
    reset = all(_reset_peak(pid) for pid in pids)
    before = {pid: peak_rss_mb(pid) for pid in pids}
    result, wall = _timed(lambda: daily(universe=names, root=str(root)))
    peaks = {pid: peak_rss_mb(pid) for pid in pids}
    risk = Path(result["uri"]) / "risk"
    return {
        "names": len(names),
        "contracts": int(result["contracts"]),
        "timings": result["timings"],
        "wall": wall,
        "driver_mb": peaks[os.getpid()],
        "worker_mb": [peaks[pid] for pid in worker_pids],
        "peak_reset": reset,
        "baseline_mb": before,
        "risk_mb": _dir_mb(risk) if risk.exists() else float("nan"),
        "failed": len(result["failed"]),
    }


def _scaling(
    client: Any, settings: Settings, root: Path, names: list[str], workers: list[str]
) -> list[tuple[int, float, float]]:
    """(workers, fit seconds, grid seconds) of the compute stages on staged chains."""
    from flows.risk import plan_ranges
    from flows.surfaces import fit_batch

    # Batches of two names: many batches per worker, as in a large universe.
    run_id, staged = _stage_chains(settings, root, names, 2)
    staged.sort(key=lambda batch: -batch.contracts)  # largest first, as the flow does
    rows = []
    for pool in ([workers[0]], workers):
        fits, fit_seconds = _timed(
            lambda pool=pool: client.gather(
                client.map(
                    fit_batch, staged, root=str(root), run_id=run_id, workers=pool, pure=False
                )
            )
        )
        # Ranges as many as a million-contract run has per worker (the flow's are 40,000).
        ranges = plan_ranges(fits, SCALING_RANGE)
        _, grid_seconds = _timed(
            lambda pool=pool, ranges=ranges: _grids(
                ranges, str(root), run_id, _spec(settings), client, pool
            )
        )
        rows.append((len(pool), fit_seconds, grid_seconds))
    return rows


def run(quick: bool) -> str:
    """Run the benchmark; returns a markdown section."""
    root = Path(tempfile.mkdtemp(prefix="periscope-bench-pipeline-"))
    try:
        return _measure(quick, root / "data")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measure(quick: bool, root: Path) -> str:
    load_before = os.getloadavg()
    with _environment(root) as settings:
        from distributed import Client

        from cluster import make_cluster
        from flows.cli import prefect_api, prefect_environment

        prefect_environment(settings)
        sizes = (QUICK_UNIVERSE,) if quick else FULL_UNIVERSES
        if os.environ.get(SIZES_ENV):  # e.g. "100" while developing
            sizes = tuple(int(n) for n in os.environ[SIZES_ENV].split(","))
        scaling_size = QUICK_SCALING if quick else FULL_SCALING
        cluster, cluster_seconds = _timed(lambda: make_cluster(settings))
        assert not isinstance(cluster, str)
        with (
            cluster,
            Client(cluster) as client,
            contextlib.ExitStack() as stack,
        ):
            os.environ["PERISCOPE_DASK_ADDRESS"] = cluster.scheduler_address
            workers = sorted(client.scheduler_info()["workers"])
            worker_pids = [client.run(os.getpid, workers=[w])[w] for w in workers]
            _, server_seconds = _timed(lambda: stack.enter_context(prefect_api()))
            # One staged copy (own run id) per worker: both write their outputs at once.
            copies = [_stage_chains(settings, root, [WARM_NAME], 1) for _ in workers]
            warm = [
                client.submit(_warm_worker, batch, str(root), run, workers=[w], pure=False)
                for w, (run, (batch,)) in zip(workers, copies, strict=True)
            ]
            warm_seconds, warm_wall = _timed(lambda: client.gather(warm))
            runs = [_run_flow(client, root, _universe(settings, n), worker_pids) for n in sizes]
            scaling = _scaling(client, settings, root, _universe(settings, scaling_size), workers)
    load_after = os.getloadavg()
    return _report(
        quick,
        runs,
        scaling,
        scaling_size,
        cold={
            "server": server_seconds,
            "cluster": cluster_seconds,
            "warm_wall": warm_wall,
            "warm": warm_seconds,
        },
        load=(load_before, load_after),
    )


def _report(
    quick: bool,
    runs: list[dict[str, Any]],
    scaling: list[tuple[int, float, float]],
    scaling_size: int,
    *,
    cold: dict[str, Any],
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    heads = " | ".join(f"{r['names']} names" for r in runs)
    lines = [
        "## Pipeline end to end (the `daily` flow, simulated market, 2 Dask workers)",
        "",
        f"{os.cpu_count()} CPUs shared with other work; load average (1/5/15 min) "
        f"{' / '.join(f'{x:.1f}' for x in load[0])} before, "
        f"{' / '.join(f'{x:.1f}' for x in load[1])} after. "
        f"{dt.date.today().isoformat()}{' (quick mode)' if quick else ''}.",
        "",
        f"Cold start, paid once per process: Prefect API server {cold['server']:.1f} s, Dask "
        f"cluster {cold['cluster']:.1f} s, first call on each worker (numba compilation of the "
        f"fit and pricing kernels; one small chain) {cold['warm_wall']:.1f} s wall "
        f"({', '.join(f'{s:.1f}' for s in cold['warm'])} s per worker). The runs below are on "
        "the warm cluster; `periscope run` adds these to its first run.",
        "",
        f"Chains: the simulator's 20 default names as listed, every synthetic name about "
        f"{SYNTHETIC_CONTRACTS:,} contracts (`PERISCOPE_SIMULATOR_SYNTHETIC_CONTRACTS`).",
        "",
        f"| stage (wall s) | {heads} |",
        "| --- |" + " ---: |" * len(runs),
    ]
    for stage in STAGES:
        lines.append(
            f"| {stage} | " + " | ".join(f"{r['timings'].get(stage, 0.0):.1f}" for r in runs) + " |"
        )
    lines += [
        "| **total (flow)** | " + " | ".join(f"**{r['wall']:.1f}**" for r in runs) + " |",
        "| contracts | " + " | ".join(f"{r['contracts']:,}" for r in runs) + " |",
        "| contracts/s end to end | "
        + " | ".join(f"{r['contracts'] / r['wall']:,.0f}" for r in runs)
        + " |",
        "| risk group on disk (MB) | " + " | ".join(f"{r['risk_mb']:,.0f}" for r in runs) + " |",
        "| peak RSS driver (MB) | " + " | ".join(f"{r['driver_mb']:,.0f}" for r in runs) + " |",
        "| peak RSS per worker (MB) | "
        + " | ".join(" / ".join(f"{m:,.0f}" for m in r["worker_mb"]) for r in runs)
        + " |",
        "| names not ingested | " + " | ".join(str(r["failed"]) for r in runs) + " |",
        "",
    ]
    if not all(r["peak_reset"] for r in runs):
        lines += ["(peak RSS could not be reset: figures are since process start)", ""]
    (one, fit1, grid1), (two, fit2, grid2) = scaling
    lines += [
        f"Worker scaling of the compute stages ({scaling_size} names, batches of about two "
        "names, largest first, on the warm cluster):",
        "",
        "| workers | fit surfaces (s) | sensitivity grids (s) | both (s) |",
        "| ---: | ---: | ---: | ---: |",
        f"| {one} | {fit1:.1f} | {grid1:.1f} | {fit1 + grid1:.1f} |",
        f"| {two} | {fit2:.1f} | {grid2:.1f} | {fit2 + grid2:.1f} |",
        f"| speed-up | {fit1 / fit2:.2f}x | {grid1 / grid2:.2f}x | "
        f"{(fit1 + grid1) / (fit2 + grid2):.2f}x |",
        "",
    ]
    return "\n".join(lines)
