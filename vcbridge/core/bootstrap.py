"""Bring a database to a usable state: schema, roster, first admin account."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, text

from vcbridge.core.audit import SYSTEM
from vcbridge.core.auth.passwords import Passwords
from vcbridge.core.db.engine import Database
from vcbridge.core.db.migrate import upgrade
from vcbridge.core.db.models import Role, User
from vcbridge.core.roster import SyncReport, load_roster, sync_roster
from vcbridge.core.settings import Settings
from vcbridge.core.users import create_user

log = logging.getLogger(__name__)

# Several processes may start at once against one PostgreSQL: one prepares, the others wait.
_PREPARE_LOCK_KEY = 0x7663_6272_6964_6765 & 0x7FFF_FFFF_FFFF_FFFF


async def prepare_database(
    database: Database, settings: Settings, now: datetime, passwords: Passwords
) -> SyncReport:
    """Migrate to the newest schema, sync the roster, create `admin` if asked to."""
    entries = load_roster(settings.roster_file)
    async with database.engine.connect() as connection:
        if not database.is_sqlite:
            await connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PREPARE_LOCK_KEY})
        try:
            await upgrade(database)
            async with database.write() as session:
                report = await sync_roster(session, entries, now)
                if settings.admin_password and await session.scalar(
                    select(User.id).where(User.username == "admin")
                ) is None:
                    await create_user(
                        session, username="admin", password=settings.admin_password,
                        role=Role.ADMIN, endpoint_code=None, full_name="Quản trị hệ thống",
                        actor=SYSTEM, now=now, passwords=passwords,
                    )
                    log.info("created the admin account from VCBRIDGE_ADMIN_PASSWORD")
        finally:
            if not database.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": _PREPARE_LOCK_KEY}
                )
                await connection.commit()
    return report
