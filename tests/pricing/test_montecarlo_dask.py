"""Monte Carlo batches on a real Dask cluster of worker processes give the single-process bits."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster

from periscope.pricing.batches import combine, plan_batches, run_batch
from periscope.pricing.montecarlo import (
    ArithmeticAsian,
    GeometricBrownianMotion,
    MonteCarloSettings,
    monte_carlo_price,
)


@pytest.mark.slow
def test_run_batch__on_two_worker_processes_matches_one_process() -> None:
    # One model and sampler: each worker process compiles the kernels it runs, which dominates
    # the time here; the batching logic is the same for every model and payoff.
    gbm = GeometricBrownianMotion(100.0, 0.05, 0.01, 0.25)
    payoff = ArithmeticAsian(100.0, 1.0, True)
    cases = [(gbm, MonteCarloSettings(n_paths=24_000, n_steps=12, seed=21, batch_size=4096))]
    local = [
        monte_carlo_price(
            model,
            payoff,
            n_paths=s.n_paths,
            n_steps=s.n_steps,
            seed=s.seed,
            sampler=s.sampler,
            batch_size=s.batch_size,
        )
        for model, s in cases
    ]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        for (model, settings), expected in zip(cases, local, strict=True):
            specs = plan_batches(settings.n_paths, settings.batch_size, settings.seed)
            futures = client.map(
                run_batch, specs, model=model, payoff=payoff, settings=settings, pure=False
            )
            results = client.gather(futures)
            # Both workers took part, and the combined result is bit-identical.
            assert combine(results) == expected
