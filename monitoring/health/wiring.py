"""Wires endpoint health into the application: routes and background tasks.

`setup(app)` (called by the composition root after the database and event
bus contexts are registered) adds:

- `POST /api/v1/endpoints/{code}/heartbeat`, the same heartbeat as a message on
  the event stream (`{"type": "heartbeat", "body": ...}`), and the read routes
  of `api.py`;
- a cleanup context that binds the monitor to the database and event bus,
  sweeps once at start (endpoints silent since before a restart go offline
  from when their heartbeats stopped), then runs four tasks: the recorder
  (stores the changes heartbeats reveal, batched), the sweep every
  `health_sweep_seconds`, the pruning of old samples every hour, and the
  readiness publisher (`readiness_publisher.py`);
- at shutdown the monitor's unrecorded changes and samples are written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from monitoring.health import api as health_api
from monitoring.health.heartbeat_api import post_heartbeat, stream_heartbeat
from monitoring.health.monitor import MONITOR, HealthMonitor
from monitoring.health.readiness_publisher import readiness_publisher
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS, STREAM_MESSAGES, ZONE

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600.0


def setup(app: web.Application) -> HealthMonitor:
    """Add the health routes and background tasks to `app`; returns the monitor."""
    monitor = HealthMonitor(app[SETTINGS], app[CLOCK], app[ZONE])
    app[MONITOR] = monitor
    app.router.add_post("/api/v1/endpoints/{code}/heartbeat", post_heartbeat)
    app[STREAM_MESSAGES]["heartbeat"] = stream_heartbeat
    health_api.setup_routes(app)
    app.cleanup_ctx.append(_health_ctx)
    return monitor


async def _health_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor = app[MONITOR]
    monitor.bind(app[DATABASE], app[EVENT_BUS])
    try:
        await monitor.sweep()
    except Exception:  # the service starts anyway; the next sweep retries
        log.exception("health: first sweep failed")
    settings = app[SETTINGS]
    tasks = [
        asyncio.create_task(_every(settings.health_sweep_seconds, monitor.sweep, "sweep"),
                            name="health-sweep"),
        asyncio.create_task(_every(PRUNE_EVERY_SECONDS, monitor.prune, "prune", at_once=True),
                            name="health-prune"),
        asyncio.create_task(readiness_publisher(app), name="health-readiness"),
        asyncio.create_task(monitor.run_recorder(), name="health-recorder"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    try:
        await monitor.close()
    except Exception:
        log.exception("health: final flush failed")


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str, *,
                 at_once: bool = False) -> None:
    if not at_once:
        await asyncio.sleep(seconds)
    while True:
        try:
            await job()
        except Exception:  # a database hiccup must not stop monitoring for good
            log.exception("health: %s failed; retrying", name)
        await asyncio.sleep(seconds)
