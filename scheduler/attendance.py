"""Each endpoint's place in a running conference: the connect policy, persisted.

The rows live in the database so any process can answer the roll call and a
new scheduler leader carries on where the old one stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import connect_policy as policy_rules
from scheduler.connect_policy import (
    Action,
    ConnectState,
    EndpointConnection,
    Reason,
    RedialPolicy,
)
from vcbridge.db.models import Attendance, Conference, ConferenceStatus, Endpoint
from vcbridge.events import EventBus

RUNNING = (ConferenceStatus.OPEN, ConferenceStatus.LIVE)


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


def create_rows(
    conference: Conference, invite_at: datetime, now: datetime, online: set[int]
) -> list[Attendance]:
    """Pending attendance of every participant, first invitation at `invite_at`."""
    rows = []
    for participant in conference.participants:
        row = Attendance(conference_id=conference.id, endpoint_id=participant.endpoint_id,
                         escalated=False, ready_at_open=participant.endpoint_id in online)
        store(row, policy_rules.new_connection(now, invite_at))
        rows.append(row)
    return rows


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
    """Mark everyone as having left: the conference ended or was cancelled."""
    for row in await rows_of(session, conference_id, lock=True):
        store(row, policy_rules.left(connection_of(row), now))


@dataclass(frozen=True)
class Invitation:
    """An invitation the tick sent, for the bridge to deliver after commit."""

    conference_id: int
    endpoint: str


async def tick_due(
    session: AsyncSession, now: datetime, policy: RedialPolicy, bus: EventBus
) -> list[Invitation]:
    """Apply the connect policy to every attendance row whose next action is due."""
    rows = (await session.scalars(
        select(Attendance).join(Conference, Conference.id == Attendance.conference_id)
        .where(Conference.status.in_(RUNNING), Attendance.next_action_at <= now)
        .order_by(Attendance.next_action_at, Attendance.id).with_for_update(of=Attendance)
    )).unique()
    invitations = []
    for row in rows:
        conn, action = policy_rules.tick(connection_of(row), now, policy)
        code = row.endpoint.code
        if action is Action.ESCALATE_ABSENT and not row.escalated:
            row.escalated = True
            # Staff (bookers, IT) see every event; the endpoint itself is told nothing new.
            await bus.publish(session, "endpoint.absent", now, conference_id=row.conference_id,
                              endpoint=code, data={"attempts": conn.attempts})
        elif action is Action.INVITE:
            conn = policy_rules.invite(conn, now, policy)
            await bus.publish(session, "endpoint.invited", now, conference_id=row.conference_id,
                              endpoint=code, audience=[code],
                              data={"attempt": conn.attempts, "reason": conn.reason.value})
            invitations.append(Invitation(row.conference_id, code))
        store(row, conn)
    return invitations


# What an endpoint's report does to its connection, and the event it publishes.
_REPORTS: dict[str, tuple[Callable[..., EndpointConnection], str, bool]] = {
    "joined": (policy_rules.joined, "endpoint.joined", False),
    "dropped": (policy_rules.dropped, "endpoint.dropped", True),
    "declined": (policy_rules.declined, "endpoint.declined", True),
    "left": (policy_rules.left, "endpoint.left", False),
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
    row = await session.scalar(
        select(Attendance).join(Conference, Conference.id == Attendance.conference_id)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Attendance.conference_id == conference_id, Endpoint.code == endpoint_code,
               Conference.status.in_(RUNNING))
        .with_for_update(of=Attendance)
    )
    if row is None:
        return None
    before = connection_of(row)
    after = transition(before, now, policy) if needs_policy else transition(before, now)
    if after != before:
        store(row, after)
        await bus.publish(session, event_type, now, conference_id=conference_id,
                          endpoint=endpoint_code, audience=[endpoint_code])
    return after.state
