"""A real agent-like process heartbeats over HTTP on the real clock, then is killed -9:
its endpoint goes offline within the configured time."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client
from tests.health_support import agent_token, health_settings
from tests.support import ADMIN_PASSWORD, bearer, login
from vcbridge.app import create_app
from vcbridge.core.settings import Settings

CODE = "HUYEN-MUONG-LAT"
OFFLINE_AFTER = 3.0
SWEEP = 0.5

# Sends a heartbeat every 0.5 s with urllib until killed.
SENDER = r"""
import json, sys, time, urllib.request
from datetime import datetime, timezone
url, token = sys.argv[1], sys.argv[2]
while True:
    body = {"sent_at": datetime.now(timezone.utc).isoformat(),
            "devices": {"camera": True, "microphone": True, "speaker": True},
            "cpu_percent": 5.0, "network": {"interface": "eth0", "rtt_ms": 3.0},
            "agent_version": "test-sender"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        print("sent", flush=True)
    except Exception as exc:
        print("failed", exc, flush=True)
    time.sleep(0.5)
"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(
        database_url, tmp_path, health_offline_after_seconds=OFFLINE_AFTER,
        health_sweep_seconds=SWEEP, health_persist_seconds=1.0,
        health_heartbeat_interval_seconds=1.0, health_heartbeat_min_gap_seconds=0.2,
    )


async def _health(client: Client, admin: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/health/{CODE}", headers=admin)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_killed_sender_goes_offline_in_time(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))  # the real clock
    admin = bearer(await login(client, "admin", ADMIN_PASSWORD))
    token = (await agent_token(client, admin, CODE))["Authorization"].removeprefix("Bearer ")
    url = str(client.make_url(f"/api/v1/endpoints/{CODE}/heartbeat"))
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SENDER, url, token,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while (await _health(client, admin))["state"] == "offline":
            assert time.monotonic() < deadline, "the sender's heartbeats never arrived"
            assert sender.returncode is None, "the sender died"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * OFFLINE_AFTER)  # alive well past the limit: stays on line
        body = await _health(client, admin)
        assert body["state"] == "degraded", body  # no event stream: degraded, not offline
        assert body["agent_version"] == "test-sender"
    finally:
        sender.kill()  # SIGKILL: no goodbye
        await asyncio.wait_for(sender.wait(), 10)
    killed = time.monotonic()
    # The generous bound only catches an endpoint that never goes offline; how fast it
    # does is bench/monitoring.py's figure (a busy CI machine must not fail this test).
    while (body := await _health(client, admin))["state"] != "offline":
        assert time.monotonic() - killed < OFFLINE_AFTER + SWEEP + 30.0, body
        await asyncio.sleep(0.05)
    assert [r["code"] for r in body["reasons"]] == ["no_heartbeat"]
    last = datetime.fromisoformat(body["last_heartbeat"])
    since = datetime.fromisoformat(body["since"])
    # Offline from last heartbeat + the limit (whole seconds in the API's times).
    assert abs((since - last).total_seconds() - OFFLINE_AFTER) <= 1.0
    # The API judges by the clock at once; the sweep records the transition within its period.
    while (await _health(client, admin))["transitions"][0]["state"] != "offline":
        assert time.monotonic() - killed < OFFLINE_AFTER + 2 * SWEEP + 30.0
        await asyncio.sleep(0.05)
    recorded = (await _health(client, admin))["transitions"][0]
    assert recorded["at"] == body["since"]
