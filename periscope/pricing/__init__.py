"""Option pricing: Black-Scholes-Merton and Black-76 prices and Greeks, binomial trees (American,
cash dividends) and Monte Carlo (GBM, Heston QE; European, Asian, barrier, Longstaff-Schwartz)."""

from periscope.pricing.batches import BatchResult, BatchSpec, combine, plan_batches, run_batch
from periscope.pricing.binomial import TreeGreeks, binomial_greeks, binomial_price
from periscope.pricing.black import black_price
from periscope.pricing.black_scholes import black_scholes_greeks, black_scholes_price
from periscope.pricing.greeks import FirstOrderGreeks, Greeks
from periscope.pricing.montecarlo import (
    American,
    ArithmeticAsian,
    Barrier,
    European,
    GeometricBrownianMotion,
    Heston,
    MonteCarloResult,
    MonteCarloSettings,
    monte_carlo_price,
)

__all__ = [
    "American",
    "ArithmeticAsian",
    "Barrier",
    "BatchResult",
    "BatchSpec",
    "European",
    "FirstOrderGreeks",
    "GeometricBrownianMotion",
    "Greeks",
    "Heston",
    "MonteCarloResult",
    "MonteCarloSettings",
    "TreeGreeks",
    "binomial_greeks",
    "binomial_price",
    "black_price",
    "black_scholes_greeks",
    "black_scholes_price",
    "combine",
    "monte_carlo_price",
    "plan_batches",
    "run_batch",
]
