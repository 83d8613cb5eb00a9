"""The application factory. Settings are read here, at start-up, never at import time."""

from __future__ import annotations

from fastapi import FastAPI

import periscope
from api.routes import health
from periscope.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API with ``settings`` (read from the environment when omitted)."""
    app = FastAPI(
        title="Periscope",
        version=periscope.__version__,
        summary="Options analytics: volatility surfaces, pricing and recommendations.",
    )
    app.state.settings = settings or Settings()
    app.include_router(health.router)
    return app
