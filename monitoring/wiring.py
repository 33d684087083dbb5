"""Assembles monitoring in the application: endpoint health (`monitoring.health.wiring`),
then `/metrics`, the HTTP middleware, and the background parts that keep the metrics
current, with the health monitor deciding each endpoint's status.

`setup(app)` is the one call the composition root makes, after the core,
scheduler and bridge are set up (its cleanup contexts need the database and
the event bus, which the core's cleanup contexts open first). It depends on
the core only: whether this process is the scheduler leader is read from the
core's health reporters (`/healthz` shows the same answer), and media
counters come through a `MediaSource` the composition root builds from the
bridge.

Call quality joins the two packages here: the bridge's view, sampled by the
metrics every heartbeat interval, goes to the health monitor (which judges the
call on the worse of it and the site's heartbeat); each heartbeat's call
figures go to the site-side gauges; and the health model's limits are exported
for the alert rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from monitoring import grafana
from monitoring.health import wiring as health_wiring
from monitoring.health.model import NOT_READY_CODES, CallFigures, HealthState, Report, Thresholds
from monitoring.health.monitor import HealthMonitor
from monitoring.metrics import routes as metrics_routes
from monitoring.metrics.families import METRICS, Metrics, Quality, QualityLimits
from monitoring.metrics.http_middleware import metrics_middleware
from monitoring.metrics.media import MediaSampler
from monitoring.metrics.recorder import MetricsRecorder
from monitoring.metrics.refresher import StateRefresher
from monitoring.metrics.site_quality import SiteQuality
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
from vcbridge.core.media_counters import MediaSource, MixSource
from vcbridge.core.sip_gateway_status import SIP_GATEWAY_PROBE, SIP_SITES_PROBE

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Monitoring:
    """The monitoring of one app; the background parts exist while the app runs."""

    metrics: Metrics
    recorder: MetricsRecorder | None = None
    refresher: StateRefresher | None = None
    sampler: MediaSampler | None = None
    site_quality: SiteQuality | None = None


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
    mixes: MixSource | None = None,
    token: str | None = None,
    refresh_seconds: float = 10.0,
    media_seconds: float | None = None,
) -> Metrics:
    """Add endpoint health (routes, monitor, background tasks), then the metrics
    middleware (outermost), `GET /metrics` and the metrics' lifetime. The bridge's media
    is sampled every heartbeat interval (`media_seconds` by default), so that both views
    of a call cover the same length of time."""
    monitor = health_wiring.setup(app)
    grafana.setup_routes(app)
    settings = app[SETTINGS]
    metrics = setup_metrics(
        app, media=media, mixes=mixes, status_model=status_model(monitor), token=token,
        refresh_seconds=refresh_seconds,
        media_seconds=media_seconds or settings.health_heartbeat_interval_seconds,
        media_listeners=[lambda window: monitor.bridge_media(
            {code: None if q is None else bridge_figures(q) for code, q in window.items()})],
        site_max_age=settings.health_offline_after_seconds)
    metrics.set_quality_limits(quality_limits(monitor.thresholds))
    site = app[MONITORING].site_quality
    assert site is not None
    monitor.report_listeners.append(
        lambda code, report: site.report(code, site_quality(report)))
    monitor.drop_listeners.append(metrics.heartbeat_dropped)
    return metrics


def _figure(value: float | None, scale: float = 1.0) -> float | None:
    return None if value is None or not math.isfinite(value) else value * scale


def bridge_figures(quality: Quality) -> CallFigures:
    """The bridge's sampled quality in the health model's units (NaN: not measured)."""
    return CallFigures(
        rtt_ms=_figure(quality.round_trip_time_seconds, 1000),
        jitter_ms=_figure(quality.jitter_seconds, 1000),
        packet_loss_ratio=_figure(quality.packet_loss_ratio),
        bitrate_in_bps=_figure(quality.receive_bytes_per_second, 8),
        bitrate_out_bps=_figure(quality.send_bytes_per_second, 8),
        fps=_figure(quality.frames_per_second),
    )


def site_quality(report: Report) -> tuple[float, ...] | None:
    """A heartbeat's call figures in the metrics' units and `QUALITY_FIELDS`' order, NaN
    where not measured (None: not in a call). On every heartbeat: kept plain."""
    call = report.call
    if call is None:
        return None
    nan = math.nan
    return (
        nan if call.rtt_ms is None else call.rtt_ms / 1000,
        nan if call.jitter_ms is None else call.jitter_ms / 1000,
        nan if call.packet_loss_ratio is None else call.packet_loss_ratio,
        nan if call.bitrate_in_bps is None else call.bitrate_in_bps / 8,
        nan if call.bitrate_out_bps is None else call.bitrate_out_bps / 8,
        nan if call.fps is None else call.fps,
    )


def quality_limits(thresholds: Thresholds) -> QualityLimits:
    """The health model's limits in the metrics' units."""
    return QualityLimits(
        packet_loss_ratio=thresholds.packet_loss_max,
        round_trip_time_seconds=thresholds.rtt_ms_max / 1000,
        jitter_seconds=thresholds.jitter_ms_max / 1000,
        frames_per_second=thresholds.fps_min if thresholds.fps_min > 0 else math.nan,
    )


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
    mixes: MixSource | None = None,
    status_model: StatusModel = presence_status,
    token: str | None = None,
    refresh_seconds: float = 10.0,
    media_seconds: float = 5.0,
    media_listeners: Sequence[Callable[[Mapping[str, Quality | None]], None]] = (),
    site_max_age: float = 30.0,
) -> Metrics:
    """Add the metrics middleware (outermost), `GET /metrics` and the metrics' lifetime."""
    metrics = Metrics(is_leader=scheduler_leader(app))
    monitoring = Monitoring(metrics, site_quality=SiteQuality(metrics, max_age=site_max_age))
    app[METRICS], app[MONITORING] = metrics, monitoring
    if LOGIN_LIMITER in app:
        metrics.watch_logins(app[LOGIN_LIMITER].stats)
    if SIP_GATEWAY_PROBE in app:
        metrics.watch_sip_gateway(app[SIP_GATEWAY_PROBE])
    if SIP_SITES_PROBE in app:
        metrics.watch_sip_sites(app[SIP_SITES_PROBE])
    if mixes is not None:
        metrics.watch_audio_mixes(mixes)
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
        if monitoring.site_quality is not None:
            tasks.append(asyncio.create_task(monitoring.site_quality.run(),
                                             name="metrics-site-quality"))
        if media is not None:
            monitoring.sampler = MediaSampler(metrics, media, interval=media_seconds)
            monitoring.sampler.listeners.extend(media_listeners)
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
