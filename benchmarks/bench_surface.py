"""Volatility surfaces end to end: one underlying's ``fit_surface`` (preparation vs fitting), and a
universe of underlyings fanned out over a 2-worker ``LocalCluster`` with ``fit_surfaces``.

The one-underlying case is a European chain of 12 expiries x 100 strikes (2,400 contracts) priced
on an SSVI truth with tick-rounded bid/ask quotes, plus the same chain as American (what single
stocks and ETFs cost: de-Americanization through trees), with the default dividend treatment
(cash dividends spread over each option's life, 16 escrowed payments per tree) and with a
dividend yield. The universe case takes the simulator's chains (an index, ETFs and stocks, mostly
American) generated beforehand on the workers (not timed) and times only ``fit_surfaces`` on
them. A last table gives the accuracy and cost of the de-Americanization trees: the
early-exercise premium at the default 101 steps (and others) against 801-step trees.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client, LocalCluster, wait

from benchmarks._timing import best_seconds, call_seconds
from periscope import schema
from periscope.simulator.black import american_crr_price, black_scholes_price
from periscope.simulator.curves import SurfaceTruth
from periscope.simulator.market import Market, SimulationConfig
from periscope.volatility.cleaning import CleaningConfig
from periscope.volatility.deamericanize import DividendModel, early_exercise_premium
from periscope.volatility.fanout import fit_surfaces
from periscope.volatility.quotes import prepare_smiles
from periscope.volatility.surface import _fit_slices, _publish, _surface_dataset, fit_surface

EXPIRY_DAYS = (7, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365, 730)
STRIKES = 100
UNIVERSE_DAY = 5


def synthetic_chain(
    underlying: str = "BENCH",
    american: bool = False,
    seed: int = 0,
    expiry_days: tuple[int, ...] = EXPIRY_DAYS,
    strikes: int = STRIKES,
) -> xr.Dataset:
    """A chain of ``len(expiry_days)`` x ``strikes`` calls and puts on an SSVI truth."""
    rng = np.random.default_rng(seed)
    spot, rate, dividend_yield = 100.0, 0.04, 0.01
    snapshot = dt.datetime(2025, 3, 3, 15, 45, tzinfo=schema.NEW_YORK).astimezone(dt.UTC)
    truth = SurfaceTruth(0.22, 0.26, 0.35, -0.6, 1.0, 0.45)
    columns: dict[str, list[Any]] = {name: [] for name in (*schema.COORDS, "bid", "ask")}
    for days in expiry_days:
        expiry = snapshot.date() + dt.timedelta(days=days)
        settle = schema.settlement_instant(expiry, schema.PM)
        t = (settle - snapshot).total_seconds() / (365 * 86400)
        forward = spot * np.exp((rate - dividend_yield) * t)
        width = 0.25 * np.sqrt(t)
        strike = np.round(forward * np.exp(np.linspace(-4.0 * width, 3.0 * width, strikes)), 2)
        strike = np.unique(strike)
        for is_call in (True, False):
            n = strike.size
            vol = truth.implied_volatility(np.log(strike / forward), np.full(n, t))
            args = (np.full(n, spot), strike, np.full(n, t), np.full(n, rate))
            if american:
                price = american_crr_price(
                    *args, np.full(n, dividend_yield), vol, np.full(n, is_call), np.zeros(n)
                )
            else:
                price = black_scholes_price(
                    *args, np.full(n, dividend_yield), vol, np.full(n, is_call)
                )
            half = 0.005 + 0.01 * price * (1 + rng.uniform(0, 1, n))
            bid = np.floor((price - half) / 0.01) * 0.01
            columns["bid"] += np.where(bid < 0.01, 0.0, bid).tolist()
            columns["ask"] += np.maximum(np.ceil((price + half) / 0.01) * 0.01, 0.01).tolist()
            columns[schema.STRIKE] += strike.tolist()
            columns[schema.RIGHT] += [schema.CALL if is_call else schema.PUT] * n
            columns[schema.EXPIRY] += [np.datetime64(expiry, "D")] * n
            columns[schema.SETTLEMENT] += [schema.PM] * n
    n = len(columns["bid"])
    snap = np.datetime64(snapshot.replace(tzinfo=None), "ns")
    columns[schema.TICKER] = [f"O:{underlying}{i:06d}" for i in range(n)]
    columns[schema.UNDERLYING] = [underlying] * n
    columns[schema.ROOT] = [underlying] * n
    columns[schema.EXERCISE_STYLE] = ["american" if american else "european"] * n
    columns[schema.SHARES_PER_CONTRACT] = [100.0] * n
    arrays: dict[str, Any] = {name: np.asarray(values) for name, values in columns.items()}
    arrays[schema.EXPIRY] = np.asarray(columns[schema.EXPIRY], dtype="datetime64[D]")
    arrays[schema.UNDERLYING_PRICE] = np.full(n, spot)
    for name in (schema.QUOTE_TIME, schema.UNDERLYING_TIME, schema.SNAPSHOT_TIME):
        arrays[name] = np.full(n, snap)
    return schema.build_chain_dataset(arrays)


# Rounds per stage: interleaved over the three cases, about 20 s in all (call_seconds).
_ROUNDS = 8


def _stages(american: bool, model: DividendModel) -> tuple[list[Callable[[], object]], int]:
    """fit_surface and each of its stages as calls to time (quote preparation, the SVI + eSSVI
    fits, the rest: grids, metrics, checks, the Dataset), and the expiries it publishes."""
    chain = synthetic_chain(american=american)
    config = CleaningConfig(dividend_model=model)
    surface = fit_surface(chain, dividend_model=model)
    published = int((surface.expiry_status == schema.ExpiryStatus.OK).sum())
    # fit_surface prepares the quotes without the volatilities only the quote results need.
    prepared = prepare_smiles(chain, config=config, all_volatilities=False)
    slices = _fit_slices(prepared)
    published_surface = _publish(slices)
    return [
        lambda: fit_surface(chain, dividend_model=model),
        lambda: prepare_smiles(chain, config=config, all_volatilities=False),
        lambda: _publish(_fit_slices(prepared)),
        lambda: _surface_dataset("BENCH", chain, prepared, slices, published_surface),
    ], published


def _premium_accuracy(model: DividendModel, size: int) -> list[str]:
    """Premium error of reduced trees against 801-step trees, in volatility bp (premium error
    over the Black vega), on out-of-the-money options from a week to two years."""
    rng = np.random.default_rng(1)
    spot = 100.0
    # A weekly expiry grid with a rate and a yield per expiry, as in a chain.
    weeks = np.round(np.exp(rng.uniform(0.0, np.log(104.0), size)))
    grid, expiry = np.unique(weeks / 52, return_inverse=True)
    t = grid[expiry]
    rate, q = rng.uniform(0.0, 0.06, grid.size)[expiry], rng.uniform(0.0, 0.04, grid.size)[expiry]
    sigma = rng.uniform(0.12, 0.6, size)
    is_call = rng.random(size) < 0.5
    forward = spot * np.exp((rate - q) * t)
    z = rng.uniform(0.0, 2.5, size) * np.where(is_call, 1.0, -1.0)
    strike = forward * np.exp(z * sigma * np.sqrt(t))
    pv = spot - forward * np.exp(-rate * t)

    def premium(steps: int) -> np.ndarray:
        return early_exercise_premium(
            spot, strike, t, rate, pv, sigma, is_call, dividend_model=model, steps=steps
        )

    reference = premium(801)
    d1 = np.log(forward / strike) / (sigma * np.sqrt(t)) + 0.5 * sigma * np.sqrt(t)
    vega = np.exp(-rate * t) * forward * np.exp(-0.5 * d1**2) / np.sqrt(2 * np.pi) * np.sqrt(t)
    lines = []
    for steps in (51, 101, 201):
        seconds = best_seconds(lambda steps=steps: premium(steps), repeat=3)
        bp = np.abs(premium(steps) - reference) / vega * 1e4
        lines.append(
            f"| {model} | {steps} | {np.median(bp):.3f} | {np.quantile(bp, 0.99):.2f} | "
            f"{bp.max():.2f} | {seconds / size * 1e6:.1f} |"
        )
    return lines


def _make_chain(seed: int, n_underlyings: int, index: int) -> xr.Dataset:
    market = _market(seed, n_underlyings)
    name = market.universe[index].ticker
    return market.chain(name, market.days[UNIVERSE_DAY]).dataset()


_MARKETS: dict[tuple[int, int], Market] = {}


def _market(seed: int, n_underlyings: int) -> Market:
    key = (seed, n_underlyings)
    if key not in _MARKETS:
        _MARKETS[key] = Market(
            SimulationConfig(seed=seed, n_underlyings=n_underlyings, n_days=UNIVERSE_DAY + 1)
        )
    return _MARKETS[key]


def _universe(n_underlyings: int, batch_size: int) -> tuple[float, float, int, int]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # Chains are built on the workers (not timed) and stay there.
        chains = client.map(
            _make_chain, [7] * n_underlyings, [n_underlyings] * n_underlyings,
            range(n_underlyings), pure=False,
        )  # fmt: skip
        wait(chains)
        contracts = sum(client.gather(client.map(lambda c: c.sizes["contract"], chains)))
        # Warm-up on both workers (numba compiles per process), then the timed run.
        fit_surfaces(chains[:4], client=client, batch_size=1, stack=False)
        start = time.perf_counter()
        stacked = fit_surfaces(chains, client=client, batch_size=batch_size)
        elapsed = time.perf_counter() - start
    ok = int((stacked.surface_status <= schema.SurfaceStatus.PARTIAL).sum())
    return elapsed, elapsed / n_underlyings, ok, contracts


def run(quick: bool) -> str:
    """Milliseconds per underlying surface, and the universe's wall time on 2 workers."""
    lines = [
        "## Volatility surfaces (fit_surface end to end; fit_surfaces on 2 workers)\n",
        "| case | total ms, fastest call | median call | preparation ms | SVI + eSSVI fits ms | "
        "grids, metrics, checks, Dataset ms | published expiries |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    cases: tuple[tuple[bool, DividendModel, str], ...] = (
        (False, "cash", "European"),
        (True, "cash", "American, cash dividends (default)"),
        (True, "yield", "American, dividend yield"),
    )
    stages = [_stages(american, model) for american, model, _ in cases]
    times = call_seconds([call for calls, _ in stages for call in calls], _ROUNDS)
    calls = [np.concatenate(rounds) for rounds in times]  # every call of each stage
    for i, (_, _, name) in enumerate(cases):
        total, prep, fits, rest = (float(c.min()) for c in calls[4 * i : 4 * i + 4])
        typical = float(np.median(calls[4 * i]))
        lines.append(
            f"| 12 x 100, {name} | {total * 1e3:.1f} | {typical * 1e3:.1f} | "
            f"{prep * 1e3:.1f} ({prep / total:.0%}) | {fits * 1e3:.1f} ({fits / total:.0%}) | "
            f"{rest * 1e3:.1f} ({rest / total:.0%}) | {stages[i][1]} |"
        )
    n = 40 if quick else 500
    batch = 10 if quick else 25
    elapsed, per, ok, contracts = _universe(n, batch)
    lines += [
        "",
        "| universe | underlyings | contracts | batch size | wall s | ms per underlying | "
        "surfaces published |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| simulator (index, ETFs, stocks), 2 workers | {n} | {contracts:,} | {batch} | "
        f"{elapsed:.1f} | {per * 1e3:.0f} | {ok} |",
        "",
        "CPU time of one thread for the single-underlying rows: the fastest call (the cost "
        "undisturbed; other tenants",
        "only ever add time) and the median call (how loaded the host was) of "
        f"{_ROUNDS} rounds of at least 0.2 s per stage,",
        "every stage of the three cases interleaved round by round (`call_seconds`), each stage "
        "timed on its own",
        "(shares of the total); wall time for the universe, chains built "
        "beforehand on the workers (not timed), numba warmed up.",
        "",
        "| de-Americanization trees | steps | premium error, median vol bp | p99 | max | "
        "us per option (American and European values, one fused tree) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    size = 300 if quick else 1000
    for model in ("yield", "cash"):
        lines += _premium_accuracy(model, size)  # type: ignore[arg-type]
    lines += [
        "",
        f"{size} out-of-the-money options (T 1 week-2 years on a weekly grid, volatility 12-60 %, "
        "r <= 6 %, q <= 4 %) against 801-step trees; the yield model's premium is "
        "Richardson-extrapolated (with a tree of about half the steps), the cash model's "
        "(16 escrowed payments per tree, each expiry its own schedule) is not.",
    ]
    return "\n".join(lines)
