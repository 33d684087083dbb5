"""The sweep, every `health_sweep_seconds` (2 s): the monitor's slow path.

It reads the shared rows and the event-stream presence, records the endpoints
that went silent (offline) or whose presence changed, has the newest figures
of each endpoint written at most every `health_persist_seconds` (so other
processes see them), and adds finished minutes to `health_samples`. It also
shares the bridge's views: writes those this process's rooms measured since
the last sweep and reads those of other processes (`bridge_views.py`). And it
keeps the board: every active endpoint's health as of the last sweep."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitoring.health import bridge_views, store
from monitoring.health.latest import Latest, Stored
from monitoring.health.model import Health, HealthState, Observation, Report, TestCall, evaluate
from monitoring.health.recorder import ChangeRecorder
from monitoring.health.state import Known, Live, MonitorState
from monitoring.health.store import EndpointInfo

# The sweep re-reads the roster and every health row this often (in between: the rows
# written since the last sweep, read from this much earlier).
ROSTER_SECONDS = 30.0
SWEEP_OVERLAP = timedelta(seconds=10)


@dataclass(frozen=True)
class BoardEntry:
    """An endpoint's health at the last sweep and its last heartbeat."""

    health: Health
    last_heartbeat: datetime | None


class Sweeper:
    """The sweep of one monitor, and what it remembers between sweeps."""

    def __init__(self, state: MonitorState, recorder: ChangeRecorder,
                 persist_every: timedelta, bridge_max_age: timedelta) -> None:
        self._state = state
        self._recorder = recorder
        self.bridge_max_age = bridge_max_age
        self.thresholds = recorder.thresholds
        self.presence_rules = recorder.presence_rules
        self.persist_every = persist_every
        self._roster: list[EndpointInfo] | None = None
        self._roster_until = 0.0
        self._last_sweep: datetime | None = None
        self._rows: store.RowCache = {}
        # The last evaluation of each endpoint, reused while nothing it depends on
        # changed: (row, report, test call, presence, health, valid until).
        self._memo: dict[int, tuple[Stored | None, Report | None, TestCall | None, bool,
                                    Health, datetime]] = {}
        # Every active endpoint's health as of the last sweep, by code (cheap to read
        # synchronously, e.g. by a metrics collector).
        self.board: dict[str, BoardEntry] = {}

    async def sweep(self) -> None:
        """Record silent endpoints and presence changes; share the newest figures;
        store finished minutes."""
        state, recorder = self._state, self._recorder
        now = recorder.clock.now()
        async with recorder.database.read() as session:
            full = self._roster is None or time.monotonic() >= self._roster_until
            if full:
                self._roster = await store.active_endpoints(session)
                self._roster_until = time.monotonic() + ROSTER_SECONDS
                state.ids = {e.code: e.id for e in self._roster}
            assert self._roster is not None
            endpoints = self._roster
            # Between full reads (every ROSTER_SECONDS), only the rows written since the
            # last sweep, with a margin for other processes' clocks.
            since = None if full or self._last_sweep is None else (
                self._last_sweep - SWEEP_OVERLAP)
            rows = await store.load_stored_light(session, self._needs_report, self._rows,
                                                 since)
            self._last_sweep = now
            state.presence = await store.load_presence(session, now, self.presence_rules)
            for endpoint_id, view in (await bridge_views.read_views(
                    session, now - self.bridge_max_age)).items():
                state.take_bridge(endpoint_id, view)
        refresh: list[tuple[int, Latest]] = []
        board: dict[str, BoardEntry] = {}
        for endpoint in endpoints:
            row = rows.get(endpoint.id)
            live = state.live.get(endpoint.id)
            if row is not None:
                state.known[endpoint.id] = Known(row.state, row.codes, row.since)
            latest = state.merged(endpoint.id, row)
            health = self._evaluate_memo(endpoint.id, latest, row, now)
            board[endpoint.code] = BoardEntry(
                health, latest.report.received_at if latest.report else None)
            if latest.report is None:
                continue  # never heard of: nothing to record
            if row is None or not health.same_as(row.state, row.codes):
                state.changed.setdefault(endpoint.id, (endpoint, now))
            elif live is not None and self._due(live, row):
                refresh.append((endpoint.id, live.latest))
        self.board = board
        await recorder.record_changes(refresh)
        await recorder.write_bridge_views()
        await recorder.flush_samples(now)

    def _needs_report(self, endpoint_id: int, last_heartbeat: datetime | None) -> bool:
        """Whether the sweep must read a row's report: this process holds nothing newer."""
        live = self._state.live.get(endpoint_id)
        mine = live.latest.report if live is not None else None
        return mine is None or (last_heartbeat is not None and last_heartbeat > mine.received_at)

    def _evaluate(self, endpoint_id: int, latest: Latest, row: Stored | None, now: datetime
                  ) -> Health:
        return evaluate(
            Observation(latest.report, self._state.presence.get(endpoint_id, False),
                        latest.test_call, row.codes if row is not None else frozenset()),
            now, self.thresholds,
        )

    def _evaluate_memo(self, endpoint_id: int, latest: Latest, row: Stored | None,
                       now: datetime) -> Health:
        """`_evaluate`, skipped when the row, the report, the test call and the presence are
        the same objects as at the last sweep and no time limit has passed since."""
        presence = self._state.presence.get(endpoint_id, False)
        memo = self._memo.get(endpoint_id)
        if (memo is not None and memo[0] is row and memo[1] is latest.report
                and memo[2] is latest.test_call and memo[3] == presence and now < memo[5]):
            return memo[4]
        health = self._evaluate(endpoint_id, latest, row, now)
        self._memo[endpoint_id] = (row, latest.report, latest.test_call, presence, health,
                                   self._valid_until(latest, health, now))
        return health

    def _valid_until(self, latest: Latest, health: Health, now: datetime) -> datetime:
        """When the clock alone may change an evaluation: going silent, a failed test
        call ageing out. (Silent endpoints stay offline until something new arrives.)"""
        until = now + timedelta(days=1)
        report, test_call = latest.report, latest.test_call
        if report is not None and health.state is not HealthState.OFFLINE:
            until = min(until, report.received_at + self.thresholds.offline_after
                        + timedelta(microseconds=1))
        if test_call is not None and not test_call.ok:
            until = min(until, test_call.at + self.thresholds.test_call_max_age
                        + timedelta(microseconds=1))
        return until

    def _due(self, live: Live, row: Stored) -> bool:
        """Whether this process should write its newest figures to the shared row."""
        report = live.latest.report
        if report is None:
            return False
        if not live.test_call_persisted:
            return True
        if row.last_heartbeat is not None and row.last_heartbeat >= report.received_at:
            return False
        return live.persisted is None or report.received_at - live.persisted >= self.persist_every
