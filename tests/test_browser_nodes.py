"""The join page with bridge nodes behind nginx, as docs/deployment.md sets them up.

Real processes on PostgreSQL: an API process (API, pages, event stream, scheduler)
and two `vcbridge bridge-node` processes, each advertising its URL under the pages'
own origin (`/nodes/<id>`), all behind Debian's nginx with the WebSocket headers of
the guide (without TLS: loopback). Headless Chromium logs in on the join page and
joins a meeting; its signaling goes to the node holding the room, through the
proxy, within the page's Content-Security-Policy. Then that node is killed (-9):
the page comes back by itself on the other node, and media flows again.

Skips without Chromium or nginx on a developer's machine, fails in CI
(VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.agent.endpoint_agent import EndpointAgent
from bridge.ice_policy import restrict_host_addresses
from harness.chromium import chromium_missing, log_in, new_page, password_of, running_chromium
from harness.service_process import Service, free_port, service_env
from tests.support import (
    create_scratch_database,
    drop_scratch_database,
    loopback_agent,
    skip_or_fail,
)
from tests.support import eventually as until
from tests.test_browser_pages import _flowing, media_stats

NGINX = Path("/usr/sbin/nginx")
LOOPBACK = "127.0.0.1"
CHAIR, SITE, OPERATOR = "UBND-TINH", "HUYEN-NGA-SON", "op-nodes-nga-son"
NODES = ("node-a", "node-b")

# Every WebSocket the page opens, in order (which node its signaling went to).
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  const opened = [];
  Object.defineProperty(window, '__testSockets', { value: opened });
  window.WebSocket = class extends Native {
    constructor(url, ...rest) { super(url, ...rest); opened.push(String(url)); }
  };
})();
"""


def nginx_config(work: Path, port: int, api: int, nodes: dict[str, int]) -> Path:
    """The guide's proxy (docs/deployment.md) on loopback, without TLS."""
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    locations = "\n".join(
        f"        location /nodes/{name}/ {{ proxy_pass http://{LOOPBACK}:{node_port}/; }}"
        for name, node_port in nodes.items())
    config = work / "nginx.conf"
    config.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen {LOOPBACK}:{port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 120s;
        location / {{ proxy_pass http://{LOOPBACK}:{api}; }}
{locations}
    }}
}}
""")
    return config


def nginx_missing() -> str | None:
    """Why nginx cannot run here, or None."""
    return None if NGINX.exists() else f"nginx is not installed ({NGINX}; apt-get install nginx)"


def start_nginx(work: Path, port: int, api: int, nodes: dict[str, int]
                ) -> subprocess.Popen[bytes]:
    """nginx in the foreground with the guide's configuration."""
    config = nginx_config(work, port, api, nodes)
    return subprocess.Popen([str(NGINX), "-p", str(work), "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


@pytest.fixture
def scratch_url() -> Iterator[str]:
    url = asyncio.run(create_scratch_database())
    try:
        yield url
    finally:
        asyncio.run(drop_scratch_database(url))


async def signal_sockets(page: Any) -> list[str]:
    sockets: list[str] = await page.evaluate("() => window.__testSockets")
    return [url for url in sockets if url.endswith("/signal")]


@pytest.mark.postgres
async def test_the_join_page_reaches_its_node_through_the_proxy_and_follows_the_room(
    tmp_path: Path, scratch_url: str,
) -> None:
    missing = chromium_missing() or nginx_missing()
    if missing:
        skip_or_fail(missing)
    restrict_host_addresses([LOOPBACK])  # the chair's agent in this process
    proxy_port = free_port()
    proxy = f"http://{LOOPBACK}:{proxy_port}"
    env = service_env(VCBRIDGE_DATABASE_URL=scratch_url, VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK)
    started: list[Service] = []
    proxies: list[subprocess.Popen[bytes]] = []

    def start_all() -> tuple[Service, dict[str, Service]]:
        api = Service(tmp_path / "api", {**env, "VCBRIDGE_ROLES": "api,scheduler"})
        started.append(api)
        api.wait_healthy(timeout=60)  # it migrates the database first
        api.login()
        nodes = {name: Service(tmp_path / name, env, command=(
            "bridge-node", "--node-id", name, "--advertise-url", f"{proxy}/nodes/{name}"))
            for name in NODES}
        started.extend(nodes.values())
        for node in nodes.values():
            node.wait_healthy(timeout=60)
        status, body = api.request("POST", "/api/v1/users", {
            "username": OPERATOR, "password": password_of(OPERATOR), "role": "operator",
            "endpoint": SITE})
        assert status == 201, body
        proxies.append(start_nginx(tmp_path / "nginx", proxy_port, api.port,
                                   {name: node.port for name, node in nodes.items()}))
        return api, nodes

    agent_task: asyncio.Task[None] | None = None
    try:
        api, nodes = await asyncio.to_thread(start_all)
        status, issued = api.request("POST", f"/api/v1/endpoints/{CHAIR}/tokens", {})
        assert status == 201, issued
        # The chair is an agent that knows only the proxy's URL.
        agent = EndpointAgent(loopback_agent(proxy, CHAIR, issued["token"],
                                             summary_seconds=3600))
        agent_task = asyncio.create_task(agent.run())
        await until(lambda: _ready(agent), "the chair's agent on the event stream", 30)

        errors: list[str] = []
        async with running_chromium() as browser:
            page = await new_page(browser, proxy, errors, init_script=RECORD_SOCKETS)
            await log_in(page, "/join", OPERATOR)
            start = datetime.now(UTC) + timedelta(seconds=2)
            status, conference = api.request("POST", "/api/v1/conferences", {
                "title": "Giao ban qua các nút cầu", "chair": CHAIR,
                "participants": [CHAIR, SITE], "start": start.isoformat(),
                "end": (start + timedelta(minutes=10)).isoformat(), "setup_minutes": 0})
            assert status == 201, conference
            cid = conference["id"]
            await page.reload()
            await page.wait_for_selector("#join-button:not([disabled])", timeout=20000)
            await page.click("#join-button")
            await page.wait_for_selector("#call-status[data-mode=call]", timeout=30000)
            stats = await until(lambda: _flowing(page), "video and audio on the page", 20)
            assert stats["framesDecoded"] > 0 and stats["audioPackets"] > 0

            status, body = api.request("GET", f"/api/v1/conferences/{cid}")
            placed = body["bridge"]
            holder = placed["node"]
            other = next(name for name in NODES if name != holder)
            # The page's signaling went to the node holding the room, through the proxy.
            sockets = await signal_sockets(page)
            assert sockets[-1].startswith(
                f"ws://{LOOPBACK}:{proxy_port}/nodes/{holder}/api/v1/conferences/{cid}/"), sockets

            # The node dies: the page comes back by itself on the other node.
            await asyncio.to_thread(nodes[holder].kill)
            await until(lambda: _moved(api, cid, other), "the room on the other node", 30)
            await until(lambda: _signal_to(page, other), "the page's signaling to it", 40)
            await page.wait_for_selector("#call-status[data-mode=call]", timeout=30000)
            stats = await until(lambda: _flowing(page), "media again on the page", 30)
            assert stats["open"] == 2, await media_stats(page)
        assert errors == [], errors  # no policy violation: the nodes are this origin
    finally:
        if agent_task is not None:
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        for nginx in proxies:
            nginx.terminate()
            try:
                await asyncio.to_thread(nginx.wait, 10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        for service in started:
            service.stop()


async def _ready(agent: EndpointAgent) -> bool:
    return bool(agent.events.up)


async def _moved(api: Service, conference_id: int, node: str) -> bool:
    status, body = api.request("GET", f"/api/v1/conferences/{conference_id}")
    return status == 200 and (body.get("bridge") or {}).get("node") == node


async def _signal_to(page: Any, node: str) -> bool:
    sockets = await signal_sockets(page)
    return bool(sockets) and f"/nodes/{node}/" in sockets[-1]
