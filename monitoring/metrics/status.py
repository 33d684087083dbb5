"""An endpoint's status as the metrics show it, and the model that decides it.

The refresher gathers `EndpointFacts` from the database; a `StatusModel` turns
them into an `EndpointStatus` (health state, ready, last sign of life). The
health monitor supplies the real model (`monitoring.health.wiring.status_model`);
`presence_status` is the fallback until its first sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from monitoring.health.model import HealthState


@dataclass(frozen=True)
class EndpointFacts:
    """What the refresher knows of one endpoint: the input of a `StatusModel`."""

    code: str
    online: bool  # presence: its agent or console holds the event stream open
    last_seen: datetime | None
    in_conference: bool
    next_conference_start: datetime | None


@dataclass(frozen=True)
class EndpointStatus:
    """An endpoint's health, readiness and last sign of life."""

    health: HealthState
    ready: bool
    last_heartbeat: datetime | None = None


# Decides an endpoint's status from the facts (the health monitor supplies the real one).
StatusModel = Callable[[EndpointFacts], EndpointStatus]


def presence_status(facts: EndpointFacts) -> EndpointStatus:
    """The status before the health monitor's first sweep: on line (presence) is ok and ready.

    `degraded` is never given here: deciding it (loss, heartbeats, pre-flight
    checks) is the health model's job."""
    if facts.online:
        return EndpointStatus(HealthState.OK, True, facts.last_seen)
    return EndpointStatus(HealthState.OFFLINE, False, facts.last_seen)
