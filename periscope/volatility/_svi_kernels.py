"""Numba kernels for smile fitting: raw SVI and eSSVI slices, Durrleman's g, one LM loop.

Symbols (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces", QF 14(1)):
``k`` log-moneyness ``ln(K/F)``; ``w`` total implied variance ``sigma^2 T``; raw SVI
``w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sig^2))``; eSSVI (Hendriks & Martini 2019)
``w(k) = (theta + rho psi k + sqrt(psi^2 k^2 + 2 theta rho psi k + theta^2)) / 2`` with
``psi = theta phi``.

Every fit minimizes ``sum_i (s_i (w_model(k_i) - w_i))^2``: ``s_i`` turns a total-variance error
into a weighted volatility error (``s_i = sqrt(weight_i) / (2 T sigma_mid_i)``, the first-order
map ``d sigma = dw / (2 T sigma)``), which keeps the residual smooth where a trial ``w`` is
negative (``sqrt(w / T)`` would not be).

The Levenberg-Marquardt loop is shared by both models (``model`` 0 is raw SVI, 1 an eSSVI slice):
Marquardt's diagonal scaling, steps projected back onto the feasible set (bounds, Lee's wing
bound, non-negative minimum variance for SVI; the Mingone 2022 calendar box and the GJ Theorem
4.2 butterfly caps for eSSVI), Nielsen's damping update after a successful step, doubling
growth after failed ones. Kernels never raise: they return a status (0 converged, 1 iteration cap).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from periscope._numba import inline, kernel

FloatArray = npt.NDArray[np.float64]

CONVERGED = 0
ITERATION_CAP = 1

MODEL_SVI = 0
MODEL_ESSVI = 1

# Relative decrease of the cost below which LM stops; the residuals are weighted volatility
# errors, so 1e-12 of the cost is far below any quoted precision.
COST_TOLERANCE = 1e-9
# LM also stops when the cost fell by less than this (relative) over the last PLATEAU_WINDOW
# steps: SVI has long flat valleys (a wing traded between b, rho and m) where LM crawls for
# hundreds of steps while the RMSE changes in its fifth digit (0.003 bp at 60 bp).
PLATEAU_TOLERANCE = 1e-4
PLATEAU_WINDOW = 10
# A step moving every parameter by less than this (relative to its size, absolute near zero)
# ends the loop too.
STEP_TOLERANCE = 1e-12
# Failed damping increases tried before LM declares the current point a (projected) minimum.
MAX_DAMPING_TRIES = 14
# |rho| stays below this in both models: at |rho| = 1 SVI's minimum-variance term and the eSSVI
# calendar ratio (1 - rho_prev) / (1 - rho) degenerate.
RHO_MAX = 0.999
# GJ Theorem 4.2 needs psi (1 + |rho|) < 4 strictly.
ESSVI_WING_CAP = 4.0 * (1.0 - 1e-9)
# Durrleman's g is checked on a uniform grid plus m + sig sinh(z), z in [-8, 8]: g varies on the
# scale sig around m (far below any fixed step for short expiries), on the scale |k - m| beyond.
FEATURE_POINTS = 321
FEATURE_HALF_WIDTH = 8.0
# Beyond the uniform grid g varies on the scale |k|: the check grid continues into both wings
# with points FAR_RATIO apart out to |k| = FAR_LIMIT (about 85 per side). Further out g is
# monotone in |k| (its expansion is 1/4 - beta^2/16 + O(1/k), beta the wing slope; Lee's bound
# keeps the limit non-negative), so a slice that passes at FAR_LIMIT passes beyond.
FAR_RATIO = 1.1
FAR_LIMIT = 1e4
# Grid-local minima of g are refined between their grid neighbours by golden-section search
# (the grid alone misses dips narrower than its step: a fit whose penalty held g >= 0 at the grid
# points can dip to -3e-7 between two of them). Refined when g there is below REFINE_BELOW plus
# the rise to its neighbours; the search stops at a bracket of REFINE_WIDTH relative to |k|.
REFINE_BELOW = 1e-3
REFINE_WIDTH = 1e-13
REFINE_MAX_STEPS = 80
GOLDEN = 0.6180339887498949
# Reduced-cost evaluations the compass search of refine_start may spend.
REFINE_EVALUATIONS = 48
# Options vector layout for the SVI model.
OPT_PENALTY_WEIGHT = 0
OPT_PENALTY_MARGIN = 1
OPT_MIN_VARIANCE = 2
OPT_LEE_CAP = 3
# Both models: a cost at or below this ends LM (the fit is exact to the data's precision).
OPT_COST_FLOOR = 4


@inline
def svi_w(a: float, b: float, rho: float, m: float, sig: float, k: float) -> float:
    """Raw SVI total variance at ``k``."""
    u = k - m
    return a + b * (rho * u + math.sqrt(u * u + sig * sig))


@inline
def svi_g(a: float, b: float, rho: float, m: float, sig: float, k: float) -> float:
    """Durrleman's ``g(k) = (1 - k w'/(2w))^2 - w'^2/4 (1/w + 1/4) + w''/2`` for raw SVI.

    ``-inf`` where ``w <= 0`` (no density exists there); GJ 2014 eq. 2.1 and Lemma 2.2.
    """
    u = k - m
    s2 = sig * sig
    root = math.sqrt(u * u + s2)
    w = a + b * (rho * u + root)
    if not w > 0.0:
        return -math.inf
    w1 = b * (rho + u / root)
    w2 = b * s2 / (root * root * root)
    x = 1.0 - k * w1 / (2.0 * w)
    return x * x - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2


@kernel
def svi_values(
    a: float,
    b: float,
    rho: float,
    m: float,
    sig: float,
    k: FloatArray,
    w: FloatArray,
    w1: FloatArray,
    w2: FloatArray,
    g: FloatArray,
) -> None:
    """Fill ``w``, ``w'``, ``w''`` and Durrleman's ``g`` of a raw SVI slice at each ``k``."""
    s2 = sig * sig
    for i in range(k.size):
        u = k[i] - m
        root = math.sqrt(u * u + s2)
        w[i] = a + b * (rho * u + root)
        w1[i] = b * (rho + u / root)
        w2[i] = b * s2 / (root * root * root)
        g[i] = svi_g(a, b, rho, m, sig, k[i])


@kernel
def essvi_values(
    theta: FloatArray, rho: FloatArray, psi: FloatArray, k: FloatArray, out: FloatArray
) -> None:
    """eSSVI total variance, elementwise over equally long flat arrays."""
    for i in range(k.size):
        th = theta[i]
        eta = rho[i] * psi[i]
        x = psi[i] * k[i]
        out[i] = 0.5 * (th + eta * k[i] + math.sqrt(x * x + 2.0 * th * eta * k[i] + th * th))


@inline
def _solve(matrix: FloatArray, rhs: FloatArray, n: int) -> bool:
    """Solve ``matrix x = rhs`` in place (Gaussian elimination, partial pivoting); False if
    singular. ``rhs`` holds the solution afterwards."""
    for col in range(n):
        pivot = col
        biggest = abs(matrix[col, col])
        for row in range(col + 1, n):
            if abs(matrix[row, col]) > biggest:
                biggest = abs(matrix[row, col])
                pivot = row
        if not biggest > 0.0:
            return False
        if pivot != col:
            for j in range(n):
                tmp = matrix[col, j]
                matrix[col, j] = matrix[pivot, j]
                matrix[pivot, j] = tmp
            tmp = rhs[col]
            rhs[col] = rhs[pivot]
            rhs[pivot] = tmp
        for row in range(col + 1, n):
            factor = matrix[row, col] / matrix[col, col]
            for j in range(col, n):
                matrix[row, j] -= factor * matrix[col, j]
            rhs[row] -= factor * rhs[col]
    for col in range(n - 1, -1, -1):
        total = rhs[col]
        for j in range(col + 1, n):
            total -= matrix[col, j] * rhs[j]
        rhs[col] = total / matrix[col, col]
    return True


@kernel
def _project_svi(x: FloatArray, lower: FloatArray, upper: FloatArray, opts: FloatArray) -> None:
    """Clip to the box, then enforce Lee's ``b (1 + |rho|) <= cap`` and a minimum variance."""
    for j in range(5):
        x[j] = min(max(x[j], lower[j]), upper[j])
    rho = x[2]
    b_cap = opts[OPT_LEE_CAP] / (1.0 + abs(rho))
    if x[1] > b_cap:
        x[1] = b_cap
    floor = opts[OPT_MIN_VARIANCE] - x[1] * x[4] * math.sqrt(1.0 - rho * rho)
    if x[0] < floor:
        x[0] = floor


@kernel
def _project_essvi(x: FloatArray, lower: FloatArray, upper: FloatArray, prev: FloatArray) -> None:
    """Project ``(rho, theta, psi)`` onto the arbitrage-free box given the previous slice.

    Mingone 2022 (arXiv 2204.00312), with ``p = max((1 + rho_p)/(1 + rho), (1 - rho_p)/(1 - rho))``:
    ``psi >= p psi_p`` (both wing slopes grow) and ``psi / theta <= psi_p / theta_p`` (phi does
    not increase) exclude calendar arbitrage against the previous slice; GJ Theorem 4.2's
    ``psi (1 + |rho|) < 4`` and ``psi^2 (1 + |rho|) <= 4 theta`` exclude butterfly arbitrage.
    The order below keeps the box non-empty: a rho whose ``p psi_p`` breaks the wing cap falls
    back to ``rho_p`` (where ``p = 1``), then theta is raised until every lower bound on psi is
    below every upper bound.
    """
    for j in range(3):
        x[j] = min(max(x[j], lower[j]), upper[j])
    rho = x[0]
    has_prev = prev[3] > 0.5
    p = 1.0
    theta_prev = prev[0]
    psi_prev = prev[1]
    rho_prev = prev[2]
    if has_prev:
        p = max((1.0 + rho_prev) / (1.0 + rho), (1.0 - rho_prev) / (1.0 - rho))
        if p * psi_prev * (1.0 + abs(rho)) > ESSVI_WING_CAP:
            rho = rho_prev
            p = 1.0
            x[0] = rho
    one_rho = 1.0 + abs(rho)
    psi_low = 0.0
    theta_low = x[1]
    if has_prev:
        psi_low = p * psi_prev
        theta_low = max(theta_low, p * theta_prev, psi_low * psi_low * one_rho / 4.0)
    x[1] = theta_low
    psi_high = min(ESSVI_WING_CAP / one_rho, math.sqrt(4.0 * x[1] / one_rho), upper[2])
    if has_prev:
        psi_high = min(psi_high, psi_prev * x[1] / theta_prev)
    x[2] = min(max(x[2], psi_low), psi_high)
    if x[2] < psi_low:  # rounding only: the box is never empty by construction
        x[2] = psi_low


@kernel
def _fill_svi(
    x: FloatArray,
    k: FloatArray,
    w: FloatArray,
    s: FloatArray,
    pk: FloatArray,
    opts: FloatArray,
    r: FloatArray,
    jac: FloatArray,
    scratch: FloatArray,
) -> None:
    """Residuals and Jacobian of raw SVI: data rows, then Durrleman penalty rows.

    Data rows use the analytic Jacobian (``u = k - m``, ``r = sqrt(u^2 + sig^2)``):
    ``dw/da = 1, dw/db = rho u + r, dw/drho = b u, dw/dm = b(-rho - u/r), dw/dsig = b sig/r``.
    Penalty rows ``mu min(g(k_j) - margin, 0)`` (only when a refit must remove butterfly
    arbitrage) are differentiated by forward differences: g's analytic gradient is long and these
    rows are few.
    """
    a = x[0]
    b = x[1]
    rho = x[2]
    m = x[3]
    sig = x[4]
    n = k.size
    s2 = sig * sig
    for i in range(n):
        u = k[i] - m
        root = math.sqrt(u * u + s2)
        si = s[i]
        r[i] = si * (a + b * (rho * u + root) - w[i])
        jac[i, 0] = si
        jac[i, 1] = si * (rho * u + root)
        jac[i, 2] = si * b * u
        jac[i, 3] = si * b * (-rho - u / root)
        jac[i, 4] = si * b * sig / root
    npen = pk.size
    if npen == 0:
        return
    mu = opts[OPT_PENALTY_WEIGHT]
    margin = opts[OPT_PENALTY_MARGIN]
    for j in range(npen):
        g = svi_g(a, b, rho, m, sig, pk[j])
        r[n + j] = mu * min(g - margin, 0.0) if g > -1e6 else -mu * 1e6
    for p in range(5):
        for q in range(5):
            scratch[q] = x[q]
        h = 1e-7 * max(abs(x[p]), 1e-4)
        scratch[p] = x[p] + h
        for j in range(npen):
            g = svi_g(scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], pk[j])
            value = mu * min(g - margin, 0.0) if g > -1e6 else -mu * 1e6
            jac[n + j, p] = (value - r[n + j]) / h


@kernel
def _fill_essvi(
    x: FloatArray, k: FloatArray, w: FloatArray, s: FloatArray, r: FloatArray, jac: FloatArray
) -> None:
    """Residuals and analytic Jacobian of one eSSVI slice in ``(rho, theta, psi)``.

    ``2w = theta + rho psi k + R``, ``R = sqrt(psi^2 k^2 + 2 theta rho psi k + theta^2)``.
    """
    rho = x[0]
    theta = x[1]
    psi = x[2]
    for i in range(k.size):
        ki = k[i]
        root = math.sqrt(psi * psi * ki * ki + 2.0 * theta * rho * psi * ki + theta * theta)
        si = s[i]
        r[i] = si * (0.5 * (theta + rho * psi * ki + root) - w[i])
        inv = 1.0 / root if root > 0.0 else 0.0
        jac[i, 0] = si * 0.5 * (psi * ki + theta * psi * ki * inv)
        jac[i, 1] = si * 0.5 * (1.0 + (rho * psi * ki + theta) * inv)
        jac[i, 2] = si * 0.5 * (rho * ki + (psi * ki * ki + theta * rho * ki) * inv)


@kernel
def levenberg_marquardt(
    model: int,
    x: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    k: FloatArray,
    w: FloatArray,
    s: FloatArray,
    pk: FloatArray,
    opts: FloatArray,
    max_iterations: int,
) -> tuple[float, int, int]:
    """Minimize the model's sum of squared residuals from ``x`` (updated in place).

    ``opts`` is the SVI options vector for ``model`` 0 and the previous eSSVI slice
    ``(theta, psi, rho, has_previous)`` for ``model`` 1, both followed by the cost floor at
    index :data:`OPT_COST_FLOOR`. Returns ``(cost, iterations, status)``.
    """
    nx = x.size
    nres = k.size + pk.size
    r = np.empty(nres)
    jac = np.empty((nres, nx))
    r_try = np.empty(nres)
    jac_try = np.empty((nres, nx))
    x_try = np.empty(nx)
    scratch = np.empty(nx)
    normal = np.empty((nx, nx))
    grad = np.empty(nx)
    step = np.empty(nx)
    if model == MODEL_SVI:
        _project_svi(x, lower, upper, opts)
        _fill_svi(x, k, w, s, pk, opts, r, jac, scratch)
    else:
        _project_essvi(x, lower, upper, opts)
        _fill_essvi(x, k, w, s, r, jac)
    cost = 0.0
    for i in range(nres):
        cost += r[i] * r[i]
    if not math.isfinite(cost):
        return cost, 0, ITERATION_CAP
    damping = 1e-3
    iterations = 0
    status = ITERATION_CAP
    matrix = np.empty((nx, nx))
    frozen = np.zeros(nx, dtype=np.bool_)
    history = np.full(PLATEAU_WINDOW, math.inf)
    while iterations < max_iterations:
        iterations += 1
        # J^T J and J^T r row by row (contiguous rows of the C-ordered Jacobian).
        for p in range(nx):
            grad[p] = 0.0
            for q in range(nx):
                normal[p, q] = 0.0
        for i in range(nres):
            ri = r[i]
            for p in range(nx):
                jp = jac[i, p]
                grad[p] += jp * ri
                for q in range(p, nx):
                    normal[p, q] += jp * jac[i, q]
        for p in range(nx):
            for q in range(p + 1, nx):
                normal[q, p] = normal[p, q]
        diag_max = 0.0
        for p in range(nx):
            diag_max = max(diag_max, normal[p, p])
        if not diag_max > 0.0:
            status = CONVERGED  # nothing depends on the parameters: any point is optimal
            break
        # Box bounds the gradient pushes against stay where they are this step (active set),
        # so LM does not waste its steps on moves the projection would undo.
        for p in range(nx):
            frozen[p] = (x[p] <= lower[p] and grad[p] > 0.0) or (x[p] >= upper[p] and grad[p] < 0.0)
        accepted = False
        cost_try = cost
        predicted = 0.0
        growth = 2.0
        for _ in range(MAX_DAMPING_TRIES):
            for p in range(nx):
                for q in range(nx):
                    matrix[p, q] = 0.0 if (frozen[p] or frozen[q]) else normal[p, q]
                if frozen[p]:
                    matrix[p, p] = 1.0
                    step[p] = 0.0
                else:
                    matrix[p, p] += damping * max(normal[p, p], 1e-12 * diag_max)
                    step[p] = -grad[p]
            if _solve(matrix, step, nx):
                # Reduction the linear model predicts: -h.g + damping h.D.h (cost = r.r).
                predicted = 0.0
                for p in range(nx):
                    if not frozen[p]:
                        scale_p = max(normal[p, p], 1e-12 * diag_max)
                        predicted += step[p] * (damping * scale_p * step[p] - grad[p])
                for p in range(nx):
                    x_try[p] = x[p] + step[p]
                if model == MODEL_SVI:
                    _project_svi(x_try, lower, upper, opts)
                    _fill_svi(x_try, k, w, s, pk, opts, r_try, jac_try, scratch)
                else:
                    _project_essvi(x_try, lower, upper, opts)
                    _fill_essvi(x_try, k, w, s, r_try, jac_try)
                cost_try = 0.0
                for i in range(nres):
                    cost_try += r_try[i] * r_try[i]
                if cost_try < cost:
                    accepted = True
                    break
            damping *= growth
            growth *= 2.0
        if not accepted:
            status = CONVERGED  # no descent direction left: a (projected) minimum
            break
        moved = 0.0
        for p in range(nx):
            moved = max(moved, abs(x_try[p] - x[p]) / (abs(x[p]) + 1e-8))
            x[p] = x_try[p]
        r, r_try = r_try, r
        jac, jac_try = jac_try, jac
        decrease = cost - cost_try
        cost = cost_try
        # Nielsen's update (Madsen, Nielsen & Tingleff 2004, eq. 3.15): the better the linear
        # model predicted the decrease, the less damping; plain "divide by 3" crawls along
        # SVI's curved valleys for hundreds of steps.
        gain = decrease / predicted if predicted > 0.0 else 0.0
        damping = max(damping * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3), 1e-15)
        if (
            decrease <= COST_TOLERANCE * cost
            or moved <= STEP_TOLERANCE
            or cost <= opts[OPT_COST_FLOOR]
        ):
            status = CONVERGED
            break
        slot = iterations % PLATEAU_WINDOW
        if history[slot] - cost <= PLATEAU_TOLERANCE * cost:
            status = CONVERGED
            break
        history[slot] = cost
    return cost, iterations, status


@kernel
def _feasible_cost(
    a: float,
    d: float,
    c: float,
    sig: float,
    y: FloatArray,
    z: FloatArray,
    w: FloatArray,
    weight: FloatArray,
    result: FloatArray,
) -> float:
    """Project ``(a, d, c)`` onto SVI's feasible set and return its weighted cost.

    ``c >= 0``; ``|d| <= 0.99 c`` (``|rho| < 1``); ``c + |d| <= 2 sig`` (Lee: ``b (1 + |rho|)
    <= 2``); then the best ``a`` for that ``(d, c)``, raised to ``-sqrt(c^2 - d^2)`` if below
    (non-negative minimum variance). Writes ``(a, d, c)`` to ``result``.
    """
    if not c > 0.0:
        c = 0.0
        d = 0.0
    if abs(d) > 0.99 * c:
        d = math.copysign(0.99 * c, d)
    wing = c + abs(d)
    if wing > 2.0 * sig * (1.0 - 1e-9):
        shrink = 2.0 * sig * (1.0 - 1e-9) / wing
        c *= shrink
        d *= shrink
    total = 0.0
    norm = 0.0
    for i in range(y.size):
        total += weight[i] * (w[i] - d * y[i] - c * z[i])
        norm += weight[i]
    a = total / norm
    floor = -math.sqrt(max(c * c - d * d, 0.0))
    if a < floor:
        a = floor
    cost = 0.0
    for i in range(y.size):
        e = a + d * y[i] + c * z[i] - w[i]
        cost += weight[i] * e * e
    result[0] = a
    result[1] = d
    result[2] = c
    return cost


@kernel
def _reduced_fit(
    k: FloatArray,
    w: FloatArray,
    weight: FloatArray,
    m: float,
    sig: float,
    y: FloatArray,
    z: FloatArray,
    best_abc: FloatArray,
    work: FloatArray,
) -> float:
    """Cheapest feasible ``(a, d, c)`` for fixed ``(m, sig)`` (written to ``best_abc``) and its
    weighted cost: the unconstrained 3x3 normal-equation solve, and when it is infeasible the
    fits on the boundaries ``d = +-0.99 c`` and ``c + |d| = 2 sig``, each projected by
    :func:`_feasible_cost`.

    ``work`` is scratch of shape ``(5, 3, 3)`` (two 3x3 matrices, three 3-vectors): callers run
    this dozens of times per slice, and five small allocations per call cost more than the
    arithmetic of a short slice."""
    n = k.size
    matrix = work[0]
    full = work[1]
    rhs = work[2, 0]
    sol = work[3, 0]
    result = work[4, 0]
    for i in range(n):
        y[i] = (k[i] - m) / sig
        z[i] = math.sqrt(y[i] * y[i] + 1.0)
    for p in range(3):
        rhs[p] = 0.0
        for q in range(3):
            matrix[p, q] = 0.0
    for i in range(n):
        wi = weight[i]
        matrix[0, 0] += wi
        matrix[0, 1] += wi * y[i]
        matrix[0, 2] += wi * z[i]
        matrix[1, 1] += wi * y[i] * y[i]
        matrix[1, 2] += wi * y[i] * z[i]
        matrix[2, 2] += wi * z[i] * z[i]
        rhs[0] += wi * w[i]
        rhs[1] += wi * y[i] * w[i]
        rhs[2] += wi * z[i] * w[i]
    matrix[1, 0] = matrix[0, 1]
    matrix[2, 0] = matrix[0, 2]
    matrix[2, 1] = matrix[1, 2]
    best = math.inf
    for p in range(3):
        sol[p] = rhs[p]
        for q in range(3):
            full[p, q] = matrix[p, q]
    feasible = False
    if _solve(full, sol, 3):
        a0, d0, c0 = sol[0], sol[1], sol[2]
        feasible = (
            c0 > 0.0
            and abs(d0) <= 0.99 * c0
            and c0 + abs(d0) <= 2.0 * sig * (1.0 - 1e-9)
            and a0 >= -math.sqrt(c0 * c0 - d0 * d0)
        )
        cost = _feasible_cost(a0, d0, c0, sig, y, z, w, weight, result)
        if cost < best:
            best = cost
            for p in range(3):
                best_abc[p] = result[p]
    # An unconstrained optimum inside the feasible set is the constrained optimum too.
    n_cases = 0 if feasible else 4
    # Boundary fits: w = a + c (z + t y), t = +-0.99 (|rho| at its cap), in (a, c);
    # and w - 2 sig z = a + d (y - t z), t = +-1 (on Lee's bound), in (a, d).
    for case in range(n_cases):
        t = 0.99 if case % 2 == 0 else -0.99
        if case >= 2:
            t = 1.0 if case == 2 else -1.0
            s01 = matrix[0, 1] - t * matrix[0, 2]
            s11 = matrix[1, 1] - 2.0 * t * matrix[1, 2] + t * t * matrix[2, 2]
            r0 = rhs[0] - 2.0 * sig * matrix[0, 2]
            r1 = rhs[1] - t * rhs[2] - 2.0 * sig * (matrix[1, 2] - t * matrix[2, 2])
        else:
            s01 = matrix[0, 2] + t * matrix[0, 1]
            s11 = matrix[2, 2] + 2.0 * t * matrix[1, 2] + t * t * matrix[1, 1]
            r0 = rhs[0]
            r1 = rhs[2] + t * rhs[1]
        s00 = matrix[0, 0]
        det = s00 * s11 - s01 * s01
        if not det > 0.0:
            continue
        slope = (s00 * r1 - s01 * r0) / det
        level = (r0 - s01 * slope) / s00
        if case >= 2:
            d = slope
            c = 2.0 * sig - t * d
        else:
            c = slope
            d = t * c
        cost = _feasible_cost(level, d, c, sig, y, z, w, weight, result)
        if cost < best:
            best = cost
            for p in range(3):
                best_abc[p] = result[p]
    return best


@kernel
def quasi_explicit_starts(
    k: FloatArray,
    w: FloatArray,
    s: FloatArray,
    m_grid: FloatArray,
    sigma_grid: FloatArray,
    out: FloatArray,
) -> None:
    """Best feasible raw SVI start for each ``m`` of the grid, over the ``sig`` grid.

    With ``m`` and ``sig`` fixed and ``y = (k - m)/sig``, raw SVI is
    ``w = a + d y + c sqrt(y^2 + 1)`` with ``c = b sig``, ``d = rho b sig`` (Zeliade quasi-explicit
    method, De Marco & Martini 2009): a 3x3 weighted normal-equation solve per grid point,
    plus the fits on the boundaries ``d = +-0.99 c`` and on Lee's ``c + |d| = 2 sig``; each
    candidate is projected onto the feasible set (:func:`_feasible_cost`) and the cheapest
    kept. Row ``j`` of ``out`` receives ``(a, b, rho, m, sig, cost)`` for ``m_grid[j]``.
    """
    n = k.size
    best_abc = np.empty(3)
    work = np.empty((5, 3, 3))
    y = np.empty(n)
    z = np.empty(n)
    weight = np.empty(n)
    for i in range(n):
        weight[i] = s[i] * s[i]
    for row in range(m_grid.size):
        m = m_grid[row]
        out[row, 5] = math.inf
        for sig in sigma_grid:
            best = _reduced_fit(k, w, weight, m, sig, y, z, best_abc, work)
            if best < out[row, 5]:
                c = best_abc[2]
                out[row, 0] = best_abc[0]
                out[row, 1] = c / sig
                out[row, 2] = best_abc[1] / c if c > 0.0 else 0.0
                out[row, 3] = m
                out[row, 4] = sig
                out[row, 5] = best


@inline
def far_points(edge: float) -> int:
    """How many wing points ``edge r, edge r^2, ...`` (``r = FAR_RATIO``) extend the check
    grid from its end ``edge`` out to ``|k| = FAR_LIMIT``."""
    if not abs(edge) < FAR_LIMIT:
        return 0
    return math.ceil(math.log(FAR_LIMIT / abs(edge)) / math.log(FAR_RATIO))


@inline
def _golden_minimum(
    a: float, b: float, rho: float, m: float, sig: float, left: float, right: float
) -> tuple[float, float]:
    """``(min g, where)`` of Durrleman's ``g`` on ``[left, right]`` by golden-section search.

    The bracket comes from a grid-local minimum, so ``g`` is (at grid resolution) unimodal on
    it; the search stops once the bracket is below ``REFINE_WIDTH`` relative to its position,
    where ``g`` cannot dip further than rounding. Endpoints count too.
    """
    best = svi_g(a, b, rho, m, sig, left)
    where = left
    g_right = svi_g(a, b, rho, m, sig, right)
    if g_right < best:
        best = g_right
        where = right
    lo = left
    hi = right
    x1 = hi - GOLDEN * (hi - lo)
    x2 = lo + GOLDEN * (hi - lo)
    g1 = svi_g(a, b, rho, m, sig, x1)
    g2 = svi_g(a, b, rho, m, sig, x2)
    for _ in range(REFINE_MAX_STEPS):
        if g1 <= g2:
            hi = x2
            x2 = x1
            g2 = g1
            x1 = hi - GOLDEN * (hi - lo)
            g1 = svi_g(a, b, rho, m, sig, x1)
        else:
            lo = x1
            x1 = x2
            g1 = g2
            x2 = lo + GOLDEN * (hi - lo)
            g2 = svi_g(a, b, rho, m, sig, x2)
        if hi - lo <= REFINE_WIDTH * (abs(lo) + abs(hi) + sig):
            break
    if g1 < best:
        best = g1
        where = x1
    if g2 < best:
        best = g2
        where = x2
    return best, where


@inline
def _worth_refining(g_left: float, g_mid: float, g_right: float) -> bool:
    """Whether ``g`` may dip below ``REFINE_BELOW`` between the grid neighbours of a local
    minimum ``g_mid``: it is low already, or its neighbours rise by more than it (between two
    grid points a smooth ``g`` dips about ``g'' h^2 / 8``, far less than the rise ``g'' h^2 / 2``
    to the neighbours; the factor 1 leaves room for uneven spacing and higher-order terms)."""
    return g_mid < REFINE_BELOW + (g_left - g_mid) + (g_right - g_mid)


@inline
def _base_point(
    index: int, n_left: int, n_uniform: int, n_base: int, low: float, high: float
) -> float:
    """Point ``index`` of the check grid's wing and uniform points (``inf`` past the end)."""
    if index < n_left:
        return float(low * FAR_RATIO ** (n_left - index))
    if index < n_left + n_uniform:
        return low + (high - low) * (index - n_left) / (n_uniform - 1)
    if index < n_base:
        return float(high * FAR_RATIO ** (index - n_left - n_uniform + 1))
    return math.inf


@inline
def _feature_point(index: int, m: float, sig: float) -> float:
    """Point ``index`` of ``m + sig sinh(z)``, ``z`` in ``[-8, 8]`` (``inf`` past the end)."""
    if index >= FEATURE_POINTS:
        return math.inf
    z = -FEATURE_HALF_WIDTH + 2.0 * FEATURE_HALF_WIDTH * index / (FEATURE_POINTS - 1)
    return m + sig * math.sinh(z)


@kernel
def durrleman_minima(
    a: float,
    b: float,
    rho: float,
    m: float,
    sig: float,
    low: float,
    high: float,
    step: float,
    tolerance: float,
    out_k: FloatArray,
) -> tuple[float, float, int, int]:
    """The true minimum of Durrleman's ``g`` over the check grid and between its points.

    The grid (never materialized) is the uniform ``low, low + step, ..., high``, extended into
    both wings by geometric steps out to ``|k| = FAR_LIMIT`` (:func:`far_points`), merged in
    ascending order with ``m + sig sinh(z)``, ``z`` in ``[-8, 8]`` (321 points), where ``g``
    varies on the scale ``sig``. Every grid-local minimum that may hide a dip below zero
    (:func:`_worth_refining`) is refined by golden-section search on the bracket of its two grid
    neighbours, so a narrow dip of ``g`` between grid points is found too.

    Returns ``(min g, where, violations, minima)``: violations are grid points with
    ``g < -tolerance`` plus refined dips below ``-tolerance`` whose grid point passed; the
    locations of the first ``out_k.size`` refined minima are written to ``out_k`` (``minima``
    counts all of them).
    """
    best = math.inf
    where = math.nan
    count = 0
    minima = 0
    n_uniform = math.ceil((high - low) / step) + 1
    n_left = far_points(low)
    n_right = far_points(high)
    n_base = n_left + n_uniform + n_right
    total = n_base + FEATURE_POINTS
    i_uniform = 0
    i_feature = 0
    # The last two points visited (k, g): a local minimum is recognized one point late.
    k_prev2 = math.nan
    g_prev2 = math.nan
    k_prev = math.nan
    g_prev = math.nan
    # The next point of each grid, computed once when its grid advances (a power or a sinh per
    # point: computing both at every step cost more than evaluating g).
    k_u = _base_point(0, n_left, n_uniform, n_base, low, high)
    k_f = _feature_point(0, m, sig)
    for i in range(total + 1):
        if i < total:
            if k_u <= k_f:
                k = k_u
                i_uniform += 1
                k_u = _base_point(i_uniform, n_left, n_uniform, n_base, low, high)
            else:
                k = k_f
                i_feature += 1
                k_f = _feature_point(i_feature, m, sig)
            if k == k_prev:
                continue  # a point on both grids: once is enough (and keeps brackets proper)
            g = svi_g(a, b, rho, m, sig, k)
            if not g >= -tolerance:
                count += 1
            if g < best or (math.isnan(g) and not math.isnan(best)):
                best = g
                where = k
        else:
            k = math.nan
            g = math.inf  # past the right end: the last point is a minimum if it fell to it
        if i >= 1 and math.isfinite(g_prev):
            # g_prev at k_prev is a local minimum (the ends count, with a one-sided bracket).
            left_ok = i == 1 or g_prev < g_prev2
            right_ok = g_prev <= g
            g_left = g_prev2 if i >= 2 else g_prev
            g_right = g if math.isfinite(g) else g_prev
            if left_ok and right_ok and _worth_refining(g_left, g_prev, g_right):
                lo = k_prev2 if i >= 2 else k_prev
                hi = k if i < total else k_prev
                if hi > lo:
                    g_min, k_min = _golden_minimum(a, b, rho, m, sig, lo, hi)
                    if minima < out_k.size:
                        out_k[minima] = k_min
                    minima += 1
                    if not g_min >= -tolerance and g_prev >= -tolerance:
                        count += 1
                    if g_min < best:
                        best = g_min
                        where = k_min
        k_prev2 = k_prev
        g_prev2 = g_prev
        k_prev = k
        g_prev = g
    return best, where, count, minima


@kernel
def durrleman_check(
    a: float,
    b: float,
    rho: float,
    m: float,
    sig: float,
    low: float,
    high: float,
    step: float,
    tolerance: float,
) -> tuple[float, float, int]:
    """``(min g, where, violations)`` of :func:`durrleman_minima` (refined between grid points)."""
    none = np.empty(0)
    best, where, count, _ = durrleman_minima(a, b, rho, m, sig, low, high, step, tolerance, none)
    return best, where, count


@kernel
def refined_minima(
    a: float,
    b: float,
    rho: float,
    m: float,
    sig: float,
    k: FloatArray,
    g: FloatArray,
    out_g: FloatArray,
    out_k: FloatArray,
    out_index: npt.NDArray[np.int64],
) -> int:
    """Refine the local minima of ``g`` on an ascending grid ``k`` (values ``g``) between grid
    points, like :func:`durrleman_minima`; writes each refined ``(g, k)`` and the grid index of
    the minimum it refines to ``out_g``, ``out_k``, ``out_index`` (sized like ``k``) and
    returns how many."""
    n = k.size
    found = 0
    for i in range(n):
        if not math.isfinite(g[i]):
            continue
        left = g[i - 1] if i > 0 else math.inf
        right = g[i + 1] if i + 1 < n else math.inf
        if not (g[i] < left and g[i] <= right):
            continue
        g_left = left if i > 0 else g[i]
        g_right = right if i + 1 < n else g[i]
        if not _worth_refining(g_left, g[i], g_right):
            continue
        lo = k[i - 1] if i > 0 else k[i]
        hi = k[i + 1] if i + 1 < n else k[i]
        if not hi > lo:
            continue
        g_min, k_min = _golden_minimum(a, b, rho, m, sig, lo, hi)
        out_g[found] = g_min
        out_k[found] = k_min
        out_index[found] = i
        found += 1
    return found


@kernel
def fit_metrics(
    fitted_w: FloatArray, t: float, mid: FloatArray, bid: FloatArray, ask: FloatArray
) -> tuple[float, float, float]:
    """``(rmse_bp, max_abs_error_bp, inside_band_share)`` of fitted total variances against
    the mid volatilities (a missing bid counts as 0, a missing ask as no upper bound)."""
    n = fitted_w.size
    if n == 0:
        return math.nan, math.nan, math.nan
    total = 0.0
    worst = 0.0
    inside = 0
    for i in range(n):
        vol = math.sqrt(max(fitted_w[i], 0.0) / t)
        error = vol - mid[i]
        total += error * error
        worst = max(worst, abs(error))
        low = bid[i] if math.isfinite(bid[i]) else 0.0
        high = ask[i] if math.isfinite(ask[i]) else math.inf
        if vol >= low - 1e-12 and vol <= high + 1e-12:
            inside += 1
    return math.sqrt(total / n) * 1e4, worst * 1e4, inside / n


@kernel
def svi_fit_metrics(
    a: float,
    b: float,
    rho: float,
    m: float,
    sig: float,
    k: FloatArray,
    t: float,
    mid: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
) -> tuple[float, float, float]:
    """:func:`fit_metrics` of the raw SVI slice's ``w(k)``; NaN when a fitted ``w`` is not
    finite."""
    n = k.size
    fitted = np.empty(n)
    for i in range(n):
        value = svi_w(a, b, rho, m, sig, k[i])
        if not math.isfinite(value):
            return math.nan, math.nan, math.nan
        fitted[i] = value
    return fit_metrics(fitted, t, mid, bid, ask)


@kernel
def essvi_fit_metrics(
    theta: float,
    eta: float,
    psi: float,
    two_theta_eta: float,
    theta_squared: float,
    k: FloatArray,
    t: float,
    mid: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
) -> tuple[float, float, float]:
    """:func:`fit_metrics` of the eSSVI slice ``w(k) = (theta + eta k + sqrt((psi k)^2 +
    2 theta eta k + theta^2)) / 2``, ``eta = rho psi``, with ``2 theta eta`` and ``theta^2``
    given; NaN when a fitted ``w`` is not finite."""
    n = k.size
    fitted = np.empty(n)
    for i in range(n):
        x = psi * k[i]
        value = 0.5 * (theta + eta * k[i] + math.sqrt(x * x + two_theta_eta * k[i] + theta_squared))
        if not math.isfinite(value):
            return math.nan, math.nan, math.nan
        fitted[i] = value
    return fit_metrics(fitted, t, mid, bid, ask)


@kernel
def prepare_quotes(
    k: FloatArray,
    mid: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
    vega: FloatArray,
    t: float,
    min_spread: float,
    out: FloatArray,
) -> int:
    """Usable quotes, sorted by ``k``, with their scales; returns how many.

    Rows of ``out`` (shape ``(6, n)``): ``k``, ``w = mid^2 t``, ``scale``, ``mid``, ``bid``,
    ``ask``. A quote is usable with finite ``k`` and a finite positive ``mid``. Its weight is
    ``1 / spread`` with ``spread = ask - bid``, else ``2 (ask - mid)`` (missing bid), else the
    widest spread of the slice; floored at ``max(min_spread, median / 4)``. Without any spread,
    vega relative to the largest (floored at 1e-3), else 1. ``scale = sqrt(weight) / (2 t mid)``.
    """
    n = k.size
    keep = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        if math.isfinite(k[i]) and math.isfinite(mid[i]) and mid[i] > 0.0:
            keep[count] = i
            count += 1
    spread = np.empty(count)
    n_spread = 0
    widest = 0.0
    for j in range(count):
        i = keep[j]
        value = math.nan
        if math.isfinite(bid[i]) and ask[i] > bid[i]:
            value = ask[i] - bid[i]
        elif math.isfinite(ask[i]) and ask[i] > mid[i]:
            value = 2.0 * (ask[i] - mid[i])
        spread[j] = value
        if math.isfinite(value):
            n_spread += 1
            widest = max(widest, value)
    weight = np.empty(count)
    if n_spread > 0:
        finite = np.empty(n_spread)
        f = 0
        for j in range(count):
            if math.isfinite(spread[j]):
                finite[f] = spread[j]
                f += 1
        floor = max(min_spread, 0.25 * np.median(finite))
        for j in range(count):
            value = spread[j] if math.isfinite(spread[j]) else widest
            weight[j] = 1.0 / max(value, floor)
    else:
        largest = 0.0
        for j in range(count):
            v = vega[keep[j]]
            if math.isfinite(v) and v > largest:
                largest = v
        for j in range(count):
            v = vega[keep[j]]
            if largest > 0.0 and math.isfinite(v) and v > 0.0:
                weight[j] = max(v / largest, 1e-3)
            elif largest > 0.0:
                weight[j] = 1e-3
            else:
                weight[j] = 1.0
    sorted_already = True
    for j in range(1, count):
        if k[keep[j]] < k[keep[j - 1]]:
            sorted_already = False
            break
    order = np.arange(count)
    if not sorted_already:
        values = np.empty(count)
        for j in range(count):
            values[j] = k[keep[j]]
        order = np.argsort(values, kind="mergesort")
    for j in range(count):
        src = order[j]
        i = keep[src]
        out[0, j] = k[i]
        out[1, j] = mid[i] * mid[i] * t
        out[2, j] = math.sqrt(weight[src]) / (2.0 * t * mid[i])
        out[3, j] = mid[i]
        out[4, j] = bid[i]
        out[5, j] = ask[i]
    return count


@kernel
def refine_start(k: FloatArray, w: FloatArray, s: FloatArray, x: FloatArray) -> float:
    """Compass search on the reduced (variable-projection) cost over ``(m, ln sig)`` from the
    raw SVI start ``x`` (updated in place); returns the reduced cost.

    For fixed ``(m, sig)`` the best ``(a, b, rho)`` is a linear solve (:func:`_reduced_fit`), so
    the search moves in two well-conditioned dimensions only and hands Levenberg-Marquardt a
    start at the bottom of the valley that the grid only brackets.
    """
    n = k.size
    weight = np.empty(n)
    for i in range(n):
        weight[i] = s[i] * s[i]
    y = np.empty(n)
    z = np.empty(n)
    abc = np.empty(3)
    best_abc = np.empty(3)
    work = np.empty((5, 3, 3))
    m = x[3]
    log_sig = math.log(x[4])
    span = max(k[n - 1] - k[0], 1e-3)
    step_m = 0.1 * span
    step_s = 0.5
    best = _reduced_fit(k, w, weight, m, math.exp(log_sig), y, z, best_abc, work)
    for _ in range(REFINE_EVALUATIONS // 4):
        improved = False
        for direction in range(4):
            trial_m = m + (step_m if direction == 0 else -step_m if direction == 1 else 0.0)
            trial_s = log_sig + (step_s if direction == 2 else -step_s if direction == 3 else 0.0)
            cost = _reduced_fit(k, w, weight, trial_m, math.exp(trial_s), y, z, abc, work)
            if cost < best:
                best = cost
                m = trial_m
                log_sig = trial_s
                for p in range(3):
                    best_abc[p] = abc[p]
                improved = True
        if not improved:
            step_m *= 0.5
            step_s *= 0.5
            if step_m < 1e-4 * span and step_s < 1e-4:
                break
    sig = math.exp(log_sig)
    c = best_abc[2]
    x[0] = best_abc[0]
    x[1] = c / sig
    x[2] = best_abc[1] / c if c > 0.0 else 0.0
    x[3] = m
    x[4] = sig
    return best


@kernel
def svi_box(
    k: FloatArray, w: FloatArray, opts: FloatArray, lower: FloatArray, upper: FloatArray
) -> float:
    """Raw SVI's box from the quotes (``k`` ascending), as ``svi._bounds``: ``a`` within ten
    times the largest ``w`` (plus one), ``b <= 10``, ``|rho| <= RHO_MAX``, ``m`` within two
    spans of the quotes, ``sig`` in ``[1e-4, 10]`` spans (plus one); the minimum variance
    ``opts[OPT_MIN_VARIANCE]`` is ``1e-8`` of the median ``w`` (at least 1e-20). Returns the
    span."""
    n = k.size
    k_min: float = k[0]
    k_max: float = k[n - 1]
    span = max(k_max - k_min, 1e-3)
    w_max = w[0]
    for i in range(1, n):
        if w[i] > w_max:
            w_max = w[i]
    ordered = np.sort(w)
    half = n // 2
    median = ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2.0
    level = max(median, 1e-12)
    lower[0] = -10.0 * w_max - 1.0
    lower[1] = 0.0
    lower[2] = -RHO_MAX
    lower[3] = k_min - 2.0 * span
    lower[4] = 1e-4 * span
    upper[0] = 10.0 * w_max + 1.0
    upper[1] = 10.0
    upper[2] = RHO_MAX
    upper[3] = k_max + 2.0 * span
    upper[4] = 10.0 * span + 1.0
    opts[OPT_MIN_VARIANCE] = 1e-8 * level
    return span


@kernel
def fit_svi_unconstrained(
    k: FloatArray,
    w: FloatArray,
    s: FloatArray,
    m_fractions: FloatArray,
    sigma_fractions: FloatArray,
    opts: FloatArray,
    n_starts: int,
    probe_iterations: int,
    max_iterations: int,
    x_out: FloatArray,
) -> tuple[int, int]:
    """Raw SVI by Levenberg-Marquardt from the best quasi-explicit starts, before any butterfly
    check: the whole start-and-refine sequence of ``svi.fit_svi`` in one call (the Python glue
    between its kernels cost as much as a short slice's arithmetic).

    ``k`` ascending. The box comes from the quotes (:func:`svi_box`); the ``m`` grid is
    ``k_0 + span m_fractions``, the ``sig`` grid ``span sigma_fractions``
    (:func:`quasi_explicit_starts`); of the ``n_starts`` best starts (stable order by cost) the
    first is refined by :func:`refine_start` and fitted, each later one only goes on past a
    ``probe_iterations`` probe that beats the best so far. ``opts`` is the SVI options vector;
    its minimum-variance entry is set here. Writes the best parameters to ``x_out`` (NaN when no
    fit had a cost); returns ``(status of the winner's LM, iterations of all)``.
    """
    lower = np.empty(5)
    upper = np.empty(5)
    span = svi_box(k, w, opts, lower, upper)
    k_min = k[0]
    m_grid = k_min + span * m_fractions
    sigma_grid = span * sigma_fractions
    table = np.empty((m_grid.size, 6))
    quasi_explicit_starts(k, w, s, m_grid, sigma_grid, table)
    # The n_starts cheapest rows, stable: the first of equal costs first (costs are never NaN).
    count = min(n_starts, m_grid.size)
    taken = np.zeros(m_grid.size, dtype=np.bool_)
    empty = np.empty(0)
    trial = np.empty(5)
    best_cost = math.inf
    status = ITERATION_CAP
    iterations = 0
    for p in range(5):
        x_out[p] = math.nan
    for rank in range(count):
        pick = -1
        for row in range(m_grid.size):
            if not taken[row] and (pick < 0 or table[row, 5] < table[pick, 5]):
                pick = row
        taken[pick] = True
        for p in range(5):
            trial[p] = table[pick, p]
        if rank == 0:
            # Variable projection: slide (m, sig) to the bottom of the reduced cost first.
            refine_start(k, w, s, trial)
        else:
            # Later starts only go on if a short probe already beats the best so far.
            cost, its, _ = levenberg_marquardt(
                MODEL_SVI, trial, lower, upper, k, w, s, empty, opts, probe_iterations
            )
            iterations += its
            if not cost < best_cost:
                continue
        cost, its, code = levenberg_marquardt(
            MODEL_SVI, trial, lower, upper, k, w, s, empty, opts, max_iterations
        )
        iterations += its
        if cost < best_cost:
            best_cost = cost
            status = code
            for p in range(5):
                x_out[p] = trial[p]
    return status, iterations


@kernel
def fit_essvi_slice(
    starts: FloatArray,
    k: FloatArray,
    w: FloatArray,
    s: FloatArray,
    prev: FloatArray,
    max_iterations: int,
    best: FloatArray,
) -> int:
    """One eSSVI slice by Levenberg-Marquardt from each row ``(rho, theta, psi)`` of ``starts``
    (in that order) inside the box ``|rho| <= RHO_MAX``, ``theta`` in ``[1e-12, 10 max(w) + 1]``,
    ``psi`` in ``[0, 4]`` and the calendar/butterfly constraints of ``prev`` (the LM options of
    ``MODEL_ESSVI``). Writes the cheapest finite result to ``best`` (NaN if none) and returns
    the status of its LM run (``ITERATION_CAP`` if none)."""
    w_max = w[0]
    for i in range(1, w.size):
        if w[i] > w_max:
            w_max = w[i]
    lower = np.empty(3)
    upper = np.empty(3)
    lower[0] = -RHO_MAX
    lower[1] = 1e-12
    lower[2] = 0.0
    upper[0] = RHO_MAX
    upper[1] = 10.0 * w_max + 1.0
    upper[2] = 4.0
    empty = np.empty(0)
    x = np.empty(3)
    best_cost = math.inf
    best_status = ITERATION_CAP
    for p in range(3):
        best[p] = math.nan
    for row in range(starts.shape[0]):
        for p in range(3):
            x[p] = starts[row, p]
        cost, _, status = levenberg_marquardt(
            MODEL_ESSVI, x, lower, upper, k, w, s, empty, prev, max_iterations
        )
        finite = math.isfinite(x[0]) and math.isfinite(x[1]) and math.isfinite(x[2])
        if cost < best_cost and finite:
            best_cost = cost
            best_status = status
            for p in range(3):
                best[p] = x[p]
    return best_status
