"""Surface metrics: pure functions of a total-variance surface ``w(k, T)``.

Every function takes any object with ``total_variance(log_moneyness, time_to_expiry)`` (the
published eSSVI surface, or a test's closed form), so the metrics do not depend on how the
surface was fitted. Conventions (``docs/surfaces.md``):

- ``k = ln(K / F)`` with ``F`` the forward to the expiry; ``w = σ² T`` (decimal² · years).
- Deltas are forward (undiscounted) Black deltas. A call's is ``N(d1)``, a put's ``N(d1) - 1``,
  ``d1 = (-k + w / 2) / sqrt(w)``. Grids are written in call-delta terms: the 25-delta put is the
  point with call delta 0.75 (put delta -0.25), so one smile point has one label.
- ATM is the forward (``k = 0``); the 50-delta point of the delta grid is ``k = w / 2``.
- Risk reversal ``RR_x = σ(x-delta call) - σ(x-delta put)``; butterfly
  ``BF_x = (σ(x-delta call) + σ(x-delta put)) / 2 - σ_ATM`` (quant.md §5.2).
- ATM skew: ``dσ/dk`` at ``k = 0`` (per unit of log-moneyness; negative for a put skew).
- Term-structure slope: ``IV90 - IV30`` of constant-maturity ATM volatilities (negative in
  backwardation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, cast

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

__all__ = [
    "TenorMetrics",
    "TotalVarianceSurface",
    "atm_implied_volatility",
    "atm_skew",
    "butterfly",
    "confidence_score",
    "delta_implied_volatility",
    "implied_volatility_grid",
    "log_moneyness_at_delta",
    "risk_reversal",
    "tenor_metrics",
    "term_structure_slope",
]

FloatArray = npt.NDArray[np.float64]

_NEWTON_STEPS = 30
_SKEW_STEP = 1e-4


class TotalVarianceSurface(Protocol):
    """Anything that gives total implied variance ``w(k, T)`` for broadcastable arrays."""

    def total_variance(
        self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike
    ) -> FloatArray:
        """``w(k, T)`` (decimal² · years)."""
        ...


def _w(surface: TotalVarianceSurface, k: FloatArray, t: FloatArray) -> FloatArray:
    k, t = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(t, dtype=np.float64))
    return np.asarray(surface.total_variance(k, t), dtype=np.float64).reshape(k.shape)


def _smiles_at(surface: TotalVarianceSurface, t: FloatArray) -> Callable[[FloatArray], FloatArray]:
    """``k -> w(k, t)`` at fixed times, ``k`` broadcasting against ``t`` (so a stack of ``k``
    arrays along a leading axis is one call): the surface's own ``_smiles_at`` when it has one
    (the eSSVI surface interpolates its slice parameters once), else ``total_variance`` each
    call."""
    frozen = getattr(surface, "_smiles_at", None)
    if frozen is not None:
        return cast(Callable[[FloatArray], FloatArray], frozen(t))
    return lambda k: _w(surface, k, t)


def atm_implied_volatility(
    surface: TotalVarianceSurface, time_to_expiry: npt.ArrayLike
) -> FloatArray:
    """ATM-forward implied volatility ``sqrt(w(0, T) / T)`` (decimal) at each ``time_to_expiry``
    (years, > 0). With a surface interpolated in total variance between expiries, this is the
    VIX-style variance interpolation of the ATM point at constant maturity."""
    t = np.asarray(time_to_expiry, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(_w(surface, np.zeros_like(t), t) / t), dtype=np.float64)


def atm_skew(surface: TotalVarianceSurface, time_to_expiry: npt.ArrayLike) -> FloatArray:
    """``dσ/dk`` at ``k = 0`` by a central difference (step 1e-4 in ``k``), per unit of
    log-moneyness; ``time_to_expiry`` in years."""
    t = np.asarray(time_to_expiry, dtype=np.float64)
    return _atm_skew(lambda k: _w(surface, k, t), t)


def _atm_skew(smiles: Callable[[FloatArray], FloatArray], t: FloatArray) -> FloatArray:
    h = _SKEW_STEP
    with np.errstate(invalid="ignore", divide="ignore"):
        w = smiles(np.stack([np.full_like(t, h), np.full_like(t, -h)]))
        up = np.sqrt(w[0, ...] / t)
        down = np.sqrt(w[1, ...] / t)
    return np.asarray((up - down) / (2.0 * h), dtype=np.float64)


def log_moneyness_at_delta(
    surface: TotalVarianceSurface, call_delta: npt.ArrayLike, time_to_expiry: npt.ArrayLike
) -> FloatArray:
    """The log-moneyness where the surface's own smile has forward call delta ``call_delta``.

    Solves ``(-k + w(k)/2) / sqrt(w(k)) = N⁻¹(Δ)`` in ``k`` by Newton steps with a numerical
    derivative, kept inside a bracket that bisection shrinks whenever a step leaves it (the left
    side decreases in ``k`` on a butterfly-free smile with Lee-bounded wings).

    Parameters
    ----------
    surface
        The total-variance surface.
    call_delta
        Forward call deltas in (0, 1); a put delta ``Δp`` is ``1 + Δp`` here.
    time_to_expiry
        Years (> 0); broadcasts against ``call_delta``.

    Returns
    -------
    numpy.ndarray
        ``k``; NaN where the delta is outside (0, 1) or the smile is not finite.
    """
    t = np.asarray(time_to_expiry, dtype=np.float64)
    return _log_moneyness_at_delta(_smiles_at(surface, t), call_delta, t)


def _log_moneyness_at_delta(
    smiles: Callable[[FloatArray], FloatArray], call_delta: npt.ArrayLike, times: FloatArray
) -> FloatArray:
    """:func:`log_moneyness_at_delta` on the smiles at ``times`` (every step elementwise, so
    the arrays keep the broadcast shape, and ``k`` and ``k + h`` go stacked in one call)."""
    delta, t = np.broadcast_arrays(np.asarray(call_delta, dtype=np.float64), times)
    valid = (delta > 0) & (delta < 1) & (t > 0)
    target = ndtri(np.where(valid, delta, 0.5))

    def residual(k: FloatArray) -> FloatArray:
        # k: two arrays of the broadcast shape, stacked.
        w = np.maximum(smiles(k), 1e-300)
        return np.asarray((-k + 0.5 * w) / np.sqrt(w) - target, dtype=np.float64)

    w0 = np.maximum(smiles(np.zeros(delta.shape)), 1e-300)
    k = 0.5 * w0 - target * np.sqrt(w0)  # the flat-smile answer
    # A bracket [lo, hi] with residual(lo) > 0 > residual(hi), widened from the flat answer.
    width = np.maximum(np.sqrt(w0), 1e-4)
    lo, hi = k - width, k + width
    for _ in range(60):
        both = residual(np.stack([lo, hi]))
        r_lo, r_hi = both[0, ...], both[1, ...]  # arrays, 0-d ones too
        bad_lo, bad_hi = ~(r_lo > 0), ~(r_hi < 0)
        if not (bad_lo | bad_hi)[valid].any():
            break
        span = hi - lo
        lo = np.where(bad_lo, lo - 2.0 * span, lo)
        hi = np.where(bad_hi, hi + 2.0 * span, hi)
    k = np.clip(k, lo, hi)
    pair = np.empty((2, *k.shape))  # k and k + h, for one call
    # A flat or non-finite residual makes the Newton step inf or NaN: bisection takes over.
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(_NEWTON_STEPS):
            scale = np.maximum(1.0, np.abs(k))
            h = 1e-6 * scale
            pair[0, ...] = k
            np.add(k, h, out=pair[1, ...])
            both = residual(pair)
            r, r_up = both[0, ...], both[1, ...]
            lo = np.where(r > 0, k, lo)
            hi = np.where(r < 0, k, hi)
            slope = (r_up - r) / h
            step = k - r / slope
            inside = (step >= lo) & (step <= hi) & np.isfinite(step)
            new = np.where(inside, step, 0.5 * (lo + hi))
            done = np.abs(new - k) <= 1e-12 * scale
            k = new
            if done[valid].all():
                break
    return np.asarray(np.where(valid & np.isfinite(k), k, np.nan), dtype=np.float64)


def delta_implied_volatility(
    surface: TotalVarianceSurface, call_delta: npt.ArrayLike, time_to_expiry: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Implied volatility at forward call deltas: ``(σ, k)`` with ``k`` from
    :func:`log_moneyness_at_delta`; arguments as there."""
    t = np.asarray(time_to_expiry, dtype=np.float64)
    return _delta_implied_volatility(_smiles_at(surface, t), call_delta, t)


def _delta_implied_volatility(
    smiles: Callable[[FloatArray], FloatArray], call_delta: npt.ArrayLike, t: FloatArray
) -> tuple[FloatArray, FloatArray]:
    k = _log_moneyness_at_delta(smiles, call_delta, t)
    finite = np.isfinite(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = smiles(np.where(finite, k, 0.0))
        sigma = np.where(finite, np.sqrt(w / t), np.nan)
    return np.asarray(sigma, dtype=np.float64), k


def implied_volatility_grid(
    surface: TotalVarianceSurface, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike
) -> FloatArray:
    """``sqrt(w(k, T) / T)`` (decimal) on the grid ``time_to_expiry`` x ``log_moneyness`` (both
    one-dimensional; years and ``ln(K/F)``), with the surface's smile at each time set up once:
    the surface's own ``implied_volatility(k[None, :], T[:, None])``, to the bit."""
    t = np.asarray(time_to_expiry, dtype=np.float64).reshape(-1, 1)
    k = np.asarray(log_moneyness, dtype=np.float64).reshape(1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(_smiles_at(surface, t)(k) / t), dtype=np.float64)


class TenorMetrics(NamedTuple):
    """:func:`tenor_metrics`: the smile metrics at each time to expiry."""

    atm_implied_volatility: FloatArray
    """As :func:`atm_implied_volatility`."""
    atm_skew: FloatArray
    """As :func:`atm_skew`."""
    delta_implied_volatility: FloatArray
    """As :func:`delta_implied_volatility`'s volatility: time to expiry x delta."""
    delta_log_moneyness: FloatArray
    """As :func:`delta_implied_volatility`'s log-moneyness: time to expiry x delta."""


def tenor_metrics(
    surface: TotalVarianceSurface, time_to_expiry: npt.ArrayLike, call_delta: npt.ArrayLike
) -> TenorMetrics:
    """:func:`atm_implied_volatility`, :func:`atm_skew` and :func:`delta_implied_volatility`
    at once, with the same numbers: the surface's smiles at the times are set up once.

    Parameters
    ----------
    surface
        The total-variance surface.
    time_to_expiry
        Years (> 0), one-dimensional.
    call_delta
        Forward call deltas in (0, 1), one-dimensional: the columns of the delta results.
    """
    t = np.asarray(time_to_expiry, dtype=np.float64).reshape(-1, 1)
    smiles = _smiles_at(surface, t)
    delta = np.asarray(call_delta, dtype=np.float64).reshape(1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        atm = np.asarray(np.sqrt(smiles(np.zeros_like(t)) / t), dtype=np.float64)
    sigma, k = _delta_implied_volatility(smiles, delta, t)
    return TenorMetrics(atm[:, 0], _atm_skew(smiles, t)[:, 0], sigma, k)


def risk_reversal(call_vol: npt.ArrayLike, put_vol: npt.ArrayLike) -> FloatArray:
    """``σ_call - σ_put`` at the same delta (negative for an equity put skew)."""
    return np.asarray(np.subtract(call_vol, put_vol), dtype=np.float64)


def butterfly(
    call_vol: npt.ArrayLike, put_vol: npt.ArrayLike, atm_vol: npt.ArrayLike
) -> FloatArray:
    """``(σ_call + σ_put) / 2 - σ_ATM`` at the same delta and expiry."""
    return np.asarray(
        0.5 * (np.asarray(call_vol) + np.asarray(put_vol)) - np.asarray(atm_vol), dtype=np.float64
    )


def term_structure_slope(iv_30: float, iv_90: float) -> float:
    """``IV90 - IV30`` (decimal volatility); negative in backwardation."""
    return float(iv_90 - iv_30)


def confidence_score(
    published: npt.ArrayLike,
    with_quotes: npt.ArrayLike,
    inside_band_share: npt.ArrayLike,
    quotes_used: npt.ArrayLike,
    arbitrage_free: bool,
    target_expiries: int = 6,
) -> float:
    """A score in [0, 1] of how much to trust a surface.

    The product of four factors, each in [0, 1]:

    - coverage: published expiries over expiries that had quotes;
    - fit: the quote-weighted share of used quotes whose fitted volatility lies inside their
      bid/ask implied-volatility band, over published expiries;
    - depth: ``min(1, published expiries / target_expiries)`` (a surface from two expiries says
      little about the term structure);
    - arbitrage: 1 when the published surface passed both checks, else 0.5.

    Parameters
    ----------
    published, with_quotes
        Per expiry: published in the surface; had enough quotes to attempt a fit.
    inside_band_share, quotes_used
        Per expiry diagnostics (NaN/0 where not published).
    arbitrage_free
        Zero butterfly violations and zero calendar crossings on the dense checks.
    target_expiries
        Expiries for a full depth factor.
    """
    pub = np.asarray(published, dtype=bool)
    had = np.asarray(with_quotes, dtype=bool)
    if not pub.any():
        return 0.0
    coverage = pub.sum() / max(int(had.sum()), int(pub.sum()))
    share = np.asarray(inside_band_share, dtype=np.float64)[pub]
    used = np.asarray(quotes_used, dtype=np.float64)[pub]
    keep = np.isfinite(share) & (used > 0)
    fit = float(np.average(share[keep], weights=used[keep])) if keep.any() else 0.0
    depth = min(1.0, pub.sum() / float(target_expiries))
    score = coverage * fit * depth * (1.0 if arbitrage_free else 0.5)
    return float(np.clip(score, 0.0, 1.0))
