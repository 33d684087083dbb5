"""Exactly one scheduler at a time: a PostgreSQL advisory lock elects the leader.

Every process runs a `Leadership` loop. The one that holds the session-level
advisory lock runs the lifecycle; the others try again every
`poll_seconds`. If the leader dies, PostgreSQL ends its session and frees the
lock, and a standby takes over at its next try. A leader that loses its
database connection stops its scheduler at once: it can no longer be sure
it still holds the lock. SQLite serves one process, which always leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.engine import make_url

from vcbridge.core.db.engine import Database

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x7663_7363_6865_6400  # "vcsched"


class Leadership:
    """Calls `on_elected` when this process becomes leader and `on_deposed` when it stops."""

    def __init__(
        self,
        database: Database,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        poll_seconds: float = 2.0,
    ) -> None:
        self._database = database
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._poll = poll_seconds
        self.is_leader = False

    async def run(self) -> None:
        """Run until cancelled."""
        if self._database.is_sqlite:
            await self._lead(None)
            return
        url = make_url(self._database.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(dsn, timeout=self._poll * 2)
                while not await self._try_lock(connection):  # noqa: ASYNC110 - polling PG
                    await asyncio.sleep(self._poll)
                await self._lead(connection)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("scheduler leadership: %s; retrying", exc)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(self._poll)

    @staticmethod
    async def _try_lock(connection: asyncpg.Connection) -> bool:
        return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)",
                                              SCHEDULER_LOCK_KEY))

    async def _lead(self, connection: asyncpg.Connection | None) -> None:
        self.is_leader = True
        log.info("this process is the scheduler leader")
        try:
            await self._on_elected()
            while True:
                await asyncio.sleep(self._poll)
                if connection is not None:
                    # Losing the session means losing the lock: stop at once.
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), self._poll * 2)
        finally:
            self.is_leader = False
            await self._on_deposed()
