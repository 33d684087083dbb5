"""Bridge nodes and room placements in the database (PostgreSQL; issue 15).

Shared by the scheduler (the leader places rooms, declares nodes dead, moves
their rooms) and the bridge (a node registers, heartbeats, claims an unplaced
room, fences itself). The choice itself is `placement_rules.choose_node`; this
module only reads and writes. Every time is the database's own clock
(`now()`), so the machines' clocks need not agree.

One room per conference: `room_placements.conference_id` is the primary key, a
first placement is an INSERT ... ON CONFLICT DO NOTHING (the loser of a race
reads the winner's row), and a move is an UPDATE guarded by the generation it
read, so two movers cannot both move a room."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vcbridge.core.db.models import (
    RUNNING_STATUSES,
    BridgeNode,
    Conference,
    Endpoint,
    Participant,
    RoomPlacement,
)
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus, NewEvent
from vcbridge.core.placement_rules import NodeView, choose_node

# What a node's heartbeat found (`heartbeat`).
Beat = Literal["alive", "dead", "superseded"]


@dataclass(frozen=True)
class Placement:
    """Where a conference's room is."""

    conference_id: int
    node_id: str
    incarnation: int
    generation: int
    url: str  # the node's advertised base URL

    def ref(self) -> dict[str, Any]:
        """The `bridge` object of the API and the events: node, url, generation."""
        return {"node": self.node_id, "url": self.url, "generation": self.generation}


_PLACEMENT = (RoomPlacement.conference_id, RoomPlacement.node_id, RoomPlacement.incarnation,
              RoomPlacement.generation, BridgeNode.advertise_url)


def _placement(row: Any) -> Placement:
    return Placement(row.conference_id, row.node_id, row.incarnation, row.generation,
                     row.advertise_url or "")


# -- a node's own row ------------------------------------------------------------------

async def register_node(session: AsyncSession, node_id: str, url: str, capacity: int,
                        draining: bool) -> int:
    """Register (or re-register) a node as live; returns its new incarnation (1 for a
    node never seen, one more than before otherwise)."""
    values = {"advertise_url": url, "capacity_ports": capacity, "draining": draining,
              "state": "draining" if draining else "live", "heartbeat_at": func.now(),
              "started_at": func.now(), "load_ports": 0, "rooms": 0}
    statement = pg_insert(BridgeNode).values(id=node_id, incarnation=1, **values)
    upsert = statement.on_conflict_do_update(
        index_elements=[BridgeNode.id],
        set_={**values, "incarnation": BridgeNode.incarnation + 1},
    ).returning(BridgeNode.incarnation)
    return int((await session.execute(upsert)).scalar_one())


async def heartbeat(session: AsyncSession, node_id: str, incarnation: int, *, load: int,
                    rooms: int, draining: bool) -> Beat:
    """Renew a node's heartbeat. "dead" when its row says dead (the node was declared
    dead: it must register again); "superseded" when a later incarnation holds the row
    (another process registered under this node id: this one must stop serving)."""
    updated = await session.scalar(
        update(BridgeNode)
        .where(BridgeNode.id == node_id, BridgeNode.incarnation == incarnation,
               BridgeNode.state != "dead")
        .values(heartbeat_at=func.now(), load_ports=load, rooms=rooms, draining=draining,
                state="draining" if draining else "live")
        .returning(BridgeNode.id)
    )
    if updated is not None:
        return "alive"
    current = await session.scalar(select(BridgeNode.incarnation)
                                   .where(BridgeNode.id == node_id))
    return "superseded" if current is not None and current > incarnation else "dead"


async def leave(session: AsyncSession, node_id: str, incarnation: int) -> None:
    """A node stopping cleanly: declared dead at once, so its rooms move at the next
    sweep instead of after `node_dead_after_seconds`."""
    await session.execute(
        update(BridgeNode).where(BridgeNode.id == node_id,
                                 BridgeNode.incarnation == incarnation)
        .values(state="dead", heartbeat_at=func.now() - timedelta(days=1)))


# -- reading -----------------------------------------------------------------------------

async def node_views(session: AsyncSession) -> list[NodeView]:
    """Every registered node with the site ports its running rooms hold."""
    reserved = (
        select(RoomPlacement.node_id, func.count(Participant.endpoint_id).label("ports"),
               func.count(func.distinct(RoomPlacement.conference_id)).label("rooms"))
        .join(Conference, Conference.id == RoomPlacement.conference_id)
        .join(Participant, Participant.conference_id == RoomPlacement.conference_id)
        .where(Conference.status.in_(RUNNING_STATUSES))
        .group_by(RoomPlacement.node_id).subquery()
    )
    rows = (await session.execute(
        select(BridgeNode.id, BridgeNode.state, BridgeNode.capacity_ports,
               func.coalesce(reserved.c.ports, 0), func.coalesce(reserved.c.rooms, 0))
        .outerjoin(reserved, reserved.c.node_id == BridgeNode.id)
        .order_by(BridgeNode.id)
    )).all()
    return [NodeView(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


async def placement_of(session: AsyncSession, conference_id: int) -> Placement | None:
    """Where the conference's room is, or None (not placed)."""
    return (await placements_of(session, [conference_id])).get(conference_id)


async def placements_of(session: AsyncSession, conference_ids: Iterable[int]
                        ) -> dict[int, Placement]:
    """`placement_of` for several conferences (absent: not placed)."""
    ids = sorted(set(conference_ids))
    if not ids:
        return {}
    rows = (await session.execute(
        select(*_PLACEMENT).outerjoin(BridgeNode, BridgeNode.id == RoomPlacement.node_id)
        .where(RoomPlacement.conference_id.in_(ids))
    )).all()
    return {row.conference_id: _placement(row) for row in rows}


async def node_url(session: AsyncSession, node_id: str) -> str:
    """A node's advertised URL ("" for an unknown node)."""
    return str(await session.scalar(
        select(BridgeNode.advertise_url).where(BridgeNode.id == node_id)) or "")


async def _ports_of(session: AsyncSession, conference_id: int) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(Participant)
        .where(Participant.conference_id == conference_id)) or 0)


async def _participants(session: AsyncSession, conference_id: int) -> list[str]:
    return list(await session.scalars(
        select(Endpoint.code).join(Participant, Participant.endpoint_id == Endpoint.id)
        .where(Participant.conference_id == conference_id)))


# -- placing and moving ------------------------------------------------------------------

async def place(session: AsyncSession, bus: EventBus, now: datetime, conference_id: int,
                *, prefer: str | None = None) -> Placement | None:
    """The conference's placement: the existing one, or a new one on `prefer` (when that
    node takes rooms and has the ports) or else on the best node (`choose_node`),
    announced with `conference.room_placed`. None when it is not placed and no node can
    take it (every node full, draining or dead)."""
    existing = await placement_of(session, conference_id)
    if existing is not None:
        return existing
    ports = await _ports_of(session, conference_id)
    views = await node_views(session)
    chosen = None
    if prefer is not None:
        chosen = choose_node([v for v in views if v.id == prefer], ports)
    chosen = chosen or choose_node(views, ports)
    if chosen is None:
        return None
    incarnation = await session.scalar(
        select(BridgeNode.incarnation).where(BridgeNode.id == chosen.id))
    inserted = await session.scalar(
        pg_insert(RoomPlacement).values(
            conference_id=conference_id, node_id=chosen.id, incarnation=incarnation,
            generation=1, placed_at=now)
        .on_conflict_do_nothing(index_elements=[RoomPlacement.conference_id])
        .returning(RoomPlacement.conference_id))
    placement = await placement_of(session, conference_id)
    if inserted is not None and placement is not None:
        await _announce(session, bus, now, placement, None)
    return placement


async def move(session: AsyncSession, bus: EventBus, now: datetime, old: Placement,
               exclude: frozenset[str] = frozenset()) -> Placement | None:
    """Move a room off its node (declared dead, or its placement's incarnation is gone)
    to the best live node: generation + 1, `conference.room_placed` with
    `data.previous`. None when no node can take it now (it stays, and the next sweep
    tries again) or when someone else moved it first."""
    views = await node_views(session)
    chosen = choose_node(views, await _ports_of(session, old.conference_id), exclude)
    if chosen is None:
        return None
    incarnation = await session.scalar(
        select(BridgeNode.incarnation).where(BridgeNode.id == chosen.id))
    moved = await session.scalar(
        update(RoomPlacement)
        .where(RoomPlacement.conference_id == old.conference_id,
               RoomPlacement.generation == old.generation)
        .values(node_id=chosen.id, incarnation=incarnation, generation=old.generation + 1,
                placed_at=now)
        .returning(RoomPlacement.conference_id))
    if moved is None:
        return None
    placement = await placement_of(session, old.conference_id)
    assert placement is not None
    await _announce(session, bus, now, placement, old.node_id)
    return placement


async def adopt(session: AsyncSession, bus: EventBus, now: datetime, old: Placement,
                incarnation: int) -> Placement | None:
    """A node that restarted (a new incarnation) takes back a room still placed on its
    former self: generation + 1, announced. None when someone moved it first."""
    adopted = await session.scalar(
        update(RoomPlacement)
        .where(RoomPlacement.conference_id == old.conference_id,
               RoomPlacement.node_id == old.node_id,
               RoomPlacement.generation == old.generation)
        .values(incarnation=incarnation, generation=old.generation + 1, placed_at=now)
        .returning(RoomPlacement.conference_id))
    if adopted is None:
        return None
    placement = await placement_of(session, old.conference_id)
    assert placement is not None
    await _announce(session, bus, now, placement, old.node_id)
    return placement


async def _announce(session: AsyncSession, bus: EventBus, now: datetime,
                    placement: Placement, previous: str | None) -> None:
    data: dict[str, Any] = placement.ref()
    if previous is not None:
        data["previous"] = previous
    await bus.publish(session, EventType.CONFERENCE_ROOM_PLACED, now,
                      conference_id=placement.conference_id,
                      audience=await _participants(session, placement.conference_id),
                      data=data)


# -- the leader's sweep --------------------------------------------------------------------

async def declare_dead(session: AsyncSession, dead_after: float) -> list[NewEvent]:
    """Mark the nodes silent for more than `dead_after` seconds dead; returns the
    `bridge_node.dead` event of each (naming the running conferences placed on it),
    for the caller to publish once it holds every row lock it needs: publishing takes
    the event sequence's row lock, and taking row locks after it would invert the
    order the other writers use (rows, then the sequence) and deadlock."""
    dead = (await session.execute(
        update(BridgeNode)
        .where(BridgeNode.state != "dead",
               BridgeNode.heartbeat_at < func.now() - timedelta(seconds=dead_after))
        .values(state="dead")
        .returning(BridgeNode.id, BridgeNode.incarnation)
    )).all()
    events = []
    for node_id, incarnation in dead:
        rooms = list(await session.scalars(
            select(RoomPlacement.conference_id)
            .join(Conference, Conference.id == RoomPlacement.conference_id)
            .where(RoomPlacement.node_id == node_id,
                   Conference.status.in_(RUNNING_STATUSES))
            .order_by(RoomPlacement.conference_id)))
        events.append(NewEvent(EventType.BRIDGE_NODE_DEAD, data={
            "node": node_id, "incarnation": incarnation, "rooms": rooms}))
    return events


async def orphaned_placements(session: AsyncSession) -> list[Placement]:
    """Running conferences placed on a node that is dead, unknown, or no longer the
    incarnation the room was placed on (it restarted): these rooms must move."""
    node = aliased(BridgeNode)
    alive = select(node.id).where(
        node.id == RoomPlacement.node_id, node.incarnation == RoomPlacement.incarnation,
        node.state != "dead").correlate(RoomPlacement).exists()
    rows = (await session.execute(
        select(*_PLACEMENT)
        .outerjoin(BridgeNode, BridgeNode.id == RoomPlacement.node_id)
        .join(Conference, Conference.id == RoomPlacement.conference_id)
        .where(Conference.status.in_(RUNNING_STATUSES), ~alive)
        .order_by(RoomPlacement.conference_id)
        .with_for_update(of=RoomPlacement)
    )).all()
    return [_placement(r) for r in rows]


async def unplaced_running(session: AsyncSession) -> Sequence[int]:
    """Running conferences with no placement (the leader died between opening one and
    placing its room, or no node could take it then)."""
    return list(await session.scalars(
        select(Conference.id)
        .where(Conference.status.in_(RUNNING_STATUSES),
               ~exists().where(RoomPlacement.conference_id == Conference.id))
        .order_by(Conference.id)))

