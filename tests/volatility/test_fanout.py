"""fit_surfaces: many underlyings in-process and on a real Dask cluster of worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.simulator.market import Market, SimulationConfig
from periscope.volatility.fanout import fit_surface_batch, fit_surfaces
from periscope.volatility.surface import fit_surface

NAMES = ("KO", "JPM", "XOM", "DIS")


@pytest.fixture(scope="module")
def chains() -> list[xr.Dataset]:
    market = Market(SimulationConfig(seed=3, n_underlyings=20, n_days=30))
    return [market.chain(name, market.days[7]).dataset() for name in NAMES]


def _mixed(chains: list[xr.Dataset]) -> xr.Dataset:
    """Two underlyings in one chain: malformed input for fit_surface."""
    return xr.concat([c.isel(contract=slice(0, 4)) for c in chains[:2]], dim="contract")


def test_fit_surfaces__in_process_keeps_order_and_records_failures(
    chains: list[xr.Dataset],
) -> None:
    inputs = [chains[0], _mixed(chains), chains[1]]
    stacked = fit_surfaces(inputs)
    schema.validate_surface(stacked)
    assert stacked.underlying.values.tolist() == ["KO", "#1", "JPM"]
    status = stacked.surface_status.values
    assert status.tolist() == [
        schema.SurfaceStatus.OK,
        schema.SurfaceStatus.FAILED,
        schema.SurfaceStatus.OK,
    ]
    assert "one underlying" in str(stacked.status_message.sel(underlying="#1").item())
    alone = fit_surface(chains[1])
    xr.testing.assert_identical(
        stacked.sel(underlying="JPM").sel(expiry=alone.expiry.values).drop_vars("underlying"),
        alone.drop_vars("underlying").assign_attrs(stacked.attrs),
    )
    listed = fit_surfaces(inputs, stack=False)
    assert [s.underlying.item() for s in listed] == ["KO", "#1", "JPM"]


def test_fit_surfaces__arguments() -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        fit_surfaces([], batch_size=0)
    with pytest.raises(InvalidInputError, match="no chains"):
        fit_surfaces([])
    assert fit_surfaces([], stack=False) == []
    assert fit_surface_batch([]) == []


@pytest.mark.slow
def test_fit_surfaces__on_two_worker_processes_matches_in_process(
    chains: list[xr.Dataset],
) -> None:
    inputs = [*chains, _mixed(chains)]
    local = fit_surfaces(inputs)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # Batches of two underlyings: three tasks over two workers.
        remote = fit_surfaces(inputs, client=client, batch_size=2)
        # Chains already on the cluster are read where they are.
        futures = client.scatter(inputs[:2])
        scattered = fit_surfaces(futures, client=client, batch_size=1, stack=False)
    xr.testing.assert_identical(remote, local)
    assert remote.surface_status.values[-1] == schema.SurfaceStatus.FAILED
    assert [s.underlying.item() for s in scattered] == ["KO", "JPM"]
    np.testing.assert_array_equal(
        scattered[1].implied_volatility.values,
        local.sel(underlying="JPM").sel(expiry=scattered[1].expiry.values).implied_volatility,
    )
