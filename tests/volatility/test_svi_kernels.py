"""The fused SVI/eSSVI kernels against the NumPy/Python sequences they replace, bit for bit:
the median, the box, the start-and-refine sequence of ``fit_svi`` and the fit metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from periscope.simulator.curves import SurfaceTruth
from periscope.volatility import _svi_kernels as _k
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.svi import (
    _M_FRACTIONS,
    _N_STARTS,
    _PENALTY_MARGIN,
    _PROBE_ITERATIONS,
    _SIGMA_FRACTIONS,
    LEE_CAP,
    MAX_ITERATIONS,
    SliceData,
    SviParams,
    _bounds,
    _median,
    _starts,
    cost_floor,
    prepare_slice,
    slice_fit_metrics,
    svi_total_variance,
)


def _slices(count: int, seed: int) -> list[SliceData]:
    """Noisy slices of a skewed truth, 8 to 120 quotes, 3 days to 2 years, some bids missing."""
    rng = np.random.default_rng(seed)
    truth = SurfaceTruth(0.3, 0.22, 0.35, -0.7, 1.0, 0.45)
    out = []
    for _ in range(count):
        t = float(np.exp(rng.uniform(np.log(3 / 365), np.log(2.0))))
        n = int(rng.integers(8, 121))
        scale = math.sqrt(float(truth.atm_total_variance(np.array(t))))
        k = np.sort(rng.uniform(-4.0 * scale, 2.5 * scale, n))
        vol = truth.implied_volatility(k, np.full(n, t))
        half = 0.002 + 0.003 * np.abs(k) / scale
        mid = vol + half * rng.uniform(-0.9, 0.9, n)
        bid = np.where(rng.random(n) < 0.1, np.nan, mid - half)
        quotes = SmileQuotes(
            np.datetime64("2026-06-19"), t, 100.0, 1.0, 100.0 * np.exp(k), k,
            bid, mid, mid + half, np.ones(n), k > 0.0,
        )  # fmt: skip
        out.append(prepare_slice(quotes))
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 99, 100])
def test_median__is_numpy_median_bit_for_bit(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(20):
        values = rng.lognormal(-3.0, 1.0, size)
        assert _median(values) == float(np.median(values))
    with_nan = rng.uniform(0.0, 1.0, size)
    with_nan[size // 2] = np.nan
    assert math.isnan(_median(with_nan))


def test_svi_box__is_bounds() -> None:
    for data in _slices(30, seed=1):
        k, w = data.log_moneyness, data.total_variance
        lower, upper, options = _bounds(k, w, 0.25)
        got_lower, got_upper = np.empty(5), np.empty(5)
        got_options = np.array([0.0, _PENALTY_MARGIN, 0.0, LEE_CAP, 0.25])
        span = _k.svi_box(k, w, got_options, got_lower, got_upper)
        assert span == max(float(k[-1] - k[0]), 1e-3)
        assert got_lower.tobytes() == lower.tobytes()
        assert got_upper.tobytes() == upper.tobytes()
        assert got_options.tobytes() == options.tobytes()


def _python_sequence(data: SliceData) -> tuple[np.ndarray, int, int]:
    """The start-and-refine sequence as fit_svi ran it in Python before it moved into
    ``fit_svi_unconstrained``."""
    k, w, s = data.log_moneyness, data.total_variance, data.scale
    lower, upper, options = _bounds(k, w, cost_floor(data))
    empty = np.empty(0)
    best_cost = math.inf
    x = np.full(5, np.nan)
    lm_status = _k.ITERATION_CAP
    iterations = 0
    for rank, start in enumerate(_starts(k, w, s, False, _N_STARTS)):
        trial = np.ascontiguousarray(start)
        if rank == 0:
            _k.refine_start(k, w, s, trial)
        else:
            cost, its, _ = _k.levenberg_marquardt(
                _k.MODEL_SVI, trial, lower, upper, k, w, s, empty, options, _PROBE_ITERATIONS
            )
            iterations += int(its)
            if not cost < best_cost:
                continue
        cost, its, code = _k.levenberg_marquardt(
            _k.MODEL_SVI, trial, lower, upper, k, w, s, empty, options, MAX_ITERATIONS
        )
        iterations += int(its)
        if cost < best_cost:
            best_cost = float(cost)
            x = trial
            lm_status = int(code)
    return x, lm_status, iterations


def test_fit_svi_unconstrained__is_the_python_sequence() -> None:
    probed = 0
    for data in _slices(40, seed=2):
        expected_x, expected_status, expected_iterations = _python_sequence(data)
        x = np.empty(5)
        options = np.array([0.0, _PENALTY_MARGIN, 0.0, LEE_CAP, cost_floor(data)])
        status, iterations = _k.fit_svi_unconstrained(
            data.log_moneyness, data.total_variance, data.scale, _M_FRACTIONS,
            _SIGMA_FRACTIONS, options, _N_STARTS, _PROBE_ITERATIONS, MAX_ITERATIONS, x,
        )  # fmt: skip
        assert x.tobytes() == expected_x.tobytes()
        assert (int(status), int(iterations)) == (expected_status, expected_iterations)
        probed += int(iterations) > 0
    assert probed == 40


def test_svi_fit_metrics__is_slice_fit_metrics_of_the_smile() -> None:
    for data in _slices(20, seed=3):
        params = SviParams(0.02, 0.1, -0.5, 0.01, 0.15)
        expected = slice_fit_metrics(data, svi_total_variance(params, data.log_moneyness))
        got = _k.svi_fit_metrics(
            *params, data.log_moneyness, data.time_to_expiry, data.iv_mid, data.iv_bid,
            data.iv_ask,
        )  # fmt: skip
        assert all(_same(float(a), b) for a, b in zip(got, expected, strict=True))
        assert math.isfinite(got[0])
        overflow = _k.svi_fit_metrics(
            1e308, 1e308, 0.0, 0.0, 1.0, data.log_moneyness, data.time_to_expiry,
            data.iv_mid, data.iv_bid, data.iv_ask,
        )  # fmt: skip
        assert all(math.isnan(value) for value in overflow)


def test_essvi_fit_metrics__is_slice_fit_metrics_of_the_slice() -> None:
    theta, rho, psi = np.float64(0.031), np.float64(-0.63), np.float64(0.27)
    for data in _slices(20, seed=4):
        k = data.log_moneyness
        eta = rho * psi
        model = 0.5 * (theta + eta * k + np.sqrt((psi * k) ** 2 + 2 * theta * eta * k + theta**2))
        expected = slice_fit_metrics(data, model)
        got = _k.essvi_fit_metrics(
            theta, eta, psi, 2 * theta * eta, theta**2, k, data.time_to_expiry, data.iv_mid,
            data.iv_bid, data.iv_ask,
        )  # fmt: skip
        assert all(_same(float(a), b) for a, b in zip(got, expected, strict=True))
        assert math.isfinite(got[0])


def _essvi_python(data: SliceData, starts: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, int]:
    """eSSVI's per-slice loop over its starts as it ran in Python before ``fit_essvi_slice``."""
    w_max = float(data.total_variance.max())
    lower = np.array([-_k.RHO_MAX, 1e-12, 0.0])
    upper = np.array([_k.RHO_MAX, 10.0 * w_max + 1.0, 4.0])
    best = np.full(3, np.nan)
    best_cost = math.inf
    best_status = _k.ITERATION_CAP
    for start in starts:
        x = start.copy()
        cost, _, status = _k.levenberg_marquardt(
            _k.MODEL_ESSVI, x, lower, upper, data.log_moneyness, data.total_variance,
            data.scale, np.empty(0), prev, 100,
        )  # fmt: skip
        if cost < best_cost and np.all(np.isfinite(x)):
            best_cost = float(cost)
            best = x.copy()
            best_status = int(status)
    return best, best_status


def test_fit_essvi_slice__is_the_python_loop() -> None:
    for j, data in enumerate(_slices(20, seed=5)):
        theta0 = float(np.interp(0.0, data.log_moneyness, data.total_variance))
        starts = np.array([[-0.7, theta0, 0.4], [-0.5, theta0, min(0.5 * math.sqrt(theta0), 1.0)]])
        # Alternately the first slice and one constrained by a previous (theta, psi, rho).
        prev = np.zeros(5) if j % 2 else np.array([0.5 * theta0, 0.2, -0.6, 1.0, 0.0])
        prev[_k.OPT_COST_FLOOR] = cost_floor(data)
        expected, expected_status = _essvi_python(data, starts, prev)
        best = np.empty(3)
        status = _k.fit_essvi_slice(
            starts, data.log_moneyness, data.total_variance, data.scale, prev, 100, best
        )
        assert best.tobytes() == expected.tobytes()
        assert int(status) == expected_status
        assert np.all(np.isfinite(best))
