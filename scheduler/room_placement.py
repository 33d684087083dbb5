"""The scheduler's bridge when rooms live on bridge nodes (PostgreSQL; issue 15).

`NodePlacement` implements `BridgePort` for the lifecycle on the scheduler leader:
opening a room places it on the live node with the most free site ports
(`placement_rules.choose_node`) and records it (`room_placements`, one row per
conference), announced as `conference.room_placed`; the node opens the room when
its first site connects. When this process is itself a bridge node and was
chosen, it opens the room here at once, as the one-process bridge does. Closing
is the nodes' business: each closes its room on `conference.ended` or
`conference.cancelled`; this process closes its own copy too."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from scheduler.bridge_port import BridgePort, CloseReason
from vcbridge.core import placement_store as store
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus

log = logging.getLogger(__name__)


class NodePlacement:
    """`BridgePort` over the bridge nodes; `local` is this process's own bridge (None
    for a controller without the bridge role) and `local_node` names its node."""

    def __init__(self, database: Callable[[], Database], bus: Callable[[], EventBus],
                 clock: Callable[[], Clock], local: BridgePort | None,
                 local_node: Callable[[], str | None]) -> None:
        # Callables: the database and the bus exist only once the application started.
        self._database = database
        self._bus = bus
        self._clock = clock
        self._local = local
        self._local_node = local_node

    async def open_room(self, conference_id: int, chair: str,
                        participants: Sequence[str]) -> None:
        """Place the conference's room on a node (idempotent: an existing placement
        stays); open it here when this process is that node."""
        async with self._database().write() as session:
            placement = await store.place(session, self._bus(), self._clock().now(),
                                          conference_id)
        if placement is None:
            # The leader's sweep places it as soon as a node can take it.
            log.warning("conference %s: no bridge node can take its room now", conference_id)
            return
        log.info("conference %s placed on node %s", conference_id, placement.node_id)
        if self._local is not None and placement.node_id == self._local_node():
            await self._local.open_room(conference_id, chair, participants)

    async def invite(self, conference_id: int, endpoint: str) -> None:
        """Agents act on `endpoint.invited`, which carries the room's node. When this
        process holds the room, its registry acts at once (a SIP room is dialled); other
        nodes act on the event."""
        if self._local is not None:
            await self._local.invite(conference_id, endpoint)

    async def close_room(self, conference_id: int, reason: CloseReason) -> None:
        """Close this process's copy; the node holding the room closes it on the event."""
        if self._local is not None:
            await self._local.close_room(conference_id, reason)
