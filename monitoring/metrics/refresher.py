"""The metrics' view of the database: roster, conference counts, presence, next
conferences and the roll call, read every few seconds into `Metrics`."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from monitoring.metrics.families import Metrics
from monitoring.metrics.status import EndpointFacts, StatusModel, presence_status
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import (
    ACTIVE_STATUSES,
    RUNNING_STATUSES,
    Attendance,
    Conference,
    ConferenceStatus,
    Endpoint,
    EndpointPresence,
    Participant,
)
from vcbridge.core.presence import online

log = logging.getLogger(__name__)

# The attendance state of an endpoint in the call (scheduler.connect_policy.ConnectState.JOINED;
# the column is core schema, the value is checked against the enum by the tests).
JOINED = "joined"


class StateRefresher:
    """Reads the roster, presence, conference counts, next conferences and the roll
    call from the database every `interval` seconds into `Metrics`. Scrapes read
    this cache; they never query the database."""

    def __init__(
        self,
        metrics: Metrics,
        database: Database,
        clock: Clock,
        *,
        presence_stale: timedelta,
        status_model: StatusModel = presence_status,
        interval: float = 10.0,
    ) -> None:
        self._metrics = metrics
        self._database = database
        self._clock = clock
        self._stale = presence_stale
        self._status_model = status_model
        self.interval = interval

    async def run(self) -> None:
        """Refresh every `interval` seconds until cancelled (failures are logged, retried)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("metrics: refreshing from the database failed")

    async def refresh(self) -> None:
        """One refresh: a few reads in one session."""
        now = self._clock.now()
        running = RUNNING_STATUSES
        async with self._database.read() as session:
            endpoints = (await session.execute(
                select(Endpoint.id, Endpoint.code).where(Endpoint.active).order_by(Endpoint.id)
            )).all()
            counts = {
                ConferenceStatus(status).value: int(count)
                for status, count in (await session.execute(
                    select(Conference.status, func.count())
                    .where(Conference.status.in_(ACTIVE_STATUSES)).group_by(Conference.status)
                )).all()
            }
            next_start: dict[int, datetime] = {
                endpoint_id: start
                for endpoint_id, start in (await session.execute(
                    select(Participant.endpoint_id, func.min(Conference.start))
                    .join(Conference, Conference.id == Participant.conference_id)
                    .where(Conference.status.in_((ConferenceStatus.SCHEDULED,
                                                  ConferenceStatus.OPEN)),
                           Conference.start > now)
                    .group_by(Participant.endpoint_id)
                )).all()
            }
            last_seen: dict[int, datetime] = {
                endpoint_id: seen
                for endpoint_id, seen in (await session.execute(
                    select(EndpointPresence.endpoint_id, EndpointPresence.last_seen)
                )).all()
            }
            up = await online(session, [e.id for e in endpoints], now, self._stale)
            joined: dict[str, int] = {
                code: conference_id
                for code, conference_id in (await session.execute(
                    select(Endpoint.code, Attendance.conference_id)
                    .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
                    .join(Conference, Conference.id == Attendance.conference_id)
                    .where(Attendance.state == JOINED, Conference.status.in_(running))
                )).all()
            }
        metrics = self._metrics
        metrics.set_roster(e.code for e in endpoints)
        metrics.set_conference_counts(counts, valid_for=3 * self.interval)
        metrics.set_joined(joined)
        for endpoint_id, code in endpoints:
            start = next_start.get(endpoint_id)
            metrics.set_next_conference_start(code, start)
            facts = EndpointFacts(code, endpoint_id in up, last_seen.get(endpoint_id),
                                  code in joined, start)
            metrics.set_endpoint_status(code, self._status_model(facts))
