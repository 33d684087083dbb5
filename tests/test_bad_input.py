"""Bad input: every malformed, invalid, unauthorised or conflicting request gets a
4xx JSON error (`{"error": {"code", "message", "details"}}`) naming the problem,
never a 500, and leaves the database exactly as it was.

"Unchanged" is checked on every row of every table (conferences, participants,
series, users, tokens, the audit log, the booking lock), read before and after
the request through the app's own database; only a bridge node's heartbeat time,
which the app renews on its own timer, is left out."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from tests.conftest import NOW, TEST_DATABASE_URL, Client, app_settings
from tests.support import (
    ADMIN_PASSWORD,
    bearer,
    create_scratch_database,
    drop_scratch_database,
    login,
)
from vcbridge.app import create_app
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.migrate import upgrade
from vcbridge.core.db.models import ApiToken, AuditEvent, Base, Conference, User

ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")

MakeUser = Callable[..., Awaitable[dict[str, str]]]
Headers = dict[str, str]

CONFERENCES = "/api/v1/conferences"
USERS = "/api/v1/users"
LOGIN = "/api/v1/auth/login"

# The reference booking: Tuesday 1 December 2026, 08:00-10:00 in Hanoi (NOW is
# Friday 27 November, 10:00 Hanoi).
VALID: dict[str, Any] = {
    "title": "Giao ban tuần",
    "chair": "UBND-TINH",
    "participants": ["UBND-TINH", "HUYEN-NGA-SON"],
    "start": "2026-12-01T08:00:00+07:00",
    "end": "2026-12-01T10:00:00+07:00",
}
# The conference every test finds already booked (other endpoints, other day),
# so "unchanged" also covers existing rows.
EXISTING: dict[str, Any] = {
    "title": "Họp sẵn có",
    "chair": "TINH-UY",
    "participants": ["TINH-UY", "HUYEN-BA-THUOC"],
    "start": "2026-12-02T14:00:00+07:00",
    "end": "2026-12-02T16:00:00+07:00",
}
DROP = object()  # a field to leave out of the body

# The error code each status carries in the error contract.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}
MAX_BODY = 256 * 1024


def booking(**changes: Any) -> dict[str, Any]:
    """The valid booking with some fields changed (or dropped with DROP)."""
    body = dict(VALID)
    for name, value in changes.items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


Snapshot = dict[str, list[tuple[Any, ...]]]


# Columns a running app renews on its own timer, whatever the requests: a bridge node's
# heartbeat (every node_heartbeat_seconds on PostgreSQL, the database's clock). Its load,
# rooms and state are still compared.
TIMER_COLUMNS = {"bridge_nodes": {"heartbeat_at"}}


async def snapshot(client: Client, *, skip: tuple[str, ...] = ()) -> Snapshot:
    """Every row of every table (but TIMER_COLUMNS), in primary-key order."""
    rows: Snapshot = {}
    async with client.app[DATABASE].read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in skip:
                continue
            timer = TIMER_COLUMNS.get(table.name, set())
            columns = [column for column in table.columns if column.name not in timer]
            query = select(*columns).order_by(*table.primary_key.columns)
            rows[table.name] = [tuple(r) for r in (await session.execute(query)).all()]
    return rows


@asynccontextmanager
async def unchanged(client: Client, *, skip: tuple[str, ...] = ()) -> AsyncIterator[None]:
    """Assert the database is the same after the block as before it."""
    before = await snapshot(client, skip=skip)
    assert before.get("endpoints") or "endpoints" in skip, "the snapshot is empty"
    yield
    after = await snapshot(client, skip=skip)
    assert after == before, "the database changed"


async def count(client: Client, model: type[Base]) -> int:
    async with client.app[DATABASE].read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def assert_error(
    response: Any, status: int, *needles: str, code: str | None = None
) -> dict[str, Any]:
    """The response is the JSON error contract with `status`, naming each needle.

    A needle may appear in the message or in the details (pydantic validation
    errors name the field in the details; see test_validation_message_names_field)."""
    text = await response.text()
    assert response.status == status, f"{response.status} {text}"
    assert response.content_type == "application/json", text
    body = json.loads(text)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert set(error) <= {"code", "message", "details"}, error
    expected_code = code or CODES.get(status)
    assert isinstance(error.get("code"), str) and error["code"], error
    if expected_code:
        assert error["code"] == expected_code, error
    assert isinstance(error.get("message"), str) and error["message"].strip(), error
    said = (error["message"] + " " + json.dumps(error.get("details"), ensure_ascii=False))
    for needle in needles:
        assert needle.lower() in said.lower(), f"{needle!r} is not named in {error}"
    if error["code"] == "unauthorized":  # a missing or bad token: the bearer challenge
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    return dict(error)


async def send(
    client: Client, method: str, path: str, body: Any, headers: Headers
) -> Any:
    """Send `body`: a dict as JSON, bytes as an application/json body."""
    if isinstance(body, bytes):
        return await client.request(
            method, path, data=body, headers={**headers, "Content-Type": "application/json"}
        )
    return await client.request(method, path, json=body, headers=headers)


@pytest.fixture
async def existing(client: Client, booker: Headers) -> int:
    """The id of a conference booked before the test's bad request."""
    response = await client.post(CONFERENCES, json=EXISTING, headers=booker)
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


@pytest.fixture
async def operator(make_user: MakeUser) -> Headers:
    """An operator of the Nga Son district endpoint."""
    return await make_user("operator1", "operator", "HUYEN-NGA-SON")


async def endpoint_token(
    client: Client, admin: Headers, code: str, scope: str
) -> str:
    response = await client.post(
        f"/api/v1/endpoints/{code}/tokens", json={"scope": scope, "label": "test"},
        headers=admin,
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["token"])


# --------------------------------------------------------------------------
# One app for the requests that are refused
# --------------------------------------------------------------------------
# Most tests here send one request that must be refused and change nothing. Building
# an app (database, roster, three logins) for each of them cost one to three seconds a
# test; these share one app per module instead, on an event loop of the module's own.
# Each still compares every row of every table before and after its request, so one
# that did change the database fails itself (and is seen as the cause). Tests that
# change state on purpose (bookings, logouts, clock moves, logins and the login limiter,
# cookie sessions) keep the per-test app of tests/conftest.py.
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class SharedApp:
    """The shared app's client, the admin's and booker1's headers, the existing booking."""

    client: Client
    admin: Headers
    booker: Headers
    existing: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[SharedApp]:
    """The app the refused requests share, in the state the per-test fixtures make:
    admin logged in, booker1 made and logged in, EXISTING booked (no cookies kept).

    Its database is its own (a copy of the SQLite template, or a scratch PostgreSQL
    database): the per-test fixtures empty the session's PostgreSQL database."""
    data_dir = tmp_path_factory.mktemp("bad-input-shared")
    scratch = ""
    if ON_POSTGRES:
        scratch = url = await create_scratch_database(TEST_DATABASE_URL)
        database = Database(url)
        await upgrade(database)
        await database.dispose()
    else:
        shutil.copyfile(sqlite_template, data_dir / "test.sqlite3")
        url = f"sqlite+aiosqlite:///{data_dir / 'test.sqlite3'}"
    # No cookie jar: the logins' session cookies (and any a response sets) would ride
    # along on every later request; these tests authenticate by bearer header only.
    client: Client = TestClient(TestServer(
        create_app(app_settings(url, data_dir), clock=FixedClock(NOW))),
        cookie_jar=DummyCookieJar())
    try:
        await client.start_server()
        admin = bearer(await login(client, "admin", ADMIN_PASSWORD))
        response = await client.post(USERS, json={
            "username": "booker1", "password": "pw-booker1-123456", "role": "booker"},
            headers=admin)
        assert response.status == 201, await response.text()
        booker = bearer(await login(client, "booker1", "pw-booker1-123456"))
        response = await client.post(CONFERENCES, json=EXISTING, headers=booker)
        assert response.status == 201, await response.text()
        existing = int((await response.json())["id"])
        yield SharedApp(client, admin, booker, existing)
    finally:
        await client.close()
        if scratch:
            await drop_scratch_database(scratch)


# --------------------------------------------------------------------------
# POST /api/v1/conferences: the table of bad bodies
# --------------------------------------------------------------------------

BAD_BOOKINGS = [
    # Not JSON at all, or not an object.
    pytest.param(b'{"title": "Giao ban",', 400, ("malformed json",), id="truncated-json"),
    pytest.param(b'{"title": "a",}', 400, ("malformed json",), id="trailing-comma"),
    pytest.param(b"{'title': 'a'}", 400, ("malformed json",), id="single-quotes"),
    pytest.param(b"", 400, ("malformed json",), id="empty-body"),
    pytest.param(b"   ", 400, ("malformed json",), id="blank-body"),
    pytest.param(raw(VALID).replace("tuần".encode(), b"tu\xff\xfen"), 400,
                 ("malformed json",), id="non-utf8-bytes"),
    pytest.param(raw(VALID).replace("tuần".encode(), "tuần".encode("utf-16-le")), 400,
                 ("malformed json",), id="utf16-in-utf8-body"),
    pytest.param(raw(VALID).replace("tuần".encode(), rb"\ud800"), 400,
                 ("malformed json",), id="lone-surrogate"),
    pytest.param(b"\xef\xbb\xbf" + raw(VALID), 400, ("malformed json",), id="utf8-bom"),
    pytest.param(b"[" * 5000 + b"]" * 5000, 400, ("malformed json",), id="deeply-nested"),
    # pydantic's parser reads the non-standard NaN; the value is refused all the same.
    pytest.param(raw(VALID)[:-1] + b', "setup_minutes": NaN}', 422, ("setup_minutes",),
                 id="nan-literal"),
    pytest.param(raw(VALID) + b"garbage", 400, ("malformed json",), id="trailing-garbage"),
    pytest.param(json.dumps([VALID]).encode(), 422, ("json object",), id="json-array"),
    pytest.param(b'"Giao ban"', 422, ("json object",), id="json-string"),
    pytest.param(b"null", 422, ("json object",), id="json-null"),
    pytest.param(b"42", 422, ("json object",), id="json-number"),
    # Missing and unknown fields.
    pytest.param({}, 422, ("title", "chair", "participants", "start", "end"), id="empty-object"),
    pytest.param(booking(title=DROP), 422, ("title", "required"), id="missing-title"),
    pytest.param(booking(start=DROP), 422, ("start", "required"), id="missing-start"),
    pytest.param(booking(participants=DROP), 422, ("participants",), id="missing-participants"),
    pytest.param(booking(titel="Giao ban"), 422, ("titel", "extra"), id="unknown-field"),
    pytest.param(booking(status="live"), 422, ("status", "extra"), id="unknown-field-status"),
    pytest.param(booking(id=1), 422, ("id", "extra"), id="unknown-field-id"),
    pytest.param(booking(created_by="someone-else"), 422, ("created_by",),
                 id="unknown-field-created-by"),
    # Wrong types (validation is strict: no "15" for 15).
    pytest.param(booking(title=123), 422, ("title",), id="title-number"),
    pytest.param(booking(title=None), 422, ("title",), id="title-null"),
    pytest.param(booking(title=["Giao ban"]), 422, ("title",), id="title-list"),
    pytest.param(booking(agenda=5), 422, ("agenda",), id="agenda-number"),
    pytest.param(booking(chair=["UBND-TINH"]), 422, ("chair",), id="chair-list"),
    pytest.param(booking(chair=None), 422, ("chair",), id="chair-null"),
    pytest.param(booking(participants="UBND-TINH,HUYEN-NGA-SON"), 422, ("participants",),
                 id="participants-string"),
    pytest.param(booking(participants=[1, 2]), 422, ("participants",), id="participants-ints"),
    pytest.param(booking(participants={"UBND-TINH": 1, "HUYEN-NGA-SON": 1}), 422,
                 ("participants",), id="participants-object"),
    pytest.param(booking(setup_minutes="15"), 422, ("setup_minutes",), id="setup-string"),
    pytest.param(booking(setup_minutes=15.5), 422, ("setup_minutes",), id="setup-float"),
    pytest.param(booking(setup_minutes=True), 422, ("setup_minutes",), id="setup-bool"),
    pytest.param(booking(setup_minutes=10**30), 422, ("setup_minutes",), id="setup-huge"),
    pytest.param(booking(start=1_764_550_800), 422, ("start",), id="start-epoch-number"),
    pytest.param(booking(start="tomorrow 8am"), 422, ("start",), id="start-garbage"),
    pytest.param(booking(start="2026-12-01"), 422, ("start",), id="start-date-only"),
    pytest.param(booking(start="2026-12-01T08:00:00+25:00"), 422, ("start",),
                 id="start-bad-offset"),
    pytest.param(booking(start="2026-02-30T08:00:00+07:00"), 422, ("start",),
                 id="start-impossible-date"),
    pytest.param(booking(rrule=7), 422, ("rrule",), id="rrule-number"),
    # Naive datetimes (no UTC offset).
    pytest.param(booking(start="2026-12-01T08:00:00"), 422, ("start", "timezone"),
                 id="start-naive"),
    pytest.param(booking(end="2026-12-01T10:00:00"), 422, ("end", "timezone"), id="end-naive"),
    # Titles and agendas.
    pytest.param(booking(title=""), 422, ("title",), id="title-empty"),
    pytest.param(booking(title="   "), 422, ("title", "blank"), id="title-blank"),
    pytest.param(booking(title="ệ" * 201), 422, ("title",), id="title-too-long"),
    pytest.param(booking(title="Giao ban\ntuần"), 422, ("title", "single line"),
                 id="title-newline"),
    pytest.param(booking(title="Giao ban\x07 tuần"), 422, ("title", "control"),
                 id="title-bell"),
    pytest.param(booking(title="Giao ban\x00 tuần"), 422, ("title", "control"),
                 id="title-nul"),
    pytest.param(booking(title="Giao ban\x1b[31m tuần"), 422, ("title", "control"),
                 id="title-ansi-escape"),
    pytest.param(booking(title="Giao ban\x7f"), 422, ("title", "control"), id="title-del"),
    pytest.param(booking(title="Giao ban\x85tuần"), 422, ("title", "control"),
                 id="title-c1-control"),
    pytest.param(booking(agenda="Nội dung\x00"), 422, ("agenda", "control"), id="agenda-nul"),
    pytest.param(booking(agenda="x" * 20_001), 422, ("agenda",), id="agenda-too-long"),
    # Endpoints.
    pytest.param(booking(participants=["UBND-TINH", "HUYEN-NGA-SON", "UBND-TINH"]), 422,
                 ("duplicate", "UBND-TINH"), id="participants-duplicate"),
    pytest.param(booking(participants=["UBND-TINH", "UBND-TINH"]), 422,
                 ("duplicate", "UBND-TINH"), id="participants-only-duplicates"),
    pytest.param(booking(participants=["UBND-TINH"]), 422, ("participants",),
                 id="participants-one"),
    pytest.param(booking(participants=[]), 422, ("participants",), id="participants-empty"),
    pytest.param(booking(participants=["UBND-TINH", f"X-{'A' * 70}"]), 422, ("participants",),
                 id="participant-code-too-long"),
    pytest.param(booking(participants=["UBND-TINH", "huyen-nga-son"]), 422,
                 ("participants",), id="participant-code-lowercase"),
    pytest.param(booking(participants=["UBND-TINH", "HUYỆN-NGA-SƠN"]), 422,
                 ("participants",), id="participant-code-unicode"),
    pytest.param(booking(participants=["UBND-TINH", "' OR 1=1 --"]), 422, ("participants",),
                 id="participant-code-sql"),
    pytest.param(booking(participants=["UBND-TINH", *(f"EP-{i:04d}" for i in range(1000))]),
                 422, ("participants",), id="participants-1001"),
    pytest.param(booking(chair="HUYEN-BA-THUOC"), 422, ("chair", "HUYEN-BA-THUOC"),
                 id="chair-not-participant"),
    pytest.param(booking(chair="ubnd-tinh"), 422, ("chair",), id="chair-lowercase"),
    pytest.param(booking(participants=["UBND-TINH", "HUYEN-KHONG-CO"]), 422,
                 ("unknown", "HUYEN-KHONG-CO"), id="unknown-endpoint"),
    pytest.param(booking(chair="TINH-KHONG-CO", participants=["TINH-KHONG-CO", "UBND-TINH"]),
                 422, ("unknown", "TINH-KHONG-CO"), id="unknown-chair"),
    # Times.
    pytest.param(booking(end="2026-12-01T07:00:00+07:00"), 422, ("end must be after start",),
                 id="end-before-start"),
    pytest.param(booking(end=VALID["start"]), 422, ("end must be after start",),
                 id="end-equals-start"),
    pytest.param(booking(end="2026-12-01T01:00:00Z"), 422, ("end must be after start",),
                 id="end-equals-start-other-offset"),
    pytest.param(booking(start="2026-11-20T08:00:00+07:00", end="2026-11-20T10:00:00+07:00"),
                 422, ("past",), id="start-last-week"),
    pytest.param(booking(start="2026-11-27T09:55:00+07:00", end="2026-11-27T11:00:00+07:00"),
                 422, ("past",), id="start-five-minutes-ago"),
    pytest.param(booking(start="0001-01-01T00:00:00+07:00", end="0001-01-01T02:00:00+07:00"),
                 422, ("start", "years"), id="start-year-1"),
    pytest.param(booking(end="2026-12-04T08:00:00+07:00"), 422, ("at most 12 hours",),
                 id="duration-3-days"),
    pytest.param(booking(end="2026-12-01T20:01:00+07:00"), 422, ("at most 12 hours",),
                 id="duration-12h01"),
    pytest.param(booking(end="9999-12-31T23:59:59+07:00"), 422, ("end", "years"),
                 id="duration-to-year-9999"),
    pytest.param(booking(start="2029-01-02T08:00:00+07:00", end="2029-01-02T10:00:00+07:00"),
                 422, ("days ahead",), id="start-beyond-horizon"),
    pytest.param(booking(start="9999-12-31T23:00:00-12:00", end="9999-12-31T23:30:00-12:00"),
                 422, ("start", "years"), id="start-year-9999"),
    pytest.param(booking(setup_minutes=241), 422, ("setup_minutes",), id="setup-over-limit"),
    pytest.param(booking(setup_minutes=1441), 422, ("setup_minutes",), id="setup-over-a-day"),
    pytest.param(booking(setup_minutes=-1), 422, ("setup_minutes",), id="setup-negative"),
    # RRULEs.
    pytest.param(booking(rrule="FREQ=WEEKLY"), 422, ("rrule", "COUNT or UNTIL"),
                 id="rrule-never-ends"),
    pytest.param(booking(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"), 422,
                 ("rrule", "COUNT or UNTIL"), id="rrule-never-ends-byday"),
    pytest.param(booking(rrule="FREQ=HOURLY;COUNT=3"), 422, ("rrule", "at most daily"),
                 id="rrule-hourly"),
    pytest.param(booking(rrule="FREQ=MINUTELY;UNTIL=20261201T020000Z"), 422,
                 ("rrule", "at most daily"), id="rrule-minutely"),
    pytest.param(booking(rrule="FREQ=SECONDLY;COUNT=5"), 422, ("rrule", "at most daily"),
                 id="rrule-secondly"),
    pytest.param(booking(rrule="every monday"), 422, ("invalid rrule",), id="rrule-garbage"),
    pytest.param(booking(rrule="FREQ=FORTNIGHTLY;COUNT=3"), 422, ("invalid rrule",),
                 id="rrule-unknown-freq"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=3;X-FOO=1"), 422, ("invalid rrule",),
                 id="rrule-unknown-part"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=abc"), 422, ("invalid rrule",),
                 id="rrule-count-not-a-number"),
    pytest.param(booking(rrule="FREQ=DAILY;BYSETPOS=0;COUNT=2"), 422, ("invalid rrule",),
                 id="rrule-bysetpos-0"),
    pytest.param(booking(rrule="FREQ=WEEKLY;UNTIL=not-a-date"), 422, ("invalid rrule",),
                 id="rrule-until-garbage"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=100000"), 422,
                 ("rrule", "more than 260 occurrences"), id="rrule-count-100000"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=261"), 422,
                 ("rrule", "more than 260 occurrences"), id="rrule-count-261"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=" + "9" * 40), 422,
                 ("rrule", "more than 260 occurrences"), id="rrule-count-40-digits"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=0"), 422, ("rrule", "no occurrence"),
                 id="rrule-count-0"),
    pytest.param(booking(rrule="FREQ=DAILY;UNTIL=99991231T235959Z"), 422, ("rrule",),
                 id="rrule-until-year-9999"),
    pytest.param(booking(rrule="DTSTART:20261201T080000\nRRULE:FREQ=DAILY;COUNT=2"), 422,
                 ("rrule",), id="rrule-dtstart-line"),
    pytest.param(booking(rrule="DTSTART=20261201T080000;FREQ=DAILY;COUNT=2"), 422,
                 ("rrule", "DTSTART"), id="rrule-dtstart-part"),
    pytest.param(booking(rrule="FREQ=WEEKLY;UNTIL=20270101T000000"), 422,
                 ("rrule", "UTC"), id="rrule-until-floating"),
    pytest.param(booking(rrule="FREQ=WEEKLY;UNTIL=20270101T000000+0700"), 422,
                 ("rrule", "UNTIL"), id="rrule-until-with-offset"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=2\nRRULE:FREQ=WEEKLY;COUNT=2"), 422,
                 ("rrule",), id="rrule-two-lines"),
    pytest.param(booking(rrule="EXDATE:20261202T080000"), 422, ("rrule",), id="rrule-exdate"),
    pytest.param(booking(rrule=""), 422, ("rrule",), id="rrule-empty"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=2;" + "BYHOUR=8;" * 60), 422, ("rrule",),
                 id="rrule-too-long"),
    pytest.param(booking(rrule="FREQ=YEARLY;COUNT=5"), 422, ("rrule", "horizon"),
                 id="rrule-past-horizon"),
    pytest.param(booking(rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3"), 422,
                 ("rrule", "first occurrence"), id="rrule-start-not-first"),
    pytest.param(booking(rrule="FREQ=DAILY;BYHOUR=8,9;COUNT=4"), 422, ("rrule", "BYHOUR"),
                 id="rrule-overlapping-occurrences"),
    pytest.param(booking(rrule="FREQ=DAILY;INTERVAL=0;COUNT=3"), 422, ("rrule",),
                 id="rrule-interval-0"),
    pytest.param(booking(rrule="FREQ=DAILY;INTERVAL=-1;COUNT=3"), 422, ("rrule",),
                 id="rrule-interval-negative"),
    pytest.param(booking(rrule="FREQ=DAILY;COUNT=3\x00"), 422, ("rrule",), id="rrule-nul"),
    # Too big for the server: 413 before anything is parsed.
    pytest.param(booking(agenda="x" * (MAX_BODY + 1)), 413, ("too large",),
                 id="body-over-256k"),
    pytest.param(b" " * (MAX_BODY + 1) + raw(VALID), 413, ("too large",),
                 id="body-over-256k-whitespace"),
    pytest.param(booking(participants=["UBND-TINH"] * 30_000), 413, ("too large",),
                 id="body-over-256k-participants"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("body", "status", "needles"), BAD_BOOKINGS)
async def test_bad_booking_body(
    shared: SharedApp, body: Any, status: int, needles: tuple[str, ...],
) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await send(client, "POST", CONFERENCES, body, booker)
        await assert_error(response, status, *needles)


async def test_valid_booking_is_accepted(client: Client, booker: Headers, existing: int) -> None:
    """The control case: the reference body itself books."""
    before = await count(client, Conference)
    response = await client.post(CONFERENCES, json=VALID, headers=booker)
    assert response.status == 201, await response.text()
    assert await count(client, Conference) == before + 1


@SHARED_LOOP
@pytest.mark.parametrize("rule", [
    pytest.param("FREQ=DAILY;COUNT=2;BYMONTH=2;BYMONTHDAY=31", id="daily-feb-31"),
    pytest.param("FREQ=DAILY;COUNT=2;BYYEARDAY=367", id="daily-yearday-367"),
])
async def test_rrule_without_occurrences_is_refused_quickly(shared: SharedApp, rule: str) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=booking(rrule=rule), headers=booker)
        await assert_error(response, 422, "rrule")


@SHARED_LOOP
async def test_rrule_with_count_and_until_is_refused(shared: SharedApp) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, json=booking(rrule="FREQ=DAILY;COUNT=2;UNTIL=20270101T000000Z"),
            headers=booker,
        )
        await assert_error(response, 422, "rrule", "COUNT", "UNTIL")


@SHARED_LOOP
@pytest.mark.parametrize(("body", "needle"), [
    pytest.param(booking(title=123), "title", id="title-number"),
    pytest.param(booking(setup_minutes="15"), "setup_minutes", id="setup-string"),
    pytest.param(booking(participants=["UBND-TINH", "UBND-TINH"]), "duplicate",
                 id="participants-duplicate"),
    pytest.param(booking(titel="x"), "titel", id="unknown-field"),
    pytest.param(booking(start="2026-12-01T08:00:00"), "start", id="start-naive"),
])
async def test_validation_message_names_field(
    shared: SharedApp, body: dict[str, Any], needle: str,
) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=body, headers=booker)
        error = await assert_error(response, 422)
    assert needle in error["message"], error


@SHARED_LOOP
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/octet-stream",
    "application/xml", "application/json-patch+json", "multipart/form-data; boundary=x",
])
async def test_booking_not_json_content_type(shared: SharedApp, content_type: str) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, data=raw(VALID), headers={**booker, "Content-Type": content_type}
        )
        await assert_error(response, 415, "application/json")


@SHARED_LOOP
async def test_booking_without_content_type(shared: SharedApp) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, data=raw(VALID), headers={**booker, "Content-Type": ""}
        )
        await assert_error(response, 415, "application/json")


@SHARED_LOOP
async def test_oversized_chunked_body(shared: SharedApp) -> None:
    """A body without Content-Length is cut off at the limit as well."""
    client, booker = shared.client, shared.booker

    async def chunks() -> AsyncIterator[bytes]:
        yield raw(VALID)[:-1] + b', "agenda": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}'

    async with unchanged(client):
        response = await client.post(
            CONFERENCES, data=chunks(), headers={**booker, "Content-Type": "application/json"}
        )
        await assert_error(response, 413, "too large")


@SHARED_LOOP
async def test_oversized_body_with_wrong_type_is_415(shared: SharedApp) -> None:
    client, booker = shared.client, shared.booker
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, data=b"x" * (MAX_BODY + 1),
            headers={**booker, "Content-Type": "text/plain"},
        )
        await assert_error(response, 415)


@SHARED_LOOP
async def test_body_just_under_the_limit_is_read(shared: SharedApp) -> None:
    """A body under 256 KiB is parsed (and refused here for its agenda's length, 422)."""
    client, booker = shared.client, shared.booker
    body = booking(agenda="x" * (MAX_BODY - 1024))
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=body, headers=booker)
        await assert_error(response, 422, "agenda")


# --------------------------------------------------------------------------
# Unicode and HTML are data, stored verbatim
# --------------------------------------------------------------------------

GOOD_TITLES = [
    "Giao ban <script>alert(1)</script> tuần 48 – Thanh Hóa",
    'Họp "khẩn" & <b>đột xuất</b> về bão số 3 🌀',
    "'; DROP TABLE conferences; -- Robert'); <img src=x onerror=alert(1)>",
    "Hội nghị 会议 اجتماع совещание ≤ ≥ € ½",
    "&lt;b&gt; không phải thẻ &amp; ${jndi:ldap://x} {{7*7}} %s %n",
    "ệ" * 200,
    "Tab‑free — zero\u200bwidth and RTL \u202eoverride",
]


@pytest.mark.parametrize("title", GOOD_TITLES, ids=[f"title-{i}" for i in range(len(GOOD_TITLES))])
async def test_unicode_and_html_titles_round_trip(
    client: Client, booker: Headers, title: str
) -> None:
    agenda = "1. Báo cáo <i>tình hình</i>\n2. Thảo luận & kết luận\n\t– Chủ trì: Đ/c <Chủ tịch>"
    response = await client.post(
        CONFERENCES, json=booking(title=title, agenda=agenda), headers=booker
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["title"] == title
    conference_id = created["id"]

    response = await client.get(f"{CONFERENCES}/{conference_id}", headers=booker)
    assert response.status == 200
    assert response.content_type == "application/json"
    shown = await response.json()
    assert shown["title"] == title
    assert shown["agenda"] == agenda

    response = await client.get(CONFERENCES, headers=booker)
    assert [c["title"] for c in (await response.json())["conferences"]] == [title]

    async with client.app[DATABASE].read() as session:
        row = await session.get(Conference, conference_id)
        assert row is not None
        assert (row.title, row.agenda) == (title, agenda)


# --------------------------------------------------------------------------
# PATCH and DELETE /api/v1/conferences/{id}
# --------------------------------------------------------------------------

BAD_PATCHES = [
    pytest.param(b'{"title": ', 400, ("malformed json",), id="malformed-json"),
    pytest.param(b"", 400, ("malformed json",), id="empty-body"),
    pytest.param(b"[]", 422, ("json object",), id="json-array"),
    pytest.param({}, 422, ("nothing to change",), id="nothing"),
    pytest.param({"title": None}, 422, ("null",), id="title-null"),
    pytest.param({"start": None, "end": None}, 422, ("null",), id="times-null"),
    pytest.param({"title": 5}, 422, ("title",), id="title-number"),
    pytest.param({"title": "Giao ban\x00"}, 422, ("title", "control"), id="title-nul"),
    pytest.param({"title": " "}, 422, ("title", "blank"), id="title-blank"),
    pytest.param({"titel": "Giao ban"}, 422, ("titel",), id="unknown-field"),
    pytest.param({"status": "cancelled"}, 422, ("status",), id="status-field"),
    pytest.param({"rrule": "FREQ=DAILY;COUNT=2"}, 422, ("rrule",), id="rrule-field"),
    pytest.param({"id": 99}, 422, ("id",), id="id-field"),
    pytest.param({"participants": ["TINH-UY", "HUYEN-BA-THUOC", "TINH-UY"]}, 422,
                 ("duplicate", "TINH-UY"), id="participants-duplicate"),
    pytest.param({"participants": ["TINH-UY"]}, 422, ("participants",), id="participants-one"),
    pytest.param({"participants": ["HUYEN-NGA-SON", "HUYEN-BA-THUOC"]}, 422, ("chair",),
                 id="chair-dropped"),
    pytest.param({"participants": ["TINH-UY", "HUYEN-KHONG-CO"]}, 422,
                 ("unknown", "HUYEN-KHONG-CO"), id="unknown-endpoint"),
    pytest.param({"chair": "HUYEN-NGA-SON"}, 422, ("chair", "HUYEN-NGA-SON"),
                 id="chair-not-participant"),
    pytest.param({"chair": "tinh-uy"}, 422, ("chair",), id="chair-lowercase"),
    pytest.param({"start": "2026-11-20T14:00:00+07:00"}, 422, ("past",), id="start-past"),
    pytest.param({"start": "2026-12-02T14:00:00"}, 422, ("start",), id="start-naive"),
    pytest.param({"end": "2026-12-02T13:00:00+07:00"}, 422, ("end must be after start",),
                 id="end-before-start"),
    pytest.param({"end": "2026-12-05T14:00:00+07:00"}, 422, ("at most 12 hours",),
                 id="duration-3-days"),
    pytest.param({"start": "2029-06-01T08:00:00+07:00"}, 422, ("days ahead",),
                 id="start-beyond-horizon"),
    pytest.param({"setup_minutes": "15"}, 422, ("setup_minutes",), id="setup-string"),
    pytest.param({"setup_minutes": 241}, 422, ("setup_minutes",), id="setup-over-limit"),
    pytest.param({"title": "Đổi tên", "start": "2026-11-20T14:00:00+07:00"}, 422, ("past",),
                 id="partly-valid"),
    pytest.param({"title": "Đổi tên", "participants": ["TINH-UY", "TINH-UY"]}, 422,
                 ("duplicate",), id="partly-valid-duplicates"),
    pytest.param({"agenda": "x" * (MAX_BODY + 1)}, 413, ("too large",), id="body-over-256k"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("body", "status", "needles"), BAD_PATCHES)
async def test_bad_patch(
    shared: SharedApp, body: Any, status: int, needles: tuple[str, ...],
) -> None:
    client, booker, existing = shared.client, shared.booker, shared.existing
    async with unchanged(client):
        response = await send(client, "PATCH", f"{CONFERENCES}/{existing}", body, booker)
        await assert_error(response, status, *needles)


@SHARED_LOOP
async def test_patch_start_at_end_of_time(shared: SharedApp) -> None:
    client, booker, existing = shared.client, shared.booker, shared.existing
    async with unchanged(client):
        response = await client.patch(
            f"{CONFERENCES}/{existing}", json={"start": "9999-12-31T23:00:00-12:00"},
            headers=booker,
        )
        await assert_error(response, 422, "start")


@SHARED_LOOP
async def test_patch_not_json_content_type(shared: SharedApp) -> None:
    client, booker, existing = shared.client, shared.booker, shared.existing
    async with unchanged(client):
        response = await client.patch(
            f"{CONFERENCES}/{existing}", data=b'{"title": "x"}',
            headers={**booker, "Content-Type": "text/plain"},
        )
        await assert_error(response, 415)


@SHARED_LOOP
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("scope", ["bogus", "", "THIS", "all", "this,following"])
async def test_bad_scope(shared: SharedApp, method: str, scope: str) -> None:
    client, booker, existing = shared.client, shared.booker, shared.existing
    body = {"title": "Đổi tên"} if method == "PATCH" else None
    async with unchanged(client):
        response = await client.request(
            method, f"{CONFERENCES}/{existing}", params={"scope": scope}, json=body,
            headers=booker,
        )
        await assert_error(response, 422, "scope")


UNKNOWN_IDS = [
    pytest.param("999999", id="unknown"),
    pytest.param("0", id="zero"),
    pytest.param("abc", id="letters"),
    pytest.param("-1", id="negative"),
    pytest.param("1.0", id="decimal"),
    pytest.param("1e3", id="exponent"),
    pytest.param("%20", id="space"),
    pytest.param("0x1", id="hex"),
    pytest.param("9" * 19, id="19-digits"),
    pytest.param("9" * 100, id="100-digits"),
    pytest.param("%F0%9F%8E%A5", id="emoji"),
    pytest.param("%C2%B2", id="superscript-two"),
    pytest.param("99999999999", id="above-int32"),
]


@SHARED_LOOP
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("conference_id", UNKNOWN_IDS)
async def test_unknown_conference(shared: SharedApp, method: str, conference_id: str) -> None:
    client, booker = shared.client, shared.booker
    body = {"title": "Đổi tên"} if method == "PATCH" else None
    async with unchanged(client):
        response = await client.request(
            method, f"{CONFERENCES}/{conference_id}", json=body, headers=booker,
        )
        await assert_error(response, 404, "no ")
        if conference_id.isdigit() and len(conference_id) <= 18:
            assert (await response.json())["error"]["message"] == (
                f"no conference {int(conference_id)}"
            )


@SHARED_LOOP
async def test_method_not_allowed(shared: SharedApp) -> None:
    client, booker, existing = shared.client, shared.booker, shared.existing
    async with unchanged(client):
        response = await client.put(f"{CONFERENCES}/{existing}", json=VALID, headers=booker)
        await assert_error(response, 405)
        assert "PATCH" in response.headers.get("Allow", "")


@SHARED_LOOP
async def test_unknown_route(shared: SharedApp) -> None:
    client, booker = shared.client, shared.booker
    response = await client.get("/api/v1/conferencez", headers=booker)
    await assert_error(response, 404)


# --------------------------------------------------------------------------
# 409: conflicts and states
# --------------------------------------------------------------------------


async def test_conflicting_booking(client: Client, booker: Headers, existing: int) -> None:
    body = {**EXISTING, "participants": ["TINH-UY", "HUYEN-NGA-SON"],
            "start": "2026-12-02T15:00:00+07:00", "end": "2026-12-02T17:00:00+07:00"}
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=body, headers=booker)
        error = await assert_error(response, 409, "already booked", "TINH-UY")
    assert [c["conference"] for c in error["details"]["conflicts"]] == [existing]
    assert error["details"]["conflicts"][0]["endpoints"] == ["TINH-UY"]


async def test_conflicting_series(client: Client, booker: Headers, existing: int) -> None:
    """One clashing occurrence refuses the whole series: no occurrence is written."""
    body = {**EXISTING, "title": "Chuỗi", "start": "2026-11-30T14:00:00+07:00",
            "end": "2026-11-30T16:00:00+07:00", "rrule": "FREQ=DAILY;COUNT=5"}
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=body, headers=booker)
        error = await assert_error(response, 409, "already booked")
    assert [c["conference"] for c in error["details"]["conflicts"]] == [existing]


async def test_bridge_capacity(client: Client, booker: Headers) -> None:
    pairs = [("TINH-UY", "HUYEN-BA-THUOC"), ("SO-TTTT", "HUYEN-CAM-THUY"),
             ("DBQH-HDND", "HUYEN-DONG-SON"), ("TP-THANH-HOA", "HUYEN-HA-TRUNG")]
    for chair, other in pairs:
        response = await client.post(
            CONFERENCES, json=booking(chair=chair, participants=[chair, other]), headers=booker
        )
        assert response.status == 201, await response.text()
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=VALID, headers=booker)
        await assert_error(response, 409, "at most 4 conferences")


async def test_patch_into_conflict(client: Client, booker: Headers, existing: int) -> None:
    response = await client.post(CONFERENCES, json=VALID, headers=booker)
    assert response.status == 201
    other = (await response.json())["id"]
    async with unchanged(client):
        response = await client.patch(
            f"{CONFERENCES}/{other}",
            json={"participants": ["UBND-TINH", "HUYEN-NGA-SON", "TINH-UY"],
                  "start": "2026-12-02T13:00:00+07:00", "end": "2026-12-02T15:00:00+07:00"},
            headers=booker,
        )
        await assert_error(response, 409, "already booked", "TINH-UY")


async def test_patch_series_into_conflict(
    client: Client, booker: Headers, existing: int
) -> None:
    """Moving the rest of a series onto a taken slot changes none of its occurrences."""
    series = {**EXISTING, "title": "Chuỗi giao ban", "chair": "UBND-TINH",
              "participants": ["UBND-TINH", "TINH-UY"], "start": "2026-11-30T14:00:00+07:00",
              "end": "2026-11-30T15:00:00+07:00", "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3"}
    response = await client.post(CONFERENCES, json=series, headers=booker)
    assert response.status == 201, await response.text()
    first = (await response.json())["occurrence_ids"][0]
    async with unchanged(client):
        response = await client.patch(
            f"{CONFERENCES}/{first}", params={"scope": "following"},
            json={"title": "Dời lịch", "start": "2026-12-02T13:30:00+07:00",
                  "end": "2026-12-02T14:30:00+07:00"},
            headers=booker,
        )
        await assert_error(response, 409, "already booked", "TINH-UY")


async def test_cancelled_conference_cannot_change(
    client: Client, booker: Headers, existing: int
) -> None:
    response = await client.delete(f"{CONFERENCES}/{existing}", headers=booker)
    assert response.status == 200, await response.text()
    async with unchanged(client):
        response = await client.delete(f"{CONFERENCES}/{existing}", headers=booker)
        await assert_error(response, 409, "already cancelled")
        response = await client.patch(
            f"{CONFERENCES}/{existing}", json={"title": "Hồi sinh"}, headers=booker
        )
        await assert_error(response, 409, "cancelled")


# --------------------------------------------------------------------------
# Authentication: missing, forged, expired and revoked tokens; CSRF
# --------------------------------------------------------------------------

WRITES = [
    pytest.param("POST", CONFERENCES, VALID, id="book"),
    pytest.param("PATCH", f"{CONFERENCES}/1", {"title": "Đổi tên"}, id="edit"),
    pytest.param("DELETE", f"{CONFERENCES}/1", None, id="cancel"),
    pytest.param("POST", USERS,
                 {"username": "mallory", "password": "mallory-password-1", "role": "admin"},
                 id="create-user"),
    pytest.param("POST", "/api/v1/endpoints/UBND-TINH/tokens", {"scope": "agent"},
                 id="endpoint-token"),
]

BAD_CREDENTIALS = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer vcs_" + "A" * 43}, id="forged-login-token"),
    pytest.param({"Authorization": "Bearer vca_forged"}, id="forged-agent-token"),
    pytest.param({"Authorization": "Bearer " + "x" * 300}, id="oversized-token"),
    pytest.param({"Authorization": "Bearer admin"}, id="password-as-token"),
    pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
    pytest.param({"Authorization": "Basic YWRtaW46YWRtaW4="}, id="basic-auth"),
    pytest.param({"Authorization": "Token vcs_abc"}, id="other-scheme"),
    pytest.param({"Cookie": "vcbridge_session=vcs_forged"}, id="forged-cookie"),
]


@SHARED_LOOP
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_missing_or_forged_token(
    shared: SharedApp, credentials: Headers, method: str, path: str, body: dict[str, Any] | None,
) -> None:
    client = shared.client
    client.session.cookie_jar.clear()  # forget the session cookies of the fixtures' logins
    async with unchanged(client):
        response = await client.request(method, path, json=body, headers=credentials)
        await assert_error(response, 401)


async def test_expired_token(
    client: Client, booker: Headers, existing: int, clock: FixedClock
) -> None:
    client.session.cookie_jar.clear()
    clock.set(NOW + timedelta(hours=12, seconds=1))  # login tokens last 12 hours
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, json=booking(start="2026-12-02T08:00:00+07:00",
                                      end="2026-12-02T09:00:00+07:00"), headers=booker,
        )
        await assert_error(response, 401, "expired")


async def test_revoked_token(client: Client, booker: Headers, existing: int) -> None:
    client.session.cookie_jar.clear()
    response = await client.post("/api/v1/auth/logout", headers=booker)
    assert response.status == 200
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=VALID, headers=booker)
        await assert_error(response, 401, "revoked")
        response = await client.delete(f"{CONFERENCES}/{existing}", headers=booker)
        await assert_error(response, 401, "revoked")


async def test_token_of_deactivated_user(
    client: Client, admin: Headers, booker: Headers, existing: int
) -> None:
    client.session.cookie_jar.clear()
    response = await client.get(USERS, headers=admin)
    user_id = next(u["id"] for u in (await response.json())["users"] if u["username"] == "booker1")
    response = await client.patch(f"{USERS}/{user_id}", json={"active": False}, headers=admin)
    assert response.status == 200, await response.text()
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=VALID, headers=booker)
        await assert_error(response, 401)


async def _cookie_session(client: Client, username: str, password: str) -> tuple[str, str]:
    """Log in; returns the session token and its CSRF token (the jar holds the cookie)."""
    client.session.cookie_jar.clear()
    response = await client.post(LOGIN, json={"username": username, "password": password})
    assert response.status == 200
    body = await response.json()
    assert "vcbridge_session" in {c.key for c in client.session.cookie_jar}
    return str(body["token"]), str(body["csrf_token"])


@pytest.mark.parametrize("csrf", [None, "", "0" * 32, "wrong"])
async def test_cookie_without_csrf_token(
    client: Client, booker: Headers, existing: int, csrf: str | None
) -> None:
    _, good = await _cookie_session(client, "booker1", "pw-booker1-123456")
    headers = {} if csrf is None else {"X-CSRF-Token": csrf}
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=VALID, headers=headers)
        await assert_error(response, 403, "X-CSRF-Token", code="csrf")
        response = await client.delete(f"{CONFERENCES}/{existing}", headers=headers)
        await assert_error(response, 403, "X-CSRF-Token", code="csrf")
    # The control: the same cookie with its CSRF token books.
    response = await client.post(CONFERENCES, json=VALID, headers={"X-CSRF-Token": good})
    assert response.status == 201, await response.text()


async def test_csrf_token_of_another_session(
    client: Client, booker: Headers, existing: int
) -> None:
    _, admins_csrf = await _cookie_session(client, "admin", ADMIN_PASSWORD)
    await _cookie_session(client, "booker1", "pw-booker1-123456")
    async with unchanged(client):
        response = await client.post(
            CONFERENCES, json=VALID, headers={"X-CSRF-Token": admins_csrf}
        )
        await assert_error(response, 403, code="csrf")


# --------------------------------------------------------------------------
# Authorisation: wrong role, an operator or endpoint acting for another endpoint
# --------------------------------------------------------------------------


async def test_wrong_role_cannot_book(
    client: Client, make_user: MakeUser, operator: Headers, existing: int
) -> None:
    it = await make_user("it1", "it")
    for headers in (it, operator):
        async with unchanged(client):
            response = await client.post(CONFERENCES, json=VALID, headers=headers)
            await assert_error(response, 403, "role")
            response = await client.patch(
                f"{CONFERENCES}/{existing}", json={"title": "Đổi tên"}, headers=headers
            )
            await assert_error(response, 403)
            response = await client.delete(f"{CONFERENCES}/{existing}", headers=headers)
            await assert_error(response, 403)


async def test_operator_cannot_book_even_for_own_endpoint(
    client: Client, operator: Headers, existing: int
) -> None:
    body = booking(chair="HUYEN-NGA-SON", participants=["HUYEN-NGA-SON", "UBND-TINH"])
    async with unchanged(client):
        response = await client.post(CONFERENCES, json=body, headers=operator)
        await assert_error(response, 403)


async def test_booker_cannot_administer(
    client: Client, booker: Headers, existing: int
) -> None:
    async with unchanged(client):
        response = await client.post(
            USERS, json={"username": "mallory", "password": "mallory-password-1",
                         "role": "admin"}, headers=booker,
        )
        await assert_error(response, 403)
        response = await client.get("/api/v1/audit", headers=booker)
        await assert_error(response, 403)
        response = await client.post(
            "/api/v1/endpoints/UBND-TINH/tokens", json={"scope": "agent"}, headers=booker
        )
        await assert_error(response, 403)
        response = await client.patch(f"{USERS}/1", json={"role": "booker"}, headers=booker)
        await assert_error(response, 403)


async def test_operator_for_another_endpoint(
    client: Client, operator: Headers, existing: int
) -> None:
    """The Nga Son operator cannot see or touch another endpoint's conferences."""
    async with unchanged(client):
        response = await client.get(
            CONFERENCES, params={"endpoint": "TINH-UY"}, headers=operator
        )
        await assert_error(response, 403, "own endpoint")
        response = await client.get(
            "/api/v1/endpoints/TINH-UY/calendar.ics", headers=operator
        )
        await assert_error(response, 403, "another endpoint")
        # A conference it takes no part in is answered as absent (no probing of ids).
        response = await client.get(f"{CONFERENCES}/{existing}", headers=operator)
        await assert_error(response, 404, f"no conference {existing}")
        response = await client.patch(
            f"{CONFERENCES}/{existing}", json={"title": "Chiếm quyền"}, headers=operator
        )
        await assert_error(response, 403)
        response = await client.delete(f"{CONFERENCES}/{existing}", headers=operator)
        await assert_error(response, 403)
        # Its own endpoint is fine: the control.
        response = await client.get(
            CONFERENCES, params={"endpoint": "HUYEN-NGA-SON"}, headers=operator
        )
        assert response.status == 200


async def test_endpoint_tokens_for_another_endpoint(
    client: Client, admin: Headers, existing: int
) -> None:
    agent = bearer(await endpoint_token(client, admin, "HUYEN-NGA-SON", "agent"))
    calendar = await endpoint_token(client, admin, "HUYEN-NGA-SON", "calendar")
    client.session.cookie_jar.clear()
    async with unchanged(client):
        response = await client.get(CONFERENCES, params={"endpoint": "TINH-UY"}, headers=agent)
        await assert_error(response, 403, "own endpoint")
        response = await client.post(CONFERENCES, json=VALID, headers=agent)
        await assert_error(response, 403)
        response = await client.get(
            "/api/v1/endpoints/TINH-UY/calendar.ics", params={"token": calendar}
        )
        await assert_error(response, 403, "another endpoint")
        response = await client.post(CONFERENCES, json=VALID, headers=bearer(calendar))
        await assert_error(response, 403, "calendar")
        response = await client.get(
            "/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics", params={"token": "vcc_forged"}
        )
        await assert_error(response, 401, "calendar token")
        # The agent token is not a calendar token for the ?token= door.
        response = await client.get(
            "/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics",
            params={"token": agent["Authorization"].split()[1]},
        )
        await assert_error(response, 401, "calendar token")


# --------------------------------------------------------------------------
# POST /api/v1/users
# --------------------------------------------------------------------------

GOOD_USER = {"username": "nguyenvana", "password": "mat-khau-dai-123", "role": "booker"}


def user(**changes: Any) -> dict[str, Any]:
    body = dict(GOOD_USER)
    for name, value in changes.items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


BAD_USERS = [
    pytest.param(b'{"username": "a"', 400, ("malformed json",), id="malformed-json"),
    pytest.param(b"[]", 422, ("json object",), id="json-array"),
    pytest.param(user(role="superuser"), 422, ("role",), id="bad-role"),
    pytest.param(user(role="ADMIN"), 422, ("role",), id="role-upper-case"),
    pytest.param(user(role=None), 422, ("role",), id="role-null"),
    pytest.param(user(role=DROP), 422, ("role", "required"), id="role-missing"),
    pytest.param(user(role="operator"), 422, ("operator", "endpoint"),
                 id="operator-without-endpoint"),
    pytest.param(user(role="operator", endpoint="HUYEN-KHONG-CO"), 422,
                 ("unknown endpoint", "HUYEN-KHONG-CO"), id="operator-unknown-endpoint"),
    pytest.param(user(role="operator", endpoint="huyen-nga-son"), 422, ("endpoint",),
                 id="operator-endpoint-lowercase"),
    pytest.param(user(endpoint="HUYEN-NGA-SON"), 422, ("only operators",),
                 id="booker-with-endpoint"),
    pytest.param(user(password="short"), 422, ("password", "10 characters"),
                 id="short-password"),
    pytest.param(user(password=""), 422, ("password",), id="empty-password"),
    pytest.param(user(password="x" * 257), 422, ("password",), id="long-password"),
    pytest.param(user(password=1234567890123), 422, ("password",), id="password-number"),
    pytest.param(user(password=DROP), 422, ("password", "required"), id="password-missing"),
    pytest.param(user(username="admin"), 409, ("admin", "already exists"),
                 id="duplicate-username"),
    pytest.param(user(username="Nguyen Van A"), 422, ("username",), id="username-spaces"),
    pytest.param(user(username="nguyễnvăna"), 422, ("username",), id="username-unicode"),
    pytest.param(user(username="a"), 422, ("username",), id="username-too-short"),
    pytest.param(user(username="a" * 65), 422, ("username",), id="username-too-long"),
    pytest.param(user(username=42), 422, ("username",), id="username-number"),
    pytest.param(user(email="a@example.vn"), 422, ("email", "extra"), id="unknown-field"),
    pytest.param(user(active=False), 422, ("active", "extra"), id="unknown-field-active"),
    pytest.param(user(full_name="x" * 201), 422, ("full_name",), id="full-name-too-long"),
    pytest.param(user(full_name=["Nguyễn", "Văn A"]), 422, ("full_name",),
                 id="full-name-list"),
    pytest.param(user(full_name="Nguyễn\x00Văn A"), 422, ("full_name",),
                 id="full-name-nul"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("body", "status", "needles"), BAD_USERS)
async def test_bad_user(
    shared: SharedApp, body: Any, status: int, needles: tuple[str, ...],
) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await send(client, "POST", USERS, body, admin)
        await assert_error(response, status, *needles)


@SHARED_LOOP
async def test_user_not_json_content_type(shared: SharedApp) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await client.post(
            USERS, data=raw(GOOD_USER), headers={**admin, "Content-Type": "text/plain"}
        )
        await assert_error(response, 415)


async def test_valid_user_is_accepted(client: Client, admin: Headers) -> None:
    """The control case for the table above."""
    before = await count(client, User)
    response = await client.post(USERS, json=GOOD_USER, headers=admin)
    assert response.status == 201, await response.text()
    assert await count(client, User) == before + 1


BAD_USER_PATCHES = [
    pytest.param("1", {}, 422, ("nothing to change",), id="nothing"),
    pytest.param("1", {"active": False}, 422, ("yourself",), id="deactivate-self"),
    pytest.param("1", {"role": "booker"}, 422, ("yourself",), id="demote-self"),
    pytest.param("1", {"role": "root"}, 422, ("role",), id="bad-role"),
    pytest.param("1", {"username": "root"}, 422, ("username",), id="rename"),
    pytest.param("1", {"password": "short"}, 422, ("10 characters",), id="short-password"),
    pytest.param("1", {"active": "no"}, 422, ("active",), id="active-string"),
    pytest.param("1", {"endpoint": "HUYEN-NGA-SON"}, 422, ("only operators",),
                 id="admin-with-endpoint"),
    pytest.param("999", {"full_name": "Ai đó"}, 404, ("no user 999",), id="unknown-user"),
    pytest.param("abc", {"full_name": "Ai đó"}, 404, ("abc",), id="non-numeric-id"),
    pytest.param("99999999999", {"full_name": "Ai đó"}, 404, ("99999999999",),
                 id="id-above-int32"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("user_id", "body", "status", "needles"), BAD_USER_PATCHES)
async def test_bad_user_patch(
    shared: SharedApp, user_id: str, body: dict[str, Any], status: int, needles: tuple[str, ...],
) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await client.patch(f"{USERS}/{user_id}", json=body, headers=admin)
        await assert_error(response, status, *needles)


# --------------------------------------------------------------------------
# Login: wrong passwords and the rate limit
# --------------------------------------------------------------------------


@asynccontextmanager
async def only_audited(
    client: Client, failures: int, then: tuple[str, ...] = ()
) -> AsyncIterator[None]:
    """Nothing but `failures` new auth.login_failed audit events (followed by the
    actions `then`) is written, besides the login limiter's counts."""
    async with client.app[DATABASE].read() as session:
        last = await session.scalar(select(func.max(AuditEvent.id))) or 0
    async with unchanged(client, skip=("audit_events", "login_throttle")):
        yield
    async with client.app[DATABASE].read() as session:
        actions = (await session.scalars(
            select(AuditEvent.action).where(AuditEvent.id > last).order_by(AuditEvent.id)
        )).all()
    assert list(actions) == ["auth.login_failed"] * failures + list(then)


@pytest.mark.parametrize("credentials", [
    pytest.param({"username": "admin", "password": "wrong-password"}, id="wrong-password"),
    pytest.param({"username": "nobody", "password": ADMIN_PASSWORD}, id="unknown-user"),
    pytest.param({"username": "ADMIN", "password": ADMIN_PASSWORD}, id="username-case"),
    pytest.param({"username": "admin", "password": ADMIN_PASSWORD + " "}, id="extra-space"),
])
async def test_login_wrong_credentials(
    client: Client, admin: Headers, credentials: dict[str, str]
) -> None:
    async with only_audited(client, failures=1):
        response = await client.post(LOGIN, json=credentials)
        error = await assert_error(response, 401, "wrong user name or password",
                                   code="invalid_credentials")
    assert "token" not in error


@pytest.mark.parametrize(("body", "status", "needles"), [
    pytest.param(b'{"username": "admin"', 400, ("malformed json",), id="malformed-json"),
    pytest.param(b"", 400, ("malformed json",), id="empty-body"),
    pytest.param(b'["admin", "x"]', 422, ("json object",), id="json-array"),
    pytest.param({"username": "admin"}, 422, ("password", "required"), id="missing-password"),
    pytest.param({"username": "admin", "password": 123}, 422, ("password",),
                 id="password-number"),
    pytest.param({"username": "admin", "password": ""}, 422, ("password",),
                 id="empty-password"),
    pytest.param({"username": "a" * 65, "password": "x"}, 422, ("username",),
                 id="username-too-long"),
    pytest.param({"username": "admin", "password": "x", "remember": True}, 422,
                 ("remember",), id="unknown-field"),
])
async def test_bad_login_body(
    client: Client, admin: Headers, body: Any, status: int, needles: tuple[str, ...]
) -> None:
    async with unchanged(client):
        response = await send(client, "POST", LOGIN, body, {})
        await assert_error(response, status, *needles)


async def test_login_username_with_nul(client: Client, admin: Headers) -> None:
    tokens = await count(client, ApiToken)
    response = await client.post(LOGIN, json={"username": "adm\x00in", "password": "x"})
    await assert_error(response, 422, "username", "control characters")
    assert await count(client, ApiToken) == tokens


async def test_login_not_json_content_type(client: Client, admin: Headers) -> None:
    async with unchanged(client):
        response = await client.post(
            LOGIN, data="username=admin&password=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        await assert_error(response, 415)


async def test_login_rate_limit(client: Client, admin: Headers) -> None:
    async with only_audited(client, failures=5, then=("auth.login_backoff",)):
        for _ in range(5):
            response = await client.post(
                LOGIN, json={"username": "admin", "password": "wrong-password"}
            )
            await assert_error(response, 401, code="invalid_credentials")
        for password in ("wrong-password", ADMIN_PASSWORD):  # even the right one now
            response = await client.post(
                LOGIN, json={"username": "admin", "password": password}
            )
            error = await assert_error(response, 429, "too many failed logins")
            retry_after = response.headers.get("Retry-After", "")
            assert retry_after.isdigit(), response.headers
            assert 1 <= int(retry_after) <= 301
            assert error["details"]["retry_after_seconds"] == int(retry_after)


# --------------------------------------------------------------------------
# Endpoint tokens
# --------------------------------------------------------------------------


@SHARED_LOOP
@pytest.mark.parametrize(("code", "body", "status", "needles"), [
    pytest.param("UBND-TINH", {"scope": "root"}, 422, ("scope",), id="bad-scope"),
    pytest.param("UBND-TINH", {"scope": "login"}, 422, ("scope",), id="login-scope"),
    pytest.param("UBND-TINH", {"label": 5}, 422, ("label",), id="label-number"),
    pytest.param("UBND-TINH", {"lable": "x"}, 422, ("lable",), id="unknown-field"),
    pytest.param("HUYEN-KHONG-CO", {"scope": "agent"}, 404, ("HUYEN-KHONG-CO",),
                 id="unknown-endpoint"),
    pytest.param("UBND-TINH", {"scope": "agent", "label": "Máy\x00 trạm"}, 422, ("label",),
                 id="label-nul"),
])
async def test_bad_endpoint_token(
    shared: SharedApp, code: str, body: dict[str, Any], status: int, needles: tuple[str, ...],
) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await client.post(
            f"/api/v1/endpoints/{code}/tokens", json=body, headers=admin
        )
        await assert_error(response, status, *needles)


@SHARED_LOOP
@pytest.mark.parametrize("token_id", [
    pytest.param("999", id="unknown"),
    pytest.param("abc", id="letters"),
    pytest.param("99999999999", id="above-int32"),
])
async def test_revoke_unknown_endpoint_token(shared: SharedApp, token_id: str) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await client.delete(
            f"/api/v1/endpoints/UBND-TINH/tokens/{token_id}", headers=admin
        )
        await assert_error(response, 404)


# --------------------------------------------------------------------------
# Query strings
# --------------------------------------------------------------------------

BAD_QUERIES = [
    pytest.param(CONFERENCES, {"from": "yesterday"}, 422, ("from",), id="from-garbage"),
    pytest.param(CONFERENCES, {"from": "2026-12-01T00:00:00"}, 422, ("from", "offset"),
                 id="from-naive"),
    pytest.param(CONFERENCES, {"from": "2026-12-02T00:00:00+07:00",
                               "to": "2026-12-01T00:00:00+07:00"}, 422, ("to", "from"),
                 id="to-before-from"),
    pytest.param(CONFERENCES, {"limit": "0"}, 422, ("limit",), id="limit-0"),
    pytest.param(CONFERENCES, {"limit": "ten"}, 422, ("limit",), id="limit-letters"),
    pytest.param(CONFERENCES, {"limit": "5000"}, 422, ("limit",), id="limit-5000"),
    pytest.param(CONFERENCES, {"offset": "-1"}, 422, ("offset",), id="offset-negative"),
    pytest.param(CONFERENCES, {"status": "deleted"}, 422, ("status", "deleted"),
                 id="status-unknown"),
    pytest.param(CONFERENCES, {"endpoint": "HUYEN-KHONG-CO"}, 422, ("HUYEN-KHONG-CO",),
                 id="endpoint-unknown"),
    pytest.param(CONFERENCES, {"series": "abc"}, 422, ("series",), id="series-letters"),
    pytest.param(CONFERENCES, {"series": "0"}, 422, ("series",), id="series-0"),
    pytest.param(CONFERENCES, {"endpoint": "UBND\x00TINH"}, 400, ("control characters",),
                 id="endpoint-nul"),
    pytest.param(CONFERENCES, {"series": "99999999999"}, 422, ("series",),
                 id="series-above-int32"),
    pytest.param(CONFERENCES, {"from": "0001-01-01T00:00:00+00:00"}, 422, ("from",),
                 id="from-year-1"),
    pytest.param("/api/v1/audit", {"limit": "-5"}, 422, ("limit",), id="audit-limit"),
    pytest.param("/api/v1/audit", {"from": "hôm qua"}, 422, ("from",), id="audit-from"),
    pytest.param("/api/v1/audit", {"before_id": "x"}, 422, ("before_id",),
                 id="audit-before-id"),
    pytest.param("/api/v1/audit", {"actor": "admin\x00"}, 400, ("control characters",),
                 id="audit-actor-nul"),
    pytest.param("/api/v1/audit", {"before_id": "99999999999"}, 422, ("before_id",),
                 id="audit-before-id-above-int32"),
    pytest.param("/api/v1/endpoints/UBND\x00TINH", {}, 400, ("control characters",),
                 id="endpoint-path-nul"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("path", "params", "status", "needles"), BAD_QUERIES)
async def test_bad_query(
    shared: SharedApp, path: str, params: dict[str, str], status: int, needles: tuple[str, ...],
) -> None:
    client, admin = shared.client, shared.admin
    async with unchanged(client):
        response = await client.get(path, params=params, headers=admin)
        if status == 200:
            assert response.status == 200, await response.text()
            assert response.content_type == "application/json"
        else:
            await assert_error(response, status, *needles)
