"""Calls into the bridge through kamailio (configs/kamailio/kamailio.cfg): the bridge's
SIP identity (Janus) registers there; a room system of the roster that dials
`sip:<conference>@proxy` lands in that conference and the roll call shows it joined; a
caller the roster does not know is refused (403) and nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.signaling import ROOMS
from bridge.wiring import SIP_GATEWAY
from harness.baresip import RoomConfig, free_udp_port, running_baresip
from harness.janus import Janus, running_janus
from harness.kamailio import Kamailio, running_kamailio
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

ROOM = "HUYEN-NGA-SON"
PROXY_IN_NS = "sip:127.0.0.1:5060"  # the proxy as Janus and the rooms see it


@dataclass
class Rig:
    ns: Namespace
    janus: Janus
    proxy: Kamailio
    tmp: Path
    room_port: int


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    require_sip_rig(proxy=True)
    with sip_namespace("sipi") as ns, running_janus(tmp_path / "janus", ns) as gateway, \
            running_kamailio(tmp_path / "kamailio", ns, "vcbridge") as proxy:
        yield Rig(ns, gateway, proxy, tmp_path, free_udp_port())


@pytest.fixture
async def sip_client(rig: Rig, database_url: str, tmp_path: Path, clock: FixedClock,
                     aiohttp_client: Callable[..., Awaitable[Client]]
                     ) -> AsyncIterator[tuple[Client, AiortcLegs]]:
    roster = roster_with_sip(tmp_path / "endpoints.yaml",
                             {ROOM: f"sip:ngason@127.0.0.1:{rig.room_port}"})
    settings = loopback_settings(
        database_url, tmp_path, roster_file=roster, sip_gateway_url=rig.janus.url,
        sip_identity="sip:vcbridge@127.0.0.1", sip_proxy=PROXY_IN_NS, sip_register=True,
        sip_incoming_helpers=2,
    ).model_copy(update={"ice_host_addresses": ["127.0.0.1", rig.ns.here]})
    client = await aiohttp_client(create_app(settings, clock=clock))
    legs = AiortcLegs(RoomReports(client.app))
    dialer = client.app[ROOMS].sip
    assert dialer is not None
    dialer.legs = legs
    await client.app[SIP_GATEWAY].wait_connected(15)
    yield client, legs
    await legs.stop()


async def rollcall(client: Client, headers: dict[str, str], cid: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/conferences/{cid}/rollcall", headers=headers)
    assert response.status == 200
    return {e["code"]: e for e in (await response.json())["endpoints"]}


async def test_a_room_dials_in_through_kamailio_and_an_unknown_caller_is_refused(
    rig: Rig, sip_client: tuple[Client, AiortcLegs], clock: FixedClock
) -> None:
    client, legs = sip_client
    app = client.app
    assert app[SIP_GATEWAY].status.registered  # Janus registered with kamailio
    metrics = await (await client.get("/metrics")).text()
    assert "vcbridge_sip_gateway_registered 1.0" in metrics.splitlines()
    headers = bearer(await login(client, "admin", ADMIN_PASSWORD))
    conference = await book(client, headers, start="2026-11-27T14:00:00+07:00",
                            end="2026-11-27T16:00:00+07:00", setup_minutes=0,
                            participants=["UBND-TINH", ROOM])
    cid = conference["id"]
    other = await book(client, headers, start="2026-11-27T14:00:00+07:00",
                       end="2026-11-27T16:00:00+07:00", setup_minutes=0,
                       chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-MUONG-LAT"])
    runner = manual_runner(app, clock)
    clock.set(clock.now().replace(hour=7))  # 14:00 in Hanoi: both go live
    await runner.sync(cid)
    await runner.sync(other["id"])  # not ticked: nobody is dialled out, the room calls in

    # A caller the roster does not know is refused.
    intruder = RoomConfig("intruder", free_udp_port(),
                          commands=(f"/dial sip:{cid}@127.0.0.1:5060",))
    with running_baresip(rig.tmp / "intruder", intruder, rig.ns) as stranger:
        async def refused() -> bool:
            return b"session closed: 403 Forbidden" in stranger.log.read_bytes()

        await eventually(refused, "the unknown caller refused", timeout=20)
    # The room of the roster calling a conference it is not in is refused too.
    wrong = RoomConfig("ngason", rig.room_port,
                       commands=(f"/dial sip:{other['id']}@127.0.0.1:5060",))
    with running_baresip(rig.tmp / "wrong", wrong, rig.ns) as misdialled:
        async def refused_again() -> bool:
            return b"session closed: 403 Forbidden" in misdialled.log.read_bytes()

        await eventually(refused_again, "the call to another conference refused", timeout=20)
    assert (await rollcall(client, headers, cid))[ROOM]["state"] != "joined"
    assert not legs.open_legs

    # The room dials its conference's number: it joins as its endpoint.
    room = RoomConfig("ngason", rig.room_port, commands=(f"/dial sip:{cid}@127.0.0.1:5060",))
    with running_baresip(rig.tmp / "room", room, rig.ns):
        async def joined() -> bool:
            return (await rollcall(client, headers, cid))[ROOM]["state"] == "joined"

        await eventually(joined, "the room joined by dialling in", timeout=30)
        assert legs.open_legs[(cid, ROOM)].pc.connectionState == "connected"
        assert app[SIP_GATEWAY].status.legs == 1
