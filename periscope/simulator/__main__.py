"""``python -m periscope.simulator [serve] --port PORT [--seed N] [--underlyings N]``.

Prints ``<base URL> <API key>`` as its first line of output, then serves until interrupted.
``--synthetic-contracts 2000`` makes each synthetic name (beyond the 20 default ones) list about
2,000 contracts (``SimulationConfig.synthetic_contracts``): ``--underlyings 500
--synthetic-contracts 2000`` serves about a million contracts.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading

from periscope.simulator.market import Market, SimulationConfig
from periscope.simulator.running import SimulatorServer
from periscope.simulator.server import Simulator


def main(argv: list[str] | None = None) -> int:
    """Run the simulated Massive API on 127.0.0.1 until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m periscope.simulator", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--underlyings", type=int, default=20)
    parser.add_argument("--days", type=int, default=260, help="simulated trading days")
    parser.add_argument("--api-key", default=None, help="default: a random key")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s per key")
    parser.add_argument(
        "--synthetic-contracts",
        type=int,
        default=None,
        metavar="N",
        help="each synthetic name (SYN0001...) lists about N contracts (at least 200); "
        "default: exchange-like listings of about 250-1,500",
    )
    args = parser.parse_args(argv)
    market = Market(
        SimulationConfig(
            seed=args.seed,
            n_underlyings=args.underlyings,
            n_days=args.days,
            synthetic_contracts=args.synthetic_contracts,
        )
    )
    key = args.api_key or secrets.token_urlsafe(16)
    simulator = Simulator(market, api_key=key, rate_limit=args.rate_limit)
    server = SimulatorServer(simulator, port=args.port)
    server.start()
    print(f"{server.base_url} {key}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
