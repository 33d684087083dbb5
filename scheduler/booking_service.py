"""Booking use cases: create, edit and cancel conferences, atomically.

Each function runs inside the caller's write transaction: it takes the
booking lock first, checks every rule against the current rows, then writes
the change and its audit record together, or raises and writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.attendance import close_all
from scheduler.booking_rules import (
    BookingLimits,
    CapacityProblem,
    EndpointConflict,
    Slot,
    capacity_problem,
    endpoint_conflicts,
    time_problems,
)
from scheduler.booking_store import (
    booked_overlapping,
    endpoints_by_code,
    lock_bookings,
    lock_conferences,
)
from scheduler.conference_schemas import ConferenceCreate, ConferenceUpdate, Scope, conference_json
from scheduler.recurrence import RecurrenceError, normalise
from scheduler.recurrence_worker import RecurrenceWorkers
from scheduler.responses import (
    MAX_LISTED_CONFLICTS,
    Capacity,
    ConflictDetails,
    ConflictingConference,
)
from vcbridge.core.audit import Actor, record
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import (
    ACTIVE_STATUSES,
    RUNNING_STATUSES,
    Conference,
    ConferenceSeries,
    ConferenceStatus,
    Endpoint,
    Participant,
)
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus, NewEvent
from vcbridge.core.http.render import body_of

# A long series is written (and read for an edit) this many occurrences at a time:
# one flush of 2,000 occurrences of 31 sites held the event loop for ~1.5 s.
_FLUSH_EVERY = 50
# What may change once the room is open: nothing that moves people or the start.
RUNNING_EDITABLE = frozenset({"title", "agenda", "end"})


@dataclass(frozen=True)
class BookingPolicy:
    """What the booking use cases need to know besides the request."""

    limits: BookingLimits
    zone: ZoneInfo
    default_setup_minutes: int


class BookingInvalid(Exception):
    """The request breaks a rule (422); `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BookingConflict(Exception):
    """Endpoints are taken or the bridge is full (409); nothing was written."""

    def __init__(
        self, conflicts: list[EndpointConflict], capacity: CapacityProblem | None, zone: ZoneInfo
    ) -> None:
        self.conflicts = conflicts
        self.capacity = capacity
        self.zone = zone
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = []
        if self.conflicts:
            taken = sorted({code for c in self.conflicts for code in c.endpoints})
            ids = ", ".join(f"#{c.conference.id}" for c in self.conflicts[:5])
            parts.append(f"endpoints already booked ({', '.join(taken)}) in conference {ids}")
        if self.capacity:
            parts.append(self.capacity.reason)
        return "; ".join(parts)

    def details(self) -> dict[str, Any]:
        """The 409 details: the earliest conflicting conferences and the endpoints each
        holds, and how many conflict in all."""
        capacity = self.capacity
        details = ConflictDetails(
            conflicts=[
                ConflictingConference(
                    conference=c.conference.id, title=c.conference.title,
                    start=to_local_iso(c.conference.start, self.zone),
                    end=to_local_iso(c.conference.end, self.zone), endpoints=list(c.endpoints),
                )
                for c in self.conflicts[:MAX_LISTED_CONFLICTS]
            ],
            conflicts_total=len(self.conflicts),
            capacity=None if capacity is None else Capacity(
                at=to_local_iso(capacity.at, self.zone), conferences=capacity.conferences,
                ports=capacity.ports, reason=capacity.reason,
            ),
        )
        body: dict[str, Any] = body_of(details)
        return body


class BookingStateError(Exception):
    """The conference is in a state that forbids the change (409)."""


async def _resolve_endpoints(
    session: AsyncSession, chair: str, participants: list[str]
) -> dict[str, Endpoint]:
    problems = []
    if chair not in participants:
        problems.append(f"the chair {chair} must be among the participants")
    found = await endpoints_by_code(session, participants)
    unknown = [c for c in participants if c not in found]
    if unknown:
        problems.append(f"unknown or retired endpoints: {', '.join(unknown)}")
    if problems:
        raise BookingInvalid(problems)
    return found


async def _check_free(
    session: AsyncSession,
    slots: list[Slot],
    codes: list[str],
    policy: BookingPolicy,
    exclude_ids: set[int] | None = None,
) -> None:
    booked = await booked_overlapping(session, slots, exclude_ids or set())
    conflicts = endpoint_conflicts(slots, codes, booked)
    capacity = capacity_problem(slots, len(codes), booked, policy.limits)
    if conflicts or capacity:
        raise BookingConflict(conflicts, capacity, policy.zone)


def _slot_problems(slots: list[Slot], now: datetime, limits: BookingLimits) -> list[str]:
    problems: list[str] = []
    for slot in slots:
        for problem in time_problems(slot, now, limits):
            if problem not in problems:
                problems.append(problem)
    return problems


def _first_slot(request: ConferenceCreate, now: datetime, policy: BookingPolicy) -> Slot:
    setup = (
        request.setup_minutes
        if request.setup_minutes is not None
        else policy.default_setup_minutes
    )
    first = Slot(request.start, request.end, setup)
    problems = time_problems(first, now, policy.limits)
    if problems:
        raise BookingInvalid(problems)
    return first


async def expand_series(
    request: ConferenceCreate, now: datetime, policy: BookingPolicy, workers: RecurrenceWorkers
) -> list[datetime] | None:
    """The starts of every occurrence of a series request (None for a single conference).

    Called before the write transaction: the expansion runs in a worker process
    within a time budget, and nobody waits for the booking lock meanwhile."""
    _first_slot(request, now, policy)
    if request.rrule is None:
        return None
    try:
        return await workers.expand(
            request.rrule, request.start, request.end - request.start, policy.zone,
            max_occurrences=policy.limits.max_occurrences,
            horizon_end=now + policy.limits.horizon,
        )
    except RecurrenceError as exc:
        raise BookingInvalid([str(exc)]) from None


async def _plan_create(
    session: AsyncSession,
    request: ConferenceCreate,
    now: datetime,
    policy: BookingPolicy,
    starts: Sequence[datetime] | None,
    *,
    lock: bool,
) -> tuple[list[Slot], dict[str, Endpoint]]:
    """Every check of a booking: its slots and its endpoints, or BookingInvalid or
    BookingConflict. With `lock`, under the booking lock (a real booking)."""
    first = _first_slot(request, now, policy)
    if request.rrule is not None and not starts:
        raise ValueError("a series is booked with the starts from expand_series")
    duration = request.end - request.start
    slots = [Slot(s, s + duration, first.setup_minutes) for s in (starts or [first.start])]
    if lock:
        await lock_bookings(session)
    endpoints = await _resolve_endpoints(session, request.chair, request.participants)
    await _check_free(session, slots, request.participants, policy)
    return slots, endpoints


async def check_create(
    session: AsyncSession,
    request: ConferenceCreate,
    now: datetime,
    policy: BookingPolicy,
    starts: Sequence[datetime] | None = None,
) -> int:
    """A dry run of `create_conference`: every check it makes, nothing written (no row,
    no audit record, no event) and no lock taken; returns the number of occurrences.

    Without the lock the answer is advice: a booking committed meanwhile is caught by
    the real request, which checks again under the lock."""
    slots, _ = await _plan_create(session, request, now, policy, starts, lock=False)
    return len(slots)


async def create_conference(
    session: AsyncSession,
    request: ConferenceCreate,
    actor: Actor,
    now: datetime,
    policy: BookingPolicy,
    bus: EventBus,
    starts: Sequence[datetime] | None = None,
) -> list[Conference]:
    """Book a conference (every occurrence of a series); returns the rows created.

    A series needs `starts`, its occurrences from `expand_series`."""
    slots, endpoints = await _plan_create(session, request, now, policy, starts, lock=True)

    series = None
    if request.rrule is not None:
        series = ConferenceSeries(
            rrule=normalise(request.rrule), created_at=now, created_by=actor.name
        )
        session.add(series)
    created = []
    for slot in slots:
        conference = Conference(
            series=series,
            title=request.title,
            agenda=request.agenda,
            chair=endpoints[request.chair],
            start=slot.start,
            end=slot.end,
            setup_minutes=slot.setup_minutes,
            busy_start=slot.busy_start,
            status=ConferenceStatus.SCHEDULED,
            revision=0,
            created_at=now,
            created_by=actor.name,
            updated_at=now,
            updated_by=actor.name,
            participants=[Participant(endpoint=endpoints[c]) for c in request.participants],
        )
        session.add(conference)
        created.append(conference)
        if len(created) % _FLUSH_EVERY == 0:
            await session.flush()  # in steps: the event loop gets its turn between them
    await session.flush()
    after = conference_json(created[0], policy.zone)
    if series is not None:
        after["occurrences"] = [c.id for c in created]
    await record(session, actor, "conference.create", "conference", created[0].id, None,
                 after, now)
    await bus.publish_many(session, now, [  # one statement for every occurrence
        NewEvent(EventType.CONFERENCE_BOOKED, conference.id, None, tuple(request.participants),
                 {"start": to_local_iso(conference.start, policy.zone)})
        for conference in created
    ])
    return created


async def _affected(
    session: AsyncSession, conference: Conference, scope: Scope, statuses: tuple[str, ...],
    *, lock: bool = True,
) -> list[Conference]:
    if scope == "this" or conference.series_id is None:
        return [conference]
    # Locked like `conference` (see update_conference), then read as they are now, a
    # batch at a time: loading 2,000 occurrences of 31 sites at once held the loop ~1 s.
    query = (
        select(Conference.id)
        .where(
            Conference.series_id == conference.series_id,
            Conference.start >= conference.start,
            Conference.status.in_(statuses),
        )
        .order_by(Conference.start)
    )
    ids = list(await session.scalars(query.with_for_update() if lock else query))
    rows: list[Conference] = []
    for first in range(0, len(ids), _FLUSH_EVERY):
        rows += await session.scalars(
            select(Conference)
            .where(Conference.id.in_(ids[first:first + _FLUSH_EVERY]))
            .order_by(Conference.start)
            .execution_options(populate_existing=True)
        )
    return rows


@dataclass
class _UpdatePlan:
    """A checked edit: the rows it changes and, for each, its new slot."""

    fields: dict[str, Any]
    rows: list[Conference]
    slots: list[Slot]
    endpoints: dict[str, Endpoint]
    chair: str
    participants: list[str]
    running: bool  # an open or live conference: title, agenda, a new end only


async def _plan_update(
    session: AsyncSession,
    conference: Conference,
    change: ConferenceUpdate,
    scope: Scope,
    now: datetime,
    policy: BookingPolicy,
    *,
    lock: bool,
) -> _UpdatePlan:
    """Every check of an edit, or BookingInvalid, BookingConflict or BookingStateError.
    With `lock`, under the booking lock and the conference's row lock (a real edit)."""
    if lock:
        await lock_bookings(session)
        # The row lock serialises this change with the lifecycle's transitions of the
        # conference (which take only that lock); the refresh then reads its status.
        await lock_conferences(session, [conference.id])
        await session.refresh(conference)
    fields = change.model_dump(exclude_unset=True)
    if not fields:
        raise BookingInvalid(["nothing to change"])
    if any(v is None for v in fields.values()):
        raise BookingInvalid(["fields cannot be set to null"])
    if conference.status in RUNNING_STATUSES:
        await _check_running(session, conference, fields, scope, now, policy)
        return _UpdatePlan(fields, [conference], [], {}, conference.chair.code, [], True)
    if conference.status is not ConferenceStatus.SCHEDULED:
        raise BookingStateError(
            f"conference {conference.id} is {conference.status.value}; it can no longer "
            "be edited"
        )
    rows = await _affected(session, conference, scope, (ConferenceStatus.SCHEDULED,),
                           lock=lock)

    participants = change.participants or [p.endpoint.code for p in conference.participants]
    chair = change.chair or conference.chair.code
    endpoints = await _resolve_endpoints(session, chair, participants)

    new_start = change.start or conference.start
    shift = new_start - conference.start
    duration = (change.end or (conference.end + shift)) - new_start
    setup = change.setup_minutes if change.setup_minutes is not None else None
    slots = []
    for row in rows:
        start = row.start + shift
        end = start + duration if ("start" in fields or "end" in fields) else row.end
        slots.append(Slot(start, end, setup if setup is not None else row.setup_minutes))
    times_changed = {"start", "end", "setup_minutes"} & fields.keys()
    if times_changed:
        problems = _slot_problems(slots, now, policy.limits)
        if problems:
            raise BookingInvalid(problems)
    if times_changed or "participants" in fields:
        await _check_free(session, slots, participants, policy, {r.id for r in rows})
    return _UpdatePlan(fields, rows, slots, endpoints, chair, participants, False)


async def check_update(
    session: AsyncSession,
    conference: Conference,
    change: ConferenceUpdate,
    scope: Scope,
    now: datetime,
    policy: BookingPolicy,
) -> int:
    """A dry run of `update_conference`: every check it makes, nothing written and no
    lock taken (see `check_create`); returns the number of conferences it would change."""
    plan = await _plan_update(session, conference, change, scope, now, policy, lock=False)
    return len(plan.rows)


async def update_conference(
    session: AsyncSession,
    conference: Conference,
    change: ConferenceUpdate,
    scope: Scope,
    actor: Actor,
    now: datetime,
    policy: BookingPolicy,
    bus: EventBus,
) -> list[Conference]:
    """Edit one conference, or it and the rest of its series; returns the rows changed.

    A new start moves every affected occurrence by the same amount; a new
    start or end sets the duration of each. A conference whose room is open
    or live only takes a new title, agenda or end (an extension)."""
    plan = await _plan_update(session, conference, change, scope, now, policy, lock=True)
    fields = plan.fields
    if plan.running:
        await _apply_running(session, conference, fields, actor, now, policy, bus)
        return [conference]
    for row, slot in zip(plan.rows, plan.slots, strict=True):
        before = conference_json(row, policy.zone)
        row.start, row.end, row.setup_minutes = slot.start, slot.end, slot.setup_minutes
        row.busy_start = slot.busy_start
        if "title" in fields:
            row.title = fields["title"]
        if "agenda" in fields:
            row.agenda = fields["agenda"]
        row.chair = plan.endpoints[plan.chair]
        if "participants" in fields:
            current = {p.endpoint.code: p for p in row.participants}
            row.participants = [
                current.get(c) or Participant(endpoint=plan.endpoints[c])
                for c in plan.participants
            ]
        await _record_update(session, row, before, actor, now, policy, bus)
    return plan.rows


async def _record_update(
    session: AsyncSession,
    row: Conference,
    before: dict[str, Any],
    actor: Actor,
    now: datetime,
    policy: BookingPolicy,
    bus: EventBus,
) -> None:
    row.updated_at, row.updated_by = now, actor.name
    row.revision += 1
    await session.flush()
    after = conference_json(row, policy.zone)
    await record(session, actor, "conference.update", "conference", row.id, before, after, now)
    await bus.publish(session, EventType.CONFERENCE_UPDATED, now, conference_id=row.id,
                      audience=after["participants"],
                      data={"changed": sorted(k for k in after if after[k] != before[k])})


async def _check_running(
    session: AsyncSession,
    conference: Conference,
    fields: dict[str, Any],
    scope: Scope,
    now: datetime,
    policy: BookingPolicy,
) -> None:
    """The checks of an edit of an open or live conference: title, agenda, or a later
    end if every participant and the bridge are free that long."""
    state = conference.status.value
    if scope != "this":
        raise BookingStateError(f"conference {conference.id} is {state}: edit it alone "
                                "(scope=this), then the rest of the series")
    if refused := sorted(fields.keys() - RUNNING_EDITABLE):
        raise BookingStateError(f"conference {conference.id} is {state}: only title, agenda "
                                f"and end can change (not {', '.join(refused)})")
    if "end" in fields:
        new_end = fields["end"]
        problems = []
        if new_end <= max(now, conference.start):
            problems.append("the new end must be in the future and after the start")
        elif new_end - conference.start > policy.limits.max_duration:
            hours = policy.limits.max_duration.total_seconds() / 3600
            problems.append(f"a conference may last at most {hours:g} hours")
        if problems:
            raise BookingInvalid(problems)
        slot = Slot(conference.start, new_end, conference.setup_minutes)
        codes = [p.endpoint.code for p in conference.participants]
        await _check_free(session, [slot], codes, policy, {conference.id})


async def _apply_running(
    session: AsyncSession,
    conference: Conference,
    fields: dict[str, Any],
    actor: Actor,
    now: datetime,
    policy: BookingPolicy,
    bus: EventBus,
) -> None:
    """Write a checked edit of an open or live conference (see `_check_running`)."""
    before = conference_json(conference, policy.zone)
    if "end" in fields:
        new_end = fields["end"]
        if new_end > conference.end:
            conference.warned = False  # warn again before the new end
        conference.end = new_end
    if "title" in fields:
        conference.title = fields["title"]
    if "agenda" in fields:
        conference.agenda = fields["agenda"]
    await _record_update(session, conference, before, actor, now, policy, bus)


async def cancel_conference(
    session: AsyncSession,
    conference: Conference,
    scope: Scope,
    actor: Actor,
    now: datetime,
    policy: BookingPolicy,
    bus: EventBus,
    reason: str = "",
) -> list[Conference]:
    """Cancel one conference, or it and the rest of its series (rows are kept).

    `reason` is kept on each row (the participants see it), in the audit record
    and in the `conference.cancelled` event."""
    await lock_bookings(session)
    await lock_conferences(session, [conference.id])  # see update_conference
    await session.refresh(conference)
    if conference.status not in ACTIVE_STATUSES:
        raise BookingStateError(
            f"conference {conference.id} is already {conference.status.value}"
        )
    rows = await _affected(session, conference, scope, ACTIVE_STATUSES)
    events = []
    for row in rows:
        before = conference_json(row, policy.zone)
        if row.status in RUNNING_STATUSES:
            await close_all(session, row.id, now)  # the room closes: everyone has left
        row.status = ConferenceStatus.CANCELLED
        row.cancel_reason = reason
        row.updated_at, row.updated_by = now, actor.name
        row.revision += 1
        after = conference_json(row, policy.zone)
        await record(session, actor, "conference.cancel", "conference", row.id, before,
                     after, now)
        events.append(NewEvent(EventType.CONFERENCE_CANCELLED, row.id, None,
                               tuple(after["participants"]),
                               {"was": before["status"], "cancel_reason": reason}))
        if len(events) % _FLUSH_EVERY == 0:
            await session.flush()
    await bus.publish_many(session, now, events)
    await session.flush()
    return rows

