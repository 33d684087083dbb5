"""`GET /metrics`: the Prometheus text exposition of this process.

The metrics carry no personal data, titles or ids, but they name every endpoint
and its state, so they are for the IT staff's Prometheus only. With the
`metrics_token` setting, a scrape must send it (`Authorization: Bearer`; the
Prometheus scrape job: `authorization: {type: Bearer, credentials_file: ...}`),
compared in constant time; without it the answer is 401 in the JSON error
contract. Without a token /metrics is open, which `vcbridge serve` allows only
when it listens on a loopback address (`check_metrics_exposure`): a service
reachable from the network refuses to start without a token. (With a token,
the core's auth middleware also looks the header up as an API token, one
indexed read per scrape; a scrape without a token touches no database.)

The body is rendered from in-memory values: no scrape queries the database."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring.metrics.families import Metrics
from vcbridge.core.http.errors import unauthorized
from vcbridge.core.settings import SettingsError

METRICS_PATH = "/metrics"


def _authorised(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode())


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the port to this machine (`localhost`, or a
    loopback address). Any other name, a wildcard or a LAN address is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_metrics_exposure(host: str, token: str) -> None:
    """Refuse to serve an open /metrics beyond loopback: SettingsError naming the
    setting when `host` is not a loopback address and no `token` is set."""
    if not token and not is_loopback(host):
        raise SettingsError(
            f"metrics_token: required when the service listens beyond loopback (--host "
            f"{host}): /metrics names every endpoint and its state. Set VCBRIDGE_METRICS_TOKEN "
            "(e.g. `openssl rand -hex 32`) and give the same token to Prometheus "
            "(docs/monitoring.md)"
        )


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
