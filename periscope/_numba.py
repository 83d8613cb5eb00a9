"""The project's one numba policy: every kernel is compiled through :func:`kernel`.

- ``nogil=True`` so a thread pool over chunks (or Dask worker threads) runs kernels in parallel.
- ``error_model="numpy"``: division by zero gives inf/NaN instead of raising, because kernels must
  never raise inside a batch.
- No ``parallel=True``: parallelism comes from Dask workers or from threads over chunks, one level
  at a time.
- Compiled kernels are cached on disk (``periscope._numba_cache``: numba's cache with a
  cross-process lock, since every Dask worker compiles the same kernels, and a stamp over the
  whole package, since kernels inline helpers from other modules). Compiling them all takes
  about a minute per process; a cached process loads them in about a second.
  ``PERISCOPE_NUMBA_CACHE=0`` turns the cache off.
- Small scalar helpers used inside kernels' loops are marked with :func:`inline`, which numba
  inlines into each calling kernel (compiled with that kernel's options), because a call to a
  separately compiled function in a loop body stops LLVM's vectorizer.
- ``fastmath`` stays off: the implied-volatility solver relies on IEEE semantics (NaN checks,
  exact cancellation in parity).
- On AVX-512 hosts the vectorizer uses the full 512-bit registers. LLVM's tuning for those CPUs
  prefers 256-bit vectors (a guard against the clock drop of older Xeons under heavy 512-bit
  work); the pricing loops are arithmetic-bound, and measured on this project's machines 512 bits
  make them faster: price + first-order Greeks 23.3 -> 26.2 M options/s, prices alone 28 -> 39
  (benchmarks/RESULTS.md). It is set through numba's CPU feature string before the first
  compilation; an explicit ``NUMBA_CPU_FEATURES`` from the user wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import llvmlite.binding as llvm  # type: ignore[import-untyped]
import numba
from numba.core import config as numba_config
from numba.extending import register_jitable

from periscope._numba_cache import attach_cache

CACHE_ENV_VAR = "PERISCOPE_NUMBA_CACHE"


def _prefer_full_width_vectors() -> None:
    """Lift LLVM's 256-bit preference on AVX-512 hosts (see the module docstring)."""
    # numba's config attributes are set dynamically from the environment (hence getattr).
    chosen = (getattr(numba_config, "CPU_FEATURES", None), getattr(numba_config, "CPU_NAME", None))
    if chosen != (None, None):
        return  # the user chose the target; leave it alone
    features = llvm.get_host_cpu_features()
    if features.get("avx512f", False):
        numba_config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"  # type: ignore[attr-defined]


_prefer_full_width_vectors()


def cache_enabled() -> bool:
    """Whether kernels are cached on disk: yes unless ``PERISCOPE_NUMBA_CACHE`` is 0/false/no."""
    return os.environ.get(CACHE_ENV_VAR, "").strip().lower() not in {"0", "false", "no"}


def kernel[F: Callable[..., Any]](function: F) -> F:
    """Compile ``function`` with the project's numba options (see the module docstring)."""
    dispatcher = numba.njit(function, nogil=True, error_model="numpy")
    if cache_enabled():
        attach_cache(dispatcher)
    # A dispatcher is called exactly like the function it compiles.
    return cast(F, dispatcher)


def inline[F: Callable[..., Any]](function: F) -> F:
    """Make ``function`` a helper that numba inlines (at its IR level) into every kernel using it.

    LLVM does not inline numba functions compiled apart (each is its own library), and a call
    in a loop body stops the vectorizer. An inlined helper is compiled as part of the calling
    ``kernel``, with that kernel's options (nogil, error model); from Python it runs as plain
    Python, so tests call it through a ``kernel``.
    """
    inlined: F = register_jitable(inline="always")(function)
    return inlined
