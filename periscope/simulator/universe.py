"""The simulated universe: which underlyings exist and their long-run parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["index", "etf", "stock"]
SYNTHETIC_PREFIX = "SYN"


@dataclass(frozen=True, slots=True)
class Underlying:
    """One simulated underlying.

    Attributes
    ----------
    ticker
        As the API spells it: ``"AAPL"``, or ``"I:SPX"`` for an index.
    kind
        ``index`` (European, cash-settled, continuous dividend yield), ``etf`` (American,
        continuous yield) or ``stock`` (American, discrete quarterly cash dividends).
    spot
        Price on the first simulated day.
    volatility
        Long-run at-the-money volatility (decimal).
    dividend_yield
        Annual dividend yield (decimal); paid continuously for index/ETF, as four equal cash
        dividends a year for stocks.
    roots
        Option roots; the first is the standard (monthly) root, a second one (``SPXW``) carries
        the PM-settled weeklies and dailies of an index.
    dailies, weeklies
        Whether daily (every trading day, incl. 0DTE) and weekly (Friday) expiries are listed.
    adjusted
        Whether a series of adjusted contracts (root with a digit, 150 shares) is listed too.
    """

    ticker: str
    kind: Kind
    spot: float
    volatility: float
    dividend_yield: float
    roots: tuple[str, ...]
    dailies: bool = False
    weeklies: bool = True
    adjusted: bool = False

    @property
    def exercise_style(self) -> str:
        """``european`` for indices, ``american`` otherwise."""
        return "european" if self.kind == "index" else "american"

    @property
    def synthetic(self) -> bool:
        """Whether the name is one of the generated ``SYN0001``... (not the default universe)."""
        return self.ticker.startswith(SYNTHETIC_PREFIX)

    @property
    def symbol(self) -> str:
        """The ticker without an ``I:`` prefix."""
        return self.ticker.removeprefix("I:")


DEFAULT_UNIVERSE: tuple[Underlying, ...] = (
    Underlying("I:SPX", "index", 5900.0, 0.15, 0.013, ("SPX", "SPXW"), dailies=True),
    Underlying("SPY", "etf", 590.0, 0.15, 0.013, ("SPY",), dailies=True),
    Underlying("QQQ", "etf", 510.0, 0.19, 0.006, ("QQQ",), dailies=True),
    Underlying("IWM", "etf", 225.0, 0.22, 0.012, ("IWM",), dailies=True),
    Underlying("DIA", "etf", 430.0, 0.14, 0.017, ("DIA",)),
    Underlying("AAPL", "stock", 230.0, 0.25, 0.0045, ("AAPL",)),
    Underlying("MSFT", "stock", 420.0, 0.23, 0.007, ("MSFT",)),
    Underlying("NVDA", "stock", 135.0, 0.48, 0.0003, ("NVDA",)),
    Underlying("TSLA", "stock", 250.0, 0.58, 0.0, ("TSLA",)),
    Underlying("AMZN", "stock", 200.0, 0.30, 0.0, ("AMZN",)),
    Underlying("META", "stock", 580.0, 0.33, 0.0035, ("META",)),
    Underlying("GOOGL", "stock", 170.0, 0.29, 0.005, ("GOOGL",)),
    Underlying("AMD", "stock", 140.0, 0.45, 0.0, ("AMD",)),
    Underlying("NFLX", "stock", 700.0, 0.34, 0.0, ("NFLX",)),
    Underlying("JPM", "stock", 220.0, 0.22, 0.022, ("JPM",), weeklies=False),
    Underlying("XOM", "stock", 115.0, 0.24, 0.033, ("XOM",), weeklies=False),
    Underlying("BA", "stock", 160.0, 0.36, 0.0, ("BA",), weeklies=False),
    Underlying("DIS", "stock", 95.0, 0.27, 0.01, ("DIS",), weeklies=False),
    Underlying("INTC", "stock", 22.0, 0.42, 0.02, ("INTC",), weeklies=False, adjusted=True),
    Underlying("KO", "stock", 62.0, 0.16, 0.03, ("KO",), weeklies=False),
)


def make_universe(count: int, seed: int) -> tuple[Underlying, ...]:
    """The first ``count`` names: the default universe, then synthetic stocks ``SYN0001``...

    Synthetic names draw spot, volatility and yield from a generator seeded by ``seed`` alone,
    so a larger universe extends a smaller one without changing it.
    """
    if count <= len(DEFAULT_UNIVERSE):
        return DEFAULT_UNIVERSE[:count]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 999]))
    extra = []
    for i in range(count - len(DEFAULT_UNIVERSE)):
        ticker = f"{SYNTHETIC_PREFIX}{i + 1:04d}"
        spot = float(np.round(np.exp(rng.uniform(np.log(8.0), np.log(800.0))), 2))
        vol = float(np.round(rng.uniform(0.18, 0.7), 3))
        dividend = float(np.round(rng.choice([0.0, rng.uniform(0.0, 0.05)]), 4))
        extra.append(Underlying(ticker, "stock", spot, vol, dividend, (ticker,), weeklies=False))
    return DEFAULT_UNIVERSE + tuple(extra)
