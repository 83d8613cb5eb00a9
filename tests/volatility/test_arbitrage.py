"""Static-arbitrage checks: Durrleman's g, Lee's bound, calendar crossings (GJ 2014)."""

from __future__ import annotations

import numpy as np
import pytest

from periscope.errors import InvalidInputError
from periscope.volatility._svi_kernels import durrleman_check
from periscope.volatility.arbitrage import (
    check_butterfly,
    check_calendar,
    dense_k_grid,
    durrleman_g,
    durrleman_g_from_derivatives,
    lee_wing_bound_holds,
)
from periscope.volatility.svi import (
    SviParams,
    check_grid,
    repair_butterfly_jw,
    svi_derivatives,
    svi_total_variance,
)

# Gatheral & Jacquier 2014, Example 3.1 (Vogt's arbitrageable slice), T = 1; quant.md §6.4.
VOGT = SviParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)


def test_durrleman_g__vogt_negative_interval_and_minimum() -> None:
    # quant.md §6.4 (recomputed from GJ Example 3.1 on a 1e-4 grid): g < 0 exactly on
    # [0.6425, 1.2569], min g = -0.03286 at k ~ 0.879.
    k = np.round(np.arange(-1.5, 2.5 + 1e-9, 1e-4), 4)
    g = durrleman_g(VOGT, k)
    negative = k[g < 0.0]
    assert negative.min() == pytest.approx(0.6425, abs=1e-4)
    assert negative.max() == pytest.approx(1.2569, abs=1e-4)
    assert np.all(g[(k > 0.6425) & (k < 1.2569)] < 0.0)
    assert g.min() == pytest.approx(-0.03286, abs=5e-6)
    assert k[np.argmin(g)] == pytest.approx(0.879, abs=2e-3)


def test_durrleman_g__matches_generic_formula_and_finite_differences() -> None:
    k = np.linspace(-2.0, 2.0, 81)
    w = svi_total_variance(VOGT, k)
    w1, w2 = svi_derivatives(VOGT, k)
    generic = durrleman_g_from_derivatives(k, w, w1, w2)
    np.testing.assert_allclose(durrleman_g(VOGT, k), generic, rtol=1e-12, atol=1e-14)
    # The derivatives themselves against central differences.
    h = 1e-5
    up = svi_total_variance(VOGT, k + h)
    down = svi_total_variance(VOGT, k - h)
    np.testing.assert_allclose(w1, (up - down) / (2 * h), atol=1e-9)
    np.testing.assert_allclose(w2, (up - 2 * w + down) / h**2, atol=2e-5)


def test_durrleman_g__non_positive_variance_is_minus_infinity() -> None:
    negative = SviParams(-0.1, 0.1, 0.0, 0.0, 0.1)  # w(0) = -0.09
    assert durrleman_g(negative, 0.0) == -np.inf
    assert durrleman_g_from_derivatives(0.0, 0.0, 0.0, 0.0) == -np.inf


def test_check_butterfly__vogt_fails_and_repair_passes() -> None:
    check = check_butterfly(VOGT)
    assert not check.arbitrage_free
    assert check.violations > 0
    assert check.violating_k.min() >= 0.64
    assert check.violating_k.max() <= 1.26
    assert check.min_g == pytest.approx(-0.03286, abs=2e-5)
    repaired = check_butterfly(repair_butterfly_jw(VOGT, 1.0))
    assert repaired.arbitrage_free
    assert repaired.min_g > 0.0


def test_check_butterfly__callable_agrees_with_parameters() -> None:
    by_params = check_butterfly(VOGT)
    by_callable = check_butterfly(lambda k: svi_total_variance(VOGT, k))
    assert by_callable.violations == by_params.violations
    assert by_callable.min_g == pytest.approx(by_params.min_g, abs=1e-7)
    assert by_callable.lee_bound_holds


# A raw SVI slice (an old fit_svi result) whose g is non-negative at every point of the dense
# grid but dips to about -3.4e-7 between two of them, at k = 0.2595.
HIDDEN_DIP = SviParams(
    0.09122350992104804, 0.7310973638003311, 0.0102685002214286, -0.00507512802596559,
    0.044775268522546825,
)  # fmt: skip


def test_check_butterfly__finds_a_dip_between_grid_points() -> None:
    grid = dense_k_grid()
    assert np.all(durrleman_g(HIDDEN_DIP, grid) >= 0.0)  # the grid alone sees nothing
    fine = np.linspace(0.255, 0.265, 100_001)
    truth = float(durrleman_g(HIDDEN_DIP, fine).min())
    assert truth < -3e-7
    for smile in (HIDDEN_DIP, lambda k: svi_total_variance(HIDDEN_DIP, k)):
        check = check_butterfly(smile, grid)
        assert not check.arbitrage_free
        assert check.violations == 1
        assert check.min_g == pytest.approx(truth, abs=1e-9)
        assert check.argmin_k == pytest.approx(0.2595, abs=5e-4)
        assert check.violating_k.tolist() == [pytest.approx(check.argmin_k)]
    # Unsorted grids with repeated points are refined too.
    shuffled = np.concatenate((grid[::-1], grid[:50]))
    assert check_butterfly(HIDDEN_DIP, shuffled).min_g == pytest.approx(truth, abs=1e-9)


def test_lee_wing_bound__both_sides() -> None:
    assert lee_wing_bound_holds(SviParams(0.0, 1.0, 1.0 - 1e-9, 0.0, 0.1))
    assert not lee_wing_bound_holds(SviParams(0.0, 1.2, -0.7, 0.0, 0.1))
    steep = SviParams(0.01, 1.5, 0.9, 0.0, 0.1)  # right wing slope 2.85
    assert not check_butterfly(steep).lee_bound_holds
    assert not check_butterfly(steep).arbitrage_free


def test_check_calendar__crossing_and_ordered_slices() -> None:
    short = SviParams(0.01, 0.1, -0.5, 0.0, 0.1)
    longer = short._replace(a=0.02)
    assert check_calendar([short, longer]).arbitrage_free
    assert check_calendar([short, longer]).min_difference == pytest.approx(0.01)
    # Same level, steeper wings: the later slice dips below the earlier one nowhere, but a
    # flatter later slice crosses it in the wings.
    flatter = SviParams(0.03, 0.02, -0.5, 0.0, 0.1)
    check = check_calendar([short, flatter])
    assert check.crossings > 0
    assert check.pair == 0
    assert abs(check.argmin_k) == pytest.approx(3.0)
    # Callables and parameters mix.
    mixed = check_calendar([short, lambda k: svi_total_variance(longer, k), flatter])
    assert mixed.crossings == check_calendar([longer, flatter]).crossings
    assert mixed.pair == 1
    assert check_calendar([short]).crossings == 0


def test_dense_k_grid__default_and_invalid() -> None:
    grid = dense_k_grid()
    assert grid[0] == -3.0
    assert grid[-1] == 3.0
    assert np.allclose(np.diff(grid), 0.005)
    with pytest.raises(InvalidInputError):
        dense_k_grid(1.0, -1.0)
    with pytest.raises(InvalidInputError):
        check_butterfly(VOGT, np.empty(0))


def test_durrleman_check_kernel__same_as_check_butterfly_on_the_check_grid() -> None:
    """The fused kernel (grid never materialized) against the array form on check_grid's grid."""
    rng = np.random.default_rng(12)
    found_violations = 0
    for _ in range(300):
        params = SviParams(
            rng.uniform(-0.05, 0.1), rng.uniform(0.0, 1.5), rng.uniform(-0.99, 0.99),
            rng.uniform(-0.5, 0.5), 10 ** rng.uniform(-3.0, 0.0),
        )  # fmt: skip
        best, _, count = durrleman_check(*params, -4.0, 4.0, 0.005, 1e-10)
        check = check_butterfly(params, check_grid(params))
        assert count == check.violations
        assert best == pytest.approx(check.min_g, rel=1e-12, abs=1e-14)
        found_violations += count > 0
    assert 30 < found_violations < 270
