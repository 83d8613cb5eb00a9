"""Implied volatility: textbook values, edge cases and statuses, broadcasting, peers.

Accuracy against an exact (mpmath) Black price lives in ``test_implied_accuracy.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the conventional alias)
from vollib.black.implied_volatility import implied_volatility as vollib_implied_volatility

from periscope.errors import InvalidInputError
from periscope.pricing import black_price
from periscope.volatility import IVStatus, implied_volatility, implied_volatility_black

OK = IVStatus.OK
BELOW = IVStatus.BELOW_INTRINSIC
ABOVE = IVStatus.ABOVE_MAXIMUM
INVALID = IVStatus.INVALID_INPUT


def test_implied_volatility__hull_example() -> None:
    # Hull, "Options, Futures, and Other Derivatives", chapter "The Black-Scholes-Merton model",
    # implied-volatility example: S=21, K=20, r=0.10, T=0.25, call 1.875 -> 23.5 % (0.234513;
    # quant.md section 6.3, recomputed).
    vol, status = implied_volatility(1.875, 21.0, 20.0, 0.25, 0.10, 0.0, True, return_status=True)
    assert status == OK
    assert float(vol) == pytest.approx(0.234513, abs=5e-7)


def test_implied_volatility_black__tiny_price_from_quant_md() -> None:
    # quant.md 6.6 (verified with vollib/LBR): F=1, K=1.5, sigma=4 %, T=1 call is worth
    # 9.010020309242675e-27 and the implied volatility is 0.04 to 1 ulp.
    vol = implied_volatility_black(9.010020309242675e-27, 1.0, 1.5, 1.0, 1.0, True)
    assert float(vol) == pytest.approx(0.04, rel=1e-14)


@pytest.mark.parametrize(
    ("strike", "price"),
    # quant.md 6.6: F=100, sigma=0.3, one-hour expiry T=1/(365*24); prices to all digits from an
    # exact (50-digit) Black formula, matching the quoted 1.00007, 0.127873 and 8.47478e-05.
    [(99.0, 1.0000749009698993), (100.0, 0.12787306694364384), (101.0, 8.474783004884228e-05)],
)
def test_implied_volatility_black__one_hour_expiry_from_quant_md(
    strike: float, price: float
) -> None:
    vol = implied_volatility_black(price, 100.0, strike, 1.0 / (365.0 * 24.0), 1.0, True)
    assert float(vol) == pytest.approx(0.3, rel=1e-12)


@pytest.mark.parametrize(
    ("price", "expected_vol", "expected_status"),
    # quant.md 6.6 (vollib order: price, F, K, r, t, flag): F=110, K=100, T=1, r=0, call.
    [(9.0, math.nan, BELOW), (111.0, math.nan, ABOVE), (10.0, 0.0, OK)],
)
def test_implied_volatility_black__bounds_from_quant_md(
    price: float, expected_vol: float, expected_status: IVStatus
) -> None:
    vol, status = implied_volatility_black(price, 110.0, 100.0, 1.0, 1.0, True, return_status=True)
    assert status == expected_status
    np.testing.assert_equal(float(vol), expected_vol)


NAN = math.nan
EDGE_CASES = [
    # (scenario, price, forward, strike, time, discount, is_call, expected vol, expected status)
    ("call_at_intrinsic", 10.0, 110.0, 100.0, 1.0, 1.0, True, 0.0, OK),
    ("put_at_intrinsic", 10.0, 90.0, 100.0, 1.0, 1.0, False, 0.0, OK),
    ("discounted_intrinsic", 0.9 * 10.0, 110.0, 100.0, 1.0, 0.9, True, 0.0, OK),
    ("otm_call_price_zero", 0.0, 100.0, 150.0, 1.0, 1.0, True, 0.0, OK),
    ("otm_put_price_zero", 0.0, 100.0, 50.0, 1.0, 1.0, False, 0.0, OK),
    ("intrinsic_minus_rounding", 10.0 - 1e-14, 110.0, 100.0, 1.0, 1.0, True, 0.0, OK),
    ("below_intrinsic_call", 9.99, 110.0, 100.0, 1.0, 1.0, True, NAN, BELOW),
    ("below_intrinsic_put", 9.99, 90.0, 100.0, 1.0, 1.0, False, NAN, BELOW),
    # The forward intrinsic counts, not spot: D (F - K) = 0.95 * 20 = 19 > 18.5.
    ("below_discounted_forward_intrinsic", 18.5, 120.0, 100.0, 1.0, 0.95, True, NAN, BELOW),
    ("call_at_forward", 100.0, 100.0, 90.0, 1.0, 1.0, True, NAN, ABOVE),
    ("call_above_forward", 101.0, 100.0, 90.0, 1.0, 1.0, True, NAN, ABOVE),
    ("put_at_strike", 90.0, 100.0, 90.0, 1.0, 1.0, False, NAN, ABOVE),
    ("discounted_call_at_bound", 95.0, 100.0, 90.0, 1.0, 0.95, True, NAN, ABOVE),
    ("expiry_zero_at_intrinsic", 10.0, 110.0, 100.0, 0.0, 1.0, True, 0.0, OK),
    ("expiry_zero_with_time_value", 10.5, 110.0, 100.0, 0.0, 1.0, True, NAN, ABOVE),
    ("expiry_zero_below_intrinsic", 9.0, 110.0, 100.0, 0.0, 1.0, True, NAN, BELOW),
    ("nan_price", NAN, 100.0, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("nan_forward", 5.0, NAN, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("nan_strike", 5.0, 100.0, NAN, 1.0, 1.0, True, NAN, INVALID),
    ("nan_time", 5.0, 100.0, 100.0, NAN, 1.0, True, NAN, INVALID),
    ("nan_discount", 5.0, 100.0, 100.0, 1.0, NAN, True, NAN, INVALID),
    ("infinite_price", math.inf, 100.0, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("infinite_forward", 5.0, math.inf, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("negative_price", -1.0, 100.0, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("zero_strike", 5.0, 100.0, 0.0, 1.0, 1.0, True, NAN, INVALID),
    ("negative_strike", 5.0, 100.0, -100.0, 1.0, 1.0, True, NAN, INVALID),
    ("zero_forward", 5.0, 0.0, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("negative_forward", 5.0, -100.0, 100.0, 1.0, 1.0, True, NAN, INVALID),
    ("negative_time", 5.0, 100.0, 100.0, -1.0, 1.0, True, NAN, INVALID),
    ("zero_discount", 5.0, 100.0, 100.0, 1.0, 0.0, True, NAN, INVALID),
    ("negative_discount", 5.0, 100.0, 100.0, 1.0, -0.5, True, NAN, INVALID),
]


@pytest.mark.parametrize(
    ("price", "forward", "strike", "time", "discount", "is_call", "expected_vol", "expected"),
    [case[1:] for case in EDGE_CASES],
    ids=[case[0] for case in EDGE_CASES],
)
def test_implied_volatility_black__edge_case_table(
    price: float,
    forward: float,
    strike: float,
    time: float,
    discount: float,
    is_call: bool,
    expected_vol: float,
    expected: IVStatus,
) -> None:
    vol, status = implied_volatility_black(
        price, forward, strike, time, discount, is_call, return_status=True
    )
    assert IVStatus(int(status)) is expected
    np.testing.assert_equal(float(vol), expected_vol)


def test_implied_volatility_black__edge_cases_in_one_batch() -> None:
    # One bad element never disturbs the others, and the batch gives the same answers.
    columns = list(zip(*[case[1:] for case in EDGE_CASES], strict=True))
    price, forward, strike, time, discount, is_call, expected_vol, expected = columns
    vol, status = implied_volatility_black(
        price, forward, strike, time, discount, is_call, return_status=True
    )
    np.testing.assert_array_equal(status, np.array(expected, dtype=np.int8))
    np.testing.assert_array_equal(vol, np.array(expected_vol))


def test_implied_volatility__status_for_bad_rate_and_spot() -> None:
    vol, status = implied_volatility(
        5.0, [100.0, 100.0, 100.0, 0.0], 100.0, 1.0, [NAN, 0.01, 0.01, 0.01],
        [0.0, math.inf, 0.0, 0.0], True, return_status=True,
    )  # fmt: skip
    np.testing.assert_array_equal(status, [INVALID, INVALID, OK, INVALID])
    assert np.isnan(vol[[0, 1, 3]]).all()


def test_implied_volatility__equals_black_on_the_forward() -> None:
    rng = np.random.default_rng(11)
    n = 500
    spot = rng.uniform(50.0, 150.0, n)
    strike = spot * np.exp(rng.uniform(-0.5, 0.5, n))
    T = rng.uniform(0.05, 3.0, n)
    r = rng.uniform(-0.02, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    sigma = rng.uniform(0.05, 0.9, n)
    is_call = rng.random(n) < 0.5
    forward = spot * np.exp((r - q) * T)
    discount = np.exp(-r * T)
    price = black_price(forward, strike, T, discount, sigma, is_call)
    by_spot = implied_volatility(price, spot, strike, T, r, q, is_call)
    by_forward = implied_volatility_black(price, forward, strike, T, discount, is_call)
    # numpy's and the kernel's exp may round F differently by an ulp; an in-the-money option
    # with little time value amplifies that (its volatility is ill-conditioned in F).
    np.testing.assert_allclose(by_spot, by_forward, rtol=1e-10)
    # Against the generating volatility only where the time value carries it (>= 1e-6 of the
    # price; the price itself comes from another module's formula).
    intrinsic = discount * np.maximum(np.where(is_call, forward - strike, strike - forward), 0.0)
    informative = price - intrinsic >= 1e-6 * price
    assert informative.sum() > 400
    np.testing.assert_allclose(by_spot[informative], sigma[informative], rtol=1e-9)


def test_implied_volatility_black__broadcasts_and_keeps_shape() -> None:
    price = np.array([[5.0], [8.0]])  # (2, 1)
    strike = np.array([95.0, 100.0, 105.0])  # (3,)
    vol, status = implied_volatility_black(price, 100.0, strike, 1.0, 1.0, True, return_status=True)
    assert vol.shape == (2, 3)
    assert status.shape == (2, 3)
    assert status.dtype == np.int8
    assert (status == IVStatus.OK).all()
    for i in range(2):
        for j in range(3):
            single = implied_volatility_black(price[i, 0], 100.0, strike[j], 1.0, 1.0, True)
            assert float(single) == vol[i, j]


def test_implied_volatility_black__scalar_and_empty_inputs() -> None:
    scalar = implied_volatility_black(8.0, 100.0, 100.0, 1.0, 1.0, True)
    assert isinstance(scalar, np.ndarray)
    assert scalar.shape == ()
    empty, status = implied_volatility_black(
        np.empty(0), 100.0, 100.0, 1.0, 1.0, True, return_status=True
    )
    assert empty.shape == (0,)
    assert status.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"strike": np.ones(3)}, "strike"),
        ({"time_to_expiry": np.ones((2, 2))}, "time_to_expiry"),
        ({"forward": "100"}, "forward"),
        ({"is_call": np.array([True, False, True])}, "is_call"),
        ({"is_call": 2}, "is_call"),
    ],
)
def test_implied_volatility_black__rejects_bad_arguments(
    kwargs: dict[str, object], argument: str
) -> None:
    arguments: dict[str, object] = {
        "price": np.full(4, 5.0),
        "forward": 100.0,
        "strike": 100.0,
        "time_to_expiry": 1.0,
        "discount_factor": 1.0,
        "is_call": True,
    } | kwargs
    with pytest.raises(InvalidInputError, match=argument) as info:
        implied_volatility_black(**arguments)  # type: ignore[arg-type]
    assert info.value.context["argument"] == argument


def test_implied_volatility__rejects_mismatched_rate() -> None:
    with pytest.raises(InvalidInputError, match="rate"):
        implied_volatility(np.full(3, 5.0), 100.0, 100.0, 1.0, np.zeros(2), 0.0, True)


def _peer_grid(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    forward = rng.uniform(20.0, 200.0, n)
    strike = forward * np.exp(rng.uniform(-0.5, 0.5, n))
    T = rng.uniform(0.02, 2.0, n)
    sigma = rng.uniform(0.05, 1.0, n)
    is_call = rng.random(n) < 0.5
    r = rng.uniform(0.0, 0.06, n)
    discount = np.exp(-r * T)
    # QuantLib's Black formula as the price, so the comparison is against the peers' own model.
    price = np.array(
        [
            ql.blackFormula(ql.Option.Call if c else ql.Option.Put, k, f, s * math.sqrt(t), d)
            for c, k, f, s, t, d in zip(is_call, strike, forward, sigma, T, discount, strict=True)
        ]
    )
    # Keep options whose out-of-the-money part (the time value) is at least 1e-6 of the forward:
    # the peers' tolerances are price-absolute, and deep in the money a smaller time value leaves
    # the volatility undetermined to 1e-9 for every solver.
    intrinsic = discount * np.maximum(np.where(is_call, forward - strike, strike - forward), 0.0)
    keep = price - intrinsic > 1e-6 * forward
    return {
        "price": price[keep],
        "forward": forward[keep],
        "strike": strike[keep],
        "T": T[keep],
        "r": r[keep],
        "discount": discount[keep],
        "is_call": is_call[keep],
    }


def test_implied_volatility_black__agrees_with_quantlib() -> None:
    g = _peer_grid(3000, seed=5)
    ours = implied_volatility_black(
        g["price"], g["forward"], g["strike"], g["T"], g["discount"], g["is_call"]
    )
    theirs = np.array(
        [
            ql.blackFormulaImpliedStdDev(
                ql.Option.Call if c else ql.Option.Put, k, f, p, d, 0.0, ql.nullDouble(), 1e-14
            )
            / math.sqrt(t)
            for c, k, f, p, d, t in zip(
                g["is_call"], g["strike"], g["forward"], g["price"], g["discount"], g["T"],
                strict=True,
            )
        ]
    )  # fmt: skip
    # QuantLib's Brent solver stops on a price tolerance; 1e-9 relative in volatility is its
    # resolution here, ours is about 1e-15 (see the accuracy tests).
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_implied_volatility_black__agrees_with_vollib() -> None:
    g = _peer_grid(1000, seed=6)
    ours = implied_volatility_black(
        g["price"], g["forward"], g["strike"], g["T"], g["discount"], g["is_call"]
    )
    theirs = np.array(
        [
            vollib_implied_volatility(p, f, k, r, t, "c" if c else "p")
            for p, f, k, r, t, c in zip(
                g["price"], g["forward"], g["strike"], g["r"], g["T"], g["is_call"], strict=True
            )
        ]
    )
    # vollib is Jäckel's LBR (pure Python port): both solve to rounding, but vollib undiscounts
    # the price with its own exp(-r t), an ulp apart from ours, which in-the-money conditioning
    # amplifies to ~1e-12 on a few options.
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert np.median(np.abs(ours / theirs - 1.0)) < 1e-15
