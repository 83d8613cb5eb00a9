"""The simulator's numba kernel: the roll-back of the CRR tree (:mod:`periscope.simulator.black`).

Only additions, multiplications and comparisons, in the order the NumPy roll-back did them
(numba keeps IEEE semantics: no fast-math, no fused multiply-add), so the prices are bit for bit
those of the whole-array NumPy code the market's ground truth was computed with. The node prices
``base · u^k`` come in precomputed by NumPy (``np.exp``), so no transcendental function is
evaluated here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from periscope._numba import inline, kernel


@inline
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN propagates, ``a`` wins ties (so -0.0 stays)."""
    if a != a or a >= b:
        return a
    return b


@kernel
def crr_rollback(
    nodes: npt.NDArray[np.float64],
    strike: npt.NDArray[np.float64],
    up: npt.NDArray[np.float64],
    down: npt.NDArray[np.float64],
    discount: npt.NDArray[np.float64],
    sign: npt.NDArray[np.float64],
    dividend_pv: npt.NDArray[np.float64],
    steps: int,
    out: npt.NDArray[np.float64],
) -> None:
    """American values of contracts ``0..n-1`` into ``out``.

    ``nodes[c, k + steps]`` is contract ``c``'s underlying at ``k`` net up-moves
    (``k = -steps..steps``), ``up``/``down`` the risk-neutral probabilities ``p`` and ``1 - p``.
    The exercise value at step ``i`` adds back ``dividend_pv · (1 - i / steps)``.
    """
    n = strike.shape[0]
    value = np.empty(steps + 1)
    for c in range(n):
        k, s, p, q, df, pv = strike[c], sign[c], up[c], down[c], discount[c], dividend_pv[c]
        for j in range(steps + 1):
            value[j] = _maximum(s * (nodes[c, 2 * j] - k), 0.0)
        for i in range(steps - 1, -1, -1):
            unpaid = pv * (1.0 - i / steps)
            for j in range(i + 1):
                rolled = df * (p * value[j + 1] + q * value[j])
                exercise = s * ((nodes[c, steps - i + 2 * j] + unpaid) - k)
                value[j] = _maximum(rolled, exercise)
        out[c] = value[0]
