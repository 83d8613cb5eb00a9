"""Raw SVI smiles: the model, its JW form, butterfly repair, and a fast arbitrage-free fit.

Raw SVI (Gatheral 2004; Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces",
Quantitative Finance 14(1), 59-71, here GJ) gives the total implied variance of one expiry in
log-moneyness ``k = ln(K / F)``:

    w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)),

with ``b >= 0``, ``|rho| < 1``, ``sigma > 0`` and ``a + b sigma sqrt(1 - rho^2) >= 0``.

:func:`fit_svi` calibrates one :class:`~periscope.volatility.smile.SmileQuotes` slice in
well under a millisecond: a quasi-explicit grid start, Levenberg-Marquardt with the analytic
Jacobian (numba, :mod:`periscope.volatility._svi_kernels`), Lee's wing bound and a non-negative
minimum variance as hard constraints, and Durrleman's condition checked on a dense grid, with a
penalized refit, the GJ JW repair, or a projection onto an SSVI slice when it fails. The returned
slice is always free of butterfly arbitrage (or has NaN parameters and says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from periscope.volatility import _svi_kernels as _k
from periscope.volatility.smile import SmileQuotes

__all__ = [
    "SliceData",
    "SliceStatus",
    "SviFit",
    "SviJw",
    "SviParams",
    "cost_floor",
    "fit_svi",
    "from_jw",
    "prepare_slice",
    "repair_butterfly_jw",
    "slice_fit_metrics",
    "svi_derivatives",
    "svi_total_variance",
    "to_jw",
]

FloatArray = npt.NDArray[np.float64]

MIN_QUOTES = 5
"""Fewer usable quotes than this and a slice is ``TOO_FEW_QUOTES`` (five SVI parameters)."""
MAX_ITERATIONS = 200
BUTTERFLY_TOLERANCE = 1e-12
"""Durrleman's ``g`` above ``-BUTTERFLY_TOLERANCE`` counts as non-negative (rounding)."""
LEE_CAP = 2.0 * (1.0 - 1e-9)
# Lee's moment formula needs b (1 + |rho|) <= 2; strictly below so d+ -> -inf in the right wing
# (GJ Lemma 2.2's call-price limit).
_PENALTY_MARGIN = 1e-4
_PENALTY_WEIGHTS = (10.0, 1e2, 1e3, 1e4)
_MIN_SPREAD = 1e-4  # one volatility basis point: no quote is trusted more than that
_RHO_MAX = _k.RHO_MAX
_N_STARTS = 2
_CHECK_STEP = 0.005
_PROBE_ITERATIONS = 15
_MAX_MINIMA = 64
# The quasi-explicit start grid, as fractions of the quotes' log-moneyness span.
_SIGMA_FRACTIONS = np.array([0.02, 0.05, 0.12, 0.3, 0.7, 1.5])
_M_FRACTIONS = np.array([-0.25, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25])


class SliceStatus(IntEnum):
    """Outcome of fitting one expiry.

    OK
        Fitted and free of butterfly arbitrage as fitted.
    REPAIRED
        The unconstrained optimum had butterfly arbitrage (Durrleman's ``g < 0`` somewhere on
        the check grid); the parameters returned come from a penalized refit, the GJ JW repair
        or a projection onto an SSVI slice, and are butterfly-free.
    TOO_FEW_QUOTES
        Fewer than :data:`MIN_QUOTES` usable quotes. With one or two quotes the smile is flat
        at their weighted mean variance, with three or four a fixed-shape linear fit; with none
        the parameters are NaN. (eSSVI bridges such slices by interpolation.)
    NOT_CONVERGED
        Levenberg-Marquardt hit its iteration cap. The parameters are the best found and are
        still butterfly-free; treat the fit with suspicion.
    INVALID_INPUT
        The slice itself is unusable: non-positive or non-finite time to expiry, arrays of
        different lengths. Parameters are NaN.
    """

    OK = 0
    REPAIRED = 1
    TOO_FEW_QUOTES = 2
    NOT_CONVERGED = 3
    INVALID_INPUT = 4


class SviParams(NamedTuple):
    """Raw SVI parameters (GJ eq. 3.1). ``w`` is total variance (decimal² · years).

    ``a`` level, ``b >= 0`` wing size, ``-1 < rho < 1`` skew, ``m`` horizontal shift (in
    log-moneyness), ``sigma > 0`` ATM curvature scale (in log-moneyness).
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    @classmethod
    def nan(cls) -> SviParams:
        """All-NaN parameters (no fit)."""
        return cls(math.nan, math.nan, math.nan, math.nan, math.nan)

    @property
    def is_finite(self) -> bool:
        """Whether every parameter is a finite number."""
        return all(map(math.isfinite, self))

    @property
    def minimum_variance(self) -> float:
        """``a + b sigma sqrt(1 - rho^2)``, the smallest total variance of the smile."""
        return self.a + self.b * self.sigma * math.sqrt(max(1.0 - self.rho**2, 0.0))


class SviJw(NamedTuple):
    """SVI Jump-Wings parameters of one slice (GJ §3.3), in time-scaled units.

    ``v`` ATM variance, ``psi`` ATM skew, ``p`` put-wing slope, ``c`` call-wing slope,
    ``v_tilde`` minimum implied variance.
    """

    v: float
    psi: float
    p: float
    c: float
    v_tilde: float


def _k_array(log_moneyness: npt.ArrayLike) -> FloatArray:
    return np.asarray(log_moneyness, dtype=np.float64)


def svi_total_variance(params: SviParams, log_moneyness: npt.ArrayLike) -> FloatArray:
    """Raw SVI total variance ``w(k)`` (decimal² · years), vectorized over ``k``.

    Examples
    --------
    >>> float(svi_total_variance(SviParams(0.04, 0.1, -0.5, 0.0, 0.1), 0.0))
    0.05
    """
    a, b, rho, m, sigma = params
    u = _k_array(log_moneyness) - m
    return np.asarray(a + b * (rho * u + np.sqrt(u * u + sigma * sigma)), dtype=np.float64)


def svi_derivatives(
    params: SviParams, log_moneyness: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """``(w'(k), w''(k))`` of raw SVI: ``b (rho + u/r)`` and ``b sigma^2 / r^3``, ``u = k - m``,
    ``r = sqrt(u^2 + sigma^2)``."""
    _, b, rho, m, sigma = params
    u = _k_array(log_moneyness) - m
    root = np.sqrt(u * u + sigma * sigma)
    first = np.asarray(b * (rho + u / root), dtype=np.float64)
    second = np.asarray(b * sigma * sigma / root**3, dtype=np.float64)
    return first, second


def to_jw(params: SviParams, time_to_expiry: float) -> SviJw:
    """Raw SVI to SVI-JW at ``time_to_expiry`` years (GJ §3.3).

    ``v = w0/t``, ``psi = b/(2 sqrt(w0)) (rho - m/sqrt(m^2 + sigma^2))``,
    ``p = b (1 - rho)/sqrt(w0)``, ``c = b (1 + rho)/sqrt(w0)``,
    ``v_tilde = (a + b sigma sqrt(1 - rho^2))/t`` with ``w0 = w(0)``.
    """
    a, b, rho, m, sigma = params
    t = float(time_to_expiry)
    hyp = math.sqrt(m * m + sigma * sigma)
    w0 = a + b * (-rho * m + hyp)
    root_w = math.sqrt(w0) if w0 > 0.0 else math.nan
    return SviJw(
        v=w0 / t,
        psi=b / (2.0 * root_w) * (rho - m / hyp),
        p=b * (1.0 - rho) / root_w,
        c=b * (1.0 + rho) / root_w,
        v_tilde=(a + b * sigma * math.sqrt(1.0 - rho * rho)) / t,
    )


def from_jw(jw: SviJw, time_to_expiry: float) -> SviParams:
    """SVI-JW back to raw SVI (GJ Lemma 3.2). NaN parameters where no raw slice exists.

    ``b = sqrt(w)/2 (c + p)``, ``rho = 1 - p sqrt(w)/b``, ``beta = rho - 2 psi sqrt(w)/b``,
    ``alpha = sign(beta) sqrt(1/beta^2 - 1)``,
    ``m = (v - v_tilde) t / (b (-rho + sign(alpha) sqrt(1 + alpha^2) - alpha sqrt(1 - rho^2)))``,
    ``sigma = alpha m``, ``a = v_tilde t - b sigma sqrt(1 - rho^2)`` with ``w = v t``. When
    ``v = v_tilde`` the minimum is at the money and ``sigma`` is not determined (NaN).
    """
    t = float(time_to_expiry)
    w = jw.v * t
    if not (w > 0.0 and t > 0.0):
        return SviParams.nan()
    root_w = math.sqrt(w)
    b = 0.5 * root_w * (jw.c + jw.p)
    if not b > 0.0:
        return SviParams.nan()
    rho = 1.0 - jw.p * root_w / b
    beta = rho - 2.0 * jw.psi * root_w / b
    if not (abs(beta) <= 1.0 and abs(rho) < 1.0) or beta == 0.0:
        return SviParams.nan()
    alpha = math.copysign(math.sqrt(1.0 / (beta * beta) - 1.0), beta)
    denominator = b * (
        -rho
        + math.copysign(1.0, alpha) * math.sqrt(1.0 + alpha * alpha)
        - alpha * math.sqrt(1.0 - rho * rho)
    )
    m = (jw.v - jw.v_tilde) * t / denominator
    sigma = alpha * m
    if not sigma > 0.0:
        return SviParams.nan()
    a = jw.v_tilde * t - b * sigma * math.sqrt(1.0 - rho * rho)
    return SviParams(a, b, rho, m, sigma)


def repair_butterfly_jw(params: SviParams, time_to_expiry: float) -> SviParams:
    """GJ §5.1 repair: keep ``v``, ``psi``, ``p``; set ``c' = p + 2 psi`` and
    ``v_tilde' = v 4 p c' / (p + c')^2``; back to raw SVI.

    The repaired slice keeps the ATM level and skew and the put wing of the original and is
    free of butterfly arbitrage in the cases GJ discuss (it can fail, e.g. when ``c' <= 0``;
    check with :func:`periscope.volatility.arbitrage.check_butterfly`). NaN parameters when
    the repaired JW values have no raw equivalent.

    Examples
    --------
    >>> vogt = SviParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)   # GJ Example 3.1
    >>> [round(x, 6) for x in repair_butterfly_jw(vogt, 1.0)]
    [0.007741, 0.069242, -0.334036, 0.042034, 0.118608]
    """
    jw = to_jw(params, time_to_expiry)
    c_new = jw.p + 2.0 * jw.psi
    if not (c_new > 0.0 and jw.p > 0.0):
        return SviParams.nan()
    v_tilde = jw.v * 4.0 * jw.p * c_new / (jw.p + c_new) ** 2
    return from_jw(SviJw(jw.v, jw.psi, jw.p, c_new, v_tilde), time_to_expiry)


# --- quote preparation shared with eSSVI ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SliceData:
    """One slice's usable quotes in fitting units.

    ``scale`` turns total-variance errors into weighted volatility errors:
    ``scale_i = sqrt(weight_i) / (2 T iv_mid_i)`` (see :func:`prepare_slice`).
    """

    time_to_expiry: float
    log_moneyness: FloatArray
    total_variance: FloatArray
    scale: FloatArray
    iv_mid: FloatArray
    iv_bid: FloatArray
    iv_ask: FloatArray
    valid: bool

    @property
    def size(self) -> int:
        """Number of usable quotes."""
        return int(self.log_moneyness.size)


def _empty_slice(time_to_expiry: float) -> SliceData:
    empty = np.empty(0, dtype=np.float64)
    return SliceData(time_to_expiry, empty, empty, empty, empty, empty, empty, False)


def _shape(array: npt.ArrayLike) -> tuple[int, ...]:
    """``np.shape``, without its dispatch overhead for arrays."""
    return array.shape if isinstance(array, np.ndarray) else np.shape(array)


def prepare_slice(quotes: SmileQuotes) -> SliceData:
    """Usable quotes of a slice with their least-squares weights.

    A quote is usable with finite ``log_moneyness`` and a finite positive ``iv_mid``. Its
    weight is ``1 / spread`` on the squared volatility error, ``spread = iv_ask - iv_bid``;
    where the bid volatility is missing (zero bid), ``2 (iv_ask - iv_mid)``; where neither
    exists, the widest spread of the slice (least trust). Spreads are floored at one basis point
    and at a quarter of the slice's median spread so no single tight quote dominates. A slice
    without any spread falls back to vega weights (relative to the largest vega).
    """
    t = float(quotes.time_to_expiry)
    k, mid, bid, ask, vega = (
        quotes.log_moneyness,
        quotes.iv_mid,
        quotes.iv_bid,
        quotes.iv_ask,
        quotes.vega,
    )
    shape = _shape(k)
    if (
        not (math.isfinite(t) and t > 0.0)
        or len(shape) != 1
        or not (_shape(mid) == _shape(bid) == _shape(ask) == _shape(vega) == shape)
    ):
        return _empty_slice(t)
    k = np.ascontiguousarray(k, dtype=np.float64)
    mid = np.ascontiguousarray(mid, dtype=np.float64)
    bid = np.ascontiguousarray(bid, dtype=np.float64)
    ask = np.ascontiguousarray(ask, dtype=np.float64)
    vega = np.ascontiguousarray(vega, dtype=np.float64)
    table = np.empty((6, shape[0]))
    count = int(_k.prepare_quotes(k, mid, bid, ask, vega, t, _MIN_SPREAD, table))
    k, w, scale, mid, bid, ask = table[:, :count]
    return SliceData(t, k, w, scale, mid, bid, ask, True)


def slice_fit_metrics(data: SliceData, fitted_w: FloatArray) -> tuple[float, float, float]:
    """``(rmse_bp, max_abs_error_bp, inside_band_share)`` of fitted total variances.

    Errors are fitted volatility minus mid volatility, in basis points (unweighted). A fitted
    volatility is inside the band when ``iv_bid <= fit <= iv_ask`` (a missing bid counts as 0,
    a missing ask as no upper bound).
    """
    if data.size == 0 or not np.isfinite(fitted_w).all():
        return math.nan, math.nan, math.nan
    rmse, worst, inside = _k.fit_metrics(
        np.ascontiguousarray(fitted_w, dtype=np.float64),
        data.time_to_expiry,
        data.iv_mid,
        data.iv_bid,
        data.iv_ask,
    )
    return float(rmse), float(worst), float(inside)


# --- the fit -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SviFit:
    """The result of :func:`fit_svi` for one expiry.

    Attributes
    ----------
    params
        Raw SVI parameters (NaN when there is no fit).
    status
        :class:`SliceStatus`.
    time_to_expiry
        Years, copied from the quotes.
    rmse_bp, max_abs_error_bp
        Root-mean-square and largest absolute error of the fitted volatility against the mid
        volatility, in volatility basis points (0.0001), unweighted, over the quotes used.
    inside_band_share
        Share of used quotes whose fitted volatility lies in ``[iv_bid, iv_ask]``.
    n_used
        Usable quotes (finite log-moneyness and a positive mid volatility).
    min_g
        Smallest Durrleman ``g`` on the dense check grid (NaN without a fit).
    butterfly_free
        ``min_g >= -1e-12`` and Lee's bound hold.
    iterations
        Levenberg-Marquardt iterations, all refits included.
    """

    params: SviParams
    status: SliceStatus
    time_to_expiry: float
    rmse_bp: float
    max_abs_error_bp: float
    inside_band_share: float
    n_used: int
    min_g: float
    butterfly_free: bool
    iterations: int

    def total_variance(self, log_moneyness: npt.ArrayLike) -> FloatArray:
        """The fitted ``w(k)``."""
        return svi_total_variance(self.params, log_moneyness)

    def implied_volatility(self, log_moneyness: npt.ArrayLike) -> FloatArray:
        """The fitted volatility ``sqrt(w(k) / T)`` (decimal)."""
        w = self.total_variance(log_moneyness)
        return np.asarray(np.sqrt(np.maximum(w, 0.0) / self.time_to_expiry), dtype=np.float64)


def _check_bounds(k_min: float, k_max: float) -> tuple[float, float]:
    """The uniform part of :func:`check_grid`'s grid: the quotes' range and a unit beyond,
    at least ``[-3, 3]``."""
    return min(-3.0, k_min - 1.0), max(3.0, k_max + 1.0)


def check_grid(params: SviParams, k_min: float = -3.0, k_max: float = 3.0) -> FloatArray:
    """The dense grid Durrleman's condition is checked on for ``params``.

    A uniform grid of step 0.005 over ``[min(-3, k_min - 1), max(3, k_max + 1)]`` (the task's
    standard check range, widened to the quotes), continued into both wings by points 10 %
    apart out to ``|k| = 1e4``, joined with ``m + sigma sinh(z)``, ``z in [-8, 8]`` (321
    points): ``g`` varies on the scale ``sigma`` around ``m``, which is far below 0.005 for
    short expiries, and on the scale ``|k - m|`` further out. The check itself also refines
    every grid-local minimum of ``g`` between its grid neighbours (golden-section search), so
    a dip narrower than the grid spacing is found too.
    """
    low, high = _check_bounds(k_min, k_max)
    count = math.ceil((high - low) / _CHECK_STEP) + 1
    left = low * _k.FAR_RATIO ** np.arange(_k.far_points(low), 0, -1)
    right = high * _k.FAR_RATIO ** np.arange(1, _k.far_points(high) + 1)
    uniform = np.concatenate((left, np.linspace(low, high, count), right))
    if not params.is_finite:
        return uniform
    z = np.linspace(-_k.FEATURE_HALF_WIDTH, _k.FEATURE_HALF_WIDTH, _k.FEATURE_POINTS)
    feature = params.m + params.sigma * np.sinh(z)
    return np.ascontiguousarray(np.concatenate((uniform, feature)))


def durrleman_scan(
    params: SviParams,
    k_min: float = -3.0,
    k_max: float = 3.0,
    tolerance: float = BUTTERFLY_TOLERANCE,
) -> tuple[float, float, int]:
    """``(min g, where, violations)`` on :func:`check_grid`'s grid and between its points
    (every grid-local minimum refined by golden-section search), computed in one kernel;
    violations are points with ``g < -tolerance``."""
    low, high = _check_bounds(k_min, k_max)
    best, where, count = _k.durrleman_check(*params, low, high, _CHECK_STEP, tolerance)
    return float(best), float(where), int(count)


def _check_and_minima(
    params: SviParams, k_min: float, k_max: float
) -> tuple[tuple[float, float, int], FloatArray]:
    """:func:`durrleman_scan` and, from the same scan, where ``g`` has its refined local
    minima (at most :data:`_MAX_MINIMA`): the penalized refit puts penalty rows there too."""
    low, high = _check_bounds(k_min, k_max)
    out = np.empty(_MAX_MINIMA)
    best, where, count, found = _k.durrleman_minima(
        *params, low, high, _CHECK_STEP, BUTTERFLY_TOLERANCE, out
    )
    return (float(best), float(where), int(count)), out[: min(int(found), _MAX_MINIMA)]


def _k_range(data: SliceData) -> tuple[float, float]:
    if data.size == 0:
        return -3.0, 3.0
    return float(data.log_moneyness[0]), float(data.log_moneyness[-1])


def _lee_ok(params: SviParams) -> bool:
    return params.b * (1.0 + abs(params.rho)) <= 2.0


def _ssvi_projection(params: SviParams) -> SviParams:
    """The SSVI slice with this slice's ATM variance, ``rho`` and ``psi = 2b``, capped by GJ
    Theorem 4.2 (``psi (1 + |rho|) < 4``, ``psi^2 (1 + |rho|) <= 4 theta``): always
    butterfly-free, the last resort of the repair."""
    theta = float(svi_total_variance(params, 0.0))
    if not (theta > 0.0 and math.isfinite(theta)):
        theta = max(params.minimum_variance, 1e-12)
    rho = min(max(params.rho if math.isfinite(params.rho) else 0.0, -_RHO_MAX), _RHO_MAX)
    one = 1.0 + abs(rho)
    psi = 2.0 * params.b if math.isfinite(params.b) else 0.0
    psi = min(max(psi, 1e-12), 4.0 * (1.0 - 1e-6) / one, math.sqrt(4.0 * theta / one) * 0.999999)
    phi = psi / theta
    return SviParams(
        theta * (1.0 - rho * rho) / 2.0,
        theta * phi / 2.0,
        rho,
        -rho / phi,
        math.sqrt(1.0 - rho * rho) / phi,
    )


def cost_floor(data: SliceData) -> float:
    """The cost at which a fit is exact to the data's precision: a root-mean-square
    volatility error of 1e-11 (1e-7 bp), i.e. ``sum_i weight_i 1e-22`` in the weighted units of
    :func:`prepare_slice`.
    """
    root = data.scale * 2.0
    root *= data.time_to_expiry
    root *= data.iv_mid
    return float(np.square(root, out=root).sum()) * 1e-22


def _bounds(
    k: FloatArray, w: FloatArray, floor: float = 0.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    k_min = float(k[0])
    k_max = float(k[-1])
    span = max(k_max - k_min, 1e-3)
    w_max = float(w.max())
    level = max(_median(w), 1e-12)
    lower = np.array([-10.0 * w_max - 1.0, 0.0, -_RHO_MAX, k_min - 2.0 * span, 1e-4 * span])
    upper = np.array([10.0 * w_max + 1.0, 10.0, _RHO_MAX, k_max + 2.0 * span, 10.0 * span + 1.0])
    options = np.array([0.0, _PENALTY_MARGIN, 1e-8 * level, LEE_CAP, floor])
    return lower, upper, options


def _median(values: FloatArray) -> float:
    """``np.median`` of a non-empty 1-d array, bit for bit (the mean of the two middle values
    of an even count is their sum over two), at a fraction of its overhead."""
    ordered = np.sort(values)
    half = ordered.size // 2
    if math.isnan(ordered[-1]):  # NaN sorts last; np.median propagates it
        return math.nan
    if ordered.size % 2:
        return float(ordered[half])
    return float((ordered[half - 1] + ordered[half]) / 2.0)


def _starts(k: FloatArray, w: FloatArray, s: FloatArray, few: bool, count: int) -> FloatArray:
    """The ``count`` best quasi-explicit starts (one per ``m`` of the grid), best first."""
    k_min = float(k[0])
    k_max = float(k[-1])
    span = max(k_max - k_min, 1e-3)
    sigma_grid = span * _SIGMA_FRACTIONS
    m_grid = np.array([0.5 * (k_min + k_max)]) if few else k_min + span * _M_FRACTIONS
    table = np.empty((m_grid.size, 6))
    _k.quasi_explicit_starts(k, w, s, m_grid, sigma_grid, table)
    order = table[:, 5].argsort(kind="stable")[:count]
    return np.ascontiguousarray(table[order, :5])


def _too_few(data: SliceData) -> SviParams:
    if data.size == 0:
        return SviParams.nan()
    weight = data.scale**2 * data.iv_mid**2
    level = float(np.sum(weight * data.total_variance) / np.sum(weight))
    if data.size < 3:
        return SviParams(level, 0.0, 0.0, 0.0, 1.0)
    x = _starts(data.log_moneyness, data.total_variance, data.scale, True, 1)[0]
    lower, upper, options = _bounds(data.log_moneyness, data.total_variance)
    x = np.minimum(np.maximum(x, lower), upper)
    params = SviParams(*x.tolist())
    b = min(params.b, LEE_CAP / (1.0 + abs(params.rho)))
    a = max(params.a, options[2] - b * params.sigma * math.sqrt(1.0 - params.rho**2))
    return params._replace(a=a, b=b)


def _penalized_refit(data: SliceData, x0: FloatArray) -> tuple[SviParams, int, bool]:
    """Refit from ``x0`` with penalty rows ``mu min(g - margin, 0)`` (``mu`` growing) until the
    dense check passes. ``(params, iterations, passed)``."""
    lower, upper, options = _bounds(data.log_moneyness, data.total_variance, cost_floor(data))
    k_min = float(data.log_moneyness[0])
    k_max = float(data.log_moneyness[-1])
    x = x0.copy()
    iterations = 0
    params = SviParams(*x.tolist())
    _, minima = _check_and_minima(params, k_min, k_max)
    for weight in _PENALTY_WEIGHTS:
        grid = check_grid(params, k_min, k_max)
        g = _g_on(params, grid)
        # Penalty rows where g is low (and a sparse backbone elsewhere), recollected each round
        # as the smile moves.
        near = g < 20.0 * _PENALTY_MARGIN
        near[::8] = True
        # Plus the true minima between grid points, where a narrow dip would otherwise hide.
        penalty_k = np.ascontiguousarray(np.concatenate((grid[near][:800], minima)))
        options[_k.OPT_PENALTY_WEIGHT] = weight
        _, its, _ = _k.levenberg_marquardt(
            _k.MODEL_SVI,
            x,
            lower,
            upper,
            data.log_moneyness,
            data.total_variance,
            data.scale,
            penalty_k,
            options,
            MAX_ITERATIONS,
        )
        iterations += int(its)
        params = SviParams(*x.tolist())
        if not params.is_finite:
            return params, iterations, False
        check, minima = _check_and_minima(params, k_min, k_max)  # one scan: the next round's too
        if check[2] == 0:
            return params, iterations, True
    return params, iterations, False


def _cost(data: SliceData, params: SviParams) -> float:
    residual = data.scale * (svi_total_variance(params, data.log_moneyness) - data.total_variance)
    return float(residual @ residual)


def _g_on(params: SviParams, grid: FloatArray) -> FloatArray:
    n = grid.size
    w = np.empty(n)
    w1 = np.empty(n)
    w2 = np.empty(n)
    g = np.empty(n)
    _k.svi_values(*params, grid, w, w1, w2, g)
    return g


def _make_fit(
    data: SliceData,
    params: SviParams,
    status: SliceStatus,
    iterations: int,
    check: tuple[float, float, int] | None = None,
) -> SviFit:
    if not params.is_finite:
        return SviFit(
            params, status, data.time_to_expiry, math.nan, math.nan, math.nan, data.size,
            math.nan, False, iterations,
        )  # fmt: skip
    min_g, _, count = durrleman_scan(params, *_k_range(data)) if check is None else check
    # slice_fit_metrics of svi_total_variance, in one kernel (the same arithmetic).
    rmse, worst, inside = _k.svi_fit_metrics(
        *params, data.log_moneyness, data.time_to_expiry, data.iv_mid, data.iv_bid, data.iv_ask
    )
    return SviFit(
        params=params,
        status=status,
        time_to_expiry=data.time_to_expiry,
        rmse_bp=float(rmse),
        max_abs_error_bp=float(worst),
        inside_band_share=float(inside),
        n_used=data.size,
        min_g=min_g,
        butterfly_free=count == 0 and _lee_ok(params),
        iterations=iterations,
    )


def _make_butterfly_free(
    data: SliceData, params: SviParams, x: FloatArray
) -> tuple[SviParams, int, bool, tuple[float, float, int]]:
    """Return butterfly-free parameters close to the quotes:
    ``(params, iterations, changed, (min g, where, violations))``.

    Candidates, all checked on the dense grid: penalized refits from ``params`` and from its
    SSVI projection, GJ's JW repair, and the SSVI projection itself (butterfly-free by GJ
    Theorem 4.2, so there is always one); the cheapest on the quotes wins.
    """
    k_min, k_max = _k_range(data)
    check = durrleman_scan(params, k_min, k_max)
    if _lee_ok(params) and check[2] == 0:
        return params, 0, False, check
    projected = _ssvi_projection(params)
    candidates = [projected]
    iterations = 0
    repaired = repair_butterfly_jw(params, data.time_to_expiry)
    if repaired.is_finite and _lee_ok(repaired) and durrleman_scan(repaired, k_min, k_max)[2] == 0:
        candidates.append(repaired)
    if data.size >= MIN_QUOTES:
        for start in (x, np.array(projected)):
            refit, its, passed = _penalized_refit(data, np.ascontiguousarray(start))
            iterations += its
            if passed and _lee_ok(refit):
                candidates.append(refit)
    best = projected
    if data.size:
        costs = [_cost(data, candidate) for candidate in candidates]
        best = candidates[int(np.argmin(costs))]
    return best, iterations, True, durrleman_scan(best, k_min, k_max)


def fit_svi(quotes: SmileQuotes, *, max_iterations: int = MAX_ITERATIONS) -> SviFit:
    """Calibrate a butterfly-free raw SVI smile to one expiry's out-of-the-money quotes.

    Method: the quotes' total variances are fitted in weighted volatility units (weights from
    the bid/ask volatility band, see :func:`prepare_slice`). Starts come from the
    quasi-explicit method (Zeliade; De Marco & Martini 2009): for each ``(m, sigma)`` of an
    8 x 6 grid, linear least squares in ``(a, b rho sigma, b sigma)``, projected onto the
    feasible set; the best start per ``m`` is kept. Levenberg-Marquardt with the analytic
    Jacobian (numba) then refines all five parameters from the best start, and from the
    second best when a 15-step probe already does better (SVI has local minima), inside
    ``|rho| <= 0.999``, Lee's bound ``b (1 + |rho|) <= 2`` and ``a + b sigma sqrt(1 - rho^2)
    >= 0``, stopping when the cost stops falling (relative 1e-9 per step or 1e-4 over ten
    steps). Durrleman's ``g`` is then checked on a dense grid (:func:`check_grid`); where it
    is negative the candidates are penalized refits (rows ``mu min(g - 1e-4, 0)``, ``mu``
    growing) from the fit and from its SSVI projection, GJ's JW repair (§5.1) and the SSVI
    projection itself (butterfly-free by GJ Theorem 4.2); the one closest to the quotes wins
    and the status says ``REPAIRED``.

    Never raises on a bad slice: the status says what happened (:class:`SliceStatus`).

    Parameters
    ----------
    quotes
        One expiry's cleaned out-of-the-money quotes.
    max_iterations
        Levenberg-Marquardt iteration cap per (re)fit.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.linspace(-0.3, 0.2, 30)
    >>> truth = SviParams(0.01, 0.1, -0.6, 0.02, 0.1)
    >>> vol = np.sqrt(svi_total_variance(truth, k) / 0.5)
    >>> quotes = SmileQuotes(np.datetime64("2026-06-19"), 0.5, 100.0, 0.99, 100 * np.exp(k), k,
    ...                      vol - 0.002, vol, vol + 0.002, np.ones_like(k), k > 0)
    >>> fit = fit_svi(quotes)
    >>> fit.status.name, round(fit.rmse_bp, 6)
    ('OK', 0.0)
    """
    data = prepare_slice(quotes)
    if not data.valid:
        return _make_fit(data, SviParams.nan(), SliceStatus.INVALID_INPUT, 0)
    if data.size < MIN_QUOTES:
        params = _too_few(data)
        if params.is_finite:
            params = _make_butterfly_free(data, params, np.array(params))[0]
        return _make_fit(data, params, SliceStatus.TOO_FEW_QUOTES, 0)
    # Levenberg-Marquardt from the two best quasi-explicit starts (different m): SVI's cost has
    # local minima (a wing fitted by the "wrong" branch), and the second start is cheap. The
    # box and options are _bounds's, computed in the kernel.
    options = np.array([0.0, _PENALTY_MARGIN, 0.0, LEE_CAP, cost_floor(data)])
    x = np.empty(5)
    lm_status, iterations = _k.fit_svi_unconstrained(
        data.log_moneyness, data.total_variance, data.scale, _M_FRACTIONS, _SIGMA_FRACTIONS,
        options, _N_STARTS, _PROBE_ITERATIONS, max_iterations, x,
    )  # fmt: skip
    iterations = int(iterations)
    params = SviParams(*x.tolist())
    if not params.is_finite:
        return _make_fit(data, SviParams.nan(), SliceStatus.NOT_CONVERGED, iterations)
    status = SliceStatus.OK if lm_status == _k.CONVERGED else SliceStatus.NOT_CONVERGED
    safe, more, changed, check = _make_butterfly_free(data, params, x)
    if changed and status == SliceStatus.OK:
        status = SliceStatus.REPAIRED
    return _make_fit(data, safe, status, iterations + more, check)
