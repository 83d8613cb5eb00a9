"""Hypothesis properties of Black-Scholes-Merton prices: parity, monotonicity, bounds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from periscope.pricing import black_price, black_scholes_greeks, black_scholes_price

spots = st.floats(1.0, 1000.0)
moneyness = st.floats(-3.0, 3.0)  # ln(K/S)
times = st.floats(1e-4, 30.0)
rates = st.floats(-0.02, 0.15)
yields = st.floats(0.0, 0.10)
vols = st.floats(0.01, 5.0)


@settings(max_examples=300, deadline=None)
@given(S=spots, m=moneyness, T=times, r=rates, q=yields, sigma=vols)
def test_black_scholes_price__put_call_parity(
    S: float, m: float, T: float, r: float, q: float, sigma: float
) -> None:
    K = S * math.exp(m)
    call, put = black_scholes_price(S, K, T, r, q, sigma, [True, False])
    a, b = S * math.exp(-q * T), K * math.exp(-r * T)
    assert abs((call - put) - (a - b)) <= 1e-12 * (a + b)


@settings(max_examples=300, deadline=None)
@given(S=spots, m=moneyness, T=times, r=rates, q=yields, sigma=vols, is_call=st.booleans())
def test_black_scholes_price__within_no_arbitrage_bounds(
    S: float, m: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> None:
    K = S * math.exp(m)
    a, b = S * math.exp(-q * T), K * math.exp(-r * T)
    price = float(black_scholes_price(S, K, T, r, q, sigma, is_call))
    lower, upper = (max(a - b, 0.0), a) if is_call else (max(b - a, 0.0), b)
    slack = 1e-12 * (a + b)
    assert lower - slack <= price <= upper + slack


@settings(max_examples=300, deadline=None)
@given(
    S=spots,
    m=moneyness,
    dm=st.floats(1e-3, 1.0),
    T=times,
    r=rates,
    q=yields,
    sigma=vols,
    is_call=st.booleans(),
)
def test_black_scholes_price__monotone_in_strike(
    S: float, m: float, dm: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> None:
    low, high = black_scholes_price(
        S, [S * math.exp(m), S * math.exp(m + dm)], T, r, q, sigma, is_call
    )
    slack = 1e-12 * S * math.exp(m + dm)
    if is_call:
        assert high <= low + slack
    else:
        assert high >= low - slack


@settings(max_examples=300, deadline=None)
@given(
    S=spots,
    m=moneyness,
    T=times,
    r=rates,
    q=yields,
    sigma=vols,
    ratio=st.floats(1.001, 3.0),
    is_call=st.booleans(),
)
def test_black_scholes_price__monotone_in_volatility(
    S: float, m: float, T: float, r: float, q: float, sigma: float, ratio: float, is_call: bool
) -> None:
    K = S * math.exp(m)
    low, high = black_scholes_price(S, K, T, r, q, [sigma, sigma * ratio], is_call)
    assert high >= low - 1e-12 * (S + K)
    # ... and vega, the slope, is never negative.
    assert black_scholes_greeks(S, K, T, r, q, sigma, is_call, order=1).vega >= 0.0


@settings(max_examples=200, deadline=None)
@given(S=spots, m=moneyness, T=times, r=rates, q=yields, sigma=vols, is_call=st.booleans())
def test_black_price__agrees_with_black_scholes(
    S: float, m: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> None:
    K = S * math.exp(m)
    bsm = float(black_scholes_price(S, K, T, r, q, sigma, is_call))
    black = float(black_price(S * math.exp((r - q) * T), K, T, math.exp(-r * T), sigma, is_call))
    assert abs(black - bsm) <= 1e-11 * max(bsm, 1e-6 * S)
