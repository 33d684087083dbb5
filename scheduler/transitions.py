"""The lifecycle's database side: bring conferences up to date with the clock.

`advance_many` is what every timer runs. It locks the conferences' rows,
reads them as they are now, asks the pure state machine (`lifecycle.py`) what
is due, applies it and publishes the events, all in one transaction, in a
fixed number of statements however many conferences are due at once. Running
it twice, late, after a restart, or for a cancelled conference is harmless.

Only the conference rows are locked, not the global booking lock. That is
safe because a transition changes nothing a conflict check reads except the
status, and only from one active status to another (open, live) or, at or
after the end, to ended: a booking checked before or after it finds the same
conflicts, as the ended conference's busy time is over. What a transition
must not race with is a change to the same conference (an edit, an
extension, a cancellation): those lock the same row
(`booking_store.lock_conferences`)
after the booking lock, so either the change commits first and the
transition reads the new times or status, or the transition commits first
and the change sees the new status. No transaction takes the booking lock
after a conference row, so the two locks cannot deadlock. On SQLite a write
transaction holds the whole database from its BEGIN IMMEDIATE anyway."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import attendance
from scheduler.lifecycle import (
    TERMINAL_STATUSES,
    Timeline,
    Transition,
    apply,
    due_transitions,
    next_transition,
)
from vcbridge.core.clock import Clock
from vcbridge.core.db.models import Attendance, Conference, ConferenceStatus, Endpoint, Participant
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus, NewEvent
from vcbridge.core.presence import online


@dataclass(frozen=True)
class LifecycleSettings:
    """Timing settings of the lifecycle."""

    warn_minutes: int
    presence_stale: timedelta


@dataclass
class Advanced:
    """What `advance` did, for the caller to act on after commit."""

    conference_id: int
    applied: list[Transition] = field(default_factory=list)
    # Participant codes, in booking order, and the chair's; filled when a transition
    # was applied.
    participants: list[str] = field(default_factory=list)
    chair: str = ""
    # The next timer to set, if the conference is still running or scheduled.
    next: tuple[Transition, datetime] | None = None


# The columns the lifecycle needs: no title, agenda, participants or joins.
LIFECYCLE_COLUMNS = (Conference.id, Conference.status, Conference.start, Conference.end,
                     Conference.setup_minutes, Conference.warned)
LifecycleRow = Row[int, ConferenceStatus, datetime, datetime, int, bool]


def timeline_of(conference: Conference | LifecycleRow, settings: LifecycleSettings) -> Timeline:
    """The lifecycle timeline of a stored conference (an ORM object or a row of
    `LIFECYCLE_COLUMNS`)."""
    return Timeline(conference.start, conference.end, conference.setup_minutes,
                    settings.warn_minutes)


def _due_at(transition: Transition, timeline: Timeline) -> datetime:
    return {
        Transition.OPEN: timeline.open_at,
        Transition.LIVE: timeline.live_at,
        Transition.WARN: timeline.warn_at,
        Transition.END: timeline.end_at,
    }[transition]


_EVENT = {
    Transition.OPEN: EventType.CONFERENCE_OPENED,
    Transition.LIVE: EventType.CONFERENCE_LIVE,
    Transition.WARN: EventType.CONFERENCE_ENDING_SOON,
    Transition.END: EventType.CONFERENCE_ENDED,
}


async def advance(
    session: AsyncSession,
    conference_id: int,
    clock: Clock,
    settings: LifecycleSettings,
    bus: EventBus,
) -> Advanced:
    """Apply every transition due now to one conference (idempotent)."""
    return (await advance_many(session, [conference_id], clock, settings, bus))[0]


async def advance_many(
    session: AsyncSession,
    conference_ids: Sequence[int],
    clock: Clock,
    settings: LifecycleSettings,
    bus: EventBus,
) -> list[Advanced]:
    """Apply every transition due now to each conference (idempotent); one result per
    distinct id, in id order (an unknown id gets an empty result).

    The clock is read after the rows are locked, so a booking change that
    committed while we waited is seen, and lateness includes the wait."""
    ids = sorted(set(conference_ids))
    rows = (await session.execute(
        select(*LIFECYCLE_COLUMNS).where(Conference.id.in_(ids))
        .order_by(Conference.id).with_for_update()
    )).all()
    now = clock.now()
    results = {cid: Advanced(cid) for cid in ids}
    work: list[tuple[LifecycleRow, Timeline, list[Transition]]] = []
    for row in rows:
        if row.status in TERMINAL_STATUSES:
            continue
        timeline = timeline_of(row, settings)
        due = due_transitions(row.status, timeline, now, row.warned)
        if due:
            work.append((row, timeline, due))
        else:
            results[row.id].next = next_transition(row.status, timeline, row.warned, now=now)
    if not work:
        return list(results.values())

    members, chairs = await _members(session, [row.id for row, _, _ in work])
    opening = [row.id for row, _, due in work if Transition.OPEN in due]
    up = await online(session, {e for cid in opening for e, _ in members[cid]}, now,
                      settings.presence_stale) if opening else set()

    new_attendance: list[dict[str, object]] = []
    ending: list[int] = []
    changes: list[dict[str, object]] = []
    events: list[NewEvent] = []
    for row, timeline, due in work:
        cid = row.id
        result = results[cid]
        codes = [code for _, code in members[cid]]
        result.participants, result.chair = codes, chairs.get(cid, "")
        status, warned = row.status, row.warned
        change: dict[str, object] = {"id": cid}
        for transition in due:
            status = apply(status, transition)
            late_ms = round((now - _due_at(transition, timeline)).total_seconds() * 1000)
            data: dict[str, object] = {"late_ms": late_ms}
            if transition is Transition.OPEN:
                change["opened_at"] = now
                ids_of = [endpoint_id for endpoint_id, _ in members[cid]]
                new_attendance += attendance.new_rows(cid, ids_of, max(timeline.live_at, now),
                                                      now, up)
                data["readiness"] = _readiness(members[cid], up)
            elif transition is Transition.LIVE:
                change["live_at"] = now
            elif transition is Transition.WARN:
                warned = change["warned"] = True
                data["minutes_left"] = max(
                    round((timeline.end_at - now).total_seconds() / 60), 0)
            elif transition is Transition.END:
                change["ended_at"] = now
                ending.append(cid)
            events.append(NewEvent(_EVENT[transition], cid, None, tuple(codes), data))
            result.applied.append(transition)
        change["status"] = status
        changes.append(change)
        result.next = next_transition(status, timeline, warned, now=now)

    if new_attendance:
        await session.execute(insert(Attendance), new_attendance)
    # Attendance rows are locked before the event sequence, as the connect tick does.
    await attendance.close_many(session, ending, now)
    await session.execute(update(Conference), changes)
    await bus.publish_many(session, now, events)
    return list(results.values())


async def _members(session: AsyncSession, conference_ids: list[int]
                   ) -> tuple[dict[int, list[tuple[int, str]]], dict[int, str]]:
    """Each conference's participants ((endpoint id, code), booking order) and its chair's
    code, in one read."""
    members: dict[int, list[tuple[int, str]]] = {cid: [] for cid in conference_ids}
    chairs: dict[int, str] = {}
    for cid, endpoint_id, code, is_chair in (await session.execute(
        select(Participant.conference_id, Participant.endpoint_id, Endpoint.code,
               Participant.endpoint_id == Conference.chair_endpoint_id)
        .join(Endpoint, Endpoint.id == Participant.endpoint_id)
        .join(Conference, Conference.id == Participant.conference_id)
        .where(Participant.conference_id.in_(conference_ids)).order_by(Participant.id)
    )).all():
        members[cid].append((endpoint_id, code))
        if is_chair:
            chairs[cid] = code
    return members, chairs


def _readiness(members: list[tuple[int, str]], up: set[int]) -> dict[str, object]:
    """The readiness check at the opening: who is on line."""
    ready = [code for endpoint_id, code in members if endpoint_id in up]
    offline = [code for endpoint_id, code in members if endpoint_id not in up]
    total = len(members)
    return {
        "ready": ready,
        "offline": offline,
        "summary_vi": f"{len(ready)}/{total} điểm cầu sẵn sàng"
        + (f"; chưa trực tuyến: {', '.join(offline)}" if offline else ""),
        "summary_en": f"{len(ready)}/{total} endpoints ready"
        + (f"; offline: {', '.join(offline)}" if offline else ""),
    }

