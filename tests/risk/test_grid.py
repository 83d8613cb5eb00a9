"""Sensitivity grids: exact BSM at the origin, Greeks against finite differences across the grid,
smile dynamics, horizons and the surface-based chain grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.pricing import black_scholes_greeks, black_scholes_price
from periscope.risk import (
    DEFAULT_SPOT_SHIFTS,
    chain_sensitivity_grid,
    sensitivity_grid,
    surface_volatility,
)

SPOT = 100.0
STRIKES = np.array([80.0, 95.0, 100.0, 105.0, 125.0])
TIMES = np.array([0.08, 0.25, 0.5, 1.0, 2.0])
CALLS = np.array([False, False, True, True, True])
RATE, CARRY_YIELD = 0.04, 0.015


def flat(vol: float):
    return lambda k, t: np.full(np.shape(k), vol)


def skew(k: np.ndarray, t: np.ndarray) -> np.ndarray:
    # A put skew with a little curvature, flatter at longer expiries.
    return 0.22 - 0.25 * k / np.sqrt(1 + t) + 0.3 * k**2


def test_sensitivity_grid__origin_is_black_scholes() -> None:
    grid = sensitivity_grid(SPOT, STRIKES, TIMES, CALLS, RATE, CARRY_YIELD, skew)
    at = grid.sel(spot_shift=0.0, vol_shift=0.0, horizon=0.0)
    k = np.log(STRIKES / (SPOT * np.exp((RATE - CARRY_YIELD) * TIMES)))
    expected = black_scholes_greeks(SPOT, STRIKES, TIMES, RATE, CARRY_YIELD, skew(k, TIMES), CALLS)
    for name in ("price", "delta", "gamma", "vega", "theta"):
        np.testing.assert_allclose(at[name].values, getattr(expected, name), rtol=1e-12)
    np.testing.assert_allclose(at["pnl"].values, 0.0, atol=1e-12)


def test_sensitivity_grid__shifted_cell_is_black_scholes_at_shifted_inputs() -> None:
    grid = sensitivity_grid(
        SPOT, STRIKES, TIMES, CALLS, RATE, CARRY_YIELD, skew, sticky="moneyness"
    )
    cell = grid.sel(spot_shift=0.05, vol_shift=-0.05, horizon=7.0)
    spot = SPOT * 1.05
    t = TIMES - 7 / 365
    # Sticky moneyness reads the smile at the shifted forward, on the contract's own expiry.
    k = np.log(STRIKES / (spot * np.exp((RATE - CARRY_YIELD) * TIMES)))
    vol = skew(k, TIMES) - 0.05
    price = black_scholes_price(spot, STRIKES, t, RATE, CARRY_YIELD, vol, CALLS)
    np.testing.assert_allclose(cell["price"].values, price, rtol=1e-12)


def test_sensitivity_grid__greeks_match_finite_differences_of_the_grid() -> None:
    h = 1e-4
    grid = sensitivity_grid(
        SPOT,
        STRIKES,
        TIMES,
        CALLS,
        RATE,
        CARRY_YIELD,
        flat(0.3),
        spot_shifts=[-h, 0.0, h],
        vol_shifts=[-h, 0.0, h],
        horizon_days=[0.0, 0.01],
        sticky="strike",
    )
    price = grid["price"]
    mid = grid.sel(spot_shift=0.0, vol_shift=0.0, horizon=0.0)
    up, down = price.sel(spot_shift=h), price.sel(spot_shift=-h)
    delta = (up - down).sel(vol_shift=0.0, horizon=0.0) / (2 * h * SPOT)
    gamma = (up + down - 2 * price.sel(spot_shift=0.0)).sel(vol_shift=0.0, horizon=0.0) / (
        (h * SPOT) ** 2
    )
    vega = (price.sel(vol_shift=h) - price.sel(vol_shift=-h)).sel(spot_shift=0.0, horizon=0.0) / (
        2 * h
    )
    theta = (price.sel(horizon=0.01) - price.sel(horizon=0.0)).sel(
        spot_shift=0.0, vol_shift=0.0
    ) / (0.01 / 365)
    np.testing.assert_allclose(delta.values, mid["delta"].values, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gamma.values, mid["gamma"].values, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(vega.values, mid["vega"].values, rtol=1e-6)
    np.testing.assert_allclose(theta.values, mid["theta"].values, rtol=1e-3)


def test_sensitivity_grid__sticky_strike_keeps_vols_sticky_moneyness_moves_them() -> None:
    kw = {"spot_shifts": [-0.1, 0.0, 0.1], "vol_shifts": [0.0], "horizon_days": [0.0]}
    by_strike = sensitivity_grid(
        SPOT, STRIKES, TIMES, CALLS, RATE, CARRY_YIELD, skew, sticky="strike", **kw
    )
    by_moneyness = sensitivity_grid(
        SPOT, STRIKES, TIMES, CALLS, RATE, CARRY_YIELD, skew, sticky="moneyness", **kw
    )
    strike_vols = by_strike["volatility"].values
    np.testing.assert_allclose(strike_vols, strike_vols[:, [1]].repeat(3, axis=1))
    moneyness_vols = by_moneyness["volatility"].values
    np.testing.assert_allclose(moneyness_vols[:, 1], strike_vols[:, 1])
    # Under a put skew a rally moves a fixed strike down the smile: its volatility rises.
    assert np.all(moneyness_vols[:, 2] > moneyness_vols[:, 1])
    assert np.all(moneyness_vols[:, 0] < moneyness_vols[:, 1])


def test_sensitivity_grid__contracts_expired_before_the_horizon_are_nan() -> None:
    grid = sensitivity_grid(
        SPOT, [100.0, 100.0], [3 / 365, 0.5], [True, True], RATE, 0.0, flat(0.2),
        horizon_days=[0.0, 1.0, 7.0],
    )  # fmt: skip
    price = grid["price"].sel(spot_shift=0.0, vol_shift=0.0)
    assert np.isfinite(price.values[0, :2]).all()
    assert np.isnan(price.values[0, 2])
    assert np.isfinite(price.values[1]).all()
    assert grid.sizes == {"contract": 2, "spot_shift": 7, "vol_shift": 3, "horizon": 3}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sticky": "delta"}, "sticky"),
        ({"spot_shifts": []}, "at least one"),
        ({"spot_shifts": [-1.0]}, "spot shifts"),
        ({"horizon_days": [-1.0]}, "horizons"),
    ],
)
def test_sensitivity_grid__bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        sensitivity_grid(SPOT, STRIKES, TIMES, CALLS, RATE, 0.0, flat(0.2), **kwargs)


def test_sensitivity_grid__shapes_must_agree() -> None:
    with pytest.raises(InvalidInputError, match="time_to_expiry"):
        sensitivity_grid(SPOT, STRIKES, TIMES[:2], CALLS, RATE, 0.0, flat(0.2))


def _surface(times: np.ndarray, vols: np.ndarray, *, spot: float = SPOT) -> xr.Dataset:
    expiry = np.datetime64("2026-01-02") + (times * 365).astype("timedelta64[D]")
    iv = np.repeat(vols[:, None], schema.LOG_MONEYNESS_GRID.size, axis=1)
    iv = iv * (1 - 0.2 * schema.LOG_MONEYNESS_GRID[None, :])  # a mild put skew
    return schema.build_surface_dataset(
        "XYZ",
        expiry,
        {
            schema.TIME_TO_EXPIRY: times,
            schema.FORWARD: spot * np.exp((RATE - CARRY_YIELD) * times),
            schema.DISCOUNT_FACTOR: np.exp(-RATE * times),
            schema.IMPLIED_VOLATILITY: iv,
            schema.SPOT: spot,
        },
    )


def test_surface_volatility__reads_grid_points_and_interpolates_total_variance() -> None:
    times = np.array([0.25, 1.0])
    vol = surface_volatility(_surface(times, np.array([0.2, 0.3])))
    k = np.array([0.0, 0.1, 0.0])
    t = np.array([0.25, 0.25, 1.0])
    np.testing.assert_allclose(vol(k, t), [0.2, 0.2 * (1 - 0.02), 0.3], rtol=1e-12)
    # Halfway in time: linear in total variance.
    w = 0.5 * (0.2**2 * 0.25 + 0.3**2 * 1.0)
    np.testing.assert_allclose(vol(np.array([0.0]), np.array([0.625])), np.sqrt(w / 0.625))
    # Beyond the last expiry the volatility is held flat.
    np.testing.assert_allclose(vol(np.array([0.0]), np.array([3.0])), 0.3)


def test_chain_sensitivity_grid__uses_each_expiry_forward_and_discount() -> None:
    times = np.array([0.25, 1.0])
    surface = _surface(times, np.array([0.2, 0.3]))
    expiry = surface[schema.EXPIRY].values
    n = 4
    columns = {
        schema.TICKER: np.array([f"O:XYZ{i}" for i in range(n)], dtype=object),
        schema.UNDERLYING: np.full(n, "XYZ", dtype=object),
        schema.ROOT: np.full(n, "XYZ", dtype=object),
        schema.EXPIRY: np.array([expiry[0], expiry[0], expiry[1], expiry[1]]),
        schema.SETTLEMENT: np.full(n, "PM", dtype=object),
        schema.STRIKE: np.array([95.0, 105.0, 90.0, 110.0]),
        schema.RIGHT: np.array(["put", "call", "put", "call"], dtype=object),
        schema.EXERCISE_STYLE: np.full(n, "european", dtype=object),
        schema.SHARES_PER_CONTRACT: np.full(n, 100.0),
    }
    chain = schema.build_chain_dataset(columns)
    grid = chain_sensitivity_grid(chain, surface, spot_shifts=[0.0], vol_shifts=[0.0])
    t = times[[0, 0, 1, 1]]
    k = np.log(columns[schema.STRIKE] / (SPOT * np.exp((RATE - CARRY_YIELD) * t)))
    vol = np.where(t == 0.25, 0.2, 0.3) * (1 - 0.2 * k)
    is_call = columns[schema.RIGHT] == "call"
    expected = black_scholes_price(SPOT, columns[schema.STRIKE], t, RATE, CARRY_YIELD, vol, is_call)
    price = grid["price"].sel(spot_shift=0.0, vol_shift=0.0, horizon=0.0).values
    # Linear interpolation of w on the k grid (0.01 steps near the money) is within 1e-4 vol.
    np.testing.assert_allclose(price, expected, rtol=2e-3)
    assert list(grid[schema.TICKER].values) == list(columns[schema.TICKER])


def test_chain_sensitivity_grid__other_underlying_raises() -> None:
    surface = _surface(np.array([0.5]), np.array([0.2]))
    chain = schema.empty_chain()
    chain = chain.assign_coords(underlying=chain[schema.UNDERLYING])
    other = surface.assign_coords({schema.UNDERLYING: np.asarray("ABC", dtype=object)})
    columns = {name: [] for name in schema.COORDS}
    columns[schema.EXPIRY] = np.array([], dtype="datetime64[D]")
    empty = schema.build_chain_dataset(columns)
    grid = chain_sensitivity_grid(empty, other)
    assert grid.sizes["contract"] == 0
    one = schema.build_chain_dataset(
        {
            schema.TICKER: np.array(["O:X"], dtype=object),
            schema.UNDERLYING: np.array(["XYZ"], dtype=object),
            schema.ROOT: np.array(["XYZ"], dtype=object),
            schema.EXPIRY: surface[schema.EXPIRY].values[:1],
            schema.SETTLEMENT: np.array(["PM"], dtype=object),
            schema.STRIKE: np.array([100.0]),
            schema.RIGHT: np.array(["call"], dtype=object),
            schema.EXERCISE_STYLE: np.array(["european"], dtype=object),
            schema.SHARES_PER_CONTRACT: np.array([100.0]),
        }
    )
    with pytest.raises(InvalidInputError, match="surface of ABC"):
        chain_sensitivity_grid(one, other)


def test_surface_volatility__uses_the_published_essvi_surface_when_present() -> None:
    times = np.array([0.25, 1.0])
    atm = np.array([0.2, 0.3])
    surface = _surface(times, atm)
    # rho = 0: w(k) = theta / 2 (1 + sqrt(phi^2 k^2 + 1)), phi = psi / theta; ATM w = theta.
    theta = atm**2 * times
    psi = np.array([0.02, 0.05])
    surface[schema.ESSVI_PARAMETERS] = (
        (schema.EXPIRY, schema.ESSVI_PARAMETER),
        np.column_stack([theta, np.zeros(2), psi]),
    )
    surface[schema.EXPIRY_STATUS] = (schema.EXPIRY, np.zeros(2, dtype=np.int8))
    vol = surface_volatility(surface)
    np.testing.assert_allclose(vol(np.zeros(2), times), atm, rtol=1e-10)
    k = np.array([0.3, 0.3])
    phi = psi / theta
    expected = np.sqrt(theta / 2 * (1 + np.sqrt((phi * k) ** 2 + 1)) / times)
    np.testing.assert_allclose(vol(k, times), expected, rtol=1e-10)


def _chain(underlyings: list[str], expiries: np.ndarray, strikes: list[float]) -> xr.Dataset:
    """A chain with one call and one put per (underlying, expiry, strike), interleaved."""
    rows = [
        (name, day, strike, right)
        for day in expiries
        for strike in strikes
        for right in ("call", "put")
        for name in underlyings
    ]
    n = len(rows)
    return schema.build_chain_dataset(
        {
            schema.TICKER: np.array([f"O:{r[0]}{i}" for i, r in enumerate(rows)], dtype=object),
            schema.UNDERLYING: np.array([r[0] for r in rows], dtype=object),
            schema.ROOT: np.array([r[0] for r in rows], dtype=object),
            schema.EXPIRY: np.array([r[1] for r in rows]),
            schema.SETTLEMENT: np.full(n, "PM", dtype=object),
            schema.STRIKE: np.array([r[2] for r in rows]),
            schema.RIGHT: np.array([r[3] for r in rows], dtype=object),
            schema.EXERCISE_STYLE: np.full(n, "european", dtype=object),
            schema.SHARES_PER_CONTRACT: np.full(n, 100.0),
        }
    )


def test_chain_sensitivity_grid__stacked_surfaces_value_each_contract_on_its_own() -> None:
    times = np.array([0.25, 1.0])
    xyz = _surface(times, np.array([0.2, 0.3]))
    abc = _surface(times, np.array([0.4, 0.35]), spot=50.0)
    abc = abc.assign_coords({schema.UNDERLYING: np.asarray("ABC", dtype=object)})
    stacked = schema.stack_surfaces([xyz, abc])
    expiry = xyz[schema.EXPIRY].values
    # Interleaved underlyings (not one block each) and a name without a surface.
    chain = _chain(["XYZ", "ABC", "NOSURF"], expiry, [45.0, 55.0, 95.0, 105.0])
    grid = chain_sensitivity_grid(chain, stacked, dtype=np.float32)

    assert grid["price"].dtype == np.float32
    assert grid["volatility"].dtype == np.float32
    assert list(grid[schema.TICKER].values) == list(chain[schema.TICKER].values)
    names = chain[schema.UNDERLYING].values
    for name, surface in (("XYZ", xyz), ("ABC", abc)):
        mine = np.flatnonzero(names == name)
        alone = chain_sensitivity_grid(chain.isel(contract=mine), surface)
        for variable in ("price", "delta", "gamma", "vega", "theta", "pnl"):
            np.testing.assert_allclose(
                grid[variable].values[mine], alone[variable].values, rtol=2e-6, atol=1e-6
            )
        # Stacked: the shifted spot of each contract's own underlying, (contract, spot_shift).
        spot = float(surface[schema.SPOT])
        expected = spot * (1.0 + np.array(DEFAULT_SPOT_SHIFTS))
        np.testing.assert_allclose(alone["shifted_spot"].values, expected)
        np.testing.assert_allclose(grid["shifted_spot"].values[mine], np.tile(expected, (2 * 8, 1)))
    missing = names == "NOSURF"
    assert np.isnan(grid["price"].values[missing]).all()
    assert np.isnan(grid["time_to_expiry"].values[missing]).all()
    assert np.isfinite(grid["price"].values[~missing]).all()


def test_chain_sensitivity_grid__a_stacked_surface_without_spot_leaves_its_contracts_nan() -> None:
    times = np.array([0.5])
    good = _surface(times, np.array([0.2]))
    failed = _surface(times, np.array([0.2]), spot=np.nan)
    failed = failed.assign_coords({schema.UNDERLYING: np.asarray("BAD", dtype=object)})
    chain = _chain(["XYZ", "BAD"], good[schema.EXPIRY].values, [100.0])
    grid = chain_sensitivity_grid(chain, schema.stack_surfaces([good, failed]))
    bad = chain[schema.UNDERLYING].values == "BAD"
    assert np.isnan(grid["price"].values[bad]).all()
    assert np.isfinite(grid["price"].values[~bad]).all()


def test_fill_grid__blocks_of_contracts_give_the_same_grid() -> None:
    from periscope.risk.grid import GRID_VARIABLES, fill_grid

    shifts = (np.array(DEFAULT_SPOT_SHIFTS), np.array([-0.05, 0.0, 0.05]), np.array([0.0, 7.0]))
    args = (SPOT, STRIKES, TIMES, CALLS, np.full(5, RATE), np.full(5, CARRY_YIELD), skew)
    shape = (5, 7, 3, 2)
    results = []
    for block in (1, 2, 5, 4096):
        out = {name: np.full(shape, np.nan, dtype=np.float32) for name in GRID_VARIABLES}
        vols = np.full((5, 7), np.nan)
        fill_grid(*args, *shifts, "moneyness", out, vols, block=block)
        results.append((out, vols))
    whole = sensitivity_grid(
        *args, spot_shifts=shifts[0], vol_shifts=shifts[1], horizon_days=shifts[2]
    )
    for out, vols in results:
        np.testing.assert_allclose(vols, whole["volatility"].values, rtol=1e-15)
        for name in GRID_VARIABLES:
            np.testing.assert_allclose(out[name], whole[name].values, rtol=1e-6, atol=1e-9)
