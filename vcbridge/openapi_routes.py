"""The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json.

The composition root only assembles it: the core (vcbridge/core/api/openapi.py),
the scheduler, the bridge and monitoring each contribute their paths and the
models of their bodies (vcbridge/core/http/openapi.py `ApiPart`). The document
is pure data, built once per process and cached (tests check it against the
app's router, so a route added without its operation fails)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bridge import openapi as bridge_openapi
from conference_record import openapi as record_openapi
from documents import openapi as documents_openapi
from monitoring import openapi as monitoring_openapi
from scheduler import openapi as scheduler_openapi
from vcbridge import __version__
from vcbridge.core.api import openapi as core_openapi
from vcbridge.core.http.auth_middleware import CSRF_HEADER, SESSION_COOKIE
from vcbridge.core.http.openapi import (
    JSON,
    SHARED_PARAMETERS,
    ApiPart,
    json_content,
    model_schemas,
    operation,
)

OPENAPI_PATH = "/api/v1/openapi.json"


def _merge(parts: Iterable[ApiPart], section: str) -> dict[str, Any]:
    """One section of every part, refusing a name two parts give different meanings."""
    merged: dict[str, Any] = {}
    for part in parts:
        for name, value in getattr(part, section).items():
            if merged.setdefault(name, value) != value:
                raise RuntimeError(f"two different {section} named {name}")
    return merged


def _parts() -> list[ApiPart]:
    features = [scheduler_openapi.part(), bridge_openapi.part(), monitoring_openapi.part(),
                record_openapi.part(),
                documents_openapi.part()]
    core = core_openapi.part(_merge(features, "event_types"), _merge(features, "event_data"))
    meta = ApiPart(paths={OPENAPI_PATH: {"get": operation(
        "getOpenApi", "This OpenAPI document", "meta",
        {"200": json_content({"type": "object"}, "The OpenAPI 3.1 document.")},
        public=True,
    )}})
    return [core, *features, meta]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (built once; treat it as read-only)."""
    parts = _parts()
    schemas = model_schemas(model for part in parts for model in part.models)
    for name, schema in _merge(parts, "schemas").items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas named {name}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vcbridge",
            "version": __version__,
            "description": (
                "Đặt lịch hội nghị truyền hình giữa các điểm cầu của tỉnh.\n\n"
                "Booking of video conferences among the province's endpoints: roster, "
                "conferences (single or recurring) and their lifecycle, iCalendar feeds, "
                "users, tokens, audit, a live event stream, and the bridge's media rooms "
                "(signaling) and recordings, endpoint health and availability, and the "
                "meeting documents with their full-text search."
                "\n\nErrors are always JSON: `{\"error\": {\"code\", \"message\", "
                "\"details\"}}`. Times are RFC 3339 with an offset."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "health", "description": "Sức khỏe / liveness of the service; each "
             "endpoint's health, heartbeats, readiness and monthly availability."},
            {"name": "auth", "description": "Đăng nhập / login and sessions."},
            {"name": "users", "description": "Tài khoản / user accounts."},
            {"name": "endpoints", "description": "Điểm cầu / endpoints and their tokens."},
            {"name": "calendar", "description": "Lịch iCalendar / calendar feeds."},
            {"name": "conferences", "description": "Hội nghị / conferences."},
            {"name": "documents", "description": "Tài liệu / meeting documents "
             "(paperless meeting room): attach, list, download, search."},
            {"name": "audit", "description": "Nhật ký / audit log."},
            {"name": "events", "description": "Sự kiện / the live event stream (WebSocket)."},
            {"name": "bridge", "description": "Phòng họp / the media room: signaling "
             "and recordings."},
            {"name": "meta", "description": "This document."},
        ],
        "paths": _merge(parts, "paths"),
        "components": {
            "schemas": schemas,
            "responses": _merge(parts, "responses"),
            "parameters": SHARED_PARAMETERS | _merge(parts, "parameters"),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A login, agent or calendar token."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                               "description": f"The session cookie set by login; unsafe "
                               f"methods also need the {CSRF_HEADER} header."},
                "calendarToken": {"type": "apiKey", "in": "query", "name": "token",
                                  "description": "A calendar-scope token as `?token=` "
                                  "(calendar feed only; control characters get 400)."},
            },
        },
    }


@functools.cache
def _document_text() -> str:
    return json.dumps(openapi_document(), ensure_ascii=False)


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return web.Response(text=_document_text(), content_type=JSON)


def setup_routes(app: web.Application) -> None:
    """Register the OpenAPI route."""
    app.router.add_get(OPENAPI_PATH, openapi_json)
