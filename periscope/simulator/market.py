"""The simulated market: paths, curves, dividends, listings, quotes and planted activity.

Everything is a deterministic function of :class:`SimulationConfig` (its ``seed`` above all). Each
underlying draws from its own generator (``SeedSequence([seed, index])``) and each underlying-day
from another (``SeedSequence([seed, index, day, 1])``), so results do not depend on the order of
requests nor on how many other names are simulated.

Ground truth
------------
* Spot: a daily log-Euler path whose volatility is ``σ_base · exp(x_t)``, where ``x_t`` is an
  Ornstein-Uhlenbeck factor correlated -0.7 with returns (leverage) and a common market factor;
  earnings days of stocks add a jump.
* Rates: :class:`~periscope.simulator.curves.RateCurve` per day (random walk of level/slope).
* Dividends: index and ETFs pay a continuous yield; stocks pay four equal cash dividends a year.
* Volatility: :class:`~periscope.simulator.curves.SurfaceTruth` per name and day.
* Prices: indices (European) are priced with Black-Scholes-Merton; ETFs and stocks (American)
  with a CRR tree (:func:`~periscope.simulator.black.american_crr_price`, escrowed dividends).
  For them the surface's σ is the tree's volatility, so the Black IV of the true price differs
  from σ by the early-exercise premium.
* Quotes are drawn around the true price (spreads wider in the wings and at short expiry, zero
  bids, about 3 % stale quotes priced off an older spot, rare crossed and missing quotes). The
  vendor's IV is σ with 1 % relative noise; its Greeks are European BSM Greeks at that IV, and both
  are absent for deep in-the-money contracts (|Δ| > 0.97) and at random for 1 %.
* Unusual activity: on about 15 % of name-days one short-dated out-of-the-money contract trades
  4-12x its open interest; each event is recorded in :meth:`Market.unusual_activity`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.marketdata.tickers import PREFIX, format_option_ticker
from periscope.simulator.black import american_crr_price, black_scholes_greeks, black_scholes_price
from periscope.simulator.calendar import listings, strike_ladder, strike_range, trading_days
from periscope.simulator.curves import RateCurve, SurfaceTruth
from periscope.simulator.universe import Underlying, make_universe

FloatArray = npt.NDArray[np.float64]
_YEAR_SECONDS = 365.0 * 86400.0
_TRADING_DT = 1.0 / 252.0
_EARNINGS_EVERY = 63  # trading days
_MIN_SYNTHETIC_CONTRACTS = 200


@dataclass(frozen=True, slots=True)
class StressScenario:
    """Overrides of the true surfaces and quotes, for accuracy studies of the surface fitters.

    Every field is neutral by default; :data:`STRESS_SCENARIOS` names typical regimes.

    Attributes
    ----------
    skew
        Added to every SSVI ρ (negative: a steeper put skew); ρ stays within [-0.95, 0.95].
    curvature
        Multiplies SSVI η, capped at ``2 / (1 + |ρ|)`` so the slices stay free of butterfly
        arbitrage (Gatheral & Jacquier 2014, Theorem 4.2).
    short_volatility
        Multiplies the short-end ATM volatility σ₀ (above 1 with σ∞ unchanged: an inverted term
        structure, as in a sell-off); the ATM total variance stays increasing in T.
    event_variance, event_time
        An event (earnings, a central-bank decision) adding ``event_variance`` total variance to
        every expiry after ``event_time`` years, for every underlying (indices included); it
        replaces a stock's own earnings event. 0 leaves the regular events.
    sparse_before, sparse_keep
        Expiries closer than ``sparse_before`` years keep each quote with probability
        ``sparse_keep`` (the others are missing): near-expiry slices with few quotes.
    """

    skew: float = 0.0
    curvature: float = 1.0
    short_volatility: float = 1.0
    event_variance: float = 0.0
    event_time: float = 10.0 / 252.0
    sparse_before: float = 0.0
    sparse_keep: float = 1.0


STRESS_SCENARIOS: dict[str, StressScenario] = {
    "steep_skew": StressScenario(skew=-0.35, curvature=1.4),
    "inverted": StressScenario(short_volatility=2.5),
    "earnings": StressScenario(event_variance=0.08**2, event_time=6.5 / 252.0),
    "sparse_short": StressScenario(sparse_before=21.0 / 365.0, sparse_keep=0.15),
}
"""Named stress regimes: steep skew, inverted term structure, an event bump (an 8 % move
six and a half trading days ahead) and near-expiry slices with few quotes."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What determines the simulated market.

    ``stress`` (default None: the regular market) overrides the truth for accuracy studies;
    see :class:`StressScenario`.

    ``synthetic_contracts`` (default None: listings as exchanges list a mid-size stock, about
    250-1,500 contracts per name) makes every synthetic name (``SYN0001``...) list about that many
    contracts (within a few percent; at least 200): the large-name calendar (weeklies, two
    January LEAPS) with one strike step per name, in cents, chosen so the chain holds the
    target. For load tests: 500 names at 2,000 give about a million contracts. The default
    universe's names are never changed.
    """

    seed: int = 7
    n_underlyings: int = 20
    start: dt.date = dt.date(2025, 1, 2)
    n_days: int = 260
    snapshot_time: dt.time = dt.time(15, 45)
    stress: StressScenario | None = None
    synthetic_contracts: int | None = None


@dataclass(frozen=True, slots=True)
class UnusualActivity:
    """A planted burst of volume: the ticker, its session volume and the open interest before."""

    day: dt.date
    underlying: str
    ticker: str
    volume: float
    open_interest: float


@dataclass(frozen=True, slots=True)
class Dividend:
    """A cash dividend of a simulated stock."""

    ticker: str
    ex_date: dt.date
    cash_amount: float


@dataclass(slots=True)
class ChainTruth:
    """One underlying's chain on one day: the quoted columns and the truth behind them.

    ``columns`` has the canonical names of :mod:`periscope.schema`; the ``true_*`` arrays and the
    pricing inputs are aligned with it.
    """

    underlying: Underlying
    day: dt.date
    snapshot: dt.datetime
    spot: float
    surface: SurfaceTruth
    columns: dict[str, npt.NDArray[Any]]
    true_price: FloatArray
    true_volatility: FloatArray
    forward: FloatArray
    rate: FloatArray
    dividend_yield: FloatArray
    dividend_pv: FloatArray
    time_to_expiry: FloatArray
    quote_present: npt.NDArray[np.bool_]
    trade_present: npt.NDArray[np.bool_]
    unusual: list[UnusualActivity] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of contracts."""
        return int(self.true_price.size)

    def dataset(self) -> xr.Dataset:
        """The chain in canonical form, plus the truth (``true_price``, ``true_volatility``,
        ``forward``, ``rate``, ``dividend_yield``, ``dividend_pv``, ``time_to_expiry``)."""
        ds = schema.build_chain_dataset(
            self.columns, attrs={"source": "periscope.simulator", "day": self.day.isoformat()}
        )
        for name in (
            "true_price",
            "true_volatility",
            "forward",
            "rate",
            "dividend_yield",
            "dividend_pv",
            "time_to_expiry",
        ):
            ds[name] = (schema.CONTRACT, getattr(self, name))
        return ds


def _snapshot_instant(day: dt.date, at: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=schema.NEW_YORK).astimezone(dt.UTC)


def _round_to_tick(values: FloatArray, tick: FloatArray, up: bool) -> FloatArray:
    scaled = values / tick
    rounded = np.ceil(scaled - 1e-9) if up else np.floor(scaled + 1e-9)
    return np.asarray(np.round(rounded * tick, 2), dtype=np.float64)


def _option_tickers(
    roots: npt.NDArray[np.object_],
    expiries: npt.NDArray[np.datetime64],
    is_call: npt.NDArray[np.bool_],
    strikes: FloatArray,
) -> npt.NDArray[np.object_]:
    """:func:`~periscope.marketdata.tickers.format_option_ticker` over a chain, each distinct
    root and expiry formatted once (the same strings, at a fraction of the cost)."""
    milli = np.round(strikes * 1000.0)  # round half to even, as Python's round()
    if milli.size and not (milli.min() > 0 and milli.max() < 100_000_000):
        bad = strikes[(milli <= 0) | (milli >= 100_000_000)][0]
        format_option_ticker("X", dt.date(2000, 1, 1), "call", float(bad))  # raises
    prefixes: dict[tuple[str, dt.date], str] = {}
    tickers = []
    for root, expiry, call, strike in zip(
        roots.tolist(),
        expiries.tolist(),
        is_call.tolist(),
        milli.astype(np.int64).tolist(),
        strict=True,
    ):
        prefix = prefixes.get((root, expiry))
        if prefix is None:
            prefix = prefixes[(root, expiry)] = f"{PREFIX}{root}{expiry:%y%m%d}"
        tickers.append(f"{prefix}{'C' if call else 'P'}{strike:08d}")
    return np.array(tickers, dtype=object)


class Market:
    """The simulated market for one :class:`SimulationConfig`.

    Parameters
    ----------
    config
        Seed, universe size, first day, number of trading days and snapshot time.
    """

    def __init__(self, config: SimulationConfig | None = None) -> None:
        self.config = config or SimulationConfig()
        target = self.config.synthetic_contracts
        if target is not None and target < _MIN_SYNTHETIC_CONTRACTS:
            raise InvalidInputError(
                f"synthetic_contracts must be at least {_MIN_SYNTHETIC_CONTRACTS}, got {target}",
                synthetic_contracts=target,
            )
        universe = make_universe(self.config.n_underlyings, self.config.seed)
        if target is not None:  # synthetic names listed like large names (weeklies, two LEAPS)
            universe = tuple(
                dataclasses.replace(u, weeklies=True) if u.synthetic else u for u in universe
            )
        self.universe = universe
        self.days = trading_days(self.config.start, self.config.n_days)
        self._day_index = {day: i for i, day in enumerate(self.days)}
        self._by_ticker = {u.ticker: i for i, u in enumerate(self.universe)}
        for i, u in enumerate(self.universe):
            self._by_ticker.setdefault(u.symbol, i)
        self._simulate_paths()
        self._chain = functools.lru_cache(maxsize=64)(self._make_chain)

    # -- lookup ----------------------------------------------------------------------------
    @property
    def today(self) -> dt.date:
        """The last simulated trading day."""
        return self.days[-1]

    def underlying(self, ticker: str) -> Underlying:
        """The simulated underlying called ``ticker`` (``I:SPX`` or ``SPX`` both work).

        Raises
        ------
        InvalidInputError
            No such underlying.
        """
        try:
            return self.universe[self._by_ticker[ticker]]
        except KeyError:
            raise InvalidInputError(f"unknown underlying {ticker!r}", ticker=ticker) from None

    def day_index(self, day: dt.date) -> int:
        """Index of a trading day; raises :class:`InvalidInputError` outside the simulation."""
        try:
            return self._day_index[day]
        except KeyError:
            raise InvalidInputError(f"{day} is not a simulated trading day", day=day) from None

    # -- paths -----------------------------------------------------------------------------
    def _simulate_paths(self) -> None:
        n, days = len(self.universe), len(self.days)
        market_rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 10_000]))
        market = market_rng.standard_normal(days)
        # Each name draws from its own stream, so adding names leaves the others unchanged.
        z_vol = np.empty((n, 3, days))
        z_own = np.empty((n, days))
        z_bar = np.empty((n, 3, days))
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, i]))
            z_vol[i] = rng.standard_normal((3, days))
            z_own[i] = rng.standard_normal(days)
            z_bar[i] = np.abs(rng.standard_normal((3, days)))
        base_vol = np.array([u.volatility for u in self.universe])
        q = np.array([u.dividend_yield for u in self.universe])
        is_stock = np.array([u.kind == "stock" for u in self.universe])
        index = np.arange(n)
        # Log-volatility mean-reverts with a two-month half-life and a stationary spread of about
        # 0.29 (xi / sqrt(2 kappa)), near what VIX and single-name implied vols show: levels
        # roam from roughly half to twice the name's base volatility, not to extremes.
        kappa, xi = 4.0, 0.8
        self._factor = np.zeros((n, days))
        self._close = np.zeros((n, days))
        x = np.zeros(n)
        s = np.array([u.spot for u in self.universe])
        for d in range(days):
            if d > 0:
                sigma = base_vol * np.exp(x)
                shock = -0.7 * z_vol[:, 0, d] + np.sqrt(1 - 0.49) * (
                    0.6 * market[d] + 0.8 * z_own[:, d]
                )
                earnings = is_stock & ((d - 1 + 7 * index) % _EARNINGS_EVERY == 20)
                jump = np.where(
                    earnings, 3.0 * base_vol * np.sqrt(_TRADING_DT) * z_vol[:, 1, d], 0.0
                )
                s = s * np.exp(
                    (0.04 - q - 0.5 * sigma**2) * _TRADING_DT
                    + sigma * np.sqrt(_TRADING_DT) * shock
                    + jump
                )
                x = x - kappa * x * _TRADING_DT + xi * np.sqrt(_TRADING_DT) * z_vol[:, 0, d]
            self._factor[:, d] = x
            self._close[:, d] = s
        daily = base_vol[:, None] * np.exp(self._factor) * np.sqrt(_TRADING_DT)
        previous = np.concatenate([self._close[:, :1], self._close[:, :-1]], axis=1)
        open_ = previous * np.exp(0.2 * daily * z_vol[:, 2, :])
        high = np.maximum(open_, self._close) * np.exp(0.5 * daily * z_bar[:, 0, :])
        low = np.minimum(open_, self._close) * np.exp(-0.5 * daily * z_bar[:, 1, :])
        scale = np.where(is_stock, 1.0, 10.0)[:, None]
        volume = np.round(5e6 * np.exp(0.5 * z_bar[:, 2, :]) * scale)
        self._bars = np.stack([open_, high, low, self._close, volume], axis=-1)
        rates_rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 20_000]))
        steps = rates_rng.standard_normal((2, days)) * np.sqrt(_TRADING_DT) * 0.006
        self._rate_level = 0.040 + np.cumsum(steps[0])
        self._rate_slope = 0.003 + np.cumsum(steps[1])

    def spot(self, ticker: str, day: dt.date) -> float:
        """The underlying's price at the snapshot time of ``day`` (its close path)."""
        return float(
            self._close[self._by_ticker[self.underlying(ticker).ticker], self.day_index(day)]
        )

    def day_bar(self, ticker: str, day: dt.date) -> tuple[float, float, float, float, float]:
        """Open, high, low, close and volume of the underlying on ``day``."""
        i = self._by_ticker[self.underlying(ticker).ticker]
        o, h, low, c, v = self._bars[i, self.day_index(day)]
        return float(o), float(h), float(low), float(c), float(v)

    def rate_curve(self, day: dt.date) -> RateCurve:
        """The true zero curve on ``day``."""
        d = self.day_index(day)
        return RateCurve(level=float(self._rate_level[d]), slope=float(self._rate_slope[d]))

    def dividends(self, ticker: str) -> list[Dividend]:
        """Cash dividends of a stock over the simulation plus three years (none for index/ETF)."""
        u = self.underlying(ticker)
        if u.kind != "stock" or u.dividend_yield <= 0:
            return []
        i = self._by_ticker[u.ticker]
        amount = round(u.dividend_yield * u.spot / 4.0, 4)
        first = self.days[0] + dt.timedelta(days=(11 * i) % 91 + 5)
        end = self.days[-1] + dt.timedelta(days=3 * 365 + 30)
        out = []
        day = first
        while day <= end:
            ex = day + dt.timedelta(days=(7 - day.weekday()) % 7 if day.weekday() > 4 else 0)
            out.append(Dividend(u.ticker, ex, amount))
            day += dt.timedelta(days=91)
        return out

    def surface(self, ticker: str, day: dt.date) -> SurfaceTruth:
        """The true volatility surface of ``ticker`` on ``day``."""
        u = self.underlying(ticker)
        i = self._by_ticker[u.ticker]
        x = float(self._factor[i, self.day_index(day)])
        index_like = u.kind != "stock"
        event_time, event_variance = float("inf"), 0.0
        if u.kind == "stock":
            d = self.day_index(day)
            ahead = (20 - (d + 7 * i)) % _EARNINGS_EVERY
            event_time = (ahead + 0.5) / 252.0
            event_variance = (3.0 * u.volatility * np.sqrt(_TRADING_DT)) ** 2
        rho = float(np.clip((-0.7 if index_like else -0.35) - 0.25 * x, -0.95, 0.1))
        eta = 1.0 if index_like else 0.8
        short = u.volatility * float(np.exp(x))
        stress = self.config.stress
        if stress is not None:
            rho = float(np.clip(rho + stress.skew, -0.95, 0.95))
            eta = min(eta * stress.curvature, 2.0 / (1.0 + abs(rho)))
            short *= stress.short_volatility
            if stress.event_variance > 0:
                event_time, event_variance = stress.event_time, stress.event_variance
        return SurfaceTruth(
            short_volatility=short,
            long_volatility=u.volatility * 1.05,
            reversion_time=0.35,
            rho=rho,
            eta=eta,
            gamma=0.45,
            event_time=event_time,
            event_variance=event_variance,
        )

    # -- chains ----------------------------------------------------------------------------
    def chain(self, ticker: str, day: dt.date | None = None) -> ChainTruth:
        """The listed contracts of ``ticker`` on ``day`` (default: the last day), with truth."""
        u = self.underlying(ticker)
        when = self.today if day is None else day
        self.day_index(when)
        result: ChainTruth = self._chain(u.ticker, when)
        return result

    def _ladder(self, u: Underlying, day: dt.date, snapshot: dt.datetime) -> dict[str, Any]:
        spot = self.spot(u.ticker, day)
        surface = self.surface(u.ticker, day)
        roots, expiries, settlements, strikes, calls, times, shares = [], [], [], [], [], [], []
        live = []
        for listing in listings(u, day):
            instant = schema.settlement_instant(listing.expiry, listing.settlement)
            t = (instant - snapshot).total_seconds() / _YEAR_SECONDS
            if t > 0:
                atm = float(np.sqrt(surface.atm_total_variance(np.array([t]))[0] / t))
                live.append((listing, t, atm))
        target = self.config.synthetic_contracts
        step = None
        if target is not None and u.synthetic:
            spans = [float(np.ptp(strike_range(spot, atm, t))) for _, t, atm in live]
            # Each expiry lists about span / step + 1 strikes, each as a call and a put.
            step = max(round(2.0 * sum(spans) / max(target - 2 * len(live), 1), 2), 0.01)
        for listing, t, atm in live:
            if step is None:
                ladder = strike_ladder(spot, atm, t, u.kind)
            else:
                low, high = strike_range(spot, atm, t)
                ladder = np.round(
                    np.arange(np.ceil(low / step), np.floor(high / step) + 1) * step, 2
                )
            for is_call in (True, False):
                strikes.append(ladder)
                calls.append(np.full(ladder.size, is_call))
                times.append(np.full(ladder.size, t))
                shares.append(np.full(ladder.size, 100.0))
                roots += [listing.root] * ladder.size
                expiries += [listing.expiry] * ladder.size
                settlements += [listing.settlement] * ladder.size
        if u.adjusted:  # a 3-for-2 split left one series on 150 shares with a digit in its root
            listing = next(x for x in listings(u, day) if x.expiry > day + dt.timedelta(days=40))
            instant = schema.settlement_instant(listing.expiry, listing.settlement)
            t = (instant - snapshot).total_seconds() / _YEAR_SECONDS
            ladder = np.unique(
                np.round(strike_ladder(spot * 1.5, u.volatility, t, u.kind) / 1.5, 2)
            )
            for is_call in (True, False):
                strikes.append(ladder)
                calls.append(np.full(ladder.size, is_call))
                times.append(np.full(ladder.size, t))
                shares.append(np.full(ladder.size, 150.0))
                roots += [f"{u.symbol}1"] * ladder.size
                expiries += [listing.expiry] * ladder.size
                settlements += [listing.settlement] * ladder.size
        return {
            "spot": spot,
            "surface": surface,
            "root": np.array(roots, dtype=object),
            "expiry": np.array(expiries, dtype="datetime64[D]"),
            "settlement": np.array(settlements, dtype=object),
            "strike": np.concatenate(strikes),
            "is_call": np.concatenate(calls),
            "time": np.concatenate(times),
            "shares": np.concatenate(shares),
        }

    def _make_chain(self, ticker: str, day: dt.date) -> ChainTruth:
        u = self.underlying(ticker)
        i = self._by_ticker[u.ticker]
        d = self.day_index(day)
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, i, d, 1]))
        snapshot = _snapshot_instant(day, self.config.snapshot_time)
        snap_ns = np.datetime64(snapshot.replace(tzinfo=None), "ns")
        lad = self._ladder(u, day, snapshot)
        spot, surface = lad["spot"], lad["surface"]
        strike, is_call, t = lad["strike"], lad["is_call"], lad["time"]
        n = strike.size
        rate = self.rate_curve(day).zero_rate(t)
        if u.kind == "stock":
            q = np.zeros(n)
            pv = np.zeros(n)
            for div in self.dividends(u.ticker):
                tau = (div.ex_date - day).days / 365.0
                if tau > 0:
                    pv += np.where(tau <= t, div.cash_amount * np.exp(-rate * tau), 0.0)
        else:
            q, pv = np.full(n, u.dividend_yield), np.zeros(n)
        forward = (spot - pv) * np.exp((rate - q) * t)
        log_moneyness = np.log(strike / forward)
        vol = surface.implied_volatility(log_moneyness, t)
        spot_arr = np.full(n, spot)
        if u.exercise_style == "european":
            price = black_scholes_price(spot_arr, strike, t, rate, q, vol, is_call)
        else:
            price = american_crr_price(spot_arr, strike, t, rate, q, vol, is_call, pv)
        greeks = black_scholes_greeks(spot_arr - pv, strike, t, rate, q, vol, is_call)

        # -- quotes around the true price ------------------------------------------------------
        z = log_moneyness / (vol * np.sqrt(t))
        big_tick = 0.10 if u.kind == "index" else 0.05
        small_tick = 0.05 if u.kind == "index" else 0.01
        stale = rng.random(n) < 0.03
        age = np.where(stale, rng.uniform(1800, 10800, n), rng.uniform(0, 60, n))
        spot_move = spot * vol * np.sqrt(age / _YEAR_SECONDS) * rng.standard_normal(n)
        quoted = np.maximum(price + np.where(stale, greeks["delta"] * spot_move, 0.0), 0.0)
        tick = np.where(quoted < 3.0, small_tick, big_tick)
        wing = np.minimum(np.abs(z), 4.0)
        intrinsic = np.maximum(np.where(is_call, spot - strike, strike - spot), 0.0)
        extrinsic = np.maximum(quoted - intrinsic, 0.0)
        short = 1.0 + 0.5 / (1.0 + 52.0 * t)
        half = tick * 0.5 + 0.002 * quoted + extrinsic * (0.01 + 0.015 * wing) * short
        bid = _round_to_tick(quoted - half, tick, up=False)
        bid = np.where(bid < small_tick, 0.0, bid)
        ask = np.maximum(_round_to_tick(quoted + half, tick, up=True), small_tick)
        crossed = rng.random(n) < 0.002
        bid, ask = np.where(crossed, ask + tick, bid), np.where(crossed, bid, ask)
        quote_present = rng.random(n) >= 0.003
        stress = self.config.stress
        if stress is not None and stress.sparse_before > 0:
            # A stream of its own, so the regular quotes stay as they are.
            sparse_rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, i, d, 2]))
            thinned = (t < stress.sparse_before) & (sparse_rng.random(n) >= stress.sparse_keep)
            quote_present &= ~thinned
        bid_size = np.where(bid > 0, rng.integers(1, 500, n), 0).astype(np.float64)
        ask_size = rng.integers(1, 500, n).astype(np.float64)
        quote_time = snap_ns - (age * 1e9).astype("timedelta64[ns]")
        nan = np.full(n, np.nan)
        bid, ask = np.where(quote_present, bid, nan), np.where(quote_present, ask, nan)
        bid_size = np.where(quote_present, bid_size, nan)
        ask_size = np.where(quote_present, ask_size, nan)
        quote_time = np.where(quote_present, quote_time, np.datetime64("NaT", "ns"))

        # -- the vendor's IV and Greeks ---------------------------------------------------------
        solvable = (np.abs(greeks["delta"]) <= 0.97) & (rng.random(n) >= 0.01)
        vendor_iv = np.where(solvable, vol * (1.0 + 0.01 * rng.standard_normal(n)), np.nan)
        vendor = black_scholes_greeks(
            spot_arr - pv, strike, t, rate, q, np.where(solvable, vendor_iv, vol), is_call
        )
        vendor = {name: np.where(solvable, value, np.nan) for name, value in vendor.items()}

        # -- activity -----------------------------------------------------------------------------
        base_oi = {"index": 20_000.0, "etf": 8_000.0, "stock": 3_000.0}[u.kind]
        tickers = _option_tickers(lad["root"], lad["expiry"], is_call, strike)
        persistent = np.array([zlib.crc32(s.encode()) for s in tickers], dtype=np.float64)
        persistent = np.exp(1.2 * (persistent / 2**32 - 0.5) * 2.0)
        open_interest = np.round(
            base_oi * np.exp(-0.5 * z**2) / (1.0 + 2.0 * t) * persistent * rng.uniform(0.9, 1.1, n)
        )
        volume = open_interest * rng.uniform(0, 0.25, n) * (1.0 + 1.0 / (1.0 + 52.0 * t))
        volume = np.floor(volume * np.exp(-0.3 * z**2))
        unusual: list[UnusualActivity] = []
        candidates = np.flatnonzero(
            (np.abs(z) > 0.5)
            & (np.abs(z) < 2.5)
            & (t < 0.2)
            & (open_interest > 0)
            & (np.where(is_call, z > 0, z < 0))
        )
        if candidates.size and rng.random() < 0.15:
            pick = int(rng.choice(candidates))
            volume[pick] = max(np.round(open_interest[pick] * rng.uniform(4, 12)), 500.0)
            unusual.append(
                UnusualActivity(
                    day,
                    u.ticker,
                    str(tickers[pick]),
                    float(volume[pick]),
                    float(open_interest[pick]),
                )
            )
        traded_today = volume > 0
        old_trade = (~traded_today) & (rng.random(n) < 0.5)
        trade_present = traded_today | old_trade
        trade_age = np.where(
            traded_today, rng.uniform(60, 6 * 3600, n), rng.uniform(1, 5, n) * 86400.0
        )
        last_price = np.maximum(
            _round_to_tick(price * (1.0 + 0.02 * rng.standard_normal(n)), tick, up=False),
            small_tick,
        )
        last_time = snap_ns - (trade_age * 1e9).astype("timedelta64[ns]")
        columns: dict[str, npt.NDArray[Any]] = {
            schema.TICKER: tickers,
            schema.UNDERLYING: np.full(n, u.ticker, dtype=object),
            schema.ROOT: lad["root"],
            schema.EXPIRY: lad["expiry"],
            schema.SETTLEMENT: lad["settlement"],
            schema.STRIKE: strike,
            schema.RIGHT: np.where(is_call, schema.CALL, schema.PUT).astype(object),
            schema.EXERCISE_STYLE: np.full(n, u.exercise_style, dtype=object),
            schema.SHARES_PER_CONTRACT: lad["shares"],
            schema.BID: bid,
            schema.ASK: ask,
            schema.BID_SIZE: bid_size,
            schema.ASK_SIZE: ask_size,
            schema.QUOTE_TIME: quote_time,
            schema.LAST_PRICE: np.where(trade_present, last_price, np.nan),
            schema.LAST_SIZE: np.where(trade_present, rng.integers(1, 50, n), np.nan),
            schema.LAST_TIME: np.where(trade_present, last_time, np.datetime64("NaT", "ns")),
            schema.VOLUME: volume,
            schema.OPEN_INTEREST: open_interest,
            schema.VENDOR_IV: vendor_iv,
            schema.VENDOR_DELTA: vendor["delta"],
            schema.VENDOR_GAMMA: vendor["gamma"],
            schema.VENDOR_THETA: vendor["theta"],
            schema.VENDOR_VEGA: vendor["vega"],
            schema.UNDERLYING_PRICE: spot_arr,
            schema.UNDERLYING_TIME: np.full(n, snap_ns),
            schema.SNAPSHOT_TIME: np.full(n, snap_ns),
        }
        return ChainTruth(
            underlying=u,
            day=day,
            snapshot=snapshot,
            spot=spot,
            surface=surface,
            columns=columns,
            true_price=price,
            true_volatility=vol,
            forward=forward,
            rate=rate,
            dividend_yield=q,
            dividend_pv=pv,
            time_to_expiry=t,
            quote_present=quote_present,
            trade_present=trade_present,
            unusual=unusual,
        )

    def unusual_activity(self, day: dt.date) -> list[UnusualActivity]:
        """The planted unusual-activity events of every underlying on ``day``."""
        return [event for u in self.universe for event in self.chain(u.ticker, day).unusual]

    def expired_chain(self, ticker: str, as_of: dt.date) -> ChainTruth | None:
        """The chain 20 trading days before ``as_of``: the source of contracts expired by then."""
        d = self.day_index(as_of)
        return None if d == 0 else self.chain(ticker, self.days[max(d - 20, 0)])
