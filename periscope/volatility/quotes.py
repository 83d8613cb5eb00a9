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
The European-equivalent price of an American quote is ``P_am - EEP(σ)``, the early-exercise
premium measured on the same Leisen-Reimer tree (American minus European value at σ), with σ the
Black volatility of the European-equivalent price itself: a fixed point reached in a few rounds
(``σ₀`` from the American price taken as European). At the fixed point the tree's American value
at σ is the quoted price, so this is Burkovska et al.'s "imply σ with the American tree, price the
European at σ"; computing the premium as a difference of two trees cancels the tree's own
discretization error, and it costs two trees per round instead of a root search of ~15.

The tree needs the spot, a rate and a dividend treatment consistent with the forward: the rate is
``r = -ln(DF)/T`` and the dividends are worth ``PV = S - F·DF`` to each expiry. The chain carries
no dividend schedule, so :attr:`CleaningConfig.dividend_model` says how the tree pays them:
``"cash"`` (default, single stocks: escrowed cash dividends, the PV spread evenly over the
option's life, so the tree on ``S - PV`` has the Black volatility of the forward) or ``"yield"``
(ETFs and baskets: the continuous yield ``q = r - ln(F/S)/T``). Both reproduce the forward; they
differ only in the premium, by up to ~5e-4 of the forward at a year, so the caller, who knows the
underlying's type, should choose.

The forward itself comes from parity on de-Americanized near-the-money pairs, iterated with the
dividends it implies (:attr:`CleaningConfig.american_iterations` rounds from parity on the
American mids, with an Aitken step): measured on the simulator with the true rate curve, within
1e-4 of the true forward for ETFs and ~2e-4 for high-yield stocks up to six months. Each pair's
quotes are widened by :attr:`CleaningConfig.premium_uncertainty` times its premium, so deep
in-the-money pairs (large premiums, at the exercise boundary) barely count. Without a rate curve
the rates come from the same de-Americanized pairs and are much less certain (errors of ~1e-3
in the forward of long American expiries): pass a curve (:class:`ZeroCurve`) for American chains.

Only the quotes that go into the fit (and the near-the-money pairs of the forward) go through
trees; other American contracts keep NaN volatilities with status :data:`NOT_INVERTED`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import xarray as xr

from periscope import schema
from periscope.pricing.binomial import binomial_price
from periscope.volatility.cleaning import (
    DEFAULT_CLEANING,
    QUOTE_PROBLEMS,
    CleaningConfig,
    FlagArray,
    QuoteFlag,
    count_flags,
    flag_quotes,
)
from periscope.volatility.forwards import (
    ForwardStatus,
    fill_forwards,
    parity_forwards,
    smooth_rates,
)
from periscope.volatility.implied import implied_volatility_black
from periscope.volatility.rates import ZeroCurve
from periscope.volatility.smile import SmileQuotes
from periscope.volatility.status import IVStatus

__all__ = ["NOT_INVERTED", "PreparedChain", "european_equivalent", "prepare_smiles"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

NOT_INVERTED: Final = -1
"""``iv_status`` of a contract whose volatility was not computed (an American quote outside the
fit, or a contract without a forward or a price)."""

_YEAR_NS: Final = 365.0 * 86400.0 * 1e9
_SQRT_2PI: Final = float(np.sqrt(2.0 * np.pi))
_DEAMERICANIZE_ROUNDS: Final = 3
_CASH_DIVIDENDS: Final = 8

DividendModel = Literal["cash", "yield"]
"""How the tree pays the dividends implied by the forward: escrowed cash or a continuous yield."""


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


def _tree_premium(
    spot: float,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    rate: FloatArray,
    dividend_pv: FloatArray,
    volatility: FloatArray,
    is_call: BoolArray,
    model: DividendModel,
    steps: int,
) -> FloatArray:
    """American minus European value on the same tree (the early-exercise premium)."""
    out = np.empty(strike.size)
    if model == "yield":
        # q such that S e^{(r - q) T} = (S - PV) e^{r T}.
        yield_ = -np.log1p(-dividend_pv / spot) / time_to_expiry
        args = (spot, strike, time_to_expiry, rate, yield_, volatility, is_call)
        american = binomial_price(*args, american=True, steps=steps)
        return np.maximum(american - binomial_price(*args, american=False, steps=steps), 0.0)
    # Cash dividends: the chain gives only their present value to each expiry, so spread it
    # evenly over the option's life (_CASH_DIVIDENDS equal amounts at the midpoints of equal
    # periods): the escrowed tree on S - PV then has the Black volatility of the forward.
    groups, inverse = np.unique(time_to_expiry, return_inverse=True)
    for j, t in enumerate(groups.tolist()):
        members = inverse == j
        pv = float(dividend_pv[members][0])
        r = float(rate[members][0])
        if pv > 0.0:
            times = (np.arange(_CASH_DIVIDENDS) + 0.5) * (t / _CASH_DIVIDENDS)
            amount = pv / float(np.exp(-r * times).sum())
            schedule: FloatArray | None = np.column_stack([times, np.full(times.size, amount)])
            group_yield = 0.0
        else:  # a forward above S e^{rT} (negative dividends, borrow cost): a negative yield
            schedule = None
            group_yield = -float(np.log1p(-pv / spot)) / t
        tree = (spot, strike[members], t, r, group_yield, volatility[members], is_call[members])
        american = binomial_price(*tree, american=True, steps=steps, dividends=schedule)
        european = binomial_price(*tree, american=False, steps=steps, dividends=schedule)
        out[members] = np.maximum(american - european, 0.0)
    return out


def european_equivalent(
    price: FloatArray,
    spot: float,
    strike: FloatArray,
    time_to_expiry: FloatArray,
    forward: FloatArray,
    discount_factor: FloatArray,
    is_call: BoolArray,
    *,
    dividend_model: DividendModel = "cash",
    steps: int = DEFAULT_CLEANING.tree_steps,
    rounds: int = _DEAMERICANIZE_ROUNDS,
) -> tuple[FloatArray, FloatArray]:
    """De-Americanize prices: ``P_am - EEP(σ)`` at the fixed point σ = Black IV of the result.

    Parameters
    ----------
    price
        American prices per share (mids), ≥ 0.
    spot
        Underlying price, > 0.
    strike, time_to_expiry, forward, discount_factor, is_call
        Per price: K, T (years), the expiry's forward and discount factor, the side.
    dividend_model
        How the dividends implied by the forward, ``PV = S - F·DF``, are paid in the tree:
        ``"cash"`` (escrowed cash dividends spread evenly over the option's life; stocks) or
        ``"yield"`` (a continuous yield; ETFs and indices).
    steps
        Leisen-Reimer steps (odd).
    rounds
        Fixed-point rounds (each prices two trees per option).

    Returns
    -------
    european, premium
        European-equivalent prices and the early-exercise premium subtracted (NaN where the
        Black volatility of the American price could not be found).

    Notes
    -----
    The tree runs on ``spot`` with ``r = -ln(DF)/T`` and the dividends above, so that its
    forward is ``F`` (see the module docstring). A dividend PV of half the spot or more (a
    forward inconsistent with the spot) falls back to the yield model.
    """
    t = np.maximum(time_to_expiry, 1e-12)
    rate = -np.log(discount_factor) / t
    dividend_pv = spot - forward * discount_factor
    model: DividendModel = dividend_model
    if (dividend_pv >= 0.5 * spot).any():
        model = "yield"
    premium = np.zeros_like(price)
    european = price.copy()
    for _ in range(rounds):
        sigma = implied_volatility_black(european, forward, strike, t, discount_factor, is_call)
        ok = np.isfinite(sigma)
        if not ok.any():
            break
        premium = np.full_like(price, np.nan)
        premium[ok] = _tree_premium(
            spot, strike[ok], t[ok], rate[ok], dividend_pv[ok], sigma[ok], is_call[ok], model,
            steps,
        )  # fmt: skip
        european = price - premium
    return european, premium


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
    problems = (flags[candidates] & np.uint16(QUOTE_PROBLEMS)) != 0
    spread = np.nan_to_num(ask[candidates] - bid[candidates], nan=np.inf)
    order = np.lexsort(
        (spread, problems, is_call[candidates], strike[candidates], slice_id[candidates])
    )
    s = candidates[order]
    repeat = (
        (slice_id[s[1:]] == slice_id[s[:-1]])
        & (strike[s[1:]] == strike[s[:-1]])
        & (is_call[s[1:]] == is_call[s[:-1]])
    )
    flags[s[1:][repeat]] |= np.uint16(QuoteFlag.NONSTANDARD)


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
    tables = []
    for values in (strike[pairs.call], *quotes):
        table = np.full((n, width), np.nan)
        table[pairs.slice_id, column] = values
        tables.append(table)
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


def _american_forwards(
    pairs: _Pairs,
    strike: FloatArray,
    is_call: BoolArray,
    quotes: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    spot: float,
    expiry_time: FloatArray,
    curve_discount: FloatArray | None,
    american: BoolArray,
    start: tuple[FloatArray, FloatArray, IntArray],
    model: DividendModel,
    config: CleaningConfig,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Iterate "de-Americanize the pairs at (F, DF), re-fit parity" from ``start``.

    The map F -> F' is smooth and contracting (the premiums depend on F through the yield it
    implies) but slowly (a factor of about 0.5 per round), so every second round takes an
    Aitken Δ² step per expiry: F* = F₁ + (F₂ - F₁) / (1 - g), g = (F₂ - F₁) / (F₁ - F₀).
    """
    forward, discount, count = start
    cb, ca, pb, pa = quotes
    pair_slice = pairs.slice_id
    previous = forward
    for round_ in range(config.american_iterations):
        fwd, df, t = forward[pair_slice], discount[pair_slice], expiry_time[pair_slice]
        ok = american[pair_slice] & np.isfinite(fwd)
        shifted = []
        for side, bid, ask in ((pairs.call, cb, ca), (pairs.put, pb, pa)):
            premium = np.zeros(side.size)
            if ok.any():
                _, premium[ok] = european_equivalent(
                    0.5 * (bid[ok] + ask[ok]), spot, strike[side][ok], t[ok], fwd[ok], df[ok],
                    is_call[side][ok], dividend_model=model, steps=config.tree_steps,
                )  # fmt: skip
            # The premium is a model quantity: widen the quote by a share of it, so pairs deep
            # in the money (large premiums, at the exercise boundary) weigh little.
            widen = config.premium_uncertainty * premium
            shifted += [bid - premium - widen, ask - premium + widen]
        new, discount, count = _fit_forwards(
            pairs, strike, (shifted[0], shifted[1], shifted[2], shifted[3]), expiry_time,
            curve_discount, config,
        )  # fmt: skip
        new = np.where(american, new, forward)
        if round_ % 2 == 1 and round_ + 1 < config.american_iterations:
            first, second = forward - previous, new - forward
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.clip(second / first, -0.9, 0.9)
            usable = np.isfinite(ratio) & (np.abs(first) > 0)
            new = np.where(usable, forward + second / (1.0 - np.where(usable, ratio, 0.0)), new)
        previous, forward = forward, new
    return forward, discount, count


def prepare_smiles(
    chain: xr.Dataset,
    rate_curve: ZeroCurve | None = None,
    *,
    config: CleaningConfig = DEFAULT_CLEANING,
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

    def values(name: str) -> npt.NDArray[np.generic]:
        return np.asarray(chain[name].values)

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
    if deamericanize:
        forward, discount, n_pairs = _american_forwards(
            pairs, strike, is_call, pair_quotes, spot, expiry_time, curve_discount,
            slice_american, (forward, discount, n_pairs), config.dividend_model, config,
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
        european_mid[invert], shift[invert] = european_equivalent(
            mid[invert], spot, strike[invert], time_to_expiry[invert], contract_forward[invert],
            contract_discount[invert], is_call[invert], steps=config.tree_steps,
        )  # fmt: skip
    solve = (priced & ~deam) | invert
    if solve.any():
        args = (
            contract_forward[solve], strike[solve], time_to_expiry[solve],
            contract_discount[solve], is_call[solve],
        )  # fmt: skip
        iv_mid[solve], iv_status[solve] = implied_volatility_black(
            european_mid[solve], *args, return_status=True
        )
        premium = np.nan_to_num(shift[solve], nan=0.0)
        with np.errstate(invalid="ignore"):
            iv_bid[solve] = implied_volatility_black(
                np.where(bid[solve] > 0, bid[solve] - premium, np.nan), *args
            )
            iv_ask[solve] = implied_volatility_black(ask[solve] - premium, *args)
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
