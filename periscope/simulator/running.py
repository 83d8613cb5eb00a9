"""Run the simulated API with uvicorn on 127.0.0.1, in a background thread or in the foreground."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import uvicorn

from periscope.errors import PeriscopeError
from periscope.simulator.server import Simulator

logger = logging.getLogger(__name__)


class SimulatorServer:
    """The simulated API served over loopback HTTP from a daemon thread.

    Parameters
    ----------
    simulator
        What to serve.
    port
        0 (the default) picks a free port; :attr:`base_url` tells which.

    Examples
    --------
    >>> from periscope.simulator import Market, SimulationConfig, Simulator, SimulatorServer
    >>> market = Market(SimulationConfig(n_underlyings=2, n_days=5))
    >>> with SimulatorServer(Simulator(market)) as server:  # doctest: +SKIP
    ...     print(server.base_url)
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        config = uvicorn.Config(
            simulator.app(),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The key the server accepts."""
        return self.simulator.api_key

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Start serving; returns once the socket listens."""
        self._thread = threading.Thread(target=self._server.run, name="simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise PeriscopeError("the simulator server did not start", host=self.host)
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        logger.info("simulator serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
