"""The OpenAPI 3 document of the API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (placeholder until written out)."""
    return {"openapi": "3.1.0", "info": {"title": "vcbridge", "version": "0.1.0"}, "paths": {}}


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return web.json_response(openapi_document())


def setup_routes(app: web.Application) -> None:
    """Register the OpenAPI route."""
    app.router.add_get("/api/v1/openapi.json", openapi_json)
