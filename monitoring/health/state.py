"""What one process knows of every endpoint's health: the memory the heartbeat fast
path fills and the sweep and the recorder read and write."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from monitoring.health.latest import Latest, Stored
from monitoring.health.model import BridgeView, HealthState, ReasonCode
from monitoring.health.samples import Bucket
from monitoring.health.store import EndpointInfo

log = logging.getLogger(__name__)

# Buckets waiting for the database when it is down: beyond this the oldest are dropped.
MAX_PENDING_BUCKETS = 200_000


@dataclass
class Live:
    """What this process received from one endpoint."""

    latest: Latest = field(default_factory=Latest)
    # Received time of the newest heartbeat written to the row by this process.
    persisted: datetime | None = None
    test_call_persisted: bool = True
    bucket: Bucket | None = None


@dataclass(frozen=True)
class Known:
    """The stored state of an endpoint as this process last saw it."""

    state: HealthState
    codes: frozenset[ReasonCode]
    since: datetime


@dataclass(eq=False)
class MonitorState:
    """The monitor's memory, by endpoint id."""

    live: dict[int, Live] = field(default_factory=dict)
    known: dict[int, Known] = field(default_factory=dict)
    # Whether each endpoint holds the event stream, as of the last sweep.
    presence: dict[int, bool] = field(default_factory=dict)
    # Finished minutes waiting for the database.
    pending: list[Bucket] = field(default_factory=list)
    # Endpoints whose change of state or reasons awaits recording: id -> (endpoint, when).
    changed: dict[int, tuple[EndpointInfo, datetime]] = field(default_factory=dict)
    # Set when a change awaits the recorder.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The newest bridge view of each endpoint: measured by this process's rooms, or read
    # from `bridge_media` (another process's rooms).
    bridge: dict[int, BridgeView] = field(default_factory=dict)
    # Bridge views measured here that other processes have not been given yet.
    bridge_unsaved: dict[int, BridgeView] = field(default_factory=dict)
    # Roster code -> endpoint id, as of the sweep's last roster read.
    ids: dict[str, int] = field(default_factory=dict)

    def mark_changed(self, endpoint: EndpointInfo, at: datetime) -> None:
        """Note a change for the recorder and wake it."""
        self.changed.setdefault(endpoint.id, (endpoint, at))
        self.wake.set()

    def queue(self, bucket: Bucket) -> None:
        """Keep a finished minute for the next write of samples."""
        self.pending.append(bucket)
        if len(self.pending) > MAX_PENDING_BUCKETS:
            del self.pending[: len(self.pending) - MAX_PENDING_BUCKETS]
            log.warning("health: samples pile up (database down?); dropping the oldest")

    def live_latest(self, endpoint_id: int) -> Latest:
        """The newest facts this process received from an endpoint."""
        live = self.live.get(endpoint_id)
        return live.latest if live is not None else Latest()

    def take_bridge(self, endpoint_id: int, view: BridgeView) -> bool:
        """Keep `view` when it is newer than the one held; whether it was."""
        held = self.bridge.get(endpoint_id)
        if held is not None and held.measured_at >= view.measured_at:
            return False
        self.bridge[endpoint_id] = view
        return True

    def merged(self, endpoint_id: int, row: Stored | None) -> Latest:
        """Memory merged with the endpoint's row: the newest wins."""
        mine = self.live_latest(endpoint_id)
        return mine.newer(row.latest) if row is not None else mine
