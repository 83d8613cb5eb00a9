"""Which task failures are worth a retry: transient market-data errors only."""

from __future__ import annotations

from typing import Any

from periscope.errors import MarketDataUnavailable


def retry_on_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` of Prefect tasks: retry :class:`MarketDataUnavailable` only.

    Timeouts, connection errors, 429 and 5xx (after the client's own retries) are transient; a
    rejected request, a broken payload or a bug fails the task at once.
    """
    try:
        state.result()
    except MarketDataUnavailable:
        return True
    except Exception:
        return False
    return False
