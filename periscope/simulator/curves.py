"""The simulator's true curves: the risk-free rate curve and the volatility surface.

Volatility surface
------------------
Per underlying and day the truth is an SSVI surface (Gatheral & Jacquier, "Arbitrage-free SVI
volatility surfaces", Quantitative Finance 14(1), 2014, eq. 4.1) in log-moneyness
``k = ln(K / F)`` with ``F`` the forward to the expiry:

    w(k, T) = θ_T / 2 · (1 + ρ φ k + sqrt((φ k + ρ)² + 1 - ρ²)),
    φ(θ) = η / (θ^γ (1 + θ)^(1 - γ))                     (power-law φ, their eq. 4.5)

``w`` is total implied variance σ²T. The ATM total variance θ_T follows a Heston-like term
structure of expected variance, ``σ_atm(T)² = σ_∞² + (σ_0² - σ_∞²)(1 - e^{-T/τ})/(T/τ)``, where the
short-end level σ_0 moves day by day with a stochastic factor, plus an earnings variance bump for
expiries after an earnings date. ρ (skew) moves with the same factor (more negative when
volatility is high). With η(1 + |ρ|) ≤ 2 the slices are free of butterfly arbitrage, and θ_T
increasing in T makes them free of calendar arbitrage (their Theorem 4.2 / Corollary 4.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Tenors of the treasury-yields endpoint, in years, with the API's field names.
TREASURY_TENORS: tuple[tuple[str, float], ...] = (
    ("yield_1_month", 1 / 12),
    ("yield_3_month", 0.25),
    ("yield_6_month", 0.5),
    ("yield_1_year", 1.0),
    ("yield_2_year", 2.0),
    ("yield_3_year", 3.0),
    ("yield_5_year", 5.0),
    ("yield_7_year", 7.0),
    ("yield_10_year", 10.0),
    ("yield_20_year", 20.0),
    ("yield_30_year", 30.0),
)


@dataclass(frozen=True, slots=True)
class RateCurve:
    """Continuously compounded zero rates, Nelson-Siegel form.

    ``r(t) = level + slope · (1 - e^{-t/λ}) / (t/λ)``; the short rate is ``level + slope``.
    """

    level: float
    slope: float
    decay: float = 1.5

    def zero_rate(self, time_to_expiry: FloatArray | float) -> FloatArray:
        """The zero rate (decimal, continuous compounding) to ``time_to_expiry`` years."""
        t = np.maximum(np.asarray(time_to_expiry, dtype=np.float64), 1e-8) / self.decay
        return np.asarray(self.level + self.slope * (1.0 - np.exp(-t)) / t, dtype=np.float64)

    def par_yield(self, tenor: float) -> float:
        """The treasury constant-maturity yield (decimal) this curve implies, as published.

        Bond-equivalent, semi-annual: up to a year a bill, ``y = 2 (e^{r/2} - 1)`` (the zero
        rate re-expressed with semi-annual compounding); beyond, the coupon of a par bond paying
        twice a year, ``y = 2 (1 - D(T)) / sum_i D(t_i)`` over its coupon dates t_i <= T.
        """
        if tenor <= 1.0:
            return float(2.0 * np.expm1(0.5 * float(self.zero_rate(tenor))))
        dates = np.arange(tenor, 0.0, -0.5)[::-1]
        discounts = np.exp(-self.zero_rate(dates) * dates)
        return float(2.0 * (1.0 - discounts[-1]) / discounts.sum())


@dataclass(frozen=True, slots=True)
class SurfaceTruth:
    """The true volatility surface of one underlying on one day (see the module docstring).

    Attributes
    ----------
    short_volatility, long_volatility
        σ_0 and σ_∞ of the ATM term structure (decimals).
    reversion_time
        τ in years.
    rho, eta, gamma
        SSVI skew correlation, curvature scale and power.
    event_time, event_variance
        Time (years from the snapshot) of the next earnings event and the total variance it
        adds to every expiry after it; ``event_time`` is ``inf`` when there is none.
    """

    short_volatility: float
    long_volatility: float
    reversion_time: float
    rho: float
    eta: float
    gamma: float
    event_time: float = float("inf")
    event_variance: float = 0.0

    def atm_total_variance(self, time_to_expiry: FloatArray) -> FloatArray:
        """θ_T, the ATM total implied variance (decimal² · years)."""
        t = np.maximum(np.asarray(time_to_expiry, dtype=np.float64), 1e-10)
        x = t / self.reversion_time
        mean_variance = self.long_volatility**2 + (
            self.short_volatility**2 - self.long_volatility**2
        ) * (-np.expm1(-x) / x)
        bump = np.where(t >= self.event_time, self.event_variance, 0.0)
        return np.asarray(mean_variance * t + bump, dtype=np.float64)

    def total_variance(self, log_moneyness: FloatArray, time_to_expiry: FloatArray) -> FloatArray:
        """w(k, T), total implied variance at ``k = ln(K/F)``."""
        theta = self.atm_total_variance(time_to_expiry)
        phi = self.eta / (theta**self.gamma * (1.0 + theta) ** (1.0 - self.gamma))
        k = np.asarray(log_moneyness, dtype=np.float64)
        root = np.sqrt((phi * k + self.rho) ** 2 + 1.0 - self.rho**2)
        return np.asarray(0.5 * theta * (1.0 + self.rho * phi * k + root), dtype=np.float64)

    def implied_volatility(
        self, log_moneyness: FloatArray, time_to_expiry: FloatArray
    ) -> FloatArray:
        """σ(k, T) = sqrt(w / T), the true volatility (decimal, annualised)."""
        t = np.maximum(np.asarray(time_to_expiry, dtype=np.float64), 1e-10)
        return np.asarray(np.sqrt(self.total_variance(log_moneyness, t) / t), dtype=np.float64)
