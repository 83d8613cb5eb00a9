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


@pytest.fixture(scope="module")
def index_chains() -> list[xr.Dataset]:
    """Small European chains (three days of the index, expiries within 40 days): the workers
    then compile no tree kernels, which would only lengthen the test."""
    market = Market(SimulationConfig(seed=3, n_underlyings=1, n_days=30))
    out = []
    for day in market.days[5:8]:
        chain = market.chain("I:SPX", day).dataset()
        near = chain.expiry.values < np.datetime64(day) + np.timedelta64(40, "D")
        out.append(chain.isel(contract=near))
    return out


@pytest.mark.slow
def test_fit_surfaces__on_two_worker_processes_matches_in_process(
    index_chains: list[xr.Dataset], chains: list[xr.Dataset]
) -> None:
    inputs = [*index_chains, _mixed(chains)]
    local = fit_surfaces(inputs, stack=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # Batches of two underlyings: two tasks over two workers.
        remote = fit_surfaces(inputs, client=client, batch_size=2, stack=False)
        # Chains already on the cluster are read where they are.
        futures = client.scatter(index_chains[:2])
        scattered = fit_surfaces(futures, client=client, batch_size=1, stack=False)
    assert len(remote) == len(local) == 4
    for got, expected in zip(remote, local, strict=True):
        xr.testing.assert_identical(got, expected)
    assert remote[-1].surface_status == schema.SurfaceStatus.FAILED
    assert (remote[0].expiry_status == schema.ExpiryStatus.OK).sum() >= 10
    for got, expected in zip(scattered, local[:2], strict=True):
        xr.testing.assert_identical(got, expected)
