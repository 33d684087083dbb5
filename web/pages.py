"""The browser pages, one line each in `PAGE_FILES`: the home page (`/` takes each
role to its own home), the admin page, the district operator's join page, the
chair's console and the other pages of the web console.

Every page is static HTML; its JavaScript modules and style sheets are under
`/static/`. Everything comes from `web/static/` (no build step, nothing from
the internet: a district office network may be closed).
The pages are ordinary clients: they log in with the session cookie (CSRF
header on writes), read the booking API and the event stream, and join the
room through the public signaling protocol (`docs/signaling.md`), exactly as
the endpoint agent does. There is no page-only API.

Every page answer carries a strict Content-Security-Policy (scripts, styles
and connections from this origin only, no inline script or style, no
framing), so text a booker typed (a conference title) can never run."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).with_name("static")

# Served files, by suffix; anything else under web/static/ is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self' blob: mediastream:",
    # 'self' covers ws:// and wss:// to this host (the event stream and signaling).
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Pages and scripts change together on upgrade: always revalidate.
    "Cache-Control": "no-cache",
}

# Each page: its path and its HTML file under web/static/ (every page checks on the
# server, through the API it calls, who may see what; the HTML itself is public).
PAGE_FILES: dict[str, str] = {
    "/": "home.html",
    "/admin": "admin.html",
    "/join": "join.html",
    "/calendar": "calendar.html",
    "/documents": "documents.html",
    r"/chair/{conference:\d{1,18}}": "chair.html",
    r"/conferences/{conference:\d{1,18}}": "conference.html",
    "/dashboard": "dashboard.html",
    "/operator": "operator.html",
}

# Routes that are pages, not API operations (tests/test_openapi.py leaves them out).
PAGE_ROUTES = frozenset({"/", "/static/{path}"} | {
    re.sub(r"\{(\w+):.*?\}(?=/|$)", r"{\1}", route) for route in PAGE_FILES})


def _static_files() -> dict[str, Path]:
    """Every served file by its path under web/static/ (vendored libraries in folders).

    Requests are looked up in this map, never joined onto the file system, so no
    path can reach outside web/static/."""
    return {
        path.relative_to(WEB_DIR).as_posix(): path
        for path in sorted(WEB_DIR.rglob("*"))
        if path.is_file() and path.suffix in CONTENT_TYPES
        and not any(part.startswith(".") for part in path.relative_to(WEB_DIR).parts)
    }


def _file(path: Path) -> web.FileResponse:
    headers = dict(SECURITY_HEADERS)
    headers["Content-Type"] = CONTENT_TYPES[path.suffix]
    return web.FileResponse(path, headers=headers)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = WEB_DIR / name

    async def page(_request: web.Request) -> web.StreamResponse:
        return _file(path)

    page.__doc__ = f"A page: web/static/{name}."
    return page


def setup_routes(app: web.Application) -> None:
    """Register the pages and their static files."""
    files = _static_files()

    async def static(request: web.Request) -> web.StreamResponse:
        """GET /static/{path}: a script, style sheet or image of the pages."""
        path = files.get(request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound()
        return _file(path)

    for route, name in PAGE_FILES.items():
        app.router.add_get(route, _page(name))
    app.router.add_get("/static/{path:.+}", static)
