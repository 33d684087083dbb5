"""Monitoring's share of the OpenAPI document: the Prometheus scrape, and endpoint
health, heartbeats, availability and readiness (monitoring/health_api.py)."""

from __future__ import annotations

from monitoring.health_api import openapi_fragment
from vcbridge.core.http.openapi import ApiPart, Schema, errors, operation


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


def part() -> ApiPart:
    """Monitoring's paths, schemas and events."""
    health = openapi_fragment()
    return ApiPart(paths=_metrics_path() | health["paths"], schemas=health["schemas"],
                   event_types=health["event_types"])
