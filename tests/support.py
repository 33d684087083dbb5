"""Helpers shared by the tests: database targets, skipping rules, API shortcuts."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.agent.settings import AgentSettings
from scheduler.runner import LifecycleRunner
from vcbridge.core.clock import Clock
from vcbridge.core.settings import Settings

# CI sets this: a missing component then fails the run instead of skipping.
REQUIRE_ALL = os.environ.get("VCBRIDGE_REQUIRE_ALL") == "1"
POSTGRES_URL = os.environ.get(
    "VCBRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
ADMIN_PASSWORD = "admin-password-for-tests"


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail when VCBRIDGE_REQUIRE_ALL=1 (CI)."""
    if REQUIRE_ALL:
        pytest.fail(f"required component missing: {reason}")
    pytest.skip(reason)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(base_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_dsn(base_url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        skip_or_fail(f"PostgreSQL at {base_url} unreachable: {exc}")
        raise  # unreachable: skip_or_fail raises


async def create_scratch_database(base_url: str = POSTGRES_URL) -> str:
    """A new empty PostgreSQL database; returns its SQLAlchemy URL."""
    admin = await _admin(base_url)
    name = f"vcbridge_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_scratch_database(url: str) -> None:
    """Drop a database made by `create_scratch_database`, even with sessions open."""
    base, name = url.rsplit("/", 1)
    admin = await _admin(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# Tables a test's emptying keeps: the schema's version, and the single rows that a
# booking and the event stream lock (the event sequence's count is reset instead).
KEPT_TABLES = ("alembic_version", "booking_lock", "event_sequence")


async def empty_postgres(url: str, keep: tuple[str, ...] = KEPT_TABLES) -> None:
    """Empty every table of the database at `url` but `keep`, restart their id sequences
    and the event sequence, as `TRUNCATE ... RESTART IDENTITY CASCADE` would.

    DELETE rather than TRUNCATE: TRUNCATE makes new files for every table and index and
    syncs them at commit, 0.5-1 s per test on a busy two-core machine; deleting the few
    rows a test leaves takes a tenth of that. Foreign keys are not checked meanwhile
    (replication role), as every table that refers to another is emptied too."""
    connection = await _admin(url)
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL session_replication_role = replica")
            tables = [row[0] for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> ALL($1::text[])", list(keep))]
            # One round trip; the names are the catalogue's own, not input.
            await connection.execute("".join(
                f'DELETE FROM "{table}";' for table in tables))  # noqa: S608
            # The sequences the tables own (serial and identity columns), back to their start.
            await connection.execute(
                "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                "JOIN pg_depend d ON d.objid = s.seqrelid AND d.classid = 'pg_class'::regclass "
                "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY($1::text[])",
                tables)
            await connection.execute("UPDATE event_sequence SET last = 0")
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_postgres(base_url: str = POSTGRES_URL) -> AsyncIterator[str]:
    """A new empty PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    url = await create_scratch_database(base_url)
    try:
        yield url
    finally:
        await drop_scratch_database(url)


async def login(client: TestClient[Any, Any], username: str, password: str) -> str:
    """Log in and return the bearer token."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def loopback_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an in-process app whose bridge uses loopback only (no STUN), with
    cheap password hashes and no background scheduler."""
    return Settings(database_url=database_url, data_dir=data_dir,
                    admin_password=ADMIN_PASSWORD, password_time_cost=1,
                    password_memory_kib=64, scheduler_enabled=False, ice_servers=[],
                    ice_host_addresses=["127.0.0.1"], **overrides)


def loopback_agent(server: str, endpoint: str, token: str, **overrides: Any) -> AgentSettings:
    """An endpoint agent's settings with loopback only (no STUN)."""
    return AgentSettings(server=server, endpoint=endpoint, token=token,
                         ice_host_addresses=("127.0.0.1",), **overrides)


def manual_runner(app: web.Application, clock: Clock) -> LifecycleRunner:
    """A lifecycle runner on the app's database and bus, driven by hand (`sync`) on
    `clock`, acting on the app's own bridge (its room registry), as the leader's does."""
    from scheduler.lifecycle_wiring import BRIDGE, redial_policy
    from scheduler.transitions import LifecycleSettings
    from vcbridge.core.app_keys import DATABASE, EVENT_BUS, SETTINGS

    return LifecycleRunner(app[DATABASE], app[EVENT_BUS], clock, app[BRIDGE],
                           LifecycleSettings(5, timedelta(seconds=60)),
                           redial_policy(app[SETTINGS]), timedelta(days=1))


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0,
                     interval: float = 0.1) -> Any:
    """Poll the coroutine `check` until it returns something truthy, and return that;
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
