"""Many underlyings' surfaces: in-process, or fanned out over a Dask client in batches.

:func:`fit_surfaces` never imports ``distributed``: a client is duck-typed (``submit`` and
``gather``, as ``distributed.Client`` has them). One task fits a *batch* of underlyings, never
one slice or one underlying per task, because a surface takes milliseconds and a task's
scheduling and transfer overhead is of the same order. Each underlying's failure becomes its
own ``FAILED`` surface (status and message), so one bad chain never stops the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol, overload

import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.volatility.rates import ZeroCurve
from periscope.volatility.surface import fit_surface

__all__ = ["DEFAULT_BATCH_SIZE", "DaskClientLike", "fit_surface_batch", "fit_surfaces"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 25
"""Underlyings per Dask task: about 0.2-0.5 s of work, well above a task's overhead."""


class DaskClientLike(Protocol):
    """What :func:`fit_surfaces` needs of a client (``distributed.Client`` fits)."""

    def submit(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` on a worker; return a future."""
        ...

    def gather(self, futures: Any, errors: str = ...) -> Any:
        """Wait for futures and return their results."""
        ...


def _underlying_of(chain: Any, position: int) -> str:
    """The underlying's name for a failure record, without trusting the chain's layout."""
    try:
        names = {str(x) for x in chain[schema.UNDERLYING].values.tolist()}
        if len(names) == 1:
            return names.pop()
    except Exception:  # anything malformed: fall back to the position
        pass
    return f"#{position}"


def _failed(name: str, error: BaseException) -> xr.Dataset:
    return schema.empty_surface(
        name,
        status=schema.SurfaceStatus.FAILED,
        message=f"{type(error).__name__}: {error}",
    )


def fit_surface_batch(
    chains: Sequence[xr.Dataset],
    rate_curve: ZeroCurve | None = None,
    first_position: int = 0,
) -> list[xr.Dataset]:
    """Fit each chain's surface in turn; an exception becomes that underlying's ``FAILED``
    surface. This is the function one Dask task runs."""
    out = []
    for offset, chain in enumerate(chains):
        try:
            out.append(fit_surface(chain, rate_curve))
        except Exception as exc:  # recorded in the result, never stops the batch
            name = _underlying_of(chain, first_position + offset)
            logger.warning("surface of %s failed: %s", name, exc, exc_info=True)
            out.append(_failed(name, exc))
    return out


@overload
def fit_surfaces(
    chains: Sequence[Any],
    *,
    rate_curve: ZeroCurve | None = ...,
    client: DaskClientLike | None = ...,
    batch_size: int = ...,
    stack: Literal[True] = ...,
) -> xr.Dataset: ...


@overload
def fit_surfaces(
    chains: Sequence[Any],
    *,
    rate_curve: ZeroCurve | None = ...,
    client: DaskClientLike | None = ...,
    batch_size: int = ...,
    stack: Literal[False],
) -> list[xr.Dataset]: ...


def fit_surfaces(
    chains: Sequence[Any],
    *,
    rate_curve: ZeroCurve | None = None,
    client: DaskClientLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    stack: bool = True,
) -> xr.Dataset | list[xr.Dataset]:
    """Fit the surfaces of many underlyings.

    Parameters
    ----------
    chains
        One chain Dataset per underlying. With a client they may also be futures of chains
        already on the cluster (``client.scatter(chains)``, or chains built by worker tasks):
        the workers then read them where they are instead of receiving them in the task graph.
    rate_curve
        The zero curve every fit discounts with (None: implied from parity).
    client
        A Dask client (duck-typed: ``submit``/``gather``). None fits in this process.
    batch_size
        Underlyings per Dask task (>= 1).
    stack
        Return one Dataset stacked along ``underlying`` (:func:`periscope.schema.stack_surfaces`)
        rather than the list.

    Returns
    -------
    xarray.Dataset or list of xarray.Dataset
        In the order of ``chains``. A chain whose fit raised (malformed, two underlyings, a bug)
        has ``surface_status`` ``FAILED`` and the error in ``status_message``; so does every
        chain of a batch whose task was lost (a worker died), with that error.

    Raises
    ------
    InvalidInputError
        ``batch_size`` < 1, or stacking surfaces that name the same underlying twice.
    """
    if batch_size < 1:
        raise InvalidInputError("batch_size must be at least 1", argument="batch_size")
    items = list(chains)
    if not items and stack:
        raise InvalidInputError("no chains to fit and stack", argument="chains")
    if client is None:
        results = fit_surface_batch(items, rate_curve)
    else:
        starts = range(0, len(items), batch_size)
        futures = [
            client.submit(
                fit_surface_batch, items[start : start + batch_size], rate_curve, start, pure=False
            )
            for start in starts
        ]
        results = []
        for start, future in zip(starts, futures, strict=True):
            size = len(items[start : start + batch_size])
            try:
                batch = client.gather(future)
            except Exception as exc:  # a lost task fails its own underlyings only
                logger.warning("surface batch at %d failed: %s", start, exc)
                batch = [
                    _failed(_underlying_of(items[start + offset], start + offset), exc)
                    for offset in range(size)
                ]
            results.extend(batch)
    return schema.stack_surfaces(results) if stack else results
