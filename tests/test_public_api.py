"""Each package's public names, pinned: adding or removing one is a deliberate change here."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_NAMES = {
    "periscope": {
        "CalibrationError",
        "DatasetNotFoundError",
        "InvalidInputError",
        "MarketDataError",
        "MarketDataRejected",
        "MarketDataUnavailable",
        "PayloadError",
        "PeriscopeError",
        "StorageError",
    },
    "periscope.storage": {
        "GROUPS",
        "Location",
        "RunInfo",
        "append_history",
        "apply_retention",
        "find_run",
        "list_runs",
        "new_run_id",
        "open_history",
        "open_latest",
        "open_run",
        "open_staged",
        "parse_run_id",
        "publish",
        "read_pointer",
        "resolve",
        "run_uri",
        "s3_storage_options",
        "stage_uri",
        "write_group",
        "write_staged",
    },
    "periscope.pricing": {
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
    },
    "periscope.volatility": {
        "IVStatus",
        "implied_volatility",
        "implied_volatility_american",
        "implied_volatility_black",
    },
    "periscope.marketdata": {
        "DEFAULT_BASE_URL",
        "AsyncMassiveClient",
        "CacheKind",
        "CacheOptions",
        "ClientOptions",
        "FlatFileOptions",
        "MassiveClient",
        "OptionTicker",
        "ResponseCache",
        "UnderlyingPrice",
        "flat_file_system",
        "format_option_ticker",
        "iter_day_aggregates",
        "parse_option_ticker",
        "read_day_aggregates",
    },
    "periscope.simulator": {
        "DEFAULT_UNIVERSE",
        "ChainTruth",
        "Dividend",
        "Fault",
        "FaultPlan",
        "Market",
        "RateCurve",
        "SimulationConfig",
        "Simulator",
        "SimulatorServer",
        "SurfaceTruth",
        "Underlying",
        "UnusualActivity",
        "write_day_aggregates",
    },
    "cluster": {"WORKER_ENVIRONMENT", "make_cluster"},
    "api": {"create_app"},
}


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_all__pinned_and_resolvable(package: str) -> None:
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__)), "duplicates in __all__"
    assert set(module.__all__) == PUBLIC_NAMES[package]
    for name in module.__all__:
        assert getattr(module, name) is not None
