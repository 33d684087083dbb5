"""Conflicting bookings racing at the same moment: exactly one wins (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scheduler.booking_rules import BookingLimits
from scheduler.booking_service import (
    BookingConflict,
    BookingPolicy,
    create_conference,
)
from scheduler.conference_schemas import ConferenceCreate
from tests.support import scratch_postgres
from vcbridge.core.audit import Actor
from vcbridge.core.auth.passwords import Passwords
from vcbridge.core.bootstrap import prepare_database
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Conference
from vcbridge.core.events import EventBus
from vcbridge.core.settings import Settings

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
POLICY = BookingPolicy(
    limits=BookingLimits(
        max_setup_minutes=240, max_duration=timedelta(hours=12),
        horizon=timedelta(days=730), max_occurrences=260,
        max_concurrent_conferences=100, max_participant_ports=10_000,
    ),
    zone=ZoneInfo("Asia/Ho_Chi_Minh"),
    default_setup_minutes=15,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        databases = [Database(f"sqlite+aiosqlite:///{tmp_path / 'race.sqlite3'}")]
        url = databases[0].url
        await prepare_database(databases[0], Settings(database_url=url), NOW, Passwords(1, 64))
        yield databases[0]
        await databases[0].dispose()
        return
    async with scratch_postgres() as url:
        database = Database(url)
        await prepare_database(database, Settings(database_url=url), NOW, Passwords(1, 64))
        yield database
        await database.dispose()


def request_for(chair: str, other: str) -> ConferenceCreate:
    return ConferenceCreate(
        title=f"Họp {other}",
        chair=chair,
        participants=[chair, other],
        start=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
        end=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
    )


async def test_racing_conflicting_bookings_cannot_both_succeed(database: Database) -> None:
    # Twenty bookers try to book HUYEN-NGA-SON at the same hour, each with a different partner.
    partners = ["TP-THANH-HOA", "TP-SAM-SON", "TX-BIM-SON", "HUYEN-BA-THUOC", "HUYEN-CAM-THUY",
                "HUYEN-DONG-SON", "HUYEN-HA-TRUNG", "HUYEN-HAU-LOC", "HUYEN-HOANG-HOA",
                "HUYEN-LANG-CHANH", "HUYEN-MUONG-LAT", "HUYEN-NGOC-LAC", "HUYEN-NHU-THANH",
                "HUYEN-NHU-XUAN", "HUYEN-NONG-CONG", "HUYEN-QUAN-HOA", "HUYEN-QUAN-SON",
                "HUYEN-QUANG-XUONG", "HUYEN-THACH-THANH", "HUYEN-THIEU-HOA"]
    # Each racer gets its own engine, as separate service processes would.
    racers = [Database(database.url) for _ in partners]
    start = asyncio.Event()

    async def attempt(db: Database, partner: str) -> str:
        await start.wait()
        try:
            async with db.write() as session:
                await create_conference(session, request_for("HUYEN-NGA-SON", partner),
                                        Actor(partner, "booker"), NOW, POLICY, EventBus(db))
        except BookingConflict:
            return "conflict"
        return "booked"

    tasks = [asyncio.create_task(attempt(db, p)) for db, p in zip(racers, partners, strict=True)]
    await asyncio.sleep(0.05)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    for db in racers:
        await db.dispose()
    assert outcomes.count("booked") == 1, outcomes
    assert outcomes.count("conflict") == len(partners) - 1
    async with database.read() as session:
        assert await session.scalar(select(func.count()).select_from(Conference)) == 1
