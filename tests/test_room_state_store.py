"""A room's state kept in the database and restored when the room opens again, and the
roll call of a restarted service (issue 15): on SQLite and on PostgreSQL.

"Opened again" is what a killed process's successor does: a new room for the same
conference, on the same database, with nothing carried over in memory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge import floor_control as floor
from bridge.control_messages import parse_control
from bridge.floor_control import FloorError
from bridge.node_membership import NODE
from bridge.room import Room
from bridge.room_state_store import RoomStateStore, SavedRoom, restore_floor
from bridge.rooms import RoomRegistry
from bridge.signaling import ROOMS
from scheduler import attendance
from scheduler.lifecycle_wiring import redial_policy
from tests.conftest import NOW, Client
from tests.support import loopback_settings, manual_runner
from tests.test_booking import book
from vcbridge.app import create_app
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import Event, RoomState
from vcbridge.core.settings import Settings
from vcbridge.room_reports import RoomReports

H = dict[str, str]
CHAIR, NGA_SON, MUONG_LAT = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"
SITES = [CHAIR, NGA_SON, MUONG_LAT]
# Open from 10:00 (the fixed clock's now), live at 10:15.
TODAY = {"participants": SITES, "start": "2026-11-27T10:15:00+07:00",
         "end": "2026-11-27T12:00:00+07:00"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A node id: on PostgreSQL a restarted node sweeps the rooms it held by it.
    return loopback_settings(database_url, tmp_path, node_id="node-a")


async def open_conference(client: Client, booker: H, clock: FixedClock) -> int:
    """A conference whose room the app opened, its first state saved."""
    conference = await book(client, booker, **TODAY)
    await manual_runner(client.app, clock).sync(conference["id"])
    room = client.app[ROOMS].rooms[conference["id"]]
    assert room._states is not None
    await room.ready()
    await room._states.flush()
    return int(conference["id"])


async def ignore(_message: dict[str, Any]) -> None:
    """A site's signaling channel that nobody reads (these tests look at the room)."""


async def act(room: Room, actor: floor.FloorActor, **message: Any) -> None:
    await room.control(actor, parse_control(message))


async def event_types(client: Client, conference_id: int) -> list[tuple[str, str | None, Any]]:
    async with client.app[DATABASE].read() as session:
        rows = await session.scalars(select(Event).where(Event.conference_id == conference_id)
                                     .order_by(Event.seq))
        return [(e.type, e.endpoint_code, e.data) for e in rows]


def another_registry(client: Client, node: str = "node-a",
                     recordings: Path | None = None) -> RoomRegistry:
    """The room registry of the next process on the same database."""
    app = client.app
    registry = RoomRegistry(app[ROOMS].ice, RoomReports(app), recordings_dir=recordings)
    registry.states = RoomStateStore(app[DATABASE], app[CLOCK], node)
    return registry


# -- the store ------------------------------------------------------------------------


async def test_the_store_keeps_the_newest_state_of_each_room(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    store = RoomStateStore(client.app[DATABASE], clock, "node-a")
    assert await store.load(cid) is None  # no room yet
    await manual_runner(client.app, clock).sync(cid)  # the room opens: it saves its state
    room = client.app[ROOMS].rooms[cid]
    assert room._states is not None
    await room.ready()
    await room._states.flush()
    assert await store.load(cid) == SavedRoom.of(floor.new_floor(CHAIR, SITES), False, [])
    first = SavedRoom(holder=NGA_SON, queue=(MUONG_LAT,), muted=(MUONG_LAT,), locked=True,
                      recording=True, recording_files=("conference-1-20261127T030000Z.webm",),
                      sites=tuple(sorted(SITES)), seated=(CHAIR, NGA_SON), version=7)
    await store.save(cid, first)
    assert await store.load(cid) == first
    assert await store.running_on("node-a") == [cid]
    assert await store.running_on("node-b") == []

    # A burst of changes through one room's writer: each goes through, the newest last.
    writer = RoomStateStore(client.app[DATABASE], clock, "node-b").writer(cid)
    for version in range(8, 30):
        writer.put(SavedRoom(holder=None if version % 2 else NGA_SON, version=version,
                             sites=tuple(sorted(SITES)), seated=(CHAIR,)))
    await writer.flush()
    last = await store.load(cid)
    assert last is not None and last.version == 29 and last.holder is None
    assert await store.running_on("node-b") == [cid]  # the node that wrote last holds it
    async with client.app[DATABASE].read() as session:
        assert len((await session.scalars(select(RoomState))).all()) == 1


async def test_a_node_whose_room_moved_away_cannot_overwrite_its_state(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    """The room's first write takes the row over (it has just restored it); later writes
    go through only while the row names the node, so a fenced node that has not noticed
    yet leaves what the room's new node saved alone."""
    cid = await open_conference(client, booker, clock)
    database = client.app[DATABASE]
    old = RoomStateStore(database, clock, "node-a").writer(cid)
    old.put(SavedRoom(holder=NGA_SON, sites=tuple(SITES), seated=(CHAIR,), version=3))
    await old.flush()
    new = RoomStateStore(database, clock, "node-b").writer(cid)  # the room moved
    moved = SavedRoom(holder=NGA_SON, muted=(MUONG_LAT,), sites=tuple(SITES),
                      seated=(CHAIR,), version=4)
    new.put(moved)
    await new.flush()
    old.put(SavedRoom(holder=None, sites=tuple(SITES), seated=(CHAIR,), version=4))
    await old.flush()
    assert old.lost and not new.lost
    assert await RoomStateStore(database, clock).load(cid) == moved
    old.put(SavedRoom(version=9, sites=tuple(SITES), seated=(CHAIR,)))  # nothing more
    await old.flush()
    assert await RoomStateStore(database, clock).load(cid) == moved


def test_a_restored_floor_follows_the_booking_as_it_is_now() -> None:
    """Nobody is present; what the chair decided stays; a site added to the booking
    meanwhile may come in; a new chair cannot hold the floor nor queue, so the restored
    state keeps every rule of the floor."""
    saved = SavedRoom(holder=NGA_SON, queue=(MUONG_LAT, "HUYEN-HA-TRUNG"),
                      muted=(NGA_SON, "HUYEN-GONE"), locked=True,
                      sites=(CHAIR, "HUYEN-GONE", "HUYEN-HA-TRUNG", MUONG_LAT, NGA_SON),
                      seated=(CHAIR, "HUYEN-HA-TRUNG", NGA_SON), removed=("HUYEN-GONE",),
                      refused=("HUYEN-HA-TRUNG",), version=12)
    # Ha Trung had been admitted by the chair; Nga Son and Muong Lat are booked.
    state = restore_floor(saved, CHAIR, [CHAIR, NGA_SON, MUONG_LAT, "HUYEN-NEW"])
    assert state.present == frozenset()
    assert (state.holder, state.queue) == (NGA_SON, (MUONG_LAT, "HUYEN-HA-TRUNG"))
    assert state.refused == frozenset()  # it asked again: asking and refused never both
    assert state.muted == {NGA_SON}  # the removed site's mute does not matter any more
    assert state.locked and state.version == 12
    assert state.seated == {CHAIR, "HUYEN-HA-TRUNG", NGA_SON}
    assert "HUYEN-NEW" in state.sites and "HUYEN-GONE" in state.removed
    with pytest.raises(FloorError) as refused:  # removed stays removed
        floor.join(state, "HUYEN-GONE")
    assert refused.value.code == "removed"
    with pytest.raises(FloorError) as locked:  # the lock keeps out who had no seat
        floor.join(state, "HUYEN-NEW")
    assert locked.value.code == "locked"
    # The booking's chair changed to Nga Son: it holds the floor no more, keeps its seat.
    moved = restore_floor(saved, NGA_SON, [NGA_SON, MUONG_LAT])
    assert moved.holder is None and moved.chair == NGA_SON and NGA_SON in moved.seated
    assert CHAIR in moved.sites and CHAIR not in moved.queue
    # A restored holder who has not reconnected keeps the floor (its slot waits for it).
    holding = restore_floor(SavedRoom(holder=NGA_SON, sites=tuple(SITES)), CHAIR, SITES)
    assert holding.holder == NGA_SON and floor.main_video(holding, None) is None
    assert floor.main_video(floor.join(holding, NGA_SON), None) == NGA_SON


# -- a room opened again -------------------------------------------------------------


async def test_a_room_opened_again_finds_its_floor_queue_mutes_and_lock(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    cid = await open_conference(client, booker, clock)
    room = client.app[ROOMS].room_for(cid, CHAIR, SITES)
    await room.connect(CHAIR, ignore)
    await room.connect(NGA_SON, ignore)
    await room.connect(MUONG_LAT, ignore)
    await act(room, NGA_SON, type="floor.request")
    await act(room, CHAIR, type="floor.grant", endpoint=NGA_SON)
    await act(room, MUONG_LAT, type="floor.request")
    await act(room, CHAIR, type="mute", endpoint=MUONG_LAT, muted=True)
    await act(room, CHAIR, type="lock", locked=True)
    before = room.state
    assert room._states is not None
    await room._states.flush()

    # The process is killed: nothing of `room` is closed or carried over.
    registry = another_registry(client)
    await registry.open_room(cid, CHAIR, SITES)
    again = registry.rooms[cid]
    state = again.state
    assert (state.holder, state.queue, state.muted, state.locked) == (
        NGA_SON, (MUONG_LAT,), {MUONG_LAT}, True)
    assert state.present == frozenset() and state.version == before.version
    assert again.snapshot()["main"] is None  # the holder's slot waits for it
    # The sites come back to their seats through the lock; the holder's video is main.
    await again.connect(NGA_SON, ignore)
    await again.connect(MUONG_LAT, ignore)
    assert again.state.holder == NGA_SON and floor.main_video(again.state, None) == NGA_SON
    assert MUONG_LAT not in floor.audible(again.state)
    # What changes after the restore is kept too.
    await act(again, CHAIR, type="mute", endpoint=MUONG_LAT, muted=False)
    await act(again, CHAIR, type="floor.revoke")
    assert again._states is not None
    await again._states.flush()
    saved = await RoomStateStore(client.app[DATABASE], clock).load(cid)
    assert saved is not None and (saved.holder, saved.muted, saved.locked) == (None, (), True)
    await registry.stop()
    await client.app[ROOMS].close_room(cid, "shutdown")


async def test_a_site_the_chair_admitted_may_come_back_after_a_restart(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    cid = await open_conference(client, booker, clock)
    room = client.app[ROOMS].room_for(cid, CHAIR, SITES)
    await act(room, CHAIR, type="admit", endpoint="HUYEN-HA-TRUNG")
    await act(room, CHAIR, type="lock", locked=True)
    assert room._states is not None
    await room._states.flush()

    registry = another_registry(client)
    # Before the room is opened again, the admitted site is let through signaling...
    assert "HUYEN-HA-TRUNG" in await registry.allowed_sites(cid, SITES)
    assert "HUYEN-VINH-LOC" not in await registry.allowed_sites(cid, SITES)
    # ...and the restored room seats it through the lock, as the chair decided.
    again = registry.room_for(cid, CHAIR, SITES)
    await again.connect("HUYEN-HA-TRUNG", ignore)
    assert "HUYEN-HA-TRUNG" in again.state.present and again.state.locked
    with pytest.raises(FloorError) as locked:  # a booked site that never came: locked out
        await again.connect(NGA_SON, ignore)
    assert locked.value.code == "locked"
    await registry.stop()
    await client.app[ROOMS].close_room(cid, "shutdown")


async def test_a_room_with_no_saved_state_starts_afresh_and_saves_it(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    cid = await open_conference(client, booker, clock)
    registry = another_registry(client, node="node-b")
    await registry.open_room(cid, CHAIR, SITES)
    room = registry.rooms[cid]
    assert room.state == floor.new_floor(CHAIR, SITES)
    assert room._states is not None
    await room._states.flush()
    # Saved at once, naming its node: a restart of that node knows it held the room.
    assert await RoomStateStore(client.app[DATABASE], clock).running_on("node-b") == [cid]
    await registry.stop()


async def test_a_recording_goes_on_into_a_new_file_and_both_are_listed(
    client: Client, booker: H, clock: FixedClock, admin: H, tmp_path: Path,
) -> None:
    cid = await open_conference(client, booker, clock)
    recordings = client.app[SETTINGS].effective_recordings_dir
    room = client.app[ROOMS].room_for(cid, CHAIR, SITES)
    await room.connect(CHAIR, ignore)
    await act(room, CHAIR, type="record", on=True)
    assert room.recorder is not None
    cut = room.recorder.name
    assert room._states is not None
    await room._states.flush()

    registry = another_registry(client, recordings=recordings)
    await registry.open_room(cid, CHAIR, SITES)
    again = registry.rooms[cid]
    assert again.recorder is not None
    resumed = again.recorder.name
    assert resumed != cut and again.recording_files == [cut, resumed]
    assert again.snapshot()["recording"] is True
    records = [data for kind, _, data in await event_types(client, cid)
               if kind == "floor.record"]
    assert records[-2:] == [{"on": False, "recording": cut, "cause": "interrupted"},
                            {"on": True, "recording": resumed, "cause": "resumed"}]
    listed = await (await client.get(f"/api/v1/conferences/{cid}/recordings",
                                     headers=admin)).json()
    assert [r["id"] for r in listed["recordings"]] == [cut, resumed]
    # The chair stops it: the state says so, and a room opened later does not record.
    await act(again, CHAIR, type="record", on=False)
    assert again._states is not None
    await again._states.flush()
    saved = await RoomStateStore(client.app[DATABASE], clock).load(cid)
    assert saved is not None and not saved.recording
    assert saved.recording_files == (cut, resumed)
    await registry.stop()
    await client.app[ROOMS].close_room(cid, "shutdown")


async def test_after_a_shutdown_in_order_the_recording_resumes_without_a_cut(
    client: Client, booker: H, clock: FixedClock, admin: H,
) -> None:
    """A process stopped in order (SIGTERM) finishes its file and says so ("shutdown");
    the room opened again goes on recording into a new file, reporting no cut."""
    cid = await open_conference(client, booker, clock)
    recordings = client.app[SETTINGS].effective_recordings_dir
    room = client.app[ROOMS].room_for(cid, CHAIR, SITES)
    await room.connect(CHAIR, ignore)
    await act(room, CHAIR, type="record", on=True)
    assert room.recorder is not None
    first = room.recorder.name
    await client.app[ROOMS].close_room(cid, "shutdown")

    registry = another_registry(client, recordings=recordings)
    await registry.open_room(cid, CHAIR, SITES)
    again = registry.rooms[cid]
    assert again.recorder is not None and again.recording_files == [first,
                                                                    again.recorder.name]
    records = [data for kind, _, data in await event_types(client, cid)
               if kind == "floor.record"]
    assert records == [{"on": True, "recording": first},
                       {"on": False, "recording": first, "cause": "shutdown"},
                       {"on": True, "recording": again.recorder.name, "cause": "resumed"}]
    listed = await (await client.get(f"/api/v1/conferences/{cid}/recordings",
                                     headers=admin)).json()
    # (The listing's "recording" flag is the serving process's; this room is not the app's.)
    assert [r["id"] for r in listed["recordings"]] == [first, again.recorder.name]
    await registry.stop()


# -- the roll call of a restarted service -------------------------------------------------


async def killed(client: Client) -> None:
    """The app's process is killed: on PostgreSQL, its bridge node heartbeats no more.
    (Left beating, it would find its successor under its node id and step down, closing
    its room here: not what a killed process does.)"""
    membership = client.app.get(NODE)
    if membership is not None:
        await membership.silence()


async def rollcall(client: Client, headers: H, cid: int) -> dict[str, str]:
    body = await (await client.get(f"/api/v1/conferences/{cid}/rollcall",
                                   headers=headers)).json()
    return {e["code"]: e["state"] for e in body["endpoints"]}


async def test_a_restarted_service_drops_the_sites_it_no_longer_carries(
    client: Client, booker: H, clock: FixedClock, settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    ha_trung = "HUYEN-HA-TRUNG"
    everyone = [*SITES, ha_trung]
    cid = (await book(client, booker, **{**TODAY, "participants": everyone}))["id"]
    runner = manual_runner(client.app, clock)
    await runner.sync(cid)
    # The chair and Nga Son join at the start; Ha Trung declines; Muong Lat never
    # answers and is absent (escalated) five minutes in.
    start = NOW + timedelta(minutes=15)
    clock.set(start)
    await runner.sync(cid)
    await runner._tick()
    room = client.app[ROOMS].rooms[cid]
    assert room._states is not None
    await room.ready()
    await room._states.flush()
    reports = RoomReports(client.app)
    await reports.attendance(cid, CHAIR, "joined")
    await reports.attendance(cid, NGA_SON, "joined")
    await reports.attendance(cid, ha_trung, "declined")
    for second in range(0, 300, 5):
        clock.set(start + timedelta(seconds=second))
        await runner._tick()
    assert await rollcall(client, booker, cid) == {
        CHAIR: "joined", NGA_SON: "joined", MUONG_LAT: "absent", ha_trung: "declined"}
    before = len(await event_types(client, cid))

    # The process is killed and started again on the same database: before anyone can
    # connect, nobody is "joined" any more; the two are dropped (and called back).
    await killed(client)
    restarted = await aiohttp_client(create_app(settings, clock=clock))
    assert await rollcall(restarted, booker, cid) == {
        CHAIR: "dropped", NGA_SON: "dropped", MUONG_LAT: "absent", ha_trung: "declined"}
    published = (await event_types(client, cid))[before:]
    assert sorted((kind, code) for kind, code, _ in published) == sorted([
        ("endpoint.dropped", CHAIR), ("endpoint.dropped", NGA_SON)])

    # The chair rejoins; at the end, "left" is for those who were there, and the sites
    # that never came keep why, in the roll call and in the record.
    await RoomReports(restarted.app).attendance(cid, CHAIR, "joined")
    clock.set(NOW + timedelta(hours=2, minutes=1))
    await manual_runner(restarted.app, clock).reconcile()
    assert await rollcall(restarted, booker, cid) == {
        CHAIR: "left", NGA_SON: "left", MUONG_LAT: "absent", ha_trung: "declined"}
    record = await (await restarted.get(f"/api/v1/conferences/{cid}/record",
                                        headers=booker)).json()
    absence = {a["code"]: a["absence"] for a in record["attendance"]}
    assert absence == {CHAIR: None, NGA_SON: None, MUONG_LAT: "absent", ha_trung: "declined"}
    ended = {a["code"]: [i["ended_by"] for i in a["intervals"]] for a in record["attendance"]}
    assert ended[CHAIR] == ["dropped", "end"] and ended[NGA_SON] == ["dropped"]


async def test_only_the_rooms_of_the_restarted_node_are_swept(
    client: Client, booker: H, clock: FixedClock, settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """On PostgreSQL, a node that starts drops the sites of the rooms it held, not those
    of another node's rooms; on SQLite the one process held them all."""
    cid = await open_conference(client, booker, clock)
    other = another_registry(client, node="node-b")  # another node holds this room
    await other.open_room(cid, CHAIR, SITES)
    room = other.rooms[cid]
    assert room._states is not None
    await room._states.flush()
    await RoomReports(client.app).attendance(cid, NGA_SON, "joined")
    await killed(client)
    restarted = await aiohttp_client(create_app(settings, clock=clock))  # node-a
    expected = "dropped" if client.app[DATABASE].is_sqlite else "joined"
    assert (await rollcall(restarted, booker, cid))[NGA_SON] == expected
    await other.stop()


async def test_drop_joined_touches_only_joined_sites_of_running_conferences(
    client: Client, booker: H, clock: FixedClock,
) -> None:
    cid = await open_conference(client, booker, clock)
    app = client.app
    policy = redial_policy(app[SETTINGS])
    await RoomReports(app).attendance(cid, NGA_SON, "joined")
    async with app[DATABASE].write() as session:
        assert await attendance.report(session, cid, MUONG_LAT, "declined", clock.now(),
                                       policy, app[EVENT_BUS]) == "declined"
    async with app[DATABASE].write() as session:
        assert await attendance.drop_joined(session, [cid + 1], clock.now(), policy,
                                            app[EVENT_BUS]) == []
        assert await attendance.drop_joined(session, None, clock.now(), policy,
                                            app[EVENT_BUS]) == [(cid, NGA_SON)]
        assert await attendance.drop_joined(session, [cid], clock.now(), policy,
                                            app[EVENT_BUS]) == []  # once
    assert await rollcall(client, booker, cid) == {
        CHAIR: "pending", NGA_SON: "dropped", MUONG_LAT: "declined"}
