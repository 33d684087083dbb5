"""Fixtures: a migrated database (SQLite by default, PostgreSQL when
VCBRIDGE_TEST_DATABASE_URL names one), the app on a fixed clock, and logged-in users."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support import (
    ADMIN_PASSWORD,
    bearer,
    create_scratch_database,
    drop_scratch_database,
    empty_postgres,
    login,
)
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.migrate import upgrade
from vcbridge.core.settings import Settings

TEST_DATABASE_URL = os.environ.get("VCBRIDGE_TEST_DATABASE_URL", "")
# Friday 2026-11-27 10:00 in Hanoi: every booking test lives on this clock.
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)

Client = TestClient[Any, Any]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """For PostgreSQL runs: one scratch database for the session, migrated. Else ''."""
    if not TEST_DATABASE_URL.startswith("postgresql"):
        yield ""
        return
    url = asyncio.run(create_scratch_database(TEST_DATABASE_URL))

    async def migrate() -> None:
        database = Database(url)
        await upgrade(database)
        await database.dispose()

    try:
        asyncio.run(migrate())
        yield url
    finally:
        asyncio.run(drop_scratch_database(url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating every time is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"

    async def migrate() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(database)
        await database.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture
async def database_url(tmp_path: Path, postgres_url: str, sqlite_template: Path) -> str:
    """An empty, migrated database for one test."""
    if not postgres_url:
        target = tmp_path / "test.sqlite3"
        shutil.copyfile(sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"
    await empty_postgres(postgres_url)
    return postgres_url


def app_settings(database_url: str, data_dir: Path) -> Settings:
    """Settings for a test app on `database_url`: an admin account, cheap hashes."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        # Cheap hashes keep the suite fast; production keeps the OWASP cost.
        password_time_cost=1,
        password_memory_kib=64,
        # Lifecycle tests turn the scheduler on; elsewhere it would only add noise.
        scheduler_enabled=False,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test app: its own database, an admin account."""
    return app_settings(database_url, tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: FixedClock
) -> Client:
    """A test client of the whole app."""
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest.fixture
async def admin(client: Client) -> dict[str, str]:
    """Authorization headers of the admin."""
    return bearer(await login(client, "admin", ADMIN_PASSWORD))


@pytest.fixture
def make_user(
    client: Client, admin: dict[str, str]
) -> Callable[..., Awaitable[dict[str, str]]]:
    """Create a user through the API and return its Authorization headers."""

    async def make(username: str, role: str, endpoint: str | None = None) -> dict[str, str]:
        password = f"pw-{username}-123456"
        body: dict[str, Any] = {"username": username, "password": password, "role": role}
        if endpoint:
            body["endpoint"] = endpoint
        response = await client.post("/api/v1/users", json=body, headers=admin)
        assert response.status == 201, await response.text()
        return bearer(await login(client, username, password))

    return make


@pytest.fixture
async def booker(make_user: Callable[..., Awaitable[dict[str, str]]]) -> dict[str, str]:
    return await make_user("booker1", "booker")


# Modules whose behaviour does not depend on the database engine (pure domain,
# media, browser pages, processes on their own SQLite). They run in the SQLite
# pass; the PostgreSQL pass (CI runs the suite on both) leaves them out rather
# than running them twice.
ENGINE_INDEPENDENT = {
    "test_active_speaker", "test_agent", "test_audio_mixer", "test_bridge_media",
    "test_browser_pages", "test_connect_policy", "test_floor_control", "test_lifecycle",
    "test_media_tap", "test_recording", "test_signaling", "test_recurrence",
    "test_booking_rules", "test_message_rate", "test_sdp_precheck", "test_control_messages",
    "test_coalescer", "test_shutdown", "test_browser_shell", "test_record_timeline",
    "test_browser_conference", "test_browser_dashboard", "test_browser_documents",
    "test_browser_calendar", "test_rtp_forwarder", "test_datagram_tap",
    "test_agent_call_figures", "test_impaired_link", "test_placement_rules",
    "test_agent_failover", "test_browser_nodes", "test_remb_estimator",
    "test_active_speaker_reference", "test_lean_rtp", "test_rtcp_sender", "test_sip_gateway",
    "test_rtp_receive_native", "test_video_router",
    # Its service processes run on their own SQLite file and their own scratch PostgreSQL.
    "test_room_restart",
}
# These do the same on both passes: processes and databases of their own (SQLite files,
# scratch PostgreSQL databases they make themselves), or no database at all.
ENGINE_INDEPENDENT |= {
    "test_cli", "test_lifecycle_e2e", "test_booking_race", "test_roster", "test_health_model",
    "test_conference_access", "test_video_stall",
}


# Modules of several processes that share rooms only through PostgreSQL (bridge nodes,
# issue 15): they run in the PostgreSQL pass and are left out of the SQLite one.
POSTGRES_ONLY = {"test_bridge_nodes", "test_node_membership"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, deselect the engine-independent modules; on the SQLite
    pass, the PostgreSQL-only ones."""
    postgres = TEST_DATABASE_URL.startswith("postgresql")
    left_out = ENGINE_INDEPENDENT if postgres else POSTGRES_ONLY
    keep, drop = [], []
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        (drop if module in left_out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
