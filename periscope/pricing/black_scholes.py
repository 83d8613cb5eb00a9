"""Black-Scholes-Merton prices and Greeks of European options on a spot with a dividend yield.

Each function validates and broadcasts its arguments (raising
:class:`~periscope.errors.InvalidInputError` for whole-call problems), runs one numba loop from
:mod:`periscope.pricing._kernels.black_scholes`, and hands back arrays of the broadcast shape.
Per-element problems never raise; see the notes of :func:`black_scholes_price`.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from periscope._arrays import BoolArray, FloatArray, PreparedInputs, prepare_inputs
from periscope.errors import InvalidInputError
from periscope.pricing._kernels import black_scholes as _k
from periscope.pricing.greeks import FirstOrderGreeks, Greeks


def _prepare(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> PreparedInputs:
    return prepare_inputs(
        {
            "spot": spot,
            "strike": strike,
            "time_to_expiry": time_to_expiry,
            "rate": rate,
            "dividend_yield": dividend_yield,
            "volatility": volatility,
        },
        {"is_call": is_call},
    )


def _kernel_args(
    p: PreparedInputs,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray]:
    f = p.floats
    return (
        f["spot"],
        f["strike"],
        f["time_to_expiry"],
        f["rate"],
        f["dividend_yield"],
        f["volatility"],
        p.flags["is_call"],
    )


def black_scholes_price(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    r"""Black-Scholes-Merton value of European calls and puts.

    .. math::

        V = \omega\,\bigl(S e^{-qT} N(\omega d_1) - K e^{-rT} N(\omega d_2)\bigr),\quad
        d_{1,2} = \frac{\ln(S/K) + (r - q)T}{\sigma\sqrt T} \pm \tfrac12\sigma\sqrt T,

    with :math:`\omega = +1` for a call and :math:`-1` for a put.

    Parameters
    ----------
    spot
        Price of the underlying, > 0.
    strike
        Strike price, > 0, in the currency of ``spot``.
    time_to_expiry
        Years to expiry (ACT/365 by default in Periscope), >= 0.
    rate
        Continuously compounded risk-free rate, as a decimal (0.05 for 5 %). Any finite value.
    dividend_yield
        Continuously compounded dividend yield (or foreign rate), as a decimal. Any finite value.
    volatility
        Annualized volatility as a decimal (0.2 for 20 %), >= 0.
    is_call
        True (or 1) for a call, False (or 0) for a put.

    All arguments broadcast against each other (scalars, arrays of any shape).

    Returns
    -------
    numpy.ndarray
        Option values, float64, with the broadcast shape (0-d for all-scalar input).

    Raises
    ------
    InvalidInputError
        An argument is not numeric, ``is_call`` is not boolean, or the shapes do not broadcast;
        the message and ``error.context["argument"]`` name the argument.

    Notes
    -----
    - An element with a NaN or infinite input, ``spot <= 0``, ``strike <= 0``,
      ``time_to_expiry < 0`` or ``volatility < 0`` gives NaN; the others are unaffected.
    - Zero total variance (``time_to_expiry == 0`` or ``volatility == 0``, precisely
      :math:`\sigma\sqrt T < 10^{-150}`) gives the deterministic limit, the discounted forward
      intrinsic :math:`e^{-rT}\max(\omega(F - K), 0)` with :math:`F = S e^{(r-q)T}`; at expiry
      that is the payoff :math:`\max(\omega(S - K), 0)`.
    - :math:`N` is evaluated with Cody's (1969) rational forms of erf/erfcx (see
      :mod:`periscope.pricing._kernels.elementary`), so far out-of-the-money values keep the
      relative accuracy of each leg (about 1e-14 against mpmath down to N ~ 1e-300); the
      subtraction of the two legs still loses digits when both are tiny and close (very deep
      out of the money at low total volatility).

    References
    ----------
    Black, F. and Scholes, M. (1973), "The pricing of options and corporate liabilities",
    J. Political Economy 81(3); Merton, R. C. (1973), "Theory of rational option pricing",
    Bell J. Econ. 4(1). Haug, E. G. (2007), "The Complete Guide to Option Pricing Formulas",
    2nd ed., section 1.1.6.

    Examples
    --------
    Hull's example (S = 42, K = 40, r = 10 %, σ = 20 %, six months):

    >>> from periscope.pricing import black_scholes_price
    >>> black_scholes_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, [True, False]).round(4)
    array([4.7594, 0.8086])
    """
    p = _prepare(spot, strike, time_to_expiry, rate, dividend_yield, volatility, is_call)
    out = np.empty(p.floats["spot"].shape[0], dtype=np.float64)
    _k.bsm_price(*_kernel_args(p), out)
    return out.reshape(p.shape)


@overload
def black_scholes_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    order: Literal[3] = ...,
) -> Greeks: ...


@overload
def black_scholes_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    order: Literal[1],
) -> FirstOrderGreeks: ...


def black_scholes_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_to_expiry: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend_yield: npt.ArrayLike,
    volatility: npt.ArrayLike,
    is_call: npt.ArrayLike,
    *,
    order: Literal[1, 3] = 3,
) -> FirstOrderGreeks | Greeks:
    r"""Black-Scholes-Merton price and Greeks of European calls and puts, in one pass.

    Parameters
    ----------
    spot, strike, time_to_expiry, rate, dividend_yield, volatility, is_call
        As for :func:`black_scholes_price` (domains, units, broadcasting).
    order
        ``3`` (default): price and all thirteen Greeks, a :class:`~periscope.pricing.Greeks`.
        ``1``: price, delta, gamma, vega, theta, rho and dividend rho only, a
        :class:`~periscope.pricing.FirstOrderGreeks`; about twice as fast.

    Returns
    -------
    Greeks or FirstOrderGreeks
        A frozen dataclass of float64 arrays with the broadcast shape. Units, per 1.00 (never
        per cent or per day): vega and volga per 1.00 of volatility; rho and dividend_rho per
        1.00 of rate and yield; theta, charm, veta and color per year of calendar time.

    Raises
    ------
    InvalidInputError
        As for :func:`black_scholes_price`; also for an ``order`` other than 1 or 3.

    Notes
    -----
    With :math:`a = S e^{-qT}`, :math:`b = K e^{-rT}`, :math:`w = \sigma\sqrt T`,
    :math:`\varphi` the normal density, :math:`g = \partial d_1/\partial T
    = (r - q)/w - d_2/(2T)` and calendar time :math:`t` (:math:`\partial_t = -\partial_T`):

    ============  =======================  ======================================================
    Greek         definition               formula
    ============  =======================  ======================================================
    delta         ∂V/∂S                    :math:`\omega e^{-qT} N(\omega d_1)`
    gamma         ∂²V/∂S²                  :math:`e^{-qT}\varphi(d_1)/(S w)`
    vega          ∂V/∂σ                    :math:`a\varphi(d_1)\sqrt T`
    theta         ∂V/∂t = -∂V/∂T           :math:`-a\varphi(d_1)\sigma/(2\sqrt T)
                                           + \omega(q a N(\omega d_1) - r b N(\omega d_2))`
    rho           ∂V/∂r                    :math:`\omega b T N(\omega d_2)`
    dividend_rho  ∂V/∂q                    :math:`-\omega a T N(\omega d_1)`
    vanna         ∂delta/∂σ                :math:`-e^{-qT}\varphi(d_1) d_2/\sigma`
    volga         ∂vega/∂σ                 :math:`\text{vega}\, d_1 d_2/\sigma`
    charm         ∂delta/∂t                :math:`\omega q e^{-qT}N(\omega d_1)
                                           - e^{-qT}\varphi(d_1)\, g`
    veta          ∂vega/∂t                 :math:`\text{vega}\,(q + (r-q)d_1/w
                                           - (1 + d_1 d_2)/(2T))`
    speed         ∂gamma/∂S                :math:`-\text{gamma}\,(1 + d_1/w)/S`
    zomma         ∂gamma/∂σ                :math:`\text{gamma}\,(d_1 d_2 - 1)/\sigma`
    color         ∂gamma/∂t                :math:`\text{gamma}\,(q + d_1 g + 1/(2T))`
    ============  =======================  ======================================================

    Limits. Invalid elements give NaN in every field. At zero total variance
    (``time_to_expiry == 0`` or ``volatility == 0``) the value is the deterministic discounted
    forward intrinsic and the Greeks are its derivatives: in the money (forward beyond the
    strike) delta = ω e^{-qT}, theta = ω(q a - r b), rho = ω b T, dividend_rho = -ω a T,
    charm = ω q e^{-qT} and every other Greek is 0; out of the money everything is 0. Exactly
    at the kink (forward == strike, e.g. spot == strike at expiry) delta, rho and dividend_rho
    are the midpoints of their one-sided values (delta = ±0.5 e^{-qT}, which is also the limit
    of the closed form), vega is its limit :math:`S e^{-qT}\sqrt{T}\,\varphi(0)`, and all other
    Greeks are NaN because they diverge (gamma, theta at expiry) or have no unique limit.

    References
    ----------
    Haug, E. G. (2007), "The Complete Guide to Option Pricing Formulas", 2nd ed., ch. 2
    (Greeks of the generalized Black-Scholes-Merton formula); every formula here was re-derived
    in calendar time and is checked against central finite differences in the test suite.

    Examples
    --------
    Hull's Greeks example (S = 49, K = 50, r = 5 %, σ = 20 %, 20 weeks):

    >>> from periscope.pricing import black_scholes_greeks
    >>> g = black_scholes_greeks(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.20, True)
    >>> [round(float(x), 4) for x in (g.price, g.delta, g.gamma, g.vega, g.theta, g.rho)]
    [2.4005, 0.5216, 0.0655, 12.1055, -4.3053, 8.907]
    >>> fast = black_scholes_greeks(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.20, True, order=1)
    >>> round(float(fast.delta), 4)
    0.5216
    """
    if order not in (1, 3):
        raise InvalidInputError(f"order must be 1 or 3, got {order!r}", argument="order")
    p = _prepare(spot, strike, time_to_expiry, rate, dividend_yield, volatility, is_call)
    size = p.floats["spot"].shape[0]
    if order == 1:
        out = np.empty((_k.FIRST_ORDER_ROWS, size), dtype=np.float64)
        _k.bsm_first_order_greeks(*_kernel_args(p), out)
        return FirstOrderGreeks(*(row.reshape(p.shape) for row in out))
    out = np.empty((_k.ALL_ROWS, size), dtype=np.float64)
    _k.bsm_greeks(*_kernel_args(p), out)
    return Greeks(*(row.reshape(p.shape) for row in out))
