"""The HTTP edge (issue 11, items 5 and 6): which pages may ride on the session cookie
(the Origin check on WebSocket upgrades and writes), aiohttp's own refusals in the
error contract, the /metrics scrape token, and deeply nested JSON.

Real servers throughout: the app on a listening test server, and `vcbridge serve` as a
process where aiohttp's low-level parser and the CLI are what is tested."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.service_process import Service, service_env
from monitoring.health.monitor import MONITOR
from monitoring.metrics.routes import check_metrics_exposure, is_loopback
from tests.conftest import Client
from tests.support import ADMIN_PASSWORD, bearer

# The shared fixtures: an open conference of the three test sites, and its settings.
from tests.test_bridge_media import room as room
from tests.test_bridge_media import settings as settings
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings, SettingsError, load_settings

H = dict[str, str]
EVIL = "http://evil.example"
SIBLING = "https://other.vc.example.gov.vn"  # another origin of the same site
CONSOLE = "https://console.example.gov.vn"
EVENTS = "/api/v1/events"
MakeClient = Callable[..., Awaitable[Client]]


def own_origin(client: Client) -> str:
    """The origin of the service as the browser sees it (the test server's address)."""
    return str(client.make_url("")).rstrip("/")


def handshake(origin: str | None) -> H:
    """The headers of a browser's WebSocket handshake, from a page at `origin`."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def cookie_login(client: Client, username: str, password: str) -> str:
    """Log in as a browser does: the jar holds only this session's cookie. Returns the
    CSRF token."""
    client.session.cookie_jar.clear()
    response = await client.post("/api/v1/auth/login",
                                 json={"username": username, "password": password})
    assert response.status == 200, await response.text()
    return str((await response.json())["csrf_token"])


async def assert_refused_origin(response: aiohttp.ClientResponse, origin: str | None) -> None:
    """403 in the error contract, before any upgrade, naming the origin sent."""
    body = await response.json()
    assert response.status == 403, body
    assert "Upgrade" not in response.headers
    assert set(body) == {"error"} and body["error"]["code"] == "origin_not_allowed", body
    assert "allowed_origins" in body["error"]["message"]
    assert body["error"]["details"] == {"origin": origin}


# -- the Origin check ------------------------------------------------------------------------


async def test_event_stream_upgrade_by_cookie_needs_an_allowed_origin(client: Client) -> None:
    await cookie_login(client, "admin", ADMIN_PASSWORD)
    for origin in (EVIL, SIBLING, "null", None, own_origin(client).replace("http:", "ftp:")):
        async with client.get(EVENTS, headers=handshake(origin)) as response:
            await assert_refused_origin(response, origin)
    # The page of the service itself: the same cookie opens the stream.
    async with client.ws_connect(EVENTS, origin=own_origin(client)) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
    # The check compares with the Host the browser asked for, port included.
    wrong_port = own_origin(client).rsplit(":", 1)[0] + ":1"
    async with client.get(EVENTS, headers=handshake(wrong_port)) as response:
        await assert_refused_origin(response, wrong_port)


async def test_a_refused_upgrade_does_not_connect_the_operator(
    client: Client, make_user: Callable[..., Awaitable[H]], admin: H
) -> None:
    """An operator's stream marks its endpoint on line: a refused one must not."""
    await make_user("op-nga", "operator", "HUYEN-NGA-SON")
    await cookie_login(client, "op-nga", "pw-op-nga-123456")
    async with client.get(EVENTS, headers=handshake(EVIL)) as response:
        await assert_refused_origin(response, EVIL)
    await client.app[MONITOR].sweep()  # reads the presence
    health = await (await client.get("/api/v1/health/HUYEN-NGA-SON", headers=admin)).json()
    assert health["state"] == "offline" and health["event_stream"] is False, health
    async with client.ws_connect(EVENTS, origin=own_origin(client)) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
        await client.app[MONITOR].sweep()
        health = await (await client.get("/api/v1/health/HUYEN-NGA-SON", headers=admin)).json()
        assert health["event_stream"] is True, health


async def test_bearer_clients_are_not_checked(client: Client, admin: H) -> None:
    """The agent and scripts send a bearer token and no Origin (or any): a foreign page
    cannot read or send a bearer token, so they are not refused, even with a foreign
    cookie in the jar."""
    await cookie_login(client, "admin", ADMIN_PASSWORD)
    async with client.ws_connect(EVENTS, headers=admin) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
    async with client.ws_connect(EVENTS, headers=admin, origin=EVIL) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"


async def test_control_mode_signaling_by_cookie_needs_an_allowed_origin(
    client: Client, room: Any
) -> None:
    conference_id, _tokens = room
    signal = f"/api/v1/conferences/{conference_id}/signal?role=control"
    await cookie_login(client, "booker1", "pw-booker1-123456")
    async with client.get(signal, headers=handshake(EVIL)) as response:
        await assert_refused_origin(response, EVIL)
    async with client.get(signal, headers=handshake(SIBLING)) as response:
        await assert_refused_origin(response, SIBLING)
    async with client.ws_connect(signal, origin=own_origin(client)) as ws:
        joined = await ws.receive_json(timeout=5)
        assert joined["type"] == "joined" and joined["role"] == "control", joined
        assert joined["user"] == "booker1"


async def test_cookie_writes_from_a_foreign_origin_are_refused(client: Client) -> None:
    csrf = await cookie_login(client, "admin", ADMIN_PASSWORD)
    body = {"username": "booker7", "password": "long-enough-pw", "role": "booker"}
    with_csrf = {"X-CSRF-Token": csrf}
    # The right CSRF token, but the request comes from another origin's page.
    refused = await client.post("/api/v1/users", json=body, headers={**with_csrf,
                                                                     "Origin": SIBLING})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "origin_not_allowed"
    users = await (await client.get("/api/v1/users")).json()
    assert [u["username"] for u in users["users"]] == ["admin"]
    # The service's own page writes; so does a client that sends no Origin (the CSRF
    # token alone decides, as before).
    own = await client.post("/api/v1/users", json=body,
                            headers={**with_csrf, "Origin": own_origin(client)})
    assert own.status == 201, await own.text()
    plain = await client.post("/api/v1/users", json={**body, "username": "booker8"},
                              headers=with_csrf)
    assert plain.status == 201, await plain.text()


async def test_a_configured_origin_is_allowed(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    configured = settings.model_copy(update={"allowed_origins": [CONSOLE]})
    client = await aiohttp_client(create_app(configured, clock=clock))
    await cookie_login(client, "admin", ADMIN_PASSWORD)
    async with client.ws_connect(EVENTS, origin=CONSOLE) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
    async with client.ws_connect(EVENTS, origin=own_origin(client)) as ws:  # still allowed
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
    async with client.get(EVENTS, headers=handshake(EVIL)) as response:
        await assert_refused_origin(response, EVIL)


def test_allowed_origins_setting_is_validated() -> None:
    parsed = load_settings(allowed_origins="https://VC.example.gov.vn:443/, http://10.0.0.5:8080")
    assert parsed.allowed_origins == ["https://vc.example.gov.vn", "http://10.0.0.5:8080"]
    for bad in ("vc.example.gov.vn", "null", "https://vc.example/join", "ftp://vc.example",
                "https://user@vc.example"):
        with pytest.raises(SettingsError, match="allowed_origins"):
            load_settings(allowed_origins=[bad])


# -- the metrics token -----------------------------------------------------------------------

SCRAPE_TOKEN = "0123456789abcdef-scrape"


async def test_metrics_token_setting_guards_the_scrape(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    configured = settings.model_copy(update={"metrics_token": SCRAPE_TOKEN})
    client = await aiohttp_client(create_app(configured, clock=clock))
    for headers in ({}, bearer("wrong-token-wrong-token"), bearer(SCRAPE_TOKEN + "x"),
                    {"Authorization": SCRAPE_TOKEN}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401, headers
        body = await response.json()
        assert body["error"]["code"] == "unauthorized"
        assert "metrics token" in body["error"]["message"]
        assert "vcbridge_endpoint" not in await response.text()
    response = await client.get("/metrics", headers=bearer(SCRAPE_TOKEN))
    assert response.status == 200
    assert "vcbridge_endpoint_up" in await response.text()


def test_metrics_token_setting_is_validated() -> None:
    assert load_settings(metrics_token=SCRAPE_TOKEN).metrics_token == SCRAPE_TOKEN
    for bad in ("short", "sixteen chars with spaces"):
        with pytest.raises(SettingsError, match="metrics_token") as refused:
            load_settings(metrics_token=bad)
        assert bad not in str(refused.value)  # a secret is not echoed
    assert SCRAPE_TOKEN not in repr(load_settings(metrics_token=SCRAPE_TOKEN))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_may_serve_open_metrics(host: str) -> None:
    assert is_loopback(host)
    check_metrics_exposure(host, "")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.20.0.5", "vc.example.gov.vn"])  # noqa: S104
def test_beyond_loopback_the_metrics_token_is_required(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(SettingsError, match="metrics_token"):
        check_metrics_exposure(host, "")
    check_metrics_exposure(host, SCRAPE_TOKEN)


def test_serve_beyond_loopback_without_token_refuses_to_start(tmp_path: Path) -> None:
    """The CLI stops before it listens or opens the database, naming the setting."""
    done = subprocess.run(
        [sys.executable, "-m", "vcbridge.cli", "serve", "--host", "0.0.0.0",  # noqa: S104
         "--port", "1", "--data-dir", str(tmp_path / "data")],
        env=service_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "metrics_token" in done.stderr and "VCBRIDGE_METRICS_TOKEN" in done.stderr
    assert not (tmp_path / "data" / "vcbridge.sqlite3").exists()


# -- aiohttp's own refusals, on `vcbridge serve` ---------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(tmp_path_factory.mktemp("edge-service"), service_env())
    try:
        started.wait_healthy()
        started.login()
        yield started
    finally:
        started.stop()


def raw_request(service: Service, head: bytes) -> tuple[int, dict[str, Any]]:
    """Send `head` (a request line and headers) on a new connection; the status and the
    JSON body of the answer (the connection is closed by the server after it)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as connection:
        connection.sendall(head + b"\r\n\r\n")
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), data[:500]
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.parametrize("size", [10_000, 100_000])
def test_an_oversized_authorization_header_gets_the_error_form(
    service: Service, size: int
) -> None:
    host = f"Host: 127.0.0.1:{service.port}".encode()
    status, body = raw_request(service, b"GET /api/v1/endpoints HTTP/1.1\r\n" + host
                               + b"\r\nAuthorization: Bearer " + b"t" * size)
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert "too long" in body["error"]["message"]
    assert body["error"]["details"]["limit_bytes"] >= 8190
    # The service is fine, and its log does not quote the header (a token, say).
    assert service.request("GET", "/api/v1/endpoints")[0] == 200
    assert "t" * 50 not in service.log.read_text()


def test_an_oversized_url_and_a_malformed_request_get_the_error_form(service: Service) -> None:
    host = f"Host: 127.0.0.1:{service.port}".encode()
    status, body = raw_request(service, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + host)
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, body = raw_request(service, b"GET /healthz HTTP/1.1\r\n" + host
                               + b"\r\nBad Header Name: x")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["message"].startswith("malformed HTTP request")
    assert service.request("GET", "/healthz")[0] == 200


# -- deeply nested JSON ----------------------------------------------------------------------


async def test_deeply_nested_json_bodies_are_malformed(client: Client, booker: H) -> None:
    for text in ("[" * 100_000, '{"title":' * 20_000, "[" * 100_000 + "]" * 100_000):
        response = await client.post("/api/v1/conferences", data=text,
                                     headers={**booker, "Content-Type": "application/json"})
        body = await response.json()
        assert response.status == 400, body
        assert body["error"]["code"] == "bad_request"
        assert "malformed JSON" in body["error"]["message"]
    listed = await client.get("/api/v1/conferences", headers=booker)
    assert listed.status == 200 and (await listed.json())["conferences"] == []


async def test_deeply_nested_json_on_the_event_stream_is_a_bad_message(
    client: Client, admin: H
) -> None:
    async with client.ws_connect(EVENTS, headers=admin) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
        await ws.send_str("[" * 60_000)  # within the stream's 64 KiB message limit
        error = await ws.receive_json(timeout=5)
        assert error["type"] == "error" and error["error"]["code"] == "bad_message", error
        assert "nested too deeply" in error["error"]["message"]
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1003
    # The service is fine: a new stream answers pings.
    async with client.ws_connect(EVENTS, headers=admin) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5)) == {"type": "pong"}
    assert (await client.get("/healthz")).status == 200


async def test_a_client_gone_mid_answer_is_not_an_error_of_the_service(
    aiohttp_client: Callable[..., Awaitable[Client]], caplog: pytest.LogCaptureFixture
) -> None:
    """A client that resets its connection during a WebSocket handshake (seen under a
    hostile site's reconnect loop) is logged as gone, not as an unhandled error."""
    from aiohttp import web

    from vcbridge.core.http.errors import error_middleware

    async def handshake_lost(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("Connection lost")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/ws", handshake_lost)
    client = await aiohttp_client(app)
    with caplog.at_level("INFO", logger="vcbridge.core.http.errors"):
        response = await client.get("/ws")
    assert response.status == 400
    assert "client closed the connection" in (await response.json())["error"]["message"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("client left" in r.getMessage() for r in caplog.records)
