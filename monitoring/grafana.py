"""`GET /api/v1/monitoring/grafana-dashboard.json`: the province overview dashboard
for Grafana that ships with the service (`monitoring/grafana-dashboard.json`), as a
download, so IT staff can import the very version their service runs (the IT
dashboard links to it). Staff only, like the rest of the monitoring views."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from vcbridge.core.auth.conference_access import is_staff
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import forbidden

DASHBOARD_FILE = Path(__file__).with_name("grafana-dashboard.json")
DASHBOARD_PATH = "/api/v1/monitoring/grafana-dashboard.json"


def setup_routes(app: web.Application) -> None:
    """Register the dashboard download (the file is read once, here: it ships with the
    code and changes only with it)."""
    body = DASHBOARD_FILE.read_bytes()

    async def grafana_dashboard(request: web.Request) -> web.Response:
        """GET /api/v1/monitoring/grafana-dashboard.json: the file, as an attachment."""
        if not is_staff(require_principal(request)):
            raise forbidden("the Grafana dashboard is for staff accounts")
        return web.Response(
            body=body, content_type="application/json", charset="utf-8",
            headers={"Content-Disposition":
                     'attachment; filename="vcbridge-grafana-dashboard.json"'},
        )

    app.router.add_get(DASHBOARD_PATH, grafana_dashboard)
