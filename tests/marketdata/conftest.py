"""A small simulated market served over loopback for the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from periscope.marketdata import ClientOptions, MassiveClient
from periscope.simulator import Market, SimulationConfig, Simulator, SimulatorServer

FAST = ClientOptions(
    connect_timeout=2.0,
    read_timeout=2.0,
    max_retries=3,
    backoff_seconds=0.01,
    max_backoff_seconds=0.05,
    requests_per_second=None,
)


@pytest.fixture(scope="session")
def market() -> Market:
    return Market(SimulationConfig(seed=11, n_underlyings=6, n_days=30))


@pytest.fixture(scope="session")
def server(market: Market) -> Iterator[SimulatorServer]:
    simulator = Simulator(market, api_key="test-key")
    simulator.warm()
    with SimulatorServer(simulator) as running:
        yield running


@pytest.fixture
def simulator(server: SimulatorServer) -> Iterator[Simulator]:
    server.simulator.faults.clear()
    yield server.simulator
    server.simulator.faults.clear()


@pytest.fixture
def client(server: SimulatorServer, simulator: Simulator) -> Iterator[MassiveClient]:
    with MassiveClient(api_key=server.api_key, base_url=server.base_url, options=FAST) as c:
        yield c
