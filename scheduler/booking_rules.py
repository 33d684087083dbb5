"""Booking rules in plain code: times, conflicts and bridge capacity. No I/O."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Upper bound of (setup + duration) any stored conference can have (the
# settings' hard limits), so the conflict query can bound its index range.
MAX_BUSY_SPAN = timedelta(hours=72, minutes=1440)


@dataclass(frozen=True)
class BookingLimits:
    """The configurable limits a booking must respect."""

    max_setup_minutes: int
    max_duration: timedelta
    horizon: timedelta
    max_occurrences: int
    max_concurrent_conferences: int
    max_participant_ports: int
    # Starting this long ago is still accepted (a clock a little behind the client's).
    past_grace: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class Slot:
    """When one conference happens; it holds its endpoints from `busy_start` (setup) to `end`."""

    start: datetime
    end: datetime
    setup_minutes: int

    @property
    def busy_start(self) -> datetime:
        return self.start - timedelta(minutes=self.setup_minutes)

    def overlaps(self, busy_start: datetime, end: datetime) -> bool:
        """True when [busy_start, end) of another booking intersects this one's."""
        return self.busy_start < end and busy_start < self.end


@dataclass(frozen=True)
class Booked:
    """An existing active conference, as the conflict rules see it."""

    id: int
    title: str
    start: datetime
    end: datetime
    busy_start: datetime
    endpoints: frozenset[str]


@dataclass(frozen=True)
class EndpointConflict:
    """A booked conference that already holds some of the requested endpoints."""

    conference: Booked
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class CapacityProblem:
    """The bridge would be over capacity at `at`."""

    at: datetime
    conferences: int
    ports: int
    reason: str


def time_problems(slot: Slot, now: datetime, limits: BookingLimits) -> list[str]:
    """Why this slot cannot be booked (empty when it can)."""
    problems: list[str] = []
    if slot.end <= slot.start:
        problems.append("end must be after start")
    elif slot.end - slot.start > limits.max_duration:
        hours = limits.max_duration.total_seconds() / 3600
        problems.append(f"a conference may last at most {hours:g} hours")
    if slot.start < now - limits.past_grace:
        problems.append("start is in the past")
    if slot.start > now + limits.horizon:
        problems.append(f"start is more than {limits.horizon.days} days ahead")
    if not 0 <= slot.setup_minutes <= limits.max_setup_minutes:
        problems.append(f"setup_minutes must be between 0 and {limits.max_setup_minutes}")
    return problems


def endpoint_conflicts(
    slots: Sequence[Slot], endpoints: Iterable[str], booked: Iterable[Booked]
) -> list[EndpointConflict]:
    """Booked conferences that overlap any slot and share an endpoint with the request.

    O((slots + booked) log slots): a long series against a full calendar must not
    take the event loop for seconds (2,000 x 2,000 pairs did, issue 11)."""
    wanted = frozenset(endpoints)
    ordered = sorted(slots, key=lambda s: s.busy_start)
    busy_starts = [s.busy_start for s in ordered]
    latest_end = list(itertools.accumulate((s.end for s in ordered), max))
    found: list[EndpointConflict] = []
    for other in booked:
        shared = wanted & other.endpoints
        if not shared:
            continue
        # The slots that begin before `other` ends; one of them must end after it begins.
        before = bisect.bisect_left(busy_starts, other.end)
        if before and latest_end[before - 1] > other.busy_start:
            found.append(EndpointConflict(other, tuple(sorted(shared))))
    found.sort(key=lambda c: (c.conference.start, c.conference.id))
    return found


def capacity_problem(
    slots: Sequence[Slot], ports: int, booked: Iterable[Booked], limits: BookingLimits
) -> CapacityProblem | None:
    """The first moment a slot would push the bridge over its capacity, if any."""
    booked = sorted(booked, key=lambda b: b.busy_start)
    busy_starts = [b.busy_start for b in booked]
    longest = max((b.end - b.busy_start for b in booked), default=timedelta(0))
    for slot in slots:
        # Only conferences beginning within `longest` before the slot can overlap it.
        window = booked[bisect.bisect_right(busy_starts, slot.busy_start - longest):
                        bisect.bisect_left(busy_starts, slot.end)]
        overlapping = [b for b in window if slot.overlaps(b.busy_start, b.end)]
        # Concurrency only rises at a start: check the slot's own start and each
        # overlapping conference's start that falls within the slot.
        instants = {slot.busy_start} | {
            b.busy_start for b in overlapping if b.busy_start > slot.busy_start
        }
        for at in sorted(instants):
            live = [b for b in overlapping if b.busy_start <= at < b.end]
            count = len(live) + 1
            used = sum(len(b.endpoints) for b in live) + ports
            if count > limits.max_concurrent_conferences:
                return CapacityProblem(
                    at, count, used,
                    f"the bridge runs at most {limits.max_concurrent_conferences} "
                    "conferences at once",
                )
            if used > limits.max_participant_ports:
                return CapacityProblem(
                    at, count, used,
                    f"the bridge has {limits.max_participant_ports} participant ports",
                )
    return None
