"""From one underlying's canonical chain to per-expiry :class:`SmileQuotes`.

:func:`prepare_smiles` runs, for one underlying's chain (:mod:`periscope.schema` layout):

1. time to expiry, ACT/365 from the snapshot to each expiry's settlement instant
   (:func:`periscope.schema.settlement_instant`); expiries are grouped by (date, settlement), so an
   AM-settled monthly and the PM-settled weekly of the same date are two smiles;
2. cleaning (:mod:`periscope.volatility.cleaning`): every contract gets a :class:`QuoteFlag` mask;
3. forward and discount factor per expiry from put-call parity
   (:mod:`periscope.volatility.forwards`): DF from ``rate_curve`` when given, otherwise from
   joint parity fits smoothed over expiries; American quotes are de-Americanized first;
4. Black implied volatilities of the bid, mid and ask of the out-of-the-money side (puts below
   the forward, calls at or above it) and the Black vega of the mid.

De-Americanization (American single stocks and ETFs)
----------------------------------------------------
American quotes are turned into European-equivalent prices ``P_am - EEP(σ)``
(:func:`periscope.volatility.deamericanize.european_equivalent`: the early-exercise premium of a
Leisen-Reimer lattice at the fixed point σ). The trees need the spot, a rate and dividends
consistent with the forward: ``r = -ln(DF)/T`` and dividends worth ``PV = S - F·DF`` to each
expiry. With a known cash-dividend schedule (``dividends``, :class:`CashDividends`) the trees
pay those dividends on their ex-dates and a residual yield carries the rest of the PV; without
one, :attr:`CleaningConfig.dividend_model` says how the PV is paid: ``"cash"`` (default, single
stocks: escrowed cash dividends spread evenly over the option's life) or ``"yield"`` (ETFs and
baskets: a continuous yield). The models reproduce the same forward and differ only in the
premium, so the caller, who knows the underlying (its type, its dividends), should choose.

The forward itself comes from parity on the de-Americanized near-the-money pairs (those parity
may use, judged from the first forward estimate of each expiry, with a margin), iterated with
the dividends it implies (:attr:`CleaningConfig.american_iterations` rounds from parity on the
American mids, with an Aitken step; each round's fixed point starts from the previous round's
premiums). Each pair's quotes are widened by
:attr:`CleaningConfig.premium_uncertainty` times its premium, so deep in-the-money pairs (large
premiums, at the exercise boundary) barely count. Accuracy against the simulator's truth is in
``docs/surfaces.md``. Without a rate curve the rates come from the same de-Americanized pairs
and are less certain: pass a curve (:class:`ZeroCurve`) for American chains when there is one.

Only the quotes that go into the fit (and the near-the-money pairs of the forward) go through
trees; other American contracts keep NaN volatilities with status :data:`NOT_INVERTED`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.volatility.cleaning import (
    DEFAULT_CLEANING,
    QUOTE_PROBLEMS,
    CleaningConfig,
    FlagArray,
    QuoteFlag,
    count_flags,
    flag_quotes,
)
from periscope.volatility.deamericanize import (
    CashDividends,
    european_equivalent,
)
from periscope.volatility.forwards import (
    ForwardStatus,
    fill_forwards,
    parity_forwards,
    smooth_rates,
)
from periscope.volatility.implied import _black_iv_flat
from periscope.volatility.rates import ZeroCurve
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.status import IVStatus

__all__ = [
    "NOT_INVERTED",
    "CashDividends",
    "PreparedChain",
    "european_equivalent",
    "prepare_smiles",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

NOT_INVERTED: Final = -1
"""``iv_status`` of a contract whose volatility was not computed (an American quote outside the
fit, or a contract without a forward or a price)."""

_YEAR_NS: Final = 365.0 * 86400.0 * 1e9
_SQRT_2PI: Final = float(np.sqrt(2.0 * np.pi))
# Pairs de-Americanized for an expiry's forward beyond the ones parity uses
# (CleaningConfig.forward_pairs nearest its own guess): a margin for where that guess falls.
# Measured on 121 chains (the benchmark's and 120 simulator underlying-days) in both dividend
# models: 2 gives the forwards of 4 bit for bit on all 1,548 expiries; 1 changes 132 of them.
_PAIR_MARGIN: Final = 2
# Tree steps of the forward's rounds before the last (they only move F towards its fixed point).
_COARSE_STEPS: Final = 51
# De-Americanization solves every _SMILE_ANCHORS-th of the smiles' American quotes per expiry and
# side in strike order (and the last, and the forward's pairs) and gives the others the
# premium's share of the price interpolated between them (european_equivalent's
# anchor_spacing). Measured against every quote's own fixed point on the out-of-the-money puts
# of 121 chains: 6 is within 0.2 vol bp at the 99th percentile and 0.86 bp at most (4: 0.13 and
# 0.6 bp; 8: 0.3 and 1.1 bp), within the trees' own error (about 1 bp at the 99th percentile
# with cash dividends).
_SMILE_ANCHORS: Final = 6
# Largest |g| of an Aitken step (at most a 3.3-fold extrapolation of the last move).
_AITKEN_RATIO: Final = 0.7


@dataclass(frozen=True, slots=True)
class PreparedChain:
    """The result of :func:`prepare_smiles` for one underlying's chain.

    Per-contract arrays are aligned with the chain's ``contract`` dimension; per-expiry arrays
    with :attr:`expiry` (one entry per (expiry date, settlement) group of the chain, sorted by
    time to expiry, whether or not it produced a smile).

    Attributes
    ----------
    underlying
        The chain's underlying (empty string for an empty chain).
    spot
        The underlying's price (median over contracts; NaN when absent).
    smiles
        One :class:`SmileQuotes` per usable expiry, sorted by time to expiry.
    flags
        :class:`QuoteFlag` mask per contract (``uint16``); 0 exactly when used in a fit.
    iv_bid, iv_mid, iv_ask
        Black volatilities of the European-equivalent bid, mid and ask (NaN where not found).
    iv_status
        :class:`IVStatus` code of the mid, :data:`NOT_INVERTED` (-1) where not computed.
    used_in_fit
        ``flags == 0``.
    slice_index
        Index into the per-expiry arrays of each contract's expiry group.
    time_to_expiry, log_moneyness
        Per contract: years to settlement, ``ln(K / F)`` (NaN without a forward).
    expiry, settlement
        Per expiry group: date (``datetime64[D]``) and ``AM``/``PM``.
    expiry_time, forward, discount_factor, forward_status, forward_pairs
        Per expiry group: years to settlement, F, DF, :class:`ForwardStatus` code and the number
        of put-call pairs the forward used.
    has_smile
        Per expiry group: whether it produced a smile.
    counts
        Contracts per flag name (``count_flags``: also ``used`` and ``total``).
    expiry_counts
        The same per expiry group: name -> ``int64`` array aligned with :attr:`expiry`.
    """

    underlying: str
    spot: float
    smiles: list[SmileQuotes]
    flags: FlagArray
    iv_bid: FloatArray
    iv_mid: FloatArray
    iv_ask: FloatArray
    iv_status: npt.NDArray[np.int8]
    used_in_fit: BoolArray
    slice_index: IntArray
    time_to_expiry: FloatArray
    log_moneyness: FloatArray
    expiry: npt.NDArray[np.datetime64]
    settlement: npt.NDArray[np.object_]
    expiry_time: FloatArray
    forward: FloatArray
    discount_factor: FloatArray
    forward_status: npt.NDArray[np.int8]
    forward_pairs: IntArray
    has_smile: BoolArray
    counts: dict[str, int] = field(default_factory=dict)
    expiry_counts: dict[str, IntArray] = field(default_factory=dict)


def _expiry_groups(
    expiry: npt.NDArray[np.datetime64], settlement: npt.NDArray[np.object_]
) -> tuple[IntArray, IntArray, npt.NDArray[np.datetime64]]:
    """Group contracts by (expiry date, settlement): the first contract of each group, each
    contract's group, and each group's settlement instant (UTC, ``datetime64[ns]``; one zone
    lookup per group)."""
    days = expiry.astype("datetime64[D]")
    keys = days.astype(np.int64) * 2 + (settlement == schema.AM)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    instants = np.empty(first.size, dtype="datetime64[ns]")
    for j, i in enumerate(first.tolist()):
        date = dt.date.fromisoformat(str(days[i]))
        instant = schema.settlement_instant(date, str(settlement[i]))
        instants[j] = np.datetime64(instant.replace(tzinfo=None), "ns")
    return first.astype(np.int64), inverse.astype(np.int64), instants


def _flag_duplicates(
    flags: FlagArray, slice_id: IntArray, strike: FloatArray, is_call: BoolArray, bid: FloatArray,
    ask: FloatArray,
) -> None:  # fmt: skip
    """Mark all but the best quote of each (expiry group, strike, side) ``NONSTANDARD``."""
    candidates = np.flatnonzero((flags & np.uint16(QuoteFlag.NONSTANDARD)) == 0)
    if candidates.size < 2:
        return
    # Duplicates are rare: look for one first without the spread key, whose sort costs most.
    s = candidates[np.lexsort((is_call[candidates], strike[candidates], slice_id[candidates]))]
    if not _repeats(s, slice_id, strike, is_call).any():
        return
    problems = (flags[candidates] & np.uint16(QUOTE_PROBLEMS)) != 0
    spread = np.nan_to_num(ask[candidates] - bid[candidates], nan=np.inf)
    order = np.lexsort(
        (spread, problems, is_call[candidates], strike[candidates], slice_id[candidates])
    )
    s = candidates[order]
    flags[s[1:][_repeats(s, slice_id, strike, is_call)]] |= np.uint16(QuoteFlag.NONSTANDARD)


def _repeats(s: IntArray, slice_id: IntArray, strike: FloatArray, is_call: BoolArray) -> BoolArray:
    """For contracts ``s`` sorted by (expiry group, strike, side): whether each after the first
    has the same key as the one before."""
    return np.asarray(
        (slice_id[s[1:]] == slice_id[s[:-1]])
        & (strike[s[1:]] == strike[s[:-1]])
        & (is_call[s[1:]] == is_call[s[:-1]]),
        dtype=bool,
    )


@dataclass(slots=True)
class _Pairs:
    """Put-call pairs of clean quotes, grouped by expiry group."""

    slice_id: IntArray
    call: IntArray
    put: IntArray


def _pairs(flags: FlagArray, slice_id: IntArray, strike: FloatArray, is_call: BoolArray) -> _Pairs:
    clean = np.flatnonzero((flags & np.uint16(QUOTE_PROBLEMS)) == 0)
    order = np.lexsort((is_call[clean], strike[clean], slice_id[clean]))
    s = clean[order]
    match = (
        (slice_id[s[:-1]] == slice_id[s[1:]])
        & (strike[s[:-1]] == strike[s[1:]])
        & ~is_call[s[:-1]]
        & is_call[s[1:]]
    )
    return _Pairs(slice_id[s[:-1]][match], s[1:][match], s[:-1][match])


def _fit_forwards(
    pairs: _Pairs,
    strike: FloatArray,
    quotes: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    expiry_time: FloatArray,
    curve_discount: FloatArray | None,
    config: CleaningConfig,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Forward, DF and pair count per expiry group from (European or European-equivalent)
    pair quotes ``(call_bid, call_ask, put_bid, put_ask)`` aligned with ``pairs``; pairs with a
    NaN quote are left out. All expiries are fitted at once (one padded row each)."""
    n = expiry_time.size
    starts = np.searchsorted(pairs.slice_id, np.arange(n))
    counts = np.bincount(pairs.slice_id, minlength=n)
    width = max(int(counts.max()) if counts.size else 0, 1)
    column = np.arange(pairs.slice_id.size) - starts[pairs.slice_id]
    tables = np.full((5, n, width), np.nan)
    tables[:, pairs.slice_id, column] = (strike[pairs.call], *quotes)
    k, cb, ca, pb, pa = tables
    if curve_discount is None:
        joint = parity_forwards(k, cb, ca, pb, pa, None, config=config)
        rates = smooth_rates(
            expiry_time, joint.discount_factor, joint.discount_error, config.huber_threshold
        )
        discount = np.exp(-rates * expiry_time)
    else:
        discount = curve_discount
    fits = parity_forwards(k, cb, ca, pb, pa, discount, config=config)
    return fits.forward, discount, fits.pairs


def _near_pairs(
    pairs: _Pairs,
    strike: FloatArray,
    mid: FloatArray,
    forward: FloatArray,
    discount: FloatArray,
    config: CleaningConfig,
) -> _Pairs:
    """The pairs of each expiry group that parity may use (in expiry-group order).

    :func:`~periscope.volatility.forwards.parity_forwards` takes at most ``forward_pairs`` pairs
    nearest its guess of the forward, within ``forward_band`` ATM deviations (from the ATM
    straddle, ``≈ 0.8 DF F σ√T``) or among the ``min_forward_pairs`` nearest; this keeps the same
    with a margin (:data:`_PAIR_MARGIN` more pairs, a band a fifth wider), measured from
    ``forward``. A group whose forward is unknown keeps its first pairs.
    """
    if pairs.slice_id.size == 0:
        return pairs
    n = forward.size
    with np.errstate(invalid="ignore", divide="ignore"):
        distance = np.abs(np.log(strike[pairs.call] / forward[pairs.slice_id]))
        straddle = mid[pairs.call] + mid[pairs.put]
    distance = np.where(np.isfinite(distance), distance, np.inf)
    order = np.lexsort((distance, pairs.slice_id))
    grouped = pairs.slice_id[order]
    first = np.searchsorted(grouped, grouped)
    rank = np.arange(order.size) - first
    # The straddle of each group's nearest pair: the ATM deviation σ√T ≈ straddle / (0.8 DF F).
    atm_straddle = np.full(n, np.nan)
    atm_straddle[grouped[rank == 0]] = straddle[order[rank == 0]]
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = atm_straddle / (0.7979 * discount * forward)
    band = 1.2 * config.forward_band * deviation[grouped]
    inside = ~(distance[order] > band)  # NaN bands keep the pair
    keep = (rank < config.forward_pairs + _PAIR_MARGIN) & (
        inside | (rank < config.min_forward_pairs + _PAIR_MARGIN)
    )
    chosen = np.sort(order[keep])  # pairs come sorted by expiry group; keep that order
    return _Pairs(pairs.slice_id[chosen], pairs.call[chosen], pairs.put[chosen])


def _american_forwards(
    pairs: _Pairs,
    strike: FloatArray,
    is_call: BoolArray,
    bid: FloatArray,
    ask: FloatArray,
    spot: float,
    expiry_time: FloatArray,
    curve_discount: FloatArray | None,
    american: BoolArray,
    start: tuple[FloatArray, FloatArray, IntArray],
    schedule: FloatArray | None,
    config: CleaningConfig,
) -> tuple[FloatArray, FloatArray, IntArray, FloatArray]:
    """Iterate "de-Americanize the pairs at (F, DF), re-fit parity" from ``start``.

    Only the near-the-money pairs that parity can use go through trees (calls and puts in one
    batch). The map F -> F' is smooth and contracting (the premiums depend on F through the
    dividends it implies) but slowly (a factor of about 0.5 per round), so the round before the
    last takes an Aitken Δ² step per expiry, F* = F₃ + (F₃ - F₂) g / (1 - g) with
    g = (F₃ - F₂) / (F₂ - F₁), from rounds after the first (whose step from the American mids
    is not geometric). Without a curve the discount factors come from the same pairs and
    converge with the forwards (the American mids' DF is 3 % off at a year on the benchmark's
    chain), so they take the same step: with the forwards' alone the last round starts from a
    DF a whole step behind, and the forwards end two to four times as far from their fixed
    point at the 99th percentile (docs/surfaces.md).
    The rounds before the last use coarser trees and a single volatility update of the
    premium's own fixed point (which then advances with the forward's), each starting from the
    previous round's premiums; the last round runs it out.

    Returns the forwards, discount factors, pair counts and the premium per contract (NaN for
    the contracts not de-Americanized here).
    """
    forward, discount, count = start
    near = _near_pairs(pairs, strike, 0.5 * (bid + ask), forward, discount, config)
    side = np.concatenate([near.call, near.put])
    pair_slice = np.concatenate([near.slice_id, near.slice_id])
    mid = 0.5 * (bid[side] + ask[side])
    premium = np.full(side.size, np.nan)
    previous = (forward, discount)

    def steps(round_: int) -> int:
        # The premiums of the rounds before the last only move the forward towards its fixed
        # point: coarser trees do (their error is a small share of the premium).
        if round_ + 1 < config.american_iterations:
            return min(config.tree_steps, _COARSE_STEPS)
        return config.tree_steps

    def sigma_rounds(round_: int) -> int:
        # Likewise one volatility update per round before the last: the premium's own fixed
        # point (sigma = IV of the de-Americanized mid) then advances with the forward's, each
        # round starting from the previous round's premiums; the last round runs it out.
        if round_ + 1 < config.american_iterations:
            return 1
        return config.deamericanize_rounds

    for round_ in range(config.american_iterations):
        fwd, df, t = forward[pair_slice], discount[pair_slice], expiry_time[pair_slice]
        ok = american[pair_slice] & np.isfinite(fwd) & np.isfinite(df)
        found = np.zeros(side.size)
        if ok.any():
            _, found[ok] = european_equivalent(
                mid[ok], spot, strike[side][ok], t[ok], fwd[ok], df[ok], is_call[side][ok],
                dividend_model=config.dividend_model, steps=steps(round_),
                rounds=sigma_rounds(round_), dividends=schedule,
                initial_premium=premium[ok] if round_ else None,
            )  # fmt: skip
        premium = np.where(ok, found, np.nan)
        # The premium is a model quantity: widen the quote by a share of it, so pairs deep
        # in the money (large premiums, at the exercise boundary) weigh little.
        widen = config.premium_uncertainty * found
        low, high = bid[side] - found - widen, ask[side] - found + widen
        m = near.call.size
        new, new_discount, count = _fit_forwards(
            near, strike, (low[:m], high[:m], low[m:], high[m:]), expiry_time, curve_discount,
            config,
        )  # fmt: skip
        new = np.where(american, new, forward)
        if round_ >= 2 and round_ + 2 == config.american_iterations:
            new = _aitken(previous[0], forward, new)
            new_discount = _aitken(previous[1], discount, new_discount)
        previous, forward, discount = (forward, discount), new, new_discount
    contract_premium = np.full(strike.size, np.nan)
    contract_premium[side] = premium
    return forward, discount, count, contract_premium


def _aitken(first: FloatArray, second: FloatArray, third: FloatArray) -> FloatArray:
    """Aitken's Δ² limit of three iterates of a contraction, element-wise:
    ``x₃ + (x₃ - x₂) g / (1 - g)`` with ``g = (x₃ - x₂) / (x₂ - x₁)``, where ``|g| <=``
    :data:`_AITKEN_RATIO`; ``x₃`` elsewhere. A ratio near or beyond one means the first move
    was small by chance (call and put premiums cancelling), not a slow contraction."""
    step, last = second - first, third - second
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = last / step
    usable = np.isfinite(ratio) & (np.abs(step) > 0) & (np.abs(ratio) <= _AITKEN_RATIO)
    return np.where(usable, second + last / (1.0 - np.where(usable, ratio, 0.0)), third)


def prepare_smiles(
    chain: xr.Dataset,
    rate_curve: ZeroCurve | None = None,
    *,
    config: CleaningConfig = DEFAULT_CLEANING,
    dividends: CashDividends | None = None,
    all_volatilities: bool = True,
) -> PreparedChain:
    """Clean one underlying's chain and turn it into per-expiry smiles of implied volatilities.

    Parameters
    ----------
    chain
        A canonical chain (:func:`periscope.schema.build_chain_dataset` layout) of one
        underlying: European (index) or American (stock, ETF) calls and puts.
    rate_curve
        Zero curve for the discount factors; None infers them from put-call parity (joint
        DF/forward fits smoothed over expiries).
    config
        Cleaning thresholds and forward/tree settings.
    dividends
        The underlying's known cash dividends (ex-dates and amounts; past ones are ignored):
        the de-Americanization trees pay them on their ex-dates. None (default): the dividends
        implied by the forwards are paid as ``config.dividend_model`` says. Ignored for
        European chains.
    all_volatilities
        Implied volatilities of every priced European contract (both sides, flagged quotes
        too); False: only of the quotes that may go into the smiles (the others keep NaN and
        :data:`NOT_INVERTED`), which gives the same smiles in half the inversions. American
        contracts outside the fit are never inverted.

    Returns
    -------
    PreparedChain
        Smiles, per-contract flags and volatilities, per-expiry forwards and counts.

    Notes
    -----
    Never raises on bad quotes: they are flagged and counted. The chain's ``snapshot_time``
    (else ``underlying_time``) is the valuation instant; a quote is stale when older than the
    underlying's price time (else the snapshot) by more than ``config.stale_after``.
    """
    size = int(chain.sizes.get(schema.CONTRACT, 0))

    variables = chain.variables

    def values(name: str) -> npt.NDArray[np.generic]:
        return np.asarray(variables[name].values)

    strike = values(schema.STRIKE).astype(np.float64)
    right = values(schema.RIGHT)
    is_call = right == schema.CALL
    style = values(schema.EXERCISE_STYLE)
    american = style == "american"
    shares = values(schema.SHARES_PER_CONTRACT).astype(np.float64)
    bid = values(schema.BID).astype(np.float64)
    ask = values(schema.ASK).astype(np.float64)
    quote_time = values(schema.QUOTE_TIME).astype("datetime64[ns]")
    underlying_time = values(schema.UNDERLYING_TIME).astype("datetime64[ns]")
    snapshot = values(schema.SNAPSHOT_TIME).astype("datetime64[ns]")
    valuation = np.where(np.isnat(snapshot), underlying_time, snapshot)
    reference = np.where(np.isnat(underlying_time), snapshot, underlying_time)
    prices = values(schema.UNDERLYING_PRICE).astype(np.float64)
    finite_prices = prices[np.isfinite(prices) & (prices > 0)]
    spot = float(np.median(finite_prices)) if finite_prices.size else float("nan")
    names = values(schema.UNDERLYING)
    underlying = str(names[0]) if size else ""
    if size and (names != names[0]).any():
        logger.warning("chain mixes underlyings %s; preparing them as one", sorted(set(names)))

    # Expiry groups (date, settlement), ordered by time to expiry (ACT/365 to the settlement
    # instant from the valuation instant: the snapshot, else the underlying's price time).
    expiry_days = values(schema.EXPIRY).astype("datetime64[D]")
    settlement = np.asarray(values(schema.SETTLEMENT), dtype=object)
    first, inverse, instants = _expiry_groups(expiry_days, settlement)
    elapsed = instants[inverse].astype(np.int64) - valuation.astype(np.int64)
    time_to_expiry = np.where(np.isnat(valuation), np.nan, elapsed / _YEAR_NS).astype(np.float64)
    known = np.isfinite(time_to_expiry)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_time = np.bincount(
            inverse, weights=np.where(known, time_to_expiry, 0.0), minlength=first.size
        ) / np.bincount(inverse, weights=known.astype(np.float64), minlength=first.size)
    order = np.lexsort((first, group_time))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    slice_id = rank[inverse].astype(np.int64)
    n_slices = first.size
    expiry_time = group_time[order]
    slice_expiry = expiry_days[first[order]]
    slice_settlement = settlement[first[order]]

    standard = (
        np.isin(right, [schema.CALL, schema.PUT])
        & (shares == config.standard_shares)
        & np.isin(style, ["american", "european"])
        & np.isfinite(strike)
        & (strike > 0)
    )
    flags = flag_quotes(bid, ask, quote_time, reference, time_to_expiry, standard, config)
    _flag_duplicates(flags, slice_id, strike, is_call, bid, ask)
    mid = 0.5 * (bid + ask)

    # -- forwards -------------------------------------------------------------------------------
    slice_american = np.zeros(n_slices, dtype=bool)
    np.logical_or.at(slice_american, slice_id[american & standard], True)
    deamericanize = bool(slice_american.any()) and np.isfinite(spot)
    if slice_american.any() and not np.isfinite(spot):
        logger.warning("American chain without an underlying price: treated as European")
    curve_discount = None
    if rate_curve is not None:
        curve_discount = rate_curve.discount_factor(np.maximum(expiry_time, 0.0))
    pairs = _pairs(flags, slice_id, strike, is_call)
    c, p = pairs.call, pairs.put
    pair_quotes = (bid[c], ask[c], bid[p], ask[p])
    forward, discount, n_pairs = _fit_forwards(
        pairs, strike, pair_quotes, expiry_time, curve_discount, config
    )
    schedule = None
    if dividends is not None and size:
        known_valuation = valuation[~np.isnat(valuation)]
        if known_valuation.size:
            schedule = dividends.schedule(known_valuation.max())
    pair_premium = np.full(size, np.nan)
    if deamericanize:
        forward, discount, n_pairs, pair_premium = _american_forwards(
            pairs, strike, is_call, bid, ask, spot, expiry_time, curve_discount, slice_american,
            (forward, discount, n_pairs), schedule, config,
        )  # fmt: skip
    status = np.where(
        n_pairs >= config.min_forward_pairs, ForwardStatus.OK, ForwardStatus.FEW_PAIRS
    ).astype(np.int8)
    status[n_pairs == 0] = ForwardStatus.MISSING
    forward, status = fill_forwards(expiry_time, forward, status, discount, spot)

    # -- out-of-the-money side and implied volatilities ------------------------------------------
    contract_forward = forward[slice_id] if size else np.zeros(0)
    contract_discount = discount[slice_id] if size else np.zeros(0)
    no_forward = ~np.isfinite(contract_forward)
    flags[no_forward] |= np.uint16(QuoteFlag.NO_FORWARD)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_moneyness = np.log(strike / contract_forward)
    otm = np.where(is_call, strike >= contract_forward, strike < contract_forward)
    flags[~otm & ~no_forward] |= np.uint16(QuoteFlag.NOT_OTM)

    iv_bid = np.full(size, np.nan)
    iv_mid = np.full(size, np.nan)
    iv_ask = np.full(size, np.nan)
    iv_status = np.full(size, NOT_INVERTED, dtype=np.int8)
    priced = np.isfinite(mid) & (mid > 0) & ~no_forward & (time_to_expiry > 0) & standard
    deam = priced & american & deamericanize
    invert = deam & (flags == 0)  # American: only the quotes that go into the fit
    european_mid = mid.copy()
    shift = np.zeros(size)
    if invert.any():
        # The pairs are anchors, started from their premiums (at a forward close to the final
        # one), with every _SMILE_ANCHORS-th other quote; the rest keep interpolated premiums.
        european_mid[invert], shift[invert] = european_equivalent(
            mid[invert], spot, strike[invert], time_to_expiry[invert], contract_forward[invert],
            contract_discount[invert], is_call[invert], dividend_model=config.dividend_model,
            steps=config.tree_steps, rounds=config.deamericanize_rounds, dividends=schedule,
            initial_premium=pair_premium[invert], anchor_spacing=_SMILE_ANCHORS,
        )  # fmt: skip
    solve = (priced & ~deam) | invert
    if not all_volatilities:
        solve &= flags == 0  # the smiles' candidates (invert is among them already)
    if solve.any():
        # Mid, bid and ask in one pass of the solver (the same contracts three times).
        m = int(solve.sum())
        premium = np.nan_to_num(shift[solve], nan=0.0)
        with np.errstate(invalid="ignore"):
            prices = np.concatenate([
                european_mid[solve],
                np.where(bid[solve] > 0, bid[solve] - premium, np.nan),
                ask[solve] - premium,
            ])  # fmt: skip
        vols, codes = _black_iv_flat(
            prices, np.tile(contract_forward[solve], 3), np.tile(strike[solve], 3),
            np.tile(time_to_expiry[solve], 3), np.tile(contract_discount[solve], 3),
            np.tile(is_call[solve], 3),
        )  # fmt: skip
        iv_mid[solve], iv_status[solve] = vols[:m], codes[:m]
        iv_bid[solve], iv_ask[solve] = vols[m : 2 * m], vols[2 * m :]
    candidate = flags == 0
    failed = candidate & ~(np.isfinite(iv_mid) & (iv_mid > 0))
    below = failed & (iv_status == IVStatus.BELOW_INTRINSIC)
    flags[below] |= np.uint16(QuoteFlag.BELOW_INTRINSIC)
    flags[failed & ~below] |= np.uint16(QuoteFlag.IV_FAILED)

    # -- smiles -----------------------------------------------------------------------------------
    usable = flags == 0
    per_slice = np.bincount(slice_id[usable], minlength=n_slices) if size else np.zeros(0, int)
    few = per_slice < config.min_quotes
    flags[usable & few[slice_id]] |= np.uint16(QuoteFlag.FEW_QUOTES)
    usable = flags == 0
    smiles: list[SmileQuotes] = []
    vega_all = np.full(size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sqrt_t = np.sqrt(np.maximum(time_to_expiry, 0.0))
        d1 = -log_moneyness / (iv_mid * sqrt_t) + 0.5 * iv_mid * sqrt_t
        vega_all = contract_forward * np.exp(-0.5 * d1**2) / _SQRT_2PI * sqrt_t
    has_smile = ~few
    members = np.flatnonzero(usable)
    members = members[np.lexsort((strike[members], slice_id[members]))]
    bounds = np.searchsorted(slice_id[members], np.arange(n_slices + 1))
    for j in range(n_slices):
        if not has_smile[j]:
            continue
        idx = members[bounds[j] : bounds[j + 1]]
        smiles.append(
            SmileQuotes(
                expiry=slice_expiry[j],
                time_to_expiry=float(expiry_time[j]),
                forward=float(forward[j]),
                discount_factor=float(discount[j]),
                strike=strike[idx].copy(),
                log_moneyness=log_moneyness[idx].copy(),
                iv_bid=iv_bid[idx].copy(),
                iv_mid=iv_mid[idx].copy(),
                iv_ask=iv_ask[idx].copy(),
                vega=vega_all[idx].copy(),
                is_call=is_call[idx].copy(),
            )
        )

    counts = count_flags(flags)
    expiry_counts = {
        name: np.bincount(slice_id[(flags & np.uint16(flag)) != 0], minlength=n_slices).astype(
            np.int64
        )
        for flag in QuoteFlag
        for name in (str(flag.name).lower(),)
    }
    expiry_counts["used"] = np.bincount(slice_id[usable], minlength=n_slices).astype(np.int64)
    expiry_counts["total"] = np.bincount(slice_id, minlength=n_slices).astype(np.int64)
    return PreparedChain(
        underlying=underlying,
        spot=spot,
        smiles=smiles,
        flags=flags,
        iv_bid=iv_bid,
        iv_mid=iv_mid,
        iv_ask=iv_ask,
        iv_status=iv_status,
        used_in_fit=usable,
        slice_index=slice_id,
        time_to_expiry=time_to_expiry,
        log_moneyness=log_moneyness,
        expiry=slice_expiry,
        settlement=slice_settlement,
        expiry_time=expiry_time,
        forward=forward,
        discount_factor=discount,
        forward_status=status,
        forward_pairs=n_pairs,
        has_smile=has_smile,
        counts=counts,
        expiry_counts=expiry_counts,
    )
