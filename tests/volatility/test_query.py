"""Queries on a surface Dataset: any time x any smile coordinate, fitted or read back from Zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.simulator.market import Market, SimulationConfig
from periscope.volatility.query import SurfaceQuery, surface_implied_volatility
from periscope.volatility.surface import fit_surface


@pytest.fixture(scope="module")
def surface() -> xr.Dataset:
    market = Market(SimulationConfig(seed=5, n_underlyings=20, n_days=30))
    return fit_surface(market.chain("KO", market.days[10]).dataset())


@pytest.fixture(scope="module")
def query(surface: xr.Dataset) -> SurfaceQuery:
    return SurfaceQuery(surface)


def _published(surface: xr.Dataset) -> xr.Dataset:
    return surface.isel(expiry=surface.expiry_status.values == schema.ExpiryStatus.OK)


def test_query__listed_expiry_and_grid_reproduce_the_stored_grid(
    surface: xr.Dataset, query: SurfaceQuery
) -> None:
    published = _published(surface)
    for expiry in published.expiry.values:
        got = query.implied_volatility(expiry=expiry, log_moneyness=schema.LOG_MONEYNESS_GRID)
        expected = published.implied_volatility.sel(expiry=expiry).values
        np.testing.assert_allclose(got, expected, rtol=1e-14)
        assert query.time_to_expiry(expiry) == published.time_to_expiry.sel(expiry=expiry)


def test_query__strike_uses_the_stored_forward(surface: xr.Dataset, query: SurfaceQuery) -> None:
    published = _published(surface)
    expiry = published.expiry.values[2]
    forward = float(published.forward.sel(expiry=expiry))
    strikes = forward * np.exp(schema.LOG_MONEYNESS_GRID[20:37])
    np.testing.assert_allclose(
        query.implied_volatility(expiry=expiry, strike=strikes),
        published.implied_volatility.sel(expiry=expiry).values[20:37],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        query.forward(published.time_to_expiry.values), published.forward.values, rtol=1e-14
    )


def test_query__deltas_are_forward_deltas_of_the_surface_smile(
    surface: xr.Dataset, query: SurfaceQuery
) -> None:
    signed = np.array([-0.10, -0.25, 0.5, 0.25, 0.10])  # the delta grid, signed
    got = query.implied_volatility(tenor_days=np.array([30, 90])[:, None], delta=signed[None, :])
    assert got.shape == (2, 5)
    np.testing.assert_allclose(
        got, surface.delta_implied_volatility.sel(tenor=[30, 90]).values, rtol=1e-10
    )
    # N(d1) at the strike the query returns is the asked call delta (put delta + 1).
    k = query.log_moneyness(90 / 365, delta=signed)
    w = query.total_variance(k, 90 / 365)
    call_delta = norm.cdf((-k + 0.5 * w) / np.sqrt(w))
    np.testing.assert_allclose(call_delta, np.where(signed < 0, 1 + signed, signed), atol=1e-12)
    strikes = query.strike(tenor_days=90, delta=[-0.25, 0.25])
    assert strikes[0] < query.forward(90 / 365) < strikes[1]


def test_query__tenor_years_and_unlisted_dates(surface: xr.Dataset, query: SurfaceQuery) -> None:
    np.testing.assert_allclose(
        query.implied_volatility(tenor_days=[45, 200], log_moneyness=0.0),
        query.implied_volatility(years=np.array([45, 200]) / 365, log_moneyness=0.0),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        query.implied_volatility(tenor_days=surface.tenor.values, log_moneyness=0.0),
        surface.constant_maturity_iv.values,
        rtol=1e-12,
    )
    # A date between listed expiries: the time from the snapshot to 16:00 New York that day.
    snapshot = surface.snapshot_time.values
    day = (snapshot + np.timedelta64(20, "D")).astype("datetime64[D]")
    settle = np.datetime64(schema.settlement_instant(day.item(), schema.PM).replace(tzinfo=None))
    expected = (settle - snapshot) / np.timedelta64(1, "s") / (365 * 86400)
    assert float(query.time_to_expiry(day)) == pytest.approx(expected, rel=1e-12)
    assert float(query.time_to_expiry(str(day))) == pytest.approx(expected, rel=1e-12)
    # Total variance never decreases in time at fixed log-moneyness (calendar-free surface).
    t = np.linspace(1 / 365, 2.0, 400)
    for k in (-0.5, -0.1, 0.0, 0.1, 0.4):
        assert (np.diff(query.total_variance(k, t)) >= -1e-15).all()


def test_query__zarr_round_trip_answers_the_same(
    surface: xr.Dataset, query: SurfaceQuery, tmp_path: Path
) -> None:
    path = tmp_path / "surfaces.zarr"
    schema.stack_surfaces([surface]).to_zarr(path, consolidated=False)
    back = xr.open_zarr(path, consolidated=False).load()
    schema.validate_surface(back)
    one = back.sel(underlying=surface.underlying.item())
    got = surface_implied_volatility(one, tenor_days=[30, 60], delta=[-0.25, 0.25])
    np.testing.assert_array_equal(
        got, query.implied_volatility(tenor_days=[30, 60], delta=[-0.25, 0.25])
    )


def test_query__rejects_stacks_empty_surfaces_and_ambiguous_arguments(
    surface: xr.Dataset, query: SurfaceQuery
) -> None:
    with pytest.raises(InvalidInputError, match="select one underlying"):
        SurfaceQuery(schema.stack_surfaces([surface]))
    with pytest.raises(InvalidInputError, match="publishes no expiry"):
        SurfaceQuery(schema.empty_surface("XYZ"))
    with pytest.raises(InvalidInputError, match="exactly one of expiry"):
        query.implied_volatility(tenor_days=30, years=0.1, log_moneyness=0.0)
    with pytest.raises(InvalidInputError, match="exactly one of strike"):
        query.implied_volatility(tenor_days=30)
    with pytest.raises(InvalidInputError, match="deltas must lie"):
        query.implied_volatility(tenor_days=30, delta=[0.0, 1.2])
