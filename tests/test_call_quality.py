"""Call quality from both ends through the API, on a fixed clock: the site's heartbeat and
the bridge's view side by side, the worse of the two deciding the health, the bridge's
view carried between processes, and both kept in the per-minute samples.

The bridge's view enters the monitor as the metrics' media sampler hands it over every
window (`HealthMonitor.bridge_media`); the real rooms behind it are exercised by
tests/test_impaired_link.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitoring.health.model import CallFigures
from tests.conftest import Client
from tests.health_support import (
    agent_token,
    codes,
    health_of,
    health_settings,
    heartbeat,
    in_call,
    monitor_of,
    send,
)
from tests.support import ADMIN_PASSWORD, bearer, login
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings

NGA_SON = "HUYEN-NGA-SON"
# What the bridge measured of Nga Son's media over one window: 6 % of its packets lost.
LOSSY = CallFigures(rtt_ms=12.0, jitter_ms=4.0, packet_loss_ratio=0.06,
                    bitrate_in_bps=600_000.0, bitrate_out_bps=900_000.0, fps=14.5)
CLEAN = CallFigures(rtt_ms=11.0, jitter_ms=3.0, packet_loss_ratio=0.0,
                    bitrate_in_bps=620_000.0, bitrate_out_bps=910_000.0, fps=15.0)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(database_url, tmp_path)


def quality(answer: dict[str, Any]) -> list[tuple[str, float]]:
    """The call-quality reasons of an answer, with their figures (these tests hold no
    event stream: `event_stream_down` is not what they are about)."""
    return [(r["code"], r["value"]) for r in answer["reasons"]
            if r["code"] != "event_stream_down"]


async def beat(client: Client, agent: dict[str, str], clock: FixedClock, *,
               step: float = 5.0, **figures: Any) -> dict[str, Any]:
    """One heartbeat `step` seconds after the last, with the call figures of
    `in_call(**figures)`."""
    response = await send(client, agent, NGA_SON, heartbeat(call=in_call(**figures)), clock,
                          step=step)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_both_views_side_by_side_and_the_worse_decides(
        client: Client, admin: dict[str, str], clock: FixedClock) -> None:
    monitor = monitor_of(client)
    await monitor.sweep()  # the roster: which code is which endpoint
    agent = await agent_token(client, admin, NGA_SON)
    async with client.ws_connect("/api/v1/events", headers=agent) as ws:
        await ws.receive_json()
        await monitor.sweep()
        # The site sees a clean line (0.1 % loss); the bridge loses 6 % of what it sends.
        clock.set(clock.now() + timedelta(seconds=4))
        monitor.bridge_media({NGA_SON: LOSSY})
        answer = await beat(client, agent, clock, loss=0.001, rtt_ms=10.0)
        assert answer["state"] == "degraded"
        [reason] = answer["reasons"]
        assert (reason["code"], reason["value"], reason["limit"]) == ("packet_loss", 0.06, 0.02)
        assert reason["en"] == "packet loss 6 % (limit 2 %)"

        detail = await health_of(client, admin, NGA_SON)
        call = detail["call"]
        site_at, bridge_at = detail["last_heartbeat"], "2026-11-27T10:00:04+07:00"
        assert call["site"] == {
            "measured_at": site_at, "rtt_ms": 10.0, "jitter_ms": 5.0,
            "packet_loss_ratio": 0.001, "bitrate_in_bps": 1_500_000.0,
            "bitrate_out_bps": 1_200_000.0, "fps": 25.0}
        assert call["bridge"] == {
            "measured_at": bridge_at, "rtt_ms": 12.0, "jitter_ms": 4.0,
            "packet_loss_ratio": 0.06, "bitrate_in_bps": 600_000.0,
            "bitrate_out_bps": 900_000.0, "fps": 14.5}
        # The call's own figures are what the health model judged: the worse of each.
        assert (call["packet_loss_ratio"], call["rtt_ms"], call["jitter_ms"], call["fps"]) == (
            0.06, 12.0, 5.0, 14.5)
        assert call["bitrate_in_bps"] == 1_500_000.0  # the site's own, not judged

        # The bridge's line is clean again: held for two good intervals, clear at the third.
        for held in (True, True, False):
            clock.set(clock.now() + timedelta(seconds=4))
            monitor.bridge_media({NGA_SON: CLEAN})
            answer = await beat(client, agent, clock, loss=0.001, step=1.0)
            assert ("packet_loss" in codes(answer["reasons"])) is held

        # The site left its room: no bridge view any more.
        monitor.bridge_media({NGA_SON: None})
        assert (await health_of(client, admin, NGA_SON))["call"]["bridge"] is None

    # Both views are in the minute's samples, one figure per heartbeat or window.
    clock.set(clock.now() + timedelta(minutes=1))
    await monitor.flush_samples()
    [sample] = (await health_of(client, admin, NGA_SON))["samples"]
    assert sample["packet_loss_ratio"] == 0.001
    assert sample["bridge_packet_loss_ratio"] == round((0.06 + 3 * 0.0) / 4, 4)
    assert sample["bridge_fps"] == round((14.5 + 3 * 15.0) / 4, 4)
    assert sample["bridge_bitrate_in_bps"] == (600_000 + 3 * 620_000) / 4


async def test_the_sites_detail_shows_which_kind_and_direction(
        aiohttp_client: Callable[..., Awaitable[Client]], client: Client,
        admin: dict[str, str], clock: FixedClock, settings: Settings) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    detail = {
        "audio": {"in": {"bitrate_bps": 40_000.0, "packets_received": 95, "packets_lost": 5,
                         "loss_ratio": 0.05, "jitter_ms": 6.0},
                  "out": {"bitrate_bps": 41_000.0, "packets_sent": 100}},
        "video": {"in": {"packets_received": 300, "packets_lost": 0, "loss_ratio": 0.0,
                         "fps_by_slot": {"chair": 15.0}}},
    }
    body = heartbeat(call=in_call(loss=0.05) | detail)
    assert (await send(client, agent, NGA_SON, body, clock)).status == 200
    site = (await health_of(client, admin, NGA_SON))["call"]["site"]
    assert site["audio"] == {
        "in": {"bitrate_bps": 40_000.0, "packets_received": 95, "packets_lost": 5,
               "loss_ratio": 0.05, "jitter_ms": 6.0},
        "out": {"bitrate_bps": 41_000.0, "packets_sent": 100, "loss_ratio": None,
                "jitter_ms": None, "rtt_ms": None}}
    assert site["video"]["in"]["fps_by_slot"] == {"chair": 15.0}
    assert site["video"]["out"] is None
    # Stored with the report: another process shows the same.
    await monitor_of(client).record_changes()
    other = await aiohttp_client(create_app(settings, clock=clock))
    staff = bearer(await login(other, "admin", ADMIN_PASSWORD))
    assert (await health_of(other, staff, NGA_SON))["call"]["site"] == site


async def test_a_stale_bridge_view_no_longer_speaks_for_the_call(
        client: Client, admin: dict[str, str], clock: FixedClock) -> None:
    monitor = monitor_of(client)
    await monitor.sweep()
    agent = await agent_token(client, admin, NGA_SON)
    monitor.bridge_media({NGA_SON: LOSSY})
    assert quality(await beat(client, agent, clock)) == [("packet_loss", 0.06)]
    # The room stopped reporting (its process died): after two windows and two sweeps the
    # view is too old to judge by.
    clock.set(clock.now() + monitor.bridge_max_age)
    for _ in range(3):
        answer = await beat(client, agent, clock, step=1.0)
    assert quality(answer) == []
    assert (await health_of(client, admin, NGA_SON))["call"]["bridge"] is None


async def test_the_bridge_view_travels_between_processes(
    aiohttp_client: Callable[..., Awaitable[Client]], client: Client, admin: dict[str, str],
    clock: FixedClock, settings: Settings
) -> None:
    """Nga Son's heartbeats land on process A (it holds the site's event stream); its media
    is in a room of process B. A judges the call with B's view, shared through the
    database by the sweeps; when the site leaves B's room, A stops counting it."""
    room_process = await aiohttp_client(create_app(settings, clock=clock))
    a, b = monitor_of(client), monitor_of(room_process)
    await a.sweep()
    await b.sweep()
    agent = await agent_token(client, admin, NGA_SON)
    assert quality(await beat(client, agent, clock)) == []

    b.bridge_media({NGA_SON: LOSSY})
    assert quality(await beat(client, agent, clock)) == []  # A has not heard of it yet
    await b.sweep()  # B writes its view...
    await a.sweep()  # ... A reads it
    assert quality(await beat(client, agent, clock)) == [("packet_loss", 0.06)]
    staff = bearer(await login(room_process, "admin", ADMIN_PASSWORD))
    for process, headers in ((client, admin), (room_process, staff)):
        call = (await health_of(process, headers, NGA_SON))["call"]
        assert call["bridge"]["packet_loss_ratio"] == 0.06, process
    b.bridge_media({NGA_SON: None})  # the site left B's room
    await b.sweep()
    await a.sweep()
    for _ in range(3):
        answer = await beat(client, agent, clock, step=1.0)
    assert quality(answer) == []
    assert (await health_of(client, admin, NGA_SON))["call"]["bridge"] is None
