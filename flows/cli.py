"""The ``periscope`` command line (typer + rich).

::

    periscope run [--universe SPY,QQQ] [--size N] [--root ./data] [--kind end-of-day]
    periscope backfill [--days 260]
    periscope simulator serve [--port 8765] [--underlyings 20]
    periscope runs list | periscope runs show [RUN_ID]
    periscope plot surface SYMBOL --out surface.png [--run RUN_ID]
    periscope serve                 # the scheduled deployments (see flows.deployments)

Prefect runs in ephemeral mode when ``PREFECT_API_URL`` is unset (a throwaway local API
server for the duration of the command); its state lives under ``PREFECT_HOME``, which defaults
to ``<data_root>/prefect`` for a local root so ``make ui`` later shows the same runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from periscope.settings import Settings

app = typer.Typer(help="Periscope: options analytics pipeline.", no_args_is_help=True)
runs_app = typer.Typer(help="Published runs.", no_args_is_help=True)
plot_app = typer.Typer(help="Pictures of published data.", no_args_is_help=True)
simulator_app = typer.Typer(help="The built-in simulated market.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(plot_app, name="plot")
app.add_typer(simulator_app, name="simulator")
console = Console()

RootOption = Annotated[
    str | None, typer.Option("--root", help="Data root (default: PERISCOPE_DATA_ROOT or ./data).")
]


def prefect_environment(settings: Settings) -> None:
    """Defaults for Prefect before it is imported: local state under the data folder, no
    telemetry, a generous ephemeral-server start-up timeout (2-core machines are slow)."""
    if not settings.data_root.startswith("s3://"):
        home = Path(os.environ.get("PREFECT_HOME") or Path(settings.data_root) / "prefect")
        home.resolve().mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "periscope,flows")
    # Dask's own INFO lines (workers starting, clients closing...) drown the run's story; worker
    # processes inherit the setting through the environment. Warnings still show.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


@contextmanager
def prefect_api() -> Iterator[str]:
    """A Prefect API for the command: ``PREFECT_API_URL`` if set, else a temporary local server.

    Prefect's own ephemeral mode is not enough here: Dask worker processes would each start
    another ephemeral server (the settings they receive name no API). One temporary server,
    named in the environment before the cluster spawns its workers, serves every process.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield str(get_current_settings().api.url)
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
            _drain_prefect_workers()
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _drain_prefect_workers() -> None:
    """Send the queued logs and events before the temporary server stops (else they are lost
    with "Error logging to API" noise), as Prefect's own test harness does."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:  # the worker never started
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def _settings(root: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"data_root": root}) if root else settings


def _spinner(text: str) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def diagnostics_table(rows: list[dict[str, Any]]) -> Table:
    """The per-underlying fit diagnostics as a rich table."""
    table = Table(title="Surfaces", show_lines=False)
    columns = (
        ("underlying", "underlying"),
        ("status", "status"),
        ("contracts", "contracts"),
        ("expiries_fitted", "expiries"),
        ("iv30", "IV30"),
        ("rmse_bp_median", "RMSE bp"),
        ("confidence", "confidence"),
    )
    for _, title in columns:
        table.add_column(title, justify="left" if title in ("underlying", "status") else "right")
    for row in rows:
        values = [_fmt(row.get(key)) for key, _ in columns]
        if row.get("expiries") is not None:
            values[3] = f"{row['expiries_fitted']}/{row['expiries']}"
        table.add_row(*values)
    return table


@app.command()
def run(
    universe: Annotated[
        str | None, typer.Option(help="Comma-separated underlyings (default from settings).")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="The first N names of the market (default 8).")
    ] = None,
    root: RootOption = None,
    kind: Annotated[str, typer.Option(help="end-of-day or intraday.")] = "end-of-day",
) -> None:
    """Run the daily pipeline once and publish the run (simulated market without a key)."""
    settings = _settings(root)
    prefect_environment(settings)
    from flows.daily import daily

    names = [n.strip() for n in universe.split(",") if n.strip()] if universe else None
    source = "Massive" if settings.massive_api_key else "the simulated market (no MASSIVE_API_KEY)"
    console.print(f"Periscope daily pipeline against {source}, data in {settings.data_root}")
    started = time.perf_counter()
    with prefect_api(), _spinner("run") as progress:
        progress.add_task("ingest → surfaces → risk → publish", total=None)
        result = daily(universe=names, root=settings.data_root, kind=kind, size=size)
    elapsed = time.perf_counter() - started
    console.print(diagnostics_table(result["diagnostics"]))
    for name, why in (result.get("failed") or {}).items():
        console.print(f"[yellow]not ingested[/] {name}: {why}")
    uri = result["uri"]
    console.print(
        f"\n[bold green]Published[/] run {result['run_id']} in {elapsed:.0f} s: "
        f"{result['underlyings']} underlyings, {result['contracts']:,} contracts"
    )
    console.print(f"Location: {uri}")
    console.print(f"Pointer:  {settings.data_root.rstrip('/')}/latest.json")
    first = result["diagnostics"][0]["underlying"] if result["diagnostics"] else "SPY"
    console.print(
        "\nOpen it in xarray:\n"
        "  import json, xarray as xr\n"
        f'  run = json.load(open("{settings.data_root.rstrip("/")}/latest.json"))\n'
        "  # groups: chains, surfaces, metrics, risk\n"
        '  surfaces = xr.open_zarr(run["uri"], group="surfaces")\n'
        "Plot a surface:\n"
        f"  .venv/bin/periscope plot surface {first} --out {first.replace(':', '')}.png"
    )


@app.command()
def backfill(
    days: Annotated[int | None, typer.Option(help="Trading days back (default 260).")] = None,
    universe: Annotated[str | None, typer.Option(help="Comma-separated underlyings.")] = None,
    root: RootOption = None,
) -> None:
    """Fill history.zarr with past days (IV rank and percentile need a year)."""
    settings = _settings(root)
    prefect_environment(settings)
    from flows.backfill import backfill as backfill_flow

    names = [n.strip() for n in universe.split(",") if n.strip()] if universe else None
    with prefect_api(), _spinner("backfill") as progress:
        progress.add_task("backfilling history", total=None)
        result = backfill_flow(days=days, universe=names, root=settings.data_root)
    console.print(f"History: {result['days']} day(s) written for {result['underlyings']} names")


@app.command()
def serve() -> None:
    """Serve the scheduled deployments (intraday, end-of-day, nightly backfill)."""
    prefect_environment(Settings())
    from flows.deployments import serve_all

    serve_all()


@simulator_app.command("serve")
def simulator_serve(
    port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8765,
    underlyings: Annotated[int, typer.Option(help="Names in the simulated market.")] = 20,
    seed: Annotated[int, typer.Option()] = 7,
    days: Annotated[int, typer.Option(help="Simulated trading days.")] = 260,
    api_key: Annotated[str | None, typer.Option(help="Default: a random key.")] = None,
) -> None:
    """Serve the simulated Massive API on 127.0.0.1 until interrupted."""
    from periscope.simulator.__main__ import main

    argv = ["serve", "--port", str(port), "--underlyings", str(underlyings)]
    argv += ["--seed", str(seed), "--days", str(days)]
    if api_key:
        argv += ["--api-key", api_key]
    raise typer.Exit(main(argv))


@runs_app.command("list")
def runs_list(root: RootOption = None) -> None:
    """Runs under the data root, newest first (* marks the one latest.json names)."""
    from periscope import storage

    settings = _settings(root)
    options = settings.storage_options() or None
    runs = storage.list_runs(settings.data_root, storage_options=options)
    latest = storage.read_pointer(settings.data_root, storage_options=options)
    table = Table(title=f"Runs in {settings.data_root}")
    for column in ("", "run id", "created (UTC)", "published", "kind", "underlyings", "contracts"):
        table.add_column(column)
    for info in sorted(runs, key=lambda r: r.run_id, reverse=True):
        mark = "*" if latest is not None and latest.run_id == info.run_id else ""
        table.add_row(
            mark,
            info.run_id,
            info.created.strftime("%Y-%m-%d %H:%M:%S"),
            "yes" if info.published else "no",
            _fmt(info.meta.get("kind")),
            _fmt(info.meta.get("underlyings")),
            _fmt(info.meta.get("contracts")),
        )
    console.print(table)
    if not runs:
        console.print("No runs yet: `periscope run` (or `make run`) publishes one.")


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id, or 'latest'.")] = "latest",
    root: RootOption = None,
) -> None:
    """A run's location, metadata and groups (dimensions and variables)."""
    from periscope import storage

    settings = _settings(root)
    options = settings.storage_options() or None
    if run_id == "latest":
        info = storage.read_pointer(settings.data_root, storage_options=options)
        if info is None:
            console.print("[red]No published run yet.[/]")
            raise typer.Exit(1)
    else:
        runs = storage.list_runs(settings.data_root, storage_options=options)
        matches = [r for r in runs if r.run_id == run_id]
        if not matches:
            console.print(f"[red]No run {run_id} under {settings.data_root}.[/]")
            raise typer.Exit(1)
        info = matches[0]
    console.print(f"[bold]{info.run_id}[/]  {info.uri}")
    console.print(f"created {info.created:%Y-%m-%d %H:%M:%S} UTC, published: {info.published}")
    for key in ("kind", "source", "underlyings", "contracts"):
        if key in info.meta:
            console.print(f"  {key}: {info.meta[key]}")
    table = Table(title="Groups")
    for column in ("group", "dimensions", "variables"):
        table.add_column(column)
    for group in info.groups:
        ds = storage.open_run(settings.data_root, info.run_id, group=group, storage_options=options)
        dims = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
        table.add_row(group, dims, ", ".join(map(str, list(ds.data_vars)[:8])))
    console.print(table)


@plot_app.command("surface")
def plot_surface_command(
    symbol: Annotated[str, typer.Argument(help="Underlying, e.g. SPY or I:SPX.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("surface.png"),
    run_id: Annotated[str | None, typer.Option("--run", help="Run id (default latest).")] = None,
    root: RootOption = None,
) -> None:
    """Draw a published surface and its smiles with the quotes."""
    import numpy as np

    from periscope import schema, storage
    from periscope.plotting import plot_surface

    settings = _settings(root)
    options = settings.storage_options() or None
    surfaces = storage.open_run(
        settings.data_root, run_id, group="surfaces", storage_options=options
    )
    names = np.asarray(surfaces[schema.UNDERLYING].values).astype(str).tolist()
    wanted = symbol if symbol in names else f"I:{symbol}" if f"I:{symbol}" in names else None
    if wanted is None:
        console.print(f"[red]{symbol} is not in the run; it has {', '.join(names)}.[/]")
        raise typer.Exit(1)
    surface = surfaces.sel({schema.UNDERLYING: wanted}).load()
    chains = storage.open_run(settings.data_root, run_id, group="chains", storage_options=options)
    pick = np.flatnonzero(np.asarray(chains[schema.UNDERLYING].values).astype(str) == wanted)
    chain = chains.isel({schema.CONTRACT: pick}).load()
    # Only the expiries of this underlying (the stacked surface pads the others).
    listed = np.asarray(surface[schema.EXPIRY_STATUS].values) != schema.ExpiryStatus.NOT_LISTED
    surface = surface.isel({schema.EXPIRY: np.flatnonzero(listed)})
    path = plot_surface(surface, out, chain=chain)
    console.print(f"Wrote {path}")


if __name__ == "__main__":
    app()
