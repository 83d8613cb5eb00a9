"""Where chains come from: Massive with a key, else the built-in simulator over loopback HTTP.

Both go through the same :class:`~periscope.marketdata.AsyncMassiveClient`; only the base URL and
the key differ. The simulated market ends on the most recent weekday, so expiries, time to
expiry and the run's date are those of today.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from periscope import schema
from periscope.settings import Settings
from periscope.simulator import Market, SimulationConfig, Simulator, SimulatorServer
from periscope.simulator.universe import DEFAULT_UNIVERSE, make_universe

logger = logging.getLogger(__name__)

# The universe of a run with a Massive key and no explicit list: liquid index, ETF and stock
# option names, in order of option volume (the first ``pipeline_universe_size`` are used).
DEFAULT_MASSIVE_UNIVERSE: tuple[str, ...] = (
    "SPY",
    "QQQ",
    "I:SPX",
    "IWM",
    "AAPL",
    "NVDA",
    "TSLA",
    "AMZN",
    "MSFT",
    "META",
    "AMD",
    "GOOGL",
    "NFLX",
    "DIA",
    "JPM",
    "XOM",
    "BA",
    "DIS",
    "INTC",
    "KO",
)


@dataclass(frozen=True, slots=True)
class MarketSource:
    """A market-data endpoint a task can reach: small and picklable (no open connections).

    The key is held as a plain string because the source crosses process boundaries (Dask
    workers); it is never logged (``repr`` hides it).
    """

    base_url: str
    api_key: str
    simulated: bool
    requests_per_second: float | None = None
    max_concurrency: int = 8

    def __repr__(self) -> str:
        kind = "simulated" if self.simulated else "massive"
        return f"MarketSource({kind}, {self.base_url})"


def last_weekday(now: dt.datetime | None = None) -> dt.date:
    """The most recent weekday in New York (today on a weekday)."""
    day = (now or dt.datetime.now(dt.UTC)).astimezone(schema.NEW_YORK).date()
    while day.weekday() > 4:
        day -= dt.timedelta(days=1)
    return day


def snapshot_clock(end: dt.date, now: dt.datetime | None = None) -> dt.time:
    """The simulated snapshot time: now during today's session, else just before the close.

    The client stamps chains with the fetch time, from which times to expiry are measured; a
    snapshot taken at that same moment keeps same-day expiries consistent.
    """
    local = (now or dt.datetime.now(dt.UTC)).astimezone(schema.NEW_YORK)
    if local.date() != end:
        return dt.time(15, 59)
    return min(max(local.time().replace(microsecond=0), dt.time(9, 31)), dt.time(15, 59))


def simulation_config(
    settings: Settings, n_underlyings: int, end: dt.date, now: dt.datetime | None = None
) -> SimulationConfig:
    """The simulated market's configuration: ``simulator_days`` weekdays ending on ``end``."""
    start = end
    for _ in range(settings.simulator_days - 1):
        start -= dt.timedelta(days=1)
        while start.weekday() > 4:
            start -= dt.timedelta(days=1)
    return SimulationConfig(
        seed=settings.simulator_seed,
        n_underlyings=n_underlyings,
        start=start,
        n_days=settings.simulator_days,
        snapshot_time=snapshot_clock(end, now),
        synthetic_contracts=settings.simulator_synthetic_contracts,
    )


def resolve_universe(settings: Settings, universe: list[str] | None = None) -> list[str]:
    """The underlyings of a run: ``universe``, else settings, else the default list."""
    if universe:
        return list(dict.fromkeys(universe))
    if settings.pipeline_universe:
        return list(dict.fromkeys(settings.pipeline_universe))
    size = settings.pipeline_universe_size
    if settings.massive_api_key is not None:
        return list(DEFAULT_MASSIVE_UNIVERSE[:size])
    # The simulated universe: the default names, then synthetic ones (see make_universe).
    return [u.ticker for u in make_universe(size, settings.simulator_seed)]


def market_size(universe: list[str]) -> int:
    """How many names a simulated market needs to list every name of ``universe``.

    Names are the simulator's default universe (``SPY``, ``I:SPX`` or ``SPX``...) and its
    synthetic stocks ``SYN0001``...; a market simulates its first N names, so N is the position
    of the last one asked for (unknown names are not listed and answer 404).
    """
    known = [u.ticker for u in DEFAULT_UNIVERSE]
    symbols = [u.symbol for u in DEFAULT_UNIVERSE]
    size = 1
    for name in universe:
        if name in known or name in symbols:
            position = known.index(name) if name in known else symbols.index(name)
            size = max(size, position + 1)
        elif name.startswith("SYN") and name[3:].isdigit():
            size = max(size, len(known) + int(name[3:]))
    return size


def simulated_market(
    settings: Settings, universe: list[str], end: dt.date, now: dt.datetime | None = None
) -> Market:
    """The smallest simulated market listing every name of ``universe`` (see market_size)."""
    return Market(simulation_config(settings, market_size(universe), end, now))


@contextmanager
def market_source(
    settings: Settings, universe: list[str], *, now: dt.datetime | None = None
) -> Iterator[tuple[MarketSource, Simulator | None]]:
    """Yield the endpoint of a run and, when simulated, the running simulator.

    With ``massive_api_key`` set: Massive at ``massive_base_url``. Without: a simulated market
    ending on the most recent weekday, served by :class:`SimulatorServer` on 127.0.0.1 for the
    duration of the ``with`` block.
    """
    if settings.massive_api_key is not None:
        yield (
            MarketSource(
                settings.massive_base_url,
                settings.massive_api_key.get_secret_value(),
                simulated=False,
                requests_per_second=settings.marketdata_requests_per_second,
                max_concurrency=settings.marketdata_max_concurrency,
            ),
            None,
        )
        return
    market = simulated_market(settings, universe, last_weekday(now), now)
    simulator = Simulator(market, api_key=secrets.token_urlsafe(16))
    with SimulatorServer(simulator) as server:
        logger.info("no MASSIVE_API_KEY: serving the simulated market at %s", server.base_url)
        # No client-side rate limit against our own loopback server.
        yield (
            MarketSource(
                server.base_url,
                server.api_key,
                simulated=True,
                requests_per_second=None,
                max_concurrency=settings.marketdata_max_concurrency,
            ),
            simulator,
        )
