"""The built-in simulated market and its Massive-compatible HTTP API.

:class:`Market` is a deterministic synthetic options market with known ground truth (see
:mod:`periscope.simulator.market`); :class:`Simulator` serves it with Massive's paths and JSON;
:class:`SimulatorServer` runs that on 127.0.0.1 in a thread; :func:`write_day_aggregates` writes
the flat-file layout. ``python -m periscope.simulator --port N`` serves it from the command line.
"""

from periscope.simulator.curves import RateCurve, SurfaceTruth
from periscope.simulator.faults import Fault, FaultPlan
from periscope.simulator.flatfiles import write_day_aggregates
from periscope.simulator.market import (
    STRESS_SCENARIOS,
    ChainTruth,
    Dividend,
    Market,
    SimulationConfig,
    StressScenario,
    UnusualActivity,
)
from periscope.simulator.running import SimulatorServer
from periscope.simulator.server import Simulator
from periscope.simulator.universe import DEFAULT_UNIVERSE, Underlying

__all__ = [
    "DEFAULT_UNIVERSE",
    "STRESS_SCENARIOS",
    "ChainTruth",
    "Dividend",
    "Fault",
    "FaultPlan",
    "Market",
    "RateCurve",
    "SimulationConfig",
    "Simulator",
    "SimulatorServer",
    "StressScenario",
    "SurfaceTruth",
    "Underlying",
    "UnusualActivity",
    "write_day_aggregates",
]
