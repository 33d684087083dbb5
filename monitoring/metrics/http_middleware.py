"""HTTP metrics: `vcbridge_http_requests_total` and `vcbridge_http_request_duration_seconds`.

Labels are bounded: `route` is the router's canonical path of the matched
resource (`/api/v1/conferences/{id}`, never `/api/v1/conferences/42`);
requests that match no route (404, 405) are `other`. `method` is one of the
standard methods or `other`; `status` is the answered status code.

The middleware is meant to be the outermost one (`wiring.setup` puts it
first), so it times the whole request, authentication included, and sees
the status the client got after the error middleware's conversions.
WebSocket streams (the event stream, signaling) are counted with their 101
but left out of the duration histogram: they last for a whole meeting and
would swamp the request latencies. A request cancelled because the client
went away is not recorded."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from monitoring.metrics.families import Metrics

OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(request: web.Request) -> str:
    """The canonical route of the request, or `other` when no route matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else OTHER


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


def metrics_middleware(metrics: Metrics) -> Middleware:
    """The middleware recording every request into `metrics`."""

    @web.middleware
    async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route, method = route_label(request), method_label(request.method)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.observe_http(route, method, exc.status, time.perf_counter() - started)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.observe_http(route, method, 500, time.perf_counter() - started)
            raise
        streamed = isinstance(response, web.WebSocketResponse)
        metrics.observe_http(route, method, response.status,
                             None if streamed else time.perf_counter() - started)
        return response

    return http_metrics
