"""The health route, served through the real ASGI app."""

from __future__ import annotations

import asyncio

import httpx

import periscope
from api import create_app
from periscope.settings import Settings


def _get(path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(Settings()))
        async with httpx.AsyncClient(transport=transport, base_url="http://periscope") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_read_health__ok_with_version() -> None:
    response = _get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": periscope.__version__}


def test_openapi__documents_health() -> None:
    schema = _get("/openapi.json").json()
    assert "/health" in schema["paths"]
