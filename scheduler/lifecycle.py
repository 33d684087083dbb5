"""The conference lifecycle as a pure state machine: what must happen, and when. No I/O.

    scheduled --OPEN--> open --LIVE--> live --END--> ended
        |                 |              | WARN (live stays live)
        +-----------------+--------------+--> cancelled (a user's action, `cancel`)

The scheduler that drives it is asynchronous and may restart at any moment, and
its timer jobs may fire twice or late. So nothing here relies on a timer having
fired: `due_transitions` derives from the stored status and the clock what has
to happen *now* (catching up after a restart), `next_transition` says when to
wake up next, and `is_done` lets a late or duplicate job recognise that its work
already happened, so it never re-opens a closed conference."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vcbridge.core.db.models import ConferenceStatus

# How late the end-of-meeting warning may still be sent. A warning minutes
# late (the service was down) would interrupt the chair with stale news, so a
# missed warning is dropped rather than replayed.
WARN_GRACE = timedelta(seconds=60)

# Position of each non-cancelled status along the lifecycle.
_RANK = {
    ConferenceStatus.SCHEDULED: 0,
    ConferenceStatus.OPEN: 1,
    ConferenceStatus.LIVE: 2,
    ConferenceStatus.ENDED: 3,
}

TERMINAL_STATUSES = frozenset({ConferenceStatus.ENDED, ConferenceStatus.CANCELLED})


class Transition(enum.StrEnum):
    """A timed step of the lifecycle (cancelling is a user's action: see `cancel`)."""

    OPEN = "open"  # setup begins: the bridge room opens and endpoints are invited
    LIVE = "live"  # the booked start: the meeting is on
    WARN = "warn"  # the chair is told the end is near; the status stays live
    END = "end"  # the booked end: the room closes


class InvalidTransition(ValueError):
    """A transition (or cancel) that the current status does not allow."""

    def __init__(self, status: ConferenceStatus, action: str) -> None:
        super().__init__(f"{action!r} is not allowed when the conference is {status}")
        self.status = status
        self.action = action


# The only legal timed moves. END is legal from scheduled and open too: a
# conference whose end passed while the service was down closes directly.
_NEXT_STATUS: dict[tuple[ConferenceStatus, Transition], ConferenceStatus] = {
    (ConferenceStatus.SCHEDULED, Transition.OPEN): ConferenceStatus.OPEN,
    (ConferenceStatus.SCHEDULED, Transition.END): ConferenceStatus.ENDED,
    (ConferenceStatus.OPEN, Transition.LIVE): ConferenceStatus.LIVE,
    (ConferenceStatus.OPEN, Transition.END): ConferenceStatus.ENDED,
    (ConferenceStatus.LIVE, Transition.WARN): ConferenceStatus.LIVE,
    (ConferenceStatus.LIVE, Transition.END): ConferenceStatus.ENDED,
}


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True)
class Timeline:
    """When one conference's transitions are due.

    The room opens `setup_minutes` before `start` (endpoints connect and test),
    the meeting is live from `start` to `end`, and the chair is warned
    `warn_minutes` before `end`."""

    start: datetime
    end: datetime
    setup_minutes: int
    warn_minutes: int = 5

    def __post_init__(self) -> None:
        _require_aware("start", self.start)
        _require_aware("end", self.end)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.setup_minutes < 0:
            raise ValueError("setup_minutes must not be negative")
        if self.warn_minutes < 0:
            raise ValueError("warn_minutes must not be negative")

    @property
    def open_at(self) -> datetime:
        return self.start - timedelta(minutes=self.setup_minutes)

    @property
    def live_at(self) -> datetime:
        return self.start

    @property
    def warn_at(self) -> datetime:
        """`warn_minutes` before the end, but never before the start.

        A conference shorter than the warning is warned as it goes live: a
        warning during setup would reach a room that is not meeting yet."""
        return max(self.end - timedelta(minutes=self.warn_minutes), self.start)

    @property
    def end_at(self) -> datetime:
        return self.end

    @property
    def has_warning(self) -> bool:
        """False when the warning would fall on the end itself (warn_minutes=0)."""
        return self.warn_at < self.end_at


def _warn_due(timeline: Timeline, now: datetime, warned: bool, warn_grace: timedelta) -> bool:
    return (
        not warned
        and timeline.has_warning
        and timeline.warn_at <= now < timeline.end_at
        and now - timeline.warn_at <= warn_grace
    )


def _check_grace(warn_grace: timedelta) -> None:
    if warn_grace < timedelta(0):
        raise ValueError("warn_grace must not be negative")


def due_transitions(
    status: ConferenceStatus,
    timeline: Timeline,
    now: datetime,
    warned: bool,
    *,
    warn_grace: timedelta = WARN_GRACE,
) -> list[Transition]:
    """The transitions to apply now, in order, to bring `status` up to date at `now`.

    Called on every timer and after a restart, so it catches up from whatever
    was stored; `warned` says whether this conference's warning was already sent.

    - ended or cancelled: nothing, ever.
    - `now >= end`: `[END]` alone, whatever the active status. A conference
      whose time passed while the service was down goes straight to ended:
      opening a room and inviting 31 endpoints to a meeting that is over, or
      warning about an end already reached, would only confuse the operators.
    - scheduled, `open_at <= now < start`: `[OPEN]`.
    - scheduled, `start <= now < end`: `[OPEN, LIVE]` (restart mid-meeting: the
      room must still open before the meeting can go live).
    - open, `start <= now < end`: `[LIVE]`.
    - otherwise before its time (scheduled before `open_at`, open before
      `start`): nothing.
    - WARN is appended (after LIVE when catching up) only when the warning is
      still timely: not `warned`, `warn_at <= now < end`, and
      `now - warn_at <= warn_grace`. A missed warning is not replayed late.
      A timeline with `warn_minutes=0` has no warning at all."""
    _check_grace(warn_grace)
    if status in TERMINAL_STATUSES:
        return []
    if now >= timeline.end_at:
        return [Transition.END]
    due: list[Transition] = []
    if status == ConferenceStatus.SCHEDULED and now >= timeline.open_at:
        due.append(Transition.OPEN)
    # start >= open_at, so a scheduled conference past its start got OPEN above.
    if status != ConferenceStatus.LIVE and now >= timeline.live_at:
        due.append(Transition.LIVE)
    # warn_at >= start, so a due warning implies the conference is (now) live.
    if _warn_due(timeline, now, warned, warn_grace):
        due.append(Transition.WARN)
    return due


def next_transition(
    status: ConferenceStatus,
    timeline: Timeline,
    warned: bool,
    *,
    now: datetime | None = None,
    warn_grace: timedelta = WARN_GRACE,
) -> tuple[Transition, datetime] | None:
    """The next transition to set a timer for, and when it is due; None when none is left.

    This is the first transition not yet done in lifecycle order: OPEN at
    `open_at` for scheduled, LIVE at `start` for open, WARN at `warn_at` for
    live (unless `warned`, or the timeline has no warning), then END at `end`.

    Give `now` (after applying `due_transitions(..., now, ...)`) to skip what
    can no longer happen at `now`: a warning whose grace has passed (it would
    otherwise be rescheduled in the past forever), or any step once the end has
    passed (END is then next). With `now` and the due transitions applied, the
    returned instant is always after `now`.

    The timer job should call `due_transitions` when it fires rather than apply
    the returned transition blindly: the job may fire late or twice."""
    _check_grace(warn_grace)
    if status in TERMINAL_STATUSES:
        return None
    if now is not None and now >= timeline.end_at:
        return Transition.END, timeline.end_at
    if status == ConferenceStatus.SCHEDULED:
        return Transition.OPEN, timeline.open_at
    if status == ConferenceStatus.OPEN:
        return Transition.LIVE, timeline.live_at
    warning_possible = not warned and timeline.has_warning
    if warning_possible and now is not None:
        warning_possible = now - timeline.warn_at <= warn_grace
    if warning_possible:
        return Transition.WARN, timeline.warn_at
    return Transition.END, timeline.end_at


def is_done(status: ConferenceStatus, transition: Transition, warned: bool = False) -> bool:
    """True when a job for `transition` has nothing left to do at this status.

    Either the transition already happened (the status is at or past its
    target: OPEN is done once open, live or ended; WARN once `warned`), or the
    conference is over (ended or cancelled), so it never will. A duplicate or
    late job checks this first and stops, so a double fire is a no-op and never
    re-opens a closed conference. False also for a transition that is not
    possible *yet* (LIVE while scheduled): `apply` rejects those."""
    if status in TERMINAL_STATUSES:
        return True
    if transition == Transition.WARN:
        return warned
    target = {
        Transition.OPEN: ConferenceStatus.OPEN,
        Transition.LIVE: ConferenceStatus.LIVE,
        Transition.END: ConferenceStatus.ENDED,
    }[transition]
    return _RANK[status] >= _RANK[target]


def apply(status: ConferenceStatus, transition: Transition) -> ConferenceStatus:
    """The status after `transition`; raises InvalidTransition when it is not allowed.

    Strict on purpose (OPEN on an open conference raises too): idempotence is
    the caller's check with `is_done`, so a genuinely out-of-order step (LIVE
    without OPEN, anything after ended or cancelled) is never silently accepted."""
    try:
        return _NEXT_STATUS[status, transition]
    except KeyError:
        raise InvalidTransition(status, transition.value) from None


def cancel(status: ConferenceStatus) -> ConferenceStatus:
    """Cancelled, from scheduled, open or live; raises InvalidTransition once ended or cancelled."""
    if status in TERMINAL_STATUSES:
        raise InvalidTransition(status, "cancel")
    return ConferenceStatus.CANCELLED


def extend(timeline: Timeline, new_end: datetime, now: datetime) -> Timeline:
    """The timeline with its end moved later to `new_end`.

    `new_end` must be after the current end (shortening is a different
    decision: endpoints may have planned around the booking) and after `now`
    (an end in the past would close the room at once). The caller checks the
    status is still active and the new end respects the booking limits.

    The warning is about the end, and the end moved: the caller should clear
    its `warned` flag, and the grace rule of `due_transitions` then decides
    whether a new warning is still timely."""
    _require_aware("new end", new_end)
    if new_end <= timeline.end:
        raise ValueError(
            f"the new end {new_end.isoformat()} must be after the current end "
            f"{timeline.end.isoformat()}"
        )
    if new_end <= now:
        raise ValueError(
            f"the new end {new_end.isoformat()} must be in the future (now is {now.isoformat()})"
        )
    return replace(timeline, end=new_end)
