"""HTTP handlers of endpoint health: the board, one endpoint, availability, readiness.

- `GET /api/v1/health`: every endpoint's state (staff: admin, booker, it;
  an operator or agent: its own endpoint only).
- `GET /api/v1/health/{code}`: one endpoint, with `?hours=` (24) of
  per-minute figures and its recent transitions.
- `GET /api/v1/health/{code}/history?hours=24`: the same window as dense series for
  charts (admin, IT, the endpoint's own operator).
- `GET /api/v1/reports/availability?month=YYYY-MM[&format=csv[&lang=vi]]`: staff.
- `GET /api/v1/conferences/{id}/readiness`: the pre-flight check of a
  conference, for whoever may see the conference."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring import responses
from monitoring.health import availability, history, store
from monitoring.health.codec import state_of
from monitoring.health.model import HealthState, TestCall
from monitoring.health.monitor import MONITOR, EndpointView, HealthMonitor
from monitoring.health.readiness import ParticipantHealth, Readiness, readiness
from monitoring.health.samples import sample_of, samples_since
from vcbridge.core.app_keys import DATABASE, ZONE
from vcbridge.core.auth.conference_access import is_staff, may_see, may_see_endpoint, parties
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import Conference, Endpoint, Role
from vcbridge.core.http.auth_middleware import require_permission, require_principal
from vcbridge.core.http.errors import forbidden, invalid, not_found
from vcbridge.core.http.parsing import path_int, query_int
from vcbridge.core.http.render import render

CSV = "text/csv"


def _when(value: datetime | None, zone: ZoneInfo) -> str | None:
    return to_local_iso(value, zone) if value is not None else None


def _test_call(test_call: TestCall | None, zone: ZoneInfo) -> responses.HealthTestCall | None:
    return None if test_call is None else responses.HealthTestCall.of(test_call, zone)


def endpoint_health(view: EndpointView, zone: ZoneInfo, now: datetime
                    ) -> responses.EndpointHealth:
    """One endpoint's health as the API shows it (its latest heartbeat's figures, or
    null where it has sent none)."""
    report = view.latest.report
    last = report.received_at if report is not None else None
    call = report.call if report is not None else None
    return responses.EndpointHealth(
        code=view.endpoint.code,
        name=view.endpoint.name,
        name_en=view.endpoint.name_en,
        state=view.health.state,
        since=_when(view.since, zone),
        reasons=[responses.HealthReason.of(r, zone, now) for r in view.health.reasons],
        last_heartbeat=_when(last, zone),
        seconds_since_heartbeat=(round((now - last).total_seconds(), 1)
                                 if last is not None else None),
        event_stream=view.stream_connected,
        devices=responses.Devices.of(report.devices) if report is not None else None,
        cpu_percent=report.cpu_percent if report is not None else None,
        network=responses.Network.of(report) if report is not None else None,
        call=responses.CallFigures.of(call, last, view.bridge, zone),
        clock_offset_seconds=(round(report.clock_offset_seconds, 3)
                              if report is not None else None),
        agent_version=report.agent_version if report is not None else None,
        source=("sip" if report.source == "sip" else "agent") if report is not None else None,
        test_call=_test_call(view.latest.test_call, zone),
    )


async def list_health(request: web.Request) -> web.Response:
    """GET /api/v1/health: every endpoint (an operator: its own)."""
    principal = require_principal(request)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        if is_staff(principal):
            endpoints = await store.active_endpoints(session)
        elif principal.endpoint_id is not None:
            endpoints = await store.active_endpoints(session, [principal.endpoint_id])
        else:
            raise forbidden("this account is bound to no endpoint")
        views = await monitor.views(session, endpoints)
    now = monitor.clock.now()
    counts = Counter(view.health.state for view in views)
    return render(responses.HealthBoard(
        time=to_local_iso(now, zone),
        counts=responses.HealthCounts(ok=counts[HealthState.OK],
                                      degraded=counts[HealthState.DEGRADED],
                                      offline=counts[HealthState.OFFLINE]),
        endpoints=[endpoint_health(v, zone, now) for v in views],
    ))


async def _endpoint_by_code(session: AsyncSession, code: str) -> store.EndpointInfo:
    row = (await session.execute(
        select(Endpoint.id, Endpoint.code, Endpoint.name, Endpoint.name_en)
        .where(Endpoint.code == code)
    )).first()
    if row is None:
        raise not_found(f"no endpoint {code!r}")
    return store.EndpointInfo(*row)


async def get_health(request: web.Request) -> web.Response:
    """GET /api/v1/health/{code}?hours=24: one endpoint, its figures and transitions."""
    principal = require_principal(request)
    hours = query_int(request, "hours", 24, 1, 24 * 35)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    # Changes this process saw but has not stored yet belong in the transitions below.
    with contextlib.suppress(SQLAlchemyError, OSError):
        await monitor.record_changes()
    async with request.app[DATABASE].read() as session:
        endpoint = await _endpoint_by_code(session, request.match_info["code"])
        if not may_see_endpoint(principal, endpoint.id):
            raise forbidden("you can only see your own endpoint's health")
        (view,) = await monitor.views(session, [endpoint])
        now = monitor.clock.now()
        samples = await samples_since(session, endpoint.id, now - timedelta(hours=hours))
        transitions = await store.recent_transitions(session, endpoint.id)
    return render(responses.EndpointHealthDetail(
        **dict(endpoint_health(view, zone, now)),
        samples=[sample_of(s, zone) for s in samples],
        transitions=[store.transition_of(t, zone, now) for t in transitions],
    ))


HISTORY_MAX_HOURS = 168


def may_read_history(principal: Principal, endpoint_id: int) -> bool:
    """Admins and IT staff read every endpoint's history; an operator its own."""
    return principal.can(Permission.READ_HEALTH_HISTORY) or (
        principal.role is Role.OPERATOR and principal.acts_for_endpoint(endpoint_id))


async def get_history(request: web.Request) -> web.Response:
    """GET /api/v1/health/{code}/history?hours=24: per-minute series and transitions."""
    principal = require_principal(request)
    hours = query_int(request, "hours", 24, 1, HISTORY_MAX_HOURS)
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    # Changes this process saw but has not stored yet belong in the transitions below.
    with contextlib.suppress(SQLAlchemyError, OSError):
        await monitor.record_changes()
    async with request.app[DATABASE].read() as session:
        endpoint = await _endpoint_by_code(session, request.match_info["code"])
        if not may_read_history(principal, endpoint.id):
            raise forbidden("the health history is for IT staff and the endpoint's operator")
        now = monitor.clock.now()
        found = await history.build_history(session, endpoint.id, now, hours)
    return render(responses.HealthHistory(
        code=endpoint.code,
        name=endpoint.name,
        name_en=endpoint.name_en,
        from_=to_local_iso(found.start, zone),
        to=to_local_iso(found.end, zone),
        step_seconds=int(history.STEP.total_seconds()),
        minutes=found.minutes,
        series=found.series,
        state_at_start=state_of(found.state_at_start) if found.state_at_start else None,
        transitions=[store.transition_of(t, zone, now) for t in found.transitions],
        transitions_total=found.transitions_total,
    ))


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise invalid("query parameter 'format' must be 'json' or 'csv'")
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    return CSV in accept and "application/json" not in accept


async def availability_report(request: web.Request) -> web.Response:
    """GET /api/v1/reports/availability?month=YYYY-MM[&format=csv[&lang=vi]]."""
    require_permission(request, Permission.READ_ALL_CONFERENCES)
    as_csv = _wants_csv(request)
    lang = request.query.get("lang", "en")
    if lang not in availability.CSV_LANGUAGES:
        raise invalid("query parameter 'lang' must be 'en' or 'vi'")
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    now = monitor.clock.now()
    # Absent means this month; present but empty is as wrong as any other bad month (422).
    month = request.query.get("month")
    if month is None:
        month = availability.current_month(now, zone)
    try:
        async with request.app[DATABASE].read() as session:
            endpoints = await store.active_endpoints(session)
            report = await availability.build_report(session, month, zone, now, endpoints)
    except availability.BadMonth as exc:
        raise invalid(f"query parameter 'month': {exc}") from None
    if as_csv:
        return web.Response(
            body=availability.to_csv(report, lang), content_type=CSV, charset="utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="{availability.csv_filename(report, lang)}"'},
        )
    return render(responses.AvailabilityReport(
        month=report.month,
        from_=to_local_iso(report.start, zone),
        to=to_local_iso(report.end, zone),
        elapsed_seconds=round(report.elapsed),
        endpoints=[availability.row_of(r, report.elapsed) for r in report.rows],
    ))


# -- readiness -----------------------------------------------------------------------------


async def conference_readiness(session: AsyncSession, monitor: HealthMonitor,
                               conference: Conference) -> tuple[Readiness, list[EndpointView]]:
    """The pre-flight check of `conference`'s participants, now."""
    endpoints = [store.EndpointInfo(p.endpoint.id, p.endpoint.code, p.endpoint.name,
                                    p.endpoint.name_en) for p in conference.participants]
    views = await monitor.views(session, endpoints)
    participants = [
        ParticipantHealth(
            code=v.endpoint.code, name=v.endpoint.name, health=v.health, since=v.since,
            last_heartbeat=v.latest.report.received_at if v.latest.report else None,
            devices=v.latest.report.devices if v.latest.report else None,
            test_call=v.latest.test_call,
        )
        for v in views
    ]
    return readiness(participants, monitor.clock.now(), monitor.zone), views


def readiness_event_data(result: Readiness) -> dict[str, Any]:
    """`data` of the `conference.readiness` event."""
    return {
        "ready": result.ready,
        "total": result.total,
        "summary_vi": result.summary_vi,
        "summary_en": result.summary_en,
        "endpoints": [
            {"code": item.participant.code, "ready": item.ready,
             "state": item.participant.health.state.value,
             "problems": [r.code.value for r in item.problems]}
            for item in result.items
        ],
    }


async def get_readiness(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/readiness: who is ready for the conference."""
    principal = require_principal(request)
    conference_id = path_int(request, "id", "conference")
    monitor = request.app[MONITOR]
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        # A conference the caller may not see is answered as absent (as the booking API does).
        if conference is None or not may_see(principal, parties(conference)):
            raise not_found(f"no conference {conference_id}")
        result, _views = await conference_readiness(session, monitor, conference)
    now = monitor.clock.now()
    return render(responses.Readiness(
        conference=conference.id,
        title=conference.title,
        status=conference.status.value,
        start=to_local_iso(conference.start, zone),
        time=to_local_iso(now, zone),
        ready=result.ready,
        total=result.total,
        summary_vi=result.summary_vi,
        summary_en=result.summary_en,
        endpoints=[
            responses.ParticipantReadiness(
                code=item.participant.code,
                name=item.participant.name,
                ready=item.ready,
                state=item.participant.health.state,
                since=_when(item.participant.since, zone),
                last_heartbeat=_when(item.participant.last_heartbeat, zone),
                devices=(responses.Devices.of(item.participant.devices)
                         if item.participant.devices is not None else None),
                test_call=_test_call(item.participant.test_call, zone),
                problems=[responses.HealthReason.of(r, zone, now) for r in item.problems],
                warnings=[responses.HealthReason.of(r, zone, now) for r in item.warnings],
            )
            for item in result.items
        ],
    ))


def setup_routes(app: web.Application) -> None:
    """Register the health, availability and readiness routes."""
    app.router.add_get("/api/v1/health", list_health)
    app.router.add_get("/api/v1/health/{code}", get_health)
    app.router.add_get("/api/v1/health/{code}/history", get_history)
    app.router.add_get("/api/v1/reports/availability", availability_report)
    app.router.add_get("/api/v1/conferences/{id}/readiness", get_readiness)
