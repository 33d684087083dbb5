"""Reading the audit log (admin)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from vcbridge.core.api import responses
from vcbridge.core.app_keys import DATABASE, ZONE
from vcbridge.core.auth.principal import Permission
from vcbridge.core.db.models import AuditEvent
from vcbridge.core.http.auth_middleware import require_permission
from vcbridge.core.http.errors import invalid
from vcbridge.core.http.parsing import MAX_ID, query_datetime, query_int
from vcbridge.core.http.render import render


async def list_audit(request: web.Request) -> web.Response:
    """GET /api/v1/audit, newest first.

    Filters: action, actor, target_type, target_id, from, to; pages with `before_id`."""
    require_permission(request, Permission.READ_AUDIT)
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    for name, column in (("action", AuditEvent.action), ("actor", AuditEvent.actor),
                         ("target_type", AuditEvent.target_type),
                         ("target_id", AuditEvent.target_id)):
        if (value := request.query.get(name)) is not None:
            query = query.where(column == value)
    if (since := query_datetime(request, "from")) is not None:
        query = query.where(AuditEvent.at >= since)
    if (until := query_datetime(request, "to")) is not None:
        if since is not None and until <= since:
            raise invalid("query parameter 'to' must be after 'from'")
        query = query.where(AuditEvent.at < until)
    if "before_id" in request.query:
        query = query.where(AuditEvent.id < query_int(request, "before_id", 0, 1, MAX_ID))
    limit = query_int(request, "limit", 100, 1, 1000)
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        events = (await session.scalars(query.limit(limit))).all()
    return render(responses.AuditEventList(
        events=[responses.AuditEvent.of(e, zone) for e in events]))


async def list_actions(request: web.Request) -> web.Response:
    """GET /api/v1/audit/actions: every action in the log with its count (a filter's
    choices: features add actions of their own, so no fixed list is complete)."""
    require_permission(request, Permission.READ_AUDIT)
    query = (select(AuditEvent.action, func.count()).group_by(AuditEvent.action)
             .order_by(AuditEvent.action))
    async with request.app[DATABASE].read() as session:
        rows = (await session.execute(query)).all()
    return render(responses.AuditActionList(actions=[
        responses.AuditActionCount(action=action, count=count) for action, count in rows]))


def setup_routes(app: web.Application) -> None:
    """Register the audit routes."""
    app.router.add_get("/api/v1/audit", list_audit)
    app.router.add_get("/api/v1/audit/actions", list_actions)
