"""The simulated API on loopback for the server tests."""

from collections.abc import Iterator

import pytest

from periscope.simulator import Market, SimulationConfig, Simulator, SimulatorServer


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    market = Market(SimulationConfig(seed=5, n_underlyings=6, n_days=30))
    with SimulatorServer(Simulator(market, api_key="k1")) as running:
        yield running
