"""The project's one numba policy: every kernel is compiled through :func:`kernel`.

- ``nogil=True`` so a thread pool over chunks (or Dask worker threads) runs kernels in parallel.
- ``error_model="numpy"``: division by zero gives inf/NaN instead of raising, because kernels must
  never raise inside a batch.
- No ``parallel=True``: parallelism comes from Dask workers or from threads over chunks, one level
  at a time.
- On-disk caching is off by default: several Dask worker processes compiling into one cache
  directory race. ``PERISCOPE_NUMBA_CACHE=1`` turns it on for a single-process session.
- ``fastmath`` stays off: the implied-volatility solver relies on IEEE semantics (NaN checks,
  exact cancellation in parity).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import numba

CACHE_ENV_VAR = "PERISCOPE_NUMBA_CACHE"


def cache_enabled() -> bool:
    """Whether kernels are cached on disk (``PERISCOPE_NUMBA_CACHE`` set to 1/true/yes)."""
    return os.environ.get(CACHE_ENV_VAR, "").strip().lower() in {"1", "true", "yes"}


def kernel[F: Callable[..., Any]](function: F) -> F:
    """Compile ``function`` with the project's numba options (see the module docstring)."""
    dispatcher = numba.njit(function, nogil=True, cache=cache_enabled(), error_model="numpy")
    # A dispatcher is called exactly like the function it compiles.
    return cast(F, dispatcher)
