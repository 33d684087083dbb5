"""Recurring bookings through the real service (issue 11): no RRULE can stall it.

A rule is expanded in a worker process within a time budget; the event loop
keeps answering `/healthz` meanwhile, and a worker that runs out of budget is
replaced. The property-based test sends any RRULE (the grammar's parts mixed
with garbage) with any start, and expects 201 or a 4xx within 2 s (a bound
that only catches a hang: a rule takes milliseconds)."""

from __future__ import annotations

import asyncio
import faulthandler
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from scheduler.booking_api import RECURRENCE_WORKERS
from scheduler.recurrence import RecurrenceError
from tests.conftest import NOW, Client
from vcbridge.core.settings import Settings

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CONFERENCES = "/api/v1/conferences"
H = dict[str, str]


def booking(rule: str | None, start: datetime | None = None, **changes: Any) -> dict[str, Any]:
    start = start or datetime(2026, 12, 1, 8, 0, tzinfo=ZONE)  # a Tuesday
    body: dict[str, Any] = {
        "title": "Giao ban tuần",
        "chair": "UBND-TINH",
        "participants": ["UBND-TINH", "HUYEN-NGA-SON"],
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "rrule": rule,
    }
    body.update(changes)
    return body


async def conference_count(client: Client, headers: H) -> int:
    response = await client.get(CONFERENCES, params={"limit": "500"}, headers=headers)
    assert response.status == 200
    return len((await response.json())["conferences"])


async def healthy(client: Client) -> None:
    response = await asyncio.wait_for(client.get("/healthz"), 5)
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("interval", ["00", "+0", "-0", "000", "53", "+1"])
async def test_interval_zero_in_any_spelling_is_refused_at_once(
    client: Client, booker: H, interval: str
) -> None:
    rule = f"FREQ=WEEKLY;INTERVAL={interval};COUNT=3"
    response = await asyncio.wait_for(
        client.post(CONFERENCES, json=booking(rule), headers=booker), 10
    )
    body = await response.json()
    assert response.status == 422, body
    assert "INTERVAL" in body["error"]["message"]
    assert await conference_count(client, booker) == 0
    await healthy(client)


async def test_a_bysetpos_that_never_matches_is_refused(client: Client, booker: H) -> None:
    # Took 19 s of the event loop before issue 11.
    response = await asyncio.wait_for(
        client.post(CONFERENCES, json=booking("FREQ=DAILY;COUNT=2;BYSETPOS=2"), headers=booker),
        10,
    )
    body = await response.json()
    assert response.status == 422, body
    assert "BYSETPOS" in body["error"]["message"]
    assert await conference_count(client, booker) == 0


async def test_a_bare_date_until_books_through_that_local_day(client: Client, booker: H) -> None:
    response = await client.post(CONFERENCES, json=booking("FREQ=WEEKLY;UNTIL=20271231"),
                                 headers=booker)
    created = await response.json()
    assert response.status == 201, created
    assert created["rrule"] == "FREQ=WEEKLY;UNTIL=20271231"
    assert len(created["occurrence_ids"]) == 57
    listed = await client.get(
        CONFERENCES, params={"series": str(created["series_id"]), "limit": "500"},
        headers=booker,
    )
    starts = [c["start"] for c in (await listed.json())["conferences"]]
    assert starts[0] == "2026-12-01T08:00:00+07:00"
    assert starts[-1] == "2027-12-28T08:00:00+07:00"  # the last Tuesday of 2027


async def test_a_rule_past_the_budget_leaves_the_service_answering(
    client: Client, booker: H
) -> None:
    """A rule that validation missed: the worker is stopped at the budget, the
    service answers meanwhile, and books normally afterwards."""
    workers = client.app[RECURRENCE_WORKERS]
    # Warm: the first series starts a worker.
    first = await client.post(CONFERENCES, json=booking("FREQ=DAILY;COUNT=2"), headers=booker)
    assert first.status == 201, await first.text()
    [pid] = workers.pids()
    # Three million occurrences: only the workers' own limits let it through (the
    # settings allow at most 2,000 occurrences and ten years).
    stuck = asyncio.create_task(workers.expand(
        "FREQ=DAILY;UNTIL=99991230", datetime(2027, 1, 1, 1, tzinfo=UTC), timedelta(hours=1),
        ZONE, max_occurrences=10**9, horizon_end=datetime(9999, 12, 31, tzinfo=UTC),
    ))
    answered = 0
    while not stuck.done():
        await healthy(client)
        answered += 1
        await asyncio.sleep(0.1)
    assert answered >= 3, answered  # the budget is 1 s here
    with pytest.raises(RecurrenceError, match="too long to expand"):
        await stuck
    assert pid not in workers.pids()
    again = await client.post(
        CONFERENCES, json=booking("FREQ=WEEKLY;BYDAY=TH;COUNT=3",
                                  datetime(2026, 12, 3, 14, 0, tzinfo=ZONE)),
        headers=booker,
    )
    assert again.status == 201, await again.text()
    assert len((await again.json())["occurrence_ids"]) == 3
    assert workers.pids() and pid not in workers.pids()


async def test_a_booking_past_the_budget_is_a_clear_422(
    aiohttp_client: Any, settings: Settings, booker_for: Any
) -> None:
    """Through HTTP: a budget so small that any expansion exceeds it."""
    client, headers = await booker_for(settings.model_copy(
        update={"recurrence_budget_seconds": 0.000001}
    ))
    response = await client.post(CONFERENCES, json=booking("FREQ=DAILY;COUNT=2"), headers=headers)
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "invalid"
    assert "too long to expand" in body["error"]["message"]
    await healthy(client)
    single = await client.post(CONFERENCES, json=booking(None), headers=headers)
    assert single.status == 201, await single.text()  # no rule: no worker needed


@pytest.fixture
def booker_for(aiohttp_client: Any, clock: Any) -> Any:
    """An app for other settings, and a booker's headers on it."""
    from tests.support import ADMIN_PASSWORD, bearer, login
    from vcbridge.app import create_app

    async def make(settings: Settings) -> tuple[Client, H]:
        client = await aiohttp_client(create_app(settings, clock=clock))
        admin = bearer(await login(client, "admin", ADMIN_PASSWORD))
        created = await client.post("/api/v1/users", headers=admin, json={
            "username": "booker9", "password": "pw-booker9-123456", "role": "booker"})
        assert created.status == 201, await created.text()
        return client, bearer(await login(client, "booker9", "pw-booker9-123456"))

    return make


# --------------------------------------------------------------------------
# Any RRULE, any start: 201 or 4xx within 2 s, and /healthz answers meanwhile
# --------------------------------------------------------------------------

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def numbers(low: int, high: int) -> st.SearchStrategy[str]:
    """Numbers as a sloppy client writes them: mostly in range, some with signs,
    leading zeros, huge, empty or not numbers at all."""
    plain = st.integers(low, high).map(str)
    return st.one_of(
        plain, plain, plain, plain, plain, plain, plain,
        st.sampled_from(["0", "00", "1", "01", "2"]),  # the small edge, often
        st.builds(lambda sign, zeros, n: f"{sign}{'0' * zeros}{n}",
                  st.sampled_from(["", "+", "-"]), st.integers(0, 3), st.integers(0, high)),
        st.integers(10**6, 10**60).map(str),
        st.sampled_from(["", "0", "00", "+0", "-0", "1.5", "1e3", "0x10", "\u0661", " 1"]),
    )


def listed(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(item, min_size=1, max_size=4).map(",".join)


DAY = st.builds(lambda n, d: f"{n}{d}",
                st.sampled_from(["", "", "", "1", "-1", "+2", "5", "-5", "0", "53", "99"]),
                st.sampled_from([*DAYS, *DAYS, "XX", "mo"]))
UNTIL = st.one_of(
    st.dates(datetime(2026, 1, 1).date(), datetime(2029, 12, 31).date())
    .map(lambda d: d.strftime("%Y%m%d")),
    st.datetimes(datetime(2026, 1, 1), datetime(2029, 12, 31))
    .map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
    st.sampled_from(["99991231", "00000000", "20271231T170000", "2027-12-31", "20270230"]),
)
# Each part's values as the grammar has them, plus the mistakes a client makes.
VALUES: dict[str, st.SearchStrategy[str]] = {
    "FREQ": st.sampled_from(["WEEKLY", "DAILY", "MONTHLY", "YEARLY", "WEEKLY", "HOURLY"]),
    "INTERVAL": numbers(0, 60),
    "COUNT": numbers(0, 300),
    "UNTIL": UNTIL,
    "BYDAY": listed(DAY),
    "BYMONTHDAY": listed(numbers(-32, 32)),
    "BYMONTH": listed(numbers(0, 13)),
    "BYSETPOS": listed(numbers(-8, 8)),
    "WKST": st.sampled_from([*DAYS, "XX", "1"]),
}
GARBAGE = st.one_of(
    st.sampled_from(["", "=", "FREQ", "COUNT=3=4", "BYHOUR=8", "BYYEARDAY=1", "X-FOO=1",
                     "DTSTART=20261201T080000", "EXDATE:20261208", "BYWEEKNO=1"]),
    st.text(alphabet=string.ascii_letters + string.digits + "=;,:+-\n\x00 ", max_size=12),
)


@st.composite
def rrules(draw: st.DrawFn) -> str:
    """Mostly grammar-shaped rules (FREQ, some BY parts, an end), then some garbage:
    parts with another part's values, repeated or empty parts, odd case, a prefix."""
    optional = ["INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"]
    names = [n for n in optional if draw(st.integers(0, 2)) == 0]
    if draw(st.integers(0, 9)) < 9:  # (hypothesis draws 0 more often than chance)
        names.insert(0, "FREQ")
    if draw(st.integers(0, 9)) < 8 and not {"COUNT", "UNTIL"} & set(names):
        names.append(draw(st.sampled_from(["COUNT", "COUNT", "UNTIL"])))
    parts = []
    for name in names:
        values = VALUES[name] if draw(st.integers(0, 9)) < 9 else draw(
            st.sampled_from(list(VALUES.values())))
        parts.append(f"{name}={draw(values)}")
    for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
        parts.insert(draw(st.integers(0, len(parts))), draw(st.one_of(
            GARBAGE, st.sampled_from(parts or ["FREQ=DAILY"]))))
    text = ";".join(parts)
    if draw(st.integers(0, 9)) == 9:
        text = "RRULE:" + text.lower()
    return text or "FREQ=DAILY;COUNT=1"


# Booked in pairs: a series holds its two sites, and the next booking mostly finds others.
SITES = ["TINH-UY", "UBND-TINH", "SO-TTTT", "DBQH-HDND", "TP-THANH-HOA", "TP-SAM-SON",
         "TX-BIM-SON", "HUYEN-BA-THUOC", "HUYEN-CAM-THUY", "HUYEN-DONG-SON", "HUYEN-HA-TRUNG",
         "HUYEN-HAU-LOC", "HUYEN-HOANG-HOA", "HUYEN-NGA-SON"]


@st.composite
def plain_rrules(draw: st.DrawFn) -> str:
    """Rules that book when the start suits them: FREQ, maybe INTERVAL, an end."""
    parts = ["FREQ=" + draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 4))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 30))}")
    else:
        parts.append("UNTIL=" + draw(UNTIL))
    return ";".join(draw(st.permutations(parts)))


starts = st.builds(
    lambda seconds, offset: (NOW + timedelta(seconds=seconds)).astimezone(
        ZoneInfo("UTC") if offset is None else ZoneInfo(offset)),
    st.integers(-3600, 800 * 86400),  # an hour ago (refused) to past the horizon
    st.sampled_from([None, "Asia/Ho_Chi_Minh", "Pacific/Kiritimati", "America/Adak"]),
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Under the 2 s answer bound, with room to spare.
    return settings.model_copy(update={"recurrence_budget_seconds": 1.0})


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """A rule that hangs the event loop would also stop `asyncio.timeout`: after
    HANG_SECONDS, end the test run with every thread's traceback instead."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


HANG_SECONDS = 120
ANSWER_SECONDS = 2.0


@hypothesis_settings(
    max_examples=200, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The rules of issue 11: each hung the service or took its loop for 19 s.
@example(rule="FREQ=WEEKLY;INTERVAL=00;COUNT=3", start=NOW + timedelta(days=4), minutes=60,
         pair=["UBND-TINH", "HUYEN-NGA-SON"])
@example(rule="FREQ=WEEKLY;INTERVAL=-0;BYDAY=MO;COUNT=3", start=NOW + timedelta(days=4),
         minutes=60, pair=["UBND-TINH", "HUYEN-NGA-SON"])
@example(rule="FREQ=DAILY;COUNT=2;BYSETPOS=2", start=NOW + timedelta(days=4), minutes=60,
         pair=["UBND-TINH", "HUYEN-NGA-SON"])
@given(rule=st.one_of(plain_rrules(), rrules()), start=starts, minutes=st.integers(1, 300),
       pair=st.lists(st.sampled_from(SITES), min_size=2, max_size=2, unique=True))
async def test_any_rrule_with_any_start_answers_quickly(
    hang_guard: None, client: Client, booker: H, rule: str, start: datetime, minutes: int,
    pair: list[str],
) -> None:
    workers = client.app[RECURRENCE_WORKERS]
    if not workers.pids():  # starting a worker is not what is timed
        await workers.expand("FREQ=DAILY;COUNT=1", start, timedelta(hours=1), ZONE,
                             max_occurrences=1, horizon_end=start + timedelta(days=1))
    body = booking(rule, start, end=(start + timedelta(minutes=minutes)).isoformat(),
                   chair=pair[0], participants=pair)
    loop = asyncio.get_running_loop()
    for _attempt in range(2):
        began = loop.time()
        sent = asyncio.create_task(client.post(CONFERENCES, json=body, headers=booker))
        health = await asyncio.wait_for(client.get("/healthz"), 60)
        assert health.status == 200
        response = await asyncio.wait_for(sent, 60)
        text = await response.text()
        elapsed = loop.time() - began
        # A busy machine may stall any process once (seen at load 4 on 2 cores, with
        # a rule refused in a millisecond); a slow rule or a blocked loop is slow
        # again. The repeat runs the same expansion (a 409 is decided after it).
        if elapsed <= ANSWER_SECONDS:
            break
    assert elapsed <= ANSWER_SECONDS, f"{rule!r} took {elapsed:.1f} s, twice"
    assert response.status == 201 or 400 <= response.status < 500, (rule, response.status, text)
    assert response.content_type == "application/json", text
    event(f"HTTP {response.status}")  # shown by --hypothesis-show-statistics
