"""The event contract (vcbridge/core/event_types.py) holds for the events the service
really publishes: every type is named, every `data` fits its payload, every audience
follows its rule; and the OpenAPI document is derived from it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from monitoring.health.readiness_publisher import publish_readiness
from scheduler import attendance
from scheduler.lifecycle_wiring import redial_policy
from tests.conftest import Client
from tests.support import manual_runner
from tests.test_booking import book
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.audit import Actor
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import Event
from vcbridge.core.event_types import EVENTS, Audience, EventType, described, payload_adapter
from vcbridge.openapi_routes import openapi_document
from vcbridge.room_reports import RoomReports

H = dict[str, str]
CHAIR, NGA_SON, MUONG_LAT = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"
TODAY = {"start": "2026-11-27T14:00:00+07:00", "end": "2026-11-27T16:00:00+07:00"}


def test_every_type_has_a_spec_and_the_openapi_document_is_derived_from_it() -> None:
    assert set(EVENTS) == set(EventType)
    bus_event = openapi_document()["components"]["schemas"]["BusEvent"]
    assert set(bus_event["properties"]["type"]["enum"]) == set(described())
    for event_type, spec in EVENTS.items():
        assert spec.description, event_type
        assert set(spec.required) <= set(spec.keys)
    # The wire form is the string itself.
    assert EventType.CONFERENCE_LIVE == "conference.live"
    assert EventType.floor("mute") is EventType.FLOOR_MUTE
    assert EventType.floor("floor.grant") is EventType.FLOOR_GRANT


async def _life_of_a_conference(client: Client, booker: H, clock: FixedClock) -> None:
    """Publish what a conference's life publishes, through the real publishers."""
    app = client.app
    conference = await book(client, booker, **TODAY)
    cid = conference["id"]
    response = await client.patch(f"/api/v1/conferences/{cid}", headers=booker,
                                  json={"title": "Giao ban (đổi)"})
    assert response.status == 200, await response.text()
    other = await book(client, booker, start="2026-11-28T14:00:00+07:00",
                       end="2026-11-28T15:00:00+07:00")
    assert (await client.delete(f"/api/v1/conferences/{other['id']}",
                                headers=booker)).status == 200
    runner = manual_runner(app, clock)
    start = clock.now().replace(hour=7)  # 14:00 in Hanoi
    clock.set(start - timedelta(minutes=15))
    await runner.sync(cid)  # opened
    assert await publish_readiness(app, cid)
    clock.set(start)
    await runner.sync(cid)  # live
    await runner._tick()  # everyone invited
    policy = redial_policy(app[SETTINGS])
    for code, kind in [(CHAIR, "joined"), (NGA_SON, "joined"), (NGA_SON, "dropped"),
                       (MUONG_LAT, "declined"), (CHAIR, "left")]:
        async with app[DATABASE].write() as session:
            assert await attendance.report(session, cid, code, kind, app[CLOCK].now(),
                                           policy, app[EVENT_BUS])
    reports = RoomReports(app)
    await reports.floor_action(cid, NGA_SON, "floor.request", {})
    await reports.floor_action(cid, CHAIR, "floor.grant", {"endpoint": NGA_SON})
    await reports.floor_action(cid, CHAIR, "mute", {"endpoint": MUONG_LAT, "muted": True},
                               moderator=Actor("booker1", "booker"))
    await reports.floor_action(cid, CHAIR, "record", {"on": False, "recording": "x.webm",
                                                      "cause": "ended"})
    clock.set(start + timedelta(hours=1, minutes=55))
    await runner.sync(cid)  # ending soon
    clock.set(start + timedelta(hours=2))
    await runner.sync(cid)  # ended


def _expected_audience(rule: Audience, row: Event, participants: dict[int, set[str]]
                       ) -> set[str]:
    if rule is Audience.PARTICIPANTS:
        assert row.conference_id is not None
        return participants[row.conference_id]
    if rule is Audience.ENDPOINT:
        return {row.endpoint_code} if row.endpoint_code else set()
    if rule is Audience.ACTOR_AND_TARGET:
        target = (row.data or {}).get("endpoint")
        return {c for c in (row.endpoint_code, target) if isinstance(c, str)}
    return set()


async def test_published_events_follow_the_contract(
    client: Client, booker: H, clock: FixedClock
) -> None:
    await _life_of_a_conference(client, booker, clock)
    async with client.app[DATABASE].read() as session:
        rows = (await session.scalars(select(Event).order_by(Event.seq))).all()
    participants: dict[int, set[str]] = {}
    for row in rows:
        if row.type == EventType.CONFERENCE_BOOKED:
            participants[row.conference_id or 0] = set(row.audience or ())
    seen: set[EventType] = set()
    for row in rows:
        event_type = EventType(row.type)  # a ValueError names a type outside the contract
        seen.add(event_type)
        data: dict[str, Any] = dict(row.data or {})
        payload_adapter(event_type).validate_python(data)  # closed: no unknown keys
        rule = EVENTS[event_type].audience
        assert set(row.audience or ()) == _expected_audience(rule, row, participants), (
            row.type, row.audience)
    # endpoint.absent and endpoint.health are covered by the roll call and health tests.
    assert seen >= {
        EventType.CONFERENCE_BOOKED, EventType.CONFERENCE_UPDATED,
        EventType.CONFERENCE_CANCELLED, EventType.CONFERENCE_OPENED,
        EventType.CONFERENCE_READINESS, EventType.CONFERENCE_LIVE,
        EventType.CONFERENCE_ENDING_SOON, EventType.CONFERENCE_ENDED,
        EventType.ENDPOINT_INVITED, EventType.ENDPOINT_JOINED, EventType.ENDPOINT_DROPPED,
        EventType.ENDPOINT_DECLINED, EventType.ENDPOINT_LEFT, EventType.FLOOR_REQUEST,
        EventType.FLOOR_GRANT, EventType.FLOOR_MUTE, EventType.FLOOR_RECORD,
    }, seen
