"""Binomial-tree kernels: Leisen-Reimer and Cox-Ross-Rubinstein, European or American exercise,
discrete cash dividends by the escrowed-dividend model, Greeks from the tree nodes, and the
bracketed inversion of the tree for an American implied volatility.

Symbols: S spot, K strike, T time to expiry (years), r rate, q continuous dividend yield, σ
volatility, n steps, Δt = T/n, b = r − q (cost of carry).

Escrowed dividends (Hull, "Options, Futures, and Other Derivatives", section on binomial trees with
known dividend amounts; Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., 9.1). The
tree is built on S* = S − PV(cash dividends paid in (0, T]), which is lognormal and recombines.
At a node at time t the traded stock is S*(t) + PV_t(dividends paid in (t, T]); exercise values use
that price. A dividend paid exactly at a node's time counts as paid (the node is ex-dividend), and
a dividend on the expiry date lowers the terminal stock price. The volatility is the volatility of
S*, as in QuantLib's ``CashDividendModel.Escrowed``.

Kernels never raise: an element with NaN or out-of-domain inputs gets NaN (and a status for the
implied-volatility kernel).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from periscope._arrays import BoolArray, FloatArray
from periscope._numba import kernel

# IV status codes, the values of periscope.volatility.status.IVStatus (kept numeric here because
# kernels see no Python objects).
_OK = 0
_BELOW_INTRINSIC = 1
_ABOVE_MAXIMUM = 2
_INVALID_INPUT = 3
_NOT_CONVERGED = 4

# Upper end of the implied-volatility bracket: 1000% a year. Tree prices are flat beyond it.
_MAX_VOLATILITY = 10.0

IntArray = npt.NDArray[np.int64]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# |d1| beyond which N(d1) is 0 or 1 in double precision (erfc(8.5/√2) ≈ 1e-17).
_D_CUTOFF = 8.5


@kernel
def _discounted_amounts(r: float, div_t: FloatArray, div_a: FloatArray) -> FloatArray:
    """Each dividend's value at time 0, ``a_k e^{-r t_k}``: with them the PV at any time t is
    ``e^{rt}`` times a sum, one exponential per tree step instead of one per dividend."""
    out = np.empty(div_t.shape[0])
    for k in range(div_t.shape[0]):
        out[k] = div_a[k] * math.exp(-r * div_t[k])
    return out


@kernel
def _remaining_pv_from_discounted(
    t: float, T: float, r: float, div_t: FloatArray, div_b: FloatArray
) -> float:
    """PV at time t of the cash dividends paid in (t, T] (the part of the stock that is not
    S*), from their `_discounted_amounts` ``div_b``."""
    total = 0.0
    for k in range(div_t.shape[0]):
        if t < div_t[k] <= T:
            total += div_b[k]
    return total * math.exp(r * t) if total != 0.0 else 0.0


@kernel
def _remaining_dividends_pv(
    t: float, T: float, r: float, div_t: FloatArray, div_a: FloatArray
) -> float:
    """`_remaining_pv_from_discounted` from the amounts themselves (off the trees' hot loop)."""
    return _remaining_pv_from_discounted(t, T, r, div_t, _discounted_amounts(r, div_t, div_a))


@kernel
def _peizer_pratt(z: float, n: int) -> tuple[float, float]:
    """Peizer-Pratt method-2 inversion h(z) and 1 − h(z) (Leisen & Reimer 1996, eq. (5)).

    1 − h is computed as 0.5·e/(1 + √(1 − e)) rather than 0.5 − 0.5·√(1 − e), so that far from
    the money (|z| of tens) it keeps its digits instead of cancelling to zero.
    """
    x = z / (n + 1.0 / 3.0 + 0.1 / (n + 1.0))
    e = math.exp(-x * x * (n + 1.0 / 6.0))
    root = math.sqrt(1.0 - e)
    big = 0.5 + 0.5 * root
    small = 0.5 * e / (1.0 + root)
    if z >= 0.0:
        return big, small
    return small, big


@kernel
def _lr_lattice(
    growth: float, d1: float, vol_sqrt_t: float, n: int
) -> tuple[float, float, float, float]:
    """The ``n``-step Leisen-Reimer lattice: (p, 1 − p, u, d).

    Leisen & Reimer (1996), eqs. (6)-(8): p = h(d2) and p' = h(d1) so the tree's terminal
    distribution matches Black-Scholes' N(d2), N(d1) at the strike; then u = e^{bΔt} p'/p and
    d = e^{bΔt} (1 − p')/(1 − p) (the latter form avoids the cancellation in
    (e^{bΔt} − p u)/(1 − p)). ``growth`` is e^{bΔt}.
    """
    p, one_minus_p = _peizer_pratt(d1 - vol_sqrt_t, n)
    p1, one_minus_p1 = _peizer_pratt(d1, n)
    return p, one_minus_p, growth * p1 / p, growth * one_minus_p1 / one_minus_p


@kernel
def _european_step_value(
    s: float,
    K: float,
    tau: float,
    disc_q: float,
    disc_r: float,
    sd: float,
    mu_tau: float,
    s_low: float,
    s_high: float,
    sign: float,
) -> float:
    """Black-Scholes value over the last step τ = Δt of a node with escrowed spot s (smoothing).

    ``sd`` is σ√τ, ``mu_tau`` (r − q + σ²/2)τ, ``disc_q`` e^{−qτ}, ``disc_r`` e^{−rτ}. Outside
    [s_low, s_high] (|d1| beyond 8.5, where N is 0 or 1 to double precision) the value is the
    discounted forward intrinsic value or zero, saving the logarithm and the two erfc. A small
    scalar formula kept here because pricing kernels import nothing from other kernel modules; N
    is ½·erfc(−x/√2).
    """
    forward_intrinsic = sign * (s * disc_q - K * disc_r)
    if s <= s_low or s >= s_high:
        return forward_intrinsic if forward_intrinsic > 0.0 else 0.0
    d1 = (math.log(s / K) + mu_tau) / sd
    d2 = d1 - sd
    n1 = 0.5 * math.erfc(-sign * d1 * _INV_SQRT2)
    n2 = 0.5 * math.erfc(-sign * d2 * _INV_SQRT2)
    return sign * (s * disc_q * n1 - K * disc_r * n2)


@kernel
def _deterministic_value(
    Sx: float,
    K: float,
    T: float,
    r: float,
    q: float,
    is_call: bool,
    american: bool,
    n: int,
    div_t: FloatArray,
    div_a: FloatArray,
) -> float:
    """Value when the escrowed stock moves deterministically (σ = 0 or a degenerate tree).

    S*(t) = S*·e^{bt}; the holder exercises at the best of the n + 1 tree dates (only T when
    European). This is the σ → 0 limit of the tree on the same time grid.
    """
    sign = 1.0 if is_call else -1.0
    best = 0.0
    first = 0 if american else n
    div_b = _discounted_amounts(r, div_t, div_a)
    for i in range(first, n + 1):
        t = T * i / n if n > 0 else T
        stock = Sx * math.exp((r - q) * t) + _remaining_pv_from_discounted(t, T, r, div_t, div_b)
        value = math.exp(-r * t) * max(sign * (stock - K), 0.0)
        best = max(best, value)
    return best


@kernel
def _tree_value(
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    sigma: float,
    is_call: bool,
    american: bool,
    n: int,
    leisen_reimer: bool,
    smooth: bool,
    div_t: FloatArray,
    div_a: FloatArray,
    v: FloatArray,
    s: FloatArray,
    greeks: FloatArray,
) -> float:
    """Price one option on a tree; write delta, gamma, theta into ``greeks[0:3]``.

    With ``smooth`` the continuation values at the last step before expiry are the Black-Scholes
    values over Δt instead of the tree's one-step expectation of the payoff (Broadie & Detemple
    1996, "American option valuation: new bounds, approximations, and a comparison of existing
    methods", the "BBS" tree). The payoff's kink then never sits between two nodes, which removes
    the oscillation of the error in n and leaves a smooth c/n that Richardson extrapolation
    removes.

    ``v`` and ``s`` are work arrays of at least n + 1 elements (option values and escrowed spots
    of one time slice). Returns NaN for invalid inputs.
    """
    greeks[0] = math.nan
    greeks[1] = math.nan
    greeks[2] = math.nan
    if not (S > 0.0 and K > 0.0 and T >= 0.0 and sigma >= 0.0):
        return math.nan  # also catches NaN inputs
    if not (math.isfinite(S) and math.isfinite(K) and math.isfinite(T) and math.isfinite(r)):
        return math.nan
    if not (math.isfinite(q) and math.isfinite(sigma)):
        return math.nan
    sign = 1.0 if is_call else -1.0
    if T == 0.0:
        # Expiry: intrinsic value and the payoff's slope (the midpoint at the kink, like the
        # Black-Scholes limit); gamma diverges at the kink and theta has no one-sided limit.
        moneyness = sign * (S - K)
        greeks[0] = sign if moneyness > 0.0 else (0.5 * sign if moneyness == 0.0 else 0.0)
        greeks[1] = math.nan if moneyness == 0.0 else 0.0
        return max(moneyness, 0.0)
    div_b = _discounted_amounts(r, div_t, div_a)
    pv0 = _remaining_pv_from_discounted(0.0, T, r, div_t, div_b)
    Sx = S - pv0
    if not Sx > 0.0:
        return math.nan

    dt = T / n
    growth = math.exp((r - q) * dt)
    p = math.nan
    one_minus_p = math.nan
    u = math.nan
    d = math.nan
    if sigma > 0.0:
        if leisen_reimer:
            vol_sqrt_t = sigma * math.sqrt(T)
            d1 = (math.log(Sx / K) + (r - q + 0.5 * sigma * sigma) * T) / vol_sqrt_t
            p, one_minus_p, u, d = _lr_lattice(growth, d1, vol_sqrt_t, n)
        else:
            # Cox, Ross & Rubinstein (1979): u = e^{σ√Δt}, d = 1/u, risk-neutral p.
            u = math.exp(sigma * math.sqrt(dt))
            d = 1.0 / u
            p = (growth - d) / (u - d)
            one_minus_p = (u - growth) / (u - d)
    degenerate = not (0.0 < p < 1.0 and 0.0 < one_minus_p < 1.0 and 0.0 < d < u)
    if degenerate or not (math.isfinite(u) and math.isfinite(d)):
        # σ = 0, or drift dominating σ√Δt (CRR probability outside [0, 1]), or an LR tree whose
        # probability rounds to 0 or 1 hundreds of standard deviations from the money: the
        # stock is deterministic to machine precision.
        value = _deterministic_value(Sx, K, T, r, q, is_call, american, n, div_t, div_a)
        h = 1e-4 * S
        up = _deterministic_value(Sx + h, K, T, r, q, is_call, american, n, div_t, div_a)
        down = _deterministic_value(Sx - h, K, T, r, q, is_call, american, n, div_t, div_a)
        greeks[0] = (up - down) / (2.0 * h)
        greeks[1] = (up - 2.0 * value + down) / (h * h)
        ht = 1e-4 * T
        later = _deterministic_value(Sx, K, T - ht, r, q, is_call, american, n, div_t, div_a)
        greeks[2] = (later - value) / ht
        return value

    disc = math.exp(-r * dt)
    pu = disc * p
    pd = disc * one_minus_p
    log_u = math.log(u)
    log_d = math.log(d)
    # Every dividend is paid by T, so the stock at expiry is S*(T). An American holder facing a
    # dividend that goes ex on the expiry date may exercise an instant before it, cum-dividend.
    due_at_expiry = 0.0
    if american:
        for k in range(div_t.shape[0]):
            if T * (1.0 - 1e-12) <= div_t[k] <= T:
                due_at_expiry += div_a[k]
    for j in range(n + 1):
        s[j] = Sx * math.exp(j * log_u + (n - j) * log_d)
        v[j] = max(sign * (s[j] - K), sign * (s[j] + due_at_expiry - K), 0.0)
    # Smoothing: the payoff max(sign·(S*(T) − K'), 0) with K' = K − (dividend due at expiry, for
    # an American call: exercising an instant before it is a call struck at K − D) valued by
    # Black-Scholes over the last step. S* is lognormal with carry r − q in the escrowed model.
    strike_last = K - due_at_expiry if sign > 0.0 else K
    sd = sigma * math.sqrt(dt)
    mu_tau = (r - q + 0.5 * sigma * sigma) * dt
    disc_q = math.exp(-q * dt)
    disc_r = math.exp(-r * dt)
    s_low = s_high = 0.0
    if strike_last > 0.0:
        s_low = strike_last * math.exp(-_D_CUTOFF * sd - mu_tau)
        s_high = strike_last * math.exp(_D_CUTOFF * sd - mu_tau)
    inv_d = 1.0 / d
    y0 = y1 = y2 = x0 = x1 = x2 = 0.0
    for i in range(n - 1, -1, -1):
        smooth_step = smooth and i == n - 1
        if smooth_step:
            for j in range(i + 1):
                sj = s[j] * inv_d
                s[j] = sj
                v[j] = _european_step_value(
                    sj, strike_last, dt, disc_q, disc_r, sd, mu_tau, s_low, s_high, sign
                )
        if american:
            # s[j] holds S*·u^j·d^(i+1−j); dividing by d steps it back to time i (vectorizable,
            # unlike recomputing powers).
            t_i = i * dt
            pv = _remaining_pv_from_discounted(t_i, T, r, div_t, div_b)
            strike_less_pv = K - pv
            if smooth_step:
                for j in range(i + 1):
                    exercise = sign * (s[j] - strike_less_pv)
                    if exercise > v[j]:
                        v[j] = exercise
            else:
                for j in range(i + 1):
                    cont = pu * v[j + 1] + pd * v[j]
                    sj = s[j] * inv_d
                    s[j] = sj
                    exercise = sign * (sj - strike_less_pv)
                    v[j] = cont if cont > exercise else exercise
            # A dividend going ex in (t_i, t_{i+1}]: the holder could exercise an instant before
            # it (the classic early exercise of a call), which the grid cannot see. Committing at
            # t_i to exercise at t_d− is worth sign·(S*e^{−qτ} + PV(dividends from t_d on) −
            # K e^{−rτ}), τ = t_d − t_i; it is a feasible strategy, so the node may take it.
            # Without this the error depends on where t_d falls between nodes (a sawtooth in n
            # that would defeat the Richardson extrapolation).
            for k in range(div_t.shape[0]):
                t_d = div_t[k]
                if t_i < t_d <= t_i + dt * (1.0 + 1e-12) and t_d <= T:
                    tau = t_d - t_i
                    a = sign * math.exp(-q * tau)
                    c = sign * (
                        _remaining_pv_from_discounted(t_d - tau * 1e-9, T, r, div_t, div_b)
                        * math.exp(-r * tau)
                        - K * math.exp(-r * tau)
                    )
                    for j in range(i + 1):
                        committed = a * s[j] + c
                        if committed > v[j]:
                            v[j] = committed
        elif not smooth_step:
            for j in range(i + 1):
                v[j] = pu * v[j + 1] + pd * v[j]
        if i == 2:
            # Time-2Δt slice for the Greeks; the traded stock is S* plus the dividends still due.
            pv2 = _remaining_pv_from_discounted(2.0 * dt, T, r, div_t, div_b)
            x0 = Sx * d * d + pv2
            x1 = Sx * u * d + pv2
            x2 = Sx * u * u + pv2
            y0 = v[0]
            y1 = v[1]
            y2 = v[2]
    price: float = v[0]
    if n >= 2:
        # Quadratic through the three time-2Δt nodes (Newton divided differences), evaluated at
        # today's spot: delta and gamma are its slope and curvature, and theta is the change of
        # its value at S over 2Δt. Fitting rather than differencing removes the bias from the
        # middle node not sitting at S (u·d ≠ 1 in Leisen-Reimer, dividends shift the nodes).
        f01 = (y1 - y0) / (x1 - x0)
        f12 = (y2 - y1) / (x2 - x1)
        f012 = (f12 - f01) / (x2 - x0)
        at_spot = y0 + f01 * (S - x0) + f012 * (S - x0) * (S - x1)
        greeks[0] = f01 + f012 * (2.0 * S - x0 - x1)
        greeks[1] = 2.0 * f012
        greeks[2] = (at_spot - price) / (2.0 * dt)
    return float(price)


@kernel
def _extrapolated_value(
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    sigma: float,
    is_call: bool,
    american: bool,
    n: int,
    leisen_reimer: bool,
    smooth: bool,
    extrapolate: bool,
    div_t: FloatArray,
    div_a: FloatArray,
    v: FloatArray,
    s: FloatArray,
    greeks: FloatArray,
) -> float:
    """Tree value with n steps, Richardson-extrapolated with a coarser tree when asked.

    An American Leisen-Reimer value converges like V + c/n with a smooth c (Leisen 1998, "Pricing
    the American put option: a detailed convergence analysis for binomial models"), so
    V* = (n·V(n) − m·V(m))/(n − m) with odd m ≈ n/2 removes the leading term: about 1.25 trees'
    work for an error near 1e-4 instead of 2e-3 at n = 201. Plain CRR oscillates in n and is not
    extrapolated; with the Black-Scholes smoothing its error is smooth enough (Broadie & Detemple
    1996, "BBSR", with m = n/2). European LR already converges like 1/n² and is not extrapolated.
    """
    value = _tree_value(S, K, T, r, q, sigma, is_call, american, n, leisen_reimer, smooth,
                        div_t, div_a, v, s, greeks)  # fmt: skip
    if not (
        extrapolate
        and american
        and (leisen_reimer or smooth)
        and n >= 5
        and T > 0.0
        and sigma > 0.0
    ):
        return value
    if _remaining_dividends_pv(0.0, T, r, div_t, div_a) > 0.0:
        # Cash dividends put kinks in time into the exercise boundary; where they fall between
        # the nodes of the two trees differs, the error is no longer c/n, and extrapolating can
        # double it. The plain tree is kept.
        return value
    # LR needs odd steps: the odd number nearest n / 2.
    m = n // 2 + (1 - (n // 2) % 2) if leisen_reimer else n // 2
    coarse = np.empty(3)
    coarse_value = _tree_value(S, K, T, r, q, sigma, is_call, american, m, leisen_reimer, smooth,
                               div_t, div_a, v, s, coarse)  # fmt: skip
    w_fine = n / (n - m)
    w_coarse = m / (n - m)
    for i in range(3):
        greeks[i] = w_fine * greeks[i] - w_coarse * coarse[i]
    extrapolated = w_fine * value - w_coarse * coarse_value
    exercise_now = (S - K) if is_call else (K - S)
    if extrapolated < exercise_now:
        # In the exercise region both trees give S − K (or K − S) and the combination only adds
        # rounding; an American value is never below immediate exercise.
        greeks[0] = 1.0 if is_call else -1.0
        greeks[1] = 0.0
        greeks[2] = 0.0
        return exercise_now
    return extrapolated


@kernel
def binomial_kernel(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    american: bool,
    n: int,
    leisen_reimer: bool,
    smooth: bool,
    extrapolate: bool,
    div_t: FloatArray,
    div_a: FloatArray,
    price: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    theta: FloatArray,
) -> None:
    """Price every option on its own tree; write prices and node Greeks (theta per year)."""
    v = np.empty(n + 1)
    s = np.empty(n + 1)
    greeks = np.empty(3)
    for k in range(S.shape[0]):
        price[k] = _extrapolated_value(
            S[k], K[k], T[k], r[k], q[k], sigma[k], is_call[k], american, n, leisen_reimer,
            smooth, extrapolate, div_t, div_a, v, s, greeks,
        )  # fmt: skip
        delta[k] = greeks[0]
        gamma[k] = greeks[1]
        theta[k] = greeks[2]


@kernel
def american_iv_kernel(
    target: FloatArray,
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    n: int,
    leisen_reimer: bool,
    smooth: bool,
    extrapolate: bool,
    div_t: FloatArray,
    div_a: FloatArray,
    tolerance: float,
    max_iterations: int,
    volatility: FloatArray,
    status: IntArray,
) -> None:
    """Invert the American tree price for σ by Brent's method on a bracket [0, σ_hi].

    The American value is increasing in σ, so a sign change of f(σ) = V(σ) − price on [0, σ_hi]
    brackets the root; Brent (1973, "Algorithms for Minimization without Derivatives", ch. 4)
    keeps it bracketed and converges superlinearly where V is smooth, falling back to bisection
    where the exercise boundary crossing a node makes V only piecewise smooth.
    """
    v = np.empty(n + 1)
    s = np.empty(n + 1)
    greeks = np.empty(3)
    for k in range(S.shape[0]):
        volatility[k] = math.nan
        price = target[k]
        if not (math.isfinite(price) and price >= 0.0 and T[k] > 0.0 and math.isfinite(T[k])):
            status[k] = _INVALID_INPUT
            continue
        low = _extrapolated_value(
            S[k], K[k], T[k], r[k], q[k], 0.0, is_call[k], True, n, leisen_reimer, smooth,
            extrapolate, div_t, div_a, v, s, greeks,
        )  # fmt: skip
        if not math.isfinite(low):
            status[k] = _INVALID_INPUT
            continue
        scale = max(price, 1e-300)
        if price < low - tolerance * max(1.0, low):
            status[k] = _BELOW_INTRINSIC
            continue
        if price <= low + tolerance * max(1.0, low) * 1e-3:
            volatility[k] = 0.0
            status[k] = _OK
            continue
        # Bracket: double σ from 50% until the tree price exceeds the target.
        a = 0.0
        fa = low - price
        b = 0.5
        fb = math.nan
        while True:
            fb = _extrapolated_value(
                S[k], K[k], T[k], r[k], q[k], b, is_call[k], True, n, leisen_reimer, smooth,
                extrapolate, div_t, div_a, v, s, greeks,
            ) - price  # fmt: skip
            if fb >= 0.0 or b >= _MAX_VOLATILITY:
                break
            a = b
            fa = fb
            b = min(2.0 * b, _MAX_VOLATILITY)
        if not math.isfinite(fb):
            status[k] = _INVALID_INPUT
            continue
        if fb < 0.0:
            status[k] = _ABOVE_MAXIMUM
            continue
        if fb == 0.0:
            volatility[k] = b
            status[k] = _OK
            continue
        # Brent's zeroin: b is the best estimate, a the previous one, c keeps the bracket.
        c = a
        fc = fa
        e = b - a
        dd = e
        converged = False
        for _ in range(max_iterations):
            if (fb > 0.0) == (fc > 0.0):
                c = a
                fc = fa
                e = b - a
                dd = e
            if abs(fc) < abs(fb):
                a = b
                b = c
                c = a
                fa = fb
                fb = fc
                fc = fa
            tol = 2.0 * 2.2e-16 * abs(b) + 0.5 * tolerance
            half = 0.5 * (c - b)
            if abs(half) <= tol or fb == 0.0 or abs(fb) <= 1e-13 * scale:
                converged = True
                break
            if abs(e) >= tol and abs(fa) > abs(fb):
                ratio = fb / fa
                if a == c:
                    pp = 2.0 * half * ratio  # secant
                    qq = 1.0 - ratio
                else:  # inverse quadratic interpolation
                    qa = fa / fc
                    rb = fb / fc
                    pp = ratio * (2.0 * half * qa * (qa - rb) - (b - a) * (rb - 1.0))
                    qq = (qa - 1.0) * (rb - 1.0) * (ratio - 1.0)
                if pp > 0.0:
                    qq = -qq
                else:
                    pp = -pp
                if 2.0 * pp < min(3.0 * half * qq - abs(tol * qq), abs(e * qq)):
                    e = dd
                    dd = pp / qq
                else:
                    dd = half
                    e = dd
            else:
                dd = half
                e = dd
            a = b
            fa = fb
            b += dd if abs(dd) > tol else (tol if half > 0.0 else -tol)
            fb = _extrapolated_value(
                S[k], K[k], T[k], r[k], q[k], b, is_call[k], True, n, leisen_reimer, smooth,
                extrapolate, div_t, div_a, v, s, greeks,
            ) - price  # fmt: skip
        if converged:
            volatility[k] = b
            status[k] = _OK
        else:
            status[k] = _NOT_CONVERGED


@kernel
def _lr_premium_pass(
    Sx: float,
    K: float,
    T: float,
    r: float,
    q: float,
    sign: float,
    n: int,
    u: float,
    d: float,
    pu: float,
    pd: float,
    div_t: FloatArray,
    div_b: FloatArray,
    count: int,
    due_at_expiry: float,
    va: FloatArray,
    s: FloatArray,
) -> tuple[float, float]:
    """American and European values of one Leisen-Reimer lattice, for
    :func:`early_exercise_premium_one`.

    The American value by the recursion of :func:`_tree_value` without smoothing or Greeks,
    with the remaining dividends' PV kept as a running sum over the dividends sorted by time
    instead of a loop over all of them per step, and each level's spots as the terminal ones
    times one factor ``d^(i-n)``: the node loop is then short, branch-free and vectorized, with
    one store per node. ``div_b`` holds the discounted amounts ``a_k e^{-r t_k}`` of the first
    ``count`` dividends (ascending times).

    The European value of the same lattice needs no induction: with constant probabilities it
    is the discounted binomial expectation of the terminal payoffs, ``Σ_j C(n, j) p^j
    (1 − p)^(n−j) payoff_j`` (the induction's value up to rounding), summed outwards from the
    mode with weights relative to it and normalized by their sum, so that no weight
    underflows where it matters.
    """
    dt = T / n
    log_u = math.log(u)
    log_d = math.log(d)
    # Terminal spots by one exponential each block of 8 and ratios in between (rounding stays
    # near 1e-15 relative; an exponential per node would cost as much as the induction).
    ratio = u / d
    for j in range(n + 1):
        sj = Sx * math.exp(j * log_u + (n - j) * log_d) if j % 8 == 0 else s[j - 1] * ratio
        s[j] = sj
        va[j] = max(sign * (sj - K), sign * (sj + due_at_expiry - K), 0.0)
    odds = pu / pd
    mode = min(max(int((n + 1) * pu / (pu + pd)), 0), n)
    weight, weights, expectation = 1.0, 0.0, 0.0
    for j in range(mode, n + 1):
        weights += weight
        expectation += weight * max(sign * (s[j] - K), 0.0)
        weight *= odds * (n - j) / (j + 1)
    weight = 1.0
    for j in range(mode - 1, -1, -1):
        weight *= (j + 1) / (odds * (n - j))
        weights += weight
        expectation += weight * max(sign * (s[j] - K), 0.0)
    european = (pu + pd) ** n * expectation / weights
    # Dividends paid in (t_i, T]: indices above `last_paid`; `tail` their discounted sum.
    last_paid = count - 1
    while last_paid >= 0 and div_t[last_paid] > T:
        last_paid -= 1
    tail = 0.0
    inv_d = 1.0 / d
    level = 1.0  # d^(i - n): level i's spots are the terminal ones times this
    # e^{r t_i} by one factor per level instead of an exponential (rounding: (n - i) ulp).
    back = math.exp(-r * dt)
    growth = math.exp(r * T)
    for i in range(n - 1, -1, -1):
        t_i = i * dt
        level *= inv_d
        growth *= back
        fresh = last_paid
        while last_paid >= 0 and div_t[last_paid] > t_i:
            tail += div_b[last_paid]
            last_paid -= 1
        pv = tail * growth if tail != 0.0 else 0.0
        signed_strike = sign * (K - pv)
        spot_factor = sign * level
        for j in range(i + 1):
            cont = pu * va[j + 1] + pd * va[j]
            exercise = spot_factor * s[j] - signed_strike
            va[j] = cont if cont > exercise else exercise
        if fresh == last_paid:
            continue
        # Dividends going ex in (t_i, t_i + Δt]: exercising an instant before one is worth
        # sign·(S*e^{−qτ} + PV(dividends from t_d on) − K e^{−rτ}) (see _tree_value).
        remaining = tail
        k = last_paid + 1
        while k < count and div_t[k] <= t_i + dt * (1.0 + 1e-12) and div_t[k] <= T:
            t_d = div_t[k]
            tau = t_d - t_i
            a = sign * math.exp(-q * tau) * level
            c = sign * (
                remaining * math.exp(r * (t_d - tau * 1e-9)) * math.exp(-r * tau)
                - K * math.exp(-r * tau)
            )
            for j in range(i + 1):
                committed = a * s[j] + c
                if committed > va[j]:
                    va[j] = committed
            while k < count and div_t[k] == t_d:
                remaining -= div_b[k]
                k += 1
    return va[0], european


@kernel
def early_exercise_premium_one(
    Sk: float,
    Kk: float,
    Tk: float,
    rk: float,
    qk: float,
    vol: float,
    call: bool,
    times: FloatArray,
    amounts: FloatArray,
    n: int,
    extrapolate: bool,
    va: FloatArray,
    ve: FloatArray,
    s: FloatArray,
    div_b: FloatArray,
    greeks: FloatArray,
) -> float:
    """American minus European value of one option on one Leisen-Reimer lattice.

    The difference of the American and the European value of :func:`binomial_kernel` with the
    same inputs, both from one fused backward induction. With ``extrapolate`` and no cash
    dividend before expiry the premium itself is Richardson-extrapolated,
    ``(n P(n) - m P(m)) / (n - m)`` with the odd m nearest n / 2 (the American value converges
    like c/n with a smooth c, the European like 1/n², so the premium's leading error goes; with
    cash dividends the error is not smooth in n and the plain premium is kept, as in
    :func:`_extrapolated_value`). ``times`` / ``amounts``: the option's dividends (ascending
    times). Degenerate lattices and invalid inputs go through the general kernels (same
    values); NaN inputs give NaN. Scratch: ``va``, ``ve``, ``s`` of ``n + 1`` entries,
    ``div_b`` of at least ``times.size``, ``greeks`` of 3.
    """
    count = times.shape[0]
    sign = 1.0 if call else -1.0
    fast = (
        Sk > 0.0 and Kk > 0.0 and Tk > 0.0 and vol > 0.0 and math.isfinite(Sk)
        and math.isfinite(Kk) and math.isfinite(Tk) and math.isfinite(rk)
        and math.isfinite(qk) and math.isfinite(vol)
    )  # fmt: skip
    u = d = p = one_minus_p = math.nan
    pv0 = 0.0
    Sx = math.nan
    growth = math.nan
    d1 = vol_sqrt_t = math.nan
    if fast:
        for i in range(count):
            div_b[i] = amounts[i] * math.exp(-rk * times[i])
            if 0.0 < times[i] <= Tk:
                pv0 += div_b[i]
        Sx = Sk - pv0
        fast = Sx > 0.0
    if fast:
        dt = Tk / n
        growth = math.exp((rk - qk) * dt)
        vol_sqrt_t = vol * math.sqrt(Tk)
        d1 = (math.log(Sx / Kk) + (rk - qk + 0.5 * vol * vol) * Tk) / vol_sqrt_t
        p, one_minus_p, u, d = _lr_lattice(growth, d1, vol_sqrt_t, n)
        fast = (
            0.0 < p < 1.0 and 0.0 < one_minus_p < 1.0 and 0.0 < d < u
            and math.isfinite(u) and math.isfinite(d)
        )  # fmt: skip
    if not fast:
        american = _extrapolated_value(
            Sk, Kk, Tk, rk, qk, vol, call, True, n, True, False, extrapolate, times,
            amounts, va, s, greeks,
        )  # fmt: skip
        european = _tree_value(
            Sk, Kk, Tk, rk, qk, vol, call, False, n, True, False, times, amounts, ve, s,
            greeks,
        )  # fmt: skip
        return american - european
    due = 0.0
    for i in range(count):
        if Tk * (1.0 - 1e-12) <= times[i] <= Tk:
            due += amounts[i]
    disc = math.exp(-rk * Tk / n)
    american, european = _lr_premium_pass(
        Sx, Kk, Tk, rk, qk, sign, n, u, d, disc * p, disc * one_minus_p, times, div_b,
        count, due, va, s,
    )  # fmt: skip
    if not (extrapolate and n >= 5 and pv0 == 0.0):
        return american - european
    # Richardson on the premium: both values of the odd-step tree nearest n / 2 (its own LR
    # lattice). The American error is c/n, smooth in n; the European one O(1/n²).
    m = n // 2 + (1 - (n // 2) % 2)
    growth_m = math.exp((rk - qk) * Tk / m)
    pm, one_minus_pm, um, dm = _lr_lattice(growth_m, d1, vol_sqrt_t, m)
    if 0.0 < pm < 1.0 and 0.0 < one_minus_pm < 1.0 and 0.0 < dm < um:
        disc_m = math.exp(-rk * Tk / m)
        coarse_american, coarse_european = _lr_premium_pass(
            Sx, Kk, Tk, rk, qk, sign, m, um, dm, disc_m * pm, disc_m * one_minus_pm,
            times, div_b, count, due, va, s,
        )  # fmt: skip
    else:
        coarse_american = _tree_value(
            Sk, Kk, Tk, rk, qk, vol, call, True, m, True, False, times, amounts, va, s,
            greeks,
        )  # fmt: skip
        coarse_european = _tree_value(
            Sk, Kk, Tk, rk, qk, vol, call, False, m, True, False, times, amounts, ve, s,
            greeks,
        )  # fmt: skip
    fine = american - european
    coarse = coarse_american - coarse_european
    return (n * fine - m * coarse) / (n - m)


@kernel
def early_exercise_premium_kernel(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    schedule: IntArray,
    div_t: FloatArray,
    div_a: FloatArray,
    div_count: IntArray,
    n: int,
    extrapolate: bool,
    premium: FloatArray,
) -> None:
    """:func:`early_exercise_premium_one` of each option: option ``k`` takes its own dividend
    schedule, row ``schedule[k]`` of ``div_t`` / ``div_a`` (``(schedules, width)``, ascending
    times), its first ``div_count[row]`` entries."""
    width = div_t.shape[1]
    va = np.empty(n + 1)
    ve = np.empty(n + 1)
    s = np.empty(n + 1)
    div_b = np.empty(max(width, 1))
    greeks = np.empty(3)
    for k in range(S.shape[0]):
        row = schedule[k]
        count = div_count[row]
        premium[k] = early_exercise_premium_one(
            S[k], K[k], T[k], r[k], q[k], sigma[k], is_call[k], div_t[row, :count],
            div_a[row, :count], n, extrapolate, va, ve, s, div_b, greeks,
        )  # fmt: skip
