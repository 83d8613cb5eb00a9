"""Option pricing: Black-Scholes-Merton and Black-76 prices and Greeks."""

__all__: list[str] = []
