import periscope.marketdata
import periscope.simulator


def test_all__marketdata_names_are_pinned_and_sorted():
    assert periscope.marketdata.__all__ == [
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
    ]
    assert all(hasattr(periscope.marketdata, name) for name in periscope.marketdata.__all__)


def test_all__simulator_names_are_pinned():
    assert set(periscope.simulator.__all__) == {
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
    }
    assert all(hasattr(periscope.simulator, name) for name in periscope.simulator.__all__)
