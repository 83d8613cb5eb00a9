"""The normalized Black function and the special functions it needs, as numba kernels.

Jäckel, "Let's Be Rational" (Wilmott, 2015; version of 25 March 2016), section 2 and appendix:
with log-moneyness :math:`x = \\ln(F/K)` and total standard deviation :math:`s = \\sigma\\sqrt T`,
the undiscounted Black call divided by :math:`\\sqrt{FK}` is

.. math::

    b(x, s) = e^{x/2}\\,\\Phi(h + t) - e^{-x/2}\\,\\Phi(h - t),\\qquad h = x/s,\\; t = s/2.

Every inversion is reduced to an out-of-the-money call, :math:`x \\le 0`, whose value
:math:`0 < b < e^{x/2}` can be tiny (down to 1e-300) and is the difference of two nearly equal
terms. Evaluating it naively loses every digit there, so :func:`normalized_black_otm_call` picks
one of four forms by region, each free of that cancellation (the paper's eqs. (2.3)-(2.9)).

Textbook symbols used by the kernels: ``x`` log-moneyness, ``s`` total standard deviation,
``h = x/s``, ``t = s/2``, ``b`` normalized price, ``Phi`` the standard normal CDF,
``M(z) = Phi(z)/phi(z)`` the Mills-type ratio, ``erfcx(y) = exp(y^2) erfc(y)``.

Speed: as in Jäckel's reference implementation, erfcx comes from Cody's rational Chebyshev
approximations rather than from libm's erfc times exp (libm's erfc multiplies by
``exp(-y^2)`` internally, which the caller would then divide out); that and a small-``t`` series
whose polynomials do not wait for erfcx make one evaluation of ``b`` cost about 50 ns.
"""

from __future__ import annotations

import math

from periscope._numba import kernel

SQRT_TWO = math.sqrt(2.0)
SQRT_PI = math.sqrt(math.pi)
SQRT_TWO_PI = math.sqrt(2.0 * math.pi)
ONE_OVER_SQRT_TWO_PI = 1.0 / SQRT_TWO_PI

# Below t = s/2 < TAU the two Phi terms are so close that b is computed from its Taylor series in
# t instead. TAU = 2 * eps**(1/16) is the paper's choice (its SIXTEENTH_ROOT_DBL_EPSILON): with
# nine terms (through t**17) the series is exact to rounding below it.
TAU = 2.0 * 2.220446049250313e-16**0.0625
# For h < -10 (and h + t < -10 + TAU) both Phi terms are deep in their tails; the asymptotic
# expansion of the Mills ratio converges to rounding there within about 20 terms (paper's
# ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD).
ASYMPTOTIC_H = -10.0
# Above h + t = 0.85 the first Phi term dominates, so the direct difference of two CDFs keeps
# full precision (the paper's switch between its eqs. (2.6) and (2.9)).
DIRECT_CDF_H_PLUS_T = 0.85
# Cody's erfc/erfcx approximations switch from the erf form to the scaled erfc form here, and to
# the asymptotic form in 1/y^2 beyond CODY_ASYMPTOTIC_Y (W. J. Cody, "Rational Chebyshev
# approximations for the error function", Math. Comp. 23 (1969) 631-637).
CODY_SMALL_Y = 0.46875
CODY_ASYMPTOTIC_Y = 4.0
# Veltkamp's splitter for double precision: 2**27 + 1.
_SPLITTER = 134217729.0
_ONE_OVER_SQRT_PI = 1.0 / SQRT_PI


@kernel
def _exp_square(y: float) -> float:
    """``exp(y*y)`` without the rounding of ``y*y`` (which alone would cost ``2 y**2`` ulps).

    The square is split exactly (Dekker): ``y*y == p + e``, so ``exp(y*y) = exp(p) * (1 + e)``.
    """
    p = y * y
    c = _SPLITTER * y
    hi = c - (c - y)
    lo = y - hi
    e = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
    return math.exp(p) * (1.0 + e)


@kernel
def _erfcx_cody_positive(y: float) -> float:
    """``erfcx(y)`` for ``y > CODY_SMALL_Y`` from Cody's rational Chebyshev approximations.

    The coefficients are the published ones (Cody 1969, and the values of his SPECFUN routine
    CALERF, Argonne 1990), with near-minimax relative error below 1e-18: for ``y <= 4`` erfcx
    itself is a rational function of degree (8, 8) in ``y``; beyond, ``y * erfcx(y) =
    1/sqrt(pi) + z R(z)`` with ``z = 1/y**2`` and ``R`` of degree (5, 5). Neither needs exp or
    erfc, which is why Jaeckel evaluates the normalized Black function through them: libm's
    erfc multiplies by exp(-y^2) internally (twice above 1.25) only for the caller to divide it
    out again. The numerators and denominators are independent Horner chains.
    """
    if y <= CODY_ASYMPTOTIC_Y:
        # Estrin's scheme (pairs, then powers y^2, y^4, y^8) instead of Horner halves the
        # dependency chain; every coefficient and y are positive, so the order of the additions
        # cannot cancel and the rounding stays within a few ulps either way.
        y2 = y * y
        y4 = y2 * y2
        num = (
            (1.23033935479799725272e03 + 2.05107837782607146532e03 * y)
            + (1.71204761263407058314e03 + 8.81952221241769090411e02 * y) * y2
            + ((2.98635138197400131132e02 + 6.61191906371416294775e01 * y)
               + (8.88314979438837594118e00 + 5.64188496988670089180e-01 * y) * y2) * y4
            + 2.15311535474403846343e-08 * (y4 * y4)
        )  # fmt: skip
        den = (
            (1.23033935480374942043e03 + 3.43936767414372163696e03 * y)
            + (4.36261909014324715820e03 + 3.29079923573345962678e03 * y) * y2
            + ((1.62138957456669018874e03 + 5.37181101862009857509e02 * y)
               + (1.17693950891312499305e02 + 1.57449261107098347253e01 * y) * y2) * y4
            + y4 * y4
        )  # fmt: skip
        return num / den
    z = 1.0 / (y * y)
    num = (
        (((( 1.63153871373020978498e-02 * z + 3.05326634961232344035e-01) * z
            + 3.60344899949804439429e-01) * z + 1.25781726111229246204e-01) * z
            + 1.60837851487422766278e-02) * z
        + 6.58749161529837803157e-04
    )  # fmt: skip
    den = (
        (((( z + 2.56852019228982242072e00) * z + 1.87295284992346047209e00) * z
            + 5.27905102951428412248e-01) * z + 6.05183413124413191178e-02) * z
        + 2.33520497626869185443e-03
    )  # fmt: skip
    return (_ONE_OVER_SQRT_PI - z * num / den) / y


@kernel
def erfcx(y: float) -> float:
    """Scaled complementary error function ``exp(y*y) * erfc(y)`` for any real ``y``.

    Accurate to a few ulps. For ``|y| <= CODY_SMALL_Y``: ``exp(y^2) (1 - erf(y))`` with Cody's
    degree-(4, 4) rational form of ``erf(y)/y`` in ``y^2`` (``y^2 <= 0.22``, so the rounding of
    ``y*y`` inside exp costs at most a tenth of an ulp and no cancellation occurs in ``1 -
    erf``). Above: :func:`_erfcx_cody_positive`. Below ``-CODY_SMALL_Y``: the reflection
    ``erfcx(y) = 2 exp(y^2) - erfcx(-y)``, which does not cancel (the first term is at least
    ``2 exp(0.22)`` and the second below 1), with the square split exactly.
    """
    if y > CODY_SMALL_Y:
        return _erfcx_cody_positive(y)
    if y >= -CODY_SMALL_Y:
        q = y * y
        num = (
            (((1.857777061846031526730e-01 * q + 3.161123743870565596947e00) * q
              + 1.138641541510501556495e02) * q + 3.774852376853020208137e02) * q
            + 3.209377589138469472562e03
        )  # fmt: skip
        den = (
            (((q + 2.360129095234412093499e01) * q + 2.440246379344441733056e02) * q
              + 1.282616526077372275645e03) * q
            + 2.844236833439170622273e03
        )  # fmt: skip
        return math.exp(q) * (1.0 - y * num / den)
    return 2.0 * _exp_square(y) - _erfcx_cody_positive(-y)


@kernel
def norm_cdf(z: float) -> float:
    """Standard normal CDF through ``erfc``, exact to rounding in both tails."""
    return 0.5 * math.erfc(-z / SQRT_TWO)


@kernel
def inverse_norm_cdf(p: float) -> float:
    """Standard normal quantile, relative error about 1e-9 (Acklam's rational approximations).

    Only initial guesses use it, and they are refined to full precision afterwards, so the
    published nine-digit accuracy (P. J. Acklam, "An algorithm for computing the inverse normal
    cumulative distribution function", 2003) is more than enough. Returns -inf at 0, +inf at 1.
    """
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        return _acklam_tail(q)
    if p > 1.0 - 0.02425:
        q = math.sqrt(-2.0 * math.log1p(-p))
        return -_acklam_tail(q)
    q = p - 0.5
    r = q * q
    num = (
        ((((-3.969683028665376e01 * r + 2.209460984245205e02) * r - 2.759285104469687e02) * r
          + 1.383577518672690e02) * r - 3.066479806614716e01) * r + 2.506628277459239e00
    )  # fmt: skip
    den = (
        ((((-5.447609879822406e01 * r + 1.615858368580409e02) * r - 1.556989798598866e02) * r
          + 6.680131188771972e01) * r - 1.328068155288572e01) * r + 1.0
    )  # fmt: skip
    return q * num / den


@kernel
def _acklam_tail(q: float) -> float:
    num = (
        ((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e00) * q
          - 2.549732539343734e00) * q + 4.374664141464968e00) * q + 2.938163982698783e00
    )  # fmt: skip
    den = (
        (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e00) * q
         + 3.754408661907416e00) * q + 1.0
    )  # fmt: skip
    return num / den


@kernel
def _asymptotic_expansion(h: float, t: float, gauss: float) -> float:
    """b for h < -10: both CDFs in their tails (paper's eq. (2.6) region, own derivation).

    With ``M(z) = Phi(z)/phi(z) ~ sum_k (-1)^k (2k-1)!! / (-z)^(2k+1)`` (Abramowitz & Stegun
    26.2.12), ``b = phi0 * (M(h+t) - M(h-t))``, ``phi0 = exp(-(h^2+t^2)/2)/sqrt(2 pi)``. Each
    difference of powers is rewritten without subtraction:
    ``A^-n - B^-n = (B-A)/(A B) * T_n`` with ``A = -(h+t)``, ``B = -(h-t)``, ``B - A = 2t`` and
    ``T_n = sum_{i<n} A^-i B^-(n-1-i)``, all positive terms, updated by ``T_{n+1} = A^-n + T_n/B``.
    """
    ia = -1.0 / (h + t)  # 1/A, at most 1/(10 - TAU)
    ib = -1.0 / (h - t)  # 1/B
    # T_1 = 1; carry the power ia**(n-1) along with T_n.
    t_n = 1.0
    ia_pow = 1.0
    total = 1.0
    double_factorial = 1.0
    sign = 1.0
    for k in range(1, 40):
        # advance T_n from n = 2k-1 to n = 2k+1
        ia_pow *= ia
        t_n = ia_pow + ib * t_n
        ia_pow *= ia
        t_n = ia_pow + ib * t_n
        double_factorial *= 2.0 * k - 1.0
        sign = -sign
        term = sign * double_factorial * t_n
        total += term
        if abs(term) <= 1e-17 * total:
            break
    return ONE_OVER_SQRT_TWO_PI * gauss * 2.0 * t * ia * ib * total


@kernel
def _small_t_expansion(h: float, t: float, gauss: float) -> float:
    """b for t < TAU: Taylor series of ``M(h+t) - M(h-t)`` in ``t`` (paper's eq. (2.8) idea).

    ``b = phi0 * 2t * sum_k c_k(h^2, a) t^(2k)`` with ``a = M'(h) = 1 + h M(h)``; the odd
    derivatives of M follow from ``M' = 1 + h M`` and are polynomials in ``h^2`` and ``a``
    (coefficients derived symbolically). Through ``t**17`` the truncation is below 1e-19 for
    t < TAU and -10 <= h <= 0.
    """
    # a = M'(h) needs erfcx; every other coefficient depends on h^2 only, so the polynomials in
    # w = t^2 run in parallel with erfcx, and a enters last: series = a + (a*Q(w) + P(w)) with
    # c_k = p_k + a*q_k. Splitting c_k this way rounds the same terms as summing the c_k first
    # (the cancellation between p_k and a*q_k for large |h| is only moved to the final sums,
    # where its size is the same), but it takes the Horner chain in w off the critical path.
    h2 = h * h
    w = t * t
    p1 = -1.0 / 6.0
    q1 = (1.0 / 6.0) * h2 + (1.0 / 2.0)
    p2 = (-1.0 / 120.0) * h2 - (7.0 / 120.0)
    q2 = ((1.0 / 120.0) * h2 + (1.0 / 12.0)) * h2 + (1.0 / 8.0)
    p3 = ((-1.0 / 5040.0) * h2 - (1.0 / 280.0)) * h2 - (19.0 / 1680.0)
    q3 = (((1.0 / 5040.0) * h2 + (1.0 / 240.0)) * h2 + (1.0 / 48.0)) * h2 + (1.0 / 48.0)
    p4 = (((-1.0 / 362880.0) * h2 - (11.0 / 120960.0)) * h2 - (19.0 / 24192.0)) * h2 - (
        187.0 / 120960.0
    )
    q4 = (
        (((1.0 / 362880.0) * h2 + (1.0 / 10080.0)) * h2 + (1.0 / 960.0)) * h2 + (1.0 / 288.0)
    ) * h2 + (1.0 / 384.0)
    p5 = (
        (((-1.0 / 39916800.0) * h2 - (13.0 / 9979200.0)) * h2 - (1.0 / 47520.0)) * h2
        - (13.0 / 110880.0)
    ) * h2 - (437.0 / 2661120.0)
    q5 = (
        (
            (((1.0 / 39916800.0) * h2 + (1.0 / 725760.0)) * h2 + (1.0 / 40320.0)) * h2
            + (1.0 / 5760.0)
        )
        * h2
        + (1.0 / 2304.0)
    ) * h2 + (1.0 / 3840.0)
    p6 = (
        (
            (((-1.0 / 6227020800.0) * h2 - (1.0 / 83026944.0)) * h2 - (107.0 / 345945600.0)) * h2
            - (97.0 / 29652480.0)
        )
        * h2
        - (263.0 / 19768320.0)
    ) * h2 - (1979.0 / 138378240.0)
    q6 = (
        (
            (
                (((1.0 / 6227020800.0) * h2 + (1.0 / 79833600.0)) * h2 + (1.0 / 2903040.0)) * h2
                + (1.0 / 241920.0)
            )
            * h2
            + (1.0 / 46080.0)
        )
        * h2
        + (1.0 / 23040.0)
    ) * h2 + (1.0 / 46080.0)
    p7 = (
        (
            (
                (
                    ((-1.0 / 1307674368000.0) * h2 - (17.0 / 217945728000.0)) * h2
                    - (23.0 / 7925299200.0)
                )
                * h2
                - (17.0 / 345945600.0)
            )
            * h2
            - (59.0 / 153753600.0)
        )
        * h2
        - (2533.0 / 2075673600.0)
    ) * h2 - (4387.0 / 4151347200.0)
    q7 = (
        (
            (
                (
                    (
                        ((1.0 / 1307674368000.0) * h2 + (1.0 / 12454041600.0)) * h2
                        + (1.0 / 319334400.0)
                    )
                    * h2
                    + (1.0 / 17418240.0)
                )
                * h2
                + (1.0 / 1935360.0)
            )
            * h2
            + (1.0 / 460800.0)
        )
        * h2
        + (1.0 / 276480.0)
    ) * h2 + (1.0 / 645120.0)
    p8 = (
        (
            (
                (
                    (
                        ((-1.0 / 355687428096000.0) * h2 - (19.0 / 50812489728000.0)) * h2
                        - (173.0 / 9120190464000.0)
                    )
                    * h2
                    - (1007.0 / 2155681382400.0)
                )
                * h2
                - (67.0 / 11405721600.0)
            )
            * h2
            - (4541.0 / 125462937600.0)
        )
        * h2
        - (35401.0 / 376388812800.0)
    ) * h2 - (76627.0 / 1129166438400.0)
    q8 = (
        (
            (
                (
                    (
                        (
                            ((1.0 / 355687428096000.0) * h2 + (1.0 / 2615348736000.0)) * h2
                            + (1.0 / 49816166400.0)
                        )
                        * h2
                        + (1.0 / 1916006400.0)
                    )
                    * h2
                    + (1.0 / 139345920.0)
                )
                * h2
                + (1.0 / 19353600.0)
            )
            * h2
            + (1.0 / 5529600.0)
        )
        * h2
        + (1.0 / 3870720.0)
    ) * h2 + (1.0 / 10321920.0)
    p_w = w * (p1 + w * (p2 + w * (p3 + w * (p4 + w * (p5 + w * (p6 + w * (p7 + w * p8)))))))
    q_w = w * (q1 + w * (q2 + w * (q3 + w * (q4 + w * (q5 + w * (q6 + w * (q7 + w * q8)))))))
    a = 1.0 + h * (0.5 * SQRT_TWO_PI) * erfcx(-h / SQRT_TWO)
    series = a + (a * q_w + p_w)
    return ONE_OVER_SQRT_TWO_PI * gauss * 2.0 * t * series


@kernel
def _erfcx_form(h: float, t: float, gauss: float) -> float:
    """b as ``exp(-(h^2+t^2)/2)/2 * (erfcx(-(h+t)/sqrt2) - erfcx(-(h-t)/sqrt2))`` (eq. (2.9)).

    The common Gaussian factor is pulled out, so the remaining difference loses at most a factor
    ``|h|/(2t) <= 10/(2 TAU)`` (about 25) to cancellation in this region.
    """
    return 0.5 * gauss * (erfcx(-(h + t) / SQRT_TWO) - erfcx(-(h - t) / SQRT_TWO))


@kernel
def normalized_black_and_vega(x: float, s: float) -> tuple[float, float]:
    """Normalized out-of-the-money Black call ``b(x, s)`` and its vega ``db/ds``; ``x <= 0 < s``.

    Region choice (Jäckel 2016, section 2): asymptotic expansion in the far tail, Taylor series in
    ``t`` for small ``s``, the plain CDF difference where the first term dominates, and the erfcx
    form elsewhere. The vega ``exp(-(h^2 + t^2)/2) / sqrt(2 pi)`` shares its Gaussian factor with
    three of the four forms, so the solver gets it for one ``exp``.
    """
    h = x / s
    t = 0.5 * s
    gauss = math.exp(-0.5 * (h * h + t * t))
    vega = ONE_OVER_SQRT_TWO_PI * gauss
    if h < ASYMPTOTIC_H and h + t < ASYMPTOTIC_H + TAU:
        return _asymptotic_expansion(h, t, gauss), vega
    if t < TAU:
        return _small_t_expansion(h, t, gauss), vega
    if h + t > DIRECT_CDF_H_PLUS_T:
        e = math.exp(0.5 * x)
        return e * norm_cdf(h + t) - norm_cdf(h - t) / e, vega
    return _erfcx_form(h, t, gauss), vega


@kernel
def normalized_black_otm_call(x: float, s: float) -> float:
    """Normalized out-of-the-money Black call ``b(x, s)`` for ``x <= 0``, ``s >= 0`` (0 at s=0)."""
    if s <= 0.0:
        return 0.0
    return normalized_black_and_vega(x, s)[0]
