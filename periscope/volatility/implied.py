"""Implied volatility of European options: Black (on forwards) and Black-Scholes-Merton (on spot).

Both wrappers validate and broadcast their arguments, then run one numba loop from
:mod:`periscope.volatility._kernels` (a "Let's Be Rational"-class solver, Jäckel 2016). The
kernel never raises: an element without a volatility gets NaN and an :class:`IVStatus` code.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from periscope._arrays import FloatArray, prepare_inputs
from periscope.volatility import _kernels as _k
from periscope.volatility.status import IVStatus  # noqa: F401 (named in the docstrings)

__all__ = ["StatusArray", "implied_volatility", "implied_volatility_black"]

StatusArray = npt.NDArray[np.int8]
"""Per-element :class:`IVStatus` codes as ``int8``; ``status == IVStatus.OK`` works elementwise."""


@overload
def implied_volatility_black(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    discount_factor: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: Literal[False] = ...,
) -> FloatArray: ...


@overload
def implied_volatility_black(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    discount_factor: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: Literal[True],
) -> tuple[FloatArray, StatusArray]: ...


def implied_volatility_black(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    discount_factor: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: bool = False,
) -> FloatArray | tuple[FloatArray, StatusArray]:
    r"""Black-76 implied volatility of European calls and puts on a forward.

    Finds :math:`\sigma` with

    .. math::

        \text{price} = D\,\theta\,\bigl(F\,\Phi(\theta d_1) - K\,\Phi(\theta d_2)\bigr),\quad
        d_{1,2} = \frac{\ln(F/K)}{\sigma\sqrt T} \pm \tfrac12\sigma\sqrt T,

    :math:`\theta = +1` for a call, :math:`-1` for a put. The option is reduced to an
    out-of-the-money call in normalized units (in-the-money ones through put-call parity, so
    only their time value is inverted), and the total deviation :math:`\sigma\sqrt T` is found by
    at most a few order-four Householder steps on logarithmic objectives (two in almost all
    cases) from rational/asymptotic initial guesses, with a normalized Black function accurate
    to rounding in every regime (erfcx and asymptotic forms for deep out-of-the-money prices down
    to 1e-300, a Taylor series for small :math:`\sigma\sqrt T`).

    Parameters
    ----------
    price
        Option price today (discounted, in the currency of ``forward``), >= 0.
    forward
        Forward (or futures) price for the option's expiry, > 0.
    strike
        Strike price, > 0.
    time_to_expiry
        Years to expiry, >= 0 (see Notes for 0).
    discount_factor
        Price today of one unit of currency paid at expiry, > 0 (e.g. :math:`e^{-rT}`).
    is_call
        True (or 1) for a call, False (or 0) for a put.
    return_status
        Also return the per-element :class:`IVStatus` codes.

    All array arguments broadcast against each other.

    Returns
    -------
    volatility : numpy.ndarray
        Annualized Black volatility as a decimal (0.2 is 20 %), float64, broadcast shape; NaN
        where the status is not OK.
    status : numpy.ndarray
        Only with ``return_status=True``: ``int8`` codes of :class:`IVStatus` (compare with
        ``status == IVStatus.OK``, or map with ``IVStatus(code)``).

    Raises
    ------
    InvalidInputError
        An argument is not numeric, ``is_call`` is not boolean, or the shapes do not broadcast;
        the message and ``error.context["argument"]`` name the argument.

    Notes
    -----
    Per element, in this order:

    - a NaN or infinite input, ``forward <= 0``, ``strike <= 0``, ``time_to_expiry < 0``,
      ``discount_factor <= 0`` or ``price < 0``: NaN, ``INVALID_INPUT``;
    - ``price`` at or above its upper bound :math:`DF` (call) or :math:`DK` (put): NaN,
      ``ABOVE_MAXIMUM``;
    - ``price`` below the discounted forward intrinsic :math:`D\max(\theta(F-K), 0)` by more
      than 4 ulps of :math:`D\max(F, K)`: NaN, ``BELOW_INTRINSIC``;
    - ``price`` at intrinsic (within that rounding allowance; a zero price of an
      out-of-the-money option included): 0.0, ``OK``;
    - ``time_to_expiry == 0`` and ``price`` above intrinsic: no finite volatility gives time
      value without time: NaN, ``ABOVE_MAXIMUM``;
    - otherwise the volatility, ``OK`` (``NOT_CONVERGED`` with NaN is a safeguard that the
      tests have not seen triggered).

    Accuracy: relative error of order 1e-15 times the condition number
    :math:`\beta / (s\,\partial\beta/\partial s)` of the normalized out-of-the-money price
    :math:`\beta` in :math:`s = \sigma\sqrt T`, so below 1e-12 wherever the price carries
    information about the volatility; prices re-computed from the result agree to about 1e-15
    relative. For a deep in-the-money option or a very short expiry the time value can be lost to
    rounding against intrinsic; then the result is as good as that time value.

    References
    ----------
    Jäckel, P. (2015, version of 25 March 2016), "Let's Be Rational", Wilmott 2015(75):40-53;
    Black, F. (1976), "The pricing of commodity contracts", J. Financial Economics 3(1-2).

    Examples
    --------
    Round trip of a 20 % one-year at-the-money call and a 95-strike put:

    >>> import math
    >>> from periscope.volatility import IVStatus, implied_volatility_black
    >>> vol, status = implied_volatility_black(
    ...     [7.965567455405804, 7.4012716943620305], 100.0, [100.0, 95.0], 1.0, 1.0,
    ...     [True, False], return_status=True)
    >>> vol.round(12)
    array([0.2 , 0.25])
    >>> bool((status == IVStatus.OK).all())
    True
    """
    p = prepare_inputs(
        {
            "price": price,
            "forward": forward,
            "strike": strike,
            "time_to_expiry": time_to_expiry,
            "discount_factor": discount_factor,
        },
        {"is_call": is_call},
    )
    f = p.floats
    size = f["price"].shape[0]
    volatility = np.empty(size, dtype=np.float64)
    status = np.empty(size, dtype=np.int8)
    _k.implied_volatility_black_kernel(
        f["price"],
        f["forward"],
        f["strike"],
        f["time_to_expiry"],
        f["discount_factor"],
        p.flags["is_call"],
        volatility,
        status,
    )
    vol_out = volatility.reshape(p.shape)
    if return_status:
        return vol_out, status.reshape(p.shape)
    return vol_out


def _black_iv_flat(
    price: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    discount_factor: FloatArray,
    is_call: npt.NDArray[np.bool_],
) -> tuple[FloatArray, StatusArray]:
    """:func:`implied_volatility_black` on aligned 1-D arrays of one length, without the
    validation and broadcasting (for internal loops that call it many times on arrays they
    built themselves): ``(volatility, status)``."""
    size = price.shape[0]
    volatility = np.empty(size, dtype=np.float64)
    status = np.empty(size, dtype=np.int8)

    def flat(values: FloatArray) -> FloatArray:
        return np.ascontiguousarray(values, dtype=np.float64)

    _k.implied_volatility_black_kernel(
        flat(price), flat(forward), flat(strike), flat(time_to_expiry), flat(discount_factor),
        np.ascontiguousarray(is_call, dtype=np.bool_), volatility, status,
    )  # fmt: skip
    return volatility, status


@overload
def implied_volatility(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: Literal[False] = ...,
) -> FloatArray: ...


@overload
def implied_volatility(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: Literal[True],
) -> tuple[FloatArray, StatusArray]: ...


def implied_volatility(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    return_status: bool = False,
) -> FloatArray | tuple[FloatArray, StatusArray]:
    r"""Black-Scholes-Merton implied volatility of European calls and puts on a spot price.

    With continuously compounded ``rate`` :math:`r` and ``dividend_yield`` :math:`q` the option
    is a Black-76 option on the forward :math:`F = S e^{(r-q)T}` discounted by
    :math:`D = e^{-rT}`; this function forms both per element and solves as
    :func:`implied_volatility_black` does (same method, accuracy and statuses).

    Parameters
    ----------
    price
        Option price today, >= 0, in the currency of ``spot``.
    spot
        Spot price of the underlying, > 0.
    strike
        Strike price, > 0.
    time_to_expiry
        Years to expiry, >= 0 (0: see :func:`implied_volatility_black`).
    rate
        Continuously compounded risk-free rate as a decimal (0.05 is 5 %); any finite value.
    dividend_yield
        Continuously compounded dividend (or carry) yield as a decimal; any finite value.
    is_call
        True (or 1) for a call, False (or 0) for a put.
    return_status
        Also return the per-element :class:`IVStatus` codes (``int8``).

    All array arguments broadcast against each other.

    Returns
    -------
    volatility : numpy.ndarray
        Annualized volatility as a decimal, float64, broadcast shape; NaN where not OK.
    status : numpy.ndarray
        Only with ``return_status=True``: ``int8`` :class:`IVStatus` codes.

    Raises
    ------
    InvalidInputError
        An argument is not numeric, ``is_call`` is not boolean, or the shapes do not broadcast;
        the message names the argument.

    Notes
    -----
    The bounds are those of the forward form: a call is below intrinsic under
    :math:`S e^{-qT} - K e^{-rT}` (the discounted forward intrinsic, not :math:`S - K`) and
    above its maximum at :math:`S e^{-qT}`; a put's maximum is :math:`K e^{-rT}`. A NaN or
    infinite ``rate`` or ``dividend_yield`` gives ``INVALID_INPUT``.

    References
    ----------
    Jäckel, P. (2016), "Let's Be Rational"; Hull, J. C., "Options, Futures, and Other
    Derivatives", chapter "The Black-Scholes-Merton model", implied-volatility example.

    Examples
    --------
    Hull's example: S = 21, K = 20, r = 10 %, three months, call worth 1.875.

    >>> from periscope.volatility import implied_volatility
    >>> float(implied_volatility(1.875, 21.0, 20.0, 0.25, 0.10, 0.0, True).round(6))
    0.234513
    """
    p = prepare_inputs(
        {
            "price": price,
            "spot": spot,
            "strike": strike,
            "time_to_expiry": time_to_expiry,
            "rate": rate,
            "dividend_yield": dividend_yield,
        },
        {"is_call": is_call},
    )
    f = p.floats
    size = f["price"].shape[0]
    volatility = np.empty(size, dtype=np.float64)
    status = np.empty(size, dtype=np.int8)
    _k.implied_volatility_kernel(
        f["price"],
        f["spot"],
        f["strike"],
        f["time_to_expiry"],
        f["rate"],
        f["dividend_yield"],
        p.flags["is_call"],
        volatility,
        status,
    )
    vol_out = volatility.reshape(p.shape)
    if return_status:
        return vol_out, status.reshape(p.shape)
    return vol_out
