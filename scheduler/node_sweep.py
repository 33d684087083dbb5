"""The scheduler leader's sweep of the bridge nodes (PostgreSQL; issue 15).

Every `interval` seconds, in one transaction:
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

from scheduler import attendance
from scheduler.connect_policy import ConnectState, RedialPolicy
from vcbridge.core import placement_store as store
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
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
        placed)."""
        now = self._clock.now()
        moved: list[int] = []
        placed: list[int] = []
        async with self._database.write() as session:
            dead = await store.declare_dead(session, self._bus, now, self._dead_after)
            for old in await store.orphaned_placements(session):
                # The sites' media went with the node: dropped (redialled), never joined.
                for row in await attendance.rows_of(session, old.conference_id, lock=True):
                    if row.state == ConnectState.JOINED.value:
                        await attendance.report(session, old.conference_id, row.endpoint.code,
                                                "dropped", now, self._redial, self._bus)
                new = await store.move(session, self._bus, now, old)
                if new is not None:
                    moved.append(old.conference_id)
                    log.warning("conference %s: room moved from node %s to %s (generation %d)",
                                old.conference_id, old.node_id, new.node_id, new.generation)
            for conference_id in await store.unplaced_running(session):
                if await store.place(session, self._bus, now, conference_id) is not None:
                    placed.append(conference_id)
        for node_id, incarnation in dead:
            log.warning("bridge node %s (incarnation %d) declared dead", node_id, incarnation)
        return [n for n, _ in dead], moved, placed
