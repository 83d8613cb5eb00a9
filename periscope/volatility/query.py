"""Queries on a surface Dataset: implied volatility anywhere, from a fitted or stored surface.

:class:`SurfaceQuery` rebuilds the published eSSVI surface of one underlying from the stored
parameters (``essvi_parameters``, ``time_to_expiry``; never refitting) and the forward curve
from the stored forwards, then answers, vectorized:

- *when*: an expiry date (its stored time to expiry, or the time from the snapshot to 16:00
  New York on that date for a date between listed expiries), a tenor in calendar days
  (``days / 365`` years) or a time to expiry in years;
- *where*: a strike (``k = ln(K / F(T))``), a log-moneyness, or a delta.

Deltas are forward (undiscounted) Black deltas of the surface's own smile: a positive number is
a call delta ``N(d1)``, a negative one a put delta ``N(d1) - 1`` (so ``-0.25`` is the 25-delta
put and ``0.25`` the 25-delta call), with ``d1 = (-k + w(k, T) / 2) / sqrt(w(k, T))``.

Between listed expiries the surface interpolates in total variance (the eSSVI surface's own
rule) and the forward interpolates its carry ``ln(F / S) / T`` linearly in ``T`` (flat beyond the
first and last expiry), the rule quote preparation uses for expiries without a parity forward.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.volatility.essvi import EssviSurface
from periscope.volatility.metrics import log_moneyness_at_delta

__all__ = ["SurfaceQuery", "surface_implied_volatility"]

FloatArray = npt.NDArray[np.float64]
DateLike = dt.date | np.datetime64 | str

_YEAR_NS = 365.0 * 86400.0 * 1e9


class SurfaceQuery:
    """One underlying's published surface, rebuilt from its Dataset for queries.

    Parameters
    ----------
    surface
        A single-underlying surface Dataset (``fit_surface``'s result, or one read back from
        Zarr; select one underlying of a stack with ``stack.sel(underlying=...)`` first).

    Raises
    ------
    InvalidInputError
        Not a single-underlying surface, or nothing is published (``surface_status`` is
        ``NO_USABLE_EXPIRY`` or ``FAILED``).
    """

    def __init__(self, surface: xr.Dataset) -> None:
        if not isinstance(surface, xr.Dataset):
            raise InvalidInputError("a surface query needs a surface Dataset", argument="surface")
        if schema.UNDERLYING in surface.dims:
            raise InvalidInputError(
                "select one underlying of a stacked surface first: stack.sel(underlying=...)",
                argument="surface",
            )
        schema.validate_surface(surface)
        self.underlying = str(surface[schema.UNDERLYING].item())
        status = schema.ExpiryStatus
        published = surface[schema.EXPIRY_STATUS].values == status.OK
        params = surface[schema.ESSVI_PARAMETERS].values
        published &= np.isfinite(params).all(axis=1)
        if not published.any():
            raise InvalidInputError(
                f"surface of {self.underlying} publishes no expiry "
                f"(status {schema.SurfaceStatus(int(surface[schema.SURFACE_STATUS])).name})",
                underlying=self.underlying,
            )
        expiry = surface[schema.EXPIRY].values
        t = surface[schema.TIME_TO_EXPIRY].values
        self.expiry = expiry[published]
        self.surface = EssviSurface.from_arrays(
            t[published],
            params[published, 0],
            params[published, 1],
            params[published, 2],
            expiry=self.expiry,
        )
        self.spot = float(surface[schema.SPOT])
        snapshot = np.asarray(surface[schema.SNAPSHOT_TIME].values).astype("datetime64[ns]")
        self.snapshot_time = snapshot
        self._snapshot_ns = int(snapshot.astype(np.int64))
        forward = surface[schema.FORWARD].values
        known = np.isfinite(forward) & (forward > 0) & np.isfinite(t) & (t > 0)
        self._expiry_all = expiry[known]
        self._t_all = t[known]
        order = np.argsort(self._t_all)
        self._forward_t = self._t_all[order]
        self._forward = forward[known][order]
        if not np.isfinite(self.spot) or self.spot <= 0:
            # No spot stored: anchor the carry on the first forward (flat carry before it).
            self.spot = float(self._forward[0])
        self._carry = np.log(self._forward / self.spot) / self._forward_t

    # -- time ----------------------------------------------------------------------------------
    def time_to_expiry(
        self,
        expiry: DateLike | npt.ArrayLike | None = None,
        *,
        tenor_days: npt.ArrayLike | None = None,
        years: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Years to an expiry date, a tenor in days or years (exactly one of them).

        A listed expiry gets its stored time to expiry; another date the time from the snapshot
        to 16:00 New York on it (PM settlement), ACT/365.
        """
        given = [x is not None for x in (expiry, tenor_days, years)]
        if sum(given) != 1:
            raise InvalidInputError(
                "give exactly one of expiry, tenor_days and years", argument="expiry"
            )
        if years is not None:
            return np.asarray(years, dtype=np.float64)
        if tenor_days is not None:
            return np.asarray(tenor_days, dtype=np.float64) / 365.0
        dates = np.asarray(expiry, dtype="datetime64[D]")
        out = np.empty(dates.shape, dtype=np.float64)
        listed = self._expiry_all.astype("datetime64[D]")
        for index, date in np.ndenumerate(dates):
            match = np.flatnonzero(listed == date)
            if match.size:
                out[index] = self._t_all[match[0]]
            else:
                if np.isnat(self.snapshot_time) or np.isnat(date):
                    out[index] = np.nan
                    continue
                instant = schema.settlement_instant(date.item(), schema.PM)
                settle = np.datetime64(instant.replace(tzinfo=None), "ns")
                elapsed_ns = int(settle.astype(np.int64)) - int(self._snapshot_ns)
                out[index] = elapsed_ns / _YEAR_NS
        return out

    # -- curves --------------------------------------------------------------------------------
    def forward(self, time_to_expiry: npt.ArrayLike) -> FloatArray:
        """The forward at ``time_to_expiry`` years: stored forwards' carry ``ln(F/S)/T``
        interpolated linearly in ``T``, flat beyond the first and last expiry."""
        t = np.asarray(time_to_expiry, dtype=np.float64)
        carry = np.interp(t, self._forward_t, self._carry)
        return np.asarray(self.spot * np.exp(carry * t), dtype=np.float64)

    def total_variance(
        self, log_moneyness: npt.ArrayLike, time_to_expiry: npt.ArrayLike
    ) -> FloatArray:
        """The published ``w(k, T)``."""
        k, t = np.broadcast_arrays(
            np.asarray(log_moneyness, dtype=np.float64),
            np.asarray(time_to_expiry, dtype=np.float64),
        )
        return np.asarray(self.surface.total_variance(k, t), dtype=np.float64).reshape(k.shape)

    # -- queries -------------------------------------------------------------------------------
    def log_moneyness(
        self,
        time_to_expiry: npt.ArrayLike,
        *,
        strike: npt.ArrayLike | None = None,
        log_moneyness: npt.ArrayLike | None = None,
        delta: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """``k`` at ``time_to_expiry`` for exactly one of strike, log-moneyness or delta
        (signed forward delta, see the module docstring)."""
        given = [x is not None for x in (strike, log_moneyness, delta)]
        if sum(given) != 1:
            raise InvalidInputError(
                "give exactly one of strike, log_moneyness and delta", argument="strike"
            )
        t = np.asarray(time_to_expiry, dtype=np.float64)
        if log_moneyness is not None:
            k, _ = np.broadcast_arrays(np.asarray(log_moneyness, dtype=np.float64), t)
            return np.asarray(k, dtype=np.float64)
        if strike is not None:
            strikes = np.asarray(strike, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.asarray(np.log(strikes / self.forward(t)), dtype=np.float64)
        signed = np.asarray(delta, dtype=np.float64)
        if (np.abs(signed[np.isfinite(signed)]) >= 1).any() or (signed == 0).any():
            raise InvalidInputError(
                "deltas must lie in (-1, 0) for puts or (0, 1) for calls", argument="delta"
            )
        call_delta = np.where(signed < 0, 1.0 + signed, signed)
        return log_moneyness_at_delta(self, call_delta, t)

    def implied_volatility(
        self,
        *,
        expiry: DateLike | npt.ArrayLike | None = None,
        tenor_days: npt.ArrayLike | None = None,
        years: npt.ArrayLike | None = None,
        strike: npt.ArrayLike | None = None,
        log_moneyness: npt.ArrayLike | None = None,
        delta: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Implied volatility (decimal) of the published surface, broadcast over the time and
        the smile arguments (one of ``expiry``/``tenor_days``/``years`` and one of
        ``strike``/``log_moneyness``/``delta``).

        Examples
        --------
        ``query.implied_volatility(tenor_days=30, delta=[-0.25, 0.25])`` gives the 30-day
        25-delta put and call volatilities;
        ``query.implied_volatility(expiry="2025-03-21", strike=[5800, 6000])`` two strikes.
        """
        t = self.time_to_expiry(expiry, tenor_days=tenor_days, years=years)
        k = self.log_moneyness(t, strike=strike, log_moneyness=log_moneyness, delta=delta)
        t = np.broadcast_to(t, k.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = self.total_variance(np.where(np.isfinite(k), k, 0.0), t)
            vol = np.where(np.isfinite(k) & (t > 0), np.sqrt(w / t), np.nan)
        return np.asarray(vol, dtype=np.float64)

    def strike(
        self,
        *,
        expiry: DateLike | npt.ArrayLike | None = None,
        tenor_days: npt.ArrayLike | None = None,
        years: npt.ArrayLike | None = None,
        log_moneyness: npt.ArrayLike | None = None,
        delta: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """The strike at a log-moneyness or (signed forward) delta: ``F(T) e^k``."""
        t = self.time_to_expiry(expiry, tenor_days=tenor_days, years=years)
        k = self.log_moneyness(t, log_moneyness=log_moneyness, delta=delta)
        return np.asarray(self.forward(t) * np.exp(k), dtype=np.float64)


def surface_implied_volatility(
    surface: xr.Dataset,
    *,
    expiry: DateLike | npt.ArrayLike | None = None,
    tenor_days: npt.ArrayLike | None = None,
    years: npt.ArrayLike | None = None,
    strike: npt.ArrayLike | None = None,
    log_moneyness: npt.ArrayLike | None = None,
    delta: npt.ArrayLike | None = None,
) -> FloatArray:
    """:meth:`SurfaceQuery.implied_volatility` on a surface Dataset (rebuilds it each call; keep
    a :class:`SurfaceQuery` for many queries)."""
    return SurfaceQuery(surface).implied_volatility(
        expiry=expiry,
        tenor_days=tenor_days,
        years=years,
        strike=strike,
        log_moneyness=log_moneyness,
        delta=delta,
    )
