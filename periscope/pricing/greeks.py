"""Containers of Greeks returned by the pricing functions.

Conventions shared by every pricing function (all per unit, never per cent or per day):

- delta = ∂V/∂S; gamma = ∂²V/∂S² (per unit of spot, squared).
- vega = ∂V/∂σ per 1.00 of volatility (divide by 100 for "per vol point").
- theta = ∂V/∂t per year of calendar time t, i.e. -∂V/∂T with T the time to expiry (divide by
  365 for a per-day figure); negative when the option loses value as time passes.
- rho = ∂V/∂r and dividend_rho = ∂V/∂q per 1.00 of rate or yield (divide by 100 for per cent).
- vanna = ∂delta/∂σ = ∂vega/∂S; volga (vomma) = ∂vega/∂σ, per 1.00 of volatility.
- charm = ∂delta/∂t, veta = ∂vega/∂t, color = ∂gamma/∂t, all per year of calendar time.
- speed = ∂gamma/∂S; zomma = ∂gamma/∂σ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FirstOrderGreeks:
    """Price and the Greeks a trading screen shows, all with the broadcast shape of the inputs.

    The first-order sensitivities plus gamma, which costs one division once vega's density
    term is known. See the module docstring for units and sign conventions.

    Attributes
    ----------
    price
        Option value, in the currency of spot and strike.
    delta
        ∂V/∂S.
    gamma
        ∂²V/∂S².
    vega
        ∂V/∂σ per 1.00 of volatility.
    theta
        ∂V/∂t per year of calendar time (= -∂V/∂T).
    rho
        ∂V/∂r per 1.00 of rate.
    dividend_rho
        ∂V/∂q per 1.00 of dividend yield.
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray
    dividend_rho: FloatArray


@dataclass(frozen=True, slots=True)
class Greeks(FirstOrderGreeks):
    """Price and all thirteen Greeks, up to third order.

    Attributes
    ----------
    vanna
        ∂delta/∂σ = ∂²V/∂S∂σ, per 1.00 of volatility.
    volga
        ∂vega/∂σ = ∂²V/∂σ², per 1.00 of volatility (squared).
    charm
        ∂delta/∂t per year of calendar time (= -∂delta/∂T).
    veta
        ∂vega/∂t per year of calendar time (= -∂vega/∂T).
    speed
        ∂gamma/∂S = ∂³V/∂S³.
    zomma
        ∂gamma/∂σ = ∂³V/∂S²∂σ, per 1.00 of volatility.
    color
        ∂gamma/∂t per year of calendar time (= -∂gamma/∂T).

    The inherited attributes are those of :class:`FirstOrderGreeks`.
    """

    vanna: FloatArray
    volga: FloatArray
    charm: FloatArray
    veta: FloatArray
    speed: FloatArray
    zomma: FloatArray
    color: FloatArray
