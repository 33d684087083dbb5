"""Scheduler benchmark: lateness of the lifecycle transitions, and reconcile after a restart.

The scenario of the issue: 1,000 conferences booked over the next minutes;
measure the lateness of each open/live/end transition (p50, p99, max) and the
time to reconcile after a restart.

Targets: p99 lateness under 250 ms; reconcile after a restart under 2 s.

Run it from the project root with the project's virtualenv:

    .venv/bin/python bench/scheduler.py                    # SQLite, then PostgreSQL
    .venv/bin/python bench/scheduler.py --db sqlite --minutes 2
    .venv/bin/python bench/scheduler.py --db postgres \\
        --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

(`python -m bench.scheduler` works too.) SQLite lives in a temporary
directory. For PostgreSQL the URL only serves to create a scratch database
`vcbridge_bench_<random>`, dropped at the end. Everything is on loopback.

This is a real-time benchmark: one database takes about `--lead` (20 s) +
`--minutes` + the longest conference (90 s) + a few seconds, so the default
`--db both` runs about ten minutes. It stops by itself: the wait for the last
conference to end is bounded by its end + 30 s.

For each database, in one process on the default asyncio event loop (not
uvloop):

1. `prepare_database` migrates and syncs the roster (31 endpoints), then
   `--conferences` conferences are inserted directly (status scheduled, no
   booking rules: endpoint conflicts do not matter here) with a fixed seed:
   starts uniform over `--minutes` from `--lead` seconds after now, setup 0
   or 1 minute (0 when a 1-minute setup would open the room within the lead
   time), 30-90 s long, 2-4 participants each. No endpoint is online, so
   every participant is invited at the start and redialled by the 1 s
   connect tick (real redial policy from the settings), as in production
   when nobody answers.
2. A real `EventBus` and a `LifecycleRunner` with the real `SystemClock` and
   a bridge that only notes its calls (`warn_minutes=0`: the transitions are open, live and
   end). `await runner.start()` is timed: it includes the first reconcile of
   every conference.
3. Halfway through `--minutes`, a crash: `runner.stop()`, `--outage` seconds
   of nothing, then a NEW runner's `start()` is timed: the reconcile after a
   restart (the bus and the connection pool stay up, so caches are warm; the
   first start above is the cold figure). `reconcile()` alone is then timed
   once more on the running runner.
4. When every conference has ended, the `conference.opened/live/ended`
   events are read back. Lateness is `data.late_ms` (the clock read inside
   `advance`, after the row locks, minus the due time), cross-checked
   with the event's `at` minus the due time computed from the conference row.
   Transitions due between `stop()` and the return of the new runner's
   `start()` are late by design: they are reported apart ("caught up after
   restart") and left out of the on-time percentiles.

Also reported, to explain the lateness: the breakdown of each on-time
transition into timer delay (due -> the timer job enters `sync` or
`sync_many`), wait before the clock read (connection, BEGIN, the conference
row locks), and the rest (commit, bridge call, next timer); when the bridge
and an event-bus subscriber saw each transition; the duration of each `sync`
or `sync_many` call and connect tick; the event loop's lag (a 20 ms
sleeper); the process CPU (time.process_time deltas each second); warnings
and errors logged.

A sync that fails (e.g. SQLite's "database is locked" after its 10 s busy
timeout) is counted from the log, a `start()` that fails is recorded under
`reconcile.errors`, and conferences still active at the end are reported:
the run goes on and reports rather than stopping at the first failure.
`cpu.machine_busy_pct` and `cpu.others_pct_of_one_cpu` (from /proc/stat) say
how much other processes competed for the CPUs: lateness here is mostly
waiting for a serialised write, which CPU starvation stretches a lot.

Every figure in milliseconds is p50 / p99 / max (nearest rank). A table goes
to stderr and one JSON line with every figure to stdout.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apscheduler
import sqlalchemy
from sqlalchemy import func, insert, select, text

from bench.shared import cpu_model, on_each_database, percentile, summary
from scheduler.lifecycle_wiring import redial_policy
from scheduler.runner import LifecycleRunner
from scheduler.transitions import Advanced, LifecycleSettings
from vcbridge.core.bootstrap import prepare_database
from vcbridge.core.clock import SystemClock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import ACTIVE_STATUSES, Conference, ConferenceStatus, Endpoint, Event
from vcbridge.core.db.models import Participant as ParticipantRow
from vcbridge.core.events import EventBus
from vcbridge.core.settings import Settings, passwords_for

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TARGET_P99_LATE_MS = 250.0
TARGET_RECONCILE_S = 2.0
SEED = 20261127
DURATION_S = (30, 90)
PARTICIPANTS = (2, 4)
SETUPS = (0, 1)
END_GRACE_S = 30.0
LAG_PERIOD_S = 0.02
KINDS = {"conference.opened": "open", "conference.live": "live", "conference.ended": "end"}

log = logging.getLogger("bench.scheduler")


# --------------------------------------------------------------------------- statistics


def ms_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def emit(message: str) -> None:
    """Progress and tables go to stderr; stdout keeps only the JSON line."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- instrumentation


@dataclass
class SyncSample:
    """One `sync` that applied something."""

    conference_id: int
    planned: datetime | None  # when its timer was set to fire (None: from reconcile)
    entered: datetime
    left: datetime


@dataclass
class Probe:
    """What the instrumented runners, bridge and observers recorded (wall clock, UTC)."""

    syncs: list[SyncSample] = field(default_factory=list)
    idle_syncs: int = 0
    sync_ms: list[float] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    reconciles: list[tuple[int | None, float]] = field(default_factory=list)  # (looked at, s)
    opened: dict[int, datetime] = field(default_factory=dict)  # bridge open_room
    closed: dict[int, datetime] = field(default_factory=dict)  # bridge close_room
    invites: int = 0
    received: dict[int, datetime] = field(default_factory=dict)  # bus seq -> delivered
    subscriber_overflowed: bool = False


class InstrumentedRunner(LifecycleRunner):
    """The real runner, timing its reconciles, syncs and ticks."""

    def __init__(self, probe: Probe, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probe = probe

    async def reconcile(self) -> int:
        started = time.perf_counter()
        looked_at: int | None = None
        try:
            looked_at = await super().reconcile()
        finally:  # None: it raised
            self.probe.reconciles.append((looked_at, time.perf_counter() - started))
        return looked_at

    async def sync(self, conference_id: int) -> Advanced:
        planned = self._planned.get(conference_id)
        entered = datetime.now(UTC)
        started = time.perf_counter()
        result = await super().sync(conference_id)
        self._record([result], {conference_id: planned}, entered, started)
        return result

    async def sync_many(self, conference_ids: Sequence[int]) -> list[Advanced]:
        # The wake-up timer, reconcile and refresh advance conferences in batches.
        planned = {cid: self._planned.get(cid) for cid in conference_ids}
        entered = datetime.now(UTC)
        started = time.perf_counter()
        results = await super().sync_many(conference_ids)
        self._record(results, planned, entered, started)
        return results

    def _record(self, results: Sequence[Advanced], planned: dict[int, datetime | None],
                entered: datetime, started: float) -> None:
        """One duration per call; one sample per conference that applied something."""
        left = datetime.now(UTC)
        self.probe.sync_ms.append((time.perf_counter() - started) * 1000)
        for result in results:
            if result.applied:
                self.probe.syncs.append(SyncSample(result.conference_id,
                                                   planned.get(result.conference_id),
                                                   entered, left))
            else:
                self.probe.idle_syncs += 1

    async def _tick(self) -> None:
        started = time.perf_counter()
        await super()._tick()
        self.probe.tick_ms.append((time.perf_counter() - started) * 1000)


class RecordingBridge:
    """A `BridgePort` with no rooms that notes when it was asked to act (after commit)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def open_room(self, conference_id: int, chair: str,
                        participants: Sequence[str]) -> None:
        self.probe.opened.setdefault(conference_id, datetime.now(UTC))

    async def invite(self, conference_id: int, endpoint: str) -> None:
        self.probe.invites += 1

    async def close_room(self, conference_id: int, reason: str) -> None:
        self.probe.closed.setdefault(conference_id, datetime.now(UTC))


async def observe_bus(bus: EventBus, probe: Probe, ready: asyncio.Event) -> None:
    """A subscriber (as a WebSocket client would be): when each transition arrived."""
    async with bus.subscribe() as subscription:
        ready.set()
        while (event := await subscription.queue.get()) is not None:
            if event.type in KINDS:
                probe.received[event.seq] = datetime.now(UTC)
        probe.subscriber_overflowed = subscription.overflowed


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields) - idle) / hz, sum(fields) / hz


async def sample_cpu(samples: list[tuple[float, float]], machine: list[float]) -> None:
    """(wall s, CPU s) of this process every second, and the machine's (busy, total)
    CPU seconds over the same time, until cancelled."""
    wall, cpu = time.perf_counter(), time.process_time()
    busy0, total0 = machine_busy()
    try:
        while True:
            await asyncio.sleep(1.0)
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            samples.append((now_wall - wall, now_cpu - cpu))
            wall, cpu = now_wall, now_cpu
    finally:
        busy1, total1 = machine_busy()
        machine[:] = [busy1 - busy0, total1 - total0]


async def sample_loop_lag(lags_ms: list[float]) -> None:
    """How late a 20 ms sleep wakes up: the event loop's responsiveness."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(LAG_PERIOD_S)
        lags_ms.append(max(0.0, (loop.time() - started - LAG_PERIOD_S) * 1000))


class HideCancelledJobs(logging.Filter):
    """Keeps the traceback of a job cancelled by the simulated crash off stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class CountingHandler(logging.Handler):
    """Counts warnings and errors per logger (e.g. APScheduler's skipped ticks)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            self.counts["jobs cancelled by stop()"] += 1
            return
        error = record.exc_info[1] if record.exc_info else None
        suffix = f" {type(error).__name__}: {str(error).splitlines()[0][:80]}" if error else ""
        self.counts[f"{record.levelname} {record.name}{suffix}"] += 1
        if len(self.first) < 5:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:200]}")


# --------------------------------------------------------------------------- the bookings


@dataclass(frozen=True, slots=True)
class Booking:
    """One inserted conference and its due times."""

    id: int
    start: datetime
    end: datetime
    setup_minutes: int

    def due(self, kind: str) -> datetime:
        if kind == "open":
            return self.start - timedelta(minutes=self.setup_minutes)
        return self.start if kind == "live" else self.end


def plan_bookings(
    rng: random.Random, t0: datetime, count: int, minutes: float, lead: float
) -> list[tuple[Booking, list[int]]]:
    """`count` conferences starting uniformly over `minutes` from `lead` s after t0;
    each with the roster indices of its participants (the first one chairs)."""
    first_open = t0 + timedelta(seconds=lead)
    planned = []
    for cid in range(1, count + 1):
        start = first_open + timedelta(seconds=rng.uniform(0, minutes * 60))
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)
        setup = rng.choice(SETUPS)
        if start - timedelta(minutes=setup) < first_open:
            setup = 0
        end = start + timedelta(seconds=rng.uniform(*DURATION_S))
        members = rng.sample(range(31), rng.randint(*PARTICIPANTS))
        planned.append((Booking(cid, start, end, setup), members))
    return planned


async def populate(
    database: Database, planned: list[tuple[Booking, list[int]]], endpoint_ids: list[int],
    now: datetime,
) -> float:
    """Insert the conferences and participants directly; returns the seconds taken."""
    started = time.perf_counter()
    conferences: list[dict[str, Any]] = []
    participants: list[dict[str, Any]] = []
    for booking, members in planned:
        conferences.append({
            "id": booking.id, "series_id": None, "title": f"Bench conference #{booking.id}",
            "agenda": "", "chair_endpoint_id": endpoint_ids[members[0]],
            "start": booking.start, "end": booking.end, "setup_minutes": booking.setup_minutes,
            "busy_start": booking.start - timedelta(minutes=booking.setup_minutes),
            "status": ConferenceStatus.SCHEDULED, "revision": 0, "warned": False,
            "created_at": now, "created_by": "bench", "updated_at": now, "updated_by": "bench",
        })
        for member in members:
            participants.append({"id": len(participants) + 1, "conference_id": booking.id,
                                 "endpoint_id": endpoint_ids[member]})
    async with database.engine.begin() as connection:
        await connection.execute(insert(Conference), conferences)
        await connection.execute(insert(ParticipantRow), participants)
        if not database.is_sqlite:
            for table in ("conferences", "conference_participants"):
                await connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                ))
    if not database.is_sqlite:  # what autovacuum would do within a minute
        async with database.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- one database


@dataclass
class Run:
    """The moments of one run (wall clock, UTC) and the timed starts."""

    first_start_begin: datetime | None = None
    first_start_done: datetime | None = None
    first_start_s: float = 0.0
    outage_begin: datetime | None = None
    restart_done: datetime | None = None
    restart_s: float = 0.0
    reconcile_again_s: float = 0.0
    reconcile_again_looked_at: int | None = None
    reconcile_again_begin: datetime | None = None
    reconcile_again_done: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    ended_wait_s: float = 0.0
    unfinished: int = 0


def build_runner(
    probe: Probe, database: Database, bus: EventBus, settings: Settings
) -> InstrumentedRunner:
    """A runner as `lifecycle_wiring` builds it, with `warn_minutes=0`."""
    return InstrumentedRunner(
        probe, database, bus, SystemClock(), RecordingBridge(probe),
        LifecycleSettings(warn_minutes=0,
                          presence_stale=timedelta(seconds=settings.presence_stale_seconds)),
        redial_policy(settings),
        timedelta(minutes=settings.scheduler_horizon_minutes),
    )


async def timed(step: Awaitable[object], name: str, run: Run) -> float:
    """Seconds `step` took. A failure is recorded in `run.errors`, not raised: the
    conferences still go on (e.g. a sync inside the reconcile that timed out on the
    SQLite lock aborts `start()`, and the timers planned before it still fire)."""
    started = time.perf_counter()
    try:
        await step
    except Exception as exc:
        log.exception("%s failed", name)
        run.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    return time.perf_counter() - started


async def sleep_until(moment: datetime) -> None:
    wait = (moment - datetime.now(UTC)).total_seconds()
    if wait > 0:
        await asyncio.sleep(wait)


async def active_count(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(
            select(func.count()).select_from(Conference)
            .where(Conference.status.in_(ACTIVE_STATUSES))
        ) or 0)


async def bench_database(
    url: str, label: str, args: argparse.Namespace, data_dir: Path, base: Settings
) -> dict[str, Any]:
    """Book, run through a crash and restart, and measure, on the database at `url`."""
    settings = base.model_copy(update={"database_url": url, "data_dir": data_dir})
    database = Database(url)
    probe = Probe()
    run = Run()
    cpu: list[tuple[float, float]] = []
    machine_cpu: list[float] = []
    lags: list[float] = []
    handler = CountingHandler()
    logging.getLogger().addHandler(handler)
    background: list[asyncio.Task[None]] = []
    bus: EventBus | None = None
    runner: InstrumentedRunner | None = None
    result: dict[str, Any] = {}
    try:
        emit(f"[{label}] migrating and syncing the roster")
        await prepare_database(database, settings, datetime.now(UTC), passwords_for(settings))
        async with database.read() as session:
            rows = (await session.execute(
                select(Endpoint.code, Endpoint.id).where(Endpoint.active.is_(True))
                .order_by(Endpoint.id)
            )).all()
        if len(rows) != 31:
            raise RuntimeError(f"expected the 31 endpoints of the roster, found {len(rows)}")
        endpoint_ids = [endpoint_id for _, endpoint_id in rows]

        t0 = datetime.now(UTC)
        planned = plan_bookings(random.Random(args.seed), t0, args.conferences, args.minutes,
                                args.lead)
        bookings = {b.id: b for b, _ in planned}
        insert_s = await populate(database, planned, endpoint_ids, t0)
        last_end = max(b.end for b in bookings.values())
        result["populate"] = {
            "conferences": len(planned),
            "participants": sum(len(m) for _, m in planned),
            "setup_1_minute": sum(1 for b in bookings.values() if b.setup_minutes == 1),
            "insert_s": round(insert_s, 2),
        }
        emit(f"[{label}] inserted {result['populate']} ; last end in "
             f"{(last_end - datetime.now(UTC)).total_seconds():.0f} s")

        bus = EventBus(database)
        await bus.start()
        ready = asyncio.Event()
        background.append(asyncio.create_task(observe_bus(bus, probe, ready)))
        await ready.wait()
        background.append(asyncio.create_task(sample_cpu(cpu, machine_cpu)))
        background.append(asyncio.create_task(sample_loop_lag(lags)))

        runner = build_runner(probe, database, bus, settings)
        run.first_start_begin = datetime.now(UTC)
        run.first_start_s = await timed(runner.start(), "first start", run)
        run.first_start_done = datetime.now(UTC)
        emit(f"[{label}] first start (reconcile of {probe.reconciles[-1][0]}) in "
             f"{run.first_start_s * 1000:.0f} ms; {len(runner.planned)} timers")

        halfway = t0 + timedelta(seconds=args.lead + args.minutes * 60 / 2)
        await sleep_until(halfway)
        emit(f"[{label}] crash: runner stopped, {args.outage:g} s outage")
        run.outage_begin = datetime.now(UTC)
        await runner.stop()
        runner = None
        await asyncio.sleep(args.outage)
        runner = build_runner(probe, database, bus, settings)
        run.restart_s = await timed(runner.start(), "restart", run)
        run.restart_done = datetime.now(UTC)
        restart_looked_at, restart_reconcile_s = probe.reconciles[-1]
        run.reconcile_again_begin = datetime.now(UTC)
        run.reconcile_again_s = await timed(runner.reconcile(), "reconcile again", run)
        run.reconcile_again_done = datetime.now(UTC)
        run.reconcile_again_looked_at = probe.reconciles[-1][0]
        emit(f"[{label}] restart: start() {run.restart_s * 1000:.0f} ms "
             f"(reconcile of {restart_looked_at} in {restart_reconcile_s * 1000:.0f} ms); "
             f"reconcile() again {run.reconcile_again_s * 1000:.0f} ms")

        deadline = last_end + timedelta(seconds=END_GRACE_S)
        await sleep_until(last_end)
        waited = time.perf_counter()
        remaining = await active_count(database)
        while remaining and datetime.now(UTC) < deadline:
            await asyncio.sleep(1.0)
            remaining = await active_count(database)
        run.ended_wait_s = time.perf_counter() - waited
        run.unfinished = remaining
        emit(f"[{label}] all ended {run.ended_wait_s:.1f} s after the last end"
             if not remaining else f"[{label}] {remaining} conferences still active")
        await runner.stop()
        runner = None
    finally:
        if runner is not None:
            await runner.stop()
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if bus is not None:
            await bus.stop()
        logging.getLogger().removeHandler(handler)

    try:
        result.update(await analyse(database, bookings, probe, run, args))
    finally:
        await database.dispose()
    result["reconcile"] = {
        "first_start_s": round(run.first_start_s, 3),
        "first_start_looked_at": probe.reconciles[0][0],
        "first_reconcile_s": round(probe.reconciles[0][1], 3),
        "restart_start_s": round(run.restart_s, 3),
        "restart_looked_at": restart_looked_at,
        "restart_reconcile_s": round(restart_reconcile_s, 3),
        "reconcile_again_s": round(run.reconcile_again_s, 3),
        "reconcile_again_looked_at": run.reconcile_again_looked_at,
        "reconciles": len(probe.reconciles),
        "errors": run.errors,
    }
    result["diagnostics"].update({
        "sync_ms": summary(probe.sync_ms),
        "syncs_applying": len(probe.syncs),
        "syncs_idle": probe.idle_syncs,
        "tick_ms": summary(probe.tick_ms),
        "invitations": probe.invites,
        "loop_lag_ms": summary(lags),
        "log_counts": dict(handler.counts),
        "log_first": handler.first,
        "subscriber_overflowed": probe.subscriber_overflowed,
    })
    wall = sum(w for w, _ in cpu)
    used = sum(c for _, c in cpu)
    result["cpu"] = {
        "seconds": round(used, 2),
        "wall_s": round(wall, 1),
        "mean_pct": round(100 * used / wall, 1) if wall else None,
        "p50_pct": round(percentile([100 * c / w for w, c in cpu], 50), 1) if cpu else None,
        "max_pct": round(max(100 * c / w for w, c in cpu), 1) if cpu else None,
        # Every CPU of the machine, this process included (100% = all CPUs busy):
        # other processes on a shared machine skew the figures.
        "machine_busy_pct": round(100 * machine_cpu[0] / machine_cpu[1], 1)
        if len(machine_cpu) == 2 and machine_cpu[1] else None,
        "others_pct_of_one_cpu": round(
            100 * (machine_cpu[0] - used) / (machine_cpu[1] / (os.cpu_count() or 1)), 1)
        if len(machine_cpu) == 2 and machine_cpu[1] else None,
    }
    result["run"] = {
        "outage_s": round(ms_between(run.restart_done, run.outage_begin) / 1000, 2)
        if run.restart_done and run.outage_begin else None,
        "ended_wait_s": round(run.ended_wait_s, 1),
        "unfinished": run.unfinished,
    }
    on_time = result["lateness_ms"]["overall"]
    # A conference left stuck has no late transition to count: that is a miss too.
    result["meets_p99_target"] = (bool(on_time["n"]) and on_time["p99"] < TARGET_P99_LATE_MS
                                  and run.unfinished == 0)
    result["meets_reconcile_target"] = (run.restart_s < TARGET_RECONCILE_S
                                        and "restart" not in run.errors)
    return result


# --------------------------------------------------------------------------- analysis


def _within(moment: datetime, begin: datetime | None, end: datetime | None) -> bool:
    return begin is not None and end is not None and begin <= moment <= end


def is_caught_up(due: datetime, at: datetime, run: Run) -> bool:
    """Late by design: due before the new runner's `start()` returned, but done only
    after the crash began (due during the outage, or in flight when it was stopped)."""
    return (run.outage_begin is not None and run.restart_done is not None
            and due <= run.restart_done and at >= run.outage_begin)


async def analyse(
    database: Database, bookings: dict[int, Booking], probe: Probe, run: Run,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Lateness per transition from the events, checked against the conference rows."""
    async with database.read() as session:
        events = (await session.scalars(
            select(Event).where(Event.type.in_(list(KINDS))).order_by(Event.seq)
        )).all()
        statuses = Counter((await session.scalars(select(Conference.status))).all())
        other = dict((await session.execute(
            select(Event.type, func.count()).where(Event.type.not_in(list(KINDS)))
            .group_by(Event.type)
        )).all())
    per: dict[int, Counter[str]] = {cid: Counter() for cid in bookings}
    on_time: dict[str, list[float]] = {kind: [] for kind in KINDS.values()}
    caught_up: dict[str, list[float]] = {kind: [] for kind in KINDS.values()}
    during_second_reconcile = 0
    before_first_start = 0
    mismatch_max = 0.0
    mismatches = 0
    timer, wait, rest, delivered, bridge = [], [], [], [], []
    syncs: dict[int, list[SyncSample]] = {}
    for sample in probe.syncs:
        syncs.setdefault(sample.conference_id, []).append(sample)
    for event in events:
        kind = KINDS[event.type]
        cid = event.conference_id
        if cid not in bookings:
            continue
        per[cid][kind] += 1
        due = bookings[cid].due(kind)
        late = float(event.data["late_ms"])
        gap = abs(ms_between(event.at, due) - late)
        mismatch_max = max(mismatch_max, gap)
        mismatches += gap > 1.0
        if is_caught_up(due, event.at, run):
            caught_up[kind].append(late)
            continue
        if run.first_start_done is not None and due <= run.first_start_done:
            before_first_start += 1
        if _within(due, run.reconcile_again_begin, run.reconcile_again_done):
            during_second_reconcile += 1
        on_time[kind].append(late)
        if event.seq in probe.received:
            delivered.append(ms_between(probe.received[event.seq], due))
        seen = (probe.opened if kind == "open" else probe.closed if kind == "end" else {})
        if cid in seen:
            bridge.append(ms_between(seen[cid], due))
        for sample in syncs.get(cid, ()):
            if sample.planned is not None and sample.entered <= event.at <= sample.left:
                timer.append(ms_between(sample.entered, due))
                wait.append(ms_between(event.at, sample.entered))
                rest.append(ms_between(sample.left, event.at))
                break
    counts = {kind: Counter(c[kind] for c in per.values()) for kind in KINDS.values()}
    missing = {kind: counts[kind][0] for kind in KINDS.values()}
    duplicates = {kind: sum(n for times, n in counts[kind].items() if times > 1)
                  for kind in KINDS.values()}
    overall = [v for values in on_time.values() for v in values]
    every_caught = [v for values in caught_up.values() for v in values]
    return {
        "lateness_ms": {**{k: summary(v) for k, v in on_time.items()},
                        "overall": summary(overall)},
        "caught_up_after_restart_ms": {**{k: summary(v) for k, v in caught_up.items()},
                                       "overall": summary(every_caught)},
        "transitions": len(events),
        "exactly_once": not any(missing.values()) and not any(duplicates.values()),
        "missing": missing,
        "duplicates": duplicates,
        "final_statuses": {str(k): v for k, v in statuses.items()},
        "other_events": other,
        "late_ms_vs_at_max_diff_ms": round(mismatch_max, 3),
        "late_ms_vs_at_mismatches": mismatches,
        "on_time_due_during_reconcile_again": during_second_reconcile,
        "on_time_due_before_first_start": before_first_start,
        "diagnostics": {
            "timer_delay_ms": summary(timer),
            "wait_before_clock_read_ms": summary(wait),
            "after_clock_read_ms": summary(rest),
            "bridge_called_ms": summary(bridge),
            "subscriber_received_ms": summary(delivered),
        },
    }


# --------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    """The figures as a readable table."""
    lines = [f"{'lateness (ms)':34}{'db':>10}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}"]
    rows = [(f"{kind} (on time)", "lateness_ms", kind) for kind in ("open", "live", "end")]
    rows += [("overall (on time)", "lateness_ms", "overall"),
             ("caught up after restart", "caught_up_after_restart_ms", "overall")]
    rows += [(f"  {name}", "diagnostics", key) for name, key in (
        ("timer delay (due -> sync)", "timer_delay_ms"),
        ("wait before clock read", "wait_before_clock_read_ms"),
        ("after clock read (commit...)", "after_clock_read_ms"),
        ("bridge called", "bridge_called_ms"),
        ("bus subscriber received", "subscriber_received_ms"),
        ("sync duration", "sync_ms"),
        ("connect tick duration", "tick_ms"),
        ("event loop lag", "loop_lag_ms"),
    )]
    for name, group, key in rows:
        for db, result in results.items():
            if "error" in result:
                continue
            s = result[group][key]
            lines.append(f"{name:34}{db:>10}{s['n']:>6}{_fmt(s['p50']):>9}"
                         f"{_fmt(s['p99']):>9}{_fmt(s['max']):>9}")
    for db, result in results.items():
        if "error" in result:
            lines.append(f"{db}: FAILED: {result['error']}")
            continue
        r, c = result["reconcile"], result["cpu"]
        p99 = result["lateness_ms"]["overall"]["p99"]
        lines.append(
            f"{db}: p99 lateness {_fmt(p99)} ms "
            f"{'meets' if result['meets_p99_target'] else 'MISSES'} the "
            f"{TARGET_P99_LATE_MS:g} ms target; restart start() {r['restart_start_s']:.3f} s "
            f"for {r['restart_looked_at']} conferences "
            f"{'meets' if result['meets_reconcile_target'] else 'MISSES'} the "
            f"{TARGET_RECONCILE_S:g} s target; still active at the end: "
            f"{result['run']['unfinished']}"
            + (f"; ERRORS {r['errors']}" if r["errors"] else "")
        )
        lines.append(
            f"{db}: first start() {r['first_start_s']:.3f} s for "
            f"{r['first_start_looked_at']}; reconcile() again {r['reconcile_again_s']:.3f} s "
            f"for {r['reconcile_again_looked_at']}; {result['transitions']} transitions, "
            f"exactly once: {result['exactly_once']} (missing {result['missing']}, "
            f"duplicates {result['duplicates']}); late_ms vs at: max diff "
            f"{result['late_ms_vs_at_max_diff_ms']} ms"
        )
        lines.append(
            f"{db}: CPU {c['seconds']} s over {c['wall_s']} s (mean {c['mean_pct']}%, "
            f"max {c['max_pct']}% in 1 s; machine busy {c['machine_busy_pct']}%, others "
            f"{c['others_pct_of_one_cpu']}% of a CPU); invitations "
            f"{result['diagnostics']['invitations']}; logged {result['diagnostics']['log_counts']}"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    loop = asyncio.get_running_loop()
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "apscheduler": apscheduler.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    # Read once, at the start: the redial policy, horizon and presence timing.
    base = Settings(admin_password="")
    results = await on_each_database(
        wanted, args.postgres_url, machine,
        lambda url, db, tmp: bench_database(url, db, args, tmp, base), logger=log)
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    emit("")
    emit(table(results))
    report = {
        "bench": "scheduler",
        "conferences": args.conferences,
        "minutes": args.minutes,
        "lead_s": args.lead,
        "outage_s": args.outage,
        "seed": args.seed,
        "warn_minutes": 0,
        "target_p99_late_ms": TARGET_P99_LATE_MS,
        "target_reconcile_s": TARGET_RECONCILE_S,
        **results,
        "machine": machine,
    }
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--conferences", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="the starts are spread over this many minutes")
    parser.add_argument("--lead", type=float, default=20.0,
                        help="seconds from the booking to the first room opening")
    parser.add_argument("--outage", type=float, default=5.0,
                        help="seconds the scheduler is down at the simulated crash")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="an existing database, used only to create a scratch one")
    args = parser.parse_args(argv)
    if args.conferences < 1:
        parser.error("--conferences must be at least 1")
    if not 0 < args.minutes <= 60:
        parser.error("--minutes must be in (0, 60]")
    if not 5 <= args.lead <= 600:
        parser.error("--lead must be between 5 and 600 seconds")
    if not 0 <= args.outage <= 60:
        parser.error("--outage must be between 0 and 60 seconds")
    return args


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for root_handler in logging.getLogger().handlers:
        root_handler.addFilter(HideCancelledJobs())
    return asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
