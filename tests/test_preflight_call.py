"""The pre-flight test call: a site's media goes to the bridge and comes back, with real
aiortc peers on loopback; the agent makes one when its conference opens, and the
conference's readiness shows the result."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.agent.endpoint_agent import EndpointAgent
from bridge.agent.generated_media import ColourCardTrack, ToneTrack
from bridge.agent.preflight import run_preflight_call
from bridge.ice_policy import rtc_configuration
from bridge.preflight_echo import ECHO_CALLS
from tests.conftest import Client
from tests.support import loopback_agent, loopback_settings, manual_runner
from tests.test_agent import until
from tests.test_booking import book
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings

SITE = "HUYEN-NGA-SON"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_settings(database_url, tmp_path, health_preflight_wait_seconds=0)


async def agent_token(client: Client, admin: dict[str, str], code: str = SITE) -> str:
    response = await client.post(f"/api/v1/endpoints/{code}/tokens", headers=admin,
                                 json={"scope": "agent", "label": "test"})
    assert response.status == 201, await response.text()
    return str((await response.json())["token"])


def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_media_goes_to_the_bridge_and_comes_back(
    client: Client, admin: dict[str, str]
) -> None:
    token = await agent_token(client, admin)
    result = await run_preflight_call(
        base_url(client), SITE, token, rtc_configuration([]),
        audio=ToneTrack(440), video=ColourCardTrack((0, 120, 255)), seconds=3)
    assert result.ok, result.problem
    # ~150 audio frames and ~45 video frames in 3 s; the first second is connecting.
    assert result.audio_packets > 40 and result.video_frames > 10, result
    assert result.loss is not None and result.loss < 0.1, result
    assert result.rtt_ms is not None and result.rtt_ms < 1000, result
    assert client.app[ECHO_CALLS].running == {}  # the bridge let go of the call


async def test_a_site_sending_nothing_fails_its_test_call(
    client: Client, admin: dict[str, str]
) -> None:
    """No camera, no microphone: the call connects but nothing flows; not ready."""
    token = await agent_token(client, admin)
    result = await run_preflight_call(base_url(client), SITE, token, rtc_configuration([]),
                                 audio=None, video=None, seconds=1.5)
    assert not result.ok
    assert "no audio reached the bridge" in result.problem
    assert result.audio_packets == 0 and result.video_frames == 0


async def test_only_the_endpoint_itself_makes_its_test_call(
    client: Client, admin: dict[str, str]
) -> None:
    token = await agent_token(client, admin)
    async with aiohttp.ClientSession() as http:
        for code, headers, status in [
            ("UBND-TINH", {"Authorization": f"Bearer {token}"}, 403),  # another endpoint
            (SITE, admin, 403),  # staff: no endpoint of their own
            (SITE, {}, 401),
        ]:
            url = f"{base_url(client)}/api/v1/endpoints/{code}/test-call"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, headers=headers)
            assert refused.value.status == status, (code, status)
    # A refused call failed cleanly for the agent too.
    result = await run_preflight_call(base_url(client), "UBND-TINH", token, rtc_configuration([]),
                                 audio=ToneTrack(440), video=None, seconds=0.5)
    assert not result.ok and "HTTP 403" in result.problem


async def test_bad_messages_end_the_call_with_a_clear_error(
    client: Client, admin: dict[str, str]
) -> None:
    token = await agent_token(client, admin)
    url = f"{base_url(client)}/api/v1/endpoints/{SITE}/test-call"
    for message, code in [({"type": "offer", "pc": "audio", "sdp": "v=0 nonsense"},
                           "bad_offer"),
                          ({"type": "offer", "pc": "data", "sdp": ""}, "bad_offer"),
                          ({"type": "dance"}, "bad_message"),
                          ([1, 2], "bad_message"),
                          # Past the parser's recursion limit: was an unhandled error.
                          ("[" * 10_000 + "]" * 10_000, "bad_message")]:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                url, headers={"Authorization": f"Bearer {token}"}) as ws:
            joined = await ws.receive_json(timeout=5)
            assert joined["type"] == "joined" and joined["slots"] == ["self"]
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_json(message)
            answers = [await ws.receive_json(timeout=5) for _ in range(2)]
            assert answers[0] == {"type": "error", "error": {
                "code": code, "message": answers[0]["error"]["message"]}}, answers
            assert answers[1]["type"] == "test_call.result"
    assert client.app[ECHO_CALLS].running == {}


async def test_the_agent_tests_its_line_when_the_room_opens_and_readiness_shows_it(
    client: Client, admin: dict[str, str], booker: dict[str, str], settings: Settings,
    clock: FixedClock,
) -> None:
    conference = await book(client, booker, participants=["UBND-TINH", SITE],
                            start="2026-11-27T10:15:00+07:00", end="2026-11-27T11:00:00+07:00")
    cid = conference["id"]
    app = client.app
    agent = EndpointAgent(loopback_agent(base_url(client), SITE,
                                         await agent_token(client, admin),
                                         heartbeat_seconds=60))
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.stats()["stream_connected"], "the event stream")
        runner = manual_runner(app, clock)
        clock.set(clock.now() + timedelta(minutes=3))  # 10:03: the room is open
        await runner.sync(cid)
        # The heartbeat goes at once (not after the 60 s interval) with the result.
        await until(lambda: agent.stats()["last_test_call"] is not None, "the test call", 20)
        assert agent.stats()["last_test_call"]["ok"], agent.stats()

        async def readiness() -> dict[str, Any]:
            response = await client.get(f"/api/v1/conferences/{cid}/readiness",
                                        headers=admin)
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return next(e for e in body["endpoints"] if e["code"] == SITE)

        deadline = asyncio.get_running_loop().time() + 10
        while (entry := await readiness())["test_call"] is None:
            assert asyncio.get_running_loop().time() < deadline, entry
            await asyncio.sleep(0.1)
        assert entry["test_call"]["ok"] and entry["test_call"]["video_frames"] > 0, entry
        assert "test_call_failed" not in [p["code"] for p in entry["problems"]]
        assert agent.stats()["attending"] == []  # it joins at the start, not now
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
