"""Static-arbitrage checks of total-variance smiles and surfaces on dense log-moneyness grids.

- Butterfly (one slice): Durrleman's condition (Gatheral & Jacquier 2014, "Arbitrage-free SVI
  volatility surfaces", QF 14(1), Lemma 2.2), on the grid and refined between its points:
  ``g(k) = (1 - k w'/(2w))^2 - w'^2/4 (1/w + 1/4) + w''/2 >= 0`` with ``w > 0``.
- Lee's moment bound on the wings (Lee 2004): total variance grows at most like ``2|k|``; for raw
  SVI ``b (1 + |rho|) <= 2``.
- Calendar (between slices): total variance is non-decreasing in time at every ``k``
  (GJ Lemma 2.1), i.e. slices never cross.

Every check takes raw SVI parameters (analytic derivatives) or any callable ``w(k)`` (central
finite differences), so the assembled, *published* surface can be checked exactly as served,
e.g. ``check_butterfly(lambda k: surface.total_variance(k, t))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from periscope.errors import InvalidInputError
from periscope.volatility import _svi_kernels as _k
from periscope.volatility.svi import SviParams, svi_total_variance

__all__ = [
    "ButterflyCheck",
    "CalendarCheck",
    "TotalVariance",
    "check_butterfly",
    "check_calendar",
    "dense_k_grid",
    "durrleman_g",
    "durrleman_g_from_derivatives",
    "lee_wing_bound_holds",
]

FloatArray = npt.NDArray[np.float64]
TotalVariance = Callable[[FloatArray], FloatArray]
"""A smile as a function: flat log-moneyness array in, total variance array out."""

DEFAULT_K_MIN = -3.0
DEFAULT_K_MAX = 3.0
DEFAULT_K_STEP = 0.005
DEFAULT_TOLERANCE = 1e-10
"""``g`` (or a calendar difference) above ``-tolerance`` counts as non-negative: rounding and, for
callables, the finite-difference error of ``w''`` (about ``1e-11 |w''''|``)."""
_FD_STEP = 1e-4
# Zoom of the callable check into grid-local minima of g: points per bracket and rounds (each
# shrinks the bracket 8-fold, so 8 rounds take a 0.005 step to below 1e-9).
_ZOOM_POINTS = 17
_ZOOM_ROUNDS = 8


def dense_k_grid(
    k_min: float = DEFAULT_K_MIN, k_max: float = DEFAULT_K_MAX, step: float = DEFAULT_K_STEP
) -> FloatArray:
    """Evenly spaced log-moneyness from ``k_min`` to ``k_max`` (both included), ``step`` apart.

    >>> dense_k_grid().size
    1201
    """
    if not (math.isfinite(k_min) and math.isfinite(k_max) and k_max > k_min and step > 0.0):
        raise InvalidInputError(
            "dense_k_grid needs finite k_min < k_max and step > 0",
            k_min=k_min,
            k_max=k_max,
            step=step,
        )
    count = round((k_max - k_min) / step) + 1
    return np.linspace(k_min, k_max, count)


def durrleman_g_from_derivatives(
    log_moneyness: npt.ArrayLike,
    total_variance: npt.ArrayLike,
    first_derivative: npt.ArrayLike,
    second_derivative: npt.ArrayLike,
) -> FloatArray:
    """Durrleman's ``g`` from ``w``, ``w'`` and ``w''`` at ``k``; ``-inf`` where ``w <= 0``."""
    k = np.asarray(log_moneyness, dtype=np.float64)
    w = np.asarray(total_variance, dtype=np.float64)
    w1 = np.asarray(first_derivative, dtype=np.float64)
    w2 = np.asarray(second_derivative, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = 1.0 - k * w1 / (2.0 * w)
        g = x * x - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    return np.asarray(np.where(w > 0.0, g, -np.inf), dtype=np.float64)


def durrleman_g(params: SviParams, log_moneyness: npt.ArrayLike) -> FloatArray:
    """Durrleman's ``g(k)`` of a raw SVI slice (analytic derivatives).

    Examples
    --------
    >>> vogt = SviParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)  # GJ Example 3.1
    >>> round(float(durrleman_g(vogt, 0.879)), 5)
    -0.03286
    """
    k = np.asarray(log_moneyness, dtype=np.float64)
    flat = np.ascontiguousarray(k.reshape(-1))
    n = flat.size
    w, w1, w2, g = (np.empty(n) for _ in range(4))
    a, b, rho, m, sigma = (float(v) for v in params)
    _k.svi_values(a, b, rho, m, sigma, flat, w, w1, w2, g)
    return g.reshape(k.shape)


def lee_wing_bound_holds(params: SviParams) -> bool:
    """Lee's moment bound for raw SVI: ``b (1 + |rho|) <= 2`` (both wing slopes at most 2)."""
    return bool(params.b * (1.0 + abs(params.rho)) <= 2.0)


@dataclass(frozen=True, slots=True)
class ButterflyCheck:
    """Durrleman's condition on a grid.

    Attributes
    ----------
    violations
        Grid points with ``g < -tolerance`` (or ``w <= 0``, or NaN).
    min_g
        Smallest ``g`` on the grid.
    argmin_k
        Where it is.
    violating_k
        The violating grid points (ascending).
    lee_bound_holds
        Lee's wing bound (checked from the parameters for SVI; from the slopes at the grid's
        ends for callables: ``w'`` at most 2 in absolute value there).
    """

    violations: int
    min_g: float
    argmin_k: float
    violating_k: FloatArray
    lee_bound_holds: bool

    @property
    def arbitrage_free(self) -> bool:
        """No violation on the grid and Lee's bound holds."""
        return self.violations == 0 and self.lee_bound_holds


def _smile_derivatives(
    smile: TotalVariance, k: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    h = _FD_STEP
    w = np.asarray(smile(k), dtype=np.float64)
    up = np.asarray(smile(k + h), dtype=np.float64)
    down = np.asarray(smile(k - h), dtype=np.float64)
    return w, (up - down) / (2.0 * h), (up - 2.0 * w + down) / (h * h)


def _local_minima(k: FloatArray, g: FloatArray) -> npt.NDArray[np.intp]:
    """Indices of the grid-local minima of ``g`` on an ascending grid ``k`` that may hide a dip
    below zero between their neighbours (the rule of the SVI kernels' refinement)."""
    padded = np.concatenate(([np.inf], g, [np.inf]))
    left, mid, right = padded[:-2], padded[1:-1], padded[2:]
    rise_left = np.where(np.isfinite(left), left - mid, 0.0)
    rise_right = np.where(np.isfinite(right), right - mid, 0.0)
    with np.errstate(invalid="ignore"):
        minimum = np.isfinite(mid) & (mid < left) & (mid <= right)
        worth = mid < _k.REFINE_BELOW + rise_left + rise_right
    return np.flatnonzero(minimum & worth)


def _refine_svi(
    params: SviParams, k: FloatArray, g: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    n = k.size
    out_g, out_k = np.empty(n), np.empty(n)
    out_index = np.empty(n, dtype=np.int64)
    a, b, rho, m, sigma = (float(v) for v in params)
    found = int(_k.refined_minima(a, b, rho, m, sigma, k, g, out_g, out_k, out_index))
    return out_g[:found], out_k[:found], out_index[:found]


def _refine_callable(
    smile: TotalVariance, k: FloatArray, g: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Zoom into every worthwhile grid-local minimum: each round evaluates ``g`` at
    :data:`_ZOOM_POINTS` points across every bracket at once and keeps the bracket around the
    lowest, shrinking it ``(_ZOOM_POINTS - 1) / 2``-fold."""
    index = _local_minima(k, g).astype(np.int64)
    if index.size == 0:
        empty = np.empty(0)
        return empty, empty, index
    lo = k[np.maximum(index - 1, 0)]
    hi = k[np.minimum(index + 1, k.size - 1)]
    fractions = np.linspace(0.0, 1.0, _ZOOM_POINTS)
    rows = np.arange(index.size)
    best_g = g[index].copy()
    best_k = k[index].copy()
    for _ in range(_ZOOM_ROUNDS):
        points = lo[:, None] + (hi - lo)[:, None] * fractions[None, :]
        flat = points.reshape(-1)
        w, w1, w2 = _smile_derivatives(smile, flat)
        values = durrleman_g_from_derivatives(flat, w, w1, w2).reshape(points.shape)
        values = np.where(np.isnan(values), np.inf, values)
        j = np.argmin(values, axis=1)
        lower = values[rows, j] < best_g
        best_g = np.where(lower, values[rows, j], best_g)
        best_k = np.where(lower, points[rows, j], best_k)
        lo = points[rows, np.maximum(j - 1, 0)]
        hi = points[rows, np.minimum(j + 1, _ZOOM_POINTS - 1)]
    return best_g, best_k, index


def check_butterfly(
    smile: SviParams | TotalVariance,
    log_moneyness: npt.ArrayLike | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ButterflyCheck:
    """Check Durrleman's condition ``g(k) >= 0`` on a dense grid and between its points.

    Every grid-local minimum of ``g`` that could hide a dip below zero is refined on the
    bracket of its two grid neighbours (golden-section search for SVI, a vectorized zoom for
    callables), so a dip narrower than the grid step is not missed; a dip below ``-tolerance``
    whose grid point passed counts as one violation at the refined ``k``.

    Parameters
    ----------
    smile
        Raw SVI parameters, or any callable mapping a flat log-moneyness array to total
        variances (derivatives by central differences with step 1e-4).
    log_moneyness
        The grid; default :func:`dense_k_grid` (``[-3, 3]``, step 0.005).
    tolerance
        ``g >= -tolerance`` passes.
    """
    k = (
        dense_k_grid()
        if log_moneyness is None
        else np.ascontiguousarray(np.asarray(log_moneyness, dtype=np.float64).reshape(-1))
    )
    if k.size == 0:
        raise InvalidInputError("check_butterfly needs a non-empty grid")
    if isinstance(smile, SviParams):
        g = durrleman_g(smile, k)
        lee = lee_wing_bound_holds(smile)
    else:
        w, w1, w2 = _smile_derivatives(smile, k)
        g = durrleman_g_from_derivatives(k, w, w1, w2)
        lee = bool(np.all(np.abs(w1[[0, -1]]) <= 2.0 + 1e-9))
    bad = ~(g >= -tolerance)
    # Refinement between grid points, on the sorted distinct grid.
    ordered, first = np.unique(k, return_index=True)
    ordered = np.ascontiguousarray(ordered)
    g_ordered = np.ascontiguousarray(g[first])
    if isinstance(smile, SviParams):
        g_refined, k_refined, index = _refine_svi(smile, ordered, g_ordered)
    else:
        g_refined, k_refined, index = _refine_callable(smile, ordered, g_ordered)
    hidden = ~(g_refined >= -tolerance) & (g_ordered[index] >= -tolerance)
    all_g = np.concatenate((g, g_refined))
    all_k = np.concatenate((k, k_refined))
    position = int(np.nanargmin(all_g)) if np.isfinite(all_g).any() else 0
    if np.isneginf(g).any():
        position = int(np.argmax(np.isneginf(g)))
    return ButterflyCheck(
        violations=int(bad.sum()) + int(hidden.sum()),
        min_g=float(all_g[position]) if not np.isnan(all_g).all() else math.nan,
        argmin_k=float(all_k[position]),
        violating_k=np.sort(np.concatenate((k[bad], k_refined[hidden]))),
        lee_bound_holds=lee,
    )


@dataclass(frozen=True, slots=True)
class CalendarCheck:
    """Calendar condition between consecutive slices on a grid.

    Attributes
    ----------
    crossings
        Grid points, summed over consecutive pairs, where the later slice's total variance is
        below the earlier one's by more than the tolerance.
    min_difference
        Smallest ``w_{i+1}(k) - w_i(k)`` over pairs and grid.
    pair, argmin_k
        Which pair ``(i, i + 1)`` (by ``i``) and where that smallest difference is.
    """

    crossings: int
    min_difference: float
    pair: int
    argmin_k: float

    @property
    def arbitrage_free(self) -> bool:
        """No crossing on the grid."""
        return self.crossings == 0


def _evaluate(smile: SviParams | TotalVariance, k: FloatArray) -> FloatArray:
    if isinstance(smile, SviParams):
        return svi_total_variance(smile, k)
    return np.asarray(smile(k), dtype=np.float64)


def check_calendar(
    slices: Sequence[SviParams | TotalVariance],
    log_moneyness: npt.ArrayLike | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CalendarCheck:
    """Check that total variance never decreases from one slice to the next on a grid.

    Parameters
    ----------
    slices
        Smiles in increasing time to expiry: raw SVI parameters or callables ``w(k)``.
    log_moneyness
        The grid; default :func:`dense_k_grid`.
    tolerance
        ``w_{i+1} - w_i >= -tolerance`` passes.
    """
    k = (
        dense_k_grid()
        if log_moneyness is None
        else np.ascontiguousarray(np.asarray(log_moneyness, dtype=np.float64).reshape(-1))
    )
    if len(slices) < 2:
        return CalendarCheck(0, math.inf, -1, math.nan)
    values = [_evaluate(smile, k) for smile in slices]
    crossings = 0
    best = math.inf
    pair = -1
    where = math.nan
    for i in range(len(values) - 1):
        difference = values[i + 1] - values[i]
        crossings += int(np.sum(~(difference >= -tolerance)))
        index = int(np.nanargmin(difference)) if np.isfinite(difference).any() else 0
        if not difference[index] >= best:
            best = float(difference[index])
            pair = i
            where = float(k[index])
    return CalendarCheck(crossings, best, pair, where)
