"""Heartbeats and the health API through a real aiohttp client, on the fixed clock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from monitoring.health import recorder
from monitoring.metrics.status import EndpointFacts
from monitoring.wiring import status_model
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
from tests.support import bearer, login
from vcbridge.app import create_app
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import Endpoint, EndpointHealth, Event, HealthSample, HealthTransition
from vcbridge.core.settings import Settings

NGA_SON = "HUYEN-NGA-SON"
MUONG_LAT = "HUYEN-MUONG-LAT"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(database_url, tmp_path)


async def _count(client: Client, model: Any, **where: Any) -> int:
    await monitor_of(client).record_changes()  # what the recorder task would do soon
    async with client.app[DATABASE].read() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def _endpoint_id(client: Client, code: str) -> int:
    async with client.app[DATABASE].read() as session:
        value = await session.scalar(select(Endpoint.id).where(Endpoint.code == code))
        assert value is not None
        return int(value)


# -- accepting heartbeats ----------------------------------------------------------------


async def test_heartbeat_accepted_and_shown(client: Client, admin: dict[str, str],
                                            clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    response = await send(client, agent, NGA_SON, heartbeat(), clock)
    assert response.status == 200, await response.text()
    body = await response.json()
    # Not on the event stream: reachable, but it cannot be invited.
    assert body["state"] == "degraded"
    assert codes(body["reasons"]) == ["event_stream_down"]
    assert body["interval_seconds"] == 5
    assert body["clock_skew"] is False
    assert body["clock_offset_seconds"] == 0

    board = await client.get("/api/v1/health", headers=admin)
    assert board.status == 200
    listing = await board.json()
    assert len(listing["endpoints"]) == 31
    assert listing["counts"] == {"ok": 0, "degraded": 1, "offline": 30}
    mine = next(e for e in listing["endpoints"] if e["code"] == NGA_SON)
    assert mine["name"] == "UBND huyện Nga Sơn"
    assert mine["devices"] == {"camera": True, "microphone": True, "speaker": True}
    assert mine["cpu_percent"] == 12.5
    assert mine["network"] == {"interface": "eth0", "rtt_ms": 18.0}
    assert mine["seconds_since_heartbeat"] == 0
    assert mine["last_heartbeat"] == "2026-11-27T10:00:05+07:00"
    other = next(e for e in listing["endpoints"] if e["code"] == MUONG_LAT)
    assert other["state"] == "offline"
    assert other["reasons"] == [{"code": "never_seen", "vi": "chưa từng nhận được heartbeat",
                                 "en": "no heartbeat ever received"}]
    assert other["since"] is None and other["last_heartbeat"] is None


async def test_ok_with_the_event_stream_open(client: Client, admin: dict[str, str],
                                             clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    async with client.ws_connect("/api/v1/events", headers=agent) as ws:
        assert (await ws.receive_json())["type"] == "stream.ready"
        await monitor_of(client).sweep()  # reads the presence
        body = await (await send(client, agent, NGA_SON, heartbeat(), clock)).json()
        assert body["state"] == "ok" and body["reasons"] == []
        assert (await health_of(client, admin, NGA_SON))["event_stream"] is True


async def test_another_endpoints_token_is_refused_and_changes_nothing(
    client: Client, admin: dict[str, str], clock: FixedClock
) -> None:
    nga_son = await agent_token(client, admin, NGA_SON)
    muong_lat = await agent_token(client, admin, MUONG_LAT)
    assert (await send(client, nga_son, NGA_SON, heartbeat(), clock)).status == 200
    before = await health_of(client, admin, NGA_SON)
    rows = await _count(client, HealthTransition)

    broken = heartbeat(devices={"camera": False, "microphone": False, "speaker": False})
    response = await send(client, muong_lat, NGA_SON, broken, clock)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    # Staff and operators do not send heartbeats either.
    assert (await send(client, admin, NGA_SON, broken, clock)).status == 403
    client.session.cookie_jar.clear()  # the admin's login cookie: anonymous from here
    assert (await send(client, {}, NGA_SON, broken, clock)).status == 401
    assert (await send(client, bearer("vca_forged"), NGA_SON, broken, clock)).status == 401

    after = await health_of(client, admin, NGA_SON)
    assert after["devices"] == before["devices"] and after["reasons"] == before["reasons"]
    assert after["last_heartbeat"] == before["last_heartbeat"]
    assert (await health_of(client, admin, MUONG_LAT))["state"] == "offline"
    assert await _count(client, HealthTransition) == rows
    # The refused one did not use up Muong Lat's own allowance either.
    assert (await send(client, muong_lat, MUONG_LAT, heartbeat(), clock, step=0)).status == 200
    assert monitor_of(client).dropped["forbidden"] == 2
    assert monitor_of(client).dropped["unauthorized"] == 2
    # ... and IT sees them counted in Prometheus.
    scraped = await (await client.get("/metrics")).text()
    assert 'vcbridge_heartbeats_dropped_total{reason="forbidden"} 2.0' in scraped
    assert 'vcbridge_heartbeats_dropped_total{reason="unauthorized"} 2.0' in scraped


async def test_bad_bodies(client: Client, admin: dict[str, str], clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    url = f"/api/v1/endpoints/{NGA_SON}/heartbeat"
    json_headers = agent | {"Content-Type": "application/json"}

    async def post_raw(data: bytes, headers: dict[str, str] = json_headers) -> tuple[int, Any]:
        clock.set(clock.now() + timedelta(seconds=5))
        response = await client.post(url, data=data, headers=headers)
        return response.status, await response.json()

    status, body = await post_raw(b'{"sent_at": ')
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, body = await post_raw(b"\xff\xfe not utf-8")
    assert status == 400
    status, body = await post_raw(b"[]")
    assert (status, body["error"]["code"]) == (422, "invalid")
    status, body = await post_raw(b"{}", agent | {"Content-Type": "text/plain"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")

    now = clock.now().isoformat()
    wrong = [
        heartbeat(cpu_percent="12"),  # strict: no numbers in strings
        heartbeat(devices={"camera": 1, "microphone": True, "speaker": True}),
        heartbeat(devices={"camera": True, "microphone": True}),  # speaker missing
        heartbeat(surprise=True),  # unknown field
        heartbeat(network={"interface": "eth0", "mtu": 1500}),  # unknown nested field
        heartbeat(sent_at="2026-11-27T10:00:00"),  # no offset
        heartbeat(sent_at="yesterday"),
        heartbeat(sent_at="0001-01-01T00:00:00+14:00"),  # not representable in UTC
        heartbeat(cpu_percent=250.0),
        heartbeat(call=in_call(loss=1.5)),
        heartbeat(call=in_call(rtt_ms=-1)),
        heartbeat(test_call={"ok": "yes", "at": now}),
        {"devices": {"camera": True, "microphone": True, "speaker": True}},  # no sent_at
    ]
    for body_in in wrong:
        status, body = await post_raw(json.dumps(body_in).encode())
        assert (status, body["error"]["code"]) == (422, "invalid"), body_in
        assert body["error"]["details"], body_in
    for text in (b'{"sent_at": "%s", "devices": {"camera": true, "microphone": true, '
                 b'"speaker": true}, "cpu_percent": NaN}' % now.encode(),
                 b'{"sent_at": "%s", "devices": {"camera": true, "microphone": true, '
                 b'"speaker": true}, "cpu_percent": 1e999}' % now.encode()):
        status, body = await post_raw(text)
        assert status in (400, 422), body
    # Nothing of it was taken: the endpoint was never heard from.
    assert (await health_of(client, admin, NGA_SON))["reasons"][0]["code"] == "never_seen"
    assert monitor_of(client).accepted == 0


async def test_oversized_heartbeat_is_413(client: Client, admin: dict[str, str],
                                          clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    big = heartbeat(agent_version="x" * 64) | {"padding": "y" * 17_000}
    response = await send(client, agent, NGA_SON, big, clock)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"

    async def chunked() -> Any:  # no Content-Length: counted while reading
        yield b'{"sent_at": "' + clock.now().isoformat().encode() + b'", "pad": "'
        for _ in range(20):
            yield b"z" * 1024
        yield b'"}'

    response = await client.post(f"/api/v1/endpoints/{NGA_SON}/heartbeat", data=chunked(),
                                 headers=agent | {"Content-Type": "application/json"})
    assert response.status == 413
    assert monitor_of(client).dropped["too_large"] == 2
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200


async def test_flood_is_429_until_the_gap_passed(client: Client, admin: dict[str, str],
                                                 clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    other = await agent_token(client, admin, MUONG_LAT)
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    for _ in range(20):
        response = await send(client, agent, NGA_SON, heartbeat(), clock, step=0.04)
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "rate_limited"
    # Another endpoint is not held back by the flood.
    assert (await send(client, other, MUONG_LAT, heartbeat(), clock, step=0)).status == 200
    assert (await send(client, agent, NGA_SON, heartbeat(), clock, step=0.3)).status == 200
    monitor = monitor_of(client)
    assert monitor.dropped["rate_limited"] == 20 and monitor.accepted == 3


async def test_clock_skew_is_accepted_but_flagged(client: Client, admin: dict[str, str],
                                                  clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    clock.set(clock.now() + timedelta(seconds=5))
    skewed = heartbeat(at=clock.now() - timedelta(minutes=7))
    response = await send(client, agent, NGA_SON, skewed)
    assert response.status == 200
    body = await response.json()
    assert body["clock_skew"] is True and body["clock_offset_seconds"] == 420
    skew = next(r for r in body["reasons"] if r["code"] == "clock_skew")
    assert skew["en"] == "clock off by 7 min from the server (check NTP)"
    assert skew["vi"] == "đồng hồ lệch 7 phút so với máy chủ (kiểm tra NTP)"
    # The server's clock decides when it was seen.
    assert (await health_of(client, admin, NGA_SON))["last_heartbeat"] == (
        "2026-11-27T10:00:05+07:00")
    # A clock 4 minutes ahead is within the tolerance.
    clock.set(clock.now() + timedelta(seconds=5))
    body = await (await send(client, agent, NGA_SON,
                             heartbeat(at=clock.now() + timedelta(minutes=4)))).json()
    assert body["clock_skew"] is False and body["clock_offset_seconds"] == -240


# -- the health model through the API -------------------------------------------------------


async def test_degraded_with_reasons_then_recovered(client: Client, admin: dict[str, str],
                                                    clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)

    async def beat(body: dict[str, Any]) -> dict[str, Any]:
        """One heartbeat, then what the recorder task does within 0.2 s."""
        answer: dict[str, Any] = await (await send(client, agent, NGA_SON, body, clock)).json()
        await monitor_of(client).record_changes()
        return answer

    async with client.ws_connect("/api/v1/events", headers=agent) as ws:
        await ws.receive_json()
        await monitor_of(client).sweep()
        assert (await beat(heartbeat()))["state"] == "ok"
        no_camera = heartbeat(devices={"camera": False, "microphone": True, "speaker": True},
                              call=in_call(loss=0.05))
        body = await beat(no_camera)
        assert body["state"] == "degraded"
        assert codes(body["reasons"]) == ["camera_missing", "packet_loss"]
        loss = body["reasons"][1]
        assert loss["en"] == "packet loss 5 % (limit 2 %)"
        assert loss["vi"] == "mất gói 5 % (ngưỡng 2 %)"
        assert body["reasons"][0]["vi"] == "thiếu camera"

        # Camera back; loss 1.8 %: under the limit but not 20 % under it: still degraded.
        body = await beat(heartbeat(call=in_call(loss=0.018)))
        assert codes(body["reasons"]) == ["packet_loss"]
        assert body["reasons"][0]["vi"] == "mất gói 1,8 % (ngưỡng 2 %)"
        # 1 %: well inside, but it clears only after three such heartbeats in a row.
        for _ in range(2):
            body = await beat(heartbeat(call=in_call(loss=0.01)))
            assert codes(body["reasons"]) == ["packet_loss"]
        body = await beat(heartbeat(call=in_call(loss=0.01)))
        assert body["state"] == "ok"

        high = heartbeat(call=in_call(rtt_ms=450.0, jitter_ms=45.0, fps=6.0), cpu_percent=97.0)
        body = await beat(high)
        assert codes(body["reasons"]) == ["high_rtt", "high_jitter", "low_fps", "high_cpu"]
        assert [r["en"] for r in body["reasons"]] == [
            "round-trip time 450 ms (limit 300 ms)", "jitter 45 ms (limit 30 ms)",
            "video at 6 frames/s (minimum 10)", "CPU at 97 % (limit 90 %)"]

    detail = await health_of(client, admin, NGA_SON)
    states = [(t["state"], codes(t["reasons"])) for t in reversed(detail["transitions"])]
    assert states == [
        ("ok", []),
        ("degraded", ["camera_missing", "packet_loss"]),
        ("degraded", ["packet_loss"]),
        ("ok", []),
        ("degraded", ["high_rtt", "high_jitter", "low_fps", "high_cpu"]),
    ]
    assert detail["transitions"][-1]["previous"] is None
    # `since` is when the state began; a change of reasons alone does not move it.
    assert detail["since"] == "2026-11-27T10:00:35+07:00"
    assert await _count(client, Event, type="endpoint.health") == 5


async def test_offline_after_silence_and_back(client: Client, admin: dict[str, str],
                                              clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    last = clock.now()
    clock.set(last + timedelta(seconds=119))
    await monitor_of(client).sweep()
    assert (await health_of(client, admin, NGA_SON))["state"] == "degraded"
    clock.set(last + timedelta(seconds=167))
    await monitor_of(client).sweep()
    detail = await health_of(client, admin, NGA_SON)
    assert detail["state"] == "offline"
    assert detail["reasons"][0]["en"] == "no heartbeat for 2 min 47 s"
    assert detail["reasons"][0]["vi"] == "không nhận được heartbeat trong 2 phút 47 giây"
    # Offline from when the rule says (last heartbeat + 120 s), not from the sweep.
    assert detail["since"] == "2026-11-27T10:02:05+07:00"
    assert detail["transitions"][0]["at"] == "2026-11-27T10:02:05+07:00"
    # Sweeping again records nothing new.
    rows = await _count(client, HealthTransition)
    await monitor_of(client).sweep()
    assert await _count(client, HealthTransition) == rows

    body = await (await send(client, agent, NGA_SON, heartbeat(), clock)).json()
    assert body["state"] == "degraded"
    assert body["since"] == "2026-11-27T10:02:57+07:00"
    assert [t["state"] for t in (await health_of(client, admin, NGA_SON))["transitions"]] == [
        "degraded", "offline", "degraded"]


async def test_transitions_survive_a_restart(
    aiohttp_client: Callable[..., Awaitable[Client]], client: Client, admin: dict[str, str],
    clock: FixedClock, settings: Settings
) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    no_mic = heartbeat(devices={"camera": True, "microphone": False, "speaker": True})
    assert (await send(client, agent, NGA_SON, no_mic, clock)).status == 200
    await client.close()  # the app stops: its cleanup flushes what memory holds

    again = await aiohttp_client(create_app(settings, clock=clock))
    token = await login(again, "admin", "admin-password-for-tests")
    detail = await health_of(again, bearer(token), NGA_SON)
    assert detail["state"] == "degraded"
    assert codes(detail["reasons"]) == ["microphone_missing", "event_stream_down"]
    assert detail["devices"]["microphone"] is False
    assert [t["state"] for t in detail["transitions"]] == ["degraded"]
    assert detail["samples"][0]["heartbeats"] == 1

    # Silent through the restart: the first sweep finds it offline.
    clock.set(clock.now() + timedelta(minutes=10))
    await monitor_of(again).sweep()
    assert (await health_of(again, bearer(token), NGA_SON))["state"] == "offline"


async def test_samples_per_minute_and_detail(client: Client, admin: dict[str, str],
                                             clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    # 10:00:05 .. 10:00:55 (11 heartbeats), 10:01:00 .. 10:01:55 (12), 10:02:00 (running).
    for i in range(24):
        loss = 0.01 if i < 12 else 0.03
        response = await send(client, agent, NGA_SON, heartbeat(call=in_call(loss=loss)), clock)
        assert response.status == 200
    await monitor_of(client).sweep()
    samples = (await health_of(client, admin, NGA_SON))["samples"]
    assert [s["minute"] for s in samples] == ["2026-11-27T10:00:00+07:00",
                                              "2026-11-27T10:01:00+07:00"]
    assert [s["heartbeats"] for s in samples] == [11, 12]
    assert samples[0]["packet_loss_ratio"] == 0.01
    assert samples[0]["rtt_ms"] == 40.0 and samples[0]["fps"] == 25.0
    assert samples[0]["network_rtt_ms"] == 18.0 and samples[0]["cpu_percent"] == 12.5
    assert samples[0]["in_call"] == 11 and samples[0]["degraded"] == 11
    assert samples[1]["packet_loss_ratio"] == round((0.01 + 11 * 0.03) / 12, 4)
    # Raw heartbeats are not stored: one row per endpoint and minute.
    assert await _count(client, HealthSample) == 2
    # The minute still running is flushed at shutdown, adding to its row.
    await client.close()


async def test_samples_pruned_after_35_days(client: Client, admin: dict[str, str],
                                            clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    await monitor_of(client).flush_samples(everything=True)
    clock.set(clock.now() + timedelta(days=34))
    assert await monitor_of(client).prune() == 0
    clock.set(clock.now() + timedelta(days=2))
    assert await monitor_of(client).prune() == 1
    assert await _count(client, HealthSample) == 0


async def test_who_sees_what(client: Client, admin: dict[str, str], clock: FixedClock,
                             make_user: Callable[..., Awaitable[dict[str, str]]]) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    operator = await make_user("op-nga-son", "operator", NGA_SON)
    it = await make_user("it1", "it", None)
    booker = await make_user("booker1", "booker", None)

    listing = await (await client.get("/api/v1/health", headers=operator)).json()
    assert [e["code"] for e in listing["endpoints"]] == [NGA_SON]
    for staff in (it, booker, admin):
        assert len((await (await client.get("/api/v1/health", headers=staff)).json())[
            "endpoints"]) == 31
    assert (await client.get(f"/api/v1/health/{NGA_SON}", headers=operator)).status == 200
    assert (await client.get(f"/api/v1/health/{MUONG_LAT}", headers=operator)).status == 403
    assert (await client.get(f"/api/v1/health/{NGA_SON}", headers=agent)).status == 200
    assert (await client.get("/api/v1/health/NO-SUCH", headers=it)).status == 404
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/health")).status == 401
    report = "/api/v1/reports/availability?month=2026-11"
    assert (await client.get(report, headers=operator)).status == 403
    assert (await client.get(report, headers=agent)).status == 403
    assert (await client.get(report, headers=it)).status == 200
    bad = await client.get(f"/api/v1/health/{NGA_SON}?hours=0", headers=it)
    assert bad.status == 422


async def test_test_call_result_kept_and_used(client: Client, admin: dict[str, str],
                                              clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    clock.set(clock.now() + timedelta(seconds=5))
    # The agent's clock is 10 minutes behind; its test call ran 30 s before sending.
    sent = clock.now() - timedelta(minutes=10)
    failed = {"ok": False, "audio_packets": 3, "video_frames": 0, "loss": 0.9, "rtt_ms": None,
              "at": (sent - timedelta(seconds=30)).isoformat()}
    body = await (await send(client, agent, NGA_SON,
                             heartbeat(at=sent, test_call=failed))).json()
    reason = next(r for r in body["reasons"] if r["code"] == "test_call_failed")
    assert reason["en"] == "test call failed at 09:59"  # 10:00:05 - 30 s on the server's clock
    assert reason["vi"] == "gọi thử thất bại lúc 09:59"
    # Later heartbeats without a test call keep the last result.
    body = await (await send(client, agent, NGA_SON, heartbeat(), clock)).json()
    assert "test_call_failed" in codes(body["reasons"])
    detail = await health_of(client, admin, NGA_SON)
    assert detail["test_call"]["ok"] is False
    assert detail["test_call"]["at"] == "2026-11-27T09:59:35+07:00"
    # A failed test call counts for an hour.
    clock.set(clock.now() + timedelta(minutes=61))
    body = await (await send(client, agent, NGA_SON, heartbeat(), clock)).json()
    assert "test_call_failed" not in codes(body["reasons"])


async def test_two_processes_share_the_state(
    aiohttp_client: Callable[..., Awaitable[Client]], client: Client, admin: dict[str, str],
    clock: FixedClock, settings: Settings
) -> None:
    """Heartbeats land on process A; process B neither loses them nor takes the endpoint
    for silent while A keeps writing its newest figures every persist period."""
    other = await aiohttp_client(create_app(settings, clock=clock))
    a, b = monitor_of(client), monitor_of(other)
    agent = await agent_token(client, admin, NGA_SON)
    no_cam = heartbeat(devices={"camera": False, "microphone": True, "speaker": True})
    assert (await send(client, agent, NGA_SON, no_cam, clock)).status == 200
    await a.record_changes()  # as A's recorder task does within 0.2 s
    staff = bearer(await login(other, "admin", "admin-password-for-tests"))
    assert codes((await health_of(other, staff, NGA_SON))["reasons"])[0] == "camera_missing"

    for _ in range(60):  # 5 minutes of heartbeats, all on A; both sweep every 2 s
        assert (await send(client, agent, NGA_SON, no_cam, clock)).status == 200
        await a.sweep()
        await b.sweep()
    assert (await health_of(other, staff, NGA_SON))["state"] == "degraded"
    assert await _count(client, HealthTransition) == 1
    # The camera comes back on B: once B recorded the change, A sees it.
    assert (await send(other, agent, NGA_SON, heartbeat(), clock)).status == 200
    await b.record_changes()
    assert codes((await health_of(client, admin, NGA_SON))["reasons"]) == ["event_stream_down"]
    await a.sweep()
    await b.sweep()
    assert await _count(client, HealthTransition) == 2
    async with client.app[DATABASE].read() as session:
        row = await session.get(EndpointHealth, await _endpoint_id(client, NGA_SON))
        assert row is not None and row.last_heartbeat == clock.now()


async def test_status_model_for_the_metrics(client: Client, admin: dict[str, str],
                                            clock: FixedClock) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    no_camera = heartbeat(devices={"camera": False, "microphone": True, "speaker": True})
    assert (await send(client, agent, NGA_SON, no_camera, clock)).status == 200
    status = status_model(monitor_of(client))

    def facts(code: str, online: bool = False) -> EndpointFacts:
        return EndpointFacts(code, online, None, False, None)

    # An endpoint the last sweep did not know: the presence-based default.
    assert status(facts("NEW-SITE", online=True)).health.value == "ok"
    await monitor_of(client).sweep()
    nga_son = status(facts(NGA_SON))
    assert (nga_son.health.value, nga_son.ready) == ("degraded", False)
    assert nga_son.last_heartbeat == clock.now()
    muong_lat = status(facts(MUONG_LAT, online=True))
    assert (muong_lat.health.value, muong_lat.ready, muong_lat.last_heartbeat) == (
        "offline", False, None)


async def test_a_burst_of_changes_is_recorded_in_chunks(
    client: Client, admin: dict[str, str], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every endpoint's first heartbeat at once (a rollout, or the end of an outage):
    recorded in a few short transactions, one transition and one event each."""
    monkeypatch.setattr(recorder, "RECORD_CHUNK", 7)
    chunks: list[int] = []
    record = recorder.transitions.record

    async def counted(session: Any, changes: Any, *args: Any) -> Any:
        chunks.append(len(changes))
        return await record(session, changes, *args)

    monkeypatch.setattr(recorder.transitions, "record", counted)
    async with client.app[DATABASE].read() as session:
        codes_ = list(await session.scalars(select(Endpoint.code).where(Endpoint.active)))
    clock.set(clock.now() + timedelta(seconds=5))
    for code in codes_:
        agent = await agent_token(client, admin, code)
        response = await send(client, agent, code, heartbeat(at=clock.now()))
        assert response.status == 200
    monitor = monitor_of(client)
    await monitor.record_changes()  # whatever the recorder task has not done yet
    assert sum(chunks) == 31 and max(chunks) <= 7
    assert await _count(client, HealthTransition) == 31
    assert await _count(client, Event, type="endpoint.health") == 31
    assert await _count(client, EndpointHealth) == 31
    # Silent for good: one sweep records all 31 going offline, dated by the rule.
    clock.set(clock.now() + timedelta(minutes=10))
    await monitor.sweep()
    async with client.app[DATABASE].read() as session:
        offline = list(await session.scalars(
            select(HealthTransition.at).where(HealthTransition.state == "offline")))
    assert len(offline) == 31
    assert set(offline) == {clock.now() - timedelta(minutes=10) + timedelta(seconds=120)}


async def test_heartbeats_on_the_event_stream(
    client: Client, admin: dict[str, str], clock: FixedClock,
    make_user: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    """An agent reports over the event stream it already holds: the same checks and
    answer as the POST; a refused heartbeat gets an error and the stream stays open."""
    agent = await agent_token(client, admin, NGA_SON)
    monitor = monitor_of(client)
    async with client.ws_connect("/api/v1/events", headers=agent) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"

        async def say(message: Any) -> dict[str, Any]:
            await ws.send_json(message)
            while True:  # events may come first
                reply: dict[str, Any] = await ws.receive_json(timeout=5)
                if "seq" not in reply:
                    return reply

        await monitor.sweep()  # the service sweeps every 2 s: it sees the stream open
        clock.set(clock.now() + timedelta(seconds=5))
        ok = await say({"type": "heartbeat", "body": heartbeat(at=clock.now())})
        assert ok["type"] == "heartbeat.ok" and ok["reasons"] == [], ok
        assert ok["state"] == "ok" and ok["interval_seconds"] == 5
        too_soon = await say({"type": "heartbeat", "body": heartbeat(at=clock.now())})
        assert too_soon["error"]["code"] == "rate_limited" and too_soon["for"] == "heartbeat"
        clock.set(clock.now() + timedelta(seconds=5))
        for bad, code in [
            ({"type": "heartbeat", "body": {"sent_at": 5}}, "invalid"),
            ({"type": "heartbeat", "body": heartbeat(at=clock.now()), "x": 1}, "invalid"),
            ({"type": "heartbeat", "body": [1]}, "invalid"),
            ({"type": "heartbeat", "body": heartbeat(at=clock.now(), agent_version="v" * 20_000)},
             "too_large"),
        ]:
            refused = await say(bad)
            assert refused["type"] == "error" and refused["error"]["code"] == code, refused
        assert await say({"type": "ping"}) == {"type": "pong"}  # still open
        assert monitor.dropped["rate_limited"] == 1 and monitor.dropped["invalid"] == 3
        assert monitor.dropped["too_large"] == 1
    assert (await health_of(client, admin, NGA_SON))["state"] == "ok"

    # Staff bound to no endpoint report for none.
    async with client.ws_connect("/api/v1/events", headers=admin) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
        await ws.send_json({"type": "heartbeat", "body": heartbeat(at=clock.now())})
        refused = await ws.receive_json(timeout=5)
        assert refused["error"]["code"] == "forbidden", refused
    assert monitor.dropped["forbidden"] == 1


async def test_the_streams_answer_is_the_posts_and_a_broken_heartbeat_keeps_the_stream(
    client: Client, admin: dict[str, str], clock: FixedClock,
) -> None:
    """The event stream's `heartbeat.ok` says what the POST's answer says (state, reasons
    with their texts and figures, clock offset and skew, interval), without the endpoint
    and the times. A heartbeat that names its type first reaches the heartbeat's own
    validation unparsed: cut short, it is refused as malformed JSON and the stream stays
    open; one that names its type last is taken the same."""
    agent = await agent_token(client, admin, NGA_SON)
    monitor = monitor_of(client)
    degraded = {"devices": {"camera": False, "microphone": True, "speaker": True},
                "cpu_percent": 97.5, "call": in_call(loss=0.05)}
    async with client.ws_connect("/api/v1/events", headers=agent) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"

        async def say(text: str) -> dict[str, Any]:
            await ws.send_str(text)
            while True:  # events may come first
                reply: dict[str, Any] = await ws.receive_json(timeout=5)
                if "seq" not in reply:
                    return reply

        await monitor.sweep()  # the service sweeps every 2 s: it sees the stream open
        clock.set(clock.now() + timedelta(seconds=5))
        body = heartbeat(at=clock.now() - timedelta(minutes=10), **degraded)
        on_stream = await say(json.dumps({"type": "heartbeat", "body": body}))
        assert on_stream["type"] == "heartbeat.ok", on_stream
        assert {r["code"] for r in on_stream["reasons"]} == {
            "camera_missing", "high_cpu", "packet_loss", "clock_skew"}, on_stream

        clock.set(clock.now() + timedelta(seconds=5))
        cut_short = await say('{"type": "heartbeat", "body": {"sent_at": ')
        assert cut_short["type"] == "error" and cut_short["for"] == "heartbeat", cut_short
        assert cut_short["error"]["code"] == "bad_request", cut_short
        assert "malformed JSON" in cut_short["error"]["message"], cut_short
        clock.set(clock.now() + timedelta(seconds=5))
        nested = await say('{"type": "heartbeat", "body": ' + "[" * 10_000)  # < 16 KiB
        assert nested["for"] == "heartbeat", nested
        assert nested["error"]["code"] == "bad_request", nested
        assert monitor.dropped["malformed"] == 2
        clock.set(clock.now() + timedelta(seconds=5))
        type_last = await say(json.dumps({"body": heartbeat(at=clock.now()),
                                          "type": "heartbeat"}))
        assert type_last["type"] == "heartbeat.ok", type_last
        assert await say('{"type": "ping"}') == {"type": "pong"}  # still open

    # The same heartbeat by POST (the same held verdict: the page's answer is the same).
    clock.set(clock.now() + timedelta(seconds=5))
    await send(client, agent, NGA_SON, heartbeat(**degraded), clock)
    clock.set(clock.now() + timedelta(seconds=5))
    response = await client.post(
        f"/api/v1/endpoints/{NGA_SON}/heartbeat", headers=agent,
        json=heartbeat(at=clock.now() - timedelta(minutes=10), **degraded))
    by_post = await response.json()
    assert response.status == 200, by_post
    stream_keys = {"state", "reasons", "clock_offset_seconds", "clock_skew", "interval_seconds"}
    assert set(on_stream) == stream_keys | {"type"}
    assert {k: by_post[k] for k in stream_keys} == {k: on_stream[k] for k in stream_keys}


async def test_the_operators_page_reports_its_call_on_its_event_stream(
    client: Client, admin: dict[str, str], clock: FixedClock,
    make_user: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    """The /join page in a conference reports the call for its own endpoint (only its
    call, saying "browser"); the agent's call-less reports meanwhile do not erase it,
    and each sender has its own minimum gap."""
    operator = await make_user("op-nga-son", "operator", NGA_SON)
    agent = await agent_token(client, admin, NGA_SON)
    page_call = {"conference": 7, "source": "browser", "rtt_ms": 12.0, "fps": 14.5,
                 "packet_loss_ratio": 0.01,
                 "video": {"in": {"fps_by_slot": {"chair": 14.5}, "loss_ratio": 0.01}}}
    async with client.ws_connect("/api/v1/events", headers=operator) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"

        async def say(body: dict[str, Any]) -> dict[str, Any]:
            await ws.send_json({"type": "heartbeat", "body": body})
            return dict(await ws.receive_json(timeout=5))

        clock.set(clock.now() + timedelta(seconds=5))
        for bad in (heartbeat(at=clock.now()),  # no call: a page reports only its call
                    heartbeat(at=clock.now(), call={**page_call, "source": "agent"})):
            refused = await say(bad)
            assert refused["error"]["code"] == "invalid", refused
        ok = await say(heartbeat(at=clock.now(), cpu_percent=None, call=page_call))
        assert ok["type"] == "heartbeat.ok", ok
        shown = await health_of(client, admin, NGA_SON)
        assert shown["call"]["source"] == "browser" and shown["call"]["fps"] == 14.5, shown

        # The agent, whose seat the page took, reports its machine within the same
        # second (its own gap) and in no call: the page's call stays.
        agent_says = await client.post(f"/api/v1/endpoints/{NGA_SON}/heartbeat",
                                       json=heartbeat(at=clock.now()), headers=agent)
        assert agent_says.status == 200, await agent_says.text()
        shown = await health_of(client, admin, NGA_SON)
        assert shown["cpu_percent"] == heartbeat()["cpu_percent"], shown
        assert shown["call"]["source"] == "browser", shown
        # ... until the page stops reporting (it left): two intervals on, it is gone.
        clock.set(clock.now() + timedelta(seconds=11))
        agent_says = await client.post(f"/api/v1/endpoints/{NGA_SON}/heartbeat",
                                       json=heartbeat(at=clock.now()), headers=agent)
        assert (await health_of(client, admin, NGA_SON))["call"] is None
        # An agent never claims to be the page.
        clock.set(clock.now() + timedelta(seconds=5))
        agent_says = await client.post(f"/api/v1/endpoints/{NGA_SON}/heartbeat", headers=agent,
                                       json=heartbeat(at=clock.now(), call=page_call))
        assert agent_says.status == 422, await agent_says.text()
    # A page's heartbeat by POST: the page has its stream.
    response = await client.post(f"/api/v1/endpoints/{NGA_SON}/heartbeat", headers=operator,
                                 json=heartbeat(at=clock.now(), call=page_call))
    assert response.status == 403, await response.text()
