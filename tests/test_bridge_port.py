"""The scheduler–bridge seam: the lifecycle opens and closes this process's rooms
through the room registry (the app's `BridgePort`); a site joins the room it opened."""

from __future__ import annotations

from datetime import timedelta

from bridge.signaling import ROOMS
from scheduler.lifecycle_wiring import BRIDGE
from scheduler.room_placement import NodePlacement
from tests.conftest import Client
from tests.support import manual_runner
from tests.test_booking import book
from vcbridge.core.app_keys import SETTINGS
from vcbridge.core.clock import FixedClock

H = dict[str, str]
TODAY = {"start": "2026-11-27T14:00:00+07:00", "end": "2026-11-27T16:00:00+07:00",
         "chair": "HUYEN-NGA-SON"}


async def test_the_lifecycle_opens_and_closes_the_room_through_the_registry(
    client: Client, booker: H, clock: FixedClock
) -> None:
    app = client.app
    rooms = app[ROOMS]
    if app[SETTINGS].runs_nodes:
        # PostgreSQL: rooms are placed on bridge nodes; this process is the only node, so
        # the placement opens the room here, in the same registry.
        assert isinstance(app[BRIDGE], NodePlacement)
    else:
        assert app[BRIDGE] is rooms  # the composition root wires the registry as the port
    conference = await book(client, booker, **TODAY)
    cid = conference["id"]
    runner = manual_runner(app, clock)
    start = clock.now().replace(hour=7)  # 14:00 in Hanoi
    clock.set(start - timedelta(minutes=16))
    await runner.sync(cid)
    assert cid not in rooms.rooms  # not yet: the setup time has not begun

    clock.set(start - timedelta(minutes=15))
    await runner.sync(cid)
    room = rooms.rooms[cid]  # opened when the setup time began, before anyone connects
    assert room.chair == "HUYEN-NGA-SON"
    assert room.state.sites == frozenset(conference["participants"])
    assert room.audio._task is None  # nobody connected: no audio engine running
    # A site's connection gets that room, started.
    assert rooms.room_for(cid, "HUYEN-NGA-SON", conference["participants"]) is room
    assert room.audio._task is not None

    clock.set(start + timedelta(hours=2))
    await runner.sync(cid)
    assert cid not in rooms.rooms and room.closed
    assert room.audio._task is not None and room.audio._task.done()
