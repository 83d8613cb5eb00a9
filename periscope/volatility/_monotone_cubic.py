"""Monotone cubic interpolation of many small node sets in one call (Fritsch-Carlson).

Used where a quantity known at a few nodes per group (the early-exercise premium's share of the
price at the anchors of each expiry and side) is wanted between them: a cubic through the
nodes that never overshoots them (between two equal values it is flat; between a zero and a
positive value it stays in between), with the derivatives of Fritsch & Carlson (SIAM J. Numer.
Anal. 17(2), 1980) in the weighted harmonic-mean form of Fritsch & Butland, and the
shape-preserving three-point end conditions (as scipy's ``PchipInterpolator``). One kernel call
serves every group, where a numpy formulation costs tens of array operations per call.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from periscope._numba import kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@kernel
def _end_slope(h0: float, h1: float, s0: float, s1: float) -> float:
    """The derivative at an end node from its secant ``s0`` (width ``h0``) and the next one
    inward, limited so that the cubic keeps the data's shape."""
    d = ((2.0 * h0 + h1) * s0 - h0 * s1) / (h0 + h1)
    if d * s0 <= 0.0:
        return 0.0
    if s0 * s1 < 0.0 and abs(d) > 3.0 * abs(s0):
        return 3.0 * s0
    return d


@kernel
def grouped_monotone_cubic(
    first: IntArray, x: FloatArray, y: FloatArray, group: IntArray, at: FloatArray
) -> FloatArray:
    """Interpolate per group: ``out[i]`` is group ``group[i]``'s interpolant at ``at[i]``.

    Group ``g``'s nodes are ``x[first[g]:first[g + 1]]`` (strictly increasing) with values
    ``y``. Beyond its outermost nodes a group's interpolant is held flat; a group with one node
    is that value everywhere; without nodes, or at a NaN ``at``, the result is NaN.
    """
    slope = np.zeros(x.size)
    for g in range(first.size - 1):
        a, b = first[g], first[g + 1]
        n = b - a
        if n < 2:
            continue
        if n == 2:
            secant = (y[a + 1] - y[a]) / (x[a + 1] - x[a])
            slope[a] = secant
            slope[a + 1] = secant
            continue
        for j in range(a + 1, b - 1):
            h_left, h_right = x[j] - x[j - 1], x[j + 1] - x[j]
            s_left = (y[j] - y[j - 1]) / h_left
            s_right = (y[j + 1] - y[j]) / h_right
            if s_left * s_right > 0.0:
                w1, w2 = 2.0 * h_right + h_left, h_right + 2.0 * h_left
                slope[j] = (w1 + w2) / (w1 / s_left + w2 / s_right)
        h0, h1 = x[a + 1] - x[a], x[a + 2] - x[a + 1]
        slope[a] = _end_slope(h0, h1, (y[a + 1] - y[a]) / h0, (y[a + 2] - y[a + 1]) / h1)
        h0, h1 = x[b - 1] - x[b - 2], x[b - 2] - x[b - 3]
        slope[b - 1] = _end_slope(h0, h1, (y[b - 1] - y[b - 2]) / h0, (y[b - 2] - y[b - 3]) / h1)
    out = np.empty(at.size)
    for i in range(at.size):
        g = group[i]
        a, b = first[g], first[g + 1]
        value = at[i]
        if b <= a or not math.isfinite(value):
            out[i] = math.nan
            continue
        if b - a == 1 or value <= x[a]:
            out[i] = y[a]
            continue
        if value >= x[b - 1]:
            out[i] = y[b - 1]
            continue
        lo, hi = a, b - 2  # the last node at or below value
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if x[mid] <= value:
                lo = mid
            else:
                hi = mid - 1
        h = x[lo + 1] - x[lo]
        u = (value - x[lo]) / h
        v = 1.0 - u
        out[i] = (
            (1.0 + 2.0 * u) * v * v * y[lo]
            + u * u * (3.0 - 2.0 * u) * y[lo + 1]
            + h * u * v * (v * slope[lo] - u * slope[lo + 1])
        )
    return out
