"""Apply the Alembic migrations to the latest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from vcbridge.core.db.engine import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(database: Database) -> None:
    """Migrate the database to the newest revision (idempotent)."""
    async with database.engine.connect() as connection:
        await connection.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
        await connection.commit()


async def is_current(database: Database) -> bool:
    """True when the database is at the newest revision."""
    head = ScriptDirectory.from_config(_config()).get_current_head()

    def _current(sync: Connection) -> str | None:
        return MigrationContext.configure(sync).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(_current) == head
