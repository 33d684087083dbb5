"""Engine and session factories for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class Database:
    """The engine plus two session factories: `read()` and `write()`.

    On SQLite a write transaction starts with BEGIN IMMEDIATE, taking the
    database write lock up front; a deferred transaction that reads first
    and writes later can fail with "database is locked" instead of waiting."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        write_engine = (
            self.engine.execution_options(vcbridge_begin="BEGIN IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_queue: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._writer = async_sessionmaker(write_engine, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; rolled back at the end."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error.

        On SQLite the writers of this process queue first-come-first-served
        here: SQLite's own busy handler polls with growing sleeps and no
        order, which under load leaves some writers waiting for seconds."""
        if self._write_queue is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_queue, self._writer() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write,
    # which breaks isolation; take control of BEGIN as SQLAlchemy recommends.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("vcbridge_begin", "BEGIN"))
