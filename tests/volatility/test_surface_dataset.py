"""The surface Dataset's fast assembly against the public constructions it replaces: the Dataset
itself (built without ``xr.Dataset.__init__``), the tenor metrics computed together, and the
compiled calendar check."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xarray as xr
from scipy.special import ndtr

from periscope import schema
from periscope.simulator.market import Market, SimulationConfig
from periscope.volatility import metrics
from periscope.volatility.essvi import EssviSurface
from periscope.volatility.surface import (
    CLEANING_REASONS,
    _arbitrage_checks,
    _arbitrage_checks_by_slice,
    fit_surface,
)
from periscope.volatility.svi import SviParams


@pytest.fixture(scope="module")
def surfaces() -> list[xr.Dataset]:
    market = Market(SimulationConfig(seed=5, n_underlyings=4, n_days=2))
    return [fit_surface(market.chain(u.ticker, market.days[1]).dataset()) for u in market.universe]


def _public(
    underlying: str,
    expiry: npt.ArrayLike,
    values: dict[str, Any],
    cleaning_reasons: tuple[str, ...],
    attrs: dict[str, Any] | None,
) -> xr.Dataset:
    """The surface layout through xr.Dataset's own constructor (merge, indexes, checks)."""
    expiries = np.asarray(expiry, dtype="datetime64[D]").astype("datetime64[ns]")
    sizes = {
        schema.EXPIRY: expiries.size,
        schema.LOG_MONEYNESS: schema.LOG_MONEYNESS_GRID.size,
        schema.TENOR: len(schema.TENOR_DAYS),
        schema.DELTA: len(schema.DELTA_GRID),
        schema.SVI_PARAMETER: len(schema.SVI_PARAMETER_NAMES),
        schema.ESSVI_PARAMETER: len(schema.ESSVI_PARAMETER_NAMES),
        schema.CLEANING_REASON: len(cleaning_reasons),
    }
    data = {}
    for name, (dims, dtype, fill) in schema.SURFACE_LAYOUT.items():
        shape = tuple(sizes[d] for d in dims)
        array = np.asarray(values[name]).astype(dtype) if name in values else None
        units = schema.SURFACE_UNITS.get(name)
        variable_attrs: dict[str, Any] = {"units": units} if units else {}
        for status_name, enum_type in (
            (schema.EXPIRY_STATUS, schema.ExpiryStatus),
            (schema.SURFACE_STATUS, schema.SurfaceStatus),
        ):
            if name == status_name:
                variable_attrs["flag_values"] = [int(member) for member in enum_type]
                variable_attrs["flag_meanings"] = " ".join(m.name.lower() for m in enum_type)
        data[name] = (dims, np.full(shape, fill, dtype=dtype) if array is None else array,
                      variable_attrs)  # fmt: skip
    units = schema.SURFACE_UNITS
    coords = {
        schema.UNDERLYING: ((), np.asarray(underlying, dtype=object)),
        schema.EXPIRY: expiries,
        schema.LOG_MONEYNESS: (
            schema.LOG_MONEYNESS, schema.LOG_MONEYNESS_GRID, {"units": units[schema.LOG_MONEYNESS]}
        ),
        schema.TENOR: (
            schema.TENOR, np.array(schema.TENOR_DAYS, dtype=np.int64),
            {"units": units[schema.TENOR]},
        ),
        schema.TENOR_YEARS: (
            schema.TENOR, np.array(schema.TENOR_DAYS) / 365.0, {"units": units[schema.TENOR_YEARS]}
        ),
        schema.DELTA: (schema.DELTA, np.array(schema.DELTA_GRID), {"units": units[schema.DELTA]}),
        schema.DELTA_LABEL: (schema.DELTA, np.array(schema.DELTA_LABELS, dtype=object)),
        schema.SVI_PARAMETER: np.array(schema.SVI_PARAMETER_NAMES, dtype=object),
        schema.ESSVI_PARAMETER: np.array(schema.ESSVI_PARAMETER_NAMES, dtype=object),
        schema.CLEANING_REASON: np.array(cleaning_reasons, dtype=object),
    }  # fmt: skip
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _assert_same(got: xr.Dataset, expected: xr.Dataset) -> None:
    xr.testing.assert_identical(got, expected)
    assert list(got.variables) == list(expected.variables)
    assert list(got.coords) == list(expected.coords)
    assert list(got.sizes.items()) == list(expected.sizes.items())
    assert got.attrs == expected.attrs
    assert got.encoding == expected.encoding
    assert list(got.xindexes) == list(expected.xindexes)
    for name, index in got.xindexes.items():
        other = expected.xindexes[name]
        assert type(index) is type(other)
        assert index.equals(other)
        assert type(index.to_pandas_index()) is type(other.to_pandas_index())
        assert index.to_pandas_index().name == other.to_pandas_index().name
    for name, variable in got.variables.items():
        other = expected.variables[name]
        assert type(variable) is type(other), name
        assert variable.dtype == other.dtype, name
        assert variable.attrs == other.attrs, name
        assert variable.encoding == other.encoding, name
        if variable.dtype == object:
            values = variable.values.ravel().tolist()
            assert all(isinstance(x, str) for x in values), name
            assert values == other.values.ravel().tolist(), name


def test_build_surface_dataset__identical_to_the_public_construction(
    surfaces: list[xr.Dataset],
) -> None:
    cases: list[tuple[str, Any, dict[str, Any], tuple[str, ...], dict[str, Any] | None]] = []
    for surface in surfaces:
        values = {name: surface[name].values for name in schema.SURFACE_LAYOUT}
        name = str(surface[schema.UNDERLYING].item())
        cases.append((name, surface.expiry.values, values, CLEANING_REASONS, dict(surface.attrs)))
    expiry = surfaces[0].expiry.values
    cases += [
        ("FEW", expiry[:2], {}, ("zero_bid", "other_reason"), None),
        ("NONE", np.array([], dtype="datetime64[D]"), {}, (), {}),
        ("ONE", expiry[:1], {schema.SPOT: 101.5, schema.CONFIDENCE: 0.5}, (), {"source": "x"}),
    ]
    for underlying, expiries, values, reasons, attrs in cases:
        got = schema.build_surface_dataset(
            underlying, expiries, values, cleaning_reasons=reasons, attrs=attrs
        )
        expected = _public(underlying, expiries, values, reasons, attrs)
        _assert_same(got, expected)
        schema.validate_surface(got)
        # ... and it behaves as the public one does.
        _assert_same(got.copy(deep=True), expected.copy(deep=True))
        _assert_same(got.isel(expiry=slice(0, 1)), expected.isel(expiry=slice(0, 1)))
        _assert_same(got.sel(delta=0.25), expected.sel(delta=0.25))
        _assert_same(got.assign(extra=got.spot * 2), expected.assign(extra=expected.spot * 2))
    stacked = schema.stack_surfaces(surfaces)
    public = schema.stack_surfaces(
        [
            _public(str(s[schema.UNDERLYING].item()), s.expiry.values,
                    {n: s[n].values for n in schema.SURFACE_LAYOUT}, CLEANING_REASONS,
                    dict(s.attrs))
            for s in surfaces
        ]
    )  # fmt: skip
    _assert_same(stacked, public)


def test_build_surface_dataset__variables_are_each_surfaces_own(surfaces: list[xr.Dataset]) -> None:
    expiry = surfaces[0].expiry.values[:2]
    one = schema.build_surface_dataset("ONE", expiry, {})
    two = schema.build_surface_dataset("TWO", expiry, {})
    one.expiry_status.attrs["flag_values"].append(99)
    one.tenor.attrs["units"] = "changed"
    one.attrs["note"] = "changed"
    assert two.expiry_status.attrs["flag_values"] == [int(m) for m in schema.ExpiryStatus]
    assert two.tenor.attrs["units"] == schema.SURFACE_UNITS[schema.TENOR]
    assert "note" not in two.attrs
    assert two.underlying.item() == "TWO"


class _Plain:
    """A surface with only ``total_variance`` (the metrics' generic path)."""

    def __init__(self, surface: EssviSurface) -> None:
        self.surface = surface

    def total_variance(self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike) -> Any:
        return self.surface.total_variance(log_moneyness, time_to_expiry)


def test_tenor_metrics__the_same_numbers_as_each_metric(surfaces: list[xr.Dataset]) -> None:
    tenor = np.asarray(schema.TENOR_DAYS, dtype=np.float64) / 365.0
    delta = np.asarray(schema.DELTA_GRID)
    for dataset in surfaces:
        ok = dataset.expiry_status.values == schema.ExpiryStatus.OK
        theta, rho, psi = dataset.essvi_parameters.values[ok].T
        essvi = EssviSurface.from_arrays(dataset.time_to_expiry.values[ok], theta, rho, psi)
        for surface in (essvi, _Plain(essvi)):
            got = metrics.tenor_metrics(surface, tenor, delta)
            sigma, k = metrics.delta_implied_volatility(surface, delta[None, :], tenor[:, None])
            expected = (
                metrics.atm_implied_volatility(surface, tenor),
                metrics.atm_skew(surface, tenor),
                sigma,
                k,
            )
            for part, reference in zip(got, expected, strict=True):
                assert part.shape == reference.shape
                np.testing.assert_array_equal(part, reference)
            assert np.isfinite(got.delta_implied_volatility).all()
            # The published surface's own numbers.
            np.testing.assert_array_equal(got.atm_implied_volatility, dataset.constant_maturity_iv)
            np.testing.assert_array_equal(got.atm_skew, dataset.atm_skew)
            np.testing.assert_array_equal(got.delta_log_moneyness, dataset.delta_log_moneyness)
            # The grid of implied volatilities, as the surface's own method gives it.
            times = dataset.time_to_expiry.values[ok]
            grid = metrics.implied_volatility_grid(surface, schema.LOG_MONEYNESS_GRID, times)
            own = essvi.implied_volatility(schema.LOG_MONEYNESS_GRID[None, :], times[:, None])
            np.testing.assert_array_equal(grid, own)
            np.testing.assert_array_equal(grid, dataset.implied_volatility.values[ok])
            # The ATM column of the published grid.
            atm = metrics.atm_implied_volatility(surface, dataset.time_to_expiry.values[ok])
            np.testing.assert_array_equal(atm, dataset.atm_implied_volatility.values[ok])


def test_log_moneyness_at_delta__scalars_give_a_zero_dimensional_array() -> None:
    essvi = EssviSurface.from_arrays([0.5, 1.0], [0.02, 0.045], [-0.6, -0.6], [0.2, 0.3])
    k = metrics.log_moneyness_at_delta(essvi, 0.25, 0.75)
    assert k.shape == ()
    sigma, again = metrics.delta_implied_volatility(essvi, 0.25, 0.75)
    assert sigma.shape == ()
    assert again == k
    deltas, times = np.array([0.25, 0.5]), np.array([[0.5], [1.0]])
    rows = metrics.log_moneyness_at_delta(essvi, deltas, times)
    assert rows.shape == (2, 2)
    for r, c in np.ndindex(2, 2):
        assert rows[r, c] == metrics.log_moneyness_at_delta(essvi, deltas[c], times[r, 0])
    w = essvi.total_variance(k, 0.75)
    assert abs(float(ndtr((-k + 0.5 * w) / np.sqrt(w))) - 0.25) < 1e-10


def test_arbitrage_checks__compiled_calendar_matches_slice_by_slice() -> None:
    rng = np.random.default_rng(3)
    crossed = 0
    for _ in range(60):
        raws = [
            SviParams(
                rng.uniform(-0.02, 0.05), rng.uniform(0.01, 0.6), rng.uniform(-0.95, 0.95),
                rng.uniform(-0.3, 0.3), rng.uniform(0.001, 0.5),
            )
            for _ in range(int(rng.integers(2, 5)))
        ]  # fmt: skip
        got = _arbitrage_checks(raws)
        expected = _arbitrage_checks_by_slice(raws)
        np.testing.assert_array_equal(got[2], expected[2])
        np.testing.assert_array_equal(got[0], expected[0])
        crossed += int((got[2] > 0).sum())
    assert crossed > 20  # the random slices cross often: the counts were checked, not just zeros
