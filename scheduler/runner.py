"""The lifecycle runner: an APScheduler timer derived from the conference table.

The table is the truth; timers are a cache of it. At start (and when this
process becomes the scheduler leader) `reconcile` brings every conference up
to date with the clock and plans each conference's next transition within
the horizon. Booking changes arrive as events on the bus (from any process)
and re-derive that conference's plan at once; a periodic refresh brings
conferences entering the horizon in. Plans live in memory: losing them in a
crash loses nothing, because the next leader derives them again from the
table.

One APScheduler date job, the wake-up, is set for the earliest planned
transition (not one job per conference: a thousand jobs cost most of a
reconcile). When it fires, every conference due by then is advanced in one
transaction, and the wake-up is set again for the next earliest. All syncs
of this runner take turns (`_sync_lock`), so plans are made in the order the
transactions committed and a stale plan never overwrites a newer one.

APScheduler job options, chosen on purpose:
- `misfire_grace_time=None`: a late timer still runs. Every job only calls
  `advance_many`, which decides from the clock what is still due, so a late
  open or end is done late rather than never, and a late warning is dropped
  by the lifecycle rules (`WARN_GRACE`), not by APScheduler.
- `coalesce=True`: piled-up runs of one job collapse into one.
- `max_instances`: APScheduler counts a job as running until a callback
  after the coroutine returns, so a job that sets itself again (the wake-up
  does, at its end) would see its next run skipped and, for a date job,
  lost. The wake-up therefore allows many instances; they take turns on the
  sync lock and a run that finds nothing due costs nothing. The connect tick
  allows two, and a tick that finds the previous one still running returns at
  once rather than queueing. A tick works in short transactions and stops
  after half its interval (the next tick does the rest), so it does not
  overrun.

`stop()` pauses the timers, waits for the jobs already running to finish
(a transition is never cut in the middle), then shuts APScheduler down."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from scheduler.attendance import TICK_LIMIT, tick_due
from scheduler.bridge_port import BridgePort
from scheduler.connect_policy import RedialPolicy
from scheduler.lifecycle import Transition, due_transitions, next_transition
from scheduler.transitions import (
    LIFECYCLE_COLUMNS,
    Advanced,
    LifecycleSettings,
    advance_many,
    timeline_of,
)
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import ACTIVE_STATUSES, RUNNING_STATUSES, Conference
from vcbridge.core.event_types import EventType
from vcbridge.core.events import BusEvent, EventBus, Follower

log = logging.getLogger(__name__)

# Booking events after which a conference's plan is derived again.
_CHANGES = frozenset({EventType.CONFERENCE_BOOKED, EventType.CONFERENCE_UPDATED,
                      EventType.CONFERENCE_CANCELLED})

WAKE_JOB = "lifecycle-wakeup"
# See the module docstring: wake-ups waiting for their turn are cheap.
WAKE_INSTANCES = 1000
# Conferences advanced in one transaction: a catch-up of hundreds after a
# restart is a few transactions, each short enough not to hold other writers
# (bookings, the connect tick) up for long.
BATCH = 100
# How long `stop()` waits for running jobs.
STOP_TIMEOUT_S = 15.0


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
        # (when, conference id), earliest first; an entry whose time is no longer
        # the conference's plan is stale and skipped.
        self._queue: list[tuple[datetime, int]] = []
        self._armed: datetime | None = None
        self._sync_lock = asyncio.Lock()
        self._ticking = False
        self._follower: Follower | None = None
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.running = False

    async def start(self) -> None:
        """Start the timers: follow booking changes, reconcile, then tick and refresh."""
        self._stopping = False
        self._scheduler.start()
        # Subscribe before reconciling so no change slips between the two; cut off from
        # the bus (it fell behind), it subscribes again and catches up from the table.
        self._follower = self._bus.follow(_CHANGES, self._on_change, on_gap=self._after_gap,
                                          retry_seconds=0.0, name="lifecycle-bus")
        await self.reconcile()
        self._scheduler.add_job(self._tick, "interval", seconds=self._tick_seconds,
                                id="connect-tick", max_instances=2, replace_existing=True)
        self._scheduler.add_job(self._refresh, "interval", seconds=self._refresh_seconds,
                                id="horizon-refresh", replace_existing=True)
        self.running = True
        log.info("lifecycle scheduler started")

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every timer (another process may take over).

        Jobs already running finish first, up to `timeout` seconds (a database
        that hangs must not keep a deposed leader stopping for ever); the rest
        is then cancelled."""
        self.running = False
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()  # no new job starts
            # Jobs handed to the event loop just before the pause start now, see
            # `_stopping` and return, or are counted as active.
            await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._active:
                    await self._idle.wait()
        if self._active:
            log.warning("lifecycle scheduler: %d jobs still running after %.0f s; cancelling",
                        self._active, timeout)
        # No await between the check above and here: the follower is idle, waiting
        # for the next change, and is cancelled there.
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        if self._scheduler.running:
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)
        self._planned.clear()
        self._queue.clear()
        self._armed = None
        log.info("lifecycle scheduler stopped")

    @property
    def planned(self) -> dict[int, datetime]:
        """Conference id -> when its next transition is due (the wake-up covers it)."""
        return dict(self._planned)

    async def reconcile(self) -> int:
        """Bring every conference up to date with the clock and plan its next transition.

        One read of the lifecycle columns plans the conferences with nothing
        due; those with a due transition are advanced in batches of
        `BATCH` per transaction. Returns how many conferences were looked at."""
        return await self._catch_up(only_unplanned=False)

    async def sync(self, conference_id: int) -> Advanced:
        """Advance one conference to now, act on the bridge, and plan its next transition.

        If the transaction fails (a database outage, a lock timeout) the
        conference is forgotten by the plans, so the next horizon refresh
        (within `refresh_seconds`) tries it again, instead of it staying stuck;
        the error is raised."""
        async with self._sync_lock:
            results = await self._advance([conference_id])
        await self._act(results[0])
        return results[0]

    async def sync_many(self, conference_ids: Sequence[int]) -> list[Advanced]:
        """`sync` for several conferences, `BATCH` per transaction; one result per
        distinct id that could be advanced.

        A batch that fails is retried one conference at a time, so one bad
        conference holds up no other; a conference that still fails is
        forgotten (and logged) until the next refresh. A bridge call that fails
        is logged and does not stop the others."""
        ids = sorted(set(conference_ids))
        results: list[Advanced] = []
        for first in range(0, len(ids), BATCH):
            chunk = ids[first:first + BATCH]
            async with self._sync_lock:
                try:
                    done = await self._advance(chunk)
                except Exception:
                    if len(chunk) == 1:
                        continue  # logged by _advance
                    log.warning("advancing %d conferences together failed; one by one",
                                len(chunk))
                    done = []
                    for conference_id in chunk:
                        with contextlib.suppress(Exception):  # logged by _advance
                            done += await self._advance([conference_id])
            for result in done:
                try:
                    await self._act(result)
                except Exception:
                    log.exception("the bridge failed for conference %s",
                                  result.conference_id)
            results += done
        return results

    async def _advance(self, conference_ids: list[int]) -> list[Advanced]:
        """One transaction over `conference_ids`, then their plans (sync lock held)."""
        try:
            async with self._database.write() as session:
                results = await advance_many(session, conference_ids, self._clock,
                                             self._settings, self._bus)
        except Exception:
            for conference_id in conference_ids:
                self._planned.pop(conference_id, None)
            log.exception("advancing conferences %s failed; retrying at the next refresh",
                          conference_ids)
            raise
        for result in results:
            self._plan(result.conference_id, result.next)
        self._arm()
        return results

    async def _act(self, result: Advanced) -> None:
        """Ask the bridge for what the committed transitions need."""
        for transition in result.applied:
            if transition is Transition.OPEN:
                await self._bridge.open_room(result.conference_id, result.chair,
                                             result.participants)
            elif transition is Transition.END:
                await self._bridge.close_room(result.conference_id, "ended")

    async def _catch_up(self, *, only_unplanned: bool) -> int:
        now = self._clock.now()
        async with self._database.read() as session:
            rows = (await session.execute(
                select(*LIFECYCLE_COLUMNS).where(
                    Conference.status.in_(ACTIVE_STATUSES),
                    Conference.busy_start <= now + self._horizon)
            )).all()
        work = []
        for row in rows:
            if only_unplanned and row.id in self._planned:
                continue
            timeline = timeline_of(row, self._settings)
            if due_transitions(row.status, timeline, now, row.warned):
                work.append(row.id)
            else:
                self._plan(row.id, next_transition(row.status, timeline, row.warned, now=now))
        self._arm()
        await self.sync_many(work)
        return len(rows)

    def _plan(self, conference_id: int, upcoming: tuple[Transition, datetime] | None) -> None:
        """Remember when the conference's next transition is due (the caller arms)."""
        if upcoming is None or upcoming[1] > self._clock.now() + self._horizon:
            self._planned.pop(conference_id, None)
            return
        at = upcoming[1]
        if self._planned.get(conference_id) != at:
            self._planned[conference_id] = at
            heapq.heappush(self._queue, (at, conference_id))

    def _arm(self, *, again: bool = False) -> None:
        """Set the wake-up for the earliest planned transition, if it changed
        (`again`: set it even if unchanged, as the wake-up that was set has run)."""
        queue = self._queue
        while queue and self._planned.get(queue[0][1]) != queue[0][0]:
            heapq.heappop(queue)
        if not self._scheduler.running or self._stopping:
            return  # started later (tests drive the runner by hand), or stopping
        if not queue:
            if self._armed is not None:
                self._armed = None
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(WAKE_JOB)
            return
        at = queue[0][0]
        if at == self._armed and not again:
            return
        self._scheduler.add_job(self._wake, "date", run_date=at, id=WAKE_JOB,
                                replace_existing=True, max_instances=WAKE_INSTANCES)
        self._armed = at

    async def _wake(self) -> None:
        """The wake-up: advance every conference due by now, then set the next wake-up."""
        async with self._activity() as go:
            if not go:
                return
            try:
                now = self._clock.now()
                due = []
                while self._queue and self._queue[0][0] <= now:
                    at, conference_id = heapq.heappop(self._queue)
                    if self._planned.get(conference_id) == at:
                        due.append(conference_id)
                await self.sync_many(due)
            finally:
                self._arm(again=True)

    async def _on_change(self, event: BusEvent) -> None:
        """A booking change (any process): close a cancelled running room, re-plan."""
        if event.conference_id is None:
            return
        async with self._activity() as go:
            if not go:
                return
            try:
                if (event.type == EventType.CONFERENCE_CANCELLED
                        and event.data.get("was") in RUNNING_STATUSES):
                    await self._bridge.close_room(event.conference_id, "cancelled")
                await self.sync(event.conference_id)
            except Exception:
                log.exception("re-deriving conference %s failed", event.conference_id)

    async def _after_gap(self) -> None:
        """The bus cut the follower off (overflow): catch up from the table."""
        log.warning("lifecycle fell behind the event bus; reconciling")
        async with self._activity() as go:
            if go:
                await self.reconcile()

    async def _refresh(self) -> None:
        async with self._activity() as go:
            if go:
                await self._catch_up(only_unplanned=True)

    async def _tick(self) -> None:
        if self._ticking:
            return  # the previous tick is still running; the next one does the rest
        async with self._activity() as go:
            if not go:
                return
            self._ticking = True
            try:
                await self._tick_chunks()
            finally:
                self._ticking = False

    async def _tick_chunks(self) -> None:
        """The connect tick: due rows in short transactions, so a transition waiting
        for the database (SQLite's one writer, PostgreSQL's event sequence row) gets
        in between; stops after half its interval, and the next tick goes on."""
        started = time.monotonic()
        while True:
            async with self._database.write() as session:
                ticked = await tick_due(session, self._clock.now(), self._redial, self._bus,
                                        limit=TICK_LIMIT)
            for invitation in ticked.invitations:
                await self._bridge.invite(invitation.conference_id, invitation.endpoint)
            if (ticked.handled < TICK_LIMIT
                    or time.monotonic() - started > self._tick_seconds / 2):
                return

    @contextlib.asynccontextmanager
    async def _activity(self) -> AsyncIterator[bool]:
        """Count a job as running, so `stop()` waits for it; yields False (do nothing)
        once stopping."""
        if self._stopping:
            yield False
            return
        self._active += 1
        self._idle.clear()
        try:
            yield True
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()
