"""Per-element outcome codes of the implied-volatility solvers.

Solvers never raise inside a batch: each element gets a volatility (NaN when none exists) and one
of these codes. Kernels return the integer values; wrappers hand back ``IVStatus`` arrays.
"""

from __future__ import annotations

from enum import IntEnum


class IVStatus(IntEnum):
    """Why an implied volatility is what it is.

    OK
        A volatility was found (0.0 when the price equals the forward intrinsic value).
    BELOW_INTRINSIC
        The price is below the (discounted forward) intrinsic value: no volatility reproduces it.
    ABOVE_MAXIMUM
        The price is at or above its upper bound (discounted forward for a call, discounted strike
        for a put): only an infinite volatility reaches it.
    INVALID_INPUT
        An input is NaN, infinite or out of its domain (non-positive forward, strike or discount
        factor, negative time or price).
    NOT_CONVERGED
        An iterative solver stopped before reaching its tolerance; the volatility is NaN.
    """

    OK = 0
    BELOW_INTRINSIC = 1
    ABOVE_MAXIMUM = 2
    INVALID_INPUT = 3
    NOT_CONVERGED = 4
