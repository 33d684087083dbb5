"""Each endpoint's place in a running conference: the connect policy, persisted.

The rows live in the database so any process can answer the roll call and a
new scheduler leader carries on where the old one stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import connect_policy as policy_rules
from scheduler.connect_policy import (
    Action,
    ConnectState,
    EndpointConnection,
    Reason,
    RedialPolicy,
)
from vcbridge.core.db.models import (
    RUNNING_STATUSES,
    Attendance,
    Conference,
    Endpoint,
)
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus, NewEvent
from vcbridge.core.placement_store import placements_of


def connection_of(row: Attendance) -> EndpointConnection:
    """The connect-policy value stored in `row`."""
    return EndpointConnection(
        state=ConnectState(row.state),
        attempts=row.attempts,
        last_change=row.last_change,
        next_action_at=row.next_action_at,
        reason=Reason(row.reason),
    )


def store(row: Attendance, conn: EndpointConnection) -> None:
    """Write a connect-policy value back into `row`."""
    row.state, row.attempts, row.reason = conn.state.value, conn.attempts, conn.reason.value
    row.last_change, row.next_action_at = conn.last_change, conn.next_action_at


async def rows_of(session: AsyncSession, conference_id: int, *, lock: bool = False
                  ) -> list[Attendance]:
    """A conference's attendance rows in roster order."""
    query = (
        select(Attendance).join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Attendance.conference_id == conference_id).order_by(Endpoint.id)
    )
    if lock:
        query = query.with_for_update(of=Attendance)
    return list((await session.scalars(query)).unique())


async def close_all(session: AsyncSession, conference_id: int, now: datetime) -> None:
    """The conference ended or was cancelled: those who were there have left, those
    who never came keep why (`connect_policy.closed`)."""
    await close_many(session, [conference_id], now)


async def close_many(session: AsyncSession, conference_ids: Iterable[int], now: datetime) -> None:
    """`close_all` for several conferences: one locking read and one batched update."""
    ids = sorted(set(conference_ids))
    if not ids:
        return
    rows = (await session.execute(
        select(*_CONNECTION_COLUMNS).where(Attendance.conference_id.in_(ids))
        .order_by(Attendance.id).with_for_update()
    )).all()
    changes = []
    for row in rows:
        before = _connection(row)
        after = policy_rules.closed(before, now)
        if after != before:
            changes.append({"id": row.id, **_values(after)})
    if changes:
        await session.execute(update(Attendance), changes)


def new_rows(
    conference_id: int, endpoint_ids: Sequence[int], invite_at: datetime, now: datetime,
    online: set[int],
) -> list[dict[str, object]]:
    """Pending attendance of every participant, first invitation at `invite_at`,
    as values for one multi-row insert."""
    first = _values(policy_rules.new_connection(now, invite_at))
    return [{"conference_id": conference_id, "endpoint_id": endpoint_id, "escalated": False,
             "ready_at_open": endpoint_id in online, **first}
            for endpoint_id in endpoint_ids]


@dataclass(frozen=True)
class Invitation:
    """An invitation the tick sent, for the bridge to deliver after commit."""

    conference_id: int
    endpoint: str


# Attendance rows `tick_due` takes at most in one transaction. A tick holds
# the write lock (SQLite) and the event sequence row (PostgreSQL) that every
# lifecycle transition also needs, so each of its transactions is kept short
# (a few milliseconds); the runner calls it again for the rows left over.
TICK_LIMIT = 50


@dataclass(frozen=True)
class Ticked:
    """What one `tick_due` transaction did."""

    invitations: list[Invitation]
    # Due rows handled; `limit` of them means more may be due.
    handled: int

_CONNECTION_COLUMNS = (Attendance.id, Attendance.conference_id, Attendance.state,
                       Attendance.attempts, Attendance.last_change, Attendance.next_action_at,
                       Attendance.reason, Attendance.escalated)


def _connection(row: Row[*tuple[Any, ...]]) -> EndpointConnection:
    return EndpointConnection(ConnectState(row.state), row.attempts, row.last_change,
                              row.next_action_at, Reason(row.reason))


def _values(conn: EndpointConnection) -> dict[str, object]:
    return {"state": conn.state.value, "attempts": conn.attempts, "reason": conn.reason.value,
            "last_change": conn.last_change, "next_action_at": conn.next_action_at}


async def tick_due(
    session: AsyncSession, now: datetime, policy: RedialPolicy, bus: EventBus,
    *, limit: int = TICK_LIMIT,
) -> Ticked:
    """Apply the connect policy to the attendance rows whose next action is due.

    At most `limit` rows, oldest due first, in a fixed number of statements
    (one locking read, one batched update, one batched publish) however many
    are due."""
    rows = (await session.execute(
        select(*_CONNECTION_COLUMNS, Endpoint.code)
        .join(Conference, Conference.id == Attendance.conference_id)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Conference.status.in_(RUNNING_STATUSES), Attendance.next_action_at <= now)
        .order_by(Attendance.next_action_at, Attendance.id).limit(limit)
        .with_for_update(of=Attendance)
    )).all()
    invitations = []
    events: list[NewEvent] = []
    changes: list[dict[str, object]] = []
    # Where each conference's room is (bridge nodes), for the invitations' `bridge`.
    placements = await placements_of(session, {row.conference_id for row in rows})
    for row in rows:
        before = _connection(row)
        conn, action = policy_rules.tick(before, now, policy)
        escalated = row.escalated
        if action is Action.ESCALATE_ABSENT and not escalated:
            escalated = True
            # Staff (bookers, IT) see every event; the endpoint itself is told nothing new.
            events.append(NewEvent(EventType.ENDPOINT_ABSENT, row.conference_id, row.code,
                                   data={"attempts": conn.attempts}))
        elif action is Action.INVITE:
            conn = policy_rules.invite(conn, now, policy)
            placement = placements.get(row.conference_id)
            events.append(NewEvent(EventType.ENDPOINT_INVITED, row.conference_id, row.code,
                                   (row.code,),
                                   {"attempt": conn.attempts, "reason": conn.reason.value,
                                    "bridge": placement.ref() if placement else None}))
            invitations.append(Invitation(row.conference_id, row.code))
        if conn != before or escalated != row.escalated:
            changes.append({"id": row.id, "escalated": escalated, **_values(conn)})
    if changes:
        await session.execute(update(Attendance), changes)
    await bus.publish_many(session, now, events)
    return Ticked(invitations, len(rows))


async def drop_joined(
    session: AsyncSession, conference_ids: Iterable[int] | None, now: datetime,
    policy: RedialPolicy, bus: EventBus,
) -> list[tuple[int, str]]:
    """Sites the roll call still has "joined" in rooms nobody holds any more (the
    process carrying them was killed, or its node was lost): they are dropped, so the
    policy calls them back, and `endpoint.dropped` is published for each.

    `conference_ids`: the rooms concerned (None: every running conference, for the
    lone all-in-one process, which holds no room when it starts). Only running
    conferences are touched. Returns the (conference, endpoint code) pairs dropped."""
    query = (
        select(Attendance, Endpoint.code)
        .join(Conference, Conference.id == Attendance.conference_id)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Conference.status.in_(RUNNING_STATUSES),
               Attendance.state == ConnectState.JOINED.value)
        .order_by(Attendance.id).with_for_update(of=Attendance)
    )
    if conference_ids is not None:
        ids = sorted(set(conference_ids))
        if not ids:
            return []
        query = query.where(Attendance.conference_id.in_(ids))
    dropped = []
    events = []
    for row, code in (await session.execute(query)).all():
        after = policy_rules.dropped(connection_of(row), now, policy)
        store(row, after)
        dropped.append((row.conference_id, code))
        events.append(NewEvent(EventType.ENDPOINT_DROPPED, row.conference_id, code, (code,)))
    await bus.publish_many(session, now, events)
    return dropped


# What an endpoint's report does to its connection, and the event it publishes.
_REPORTS: dict[str, tuple[Callable[..., EndpointConnection], EventType, bool]] = {
    "joined": (policy_rules.joined, EventType.ENDPOINT_JOINED, False),
    "dropped": (policy_rules.dropped, EventType.ENDPOINT_DROPPED, True),
    "declined": (policy_rules.declined, EventType.ENDPOINT_DECLINED, True),
    "left": (policy_rules.left, EventType.ENDPOINT_LEFT, False),
}
REPORT_KINDS: Sequence[str] = tuple(_REPORTS)


async def report(
    session: AsyncSession,
    conference_id: int,
    endpoint_code: str,
    kind: str,
    now: datetime,
    policy: RedialPolicy,
    bus: EventBus,
) -> ConnectState | None:
    """Record that an endpoint joined, dropped, declined or left a running conference.

    Returns the endpoint's state afterwards, or None (and changes nothing)
    when the conference is not running or the endpoint is not one of its
    participants. A report that changes nothing publishes nothing."""
    transition, event_type, needs_policy = _REPORTS[kind]
    row = await _running_row(session, conference_id, endpoint_code)
    if row is None:
        return None
    before = connection_of(row)
    after = transition(before, now, policy) if needs_policy else transition(before, now)
    if after != before:
        store(row, after)
        await bus.publish(session, event_type, now, conference_id=conference_id,
                          endpoint=endpoint_code, audience=[endpoint_code])
    return after.state


async def call_failed(
    session: AsyncSession,
    conference_id: int,
    endpoint_code: str,
    reason: Reason,
    sip_code: int,
    sip_reason: str,
    now: datetime,
    policy: RedialPolicy,
    bus: EventBus,
) -> ConnectState | None:
    """Record that the bridge's call to a SIP room failed (`connect_policy.fail`).

    The failure is published with its SIP answer (`endpoint.call_failed`), and
    `endpoint.absent` once if this attempt decided absence. Returns the state
    afterwards, or None (nothing changed) when the conference is not running,
    the endpoint is not a participant, or no invitation was out."""
    row = await _running_row(session, conference_id, endpoint_code)
    if row is None:
        return None
    before = connection_of(row)
    after, action = policy_rules.fail(before, now, policy, reason)
    if after == before:
        return None
    store(row, after)
    events = [NewEvent(EventType.ENDPOINT_CALL_FAILED, conference_id, endpoint_code,
                       (endpoint_code,), {"reason": reason.value, "sip_code": sip_code,
                                          "sip_reason": sip_reason[:200]})]
    if action is Action.ESCALATE_ABSENT and not row.escalated:
        row.escalated = True
        events.append(NewEvent(EventType.ENDPOINT_ABSENT, conference_id, endpoint_code,
                               data={"attempts": after.attempts}))
    await bus.publish_many(session, now, events)
    return after.state


async def _running_row(session: AsyncSession, conference_id: int,
                       endpoint_code: str) -> Attendance | None:
    """The endpoint's attendance row in a running conference, locked (None: not one)."""
    return await session.scalar(
        select(Attendance).join(Conference, Conference.id == Attendance.conference_id)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Attendance.conference_id == conference_id, Endpoint.code == endpoint_code,
               Conference.status.in_(RUNNING_STATUSES))
        .with_for_update(of=Attendance)
    )
