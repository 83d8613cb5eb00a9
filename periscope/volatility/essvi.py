"""An eSSVI volatility surface free of static arbitrage by construction, and its fit.

Each expiry ``t_i`` is an eSSVI slice (Hendriks & Martini 2019, "The extended SSVI volatility
surface", J. Comput. Finance) in log-moneyness ``k = ln(K/F)``:

    w_i(k) = (theta_i + rho_i psi_i k + sqrt(psi_i^2 k^2 + 2 theta_i rho_i psi_i k + theta_i^2))/2,

``theta_i`` the ATM total variance and ``psi_i = theta_i phi_i`` (SSVI, Gatheral & Jacquier 2014
eq. 4.1, with ``rho`` and ``phi`` free per slice). The slices obey, as hard constraints:

- butterfly (GJ 2014 Theorem 4.2): ``psi_i (1 + |rho_i|) < 4`` and
  ``psi_i^2 (1 + |rho_i|) <= 4 theta_i``;
- calendar between neighbours (Mingone 2022, "No arbitrage global parametrization for the eSSVI
  volatility surface", Quant. Finance, arXiv 2204.00312): with
  ``p_i = max((1 + rho_{i-1})/(1 + rho_i), (1 - rho_{i-1})/(1 - rho_i))``,
  ``psi_i >= p_i psi_{i-1}`` (both wing slopes ``psi (1 +- rho)`` non-decreasing) and
  ``psi_i / theta_i <= psi_{i-1} / theta_{i-1}`` (``phi`` non-increasing), which also give
  ``theta_i >= p_i theta_{i-1} >= theta_{i-1}``.

Between and beyond the expiries (:meth:`EssviSurface.slice_parameters`):

- ``t_{i-1} <= t <= t_i``: ``theta``, ``psi`` and ``eta = rho psi`` linear in ``t`` (so ``psi``
  and ``eta`` linear in ``theta``). Every interpolated slice is arbitrage-free and the surface is
  calendar-free. With ``s`` the interpolation weight, ``u = psi (1 + rho) = psi + eta`` and
  ``v = psi (1 - rho)`` are linear in ``s`` and non-decreasing (the nodes' calendar condition), so
  for ``s1 < s2`` both wing slopes grow, which is ``psi(s2) >= p psi(s1)``; ``phi = psi/theta``
  is a ratio of positive linear functions, hence monotone on the segment, hence non-increasing
  as it is at the ends; so any two interpolated slices satisfy Mingone's calendar condition.
  Butterfly: ``psi (1 + |rho|) = max(u, v)`` is convex in ``s``, so below 4 where it is at the
  ends; ``psi^2 (1 + |rho|) = max(u, v) (u + v)/2`` is a maximum of two quadratics whose leading
  coefficients ``du (du + dv)/2`` and ``dv (du + dv)/2`` are non-negative, hence convex, hence
  below the linear ``4 theta(s)`` inside the segment as it is at the ends.
- ``0 < t < t_1``: ``(theta, psi, eta) = (t / t_1) (theta_1, psi_1, eta_1)``: ``w(k, t) =
  (t / t_1) w_1(k)`` (eSSVI is homogeneous of degree one in ``(theta, psi)`` at fixed ``rho``),
  which grows with ``t`` and keeps ``psi (1 + |rho|)`` and ``psi^2 (1 + |rho|) / theta`` below
  their values at ``t_1``.
- ``t > t_n``: ``theta`` continues with the last segment's slope (``theta_n / t_n`` with one
  slice), ``psi`` and ``rho`` stay: ``phi`` falls, wing slopes stay, caps only loosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from periscope.errors import InvalidInputError
from periscope.volatility import _svi_kernels as _k
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.svi import (
    SliceData,
    SliceStatus,
    SviFit,
    SviParams,
    cost_floor,
    fit_svi,
    prepare_slice,
    svi_total_variance,
)

__all__ = ["MIN_QUOTES_ESSVI", "EssviSurface", "fit_essvi"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_QUOTES_ESSVI = 3
"""Fewer usable quotes than this and a slice is bridged by interpolation (three parameters)."""
MAX_ITERATIONS = 100
_RHO_MAX = _k.RHO_MAX
_FAILED = (SliceStatus.TOO_FEW_QUOTES, SliceStatus.INVALID_INPUT)


def _float_array(name: str, value: npt.ArrayLike) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional", argument=name)
    return np.ascontiguousarray(array)


@dataclass(frozen=True, eq=False)
class EssviSurface:
    """eSSVI slices per expiry plus the interpolation that makes them a surface (see the module
    docstring for the no-arbitrage argument).

    Attributes
    ----------
    expiry
        ``datetime64[D]`` per slice (``NaT`` when built from bare arrays).
    time_to_expiry
        Years, ascending.
    theta, rho, psi
        ATM total variance, skew correlation, ``theta phi`` per slice. Slices that could not be
        fitted carry interpolated (bridged) values and their failure status.
    status
        :class:`~periscope.volatility.svi.SliceStatus` codes (``int8``): ``OK``;
        ``NOT_CONVERGED`` (iteration cap; parameters usable and constrained like any other);
        ``TOO_FEW_QUOTES`` / ``INVALID_INPUT`` (parameters bridged by interpolation). The
        constraints hold for every slice whatever its status, so ``REPAIRED`` is not used.
    rmse_bp, max_abs_error_bp, inside_band_share, n_used
        Fit diagnostics per slice against its quotes (NaN / 0 without quotes).
    """

    expiry: npt.NDArray[np.datetime64]
    time_to_expiry: FloatArray
    theta: FloatArray
    rho: FloatArray
    psi: FloatArray
    status: npt.NDArray[np.int8]
    rmse_bp: FloatArray = field(default_factory=lambda: np.empty(0))
    max_abs_error_bp: FloatArray = field(default_factory=lambda: np.empty(0))
    inside_band_share: FloatArray = field(default_factory=lambda: np.empty(0))
    n_used: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @classmethod
    def from_arrays(
        cls,
        time_to_expiry: npt.ArrayLike,
        theta: npt.ArrayLike,
        rho: npt.ArrayLike,
        psi: npt.ArrayLike,
        *,
        expiry: npt.ArrayLike | None = None,
        status: npt.ArrayLike | None = None,
        rmse_bp: npt.ArrayLike | None = None,
        max_abs_error_bp: npt.ArrayLike | None = None,
        inside_band_share: npt.ArrayLike | None = None,
        n_used: npt.ArrayLike | None = None,
    ) -> EssviSurface:
        """Rebuild a surface from stored per-slice arrays (e.g. read back from Zarr).

        Raises
        ------
        InvalidInputError
            Arrays of different lengths, or times to expiry not positive and ascending.
        """
        t = _float_array("time_to_expiry", time_to_expiry)
        n = t.size
        arrays = {
            "theta": _float_array("theta", theta),
            "rho": _float_array("rho", rho),
            "psi": _float_array("psi", psi),
        }
        for name, array in arrays.items():
            if array.size != n:
                raise InvalidInputError(f"{name} must have one value per slice", argument=name)
        if n and not (np.all(t > 0.0) and np.all(np.diff(t) >= 0.0)):
            raise InvalidInputError(
                "time_to_expiry must be positive and ascending", argument="time_to_expiry"
            )

        def optional(name: str, value: npt.ArrayLike | None, fill: float) -> FloatArray:
            if value is None:
                return np.full(n, fill)
            array = _float_array(name, value)
            if array.size != n:
                raise InvalidInputError(f"{name} must have one value per slice", argument=name)
            return array

        expiries = (
            np.full(n, np.datetime64("NaT", "D"), dtype="datetime64[D]")
            if expiry is None
            else np.asarray(expiry, dtype="datetime64[D]").reshape(-1)
        )
        if expiries.size != n:
            raise InvalidInputError("expiry must have one value per slice", argument="expiry")
        codes = optional("status", status, float(SliceStatus.OK)).astype(np.int8)
        used = optional("n_used", n_used, 0.0).astype(np.int64)
        return cls(
            expiry=expiries,
            time_to_expiry=t,
            theta=arrays["theta"],
            rho=arrays["rho"],
            psi=arrays["psi"],
            status=codes,
            rmse_bp=optional("rmse_bp", rmse_bp, math.nan),
            max_abs_error_bp=optional("max_abs_error_bp", max_abs_error_bp, math.nan),
            inside_band_share=optional("inside_band_share", inside_band_share, math.nan),
            n_used=used,
        )

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> EssviSurface:
        """Inverse of :attr:`parameters`."""
        return cls.from_arrays(**dict(parameters))

    @property
    def parameters(self) -> dict[str, npt.NDArray[Any]]:
        """Every per-slice array by name; ``EssviSurface.from_parameters`` rebuilds the surface."""
        return {
            "time_to_expiry": self.time_to_expiry,
            "theta": self.theta,
            "rho": self.rho,
            "psi": self.psi,
            "expiry": self.expiry,
            "status": self.status,
            "rmse_bp": self.rmse_bp,
            "max_abs_error_bp": self.max_abs_error_bp,
            "inside_band_share": self.inside_band_share,
            "n_used": self.n_used,
        }

    def __len__(self) -> int:
        return int(self.time_to_expiry.size)

    @property
    def slice_status(self) -> list[SliceStatus]:
        """:attr:`status` as enum members."""
        return [SliceStatus(int(code)) for code in self.status]

    def slice_parameters(
        self, time_to_expiry: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(theta, rho, psi)`` at any ``t > 0`` (years), elementwise; NaN for ``t <= 0`` or
        a surface without finite slices. See the module docstring for the interpolation."""
        t = np.asarray(time_to_expiry, dtype=np.float64)
        good = np.isfinite(self.theta) & np.isfinite(self.rho) & np.isfinite(self.psi)
        nodes = self.time_to_expiry[good]
        if nodes.size == 0:
            nan = np.full(t.shape, np.nan)
            return nan, nan.copy(), nan.copy()
        theta = self.theta[good]
        psi = self.psi[good]
        eta = self.rho[good] * psi
        index = np.searchsorted(nodes, t, side="right")
        last = nodes.size - 1
        inner = np.clip(index, 1, max(last, 1))
        left = np.maximum(inner - 1, 0)
        right = np.minimum(inner, last)
        span = nodes[right] - nodes[left]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(span > 0.0, (t - nodes[left]) / span, 0.0)
        theta_t = theta[left] + s * (theta[right] - theta[left])
        psi_t = psi[left] + s * (psi[right] - psi[left])
        eta_t = eta[left] + s * (eta[right] - eta[left])
        # Before the first slice: scale the first slice (w = t/t_1 w_1).
        before = index == 0
        scale = t / nodes[0]
        theta_t = np.where(before, scale * theta[0], theta_t)
        psi_t = np.where(before, scale * psi[0], psi_t)
        eta_t = np.where(before, scale * eta[0], eta_t)
        # After the last slice: theta goes on with the last segment's slope, psi and rho stay.
        after = index > last
        slope = (
            (theta[last] - theta[last - 1]) / (nodes[last] - nodes[last - 1])
            if last >= 1 and nodes[last] > nodes[last - 1]
            else theta[last] / nodes[last]
        )
        theta_t = np.where(after, theta[last] + slope * (t - nodes[last]), theta_t)
        psi_t = np.where(after, psi[last], psi_t)
        eta_t = np.where(after, eta[last], eta_t)
        valid = np.isfinite(t) & (t > 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho_t = np.where(psi_t > 0.0, eta_t / psi_t, self.rho[good][np.minimum(right, last)])
        return (
            np.where(valid, theta_t, np.nan),
            np.where(valid, rho_t, np.nan),
            np.where(valid, psi_t, np.nan),
        )

    def total_variance(
        self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike
    ) -> FloatArray:
        """``w(k, t)`` (decimal² · years), broadcasting ``k`` against ``t`` (years, any t > 0).

        Examples
        --------
        >>> surface = EssviSurface.from_arrays([0.5, 1.0], [0.02, 0.045], [-0.6, -0.6],
        ...                                    [0.2, 0.3])
        >>> round(float(surface.total_variance(0.0, 0.75)), 6)
        0.0325
        """
        k, t = np.broadcast_arrays(
            np.asarray(log_moneyness, dtype=np.float64),
            np.asarray(time_to_expiry, dtype=np.float64),
        )
        theta, rho, psi = self.slice_parameters(t)
        eta = rho * psi
        x = psi * k
        root = np.sqrt(x * x + 2.0 * theta * eta * k + theta * theta)
        return np.asarray(0.5 * (theta + eta * k + root), dtype=np.float64)

    def _smiles_at(self, time_to_expiry: FloatArray) -> Callable[[FloatArray], FloatArray]:
        """``k -> w(k, t)`` for fixed times (``k`` of the shape of ``time_to_expiry``): the
        slice parameters are interpolated once, for solvers that evaluate many ``k`` at the
        same times (:func:`periscope.volatility.metrics.log_moneyness_at_delta`)."""
        theta, rho, psi = self.slice_parameters(time_to_expiry)
        eta = rho * psi
        theta_squared = theta * theta

        def total_variance(k: FloatArray) -> FloatArray:
            x = psi * k
            root = np.sqrt(x * x + 2.0 * theta * eta * k + theta_squared)
            return np.asarray(0.5 * (theta + eta * k + root), dtype=np.float64)

        return total_variance

    def implied_volatility(
        self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike
    ) -> FloatArray:
        """``sqrt(w(k, t) / t)`` (decimal, annualised), broadcasting ``k`` against ``t``."""
        t = np.asarray(time_to_expiry, dtype=np.float64)
        w = self.total_variance(log_moneyness, t)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.sqrt(w / t), dtype=np.float64)

    def raw_svi(self, index: int) -> SviParams:
        """Slice ``index`` as raw SVI: ``a = theta (1 - rho^2)/2``, ``b = theta phi/2``,
        ``m = -rho/phi``, ``sigma = sqrt(1 - rho^2)/phi``, ``phi = psi/theta`` (GJ §4)."""
        return _raw_from_essvi(
            float(self.theta[index]), float(self.rho[index]), float(self.psi[index])
        )


def _raw_from_essvi(theta: float, rho: float, psi: float) -> SviParams:
    if not (theta > 0.0 and psi > 0.0 and abs(rho) < 1.0):
        return SviParams.nan()
    phi = psi / theta
    return SviParams(
        theta * (1.0 - rho * rho) / 2.0,
        theta * phi / 2.0,
        rho,
        -rho / phi,
        math.sqrt(1.0 - rho * rho) / phi,
    )


def _atm_total_variance(data: SliceData, fit: SviFit | None) -> float:
    """ATM total variance: linear interpolation of the quotes at k = 0 when they straddle it,
    else the SVI fit's w(0), else the quote nearest the money."""
    k = data.log_moneyness
    w = data.total_variance
    if k[0] <= 0.0 <= k[-1] and k.size >= 2:
        return float(np.interp(0.0, k, w))
    if fit is not None and fit.params.is_finite:
        value = float(svi_total_variance(fit.params, 0.0))
        if value > 0.0:
            return value
    return float(w[int(np.argmin(np.abs(k)))])


def _starts(
    data: SliceData, fit: SviFit | None, previous: tuple[float, float, float] | None
) -> FloatArray:
    """Starting ``(rho, theta, psi)`` rows, in the order they are tried."""
    theta0 = max(_atm_total_variance(data, fit), 1e-12)
    starts: list[tuple[float, float, float]] = []
    if fit is not None and fit.params.is_finite and fit.params.b > 0.0:
        _, b, rho, m, sigma = fit.params
        psi0 = 2.0 * b
        hyp = math.sqrt(m * m + sigma * sigma)
        slope0 = b * (rho - m / hyp)  # SVI w'(0); eSSVI's is rho psi
        rho0 = min(max(slope0 / psi0, -0.95), 0.95)
        starts.append((rho0, theta0, psi0))
    if previous is not None:
        theta_p, psi_p, rho_p = previous
        starts.append((rho_p, max(theta0, theta_p), psi_p * math.sqrt(theta0 / theta_p)))
    # A generic equity-like start so a slice never lacks one.
    starts.append((-0.5, theta0, min(0.5 * math.sqrt(theta0), 1.0)))
    return np.array(starts, dtype=np.float64)


def _fit_slice(
    data: SliceData, fit: SviFit | None, previous: tuple[float, float, float] | None
) -> tuple[FloatArray, int]:
    """Best ``(rho, theta, psi)`` over the starts (NaN without a finite fit); the LM status of
    the winner."""
    prev = np.zeros(5) if previous is None else np.array([*previous, 1.0, 0.0])
    prev[_k.OPT_COST_FLOOR] = cost_floor(data)
    best = np.empty(3)
    status = _k.fit_essvi_slice(
        _starts(data, fit, previous), data.log_moneyness, data.total_variance, data.scale,
        prev, MAX_ITERATIONS, best,
    )  # fmt: skip
    return best, int(status)


def fit_essvi(
    quotes: Sequence[SmileQuotes], svi_fits: Sequence[SviFit] | None = None
) -> EssviSurface:
    """Fit an arbitrage-free eSSVI surface to several expiries' quotes.

    Slices are fitted in increasing time to expiry, each by Levenberg-Marquardt on
    ``(rho, theta, psi)`` with the analytic Jacobian, in the same weighted volatility units as
    :func:`~periscope.volatility.svi.fit_svi`, projected onto the box that the previous slice and
    GJ Theorem 4.2 leave free (see the module docstring): so every slice and every pair of
    neighbours is free of static arbitrage whatever the quotes. Starts: the slice's SVI fit
    (``theta`` from the quotes at the money, ``psi = 2b``, ``rho`` from the ATM skew), the
    previous slice, and a generic skew; the best is kept.

    A slice with fewer than :data:`MIN_QUOTES_ESSVI` usable quotes, or invalid, keeps its status
    (``TOO_FEW_QUOTES`` / ``INVALID_INPUT``) and gets interpolated parameters; the fit never
    raises on bad quotes. A slice whose time to expiry is not a positive number has no place on
    the time axis and is left out of the surface.

    Parameters
    ----------
    quotes
        One :class:`SmileQuotes` per expiry, any order (the surface is sorted by time).
    svi_fits
        The per-slice SVI fits in the same order, reused as starts; fitted here when omitted.
    """
    if svi_fits is not None and len(svi_fits) != len(quotes):
        raise InvalidInputError("svi_fits must have one fit per quotes slice", argument="svi_fits")
    times = np.array([float(q.time_to_expiry) for q in quotes], dtype=np.float64)
    order = np.argsort(np.where(np.isfinite(times), times, np.inf), kind="stable")
    n = len(quotes)
    datas = [prepare_slice(quotes[i]) for i in order]
    fits = [(svi_fits[i] if svi_fits is not None else fit_svi(quotes[i])) for i in order]
    theta = np.full(n, np.nan)
    rho = np.full(n, np.nan)
    psi = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int8)
    previous: tuple[float, float, float] | None = None
    for j, data in enumerate(datas):
        if not data.valid:
            status[j] = SliceStatus.INVALID_INPUT
            continue
        if data.size < MIN_QUOTES_ESSVI:
            status[j] = SliceStatus.TOO_FEW_QUOTES
            continue
        x, lm_status = _fit_slice(data, fits[j], previous)
        rho_j, theta_j, psi_j = x.tolist()
        if not (math.isfinite(rho_j) and math.isfinite(theta_j) and math.isfinite(psi_j)):
            status[j] = SliceStatus.NOT_CONVERGED
            continue
        rho[j], theta[j], psi[j] = rho_j, theta_j, psi_j
        status[j] = SliceStatus.OK if lm_status == _k.CONVERGED else SliceStatus.NOT_CONVERGED
        previous = (theta_j, psi_j, rho_j)
    t_sorted = times[order]
    valid_t = np.isfinite(t_sorted) & (t_sorted > 0.0)
    expiry = np.array([quotes[i].expiry for i in order], dtype="datetime64[D]")
    # Bridge the slices without parameters by the surface's own interpolation (which keeps
    # them arbitrage-free against their neighbours, see the module docstring).
    missing = valid_t & ~np.isfinite(theta)
    if missing.any():
        fitted = EssviSurface.from_arrays(
            t_sorted[valid_t], theta[valid_t], rho[valid_t], psi[valid_t]
        )
        theta_b, rho_b, psi_b = fitted.slice_parameters(t_sorted[missing])
        theta[missing] = theta_b
        rho[missing] = rho_b
        psi[missing] = psi_b
    rmse = np.full(n, np.nan)
    worst = np.full(n, np.nan)
    inside = np.full(n, np.nan)
    used = np.array([d.size for d in datas], dtype=np.int64)
    for j, data in enumerate(datas):
        if data.size and np.isfinite(theta[j]):
            # slice_fit_metrics of w(k) = 0.5 (theta + eta k + sqrt((psi k)^2 + 2 theta eta k
            # + theta^2)) in one kernel; the scalar factors are computed here as they were.
            eta = rho[j] * psi[j]
            rmse[j], worst[j], inside[j] = _k.essvi_fit_metrics(
                theta[j], eta, psi[j], 2 * theta[j] * eta, theta[j] ** 2,
                data.log_moneyness, data.time_to_expiry, data.iv_mid, data.iv_bid, data.iv_ask,
            )  # fmt: skip
    keep = valid_t
    return EssviSurface.from_arrays(
        t_sorted[keep],
        theta[keep],
        rho[keep],
        psi[keep],
        expiry=expiry[keep],
        status=status[keep],
        rmse_bp=rmse[keep],
        max_abs_error_bp=worst[keep],
        inside_band_share=inside[keep],
        n_used=used[keep],
    )
