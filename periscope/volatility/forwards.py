"""Implied forwards and discount factors from put-call parity, one expiry at a time.

European parity ``C - P = DF (F - K)`` makes ``C - P`` linear in the strike, with slope ``-DF``
and intercept ``DF F`` (quant notes §3). For each expiry :func:`parity_forward` takes the
near-the-money strikes where both the call and the put have a two-sided quote, and

* without a discount factor, fits ``DF`` and ``F`` jointly by a Huber-weighted (IRLS) regression
  of the mid ``C - P`` on ``K``, each pair weighted by the inverse square of its combined
  half-spread (the uncertainty of its ``C - P``);
* with one (from a rate curve, or from the smoothed joint fits), fits ``F`` alone as the Huber
  location of the per-pair ``K + (C - P) / DF``;

then intersects the no-arbitrage intervals ``F ∈ [K + (C_bid - P_ask)/DF, K + (C_ask - P_bid)/DF]``
of the pairs and clips the estimate to the intersection when it is not empty.

:func:`smooth_rates` turns the per-expiry joint ``DF`` fits, which are noisy for short expiries
(the strikes span too little to fix a slope), into a rate curve: a Huber-weighted linear fit of
``r(T) = -ln DF / T`` in ``T`` with each expiry weighted by its standard error.
:func:`fill_forwards` gives expiries without enough pairs a forward carried from their neighbours
(``F = S e^{c T}`` with the carry ``c = ln(F/S)/T`` interpolated in ``T``).

American quotes do not satisfy parity (only bounds); :mod:`periscope.volatility.quotes`
de-Americanizes the pairs first and calls these functions on the European-equivalent prices.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from periscope._numba import inline, kernel
from periscope.volatility.cleaning import DEFAULT_CLEANING, CleaningConfig

__all__ = [
    "ForwardStatus",
    "ParityFit",
    "ParityFits",
    "fill_forwards",
    "huber_regression",
    "parity_forward",
    "parity_forwards",
    "smooth_rates",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_MAD_TO_SIGMA = 1.4826  # 1 / Φ⁻¹(3/4): the MAD of a Gaussian sample estimates σ / 1.4826
_IRLS_ITERATIONS = 30
# The row-wise fits stop earlier: after ten reweightings the estimate moves by a small fraction
# of the quotes' rounding (measured on the simulator: forwards change by < 1e-7 relative).
_ROW_IRLS_ITERATIONS = 10


class ForwardStatus(enum.IntEnum):
    """How an expiry's forward was found.

    OK
        Parity over at least :attr:`~periscope.volatility.cleaning.CleaningConfig.min_forward_pairs`
        near-the-money pairs.
    FEW_PAIRS
        Parity over fewer pairs (one or two): less robust to a bad quote.
    INTERPOLATED
        No pair: the carry ``ln(F/S)/T`` interpolated from the other expiries (flat beyond).
    SPOT_CARRY
        No pair on any expiry: ``F = S / DF`` (no dividends assumed).
    MISSING
        No forward at all (no pair and no spot): the expiry cannot be used.
    """

    OK = 0
    FEW_PAIRS = 1
    INTERPOLATED = 2
    SPOT_CARRY = 3
    MISSING = 4


@dataclass(frozen=True, slots=True)
class ParityFit:
    """One expiry's parity fit.

    Attributes
    ----------
    forward
        F (NaN when there is no pair).
    discount_factor
        DF used or fitted.
    discount_error
        Standard error of a jointly fitted DF (NaN when DF was given or could not be fitted).
    pairs
        Number of pairs used.
    lower, upper
        The intersection of the pairs' bid/ask intervals for F (``lower > upper`` when they do
        not intersect; NaN without pairs).
    """

    forward: float
    discount_factor: float
    discount_error: float
    pairs: int
    lower: float
    upper: float


def huber_regression(
    design: FloatArray,
    target: FloatArray,
    sigma: FloatArray,
    threshold: float = DEFAULT_CLEANING.huber_threshold,
) -> tuple[FloatArray, FloatArray]:
    """Huber M-estimate of ``target ≈ design @ beta`` by iteratively reweighted least squares.

    Parameters
    ----------
    design
        ``(n, p)`` regressors, n ≥ p.
    target
        ``(n,)`` observations.
    sigma
        ``(n,)`` a priori standard deviations (> 0); residuals are measured in these units.
    threshold
        Huber's c in units of the robust scale (1.4826 × median absolute standardized residual).

    Returns
    -------
    beta, covariance
        Coefficients and their covariance (from the final weighted fit, with the residual
        variance floored at the a priori one's tenth so that exact data are not overconfident).

    References
    ----------
    Huber, P. J. (1964), "Robust estimation of a location parameter", Ann. Math. Statist. 35(1);
    Holland & Welsch (1977), "Robust regression using iteratively reweighted least-squares".
    """
    base = 1.0 / sigma**2
    weights = base.copy()
    beta = np.zeros(design.shape[1])
    n, p = design.shape
    for _ in range(_IRLS_ITERATIONS):
        root = np.sqrt(weights)
        beta_new, *_ = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)
        standardized = (target - design @ beta_new) / sigma
        scale = _MAD_TO_SIGMA * float(np.median(np.abs(standardized)))
        cut = threshold * max(scale, 1e-12)
        weights = base * np.minimum(1.0, cut / np.maximum(np.abs(standardized), 1e-300))
        if np.allclose(beta_new, beta, rtol=1e-12, atol=0.0):
            beta = beta_new
            break
        beta = beta_new
    residual = (target - design @ beta) / sigma
    dof = max(n - p, 1)
    relative = weights / base
    variance = max(float(np.sum(relative * residual**2)) / dof, 0.1)
    normal = (design * weights[:, None]).T @ design
    try:
        covariance = np.linalg.inv(normal) * variance
    except np.linalg.LinAlgError:
        covariance = np.full((p, p), np.nan)
    return beta, covariance


@dataclass(frozen=True, slots=True)
class ParityFits:
    """:func:`parity_forwards` for many expiries: the fields of :class:`ParityFit` as arrays,
    one element per expiry (row)."""

    forward: FloatArray
    discount_factor: FloatArray
    discount_error: FloatArray
    pairs: npt.NDArray[np.int64]
    lower: FloatArray
    upper: FloatArray
    misfit: FloatArray


@inline
def _median_in_place(values: FloatArray, count: int) -> float:
    """``np.median`` of ``values[:count]`` (``count`` ≥ 1), sorting them in place: NaN if one is
    NaN, else the middle value or the mean of the two middle ones (their sum over two, as
    NumPy). Insertion sort, without the copy ``np.median`` allocates: the rows are a few dozen
    values at most, and the IRLS takes one median per iteration."""
    for i in range(count):
        if math.isnan(values[i]):
            return math.nan
    for i in range(1, count):
        value = values[i]
        j = i - 1
        while j >= 0 and values[j] > value:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = value
    half = count // 2
    if count % 2:
        return float(values[half])
    return float((values[half - 1] + values[half]) / 2.0)


@kernel
def _huber_rows_kernel(
    x: FloatArray,
    y: FloatArray,
    sigma: FloatArray,
    valid: BoolArray,
    fit_slope: BoolArray,
    threshold: float,
    iterations: int,
    intercept: FloatArray,
    slope: FloatArray,
    slope_error: FloatArray,
) -> None:
    """Row-wise Huber IRLS of ``y ≈ a + b x`` (see :func:`_huber_rows`); each row stops when
    its own coefficients settle (relative changes below 1e-10)."""
    rows, cols = x.shape
    base = np.empty(cols)
    weights = np.empty(cols)
    residual = np.empty(cols)
    magnitude = np.empty(cols)
    for i in range(rows):
        count = 0
        for j in range(cols):
            base[j] = 1.0 / (sigma[i, j] * sigma[i, j]) if valid[i, j] else 0.0
            weights[j] = base[j]
            residual[j] = 0.0
            count += 1 if valid[i, j] else 0
        a = 0.0
        b = 0.0
        determinant = 1.0
        for _ in range(iterations):
            s0 = sx = sy = sxx = sxy = 0.0
            for j in range(cols):
                if valid[i, j]:
                    w = weights[j]
                    s0 += w
                    sx += w * x[i, j]
                    sy += w * y[i, j]
                    sxx += w * x[i, j] * x[i, j]
                    sxy += w * x[i, j] * y[i, j]
            determinant = s0 * sxx - sx * sx
            b_new = (s0 * sxy - sx * sy) / determinant if fit_slope[i] else 0.0
            a_new = (sy - b_new * sx) / s0
            m = 0
            for j in range(cols):
                if valid[i, j]:
                    residual[j] = (y[i, j] - a_new - b_new * x[i, j]) / sigma[i, j]
                    magnitude[m] = abs(residual[j])
                    m += 1
            scale = _MAD_TO_SIGMA * _median_in_place(magnitude, m) if m > 0 else math.nan
            cut = threshold * (scale if scale > 1e-12 else 1e-12)
            for j in range(cols):
                if valid[i, j]:
                    size = abs(residual[j])
                    ratio = cut / (size if size > 1e-300 else 1e-300)
                    weights[j] = base[j] * (ratio if ratio < 1.0 else 1.0)
            # Relative changes below 1e-10 (NaN rows count as settled): far below quote noise.
            moved = (abs(a_new - a) > 1e-10 * abs(a_new)) or (
                abs(b_new - b) > 1e-10 * abs(b_new) + 1e-14
            )
            a = a_new
            b = b_new
            if not moved:
                break
        intercept[i] = a
        slope[i] = b
        slope_error[i] = math.nan
        if fit_slope[i]:
            dof = max(count - 2, 1)
            chi2 = 0.0
            total = 0.0
            for j in range(cols):
                if valid[i, j]:
                    chi2 += weights[j] / base[j] * residual[j] * residual[j]
                    total += weights[j]
            variance = max(chi2 / dof, 0.1)
            slope_error[i] = math.sqrt(variance * total / determinant)


def _huber_rows(
    x: FloatArray,
    y: FloatArray,
    sigma: FloatArray,
    valid: BoolArray,
    fit_slope: BoolArray,
    threshold: float,
    iterations: int = _ROW_IRLS_ITERATIONS,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Row-wise Huber IRLS of ``y ≈ a + b x`` (``b = 0`` where ``fit_slope`` is False).

    Returns ``a``, ``b`` and the standard error of ``b`` (NaN without a slope), per row; the
    same estimator as :func:`huber_regression`, in closed form for one or two parameters and
    compiled, so all expiries of a chain are fitted at once for a few microseconds each.
    """
    rows = x.shape[0]
    a, b, error = np.empty(rows), np.empty(rows), np.empty(rows)

    def table(values: npt.ArrayLike) -> FloatArray:
        return np.ascontiguousarray(np.broadcast_to(values, x.shape), dtype=np.float64)

    _huber_rows_kernel(
        table(x), table(y), table(sigma), np.ascontiguousarray(valid, dtype=np.bool_),
        np.ascontiguousarray(fit_slope, dtype=np.bool_), float(threshold), int(iterations), a, b,
        error,
    )  # fmt: skip
    return a, b, error


@kernel
def _parity_tables_kernel(
    strike: FloatArray,
    call_bid: FloatArray,
    call_ask: FloatArray,
    put_bid: FloatArray,
    put_ask: FloatArray,
    given: FloatArray,
    band: float,
    min_pairs: int,
    k: FloatArray,
    cb: FloatArray,
    ca: FloatArray,
    pb: FloatArray,
    pa: FloatArray,
    y: FloatArray,
    sigma: FloatArray,
    use: BoolArray,
    pairs: npt.NDArray[np.int64],
    fit_df: BoolArray,
    centre: FloatArray,
) -> None:
    """The pair selection of :func:`parity_forwards`, row by row (one call per chain instead of
    some fifty NumPy operations on small tables): the Cboe guess of the forward at the pair
    with the smallest ``|C - P|``, the pairs nearest it (output tables of ``width = k.shape[1]``
    columns, nearest first) inside ``band`` ATM deviations or among the ``min_pairs`` nearest,
    their ``C - P`` and its uncertainty, and whether the row can fit its discount factor."""
    rows, cols = strike.shape
    width = k.shape[1]
    distance = np.empty(cols)
    difference = np.empty(cols)
    for i in range(rows):
        df_guess = given[i] if math.isfinite(given[i]) else 1.0
        best = math.inf
        nearest = 0
        for j in range(cols):
            valid = (
                math.isfinite(strike[i, j])
                and math.isfinite(call_bid[i, j])
                and math.isfinite(call_ask[i, j])
                and math.isfinite(put_bid[i, j])
                and math.isfinite(put_ask[i, j])
                and strike[i, j] > 0.0
            )
            difference[j] = math.nan
            if valid:
                difference[j] = 0.5 * (call_bid[i, j] + call_ask[i, j]) - 0.5 * (
                    put_bid[i, j] + put_ask[i, j]
                )
                if abs(difference[j]) < best:
                    best = abs(difference[j])
                    nearest = j
        k0 = strike[i, nearest]
        guess = k0 + difference[nearest] / df_guess
        if not guess > 0.0:
            guess = k0
        straddle = 0.5 * (call_bid[i, nearest] + call_ask[i, nearest]) + 0.5 * (
            put_bid[i, nearest] + put_ask[i, nearest]
        )
        deviation = straddle / (0.7979 * df_guess * guess)
        if deviation < 1e-6:
            deviation = 1e-6
        for j in range(cols):
            distance[j] = math.inf
            if math.isfinite(difference[j]):
                distance[j] = abs(math.log(strike[i, j] / guess))
        order = np.argsort(distance, kind="mergesort")
        count = 0
        low = math.inf
        high = -math.inf
        weight_sum = 0.0
        weighted_k = 0.0
        for r in range(width):
            j = order[r]
            near = distance[j]
            chosen = math.isfinite(near) and (near <= band * deviation or r < min_pairs)
            use[i, r] = chosen
            k[i, r] = strike[i, j]
            cb[i, r] = call_bid[i, j]
            ca[i, r] = call_ask[i, j]
            pb[i, r] = put_bid[i, j]
            pa[i, r] = put_ask[i, j]
            y[i, r] = difference[j]
            sigma[i, r] = 1.0
            if chosen:
                half = 0.5 * ((ca[i, r] - cb[i, r]) + (pa[i, r] - pb[i, r]))
                floor = 1e-4 * abs(y[i, r]) + 1e-6 * k[i, r] + 1e-8
                sigma[i, r] = half if half > floor else floor
                count += 1
                low = min(low, k[i, r])
                high = max(high, k[i, r])
                w = 1.0 / (sigma[i, r] * sigma[i, r])
                weight_sum += w
                weighted_k += w * k[i, r]
        pairs[i] = count
        fit_df[i] = not math.isfinite(given[i]) and count >= max(min_pairs, 2) and high - low > 0.0
        centre[i] = weighted_k / weight_sum if weight_sum > 0.0 else math.nan


@kernel
def _parity_fit_kernel(
    k: FloatArray,
    cb: FloatArray,
    ca: FloatArray,
    pb: FloatArray,
    pa: FloatArray,
    y: FloatArray,
    sigma: FloatArray,
    use: BoolArray,
    pairs: npt.NDArray[np.int64],
    fit_df: BoolArray,
    centre: FloatArray,
    given: FloatArray,
    threshold: float,
    iterations: int,
    forward: FloatArray,
    df: FloatArray,
    df_error: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    misfit: FloatArray,
) -> None:
    """The fits of :func:`parity_forwards` on the tables of :func:`_parity_tables_kernel`:
    the slope (DF) by Huber regression of ``C - P`` on ``centre - K``, then the forward as the
    Huber location of the pairs' own forwards ``K + (C - P)/DF``, clipped to the intersection
    of their bid/ask bounds when it is not empty, and the misfit."""
    rows, width = k.shape
    x = np.empty((rows, width))
    for i in range(rows):
        for r in range(width):
            x[i, r] = centre[i] - k[i, r]
    slope = np.empty(rows)
    slope_error = np.empty(rows)
    unused = np.empty(rows)
    _huber_rows_kernel(x, y, sigma, use, fit_df, threshold, iterations, unused, slope, slope_error)
    per_pair = np.empty((rows, width))
    scaled = np.empty((rows, width))
    no_slope = np.zeros(rows, dtype=np.bool_)
    for i in range(rows):
        fitted = fit_df[i] and slope[i] > 0.0
        if math.isfinite(given[i]):
            df[i] = given[i]
        else:
            df[i] = slope[i] if fitted else 1.0
        df_error[i] = slope_error[i] if fitted else math.nan
        for r in range(width):
            x[i, r] = 0.0
            per_pair[i, r] = k[i, r] + y[i, r] / df[i]
            scaled[i, r] = sigma[i, r] / df[i]
    location = np.empty(rows)
    _huber_rows_kernel(
        x, per_pair, scaled, use, no_slope, threshold, iterations, location, unused, slope_error
    )
    for i in range(rows):
        low = -math.inf
        high = math.inf
        for r in range(width):
            if use[i, r]:
                low = max(low, k[i, r] + (cb[i, r] - pa[i, r]) / df[i])
                high = min(high, k[i, r] + (ca[i, r] - pb[i, r]) / df[i])
        value = location[i]
        if low <= high and not math.isnan(value):
            value = min(max(value, low), high)
        total = 0.0
        for r in range(width):
            if use[i, r]:
                z = (per_pair[i, r] - value) * df[i] / sigma[i, r]
                total += z * z
        misfit[i] = total
        if pairs[i] == 0:
            forward[i] = math.nan
            lower[i] = math.nan
            upper[i] = math.nan
            if not math.isfinite(given[i]):
                df[i] = math.nan
        else:
            forward[i] = value
            lower[i] = low
            upper[i] = high


def parity_forwards(
    strike: FloatArray,
    call_bid: FloatArray,
    call_ask: FloatArray,
    put_bid: FloatArray,
    put_ask: FloatArray,
    discount_factor: FloatArray | None = None,
    *,
    config: CleaningConfig = DEFAULT_CLEANING,
) -> ParityFits:
    """:func:`parity_forward` for many expiries at once: one row per expiry.

    ``misfit`` (per row) is the sum of squared deviations of the pairs' own forwards
    ``K + (C - P)/DF`` from the fitted one, in units of their half-spreads: how well the quotes
    agree with European parity (used to choose the dividend model of American quotes).

    Parameters
    ----------
    strike, call_bid, call_ask, put_bid, put_ask
        ``(expiries, pairs)`` arrays, NaN-padded (a row's pairs in any order).
    discount_factor
        ``(expiries,)`` known DFs (NaN entries are fitted), or None to fit every row's.
    config
        As for :func:`parity_forward`.

    Returns
    -------
    ParityFits
        One element per row.
    """
    strike = np.asarray(strike, dtype=np.float64)
    rows = strike.shape[0]
    if strike.shape[1] == 0:  # no pair at all: one NaN column keeps the row logic uniform
        pad = np.full((rows, 1), np.nan)
        strike, call_bid, call_ask, put_bid, put_ask = pad, pad, pad, pad, pad
    given = (
        np.full(rows, np.nan)
        if discount_factor is None
        else np.ascontiguousarray(
            np.broadcast_to(np.asarray(discount_factor, dtype=np.float64), (rows,))
        )
    )
    width = min(config.forward_pairs, strike.shape[1])
    k, cb, ca, pb, pa, y, sigma = (np.empty((rows, width)) for _ in range(7))
    use = np.empty((rows, width), dtype=np.bool_)
    pairs = np.empty(rows, dtype=np.int64)
    fit_df = np.empty(rows, dtype=np.bool_)
    centre = np.empty(rows)

    def table(values: npt.ArrayLike) -> FloatArray:
        if isinstance(values, np.ndarray) and values.shape == strike.shape:
            return np.ascontiguousarray(values, dtype=np.float64)  # broadcast_to costs more
        return np.ascontiguousarray(np.broadcast_to(values, strike.shape), dtype=np.float64)

    # The Cboe single-strike forward at the strike where |C - P| is smallest guesses F; the ATM
    # straddle, about 0.8 DF F σ√T (Brenner & Subrahmanyam 1988), scales the band of strikes
    # used; a mid C - P is uncertain by the two half-spreads added (quotes round to ticks inside
    # them), floored so that a locked quote does not take all the weight.
    _parity_tables_kernel(
        np.ascontiguousarray(strike), table(call_bid), table(call_ask), table(put_bid),
        table(put_ask), given,
        float(config.forward_band), int(config.min_forward_pairs), k, cb, ca, pb, pa, y, sigma,
        use, pairs, fit_df, centre,
    )  # fmt: skip
    # y = DF (F - centre) + DF (centre - K): intercept DF (F - centre), slope DF.
    forward, df, df_error, lower, upper, misfit = (np.empty(rows) for _ in range(6))
    _parity_fit_kernel(
        k, cb, ca, pb, pa, y, sigma, use, pairs, fit_df, centre, given,
        float(config.huber_threshold), _ROW_IRLS_ITERATIONS, forward, df, df_error, lower, upper,
        misfit,
    )  # fmt: skip
    return ParityFits(
        forward=forward,
        discount_factor=df,
        discount_error=df_error,
        pairs=pairs,
        lower=lower,
        upper=upper,
        misfit=misfit,
    )


def parity_forward(
    strike: FloatArray,
    call_bid: FloatArray,
    call_ask: FloatArray,
    put_bid: FloatArray,
    put_ask: FloatArray,
    discount_factor: float | None = None,
    *,
    config: CleaningConfig = DEFAULT_CLEANING,
) -> ParityFit:
    """Forward (and, without ``discount_factor``, the discount factor) of one expiry.

    Parameters
    ----------
    strike
        Strikes of the pairs (each with a clean two-sided call and put quote), > 0.
    call_bid, call_ask, put_bid, put_ask
        European (or European-equivalent) quotes per share, bid ≤ ask, bids > 0; pairs with a
        NaN are ignored.
    discount_factor
        Known DF; None fits it jointly with F (needs at least
        :attr:`~CleaningConfig.min_forward_pairs` pairs spanning more than one strike,
        otherwise DF = 1 is assumed and the caller should supply one).
    config
        ``forward_pairs`` (most pairs used, nearest the money), ``forward_band`` (in ATM
        standard deviations), ``min_forward_pairs`` and ``huber_threshold``.

    Returns
    -------
    ParityFit
        NaN forward with ``pairs == 0`` when no pair is given.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.array([95.0, 100.0, 105.0])
    >>> c_minus_p = 0.99 * (101.0 - k)
    >>> fit = parity_forward(k, c_minus_p + 5.0, c_minus_p + 5.1, np.full(3, 5.0), np.full(3, 5.1))
    >>> round(fit.forward, 10), round(fit.discount_factor, 10)
    (101.0, 0.99)
    """
    arrays = [
        np.asarray(value, dtype=np.float64).reshape(1, -1)
        for value in (strike, call_bid, call_ask, put_bid, put_ask)
    ]
    given = None if discount_factor is None else np.array([float(discount_factor)])
    fits = parity_forwards(
        arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], given, config=config
    )
    return ParityFit(
        forward=float(fits.forward[0]),
        discount_factor=float(fits.discount_factor[0]),
        discount_error=float(fits.discount_error[0]),
        pairs=int(fits.pairs[0]),
        lower=float(fits.lower[0]),
        upper=float(fits.upper[0]),
    )


def smooth_rates(
    time_to_expiry: FloatArray,
    discount_factor: FloatArray,
    discount_error: FloatArray,
    threshold: float = DEFAULT_CLEANING.huber_threshold,
) -> FloatArray:
    """Zero rates ``r(T)`` smoothed over expiries from noisy per-expiry DF fits.

    A Huber-weighted fit of ``r_i = -ln(DF_i) / T_i`` on ``(1, T)``, each expiry weighted by the
    standard error ``se(DF_i) / (DF_i T_i)`` of its rate; with one informative expiry a constant.
    ``T`` is clamped to the informative range so the line extrapolates flat.

    Returns
    -------
    numpy.ndarray
        The smoothed rate at every ``time_to_expiry``; zeros when no expiry has a finite DF and
        error (the caller then has no information on rates and should pass a curve).
    """
    t = np.asarray(time_to_expiry, dtype=np.float64)
    df = np.asarray(discount_factor, dtype=np.float64)
    err = np.asarray(discount_error, dtype=np.float64)
    ok = np.isfinite(df) & np.isfinite(err) & (df > 0) & (err > 0) & (t > 0)
    if not ok.any():
        return np.zeros_like(t)
    rate = -np.log(df[ok]) / t[ok]
    rate_error = err[ok] / (df[ok] * t[ok])
    t_ok = t[ok]
    low, high = float(t_ok.min()), float(t_ok.max())
    # huber_regression's estimator on (1, T), row-wise and compiled (no lstsq per iteration).
    line = bool(ok.sum() >= 3 and high > low)
    intercept, slope, _ = _huber_rows(
        t_ok[None, :], rate[None, :], rate_error[None, :], np.ones((1, t_ok.size), dtype=bool),
        np.array([line]), threshold, _IRLS_ITERATIONS,
    )  # fmt: skip
    if line:
        clamped = np.minimum(np.maximum(t, low), high)  # np.clip costs more on short arrays
        return np.asarray(intercept[0] + slope[0] * clamped, dtype=np.float64)
    return np.full_like(t, float(intercept[0]))


def fill_forwards(
    time_to_expiry: FloatArray,
    forward: FloatArray,
    status: npt.NDArray[np.int8],
    discount_factor: FloatArray,
    spot: float,
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Forwards for the expiries whose parity gave none, from the others' carry.

    The carry ``c_i = ln(F_i / S) / T_i`` of the expiries with a forward is interpolated
    linearly in ``T`` (flat beyond the first and last) and ``F = S e^{c T}``; status
    ``INTERPOLATED``. With no expiry to learn from, ``F = S / DF`` (``SPOT_CARRY``); without a
    spot, ``MISSING``.
    """
    forward = forward.copy()
    status = status.copy()
    known = np.isfinite(forward) & (forward > 0)
    todo = ~known
    if not todo.any():
        return forward, status
    if not (np.isfinite(spot) and spot > 0):
        status[todo] = ForwardStatus.MISSING
        forward[todo] = np.nan
        return forward, status
    if known.any():
        carry = np.log(forward[known] / spot) / time_to_expiry[known]
        order = np.argsort(time_to_expiry[known])
        interpolated = np.interp(time_to_expiry[todo], time_to_expiry[known][order], carry[order])
        forward[todo] = spot * np.exp(interpolated * time_to_expiry[todo])
        status[todo] = ForwardStatus.INTERPOLATED
    else:
        forward[todo] = spot / discount_factor[todo]
        status[todo] = ForwardStatus.SPOT_CARRY
    bad = todo & ~(np.isfinite(forward) & (forward > 0))
    status[bad] = ForwardStatus.MISSING
    forward[bad] = np.nan
    return forward, status
