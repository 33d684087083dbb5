"""The composition root: builds the aiohttp application and wires the parts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from aiohttp import web

from bridge import wiring as bridge_wiring
from bridge.media_report import mix_totals, site_media
from bridge.node_membership import NODE
from bridge.rooms import RoomRegistry
from bridge.sip.options_probe import AnswerListener
from bridge.wiring import SIP_PROBER
from conference_record import api as record_api
from documents import api as documents_api
from monitoring import wiring as monitoring_wiring
from monitoring.health.monitor import MONITOR
from monitoring.health.store import EndpointInfo
from scheduler import booking_api, calendar_feed
from scheduler import lifecycle_wiring as lifecycle
from scheduler.bridge_port import BridgePort
from scheduler.room_placement import NodePlacement
from vcbridge import openapi_routes, record_sources, room_reports
from vcbridge.core.api import (
    audit_routes,
    auth_routes,
    endpoints_routes,
    events_routes,
    health_routes,
    users_routes,
)
from vcbridge.core.app_keys import (
    CLOCK,
    DATABASE,
    EVENT_BUS,
    HEALTH_REPORTERS,
    LOGIN_LIMITER,
    PASSWORDS,
    SETTINGS,
    STREAM_MESSAGES,
    TOKEN_CACHE,
    ZONE,
)
from vcbridge.core.auth.login_limiter import LoginLimiter, LoginPolicy
from vcbridge.core.auth.token_cache import AgentTokenCache
from vcbridge.core.bootstrap import prepare_database
from vcbridge.core.clock import Clock, SystemClock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus
from vcbridge.core.http.auth_middleware import auth_middleware
from vcbridge.core.http.errors import error_middleware
from vcbridge.core.media_counters import MediaCounters, MediaSource
from vcbridge.core.settings import Settings, passwords_for
from vcbridge.core.shutdown import bound_cleanups
from vcbridge.room_reports import RoomReports
from web import pages

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The vcbridge application for `settings` (the database is opened on startup)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[ZONE] = ZoneInfo(settings.timezone)
    app[LOGIN_LIMITER] = LoginLimiter(LoginPolicy.from_settings(settings))
    app[PASSWORDS] = passwords_for(settings)
    app[TOKEN_CACHE] = AgentTokenCache(settings.agent_token_cache_seconds)
    app[HEALTH_REPORTERS] = {}
    app[STREAM_MESSAGES] = {}
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_event_bus_ctx)

    health_routes.setup_routes(app)
    auth_routes.setup_routes(app)
    users_routes.setup_routes(app)
    endpoints_routes.setup_routes(app)
    calendar_feed.setup_routes(app)
    booking_api.setup_routes(app)
    documents_api.setup_routes(app)
    # The seam between the scheduler and the bridge: the lifecycle opens and closes
    # this process's rooms through the registry (scheduler/bridge_port.py).
    reports = RoomReports(app)
    rooms = bridge_wiring.setup(app, settings, reports, reports)
    # Sites a killed process left "joined" are dropped before anyone can connect.
    app.cleanup_ctx.append(room_reports.stranded_sites_ctx)
    lifecycle.setup(app, _bridge_port(app, settings, rooms))
    # The conference record reads the bridge's recordings (and the documents) through
    # the sources the composition root gives it.
    record_sources.setup(app)
    record_api.setup_routes(app)
    audit_routes.setup_routes(app)
    events_routes.setup_routes(app)
    openapi_routes.setup_routes(app)
    monitoring_wiring.setup(app, media=_bridge_media(rooms), mixes=lambda: mix_totals(rooms),
                           token=settings.metrics_token or None)
    if SIP_PROBER in app:
        # A SIP room's answers to the bridge's OPTIONS pings are its heartbeats.
        app[SIP_PROBER].listeners.append(_sip_presence(app))
    pages.setup_routes(app)
    # Last: every part's cleanup bounded, so that a stuck part cannot keep the service
    # from stopping (logged as an error naming it).
    bound_cleanups(app)
    return app


def _sip_presence(app: web.Application) -> AnswerListener:
    """The SIP rooms' answers into endpoint health (`sip` source, docs/sip.md)."""

    async def answered(endpoint_id: int, code: str, rtt_ms: float | None) -> None:
        await app[MONITOR].sip_answered(EndpointInfo(endpoint_id, code, "", ""), rtt_ms)

    return answered


def _bridge_port(app: web.Application, settings: Settings, rooms: RoomRegistry) -> BridgePort:
    """What the lifecycle opens and closes rooms through: this process's registry (one
    process, SQLite), or the placement of rooms on bridge nodes (PostgreSQL), which
    opens a room here only when this process is the node chosen."""
    if not settings.runs_nodes:
        return rooms

    def local_node() -> str | None:
        membership = app.get(NODE)
        return membership.node_id if membership is not None and membership.member else None

    return NodePlacement(lambda: app[DATABASE], lambda: app[EVENT_BUS], lambda: app[CLOCK],
                         rooms if "bridge" in settings.roles else None, local_node)


def _bridge_media(rooms: RoomRegistry) -> MediaSource:
    """The metrics' view of the sites connected to this process's rooms."""

    def read() -> dict[str, MediaCounters]:
        return site_media(rooms)

    return read


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    report = await prepare_database(database, settings, app[CLOCK].now(), app[PASSWORDS])
    log.info("database ready; roster: %s", report.summary())
    app[DATABASE] = database
    yield
    await database.dispose()


async def _event_bus_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = EventBus(app[DATABASE])
    await bus.start()
    app[EVENT_BUS] = bus
    yield
    await bus.stop()
