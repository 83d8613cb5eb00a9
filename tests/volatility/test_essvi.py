"""eSSVI surface: textbook SSVI values, recovery of the simulator's truth, no static arbitrage
at the expiries and in between under stressed term structures, round trips."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from periscope.errors import InvalidInputError
from periscope.simulator.curves import SurfaceTruth
from periscope.volatility.arbitrage import check_butterfly, check_calendar, dense_k_grid
from periscope.volatility.essvi import EssviSurface, fit_essvi
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.svi import SliceStatus, fit_svi, svi_total_variance

DENSE_K = dense_k_grid(-3.0, 3.0, 0.005)
EXPIRIES_DAYS = np.array([3, 7, 14, 30, 45, 60, 90, 120, 180, 270, 365, 730])


def power_law_phi(theta: float, eta: float, gamma: float) -> float:
    return eta / (theta**gamma * (1.0 + theta) ** (1.0 - gamma))


def test_ssvi_regression_case_from_quant_md() -> None:
    # quant.md §6.4: theta = 0.04, rho = -0.7, power-law phi (eta 1, gamma 0.5) = 4.9029033785;
    # w(k) at k = -0.4..0.4 and the raw SVI equivalent.
    theta, rho = 0.04, -0.7
    phi = power_law_phi(theta, 1.0, 0.5)
    assert phi == pytest.approx(4.9029033785, abs=1e-10)
    surface = EssviSurface.from_arrays([1.0], [theta], [rho], [theta * phi])
    k = np.array([-0.4, -0.2, 0.0, 0.2, 0.4])
    expected = [0.1025626278, 0.0702485424, 0.04, 0.0216175607, 0.0215301376]
    np.testing.assert_allclose(surface.total_variance(k, 1.0), expected, atol=1e-10)
    np.testing.assert_allclose(
        surface.implied_volatility(k, 1.0), [0.32025, 0.26504, 0.2, 0.14703, 0.14673], atol=5e-6
    )
    raw = surface.raw_svi(0)
    assert tuple(raw) == pytest.approx(
        (0.0102, 0.0980580676, -0.7, 0.1427725464, 0.1456571316), abs=1e-10
    )
    np.testing.assert_allclose(svi_total_variance(raw, k), expected, atol=1e-10)


def make_quotes(
    truth: SurfaceTruth,
    t: float,
    n: int,
    noise_bp: float = 0.0,
    seed: int = 0,
) -> tuple[SmileQuotes, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = math.sqrt(float(truth.atm_total_variance(np.array(t))))
    k = np.linspace(-4.0 * scale, 2.5 * scale, n)
    vol = truth.implied_volatility(k, np.full(n, t))
    half = 1e-4 * max(noise_bp, 1.0) * (1.0 + 2.0 * np.abs(k) / scale)
    mid = vol + (half * rng.uniform(-1.0, 1.0, n) if noise_bp else 0.0)
    quotes = SmileQuotes(
        expiry=np.datetime64("2026-01-02") + np.timedelta64(round(t * 365), "D"),
        time_to_expiry=t,
        forward=100.0,
        discount_factor=1.0,
        strike=100.0 * np.exp(k),
        log_moneyness=k,
        iv_bid=mid - half,
        iv_mid=mid,
        iv_ask=mid + half,
        vega=np.ones(n),
        is_call=k > 0.0,
    )
    return quotes, vol


def assert_arbitrage_free(surface: EssviSurface, times: np.ndarray) -> None:
    """Butterfly at every time and no calendar crossing along the times, on the dense grid."""
    times = np.sort(times)
    for t in times:
        check = check_butterfly(lambda k, t=t: surface.total_variance(k, t), DENSE_K)
        assert check.arbitrage_free, (t, check.min_g, check.argmin_k)
    calendar = check_calendar(
        [lambda k, t=t: surface.total_variance(k, t) for t in times], DENSE_K, tolerance=1e-14
    )
    assert calendar.arbitrage_free, calendar


def test_fit_essvi__recovers_the_simulator_truth() -> None:
    truth = SurfaceTruth(0.28, 0.22, 0.35, -0.7, 1.0, 0.45)
    times = EXPIRIES_DAYS / 365.0
    quotes = [make_quotes(truth, t, 100)[0] for t in times]
    surface = fit_essvi(quotes)
    assert surface.slice_status == [SliceStatus.OK] * times.size
    for t in times:
        error = surface.implied_volatility(DENSE_K, t) - truth.implied_volatility(
            DENSE_K, np.full(DENSE_K.size, t)
        )
        assert np.abs(error).max() < 1e-6
    assert np.all(surface.rmse_bp < 1e-6)
    np.testing.assert_allclose(surface.rho, -0.7, atol=1e-9)


def test_fit_essvi__beats_the_noise() -> None:
    truth = SurfaceTruth(0.25, 0.2, 0.35, -0.7, 1.0, 0.45)
    times = EXPIRIES_DAYS / 365.0
    pairs = [make_quotes(truth, t, 100, noise_bp=40.0, seed=i) for i, t in enumerate(times)]
    surface = fit_essvi([quotes for quotes, _ in pairs])
    noise = []
    error = []
    for (quotes, vol), t in zip(pairs, times, strict=True):
        noise.append(np.sqrt(np.mean((quotes.iv_mid - vol) ** 2)))
        fitted = surface.implied_volatility(quotes.log_moneyness, t)
        error.append(np.sqrt(np.mean((fitted - vol) ** 2)))
    assert np.all(np.array(error) < np.array(noise))
    assert np.mean(error) < 0.4 * np.mean(noise)
    assert np.all(surface.inside_band_share > 0.9)


STRESSED = {
    "steep_skew": SurfaceTruth(0.3, 0.25, 0.35, -0.92, 1.0, 0.45),
    "inverted": SurfaceTruth(0.9, 0.25, 0.2, -0.5, 1.0, 0.45),
    "event_bump": SurfaceTruth(0.25, 0.25, 0.35, -0.6, 0.8, 0.45, 20 / 365, 0.004),
    "call_skew": SurfaceTruth(0.3, 0.35, 0.5, 0.3, 0.6, 0.3),
}


@pytest.mark.parametrize("name", sorted(STRESSED))
def test_fit_essvi__stressed_term_structures_are_arbitrage_free(name: str) -> None:
    truth = STRESSED[name]
    times = EXPIRIES_DAYS / 365.0
    pairs = [
        make_quotes(truth, t, 6 if i < 2 else 100, noise_bp=25.0, seed=i)  # few quotes near expiry
        for i, t in enumerate(times)
    ]
    surface = fit_essvi([quotes for quotes, _ in pairs])
    assert np.all(np.isfinite(surface.theta))
    assert np.all(np.diff(surface.theta) >= 0.0)
    # At the expiries, halfway between them, before the first and after the last.
    between = 0.5 * (times[1:] + times[:-1])
    assert_arbitrage_free(surface, np.concatenate((times, between, [0.5 / 365, 3.0, 5.0])))
    # Inverted term structure: ATM volatility falls with maturity while theta still rises.
    if name == "inverted":
        atm = surface.implied_volatility(0.0, surface.time_to_expiry)
        assert atm[0] > atm[-1] + 0.2
    if name == "event_bump":  # the event adds 0.004 of variance between 14 and 30 days
        jump = surface.theta[3] - surface.theta[2]
        assert jump > 0.004
    # Closer to the truth than the quotes are, slice by slice.
    for (quotes, vol), t in zip(pairs, times, strict=True):
        noise = np.sqrt(np.mean((quotes.iv_mid - vol) ** 2))
        error = np.sqrt(np.mean((surface.implied_volatility(quotes.log_moneyness, t) - vol) ** 2))
        assert error < noise


def test_fit_essvi__failed_slices_are_bridged() -> None:
    truth = SurfaceTruth(0.25, 0.2, 0.35, -0.7, 1.0, 0.45)
    times = EXPIRIES_DAYS / 365.0
    quotes = [make_quotes(truth, t, 60)[0] for t in times]
    first, _ = make_quotes(truth, times[0], 2)
    middle, _ = make_quotes(truth, times[5], 2)
    last, _ = make_quotes(truth, times[-1], 0)
    quotes[0], quotes[5], quotes[-1] = first, middle, last
    # An invalid slice (negative time) is left out of the surface.
    broken, _ = make_quotes(truth, 0.3, 20)
    quotes.append(dataclasses.replace(broken, time_to_expiry=-0.1))
    svi = [fit_svi(q) for q in quotes]
    surface = fit_essvi(quotes[::-1], svi[::-1])  # any order in
    assert len(surface) == times.size
    assert np.all(np.diff(surface.time_to_expiry) > 0.0)
    status = surface.slice_status
    assert status[0] == status[5] == status[-1] == SliceStatus.TOO_FEW_QUOTES
    assert all(s == SliceStatus.OK for i, s in enumerate(status) if i not in (0, 5, 11))
    assert np.all(np.isfinite(surface.theta))
    # Bridged values follow the truth closely (it is smooth), and stay arbitrage-free.
    for t in times[[0, 5, 11]]:
        error = surface.implied_volatility(0.0, t) - truth.implied_volatility(
            np.zeros(1), np.array([t])
        )
        assert abs(float(error[0])) < 0.01
    assert_arbitrage_free(surface, np.concatenate((times, [0.001, 4.0])))


def test_fit_essvi__no_usable_slice_gives_nan_surface() -> None:
    truth = SurfaceTruth(0.25, 0.2, 0.35, -0.7, 1.0, 0.45)
    quotes = [make_quotes(truth, t, 1)[0] for t in (0.1, 0.5)]
    surface = fit_essvi(quotes)
    assert surface.slice_status == [SliceStatus.TOO_FEW_QUOTES] * 2
    assert np.all(np.isnan(surface.total_variance(DENSE_K, 0.3)))
    assert len(fit_essvi([])) == 0
    with pytest.raises(InvalidInputError):
        fit_essvi(quotes, [])


def test_essvi_surface__interpolation_rules() -> None:
    surface = EssviSurface.from_arrays(
        [0.25, 1.0], [0.01, 0.05], [-0.5, -0.7], [0.1, 0.3], status=[0, 0]
    )
    # Before the first slice: w(k, t) = t / t_1 w_1(k), constant volatility in t.
    np.testing.assert_allclose(
        surface.implied_volatility(DENSE_K, 0.05), surface.implied_volatility(DENSE_K, 0.25)
    )
    # Between: theta, psi and rho psi linear in t.
    theta, rho, psi = surface.slice_parameters(0.625)
    assert float(theta) == pytest.approx(0.03)
    assert float(psi) == pytest.approx(0.2)
    assert float(rho * psi) == pytest.approx(0.5 * (-0.05 - 0.21))
    # After the last: theta grows with the last segment's slope, rho and psi stay.
    theta, rho, psi = surface.slice_parameters(2.0)
    assert float(theta) == pytest.approx(0.05 + (0.04 / 0.75))
    assert (float(rho), float(psi)) == pytest.approx((-0.7, 0.3))
    assert np.isnan(surface.total_variance(0.0, 0.0))
    assert np.isnan(surface.total_variance(0.0, -1.0))
    # Broadcasting k against t.
    grid = surface.total_variance(DENSE_K[:, None], np.array([0.1, 0.5, 2.0])[None, :])
    assert grid.shape == (DENSE_K.size, 3)


def test_essvi_surface__round_trip_through_arrays() -> None:
    truth = SurfaceTruth(0.25, 0.2, 0.35, -0.7, 1.0, 0.45)
    quotes = [make_quotes(truth, t, 40, noise_bp=10.0, seed=3)[0] for t in (0.1, 0.4, 1.0)]
    surface = fit_essvi(quotes)
    stored = {name: np.array(value) for name, value in surface.parameters.items()}
    back = EssviSurface.from_parameters(stored)
    for t in (0.05, 0.1, 0.3, 1.0, 2.0):
        np.testing.assert_array_equal(
            back.total_variance(DENSE_K, t), surface.total_variance(DENSE_K, t)
        )
    np.testing.assert_array_equal(back.expiry, surface.expiry)
    np.testing.assert_array_equal(back.status, surface.status)
    np.testing.assert_array_equal(back.rmse_bp, surface.rmse_bp)
    with pytest.raises(InvalidInputError):
        EssviSurface.from_arrays([1.0, 0.5], [0.01, 0.02], [0.0, 0.0], [0.1, 0.1])
    with pytest.raises(InvalidInputError):
        EssviSurface.from_arrays([0.5, 1.0], [0.01], [0.0, 0.0], [0.1, 0.1])


@st.composite
def mingone_surfaces(draw: st.DrawFn) -> EssviSurface:
    """Random surfaces from Mingone's box: every draw satisfies the node conditions."""
    n = draw(st.integers(2, 6))
    times = np.cumsum(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    rho = draw(st.floats(-0.95, 0.95))
    theta = draw(st.floats(1e-4, 0.05))
    cap = min(4.0 / (1 + abs(rho)), math.sqrt(4 * theta / (1 + abs(rho))))
    psi = cap * draw(st.floats(0.05, 0.99))
    thetas, rhos, psis = [theta], [rho], [psi]
    for _ in range(n - 1):
        new_rho = draw(st.floats(-0.95, 0.95))
        p = max((1 + rho) / (1 + new_rho), (1 - rho) / (1 - new_rho))
        new_theta = p * theta * (1.0 + draw(st.floats(0.0, 2.0)))
        one = 1 + abs(new_rho)
        high = min(psi * new_theta / theta, 4 * (1 - 1e-9) / one, math.sqrt(4 * new_theta / one))
        low = p * psi
        if high < low:  # this rho breaks the caps: keep the previous one
            new_rho, p = rho, 1.0
            one = 1 + abs(new_rho)
            new_theta = max(new_theta, theta)
            high = min(
                psi * new_theta / theta, 4 * (1 - 1e-9) / one, math.sqrt(4 * new_theta / one)
            )
            low = psi
        new_psi = low + (high - low) * draw(st.floats(0.0, 1.0))
        theta, rho, psi = new_theta, new_rho, new_psi
        thetas.append(theta)
        rhos.append(rho)
        psis.append(psi)
    return EssviSurface.from_arrays(times, thetas, rhos, psis)


@settings(max_examples=25, deadline=None)
@given(mingone_surfaces())
def test_essvi_surface__random_valid_surfaces_interpolate_without_arbitrage(
    surface: EssviSurface,
) -> None:
    t = surface.time_to_expiry
    fractions = np.array([0.0, 0.1, 0.37, 0.5, 0.81, 1.0])
    inner = (t[:-1, None] + fractions[None, :] * np.diff(t)[:, None]).reshape(-1)
    times = np.unique(np.concatenate(([0.2 * t[0], 0.7 * t[0]], inner, [t[-1] + 0.5])))
    grid = np.linspace(-3.0, 3.0, 601)
    for time in times:
        assert check_butterfly(
            lambda k, time=time: surface.total_variance(k, time), grid
        ).arbitrage_free
    slices = [lambda k, time=time: surface.total_variance(k, time) for time in times]
    assert check_calendar(slices, grid, tolerance=1e-14).arbitrage_free


@settings(max_examples=15, deadline=None)
@given(mingone_surfaces())
def test_fit_essvi__recovers_random_valid_surfaces(surface: EssviSurface) -> None:
    # Unlike the simulator's truth, rho and phi vary freely from slice to slice here: the fit's
    # projection onto the calendar box must not get in the way of an exact fit.
    quotes = []
    for t in surface.time_to_expiry:
        scale = math.sqrt(float(surface.total_variance(0.0, t)))
        k = np.linspace(-4.0 * scale, 3.0 * scale, 50)
        vol = surface.implied_volatility(k, t)
        quotes.append(
            SmileQuotes(
                np.datetime64("2026-01-02", "D"), float(t), 100.0, 1.0, 100.0 * np.exp(k), k,
                vol - 0.001, vol, vol + 0.001, np.ones(50), k > 0.0,
            )
        )  # fmt: skip
    fitted = fit_essvi(quotes)
    for q in quotes:
        error = fitted.implied_volatility(q.log_moneyness, q.time_to_expiry) - q.iv_mid
        assert np.abs(error).max() < 1e-8


def test_fit_essvi__nan_quotes_and_equal_expiries() -> None:
    truth = SurfaceTruth(0.25, 0.2, 0.35, -0.7, 1.0, 0.45)
    first, vol = make_quotes(truth, 0.25, 40)
    mid = first.iv_mid.copy()
    mid[::7] = np.nan
    holed = dataclasses.replace(first, iv_mid=mid)
    twin, _ = make_quotes(truth, 0.25, 30)
    later, _ = make_quotes(truth, 1.0, 40)
    surface = fit_essvi([holed, twin, later])
    assert surface.slice_status == [SliceStatus.OK] * 3
    assert surface.n_used.tolist() == [34, 30, 40]
    error = surface.implied_volatility(first.log_moneyness, 0.25) - vol
    assert np.abs(error).max() < 1e-8
    assert_arbitrage_free(surface, np.array([0.1, 0.25, 0.5, 1.0, 2.0]))
