"""Bad signaling input gets a clear error and a closed socket; the room is unaffected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.conftest import Client
from tests.support import loopback_settings
from tests.test_bridge_media import SITES, Site, join

# The shared fixture: an open conference of the three test sites.
from tests.test_bridge_media import room as room
from vcbridge.core.settings import Settings

H = dict[str, str]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_settings(database_url, tmp_path, signaling_offer_timeout_seconds=1.0)


async def connect(client: Client, conference_id: int, token: str
                  ) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/api/v1/conferences/{conference_id}/signal",
                                 headers={"Authorization": f"Bearer {token}"})
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined"
    assert (await ws.receive_json(timeout=5))["type"] == "state"
    return ws


async def error_then_close(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    error: dict[str, Any] | None = None
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            body = message.json()
            if body["type"] == "error":
                error = body["error"]
    assert ws.closed
    assert error is not None, "no error message before the close"
    return error


@pytest.mark.parametrize(("message", "code"), [
    ("not json at all", "bad_message"),
    ('["a", "list"]', "bad_message"),
    ('{"no": "type"}', "bad_message"),
    ('{"type": "hack.the.planet"}', "bad_message"),
    ('{"type": "offer", "pc": "audio", "sdp": "this is not SDP"}', "bad_offer"),
    ('{"type": "offer", "pc": "audio", "sdp": 42}', "bad_offer"),
    ('{"type": "offer", "pc": "screen", "sdp": "v=0\\r\\n"}', "bad_offer"),
    ('{"type": "offer", "pc": "audio", "sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\n'
     'm=audio 9 UDP/TLS/RTP/SAVPF 0\\r\\n"}', "bad_offer"),
    # Nested past the parser's recursion limit: was an unhandled RecursionError.
    pytest.param('{"type": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
                 "bad_message", id="nested-100000-deep"),
    ('{"type": "ping", "x": [[[[{"y": 1}]]]]}', "bad_message"),  # no message is this deep
    pytest.param('{"type": "ping", "n": ' + "9" * 5000 + "}", "bad_message",
                 id="a-5000-digit-integer"),
])
async def test_bad_messages_get_an_error_and_a_closed_socket(
    client: Client, room: Any, message: str, code: str
) -> None:
    conference_id, tokens = room
    ws = await connect(client, conference_id, tokens["HUYEN-NGA-SON"])
    await ws.send_str(message)
    assert (await error_then_close(ws))["code"] == code


async def test_huge_message_closes_the_socket(client: Client, room: Any) -> None:
    conference_id, tokens = room
    ws = await connect(client, conference_id, tokens["HUYEN-NGA-SON"])
    await ws.send_str('{"type": "offer", "pc": "audio", "sdp": "' + "x" * 600_000 + '"}')
    async for _message in ws:
        pass
    assert ws.closed and ws.close_code == 1009  # message too big


async def test_a_client_that_never_offers_is_closed(client: Client, room: Any) -> None:
    conference_id, tokens = room
    ws = await connect(client, conference_id, tokens["HUYEN-NGA-SON"])
    assert (await error_then_close(ws))["code"] == "timeout"


async def test_refusals_before_the_upgrade(client: Client, room: Any, admin: H,
                                           booker: H) -> None:
    conference_id, tokens = room
    url = f"/api/v1/conferences/{conference_id}/signal"
    client.session.cookie_jar.clear()  # the logins above left a session cookie
    no_token = await client.get(url)
    assert no_token.status == 401
    staff = await client.get(url, headers=admin)
    assert staff.status == 403
    other = await (await client.post("/api/v1/endpoints/HUYEN-YEN-DINH/tokens", json={},
                                     headers=admin)).json()
    outsider = await client.get(url, headers={"Authorization": f"Bearer {other['token']}"})
    assert outsider.status == 404
    missing = await client.get("/api/v1/conferences/999/signal",
                               headers={"Authorization": f"Bearer {tokens['UBND-TINH']}"})
    assert missing.status == 404


async def test_bad_input_from_one_site_leaves_the_room_working(
    client: Client, room: Any
) -> None:
    conference_id, tokens = room
    chair = Site("UBND-TINH")
    nga = Site("HUYEN-NGA-SON")
    try:
        await join(client, conference_id, tokens["UBND-TINH"], chair)
        await join(client, conference_id, tokens["HUYEN-NGA-SON"], nga)
        rogue = await connect(client, conference_id, tokens["HUYEN-MUONG-LAT"])
        await rogue.send_str("garbage")
        await error_then_close(rogue)
        assert chair.client is not None and nga.client is not None
        # The two good sites still talk: the chair grants the floor to Nga Son.
        await nga.client.send({"type": "floor.request"})
        await chair.client.wait_state(lambda s: s.get("queue") == ["HUYEN-NGA-SON"])
        await chair.client.send({"type": "floor.grant", "endpoint": "HUYEN-NGA-SON"})
        await nga.client.wait_state(lambda s: s.get("holder") == "HUYEN-NGA-SON")
        assert "HUYEN-MUONG-LAT" not in chair.client.state["present"]
        assert SITES  # the three test sites of the shared fixture
    finally:
        await chair.stop()
        await nga.stop()


async def real_offer(kind: str) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(kind, direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


@pytest.mark.parametrize("dropped", ["a=fingerprint:", "a=setup:"])
async def test_an_offer_without_dtls_parameters_is_refused(
    client: Client, room: Any, dropped: str
) -> None:
    """Without a fingerprint the offer used to be answered, then failed inside aiortc;
    without a DTLS role aiortc's own parser failed with an unhandled AttributeError."""
    conference_id, tokens = room
    sdp = "".join(line for line in (await real_offer("audio")).splitlines(keepends=True)
                  if not line.startswith(dropped))
    ws = await connect(client, conference_id, tokens["HUYEN-NGA-SON"])
    await ws.send_json({"type": "offer", "pc": "audio", "sdp": sdp})
    error = await error_then_close(ws)
    assert error["code"] == "bad_offer", error
    assert ws.close_code == 1007


async def test_a_client_past_its_message_rate_is_told_and_closed(
    client: Client, room: Any
) -> None:
    conference_id, tokens = room
    ws = await connect(client, conference_id, tokens["HUYEN-NGA-SON"])
    for _ in range(200):
        await ws.send_json({"type": "ping"})
    answers: list[str] = []
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            body = message.json()
            answers.append(body["error"]["code"] if body["type"] == "error" else body["type"])
    assert ws.closed and ws.close_code == 1008
    # The burst (30 by default) was answered, then one error, then nothing.
    assert answers[-1] == "rate_limited"
    assert 30 <= answers.count("pong") < 60, answers
