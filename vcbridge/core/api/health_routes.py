"""Liveness of the service itself: `/healthz`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from vcbridge import __version__
from vcbridge.core.api.responses import Health
from vcbridge.core.app_keys import CLOCK, DATABASE, HEALTH_REPORTERS, ZONE
from vcbridge.core.clock import to_local_iso
from vcbridge.core.http.render import render


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 once the database answers, 503 otherwise."""
    database = request.app[DATABASE]
    try:
        async with database.read() as session:
            await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return render(Health(status="unavailable", database="unreachable",
                             detail=type(exc).__name__), status=503)
    reports: dict[str, Any] = {name: reporter()
                               for name, reporter in request.app[HEALTH_REPORTERS].items()}
    return render(Health(
        status="ok", database="sqlite" if database.is_sqlite else "postgresql",
        version=__version__, time=to_local_iso(request.app[CLOCK].now(), request.app[ZONE]),
        **reports,
    ))


def setup_routes(app: web.Application) -> None:
    """Register the health route."""
    app.router.add_get("/healthz", healthz)
