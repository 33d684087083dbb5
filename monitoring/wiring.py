"""Assembles monitoring in the application: endpoint health (`monitoring.health.wiring`),
then `/metrics`, the HTTP middleware, and the background parts that keep the metrics
current, with the health monitor deciding each endpoint's status.

`setup(app)` is the one call the composition root makes, after the core,
scheduler and bridge are set up (its cleanup contexts need the database and
the event bus, which the core's cleanup contexts open first). It depends on
the core only: whether this process is the scheduler leader is read from the
core's health reporters (`/healthz` shows the same answer), and media
counters come through a `MediaSource` the composition root builds from the
bridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from monitoring import grafana
from monitoring.health import wiring as health_wiring
from monitoring.health.model import NOT_READY_CODES, HealthState
from monitoring.health.monitor import HealthMonitor
from monitoring.metrics import routes as metrics_routes
from monitoring.metrics.families import METRICS, Metrics
from monitoring.metrics.http_middleware import metrics_middleware
from monitoring.metrics.media import MediaSampler
from monitoring.metrics.recorder import MetricsRecorder
from monitoring.metrics.refresher import StateRefresher
from monitoring.metrics.status import (
    EndpointFacts,
    EndpointStatus,
    StatusModel,
    presence_status,
)
from vcbridge.core.app_keys import (
    CLOCK,
    DATABASE,
    EVENT_BUS,
    HEALTH_REPORTERS,
    LOGIN_LIMITER,
    SETTINGS,
)
from vcbridge.core.media_counters import MediaSource

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Monitoring:
    """The monitoring of one app; the background parts exist while the app runs."""

    metrics: Metrics
    recorder: MetricsRecorder | None = None
    refresher: StateRefresher | None = None
    sampler: MediaSampler | None = None


MONITORING = web.AppKey("monitoring", Monitoring)


def scheduler_leader(app: web.Application) -> Callable[[], bool]:
    """Whether this process runs the lifecycle scheduler now (its /healthz reporter)."""

    def is_leader() -> bool:
        reporter = app[HEALTH_REPORTERS].get("scheduler")
        return reporter is not None and reporter() == "leader"

    return is_leader


def setup(
    app: web.Application,
    *,
    media: MediaSource | None = None,
    token: str | None = None,
    refresh_seconds: float = 10.0,
    media_seconds: float = 5.0,
) -> Metrics:
    """Add endpoint health (routes, monitor, background tasks), then the metrics
    middleware (outermost), `GET /metrics` and the metrics' lifetime."""
    monitor = health_wiring.setup(app)
    grafana.setup_routes(app)
    return setup_metrics(app, media=media, status_model=status_model(monitor), token=token,
                         refresh_seconds=refresh_seconds, media_seconds=media_seconds)


def status_model(monitor: HealthMonitor) -> StatusModel:
    """The metrics' `StatusModel` backed by the health model: each endpoint's state as of
    the monitor's last sweep; until the first sweep, the presence-based default."""

    def status(facts: EndpointFacts) -> EndpointStatus:
        entry = monitor.board.get(facts.code)
        if entry is None:
            return presence_status(facts)
        health = entry.health
        ready = health.state is not HealthState.OFFLINE and not health.codes & NOT_READY_CODES
        return EndpointStatus(health.state, ready, entry.last_heartbeat)

    return status


def setup_metrics(
    app: web.Application,
    *,
    media: MediaSource | None = None,
    status_model: StatusModel = presence_status,
    token: str | None = None,
    refresh_seconds: float = 10.0,
    media_seconds: float = 5.0,
) -> Metrics:
    """Add the metrics middleware (outermost), `GET /metrics` and the metrics' lifetime."""
    metrics = Metrics(is_leader=scheduler_leader(app))
    monitoring = Monitoring(metrics)
    app[METRICS], app[MONITORING] = metrics, monitoring
    if LOGIN_LIMITER in app:
        metrics.watch_logins(app[LOGIN_LIMITER].stats)
    app.middlewares.insert(0, metrics_middleware(metrics))
    metrics_routes.setup_routes(app, metrics, token)

    async def monitoring_ctx(app: web.Application) -> AsyncIterator[None]:
        recorder = MetricsRecorder(metrics, app[EVENT_BUS])
        refresher = StateRefresher(
            metrics, app[DATABASE], app[CLOCK],
            presence_stale=timedelta(seconds=app[SETTINGS].presence_stale_seconds),
            status_model=status_model, interval=refresh_seconds,
        )
        # Subscribe first, then read the table: no change slips between the two.
        await recorder.start()
        try:
            await refresher.refresh()  # every endpoint is exported from the first scrape
        except Exception:  # monitoring must not keep the service from starting
            log.exception("metrics: first refresh failed; retrying in the background")
        monitoring.recorder, monitoring.refresher = recorder, refresher
        tasks = [asyncio.create_task(refresher.run(), name="metrics-refresher")]
        if media is not None:
            monitoring.sampler = MediaSampler(metrics, media, interval=media_seconds)
            tasks.append(asyncio.create_task(monitoring.sampler.run(), name="metrics-media"))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await recorder.stop()
        monitoring.recorder = monitoring.refresher = monitoring.sampler = None

    app.cleanup_ctx.append(monitoring_ctx)
    return metrics
