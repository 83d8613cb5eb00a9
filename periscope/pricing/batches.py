"""Monte Carlo batches: a pure plan, a pure batch runner, and an order-fixed combiner.

``plan_batches`` splits the paths into :class:`BatchSpec` values, each carrying its own random
stream key: ``SeedSequence(seed, spawn_key=(1, index))``, the same key ``SeedSequence(seed)
.spawn`` would derive, but computable for any batch without the others. ``run_batch`` is a pure
function of (spec, model, payoff, settings, policy) returning partial sums; ``combine`` sums them
in batch order. So a Dask ``client.map(run_batch, specs, ...)`` followed by ``combine`` gives the
bits of the single-process :func:`~periscope.pricing.montecarlo.monte_carlo_price`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import ndtri

from periscope._arrays import FloatArray
from periscope.errors import InvalidInputError
from periscope.pricing._kernels import montecarlo as kernels
from periscope.pricing.lsm import ExercisePolicy
from periscope.pricing.montecarlo import (
    American,
    ArithmeticAsian,
    Barrier,
    European,
    GeometricBrownianMotion,
    Heston,
    Model,
    MonteCarloResult,
    MonteCarloSettings,
    Payoff,
)

__all__ = ["BatchResult", "BatchSpec", "combine", "plan_batches", "run_batch"]

BATCH_STREAM = 1  # stream 0 is the Longstaff-Schwartz calibration (periscope.pricing.lsm)


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """One batch: its position, its number of paths, and its random stream's key."""

    index: int
    n_paths: int
    seed: int

    def seed_sequence(self) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(BATCH_STREAM, self.index))


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Partial sums of one batch, over its samples (a sample is a path or an antithetic pair).

    ``x`` is the discounted payoff, ``y`` the discounted control with known mean
    ``control_mean`` (NaN when no control is used). ``across_batches`` marks randomized QMC,
    whose error is measured between batches.
    """

    index: int
    n_paths: int
    n_samples: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_yy: float
    sum_xy: float
    control_mean: float
    across_batches: bool


def plan_batches(n_paths: int, batch_size: int, seed: int) -> tuple[BatchSpec, ...]:
    """Split ``n_paths`` into batches of ``batch_size`` (the last one smaller), each with its key.

    Examples
    --------
    >>> [(b.index, b.n_paths) for b in plan_batches(10, 4, seed=1)]
    [(0, 4), (1, 4), (2, 2)]
    """
    if n_paths < 1 or batch_size < 1:
        raise InvalidInputError("n_paths and batch_size must be positive", argument="n_paths")
    count = -(-n_paths // batch_size)
    return tuple(
        BatchSpec(index=i, n_paths=min(batch_size, n_paths - i * batch_size), seed=seed)
        for i in range(count)
    )


@cache
def _bridge_plan(
    n: int,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Construction order of a Brownian bridge on the unit-time grid k/n, k = 1..n."""
    left = np.empty(n)
    right = np.empty(n)
    target = np.empty(n)
    wl = np.empty(n)
    wr = np.empty(n)
    sd = np.empty(n)
    # Stage 0 builds W(1) from W(0) = 0; then bisect the open gaps (indices are points 0..n-1,
    # point k at time (k + 1)/n, −1 is time 0).
    left[0], right[0], target[0], wl[0], wr[0], sd[0] = -1, -1, n - 1, 0.0, 0.0, 1.0
    gaps = [(-1, n - 1)]
    stage = 1
    while gaps:
        next_gaps = []
        for lo, hi in gaps:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            t_lo, t_mid, t_hi = (lo + 1) / n, (mid + 1) / n, (hi + 1) / n
            left[stage], right[stage], target[stage] = lo, hi, mid
            wl[stage] = (t_hi - t_mid) / (t_hi - t_lo)
            wr[stage] = (t_mid - t_lo) / (t_hi - t_lo)
            sd[stage] = math.sqrt((t_mid - t_lo) * (t_hi - t_mid) / (t_hi - t_lo))
            stage += 1
            next_gaps += [(lo, mid), (mid, hi)]
        gaps = next_gaps
    return left, right, target, wl, wr, sd


def _sobol_normals(
    rng: np.random.Generator, settings: MonteCarloSettings, rows: int, blocks: int
) -> list[FloatArray]:
    """``blocks`` arrays of shape (rows, n_steps) of quasi-random normals for one batch, as
    Brownian increments (the pseudo-random sampler draws inside the kernels instead)."""
    from scipy.stats import qmc  # imported here: scipy.stats costs seconds at import time

    n = settings.n_steps
    # Randomized QMC: an Owen-scrambled Sobol set per batch (scipy's qmc), coordinates in bridge
    # order so the first, best-distributed ones drive W(T) and the coarse path shape.
    sobol = qmc.Sobol(d=n * blocks, scramble=True, seed=rng)
    uniforms = sobol.random(rows)
    np.clip(uniforms, 1e-16, 1.0 - 1e-16, out=uniforms)
    out = []
    plan = _bridge_plan(n)
    for block in range(blocks):
        normals = np.ascontiguousarray(ndtri(uniforms[:, block * n : (block + 1) * n]))
        increments = np.empty_like(normals)
        left, right, target, wl, wr, sd = plan
        kernels.brownian_bridge_kernel(normals, left, right, target, wl, wr, sd, increments)
        out.append(increments)
    return out


def _black_scholes(
    spot: float, strike: float, T: float, r: float, q: float, vol: float, is_call: bool
) -> float:
    """Scalar Black-Scholes-Merton price for the control means.

    Plain Python on purpose: a batch on a fresh Dask worker would otherwise compile the vectorized
    kernel of :func:`periscope.pricing.black_scholes_price` just for one number.
    """
    sign = 1.0 if is_call else -1.0
    forward_pv, strike_pv = spot * math.exp(-q * T), strike * math.exp(-r * T)
    deviation = vol * math.sqrt(T)
    if deviation == 0.0:
        return max(sign * (forward_pv - strike_pv), 0.0)
    d1 = math.log(forward_pv / strike_pv) / deviation + 0.5 * deviation
    d2 = d1 - deviation

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    return sign * (forward_pv * cdf(sign * d1) - strike_pv * cdf(sign * d2))


def _control_mean(model: Model, payoff: Payoff, n_steps: int) -> float:
    """E[discounted control] of the control the kernels write for this model and payoff."""
    T = payoff.time_to_expiry
    forward_pv = model.spot * math.exp(-model.dividend_yield * T)
    if isinstance(model, Heston) or isinstance(payoff, European):
        return forward_pv
    if isinstance(payoff, ArithmeticAsian):
        # ln G, G the geometric mean of S at t_i = iT/n, is normal with mean
        # ln S + (b − σ²/2)·T(n+1)/(2n) and variance σ²T(n+1)(2n+1)/(6n²).
        sigma, n = model.volatility, n_steps
        mean = math.log(model.spot) + (model.rate - model.dividend_yield - 0.5 * sigma**2) * T * (
            n + 1
        ) / (2 * n)
        var = sigma**2 * T * (n + 1) * (2 * n + 1) / (6 * n * n)
        if var == 0.0:
            sign = 1.0 if payoff.is_call else -1.0
            return math.exp(-model.rate * T) * max(sign * (math.exp(mean) - payoff.strike), 0.0)
        # Black-76 on the lognormal G, forward E[G] = e^{mean + var/2}, total deviation √var.
        forward = math.exp(mean + 0.5 * var)
        undiscounted = _black_scholes(
            forward, payoff.strike, 1.0, 0.0, 0.0, math.sqrt(var), payoff.is_call
        )
        return math.exp(-model.rate * T) * undiscounted
    # Barrier and American: the vanilla European on the same path.
    return _black_scholes(
        model.spot,
        payoff.strike,
        T,
        model.rate,
        model.dividend_yield,
        model.volatility,
        payoff.is_call,
    )


def run_batch(
    spec: BatchSpec,
    model: Model,
    payoff: Payoff,
    settings: MonteCarloSettings,
    policy: ExercisePolicy | None = None,
) -> BatchResult:
    """Simulate one batch and return its partial sums (a pure function of its arguments)."""
    rng = np.random.Generator(np.random.PCG64(spec.seed_sequence()))
    rows = spec.n_paths // 2 if settings.antithetic else spec.n_paths
    kind = {European: kernels.EUROPEAN, ArithmeticAsian: kernels.ASIAN, Barrier: kernels.BARRIER,
            American: kernels.AMERICAN}[type(payoff)]  # fmt: skip
    barrier = payoff.barrier if isinstance(payoff, Barrier) else 0.0
    knock_in = payoff.knock_in if isinstance(payoff, Barrier) else False
    x = np.empty(rows)
    y = np.empty(rows)
    T = payoff.time_to_expiry
    n = settings.n_steps
    # Pseudo-random: the kernels draw from ``rng`` themselves, chunk by chunk (the empty normal
    # arrays say so); Sobol: the batch's normals are made here (scipy) and passed in.
    pseudo = settings.sampler == "pseudo"
    if isinstance(model, GeometricBrownianMotion):
        (z,) = [np.empty((0, n))] if pseudo else _sobol_normals(rng, settings, rows, 1)
        if policy is None:
            coefficients, exercisable = np.zeros((n + 1, 1)), np.zeros(1)
        else:
            coefficients, exercisable = policy.coefficients, policy.exercisable
        kernels.gbm_kernel(
            rng, z, n, settings.antithetic, model.spot, model.rate, model.dividend_yield,
            model.volatility, T, kind, payoff.strike, payoff.is_call, barrier, knock_in,
            coefficients, exercisable, x, y,
        )  # fmt: skip
    else:
        zs, zv = [np.empty((0, n))] * 2 if pseudo else _sobol_normals(rng, settings, rows, 2)
        kernels.heston_kernel(
            rng, zs, zv, n, settings.antithetic, model.spot, model.rate, model.dividend_yield,
            model.initial_variance, model.mean_reversion, model.long_variance,
            model.vol_of_variance, model.correlation, T, kind, payoff.strike, payoff.is_call,
            barrier, knock_in, x, y,
        )  # fmt: skip
    control = (
        _control_mean(model, payoff, settings.n_steps) if settings.control_variate else math.nan
    )
    return BatchResult(
        index=spec.index,
        n_paths=spec.n_paths,
        n_samples=rows,
        sum_x=float(x.sum()),
        sum_y=float(y.sum()),
        sum_xx=float(x @ x),
        sum_yy=float(y @ y),
        sum_xy=float(x @ y),
        control_mean=control,
        across_batches=settings.sampler == "sobol",
    )


def combine(results: Sequence[BatchResult]) -> MonteCarloResult:
    """Merge batch results, in batch order, into a price and standard error.

    With a control, the estimator is x̄ − β(ȳ − E[y]) with the pooled β = Cov(x, y)/Var(y)
    (Glasserman 2004, section 4.1); its variance is Var(x) − Cov(x, y)²/Var(y) per sample. For
    randomized QMC the standard error is the spread of the batch estimates (each batch an
    independent scrambling) over √(batches).
    """
    if not results:
        raise InvalidInputError("no batch results to combine", argument="results")
    ordered = sorted(results, key=lambda r: r.index)
    n = sum(r.n_samples for r in ordered)
    sx = math.fsum(r.sum_x for r in ordered)
    sy = math.fsum(r.sum_y for r in ordered)
    sxx = math.fsum(r.sum_xx for r in ordered)
    syy = math.fsum(r.sum_yy for r in ordered)
    sxy = math.fsum(r.sum_xy for r in ordered)
    mean_x, mean_y = sx / n, sy / n
    var_x = max(sxx / n - mean_x**2, 0.0) * n / max(n - 1, 1)
    var_y = max(syy / n - mean_y**2, 0.0) * n / max(n - 1, 1)
    cov = (sxy / n - mean_x * mean_y) * n / max(n - 1, 1)
    control = ordered[0].control_mean
    beta = cov / var_y if math.isfinite(control) and var_y > 0.0 else 0.0
    adjust = control if beta != 0.0 else 0.0
    price = mean_x - beta * (mean_y - adjust)
    n_paths = sum(r.n_paths for r in ordered)
    if ordered[0].across_batches:
        estimates = np.array(
            [r.sum_x / r.n_samples - beta * (r.sum_y / r.n_samples - adjust) for r in ordered]
        )
        error = float(estimates.std(ddof=1) / math.sqrt(len(estimates)))
    else:
        variance = max(var_x - 2.0 * beta * cov + beta * beta * var_y, 0.0)
        error = math.sqrt(variance / n)
    return MonteCarloResult(price=float(price), standard_error=error, n_paths=n_paths)
