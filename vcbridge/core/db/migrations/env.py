"""Alembic environment.

`vcbridge.core.db.migrate.upgrade()` passes an open connection in
`config.attributes["connection"]`; the `alembic` command line instead builds
an engine from the service settings (`VCBRIDGE_DATABASE_URL` or the config)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from vcbridge.core.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_settings() -> None:
    from vcbridge.core.db.engine import Database
    from vcbridge.core.settings import load_settings

    database = Database(load_settings().effective_database_url)
    async with database.engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await database.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_settings())
