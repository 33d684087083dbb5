"""The Alembic migrations build the schema the models describe: a model change
without its migration (a column, an index) fails here, not in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Base

# The documents' full-text index is built per engine by migration 0005 (FTS5 tables on
# SQLite, a tsvector table on PostgreSQL), on purpose outside the models.
FULL_TEXT = "document_search"


def _modelled(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    # Its tables and its index (ix_document_search_vector) all carry the name.
    return FULL_TEXT not in (name or "")


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": False, "include_object": _modelled})
    return list(compare_metadata(context, Base.metadata))


def _audit_indexes(connection: Connection) -> dict[str, list[str | None]]:
    return {index["name"] or "": list(index["column_names"])
            for index in inspect(connection).get_indexes("audit_events")}


async def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    database = Database(database_url)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            indexes = await connection.run_sync(_audit_indexes)
    finally:
        await database.dispose()
    # The audit page's filter by target is served by an index.
    assert indexes["ix_audit_events_target"] == ["target_type", "target_id"]
