"""Prefect flows and their thin tasks (``docs/pipeline.md``).

- :mod:`flows.daily`: the ``daily`` flow (ingest -> surfaces -> sensitivity grids -> publish ->
  history) on a Dask cluster; :mod:`flows.backfill`: the ``backfill`` flow of history.
- Stages: :mod:`flows.ingest`, :mod:`flows.surfaces`, :mod:`flows.risk`, :mod:`flows.publish`,
  :mod:`flows.history`; where chains come from: :mod:`flows.source`.
- :mod:`flows.deployments`: the schedules served by ``prefect.serve``; :mod:`flows.cli`: the
  ``periscope`` command.
"""
