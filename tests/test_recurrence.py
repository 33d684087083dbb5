"""The RRULE parser and expansion (pure), and the worker processes that run it with a
time budget (real child processes, nothing mocked).

The booking API's view of the same rules is in tests/test_recurrence_booking.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from harness.service_process import Service, service_env
from scheduler.recurrence import MAX_INTERVAL, RecurrenceError, expand, parse
from scheduler.recurrence_worker import RecurrenceWorkers

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
# Tuesday 1 December 2026, 08:00 in Hanoi.
START = datetime(2026, 12, 1, 8, 0, tzinfo=ZONE)
HOUR = timedelta(hours=1)


def run(rule: str, start: datetime = START, **limits: object) -> list[datetime]:
    kwargs: dict[str, object] = {"max_occurrences": 260,
                                 "horizon_end": NOW + timedelta(days=730)}
    kwargs.update(limits)
    return expand(rule, start, HOUR, ZONE, **kwargs)  # type: ignore[arg-type]


def local(starts: list[datetime]) -> list[str]:
    return [s.astimezone(ZONE).strftime("%a %Y-%m-%d %H:%M") for s in starts]


@pytest.mark.parametrize(("rule", "first", "last", "count"), [
    ("FREQ=WEEKLY;BYDAY=TU;COUNT=4", "Tue 2026-12-01 08:00", "Tue 2026-12-22 08:00", 4),
    ("RRULE:freq=weekly;count=2", "Tue 2026-12-01 08:00", "Tue 2026-12-08 08:00", 2),
    ("FREQ=WEEKLY;INTERVAL=007;COUNT=2", "Tue 2026-12-01 08:00", "Tue 2027-01-19 08:00", 2),
    # The documented bare-date UNTIL: through the end of that day in Hanoi.
    ("FREQ=WEEKLY;UNTIL=20271231", "Tue 2026-12-01 08:00", "Tue 2027-12-28 08:00", 57),
    ("FREQ=WEEKLY;UNTIL=20261222", "Tue 2026-12-01 08:00", "Tue 2026-12-22 08:00", 4),
    # A UTC UNTIL: 01:00Z is 08:00 in Hanoi, so the 22nd is included.
    ("FREQ=WEEKLY;UNTIL=20261222T010000Z", "Tue 2026-12-01 08:00", "Tue 2026-12-22 08:00", 4),
    ("FREQ=WEEKLY;UNTIL=20261222T005959Z", "Tue 2026-12-01 08:00", "Tue 2026-12-15 08:00", 3),
    ("FREQ=MONTHLY;BYDAY=1TU;COUNT=3", "Tue 2026-12-01 08:00", "Tue 2027-02-02 08:00", 3),
    ("FREQ=MONTHLY;BYDAY=+1TU;COUNT=2", "Tue 2026-12-01 08:00", "Tue 2027-01-05 08:00", 2),
    ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=1;COUNT=2", "Tue 2026-12-01 08:00",
     "Tue 2027-01-05 08:00", 2),
    ("FREQ=MONTHLY;BYMONTHDAY=-31;COUNT=3", "Tue 2026-12-01 08:00", "Mon 2027-03-01 08:00", 3),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=5", "Tue 2026-12-01 08:00",
     "Mon 2026-12-07 08:00", 5),
    ("FREQ=WEEKLY;BYDAY=TU,TH;WKST=SU;COUNT=3", "Tue 2026-12-01 08:00",
     "Tue 2026-12-08 08:00", 3),
    ("FREQ=YEARLY;BYMONTH=12;COUNT=2", "Tue 2026-12-01 08:00", "Wed 2027-12-01 08:00", 2),
])
def test_accepted_rules_expand_in_local_time(
    rule: str, first: str, last: str, count: int
) -> None:
    starts = local(run(rule))
    assert (starts[0], starts[-1], len(starts)) == (first, last, count)


def test_count_may_reach_the_limit() -> None:
    assert len(run("FREQ=DAILY;COUNT=260")) == 260
    assert len(run("FREQ=DAILY;COUNT=3", max_occurrences=3)) == 3
    with pytest.raises(RecurrenceError, match="more than 3"):
        run("FREQ=DAILY;UNTIL=20261204", max_occurrences=3)


def test_a_start_with_microseconds_is_the_first_occurrence() -> None:
    start = START + timedelta(microseconds=250)
    starts = run("FREQ=DAILY;COUNT=3", start)
    assert starts[0] == start and starts[2] == start + timedelta(days=2)


@pytest.mark.parametrize(("rule", "needle"), [
    # Issue 11: only the text "0" was refused, and INTERVAL=00 looped for ever.
    ("FREQ=WEEKLY;INTERVAL=00;COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=+0;COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=-0;COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=+1;COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=0x1;COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=１;COUNT=3", "INTERVAL"),  # a full-width digit
    ("FREQ=WEEKLY;INTERVAL=1.0;COUNT=3", "INTERVAL"),
    (f"FREQ=WEEKLY;INTERVAL={MAX_INTERVAL + 1};COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=" + "9" * 400 + ";COUNT=3", "INTERVAL"),
    ("FREQ=WEEKLY;INTERVAL=;COUNT=3", "INTERVAL"),
    # Issue 11: never matches, so dateutil searched to the year 9999 (19 s).
    ("FREQ=DAILY;COUNT=2;BYSETPOS=2", "BYSETPOS"),
    ("FREQ=DAILY;BYDAY=TU,WE;BYSETPOS=2;COUNT=2", "BYSETPOS"),
    ("FREQ=WEEKLY;BYDAY=TU,WE;BYSETPOS=3;COUNT=2", "BYSETPOS"),
    ("FREQ=MONTHLY;BYDAY=1TU;BYSETPOS=-2;COUNT=2", "BYSETPOS"),
    # The start cannot be an occurrence (and the rule never occurs at all).
    ("FREQ=DAILY;INTERVAL=7;BYDAY=WE;COUNT=2", "first occurrence"),
    ("FREQ=WEEKLY;BYMONTH=1;COUNT=2", "first occurrence"),
    ("FREQ=MONTHLY;BYMONTHDAY=2;COUNT=2", "first occurrence"),
    ("FREQ=DAILY;COUNT=2;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
    # COUNT and UNTIL.
    ("FREQ=DAILY;COUNT=0", "no occurrence"),
    ("FREQ=DAILY;COUNT=00", "no occurrence"),
    ("FREQ=DAILY;COUNT=-3", "COUNT"),
    ("FREQ=DAILY;COUNT=+3", "COUNT"),
    ("FREQ=DAILY;COUNT=261", "more than 260"),
    ("FREQ=DAILY;COUNT=" + "9" * 400, "more than 260"),
    ("FREQ=WEEKLY;UNTIL=20270230", "not a valid date"),
    ("FREQ=WEEKLY;UNTIL=00000101", "not a valid date"),
    ("FREQ=WEEKLY;UNTIL=2027-12-31", "UNTIL"),
    ("FREQ=WEEKLY;UNTIL=20271231T170000", "UTC"),
    ("FREQ=WEEKLY;UNTIL=99991231T235959Z", "horizon"),
    ("FREQ=WEEKLY;UNTIL=20261130", "no occurrence"),
    # Lists and their ranges; signs only where RFC 5545 has them.
    ("FREQ=MONTHLY;BYMONTHDAY=0;COUNT=2", "BYMONTHDAY"),
    ("FREQ=MONTHLY;BYMONTHDAY=32;COUNT=2", "BYMONTHDAY"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,,2;COUNT=2", "BYMONTHDAY"),
    ("FREQ=YEARLY;BYMONTH=+12;COUNT=2", "BYMONTH"),
    ("FREQ=YEARLY;BYMONTH=13;COUNT=2", "BYMONTH"),
    ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=367;COUNT=2", "BYSETPOS"),
    ("FREQ=MONTHLY;BYDAY=6TU;COUNT=2", "BYDAY"),
    ("FREQ=MONTHLY;BYDAY=0TU;COUNT=2", "BYDAY"),
    ("FREQ=MONTHLY;BYDAY=+TU;COUNT=2", "BYDAY"),
    ("FREQ=WEEKLY;BYDAY=1TU;COUNT=2", "BYDAY"),
    ("FREQ=WEEKLY;BYDAY=TUE;COUNT=2", "BYDAY"),
    ("FREQ=WEEKLY;WKST=XX;COUNT=2", "WKST"),
    # The form of the line.
    ("FREQ=WEEKLY;COUNT=2;COUNT=3", "twice"),
    ("FREQ=WEEKLY;;COUNT=2", "empty part"),
    ("FREQ=WEEKLY;COUNT=2;", "empty part"),
    ("COUNT=2", "FREQ"),
    ("FREQ=WEEKLY;COUNT", "NAME=VALUE"),
    ("FREQ=WEEKLY;X-NAME=1;COUNT=2", "unknown part"),
    ("FREQ=WEEKLY;BYHOUR=8;COUNT=2", "not supported"),
    ("FREQ=HOURLY;COUNT=2", "at most daily"),
    ("FREQ=FORTNIGHTLY;COUNT=2", "FREQ"),
])
def test_refused_rules_name_the_problem(rule: str, needle: str) -> None:
    with pytest.raises(RecurrenceError) as refused:
        run(rule)
    assert needle.lower() in str(refused.value).lower()


def test_parse_keeps_each_value_typed() -> None:
    rule = parse("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR,MO;BYSETPOS=-1;WKST=SU;UNTIL=20271231",
                 ZONE)
    assert rule.freq == "MONTHLY" and rule.interval == 2 and rule.count is None
    assert rule.byday == ((4, -1), (0, None))
    assert rule.bysetpos == (-1,) and rule.wkst == 6
    assert rule.until == datetime(2027, 12, 31, 23, 59, 59, tzinfo=ZONE)


# --------------------------------------------------------------------------
# The worker processes
# --------------------------------------------------------------------------

# A daily rule to the year 9999: about three million occurrences, far past any budget.
# Only reachable by calling the workers with limits the settings never allow.
ENDLESS = {"max_occurrences": 10**9, "horizon_end": datetime(9999, 12, 31, tzinfo=UTC)}


async def test_workers_expand_like_the_pure_function() -> None:
    workers = RecurrenceWorkers(budget_seconds=30)
    try:
        got = await workers.expand("FREQ=WEEKLY;UNTIL=20271231", START, HOUR, ZONE,
                                   max_occurrences=260, horizon_end=NOW + timedelta(days=730))
        assert got == run("FREQ=WEEKLY;UNTIL=20271231")
        with pytest.raises(RecurrenceError, match="INTERVAL"):
            await workers.expand("FREQ=WEEKLY;INTERVAL=00;COUNT=3", START, HOUR, ZONE,
                                 max_occurrences=260, horizon_end=NOW + timedelta(days=730))
        assert len(workers.pids()) == 1  # the same worker answered both
    finally:
        await workers.close()
    assert workers.pids() == []


async def test_a_rule_past_the_budget_is_refused_and_its_worker_replaced() -> None:
    workers = RecurrenceWorkers(budget_seconds=1)
    try:
        await workers.expand("FREQ=DAILY;COUNT=2", START, HOUR, ZONE, max_occurrences=260,
                             horizon_end=NOW + timedelta(days=730))
        [first] = workers.pids()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        began = time.monotonic()
        with pytest.raises(RecurrenceError, match="too long to expand"):
            await workers.expand("FREQ=DAILY;UNTIL=99991230", START, HOUR, ZONE, **ENDLESS)
        elapsed = time.monotonic() - began
        ticker.cancel()
        # The loop ran meanwhile; the expansion was cut off (it needs tens of seconds).
        assert ticks >= 5 and elapsed < 15, (ticks, elapsed)
        assert workers.pids() == []
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # killed and reaped
        # The next rule gets a fresh worker and expands as before.
        got = await workers.expand("FREQ=DAILY;COUNT=2", START, HOUR, ZONE,
                                   max_occurrences=260, horizon_end=NOW + timedelta(days=730))
        assert len(got) == 2 and workers.pids() and workers.pids() != [first]
    finally:
        await workers.close()


async def test_two_workers_answer_while_one_is_stuck() -> None:
    workers = RecurrenceWorkers(budget_seconds=6, workers=2)
    try:
        stuck = asyncio.create_task(
            workers.expand("FREQ=DAILY;UNTIL=99991230", START, HOUR, ZONE, **ENDLESS)
        )
        got = await asyncio.wait_for(
            workers.expand("FREQ=DAILY;COUNT=2", START, HOUR, ZONE, max_occurrences=260,
                           horizon_end=NOW + timedelta(days=730)),
            4,
        )
        assert len(got) == 2 and not stuck.done()
        with pytest.raises(RecurrenceError, match="too long"):
            await stuck
    finally:
        await workers.close()


# --------------------------------------------------------------------------
# `vcbridge serve` as a real process
# --------------------------------------------------------------------------


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_the_service_refuses_interval_00_and_stops_on_sigterm_with_its_workers(
    tmp_path: Path,
) -> None:
    """Issue 11: INTERVAL=00 hung `vcbridge serve`, and only SIGKILL stopped it."""
    service = Service(tmp_path, service_env())
    try:
        service.wait_healthy()
        service.login()
        start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        body = {"title": "Giao ban", "chair": "UBND-TINH",
                "participants": ["UBND-TINH", "HUYEN-NGA-SON"], "start": start.isoformat(),
                "end": (start + HOUR).isoformat()}
        status, answer = service.request("POST", "/api/v1/conferences",
                                         {**body, "rrule": "FREQ=WEEKLY;INTERVAL=00;COUNT=3"})
        assert status == 422 and "INTERVAL" in answer["error"]["message"], answer
        status, answer = service.request("POST", "/api/v1/conferences",
                                         {**body, "rrule": "FREQ=WEEKLY;COUNT=3"})
        assert status == 201, answer
        assert service.wait_healthy(timeout=5)["status"] == "ok"
        workers = children(service.process.pid)
        assert workers, "a series was booked, so a worker runs"
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=20) == 0
        for pid in workers:  # stopped with the service, not left behind
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        service.stop()
