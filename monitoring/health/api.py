"""HTTP handlers of endpoint health: the board, one endpoint, availability, readiness.

- `GET /api/v1/health`: every endpoint's state (staff: admin, booker, it;
  an operator or agent: its own endpoint only).
- `GET /api/v1/health/{code}`: one endpoint, with `?hours=` (24) of
  per-minute figures and its recent transitions.
- `GET /api/v1/reports/availability?month=YYYY-MM[&format=csv]`: staff.
- `GET /api/v1/conferences/{id}/readiness`: the pre-flight check of a
  conference, for whoever may see the conference."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring.health import availability, store
from monitoring.health.model import HealthState, ReasonCode
from monitoring.health.monitor import MONITOR, EndpointView, HealthMonitor
from monitoring.health.readiness import ParticipantHealth, Readiness, readiness
from monitoring.health.samples import sample_json, samples_since
from monitoring.health.wire import Heartbeat
from vcbridge.core.app_keys import DATABASE, ZONE
from vcbridge.core.auth.conference_access import is_staff, may_see, may_see_endpoint, parties
from vcbridge.core.auth.principal import Permission
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import Conference, Endpoint
from vcbridge.core.event_types import EventType, described
from vcbridge.core.http.auth_middleware import require_permission, require_principal
from vcbridge.core.http.errors import forbidden, invalid, not_found
from vcbridge.core.http.parsing import path_int, query_int

CSV = "text/csv"


def _when(value: datetime | None, zone: ZoneInfo) -> str | None:
    return to_local_iso(value, zone) if value is not None else None


def test_call_json(body: dict[str, Any] | None, zone: ZoneInfo) -> dict[str, Any] | None:
    if not body:
        return None
    result = dict(body)
    result["at"] = to_local_iso(datetime.fromisoformat(body["at"]), zone)
    return result


def view_json(view: EndpointView, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """One endpoint's health as the API shows it."""
    report = view.latest.report_json or {}
    last = view.latest.report.received_at if view.latest.report is not None else None
    return {
        "code": view.endpoint.code,
        "name": view.endpoint.name,
        "name_en": view.endpoint.name_en,
        "state": view.health.state.value,
        "since": _when(view.since, zone),
        "reasons": [r.to_json(zone, now) for r in view.health.reasons],
        "last_heartbeat": _when(last, zone),
        "seconds_since_heartbeat": (round((now - last).total_seconds(), 1)
                                    if last is not None else None),
        "event_stream": view.stream_connected,
        "devices": report.get("devices"),
        "cpu_percent": report.get("cpu_percent"),
        "network": report.get("network"),
        "call": report.get("call"),
        "clock_offset_seconds": report.get("clock_offset_seconds"),
        "agent_version": report.get("agent_version"),
        "test_call": test_call_json(view.latest.test_call_json, zone),
    }


async def list_health(request: web.Request) -> web.Response:
    """GET /api/v1/health: every endpoint (an operator: its own)."""
    principal = require_principal(request)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        if is_staff(principal):
            endpoints = await store.active_endpoints(session)
        elif principal.endpoint_id is not None:
            endpoints = await store.active_endpoints(session, [principal.endpoint_id])
        else:
            raise forbidden("this account is bound to no endpoint")
        views = await monitor.views(session, endpoints)
    now = monitor.clock.now()
    counts = {state.value: 0 for state in HealthState}
    for view in views:
        counts[view.health.state.value] += 1
    return web.json_response({
        "time": to_local_iso(now, zone),
        "counts": counts,
        "endpoints": [view_json(v, zone, now) for v in views],
    })


async def _endpoint_by_code(session: AsyncSession, code: str) -> store.EndpointInfo:
    row = (await session.execute(
        select(Endpoint.id, Endpoint.code, Endpoint.name, Endpoint.name_en)
        .where(Endpoint.code == code)
    )).first()
    if row is None:
        raise not_found(f"no endpoint {code!r}")
    return store.EndpointInfo(*row)


async def get_health(request: web.Request) -> web.Response:
    """GET /api/v1/health/{code}?hours=24: one endpoint, its figures and transitions."""
    principal = require_principal(request)
    hours = query_int(request, "hours", 24, 1, 24 * 35)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    # Changes this process saw but has not stored yet belong in the transitions below.
    with contextlib.suppress(SQLAlchemyError, OSError):
        await monitor.record_changes()
    async with request.app[DATABASE].read() as session:
        endpoint = await _endpoint_by_code(session, request.match_info["code"])
        if not may_see_endpoint(principal, endpoint.id):
            raise forbidden("you can only see your own endpoint's health")
        (view,) = await monitor.views(session, [endpoint])
        now = monitor.clock.now()
        samples = await samples_since(session, endpoint.id, now - timedelta(hours=hours))
        transitions = await store.recent_transitions(session, endpoint.id)
    body = view_json(view, zone, now)
    body["samples"] = [sample_json(s, zone) for s in samples]
    body["transitions"] = [store.transition_json(t, zone, now) for t in transitions]
    return web.json_response(body)


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise invalid("query parameter 'format' must be 'json' or 'csv'")
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    return CSV in accept and "application/json" not in accept


async def availability_report(request: web.Request) -> web.Response:
    """GET /api/v1/reports/availability?month=YYYY-MM[&format=csv]."""
    require_permission(request, Permission.READ_ALL_CONFERENCES)
    as_csv = _wants_csv(request)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    now = monitor.clock.now()
    # Absent means this month; present but empty is as wrong as any other bad month (422).
    month = request.query.get("month")
    if month is None:
        month = availability.current_month(now, zone)
    try:
        async with request.app[DATABASE].read() as session:
            endpoints = await store.active_endpoints(session)
            report = await availability.build_report(session, month, zone, now, endpoints)
    except availability.BadMonth as exc:
        raise invalid(f"query parameter 'month': {exc}") from None
    if as_csv:
        return web.Response(
            body=availability.to_csv(report), content_type=CSV, charset="utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="availability-{report.month}.csv"'},
        )
    return web.json_response({
        "month": report.month,
        "from": to_local_iso(report.start, zone),
        "to": to_local_iso(report.end, zone),
        "elapsed_seconds": round(report.elapsed),
        "endpoints": [availability.row_json(r, report.elapsed) for r in report.rows],
    })


# -- readiness -----------------------------------------------------------------------------


async def conference_readiness(session: AsyncSession, monitor: HealthMonitor,
                               conference: Conference) -> tuple[Readiness, list[EndpointView]]:
    """The pre-flight check of `conference`'s participants, now."""
    endpoints = [store.EndpointInfo(p.endpoint.id, p.endpoint.code, p.endpoint.name,
                                    p.endpoint.name_en) for p in conference.participants]
    views = await monitor.views(session, endpoints)
    participants = [
        ParticipantHealth(
            code=v.endpoint.code, name=v.endpoint.name, health=v.health, since=v.since,
            last_heartbeat=v.latest.report.received_at if v.latest.report else None,
            devices=v.latest.report.devices if v.latest.report else None,
            test_call=v.latest.test_call,
        )
        for v in views
    ]
    return readiness(participants, monitor.clock.now(), monitor.zone), views


def readiness_event_data(result: Readiness) -> dict[str, Any]:
    """`data` of the `conference.readiness` event."""
    return {
        "ready": result.ready,
        "total": result.total,
        "summary_vi": result.summary_vi,
        "summary_en": result.summary_en,
        "endpoints": [
            {"code": item.participant.code, "ready": item.ready,
             "state": item.participant.health.state.value,
             "problems": [r.code.value for r in item.problems]}
            for item in result.items
        ],
    }


async def get_readiness(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/readiness: who is ready for the conference."""
    principal = require_principal(request)
    conference_id = path_int(request, "id", "conference")
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        # A conference the caller may not see is answered as absent (as the booking API does).
        if conference is None or not may_see(principal, parties(conference)):
            raise not_found(f"no conference {conference_id}")
        result, views = await conference_readiness(session, monitor, conference)
    now = monitor.clock.now()
    return web.json_response({
        "conference": conference.id,
        "title": conference.title,
        "status": conference.status.value,
        "start": to_local_iso(conference.start, zone),
        "time": to_local_iso(now, zone),
        "ready": result.ready,
        "total": result.total,
        "summary_vi": result.summary_vi,
        "summary_en": result.summary_en,
        "endpoints": [
            {
                "code": item.participant.code,
                "name": item.participant.name,
                "ready": item.ready,
                "state": item.participant.health.state.value,
                "since": _when(item.participant.since, zone),
                "last_heartbeat": _when(item.participant.last_heartbeat, zone),
                "devices": (view.latest.report_json or {}).get("devices"),
                "test_call": test_call_json(view.latest.test_call_json, zone),
                "problems": [r.to_json(zone, now) for r in item.problems],
                "warnings": [r.to_json(zone, now) for r in item.warnings],
            }
            for item, view in zip(result.items, views, strict=True)
        ],
    })


def setup_routes(app: web.Application) -> None:
    """Register the health, availability and readiness routes."""
    app.router.add_get("/api/v1/health", list_health)
    app.router.add_get("/api/v1/health/{code}", get_health)
    app.router.add_get("/api/v1/reports/availability", availability_report)
    app.router.add_get("/api/v1/conferences/{id}/readiness", get_readiness)



# -- OpenAPI ------------------------------------------------------------------------------
# The operations of these routes, for vcbridge/openapi_routes.py to merge into its
# document (its tests check the document against the router both ways). The `$ref`s
# point at that document's shared components (responses, parameters, security).

_JSON = "application/json"
# What monitoring.availability.month_bounds accepts.
MONTH = r"^(2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])$"
_TIME = {"type": "string", "format": "date-time",
         "description": "RFC 3339 in the province's time zone."}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _closed(properties: dict[str, Any], required: list[str] | None = None,
            description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties) if required is None else required,
                              "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


def _schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(*statuses: int) -> dict[str, Any]:
    names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
             413: "TooLarge", 415: "UnsupportedMediaType", 422: "Invalid"}
    # 400 always: control characters in the URL are refused before routing.
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"}
            for s in sorted({400, *statuses})}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _schema_ref(schema)}}}


def openapi_fragment() -> dict[str, Any]:
    """`{"paths", "schemas", "event_types"}` of the health routes and events."""
    number = {"type": "number"}
    figure = _nullable(number)
    reason = _closed(
        {"code": {"type": "string", "enum": [c.value for c in ReasonCode]},
         "vi": {"type": "string"}, "en": {"type": "string"}, "value": number,
         "limit": number, "at": _TIME},
        required=["code", "vi", "en"],
        description="Why an endpoint is not ok: a stable code, figures, texts.")
    devices = _closed({"camera": {"type": "boolean"}, "microphone": {"type": "boolean"},
                       "speaker": {"type": "boolean"}})
    call = _closed({"conference": _nullable({"type": "integer"}), "rtt_ms": figure,
                    "jitter_ms": figure, "packet_loss_ratio": figure, "bitrate_in_bps": figure,
                    "bitrate_out_bps": figure, "fps": figure, "audio_level": figure})
    test_call = _closed({"ok": {"type": "boolean"}, "at": _TIME,
                         "audio_packets": {"type": "integer"},
                         "video_frames": {"type": "integer"}, "loss": figure,
                         "rtt_ms": figure})
    state = {"type": "string", "enum": [s.value for s in HealthState]}
    reasons = {"type": "array", "items": _schema_ref("HealthReason")}
    endpoint_health: dict[str, Any] = {
        "code": {"type": "string"}, "name": {"type": "string"}, "name_en": {"type": "string"},
        "state": state, "since": _nullable(_TIME), "reasons": reasons,
        "last_heartbeat": _nullable(_TIME), "seconds_since_heartbeat": figure,
        "event_stream": {"type": "boolean"}, "devices": _nullable(devices),
        "cpu_percent": figure,
        "network": _nullable(_closed({"interface": _nullable({"type": "string"}),
                                      "rtt_ms": figure})),
        "call": _nullable(call), "clock_offset_seconds": figure,
        "agent_version": _nullable({"type": "string"}),
        "test_call": _nullable(_schema_ref("HealthTestCall")),
    }
    sample = _closed({"minute": _TIME, "heartbeats": {"type": "integer"},
                      "degraded": {"type": "integer"}, "in_call": {"type": "integer"},
                      **{name: figure for name in (
                          "cpu_percent", "network_rtt_ms", "rtt_ms", "jitter_ms",
                          "packet_loss_ratio", "fps", "bitrate_in_bps", "bitrate_out_bps")}})
    transition = _closed({"at": _TIME, "state": state, "previous": _nullable(state),
                          "reasons": reasons})
    row = _closed({"code": {"type": "string"}, "name": {"type": "string"},
                   "online_percent": figure, "offline_minutes": number,
                   "degraded_minutes": number, "monitored_percent": number,
                   "conferences_invited": {"type": "integer"},
                   "conferences_attended": {"type": "integer"}, "attendance_percent": figure,
                   "mean_rtt_ms": figure, "mean_jitter_ms": figure,
                   "mean_packet_loss_percent": figure, "mean_fps": figure,
                   "call_minutes": {"type": "integer"}})
    participant = _closed({
        "code": {"type": "string"}, "name": {"type": "string"}, "ready": {"type": "boolean"},
        "state": state, "since": _nullable(_TIME), "last_heartbeat": _nullable(_TIME),
        "devices": _nullable(devices), "test_call": _nullable(_schema_ref("HealthTestCall")),
        "problems": reasons, "warnings": reasons})
    heartbeat = Heartbeat.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(heartbeat.pop("$defs", {}))
    schemas |= {
        "Heartbeat": heartbeat,
        "HealthReason": reason,
        "HealthTestCall": test_call,
        "HeartbeatAnswer": _closed({
            "endpoint": {"type": "string"}, "state": state, "since": _TIME,
            "reasons": reasons, "clock_offset_seconds": number,
            "clock_skew": {"type": "boolean"}, "interval_seconds": number,
            "server_time": _TIME}),
        "EndpointHealth": _closed(endpoint_health),
        "HealthBoard": _closed({
            "time": _TIME,
            "counts": _closed({s.value: {"type": "integer"} for s in HealthState}),
            "endpoints": {"type": "array", "items": _schema_ref("EndpointHealth")}}),
        "EndpointHealthDetail": _closed(endpoint_health | {
            "samples": {"type": "array", "items": sample},
            "transitions": {"type": "array", "items": transition}}),
        "AvailabilityReport": _closed({
            "month": {"type": "string", "pattern": MONTH}, "from": _TIME,
            "to": _TIME, "elapsed_seconds": {"type": "integer"},
            "endpoints": {"type": "array", "items": row}}),
        "Readiness": _closed({
            "conference": {"type": "integer"}, "title": {"type": "string"},
            "status": {"type": "string"}, "start": _TIME, "time": _TIME,
            "ready": {"type": "integer"}, "total": {"type": "integer"},
            "summary_vi": {"type": "string"}, "summary_en": {"type": "string"},
            "endpoints": {"type": "array", "items": participant}}),
    }
    staff_or_own = ("Admins, bookers and IT staff see every endpoint; an operator or agent "
                    "only its own (403 for another).")
    security: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
    paths: dict[str, Any] = {
        "/api/v1/endpoints/{code}/heartbeat": {"post": {
            "operationId": "postHeartbeat", "summary": "An endpoint agent's heartbeat",
            "tags": ["health"], "security": [{"bearerAuth": []}],
            "description": "With the agent token of that endpoint only (403 otherwise). "
            "A clock more than health_clock_skew_seconds off is accepted with the reason "
            "clock_skew. See docs/monitoring.md.",
            "parameters": [{"$ref": "#/components/parameters/EndpointCode"}],
            "requestBody": {"required": True,
                            "content": {_JSON: {"schema": _schema_ref("Heartbeat")}}},
            "responses": {
                "200": _ok("HeartbeatAnswer", "Accepted: the endpoint's health now."),
                **_responses(400, 401, 403, 413, 415, 422),
                "429": {"description": "Sooner than health_heartbeat_min_gap_seconds after "
                        "the last accepted heartbeat (code rate_limited); nothing changed.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {_JSON: {"schema": _schema_ref("RateLimitedError")}}},
            },
        }},
        "/api/v1/health": {"get": {
            "operationId": "listEndpointHealth", "summary": "Every endpoint's health",
            "tags": ["health"], "security": security, "description": staff_or_own,
            "responses": {"200": _ok("HealthBoard", "The endpoints' health."),
                          **_responses(401, 403)},
        }},
        "/api/v1/health/{code}": {"get": {
            "operationId": "getEndpointHealth",
            "summary": "One endpoint's health, figures, history", "tags": ["health"],
            "security": security, "description": staff_or_own,
            "parameters": [
                {"$ref": "#/components/parameters/EndpointCode"},
                {"name": "hours", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 840, "default": 24},
                 "description": "Hours of per-minute figures."}],
            "responses": {"200": _ok("EndpointHealthDetail", "The endpoint's health."),
                          **_responses(401, 403, 404, 422)},
        }},
        "/api/v1/reports/availability": {"get": {
            "operationId": "availabilityReport", "summary": "Monthly availability per endpoint",
            "tags": ["health"], "security": security,
            "description": "Admins, bookers and IT staff. Online % over the monitored part "
            "of the month, attendance, mean call quality. CSV (UTF-8 with BOM) with "
            "format=csv or Accept: text/csv.",
            "parameters": [
                {"name": "month", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": MONTH},
                 "description": "YYYY-MM, 2000-01 to 2200-12; default: the current month. "
                 "422 for a month that has not begun."},
                {"name": "format", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["json", "csv"]}}],
            "responses": {
                "200": {"description": "The report.", "content": {
                    _JSON: {"schema": _schema_ref("AvailabilityReport")},
                    CSV: {"schema": {"type": "string"}}}},
                **_responses(401, 403, 422)},
        }},
        "/api/v1/conferences/{id}/readiness": {"get": {
            "operationId": "conferenceReadiness",
            "summary": "Pre-flight check: who is ready for the conference", "tags": ["health"],
            "security": security,
            "description": "Whoever may see the conference (404 otherwise).",
            "parameters": [{"$ref": "#/components/parameters/ConferenceId"}],
            "responses": {"200": _ok("Readiness", "Every participant's readiness."),
                          **_responses(401, 404)},
        }},
    }
    event_types = described(frozenset({EventType.ENDPOINT_HEALTH,
                                       EventType.CONFERENCE_READINESS}))
    return {"paths": paths, "schemas": schemas, "event_types": event_types}
