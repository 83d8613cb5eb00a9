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
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import xarray as xr

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
