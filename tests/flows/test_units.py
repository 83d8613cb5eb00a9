"""The pure parts of the flows: retry policy, batching, history rows, IV rank, deployments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from flows.daily import batch_size_for, batches_of
from flows.history import history_rows, rank_against_history, realized_volatility
from flows.retry import retry_on_unavailable
from flows.source import market_size, resolve_universe, snapshot_clock
from periscope import schema, storage
from periscope.errors import MarketDataRejected, MarketDataUnavailable
from periscope.settings import Settings


class _State:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def result(self) -> None:
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (MarketDataUnavailable("502 from the vendor", status=502), True),
        (MarketDataRejected("bad key", status=401), False),
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_retry_on_unavailable__only_transient_market_data_errors(
    error: BaseException | None, retry: bool
) -> None:
    assert retry_on_unavailable(None, None, _State(error)) is retry


def test_batches_of__consecutive_and_complete() -> None:
    names = [f"N{i}" for i in range(7)]
    assert batches_of(names, 3) == [["N0", "N1", "N2"], ["N3", "N4", "N5"], ["N6"]]
    assert batch_size_for(names[:2], 25) == 1
    assert batch_size_for([f"N{i}" for i in range(8)], 25) == 1
    assert batch_size_for([f"N{i}" for i in range(20)], 25) == 3
    assert batch_size_for([f"N{i}" for i in range(8)], 25, min_batches=4) == 2
    assert batch_size_for([f"N{i}" for i in range(500)], 25) == 25


def test_universe__settings_and_simulated_market_size() -> None:
    settings = Settings(pipeline_universe_size=3, massive_api_key=None)
    assert resolve_universe(settings) == ["I:SPX", "SPY", "QQQ"]
    assert resolve_universe(settings, ["AAPL", "AAPL", "KO"]) == ["AAPL", "KO"]
    assert market_size(["SPY"]) == 2
    assert market_size(["SPX", "KO"]) == 20
    assert market_size(["SYN0005"]) == 25


def test_snapshot_clock__now_during_the_session_else_before_the_close() -> None:
    day = dt.date(2026, 11, 24)
    ny = schema.NEW_YORK
    at = dt.datetime(2026, 11, 24, 11, 15, 30, tzinfo=ny)
    assert snapshot_clock(day, at) == dt.time(11, 15, 30)
    assert snapshot_clock(day, dt.datetime(2026, 11, 24, 8, 0, tzinfo=ny)) == dt.time(9, 31)
    assert snapshot_clock(day, dt.datetime(2026, 11, 24, 18, 0, tzinfo=ny)) == dt.time(15, 59)
    assert snapshot_clock(day, dt.datetime(2026, 11, 25, 10, 0, tzinfo=ny)) == dt.time(15, 59)


def test_realized_volatility__of_a_constant_volatility_path() -> None:
    rng = np.random.default_rng(3)
    returns = 0.3 / np.sqrt(252) * rng.standard_normal(5000)
    closes = 100 * np.exp(np.cumsum(returns))
    assert realized_volatility(closes, window=4999) == pytest.approx(0.3, rel=0.03)
    # The last 20 returns exactly.
    expected = np.std(np.diff(np.log(closes[-21:])), ddof=1) * np.sqrt(252)
    assert realized_volatility(closes) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(realized_volatility(closes[:10]))


def _metrics(names: list[str], iv30: list[float]) -> xr.Dataset:
    surfaces = [
        schema.build_surface_dataset(
            name,
            np.array([], dtype="datetime64[D]"),
            {
                schema.CONSTANT_MATURITY_IV: np.full(len(schema.TENOR_DAYS), iv),
                schema.SPOT: 100.0,
            },
        )
        for name, iv in zip(names, iv30, strict=True)
    ]
    return schema.stack_surfaces(surfaces)


def test_history_rows__one_day_per_underlying() -> None:
    rows = history_rows(_metrics(["AAA", "BBB"], [0.2, 0.4]), dt.date(2026, 3, 2), {"AAA": 0.18})
    assert dict(rows.sizes) == {"time": 1, "underlying": 2}
    assert rows["iv_30d"].values.tolist() == [[0.2, 0.4]]
    assert rows["iv_365d"].values.tolist() == [[0.2, 0.4]]
    assert rows["rv_20d"].values[0, 0] == 0.18
    assert np.isnan(rows["rv_20d"].values[0, 1])
    assert rows["time"].values[0] == np.datetime64("2026-03-02")


def test_rank_against_history__rank_and_percentile_over_the_past_year(tmp_path: Path) -> None:
    root = str(tmp_path)
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=i) for i in range(40, 0, -1)]  # 40 past days
    past = np.linspace(0.10, 0.49, 40)  # AAA's IV30 rose from 10 % to 49 %
    history = xr.Dataset(
        {"iv_30d": (("time", "underlying"), past[:, None])},
        coords={
            "time": np.array(days, dtype="datetime64[ns]"),
            "underlying": np.array(["AAA"], dtype=object),
        },
    )
    storage.append_history(root, history)
    ranked = rank_against_history(root, _metrics(["AAA", "NEW"], [0.30, 0.3]))
    # (0.30 - 0.10) / (0.49 - 0.10); 20 of the 40 past values (0.10 ... 0.29) lie below.
    assert ranked["iv30_rank"].values[0] == pytest.approx(0.2 / 0.39)
    assert ranked["iv30_percentile"].values[0] == pytest.approx(20 / 40)
    assert np.isnan(ranked["iv30_rank"].values[1])  # no history for a new name


def test_rank_against_history__without_history_is_nan(tmp_path: Path) -> None:
    ranked = rank_against_history(str(tmp_path), _metrics(["AAA"], [0.3]))
    assert np.isnan(ranked["iv30_percentile"].values).all()


def test_deployments__cron_schedules_in_new_york() -> None:
    from flows.deployments import deployments

    made = {d.name: d for d in deployments(Settings())}
    assert set(made) == {"intraday", "end-of-day", "nightly-backfill"}
    crons = {
        name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules]
        for name, d in made.items()
    }
    ny = "America/New_York"
    assert crons["intraday"] == [
        ("30,45 9 * * 1-5", ny),
        ("*/15 10-15 * * 1-5", ny),
        ("0 16 * * 1-5", ny),
    ]
    assert crons["end-of-day"] == [("30 16 * * 1-5", ny)]
    assert crons["nightly-backfill"] == [("0 2 * * 2-6", ny)]
    assert made["intraday"].parameters == {"kind": "intraday"}
    assert SimpleNamespace(**made["end-of-day"].parameters).kind == "end-of-day"


def test_sensitivity_ranges__float32_grid_and_chains_written_in_place_across_batches(
    tmp_path: Path, synthetic_data: tuple[xr.Dataset, xr.Dataset]
) -> None:
    from flows.risk import GridSpec, grid_range, lay_out_groups, plan_ranges
    from flows.surfaces import FitResult

    surface, chain = synthetic_data
    n = chain.sizes["contract"]
    # A second name whose fit failed (no spot): its contracts stay in the grid, as NaN rows.
    failed_chain = chain.assign_coords(
        underlying=("contract", np.full(n, "FAIL", dtype=object)),
        ticker=("contract", np.array([f"F{t}" for t in chain["ticker"].values], dtype=object)),
    )
    failed = schema.empty_surface("FAIL", status=schema.SurfaceStatus.FAILED, message="boom")
    root, run_id = str(tmp_path), storage.new_run_id()
    # Two staged batches (the failed name first); ranges of 50 contracts straddle them.
    fits = []
    for index, (part, surfaces) in enumerate(((failed_chain, [failed]), (chain, [surface]))):
        chain_uri = storage.write_staged(root, run_id, f"chains-{index:05d}", part)
        uri = storage.write_staged(
            root, run_id, f"surfaces-{index:05d}", schema.stack_surfaces(surfaces)
        )
        fits.append(FitResult(index, uri, chain_uri, [{"contracts": n}]))
    ranges = plan_ranges(fits[::-1], 50)  # batch order, whatever the order given
    assert [(r.start, r.stop) for r in ranges] == [
        (s, min(s + 50, 2 * n)) for s in range(0, 2 * n, 50)
    ]
    assert any(len(r.pieces) == 2 for r in ranges)
    spec = GridSpec((-0.05, 0.0, 0.05), (0.0, 0.01), (0.0, 1.0))

    import flows.risk

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flows.risk, "RISK_CHUNK", 25)
        patch.setattr(flows.risk, "RANGE_CONTRACTS", 50)
        arrays = lay_out_groups(ranges, root, run_id, spec)
        results = [grid_range(r, root=root, run_id=run_id, spec=spec) for r in ranges[::-1]]
    for group, count in arrays.items():
        storage.finish_group(root, run_id, group, count)
    storage.publish(root, run_id)

    assert sum(r.unpriced for r in results) == n
    both = xr.concat([failed_chain, chain], dim="contract", data_vars="all", coords="minimal")
    chains = storage.open_latest(root, "chains").load()
    xr.testing.assert_equal(chains, both)
    grid = storage.open_latest(root, "risk")
    assert list(grid["ticker"].values) == list(both["ticker"].values)
    assert grid["price"].dtype == np.float32
    assert grid["price"].encoding["chunks"] == (25, 3, 2, 2)  # every scenario in a chunk
    price = grid["price"].sel(spot_shift=0.0, vol_shift=0.0, horizon=0.0).values
    assert np.isnan(price[:n]).all()
    # XYZ's contracts at the origin: the model price they were quoted at (zero-width market).
    mid = chain["bid"].values
    np.testing.assert_allclose(price[n:], mid, rtol=2e-3, atol=2e-3)


def test_stage_clock_and_summary__timings_in_the_run_summary() -> None:
    from flows.daily import StageClock, summary_markdown
    from flows.publish import PublishedRun

    clock = StageClock()
    first = clock.lap("ingest")
    second = clock.lap("publish")
    assert list(clock.seconds) == ["ingest", "publish"]
    assert min(first, second) >= 0
    assert clock.total >= first + second - 1e-3
    run = PublishedRun("20260102T213000Z-abcdef", "/d/runs/x.zarr", "/d", ("chains",), 1, 78)
    text = summary_markdown(run, [{"status": "ok"}], "end-of-day", {"ingest": 1.25})
    assert "| stage | seconds |" in text
    assert "| ingest | 1.2 |" in text
    assert "/d/runs/x.zarr" in text


def test_fetch_rate_curve__the_simulated_treasury_curve_or_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from flows.ingest import fetch_rate_curve
    from flows.source import last_weekday, market_source

    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    monkeypatch.delenv("PERISCOPE_MASSIVE_API_KEY", raising=False)
    settings = Settings(simulator_days=5)
    day = last_weekday()
    with market_source(settings, ["SPY"]) as (source, simulator):
        assert simulator is not None
        curve = fetch_rate_curve(source, day)
        rejected = fetch_rate_curve(replace(source, api_key="wrong-key"), day)
    assert curve is not None
    tenors = np.array([0.25, 0.5, 1.0, 2.0])
    truth = simulator.market.rate_curve(day).zero_rate(tenors)
    # Par yields are published to the basis point; bootstrapped back to zero rates, they
    # match the simulator's true curve within a couple of basis points.
    np.testing.assert_allclose(curve.zero_rate(tenors), truth, atol=2e-4)
    assert rejected is None  # a 401 degrades the run to parity rates; it does not stop it
