"""SIP room systems dialled out at a conference's start through real Janus to real baresip
rooms (in a network namespace): the roll call shows who joined and why the others did
not (busy, unreachable), a room that dies is dropped and redialled by the policy and
rejoins when it comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.signaling import ROOMS
from bridge.wiring import SIP_GATEWAY
from harness.baresip import (
    Baresip,
    RoomConfig,
    free_udp_port,
    running_baresip,
    running_busy_room,
)
from harness.hostile_sip import running_hostile_room
from harness.janus import Janus, running_janus
from harness.netns import Namespace
from tests.conftest import Client
from tests.sip_support import AiortcLegs, require_sip_rig, roster_with_sip, sip_namespace
from tests.support import (
    ADMIN_PASSWORD,
    bearer,
    eventually,
    login,
    loopback_settings,
    manual_runner,
)
from tests.test_booking import book
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock
from vcbridge.room_reports import RoomReports

H = dict[str, str]
START = "2026-11-27T14:00:00+07:00"
ROOM, BUSY, GONE = "HUYEN-NGA-SON", "HUYEN-HAU-LOC", "HUYEN-HA-TRUNG"


@dataclass
class Rig:
    ns: Namespace
    janus: Janus
    room: Baresip
    busy: Baresip
    gone_uri: str


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    require_sip_rig()
    with sip_namespace("sipd") as ns, running_janus(tmp_path / "janus", ns) as gateway, \
            running_baresip(tmp_path / "room", RoomConfig("ngason", free_udp_port()),
                            ns) as room, \
            running_busy_room(tmp_path / "busy", "hauloc", ns) as busy:
        yield Rig(ns, gateway, room, busy, f"sip:hatrung@127.0.0.1:{free_udp_port()}")


@pytest.fixture
async def sip_client(rig: Rig, database_url: str, tmp_path: Path, clock: FixedClock,
                     aiohttp_client: Callable[..., Awaitable[Client]]
                     ) -> AsyncIterator[tuple[Client, AiortcLegs]]:
    roster = roster_with_sip(tmp_path / "endpoints.yaml", {
        ROOM: rig.room.uri, BUSY: rig.busy.uri, GONE: rig.gone_uri})
    # The bridge advertises the namespace link's own end too: Janus is behind it.
    settings = loopback_settings(database_url, tmp_path, roster_file=roster,
                                 sip_gateway_url=rig.janus.url).model_copy(
        update={"ice_host_addresses": ["127.0.0.1", rig.ns.here]})
    client = await aiohttp_client(create_app(settings, clock=clock))
    legs = AiortcLegs(RoomReports(client.app))
    dialer = client.app[ROOMS].sip
    assert dialer is not None
    dialer.legs = legs
    await client.app[SIP_GATEWAY].wait_connected(15)
    yield client, legs
    await legs.stop()


async def rollcall(client: Client, headers: H, cid: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/conferences/{cid}/rollcall", headers=headers)
    assert response.status == 200
    body = await response.json()
    return {e["code"]: e for e in body["endpoints"]} | {"_summary": body["summary_en"]}


async def test_sip_rooms_are_dialled_at_the_start_and_the_roll_call_says_why(
    rig: Rig, sip_client: tuple[Client, AiortcLegs], clock: FixedClock
) -> None:
    client, legs = sip_client
    app = client.app
    booker = bearer(await login(client, "admin", ADMIN_PASSWORD))
    conference = await book(client, booker, start=START, end="2026-11-27T16:00:00+07:00",
                            setup_minutes=0,
                            participants=["UBND-TINH", ROOM, BUSY, GONE])
    cid = conference["id"]
    runner = manual_runner(app, clock)
    clock.set(clock.now().replace(hour=7))  # 14:00 in Hanoi: the conference goes live
    await runner.sync(cid)
    await runner._tick()  # everyone is invited; the SIP rooms are dialled

    async def settled() -> dict[str, Any] | None:
        roll = await rollcall(client, booker, cid)
        done = (roll[ROOM]["state"] == "joined" and roll[BUSY]["reason"] == "busy"
                and roll[GONE]["reason"] == "unreachable")
        return roll if done else None

    roll = await eventually(settled, "the SIP rooms' roll call", timeout=30)
    response = await client.get(f"/api/v1/endpoints/{ROOM}", headers=booker)
    shown = await response.json()
    assert shown["connection"] == "sip" and shown["sip"]["uri"] == rig.room.uri
    assert roll[BUSY]["state"] == "no_answer" and roll[GONE]["state"] == "no_answer"
    assert "HUYEN-HAU-LOC busy (redialling)" in roll["_summary"]
    assert "HUYEN-HA-TRUNG unreachable (redialling)" in roll["_summary"]
    assert app[SIP_GATEWAY].status.legs == 1
    # Joined means the media is up through Janus: ICE and DTLS with the bridge's side.
    assert legs.open_legs[(cid, ROOM)].pc.connectionState == "connected"

    # The room dies (no BYE): its call ends, the roll call shows it dropped.
    rig.room.kill()

    async def dropped() -> bool:
        return (await rollcall(client, booker, cid))[ROOM]["state"] == "dropped"

    await eventually(dropped, "the dead room dropped", timeout=40)
    # The policy redials after redial_dropped_seconds: the room is still down.
    clock.set(clock.now() + timedelta(seconds=31))
    await runner._tick()

    dialer = app[ROOMS].sip
    assert dialer is not None

    async def redial_done() -> bool:
        return not dialer.dialling

    await eventually(redial_done, "the redial", timeout=20)
    entry = (await rollcall(client, booker, cid))[ROOM]
    assert entry["state"] == "dropped" and entry["redialling"]  # failed; called again later
    # The room comes back; the next redial (the first backoff step) brings it in.
    rig.room.start()
    clock.set(clock.now() + timedelta(seconds=31))
    await runner._tick()

    async def rejoined() -> bool:
        return (await rollcall(client, booker, cid))[ROOM]["state"] == "joined"

    await eventually(rejoined, "the room back in the conference", timeout=30)
    assert legs.open_legs[(cid, ROOM)].pc.connectionState == "connected"


async def gateway_up(client: Client) -> float:
    response = await client.get("/metrics")
    assert response.status == 200
    for line in (await response.text()).splitlines():
        if line.startswith("vcbridge_sip_gateway_up "):
            return float(line.split()[1])
    raise AssertionError("vcbridge_sip_gateway_up not exported")


async def test_janus_restarting_mid_meeting_drops_the_room_raises_the_metric_and_redials(
    rig: Rig, sip_client: tuple[Client, AiortcLegs], clock: FixedClock
) -> None:
    client, legs = sip_client
    app = client.app
    headers = bearer(await login(client, "admin", ADMIN_PASSWORD))
    conference = await book(client, headers, start=START, end="2026-11-27T16:00:00+07:00",
                            setup_minutes=0, participants=["UBND-TINH", ROOM])
    cid = conference["id"]
    runner = manual_runner(app, clock)
    clock.set(clock.now().replace(hour=7))
    await runner.sync(cid)
    await runner._tick()

    async def state_is(wanted: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return bool((await rollcall(client, headers, cid))[ROOM]["state"] == wanted)
        return check

    await eventually(await state_is("joined"), "the room joined", timeout=30)
    assert await gateway_up(client) == 1.0

    rig.janus.stop()  # the gateway dies mid-meeting
    await eventually(await state_is("dropped"), "the room dropped with the gateway", 30)

    async def gateway_down() -> bool:
        return await gateway_up(client) == 0.0

    await eventually(gateway_down, "vcbridge_sip_gateway_up 0 (the alert's input)", 10)
    # A redial while Janus is down fails (unreachable) and is retried by the policy.
    clock.set(clock.now() + timedelta(seconds=31))
    await runner._tick()
    dialer = app[ROOMS].sip
    assert dialer is not None

    async def idle() -> bool:
        return not dialer.dialling

    await eventually(idle, "the failed redial", timeout=10)
    assert (await rollcall(client, headers, cid))[ROOM]["state"] == "dropped"
    response = await client.get(f"/api/v1/conferences/{cid}", headers=headers)
    assert (await response.json())["status"] == "live"  # the conference goes on

    rig.janus.restart()  # Janus is back: the gateway reconnects by itself
    await app[SIP_GATEWAY].wait_connected(15)
    assert await gateway_up(client) == 1.0
    # No BYE reached the room: it ends the old call when its media times out (and
    # answers 486 until then; the policy would redial again at its next step).
    async def room_hung_up() -> bool:
        return b"terminated (duration" in rig.room.log.read_bytes()

    await eventually(room_hung_up, "the room's media timeout", timeout=20)
    clock.set(clock.now() + timedelta(seconds=61))
    await runner._tick()
    await eventually(await state_is("joined"), "the room redialled after the restart", 30)
    assert legs.open_legs[(cid, ROOM)].pc.connectionState == "connected"


async def test_a_room_answering_with_an_unusable_sdp_is_rejected_and_nothing_else_changes(
    rig: Rig, sip_client: tuple[Client, AiortcLegs], clock: FixedClock
) -> None:
    client, legs = sip_client
    app = client.app
    headers = bearer(await login(client, "admin", ADMIN_PASSWORD))
    # GONE's address now answers every INVITE with 200 OK and an SDP with no usable
    # media (one audio line, an unknown codec, no video, a 3000-byte attribute).
    port = int(rig.gone_uri.rsplit(":", 1)[1])
    with running_hostile_room(rig.ns, port, "nonsense"):
        conference = await book(client, headers, start=START,
                                end="2026-11-27T16:00:00+07:00", setup_minutes=0,
                                participants=["UBND-TINH", ROOM, GONE])
        cid = conference["id"]
        runner = manual_runner(app, clock)
        clock.set(clock.now().replace(hour=7))
        await runner.sync(cid)
        await runner._tick()

        async def settled() -> dict[str, Any] | None:
            roll = await rollcall(client, headers, cid)
            done = roll[GONE]["reason"] == "rejected" and roll[ROOM]["state"] == "joined"
            return roll if done else None

        roll = await eventually(settled, "the hostile room rejected", timeout=30)
        assert roll[GONE]["state"] == "no_answer" and roll[GONE]["redialling"]
        assert app[SIP_GATEWAY].status.legs == 1  # the hostile call was hung up
        assert (cid, GONE) not in legs.open_legs
        response = await client.get(f"/api/v1/conferences/{cid}", headers=headers)
        assert (await response.json())["status"] == "live"
