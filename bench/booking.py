"""Booking benchmark: conflict check, create and month listing on a full year.

The scenario of the issue: 10,000 conferences booked over the next year
across the province's 31 endpoints; time the conflict check and the creation
of a new booking, on SQLite and on PostgreSQL, and the listing of one
endpoint's month.

Target: p99 of the conflict check under 5 ms on both databases.

Run it from the project root with the project's virtualenv:

    .venv/bin/python bench/booking.py                    # SQLite and PostgreSQL
    .venv/bin/python bench/booking.py --db sqlite --samples 100
    .venv/bin/python bench/booking.py --db postgres \\
        --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

(`python -m bench.booking` works too.) SQLite lives in a temporary directory.
For PostgreSQL the URL only serves to create a scratch database
`vcbridge_bench_<random>`, dropped at the end (also on Ctrl-C or SIGTERM).

For each database:

1. `prepare_database` migrates and syncs the roster, then the year is filled
   with direct bulk inserts (no conflict check: that would be slow). A
   fixed seed places each conference where an in-memory model of the rules
   (endpoints free, bridge concurrency) accepts it, so the data is a legal
   schedule; the model also predicts the outcome of each measured booking.
2. The conflict check alone (`booked_overlapping` + `endpoint_conflicts` +
   `capacity_problem`) in a write session that is rolled back. The session's
   first statement (`lock_bookings`, as in `create_conference`) runs
   untimed, so connection checkout and BEGIN are not counted.
3. `create_conference` in `Database.write()`, committed: half the requests
   are placed in a slot the model says is free, half at random (mostly
   refused with BookingConflict, rolled back). Both are reported.
4. The real app (`create_app`) on 127.0.0.1 at a free port: POST
   /api/v1/conferences end to end, same mix, then GET /api/v1/conferences
   for one endpoint's calendar month.

Every figure is p50 / p99 / max of `--samples` operations in milliseconds
(time.perf_counter), after `--warmup` uncounted ones. A table goes to
stderr and one JSON line with every figure to stdout.

10,000 conferences a year is close to saturation: the working hours (07:15 to
18:00, Monday to Saturday) are then about 60% booked in endpoint-hours, and
the bridge must run up to 10 conferences at once. The default
`max_concurrent_conferences` (4) cannot hold such a year, so the benchmark
raises it to `--max-concurrent`; otherwise it runs on the built-in settings
(configs/vcbridge.toml is ignored).

The machine matters: the JSON line records the CPUs and the load average
before and after, and each conflict check sample also times a `SELECT 1` in
the same transaction, the floor that CPU contention raises for everything.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import copy
import json
import os
import platform
import random
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import sqlalchemy
from aiohttp import web
from sqlalchemy import insert, select, text

from bench.shared import cpu_model, on_each_database
from bench.shared import summary as summary_ms
from scheduler.booking_api import BOOKING_POLICY
from scheduler.booking_rules import Slot, capacity_problem, endpoint_conflicts
from scheduler.booking_service import (
    BookingConflict,
    BookingPolicy,
    create_conference,
)
from scheduler.booking_store import booked_overlapping, lock_bookings
from scheduler.conference_schemas import ConferenceCreate
from vcbridge.app import create_app
from vcbridge.core.app_keys import PASSWORDS
from vcbridge.core.audit import Actor
from vcbridge.core.bootstrap import prepare_database
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import (
    Conference,
    ConferenceStatus,
    Endpoint,
    EndpointKind,
    Participant,
)
from vcbridge.core.events import EventBus
from vcbridge.core.roster import load_roster
from vcbridge.core.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TARGET_CONFLICT_CHECK_P99_MS = 5.0
# The scratch databases get an admin with a password of this run only.
ADMIN_PASSWORD = secrets.token_urlsafe(18)
SEED = 20261127
ZONE_NAME = "Asia/Ho_Chi_Minh"
ZONE = ZoneInfo(ZONE_NAME)
# Friday 2026-11-27 10:00 in Hanoi, as in the tests; the year starts the next day.
# A fixed clock keeps every run identical (nothing here reads the wall clock).
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
YEAR_DAYS = 365
SETUP_MINUTES = 15

# The day in quarter hours from 07:00 local: endpoints are busy (setup
# included) from 07:15 at the earliest to 18:00 at the latest; meetings start
# on the half hour.
DAY_START = 7 * 60
QUARTER = 15
QUARTERS = (18 * 60 - DAY_START) // QUARTER
FIRST_START = (7 * 60 + 30 - DAY_START) // QUARTER
SETUP_QUARTERS = SETUP_MINUTES // QUARTER

BRIEFING_SHARE = 0.02  # all-31 briefings ("giao ban")
SIZES = list(range(2, 9))
SIZE_WEIGHTS = [30, 22, 16, 12, 9, 6, 5]
DURATIONS = [60, 90, 120, 150, 180]
DURATION_WEIGHTS = [40, 25, 20, 8, 7]
BRIEFING_DURATIONS = [60, 90, 120]
TITLES = [
    "Họp giao ban",
    "Hội nghị triển khai nhiệm vụ",
    "Họp bàn công tác phòng chống thiên tai",
    "Tập huấn chuyển đổi số",
    "Họp Ban chỉ đạo",
    "Hội nghị sơ kết",
    "Làm việc về giải phóng mặt bằng",
    "Họp thẩm định dự án",
]


_SELECT_1 = text("SELECT 1")


class _Rollback(Exception):
    """Raised inside a write session to roll it back."""


# --------------------------------------------------------------------------- statistics


def summary(values: list[float]) -> dict[str, Any]:
    """p50 / p99 / max / mean in milliseconds (3 decimals) of durations given in seconds."""
    return summary_ms([v * 1000 for v in values], digits=3)


def log(message: str) -> None:
    """Progress and tables go to stderr; stdout keeps only the JSON line."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the schedule


@dataclass(frozen=True, slots=True)
class Request:
    """A booking request, on the quarter-hour grid of one day of the year."""

    day: int
    first: int  # first busy quarter (setup included)
    last: int  # quarter after the end
    endpoints: tuple[int, ...]  # indices into the roster
    chair: int
    title: str

    def start(self, days: list[date]) -> datetime:
        return _at(days[self.day], self.first + SETUP_QUARTERS)

    def end(self, days: list[date]) -> datetime:
        return _at(days[self.day], self.last)


def _at(day: date, quarter: int) -> datetime:
    local = datetime(day.year, day.month, day.day, tzinfo=ZONE)
    return (local + timedelta(minutes=DAY_START + quarter * QUARTER)).astimezone(UTC)


@dataclass
class Schedule:
    """In-memory model of the booking rules on the quarter-hour grid: which
    endpoints are busy when, and how many conferences run at once."""

    days: list[date]
    endpoints: int
    max_concurrent: int
    busy: list[list[int]] = field(default_factory=list)  # [day][endpoint] -> bitmask
    running: list[list[int]] = field(default_factory=list)  # [day][quarter] -> count

    def __post_init__(self) -> None:
        self.busy = [[0] * self.endpoints for _ in self.days]
        self.running = [[0] * QUARTERS for _ in self.days]

    def fits(self, request: Request) -> bool:
        mask = ((1 << (request.last - request.first)) - 1) << request.first
        busy = self.busy[request.day]
        if any(busy[e] & mask for e in request.endpoints):
            return False
        return max(self.running[request.day][request.first : request.last]) < self.max_concurrent

    def book(self, request: Request) -> None:
        mask = ((1 << (request.last - request.first)) - 1) << request.first
        busy = self.busy[request.day]
        for e in request.endpoints:
            busy[e] |= mask
        running = self.running[request.day]
        for q in range(request.first, request.last):
            running[q] += 1

    def free_starts(self, day: int, members: tuple[int, ...], quarters: int) -> list[int]:
        """The half-hour starts of `day` where such a meeting fits."""
        busy = 0
        for e in members:
            busy |= self.busy[day][e]
        running = self.running[day]
        found = []
        for start in range(FIRST_START, QUARTERS - quarters + 1, 2):
            first, last = start - SETUP_QUARTERS, start + quarters
            mask = ((1 << (last - first)) - 1) << first
            if not busy & mask and max(running[first:last]) < self.max_concurrent:
                found.append(start)
        return found

    def utilisation(self) -> float:
        """Share of the endpoint-quarters of the working days that are booked."""
        used = sum(bin(mask).count("1") for day in self.busy for mask in day)
        return used / (len(self.days) * self.endpoints * (QUARTERS - SETUP_QUARTERS))


class Generator:
    """Seeded booking requests with the realistic mix."""

    def __init__(self, rng: random.Random, codes: list[str], provincial: set[int]) -> None:
        self.rng = rng
        self.codes = codes
        self.provincial = provincial
        self.counter = 0

    def shape(self) -> tuple[tuple[int, ...], int, int]:
        """Participants, chair and duration in quarters of a new request."""
        rng = self.rng
        everyone = list(range(len(self.codes)))
        if rng.random() < BRIEFING_SHARE:
            members = everyone
            minutes = rng.choice(BRIEFING_DURATIONS)
        else:
            size = rng.choices(SIZES, weights=SIZE_WEIGHTS)[0]
            members = rng.sample(everyone, size)
            minutes = rng.choices(DURATIONS, weights=DURATION_WEIGHTS)[0]
        chairs = [e for e in members if e in self.provincial] or members
        return tuple(members), rng.choice(chairs), minutes // QUARTER

    def request(
        self, members: tuple[int, ...], chair: int, quarters: int, day: int, start: int
    ) -> Request:
        self.counter += 1
        return Request(
            day=day, first=start - SETUP_QUARTERS, last=start + quarters,
            endpoints=members, chair=chair, title=f"{self.rng.choice(TITLES)} #{self.counter}",
        )

    def random_request(self, days: int) -> Request:
        """A request at a random half-hour start of a random working day."""
        members, chair, quarters = self.shape()
        latest = QUARTERS - quarters
        start = FIRST_START + 2 * self.rng.randrange((latest - FIRST_START) // 2 + 1)
        return self.request(members, chair, quarters, self.rng.randrange(days), start)

    def free_request(
        self, schedule: Schedule, shapes: int = 200, days: int = 60
    ) -> tuple[Request | None, int]:
        """A request the model accepts (a booker picking a free slot) or None,
        and the number of days tried."""
        tried = 0
        for _ in range(shapes):
            members, chair, quarters = self.shape()
            for _ in range(days):
                tried += 1
                day = self.rng.randrange(len(schedule.days))
                starts = schedule.free_starts(day, members, quarters)
                if starts:
                    start = self.rng.choice(starts)
                    return self.request(members, chair, quarters, day, start), tried
        return None, tried


def working_days() -> list[date]:
    """Monday to Saturday of the 365 days after NOW (local dates)."""
    today = NOW.astimezone(ZONE).date()
    every = [today + timedelta(days=n) for n in range(1, YEAR_DAYS + 1)]
    return [d for d in every if d.weekday() != 6]


# --------------------------------------------------------------------------- populate


@dataclass
class Plan:
    """The year to load, computed once and loaded into each database."""

    codes: list[str]
    provincial: set[int]
    schedule: Schedule  # the year as loaded (copy it before booking more)
    requests: list[Request]
    attempts: int
    seconds: float


def make_plan(codes: list[str], provincial: set[int], count: int, max_concurrent: int) -> Plan:
    """Place `count` conferences where the model of the rules accepts them."""
    started = time.perf_counter()
    schedule = Schedule(working_days(), len(codes), max_concurrent)
    generator = Generator(random.Random(SEED), codes, provincial)
    requests: list[Request] = []
    attempts = 0
    while len(requests) < count:
        request, tried = generator.free_request(schedule)
        attempts += tried
        if request is None:
            raise RuntimeError(f"placed only {len(requests)} of {count} conferences in the year")
        schedule.book(request)
        requests.append(request)
    return Plan(codes, provincial, schedule, requests, attempts, time.perf_counter() - started)


async def populate(database: Database, plan: Plan, endpoint_ids: list[int]) -> dict[str, Any]:
    """Load the planned year by direct bulk inserts (no conflict check)."""
    started = time.perf_counter()
    days = plan.schedule.days
    conferences: list[dict[str, Any]] = []
    participants: list[dict[str, Any]] = []
    for cid, request in enumerate(plan.requests, start=1):
        start, end = request.start(days), request.end(days)
        conferences.append({
            "id": cid, "series_id": None, "title": request.title, "agenda": "",
            "chair_endpoint_id": endpoint_ids[request.chair], "start": start, "end": end,
            "setup_minutes": SETUP_MINUTES,
            "busy_start": start - timedelta(minutes=SETUP_MINUTES),
            "status": ConferenceStatus.SCHEDULED, "revision": 0,
            "created_at": NOW, "created_by": "bench", "updated_at": NOW, "updated_by": "bench",
        })
        for e in request.endpoints:
            participants.append({
                "id": len(participants) + 1, "conference_id": cid,
                "endpoint_id": endpoint_ids[e],
            })
    async with database.engine.begin() as connection:
        for first in range(0, len(conferences), 2000):
            await connection.execute(insert(Conference), conferences[first:first + 2000])
        for first in range(0, len(participants), 5000):
            await connection.execute(
                insert(Participant), participants[first:first + 5000]
            )
        if not database.is_sqlite:
            for table in ("conferences", "conference_participants"):
                await connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                ))
    inserted = time.perf_counter()
    # PostgreSQL's autovacuum analyses tables this size within a minute of the
    # load; do it now so the plans are the ones a running service gets. SQLite
    # has no automatic ANALYZE and vcbridge runs none, so it is left as it is.
    if not database.is_sqlite:
        async with database.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    return {
        "conferences": len(conferences),
        "participants": len(participants),
        "placement_attempts": plan.attempts,
        "endpoint_utilisation": round(plan.schedule.utilisation(), 3),
        "plan_s": round(plan.seconds, 2),
        "insert_s": round(inserted - started, 2),
    }


# --------------------------------------------------------------------------- measurements


@dataclass
class Outcomes:
    """Durations (seconds) per outcome, and disagreements with the model."""

    created: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    mismatches: int = 0


async def measure_conflict_check(
    database: Database, policy: BookingPolicy, generator: Generator, schedule: Schedule,
    codes: list[str], samples: int, warmup: int,
) -> tuple[list[float], list[float], float]:
    """(a) the conflict check alone, in a write session rolled back; also a
    `SELECT 1` in the same transaction, the floor any statement pays here."""
    timings: list[float] = []
    floor: list[float] = []
    rows = 0
    for n in range(warmup + samples):
        request = generator.random_request(len(schedule.days))
        slots = [Slot(request.start(schedule.days), request.end(schedule.days), SETUP_MINUTES)]
        wanted = [codes[e] for e in request.endpoints]
        elapsed, trivial, booked = 0.0, 0.0, []
        try:
            async with database.write() as session:
                await lock_bookings(session)  # untimed: connection + BEGIN, as in create
                started = time.perf_counter()
                booked = await booked_overlapping(session, slots)
                endpoint_conflicts(slots, wanted, booked)
                capacity_problem(slots, len(wanted), booked, policy.limits)
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                await session.execute(_SELECT_1)
                trivial = time.perf_counter() - started
                raise _Rollback
        except _Rollback:
            pass
        if n >= warmup:
            timings.append(elapsed)
            floor.append(trivial)
            rows += len(booked)
    return timings, floor, rows / max(1, samples)


def _create_body(request: Request, days: list[date], codes: list[str]) -> dict[str, Any]:
    return {
        "title": request.title,
        "chair": codes[request.chair],
        "participants": [codes[e] for e in request.endpoints],
        "start": request.start(days).astimezone(ZONE).isoformat(),
        "end": request.end(days).astimezone(ZONE).isoformat(),
    }


def _next_request(generator: Generator, schedule: Schedule, n: int) -> Request:
    """Alternately a request in a slot the model finds free and a random one."""
    request = generator.free_request(schedule)[0] if n % 2 == 0 else None
    return request or generator.random_request(len(schedule.days))


async def measure_creates(
    book: Callable[[Request], Awaitable[bool]], generator: Generator, schedule: Schedule,
    samples: int, warmup: int,
) -> Outcomes:
    """Time `book` (True: created, False: refused) over the mixed requests."""
    outcomes = Outcomes()
    for n in range(warmup + samples):
        request = _next_request(generator, schedule, n)
        expected = schedule.fits(request)
        started = time.perf_counter()
        created = await book(request)
        elapsed = time.perf_counter() - started
        if created:
            schedule.book(request)
        if created != expected:
            outcomes.mismatches += 1
        if n >= warmup:
            (outcomes.created if created else outcomes.refused).append(elapsed)
    return outcomes


async def measure_direct_creates(
    database: Database, policy: BookingPolicy, generator: Generator, schedule: Schedule,
    codes: list[str], samples: int, warmup: int,
) -> Outcomes:
    """(b) create_conference in Database.write(), committed or rolled back."""
    actor = Actor(name="bench", role="admin", remote="127.0.0.1")
    # Publishing only writes the event in the transaction; no tailer is needed.
    bus = EventBus(database)

    async def book(request: Request) -> bool:
        body = ConferenceCreate(
            title=request.title, chair=codes[request.chair],
            participants=[codes[e] for e in request.endpoints],
            start=request.start(schedule.days), end=request.end(schedule.days),
        )
        try:
            async with database.write() as session:
                await create_conference(session, body, actor, NOW, policy, bus)
        except BookingConflict:
            return False
        return True

    return await measure_creates(book, generator, schedule, samples, warmup)


@asynccontextmanager
async def running_app(app: web.Application) -> AsyncIterator[str]:
    """The application on 127.0.0.1 at a free port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def measure_http(
    app: web.Application, generator: Generator, schedule: Schedule, codes: list[str],
    samples: int, warmup: int,
) -> tuple[Outcomes, list[float], float]:
    """(c) POST /api/v1/conferences and (d) one endpoint's month, over HTTP."""
    async with running_app(app) as base, aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as client:
        async with client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"login failed: {response.status} {await response.text()}")
            token = (await response.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def book(request: Request) -> bool:
            body = _create_body(request, schedule.days, codes)
            async with client.post("/api/v1/conferences", json=body, headers=headers) as reply:
                await reply.read()
                if reply.status not in (201, 409):
                    raise RuntimeError(f"POST answered {reply.status}: {await reply.text()}")
                return reply.status == 201

        creates = await measure_creates(book, generator, schedule, samples, warmup)

        months = sorted({(d.year, d.month) for d in schedule.days})[1:-1]  # whole months
        rng = generator.rng
        listing: list[float] = []
        rows = 0
        for n in range(warmup + samples):
            year, month = rng.choice(months)
            first = datetime(year, month, 1, tzinfo=ZONE)
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=ZONE)
            params = {
                "endpoint": rng.choice(codes),
                "from": first.isoformat(),
                "to": following.isoformat(),
            }
            started = time.perf_counter()
            async with client.get("/api/v1/conferences", params=params,
                                  headers=headers) as reply:
                payload = await reply.json()
            elapsed = time.perf_counter() - started
            if reply.status != 200:
                raise RuntimeError(f"GET answered {reply.status}: {payload}")
            if n >= warmup:
                listing.append(elapsed)
                rows += len(payload["conferences"])
    return creates, listing, rows / max(1, samples)


# --------------------------------------------------------------------------- one database


async def bench_database(
    url: str, label: str, args: argparse.Namespace, data_dir: Path, plan: Plan
) -> dict[str, Any]:
    """Every measurement on the database at `url`."""
    settings = Settings(
        database_url=url, data_dir=data_dir, admin_password=ADMIN_PASSWORD,
        timezone=ZONE_NAME, default_setup_minutes=SETUP_MINUTES,
        max_concurrent_conferences=args.max_concurrent,
    )
    # The app is built first: the benchmark uses its policy and password
    # hasher, and serves it over HTTP at the end.
    app = create_app(settings, clock=FixedClock(NOW))
    policy = app[BOOKING_POLICY]
    codes = plan.codes
    # Each database gets the same year and the same measured requests.
    schedule = copy.deepcopy(plan.schedule)
    generator = Generator(random.Random(SEED + 1), codes, plan.provincial)
    database = Database(url)
    result: dict[str, Any] = {}
    try:
        log(f"[{label}] migrating and syncing the roster")
        await prepare_database(database, settings, NOW, app[PASSWORDS])
        async with database.read() as session:
            found = await session.execute(
                select(Endpoint.code, Endpoint.id).where(Endpoint.active.is_(True))
            )
            ids = {code: endpoint_id for code, endpoint_id in found}
        if sorted(ids) != sorted(codes):
            raise RuntimeError("the database's active endpoints differ from the roster")
        log(f"[{label}] loading {len(plan.requests)} conferences")
        result["populate"] = await populate(database, plan, [ids[c] for c in codes])
        log(f"[{label}] loaded: {result['populate']}")

        log(f"[{label}] conflict check x{args.samples}")
        check, floor, rows = await measure_conflict_check(
            database, policy, generator, schedule, codes, args.samples, args.warmup
        )
        result["conflict_check_ms"] = summary(check)
        result["select_1_ms"] = summary(floor)
        result["conflict_check_overlapping_mean"] = round(rows, 1)

        log(f"[{label}] create_conference x{args.samples}")
        direct = await measure_direct_creates(
            database, policy, generator, schedule, codes, args.samples, args.warmup
        )
        result["create_ms"] = summary(direct.created)
        result["create_conflict_ms"] = summary(direct.refused)
        result["create_model_mismatches"] = direct.mismatches
    finally:
        await database.dispose()

    log(f"[{label}] HTTP: POST x{args.samples}, GET month x{args.samples}")
    http, listing, rows = await measure_http(
        app, generator, schedule, codes, args.samples, args.warmup
    )
    result["http_create_ms"] = summary(http.created)
    result["http_conflict_ms"] = summary(http.refused)
    result["http_create_model_mismatches"] = http.mismatches
    result["list_month_ms"] = summary(listing)
    result["list_month_rows_mean"] = round(rows, 1)
    result["conflict_check_meets_target"] = (
        result["conflict_check_ms"]["p99"] < TARGET_CONFLICT_CHECK_P99_MS
    )
    return result


# --------------------------------------------------------------------------- report


def table(results: dict[str, dict[str, Any]]) -> str:
    """The figures as a readable table."""
    rows = [
        ("conflict check", "conflict_check_ms"),
        ("  (SELECT 1, same session)", "select_1_ms"),
        ("create (committed)", "create_ms"),
        ("create (409, rolled back)", "create_conflict_ms"),
        ("HTTP POST 201", "http_create_ms"),
        ("HTTP POST 409", "http_conflict_ms"),
        ("HTTP GET endpoint month", "list_month_ms"),
    ]
    lines = [f"{'':28}{'db':>10}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for name, key in rows:
        for db, result in results.items():
            if "error" in result:
                continue
            s = result[key]
            if s["n"] == 0:
                lines.append(f"{name:28}{db:>10}{0:>6}{'-':>10}{'-':>10}{'-':>10}")
                continue
            lines.append(
                f"{name:28}{db:>10}{s['n']:>6}{s['p50']:>10.2f}{s['p99']:>10.2f}{s['max']:>10.2f}"
            )
    for db, result in results.items():
        if "error" in result:
            lines.append(f"{db}: FAILED: {result['error']}")
            continue
        verdict = "meets" if result["conflict_check_meets_target"] else "MISSES"
        lines.append(
            f"{db}: conflict check p99 {result['conflict_check_ms']['p99']:.2f} ms "
            f"{verdict} the {TARGET_CONFLICT_CHECK_P99_MS:g} ms target; "
            f"{result['conflict_check_overlapping_mean']} overlapping conferences per check; "
            f"{result['list_month_rows_mean']} conferences per month listed; "
            f"model mismatches {result['create_model_mismatches']}"
            f"/{result['http_create_model_mismatches']}"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    # SIGTERM cancels the run like Ctrl-C does, so the scratch database is still dropped.
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "aiohttp": aiohttp.__version__,
        # Other processes on the machine skew the figures: the load before and after.
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    roster = load_roster(Settings().roster_file)
    codes = [e.code for e in roster]
    provincial = {i for i, e in enumerate(roster) if e.kind is EndpointKind.PROVINCIAL}
    log(f"planning {args.conferences} conferences over the {len(working_days())} working "
        f"days of a year, {len(codes)} endpoints")
    plan = make_plan(codes, provincial, args.conferences, args.max_concurrent)
    log(f"planned in {plan.seconds:.1f} s, endpoint utilisation "
        f"{plan.schedule.utilisation():.0%}")
    results = await on_each_database(
        wanted, args.postgres_url, machine,
        lambda url, db, tmp: bench_database(url, db, args, tmp, plan),
        failures=(OSError, asyncpg.PostgresError, sqlalchemy.exc.SQLAlchemyError, RuntimeError))
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    log("")
    log(table(results))
    report = {
        "bench": "booking",
        "conferences": args.conferences,
        "samples": args.samples,
        "warmup": args.warmup,
        "seed": SEED,
        "target_conflict_check_p99_ms": TARGET_CONFLICT_CHECK_P99_MS,
        "max_concurrent_conferences": args.max_concurrent,
        **results,
        "machine": machine,
    }
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--conferences", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-concurrent", type=int, default=10,
                        help="the bridge's max_concurrent_conferences for the benchmark")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="an existing database, used only to create a scratch one")
    args = parser.parse_args(argv)
    for name in ("conferences", "samples", "max_concurrent"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main() -> int:
    args = parse_args()
    # Built-in defaults plus the overrides above, whatever configs/vcbridge.toml
    # says: the figures must not depend on a local configuration file.
    os.environ["VCBRIDGE_CONFIG"] = os.devnull
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; scratch databases dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
