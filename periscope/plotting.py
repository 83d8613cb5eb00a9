"""Pictures of a fitted surface for analysts (matplotlib, Agg backend, imported lazily).

:func:`plot_surface` draws one underlying's published surface as implied volatility over
log-moneyness and time to expiry (left) and its smiles per expiry with the market quotes (right):
the Black implied volatility of each out-of-the-money mid (puts below the forward, calls at or
above), at the expiry's fitted forward and discount factor. For American names those quote IVs
include the early-exercise premium, which the fit removes first, so deep quotes may sit slightly
above the fitted smile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.volatility import implied_volatility_black

FloatArray = npt.NDArray[np.float64]
MAX_SMILES = 8


def quote_volatilities(chain: xr.Dataset, surface: xr.Dataset) -> dict[Any, tuple[Any, Any]]:
    """Per published expiry: (log-moneyness, Black IV) of the out-of-the-money mids."""
    strike = np.asarray(chain[schema.STRIKE].values, dtype=np.float64)
    mid = np.asarray(chain[schema.MID].values, dtype=np.float64)
    is_call = np.asarray(chain[schema.RIGHT].values).astype(str) == schema.CALL
    expiry = np.asarray(chain[schema.EXPIRY].values).astype("datetime64[ns]")
    out: dict[Any, tuple[Any, Any]] = {}
    for j, day in enumerate(surface[schema.EXPIRY].values):
        forward = float(surface[schema.FORWARD].values[j])
        discount = float(surface[schema.DISCOUNT_FACTOR].values[j])
        t = float(surface[schema.TIME_TO_EXPIRY].values[j])
        if not (np.isfinite(forward) and np.isfinite(discount) and t > 0):
            continue
        pick = (expiry == day) & np.isfinite(mid) & (is_call == (strike >= forward))
        if not pick.any():
            continue
        iv = implied_volatility_black(mid[pick], forward, strike[pick], t, discount, is_call[pick])
        k = np.log(strike[pick] / forward)
        good = np.isfinite(iv)
        out[day] = (k[good], iv[good])
    return out


def plot_surface(
    surface: xr.Dataset,
    out: str | Path,
    *,
    chain: xr.Dataset | None = None,
    max_smiles: int = MAX_SMILES,
    dpi: int = 110,
) -> Path:
    """Draw one underlying's surface (and its quotes, given ``chain``) into a PNG file.

    Parameters
    ----------
    surface
        One underlying's surface (the ``surfaces`` group with ``underlying`` selected).
    out
        The PNG file to write (folders are created).
    chain
        That underlying's chain (the ``chains`` group filtered on ``underlying``), for the
        quote markers; None draws the fitted smiles alone.
    max_smiles
        Published expiries drawn in the smile panel, spread over the term structure.
    dpi
        Resolution.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    InvalidInputError
        The surface is stacked, or has no published expiry.
    """
    if schema.UNDERLYING in surface.dims:
        raise InvalidInputError("plot_surface takes one underlying's surface")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    name = str(surface[schema.UNDERLYING].item())
    iv = np.asarray(surface[schema.IMPLIED_VOLATILITY].values, dtype=np.float64)
    times = np.asarray(surface[schema.TIME_TO_EXPIRY].values, dtype=np.float64)
    k = np.asarray(surface[schema.LOG_MONEYNESS].values, dtype=np.float64)
    published = np.isfinite(times) & (times > 0) & np.isfinite(iv).any(axis=1)
    if not published.any():
        raise InvalidInputError(f"the surface of {name} has no published expiry", underlying=name)
    rows = np.flatnonzero(published)
    quotes = quote_volatilities(chain, surface) if chain is not None else {}

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    mesh = left.pcolormesh(
        k, times[rows] * 365.0, iv[rows] * 100.0, shading="nearest", cmap="viridis"
    )
    figure.colorbar(mesh, ax=left, label="implied volatility (%)")
    left.set_yscale("log")
    left.set_xlabel("log-moneyness ln(K/F)")
    left.set_ylabel("days to expiry")
    left.set_title(f"{name}: fitted surface")

    picks = np.linspace(0, rows.size - 1, min(max_smiles, rows.size)).round().astype(np.int64)
    chosen = rows[np.unique(picks)]
    colors = plt.get_cmap("plasma")(np.linspace(0.0, 0.85, chosen.size))
    expiries = surface[schema.EXPIRY].values
    for color, j in zip(colors, chosen, strict=True):
        label = f"{str(expiries[j])[:10]} ({times[j] * 365:.0f}d)"
        right.plot(k, iv[j] * 100.0, color=color, lw=1.6, label=label)
        if expiries[j] in quotes:
            qk, qv = quotes[expiries[j]]
            right.scatter(
                qk, qv * 100.0, s=14, color=color, alpha=0.85, edgecolors="white", linewidths=0.3
            )
    # Frame the smiles where the quotes are (the grid reaches |k| = 1 for every expiry).
    spans = [q[0] for q in quotes.values() if q[0].size]
    if spans:
        lo, hi = np.percentile(np.concatenate(spans), [1, 99])
        right.set_xlim(min(lo, -0.05) - 0.02, max(hi, 0.05) + 0.02)
    right.set_xlabel("log-moneyness ln(K/F)")
    right.set_ylabel("implied volatility (%)")
    title = "smiles (lines: fit; dots: OTM mid quotes)" if quotes else "smiles (fit)"
    right.set_title(f"{name}: {title}")
    right.legend(fontsize=7, loc="upper right")
    right.grid(alpha=0.3)

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
