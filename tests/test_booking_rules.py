"""The conflict and capacity rules (pure): the fast forms give exactly what the
definitions give, on random calendars (hypothesis), and stay fast on a long series."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.booking_rules import (
    Booked,
    BookingLimits,
    CapacityProblem,
    EndpointConflict,
    Slot,
    capacity_problem,
    endpoint_conflicts,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SITES = ["A", "B", "C", "D", "E"]
LIMITS = BookingLimits(
    max_setup_minutes=240, max_duration=timedelta(hours=12), horizon=timedelta(days=730),
    max_occurrences=2000, max_concurrent_conferences=3, max_participant_ports=7,
)


def naive_conflicts(slots: list[Slot], endpoints: list[str],
                    booked: list[Booked]) -> list[EndpointConflict]:
    """The definition: every booked conference against every slot."""
    found = []
    for other in booked:
        shared = frozenset(endpoints) & other.endpoints
        if shared and any(s.overlaps(other.busy_start, other.end) for s in slots):
            found.append(EndpointConflict(other, tuple(sorted(shared))))
    found.sort(key=lambda c: (c.conference.start, c.conference.id))
    return found


def naive_capacity(slots: list[Slot], ports: int, booked: list[Booked]) -> CapacityProblem | None:
    for slot in slots:
        overlapping = [b for b in booked if slot.overlaps(b.busy_start, b.end)]
        instants = {slot.busy_start} | {
            b.busy_start for b in overlapping if b.busy_start > slot.busy_start}
        for at in sorted(instants):
            live = [b for b in overlapping if b.busy_start <= at < b.end]
            count, used = len(live) + 1, sum(len(b.endpoints) for b in live) + ports
            if count > LIMITS.max_concurrent_conferences or used > LIMITS.max_participant_ports:
                return capacity_problem([slot], ports, booked, LIMITS)
    return None


slot = st.builds(lambda start, minutes, setup: Slot(T0 + timedelta(minutes=start),
                                                    T0 + timedelta(minutes=start + minutes),
                                                    setup),
                 st.integers(0, 3000), st.integers(1, 600), st.integers(0, 120))


@st.composite
def calendars(draw: st.DrawFn) -> list[Booked]:
    booked = []
    for i in range(draw(st.integers(0, 25))):
        s = draw(slot)
        codes = draw(st.frozensets(st.sampled_from(SITES), min_size=1, max_size=4))
        booked.append(Booked(i + 1, f"#{i + 1}", s.start, s.end, s.busy_start, codes))
    return booked


@settings(max_examples=300, deadline=None, database=None)
@given(slots=st.lists(slot, min_size=1, max_size=12), booked=calendars(),
       wanted=st.lists(st.sampled_from(SITES), min_size=1, max_size=3, unique=True))
def test_fast_rules_agree_with_their_definitions(
    slots: list[Slot], booked: list[Booked], wanted: list[str]
) -> None:
    assert endpoint_conflicts(slots, wanted, booked) == naive_conflicts(slots, wanted, booked)
    fast = capacity_problem(slots, len(wanted), booked, LIMITS)
    assert fast == naive_capacity(slots, len(wanted), booked)


def test_a_long_series_against_a_full_calendar_is_checked_quickly() -> None:
    """2,000 occurrences against 2,000 booked ones: the pairwise form took seconds."""
    day = timedelta(days=1)
    slots = [Slot(T0 + i * day, T0 + i * day + timedelta(hours=1), 15) for i in range(2000)]
    booked = [Booked(i, "x", s.start + timedelta(minutes=30), s.end + timedelta(hours=1),
                     s.start + timedelta(minutes=15), frozenset({"A", "B"}))
              for i, s in enumerate(slots)]
    began = time.process_time()
    assert len(endpoint_conflicts(slots, ["A"], booked)) == 2000
    assert capacity_problem(slots, 1, booked, LIMITS) is None
    # A bound that only catches the quadratic form (4 million pairs), not a busy machine.
    assert time.process_time() - began < 1
