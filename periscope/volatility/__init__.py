"""Implied volatility.

- :func:`implied_volatility_black`: Black-76 implied volatility on forwards.
- :func:`implied_volatility`: Black-Scholes-Merton implied volatility on spot, rate and yield.
- :func:`implied_volatility_american`: American implied volatility by inverting the binomial tree
  (cash dividends supported), for de-Americanizing single-stock quotes.
- :class:`IVStatus`: the per-element outcome codes both return with ``return_status=True``.
"""

from periscope.volatility.american import implied_volatility_american
from periscope.volatility.implied import implied_volatility, implied_volatility_black
from periscope.volatility.status import IVStatus

__all__ = [
    "IVStatus",
    "implied_volatility",
    "implied_volatility_american",
    "implied_volatility_black",
]
