"""Trading days, listed expiries and strike ladders of the simulated market.

Trading days are weekdays (the simulator has no exchange holidays). Listings as of a day:

* indices: daily PM-settled expiries (root ``SPXW``) for the next ten trading days including the
  same day (0DTE), Friday weeklies for eight weeks, AM-settled monthlies (third Friday, root
  ``SPX``) for twelve months plus a PM-settled weekly-root contract on the same day, December
  LEAPS for two years;
* ETFs with dailies: dailies for five trading days, weeklies for eight weeks, monthlies for six
  months, quarterlies (Mar/Jun/Sep/Dec) within a year, January LEAPS for two years;
* stocks: weeklies for five weeks (large names), monthlies for three to four months, quarterlies
  within nine months, January LEAPS (one or two years).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from periscope.schema import AM, PM
from periscope.simulator.universe import Underlying


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed expiry: its root, date and settlement (``AM``/``PM``)."""

    root: str
    expiry: dt.date
    settlement: str


def trading_days(start: dt.date, count: int) -> tuple[dt.date, ...]:
    """``count`` weekdays from ``start`` (inclusive, moved forward to a weekday)."""
    days: list[dt.date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return tuple(days)


def third_friday(year: int, month: int) -> dt.date:
    """The standard monthly expiry of ``year``-``month``."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def _monthlies(today: dt.date, months: int) -> list[dt.date]:
    out = []
    for offset in range(months + 1):
        year, month = _add_months(today.year, today.month, offset)
        expiry = third_friday(year, month)
        if expiry >= today:
            out.append(expiry)
    return out[:months]


def _fridays(today: dt.date, weeks: int) -> list[dt.date]:
    first = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    return [first + dt.timedelta(weeks=w) for w in range(weeks)]


def _next_weekdays(today: dt.date, count: int) -> list[dt.date]:
    return list(trading_days(today, count))


def listings(underlying: Underlying, today: dt.date) -> list[Listing]:
    """The expiries listed for ``underlying`` on ``today``, sorted, without duplicates.

    An AM-settled expiry on ``today`` has already settled at the open and is not listed.
    """
    standard = underlying.roots[0]
    weekly = underlying.roots[-1]
    found: dict[tuple[str, dt.date], str] = {}

    def add(root: str, dates: list[dt.date], settlement: str = PM) -> None:
        for expiry in dates:
            if expiry >= today:
                found.setdefault((root, expiry), settlement)

    if underlying.kind == "index":
        add(weekly, _next_weekdays(today, 10))
        add(weekly, _fridays(today, 8))
        monthlies = _monthlies(today, 12)
        add(standard, [d for d in monthlies if d > today], AM)
        add(weekly, monthlies)
        add(standard, [third_friday(today.year + y, 12) for y in (1, 2)], AM)
    elif underlying.dailies:
        add(standard, _next_weekdays(today, 5))
        add(standard, _fridays(today, 8))
        add(standard, _monthlies(today, 6))
        quarterly = [d for d in _monthlies(today, 12) if d.month % 3 == 0]
        add(standard, quarterly)
        add(standard, [third_friday(today.year + y, 1) for y in (1, 2)])
    else:
        if underlying.weeklies:
            add(standard, _fridays(today, 5))
        add(standard, _monthlies(today, 4 if underlying.weeklies else 3))
        add(standard, [d for d in _monthlies(today, 9) if d.month % 3 == 0])
        years = (1, 2) if underlying.weeklies else (1,)
        add(standard, [third_friday(today.year + y, 1) for y in years])
    items = [Listing(root, expiry, settlement) for (root, expiry), settlement in found.items()]
    return sorted(items, key=lambda item: (item.expiry, item.root))


def strike_step(spot: float, kind: str, time_to_expiry: float) -> float:
    """Strike spacing: finer for cheap underlyings and near expiries, as exchanges list them."""
    if kind == "index":
        step = 5.0 if time_to_expiry < 0.25 else 25.0
    elif spot < 25:
        step = 0.5
    elif spot < 100:
        step = 1.0
    elif spot < 300:
        step = 1.0 if kind == "etf" else 2.5
    else:
        step = 5.0
    if kind != "index" and time_to_expiry > 0.5:
        step *= 2.0
    return step


def strike_range(spot: float, volatility: float, time_to_expiry: float) -> tuple[float, float]:
    """The lowest and highest strike listed: about -4.5/+3 standard deviations of spot."""
    width = volatility * np.sqrt(max(time_to_expiry, 1.0 / 365.0))
    low = spot * np.exp(-max(4.5 * width, 0.02))
    high = spot * np.exp(max(3.0 * width, 0.02))
    return float(low), float(high)


def strike_ladder(
    spot: float, volatility: float, time_to_expiry: float, kind: str, max_each_side: int = 75
) -> npt.NDArray[np.float64]:
    """Listed strikes: multiples of the step within about -4.5/+3 standard deviations of spot.

    The ladder is anchored on multiples of the step, so a contract keeps its strike as the spot
    moves; at most ``max_each_side`` strikes below and above the spot.
    """
    step = strike_step(spot, kind, time_to_expiry)
    low, high = strike_range(spot, volatility, time_to_expiry)
    centre = np.round(spot / step)
    first = max(np.ceil(low / step), centre - max_each_side, 1.0)
    last = min(np.floor(high / step), centre + max_each_side)
    return np.arange(first, last + 1.0) * step
