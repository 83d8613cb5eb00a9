"""Implied-volatility kernels: invert the normalized Black function, then the two batch loops.

Method (after Jäckel, "Let's Be Rational", 2016): every option is reduced to an
out-of-the-money call in normalized units (``x = ln(F/K) <= 0``, ``beta = price / (D sqrt(FK))``)
through put-call parity and the call/put symmetry ``b(x, s, put) = b(-x, s, call)``. The total
standard deviation ``s = sigma sqrt(T)`` solving ``b(x, s) = beta`` is then found by at most a few
Householder steps of order four on one of three objective functions, chosen by where ``beta``
sits relative to ``b_c = b(x, s_c)``, the value at the inflection point ``s_c = sqrt(2|x|)``:

- ``beta < b_c`` (lower): ``1/ln b(s) - 1/ln beta``, nearly linear in ``s**2`` as ``s -> 0``,
  so tiny prices (down to 1e-300) converge as fast as ordinary ones (paper, section 4);
- ``b_c <= beta <= b_max/2`` (middle): ``b(s) - beta``;
- ``beta > b_max/2`` (upper): ``ln((b_max - beta) / (b_max - b(s)))``, which removes the
  saturation of ``b`` towards ``b_max = exp(x/2)`` (paper, section 4).

Initial guesses differ from the paper's rational-cubic interpolation (a documented equivalent,
checked to the same accuracy in the tests): the lower branch inverts the paper's small-``s``
asymptotic map ``f_l(s) = 2 pi |x| / (3 sqrt 3) Phi(-|x| / (sqrt3 s))**3`` capped by the
tangent at ``s_c`` (an upper bound there because ``b`` is convex below ``s_c``); the middle branch
takes that tangent (a lower bound, ``b`` being concave above ``s_c``); the upper branch inverts
the large-``s`` map ``b_max - b ~ (b_max + 1/b_max) Phi(-s/2)``, never below the tangent. Each
Householder step uses the exact ratios ``b''/b' = x^2/s^3 - s/4`` and
``b'''/b' = (b''/b')^2 - 3x^2/s^4 - 1/4`` (the vega ``b'`` is a plain Gaussian), so a step costs
one evaluation of ``b``.

Kernel symbols: ``F`` forward, ``K`` strike, ``T`` years, ``D`` discount factor, ``theta`` +1 for
calls and -1 for puts, plus those of :mod:`periscope.volatility._normalized_black`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from periscope._numba import kernel
from periscope.volatility._normalized_black import (
    ONE_OVER_SQRT_TWO_PI,
    inverse_norm_cdf,
    norm_cdf,
    normalized_black_and_vega,
    normalized_black_otm_call,
)
from periscope.volatility.status import IVStatus

OK = int(IVStatus.OK)
BELOW_INTRINSIC = int(IVStatus.BELOW_INTRINSIC)
ABOVE_MAXIMUM = int(IVStatus.ABOVE_MAXIMUM)
INVALID_INPUT = int(IVStatus.INVALID_INPUT)
NOT_CONVERGED = int(IVStatus.NOT_CONVERGED)

# Householder steps stop once a step moves s by less than this (relative): the method has order
# four, so the error left after such a step is about C * STEP_TOLERANCE**4 = C * 1e-16 with a
# small C for these objectives; on wide test grids the results are the same as with 1e-7 to the
# last ulp, and most options stop after two evaluations of b instead of three.
STEP_TOLERANCE = 1e-4
# Two steps suffice almost everywhere; the cap only guards the far corners (|x| >> 1 with beta
# close to b_max), where bisection inside the bracket may take over.
MAX_ITERATIONS = 40
# When b saturates at b_max (|x| and s both large), b(s) can only match beta to about this many
# ulps of b_max; an s that does so is accepted even if the steps did not settle.
SATURATED_ULPS = 8.0
# A price within this many ulps of max(F, K) * D below intrinsic is intrinsic up to rounding (the
# caller's intrinsic and ours may round differently): volatility 0, status OK.
INTRINSIC_ULPS = 4.0
# b(s) within this many ulps of beta ends the iteration (see normalized_implied_s).
RESIDUAL_ULPS = 2.0
_EPSILON = 2.220446049250313e-16
_SQRT_THREE = math.sqrt(3.0)
_LOWER_MAP_SCALE = 2.0 * math.pi / (3.0 * _SQRT_THREE)


@kernel
def _householder_factor(newton: float, halley: float, third: float) -> float:
    """Order-four Householder correction as a multiple of the Newton step.

    For ``g(s) = 0`` with ``newton = -g/g'``, ``halley = g''/g'``, ``third = g'''/g'`` the step
    is ``newton * (1 + halley*newton/2) / (1 + newton*(halley + third*newton/6))``.
    """
    return (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + third * newton / 6.0))


@kernel
def _initial_guess(beta: float, x: float, b_c: float, s_c: float, b_max: float) -> float:
    """First estimate of ``s``; see the module docstring for the three maps."""
    v_c = b_max * ONE_OVER_SQRT_TWO_PI  # b'(s_c): h = -t there, so h^2 + t^2 = |x|
    s_tangent = s_c + (beta - b_c) / v_c
    if beta < b_c:
        # Small-s map: b ~ f_l(s) (paper, section 3, "lower branch").
        # np.cbrt is libm's cbrt: much less latency than pow(., 1/3), same accuracy.
        z = np.cbrt(beta / (_LOWER_MAP_SCALE * -x))
        s = s_c
        if z < 0.5:
            s_map = -x / (_SQRT_THREE * -inverse_norm_cdf(z))
            s = min(s, s_map)
        if 0.0 < s_tangent < s:
            s = s_tangent
        return s
    if beta - b_c < 0.5 * (b_max - b_c):
        return s_tangent
    s_map = -2.0 * inverse_norm_cdf((b_max - beta) / (b_max + 1.0 / b_max))
    return max(s_map, s_tangent)


@kernel
def normalized_implied_s(beta: float, x: float) -> tuple[float, int]:
    """Total standard deviation ``s`` with ``b(x, s) = beta`` for ``x <= 0``, ``0 < beta < b_max``.

    Returns ``(s, iterations)``; ``s`` is NaN when the iteration did not settle.
    """
    return _normalized_implied_s(beta, x, math.exp(0.5 * x))


@kernel
def _normalized_implied_s(beta: float, x: float, b_max: float) -> tuple[float, int]:
    """:func:`normalized_implied_s` given ``b_max = exp(x/2)``, which the caller already has."""
    s_c = math.sqrt(-2.0 * x)
    # b at the inflection point s_c, where h + t = 0 and h - t = -s_c.
    b_c = 0.5 * b_max - norm_cdf(-s_c) / b_max
    s = _initial_guess(beta, x, b_c, s_c, b_max)
    if not s > 0.0:
        s = max(s_c, 1e-8)
    lower = beta < b_c
    upper = beta > 0.5 * b_max
    # Only the lower objective needs ln(beta) (a log costs about a tenth of an evaluation of b).
    ln_beta = math.log(beta) if lower else 0.0
    # b is increasing in s: every evaluation narrows a bracket [s_low, s_high] around the root,
    # and a step that would leave it is replaced by bisection. Ordinary inputs never need this;
    # it makes the far corners (b saturated at b_max to rounding) safe.
    s_low = 0.0
    s_high = math.inf
    for iteration in range(1, MAX_ITERATIONS + 1):
        b, vega = normalized_black_and_vega(x, s)
        if abs(b - beta) <= RESIDUAL_ULPS * _EPSILON * beta:
            # b(s) equals beta to rounding: no step can tell s apart from the root.
            return s, iteration
        if b < beta:
            s_low = s
        else:
            s_high = s
        ds = _householder_step(beta, x, s, b, vega, b_max, ln_beta, lower, upper)
        if abs(ds) <= STEP_TOLERANCE * s:
            return s + ds, iteration
        s_next = s + ds
        if not s_low <= s_next <= s_high:  # also catches a NaN step
            s_next = 2.0 * s_low if s_high == math.inf else 0.5 * (s_low + s_high)
        s = s_next
    # Out of iterations: accept s only if it reproduces beta to the resolution of b_max (the
    # price carries no more information than that where b saturates).
    if abs(normalized_black_otm_call(x, s) - beta) <= SATURATED_ULPS * _EPSILON * b_max:
        return s, MAX_ITERATIONS
    return math.nan, MAX_ITERATIONS


@kernel
def _householder_step(
    beta: float,
    x: float,
    s: float,
    b: float,
    vega: float,
    b_max: float,
    ln_beta: float,
    lower: bool,
    upper: bool,
) -> float:
    """One order-four Householder correction of ``s`` on the branch's objective (may be NaN)."""
    # Reciprocals instead of repeated divisions (a division has the latency of several
    # multiplications): they change the step by rounding only, which the next step, or the
    # stopping rule (a last step below STEP_TOLERANCE * s), makes irrelevant to the result.
    inv_s = 1.0 / s
    x2_s2 = x * x * inv_s * inv_s
    b_h2 = x2_s2 * inv_s - 0.25 * s  # b''/b'
    b_h3 = b_h2 * b_h2 - 3.0 * x2_s2 * inv_s * inv_s - 0.25  # b'''/b'
    if lower:
        # g = 1/ln b - 1/ln beta
        if not b > 0.0:
            return math.nan  # b underflowed: s far too small; the caller bisects
        ln_b = math.log(b)
        inv_ln_b = 1.0 / ln_b
        lam = vega / b  # b'/b
        newton = (ln_beta - ln_b) * ln_b / (ln_beta * lam)
        halley = b_h2 - lam * (1.0 + 2.0 * inv_ln_b)
        third = (
            b_h3
            + 2.0 * lam * lam * (1.0 + 3.0 * inv_ln_b * (1.0 + inv_ln_b))
            - 3.0 * b_h2 * lam * (1.0 + 2.0 * inv_ln_b)
        )
        return newton * _householder_factor(newton, halley, third)
    if upper:
        # g = ln((b_max - beta) / (b_max - b))
        c = b_max - b
        if not c > 0.0:
            return math.nan  # b rounded to b_max: s far too large; the caller bisects
        mu = vega / c  # g'
        newton = math.log(c / (b_max - beta)) / mu
        halley = b_h2 + mu
        third = b_h3 + 3.0 * b_h2 * mu + 2.0 * mu * mu
        return newton * _householder_factor(newton, halley, third)
    # g = b - beta
    newton = (beta - b) / vega
    return newton * _householder_factor(newton, b_h2, b_h3)


@kernel
def implied_volatility_one(
    price: float, F: float, K: float, T: float, D: float, is_call: bool
) -> tuple[float, int]:
    """Black implied volatility of one option and its status code (never raises).

    Order of checks: invalid inputs; price at or above the upper bound (``D F`` for a call,
    ``D K`` for a put); below the discounted forward intrinsic ``D max(theta (F - K), 0)`` by
    more than rounding; at intrinsic (volatility 0); ``T == 0`` with a positive time value (no
    finite volatility: ABOVE_MAXIMUM); then the normalized inversion on the out-of-the-money side.
    """
    if not (
        math.isfinite(price)
        and math.isfinite(F)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(D)
    ):
        return math.nan, INVALID_INPUT
    if F <= 0.0 or K <= 0.0 or T < 0.0 or D <= 0.0 or price < 0.0:
        return math.nan, INVALID_INPUT
    if is_call:
        intrinsic = D * max(F - K, 0.0)
        upper_bound = D * F
    else:
        intrinsic = D * max(K - F, 0.0)
        upper_bound = D * K
    if price >= upper_bound:
        return math.nan, ABOVE_MAXIMUM
    if price <= intrinsic:
        if price < intrinsic - INTRINSIC_ULPS * _EPSILON * D * max(F, K):
            return math.nan, BELOW_INTRINSIC
        return 0.0, OK
    if T == 0.0:
        return math.nan, ABOVE_MAXIMUM
    # In-the-money: the time value is the out-of-the-money option's price (put-call parity), and
    # an out-of-the-money put at x is the call at -x. Either way: an OTM call at -|x|.
    # Near the money |x| is tiny and log(F/K) would carry the rounding of F/K (1 ulp of 1, i.e.
    # a huge relative error in x) that short expiries then expose: F - K is exact there
    # (Sterbenz), so log1p((F - K)/K) keeps x to an ulp of itself.
    x = -abs(math.log1p((F - K) / K)) if 0.5 * K <= F <= 2.0 * K else -abs(math.log(F / K))
    beta = (price - intrinsic) / (D * math.sqrt(F) * math.sqrt(K))
    b_max = math.exp(0.5 * x)
    if beta >= b_max:
        return math.nan, ABOVE_MAXIMUM
    s, _ = _normalized_implied_s(beta, x, b_max)
    if not math.isfinite(s):
        return math.nan, NOT_CONVERGED
    return s / math.sqrt(T), OK


@kernel
def implied_volatility_black_kernel(
    price: npt.NDArray[np.float64],
    forward: npt.NDArray[np.float64],
    strike: npt.NDArray[np.float64],
    time_to_expiry: npt.NDArray[np.float64],
    discount_factor: npt.NDArray[np.float64],
    is_call: npt.NDArray[np.bool_],
    volatility: npt.NDArray[np.float64],
    status: npt.NDArray[np.int8],
) -> None:
    """Fill ``volatility`` and ``status`` for flat arrays of Black inputs."""
    for i in range(price.size):
        vol, code = implied_volatility_one(
            price[i], forward[i], strike[i], time_to_expiry[i], discount_factor[i], is_call[i]
        )
        volatility[i] = vol
        status[i] = code


@kernel
def implied_volatility_kernel(
    price: npt.NDArray[np.float64],
    spot: npt.NDArray[np.float64],
    strike: npt.NDArray[np.float64],
    time_to_expiry: npt.NDArray[np.float64],
    rate: npt.NDArray[np.float64],
    dividend_yield: npt.NDArray[np.float64],
    is_call: npt.NDArray[np.bool_],
    volatility: npt.NDArray[np.float64],
    status: npt.NDArray[np.int8],
) -> None:
    """Fill ``volatility`` and ``status`` from spot inputs: F = S exp((r-q)T), D = exp(-rT)."""
    for i in range(price.size):
        T = time_to_expiry[i]
        r = rate[i]
        if not (math.isfinite(r) and math.isfinite(dividend_yield[i])):
            volatility[i] = math.nan
            status[i] = INVALID_INPUT
            continue
        F = spot[i] * math.exp((r - dividend_yield[i]) * T)
        D = math.exp(-r * T)
        vol, code = implied_volatility_one(price[i], F, strike[i], T, D, is_call[i])
        volatility[i] = vol
        status[i] = code
