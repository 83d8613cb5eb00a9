"""One expiry's cleaned quotes in implied-volatility terms: what the smile fitters consume.

Quote preparation (cleaning, forwards, inversion, de-Americanization) produces one
:class:`SmileQuotes` per expiry; the SVI and eSSVI fitters read nothing else. Keeping this seam
narrow lets either side change without the other noticing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SmileQuotes:
    """The out-of-the-money quotes of one expiry that survived cleaning, sorted by strike.

    Attributes
    ----------
    expiry
        The expiry date (``datetime64[D]``).
    time_to_expiry
        Years, ACT/365, to the settlement instant.
    forward, discount_factor
        Implied from put-call parity (or the rate curve); ``k = ln(strike / forward)``.
    strike, log_moneyness
        Per quote, ascending.
    iv_bid, iv_mid, iv_ask
        Black implied volatilities (decimals) of the European-equivalent bid, mid and ask prices.
        ``iv_bid`` is NaN where the bid is zero or below the no-arbitrage bound; ``iv_mid`` is
        always finite (quotes without one are dropped before this point).
    vega
        Black vega of the mid (per 1.00 of volatility, undiscounted, forward measure).
    is_call
        The side each quote came from (calls above the forward, puts below).
    """

    expiry: np.datetime64
    time_to_expiry: float
    forward: float
    discount_factor: float
    strike: FloatArray
    log_moneyness: FloatArray
    iv_bid: FloatArray
    iv_mid: FloatArray
    iv_ask: FloatArray
    vega: FloatArray
    is_call: BoolArray

    @property
    def size(self) -> int:
        """Number of quotes."""
        return int(self.strike.size)

    @property
    def total_variance_mid(self) -> FloatArray:
        """``w = σ_mid² T`` per quote."""
        return np.asarray(self.iv_mid**2 * self.time_to_expiry, dtype=np.float64)
