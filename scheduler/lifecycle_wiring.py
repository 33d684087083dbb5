"""Wires the lifecycle into the application: routes, the runner, leadership."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from scheduler import lifecycle_api
from scheduler.bridge_port import BridgePort
from scheduler.connect_policy import RedialPolicy
from scheduler.leader import Leadership
from scheduler.node_sweep import NodeSweep
from scheduler.runner import LifecycleRunner
from scheduler.transitions import LifecycleSettings
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, HEALTH_REPORTERS, SETTINGS
from vcbridge.core.settings import Settings

RUNNER = web.AppKey("lifecycle_runner", LifecycleRunner)
LEADERSHIP = web.AppKey("leadership", Leadership)
BRIDGE = web.AppKey("bridge_port", BridgePort)


def redial_policy(settings: Settings) -> RedialPolicy:
    """The connect policy's timing from the settings."""
    return RedialPolicy(
        invite_timeout=timedelta(seconds=settings.invite_timeout_seconds),
        backoff=tuple(timedelta(seconds=s) for s in settings.redial_backoff_seconds),
        redial_dropped_every=timedelta(seconds=settings.redial_dropped_seconds),
    )


def setup(app: web.Application, bridge: BridgePort) -> None:
    """Add the lifecycle routes and, when enabled, the scheduler (leader only)."""
    settings = app[SETTINGS]
    app[BRIDGE] = bridge
    lifecycle_api.setup_routes(app, redial_policy(settings))
    if settings.scheduler_enabled and "scheduler" in settings.roles:
        app.cleanup_ctx.append(_scheduler_ctx)
    else:
        app[HEALTH_REPORTERS]["scheduler"] = lambda: "disabled"


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    runner = LifecycleRunner(
        app[DATABASE], app[EVENT_BUS], app[CLOCK], app[BRIDGE],
        LifecycleSettings(settings.warn_minutes,
                          timedelta(seconds=settings.presence_stale_seconds)),
        redial_policy(settings),
        timedelta(minutes=settings.scheduler_horizon_minutes),
    )
    on_elected: Callable[[], Awaitable[None]] = runner.start
    on_deposed: Callable[[], Awaitable[None]] = runner.stop
    if settings.runs_nodes:
        # The leader also watches the bridge nodes: dead ones, their rooms, unplaced rooms.
        sweep = NodeSweep(app[DATABASE], app[EVENT_BUS], app[CLOCK], redial_policy(settings),
                          dead_after=settings.node_dead_after_seconds,
                          # Twice per heartbeat: a dead node is seen at most half a
                          # heartbeat after its row went stale (a sweep is a few reads).
                          interval=settings.node_heartbeat_seconds / 2)

        async def elected() -> None:
            await runner.start()
            await sweep.start()

        async def deposed() -> None:
            await sweep.stop()
            await runner.stop()

        on_elected, on_deposed = elected, deposed
    leadership = Leadership(app[DATABASE], on_elected, on_deposed,
                            settings.leader_poll_seconds)
    app[RUNNER], app[LEADERSHIP] = runner, leadership
    app[HEALTH_REPORTERS]["scheduler"] = lambda: (
        "leader" if leadership.is_leader and runner.running else "standby"
    )
    task = asyncio.create_task(leadership.run(), name="scheduler-leadership")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
