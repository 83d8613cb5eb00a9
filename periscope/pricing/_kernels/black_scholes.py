"""Black-Scholes-Merton and Black-76 kernels: prices and Greeks over flat float64 arrays.

Symbols (one element at a time)::

    S spot, K strike, T time to expiry (years), r rate, q dividend yield (continuous),
    σ volatility, ω = +1 for a call and -1 for a put,
    F = S e^{(r-q)T} forward, Dr = e^{-rT}, Dq = e^{-qT}, w = σ√T total standard deviation,
    d1 = ln(F/K)/w + w/2, d2 = d1 - w, φ the standard normal density, N its distribution.

Every kernel is one loop over the elements and never raises: an element with a NaN or infinite
input, S <= 0, K <= 0, T < 0 or σ < 0 (Black-76: a discount factor <= 0) gets NaN everywhere.

Zero total variance (w below ``MIN_STDDEV``: T == 0 or σ == 0) is the deterministic limit: the
value is the discounted forward intrinsic max(ω(S Dq - K Dr), 0) = Dr max(ω(F - K), 0), the
Greeks are the derivatives of that value. At its kink (S Dq == K Dr exactly, i.e. F == K) delta,
rho and dividend rho take the midpoint of their one-sided values (also the limit of the closed
forms, as d1, d2 -> 0), vega takes its limit S Dq √T φ(0), and every other Greek is NaN: it
diverges (gamma, theta at T = 0, ...) or its limit depends on the path.

Sources: Black and Scholes (1973), Merton (1973), Black (1976); the Greeks as in Haug, "The
Complete Guide to Option Pricing Formulas" (2nd ed., 2007), ch. 2, re-derived with calendar-time
conventions (theta, charm, veta, color are d/dt = -d/dT) and checked by finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from periscope._numba import inline, kernel
from periscope.pricing._kernels.elementary import (
    exp_,
    log_,
    norm_cdf_from_pdf,
    norm_pdf,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Below this total standard deviation the option is treated as deterministic. The closed forms
# stay exact far below it, but near w ~ 1e-300 the ratio ln(F/K)/w overflows and products such
# as φ(d1) d1 d2 turn into 0 * inf = NaN; between 1e-150 and 0 the time value is below 1e-150 S.
MIN_STDDEV = 1e-150

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Rows of the 2-D output of `bsm_greeks`; the first seven are also the rows of
# `bsm_first_order_greeks`.
PRICE, DELTA, GAMMA, VEGA, THETA, RHO, DIVIDEND_RHO = range(7)
VANNA, VOLGA, CHARM, VETA, SPEED, ZOMMA, COLOR = range(7, 14)
FIRST_ORDER_ROWS = 7
ALL_ROWS = 14


@inline
def _bsm_valid(S: float, K: float, T: float, r: float, q: float, sigma: float) -> bool:
    # Positive comparisons, so NaN (every comparison false) is invalid too; `&` rather than
    # `and` so that no branch enters the loop body (branches stop the vectorizer).
    return (
        (S > 0.0)
        & (math.inf > S)
        & (K > 0.0)
        & (math.inf > K)
        & (T >= 0.0)
        & (math.inf > T)
        & (sigma >= 0.0)
        & (sigma < math.inf)
        & (abs(r) < math.inf)
        & (abs(q) < math.inf)
    )


@inline
def _black_terms(
    log_moneyness: float, w: float, a: float, b: float, omega: float, careful: bool
) -> tuple[float, float, float, float, float, float, bool]:
    """d1, d2, w', φ(d1), N(ωd1), N(ωd2), kink for finite inputs, a = D F, b = D K.

    At zero total variance (w < MIN_STDDEV) the closed forms are replaced by their limits: φ(d1)
    -> 0 and N(ωd1), N(ωd2) -> the step h = 1, 0, or 1/2 at the kink a == b. Every formula of
    the callers then gives the deterministic value and its Greeks without a separate branch;
    w' = 1 stands in for w so that nothing divides by zero. ``kink`` flags w < MIN_STDDEV with
    a == b, where the callers set the diverging Greeks to NaN.

    ``careful`` must be a literal at the call site (see `_needs_care`): False drops the direct
    evaluation of φ(d2), which only elements with an underflowing φ(d1) need.
    """
    zero = w < MIN_STDDEV
    ws = 1.0 if zero else w
    d1 = log_moneyness / ws + 0.5 * ws
    d2 = d1 - ws
    # φ(d2) through the Black identity a φ(d1) = b φ(d2): far out of the money the value is a
    # difference of two nearly equal legs, and deriving one density from the other makes
    # their rounding errors cancel too (independent exponentials cost 100x in relative error
    # at d1 = -34). Where φ(d1) has (nearly) underflowed but φ(d2) need not have (extreme
    # moneyness), φ(d2) is evaluated directly; that takes a fourth exponential, so the fast
    # loops (careful=False) leave it out and redo the rare blocks that need it.
    pdf1 = norm_pdf(d1)
    pdf2 = norm_pdf(d2) if careful & _needs_care(pdf1) else pdf1 * (a / b)
    n1 = norm_cdf_from_pdf(omega * d1, pdf1)
    n2 = norm_cdf_from_pdf(omega * d2, pdf2)
    moneyness = omega * (a - b)
    h = 0.5 + 0.5 * (1.0 * (moneyness > 0.0) - 1.0 * (moneyness < 0.0))
    return (
        d1,
        d2,
        ws,
        0.0 if zero else pdf1,
        h if zero else n1,
        h if zero else n2,
        zero & (h == 0.5),
    )


@inline
def _needs_care(pdf1: float) -> bool:
    """Whether φ(d2) must be evaluated directly (φ(d1) has nearly underflowed)."""
    return pdf1 <= 1e-280


# Fast loops run over blocks of this many elements; a block where some element needs the
# careful evaluation of φ(d2) is computed again with it (rare: |d1| > 35.7). Small enough that
# a flagged block costs little, large enough that the block overhead is negligible.
_BLOCK = 4096


@kernel
def bsm_price(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Black-Scholes-Merton value of each element into ``out``."""
    for i in range(S.shape[0]):
        s, k, t, rr, qq, sig = S[i], K[i], T[i], r[i], q[i], sigma[i]
        valid = _bsm_valid(s, k, t, rr, qq, sig)
        # Invalid elements compute on harmless stand-ins and get NaN at the end (no branch).
        s, k, t = (s, k, t) if valid else (1.0, 1.0, 1.0)
        rr, qq, sig = (rr, qq, sig) if valid else (0.0, 0.0, 1.0)
        omega = 1.0 if is_call[i] else -1.0
        a = s * exp_(-qq * t)
        b = k * exp_(-rr * t)
        # ln(F/K) as ln(S/K) + (r - q)T: no rounding of F enters d1.
        _, _, _, _, n1, n2, _ = _black_terms(
            log_(s / k) + (rr - qq) * t, sig * math.sqrt(t), a, b, omega, True
        )
        out[i] = omega * (a * n1 - b * n2) if valid else math.nan


@kernel
def black_price(
    F: FloatArray,
    K: FloatArray,
    T: FloatArray,
    D: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Black-76 value of each element (forward F, discount factor D) into ``out``."""
    for i in range(F.shape[0]):
        f, k, t, d, sig = F[i], K[i], T[i], D[i], sigma[i]
        valid = (
            (f > 0.0)
            & (f < math.inf)
            & (k > 0.0)
            & (k < math.inf)
            & (t >= 0.0)
            & (t < math.inf)
            & (d > 0.0)
            & (d < math.inf)
            & (sig >= 0.0)
            & (sig < math.inf)
        )
        f, k, t = (f, k, t) if valid else (1.0, 1.0, 1.0)
        d, sig = (d, sig) if valid else (1.0, 1.0)
        omega = 1.0 if is_call[i] else -1.0
        a = d * f
        b = d * k
        _, _, _, _, n1, n2, _ = _black_terms(log_(f / k), sig * math.sqrt(t), a, b, omega, True)
        out[i] = omega * (a * n1 - b * n2) if valid else math.nan


@inline
def _first_order_element(
    s: float,
    k: float,
    t: float,
    rr: float,
    qq: float,
    sig: float,
    call: bool,
    careful: bool,
) -> tuple[float, float, float, float, float, float, float, bool]:
    """Price, delta, gamma, vega, theta, rho, dividend rho of one element, and whether it needs
    the careful φ(d2) (see `_black_terms`).

    Scalars in and out: an inlined helper taking the arrays gets reference counting around
    it, and those calls stop the vectorizer.
    """
    valid = _bsm_valid(s, k, t, rr, qq, sig)
    s, k, t = (s, k, t) if valid else (1.0, 1.0, 1.0)
    rr, qq, sig = (rr, qq, sig) if valid else (0.0, 0.0, 1.0)
    omega = 1.0 if call else -1.0
    sqrt_t = math.sqrt(t)
    Dq = exp_(-qq * t)
    a = s * Dq  # S e^{-qT}
    b = k * exp_(-rr * t)  # K e^{-rT}
    _, _, w, pdf1, n1, n2, kink = _black_terms(
        log_(s / k) + (rr - qq) * t, sig * sqrt_t, a, b, omega, careful
    )
    a_pdf = a * pdf1
    nan = math.nan
    # At the kink vega keeps its limit a φ(0) √T; gamma and theta diverge.
    vega = a * _INV_SQRT_2PI * sqrt_t if kink else a_pdf * sqrt_t
    gamma = nan if kink else a_pdf / (s * s * w)
    # sqrt_t is 0 only at zero variance, where a_pdf is 0: max() avoids 0/0.
    theta = -0.5 * a_pdf * sig / max(sqrt_t, 1e-300) + omega * (qq * a * n1 - rr * b * n2)
    theta = nan if kink else theta
    return (
        omega * (a * n1 - b * n2) if valid else nan,
        omega * Dq * n1 if valid else nan,
        gamma if valid else nan,
        vega if valid else nan,
        theta if valid else nan,
        omega * b * t * n2 if valid else nan,
        -omega * a * t * n1 if valid else nan,
        _needs_care(pdf1),
    )


@kernel
def _first_order_range(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
    start: int,
    stop: int,
) -> int:
    """Elements start..stop-1 of `bsm_first_order_greeks` without the careful φ(d2); returns
    how many of them need it."""
    flagged = 0
    for i in range(np.uint64(start), np.uint64(stop)):
        price, delta, gamma, vega, theta, rho, dividend_rho, care = _first_order_element(
            S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i], False
        )
        out[PRICE, i] = price
        out[DELTA, i] = delta
        out[GAMMA, i] = gamma
        out[VEGA, i] = vega
        out[THETA, i] = theta
        out[RHO, i] = rho
        out[DIVIDEND_RHO, i] = dividend_rho
        flagged += int(care)
    return flagged


@kernel
def _first_order_careful_range(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
    start: int,
    stop: int,
) -> None:
    """Elements start..stop-1 of `bsm_first_order_greeks` with the careful φ(d2)."""
    for i in range(np.uint64(start), np.uint64(stop)):
        price, delta, gamma, vega, theta, rho, dividend_rho, _ = _first_order_element(
            S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i], True
        )
        out[PRICE, i] = price
        out[DELTA, i] = delta
        out[GAMMA, i] = gamma
        out[VEGA, i] = vega
        out[THETA, i] = theta
        out[RHO, i] = rho
        out[DIVIDEND_RHO, i] = dividend_rho


@kernel
def bsm_first_order_greeks(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Price, delta, gamma, vega, theta, rho and dividend rho into rows 0..6 of ``out`` (7, n).

    The shared terms (d1, d2, φ, N(ωd1), N(ωd2), Dr, Dq) are computed once per element; the
    loop bodies have no branch and no call, so LLVM vectorizes them. Blocks are computed
    without the careful φ(d2) first and again with it when one of their elements needs it
    (see `_black_terms`). The block loops are kernels of their own: a loop nested in the block
    loop of one function is not vectorized by LLVM (measured), a called kernel's loop is.
    """
    n = S.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        if _first_order_range(S, K, T, r, q, sigma, is_call, out, start, stop) > 0:
            _first_order_careful_range(S, K, T, r, q, sigma, is_call, out, start, stop)


@kernel
def bsm_greeks(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Price and all thirteen Greeks into the 14 rows of ``out`` (14, n); rows named above.

    Closed forms (calendar time t, T = expiry - t, so d/dt = -d/dT), with
    g = ∂d1/∂T = (r - q)/(σ√T) - d2/(2T):

    - gamma = Dq φ(d1)/(S w); vega = S Dq φ(d1) √T
    - theta = -S Dq φ(d1) σ/(2√T) + ω(q S Dq N(ωd1) - r K Dr N(ωd2))
    - vanna = -Dq φ(d1) d2/σ; volga = vega d1 d2/σ
    - charm = ω q Dq N(ωd1) - Dq φ(d1) g
    - veta = vega (q + (r - q) d1/(σ√T) - (1 + d1 d2)/(2T))
    - speed = -gamma (1 + d1/w)/S; zomma = gamma (d1 d2 - 1)/σ
    - color = gamma (q + d1 g + 1/(2T))

    Each product starts from its φ(d1) factor so that a zero density (zero variance, or
    |d1| > 37.6) multiplies finite numbers only and gives 0, not 0 * inf. At zero variance
    σ or T may be 0: they enter divisions through max(., 1e-300), harmless since φ = 0 there.

    Two passes: the first-order kernel fills rows 0..6, then one loop recomputes the shared
    terms and fills rows 7..13. A single loop storing fourteen rows is not vectorized by LLVM
    (measured: 5 million options/s against 8 for the two vectorized passes).
    """
    bsm_first_order_greeks(S, K, T, r, q, sigma, is_call, out[:FIRST_ORDER_ROWS])
    for i in range(S.shape[0]):
        s, k, t, rr, qq, sig = S[i], K[i], T[i], r[i], q[i], sigma[i]
        valid = _bsm_valid(s, k, t, rr, qq, sig)
        s, k, t = (s, k, t) if valid else (1.0, 1.0, 1.0)
        rr, qq, sig = (rr, qq, sig) if valid else (0.0, 0.0, 1.0)
        omega = 1.0 if is_call[i] else -1.0
        sqrt_t = math.sqrt(t)
        Dq = exp_(-qq * t)
        a = s * Dq
        b = k * exp_(-rr * t)
        d1, d2, w, pdf1, n1, _, kink = _black_terms(
            log_(s / k) + (rr - qq) * t, sig * sqrt_t, a, b, omega, False
        )
        t_safe = max(t, 1e-300)
        sig_safe = max(sig, 1e-300)
        a_pdf = a * pdf1
        dq_pdf = Dq * pdf1
        vega = a_pdf * sqrt_t
        gamma = a_pdf / (s * s * w)
        dd1_dT = (rr - qq) / w - 0.5 * d2 / t_safe
        # At the kink these Greeks diverge or have no unique limit.
        diverging = kink | (valid ^ True)
        nan = math.nan
        out[VANNA, i] = nan if diverging else -dq_pdf * d2 / sig_safe
        out[VOLGA, i] = nan if diverging else vega * d1 * d2 / sig_safe
        out[CHARM, i] = nan if diverging else omega * qq * Dq * n1 - dq_pdf * dd1_dT
        veta = vega * (qq + (rr - qq) * d1 / w - 0.5 * (1.0 + d1 * d2) / t_safe)
        out[VETA, i] = nan if diverging else veta
        out[SPEED, i] = nan if diverging else -gamma * (1.0 + d1 / w) / s
        out[ZOMMA, i] = nan if diverging else gamma * (d1 * d2 - 1.0) / sig_safe
        out[COLOR, i] = nan if diverging else gamma * (qq + d1 * dd1_dT + 0.5 / t_safe)
