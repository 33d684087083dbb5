"""Which endpoints are on line: their agent or console holds the event stream open.

Kept in the database so every process (and the scheduler leader) sees the same
answer. The monitoring package refines this with heartbeats and media stats."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.db.models import EndpointPresence


async def connected(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """Count one more open connection of an endpoint."""
    row = await session.get(EndpointPresence, endpoint_id, with_for_update=True)
    if row is None:
        session.add(EndpointPresence(endpoint_id=endpoint_id, connections=1, last_seen=now))
    else:
        row.connections, row.last_seen = row.connections + 1, now


async def disconnected(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """Count one connection fewer."""
    row = await session.get(EndpointPresence, endpoint_id, with_for_update=True)
    if row is not None:
        row.connections, row.last_seen = max(row.connections - 1, 0), now


async def seen(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """Refresh an open connection's last-seen time."""
    await session.execute(
        update(EndpointPresence).where(EndpointPresence.endpoint_id == endpoint_id)
        .values(last_seen=now)
    )


async def online(
    session: AsyncSession, endpoint_ids: Iterable[int], now: datetime, stale_after: timedelta
) -> set[int]:
    """The endpoints among `endpoint_ids` with a connection seen within `stale_after`.

    A process killed without closing its sockets leaves a count behind; the
    last-seen time stops moving, so such an endpoint turns offline anyway."""
    rows = await session.scalars(
        select(EndpointPresence.endpoint_id).where(
            EndpointPresence.endpoint_id.in_(list(endpoint_ids)),
            EndpointPresence.connections > 0,
            EndpointPresence.last_seen > now - stale_after,
        )
    )
    return set(rows)
