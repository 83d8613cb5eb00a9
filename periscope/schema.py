"""The canonical option-chain ``xarray.Dataset``, defined once.

Every producer of chains (the Massive client, the simulator's truth, history loaders) builds its
output with :func:`build_chain_dataset`, and every consumer refers to dimensions, coordinates and
variables through the constants below, never through string literals. ``docs/schema.md`` describes
the same layout for analysts.

Layout
------
One dimension, ``contract``. Coordinates identify the contract (ticker, underlying, root, expiry,
settlement, strike, right, exercise style, shares per contract); data variables hold the quote,
the last trade, activity, the vendor's implied volatility and Greeks, the underlying's price, the
snapshot time, two derived quantities (mid and relative spread) and a ``quality`` bit mask.

Conventions: prices in the quote currency per share (not per contract); times are
``datetime64[ns]`` in UTC without a time zone; missing numbers are NaN, missing times NaT;
volatilities are decimals; strings are object arrays (variable-length strings in Zarr).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import xarray as xr
from xarray.indexes import Index, PandasIndex

from periscope.errors import InvalidInputError

# -- dimension ------------------------------------------------------------------------------
CONTRACT: Final = "contract"

# -- coordinates ----------------------------------------------------------------------------
TICKER: Final = "ticker"
UNDERLYING: Final = "underlying"
ROOT: Final = "root"
EXPIRY: Final = "expiry"
SETTLEMENT: Final = "settlement"
STRIKE: Final = "strike"
RIGHT: Final = "right"
EXERCISE_STYLE: Final = "exercise_style"
SHARES_PER_CONTRACT: Final = "shares_per_contract"

# -- data variables -------------------------------------------------------------------------
BID: Final = "bid"
ASK: Final = "ask"
BID_SIZE: Final = "bid_size"
ASK_SIZE: Final = "ask_size"
QUOTE_TIME: Final = "quote_time"
LAST_PRICE: Final = "last_price"
LAST_SIZE: Final = "last_size"
LAST_TIME: Final = "last_time"
VOLUME: Final = "volume"
OPEN_INTEREST: Final = "open_interest"
VENDOR_IV: Final = "vendor_iv"
VENDOR_DELTA: Final = "vendor_delta"
VENDOR_GAMMA: Final = "vendor_gamma"
VENDOR_THETA: Final = "vendor_theta"
VENDOR_VEGA: Final = "vendor_vega"
UNDERLYING_PRICE: Final = "underlying_price"
UNDERLYING_TIME: Final = "underlying_time"
SNAPSHOT_TIME: Final = "snapshot_time"
MID: Final = "mid"
RELATIVE_SPREAD: Final = "relative_spread"
QUALITY: Final = "quality"

# Values of the string coordinates.
CALL: Final = "call"
PUT: Final = "put"
AM: Final = "AM"
PM: Final = "PM"
RIGHTS: Final = frozenset({CALL, PUT, "other"})
EXERCISE_STYLES: Final = frozenset({"american", "european", "bermudan"})

STRING_COORDS: Final = (TICKER, UNDERLYING, ROOT, SETTLEMENT, RIGHT, EXERCISE_STYLE)
FLOAT_COORDS: Final = (STRIKE, SHARES_PER_CONTRACT)
TIME_COORDS: Final = (EXPIRY,)
COORDS: Final = (
    TICKER,
    UNDERLYING,
    ROOT,
    EXPIRY,
    SETTLEMENT,
    STRIKE,
    RIGHT,
    EXERCISE_STYLE,
    SHARES_PER_CONTRACT,
)

FLOAT_VARIABLES: Final = (
    BID,
    ASK,
    BID_SIZE,
    ASK_SIZE,
    LAST_PRICE,
    LAST_SIZE,
    VOLUME,
    OPEN_INTEREST,
    VENDOR_IV,
    VENDOR_DELTA,
    VENDOR_GAMMA,
    VENDOR_THETA,
    VENDOR_VEGA,
    UNDERLYING_PRICE,
)
TIME_VARIABLES: Final = (QUOTE_TIME, LAST_TIME, UNDERLYING_TIME, SNAPSHOT_TIME)
DERIVED_VARIABLES: Final = (MID, RELATIVE_SPREAD, QUALITY)
INPUT_VARIABLES: Final = FLOAT_VARIABLES + TIME_VARIABLES
VARIABLES: Final = INPUT_VARIABLES + DERIVED_VARIABLES

UNITS: Final[Mapping[str, str]] = {
    STRIKE: "quote currency per share",
    SHARES_PER_CONTRACT: "shares",
    BID: "quote currency per share",
    ASK: "quote currency per share",
    BID_SIZE: "contracts",
    ASK_SIZE: "contracts",
    LAST_PRICE: "quote currency per share",
    LAST_SIZE: "contracts",
    VOLUME: "contracts (session so far)",
    OPEN_INTEREST: "contracts (end of the previous session)",
    VENDOR_IV: "1 (decimal, annualised)",
    VENDOR_DELTA: "1 per unit of underlying price",
    VENDOR_GAMMA: "1 per unit of underlying price squared",
    VENDOR_THETA: "quote currency per share per calendar day",
    VENDOR_VEGA: "quote currency per share per volatility point (0.01)",
    UNDERLYING_PRICE: "quote currency per share",
    MID: "quote currency per share",
    RELATIVE_SPREAD: "1 (ask - bid) / mid",
}

DEFAULT_STALE_AFTER: Final = np.timedelta64(15, "m")
NEW_YORK: Final = ZoneInfo("America/New_York")
# Roots whose standard (third-Friday) contracts settle at the open (AM); weeklies such as SPXW
# and every equity option settle at the close (PM).
AM_SETTLED_ROOTS: Final = frozenset({"SPX", "NDX", "RUT", "VIX", "DJX", "OEX", "XEO"})


class QualityFlag(enum.IntFlag):
    """Bits of the ``quality`` variable; 0 means no problem found.

    ``ZERO_BID`` and ``ONE_SIDED`` overlap on purpose: a zero bid with a live ask is both.
    """

    MISSING_QUOTE = 1
    ZERO_BID = 2
    ONE_SIDED = 4
    CROSSED = 8
    STALE = 16
    MISSING_GREEKS = 32
    MISSING_IV = 64
    MISSING_UNDERLYING = 128


def settlement_for_root(root: str, expiry: dt.date) -> str:
    """``"AM"`` for AM-settled index roots on their standard third-Friday expiry, else ``"PM"``."""
    third_friday = expiry.weekday() == 4 and 15 <= expiry.day <= 21
    return AM if root in AM_SETTLED_ROOTS and third_friday else PM


def settlements(
    roots: npt.NDArray[np.object_], expiries: npt.NDArray[np.datetime64]
) -> npt.NDArray[np.object_]:
    """:func:`settlement_for_root` over arrays (expiries as ``datetime64``)."""
    days = expiries.astype("datetime64[D]")
    weekday = (days.view(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    day_of_month = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
    third_friday = (weekday == 4) & (day_of_month >= 15) & (day_of_month <= 21)
    am_root = np.isin(roots, list(AM_SETTLED_ROOTS))
    return np.where(am_root & third_friday, AM, PM).astype(object)


def settlement_instant(expiry: dt.date, settlement: str) -> dt.datetime:
    """The settlement instant in UTC: 09:30 (AM) or 16:00 (PM) America/New_York on ``expiry``."""
    local = dt.time(9, 30) if settlement == AM else dt.time(16, 0)
    return dt.datetime.combine(expiry, local, tzinfo=NEW_YORK).astimezone(dt.UTC)


def _strings(name: str, values: Any, size: int) -> npt.NDArray[np.object_]:
    array = np.asarray(values, dtype=object)
    if array.shape != (size,):
        raise InvalidInputError(f"{name} must have shape ({size},), got {array.shape}", name=name)
    return array


def _floats(name: str, values: Any, size: int) -> npt.NDArray[np.float64]:
    if values is None:
        return np.full(size, np.nan)
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise InvalidInputError(f"{name} must have shape ({size},), got {array.shape}", name=name)
    return array


def _times(name: str, values: Any, size: int) -> npt.NDArray[np.datetime64]:
    if values is None:
        return np.full(size, np.datetime64("NaT", "ns"))
    array = np.asarray(values)
    if array.dtype.kind in "iu":  # Unix nanoseconds
        array = array.astype("datetime64[ns]")
    array = array.astype("datetime64[ns]")
    if array.shape != (size,):
        raise InvalidInputError(f"{name} must have shape ({size},), got {array.shape}", name=name)
    return array


def quality_flags(
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    quote_time: npt.NDArray[np.datetime64],
    underlying_time: npt.NDArray[np.datetime64],
    greeks: tuple[npt.NDArray[np.float64], ...],
    implied_volatility: npt.NDArray[np.float64],
    underlying_price: npt.NDArray[np.float64],
    stale_after: np.timedelta64 = DEFAULT_STALE_AFTER,
) -> npt.NDArray[np.uint8]:
    """The :class:`QualityFlag` bit mask of each contract.

    A quote is stale when it is older than the underlying's price by more than ``stale_after``.
    """
    flags = np.zeros(bid.shape, dtype=np.uint8)
    has_bid = np.nan_to_num(bid, nan=0.0) > 0
    has_ask = np.nan_to_num(ask, nan=0.0) > 0
    flags |= np.where(~has_bid & ~has_ask, QualityFlag.MISSING_QUOTE, 0).astype(np.uint8)
    flags |= np.where((bid == 0) & has_ask, QualityFlag.ZERO_BID, 0).astype(np.uint8)
    flags |= np.where(has_bid ^ has_ask, QualityFlag.ONE_SIDED, 0).astype(np.uint8)
    flags |= np.where(has_bid & has_ask & (bid > ask), QualityFlag.CROSSED, 0).astype(np.uint8)
    stale = (~np.isnat(quote_time)) & (~np.isnat(underlying_time))
    stale &= (underlying_time - quote_time) > stale_after
    flags |= np.where(stale, QualityFlag.STALE, 0).astype(np.uint8)
    missing_greeks = np.zeros(bid.shape, dtype=bool)
    for greek in greeks:
        missing_greeks |= np.isnan(greek)
    flags |= np.where(missing_greeks, QualityFlag.MISSING_GREEKS, 0).astype(np.uint8)
    flags |= np.where(np.isnan(implied_volatility), QualityFlag.MISSING_IV, 0).astype(np.uint8)
    missing_underlying = np.isnan(underlying_price)
    flags |= np.where(missing_underlying, QualityFlag.MISSING_UNDERLYING, 0).astype(np.uint8)
    return flags


def build_chain_dataset(
    columns: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any] | None = None,
    stale_after: np.timedelta64 = DEFAULT_STALE_AFTER,
) -> xr.Dataset:
    """Build a canonical chain from one column per coordinate and input variable.

    Parameters
    ----------
    columns
        Every name in :data:`COORDS` (required) and any of :data:`INPUT_VARIABLES` (missing ones
        become NaN/NaT), each a 1-d sequence with one element per contract. Expiries are dates
        (``datetime64`` or ``datetime.date``); times are ``datetime64`` or Unix nanoseconds (UTC).
    attrs
        Dataset attributes to attach (source, request parameters...).
    stale_after
        A quote older than the underlying's price by more than this is flagged ``STALE``.

    Returns
    -------
    xarray.Dataset
        With the derived ``mid``, ``relative_spread`` and ``quality``; passes
        :func:`validate_chain`.

    Raises
    ------
    InvalidInputError
        A coordinate is missing, or a column has the wrong length or values.
    """
    missing = [name for name in COORDS if name not in columns]
    if missing:
        raise InvalidInputError(f"chain columns lack coordinates {missing}", missing=missing)
    unknown = sorted(set(columns) - set(COORDS) - set(INPUT_VARIABLES))
    if unknown:
        raise InvalidInputError(f"unknown chain columns {unknown}", unknown=unknown)
    size = len(columns[TICKER])
    coords: dict[str, tuple[str, npt.NDArray[Any]]] = {}
    for name in STRING_COORDS:
        coords[name] = (CONTRACT, _strings(name, columns[name], size))
    for name in FLOAT_COORDS:
        coords[name] = (CONTRACT, _floats(name, columns[name], size))
    expiry = np.asarray(columns[EXPIRY], dtype="datetime64[D]").astype("datetime64[ns]")
    coords[EXPIRY] = (CONTRACT, _times(EXPIRY, expiry, size))

    data: dict[str, npt.NDArray[Any]] = {}
    for name in FLOAT_VARIABLES:
        data[name] = _floats(name, columns.get(name), size)
    for name in TIME_VARIABLES:
        data[name] = _times(name, columns.get(name), size)

    bid, ask = data[BID], data[ASK]
    two_sided = (bid > 0) & (ask > 0) & (ask >= bid)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = np.where(two_sided, 0.5 * (bid + ask), np.nan)
        data[MID] = mid
        data[RELATIVE_SPREAD] = np.where(two_sided, (ask - bid) / mid, np.nan)
    greeks = tuple(data[g] for g in (VENDOR_DELTA, VENDOR_GAMMA, VENDOR_THETA, VENDOR_VEGA))
    data[QUALITY] = quality_flags(
        bid,
        ask,
        data[QUOTE_TIME],
        data[UNDERLYING_TIME],
        greeks,
        data[VENDOR_IV],
        data[UNDERLYING_PRICE],
        stale_after,
    )
    # Variables built directly (fastpath): the arrays are already clean numpy of the right dtype,
    # which spares xarray's per-variable conversion checks (most of the cost of small chains).
    dataset = xr.Dataset(
        {
            name: xr.Variable(
                CONTRACT, values, {"units": UNITS[name]} if name in UNITS else None, fastpath=True
            )
            for name, values in data.items()
        },
        coords={
            name: xr.Variable(
                dims, values, {"units": UNITS[name]} if name in UNITS else None, fastpath=True
            )
            for name, (dims, values) in coords.items()
        },
        attrs=dict(attrs or {}),
    )
    dataset.variables[QUALITY].attrs.update(
        flag_masks=[int(flag) for flag in QualityFlag],
        flag_meanings=" ".join(str(flag.name).lower() for flag in QualityFlag),
    )
    dataset.attrs.setdefault("stale_after_seconds", int(stale_after / np.timedelta64(1, "s")))
    validate_chain(dataset)
    return dataset


def empty_chain(attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A valid chain with no contracts."""
    columns: dict[str, Any] = {name: [] for name in COORDS}
    columns[EXPIRY] = np.array([], dtype="datetime64[D]")
    return build_chain_dataset(columns, attrs=attrs)


def validate_chain(dataset: xr.Dataset) -> None:
    """Check that ``dataset`` has the canonical chain layout.

    Raises
    ------
    InvalidInputError
        A dimension, coordinate or variable is missing, has another dimension or dtype, a right
        or exercise style is unknown, or a ticker appears twice.
    """
    if set(dataset.dims) != {CONTRACT}:
        raise InvalidInputError(f"a chain has one dimension {CONTRACT!r}, got {dict(dataset.dims)}")
    for name in COORDS:
        if name not in dataset.coords:
            raise InvalidInputError(f"chain lacks coordinate {name!r}", name=name)
    for name in VARIABLES:
        if name not in dataset.data_vars:
            raise InvalidInputError(f"chain lacks variable {name!r}", name=name)
    variables = dataset.variables
    for name in (*COORDS, *VARIABLES):
        if variables[name].dims != (CONTRACT,):
            raise InvalidInputError(f"{name!r} must be along {CONTRACT!r}", name=name)
    kinds = dict.fromkeys((*FLOAT_COORDS, *FLOAT_VARIABLES, MID, RELATIVE_SPREAD), "f")
    kinds |= dict.fromkeys((*TIME_COORDS, *TIME_VARIABLES), "M")
    kinds |= dict.fromkeys(STRING_COORDS, "O")
    kinds[QUALITY] = "u"
    for name, kind in kinds.items():
        if variables[name].dtype.kind != kind:
            raise InvalidInputError(
                f"{name!r} has dtype {variables[name].dtype}, expected kind {kind!r}", name=name
            )
    rights = set(variables[RIGHT].values.tolist())
    if not rights <= RIGHTS:
        raise InvalidInputError(f"unknown rights {sorted(rights - RIGHTS)}")
    styles = set(variables[EXERCISE_STYLE].values.tolist())
    if not styles <= EXERCISE_STYLES:
        raise InvalidInputError(f"unknown exercise styles {sorted(styles - EXERCISE_STYLES)}")
    tickers = variables[TICKER].values
    if len(set(tickers.tolist())) != tickers.size:
        raise InvalidInputError("a chain lists a ticker twice")


# -- other market-data datasets -----------------------------------------------------------
# Daily bars: dimension ``time`` (bar start, UTC); variables open/high/low/close/volume/vwap/
# transactions; attrs ``ticker``.
TIME: Final = "time"
OPEN: Final = "open"
HIGH: Final = "high"
LOW: Final = "low"
CLOSE: Final = "close"
VWAP: Final = "vwap"
TRANSACTIONS: Final = "transactions"
BAR_VARIABLES: Final = (OPEN, HIGH, LOW, CLOSE, VOLUME, VWAP, TRANSACTIONS)

# Treasury yields: dimensions ``date`` x ``tenor`` (years); variable ``treasury_yield``
# (decimal, constant-maturity yield as published, NaN where a tenor is absent).
DATE: Final = "date"
TENOR: Final = "tenor"
TREASURY_YIELD: Final = "treasury_yield"

# Dividends: dimension ``dividend``; coordinates ``ticker`` and ``ex_dividend_date``;
# variables ``cash_amount`` and ``pay_date``.
DIVIDEND: Final = "dividend"
EX_DIVIDEND_DATE: Final = "ex_dividend_date"
PAY_DATE: Final = "pay_date"
CASH_AMOUNT: Final = "cash_amount"


def build_bars_dataset(
    time: npt.ArrayLike, values: Mapping[str, npt.ArrayLike], ticker: str
) -> xr.Dataset:
    """Daily (or other) bars of one ticker: ``time`` (datetime64[ns], UTC) and
    :data:`BAR_VARIABLES` (missing ones NaN)."""
    times = np.asarray(time, dtype="datetime64[ns]")
    data = {name: (TIME, _floats(name, values.get(name), times.size)) for name in BAR_VARIABLES}
    return xr.Dataset(data, coords={TIME: times}, attrs={"ticker": ticker})


# -- the volatility-surface Dataset ---------------------------------------------------------
# One underlying's fitted surface (``periscope.volatility.fit_surface``); ``docs/schema.md``
# describes it for analysts and ``docs/surfaces.md`` how it is built. Layout: the scalar
# coordinate ``underlying`` and the dimensions below; :func:`stack_surfaces` turns a list of them
# into one Dataset with an ``underlying`` dimension and the union of the expiries (outer join).
LOG_MONEYNESS: Final = "log_moneyness"
DELTA: Final = "delta"
SVI_PARAMETER: Final = "svi_parameter"
ESSVI_PARAMETER: Final = "essvi_parameter"
CLEANING_REASON: Final = "cleaning_reason"
# TENOR ("tenor") is shared with the treasury-yields Dataset, but a surface's tenors are whole
# calendar days (int); ``tenor_years`` (days / 365) rides along as a coordinate.
TENOR_YEARS: Final = "tenor_years"
DELTA_LABEL: Final = "delta_label"

# Per expiry.
FORWARD: Final = "forward"
DISCOUNT_FACTOR: Final = "discount_factor"
TIME_TO_EXPIRY: Final = "time_to_expiry"
FORWARD_STATUS: Final = "forward_status"
EXPIRY_STATUS: Final = "expiry_status"
SVI_STATUS: Final = "svi_status"
ATM_IMPLIED_VOLATILITY: Final = "atm_implied_volatility"
RMSE_BP: Final = "rmse_bp"
MAX_ABS_ERROR_BP: Final = "max_abs_error_bp"
INSIDE_BAND_SHARE: Final = "inside_band_share"
QUOTES_USED: Final = "quotes_used"
QUOTES_DROPPED: Final = "quotes_dropped"
SVI_RMSE_BP: Final = "svi_rmse_bp"
SVI_MIN_G: Final = "svi_min_g"
SVI_BUTTERFLY_FREE: Final = "svi_butterfly_free"
MIN_DURRLEMAN_G: Final = "min_durrleman_g"
BUTTERFLY_VIOLATIONS: Final = "butterfly_violations"
CALENDAR_VIOLATIONS: Final = "calendar_violations"
SVI_PARAMETERS: Final = "svi_parameters"
ESSVI_PARAMETERS: Final = "essvi_parameters"
CLEANING_COUNTS: Final = "cleaning_counts"
IMPLIED_VOLATILITY: Final = "implied_volatility"
# Per tenor.
CONSTANT_MATURITY_IV: Final = "constant_maturity_iv"
ATM_SKEW: Final = "atm_skew"
RISK_REVERSAL_25: Final = "risk_reversal_25"
RISK_REVERSAL_10: Final = "risk_reversal_10"
BUTTERFLY_25: Final = "butterfly_25"
BUTTERFLY_10: Final = "butterfly_10"
TENOR_EXTRAPOLATED: Final = "tenor_extrapolated"
DELTA_IMPLIED_VOLATILITY: Final = "delta_implied_volatility"
DELTA_LOG_MONEYNESS: Final = "delta_log_moneyness"
# Scalars.
SPOT: Final = "spot"
SURFACE_STATUS: Final = "surface_status"
STATUS_MESSAGE: Final = "status_message"
CONFIDENCE: Final = "confidence"
TERM_STRUCTURE_SLOPE: Final = "term_structure_slope"

SVI_PARAMETER_NAMES: Final = ("a", "b", "rho", "m", "sigma")
ESSVI_PARAMETER_NAMES: Final = ("theta", "rho", "psi")
TENOR_DAYS: Final = (7, 30, 60, 90, 180, 365)
# Forward (undiscounted) Black call deltas N(d1): 0.90 is the 10-delta put (put delta
# N(d1) - 1 = -0.10), 0.50 the 50-delta straddle point, 0.10 the 10-delta call.
DELTA_GRID: Final = (0.90, 0.75, 0.50, 0.25, 0.10)
DELTA_LABELS: Final = ("10P", "25P", "50", "25C", "10C")


def _log_moneyness_grid() -> npt.NDArray[np.float64]:
    # Every 0.01 inside ±0.10 (where short expiries live), every 0.05 out to ±1.
    inner = np.arange(-10, 11) * 0.01
    outer = np.arange(3, 21) * 0.05
    return np.round(np.concatenate([-outer[::-1], inner, outer]), 10)


LOG_MONEYNESS_GRID: Final = _log_moneyness_grid()
"""The fixed log-moneyness grid ``k = ln(K/F)`` of ``implied_volatility`` (57 points)."""


class SurfaceStatus(enum.IntEnum):
    """``surface_status``: the outcome for the underlying as a whole.

    OK
        Every expiry with enough quotes was fitted and published.
    PARTIAL
        A surface is published, but some expiries with quotes failed (see ``expiry_status``).
    NO_USABLE_EXPIRY
        No expiry could be fitted: every surface variable is NaN.
    FAILED
        An unexpected error stopped the fit (recorded by the batch helpers, with the message in
        ``status_message``); every surface variable is NaN.
    """

    OK = 0
    PARTIAL = 1
    NO_USABLE_EXPIRY = 2
    FAILED = 3


class ExpiryStatus(enum.IntEnum):
    """``expiry_status``: the outcome per expiry (``svi_status`` keeps the raw SVI fit's own
    :class:`periscope.volatility.svi.SliceStatus`).

    OK
        Fitted (raw SVI) and part of the published eSSVI surface.
    TOO_FEW_QUOTES
        Fewer usable quotes than a smile needs after cleaning; not fitted.
    NO_FORWARD
        No forward could be implied (nor taken from a rate curve); not fitted.
    SVI_FAILED
        The raw SVI fit failed; the slice is not published.
    NOT_PUBLISHED
        The SVI fit worked but the eSSVI surface could not take the slice (it would break the
        calendar conditions or the eSSVI fit failed there).
    EXPIRED
        The expiry settled before the snapshot (time to expiry <= 0).
    NOT_LISTED
        The underlying has no such expiry: padding added when surfaces are stacked.
    """

    OK = 0
    TOO_FEW_QUOTES = 1
    NO_FORWARD = 2
    SVI_FAILED = 3
    NOT_PUBLISHED = 4
    EXPIRED = 5
    NOT_LISTED = 6


_E, _K, _T, _D = EXPIRY, LOG_MONEYNESS, TENOR, DELTA
# name -> (dimensions, dtype, fill value when absent or padded by stacking)
SURFACE_LAYOUT: Final[Mapping[str, tuple[tuple[str, ...], str, Any]]] = {
    FORWARD: ((_E,), "float64", np.nan),
    DISCOUNT_FACTOR: ((_E,), "float64", np.nan),
    TIME_TO_EXPIRY: ((_E,), "float64", np.nan),
    FORWARD_STATUS: ((_E,), "int8", -1),
    SETTLEMENT: ((_E,), "object", ""),
    EXPIRY_STATUS: ((_E,), "int8", int(ExpiryStatus.NOT_LISTED)),
    SVI_STATUS: ((_E,), "int8", -1),
    ATM_IMPLIED_VOLATILITY: ((_E,), "float64", np.nan),
    RMSE_BP: ((_E,), "float64", np.nan),
    MAX_ABS_ERROR_BP: ((_E,), "float64", np.nan),
    INSIDE_BAND_SHARE: ((_E,), "float64", np.nan),
    QUOTES_USED: ((_E,), "int32", 0),
    QUOTES_DROPPED: ((_E,), "int32", 0),
    SVI_RMSE_BP: ((_E,), "float64", np.nan),
    SVI_MIN_G: ((_E,), "float64", np.nan),
    SVI_BUTTERFLY_FREE: ((_E,), "bool", False),
    MIN_DURRLEMAN_G: ((_E,), "float64", np.nan),
    BUTTERFLY_VIOLATIONS: ((_E,), "int32", 0),
    CALENDAR_VIOLATIONS: ((_E,), "int32", 0),
    SVI_PARAMETERS: ((_E, SVI_PARAMETER), "float64", np.nan),
    ESSVI_PARAMETERS: ((_E, ESSVI_PARAMETER), "float64", np.nan),
    CLEANING_COUNTS: ((_E, CLEANING_REASON), "int32", 0),
    IMPLIED_VOLATILITY: ((_E, _K), "float64", np.nan),
    CONSTANT_MATURITY_IV: ((_T,), "float64", np.nan),
    ATM_SKEW: ((_T,), "float64", np.nan),
    RISK_REVERSAL_25: ((_T,), "float64", np.nan),
    RISK_REVERSAL_10: ((_T,), "float64", np.nan),
    BUTTERFLY_25: ((_T,), "float64", np.nan),
    BUTTERFLY_10: ((_T,), "float64", np.nan),
    TENOR_EXTRAPOLATED: ((_T,), "bool", True),
    DELTA_IMPLIED_VOLATILITY: ((_T, _D), "float64", np.nan),
    DELTA_LOG_MONEYNESS: ((_T, _D), "float64", np.nan),
    SPOT: ((), "float64", np.nan),
    SNAPSHOT_TIME: ((), "datetime64[ns]", np.datetime64("NaT", "ns")),
    SURFACE_STATUS: ((), "int8", int(SurfaceStatus.NO_USABLE_EXPIRY)),
    STATUS_MESSAGE: ((), "object", ""),
    CONFIDENCE: ((), "float64", 0.0),
    TERM_STRUCTURE_SLOPE: ((), "float64", np.nan),
}
"""Every surface variable: its dimensions, dtype and fill value."""

SURFACE_UNITS: Final[Mapping[str, str]] = {
    FORWARD: "quote currency per share",
    DISCOUNT_FACTOR: "1 (price today of 1 paid at expiry)",
    TIME_TO_EXPIRY: "years (ACT/365 to the settlement instant)",
    ATM_IMPLIED_VOLATILITY: "1 (decimal, annualised), at k = 0",
    RMSE_BP: "volatility basis points (1e-4)",
    MAX_ABS_ERROR_BP: "volatility basis points (1e-4)",
    INSIDE_BAND_SHARE: "1 (share of used quotes)",
    SVI_RMSE_BP: "volatility basis points (1e-4)",
    MIN_DURRLEMAN_G: "1",
    SVI_MIN_G: "1",
    IMPLIED_VOLATILITY: "1 (decimal, annualised)",
    CONSTANT_MATURITY_IV: "1 (decimal, annualised), at k = 0",
    ATM_SKEW: "1 per unit of log-moneyness (d sigma / dk at k = 0)",
    RISK_REVERSAL_25: "1 (decimal volatility)",
    RISK_REVERSAL_10: "1 (decimal volatility)",
    BUTTERFLY_25: "1 (decimal volatility)",
    BUTTERFLY_10: "1 (decimal volatility)",
    DELTA_IMPLIED_VOLATILITY: "1 (decimal, annualised)",
    DELTA_LOG_MONEYNESS: "1 (ln(K/F))",
    SPOT: "quote currency per share",
    CONFIDENCE: "1 (0 = unusable, 1 = best)",
    TERM_STRUCTURE_SLOPE: "1 (decimal volatility, IV90 - IV30)",
    TENOR: "calendar days",
    TENOR_YEARS: "years (days / 365)",
    DELTA: "1 (forward call delta N(d1))",
    LOG_MONEYNESS: "1 (ln(K/F))",
}


def _surface_array(name: str, values: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    dims, dtype, fill = SURFACE_LAYOUT[name]
    if values is None:
        return np.full(shape, fill, dtype=dtype)
    array = np.asarray(values).astype(dtype, copy=False)
    if array.shape != shape:
        raise InvalidInputError(
            f"surface variable {name!r} on {dims} must have shape {shape}, got {array.shape}",
            name=name,
        )
    return array


def build_surface_dataset(
    underlying: str,
    expiry: npt.ArrayLike,
    values: Mapping[str, Any],
    *,
    cleaning_reasons: tuple[str, ...] = (),
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build one underlying's surface Dataset.

    Parameters
    ----------
    underlying
        The underlying's ticker (the scalar coordinate ``underlying``).
    expiry
        The expiry dates (``datetime64``), ascending and unique: the ``expiry`` dimension.
    values
        Any of the names in :data:`SURFACE_LAYOUT`, each an array of that variable's shape
        (expiry count, :data:`LOG_MONEYNESS_GRID`, :data:`TENOR_DAYS`, :data:`DELTA_GRID`, the
        parameter names, ``cleaning_reasons``); absent ones get their fill value.
    cleaning_reasons
        Names along the ``cleaning_reason`` dimension of ``cleaning_counts``.
    attrs
        Dataset attributes.

    Raises
    ------
    InvalidInputError
        An unknown name, a wrong shape, or expiries that are not ascending and unique.
    """
    unknown = sorted(set(values) - set(SURFACE_LAYOUT))
    if unknown:
        raise InvalidInputError(f"unknown surface variables {unknown}", unknown=unknown)
    expiries = np.asarray(expiry, dtype="datetime64[D]").astype("datetime64[ns]").reshape(-1)
    if expiries.size > 1 and not (np.diff(expiries.view(np.int64)) > 0).all():
        raise InvalidInputError("surface expiries must be ascending and unique")
    sizes = {
        EXPIRY: expiries.size,
        LOG_MONEYNESS: LOG_MONEYNESS_GRID.size,
        TENOR: len(TENOR_DAYS),
        DELTA: len(DELTA_GRID),
        SVI_PARAMETER: len(SVI_PARAMETER_NAMES),
        ESSVI_PARAMETER: len(ESSVI_PARAMETER_NAMES),
        CLEANING_REASON: len(cleaning_reasons),
    }
    data: dict[str, xr.Variable] = {}
    for name, (dims, _, _) in SURFACE_LAYOUT.items():
        shape = tuple(sizes[d] for d in dims)
        array = _surface_array(name, values.get(name), shape)
        units = SURFACE_UNITS.get(name)
        data[name] = xr.Variable(dims, array, {"units": units} if units else None, fastpath=True)
    data[EXPIRY_STATUS].attrs.update(_enum_attrs(ExpiryStatus))
    data[SURFACE_STATUS].attrs.update(_enum_attrs(SurfaceStatus))
    coords, indexes = _surface_coordinates(underlying, expiries, tuple(cleaning_reasons))
    dataset_dims = {name: sizes[name] for name in _SURFACE_DIMS}
    # Every variable above has its layout's dims, shape and dtype by construction, and the
    # coordinates are the layout's (what validate_surface checks): the Dataset is put together
    # directly, without Dataset.__init__'s merge (alignment, copies, index checks), which cost
    # more than everything else here. tests/volatility/test_surface_dataset.py checks that the
    # result is identical to the public construction, xr.Dataset(data, coords=...).
    data |= coords
    return xr.Dataset._construct_direct(
        data, set(coords), dataset_dims, attrs=dict(attrs) if attrs else None, indexes=indexes
    )


# The surface's dimensions in the order xarray lists them (first seen along the variables).
_SURFACE_DIMS: Final = tuple(
    dict.fromkeys(dim for dims, _, _ in SURFACE_LAYOUT.values() for dim in dims)
)


def _surface_coordinates(
    underlying: str, expiries: npt.NDArray[np.datetime64], cleaning_reasons: tuple[str, ...]
) -> tuple[dict[str, xr.Variable], dict[str, Index]]:
    """The surface's coordinate variables and their indexes, in the Dataset's order.

    The fixed ones (grids, parameter names, the cleaning reasons) are built and indexed once
    per process (:func:`_fixed_coordinates`) and copied here: creating their pandas indexes is
    most of what building a small Dataset costs. Indexes are immutable and shared.
    """
    fixed, indexes = _fixed_coordinates(cleaning_reasons)
    # What PandasIndex makes of a datetime64[ns] array, without its casting and renaming copy.
    expiry_index = PandasIndex(pd.DatetimeIndex(expiries, name=EXPIRY), EXPIRY)
    variables: dict[str, xr.Variable] = {
        # fastpath: a 0-d object array holding the str is what xarray's conversion leaves.
        UNDERLYING: xr.Variable((), np.asarray(underlying, dtype=object), fastpath=True),
        **expiry_index.create_variables(),
    }
    for name, variable in fixed.items():
        # A deep copy of the small arrays keeps each Dataset's coordinates its own (an index
        # coordinate's values are its immutable pandas index; its attrs are copied either way).
        variables[name] = variable.copy(deep=name not in indexes)
    ordered = {EXPIRY: expiry_index, **indexes}
    return variables, {name: ordered[name] for name in variables if name in ordered}


@functools.lru_cache(maxsize=16)
def _fixed_coordinates(
    cleaning_reasons: tuple[str, ...],
) -> tuple[dict[str, xr.Variable], dict[str, Index]]:
    coords = xr.Coordinates(
        {
            LOG_MONEYNESS: (
                LOG_MONEYNESS, LOG_MONEYNESS_GRID.copy(), {"units": SURFACE_UNITS[LOG_MONEYNESS]}
            ),
            TENOR: (TENOR, np.array(TENOR_DAYS, dtype=np.int64), {"units": SURFACE_UNITS[TENOR]}),
            TENOR_YEARS: (
                TENOR, np.array(TENOR_DAYS) / 365.0, {"units": SURFACE_UNITS[TENOR_YEARS]}
            ),
            DELTA: (DELTA, np.array(DELTA_GRID), {"units": SURFACE_UNITS[DELTA]}),
            DELTA_LABEL: (DELTA, np.array(DELTA_LABELS, dtype=object)),
            SVI_PARAMETER: np.array(SVI_PARAMETER_NAMES, dtype=object),
            ESSVI_PARAMETER: np.array(ESSVI_PARAMETER_NAMES, dtype=object),
            CLEANING_REASON: np.array(cleaning_reasons, dtype=object),
        }
    )  # fmt: skip
    return (
        {str(k): v for k, v in coords.variables.items()},
        {str(k): v for k, v in coords.xindexes.items()},
    )


def _enum_attrs(enum_type: type[enum.IntEnum]) -> dict[str, Any]:
    values, meanings = _enum_flags(enum_type)
    return {"flag_values": list(values), "flag_meanings": meanings}


@functools.cache
def _enum_flags(enum_type: type[enum.IntEnum]) -> tuple[tuple[int, ...], str]:
    return (
        tuple(int(member) for member in enum_type),
        " ".join(member.name.lower() for member in enum_type),
    )


def empty_surface(
    underlying: str,
    expiry: npt.ArrayLike = (),
    *,
    status: SurfaceStatus = SurfaceStatus.NO_USABLE_EXPIRY,
    message: str = "",
    values: Mapping[str, Any] | None = None,
    cleaning_reasons: tuple[str, ...] = (),
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A surface with nothing published: ``status``, ``message`` and NaN everywhere else
    (``values`` may still carry what is known, such as forwards, statuses and counts)."""
    filled = dict(values or {})
    filled[SURFACE_STATUS] = np.int8(status)
    filled[STATUS_MESSAGE] = np.asarray(message, dtype=object)
    filled.setdefault(CONFIDENCE, 0.0)
    return build_surface_dataset(
        underlying,
        np.asarray(expiry, dtype="datetime64[D]"),
        filled,
        cleaning_reasons=cleaning_reasons,
        attrs=attrs,
    )


# Strings are object arrays when built, and may come back from Zarr v3 as numpy's StringDType
# ("T") or fixed-width unicode ("U").
_STRING_KINDS: Final = "OTU"


def validate_surface(dataset: xr.Dataset) -> None:
    """Check that ``dataset`` has the layout of one underlying's surface (or a stack of them,
    with a leading ``underlying`` dimension).

    Raises
    ------
    InvalidInputError
        A variable or coordinate is missing, has other dimensions or another dtype kind.
    """
    stacked = UNDERLYING in dataset.dims
    variables = dataset.variables
    for name in (UNDERLYING, EXPIRY, LOG_MONEYNESS, TENOR, DELTA):
        if name not in dataset.coords:
            raise InvalidInputError(f"surface lacks coordinate {name!r}", name=name)
    if not np.array_equal(variables[LOG_MONEYNESS].values, LOG_MONEYNESS_GRID):
        raise InvalidInputError("surface log-moneyness grid differs from LOG_MONEYNESS_GRID")
    if variables[EXPIRY].dtype.kind != "M":
        raise InvalidInputError(f"{EXPIRY!r} must be datetime64, got {variables[EXPIRY].dtype}")
    lead = (UNDERLYING,) if stacked else ()
    for name, (dims, dtype, _) in SURFACE_LAYOUT.items():
        if name not in dataset.data_vars:
            raise InvalidInputError(f"surface lacks variable {name!r}", name=name)
        variable = variables[name]
        if variable.dims != lead + dims:
            raise InvalidInputError(
                f"{name!r} must be on {lead + dims}, got {variable.dims}", name=name
            )
        kinds = _STRING_KINDS if dtype == "object" else np.dtype(dtype).kind
        if variable.dtype.kind not in kinds:
            raise InvalidInputError(
                f"{name!r} has dtype {variable.dtype}, expected {dtype}", name=name
            )


def stack_surfaces(surfaces: list[xr.Dataset]) -> xr.Dataset:
    """Stack single-underlying surfaces along a new ``underlying`` dimension.

    The ``expiry`` dimension becomes the sorted union of every surface's expiries (an outer
    join); an underlying's missing expiries are padded with each variable's fill value
    (:data:`SURFACE_LAYOUT`: NaN, 0 counts, ``expiry_status`` ``NOT_LISTED``), so the stack keeps
    its dtypes. ``cleaning_reason`` is joined the same way (counts 0).

    Surfaces with exactly the layout's variables and coordinates (what
    :func:`build_surface_dataset` makes) are stacked by filling one array per variable; others
    (extra variables or coordinates) through xarray's reindex and concat, which gives the same
    Dataset at a few milliseconds per surface.

    Raises
    ------
    InvalidInputError
        ``surfaces`` is empty, one of them is not a single-underlying surface, or an underlying
        appears twice.
    """
    if not surfaces:
        raise InvalidInputError("stack_surfaces needs at least one surface")
    for surface in surfaces:
        if UNDERLYING in surface.dims:
            raise InvalidInputError("stack_surfaces takes single-underlying surfaces")
        validate_surface(surface)
    names = [str(surface[UNDERLYING].item()) for surface in surfaces]
    if len(set(names)) != len(names):
        raise InvalidInputError("an underlying appears twice in the surfaces to stack")
    expiries = np.unique(np.concatenate([s.variables[EXPIRY].values for s in surfaces]))
    reasons = list(
        dict.fromkeys(r for s in surfaces for r in s.variables[CLEANING_REASON].values.tolist())
    )
    if all(_plain_surface(s) for s in surfaces):
        return _stack_arrays(surfaces, expiries, reasons)
    return _stack_xarray(surfaces, expiries, reasons)


_SURFACE_COORDS: Final = frozenset(
    {UNDERLYING, EXPIRY, LOG_MONEYNESS, TENOR, TENOR_YEARS, DELTA, DELTA_LABEL, SVI_PARAMETER,
     ESSVI_PARAMETER, CLEANING_REASON}
)  # fmt: skip


def _plain_surface(surface: xr.Dataset) -> bool:
    """Exactly the layout's variables and coordinates, with the fixed coordinates' values."""
    variables = surface.variables
    return (
        set(surface.data_vars) == set(SURFACE_LAYOUT)
        and set(surface.coords) == _SURFACE_COORDS
        and all(variables[name].dtype.kind == "O" for name in _OBJECT_VARIABLES)
        and np.array_equal(variables[TENOR].values, np.asarray(TENOR_DAYS))
        and np.array_equal(variables[DELTA].values, np.asarray(DELTA_GRID))
        and variables[SVI_PARAMETER].values.tolist() == list(SVI_PARAMETER_NAMES)
        and variables[ESSVI_PARAMETER].values.tolist() == list(ESSVI_PARAMETER_NAMES)
    )


_OBJECT_VARIABLES: Final = tuple(
    name for name, (_, dtype, _) in SURFACE_LAYOUT.items() if dtype == "object"
)


def _stack_arrays(
    surfaces: list[xr.Dataset], expiries: npt.NDArray[np.datetime64], reasons: list[str]
) -> xr.Dataset:
    """:func:`stack_surfaces` by direct assignment into one padded array per variable."""
    n = len(surfaces)
    first = surfaces[0]
    sizes = dict(first.sizes) | {EXPIRY: expiries.size, CLEANING_REASON: len(reasons)}
    reason_of = {reason: j for j, reason in enumerate(reasons)}
    # Where each surface's expiries and cleaning reasons go in the union.
    rows = [np.searchsorted(expiries, s.variables[EXPIRY].values) for s in surfaces]
    columns = [
        np.array(
            [reason_of[r] for r in s.variables[CLEANING_REASON].values.tolist()], dtype=np.intp
        )
        for s in surfaces
    ]
    data: dict[str, xr.Variable] = {}
    for name, (dims, dtype, fill) in SURFACE_LAYOUT.items():
        out = np.full((n, *(sizes[d] for d in dims)), fill, dtype=dtype)
        for i, surface in enumerate(surfaces):
            index: list[Any] = [i]
            for d in dims:
                index.append(
                    rows[i] if d == EXPIRY else columns[i] if d == CLEANING_REASON else slice(None)
                )
            if dims[:2] == (EXPIRY, CLEANING_REASON):
                # Two integer indexers would pair up: take the outer product instead.
                index = [i, rows[i][:, None], columns[i][None, :]]
            # [()] makes a 0-d array a scalar (a 0-d object array would be stored as one).
            out[tuple(index)] = surface.variables[name].values[()]
        data[name] = xr.Variable(
            (UNDERLYING, *dims),
            out,
            _common_attrs([s.variables[name].attrs for s in surfaces]),
            fastpath=True,
        )
    # The coordinates in the order xarray's reindex and concat leave them.
    coords: dict[str, Any] = {EXPIRY: expiries}
    for name in (LOG_MONEYNESS, TENOR, DELTA, SVI_PARAMETER, ESSVI_PARAMETER):
        coords[name] = first.variables[name].copy(deep=True)
    coords[CLEANING_REASON] = np.array(reasons, dtype=object)
    coords[UNDERLYING] = np.array([s[UNDERLYING].item() for s in surfaces], dtype=object)
    for name in (TENOR_YEARS, DELTA_LABEL):
        coords[name] = first.variables[name].copy(deep=True)
    return xr.Dataset(data, coords=coords, attrs=_common_attrs([s.attrs for s in surfaces]))


def _common_attrs(attrs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """xarray's ``combine_attrs="drop_conflicts"``: every key, unless two values differ."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for mapping in attrs:
        for key, value in mapping.items():
            if key in dropped:
                continue
            if key not in out:
                out[key] = value
            elif not _same(out[key], value):
                del out[key]
                dropped.add(key)
    return out


def _same(first: Any, second: Any) -> bool:
    if first is second:
        return True
    try:
        return bool(np.array_equal(first, second))
    except (TypeError, ValueError):
        return bool(first == second)


def _stack_xarray(
    surfaces: list[xr.Dataset], expiries: npt.NDArray[np.datetime64], reasons: list[str]
) -> xr.Dataset:
    """:func:`stack_surfaces` through xarray (any extra variables or coordinates ride along)."""
    fills = {name: fill for name, (_, _, fill) in SURFACE_LAYOUT.items()}
    padded = [
        s.reindex(
            {EXPIRY: expiries, CLEANING_REASON: np.array(reasons, dtype=object)}, fill_value=fills
        )
        for s in surfaces
    ]
    stacked = xr.concat(
        padded,
        dim=UNDERLYING,
        data_vars="all",
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="drop_conflicts",
    )
    # Reindexing with a fill value promotes small integer dtypes; give the layout's back.
    for name, (_, dtype, _) in SURFACE_LAYOUT.items():
        if stacked[name].dtype != np.dtype(dtype) and dtype != "object":
            stacked[name] = stacked[name].astype(dtype)
    return stacked


# -- per-contract quote results of a surface fit ----------------------------------------------
# ``fit_surface(chain, return_quotes=True)`` returns them beside the surface: a Dataset along the
# chain's ``contract`` dimension, with its ``ticker`` coordinate, to merge into the chain.
QUOTE_FLAGS: Final = "quote_flags"
IV_BID: Final = "iv_bid"
IV_MID: Final = "iv_mid"
IV_ASK: Final = "iv_ask"
IV_STATUS: Final = "iv_status"
USED: Final = "used"
FITTED_IV: Final = "fitted_iv"

QUOTE_LAYOUT: Final[Mapping[str, str]] = {
    QUOTE_FLAGS: "uint16",
    IV_BID: "float64",
    IV_MID: "float64",
    IV_ASK: "float64",
    IV_STATUS: "int8",
    USED: "bool",
    LOG_MONEYNESS: "float64",
    TIME_TO_EXPIRY: "float64",
    FITTED_IV: "float64",
}
"""Every quote-result variable (along ``contract``) and its dtype."""


def build_quote_results(
    ticker: npt.ArrayLike, values: Mapping[str, Any], attrs: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """The per-contract results of a surface fit: every name of :data:`QUOTE_LAYOUT`, one value
    per contract (in the chain's order), and the ``ticker`` coordinate.

    Raises
    ------
    InvalidInputError
        A variable is missing, unknown or of another length.
    """
    tickers = np.asarray(ticker, dtype=object).reshape(-1)
    if set(values) != set(QUOTE_LAYOUT):
        raise InvalidInputError(
            f"quote results need exactly {sorted(QUOTE_LAYOUT)}, got {sorted(values)}"
        )
    data = {}
    for name, dtype in QUOTE_LAYOUT.items():
        array = np.asarray(values[name]).astype(dtype, copy=False)
        if array.shape != tickers.shape:
            raise InvalidInputError(
                f"{name!r} must have one value per contract ({tickers.size})", name=name
            )
        data[name] = xr.Variable(CONTRACT, array)
    return xr.Dataset(data, coords={TICKER: (CONTRACT, tickers)}, attrs=dict(attrs or {}))
