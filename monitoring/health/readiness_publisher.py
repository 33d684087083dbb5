"""The `conference.readiness` event: the pre-flight check, published when a room opens.

The publisher follows the event bus: for each `conference.opened` it waits
`health_preflight_wait_seconds` (the agents make their test calls when the
room opens; about 6 s) and publishes `conference.readiness` (audience: the
participants) with the pre-flight summary. Every process sees every event,
so the event is published under the event-sequence row lock, and only if the
conference has none yet: one per conference whatever the number of processes."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import select

from monitoring.health import api as health_api
from monitoring.health.monitor import MONITOR
from vcbridge.core.app_keys import DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.db.models import Conference, Event, EventSequence
from vcbridge.core.event_types import EventType
from vcbridge.core.events import BusEvent

log = logging.getLogger(__name__)

READINESS_EVENT = EventType.CONFERENCE_READINESS


async def readiness_publisher(app: web.Application) -> None:
    """Follow the bus: the readiness of each conference that opens (a background task)."""
    bus, wait = app[EVENT_BUS], app[SETTINGS].health_preflight_wait_seconds
    pending: set[asyncio.Task[None]] = set()

    async def opened(event: BusEvent) -> None:
        if event.conference_id is not None:
            task = asyncio.create_task(_readiness_after(app, event.conference_id, wait))
            pending.add(task)
            task.add_done_callback(pending.discard)

    follower = bus.follow({EventType.CONFERENCE_OPENED}, opened, retry_seconds=1.0,
                          name="health-readiness")
    try:
        await follower.wait()
    finally:
        await follower.stop()
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _readiness_after(app: web.Application, conference_id: int, wait: float) -> None:
    await asyncio.sleep(wait)
    try:
        await publish_readiness(app, conference_id)
    except Exception:
        log.exception("health: readiness of conference %s failed", conference_id)


async def publish_readiness(app: web.Application, conference_id: int) -> bool:
    """Publish `conference.readiness` for a conference unless it has one; True if published."""
    monitor, bus = app[MONITOR], app[EVENT_BUS]
    async with app[DATABASE].write() as session:
        # The lock every publisher takes first: two processes cannot both find none.
        await session.execute(
            select(EventSequence.id).where(EventSequence.id == 1).with_for_update())
        done = await session.scalar(
            select(Event.seq).where(Event.conference_id == conference_id,
                                    Event.type == READINESS_EVENT).limit(1))
        conference = await session.get(Conference, conference_id)
        if done is not None or conference is None:
            return False
        result, _ = await health_api.conference_readiness(session, monitor, conference)
        await bus.publish(
            session, READINESS_EVENT, monitor.clock.now(), conference_id=conference_id,
            audience=[p.endpoint.code for p in conference.participants],
            data=health_api.readiness_event_data(result),
        )
    return True

