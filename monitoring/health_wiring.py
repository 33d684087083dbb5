"""Wires endpoint health into the application: routes and background tasks.

`setup(app)` (called by the composition root after the database and event
bus contexts are registered) adds:

- `POST /api/v1/endpoints/{code}/heartbeat`, the same heartbeat as a message on
  the event stream (`{"type": "heartbeat", "body": ...}`), and the read routes
  of `health_api`;
- a cleanup context that binds the monitor to the database and event bus,
  sweeps once at start (endpoints silent since before a restart go offline
  from when their heartbeats stopped), then runs four tasks: the recorder
  (stores the changes heartbeats reveal, batched), the sweep every
  `health_sweep_seconds`, the pruning of old samples every hour, and the
  readiness publisher;
- at shutdown the monitor's unrecorded changes and samples are written.

The readiness publisher follows the event bus: for each `conference.opened`
it waits `health_preflight_wait_seconds` (the agents make their test calls
when the room opens; about 6 s) and publishes `conference.readiness`
(audience: the participants) with the pre-flight summary. Every process
sees every event, so the event is published under the event-sequence row
lock, and only if the conference has none yet: one per conference whatever
the number of processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy import select

from monitoring import health_api
from monitoring.health_model import NOT_READY_CODES, HealthState
from monitoring.heartbeats import MONITOR, HealthMonitor, post_heartbeat, stream_heartbeat
from monitoring.metrics import EndpointFacts, EndpointStatus, StatusModel, presence_status
from monitoring.metrics import Health as MetricsHealth
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS, STREAM_MESSAGES, ZONE
from vcbridge.core.db.models import Conference, Event, EventSequence
from vcbridge.core.event_types import EventType
from vcbridge.core.events import BusEvent

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600.0
READINESS_EVENT = EventType.CONFERENCE_READINESS


def setup(app: web.Application) -> HealthMonitor:
    """Add the health routes and background tasks to `app`; returns the monitor."""
    monitor = HealthMonitor(app[SETTINGS], app[CLOCK], app[ZONE])
    app[MONITOR] = monitor
    app.router.add_post("/api/v1/endpoints/{code}/heartbeat", post_heartbeat)
    app[STREAM_MESSAGES]["heartbeat"] = stream_heartbeat
    health_api.setup_routes(app)
    app.cleanup_ctx.append(_health_ctx)
    return monitor


async def _health_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor = app[MONITOR]
    monitor.bind(app[DATABASE], app[EVENT_BUS])
    try:
        await monitor.sweep()
    except Exception:  # the service starts anyway; the next sweep retries
        log.exception("health: first sweep failed")
    settings = app[SETTINGS]
    tasks = [
        asyncio.create_task(_every(settings.health_sweep_seconds, monitor.sweep, "sweep"),
                            name="health-sweep"),
        asyncio.create_task(_every(PRUNE_EVERY_SECONDS, monitor.prune, "prune", at_once=True),
                            name="health-prune"),
        asyncio.create_task(_readiness_publisher(app), name="health-readiness"),
        asyncio.create_task(monitor.run_recorder(), name="health-recorder"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    try:
        await monitor.close()
    except Exception:
        log.exception("health: final flush failed")


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str, *,
                 at_once: bool = False) -> None:
    if not at_once:
        await asyncio.sleep(seconds)
    while True:
        try:
            await job()
        except Exception:  # a database hiccup must not stop monitoring for good
            log.exception("health: %s failed; retrying", name)
        await asyncio.sleep(seconds)


async def _readiness_publisher(app: web.Application) -> None:
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


def status_model(monitor: HealthMonitor) -> StatusModel:
    """The metrics' `StatusModel` backed by the health model: each endpoint's state as of
    the monitor's last sweep (`monitoring.wiring.setup(app, status_model=...)`); until the
    first sweep, the presence-based default."""

    def status(facts: EndpointFacts) -> EndpointStatus:
        entry = monitor.board.get(facts.code)
        if entry is None:
            return presence_status(facts)
        health = entry.health
        ready = health.state is not HealthState.OFFLINE and not health.codes & NOT_READY_CODES
        return EndpointStatus(MetricsHealth(health.state.value), ready, entry.last_heartbeat)

    return status
