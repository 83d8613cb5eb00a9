"""Quote cleaning: why each contract of a chain is (not) used for a smile.

Every contract gets a :class:`QuoteFlag` bit mask; 0 means the quote enters the smile fit. Bad
rows never raise: they get a bit and are counted. :func:`flag_quotes` sets the bits that need only
the quote itself (missing, zero bid, crossed, too wide, stale, non-standard, expired);
:mod:`periscope.volatility.quotes` adds the ones that need the forward (``NOT_OTM``,
``BELOW_INTRINSIC``, ``IV_FAILED``, ``NO_FORWARD``, ``FEW_QUOTES``).

Thresholds live in :class:`CleaningConfig` (frozen, with documented defaults).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from periscope.schema import DEFAULT_STALE_AFTER

__all__ = [
    "DEFAULT_CLEANING",
    "QUOTE_PROBLEMS",
    "CleaningConfig",
    "FlagArray",
    "QuoteFlag",
    "count_flags",
    "flag_quotes",
]

FlagArray = npt.NDArray[np.uint16]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_YEAR_SECONDS: Final = 365.0 * 86400.0


class QuoteFlag(enum.IntFlag):
    """Bits of the per-contract cleaning mask; 0 means the quote is used in the smile fit.

    MISSING_QUOTE
        No usable ask: NaN, zero or negative (a bid alone is no price).
    ZERO_BID
        The bid is zero or missing while an ask exists: the mid is not a price anyone trades at.
    CROSSED
        Bid above ask.
    TOO_WIDE
        ``(ask - bid) / mid`` above :attr:`CleaningConfig.max_relative_spread`.
    STALE
        The quote is older than the underlying's price (or the snapshot) by more than
        :attr:`CleaningConfig.stale_after`: it was priced off another spot.
    NONSTANDARD
        Not a plain call or put on the standard deliverable (adjusted series with another
        ``shares_per_contract``, ``other`` rights, Bermudan exercise), or a duplicate of a
        better-quoted contract with the same expiry, settlement, strike and right.
    EXPIRED
        Time to the settlement instant at or below :attr:`CleaningConfig.min_time_to_expiry`.
    NO_FORWARD
        The expiry has no forward (no put-call pair and no neighbour to carry one from).
    NOT_OTM
        The in-the-money side: the smile uses puts below the forward and calls above it.
    BELOW_INTRINSIC
        The mid is below the (European-equivalent) intrinsic value: no volatility exists.
    IV_FAILED
        The mid's implied volatility could not be found for another reason (above the maximum,
        invalid inputs, tree inversion failure).
    FEW_QUOTES
        The expiry kept fewer than :attr:`CleaningConfig.min_quotes` quotes: no smile for it.
    """

    MISSING_QUOTE = 1
    ZERO_BID = 2
    CROSSED = 4
    TOO_WIDE = 8
    STALE = 16
    NONSTANDARD = 32
    EXPIRED = 64
    NO_FORWARD = 128
    NOT_OTM = 256
    BELOW_INTRINSIC = 512
    IV_FAILED = 1024
    FEW_QUOTES = 2048


QUOTE_PROBLEMS: Final = (
    QuoteFlag.MISSING_QUOTE
    | QuoteFlag.ZERO_BID
    | QuoteFlag.CROSSED
    | QuoteFlag.TOO_WIDE
    | QuoteFlag.STALE
    | QuoteFlag.NONSTANDARD
    | QuoteFlag.EXPIRED
)
"""The bits :func:`flag_quotes` sets: a quote with any of them is not a price to learn from."""


@dataclass(frozen=True, slots=True)
class CleaningConfig:
    """Thresholds of quote cleaning and forward inference.

    Attributes
    ----------
    max_relative_spread
        Largest ``(ask - bid) / mid`` kept (default 1.0: the ask at most three times the bid).
        Wide wing quotes still carry information; the fitter down-weights them by their IV
        spread.
    stale_after
        Largest age of a quote relative to the underlying's price time (the snapshot time
        when that is missing); default 15 minutes, the schema's own ``STALE`` threshold.
    min_time_to_expiry
        Years; expiries at or below it are ``EXPIRED`` (default one hour: a 0DTE option keeps
        its smile until the last hour of the session).
    standard_shares
        The standard deliverable in shares per contract (default 100).
    min_quotes
        Fewest OTM quotes with a mid volatility for an expiry to get a smile (default 5).
    forward_pairs
        Most near-the-money put-call pairs used for an expiry's forward (default 12).
    forward_band
        Pairs further than this many ATM standard deviations (σ√T, from the ATM straddle) from
        the money are not used for the forward (default 1.5): far from the money spreads are
        wide and American quotes carry large early-exercise premiums.
    min_forward_pairs
        Fewest pairs for a parity regression; with fewer the forward comes from the pairs
        there are or from the neighbouring expiries, and is flagged (default 3).
    huber_threshold
        Huber's ``c`` in units of the robust residual scale (default 1.345: 95 % efficiency
        under Gaussian noise).
    tree_steps
        Leisen-Reimer steps of the trees that de-Americanize quotes (odd; default 101: the
        premium, a difference of two values on one lattice, is then within ~0.2 vol bp of an
        801-step tree's for 99 % of out-of-the-money quotes with a yield, where it is
        Richardson-extrapolated, ~1 bp with cash dividends, where it is not). The forward's
        rounds before the last use at most 51.
    deamericanize_rounds
        Most fixed-point rounds of a quote's de-Americanization (default 3); a quote stops
        once a round moves its volatility by less than 0.5 bp. The forward's rounds before the
        last take one (warm-started from the previous round's premiums).
    american_iterations
        Rounds of "de-Americanize the near-the-money pairs, re-fit the forward" (default 4; from
        4 on, the round before the last takes an Aitken step, for the discount factors too).
    premium_uncertainty
        Share of a pair's early-exercise premium added to each side of its de-Americanized
        quote for the forward fit (default 1.0): the premium is a model quantity, and pairs
        deep in the money, whose premium is large, should weigh little.
    dividend_model
        How de-Americanization pays the dividends implied by the forwards: ``"cash"``
        (default: escrowed cash dividends, as single stocks pay them) or ``"yield"`` (a
        continuous yield, the usual model of ETFs and baskets). The chain does not say which
        kind its underlying is; the caller does (reference data). Quotes do not tell them apart
        reliably: both models satisfy parity with the same forward, and they differ only in
        the early-exercise premium (by up to ~5e-4 of the forward at a year).
    """

    max_relative_spread: float = 1.0
    stale_after: np.timedelta64 = DEFAULT_STALE_AFTER
    min_time_to_expiry: float = 1.0 / (365.0 * 24.0)
    standard_shares: float = 100.0
    min_quotes: int = 5
    forward_pairs: int = 12
    forward_band: float = 1.5
    min_forward_pairs: int = 3
    huber_threshold: float = 1.345
    tree_steps: int = 101
    deamericanize_rounds: int = 3
    american_iterations: int = 4
    premium_uncertainty: float = 1.0
    dividend_model: Literal["cash", "yield"] = "cash"


DEFAULT_CLEANING: Final = CleaningConfig()


def flag_quotes(
    bid: FloatArray,
    ask: FloatArray,
    quote_time: npt.NDArray[np.datetime64],
    reference_time: npt.NDArray[np.datetime64],
    time_to_expiry: FloatArray,
    standard: BoolArray,
    config: CleaningConfig = DEFAULT_CLEANING,
) -> FlagArray:
    """The quote-only bits of :class:`QuoteFlag` for each contract.

    Parameters
    ----------
    bid, ask
        Per share; NaN when absent.
    quote_time, reference_time
        When the quote was last updated, and the time of the underlying's price it is compared
        with (``datetime64``; NaT skips the staleness test).
    time_to_expiry
        Years to the settlement instant.
    standard
        True for plain calls and puts on the standard deliverable.
    config
        Thresholds.

    Returns
    -------
    numpy.ndarray
        ``uint16`` bit masks.
    """
    flags = np.zeros(bid.shape, dtype=np.uint16)

    def mark(condition: BoolArray, flag: QuoteFlag) -> None:
        flags[condition] |= np.uint16(flag)

    has_ask = np.isfinite(ask) & (ask > 0)
    has_bid = np.isfinite(bid) & (bid > 0)
    mark(~has_ask, QuoteFlag.MISSING_QUOTE)
    mark(has_ask & ~has_bid, QuoteFlag.ZERO_BID)
    two_sided = has_ask & has_bid
    mark(two_sided & (bid > ask), QuoteFlag.CROSSED)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = (ask - bid) / (0.5 * (ask + bid))
    mark(two_sided & (bid <= ask) & (relative > config.max_relative_spread), QuoteFlag.TOO_WIDE)
    known = ~np.isnat(quote_time) & ~np.isnat(reference_time)
    age = np.where(known, reference_time - quote_time, np.timedelta64(0, "ns"))
    mark(known & (age > config.stale_after), QuoteFlag.STALE)
    mark(~standard, QuoteFlag.NONSTANDARD)
    mark(~(time_to_expiry > config.min_time_to_expiry), QuoteFlag.EXPIRED)
    return flags


def count_flags(flags: npt.NDArray[np.unsignedinteger]) -> dict[str, int]:
    """Contracts carrying each bit, by lower-case flag name, plus ``used`` (mask 0) and
    ``total``. Bits overlap, so the counts need not add up to ``total``."""
    counts = {
        str(flag.name).lower(): int(np.count_nonzero(flags & np.uint16(flag))) for flag in QuoteFlag
    }
    counts["used"] = int(np.count_nonzero(flags == 0))
    counts["total"] = int(flags.size)
    return counts
