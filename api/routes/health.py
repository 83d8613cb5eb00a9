"""Liveness: is the process up, and which version is it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

import periscope

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str


@router.get("/health", response_model=Health)
def read_health() -> Health:
    """Liveness probe for Kubernetes and load balancers."""
    return Health(status="ok", version=periscope.__version__)
