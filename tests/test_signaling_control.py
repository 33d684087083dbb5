"""Control mode: a booker runs the room from the chair console without being a site.

Real aiortc sites in a real room, and the booker's console as a plain signaling
client, with (in the first test) a receive-only aiortc video connection for the
grid, as the browser console makes."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from bridge.agent.generated_media import dominant_colour
from bridge.signaling import ROOMS
from tests.conftest import Client
from tests.test_booking import book
from tests.test_bridge_media import SITES, Site, close_to, eventually, join

# The shared fixtures: an open conference of the three test sites, and its settings.
from tests.test_bridge_media import room as room
from tests.test_bridge_media import settings as settings
from vcbridge.core.app_keys import EVENT_BUS

H = dict[str, str]
MakeUser = Callable[..., Awaitable[H]]
CHAIR, NGA, MUONG = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"


class Console:
    """A moderator's console: the signaling socket in control mode, what it received,
    and optionally a receive-only video connection (the colour of each slot)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, joined: dict[str, Any]) -> None:
        self.ws = ws
        self.joined = joined
        self.state: dict[str, Any] = {}
        self.errors: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.colours: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self.pc: RTCPeerConnection | None = None
        self._answer: asyncio.Future[dict[str, Any]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            body = message.json()
            if body["type"] == "state":
                self.state = body
            elif body["type"] == "error":
                self.errors.append(body["error"])
                if self._answer is not None and not self._answer.done():
                    self._answer.set_result(body)
            elif body["type"] == "answer" and self._answer is not None:
                self._answer.set_result(body)
            else:
                self.other.append(body)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)

    async def wait_state(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        await eventually(lambda: bool(self.state) and predicate(self.state))
        return self.state

    async def wait_error(self, code: str) -> dict[str, Any]:
        await eventually(lambda: any(e["code"] == code for e in self.errors))
        return next(e for e in self.errors if e["code"] == code)

    async def receive_video(self) -> list[str]:
        """Offer one receive-only video line per slot; returns the slots answered."""
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        slots: list[str] = list(self.joined["slots"])
        for _slot in slots:
            pc.addTransceiver("video", direction="recvonly")
        vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs
               if c.mimeType.lower() in ("video/vp8", "video/rtx")]
        for transceiver in pc.getTransceivers():
            transceiver.setCodecPreferences(vp8)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            index = next(i for i, t in enumerate(pc.getTransceivers())
                         if t.receiver.track is track)
            self._tasks.append(asyncio.create_task(self._consume(slots[index], track)))

        await pc.setLocalDescription(await pc.createOffer())
        self._answer = asyncio.get_running_loop().create_future()
        await self.send({"type": "offer", "pc": "video", "sdp": pc.localDescription.sdp})
        answer = await asyncio.wait_for(self._answer, 15)
        assert answer["type"] == "answer", answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return list(answer["slots"])

    async def _consume(self, slot: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.colours[slot].append(dominant_colour(frame))  # type: ignore[arg-type]
                del self.colours[slot][:-5]

    def sees(self, slot: str) -> tuple[int, int, int] | None:
        recent = self.colours.get(slot)
        return recent[-1] if recent else None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 2)


async def console(client: Client, conference_id: int, headers: H) -> Console:
    """Connect a console in control mode; returns once the first state arrived."""
    ws = await client.ws_connect(f"/api/v1/conferences/{conference_id}/signal?role=control",
                                 headers=headers)
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined", joined
    opened = Console(ws, joined)
    await opened.wait_state(lambda s: True)
    return opened


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll an asynchronous condition (generous: a condition, not a timing target)."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never met")


async def audit_of(client: Client, admin: H, action: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/audit?action={action}", headers=admin)
    assert response.status == 200, await response.text()
    return list((await response.json())["events"])


async def test_a_booker_grants_the_floor_without_being_a_site(
    client: Client, room: Any, booker: H, admin: H
) -> None:
    conference_id, tokens = room
    chair, nga = Site(CHAIR), Site(NGA)
    desk: Console | None = None
    try:
        await join(client, conference_id, tokens[CHAIR], chair)
        await join(client, conference_id, tokens[NGA], nga)
        assert chair.client is not None and nga.client is not None
        desk = await console(client, conference_id, booker)

        # Greeted as a console, not a site: the chair's view of every site, its own included.
        assert desk.joined["role"] == "control" and desk.joined["endpoint"] is None
        assert desk.joined["user"] == "booker1"
        assert desk.joined["slots"] == ["floor", f"grid:{CHAIR}", f"grid:{NGA}", f"grid:{MUONG}"]
        assert await desk.receive_video() == desk.joined["slots"]
        # It receives the grid (receive-only), and is nowhere in the room's state.
        await eventually(lambda: close_to(desk.sees(f"grid:{CHAIR}"), SITES[CHAIR][1])
                         if desk else False)
        await eventually(lambda: close_to(desk.sees(f"grid:{NGA}"), SITES[NGA][1])
                         if desk else False)
        assert desk.state["present"] == [NGA, CHAIR]
        assert {s["code"] for s in desk.state["sites"]} == set(SITES)

        # Nga Son asks; every client sees the queue; the booker grants the floor.
        await nga.client.send({"type": "floor.request"})
        await desk.wait_state(lambda s: s["queue"] == [NGA])
        await desk.send({"type": "floor.grant", "endpoint": NGA})
        for state_of in (chair.client.wait_state, nga.client.wait_state, desk.wait_state):
            state = await state_of(lambda s: s.get("holder") == NGA)
            assert state["queue"] == [] and state["main"] == NGA
        # Nga Son's picture is now the main video, for the sites and the console alike.
        await eventually(lambda: close_to(desk.sees("floor"), SITES[NGA][1]) if desk else False)

        # The booker took no seat and is not in the roll call.
        assert chair.client.state["present"] == [NGA, CHAIR]
        rollcall: dict[str, Any] = {}

        async def two_connected() -> bool:
            response = await client.get(f"/api/v1/conferences/{conference_id}/rollcall",
                                        headers=booker)
            rollcall.update(await response.json())
            return bool(rollcall["connected"] == 2)

        await until(two_connected)
        assert {e["code"] for e in rollcall["endpoints"]} == set(SITES)

        # The record names the booker, acting on the chair's behalf.
        rows = await audit_of(client, admin, "floor.grant")
        assert [(r["actor"], r["role"]) for r in rows] == [("booker1", "booker")]
        assert rows[0]["target_id"] == str(conference_id)
        assert rows[0]["after"]["endpoint"] == NGA
        events = [e for e in await client.app[EVENT_BUS].read_after(0)
                  if e.type == "floor.grant"]
        assert len(events) == 1
        assert events[0].endpoint == CHAIR and events[0].conference_id == conference_id
        assert events[0].data == {"endpoint": NGA, "by": {"user": "booker1", "role": "booker"}}
        # The site's own request stays the site's, in the record too.
        requests = await audit_of(client, admin, "floor.request")
        assert [(r["actor"], r["role"]) for r in requests] == [(f"endpoint:{NGA}", "endpoint")]
    finally:
        if desk is not None:
            await desk.close()
        await chair.stop()
        await nga.stop()


async def test_the_chair_sites_person_is_named_with_its_grants(
    client: Client, room: Any, admin: H, make_user: MakeUser
) -> None:
    """The chair's operator running the console as the chair site: the record says who
    gave the floor (the person), not only from which endpoint; the agent stays the endpoint."""
    conference_id, tokens = room
    operator = await make_user("op-ubnd-tinh", "operator", CHAIR)
    chair, nga, muong = Site(CHAIR), Site(NGA), Site(MUONG)
    try:
        await join(client, conference_id, operator["Authorization"].split()[1], chair)
        await join(client, conference_id, tokens[NGA], nga)
        await join(client, conference_id, tokens[MUONG], muong)
        assert chair.client is not None and nga.client is not None
        assert muong.client is not None
        await chair.client.wait_state(lambda s: len(s.get("present", [])) == 3)
        await chair.client.send({"type": "floor.grant", "endpoint": NGA})
        await nga.client.wait_state(lambda s: s.get("holder") == NGA)
        # A district's own act stays the district's, whoever is at its console.
        await muong.client.send({"type": "floor.request"})
        await chair.client.wait_state(lambda s: s.get("queue") == [MUONG])

        grants: list[Any] = []

        async def recorded() -> bool:  # published just after the room state went out
            events = await client.app[EVENT_BUS].read_after(0)
            grants[:] = [e for e in events if e.type == "floor.grant"]
            return len(grants) == 1 and any(e.type == "floor.request" for e in events)

        await until(recorded)
        assert [(e.endpoint, e.data) for e in grants] == [
            (CHAIR, {"endpoint": NGA, "by": {"user": "op-ubnd-tinh", "role": "operator"}})]
        rows = await audit_of(client, admin, "floor.grant")
        assert [(r["actor"], r["role"]) for r in rows] == [("op-ubnd-tinh", "operator")]
        requests = await audit_of(client, admin, "floor.request")
        assert [(r["actor"], r["role"]) for r in requests] == [(f"endpoint:{MUONG}", "endpoint")]
    finally:
        await chair.stop()
        await nga.stop()
        await muong.stop()


async def test_several_consoles_and_the_chair_moderate_together(
    client: Client, room: Any, booker: H, admin: H
) -> None:
    conference_id, tokens = room
    chair, muong = Site(CHAIR), Site(MUONG)
    desks: list[Console] = []
    try:
        # Consoles may come before any site: the room opens for them.
        desks.append(await console(client, conference_id, booker))
        desks.append(await console(client, conference_id, admin))
        first, second = desks
        assert first.state["present"] == []
        await join(client, conference_id, tokens[CHAIR], chair)
        await join(client, conference_id, tokens[MUONG], muong)
        assert chair.client is not None and muong.client is not None
        await second.wait_state(lambda s: s["present"] == [MUONG, CHAIR])
        # Everyone in the room is told who moderates from a console.
        await first.wait_state(lambda s: s["moderators"] == ["admin", "booker1"])
        await muong.client.wait_state(lambda s: s.get("moderators") == ["admin", "booker1"])

        # The booker mutes all, the admin locks, the chair unmutes Muong Lat:
        # each action reaches everyone.
        await first.send({"type": "mute_all", "muted": True})
        await second.wait_state(lambda s: MUONG in s["muted"] and NGA in s["muted"])
        await second.send({"type": "lock", "locked": True})
        await muong.client.wait_state(lambda s: s.get("locked") is True)
        await chair.client.send({"type": "mute", "endpoint": MUONG, "muted": False})
        for desk in desks:
            await desk.wait_state(lambda s: MUONG not in s["muted"] and s["locked"])

        # The admin records; the booker stops it. Every site is shown the recording.
        await second.send({"type": "record", "on": True})
        await muong.client.wait_state(lambda s: s.get("recording") is True)
        await first.send({"type": "record", "on": False})
        await first.wait_state(lambda s: s["recording"] is False)
        records = await audit_of(client, admin, "floor.record")
        assert sorted((r["actor"], r["after"]["on"]) for r in records) == [
            ("admin", True), ("booker1", False)]
        assert {r["actor"] for r in await audit_of(client, admin, "floor.lock")} == {"admin"}

        # One console leaves; the other keeps working, and the room is unchanged.
        await first.close()
        desks.remove(first)
        await chair.client.wait_state(lambda s: s.get("moderators") == ["admin"])
        await second.send({"type": "remove", "endpoint": MUONG})
        await asyncio.wait_for(muong.client.ended.wait(), 5)
        assert muong.client.closed_reason == "removed"
        await chair.client.wait_state(lambda s: MUONG in s.get("removed", []))

        # The conference ends: the consoles are told, like the sites.
        await client.app[ROOMS].close_room(conference_id, "ended")
        await eventually(lambda: {"type": "closed", "reason": "ended"} in second.other)
        await asyncio.wait_for(chair.client.ended.wait(), 5)
    finally:
        for desk in desks:
            await desk.close()
        await chair.stop()
        await muong.stop()


@pytest.mark.parametrize(("message", "code", "closes"), [
    ({"type": "floor.grant"}, "bad_message", False),
    ({"type": "mute", "endpoint": NGA}, "bad_message", False),
    ({"type": "lock", "locked": "yes"}, "bad_message", False),
    ({"type": "record"}, "bad_message", False),
    ({"type": "floor.grant", "endpoint": "SO-Y-TE"}, "unknown_site", False),
    ({"type": "floor.grant", "endpoint": NGA}, "not_present", False),
    ({"type": "floor.refuse", "endpoint": NGA}, "not_requested", False),
    ({"type": "remove", "endpoint": CHAIR}, "is_chair", False),
    ({"type": "floor.request"}, "not_site", False),
    ({"type": "floor.release"}, "not_site", False),
    ({"type": "offer", "pc": "audio", "sdp": "v=0\r\n"}, "bad_offer", True),
    ({"type": "offer", "pc": "video", "sdp": "not SDP"}, "bad_offer", True),
    ({"type": "hack.the.planet"}, "bad_message", True),
])
async def test_bad_control_messages_get_clear_errors(
    client: Client, room: Any, booker: H, message: dict[str, Any], code: str, closes: bool
) -> None:
    conference_id, _tokens = room
    desk = await console(client, conference_id, booker)
    try:
        before = desk.state
        await desk.send(message)
        error = await desk.wait_error(code)
        assert error["message"]
        if closes:
            await asyncio.wait_for(desk._reader, 5)
            assert desk.ws.closed
        else:
            # The socket stays open and the room is unchanged.
            await desk.send({"type": "ping"})
            await eventually(lambda: {"type": "pong"} in desk.other)
            assert desk.state == before
    finally:
        await desk.close()


async def test_who_may_control_the_room(
    client: Client, room: Any, booker: H, admin: H, make_user: MakeUser
) -> None:
    conference_id, tokens = room
    url = f"/api/v1/conferences/{conference_id}/signal?role=control"
    client.session.cookie_jar.clear()  # only the bearer tokens below count

    async def status(path: str, headers: H) -> int:
        response = await client.get(path, headers=headers)
        body = await response.json()
        assert set(body) == {"error"} and body["error"]["message"], body
        return response.status

    # An operator of a district of this conference, IT staff, the chair's agent token.
    assert await status(url, await make_user("op-nga", "operator", NGA)) == 403
    assert await status(url, await make_user("it1", "it")) == 403
    assert await status(url, {"Authorization": f"Bearer {tokens[CHAIR]}"}) == 403
    # An operator of an endpoint outside the conference: not its business.
    assert await status(url, await make_user("op-yen-dinh", "operator", "HUYEN-YEN-DINH")) == 404
    assert await status("/api/v1/conferences/999/signal?role=control", booker) == 404
    assert await status(url.replace("control", "chair"), booker) == 422
    # A conference that is not open yet.
    later = await book(client, booker, start="2026-11-28T08:00:00+07:00",
                       end="2026-11-28T09:00:00+07:00")
    assert await status(f"/api/v1/conferences/{later['id']}/signal?role=control", booker) == 409

    # The chair endpoint's operator may use a console without media too; so may an admin.
    chair_operator = await make_user("op-tinh", "operator", CHAIR)
    for headers in (chair_operator, admin):
        desk = await console(client, conference_id, headers)
        assert desk.joined["role"] == "control"
        await desk.close()
