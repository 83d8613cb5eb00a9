"""The scheduled deployments, served by one long-lived process (``prefect.serve``).

=================  ================================================  =====================
deployment         schedule (America/New_York)                        flow
=================  ================================================  =====================
intraday           every 15 minutes, Mon-Fri 09:30-16:00              ``daily`` (intraday)
end-of-day         16:30 Mon-Fri                                      ``daily`` (end-of-day)
nightly-backfill   02:00 Tue-Sat (after each trading day)             ``backfill``
=================  ================================================  =====================

Cron lines and the time zone come from settings (``PERISCOPE_SCHEDULE_*``). The serving process
executes each scheduled run in a subprocess; stopping it pauses the schedules
(``pause_on_shutdown``), and the Prefect UI (or ``prefect deployment pause``) pauses one.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.schedules import Cron

from flows.backfill import backfill
from flows.daily import daily
from periscope.settings import Settings


def deployments(settings: Settings) -> list[Any]:
    """The three deployments (``RunnerDeployment`` objects) with their cron schedules."""
    zone = settings.schedule_timezone
    intraday = daily.to_deployment(
        name="intraday",
        schedules=[
            Cron(line, timezone=zone, slug=f"intraday-{i}")
            for i, line in enumerate(settings.schedule_intraday)
        ],
        parameters={"kind": "intraday"},
        tags=["periscope", "intraday"],
        description="Surface snapshots every 15 minutes during the session.",
    )
    end_of_day = daily.to_deployment(
        name="end-of-day",
        schedules=[Cron(settings.schedule_end_of_day, timezone=zone, slug="end-of-day")],
        parameters={"kind": "end-of-day"},
        tags=["periscope", "end-of-day"],
        description="The end-of-day pipeline: chains, surfaces, risk, history.",
    )
    nightly = backfill.to_deployment(
        name="nightly-backfill",
        schedules=[Cron(settings.schedule_backfill, timezone=zone, slug="nightly-backfill")],
        tags=["periscope", "history"],
        description="Fill missing past days of history.zarr.",
    )
    return [intraday, end_of_day, nightly]


def serve_all(settings: Settings | None = None) -> None:
    """Create the deployments and execute their scheduled runs until interrupted.

    At most one run at a time (``limit=1``): the runs share the data root's single history
    writer and the machine's cores.
    """
    serve(*deployments(settings or Settings()), limit=1, pause_on_shutdown=True)
