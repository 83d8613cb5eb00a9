"""Monte Carlo path kernels: geometric Brownian motion, Heston by Andersen's QE scheme, Longstaff-
Schwartz exercise, and the Brownian-bridge construction for quasi-random numbers.

Random numbers. With the pseudo-random sampler the kernels draw their standard normals
themselves, from the batch's own ``numpy.random.Generator`` (PCG64, seeded by the batch's
``SeedSequence``) passed into the compiled code: numba implements ``Generator.standard_normal``
with numpy's own ziggurat on the same bit generator, so the numbers are numpy's, bit for bit,
but drawn without the Python-level array fill, which was the bottleneck. A batch stays a pure
function of its seed, in one process or on any Dask worker. With Sobol the normals come in as an
array (already through the Brownian bridge).

Paths are advanced a chunk at a time (``CHUNK`` paths, step-major within the chunk): the chunk's
normals sit in a small buffer (path-major, so the pseudo-random stream is the one
``rng.standard_normal((rows, n_steps))`` would give), and each step updates the chunk's
independent paths in one loop, so the out-of-order core overlaps their long dependency chains
(Heston's QE step is mostly latency: divisions and square roots in a row). Memory is O(chunk ×
n_steps) for the buffers plus O(batch) for the outputs.

Each sample is one path, or with antithetic variates the mean over a path and its mirror (−Z), so
that samples stay independent and the standard error is honest. Kernels write the discounted
payoff ``x`` and a control variate ``y`` per sample; the wrapper knows E[y].

Symbols: x = ln S, Δt step, b = r − q, σ volatility; Heston v variance, κ mean reversion, θ long
variance, ξ volatility of variance, ρ correlation.
"""

from __future__ import annotations

import math

import numpy as np

from periscope._arrays import FloatArray
from periscope._numba import kernel

EUROPEAN = 0
ASIAN = 1
BARRIER = 2
AMERICAN = 3

CHUNK = 64
"""Paths advanced together: enough independent work per step to hide latency, small enough that
the chunk's normals (CHUNK by n_steps) stay in the L1/L2 cache."""

_PSI_CRITICAL = 1.5  # Andersen (2008): switch from the quadratic to the exponential branch
_NO_CROSSING = 38.0  # 2(x₀ − ln B)(x₁ − ln B)/σ²Δt beyond which 1 − e^(−·) rounds to exactly 1
_RENORMALIZE = 1e100  # bound on the deferred martingale-correction product (Heston, European)


@kernel
def _crossing_survival(x0: float, x1: float, log_barrier: float, variance: float) -> float:
    """P(no crossing of the barrier between two steps | both ends), Brownian bridge.

    For Brownian motion with variance ``variance`` over the step, pinned at x0 and x1 on the same
    side of ln B, P(cross) = exp(−2 (x0 − ln B)(x1 − ln B) / variance) (Glasserman, "Monte Carlo
    Methods in Financial Engineering", 2004, section 6.4, eq. 6.50; Beaglehole, Dybvig & Zhou
    1997). Multiplying these survival probabilities instead of checking the grid points only
    removes the discrete-monitoring bias (O(√Δt)) for a continuously monitored barrier.
    """
    a = x0 - log_barrier
    c = x1 - log_barrier
    if a * c <= 0.0:
        return 0.0
    if variance <= 0.0:
        return 1.0
    exponent = 2.0 * a * c / variance
    if exponent > _NO_CROSSING:
        return 1.0  # the same bits as below, without the exp
    return 1.0 - math.exp(-exponent)


@kernel
def _payoff(spot: float, K: float, sign: float) -> float:
    return max(sign * (spot - K), 0.0)


@kernel
def _draw_normals(generator: np.random.Generator, out: FloatArray, rows: int) -> None:
    """Fill ``out[:rows]`` with standard normals, row by row (path-major)."""
    for j in range(rows):
        for k in range(out.shape[1]):
            out[j, k] = generator.standard_normal()


@kernel
def _store_chunk(
    x_out: FloatArray,
    y_out: FloatArray,
    start: int,
    rows: int,
    disc: float,
    value: FloatArray,
    control: FloatArray,
    value2: FloatArray,
    control2: FloatArray,
    antithetic: bool,
) -> None:
    """Write a chunk's discounted payoffs and controls, averaging antithetic pairs."""
    for j in range(rows):
        if antithetic:
            x_out[start + j] = disc * (0.5 * (value[j] + value2[j]))
            y_out[start + j] = disc * (0.5 * (control[j] + control2[j]))
        else:
            x_out[start + j] = disc * value[j]
            y_out[start + j] = disc * control[j]


@kernel
def _gbm_chunk(
    z: FloatArray,
    rows: int,
    mirror: float,
    x0: float,
    drift: float,
    vol_step: float,
    kind: int,
    K: float,
    sign: float,
    log_barrier: float,
    barrier_variance: float,
    knock_in: bool,
    r_dt: float,
    coefficients: FloatArray,
    exercisable: FloatArray,
    x: FloatArray,
    work: FloatArray,
    work2: FloatArray,
    value: FloatArray,
    control: FloatArray,
) -> None:
    """Paths ``z[:rows]`` (sign ``mirror``): ``value``/``control`` get the undiscounted payoff and
    control (the American value is discounted from its exercise date back to T).

    ln S advances exactly: x += (b − σ²/2)Δt + σ√Δt·Z, so European prices carry no time-
    discretization bias whatever the number of steps; S itself is only computed where the payoff
    needs it (every step for the Asian average, in the money for American exercise).
    """
    n = z.shape[1]
    vol = mirror * vol_step
    for j in range(rows):
        x[j] = x0
    if kind == EUROPEAN:
        for k in range(n):
            for j in range(rows):
                x[j] += drift + vol * z[j, k]
        for j in range(rows):
            spot = math.exp(x[j])
            value[j] = _payoff(spot, K, sign)
            control[j] = spot
    elif kind == ASIAN:
        arithmetic, geometric = work, work2
        for j in range(rows):
            arithmetic[j] = 0.0
            geometric[j] = 0.0
        for k in range(n):
            for j in range(rows):
                xj = x[j] + drift + vol * z[j, k]
                x[j] = xj
                arithmetic[j] += math.exp(xj)
                geometric[j] += xj
        # Control: the geometric-average option on the same path (Kemna & Vorst 1990).
        for j in range(rows):
            value[j] = _payoff(arithmetic[j] / n, K, sign)
            control[j] = _payoff(math.exp(geometric[j] / n), K, sign)
    elif kind == BARRIER:
        survival = work
        for j in range(rows):
            survival[j] = 1.0
        for k in range(n):
            for j in range(rows):
                x_prev = x[j]
                x[j] = x_prev + drift + vol * z[j, k]
                if survival[j] > 0.0:
                    survival[j] *= _crossing_survival(x_prev, x[j], log_barrier, barrier_variance)
        # Knock-in = vanilla − knock-out, path by path (no rebate); the vanilla is the control.
        for j in range(rows):
            terminal = _payoff(math.exp(x[j]), K, sign)
            knocked_out = terminal * survival[j]
            value[j] = terminal - knocked_out if knock_in else knocked_out
            control[j] = terminal
    else:
        # Longstaff & Schwartz (2001): exercise when the payoff beats the regressed continuation
        # value; only in the money (sign·(x − ln K) > 0, no exp needed), as in their regression.
        exercised = work
        log_K = math.log(K)
        for j in range(rows):
            exercised[j] = -1.0
        for k in range(n):
            live = exercisable[k + 1] > 0.0 and k < n - 1
            for j in range(rows):
                xj = x[j] + drift + vol * z[j, k]
                x[j] = xj
                if live and exercised[j] < 0.0 and sign * (xj - log_K) > 0.0:
                    spot = math.exp(xj)
                    payoff = _payoff(spot, K, sign)
                    m = spot / K
                    continuation = 0.0
                    for i in range(coefficients.shape[1] - 1, -1, -1):  # Horner
                        continuation = continuation * m + coefficients[k + 1, i]
                    if payoff > 0.0 and payoff >= continuation:
                        exercised[j] = payoff * math.exp(r_dt * (n - k - 1))  # valued at T
        for j in range(rows):
            terminal = _payoff(math.exp(x[j]), K, sign)
            value[j] = exercised[j] if exercised[j] >= 0.0 else terminal
            control[j] = terminal


@kernel
def gbm_kernel(
    generator: np.random.Generator,
    z: FloatArray,
    n_steps: int,
    antithetic: bool,
    spot: float,
    rate: float,
    dividend_yield: float,
    volatility: float,
    time_to_expiry: float,
    kind: int,
    strike: float,
    is_call: bool,
    barrier: float,
    knock_in: bool,
    coefficients: FloatArray,
    exercisable: FloatArray,
    x_out: FloatArray,
    y_out: FloatArray,
) -> None:
    """Simulate ``x_out.shape[0]`` samples of GBM over ``n_steps`` equal steps.

    Normals: ``z`` (samples × n_steps, e.g. Sobol through the bridge) when it has rows, else
    drawn from ``generator``. ``x_out`` gets the discounted payoff, ``y_out`` the discounted
    control. ``coefficients`` and ``exercisable`` (per exercise date) are used only for AMERICAN.
    """
    n = n_steps
    samples = x_out.shape[0]
    draw = z.shape[0] == 0
    dt = time_to_expiry / n
    drift = (rate - dividend_yield - 0.5 * volatility * volatility) * dt
    vol_step = volatility * math.sqrt(dt)
    x0 = math.log(spot)
    sign = 1.0 if is_call else -1.0
    log_barrier = math.log(barrier) if barrier > 0.0 else 0.0
    variance = volatility * volatility * dt
    disc = math.exp(-rate * time_to_expiry)
    buffer = np.empty((CHUNK if draw else 0, n))
    x = np.empty(CHUNK)
    work = np.empty(CHUNK)
    work2 = np.empty(CHUNK)
    value = np.empty(CHUNK)
    control = np.empty(CHUNK)
    value2 = np.empty(CHUNK)
    control2 = np.empty(CHUNK)
    for start in range(0, samples, CHUNK):
        rows = min(CHUNK, samples - start)
        if draw:
            _draw_normals(generator, buffer, rows)
            zc = buffer[:rows]
        else:
            zc = z[start : start + rows]
        _gbm_chunk(
            zc, rows, 1.0, x0, drift, vol_step, kind, strike, sign, log_barrier, variance,
            knock_in, rate * dt, coefficients, exercisable, x, work, work2, value, control,
        )  # fmt: skip
        if antithetic:
            _gbm_chunk(
                zc, rows, -1.0, x0, drift, vol_step, kind, strike, sign, log_barrier, variance,
                knock_in, rate * dt, coefficients, exercisable, x, work, work2, value2, control2,
            )  # fmt: skip
        _store_chunk(x_out, y_out, start, rows, disc, value, control, value2, control2, antithetic)


@kernel
def _heston_chunk(
    zs: FloatArray,
    zv: FloatArray,
    rows: int,
    mirror: float,
    x0: float,
    v0: float,
    b_dt: float,
    kappa: float,
    theta: float,
    xi: float,
    rho: float,
    dt: float,
    kind: int,
    K: float,
    sign: float,
    log_barrier: float,
    knock_in: bool,
    x: FloatArray,
    v: FloatArray,
    correction: FloatArray,
    work: FloatArray,
    value: FloatArray,
    control: FloatArray,
) -> None:
    """Heston paths by Andersen's QE scheme with martingale correction; undiscounted payoff and
    terminal stock (the control) into ``value``/``control``.

    Andersen, "Simple and efficient simulation of the Heston stochastic volatility model", J.
    Comput. Finance 11(3), 2008: the variance step matches the CIR conditional mean m and
    variance s² (section 3.2): for ψ = s²/m² ≤ ψ_c = 1.5 a quadratic v' = a(b_q + Z_v)², else an
    exponential with a mass p at zero, v' = ln((1 − p)/(1 − U))/β for U > p. The log-price uses
    the central discretization γ₁ = γ₂ = ½ of ∫v dt (section 4.1) and K0 replaced by K0* so that
    E[S'] = S e^{bΔt} exactly (section 4.3, the martingale correction):

        x' = x + bΔt + K0* + K1 v + K2 v' + √(K3 v + K4 v') Z_s,  K0* = k0 − (K1 + K3/2) v,

    with k0 = −A b² a/(1 − 2Aa) + ½ ln(1 − 2Aa) (quadratic) or −ln(p + β(1 − p)/(β − A))
    (exponential), A = K2 + K4/2. The logarithms are deferred: their arguments are multiplied
    into ``correction`` (as (1 − 2Aa) and 1/q²) and ½ ln of the product is added to x when S is
    needed (every step unless the payoff is European, at expiry otherwise, or before the product
    could overflow). A non-positive argument (the scheme's A < 1/(2a), A < β conditions failing,
    for very large steps) gives NaN, as the logarithm would.
    """
    n = zs.shape[1]
    e = math.exp(-kappa * dt)
    # K1 v cancels against K0*'s −K1 v, leaving −(K3/2) v.
    k2 = 0.5 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = 0.5 * dt * (1.0 - rho * rho)  # = K4
    big_a = k2 + 0.5 * k3
    c1 = xi * xi * e * (1.0 - e) / kappa
    c2 = theta * xi * xi * (1.0 - e) * (1.0 - e) / (2.0 * kappa)
    theta_1e = theta * (1.0 - e)
    half_k3 = 0.5 * k3
    every_step = kind != EUROPEAN
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for j in range(rows):
        x[j] = x0
        v[j] = v0
        correction[j] = 1.0
        work[j] = 0.0 if kind == ASIAN else 1.0  # Asian sum, or barrier survival
    for k in range(n):
        for j in range(rows):
            vj = v[j]
            m = theta_1e + vj * e
            s2 = vj * c1 + c2
            m2 = m * m
            z_v = mirror * zv[j, k]
            if s2 <= _PSI_CRITICAL * m2:
                two_over_psi = 2.0 * m2 / s2
                b2 = two_over_psi - 1.0 + math.sqrt(two_over_psi * (two_over_psi - 1.0))
                a = m / (1.0 + b2)
                root = math.sqrt(b2) + z_v
                v_next = a * root * root
                one_minus = 1.0 - 2.0 * big_a * a
                k0 = -big_a * b2 * a / one_minus
                factor = one_minus if one_minus > 0.0 else math.nan
            else:
                psi = s2 / m2
                p = (psi - 1.0) / (psi + 1.0)
                beta = (1.0 - p) / m
                u = 0.5 * math.erfc(-z_v * inv_sqrt2)  # U = Φ(Z_v): one normal drives v
                v_next = 0.0 if u <= p else math.log((1.0 - p) / (1.0 - u)) / beta
                q = p + beta * (1.0 - p) / (beta - big_a)
                k0 = 0.0
                factor = 1.0 / (q * q) if q > 0.0 else math.nan
            x_prev = x[j]
            xj = (
                x_prev + b_dt + k0 - half_k3 * vj + k2 * v_next
                + math.sqrt(max(k3 * (vj + v_next), 0.0)) * (mirror * zs[j, k])
            )  # fmt: skip
            c = correction[j] * factor
            if every_step or not (1.0 / _RENORMALIZE < c < _RENORMALIZE):
                xj += 0.5 * math.log(c)
                c = 1.0
            correction[j] = c
            x[j] = xj
            v[j] = v_next
            if kind == ASIAN:
                work[j] += math.exp(xj)
            elif kind == BARRIER and work[j] > 0.0:
                # Bridge with the step's average variance: an approximation, as v moves.
                variance = 0.5 * (vj + v_next) * dt * (1.0 - rho * rho) + 1e-300
                work[j] *= _crossing_survival(x_prev, xj, log_barrier, variance)
    for j in range(rows):
        spot = math.exp(x[j] + 0.5 * math.log(correction[j]))
        terminal = _payoff(spot, K, sign)
        control[j] = spot
        if kind == ASIAN:
            value[j] = _payoff(work[j] / n, K, sign)
        elif kind == BARRIER:
            knocked_out = terminal * work[j]
            value[j] = terminal - knocked_out if knock_in else knocked_out
        else:
            value[j] = terminal


@kernel
def heston_kernel(
    generator: np.random.Generator,
    zs: FloatArray,
    zv: FloatArray,
    n_steps: int,
    antithetic: bool,
    spot: float,
    rate: float,
    dividend_yield: float,
    v0: float,
    kappa: float,
    theta: float,
    xi: float,
    rho: float,
    time_to_expiry: float,
    kind: int,
    strike: float,
    is_call: bool,
    barrier: float,
    knock_in: bool,
    x_out: FloatArray,
    y_out: FloatArray,
) -> None:
    """Simulate Heston samples; control ``y`` is the discounted terminal stock (E = S e^{−qT}).

    Normals: ``zs``, ``zv`` (samples × n_steps, stock and variance) when they have rows, else
    drawn from ``generator``, per chunk: the chunk's stock normals, then its variance normals.
    """
    n = n_steps
    samples = x_out.shape[0]
    draw = zs.shape[0] == 0
    dt = time_to_expiry / n
    x0 = math.log(spot)
    sign = 1.0 if is_call else -1.0
    log_barrier = math.log(barrier) if barrier > 0.0 else 0.0
    disc = math.exp(-rate * time_to_expiry)
    b_dt = (rate - dividend_yield) * dt
    buffer_s = np.empty((CHUNK if draw else 0, n))
    buffer_v = np.empty((CHUNK if draw else 0, n))
    x = np.empty(CHUNK)
    v = np.empty(CHUNK)
    correction = np.empty(CHUNK)
    work = np.empty(CHUNK)
    value = np.empty(CHUNK)
    control = np.empty(CHUNK)
    value2 = np.empty(CHUNK)
    control2 = np.empty(CHUNK)
    for start in range(0, samples, CHUNK):
        rows = min(CHUNK, samples - start)
        if draw:
            _draw_normals(generator, buffer_s, rows)
            _draw_normals(generator, buffer_v, rows)
            zs_c = buffer_s[:rows]
            zv_c = buffer_v[:rows]
        else:
            zs_c = zs[start : start + rows]
            zv_c = zv[start : start + rows]
        _heston_chunk(
            zs_c, zv_c, rows, 1.0, x0, v0, b_dt, kappa, theta, xi, rho, dt, kind, strike, sign,
            log_barrier, knock_in, x, v, correction, work, value, control,
        )  # fmt: skip
        if antithetic:
            _heston_chunk(
                zs_c, zv_c, rows, -1.0, x0, v0, b_dt, kappa, theta, xi, rho, dt, kind, strike,
                sign, log_barrier, knock_in, x, v, correction, work, value2, control2,
            )  # fmt: skip
        _store_chunk(x_out, y_out, start, rows, disc, value, control, value2, control2, antithetic)


@kernel
def brownian_bridge_kernel(
    normals: FloatArray,
    left: FloatArray,
    right: FloatArray,
    target: FloatArray,
    left_weight: FloatArray,
    right_weight: FloatArray,
    stddev: FloatArray,
    out: FloatArray,
) -> None:
    """Turn normals in bridge order into standardized increments, path by path, in place of out.

    The first normal fixes W(T), each next one the midpoint of the widest gap still open
    (Glasserman 2004, section 3.1.2; Caflisch, Morokoff & Owen 1997): the Sobol coordinates with
    the best uniformity then carry most of the path's variance. ``left``/``right`` index the
    points already built (−1 for time 0), ``target`` the point built at each stage.
    """
    n = normals.shape[1]
    w = np.zeros(n)
    for i in range(normals.shape[0]):
        for stage in range(n):
            li = int(left[stage])
            ri = int(right[stage])
            w_left = 0.0 if li < 0 else w[li]
            w_right = 0.0 if ri < 0 else w[ri]
            w[int(target[stage])] = (
                left_weight[stage] * w_left
                + right_weight[stage] * w_right
                + stddev[stage] * normals[i, stage]
            )
        previous = 0.0
        for k in range(n):
            out[i, k] = (w[k] - previous) * math.sqrt(n)  # increments of a unit-time W, × √n
            previous = w[k]
