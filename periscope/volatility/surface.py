"""From one underlying's chain to its published, arbitrage-free volatility surface.

:func:`fit_surface` runs, for one underlying (``docs/surfaces.md`` has the full story):

1. quote preparation (:func:`periscope.volatility.quotes.prepare_smiles`): cleaning flags,
   parity forwards and discount factors, de-Americanized bid/mid/ask implied volatilities, one
   :class:`~periscope.volatility.smile.SmileQuotes` of out-of-the-money quotes per expiry;
2. a raw SVI fit per expiry (:func:`periscope.volatility.svi.fit_svi`), butterfly-free by
   construction, kept for diagnostics;
3. the eSSVI surface over the expiries whose SVI fit worked
   (:func:`periscope.volatility.essvi.fit_essvi`), free of calendar and butterfly arbitrage by
   construction: this is the *published* surface;
4. the published surface on the fixed grids (``expiry`` x ``log_moneyness``, ``tenor`` x
   ``delta``), the metrics (:mod:`periscope.volatility.metrics`), the fit diagnostics against
   the quotes, and arbitrage checks of the published surface on a dense log-moneyness grid;
5. the surface Dataset (:func:`periscope.schema.build_surface_dataset`).

Bad data never raises: an expiry that cannot be fitted gets an
:class:`~periscope.schema.ExpiryStatus` and NaNs, an underlying with nothing to publish a
:class:`~periscope.schema.SurfaceStatus` and NaNs. Only input that is not one underlying's
chain raises :class:`InvalidInputError`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from typing import Final, Literal, NamedTuple, overload

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope._numba import inline, kernel
from periscope.errors import InvalidInputError
from periscope.volatility import _svi_kernels, arbitrage, metrics
from periscope.volatility.arbitrage import check_butterfly, check_calendar
from periscope.volatility.cleaning import DEFAULT_CLEANING, QuoteFlag
from periscope.volatility.deamericanize import CashDividends, DividendModel
from periscope.volatility.essvi import EssviSurface, fit_essvi
from periscope.volatility.forwards import ForwardStatus
from periscope.volatility.quotes import PreparedChain, prepare_smiles
from periscope.volatility.rates import ZeroCurve
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.svi import (
    SliceStatus,
    SviFit,
    SviParams,
    check_grid,
    durrleman_scan,
    fit_svi,
)

__all__ = ["CLEANING_REASONS", "SurfaceResult", "fit_surface"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Raw SVI outcomes whose parameters are a usable, butterfly-free smile (NOT_CONVERGED keeps the
# best point found, which is still arbitrage-free; its diagnostics say how good it is).
_SVI_USABLE: Final = (SliceStatus.OK, SliceStatus.REPAIRED, SliceStatus.NOT_CONVERGED)
# eSSVI slices that are published: fitted (converged or at the iteration cap, both inside the
# no-arbitrage box); bridged slices (too few quotes) are left to the interpolation.
_ESSVI_PUBLISHED: Final = (int(SliceStatus.OK), int(SliceStatus.NOT_CONVERGED))
_REASONS: Final = tuple(QuoteFlag)
_REASON_BITS: Final = np.array([int(flag) for flag in _REASONS], dtype=np.uint16)
CLEANING_REASONS: Final = tuple(str(flag.name).lower() for flag in QuoteFlag)
"""The ``cleaning_reason`` coordinate: :class:`~periscope.volatility.cleaning.QuoteFlag` names."""
# Where the log-moneyness grid has k = 0 (the ATM volatility of a published row).
_ATM_COLUMN: Final = int(np.flatnonzero(schema.LOG_MONEYNESS_GRID == 0.0)[0])


class SurfaceResult(NamedTuple):
    """:func:`fit_surface` with ``return_quotes=True``: the surface and the per-contract quote
    results (a Dataset on the chain's ``contract`` dimension, to merge with the chain)."""

    surface: xr.Dataset
    quotes: xr.Dataset


def _check_chain(chain: object) -> str:
    if not isinstance(chain, xr.Dataset):
        raise InvalidInputError(
            f"fit_surface needs a chain Dataset, got {type(chain).__name__}", argument="chain"
        )
    schema.validate_chain(chain)
    values = np.asarray(chain[schema.UNDERLYING].values)
    if values.size and bool((values == values[0]).all()):  # the usual case, without sorting
        names = [str(values[0])]
    else:
        names = sorted({str(x) for x in values.tolist()})
    if len(names) > 1:
        raise InvalidInputError(
            f"fit_surface takes one underlying's chain, got {len(names)}: {names[:5]}",
            argument="chain",
            underlyings=names,
        )
    if names:
        return names[0]
    return str(chain.attrs.get("underlying", ""))


@overload
def fit_surface(
    chain: xr.Dataset,
    rate_curve: ZeroCurve | None = ...,
    *,
    dividends: CashDividends | xr.Dataset | None = ...,
    dividend_model: DividendModel | None = ...,
    return_quotes: Literal[False] = ...,
) -> xr.Dataset: ...


@overload
def fit_surface(
    chain: xr.Dataset,
    rate_curve: ZeroCurve | None = ...,
    *,
    dividends: CashDividends | xr.Dataset | None = ...,
    dividend_model: DividendModel | None = ...,
    return_quotes: Literal[True],
) -> SurfaceResult: ...


def fit_surface(
    chain: xr.Dataset,
    rate_curve: ZeroCurve | None = None,
    *,
    dividends: CashDividends | xr.Dataset | None = None,
    dividend_model: DividendModel | None = None,
    return_quotes: bool = False,
) -> xr.Dataset | SurfaceResult:
    """Fit one underlying's arbitrage-free implied-volatility surface from its chain.

    Parameters
    ----------
    chain
        One underlying's canonical chain (:func:`periscope.schema.validate_chain`); extra
        variables (the simulator's truth) are ignored.
    rate_curve
        A zero curve to discount with; None implies discount factors from put-call parity
        (pass one for American chains: their parity rates are much less certain).
    dividends
        The underlying's known cash dividends, for de-Americanizing its quotes: a
        :class:`~periscope.volatility.deamericanize.CashDividends` or a dividends Dataset
        (``ex_dividend_date`` and ``cash_amount`` along ``dividend``, the market-data client's
        layout; rows of other tickers are ignored when it has a ``ticker`` coordinate). None:
        the dividends implied by the forwards, paid as ``dividend_model`` says.
    dividend_model
        Without ``dividends``: ``"cash"`` (single stocks) or ``"yield"`` (ETFs, baskets); None
        keeps :class:`~periscope.volatility.cleaning.CleaningConfig`'s default (``"cash"``).
    return_quotes
        Also return the per-contract quote results (:class:`SurfaceResult`).

    Returns
    -------
    xarray.Dataset or SurfaceResult
        The surface in the layout of :data:`periscope.schema.SURFACE_LAYOUT`
        (``docs/schema.md``): ``forward``, ``time_to_expiry`` per expiry and the published
        ``implied_volatility`` on (``expiry``, ``log_moneyness``) among others. With
        ``return_quotes`` also the quote results: ``quote_flags`` (the
        :class:`~periscope.volatility.cleaning.QuoteFlag` mask), ``iv_bid``, ``iv_mid``,
        ``iv_ask``, ``used``, ``log_moneyness`` and ``fitted_iv`` (the published surface at the
        contract) along ``contract``, with the chain's ``ticker`` coordinate.

    Raises
    ------
    InvalidInputError
        ``chain`` is not a chain Dataset, or holds several underlyings; an unknown
        ``dividend_model``; a malformed dividend schedule.
    """
    underlying = _check_chain(chain)
    if isinstance(dividends, xr.Dataset):
        dividends = CashDividends.from_dataset(dividends, ticker=underlying or None)
    config = DEFAULT_CLEANING
    if dividend_model is not None:
        if dividend_model not in ("cash", "yield"):
            raise InvalidInputError(
                f"dividend_model must be 'cash' or 'yield', got {dividend_model!r}",
                argument="dividend_model",
            )
        config = replace(config, dividend_model=dividend_model)
    # Without the quote results, only the quotes that may enter the smiles need volatilities.
    prepared = prepare_smiles(
        chain, rate_curve, config=config, dividends=dividends, all_volatilities=return_quotes
    )
    dataset, slices, surface = _assemble(underlying, chain, prepared)
    if not return_quotes:
        return dataset
    return SurfaceResult(dataset, _quote_results(chain, prepared, slices, surface))


@dataclass(slots=True)
class _Slices:
    """Per expiry date (one row of the surface's ``expiry`` dimension)."""

    expiry: npt.NDArray[np.datetime64]
    group: IntArray  # the (date, settlement) group of PreparedChain chosen for the date
    time_to_expiry: FloatArray
    status: npt.NDArray[np.int8]
    smiles: list[SmileQuotes | None]
    fits: list[SviFit | None]


def _fit_slices(prepared: PreparedChain) -> _Slices:
    """Choose one (date, settlement) group per date and fit its raw SVI smile.

    An AM-settled monthly and the PM-settled weekly of the same date are two groups (two
    smiles); the surface's ``expiry`` dimension is by date, so the group with the most usable
    quotes represents the date (the earlier one on a tie).
    """
    dates = np.asarray(prepared.expiry, dtype="datetime64[D]")
    used = prepared.expiry_counts.get("used", np.zeros(dates.size, dtype=np.int64))
    expiry = np.unique(dates)
    # Per date (ascending), the group with the most quotes used, the earlier on a tie.
    order = np.lexsort((np.arange(dates.size), -np.asarray(used), dates))
    first_of_date = np.ones(order.size, dtype=bool)
    first_of_date[1:] = dates[order][1:] != dates[order][:-1]
    group = order[first_of_date].astype(np.int64)
    n = expiry.size
    t = np.asarray(prepared.expiry_time, dtype=np.float64)[group]
    status = np.full(n, schema.ExpiryStatus.TOO_FEW_QUOTES, dtype=np.int8)
    status[np.asarray(prepared.forward_status)[group] == ForwardStatus.MISSING] = (
        schema.ExpiryStatus.NO_FORWARD
    )
    status[~(t > 0)] = schema.ExpiryStatus.EXPIRED
    # PreparedChain.smiles lists the groups with has_smile, in group order.
    smile_of_group = np.cumsum(prepared.has_smile) - 1
    smiles: list[SmileQuotes | None] = [None] * n
    fits: list[SviFit | None] = [None] * n
    for i, g in enumerate(group.tolist()):
        if not (prepared.has_smile[g] and t[i] > 0):
            continue
        quotes = prepared.smiles[int(smile_of_group[g])]
        smiles[i] = quotes
        try:
            fit = fit_svi(quotes)
        except Exception:  # one slice's failure never stops the surface
            logger.warning("SVI fit raised on %s", quotes.expiry, exc_info=True)
            fit = None
        fits[i] = fit
        ok = fit is not None and fit.params.is_finite and fit.status in _SVI_USABLE
        status[i] = schema.ExpiryStatus.OK if ok else schema.ExpiryStatus.SVI_FAILED
    return _Slices(expiry, group, t, status, smiles, fits)


def _publish(slices: _Slices) -> EssviSurface | None:
    """The published eSSVI surface over the slices whose SVI fit worked.

    The fitted surface is rebuilt from the stored arrays of the slices it publishes (finite
    parameters), so everything computed here comes from exactly what the Dataset stores and a
    reader rebuilds (:class:`~periscope.volatility.query.SurfaceQuery`). Slices left out are
    marked ``NOT_PUBLISHED``.
    """
    ok = np.flatnonzero(slices.status == schema.ExpiryStatus.OK)
    if ok.size == 0:
        return None
    quotes = [q for q in (slices.smiles[i] for i in ok) if q is not None]
    fits = [f for f in (slices.fits[i] for i in ok) if f is not None]
    try:
        fitted = fit_essvi(quotes, fits)
    except Exception:  # recorded as NOT_PUBLISHED, never raised
        logger.warning("eSSVI fit raised", exc_info=True)
        slices.status[ok] = schema.ExpiryStatus.NOT_PUBLISHED
        return None
    row_of = {day: i for i, day in enumerate(slices.expiry.astype("datetime64[D]").tolist())}
    rows = np.array([row_of.get(day, -1) for day in fitted.expiry.tolist()], dtype=np.int64)
    finite = np.isfinite(np.column_stack([fitted.theta, fitted.rho, fitted.psi])).all(axis=1)
    keep = finite & (rows >= 0) & np.isin(fitted.status, _ESSVI_PUBLISHED)
    published_rows = set(rows[keep].tolist())
    for i in ok.tolist():
        if i not in published_rows:
            slices.status[i] = schema.ExpiryStatus.NOT_PUBLISHED
    if not keep.any():
        return None
    return EssviSurface.from_arrays(
        fitted.time_to_expiry[keep],
        fitted.theta[keep],
        fitted.rho[keep],
        fitted.psi[keep],
        expiry=fitted.expiry[keep],
        status=fitted.status[keep],
        rmse_bp=fitted.rmse_bp[keep],
        max_abs_error_bp=fitted.max_abs_error_bp[keep],
        inside_band_share=fitted.inside_band_share[keep],
        n_used=fitted.n_used[keep],
    )


def _date_counts(
    prepared: PreparedChain, chain_dates: npt.NDArray[np.datetime64], slices: _Slices
) -> tuple[IntArray, IntArray, IntArray]:
    """Per expiry date: quotes used, quotes dropped, and contracts per cleaning reason.

    Dropped means excluded for a reason other than being the in-the-money side (``NOT_OTM``
    alone is by design, not a problem), plus the usable quotes of a date's other settlement
    group when two share a date.
    """
    n = slices.expiry.size
    row = np.searchsorted(slices.expiry, chain_dates)
    row = np.clip(row, 0, max(n - 1, 0))
    flags = prepared.flags
    # Contracts per date and reason: a chain has few distinct (date, flags) pairs, so they are
    # counted first and each pair's count is added to its reasons (flags are 16 bits).
    reasons = np.zeros((n, _REASON_BITS.size), dtype=np.int64)
    if n and flags.size:
        pairs, counts = np.unique(
            (row.astype(np.int64) << 16) | flags.astype(np.int64), return_counts=True
        )
        hit = (pairs[:, None] & _REASON_BITS[None, :]) != 0
        np.add.at(reasons, pairs >> 16, hit * counts[:, None])
    chosen = np.zeros(prepared.expiry.size, dtype=bool)
    chosen[slices.group] = True
    in_chosen = chosen[prepared.slice_index] if flags.size else np.zeros(0, dtype=bool)
    used = np.bincount(row[(flags == 0) & in_chosen], minlength=n)[:n]
    problem = (flags != 0) & (flags != np.uint16(QuoteFlag.NOT_OTM))
    dropped = np.bincount(row[problem | ((flags == 0) & ~in_chosen)], minlength=n)[:n]
    return used, dropped, reasons


def _assemble(
    underlying: str, chain: xr.Dataset, prepared: PreparedChain
) -> tuple[xr.Dataset, _Slices, EssviSurface | None]:
    slices = _fit_slices(prepared)
    surface = _publish(slices)
    return _surface_dataset(underlying, chain, prepared, slices, surface), slices, surface


def _surface_dataset(
    underlying: str,
    chain: xr.Dataset,
    prepared: PreparedChain,
    slices: _Slices,
    surface: EssviSurface | None,
) -> xr.Dataset:
    """The surface Dataset from the fitted slices and the published surface: grids, metrics,
    fit diagnostics, arbitrage checks, counts (reads ``slices``, changes nothing)."""
    n = slices.expiry.size
    g = slices.group
    t = slices.time_to_expiry
    status = slices.status
    chain_dates = np.asarray(chain.variables[schema.EXPIRY].values).astype("datetime64[D]")
    used, dropped, reason_counts = _date_counts(prepared, chain_dates, slices)
    values: dict[str, object] = {
        schema.FORWARD: prepared.forward[g],
        schema.DISCOUNT_FACTOR: prepared.discount_factor[g],
        schema.TIME_TO_EXPIRY: t,
        schema.SETTLEMENT: prepared.settlement[g].astype(object),
        schema.FORWARD_STATUS: prepared.forward_status[g],
        schema.QUOTES_USED: used,
        schema.QUOTES_DROPPED: dropped,
        schema.CLEANING_COUNTS: reason_counts,
        schema.SPOT: prepared.spot,
        schema.SNAPSHOT_TIME: _snapshot_time(chain),
    }
    svi = np.full((n, 5), np.nan)
    svi_status = np.full(n, -1, dtype=np.int8)
    svi_rmse = np.full(n, np.nan)
    svi_min_g = np.full(n, np.nan)
    svi_free = np.zeros(n, dtype=bool)
    for i, fit in enumerate(slices.fits):
        if fit is None:
            continue
        svi[i] = tuple(fit.params)
        svi_status[i] = int(fit.status)
        svi_rmse[i] = fit.rmse_bp
        svi_min_g[i] = fit.min_g
        svi_free[i] = fit.butterfly_free
    values |= {
        schema.SVI_PARAMETERS: svi,
        schema.SVI_STATUS: svi_status,
        schema.SVI_RMSE_BP: svi_rmse,
        schema.SVI_MIN_G: svi_min_g,
        schema.SVI_BUTTERFLY_FREE: svi_free,
    }
    with_quotes = np.isin(
        status,
        [
            schema.ExpiryStatus.OK,
            schema.ExpiryStatus.SVI_FAILED,
            schema.ExpiryStatus.NOT_PUBLISHED,
            schema.ExpiryStatus.NO_FORWARD,
        ],
    )
    if surface is None:
        values[schema.EXPIRY_STATUS] = status
        reason = (
            "no expiry has enough clean quotes"
            if not with_quotes.any()
            else "no expiry could be fitted and published"
        )
        return schema.empty_surface(
            underlying,
            slices.expiry,
            message=reason,
            values=values,
            cleaning_reasons=CLEANING_REASONS,
            attrs=_attrs(chain),
        )
    values |= _published_values(surface, slices)
    values[schema.EXPIRY_STATUS] = status
    published = status == schema.ExpiryStatus.OK
    failed = with_quotes & ~published
    arbitrage_free = (
        int(np.sum(values[schema.BUTTERFLY_VIOLATIONS])) == 0  # type: ignore[call-overload]
        and int(np.sum(values[schema.CALENDAR_VIOLATIONS])) == 0  # type: ignore[call-overload]
    )
    values[schema.CONFIDENCE] = metrics.confidence_score(
        published,
        with_quotes,
        values[schema.INSIDE_BAND_SHARE],  # type: ignore[arg-type]
        used,
        arbitrage_free,
    )
    surface_status = schema.SurfaceStatus.PARTIAL if failed.any() else schema.SurfaceStatus.OK
    values[schema.SURFACE_STATUS] = np.int8(surface_status)
    if failed.any():
        names = ", ".join(
            f"{day}: {schema.ExpiryStatus(int(code)).name}"
            for day, code in zip(slices.expiry[failed], status[failed], strict=True)
        )
        values[schema.STATUS_MESSAGE] = np.asarray(f"not published: {names}", dtype=object)
    return schema.build_surface_dataset(
        underlying,
        slices.expiry,
        values,
        cleaning_reasons=CLEANING_REASONS,
        attrs=_attrs(chain),
    )


def _published_values(surface: EssviSurface, slices: _Slices) -> dict[str, object]:
    """Grids, metrics, fit errors and arbitrage checks of the published surface."""
    n = slices.expiry.size
    rows = np.flatnonzero(slices.status == schema.ExpiryStatus.OK)  # one per surface slice
    t = slices.time_to_expiry
    essvi = np.full((n, 3), np.nan)
    essvi[rows] = np.column_stack([surface.theta, surface.rho, surface.psi])
    grid = schema.LOG_MONEYNESS_GRID
    iv = np.full((n, grid.size), np.nan)
    iv[rows] = metrics.implied_volatility_grid(surface, grid, t[rows])
    # The grid's k = 0 column is metrics.atm_implied_volatility, to the bit.
    atm = iv[:, _ATM_COLUMN].copy()
    rmse, worst, inside = (np.full(n, np.nan) for _ in range(3))
    rmse[rows] = surface.rmse_bp
    worst[rows] = surface.max_abs_error_bp
    inside[rows] = surface.inside_band_share
    butterflies = np.zeros(n, dtype=np.int64)
    calendars = np.zeros(n, dtype=np.int64)
    min_g = np.full(n, np.nan)
    raws = [surface.raw_svi(j) for j in range(rows.size)]
    butterflies[rows], min_g[rows], calendars[rows] = _arbitrage_checks(raws)
    tenor_t = np.asarray(schema.TENOR_DAYS, dtype=np.float64) / 365.0
    delta = np.asarray(schema.DELTA_GRID)
    cm, skew, delta_vol, delta_k = metrics.tenor_metrics(surface, tenor_t, delta)
    put10, put25, _, call25, call10 = (delta_vol[:, j] for j in range(delta.size))
    first, last = t[rows].min(), t[rows].max()
    days = list(schema.TENOR_DAYS)
    return {
        schema.ESSVI_PARAMETERS: essvi,
        schema.IMPLIED_VOLATILITY: iv,
        schema.ATM_IMPLIED_VOLATILITY: atm,
        schema.RMSE_BP: rmse,
        schema.MAX_ABS_ERROR_BP: worst,
        schema.INSIDE_BAND_SHARE: inside,
        schema.BUTTERFLY_VIOLATIONS: butterflies,
        schema.CALENDAR_VIOLATIONS: calendars,
        schema.MIN_DURRLEMAN_G: min_g,
        schema.CONSTANT_MATURITY_IV: cm,
        schema.ATM_SKEW: skew,
        schema.RISK_REVERSAL_25: metrics.risk_reversal(call25, put25),
        schema.RISK_REVERSAL_10: metrics.risk_reversal(call10, put10),
        schema.BUTTERFLY_25: metrics.butterfly(call25, put25, cm),
        schema.BUTTERFLY_10: metrics.butterfly(call10, put10, cm),
        schema.TENOR_EXTRAPOLATED: (tenor_t < first) | (tenor_t > last),
        schema.DELTA_IMPLIED_VOLATILITY: delta_vol,
        schema.DELTA_LOG_MONEYNESS: delta_k,
        schema.TERM_STRUCTURE_SLOPE: metrics.term_structure_slope(
            float(cm[days.index(30)]), float(cm[days.index(90)])
        ),
    }


def _arbitrage_checks(raws: list[SviParams]) -> tuple[IntArray, FloatArray, IntArray]:
    """Per published slice (raw SVI, ascending expiries): butterfly violations (plus one when
    Lee's bound fails) and the smallest Durrleman ``g`` on the slice's :func:`check_grid`,
    refined between its points; calendar crossings against the previous slice on both slices'
    grids (:func:`check_butterfly` and :func:`check_calendar` on those grids, computed for all
    slices at once).
    """
    count = len(raws)
    butterflies = np.zeros(count, dtype=np.int64)
    min_g = np.full(count, np.nan)
    calendars = np.zeros(count, dtype=np.int64)
    if count == 0:
        return butterflies, min_g, calendars
    params = np.array(raws, dtype=np.float64).reshape(count, 5)
    if not np.isfinite(params).all():
        return _arbitrage_checks_by_slice(raws)
    for j, raw in enumerate(raws):
        # check_grid's default range (its uniform and wing points are the same for every
        # slice; its feature points m + sigma sinh(z) are the slice's own)
        best, _, violations = durrleman_scan(raw, tolerance=arbitrage.DEFAULT_TOLERANCE)
        butterflies[j] = int(violations) + (0 if arbitrage.lee_wing_bound_holds(raw) else 1)
        min_g[j] = float(best)
    if count < 2:
        return butterflies, min_g, calendars
    base, sinh_z = _calendar_points()
    _calendar_crossings(params, base, sinh_z, arbitrage.DEFAULT_TOLERANCE, calendars)
    return butterflies, min_g, calendars


@functools.cache
def _calendar_points() -> tuple[FloatArray, FloatArray]:
    """check_grid's uniform and wing points (the same for every slice) and ``sinh(z)`` of its
    feature points ``m + sigma sinh(z)`` (the slice's own)."""
    base = check_grid(SviParams.nan())
    z = np.linspace(
        -_svi_kernels.FEATURE_HALF_WIDTH, _svi_kernels.FEATURE_HALF_WIDTH,
        _svi_kernels.FEATURE_POINTS,
    )  # fmt: skip
    base.flags.writeable = False
    sinh_z = np.sinh(z)
    sinh_z.flags.writeable = False
    return base, sinh_z


@kernel
def _calendar_crossings(
    params: FloatArray, base: FloatArray, sinh_z: FloatArray, tolerance: float, out: IntArray
) -> None:
    """``out[j]``, ``j >= 1``: the points where slice ``j``'s total variance is below slice
    ``j - 1``'s by more than ``tolerance`` (or NaN), on the pair's grid: both slices' check
    grids one after the other, so the shared ``base`` points count twice, then the feature
    points ``m + sigma sinh(z)`` of slice ``j - 1`` and of slice ``j``. Raw SVI parameters
    ``(a, b, rho, m, sigma)`` per row, ascending expiries; svi_total_variance's arithmetic.
    """
    for j in range(1, params.shape[0]):
        before, after = params[j - 1], params[j]
        shared = 0
        for i in range(base.size):
            shared += _calendar_crossed(before, after, base[i], tolerance)
        own = 0
        for i in range(sinh_z.size):
            # feature[before] and feature[after] of the vectorized form: m + sigma sinh(z)
            own += _calendar_crossed(before, after, before[3] + before[4] * sinh_z[i], tolerance)
            own += _calendar_crossed(before, after, after[3] + after[4] * sinh_z[i], tolerance)
        out[j] = 2 * shared + own


@inline
def _calendar_crossed(before: FloatArray, after: FloatArray, k: float, tolerance: float) -> int:
    """1 when ``w_after(k) - w_before(k) >= -tolerance`` fails (NaN included), else 0."""
    difference = _svi_w(after, k) - _svi_w(before, k)
    return 0 if difference >= -tolerance else 1


@inline
def _svi_w(raw: FloatArray, k: float) -> float:
    # svi_total_variance's arithmetic: a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))
    u = k - raw[3]
    return raw[0] + raw[1] * (raw[2] * u + np.sqrt(u * u + raw[4] * raw[4]))  # type: ignore[no-any-return]


def _arbitrage_checks_by_slice(raws: list[SviParams]) -> tuple[IntArray, FloatArray, IntArray]:
    """:func:`_arbitrage_checks` one slice at a time (any parameters, NaN ones too)."""
    count = len(raws)
    butterflies = np.zeros(count, dtype=np.int64)
    min_g = np.full(count, np.nan)
    calendars = np.zeros(count, dtype=np.int64)
    previous: tuple[SviParams, FloatArray] | None = None
    for j, raw in enumerate(raws):
        dense = check_grid(raw)
        check = check_butterfly(raw, dense)
        butterflies[j] = check.violations + (0 if check.lee_bound_holds else 1)
        min_g[j] = check.min_g
        if previous is not None:
            # Both slices' grids: each is dense where its own smile bends.
            pair_grid = np.concatenate([previous[1], dense])
            calendars[j] = check_calendar([previous[0], raw], pair_grid).crossings
        previous = (raw, dense)
    return butterflies, min_g, calendars


def _snapshot_time(chain: xr.Dataset) -> np.datetime64:
    for name in (schema.SNAPSHOT_TIME, schema.UNDERLYING_TIME):
        times = np.asarray(chain.variables[name].values).astype("datetime64[ns]")
        times = times[~np.isnat(times)]
        if times.size:
            return np.datetime64(times.max(), "ns")
    return np.datetime64("NaT", "ns")


def _attrs(chain: xr.Dataset) -> dict[str, object]:
    attrs: dict[str, object] = {"model": "eSSVI (published), raw SVI per expiry (diagnostics)"}
    for key in ("source", "day"):
        if key in chain.attrs:
            attrs[key] = chain.attrs[key]
    return attrs


def _quote_results(
    chain: xr.Dataset, prepared: PreparedChain, slices: _Slices, surface: EssviSurface | None
) -> xr.Dataset:
    """Per-contract flags, volatilities, use in the published surface and its volatility."""
    size = int(chain.sizes.get(schema.CONTRACT, 0))
    t = prepared.time_to_expiry
    k = prepared.log_moneyness
    fitted = np.full(size, np.nan)
    if surface is not None:
        ok = np.isfinite(k) & (t > 0)
        fitted[ok] = surface.implied_volatility(k[ok], t[ok])
    published_groups = slices.group[slices.status == schema.ExpiryStatus.OK]
    used = prepared.used_in_fit & np.isin(prepared.slice_index, published_groups)
    return schema.build_quote_results(
        chain[schema.TICKER].values,
        {
            schema.QUOTE_FLAGS: prepared.flags,
            schema.IV_BID: prepared.iv_bid,
            schema.IV_MID: prepared.iv_mid,
            schema.IV_ASK: prepared.iv_ask,
            schema.IV_STATUS: prepared.iv_status,
            schema.USED: used,
            schema.LOG_MONEYNESS: k,
            schema.TIME_TO_EXPIRY: t,
            schema.FITTED_IV: fitted,
        },
        attrs={"underlying": str(prepared.underlying)},
    )
