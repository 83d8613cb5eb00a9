"""The ``daily`` flow: universe -> chains -> surfaces -> sensitivity grids -> a published run.

``daily`` (the parent) reads :class:`~periscope.settings.Settings`, starts the market source
(Massive, or the simulator on loopback) and the Dask cluster (:func:`cluster.make_cluster`: a
local cluster, or the scheduler at ``PERISCOPE_DASK_ADDRESS``), then runs the ``pipeline``
subflow on that cluster through ``DaskTaskRunner``. Tasks pass URIs of staged datasets, never
arrays; the run becomes visible only when ``publish`` moves ``latest.json``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect_dask import DaskTaskRunner

from cluster import make_cluster
from flows.history import update_history
from flows.ingest import StagedBatch, fetch_rate_curve, ingest_chains
from flows.publish import PublishedRun, apply_retention, publish_run
from flows.risk import GridSpec, GridsResult, sensitivity_grids
from flows.source import MarketSource, last_weekday, market_source, resolve_universe
from flows.surfaces import FitResult, fit_surfaces
from periscope.errors import PeriscopeError
from periscope.settings import Settings

logger = logging.getLogger(__name__)


class PipelineError(PeriscopeError):
    """A run that cannot be published (nothing ingested, every fit failed...)."""


@contextmanager
def dask_address(settings: Settings) -> Iterator[str]:
    """The scheduler address of the run's cluster; a local cluster lives for the block."""
    cluster = make_cluster(settings)
    if isinstance(cluster, str):
        yield cluster
        return
    with cluster:
        yield cluster.scheduler_address


class StageClock:
    """Wall seconds of a run's stages, lap by lap (reported in the summary and artifact)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Record the time since the previous lap as ``stage``; returns it."""
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 3)
        self._last = now
        return self.seconds[stage]

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._start, 3)


def batches_of(universe: list[str], size: int) -> list[list[str]]:
    """``universe`` in consecutive batches of ``size`` names."""
    return [universe[i : i + size] for i in range(0, len(universe), size)]


def batch_size_for(universe: list[str], largest: int, min_batches: int = 8) -> int:
    """Names per batch: at most ``largest``, and small enough for ``min_batches`` batches so a
    small universe still spreads its fits over every worker (chains differ tenfold in size, so
    a few batches per worker, the largest first, balance better than one each)."""
    return max(1, min(largest, -(-len(universe) // min_batches)))


def summary_markdown(
    run: PublishedRun,
    rows: list[dict[str, Any]],
    kind: str,
    timings: dict[str, float] | None = None,
) -> str:
    """The run summary artifact: where the run is, how it went and how long each stage took."""
    ok = sum(1 for row in rows if row["status"] == "ok")
    lines = [
        f"# Periscope {kind} run `{run.run_id}`",
        "",
        f"- **Run URI**: `{run.uri}`",
        f"- Groups: {', '.join(run.groups)}",
        f"- Underlyings: {run.underlyings} ({ok} fully fitted), contracts: {run.contracts:,}",
        f"- Source: {run.meta.get('source', '?')}",
        "",
        "Open it with plain xarray:",
        "",
        "```python",
        "import xarray as xr",
        f'surfaces = xr.open_zarr("{run.uri}", group="surfaces")',
        "```",
    ]
    failed = run.meta.get("failed") or {}
    if failed:
        lines += ["", "Not ingested:", ""] + [f"- {name}: {why}" for name, why in failed.items()]
    if timings:
        lines += ["", "| stage | seconds |", "| --- | ---: |"]
        lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()]
    return "\n".join(lines)


@flow(name="pipeline", cache_result_in_memory=False)
def pipeline(
    source: MarketSource,
    universe: list[str],
    root: str,
    run_id: str,
    batch_size: int,
    spec: GridSpec,
    kind: str = "end-of-day",
    retries: int = 3,
    retry_delays: list[float] | None = None,
    storage_options: dict[str, Any] | None = None,
    keep_days: int = 30,
    grace: dt.timedelta = dt.timedelta(hours=6),
) -> dict[str, Any]:
    """The stages of one run on the Dask cluster; returns the run summary (small)."""
    log = get_run_logger()
    clock = StageClock()
    ingest = ingest_chains.with_options(
        retries=retries, retry_delay_seconds=retry_delays or [2.0, 10.0, 30.0]
    )
    futures = [
        ingest.submit(source, batch, root, run_id, index)
        for index, batch in enumerate(batches_of(universe, batch_size))
    ]
    staged: list[StagedBatch] = [future.result() for future in futures]
    failed = {name: why for batch in staged for name, why in batch.failed.items()}
    if not any(batch.uri for batch in staged):
        raise PipelineError("no chain could be ingested; nothing to publish", failed=failed)
    log.info(
        "ingested %d contracts in %.1f s",
        sum(batch.contracts for batch in staged),
        clock.lap("ingest"),
    )

    day = last_weekday()  # one trading day for the curve and the history row, even past midnight
    curve = fetch_rate_curve(source, day)
    fits: list[FitResult] = fit_surfaces.submit(staged, root, run_id, curve).result()
    log.info("fitted %d batches in %.1f s", len(fits), clock.lap("fit_surfaces"))
    rows = [row for fit in sorted(fits, key=lambda f: f.index) for row in fit.diagnostics]
    if not any(row["status"] in ("ok", "partial") for row in rows):
        raise PipelineError("no surface could be fitted; nothing to publish")
    grids: GridsResult = sensitivity_grids.submit(
        fits, root, run_id, spec, storage_options
    ).result()
    log.info(
        "chains and sensitivity grids of %d contracts in %.1f s",
        grids.contracts,
        clock.lap("sensitivity_grids"),
    )

    meta = {
        "kind": kind,
        "source": "simulator" if source.simulated else "massive",
        "universe": universe,
        "failed": failed,
        "grid": asdict(spec),
        "rates": "treasury curve" if curve is not None else "put-call parity",
    }
    run: PublishedRun = publish_run.submit(
        root, run_id, fits, grids, meta, storage_options
    ).result()
    log.info("published %s in %.1f s", run.uri, clock.lap("publish"))
    written = update_history.submit(root, run_id, source, day, storage_options).result()
    log.info("history: %d underlyings written in %.1f s", written, clock.lap("history"))
    removed = apply_retention.submit(root, keep_days, grace, storage_options).result()
    if removed:
        log.info("retention removed %d run(s): %s", len(removed), ", ".join(removed))
    clock.lap("retention")

    create_table_artifact(
        table=rows,
        key="fit-diagnostics",
        description=f"Per-underlying surface fit diagnostics of run {run_id}",
    )
    create_markdown_artifact(
        markdown=summary_markdown(run, rows, kind, clock.seconds),
        key="run-summary",
        description=f"Run {run_id}: {run.uri}",
    )
    return {
        "run_id": run.run_id,
        "uri": run.uri,
        "root": run.root,
        "groups": list(run.groups),
        "underlyings": run.underlyings,
        "contracts": run.contracts,
        "failed": failed,
        "diagnostics": rows,
        "timings": dict(clock.seconds) | {"total": clock.total},
    }


@flow(name="daily", cache_result_in_memory=False)
def daily(
    universe: list[str] | None = None,
    root: str | None = None,
    kind: str = "end-of-day",
    size: int | None = None,
) -> dict[str, Any]:
    """One Periscope run, published under ``root`` (default: settings ``data_root``).

    Parameters
    ----------
    universe
        Underlyings; default from settings (``PERISCOPE_PIPELINE_UNIVERSE``, else the first
        ``PERISCOPE_PIPELINE_UNIVERSE_SIZE`` names of the market).
    root
        Local folder or ``s3://bucket/prefix``.
    kind
        A label stored with the run: ``end-of-day`` or ``intraday``.
    size
        With no ``universe``: the first ``size`` names (default settings).

    Returns
    -------
    dict
        ``run_id``, ``uri``, ``groups``, counts, names not ingested and the fit diagnostics.
    """
    from periscope.storage import new_run_id

    settings = Settings()
    if size is not None:
        settings = settings.model_copy(update={"pipeline_universe_size": size})
    names = resolve_universe(settings, universe)
    data_root = root or settings.data_root
    run_id = new_run_id()
    spec = GridSpec(
        tuple(settings.risk_spot_shifts),
        tuple(settings.risk_vol_shifts),
        tuple(settings.risk_horizon_days),
        settings.risk_sticky,
    )
    get_run_logger().info(
        "run %s: %d underlyings into %s (%s)", run_id, len(names), data_root, dt.date.today()
    )
    with market_source(settings, names) as (source, _), dask_address(settings) as address:
        runner = DaskTaskRunner(address=address)
        return pipeline.with_options(task_runner=runner)(
            source,
            names,
            data_root,
            run_id,
            batch_size_for(names, settings.pipeline_batch_size),
            spec,
            kind=kind,
            retries=settings.pipeline_retries,
            retry_delays=settings.pipeline_retry_delays,
            storage_options=settings.storage_options() or None,
            keep_days=settings.storage_keep_days,
            grace=settings.storage_grace,
        )
