"""Implied volatility and volatility surfaces.

From one price to one volatility:

- :func:`implied_volatility_black`: Black-76 implied volatility on forwards.
- :func:`implied_volatility`: Black-Scholes-Merton implied volatility on spot, rate and yield.
- :func:`implied_volatility_american`: American implied volatility by inverting the binomial tree
  (cash dividends supported), for de-Americanizing single-stock quotes.
- :class:`IVStatus`: the per-element outcome codes all three return with ``return_status=True``.

From a chain to a surface (``docs/surfaces.md``):

- :func:`fit_surface`: one underlying's canonical chain -> its arbitrage-free surface Dataset;
  :func:`fit_surfaces` fans many underlyings out over a Dask client in batches.
- The steps, usable on their own: :func:`prepare_smiles` (cleaning with :class:`QuoteFlag`,
  parity forwards with :class:`ForwardStatus`, de-Americanization with known
  :class:`CashDividends` when given), :func:`fit_svi` per expiry
  (raw SVI, butterfly-free), :func:`fit_essvi` across expiries (calendar-free by construction).
- Checks: :func:`check_butterfly` (Durrleman's g) and :func:`check_calendar`.
- :class:`SurfaceQuery`: implied volatility at any (expiry or tenor, strike, log-moneyness or
  delta) of a fitted surface.
"""

from periscope.volatility.american import implied_volatility_american
from periscope.volatility.arbitrage import (
    ButterflyCheck,
    CalendarCheck,
    check_butterfly,
    check_calendar,
    dense_k_grid,
    durrleman_g,
    lee_wing_bound_holds,
)
from periscope.volatility.cleaning import DEFAULT_CLEANING, CleaningConfig, QuoteFlag
from periscope.volatility.deamericanize import CashDividends, early_exercise_premium
from periscope.volatility.essvi import EssviSurface, fit_essvi
from periscope.volatility.fanout import fit_surfaces
from periscope.volatility.forwards import ForwardStatus, parity_forward
from periscope.volatility.implied import implied_volatility, implied_volatility_black
from periscope.volatility.query import SurfaceQuery
from periscope.volatility.quotes import PreparedChain, european_equivalent, prepare_smiles
from periscope.volatility.rates import ZeroCurve
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.status import IVStatus
from periscope.volatility.surface import fit_surface
from periscope.volatility.svi import (
    SliceStatus,
    SviFit,
    SviJw,
    SviParams,
    fit_svi,
    from_jw,
    repair_butterfly_jw,
    svi_derivatives,
    svi_total_variance,
    to_jw,
)

__all__ = [
    "DEFAULT_CLEANING",
    "ButterflyCheck",
    "CalendarCheck",
    "CashDividends",
    "CleaningConfig",
    "EssviSurface",
    "ForwardStatus",
    "IVStatus",
    "PreparedChain",
    "QuoteFlag",
    "SliceStatus",
    "SmileQuotes",
    "SurfaceQuery",
    "SviFit",
    "SviJw",
    "SviParams",
    "ZeroCurve",
    "check_butterfly",
    "check_calendar",
    "dense_k_grid",
    "durrleman_g",
    "early_exercise_premium",
    "european_equivalent",
    "fit_essvi",
    "fit_surface",
    "fit_surfaces",
    "fit_svi",
    "from_jw",
    "implied_volatility",
    "implied_volatility_american",
    "implied_volatility_black",
    "lee_wing_bound_holds",
    "parity_forward",
    "prepare_smiles",
    "repair_butterfly_jw",
    "svi_derivatives",
    "svi_total_variance",
    "to_jw",
]
