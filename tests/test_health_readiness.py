"""Pre-flight readiness: the API summary, and the `conference.readiness` event at open time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from sqlalchemy import select

from monitoring.health.readiness_publisher import publish_readiness
from scheduler.transitions import LifecycleSettings, advance
from tests.conftest import Client
from tests.health_support import (
    agent_token,
    health_settings,
    heartbeat,
    monitor_of,
    send,
)
from vcbridge.core.app_keys import DATABASE, EVENT_BUS
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import Event
from vcbridge.core.settings import Settings

CHAIR, MUONG_LAT, NGA_SON, QUAN_SON = (
    "UBND-TINH", "HUYEN-MUONG-LAT", "HUYEN-NGA-SON", "HUYEN-QUAN-SON")
# Friday 2026-11-27 in Hanoi (UTC+7).
AT_0710 = datetime(2026, 11, 27, 0, 10, tzinfo=UTC)
AT_0740 = datetime(2026, 11, 27, 0, 40, tzinfo=UTC)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The fixed clock jumps minutes while the event streams stay open: keep them fresh.
    return health_settings(database_url, tmp_path, presence_stale_seconds=3600)


async def _on_stream(stack: AsyncExitStack, client: Client, agent: dict[str, str]
                     ) -> ClientWebSocketResponse:
    ws = await stack.enter_async_context(client.ws_connect("/api/v1/events", headers=agent))
    assert (await ws.receive_json())["type"] == "stream.ready"
    return ws


@pytest.fixture
async def prepared(client: Client, admin: dict[str, str], clock: FixedClock
                   ) -> AsyncIterator[dict[str, Any]]:
    """A conference 08:00-09:00 (room opens 07:45) of four endpoints, at 07:40:
    Mường Lát silent since 07:10 (offline since 07:12), Quan Sơn without a camera,
    the chair and Nga Sơn fine. All but Mường Lát hold the event stream."""
    clock.set(AT_0710)
    agents = {code: await agent_token(client, admin, code)
              for code in (CHAIR, MUONG_LAT, NGA_SON, QUAN_SON)}
    assert (await send(client, agents[MUONG_LAT], MUONG_LAT, heartbeat(), clock, step=0)
            ).status == 200
    start = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    response = await client.post("/api/v1/conferences", headers=admin, json={
        "title": "Giao ban trực tuyến", "chair": CHAIR,
        "participants": [CHAIR, MUONG_LAT, NGA_SON, QUAN_SON],
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
        "setup_minutes": 15,
    })
    assert response.status == 201, await response.text()
    conference = await response.json()
    clock.set(AT_0740)
    async with AsyncExitStack() as stack:
        for code in (CHAIR, NGA_SON, QUAN_SON):
            await _on_stream(stack, client, agents[code])
        await monitor_of(client).sweep()
        for code in (CHAIR, NGA_SON):
            assert (await send(client, agents[code], code, heartbeat(), clock, step=0)
                    ).status == 200
        no_camera = heartbeat(devices={"camera": False, "microphone": True, "speaker": True})
        assert (await send(client, agents[QUAN_SON], QUAN_SON, no_camera, clock, step=0)
                ).status == 200
        await monitor_of(client).sweep()
        yield {"conference": conference, "agents": agents, "start": start}


async def test_readiness_summary(client: Client, admin: dict[str, str],
                                 prepared: dict[str, Any]) -> None:
    conference_id = prepared["conference"]["id"]
    response = await client.get(f"/api/v1/conferences/{conference_id}/readiness", headers=admin)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["ready"], body["total"]) == (2, 4)
    assert body["summary_en"] == (
        "2/4 ready; HUYEN-MUONG-LAT offline since 07:12; HUYEN-QUAN-SON camera missing")
    assert body["summary_vi"] == ("2/4 điểm cầu sẵn sàng; HUYEN-MUONG-LAT mất kết nối từ 07:12; "
                                  "HUYEN-QUAN-SON thiếu camera")
    by_code = {e["code"]: e for e in body["endpoints"]}
    assert [e["code"] for e in body["endpoints"]] == [CHAIR, MUONG_LAT, NGA_SON, QUAN_SON]
    assert by_code[CHAIR]["ready"] is True and by_code[CHAIR]["problems"] == []
    muong_lat = by_code[MUONG_LAT]
    assert (muong_lat["ready"], muong_lat["state"]) == (False, "offline")
    assert muong_lat["since"] == "2026-11-27T07:12:00+07:00"
    assert muong_lat["last_heartbeat"] == "2026-11-27T07:10:00+07:00"
    assert [p["code"] for p in muong_lat["problems"]] == ["no_heartbeat"]
    quan_son = by_code[QUAN_SON]
    assert quan_son["devices"]["camera"] is False
    assert [p["code"] for p in quan_son["problems"]] == ["camera_missing"]
    assert body["start"] == "2026-11-27T08:00:00+07:00"


async def test_readiness_uses_the_test_call(client: Client, admin: dict[str, str],
                                            clock: FixedClock,
                                            prepared: dict[str, Any]) -> None:
    agent = prepared["agents"][NGA_SON]
    test_call = {"ok": False, "audio_packets": 0, "video_frames": 0, "loss": 1.0,
                 "rtt_ms": None, "at": (clock.now() - timedelta(seconds=20)).isoformat()}
    assert (await send(client, agent, NGA_SON, heartbeat(test_call=test_call), clock)
            ).status == 200
    body = await (await client.get(
        f"/api/v1/conferences/{prepared['conference']['id']}/readiness", headers=admin)).json()
    nga_son = next(e for e in body["endpoints"] if e["code"] == NGA_SON)
    assert nga_son["ready"] is False
    assert nga_son["test_call"]["ok"] is False
    assert nga_son["test_call"]["at"] == "2026-11-27T07:39:40+07:00"
    assert body["summary_en"].endswith("; HUYEN-NGA-SON test call failed at 07:39; "
                                       "HUYEN-QUAN-SON camera missing")
    assert "HUYEN-NGA-SON gọi thử thất bại lúc 07:39" in body["summary_vi"]

    ok_call = test_call | {"ok": True, "audio_packets": 250, "video_frames": 75, "loss": 0.0,
                           "rtt_ms": 35.0, "at": clock.now().isoformat()}
    assert (await send(client, agent, NGA_SON, heartbeat(test_call=ok_call), clock)
            ).status == 200
    body = await (await client.get(
        f"/api/v1/conferences/{prepared['conference']['id']}/readiness", headers=admin)).json()
    nga_son = next(e for e in body["endpoints"] if e["code"] == NGA_SON)
    assert nga_son["ready"] is True and nga_son["test_call"]["video_frames"] == 75


async def test_who_may_see_readiness(client: Client, admin: dict[str, str],
                                     make_user: Callable[..., Awaitable[dict[str, str]]],
                                     prepared: dict[str, Any]) -> None:
    url = f"/api/v1/conferences/{prepared['conference']['id']}/readiness"
    inside = await make_user("op-nga-son", "operator", NGA_SON)
    outside = await make_user("op-ba-thuoc", "operator", "HUYEN-BA-THUOC")
    assert (await client.get(url, headers=inside)).status == 200
    assert (await client.get(url, headers=prepared["agents"][QUAN_SON])).status == 200
    assert (await client.get(url, headers=outside)).status == 404
    assert (await client.get("/api/v1/conferences/999999/readiness", headers=admin)
            ).status == 404
    assert (await client.get("/api/v1/conferences/abc/readiness", headers=admin)).status == 404


async def _readiness_events(client: Client, conference_id: int) -> list[Event]:
    async with client.app[DATABASE].read() as session:
        rows = await session.scalars(select(Event).where(
            Event.conference_id == conference_id, Event.type == "conference.readiness"))
        return list(rows)


async def test_readiness_event_when_the_room_opens(client: Client, clock: FixedClock,
                                                   prepared: dict[str, Any]) -> None:
    conference_id = prepared["conference"]["id"]
    clock.set(prepared["start"] - timedelta(minutes=15))  # 07:45: the room opens
    no_camera = heartbeat(devices={"camera": False, "microphone": True, "speaker": True})
    for code, body in ((CHAIR, heartbeat()), (NGA_SON, heartbeat()), (QUAN_SON, no_camera)):
        response = await send(client, prepared["agents"][code], code, body, clock, step=0)
        assert response.status == 200
    async with client.app[DATABASE].write() as session:
        result = await advance(session, conference_id, clock,
                               LifecycleSettings(5, timedelta(seconds=60)),
                               client.app[EVENT_BUS])
    assert [t.value for t in result.applied] == ["open"]
    for _ in range(100):
        events = await _readiness_events(client, conference_id)
        if events:
            break
        await asyncio.sleep(0.05)
    assert len(events) == 1
    event = events[0]
    assert sorted(event.audience) == sorted([CHAIR, MUONG_LAT, NGA_SON, QUAN_SON])
    assert event.data["summary_en"] == (
        "2/4 ready; HUYEN-MUONG-LAT offline since 07:12; HUYEN-QUAN-SON camera missing")
    assert event.data["summary_vi"].startswith("2/4 điểm cầu sẵn sàng; ")
    assert (event.data["ready"], event.data["total"]) == (2, 4)
    assert [e["problems"] for e in event.data["endpoints"]] == [
        [], ["no_heartbeat"], [], ["camera_missing"]]
    # Another process seeing the same `conference.opened` publishes nothing more.
    assert await publish_readiness(client.app, conference_id) is False
    assert len(await _readiness_events(client, conference_id)) == 1
