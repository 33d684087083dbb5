"""Monitoring's share of the OpenAPI document: the Prometheus scrape, and endpoint
health, heartbeats, availability and readiness (monitoring/health_api.py)."""

from __future__ import annotations

from monitoring.health.wire import Heartbeat
from monitoring.responses import (
    MONTH,
    AvailabilityReport,
    EndpointHealthDetail,
    HealthBoard,
    HealthHistory,
    HeartbeatAnswer,
    Readiness,
)
from vcbridge.core.event_types import EventType, described
from vcbridge.core.http.openapi import (
    JSON,
    ApiPart,
    Schema,
    errors,
    json_content,
    operation,
    param,
    query,
    ref,
)

# The events monitoring publishes: what each means and the `data` keys it always carries.
EVENT_TYPES = described(frozenset({
    EventType.ENDPOINT_HEALTH,
    EventType.CONFERENCE_READINESS,
}))
_STAFF_OR_OWN = ("Admins, bookers and IT staff see every endpoint; an operator or agent "
                 "only its own (403 for another).")


def _metrics_path() -> dict[str, Schema]:
    return {
        "/metrics": {"get": operation(
            "getMetrics", "Prometheus metrics of this process", "health",
            {"200": {"description": "The Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             **errors(401)},
            public=True,
            description="For the IT staff's Prometheus. With the `metrics_token` setting, a "
            "scrape sends it as `Authorization: Bearer` (401 without it); without one the "
            "route is open, which the service allows only when it listens on loopback (see "
            "monitoring/metrics_routes.py). Answers from memory; never queries the database.",
        )},
    }


def health_paths() -> dict[str, Schema]:
    """The endpoint-health operations (tests/test_health_openapi.py runs them live)."""
    heartbeat = operation(
        "postHeartbeat", "An endpoint agent's heartbeat", "health",
        {"200": json_content(HeartbeatAnswer, "Accepted: the endpoint's health now."),
         **errors(400, 401, 403, 413, 415, 422),
         "429": {"description": "Sooner than health_heartbeat_min_gap_seconds after "
                 "the last accepted heartbeat (code rate_limited); nothing changed.",
                 "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                 "content": {JSON: {"schema": ref("RateLimitedError")}}}},
        parameters=[param("EndpointCode")], body=Heartbeat,
        description="With the agent token of that endpoint only (403 otherwise). "
        "A clock more than health_clock_skew_seconds off is accepted with the reason "
        "clock_skew. See docs/monitoring.md.",
    ) | {"security": [{"bearerAuth": []}]}
    return _grafana_path() | {
        "/api/v1/endpoints/{code}/heartbeat": {"post": heartbeat},
        "/api/v1/health": {"get": operation(
            "listEndpointHealth", "Every endpoint's health", "health",
            {"200": json_content(HealthBoard, "The endpoints' health."), **errors(401, 403)},
            description=_STAFF_OR_OWN,
        )},
        "/api/v1/health/{code}": {"get": operation(
            "getEndpointHealth", "One endpoint's health, figures, history", "health",
            {"200": json_content(EndpointHealthDetail, "The endpoint's health."),
             **errors(401, 403, 404, 422)},
            parameters=[param("EndpointCode"), query(
                "hours", {"type": "integer", "minimum": 1, "maximum": 840, "default": 24},
                "Hours of per-minute figures.")],
            description=_STAFF_OR_OWN,
        )},
        "/api/v1/health/{code}/history": {"get": operation(
            "getEndpointHealthHistory", "One endpoint's figures minute by minute, for charts",
            "health",
            {"200": json_content(HealthHistory, "The window's series and transitions."),
             **errors(401, 403, 404, 422)},
            parameters=[param("EndpointCode"), query(
                "hours", {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
                "Hours up to now (the minute running now included).")],
            description="Admins and IT staff, and the endpoint's own operator (403 "
            "otherwise, bookers too). Dense series from the stored per-minute samples "
            "(one value per minute, null where nothing was measured) and the health "
            "transitions of the window.",
        )},
        "/api/v1/reports/availability": {"get": operation(
            "availabilityReport", "Monthly availability per endpoint", "health",
            {"200": {"description": "The report.", "content": {
                JSON: {"schema": ref(AvailabilityReport.__name__)},
                "text/csv": {"schema": {"type": "string"}}}},
             **errors(401, 403, 422)},
            parameters=[
                query("month", {"type": "string", "pattern": MONTH},
                      "YYYY-MM, 2000-01 to 2200-12; default: the current month. "
                      "422 for a month that has not begun."),
                {"name": "format", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["json", "csv"]}},
                query("lang", {"type": "string", "enum": ["en", "vi"], "default": "en"},
                      "The CSV's form: en (field names, decimal points, comma-separated) "
                      "or vi (for spreadsheets in Vietnam: Vietnamese column names, "
                      "decimal commas, semicolon-separated).")],
            description="Admins, bookers and IT staff. Online % over the monitored part "
            "of the month, attendance, mean call quality. CSV (UTF-8 with BOM) with "
            "format=csv or Accept: text/csv.",
        )},
        "/api/v1/conferences/{id}/readiness": {"get": operation(
            "conferenceReadiness", "Pre-flight check: who is ready for the conference",
            "health",
            {"200": json_content(Readiness, "Every participant's readiness."),
             **errors(401, 404)},
            parameters=[param("ConferenceId")],
            description="Whoever may see the conference (404 otherwise).",
        )},
    }


def _grafana_path() -> dict[str, Schema]:
    return {
        "/api/v1/monitoring/grafana-dashboard.json": {"get": operation(
            "getGrafanaDashboard", "The shipped Grafana dashboard", "health",
            {"200": {"description": "monitoring/grafana-dashboard.json, as an attachment "
                     "to import into Grafana.",
                     "content": {JSON: {"schema": {"type": "object"}}}},
             **errors(401, 403)},
            description="Admins, bookers and IT staff.",
        )},
    }


def part() -> ApiPart:
    """Monitoring's paths, models and events."""
    return ApiPart(
        paths=_metrics_path() | health_paths(),
        models=(Heartbeat, HeartbeatAnswer, HealthBoard, EndpointHealthDetail,
                HealthHistory, AvailabilityReport, Readiness),
        event_types=EVENT_TYPES,
    )
