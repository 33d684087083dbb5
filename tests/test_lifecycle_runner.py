"""The lifecycle driven from the conference table, on a clock the test moves."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scheduler import attendance
from scheduler import runner as runner_module
from scheduler.booking_api import BOOKING_POLICY
from scheduler.booking_service import update_conference
from scheduler.conference_schemas import ConferenceUpdate
from scheduler.lifecycle import Transition
from scheduler.lifecycle_wiring import redial_policy
from scheduler.runner import BATCH, LifecycleRunner
from scheduler.transitions import LifecycleSettings, advance
from tests.conftest import Client
from tests.test_booking import book
from vcbridge.core.app_keys import DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.audit import Actor
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import Conference, Event

H = dict[str, str]
# Today 14:00 Hanoi (the test clock starts at 10:00), setup 15 min, warning
# 5 min before the 16:00 end; logins stay valid all day.
START = datetime.fromisoformat("2026-11-27T14:00:00+07:00")
TODAY = {"start": "2026-11-27T14:00:00+07:00", "end": "2026-11-27T16:00:00+07:00"}


class RecordingBridge:
    """Records what the lifecycle asked of the bridge (a `BridgePort` at the edge)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []
        self.chairs: dict[int, str] = {}
        self.reasons: dict[int, str] = {}

    async def open_room(self, conference_id: int, chair: str, participants: Any) -> None:
        self.chairs[conference_id] = chair
        self.calls.append(("open", conference_id, list(participants)))

    async def invite(self, conference_id: int, endpoint: str) -> None:
        self.calls.append(("invite", conference_id, endpoint))

    async def close_room(self, conference_id: int, reason: str) -> None:
        self.reasons[conference_id] = reason
        self.calls.append(("close", conference_id, None))


@pytest.fixture
def bridge() -> RecordingBridge:
    return RecordingBridge()


@pytest.fixture
def runner(client: Client, clock: FixedClock, bridge: RecordingBridge) -> LifecycleRunner:
    """A runner on the test's clock whose timers never fire (the test drives it)."""
    app = client.app
    settings = app[SETTINGS]
    return LifecycleRunner(
        app[DATABASE], app[EVENT_BUS], clock, bridge,
        LifecycleSettings(warn_minutes=5, presence_stale=timedelta(seconds=60)),
        redial_policy(settings), timedelta(days=7),
    )


async def events(client: Client, conference_id: int | None = None) -> list[tuple[str, Any]]:
    async with client.app[DATABASE].read() as session:
        rows = (await session.scalars(select(Event).order_by(Event.seq))).all()
    return [(e.type, e.endpoint_code) for e in rows
            if conference_id is None or e.conference_id == conference_id]


async def status(client: Client, headers: H, conference_id: int) -> str:
    response = await client.get(f"/api/v1/conferences/{conference_id}", headers=headers)
    return str((await response.json())["status"])


async def report(client: Client, runner: LifecycleRunner, conference_id: int, code: str,
                 kind: str, now: datetime) -> None:
    app = client.app
    async with app[DATABASE].write() as session:
        assert await attendance.report(session, conference_id, code, kind, now,
                                       redial_policy(app[SETTINGS]), app[EVENT_BUS])


async def test_a_briefing_opens_goes_live_warns_and_ends_on_its_times(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge,
) -> None:
    conference = await book(client, booker, **TODAY)
    cid = conference["id"]
    await runner.reconcile()
    assert runner.planned[cid] == START - timedelta(minutes=15)
    assert await status(client, booker, cid) == "scheduled"

    clock.set(START - timedelta(minutes=15))
    await runner.sync(cid)
    assert await status(client, booker, cid) == "open"
    assert bridge.calls == [("open", cid, conference["participants"])]
    assert bridge.chairs[cid] == conference["chair"]
    assert runner.planned[cid] == START

    clock.set(START)
    await runner.sync(cid)
    assert await status(client, booker, cid) == "live"
    await runner._tick()  # every participant is invited at the start
    assert [c for c in bridge.calls if c[0] == "invite"] == [
        ("invite", cid, code) for code in conference["participants"]]
    assert runner.planned[cid] == START + timedelta(hours=2) - timedelta(minutes=5)

    clock.set(START + timedelta(hours=1, minutes=55))
    await runner.sync(cid)
    clock.set(START + timedelta(hours=2))
    await runner.sync(cid)
    assert await status(client, booker, cid) == "ended"
    assert bridge.calls[-1] == ("close", cid, None)
    assert bridge.reasons[cid] == "ended"
    assert cid not in runner.planned
    types = [t for t, _ in await events(client, cid) if t.startswith("conference.")]
    assert types == ["conference.booked", "conference.opened", "conference.live",
                     "conference.ending_soon", "conference.ended"]


async def test_double_fire_and_restart_do_nothing_twice(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START + timedelta(minutes=30))  # the service was down through the start
    await runner.reconcile()
    await runner.sync(cid)
    await runner.reconcile()
    types = [t for t, _ in await events(client, cid)]
    # Opened and live once each, caught up at once; no late warning.
    assert types == ["conference.booked", "conference.opened", "conference.live"]


async def test_a_conference_missed_entirely_closes_without_opening(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge,
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START + timedelta(hours=3))
    await runner.reconcile()
    assert await status(client, booker, cid) == "ended"
    assert [t for t, _ in await events(client, cid)] == ["conference.booked", "conference.ended"]
    assert ("open", cid, ["UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"]) not in bridge.calls


async def test_roll_call_redials_and_escalates_the_absent_once(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START)
    await runner.reconcile()
    await runner._tick()
    await report(client, runner, cid, "UBND-TINH", "joined", START + timedelta(seconds=2))
    await report(client, runner, cid, "HUYEN-NGA-SON", "joined", START + timedelta(seconds=3))
    # Muong Lat never answers: invitations at +0, +50, +130, +270 s (each timing out
    # after 20 s, then 30/60/120 s of backoff), absent at +290 s, called again at +410 s.
    for second in range(0, 420, 5):
        clock.set(START + timedelta(seconds=second))
        await runner._tick()
    invited = [e for t, e in await events(client, cid) if t == "endpoint.invited"]
    assert invited.count("HUYEN-MUONG-LAT") == 5
    assert [e for t, e in await events(client, cid) if t == "endpoint.absent"] == [
        "HUYEN-MUONG-LAT"]

    # Nga Son drops an hour in and is called back, again and again.
    drop = START + timedelta(hours=1)
    await report(client, runner, cid, "HUYEN-NGA-SON", "dropped", drop)
    response = await client.get(f"/api/v1/conferences/{cid}/rollcall", headers=booker)
    call = await response.json()
    assert call["connected"] == 1 and call["expected"] == 3
    assert call["summary_en"] == (  # in roster order
        "1/3 connected; missing: HUYEN-MUONG-LAT absent (redialling), "
        "HUYEN-NGA-SON dropped (redialling)")
    assert call["summary_vi"] == (
        "1/3 điểm cầu đã kết nối; chưa vào: HUYEN-MUONG-LAT vắng mặt (đang gọi lại), "
        "HUYEN-NGA-SON rớt kết nối (đang gọi lại)")
    before = [e for t, e in await events(client, cid) if t == "endpoint.invited"].count(
        "HUYEN-NGA-SON")
    clock.set(drop + timedelta(seconds=31))
    await runner._tick()
    after = [e for t, e in await events(client, cid) if t == "endpoint.invited"].count(
        "HUYEN-NGA-SON")
    assert after == before + 1
    # Dropped endpoints are never reported absent.
    assert "HUYEN-NGA-SON" not in [e for t, e in await events(client, cid)
                                   if t == "endpoint.absent"]

    # The end: "left" is for those who were there (the chair, Nga Son that dropped);
    # Muong Lat, never there, stays absent in the final roll call (issue 15).
    clock.set(START + timedelta(hours=2, seconds=1))
    await runner.reconcile()
    assert await status(client, booker, cid) == "ended"
    final = await (await client.get(f"/api/v1/conferences/{cid}/rollcall",
                                    headers=booker)).json()
    assert {e["code"]: (e["state"], e["redialling"]) for e in final["endpoints"]} == {
        "UBND-TINH": ("left", False), "HUYEN-NGA-SON": ("left", False),
        "HUYEN-MUONG-LAT": ("absent", False)}
    assert final["summary_vi"] == (
        "0/3 điểm cầu đã kết nối; chưa vào: UBND-TINH đã rời, HUYEN-MUONG-LAT vắng mặt, "
        "HUYEN-NGA-SON đã rời")


async def test_cancelling_a_live_conference_closes_it(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge,
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START + timedelta(minutes=1))
    await runner.reconcile()
    await runner._tick()  # everyone invited
    await report(client, runner, cid, "UBND-TINH", "joined", START + timedelta(minutes=1))
    response = await client.delete(f"/api/v1/conferences/{cid}", headers=booker)
    assert response.status == 200
    call = await (await client.get(f"/api/v1/conferences/{cid}/rollcall",
                                   headers=booker)).json()
    # The chair was there and left; the districts' invitations went unanswered.
    assert {e["code"]: e["state"] for e in call["endpoints"]} == {
        "UBND-TINH": "left", "HUYEN-NGA-SON": "no_answer", "HUYEN-MUONG-LAT": "no_answer"}
    await runner.sync(cid)  # a late timer for a cancelled conference does nothing
    assert await status(client, booker, cid) == "cancelled"
    assert ("conference.cancelled", None) in await events(client, cid)


async def test_live_conference_takes_title_and_extension_but_not_new_people(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock, make_user: Any
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    # Nga Son has another meeting at 16:30 (setup from 16:15).
    await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-NGA-SON"],
               start="2026-11-27T16:30:00+07:00", end="2026-11-27T17:00:00+07:00")
    clock.set(START + timedelta(minutes=1))
    await runner.reconcile()
    people = await client.patch(f"/api/v1/conferences/{cid}",
                                json={"participants": ["UBND-TINH", "SO-TTTT"]}, headers=booker)
    assert people.status == 409
    assert "participants" in (await people.json())["error"]["message"]
    title = await client.patch(f"/api/v1/conferences/{cid}",
                               json={"title": "Giao ban (trực tuyến)"}, headers=booker)
    assert title.status == 200

    chair = await make_user("op-ubnd", "operator", "UBND-TINH")
    district = await make_user("op-muong-lat", "operator", "HUYEN-MUONG-LAT")
    refused = await client.post(f"/api/v1/conferences/{cid}/extend", json={"minutes": 10},
                                headers=district)
    assert refused.status == 403
    ok = await client.post(f"/api/v1/conferences/{cid}/extend", json={"minutes": 10},
                           headers=chair)
    assert ok.status == 200 and (await ok.json())["end"] == "2026-11-27T16:10:00+07:00"
    clash = await client.post(f"/api/v1/conferences/{cid}/extend", json={"minutes": 10},
                              headers=chair)
    assert clash.status == 409
    assert (await clash.json())["error"]["details"]["conflicts"][0]["endpoints"] == [
        "HUYEN-NGA-SON"]
    await runner.sync(cid)
    assert runner.planned[cid] == START + timedelta(hours=2, minutes=5)  # the warning moved


async def test_readiness_at_open_uses_presence(
    client: Client, booker: H, admin: H, runner: LifecycleRunner, clock: FixedClock
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    issued = await (await client.post("/api/v1/endpoints/HUYEN-NGA-SON/tokens", json={},
                                      headers=admin)).json()
    clock.set(START - timedelta(minutes=15, seconds=30))  # the agent connects before setup
    async with client.ws_connect("/api/v1/events",
                                 headers={"Authorization": f"Bearer {issued['token']}"}) as ws:
        assert (await ws.receive_json())["type"] == "stream.ready"
        clock.set(START - timedelta(minutes=15))
        await runner.sync(cid)
        opened = await ws.receive_json(timeout=5)
    assert opened["type"] == "conference.opened"
    readiness = opened["data"]["readiness"]
    assert readiness["ready"] == ["HUYEN-NGA-SON"]
    assert readiness["summary_en"] == "1/3 endpoints ready; offline: UBND-TINH, HUYEN-MUONG-LAT"
    call = await (await client.get(f"/api/v1/conferences/{cid}/rollcall",
                                   headers=booker)).json()
    ready = {e["code"]: e["ready_at_open"] for e in call["endpoints"]}
    assert ready == {"UBND-TINH": False, "HUYEN-MUONG-LAT": False, "HUYEN-NGA-SON": True}


async def test_a_long_outage_closes_every_missed_conference_exactly_once(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge,
) -> None:
    # A daily briefing, more occurrences than one catch-up transaction takes.
    count = BATCH + 30
    await book(client, booker, rrule=f"FREQ=DAILY;COUNT={count}", **TODAY)
    clock.set(START + timedelta(days=count + 1))  # the service was down all that time
    await runner.reconcile()
    await runner.reconcile()  # and a second reconcile finds nothing left to do
    async with client.app[DATABASE].read() as session:
        statuses = Counter((await session.scalars(select(Conference.status))).all())
        rows = (await session.scalars(select(Event))).all()
    assert statuses == {"ended": count}
    per_type = Counter(e.type for e in rows)
    assert per_type["conference.ended"] == count
    assert len({e.conference_id for e in rows if e.type == "conference.ended"}) == count
    # Missed entirely: no room was opened, nobody invited.
    assert per_type["conference.opened"] == 0 and per_type["endpoint.invited"] == 0
    assert not [c for c in bridge.calls if c[0] != "close"]
    assert runner.planned == {}


async def test_an_extension_and_the_end_never_race(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START + timedelta(minutes=1))
    await runner.reconcile()
    assert await status(client, booker, cid) == "live"
    clock.set(START + timedelta(hours=2))  # the booked end: the end timer fires...
    app = client.app
    async with app[DATABASE].write() as session:  # ...while an extension is being saved
        conference = await session.get(Conference, cid)
        assert conference is not None
        await update_conference(session, conference,
                                ConferenceUpdate(end=conference.end + timedelta(minutes=10)),
                                "this", Actor("booker1", "booker"), clock.now(),
                                app[BOOKING_POLICY], app[EVENT_BUS])
        ending = asyncio.create_task(runner.sync(cid))
        await asyncio.sleep(0.2)  # the timer reaches the conference's row and waits there
    result = await ending
    # The end waited for the extension and saw the new end: nothing to do yet.
    assert result.applied == []
    assert await status(client, booker, cid) == "live"
    assert runner.planned[cid] == START + timedelta(hours=2, minutes=5)  # the new warning


async def test_an_extension_arriving_as_the_conference_ends_is_refused(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock, make_user: Any,
) -> None:
    cid = (await book(client, booker, **TODAY))["id"]
    chair = await make_user("op-ubnd", "operator", "UBND-TINH")
    clock.set(START + timedelta(minutes=1))
    await runner.reconcile()
    clock.set(START + timedelta(hours=2))
    app = client.app
    async with app[DATABASE].write() as session:  # the end is being saved...
        ended = await advance(session, cid, clock,
                              LifecycleSettings(5, timedelta(seconds=60)), app[EVENT_BUS])
        assert ended.applied == [Transition.END]
        extending = asyncio.create_task(  # ...when the chair asks for ten more minutes
            client.post(f"/api/v1/conferences/{cid}/extend", json={"minutes": 10},
                        headers=chair))
        await asyncio.sleep(0.2)  # the extension reaches the conference's row and waits
    response = await extending
    assert response.status == 409, await response.text()
    body = await (await client.get(f"/api/v1/conferences/{cid}", headers=booker)).json()
    assert (body["status"], body["end"]) == ("ended", TODAY["end"])


async def test_one_tick_invites_everyone_due_even_in_several_transactions(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge, monkeypatch: pytest.MonkeyPatch,
) -> None:
    conference = await book(client, booker, **TODAY)
    clock.set(START)
    await runner.reconcile()
    monkeypatch.setattr(runner_module, "TICK_LIMIT", 1)  # one row per transaction
    await runner._tick()
    assert sorted(c[2] for c in bridge.calls if c[0] == "invite") == sorted(
        conference["participants"])


class GatedBridge(RecordingBridge):
    """Holds every invitation until released, as a slow bridge would."""

    def __init__(self) -> None:
        super().__init__()
        self.inviting = asyncio.Event()
        self.release = asyncio.Event()

    async def invite(self, conference_id: int, endpoint: str) -> None:
        self.inviting.set()
        await self.release.wait()
        await super().invite(conference_id, endpoint)


async def test_stop_lets_a_running_tick_finish(
    client: Client, booker: H, clock: FixedClock, caplog: pytest.LogCaptureFixture,
) -> None:
    conference = await book(client, booker, **TODAY)
    cid = conference["id"]
    clock.set(START)
    app = client.app
    bridge = GatedBridge()
    runner = LifecycleRunner(
        app[DATABASE], app[EVENT_BUS], clock, bridge,
        LifecycleSettings(warn_minutes=5, presence_stale=timedelta(seconds=60)),
        redial_policy(app[SETTINGS]), timedelta(days=7), tick_seconds=0.2,
    )
    await runner.start()  # opens the room; the connect tick starts inviting
    await asyncio.wait_for(bridge.inviting.wait(), 30)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done(), "stop() waits for the invitations being sent"
    bridge.release.set()
    await asyncio.wait_for(stopping, 30)
    assert sorted(c[2] for c in bridge.calls if c[0] == "invite") == sorted(
        conference["participants"])
    assert not runner.running and runner.planned == {}
    await runner.start()  # elected again later: the same runner takes over cleanly
    assert runner.running and runner.planned[cid] == START + timedelta(hours=2, minutes=-5)
    await runner.stop()
    cancelled = [r for r in caplog.records
                 if r.exc_info and isinstance(r.exc_info[1], asyncio.CancelledError)]
    assert not cancelled and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_cancelling_a_running_conference_closes_its_room_through_the_bridge(
    client: Client, booker: H, runner: LifecycleRunner, clock: FixedClock,
    bridge: RecordingBridge,
) -> None:
    """The runner follows booking changes on the bus (any process's): a running
    conference cancelled has its room closed, the sites told "cancelled"."""
    cid = (await book(client, booker, **TODAY))["id"]
    clock.set(START + timedelta(minutes=1))
    await runner.start()
    try:
        assert ("open", cid, ["UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"]) in bridge.calls
        response = await client.delete(f"/api/v1/conferences/{cid}", headers=booker)
        assert response.status == 200
        deadline = asyncio.get_running_loop().time() + 10
        while cid not in bridge.reasons:
            assert asyncio.get_running_loop().time() < deadline, "the room never closed"
            await asyncio.sleep(0.01)
        assert bridge.reasons[cid] == "cancelled"
    finally:
        await runner.stop()
