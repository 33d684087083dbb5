"""The lifecycle's database side: bring one conference up to date with the clock.

`advance` is what every timer job runs. It reads the conference as it is now,
asks the pure state machine (`lifecycle.py`) what is due, applies it and
publishes the events, all in one transaction under the booking lock. Running
it twice, late, after a restart, or for a cancelled conference is harmless."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import attendance
from scheduler.booking_store import lock_bookings
from scheduler.lifecycle import (
    TERMINAL_STATUSES,
    Timeline,
    Transition,
    apply,
    due_transitions,
    next_transition,
)
from vcbridge.clock import Clock
from vcbridge.db.models import Conference
from vcbridge.events import EventBus
from vcbridge.presence import online


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
    participants: list[str] = field(default_factory=list)
    # The next timer to set, if the conference is still running or scheduled.
    next: tuple[Transition, datetime] | None = None


def timeline_of(conference: Conference, settings: LifecycleSettings) -> Timeline:
    """The lifecycle timeline of a stored conference."""
    return Timeline(conference.start, conference.end, conference.setup_minutes,
                    settings.warn_minutes)


def _due_at(transition: Transition, timeline: Timeline) -> datetime:
    return {
        Transition.OPEN: timeline.open_at,
        Transition.LIVE: timeline.live_at,
        Transition.WARN: timeline.warn_at,
        Transition.END: timeline.end_at,
    }[transition]


async def advance(
    session: AsyncSession,
    conference_id: int,
    clock: Clock,
    settings: LifecycleSettings,
    bus: EventBus,
) -> Advanced:
    """Apply every transition due now to one conference (idempotent).

    The clock is read after the booking lock is taken, so a booking change
    that committed while we waited is seen, and lateness includes the wait."""
    await lock_bookings(session)
    now = clock.now()
    conference = await session.get(Conference, conference_id, populate_existing=True)
    result = Advanced(conference_id)
    if conference is None or conference.status in TERMINAL_STATUSES:
        return result
    timeline = timeline_of(conference, settings)
    codes = [p.endpoint.code for p in conference.participants]
    result.participants = codes
    for transition in due_transitions(conference.status, timeline, now, conference.warned):
        conference.status = apply(conference.status, transition)
        late_ms = round((now - _due_at(transition, timeline)).total_seconds() * 1000)
        data: dict[str, object] = {"late_ms": late_ms}
        if transition is Transition.OPEN:
            conference.opened_at = now
            data.update(await _open(session, conference, timeline, now, settings))
        elif transition is Transition.LIVE:
            conference.live_at = now
        elif transition is Transition.WARN:
            conference.warned = True
            data["minutes_left"] = max(round((timeline.end_at - now).total_seconds() / 60), 0)
        elif transition is Transition.END:
            conference.ended_at = now
            await attendance.close_all(session, conference_id, now)
        await bus.publish(session, _EVENT[transition], now, conference_id=conference_id,
                          audience=codes, data=data)
        result.applied.append(transition)
    result.next = next_transition(conference.status, timeline, conference.warned, now=now)
    return result


_EVENT = {
    Transition.OPEN: "conference.opened",
    Transition.LIVE: "conference.live",
    Transition.WARN: "conference.ending_soon",
    Transition.END: "conference.ended",
}


async def _open(
    session: AsyncSession,
    conference: Conference,
    timeline: Timeline,
    now: datetime,
    settings: LifecycleSettings,
) -> dict[str, object]:
    """Create the attendance rows (first invitation at the start) and check readiness."""
    ids = [p.endpoint_id for p in conference.participants]
    up = await online(session, ids, now, settings.presence_stale)
    for row in attendance.create_rows(conference, max(timeline.live_at, now), now, up):
        session.add(row)
    ready = [p.endpoint.code for p in conference.participants if p.endpoint_id in up]
    offline = [p.endpoint.code for p in conference.participants if p.endpoint_id not in up]
    total = len(ids)
    return {
        "readiness": {
            "ready": ready,
            "offline": offline,
            "summary_vi": f"{len(ready)}/{total} điểm cầu sẵn sàng"
            + (f"; chưa trực tuyến: {', '.join(offline)}" if offline else ""),
            "summary_en": f"{len(ready)}/{total} endpoints ready"
            + (f"; offline: {', '.join(offline)}" if offline else ""),
        }
    }
