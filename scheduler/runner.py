"""The lifecycle runner: APScheduler timers derived from the conference table.

The table is the truth; timers are a cache of it. At start (and when this
process becomes the scheduler leader) `reconcile` brings every conference up
to date with the clock and sets one timer per conference for its next
transition within the horizon. Booking changes arrive as events on the bus
(from any process) and re-derive that conference's timer at once; a periodic
refresh brings conferences entering the horizon in. Timers live in
APScheduler's in-memory store: losing them in a crash loses nothing, because
the next leader derives them again from the table.

APScheduler job options, chosen on purpose:
- `misfire_grace_time=None`: a late timer still runs. Every job only calls
  `advance`, which decides from the clock what is still due, so a late open
  or end is done late rather than never, and a late warning is dropped by
  the lifecycle rules (`WARN_GRACE`), not by APScheduler.
- `coalesce=True`, `max_instances=1`: piled-up runs of one job collapse
  into one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from scheduler.attendance import tick_due
from scheduler.bridge_port import BridgePort
from scheduler.connect_policy import RedialPolicy
from scheduler.lifecycle import Transition, due_transitions, next_transition
from scheduler.transitions import Advanced, LifecycleSettings, advance, timeline_of
from vcbridge.clock import Clock
from vcbridge.db.engine import Database
from vcbridge.db.models import ACTIVE_STATUSES, Conference
from vcbridge.events import EventBus

log = logging.getLogger(__name__)

# Booking events after which a conference's timer is derived again.
_CHANGES = frozenset({"conference.booked", "conference.updated", "conference.cancelled"})


class LifecycleRunner:
    """Drives every conference through its lifecycle on time (on the leader only)."""

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        clock: Clock,
        bridge: BridgePort,
        settings: LifecycleSettings,
        redial: RedialPolicy,
        horizon: timedelta,
        *,
        tick_seconds: float = 1.0,
        refresh_seconds: float = 60.0,
    ) -> None:
        self._database = database
        self._bus = bus
        self._clock = clock
        self._bridge = bridge
        self._settings = settings
        self._redial = redial
        self._horizon = horizon
        self._tick_seconds = tick_seconds
        self._refresh_seconds = refresh_seconds
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._planned: dict[int, datetime] = {}
        self._follower: asyncio.Task[None] | None = None
        self.running = False

    async def start(self) -> None:
        """Start the timers: follow booking changes, reconcile, then tick and refresh."""
        self._scheduler.start()
        ready = asyncio.Event()
        # Subscribe before reconciling so no change slips between the two.
        self._follower = asyncio.create_task(self._follow_changes(ready), name="lifecycle-bus")
        await ready.wait()
        await self.reconcile()
        self._scheduler.add_job(self._tick, "interval", seconds=self._tick_seconds,
                                id="connect-tick")
        self._scheduler.add_job(self._refresh, "interval", seconds=self._refresh_seconds,
                                id="horizon-refresh")
        self.running = True
        log.info("lifecycle scheduler started")

    async def stop(self) -> None:
        """Stop every timer (another process may take over)."""
        self.running = False
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._planned.clear()
        log.info("lifecycle scheduler stopped")

    @property
    def planned(self) -> dict[int, datetime]:
        """Conference id -> when its next timer fires."""
        return dict(self._planned)

    async def reconcile(self) -> int:
        """Bring every conference up to date with the clock and set its timer.

        Conferences with nothing due are planned from one read; only those
        with a due transition get a write transaction. Returns how many
        conferences were looked at."""
        now = self._clock.now()
        async with self._database.read() as session:
            conferences = (await session.scalars(
                select(Conference).where(Conference.status.in_(ACTIVE_STATUSES),
                                         Conference.busy_start <= now + self._horizon)
            )).all()
            work = []
            for conference in conferences:
                timeline = timeline_of(conference, self._settings)
                if due_transitions(conference.status, timeline, now, conference.warned):
                    work.append(conference.id)
                else:
                    self._plan(conference.id, next_transition(
                        conference.status, timeline, conference.warned, now=now))
        for conference_id in work:
            with contextlib.suppress(Exception):  # logged by sync; retried by the refresh
                await self.sync(conference_id)
        return len(conferences)

    async def sync(self, conference_id: int) -> Advanced:
        """Advance one conference to now, act on the bridge, and set its next timer.

        If the transaction fails (a database outage, a lock timeout) the
        conference is forgotten by the timers, so the next horizon refresh
        (within `refresh_seconds`) tries it again, instead of it staying stuck."""
        try:
            async with self._database.write() as session:
                result = await advance(session, conference_id, self._clock, self._settings,
                                       self._bus)
        except Exception:
            self._planned.pop(conference_id, None)
            log.exception("advancing conference %s failed; retrying at the next refresh",
                          conference_id)
            raise
        for transition in result.applied:
            if transition is Transition.OPEN:
                await self._bridge.open_room(conference_id, result.participants)
            elif transition is Transition.END:
                await self._bridge.close_room(conference_id)
        self._plan(conference_id, result.next)
        return result

    def _plan(self, conference_id: int, upcoming: tuple[Transition, datetime] | None) -> None:
        job_id = f"conference-{conference_id}"
        if upcoming is None or upcoming[1] > self._clock.now() + self._horizon:
            if self._planned.pop(conference_id, None) is not None:
                with contextlib.suppress(Exception):
                    self._scheduler.remove_job(job_id)
            return
        at = upcoming[1]
        self._scheduler.add_job(self._timer, "date", run_date=at, args=[conference_id],
                                id=job_id, replace_existing=True)
        self._planned[conference_id] = at

    async def _timer(self, conference_id: int) -> None:
        with contextlib.suppress(Exception):  # logged by sync; retried by the refresh
            await self.sync(conference_id)

    async def _follow_changes(self, ready: asyncio.Event) -> None:
        async with self._bus.subscribe() as subscription:
            ready.set()
            while (event := await subscription.queue.get()) is not None:
                if event.type not in _CHANGES or event.conference_id is None:
                    continue
                try:
                    if event.type == "conference.cancelled" and event.data.get("was") in (
                        "open", "live"
                    ):
                        await self._bridge.close_room(event.conference_id)
                    await self.sync(event.conference_id)
                except Exception:
                    log.exception("re-deriving conference %s failed", event.conference_id)
        if self.running:  # the bus cut us off (overflow): catch up from the table
            log.warning("lifecycle fell behind the event bus; reconciling")
            self._follower = asyncio.create_task(self._follow_changes(asyncio.Event()))
            await self.reconcile()

    async def _refresh(self) -> None:
        now = self._clock.now()
        async with self._database.read() as session:
            ids = (await session.scalars(
                select(Conference.id).where(Conference.status.in_(ACTIVE_STATUSES),
                                            Conference.busy_start <= now + self._horizon)
            )).all()
        for conference_id in ids:
            if conference_id not in self._planned:
                with contextlib.suppress(Exception):  # logged by sync; tried again next time
                    await self.sync(conference_id)

    async def _tick(self) -> None:
        async with self._database.write() as session:
            invitations = await tick_due(session, self._clock.now(), self._redial, self._bus)
        for invitation in invitations:
            await self._bridge.invite(invitation.conference_id, invitation.endpoint)
