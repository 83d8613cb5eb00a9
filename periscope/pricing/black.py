"""Black-76 prices of European options on a forward (futures, or a spot through its forward).

Volatility surfaces work on forwards, so this is the form the surface code prices with; it runs
one numba loop from :mod:`periscope.pricing._kernels.black_scholes`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from periscope._arrays import FloatArray, prepare_inputs
from periscope.pricing._kernels import black_scholes as _k


def black_price(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    discount_factor: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    r"""Black-76 value of European calls and puts on a forward.

    .. math::

        V = D\,\omega\,\bigl(F N(\omega d_1) - K N(\omega d_2)\bigr),\quad
        d_{1,2} = \frac{\ln(F/K)}{\sigma\sqrt T} \pm \tfrac12\sigma\sqrt T,

    with :math:`\omega = +1` for a call and :math:`-1` for a put. With
    :math:`F = S e^{(r-q)T}` and :math:`D = e^{-rT}` it equals
    :func:`~periscope.pricing.black_scholes_price`.

    Parameters
    ----------
    forward
        Forward (or futures) price of the underlying for the option's expiry, > 0.
    strike
        Strike price, > 0, in the currency of ``forward``.
    time_to_expiry
        Years to expiry, >= 0.
    discount_factor
        Price today of one unit of currency paid at the option's payment date, > 0
        (e.g. :math:`e^{-rT}`).
    volatility
        Annualized (Black) volatility of the forward as a decimal, >= 0.
    is_call
        True (or 1) for a call, False (or 0) for a put.

    All arguments broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Option values, float64, with the broadcast shape.

    Raises
    ------
    InvalidInputError
        An argument is not numeric, ``is_call`` is not boolean, or the shapes do not broadcast;
        the message and ``error.context["argument"]`` name the argument.

    Notes
    -----
    An element with a NaN or infinite input, ``forward <= 0``, ``strike <= 0``,
    ``time_to_expiry < 0``, ``discount_factor <= 0`` or ``volatility < 0`` gives NaN. Zero
    total variance (``time_to_expiry == 0`` or ``volatility == 0``) gives the discounted
    intrinsic :math:`D\max(\omega(F - K), 0)`.

    References
    ----------
    Black, F. (1976), "The pricing of commodity contracts", J. Financial Economics 3(1-2);
    Haug, E. G. (2007), "The Complete Guide to Option Pricing Formulas", 2nd ed., 1.1.2.

    Examples
    --------
    Haug's futures option (F = K = 19, r = 10 %, nine months, σ = 28 %): call and put agree.

    >>> import math
    >>> from periscope.pricing import black_price
    >>> black_price(19.0, 19.0, 0.75, math.exp(-0.10 * 0.75), 0.28, [True, False]).round(4)
    array([1.7011, 1.7011])
    """
    p = prepare_inputs(
        {
            "forward": forward,
            "strike": strike,
            "time_to_expiry": time_to_expiry,
            "discount_factor": discount_factor,
            "volatility": volatility,
        },
        {"is_call": is_call},
    )
    f = p.floats
    out = np.empty(f["forward"].shape[0], dtype=np.float64)
    _k.black_price(
        f["forward"],
        f["strike"],
        f["time_to_expiry"],
        f["discount_factor"],
        f["volatility"],
        p.flags["is_call"],
        out,
    )
    return out.reshape(p.shape)
