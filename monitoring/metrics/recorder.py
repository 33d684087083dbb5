"""The metrics' view of the event bus: lifecycle lateness, invitations, joins."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime

from monitoring.metrics.families import TRANSITIONS, Metrics
from vcbridge.core.event_types import ROOM_CLOSING, TRANSITION_EVENTS, EventType
from vcbridge.core.events import BusEvent, EventBus, Follower

log = logging.getLogger(__name__)

# The reason of a first invitation; any other reason (no_answer, dropped, absent) is a redial.
FIRST_CALL_REASON = "invited"
# The roll-call events after which an endpoint is no longer in its conference.
_NOT_JOINED = frozenset({EventType.ENDPOINT_DROPPED, EventType.ENDPOINT_LEFT,
                         EventType.ENDPOINT_DECLINED})
# Every event `MetricsRecorder` records something of.
RECORDED_EVENTS = frozenset({*TRANSITION_EVENTS, *ROOM_CLOSING, *_NOT_JOINED,
                             EventType.ENDPOINT_INVITED, EventType.ENDPOINT_JOINED})


class MetricsRecorder:
    """Follows the event bus and records what the events say.

    Joined/dropped/left/ended update who is in a conference in every
    process; counters and histograms only on the scheduler leader (see
    monitoring/metrics/families.py). Join durations need the time of the first invitation
    of each (conference, endpoint) until it joins: that map is bounded
    (`max_pending`, oldest forgotten first) and emptied when a conference
    ends. An invitation after a join (a redial after a drop) starts a new
    wait, so a rejoin is measured from its first redial."""

    def __init__(self, metrics: Metrics, bus: EventBus, *, max_pending: int = 4096) -> None:
        self._metrics = metrics
        self._bus = bus
        self._max_pending = max_pending
        self._invited: OrderedDict[tuple[int, str], datetime] = OrderedDict()
        self._follower: Follower | None = None

    @property
    def pending(self) -> int:
        """How many first invitations await their join."""
        return len(self._invited)

    async def start(self) -> None:
        """Subscribe (returns once subscribed, so no later event is missed)."""
        # Cut off from the bus (it fell behind), it subscribes again; the refresher
        # corrects the state from the database.
        self._follower = self._bus.follow(RECORDED_EVENTS, self._record,
                                          name="metrics-recorder")

    async def stop(self) -> None:
        """Stop following the bus."""
        if self._follower is not None:
            await self._follower.stop()

    async def _record(self, event: BusEvent) -> None:
        self.handle(event)

    def handle(self, event: BusEvent) -> None:
        """Record one event."""
        metrics = self._metrics
        leader = metrics.is_leader()
        conference, code = event.conference_id, event.endpoint
        transition = TRANSITIONS.get(event.type)
        if transition is not None:
            late_ms = event.data.get("late_ms")
            if leader and isinstance(late_ms, int | float) and not isinstance(late_ms, bool):
                metrics.observe_lateness(transition, late_ms / 1000)
        if event.type in ROOM_CLOSING and conference is not None:
            metrics.conference_closed(conference)
            for key in [k for k in self._invited if k[0] == conference]:
                del self._invited[key]
            return
        if conference is None or code is None:
            return
        key = (conference, code)
        if event.type == EventType.ENDPOINT_INVITED:
            attempt = event.data.get("attempt")
            reason = event.data.get("reason")
            redial = (isinstance(attempt, int) and attempt > 1) or (
                isinstance(reason, str) and reason != FIRST_CALL_REASON)
            if leader:
                metrics.observe_invitation(redial)
            if key not in self._invited:
                self._invited[key] = event.at
                while len(self._invited) > self._max_pending:
                    self._invited.popitem(last=False)
        elif event.type == EventType.ENDPOINT_JOINED:
            metrics.joined(code, conference)
            invited_at = self._invited.pop(key, None)
            if leader and invited_at is not None:
                metrics.observe_join((event.at - invited_at).total_seconds())
        elif event.type in _NOT_JOINED:
            metrics.not_joined(code, conference)
            if event.type == EventType.ENDPOINT_DECLINED:
                self._invited.pop(key, None)
