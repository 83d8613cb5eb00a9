"""Monte Carlo pricing: models, payoffs, settings and the one-call :func:`monte_carlo_price`.

A run is planned as batches (:mod:`periscope.pricing.batches`): :func:`monte_carlo_price` runs them
in this process; a Dask client can map :func:`~periscope.pricing.batches.run_batch` over the same
plan and :func:`~periscope.pricing.batches.combine` the results, with bit-identical output.

Examples
--------
>>> model = GeometricBrownianMotion(spot=100.0, rate=0.05, dividend_yield=0.0, volatility=0.2)
>>> payoff = European(strike=100.0, time_to_expiry=1.0, is_call=True)
>>> result = monte_carlo_price(model, payoff, n_paths=2**15, n_steps=1, seed=7)
>>> abs(result.price - 10.4506) < 4 * result.standard_error
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from periscope.errors import InvalidInputError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "American",
    "ArithmeticAsian",
    "Barrier",
    "European",
    "GeometricBrownianMotion",
    "Heston",
    "Model",
    "MonteCarloResult",
    "MonteCarloSettings",
    "Payoff",
    "monte_carlo_price",
]

DEFAULT_BATCH_SIZE = 2**14
"""Paths per batch. Pseudo-random batches hold O(batch) outputs (the kernels draw their normals
chunk by chunk); a Sobol batch of 2¹⁴ paths by 252 steps holds 33 MB of normals."""

Sampler = Literal["pseudo", "sobol"]


@dataclass(frozen=True, slots=True)
class GeometricBrownianMotion:
    """Black-Scholes dynamics dS/S = (r − q) dt + σ dW, simulated exactly in ln S.

    ``spot`` > 0; ``rate``, ``dividend_yield`` continuously compounded decimals; ``volatility``
    ≥ 0 decimal per √year.
    """

    spot: float
    rate: float
    dividend_yield: float
    volatility: float


@dataclass(frozen=True, slots=True)
class Heston:
    """Heston (1993): dS/S = (r − q) dt + √v dW₁, dv = κ(θ − v) dt + ξ√v dW₂, d⟨W₁,W₂⟩ = ρ dt.

    ``initial_variance`` v₀ and ``long_variance`` θ are variances (0.04 = 20% vol);
    ``mean_reversion`` κ > 0 per year; ``vol_of_variance`` ξ > 0; ``correlation`` ρ in [−1, 1].
    """

    spot: float
    rate: float
    dividend_yield: float
    initial_variance: float
    mean_reversion: float
    long_variance: float
    vol_of_variance: float
    correlation: float


@dataclass(frozen=True, slots=True)
class European:
    """max(ω(S_T − K), 0) paid at T (years); ω = +1 for a call."""

    strike: float
    time_to_expiry: float
    is_call: bool


@dataclass(frozen=True, slots=True)
class ArithmeticAsian:
    """max(ω(A − K), 0) at T, A the average of S at the ``n_steps`` dates T/n, 2T/n, ..., T.

    Under GBM the geometric-average option (closed form, Kemna & Vorst 1990) is the control.
    """

    strike: float
    time_to_expiry: float
    is_call: bool


@dataclass(frozen=True, slots=True)
class Barrier:
    """Continuously monitored knock-out or knock-in option without rebate.

    ``barrier`` > 0; ``knock_in`` False for knock-out; up or down follows from the barrier being
    above or below the spot. Crossings between steps are accounted for by the Brownian-bridge
    survival probability, so few steps suffice under GBM.
    """

    strike: float
    time_to_expiry: float
    is_call: bool
    barrier: float
    knock_in: bool = False


@dataclass(frozen=True, slots=True)
class American:
    """Bermudan approximation of an American option: exercisable at each of the ``n_steps`` dates
    after today, priced by Longstaff-Schwartz (GBM only)."""

    strike: float
    time_to_expiry: float
    is_call: bool


Model = GeometricBrownianMotion | Heston
Payoff = European | ArithmeticAsian | Barrier | American


@dataclass(frozen=True, slots=True)
class MonteCarloSettings:
    """How to simulate.

    Attributes
    ----------
    n_paths
        Total paths, antithetic mirrors included.
    n_steps
        Time steps to expiry (the Asian fixings, barrier checks, exercise dates).
    seed
        Root seed: same seed, same settings, same result wherever the batches run.
    antithetic
        Pair each path with its mirror −Z (then n_paths and batch_size must be even).
    control_variate
        Regress out a control with known mean: the discounted terminal stock (European, Heston),
        the geometric Asian (arithmetic Asian, GBM), the vanilla (barrier, American; GBM).
    sampler
        ``"pseudo"`` (numpy's PCG64 and ziggurat, one stream per batch, drawn inside the
        compiled kernels) or ``"sobol"`` (scrambled Sobol with a Brownian bridge;
        each batch an independent scrambling, the standard error taken across batches).
    batch_size
        Paths per batch; a power of two for Sobol.
    n_calibration_paths
        Longstaff-Schwartz regression paths, drawn from their own stream (separate from pricing).
    basis_degree
        Degree of the polynomial in S/K for the Longstaff-Schwartz continuation value.
    """

    n_paths: int = 2**16
    n_steps: int = 1
    seed: int = 0
    antithetic: bool = True
    control_variate: bool = True
    sampler: Sampler = "pseudo"
    batch_size: int = DEFAULT_BATCH_SIZE
    n_calibration_paths: int = 2**14
    basis_degree: int = 3

    def __post_init__(self) -> None:
        for name in ("n_paths", "n_steps", "batch_size", "n_calibration_paths", "basis_degree"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer", argument=name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError("seed must be a non-negative integer", argument="seed")
        if self.sampler not in ("pseudo", "sobol"):
            raise InvalidInputError(f"unknown sampler {self.sampler!r}", argument="sampler")
        if self.antithetic and (self.n_paths % 2 or self.batch_size % 2):
            raise InvalidInputError(
                "antithetic variates need even n_paths and batch_size", argument="n_paths"
            )
        if self.sampler == "sobol":
            if self.batch_size & (self.batch_size - 1):
                raise InvalidInputError(
                    "Sobol batches must be a power of two", argument="batch_size"
                )
            if self.n_paths % self.batch_size or self.n_paths // self.batch_size < 2:
                raise InvalidInputError(
                    "Sobol needs n_paths to be at least two whole batches (the standard error "
                    "comes from independent scramblings)",
                    argument="n_paths",
                )


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    """A Monte Carlo estimate: ``price``, its ``standard_error`` and the ``n_paths`` simulated."""

    price: float
    standard_error: float
    n_paths: int


def validate(model: Model, payoff: Payoff) -> None:
    """Reject out-of-domain models and payoffs with a message naming the field."""
    checks: list[tuple[str, bool]] = [
        ("spot", model.spot > 0.0),
        ("rate", math.isfinite(model.rate)),
        ("dividend_yield", math.isfinite(model.dividend_yield)),
        ("strike", payoff.strike > 0.0),
        ("time_to_expiry", payoff.time_to_expiry > 0.0 and math.isfinite(payoff.time_to_expiry)),
    ]
    if isinstance(model, GeometricBrownianMotion):
        checks.append(("volatility", model.volatility >= 0.0 and math.isfinite(model.volatility)))
    else:
        checks += [
            ("initial_variance", model.initial_variance >= 0.0),
            ("mean_reversion", model.mean_reversion > 0.0),
            ("long_variance", model.long_variance > 0.0),
            ("vol_of_variance", model.vol_of_variance > 0.0),
            ("correlation", -1.0 <= model.correlation <= 1.0),
        ]
        if isinstance(payoff, American):
            raise InvalidInputError(
                "Longstaff-Schwartz is implemented for geometric Brownian motion only "
                "(a Heston regression would need the variance as a state)",
                argument="payoff",
            )
    if isinstance(payoff, Barrier):
        checks.append(("barrier", payoff.barrier > 0.0 and payoff.barrier != model.spot))
    for name, ok in checks:
        if not ok:
            raise InvalidInputError(f"{name} is out of its domain", argument=name)


def monte_carlo_price(
    model: Model,
    payoff: Payoff,
    *,
    n_paths: int = 2**16,
    n_steps: int = 1,
    seed: int = 0,
    antithetic: bool = True,
    control_variate: bool = True,
    sampler: Sampler = "pseudo",
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_calibration_paths: int = 2**14,
) -> MonteCarloResult:
    """Price ``payoff`` under ``model`` by Monte Carlo, batch by batch in this process.

    Parameters
    ----------
    model
        :class:`GeometricBrownianMotion` or :class:`Heston` (QE scheme, Andersen 2008).
    payoff
        :class:`European`, :class:`ArithmeticAsian`, :class:`Barrier` or :class:`American`.
    n_paths, n_steps, seed, antithetic, control_variate, sampler, batch_size, n_calibration_paths
        See :class:`MonteCarloSettings`.

    Returns
    -------
    MonteCarloResult
        Price (currency units), standard error, paths simulated. Reproducible: the same
        arguments give the same bits, and so does mapping
        :func:`~periscope.pricing.batches.run_batch` over
        :func:`~periscope.pricing.batches.plan_batches` on any number of workers. Changing
        ``batch_size`` changes the random streams (each batch has its own).

    Raises
    ------
    InvalidInputError
        Out-of-domain model or payoff fields, inconsistent settings, or an American payoff under
        Heston.

    Notes
    -----
    Memory is O(batch_size) for pseudo-random numbers (drawn inside the kernels, a few dozen
    paths at a time) and O(batch_size × n_steps) for Sobol, plus the Longstaff-Schwartz
    calibration paths, whatever ``n_paths``. The Longstaff-Schwartz price uses a policy fitted
    on separate paths, so it is a low-biased estimate of the Bermudan value.
    """
    from periscope.pricing.batches import combine, plan_batches, run_batch
    from periscope.pricing.lsm import fit_exercise_policy

    settings = MonteCarloSettings(
        n_paths=n_paths,
        n_steps=n_steps,
        seed=seed,
        antithetic=antithetic,
        control_variate=control_variate,
        sampler=sampler,
        batch_size=batch_size,
        n_calibration_paths=n_calibration_paths,
    )
    validate(model, payoff)
    policy = None
    if isinstance(payoff, American):
        assert isinstance(model, GeometricBrownianMotion)  # validate() rejects Heston
        policy = fit_exercise_policy(model, payoff, settings)
    specs = plan_batches(settings.n_paths, settings.batch_size, settings.seed)
    return combine([run_batch(spec, model, payoff, settings, policy) for spec in specs])
