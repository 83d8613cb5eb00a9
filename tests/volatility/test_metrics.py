"""Surface metrics on closed-form surfaces: flat, and the SSVI regression case of quant.md §6.4."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import norm

from periscope.volatility import metrics


@dataclass(frozen=True)
class Flat:
    volatility: float

    def total_variance(self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike):
        k, t = np.broadcast_arrays(log_moneyness, time_to_expiry)
        return self.volatility**2 * np.asarray(t, dtype=float) + 0.0 * k


@dataclass(frozen=True)
class PowerLawSsvi:
    """GJ 2014 SSVI with power-law φ and θ_T = σ_atm² T (quant.md §6.4 at T = 1)."""

    atm_volatility: float = 0.2
    rho: float = -0.7
    eta: float = 1.0
    gamma: float = 0.5

    def theta(self, t):
        return self.atm_volatility**2 * np.asarray(t, dtype=float)

    def phi(self, theta):
        return self.eta / (theta**self.gamma * (1.0 + theta) ** (1.0 - self.gamma))

    def total_variance(self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike):
        k, t = np.broadcast_arrays(
            np.asarray(log_moneyness, dtype=float), np.asarray(time_to_expiry, dtype=float)
        )
        theta = self.theta(t)
        phi = self.phi(theta)
        rho = self.rho
        return 0.5 * theta * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))


def test_ssvi_case__reproduces_the_published_total_variances() -> None:
    # quant.md §6.4: θ = 0.04, ρ = -0.7, η = 1, γ = 0.5 at T = 1.
    surface = PowerLawSsvi()
    w = surface.total_variance([-0.4, -0.2, 0.0, 0.2, 0.4], 1.0)
    expected = [0.1025626278, 0.0702485424, 0.04, 0.0216175607, 0.0215301376]
    np.testing.assert_allclose(w, expected, atol=1e-10)


def test_atm_implied_volatility__flat_and_ssvi() -> None:
    np.testing.assert_allclose(
        metrics.atm_implied_volatility(Flat(0.3), [0.01, 0.5, 2.0]), 0.3, rtol=1e-14
    )
    assert metrics.atm_implied_volatility(PowerLawSsvi(), 1.0) == pytest.approx(0.2, rel=1e-14)


def test_atm_skew__matches_the_ssvi_derivative() -> None:
    # w'(0) = θ ρ φ for SSVI, so dσ/dk = w'(0) / (2 σ T) with σ = sqrt(θ / T).
    surface = PowerLawSsvi()
    t = np.array([0.1, 0.5, 1.0, 2.0])
    theta = surface.theta(t)
    expected = theta * surface.rho * surface.phi(theta) / (2 * np.sqrt(theta / t) * t)
    np.testing.assert_allclose(metrics.atm_skew(surface, t), expected, rtol=1e-6)
    assert metrics.atm_skew(Flat(0.2), 0.5) == pytest.approx(0.0, abs=1e-12)


def test_log_moneyness_at_delta__flat_surface_closed_form() -> None:
    # With a flat smile d1 = (-k + w/2)/sqrt(w), so k = w/2 - N⁻¹(Δ) sqrt(w).
    delta = np.array([0.9, 0.75, 0.5, 0.25, 0.1])
    t = 0.25
    w = 0.3**2 * t
    expected = 0.5 * w - norm.ppf(delta) * math.sqrt(w)
    np.testing.assert_allclose(
        metrics.log_moneyness_at_delta(Flat(0.3), delta, t), expected, atol=1e-12
    )


def _brute_force_k(surface, delta: float, t: float) -> float:
    """Reference: Brent's method on the delta equation over a wide bracket."""

    def f(k: float) -> float:
        w = float(surface.total_variance(k, t))
        return norm.cdf((-k + 0.5 * w) / math.sqrt(w)) - delta

    return brentq(f, -5.0, 5.0, xtol=1e-14, rtol=1e-14)


@pytest.mark.parametrize("t", [2 / 365, 30 / 365, 1.0, 3.0])
def test_log_moneyness_at_delta__ssvi_matches_brent(t: float) -> None:
    surface = PowerLawSsvi(atm_volatility=0.25, rho=-0.8)
    deltas = np.array([0.95, 0.9, 0.75, 0.5, 0.25, 0.1, 0.05])
    k = metrics.log_moneyness_at_delta(surface, deltas, t)
    expected = [_brute_force_k(surface, d, t) for d in deltas]
    np.testing.assert_allclose(k, expected, atol=1e-10)
    # The answer has the asked delta on the surface's own smile.
    w = surface.total_variance(k, t)
    np.testing.assert_allclose(norm.cdf((-k + 0.5 * w) / np.sqrt(w)), deltas, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    delta=st.floats(0.01, 0.99),
    t=st.floats(1 / 365, 5.0),
    vol=st.floats(0.05, 1.5),
    rho=st.floats(-0.95, 0.5),
)
def test_log_moneyness_at_delta__round_trip(delta: float, t: float, vol: float, rho: float) -> None:
    surface = PowerLawSsvi(atm_volatility=vol, rho=rho, eta=0.5)
    k = float(metrics.log_moneyness_at_delta(surface, delta, t))
    w = float(surface.total_variance(k, t))
    assert norm.cdf((-k + 0.5 * w) / math.sqrt(w)) == pytest.approx(delta, abs=1e-10)


def test_log_moneyness_at_delta__outside_zero_one_is_nan_and_shapes_broadcast() -> None:
    k = metrics.log_moneyness_at_delta(Flat(0.2), [[0.0], [1.0], [0.5]], [0.1, 1.0])
    assert k.shape == (3, 2)
    assert np.isnan(k[:2]).all()
    assert np.isfinite(k[2]).all()


def test_delta_implied_volatility__risk_reversal_and_butterfly_signs() -> None:
    surface = PowerLawSsvi(rho=-0.7)
    deltas = np.array([0.75, 0.25, 0.9, 0.1])
    vol, k = metrics.delta_implied_volatility(surface, deltas, 0.5)
    put25, call25, put10, call10 = vol
    atm = float(metrics.atm_implied_volatility(surface, 0.5))
    assert k[0] < 0 < k[1]
    # A put skew: puts richer than calls; a convex smile: the wings above ATM.
    assert metrics.risk_reversal(call25, put25) < 0
    assert metrics.risk_reversal(call10, put10) < metrics.risk_reversal(call25, put25)
    assert metrics.butterfly(call25, put25, atm) > 0
    flat_vol, _ = metrics.delta_implied_volatility(Flat(0.2), deltas, 0.5)
    np.testing.assert_allclose(flat_vol, 0.2, rtol=1e-14)
    assert metrics.butterfly(0.2, 0.2, 0.2) == 0.0


def test_term_structure_slope__sign() -> None:
    assert metrics.term_structure_slope(0.30, 0.25) == pytest.approx(-0.05)
    assert metrics.term_structure_slope(0.20, 0.22) == pytest.approx(0.02)


def test_confidence_score__bounds_and_factors() -> None:
    published = [True, True, True, True, True, True]
    had = [True] * 6
    share = [1.0] * 6
    used = [20] * 6
    assert metrics.confidence_score(published, had, share, used, True) == 1.0
    assert metrics.confidence_score(published, had, share, used, False) == 0.5
    # Half the quotes inside their band, half the slices published, depth 3/6.
    half = [True, True, True, False, False, False]
    score = metrics.confidence_score(half, had, [0.5] * 6, used, True)
    assert score == pytest.approx(0.5 * 0.5 * 0.5)
    assert metrics.confidence_score([False] * 6, had, share, used, True) == 0.0
