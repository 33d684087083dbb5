"""The scheduler leader's sweep of the bridge nodes (PostgreSQL; issue 15).

Every `interval` seconds (half a node heartbeat); 1 and 2 in one transaction, 3 in
one transaction per conference:
1. nodes silent for more than `node_dead_after_seconds` are declared dead
   (`bridge_node.dead`);
2. every running conference whose room is on a node that is dead, or no longer the
   incarnation it was placed on (the node restarted), has its joined sites marked
   dropped in the roll call (`endpoint.dropped`: their media went with the node) and
   is moved to the best live node (generation + 1, `conference.room_placed`), where
   its sites reconnect;
3. every running conference with no placement (the leader died between opening it
   and placing its room, or no node could take it then) is placed.

All of it is idempotent, so a new leader simply sweeps again; the placement table's
primary key and the generation guard keep a room from being placed twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import attendance
from scheduler.connect_policy import ConnectState, RedialPolicy
from vcbridge.core import placement_store as store
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Attendance, Endpoint
from vcbridge.core.events import EventBus

log = logging.getLogger(__name__)


class NodeSweep:
    """Declares silent nodes dead and moves or places rooms (on the leader only)."""

    def __init__(self, database: Database, bus: EventBus, clock: Clock, redial: RedialPolicy,
                 *, dead_after: float, interval: float) -> None:
        self._database = database
        self._bus = bus
        self._clock = clock
        self._redial = redial
        self._dead_after = dead_after
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep now, then every `interval` seconds until `stop`."""
        self._task = asyncio.create_task(self._run(), name="bridge-node-sweep")

    async def stop(self) -> None:
        """Stop sweeping (leadership lost or shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("bridge node sweep failed; trying again")
            await asyncio.sleep(self._interval)

    async def sweep(self) -> tuple[list[str], list[int], list[int]]:
        """One sweep; returns (nodes declared dead, conferences moved, conferences
        placed).

        Lock order, as every other writer of these rows: the rows first (nodes,
        placements, the joined attendance rows, by id), the event sequence last (the
        first publish takes it); after that only rows already held are written. The
        connect tick locks due attendance rows and then the sequence (a joined row has
        no next action, so the tick never holds one); a node placing a room inserts its
        row and then publishes, so unplaced rooms are placed in transactions of their
        own, holding nothing while they insert."""
        now = self._clock.now()
        moved: list[int] = []
        placed: list[int] = []
        async with self._database.write() as session:
            dead = await store.declare_dead(session, self._dead_after)
            orphans = await store.orphaned_placements(session)
            joined = await self._lock_joined(session, [p.conference_id for p in orphans])
            await self._bus.publish_many(session, now, dead)
            for old in orphans:
                # The sites' media went with the node: dropped (redialled), never joined.
                for code in joined.get(old.conference_id, []):
                    await attendance.report(session, old.conference_id, code, "dropped", now,
                                            self._redial, self._bus)
                new = await store.move(session, self._bus, now, old)
                if new is not None:
                    moved.append(old.conference_id)
                    log.warning("conference %s: room moved from node %s to %s (generation %d)",
                                old.conference_id, old.node_id, new.node_id, new.generation)
        async with self._database.read() as session:
            unplaced = await store.unplaced_running(session)
        for conference_id in unplaced:
            async with self._database.write() as session:
                if await store.place(session, self._bus, now, conference_id) is not None:
                    placed.append(conference_id)
        names = [str(event.data["node"]) for event in dead]
        for name in names:
            log.warning("bridge node %s declared dead", name)
        return names, moved, placed

    @staticmethod
    async def _lock_joined(session: AsyncSession, conference_ids: list[int]
                           ) -> dict[int, list[str]]:
        """Lock the joined attendance rows of these conferences (by id); their codes."""
        if not conference_ids:
            return {}
        rows = (await session.execute(
            select(Attendance.conference_id, Endpoint.code)
            .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
            .where(Attendance.conference_id.in_(conference_ids),
                   Attendance.state == ConnectState.JOINED.value)
            .order_by(Attendance.id).with_for_update(of=Attendance)
        )).all()
        joined: dict[int, list[str]] = {}
        for conference_id, code in rows:
            joined.setdefault(conference_id, []).append(code)
        return joined
