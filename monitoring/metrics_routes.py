"""`GET /metrics`: the Prometheus text exposition of this process.

Public by default, as Prometheus expects: the decision assumes the service
port is only reachable from the province's internal network (where the IT
staff's Prometheus runs), and the metrics carry no personal data, titles or
ids (endpoint codes, counts, timings only). Where the port is exposed more
widely, pass a token (`wiring.setup(app, token=...)`) and configure the
scrape job with `authorization: {credentials: ...}`; requests without the
matching `Authorization: Bearer` header then get 401 in the JSON error
contract. (With a token, the core's auth middleware also looks the header
up as an API token, one indexed read per scrape; a scrape without a token
touches no database.)

The body is rendered from in-memory values: no scrape queries the database."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring.metrics import Metrics
from vcbridge.http.errors import unauthorized

METRICS_PATH = "/metrics"


def _authorised(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode())


def setup_routes(app: web.Application, metrics: Metrics, token: str | None = None) -> None:
    """Register `GET /metrics` (and HEAD); with `token`, only for that bearer token."""

    async def scrape(request: web.Request) -> web.Response:
        if token and not _authorised(request, token):
            raise unauthorized("a valid metrics token is required")
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    app.router.add_get(METRICS_PATH, scrape)
