"""What the record says, from what was stored: pure functions, no I/O.

Attendance comes from the roll call's events (`endpoint.joined`, `.dropped`,
`.left`): a site may drop or leave and come back, so each site has a list of
intervals, and an interval still open when the room closed ends with the
conference. Why a site never came comes from its attendance row and its events:
it declined, it was absent (never answered the invitations and was escalated),
it did not answer, or it was never invited. The floor log comes from the
`floor.*` events; the changes to the booking from the audit log.

The stored values (states, event types) are the scheduler's and the bridge's
public vocabulary (docs/events.md), repeated here as plain strings: this
feature imports no other feature."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EventFact:
    """One stored event of the conference (a row of the events table)."""

    seq: int
    at: datetime
    type: str
    endpoint: str | None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttendanceFact:
    """A site's attendance row: where the connect policy left it."""

    state: str
    attempts: int
    escalated: bool


@dataclass(frozen=True)
class AuditFact:
    """One audit record of the booking (create, update, cancel)."""

    at: datetime
    actor: str
    role: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


class EndedBy(enum.StrEnum):
    """How an attendance interval ended."""

    LEFT = "left"  # the site hung up
    DROPPED = "dropped"  # the line was lost
    REMOVED = "removed"  # the chair removed the site
    END = "end"  # the conference ended (or was cancelled) with the site in it


class Absence(enum.StrEnum):
    """Why a site never came."""

    DECLINED = "declined"  # it said it would not attend
    ABSENT = "absent"  # never answered the invitations; the office was told
    NO_ANSWER = "no_answer"  # invited, never answered (before it counted as absent)
    NOT_INVITED = "not_invited"  # the room never called it (e.g. cancelled before)
    WAITING = "waiting"  # the conference is still running: not in yet


@dataclass(frozen=True)
class Interval:
    """A site in the room from `start` to `end` (None: still in)."""

    start: datetime
    end: datetime | None
    ended_by: EndedBy | None


@dataclass(frozen=True)
class Attendee:
    """One participant of the record."""

    code: str
    chair: bool
    intervals: tuple[Interval, ...]
    # None when it attended.
    absence: Absence | None
    invitations: int

    def present_seconds(self, now: datetime) -> int:
        """Seconds in the room (an open interval counts up to `now`)."""
        return int(sum(((i.end or now) - i.start).total_seconds() for i in self.intervals))


@dataclass(frozen=True)
class Granter:
    """Who gave the floor: the chair endpoint, and the person when one acted."""

    endpoint: str | None
    user: str | None = None
    role: str | None = None


class FloorEnd(enum.StrEnum):
    """How a turn at the floor ended."""

    RELEASED = "released"  # the site gave it back
    REVOKED = "revoked"  # the chair took it back
    NEXT = "next"  # the chair gave it to another site
    REMOVED = "removed"  # the site was removed
    END = "end"  # the conference ended


@dataclass(frozen=True)
class FloorTurn:
    """One site's turn at the floor."""

    code: str
    requested_at: datetime | None
    granted_at: datetime
    granted_by: Granter
    ended_at: datetime | None
    ended_by: FloorEnd | None


class ChangeKind(enum.StrEnum):
    CREATED = "created"
    EDITED = "edited"
    EXTENDED = "extended"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class FieldChange:
    """One field of the booking before and after an edit (values as the API shows them)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class BookingChange:
    """A change to the booking, by whom and when."""

    at: datetime
    actor: str
    role: str
    kind: ChangeKind
    fields: tuple[FieldChange, ...] = ()
    # A series booked at once: how many occurrences (None for a single conference).
    occurrences: int | None = None
    reason: str = ""


# -- attendance ----------------------------------------------------------------------------

_ROLL_TYPES = frozenset({"endpoint.joined", "endpoint.dropped", "endpoint.left"})


def attendance(
    participants: Sequence[str], chair: str, rows: Mapping[str, AttendanceFact],
    events: Iterable[EventFact], closed_at: datetime | None,
) -> list[Attendee]:
    """Every participant (in `participants`' order) with its intervals or why it never came.

    `closed_at`: when the room closed (ended or cancelled), None while it runs."""
    ordered = sorted(events, key=lambda e: e.seq)
    open_at: dict[str, datetime] = {}
    intervals: dict[str, list[Interval]] = {code: [] for code in participants}
    removed: set[str] = set()  # removed by the chair, its `left` not seen yet
    declined: set[str] = set()
    escalated: set[str] = set()
    invited: dict[str, int] = {}
    for event in ordered:
        code = event.endpoint
        if event.type == "floor.remove":
            target = event.data.get("endpoint")
            if isinstance(target, str):
                removed.add(target)
            continue
        if code is None or code not in intervals:
            continue
        if event.type == "endpoint.declined":
            declined.add(code)
        elif event.type == "endpoint.absent":
            escalated.add(code)
        elif event.type == "endpoint.invited":
            invited[code] = invited.get(code, 0) + 1
        elif event.type in _ROLL_TYPES:
            if event.type == "endpoint.joined":
                open_at.setdefault(code, event.at)
                continue
            start = open_at.pop(code, None)
            if start is None:
                continue
            if event.type == "endpoint.dropped":
                how = EndedBy.DROPPED
            else:
                how = EndedBy.REMOVED if code in removed else EndedBy.LEFT
            intervals[code].append(Interval(start, event.at, how))
    for code, start in open_at.items():
        ended = None if closed_at is None else EndedBy.END
        intervals[code].append(Interval(start, closed_at, ended))
    result = []
    for code in participants:
        row = rows.get(code)
        attempts = max(invited.get(code, 0), row.attempts if row else 0)
        absence = None
        if not intervals[code]:
            absence = _absence(row, code in declined, code in escalated, attempts,
                               closed_at is not None)
        result.append(Attendee(code, code == chair, tuple(intervals[code]), absence, attempts))
    return result


def _absence(row: AttendanceFact | None, declined: bool, escalated: bool, invitations: int,
             final: bool) -> Absence:
    """Why a site that never joined stayed away (its final state, or its events when an
    older service closed the roll call as "left")."""
    state = row.state if row else "pending"
    if state == "declined" or declined:
        return Absence.DECLINED
    if state == "absent" or escalated or (row is not None and row.escalated):
        return Absence.ABSENT
    if not final and state in ("pending", "invited"):
        return Absence.WAITING
    if invitations > 0 or state in ("invited", "no_answer"):
        return Absence.NO_ANSWER
    return Absence.NOT_INVITED


# -- the floor -------------------------------------------------------------------------------


def floor_log(events: Iterable[EventFact], closed_at: datetime | None) -> list[FloorTurn]:
    """Every turn at the floor, in order: who spoke, from when to when, granted by whom."""
    turns: list[FloorTurn] = []
    asked: dict[str, datetime] = {}
    holder: FloorTurn | None = None

    def close(at: datetime, how: FloorEnd) -> None:
        nonlocal holder
        if holder is not None:
            turns.append(FloorTurn(holder.code, holder.requested_at, holder.granted_at,
                                   holder.granted_by, at, how))
            holder = None

    for event in sorted(events, key=lambda e: e.seq):
        target = event.data.get("endpoint")
        target = target if isinstance(target, str) else None
        match event.type:
            case "floor.request" if event.endpoint is not None:
                asked.setdefault(event.endpoint, event.at)
            case "floor.cancel" if event.endpoint is not None:
                asked.pop(event.endpoint, None)
            case "floor.refuse" if target is not None:
                asked.pop(target, None)
            case "floor.grant" if target is not None:
                if holder is not None and holder.code == target:
                    continue
                close(event.at, FloorEnd.NEXT)
                by = event.data.get("by")
                person = by if isinstance(by, Mapping) else {}
                granter = Granter(event.endpoint, _text(person.get("user")),
                                  _text(person.get("role")))
                holder = FloorTurn(target, asked.pop(target, None), event.at, granter, None, None)
            case "floor.release" if holder is not None and event.endpoint == holder.code:
                close(event.at, FloorEnd.RELEASED)
            case "floor.revoke":
                close(event.at, FloorEnd.REVOKED)
            case "floor.remove" if target is not None:
                asked.pop(target, None)
                if holder is not None and holder.code == target:
                    close(event.at, FloorEnd.REMOVED)
    if holder is not None:
        if closed_at is None:
            turns.append(holder)
        else:
            close(closed_at, FloorEnd.END)
    return turns


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- the booking -------------------------------------------------------------------------------

# Fields of the conference as the API shows it that an edit can change (in this order).
EDITABLE = ("title", "agenda", "chair", "participants", "start", "end", "setup_minutes")
_RUNNING = ("open", "live")


def booking_changes(audit: Iterable[AuditFact]) -> list[BookingChange]:
    """The booking's history from its audit records, oldest first."""
    changes = []
    for fact in sorted(audit, key=lambda a: a.at):
        before, after = fact.before or {}, fact.after or {}
        if fact.action == "conference.create":
            occurrences = after.get("occurrences")
            count = len(occurrences) if isinstance(occurrences, list) else None
            changes.append(BookingChange(fact.at, fact.actor, fact.role, ChangeKind.CREATED,
                                         occurrences=count))
        elif fact.action == "conference.cancel":
            reason = after.get("cancel_reason")
            changes.append(BookingChange(fact.at, fact.actor, fact.role, ChangeKind.CANCELLED,
                                         reason=reason if isinstance(reason, str) else ""))
        elif fact.action == "conference.update":
            fields = tuple(FieldChange(name, before.get(name), after.get(name))
                           for name in EDITABLE if before.get(name) != after.get(name))
            kind = ChangeKind.EDITED
            if ([f.field for f in fields] == ["end"] and before.get("status") in _RUNNING
                    and _later(after.get("end"), before.get("end"))):
                kind = ChangeKind.EXTENDED
            changes.append(BookingChange(fact.at, fact.actor, fact.role, kind, fields))
    return changes


def _later(a: object, b: object) -> bool:
    """Whether the RFC 3339 time `a` is after `b` (False if either is not one)."""
    try:
        return datetime.fromisoformat(str(a)) > datetime.fromisoformat(str(b))
    except ValueError:
        return False
