"""Carries what bridge rooms report to the scheduler (roll call) and to the record
(event bus, audit log). Lives in the composition root's package because it
is the one place that may know both the bridge and the scheduler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bridge.room_state_store import RoomStateStore
from scheduler import attendance
from scheduler.connect_policy import Reason
from scheduler.lifecycle_api import REDIAL_POLICY
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.audit import Actor, record
from vcbridge.core.event_types import EventType

log = logging.getLogger(__name__)


class RoomReports:
    """The bridge's `RoomHooks`, backed by the database and the event bus."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def attendance(self, conference_id: int, code: str, kind: str) -> None:
        app = self._app
        async with app[DATABASE].write() as session:
            await attendance.report(session, conference_id, code, kind, app[CLOCK].now(),
                                    app[REDIAL_POLICY], app[EVENT_BUS])

    async def call_failed(self, conference_id: int, code: str, reason: str, sip_code: int,
                          sip_reason: str) -> None:
        """The bridge's call to a SIP room failed: the roll call shows why, the policy
        redials it."""
        app = self._app
        async with app[DATABASE].write() as session:
            await attendance.call_failed(session, conference_id, code, Reason(reason),
                                         sip_code, sip_reason, app[CLOCK].now(),
                                         app[REDIAL_POLICY], app[EVENT_BUS])

    async def floor_action(self, conference_id: int, actor: str, action: str,
                           data: dict[str, Any], moderator: Actor | None = None) -> None:
        app = self._app
        now = app[CLOCK].now()
        name = EventType.floor(action)
        target = data.get("endpoint")
        audience = [actor, target] if isinstance(target, str) else [actor]
        if moderator is None:
            who = Actor(f"endpoint:{actor}", "endpoint")
        else:
            # On the chair's behalf (`actor` is the chair): the record names the person.
            who = moderator
            data = {**data, "by": {"user": moderator.name, "role": moderator.role}}
        async with app[DATABASE].write() as session:
            await record(session, who, name, "conference", conference_id, None, data, now)
            await app[EVENT_BUS].publish(session, name, now, conference_id=conference_id,
                                         endpoint=actor, audience=audience, data=data)


async def stranded_sites_ctx(app: web.Application) -> AsyncIterator[None]:
    """At start, before any site can connect: the sites the roll call still has
    "joined" in rooms this process held before it stopped are dropped (a killed
    process reported nothing), with `endpoint.dropped` published; they rejoin, or the
    scheduler calls them back.

    On SQLite the one all-in-one process holds every room, so that is every running
    conference. On PostgreSQL it is the running conferences whose room this node
    (`node_id`) held last; without a node id nothing is swept here (the rooms of a
    lost node are the scheduler leader's to sweep)."""
    settings = app[SETTINGS]
    on_postgres = settings.effective_database_url.startswith("postgresql")
    conferences: list[int] | None = None
    if on_postgres:
        if not settings.node_id:
            yield
            return
        conferences = await RoomStateStore(app[DATABASE], app[CLOCK]).running_on(
            settings.node_id)
    async with app[DATABASE].write() as session:
        dropped = await attendance.drop_joined(session, conferences, app[CLOCK].now(),
                                               app[REDIAL_POLICY], app[EVENT_BUS])
    if dropped:
        log.info("at start: %d site(s) no longer connected marked dropped: %s", len(dropped),
                 ", ".join(f"{code} (conference {cid})" for cid, code in dropped))
    yield
