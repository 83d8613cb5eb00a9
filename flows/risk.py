"""Risk: the sensitivity grid of every listed contract, written straight into the run.

The run's two contract-indexed groups, ``chains`` and ``risk``, line up contract for contract
(the staged chain batches in batch order). :func:`sensitivity_grids` lays both groups out in
the run store at their final size (:func:`periscope.storage.create_group`), cuts the contracts
into ranges of :data:`RANGE_CONTRACTS` (whole Zarr chunks of both groups) and fans the ranges
out over the Dask cluster. :func:`grid_range`, on a worker, reads its contracts from the staged
chains (a range may span two batches), computes their grid with
:func:`periscope.risk.chain_sensitivity_grid` (each contract on its own underlying's surface;
names without a usable surface stay NaN rows) and writes its rows of both groups in place
(:func:`periscope.storage.write_region`); the groups are marked written only when every range
is. Nothing is staged and nothing is copied again at publish time: each contract's grid is
written once, in float32 (a scenario view, not a book of record; float32 halves the run).

Ranges are equal (the last is shorter), so the workers finish together, and disjoint in whole
chunks, so parallel writers never share a chunk. Size: contracts x scenarios x 6 variables x 4
bytes; the default 7 x 3 x 3 = 63 scenarios make 1.5 KB a contract, 1.5 GB for 1 million
contracts, of which a worker holds one range's (60 MB for 40,000 contracts) at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from prefect import task
from zarr.codecs import BloscCodec

from flows.fanout import fan_out
from flows.surfaces import FitResult
from periscope import schema, storage
from periscope.risk import chain_sensitivity_grid

logger = logging.getLogger(__name__)

# Contracts per Zarr chunk of the grid: 20,000 x 63 scenarios x 4 bytes = 5 MB a chunk.
RISK_CHUNK = 20_000
# Contracts per Zarr chunk of the chains group (one-dimensional columns: 320 KB a float64
# chunk) and per range task: a whole number of grid chunks, so ranges never share a chunk of
# either group; 25 equal tasks for a million contracts (the last one shorter).
RANGE_CONTRACTS = 2 * RISK_CHUNK
# Blosc LZ4 with byte shuffle for the grid's floats: measured on a 70,000-contract grid against
# Zarr's default (Zstandard level 0, no shuffle), 7 % smaller, writes 4x and reads 7x faster.
RISK_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The scenario grid of a run."""

    spot_shifts: tuple[float, ...]
    vol_shifts: tuple[float, ...]
    horizon_days: tuple[float, ...]
    sticky: str = "moneyness"


@dataclass(frozen=True, slots=True)
class Piece:
    """Contracts ``start:stop`` of one staged batch (its chains and fitted surfaces)."""

    chain_uri: str
    surfaces_uri: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class ContractRange:
    """Contracts ``start:stop`` of the run, and the pieces of staged batches they come from."""

    start: int
    stop: int
    pieces: tuple[Piece, ...]

    @property
    def contracts(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A written range: its contracts and how many had no usable volatility."""

    contracts: int
    unpriced: int


@dataclass(frozen=True, slots=True)
class GridsResult:
    """The run's ``chains`` and ``risk`` groups, written: contracts and unpriced contracts."""

    contracts: int
    unpriced: int


def plan_ranges(fits: Sequence[FitResult], size: int = RANGE_CONTRACTS) -> list[ContractRange]:
    """The run's contracts (the batches' in batch order) cut into ranges of ``size``.

    >>> fits = [FitResult(0, "s0", "c0", [{"contracts": 5}]),
    ...         FitResult(1, "s1", "c1", [{"contracts": 4}])]
    >>> [(r.start, r.stop, [(p.chain_uri, p.start, p.stop) for p in r.pieces])
    ...  for r in plan_ranges(fits, 6)]
    [(0, 6, [('c0', 0, 5), ('c1', 0, 1)]), (6, 9, [('c1', 1, 4)])]
    """
    bounds: list[tuple[int, int, FitResult]] = []
    offset = 0
    for fit in sorted(fits, key=lambda f: f.index):
        if fit.contracts:
            bounds.append((offset, offset + fit.contracts, fit))
            offset += fit.contracts
    ranges = []
    for start in range(0, offset, size):
        stop = min(start + size, offset)
        pieces = tuple(
            Piece(fit.chain_uri, fit.uri, max(start, lo) - lo, min(stop, hi) - lo)
            for lo, hi, fit in bounds
            if lo < stop and hi > start
        )
        ranges.append(ContractRange(start, stop, pieces))
    return ranges


def _grid(chain: xr.Dataset, surfaces: xr.Dataset, spec: GridSpec) -> xr.Dataset:
    return chain_sensitivity_grid(
        chain,
        surfaces,
        spot_shifts=spec.spot_shifts,
        vol_shifts=spec.vol_shifts,
        horizon_days=spec.horizon_days,
        sticky="strike" if spec.sticky == "strike" else "moneyness",
        dtype=np.float32,
    )


def _concat(parts: list[xr.Dataset]) -> xr.Dataset:
    if len(parts) == 1:
        return parts[0]
    return xr.concat(
        parts, dim=schema.CONTRACT, data_vars="minimal", coords="minimal", compat="override",
        join="exact", combine_attrs="override",
    )  # fmt: skip


def range_datasets(
    part: ContractRange,
    spec: GridSpec,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """The chains and the grid of one range of contracts, in run order."""
    chains, grids = [], []
    for piece in part.pieces:
        chain = storage.open_staged(
            piece.chain_uri,
            storage_options=storage_options,
            isel={schema.CONTRACT: slice(piece.start, piece.stop)},
        ).load()
        if chain.sizes[schema.CONTRACT] != piece.stop - piece.start:
            raise ValueError(f"{piece.chain_uri} has fewer contracts than its fit reported")
        surfaces = storage.open_staged(piece.surfaces_uri, storage_options=storage_options)
        # The grid needs the contracts' coordinates only, not the quotes.
        grids.append(_grid(chain.drop_vars(list(chain.data_vars)), surfaces.load(), spec))
        chains.append(chain)
    return _concat(chains), _concat(grids)


def grid_range(
    part: ContractRange,
    *,
    root: str,
    run_id: str,
    spec: GridSpec,
    storage_options: Mapping[str, Any] | None = None,
) -> RangeResult:
    """On a worker: one range's rows of the run's ``chains`` and ``risk`` groups, written in
    place (the groups laid out by :func:`sensitivity_grids`)."""
    chain, grid = range_datasets(part, spec, storage_options)
    for group, ds in (("chains", chain), ("risk", grid)):
        storage.write_region(
            root, run_id, group, ds, dim=schema.CONTRACT, start=part.start,
            storage_options=storage_options,
        )  # fmt: skip
    unpriced = int(np.isnan(grid["price"].values[:, 0, 0, 0]).sum())
    if unpriced:
        logger.info("risk range %d: %d of %d unpriced", part.start, unpriced, part.contracts)
    return RangeResult(part.contracts, unpriced)


def lay_out_groups(
    ranges: Sequence[ContractRange],
    root: str,
    run_id: str,
    spec: GridSpec,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Create the run's ``chains`` and ``risk`` groups at their final size, chunked so that no
    two ``ranges`` (from :func:`plan_ranges`) share a chunk; their array counts (for
    :func:`periscope.storage.finish_group`)."""
    # The first contract stands in for them all (dtypes, attributes, scenario coordinates).
    first = ranges[0].pieces[0]
    head = ContractRange(0, 1, (Piece(first.chain_uri, first.surfaces_uri, 0, 1),))
    chain, grid = range_datasets(head, spec, storage_options)
    size, span = ranges[-1].stop, ranges[0].contracts
    # One chain chunk a range; grid chunks of RISK_CHUNK when they tile a range.
    risk_chunk = RISK_CHUNK if len(ranges) == 1 or span % RISK_CHUNK == 0 else span
    return {
        "chains": storage.create_group(
            root, run_id, "chains", chain, dim=schema.CONTRACT, size=size, chunk=span,
            storage_options=storage_options,
        ),
        "risk": storage.create_group(
            root, run_id, "risk", grid, dim=schema.CONTRACT, size=size, chunk=risk_chunk,
            compressors=RISK_COMPRESSORS, storage_options=storage_options,
        ),
    }  # fmt: skip


@task(name="sensitivity-grids", cache_result_in_memory=False)
def sensitivity_grids(
    fits: list[FitResult],
    root: str,
    run_id: str,
    spec: GridSpec,
    storage_options: dict[str, Any] | None = None,
) -> GridsResult:
    """Prefect task: the run's ``chains`` and ``risk`` groups, range by range across the Dask
    cluster (equal ranges, the last one shorter: no balancing to do), marked written once every
    range is."""
    ranges = plan_ranges(fits)
    if not ranges:
        raise ValueError(f"run {run_id} has no contracts")
    arrays = lay_out_groups(ranges, root, run_id, spec, storage_options)
    results = fan_out(
        grid_range, ranges, root=root, run_id=run_id, spec=spec, storage_options=storage_options
    )
    for group, count in arrays.items():
        storage.finish_group(root, run_id, group, count, storage_options=storage_options)
    return GridsResult(
        contracts=sum(r.contracts for r in results),
        unpriced=sum(r.unpriced for r in results),
    )
