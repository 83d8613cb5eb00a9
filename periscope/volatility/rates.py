"""A risk-free zero curve for discounting option quotes.

:class:`ZeroCurve` holds continuously compounded zero rates at a few tenors and interpolates them
linearly (flat beyond the first and last tenor). It is built from zero rates directly, from
par yields (:meth:`ZeroCurve.from_par_yields`, bootstrapping semi-annual par bonds), or from one
date of the treasury-yields Dataset that :mod:`periscope.marketdata` returns
(:meth:`ZeroCurve.from_treasury_yields`: ``treasury_yield`` over ``date`` x ``tenor``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError

__all__ = ["ZeroCurve"]

FloatArray = npt.NDArray[np.float64]

# Treasury bills (tenors up to one year) pay no coupon; notes and bonds pay semi-annually.
_COUPONS_PER_YEAR = 2
_BILL_MAX_TENOR = 1.0


@dataclass(frozen=True, slots=True)
class ZeroCurve:
    """Continuously compounded zero rates by tenor.

    Attributes
    ----------
    tenors
        Years, strictly increasing, > 0.
    rates
        Zero rates (decimals, continuous compounding, ACT/365 years) at ``tenors``.

    Examples
    --------
    >>> curve = ZeroCurve.flat(0.04)
    >>> round(float(curve.discount_factor(0.5)), 6)
    0.980199
    >>> float(ZeroCurve((1.0, 2.0), (0.03, 0.05)).zero_rate(1.5))
    0.04
    """

    tenors: tuple[float, ...]
    rates: tuple[float, ...]

    def __post_init__(self) -> None:
        tenors = np.asarray(self.tenors, dtype=np.float64)
        rates = np.asarray(self.rates, dtype=np.float64)
        if tenors.ndim != 1 or tenors.size == 0 or tenors.shape != rates.shape:
            raise InvalidInputError(
                "a zero curve needs as many rates as tenors, at least one", argument="tenors"
            )
        if not (np.isfinite(tenors).all() and np.isfinite(rates).all()):
            raise InvalidInputError("tenors and rates must be finite", argument="rates")
        if (tenors <= 0).any() or (np.diff(tenors) <= 0).any():
            raise InvalidInputError(
                "tenors must be positive and strictly increasing", argument="tenors"
            )
        object.__setattr__(self, "tenors", tuple(float(t) for t in tenors))
        object.__setattr__(self, "rates", tuple(float(r) for r in rates))

    @classmethod
    def flat(cls, rate: float) -> ZeroCurve:
        """One rate at every tenor."""
        return cls((1.0,), (float(rate),))

    def zero_rate(self, time_to_expiry: npt.ArrayLike) -> FloatArray:
        """Zero rate (decimal, continuous) to ``time_to_expiry`` years: linear in the tenor,
        flat outside the tenors."""
        t = np.asarray(time_to_expiry, dtype=np.float64)
        return np.asarray(np.interp(t, self.tenors, self.rates), dtype=np.float64)

    def discount_factor(self, time_to_expiry: npt.ArrayLike) -> FloatArray:
        """``exp(-r(T) T)``: the price today of 1 paid in ``time_to_expiry`` years."""
        t = np.asarray(time_to_expiry, dtype=np.float64)
        return np.asarray(np.exp(-self.zero_rate(t) * t), dtype=np.float64)

    @classmethod
    def from_par_yields(cls, tenors: npt.ArrayLike, par_yields: npt.ArrayLike) -> ZeroCurve:
        """Bootstrap zero rates from treasury constant-maturity (par) yields.

        Parameters
        ----------
        tenors
            Years, > 0 (any order; NaN yields are skipped).
        par_yields
            Decimals as published (bond-equivalent, semi-annual compounding).

        Notes
        -----
        Up to one year the yield is a zero-coupon (bill) yield: ``r = 2 ln(1 + y/2)``. Beyond, a
        par bond paying ``y/2`` twice a year is priced at 1 with the coupons before its maturity
        discounted on the curve so far (par yields interpolated linearly between tenors), which
        leaves one unknown: the discount factor at maturity.
        """
        t = np.asarray(tenors, dtype=np.float64).ravel()
        y = np.asarray(par_yields, dtype=np.float64).ravel()
        if t.shape != y.shape:
            raise InvalidInputError("tenors and par_yields differ in length", argument="par_yields")
        keep = np.isfinite(t) & np.isfinite(y) & (t > 0)
        t, y = t[keep], y[keep]
        if t.size == 0:
            raise InvalidInputError("no finite par yield to build a curve", argument="par_yields")
        order = np.argsort(t)
        t, y = t[order], y[order]
        zero_t: list[float] = []
        zero_r: list[float] = []
        for tenor, par in zip(t.tolist(), y.tolist(), strict=True):
            if tenor <= _BILL_MAX_TENOR or not zero_t:
                zero_t.append(tenor)
                zero_r.append(_COUPONS_PER_YEAR * np.log1p(par / _COUPONS_PER_YEAR))
                continue
            known = cls(tuple(zero_t), tuple(zero_r))
            step = 1.0 / _COUPONS_PER_YEAR
            coupon_times = np.arange(tenor - step, 0.0, -step)[::-1]
            coupon_times = coupon_times[coupon_times > 1e-9]
            # Par yields of the coupon dates, for the intermediate (unknown) zero rates beyond
            # the last bootstrapped tenor: interpolate the par curve, then treat those coupons'
            # discount factors on the zero curve extended with the par rate.
            par_at = np.interp(coupon_times, t, y)
            beyond = coupon_times > zero_t[-1]
            discounts = known.discount_factor(coupon_times)
            discounts[beyond] = np.exp(
                -_COUPONS_PER_YEAR
                * np.log1p(par_at[beyond] / _COUPONS_PER_YEAR)
                * coupon_times[beyond]
            )
            coupon = par / _COUPONS_PER_YEAR
            final = (1.0 - coupon * float(discounts.sum())) / (1.0 + coupon)
            if not final > 0.0:
                raise InvalidInputError(
                    f"par yields give no positive discount factor at {tenor} years",
                    argument="par_yields",
                )
            zero_t.append(tenor)
            zero_r.append(-np.log(final) / tenor)
        return cls(tuple(zero_t), tuple(zero_r))

    @classmethod
    def from_treasury_yields(cls, yields: xr.Dataset, date: dt.date | None = None) -> ZeroCurve:
        """The curve of one date of a treasury-yields Dataset (``treasury_yield`` over
        ``date`` x ``tenor``, decimals), as :mod:`periscope.marketdata` returns it.

        ``date`` defaults to the last date with at least one yield; an earlier date with no
        row takes the last row on or before it.

        Raises
        ------
        InvalidInputError
            The Dataset lacks the variable or has no yield on or before ``date``.
        """
        if schema.TREASURY_YIELD not in yields:
            raise InvalidInputError(
                f"treasury yields need variable {schema.TREASURY_YIELD!r}", argument="yields"
            )
        table = yields[schema.TREASURY_YIELD].transpose(schema.DATE, schema.TENOR)
        dates = np.asarray(table[schema.DATE].values).astype("datetime64[D]")
        values = np.asarray(table.values, dtype=np.float64)
        usable = np.isfinite(values).any(axis=1)
        if date is not None:
            usable &= dates <= np.datetime64(date, "D")
        if not usable.any():
            raise InvalidInputError("no treasury yields on or before the date", date=date)
        row = int(np.flatnonzero(usable)[-1])
        tenors = np.asarray(table[schema.TENOR].values, dtype=np.float64)
        return cls.from_par_yields(tenors, values[row])
