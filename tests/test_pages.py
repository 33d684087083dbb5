"""The pages as files: served with a strict policy, only from web/static/, and written
so the policy holds (no inline script or style, no HTML built from strings).

What the pages do is tested in a real Chromium: tests/test_browser_pages.py."""

from __future__ import annotations

import re

from tests.conftest import Client
from web.pages import CONTENT_SECURITY_POLICY, PAGE_ROUTES, WEB_DIR

PAGES = ("/", "/admin", "/join", "/chair/12", "/conferences/12", "/dashboard", "/operator",
         "/documents", "/calendar")


async def test_pages_are_served_with_a_strict_policy(client: Client) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        html = await response.text()
        assert '<html lang="vi">' in html
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY

    # `/` is the home page itself (it logs in, then takes each role to its home).
    response = await client.get("/", allow_redirects=False)
    assert response.status == 200 and 'src="/static/home.js"' in await response.text()


async def test_static_files_have_their_types_and_nothing_else_is_served(client: Client) -> None:
    for name, content_type in (("join.js", "text/javascript"), ("style.css", "text/css"),
                               ("icon.svg", "image/svg+xml"), ("join.html", "text/html")):
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name
        assert response.content_type == content_type, name
        assert "Content-Security-Policy" in response.headers
    for path in ("/static/nope.js", "/static/..%2Fpages.py", "/static/pages.py",
                 "/static/%2E%2E/pages.py", "/chair/abc"):
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"


def test_page_sources_keep_to_the_policy() -> None:
    """No inline script, style or handler; no innerHTML; nothing from another origin."""
    files = sorted(p for p in WEB_DIR.rglob("*") if p.suffix in (".html", ".js", ".css", ".svg")
                   and "vendor" not in p.relative_to(WEB_DIR).parts)
    assert {p.name for p in files} >= {"join.html", "chair.html", "join.js", "chair.js",
                                       "common.js", "room.js", "media.js", "i18n.js",
                                       "style.css", "icon.svg", "home.html", "home.js",
                                       "admin.html", "admin.js", "site_nav.js", "nav.js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"inline script in {path.name}"
            assert "style=" not in text and "<style" not in text, path.name
            assert not re.search(r"\son[a-z]+=", text), f"inline handler in {path.name}"
        if path.suffix == ".js":
            for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function"):
                assert banned not in text, f"{banned} in {path.name}"


def test_page_routes_are_the_ones_registered(client: Client) -> None:
    routed = {route.resource.canonical for route in client.app.router.routes()
              if route.resource is not None and not route.resource.canonical.startswith("/api/")}
    assert routed >= PAGE_ROUTES
