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

from periscope._numba import kernel
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
            scale = _MAD_TO_SIGMA * np.median(magnitude[:m]) if m > 0 else math.nan
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


def _take(table: FloatArray, columns: npt.NDArray[np.intp]) -> FloatArray:
    return np.take_along_axis(table, columns, axis=1)


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
    valid = np.isfinite(strike) & np.isfinite(call_bid) & np.isfinite(call_ask)
    valid &= np.isfinite(put_bid) & np.isfinite(put_ask) & (strike > 0)
    given = (
        np.full(rows, np.nan)
        if discount_factor is None
        else np.asarray(discount_factor, dtype=np.float64)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        call_mid = 0.5 * (call_bid + call_ask)
        put_mid = 0.5 * (put_bid + put_ask)
        difference = np.where(valid, call_mid - put_mid, np.nan)
        guess_df = np.where(np.isfinite(given), given, 1.0)
        # The Cboe single-strike forward at the strike where |C - P| is smallest.
        nearest = np.argmin(np.where(valid, np.abs(difference), np.inf), axis=1)[:, None]
        k0 = _take(strike, nearest)[:, 0]
        guess = k0 + _take(difference, nearest)[:, 0] / guess_df
        guess = np.where(guess > 0, guess, k0)
        # The ATM straddle is about 0.8 DF F σ√T (Brenner & Subrahmanyam 1988): a scale for
        # the band of strikes used.
        straddle = _take(call_mid + put_mid, nearest)[:, 0]
        deviation = np.maximum(straddle / (0.7979 * guess_df * guess), 1e-6)
        distance = np.where(valid, np.abs(np.log(strike / guess[:, None])), np.inf)
    width = min(config.forward_pairs, strike.shape[1])
    order = np.argsort(distance, axis=1, kind="stable")[:, :width]
    chosen_distance = _take(distance, order)
    rank = np.arange(width)[None, :]
    use = np.isfinite(chosen_distance) & (
        (chosen_distance <= config.forward_band * deviation[:, None])
        | (rank < config.min_forward_pairs)
    )
    k = _take(strike, order)
    cb, ca = _take(call_bid, order), _take(call_ask, order)
    pb, pa = _take(put_bid, order), _take(put_ask, order)
    y = _take(difference, order)
    pairs = use.sum(axis=1).astype(np.int64)
    # Uncertainty of a mid C - P: the two half-spreads added (quotes round to ticks inside them);
    # floored so that a locked quote does not take all the weight.
    with np.errstate(invalid="ignore"):
        half = 0.5 * ((ca - cb) + (pa - pb))
        sigma = np.where(use, np.maximum(half, 1e-4 * np.abs(y) + 1e-6 * k + 1e-8), 1.0)
    fit_df = ~np.isfinite(given) & (pairs >= max(config.min_forward_pairs, 2))
    ks = np.where(use, k, np.nan)
    with np.errstate(invalid="ignore"):
        span = np.nanmax(np.where(use, ks, -np.inf), axis=1) - np.nanmin(
            np.where(use, ks, np.inf), axis=1
        )
    fit_df &= span > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(use, 1.0 / sigma**2, 0.0)
        centre = (weights * np.where(use, k, 0.0)).sum(axis=1) / weights.sum(axis=1)
        # y = DF (F - centre) + DF (centre - K): intercept DF (F - centre), slope DF.
        _, slope, slope_error = _huber_rows(
            centre[:, None] - k, y, sigma, use, fit_df, config.huber_threshold
        )
    fitted = fit_df & (slope > 0)
    df = np.where(np.isfinite(given), given, np.where(fitted, slope, 1.0))
    df_error = np.where(fitted, slope_error, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_pair = k + y / df[:, None]
        location, _, _ = _huber_rows(
            np.zeros_like(k),
            per_pair,
            sigma / df[:, None],
            use,
            np.zeros(rows, dtype=bool),
            config.huber_threshold,
        )
        lower = np.max(np.where(use, k + (cb - pa) / df[:, None], -np.inf), axis=1)
        upper = np.min(np.where(use, k + (ca - pb) / df[:, None], np.inf), axis=1)
    forward = np.where(lower <= upper, np.clip(location, lower, upper), location)
    with np.errstate(invalid="ignore", divide="ignore"):
        standardized = np.where(use, (per_pair - forward[:, None]) * df[:, None] / sigma, 0.0)
    misfit = (standardized**2).sum(axis=1)
    none = pairs == 0
    nan = np.full(rows, np.nan)
    return ParityFits(
        forward=np.where(none, nan, forward),
        discount_factor=np.where(none & ~np.isfinite(given), nan, df),
        discount_error=df_error,
        pairs=pairs,
        lower=np.where(none, nan, lower),
        upper=np.where(none, nan, upper),
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
        clamped = np.clip(t, low, high)
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
