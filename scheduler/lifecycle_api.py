"""HTTP handlers of the running conference: roll call, extension, declining an invitation."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from scheduler import attendance, responses
from scheduler.booking_api import BOOKING_POLICY, booking_error, load_visible
from scheduler.booking_service import (
    BookingConflict,
    BookingInvalid,
    BookingStateError,
    update_conference,
)
from scheduler.booking_store import lock_bookings, lock_conferences
from scheduler.conference_schemas import ConferenceUpdate
from scheduler.connect_policy import ConnectState, Reason, RedialPolicy
from scheduler.connect_policy import rollcall as build_rollcall
from scheduler.responses import Declined, RollCall, RollCallEndpoint
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, ZONE
from vcbridge.core.auth.principal import Permission
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import RUNNING_STATUSES, Conference, ConferenceStatus
from vcbridge.core.http.auth_middleware import remote_of, require_principal
from vcbridge.core.http.errors import conflict, forbidden
from vcbridge.core.http.json_schema import whole_number
from vcbridge.core.http.parsing import read_model
from vcbridge.core.http.render import render

REDIAL_POLICY = web.AppKey("redial_policy", RedialPolicy)


class Extension(BaseModel):
    """POST /api/v1/conferences/{id}/extend."""

    model_config = ConfigDict(extra="forbid", strict=True)
    minutes: Annotated[int, Field(ge=1, le=240), whole_number]


async def rollcall(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/rollcall: who is expected, in, and missing (and why)."""
    principal = require_principal(request)
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        conference = await load_visible(session, request, principal)
        rows = await attendance.rows_of(session, conference.id)
    connections = {row.endpoint.code: attendance.connection_of(row) for row in rows}
    if not rows:
        return render(_unopened_rollcall(conference))
    call = build_rollcall(connections)
    return render(RollCall(
        conference=conference.id, status=conference.status,
        expected=call.expected, connected=call.connected,
        endpoints=[
            RollCallEndpoint(
                code=row.endpoint.code, state=row.state, reason=row.reason,
                attempts=row.attempts, redialling=connections[row.endpoint.code].redialling,
                ready_at_open=row.ready_at_open, since=to_local_iso(row.last_change, zone),
            )
            for row in rows
        ],
        summary_vi=call.summary_vi(), summary_en=call.summary_en(),
    ))


def _unopened_rollcall(conference: Conference) -> RollCall:
    # The room has not opened yet: everyone is expected, nobody invited.
    codes = [p.endpoint.code for p in conference.participants]
    cancelled = conference.status is ConferenceStatus.CANCELLED
    return RollCall(
        conference=conference.id, status=conference.status,
        expected=len(codes), connected=0, endpoints=[
            RollCallEndpoint(code=c, state=ConnectState.PENDING, reason=Reason.NOT_INVITED,
                             attempts=0, redialling=False, ready_at_open=None, since=None)
            for c in codes],
        summary_vi=f"0/{len(codes)} điểm cầu đã kết nối; "
        + ("hội nghị đã bị hủy" if cancelled else "phòng họp chưa mở"),
        summary_en=f"0/{len(codes)} connected; "
        + ("the conference was cancelled" if cancelled else "the room is not open yet"),
    )


async def extend(request: web.Request) -> web.Response:
    """POST /api/v1/conferences/{id}/extend: the chair or a booker adds minutes if free."""
    principal = require_principal(request)
    body = await read_model(request, Extension)
    now = request.app[CLOCK].now()
    policy = request.app[BOOKING_POLICY]
    try:
        async with request.app[DATABASE].write() as session:
            # Locked first, so two extensions at once add up instead of racing.
            await lock_bookings(session)
            conference = await load_visible(session, request, principal)
            # Serialised with the lifecycle too: an extension never races the end.
            await lock_conferences(session, [conference.id])
            await session.refresh(conference)
            if not (principal.can(Permission.BOOK)
                    or principal.acts_for_endpoint(conference.chair_endpoint_id)):
                raise forbidden("only the chair endpoint or a booker can extend a conference")
            if conference.status not in RUNNING_STATUSES:
                raise conflict(f"conference {conference.id} is {conference.status.value}; "
                               "only an open or live conference can be extended")
            change = ConferenceUpdate(end=conference.end + timedelta(minutes=body.minutes))
            await update_conference(session, conference, change, "this",
                                    principal.actor(remote_of(request)), now, policy,
                                    request.app[EVENT_BUS])
            payload = responses.Conference.of(conference, policy.zone)
    except (BookingConflict, BookingInvalid, BookingStateError) as exc:
        raise booking_error(exc) from None
    return render(payload)


async def decline(request: web.Request) -> web.Response:
    """POST /api/v1/conferences/{id}/decline: the invited endpoint says it will not join."""
    principal = require_principal(request)
    if principal.endpoint_code is None:
        raise forbidden("only an endpoint (its operator or agent) can decline")
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].write() as session:
        conference = await load_visible(session, request, principal)
        state = await attendance.report(
            session, conference.id, principal.endpoint_code, "declined", now,
            request.app[REDIAL_POLICY], request.app[EVENT_BUS],
        )
    if state is None:
        raise conflict(f"conference {conference.id} is not running")
    return render(Declined(conference=conference.id, endpoint=principal.endpoint_code,
                           state=state))


def setup_routes(app: web.Application, redial: RedialPolicy) -> None:
    """Register the running-conference routes."""
    app[REDIAL_POLICY] = redial
    app.router.add_get("/api/v1/conferences/{id}/rollcall", rollcall)
    app.router.add_post("/api/v1/conferences/{id}/extend", extend)
    app.router.add_post("/api/v1/conferences/{id}/decline", decline)
