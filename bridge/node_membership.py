"""This process as a bridge node (issue 15): it registers in `bridge_nodes`, heartbeats,
tells signaling where a conference's room is, and fences itself off from rooms that
were moved away.

Only on PostgreSQL (several processes share rooms only through it); on SQLite the one
process holds every room and this is not started. The rules are in
`vcbridge/core/placement_rules.py`, the reads and writes in
`vcbridge/core/placement_store.py`.

- Registering gives the node a new incarnation each time it starts, or when it finds
  it was declared dead (its heartbeat no longer updates its row). A node superseded
  (a later incarnation holds its row: another process under the same id) stops
  serving instead.
- A room is served only where it is placed: on the placement's node, in the
  incarnation it was placed on. A site reaching another node gets the `redirect`
  message (`redirect_message`, docs/signaling.md).
- A conference running but not placed yet (the scheduler leader is slow or was
  replaced) is claimed by the node the first site reaches, with the same
  insert-if-absent as the leader's (the loser of a race redirects).
- Fencing: at every heartbeat, each room this process holds whose placement names
  another node (or another incarnation of this one that was not taken back) is
  closed here after its sites are sent the redirect to where it is now."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bridge.rooms import RoomRegistry
from vcbridge.core import placement_store as store
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus
from vcbridge.core.placement_rules import serves
from vcbridge.core.placement_store import Placement

log = logging.getLogger(__name__)

# The close code of a signaling socket ended by a redirect (docs/signaling.md).
REDIRECT_CLOSE_CODE = 4307


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is and what it offers."""

    node_id: str
    url: str  # the base URL sites use for signaling
    capacity_ports: int
    heartbeat_seconds: float


def redirect_message(placement: Placement) -> dict[str, Any]:
    """The signaling message sending a site to the node that holds the room."""
    return {"type": "redirect", "url": placement.url, "node": placement.node_id,
            "generation": placement.generation}


class NodeMembership:
    """This process's membership of the bridge nodes."""

    def __init__(self, database: Database, bus: EventBus, clock: Clock, identity: NodeIdentity,
                 rooms: RoomRegistry, *, member: bool = True, draining: bool = False) -> None:
        # `member`: False for a process without the bridge role (a controller): it never
        # registers nor serves a room, and sends every site to the room's node.
        self.member = member
        self._database = database
        self._bus = bus
        self._clock = clock
        self.identity = identity
        self._rooms = rooms
        self.draining = draining
        self.incarnation = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.identity.node_id

    async def start(self) -> None:
        """Register, then heartbeat until `stop` (a member only). SIGUSR1 drains."""
        if not self.member:
            return
        await self._register()
        self._task = asyncio.create_task(self._beat_forever(), name="bridge-node-heartbeat")
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.drain)

    async def silence(self) -> None:
        """Stop heartbeating, without leaving: to the other nodes, what a killed or
        frozen process looks like."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        """Stop heartbeating and leave (declared dead at once: the leader moves what is
        still placed here at its next sweep)."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        await self.silence()
        if self.incarnation:
            with contextlib.suppress(Exception):
                async with self._database.write() as session:
                    await store.leave(session, self.node_id, self.incarnation)

    def drain(self) -> None:
        """Take no new room from now on (rooms already here stay until they end)."""
        if not self.draining:
            log.info("bridge node %s: draining (no new rooms)", self.node_id)
        self.draining = True

    def serves(self, placement: Placement) -> bool:
        """Whether this node, as it is now, holds the room so placed."""
        return self.member and serves(placement.node_id, placement.incarnation,
                                      self.node_id, self.incarnation)

    async def resolve(self, conference_id: int) -> Placement | None:
        """Where the conference's room is, for a site or console connecting here.

        Unplaced (running, the leader has not placed it yet): claimed for this node if
        it takes rooms and has the ports, else for the best node. Placed on this node's
        former self (it restarted, the room was not moved): taken back. None when no
        node can take the room."""
        async with self._database.write() as session:
            placement = await store.place(session, self._bus, self._clock.now(),
                                          conference_id, prefer=self._preferred())
            if (self.member and placement is not None and placement.node_id == self.node_id
                    and placement.incarnation != self.incarnation):
                placement = await store.adopt(session, self._bus, self._clock.now(),
                                              placement, self.incarnation) or placement
        return placement

    def _preferred(self) -> str | None:
        return self.node_id if self.member and not self.draining else None

    async def _register(self) -> None:
        async with self._database.write() as session:
            self.incarnation = await store.register_node(
                session, self.node_id, self.identity.url, self.identity.capacity_ports,
                self.draining)
        log.info("bridge node %s registered (incarnation %d, %s, %d ports)", self.node_id,
                 self.incarnation, self.identity.url, self.identity.capacity_ports)

    async def _beat_forever(self) -> None:
        while self.member:
            await asyncio.sleep(self.identity.heartbeat_seconds)
            try:
                await self.beat()
            except Exception:
                log.exception("bridge node %s: heartbeat failed", self.node_id)

    async def beat(self) -> None:
        """One heartbeat: renew the row (registering again if declared dead), then
        fence off the rooms placed elsewhere.

        Superseded (another process registered under this node id: a duplicate, or the
        successor started while this one was frozen), this process stops serving for
        good: it sends its sites to the rooms' placements and heartbeats no more.
        Registering again would make the two take the id from each other at every beat,
        each moving the rooms back."""
        rooms = self._rooms.rooms
        load = sum(len(room.connections) for room in rooms.values())
        async with self._database.write() as session:
            found = await store.heartbeat(session, self.node_id, self.incarnation, load=load,
                                          rooms=len(rooms), draining=self.draining)
        if found == "superseded":
            log.error("bridge node %s: another process registered under this node id "
                      "after this one (incarnation %d); this process stops serving rooms",
                      self.node_id, self.incarnation)
            self.member = False
        elif found == "dead":
            log.warning("bridge node %s was declared dead (incarnation %d); registering "
                        "again", self.node_id, self.incarnation)
            await self._register()
        await self.fence()

    async def fence(self) -> None:
        """Close here every room placed elsewhere, sending its sites the redirect."""
        held = list(self._rooms.rooms)
        if not held:
            return
        async with self._database.read() as session:
            placements = await store.placements_of(session, held)
        for conference_id in held:
            placement = placements.get(conference_id)
            if placement is None or self.serves(placement):
                continue
            if self.member and placement.node_id == self.node_id:
                # Still placed on this node's former self: take it back (unless the
                # leader's sweep moved it meanwhile: then the next beat redirects).
                async with self._database.write() as session:
                    if await store.adopt(session, self._bus, self._clock.now(), placement,
                                         self.incarnation):
                        continue
                continue
            log.warning("room %s was moved to node %s: fencing it off here", conference_id,
                        placement.node_id)
            await self._rooms.move_away(conference_id, redirect_message(placement))


NODE = web.AppKey("bridge_node", NodeMembership)
