"""Risk: sensitivity grids of listed contracts (price and Greeks over spot, volatility and time).

- :func:`sensitivity_grid`: one underlying's contracts over a spot-shift x vol-shift x horizon
  grid, volatilities from a fitted surface with sticky-strike or sticky-moneyness dynamics.
- :func:`chain_sensitivity_grid`: the same for a canonical chain and its fitted surface Dataset,
  or a chain of many underlyings and their stacked surfaces (float32 on request).
- :func:`surface_volatility`: a surface Dataset as a (log-moneyness, time) -> volatility function.
"""

from periscope.risk.grid import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_SPOT_SHIFTS,
    DEFAULT_VOL_SHIFTS,
    GRID_VARIABLES,
    HORIZON,
    SPOT_SHIFT,
    VOL_SHIFT,
    VolatilityFunction,
    sensitivity_grid,
)
from periscope.risk.surface import chain_sensitivity_grid, surface_volatility

__all__ = [
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_SPOT_SHIFTS",
    "DEFAULT_VOL_SHIFTS",
    "GRID_VARIABLES",
    "HORIZON",
    "SPOT_SHIFT",
    "VOL_SHIFT",
    "VolatilityFunction",
    "chain_sensitivity_grid",
    "sensitivity_grid",
    "surface_volatility",
]
