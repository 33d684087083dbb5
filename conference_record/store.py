"""Reads what the record is made of: the attendance rows, the conference's stored events
and the audit records of its booking. A few indexed queries per conference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conference_record.timeline import AttendanceFact, AuditFact, EventFact
from vcbridge.core.db.models import (
    Attendance,
    AuditEvent,
    Conference,
    ConferenceStatus,
    Endpoint,
    Event,
)

# The events the record reads (docs/events.md).
RECORD_EVENT_TYPES = (
    "endpoint.invited", "endpoint.joined", "endpoint.dropped", "endpoint.declined",
    "endpoint.left", "endpoint.absent",
    "floor.request", "floor.cancel", "floor.grant", "floor.refuse", "floor.release",
    "floor.revoke", "floor.remove",
    "conference.ended", "conference.cancelled",
)
BOOKING_ACTIONS = ("conference.create", "conference.update", "conference.cancel")


@dataclass(frozen=True)
class Party:
    """A participant endpoint: code and names."""

    code: str
    name: str
    name_en: str


@dataclass(frozen=True)
class RecordFacts:
    """Everything stored about one conference that the record needs."""

    participants: list[Party]  # roster order
    attendance: dict[str, AttendanceFact]
    events: list[EventFact]
    audit: list[AuditFact]
    # When the room closed (ended or cancelled); None while it has not.
    closed_at: datetime | None


async def load(session: AsyncSession, conference: Conference) -> RecordFacts:
    """The stored facts of `conference` (loaded with its participants)."""
    participants = sorted((p.endpoint for p in conference.participants), key=lambda e: e.id)
    rows = (await session.execute(
        select(Endpoint.code, Attendance.state, Attendance.attempts, Attendance.escalated)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(Attendance.conference_id == conference.id)
    )).all()
    events = [
        EventFact(e.seq, e.at, e.type, e.endpoint_code, e.data or {})
        for e in await session.scalars(
            select(Event).where(Event.conference_id == conference.id,
                                Event.type.in_(RECORD_EVENT_TYPES)).order_by(Event.seq))
    ]
    return RecordFacts(
        participants=[Party(e.code, e.name, e.name_en) for e in participants],
        attendance={code: AttendanceFact(state, attempts, escalated)
                    for code, state, attempts, escalated in rows},
        events=events,
        audit=await _booking_audit(session, conference),
        closed_at=_closed_at(conference, events),
    )


async def _booking_audit(session: AsyncSession, conference: Conference) -> list[AuditFact]:
    """The audit records of this conference's booking. A series is booked in one record,
    filed under its first occurrence: that one counts for every occurrence."""
    targets = [str(conference.id)]
    if conference.series_id is not None:
        first = await session.scalar(
            select(func.min(Conference.id)).where(Conference.series_id == conference.series_id))
        if first is not None and first != conference.id:
            targets.append(str(first))
    facts = []
    for row in await session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(BOOKING_ACTIONS),
                                     AuditEvent.target_type == "conference",
                                     AuditEvent.target_id.in_(targets))
            .order_by(AuditEvent.at, AuditEvent.id)):
        if row.target_id != str(conference.id) and row.action != "conference.create":
            continue  # the first occurrence's own edits are not this one's
        facts.append(AuditFact(row.at, row.actor, row.role, row.action,
                               row.before if isinstance(row.before, dict) else None,
                               row.after if isinstance(row.after, dict) else None))
    return facts


def _closed_at(conference: Conference, events: list[EventFact]) -> datetime | None:
    if conference.status not in (ConferenceStatus.ENDED, ConferenceStatus.CANCELLED):
        return None
    closing = [e.at for e in events if e.type in ("conference.ended", "conference.cancelled")]
    if closing:
        return closing[-1]
    return conference.ended_at or conference.updated_at
