"""Writing what the monitor's memory holds: changes of state or reasons (soon after
heartbeats reveal them, batched), the newest figures the sweep asks to share, and
finished minutes of samples."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitoring.health import bridge_views, samples, transitions
from monitoring.health.latest import Latest
from monitoring.health.model import Thresholds
from monitoring.health.state import Known, MonitorState
from monitoring.health.store import PresenceRules, write_latest
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus

log = logging.getLogger(__name__)

# The recorder waits this long after a change so a burst is written together...
RECORD_BATCH_SECONDS = 0.2
# ... in transactions of at most this many endpoints.
RECORD_CHUNK = 200


class ChangeRecorder:
    """Stores the monitor's changes and samples (one per monitor)."""

    def __init__(self, state: MonitorState, clock: Clock, zone: ZoneInfo,
                 thresholds: Thresholds, presence_rules: PresenceRules,
                 samples_kept: timedelta) -> None:
        self._state = state
        self.clock = clock
        self.zone = zone
        self.thresholds = thresholds
        self.presence_rules = presence_rules
        self.samples_kept = samples_kept
        self._database: Database | None = None
        self._bus: EventBus | None = None
        self._write_lock = asyncio.Lock()

    def bind(self, database: Database, bus: EventBus) -> None:
        """Give the recorder its database and event bus (when the app starts)."""
        self._database, self._bus = database, bus

    @property
    def database(self) -> Database:
        """The database (after `bind`)."""
        assert self._database is not None, "HealthMonitor used before bind()"
        return self._database

    @property
    def bus(self) -> EventBus:
        """The event bus (after `bind`)."""
        assert self._bus is not None, "HealthMonitor used before bind()"
        return self._bus

    async def record_changes(self, refresh: Sequence[tuple[int, Latest]] = ()) -> None:
        """Store the pending changes of state or reasons, and the newest figures of
        `refresh`, in one transaction (a burst of changes costs one commit)."""
        state = self._state
        async with self._write_lock:
            pending, state.changed = state.changed, {}
            if not pending and not refresh:
                return
            now = self.clock.now()
            # What this process writes (memory may move on while it does).
            written = {i: state.live_latest(i) for i in pending} | dict(refresh)
            changes = [transitions.Change(endpoint, written[endpoint_id], at)
                       for endpoint_id, (endpoint, at) in sorted(pending.items())]
            results: dict[int, transitions.Recorded] = {}
            # Chunks keep each transaction (and SQLite's write lock) short in a burst.
            chunks = [changes[i:i + RECORD_CHUNK] for i in range(0, len(changes), RECORD_CHUNK)]
            for number, chunk in enumerate(chunks or [[]]):
                try:
                    async with self.database.write() as session:
                        results |= await transitions.record(
                            session, chunk, now, self.thresholds, self.presence_rules, self.bus,
                            self.zone)
                        if number == 0:
                            await write_latest(session, refresh, now)
                except BaseException:
                    for change in [c for later in chunks[number:] for c in later]:
                        state.changed.setdefault(change.endpoint.id,
                                                 pending[change.endpoint.id])
                    raise
        for endpoint_id, recorded in results.items():
            state.known[endpoint_id] = Known(recorded.health.state, recorded.health.codes,
                                             recorded.since)
        for endpoint_id, latest in written.items():
            live = state.live.get(endpoint_id)
            if live is not None and latest.report is not None:
                live.persisted = latest.report.received_at
                live.test_call_persisted = live.latest.test_call is latest.test_call

    async def run(self) -> None:
        """Record changes soon after heartbeats reveal them (a background task)."""
        wake = self._state.wake
        while True:
            await wake.wait()
            await asyncio.sleep(RECORD_BATCH_SECONDS)  # gather a burst into one transaction
            wake.clear()
            try:
                await self.record_changes()
            except Exception:
                log.exception("health: recording changes failed; retrying")
                await asyncio.sleep(1.0)
                wake.set()

    async def write_bridge_views(self) -> None:
        """Give the other processes the bridge views measured here since the last write."""
        state = self._state
        if not state.bridge_unsaved:
            return
        unsaved, state.bridge_unsaved = state.bridge_unsaved, {}
        try:
            async with self.database.write() as session:
                await bridge_views.write_views(session, unsaved)
        except BaseException:
            for endpoint_id, view in unsaved.items():  # kept for the next try, unless newer
                state.bridge_unsaved.setdefault(endpoint_id, view)
            raise

    async def flush_samples(self, now: datetime | None = None, *, everything: bool = False
                            ) -> None:
        """Add finished minutes (all of them with `everything`) to `health_samples`."""
        state = self._state
        current = samples.minute_of(now or self.clock.now())
        for live in state.live.values():
            if live.bucket is not None and (everything or live.bucket.minute < current):
                state.queue(live.bucket)
                live.bucket = None
        if not state.pending:
            return
        pending, state.pending = state.pending, []
        try:
            async with self.database.write() as session:
                await samples.add_samples(session, pending)
        except BaseException:
            state.pending[:0] = pending  # kept for the next try
            raise

    async def prune(self) -> int:
        """Delete samples older than `health_samples_days`."""
        async with self.database.write() as session:
            return await samples.prune_samples(session, self.clock.now() - self.samples_kept)

    async def close(self) -> None:
        """Write what memory holds (at shutdown)."""
        await self.record_changes()
        await self.flush_samples(everything=True)
