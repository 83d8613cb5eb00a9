"""The FastAPI service: REST (and later WebSocket) over the latest published run.

Never imports prefect (an import contract enforces it) so the API can ship as a slim image.
"""

from api.app import create_app

__all__ = ["create_app"]
