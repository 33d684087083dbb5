"""The conference lifecycle state machine: pure, on fixed datetimes, no sleeps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from scheduler.lifecycle import (
    TERMINAL_STATUSES,
    WARN_GRACE,
    InvalidTransition,
    Timeline,
    Transition,
    apply,
    cancel,
    due_transitions,
    extend,
    is_done,
    next_transition,
)
from vcbridge.core.db.models import ConferenceStatus

S = ConferenceStatus
T = Transition

# Monday 2026-11-30 08:00-10:00 in Hanoi, setup from 07:30, warning at 09:55.
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
TL = Timeline(START, END, setup_minutes=30)
OPEN_AT = START - timedelta(minutes=30)
WARN_AT = END - timedelta(minutes=5)
TICK = timedelta(microseconds=1)

ACTIVE = (S.SCHEDULED, S.OPEN, S.LIVE)
LEGAL = {
    (S.SCHEDULED, T.OPEN): S.OPEN,
    (S.SCHEDULED, T.END): S.ENDED,
    (S.OPEN, T.LIVE): S.LIVE,
    (S.OPEN, T.END): S.ENDED,
    (S.LIVE, T.WARN): S.LIVE,
    (S.LIVE, T.END): S.ENDED,
}
RANK = {S.SCHEDULED: 0, S.OPEN: 1, S.LIVE: 2, S.ENDED: 3}


def catch_up(
    status: ConferenceStatus, warned: bool, now: datetime, timeline: Timeline = TL
) -> tuple[ConferenceStatus, bool, list[Transition]]:
    """What the scheduler does when it wakes at `now`: apply every due transition."""
    due = due_transitions(status, timeline, now, warned)
    for transition in due:
        status = apply(status, transition)
        warned = warned or transition is T.WARN
    return status, warned, due


def interesting_instants(timeline: Timeline = TL) -> list[datetime]:
    """Every minute around the conference, plus each boundary and its neighbours."""
    first = timeline.open_at - timedelta(hours=1)
    minutes = int((timeline.end_at - first) / timedelta(minutes=1)) + 120
    instants = {first + timedelta(minutes=m) for m in range(minutes)}
    for edge in (
        timeline.open_at,
        timeline.live_at,
        timeline.warn_at,
        timeline.end_at,
        timeline.warn_at + WARN_GRACE,
    ):
        instants |= {edge - TICK, edge, edge + TICK}
    instants.add(timeline.end_at + timedelta(days=3))
    return sorted(instants)


# --- Timeline ---------------------------------------------------------------


def test_timeline_instants() -> None:
    assert TL.open_at == OPEN_AT
    assert TL.live_at == START
    assert TL.warn_at == WARN_AT
    assert TL.end_at == END
    assert TL.warn_minutes == 5
    assert TL.has_warning


def test_warning_never_before_start() -> None:
    short = Timeline(START, START + timedelta(minutes=3), setup_minutes=10)
    assert short.warn_at == START
    assert short.has_warning


def test_no_warning_when_warn_minutes_is_zero() -> None:
    timeline = Timeline(START, END, setup_minutes=0, warn_minutes=0)
    assert timeline.warn_at == END
    assert not timeline.has_warning
    assert timeline.open_at == START


def test_timeline_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TL.end = END + timedelta(hours=1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": START.replace(tzinfo=None)}, "start must be a timezone-aware"),
        ({"end": END.replace(tzinfo=None)}, "end must be a timezone-aware"),
        ({"end": START}, "end must be after start"),
        ({"end": START - timedelta(minutes=1)}, "end must be after start"),
        ({"setup_minutes": -1}, "setup_minutes must not be negative"),
        ({"warn_minutes": -1}, "warn_minutes must not be negative"),
    ],
)
def test_timeline_validation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"start": START, "end": END, "setup_minutes": 30}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Timeline(**fields)  # type: ignore[arg-type]


def test_transition_values() -> None:
    assert [t.value for t in Transition] == ["open", "live", "warn", "end"]


# --- due_transitions: the catch-up rules ---------------------------------------


@pytest.mark.parametrize(
    ("status", "now", "warned", "expected"),
    [
        # scheduled
        (S.SCHEDULED, OPEN_AT - timedelta(days=1), False, []),
        (S.SCHEDULED, OPEN_AT - TICK, False, []),
        (S.SCHEDULED, OPEN_AT, False, [T.OPEN]),
        (S.SCHEDULED, START - TICK, False, [T.OPEN]),
        (S.SCHEDULED, START, False, [T.OPEN, T.LIVE]),
        (S.SCHEDULED, START + timedelta(minutes=40), False, [T.OPEN, T.LIVE]),
        (S.SCHEDULED, WARN_AT - TICK, False, [T.OPEN, T.LIVE]),
        (S.SCHEDULED, WARN_AT + timedelta(seconds=30), False, [T.OPEN, T.LIVE, T.WARN]),
        (S.SCHEDULED, WARN_AT + timedelta(minutes=2), False, [T.OPEN, T.LIVE]),
        (S.SCHEDULED, END, False, [T.END]),
        (S.SCHEDULED, END + timedelta(hours=5), False, [T.END]),
        # open
        (S.OPEN, OPEN_AT, False, []),
        (S.OPEN, START - TICK, False, []),
        (S.OPEN, START, False, [T.LIVE]),
        (S.OPEN, START + timedelta(minutes=40), False, [T.LIVE]),
        (S.OPEN, WARN_AT, False, [T.LIVE, T.WARN]),
        (S.OPEN, WARN_AT, True, [T.LIVE]),
        (S.OPEN, END, False, [T.END]),
        # live
        (S.LIVE, START, False, []),
        (S.LIVE, WARN_AT - TICK, False, []),
        (S.LIVE, WARN_AT, False, [T.WARN]),
        (S.LIVE, WARN_AT + WARN_GRACE, False, [T.WARN]),
        (S.LIVE, WARN_AT + WARN_GRACE + TICK, False, []),
        (S.LIVE, WARN_AT, True, []),
        (S.LIVE, END - TICK, False, []),
        (S.LIVE, END, False, [T.END]),
        (S.LIVE, END, True, [T.END]),
        (S.LIVE, END + timedelta(days=2), False, [T.END]),
    ],
)
def test_due_transitions(
    status: ConferenceStatus, now: datetime, warned: bool, expected: list[Transition]
) -> None:
    assert due_transitions(status, TL, now, warned) == expected


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_nothing_is_ever_due_once_ended_or_cancelled(status: ConferenceStatus) -> None:
    for now, warned in product(interesting_instants(), (False, True)):
        assert due_transitions(status, TL, now, warned) == []
        assert next_transition(status, TL, warned) is None
        assert next_transition(status, TL, warned, now=now) is None


def test_restart_after_the_whole_conference_passed() -> None:
    # The service was down from the day before until the afternoon after.
    now = END + timedelta(hours=4)
    for status in ACTIVE:
        new_status, warned, due = catch_up(status, False, now)
        assert due == [T.END]  # no open, no live, no late warning
        assert new_status is S.ENDED
        assert not warned
        assert next_transition(new_status, TL, warned, now=now) is None


def test_restart_mid_meeting() -> None:
    now = START + timedelta(minutes=47)
    # Down since before setup: the room opens and goes live in one catch-up.
    status, warned, due = catch_up(S.SCHEDULED, False, now)
    assert (status, due) == (S.LIVE, [T.OPEN, T.LIVE])
    assert next_transition(status, TL, warned, now=now) == (T.WARN, WARN_AT)
    # Down since during setup: only LIVE is missing.
    status, warned, due = catch_up(S.OPEN, False, now)
    assert (status, due) == (S.LIVE, [T.LIVE])
    # Down while live: nothing to do, the timers are simply re-armed.
    status, warned, due = catch_up(S.LIVE, False, now)
    assert (status, due) == (S.LIVE, [])
    assert next_transition(status, TL, warned, now=now) == (T.WARN, WARN_AT)


def test_restart_during_setup() -> None:
    now = OPEN_AT + timedelta(minutes=10)
    status, warned, due = catch_up(S.SCHEDULED, False, now)
    assert (status, due) == (S.OPEN, [T.OPEN])
    assert next_transition(status, TL, warned, now=now) == (T.LIVE, START)


def test_missed_warning_is_not_replayed() -> None:
    now = WARN_AT + timedelta(minutes=2)  # restarted two minutes after the warning was due
    status, warned, due = catch_up(S.LIVE, False, now)
    assert (status, warned, due) == (S.LIVE, False, [])
    # And it is not rescheduled in the past either: the next timer is the end.
    assert next_transition(status, TL, warned, now=now) == (T.END, END)
    # Later wake-ups never send it.
    for minutes in range(3, 5):
        assert due_transitions(S.LIVE, TL, WARN_AT + timedelta(minutes=minutes), False) == []


def test_warning_within_grace_is_sent_once() -> None:
    now = WARN_AT + timedelta(seconds=20)  # the timer fired a little late
    status, warned, due = catch_up(S.LIVE, False, now)
    assert (status, warned, due) == (S.LIVE, True, [T.WARN])
    # A second firing of the same job finds nothing to do.
    assert catch_up(status, warned, now + timedelta(seconds=1)) == (S.LIVE, True, [])
    assert is_done(status, T.WARN, warned)


def test_custom_warn_grace() -> None:
    assert due_transitions(S.LIVE, TL, WARN_AT, False, warn_grace=timedelta(0)) == [T.WARN]
    assert due_transitions(S.LIVE, TL, WARN_AT + TICK, False, warn_grace=timedelta(0)) == []
    late = WARN_AT + timedelta(minutes=3)
    assert due_transitions(S.LIVE, TL, late, False, warn_grace=timedelta(minutes=4)) == [T.WARN]
    assert next_transition(S.LIVE, TL, False, now=late, warn_grace=timedelta(minutes=4)) == (
        T.WARN,
        WARN_AT,
    )
    with pytest.raises(ValueError, match="warn_grace"):
        due_transitions(S.LIVE, TL, WARN_AT, False, warn_grace=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="warn_grace"):
        next_transition(S.LIVE, TL, False, warn_grace=timedelta(seconds=-1))


def test_short_conference_warns_as_it_goes_live() -> None:
    short = Timeline(START, START + timedelta(minutes=3), setup_minutes=0)
    assert due_transitions(S.SCHEDULED, short, START, False) == [T.OPEN, T.LIVE, T.WARN]
    assert due_transitions(S.SCHEDULED, short, START - TICK, False) == []


def test_no_warning_ever_without_warn_minutes() -> None:
    timeline = Timeline(START, END, setup_minutes=30, warn_minutes=0)
    for now, status in product(interesting_instants(timeline), ACTIVE):
        assert T.WARN not in due_transitions(status, timeline, now, False)
    assert next_transition(S.LIVE, timeline, False) == (T.END, END)


# --- next_transition --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "warned", "expected"),
    [
        (S.SCHEDULED, False, (T.OPEN, OPEN_AT)),
        (S.OPEN, False, (T.LIVE, START)),
        (S.LIVE, False, (T.WARN, WARN_AT)),
        (S.LIVE, True, (T.END, END)),
        (S.ENDED, False, None),
        (S.CANCELLED, False, None),
    ],
)
def test_next_transition_without_now(
    status: ConferenceStatus, warned: bool, expected: tuple[Transition, datetime] | None
) -> None:
    assert next_transition(status, TL, warned) == expected


def test_next_transition_after_the_end_is_end() -> None:
    for status in ACTIVE:
        assert next_transition(status, TL, False, now=END) == (T.END, END)


def test_after_catch_up_the_next_timer_is_in_the_future() -> None:
    """Property: waking at any instant, applying what is due, then arming the next
    timer never yields a timer in the past (which would loop) and never leaves
    anything due; and every catch-up only moves the status forward."""
    for status, warned, now in product(ACTIVE, (False, True), interesting_instants()):
        new_status, new_warned, due = catch_up(status, warned, now)
        assert RANK[new_status] >= RANK[status]
        assert due_transitions(new_status, TL, now, new_warned) == []
        nxt = next_transition(new_status, TL, new_warned, now=now)
        if new_status is S.ENDED:
            assert nxt is None
            assert now >= END
        else:
            assert nxt is not None
            assert nxt[1] > now
            assert nxt[0] not in due
        # The status reached is the one the clock says, or the stored one if that
        # is already further (never a step back).
        by_clock = (
            S.ENDED
            if now >= END
            else S.LIVE
            if now >= START
            else S.OPEN
            if now >= OPEN_AT
            else S.SCHEDULED
        )
        assert new_status is max(by_clock, status, key=RANK.__getitem__)


def test_timer_driven_run_fires_each_transition_once_on_time() -> None:
    """Drive a whole conference from the timers alone: OPEN, LIVE, WARN and END
    each fire exactly once, at their instant."""
    status, warned = S.SCHEDULED, False
    now = OPEN_AT - timedelta(days=1)
    fired: list[tuple[Transition, datetime]] = []
    while (nxt := next_transition(status, TL, warned, now=now)) is not None:
        now = nxt[1]
        status, warned, due = catch_up(status, warned, now)
        fired += [(t, now) for t in due]
    assert fired == [(T.OPEN, OPEN_AT), (T.LIVE, START), (T.WARN, WARN_AT), (T.END, END)]
    assert status is S.ENDED


def test_a_late_timer_catches_up_without_a_stale_warning() -> None:
    # Every timer fires 3 minutes late (an overloaded host): the warning is
    # past its grace and dropped, everything else still happens, once.
    status, warned = S.SCHEDULED, False
    now = OPEN_AT - timedelta(days=1)
    fired: list[Transition] = []
    while (nxt := next_transition(status, TL, warned, now=now)) is not None:
        now = nxt[1] + timedelta(minutes=3)
        status, warned, due = catch_up(status, warned, now)
        fired += due
    assert fired == [T.OPEN, T.LIVE, T.END]


# --- apply, is_done, cancel: every (status, transition) pair ------------------------


def test_apply_every_status_transition_pair() -> None:
    for status, transition in product(ConferenceStatus, Transition):
        if (status, transition) in LEGAL:
            assert apply(status, transition) is LEGAL[status, transition]
        else:
            with pytest.raises(InvalidTransition) as info:
                apply(status, transition)
            assert info.value.status is status
            assert info.value.action == transition.value


def test_legal_transitions_only_move_forward() -> None:
    for (status, transition), after in LEGAL.items():
        if transition is T.WARN:
            assert after is status
        else:
            assert RANK[after] > RANK[status]


def test_is_done_every_pair() -> None:
    expected_done = {
        # status: transitions already done (or moot) with warned=False
        S.SCHEDULED: set(),
        S.OPEN: {T.OPEN},
        S.LIVE: {T.OPEN, T.LIVE},
        S.ENDED: set(Transition),
        S.CANCELLED: set(Transition),
    }
    for status, transition in product(ConferenceStatus, Transition):
        assert is_done(status, transition) == (transition in expected_done[status])
        # `warned` only matters for WARN.
        assert is_done(status, transition, True) == (
            transition is T.WARN or transition in expected_done[status]
        )


def test_a_done_transition_never_changes_the_status() -> None:
    """Property: a job that checks `is_done` first is a no-op on a double fire:
    when done, `apply` either refuses or leaves the status as it is."""
    for status, transition, warned in product(ConferenceStatus, Transition, (False, True)):
        if not is_done(status, transition, warned):
            continue
        try:
            after = apply(status, transition)
        except InvalidTransition:
            continue
        assert after is status


def fire(status: ConferenceStatus, transition: Transition) -> ConferenceStatus:
    """A timer job as the scheduler writes it: skip what already happened."""
    if is_done(status, transition):
        return status
    return apply(status, transition)


def test_double_fire_is_a_no_op() -> None:
    status = fire(S.SCHEDULED, T.OPEN)
    assert status is S.OPEN
    assert fire(status, T.OPEN) is S.OPEN
    status = fire(status, T.LIVE)
    assert fire(status, T.LIVE) is S.LIVE
    assert fire(status, T.OPEN) is S.LIVE  # a very late OPEN job does not step back
    status = fire(status, T.END)
    assert status is S.ENDED
    for transition in Transition:  # nothing re-opens a closed conference
        assert fire(status, transition) is S.ENDED
    for transition in Transition:
        assert fire(S.CANCELLED, transition) is S.CANCELLED


def test_out_of_order_steps_are_refused() -> None:
    with pytest.raises(
        InvalidTransition, match="'live' is not allowed when the conference is scheduled"
    ):
        apply(S.SCHEDULED, T.LIVE)
    with pytest.raises(InvalidTransition):
        apply(S.OPEN, T.WARN)
    with pytest.raises(InvalidTransition):
        apply(S.ENDED, T.OPEN)
    with pytest.raises(InvalidTransition):
        apply(S.CANCELLED, T.END)
    assert not is_done(S.SCHEDULED, T.LIVE)  # not done: premature, apply refuses it


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


@pytest.mark.parametrize("status", ACTIVE)
def test_cancel_from_active(status: ConferenceStatus) -> None:
    assert cancel(status) is S.CANCELLED


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_cancel_from_terminal_is_refused(status: ConferenceStatus) -> None:
    with pytest.raises(InvalidTransition, match="'cancel' is not allowed") as info:
        cancel(status)
    assert info.value.action == "cancel"


# --- extend ---------------------------------------------------------------------------


def test_extend_moves_the_end_and_the_warning() -> None:
    now = START + timedelta(minutes=90)
    longer = extend(TL, END + timedelta(minutes=30), now)
    assert longer == Timeline(START, END + timedelta(minutes=30), 30)
    assert longer.warn_at == END + timedelta(minutes=25)
    assert TL.end == END  # the original is untouched
    # The chair is warned again before the new end once `warned` is cleared.
    assert next_transition(S.LIVE, longer, False, now=now) == (T.WARN, longer.warn_at)


def test_extend_after_the_warning_with_warned_cleared() -> None:
    now = WARN_AT + timedelta(minutes=1)
    longer = extend(TL, END + timedelta(minutes=1), now)
    # The new warning instant has just come: it is sent now, once.
    assert due_transitions(S.LIVE, longer, now, False) == [T.WARN]


@pytest.mark.parametrize(
    ("new_end", "now", "message"),
    [
        (END, START, "must be after the current end"),
        (END - timedelta(minutes=10), START, "must be after the current end"),
        (END + timedelta(minutes=10), END + timedelta(minutes=20), "must be in the future"),
        (END + timedelta(minutes=10), END + timedelta(minutes=10), "must be in the future"),
        (END.replace(tzinfo=None) + timedelta(hours=1), START, "timezone-aware"),
    ],
)
def test_extend_validation(new_end: datetime, now: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extend(TL, new_end, now)


def test_extend_message_names_both_ends() -> None:
    with pytest.raises(ValueError) as info:
        extend(TL, END - timedelta(minutes=10), START)
    assert str(info.value) == (
        "the new end 2026-11-30T02:50:00+00:00 must be after the current end "
        "2026-11-30T03:00:00+00:00"
    )
