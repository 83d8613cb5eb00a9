"""The grouped monotone cubic against scipy's PchipInterpolator, group by group."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from periscope.volatility._monotone_cubic import grouped_monotone_cubic


def test_grouped_monotone_cubic__as_pchip_in_every_group_flat_beyond() -> None:
    rng = np.random.default_rng(7)
    sizes = [0, 1, 2, 3, 4, 6, 9, 15] * 4
    xs, ys, first = [], [], [0]
    for g, size in enumerate(sizes):
        x = np.sort(rng.uniform(-1.0, 1.0, size))
        # Monotone, bumpy, and with flat stretches (zeros, as premiums never exercised).
        kind = g % 3
        if kind == 0:
            y = np.cumsum(rng.uniform(0.0, 1.0, size))
        elif kind == 1:
            y = rng.uniform(-1.0, 1.0, size)
        else:
            y = np.maximum(rng.uniform(-1.0, 1.0, size), 0.0)
        xs.append(x)
        ys.append(y)
        first.append(first[-1] + size)
    x, y = np.concatenate(xs), np.concatenate(ys)
    offsets = np.array(first, dtype=np.int64)
    group = rng.integers(0, len(sizes), 6000).astype(np.int64)
    at = rng.uniform(-1.3, 1.3, group.size)
    at[:10] = np.nan
    got = grouped_monotone_cubic(offsets, x, y, group, at)
    assert np.isnan(got[:10]).all()
    for g, size in enumerate(sizes):
        mine = (group == g) & np.isfinite(at)
        a, b = offsets[g], offsets[g + 1]
        if size == 0:
            assert np.isnan(got[mine]).all()
            continue
        if size == 1:
            assert (got[mine] == y[a]).all()
            continue
        expected = PchipInterpolator(x[a:b], y[a:b])(np.clip(at[mine], x[a], x[b - 1]))
        np.testing.assert_allclose(got[mine], expected, rtol=0.0, atol=1e-14)
        # Never beyond the nodes' range: no overshoot.
        assert (got[mine] >= y[a:b].min() - 1e-15).all()
        assert (got[mine] <= y[a:b].max() + 1e-15).all()
    # Between two zero nodes exactly zero.
    zero = grouped_monotone_cubic(
        np.array([0, 3], dtype=np.int64), np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0]),
        np.zeros(3, dtype=np.int64), np.array([0.25, 0.5, 0.75]),
    )  # fmt: skip
    assert (zero == 0.0).all()
