"""Implied volatility."""

__all__: list[str] = []
