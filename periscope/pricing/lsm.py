"""Longstaff-Schwartz exercise policy, fitted on its own calibration paths.

Longstaff & Schwartz, "Valuing American options by simulation: a simple least-squares approach",
Rev. Financial Studies 14(1), 2001. Backwards from expiry, the discounted cash flows of the
in-the-money calibration paths are regressed on a polynomial in S/K; the fitted value estimates
continuation. The policy (one coefficient vector per exercise date) is then applied to fresh,
independent pricing paths in the batches, which makes the price a low-biased estimate of the
Bermudan value (the in-sample estimate would be biased upwards by the regression's look-ahead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from periscope._arrays import FloatArray

__all__ = ["ExercisePolicy", "fit_exercise_policy"]

CALIBRATION_STREAM = 0


@dataclass(frozen=True, slots=True)
class ExercisePolicy:
    """Continuation-value polynomials in S/K, one row per date index 0..n (rows 0 and n unused).

    ``exercisable[k]`` is 0 where too few paths were in the money to regress: never exercise there.
    """

    coefficients: FloatArray
    exercisable: FloatArray


def fit_exercise_policy(model: object, payoff: object, settings: object) -> ExercisePolicy:
    """Regress continuation values on calibration paths (stream 0 of the root seed).

    The arguments are a :class:`~periscope.pricing.montecarlo.GeometricBrownianMotion`, an
    :class:`~periscope.pricing.montecarlo.American` payoff and the
    :class:`~periscope.pricing.montecarlo.MonteCarloSettings`. Memory: the calibration paths,
    ``n_calibration_paths × n_steps`` floats.
    """
    from periscope.pricing.montecarlo import American, GeometricBrownianMotion, MonteCarloSettings

    assert isinstance(model, GeometricBrownianMotion)
    assert isinstance(payoff, American)
    assert isinstance(settings, MonteCarloSettings)
    n = settings.n_steps
    degree = settings.basis_degree
    seed = np.random.SeedSequence(settings.seed, spawn_key=(CALIBRATION_STREAM,))
    rng = np.random.Generator(np.random.PCG64(seed))
    half = max(settings.n_calibration_paths // 2, 1)
    z = rng.standard_normal((half, n))
    z = np.concatenate([z, -z])  # antithetic calibration paths: a steadier regression
    dt = payoff.time_to_expiry / n
    sigma = model.volatility
    increments = (model.rate - model.dividend_yield - 0.5 * sigma * sigma) * dt
    log_paths = math.log(model.spot) + np.cumsum(increments + sigma * math.sqrt(dt) * z, axis=1)
    spots = np.exp(log_paths) / payoff.strike  # moneyness S/K at dates 1..n
    sign = 1.0 if payoff.is_call else -1.0
    coefficients = np.zeros((n + 1, degree + 1))
    exercisable = np.zeros(n + 1)
    cash = np.maximum(sign * (spots[:, -1] - 1.0), 0.0) * payoff.strike
    step_discount = math.exp(-model.rate * dt)
    for k in range(n - 1, 0, -1):  # date index k is time k·dt; column k − 1 of the paths
        cash *= step_discount
        m = spots[:, k - 1]
        exercise = np.maximum(sign * (m - 1.0), 0.0) * payoff.strike
        itm = exercise > 0.0
        if itm.sum() <= 2 * (degree + 1):
            continue
        basis = np.vander(m[itm], degree + 1, increasing=True)
        fitted, *_ = np.linalg.lstsq(basis, cash[itm], rcond=None)
        coefficients[k] = fitted
        exercisable[k] = 1.0
        now = itm.copy()
        now[itm] = exercise[itm] >= basis @ fitted
        cash[now] = exercise[now]
    return ExercisePolicy(coefficients=coefficients, exercisable=exercisable)
