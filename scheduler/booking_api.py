"""HTTP handlers of the booking API: `/api/v1/conferences`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import responses
from scheduler.booking_rules import BookingLimits
from scheduler.booking_service import (
    BookingConflict,
    BookingInvalid,
    BookingPolicy,
    BookingStateError,
    cancel_conference,
    check_create,
    check_update,
    create_conference,
    expand_series,
    update_conference,
)
from scheduler.booking_store import filter_conferences, listed_rows, listing_query
from scheduler.conference_schemas import (
    ConferenceCancel,
    ConferenceCreate,
    ConferenceUpdate,
    Scope,
)
from scheduler.recurrence_worker import RecurrenceWorkers
from scheduler.responses import ConferenceChanged, ConferenceCreated, ConferenceList, DryRun
from vcbridge.core import placement_store
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS, ZONE
from vcbridge.core.auth.conference_access import may_see, parties
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.db.models import Conference, ConferenceStatus, Endpoint
from vcbridge.core.http.auth_middleware import remote_of, require_permission, require_principal
from vcbridge.core.http.errors import ApiError, conflict, forbidden, invalid, not_found
from vcbridge.core.http.parsing import (
    MAX_ID,
    parse_model,
    path_int,
    query_datetime,
    query_int,
    read_model,
)
from vcbridge.core.http.render import render

BOOKING_POLICY = web.AppKey("booking_policy", BookingPolicy)
# The largest page of `GET /api/v1/conferences`: loading a page's conferences and their
# participants is work on the event loop (1,000 of 31 sites took ~0.9 s on a busy
# machine; 500 about half).
MAX_CONFERENCE_PAGE = 500
# Worker processes that expand a series' RRULE within a time budget.
RECURRENCE_WORKERS = web.AppKey("recurrence_workers", RecurrenceWorkers)


def booking_policy(app: web.Application) -> BookingPolicy:
    """The booking policy built from the settings."""
    settings = app[SETTINGS]
    return BookingPolicy(
        limits=BookingLimits(
            max_setup_minutes=settings.max_setup_minutes,
            max_duration=timedelta(hours=settings.max_duration_hours),
            horizon=timedelta(days=settings.booking_horizon_days),
            max_occurrences=settings.max_occurrences,
            max_concurrent_conferences=settings.max_concurrent_conferences,
            max_participant_ports=settings.max_participant_ports,
        ),
        zone=app[ZONE],
        default_setup_minutes=settings.default_setup_minutes,
    )


def _dry_run(request: web.Request) -> bool:
    value = request.query.get("dry_run", "false")
    if value not in ("true", "false"):
        raise invalid("query parameter 'dry_run' must be 'true' or 'false'")
    return value == "true"


async def _cancel_reason(request: web.Request) -> str:
    """The reason of a cancellation: the JSON body's `reason`, else the query's, else ""."""
    if request.body_exists:
        return (await read_model(request, ConferenceCancel)).reason
    text = request.query.get("reason")
    if text is None:
        return ""
    # The same rules as in the body (length, characters), answered the same way.
    return parse_model(json.dumps({"reason": text}), ConferenceCancel).reason


def _scope(request: web.Request) -> Scope:
    scope = request.query.get("scope", "this")
    if scope not in ("this", "following"):
        raise invalid("query parameter 'scope' must be 'this' or 'following'")
    return cast(Scope, scope)


async def load_visible(
    session: AsyncSession, request: web.Request, principal: Principal
) -> Conference:
    conference_id = path_int(request, "id", "conference")
    conference = await session.get(Conference, conference_id)
    # A conference the caller may not see is answered as absent: no probing of ids.
    if conference is None or not may_see(principal, parties(conference)):
        raise not_found(f"no conference {conference_id}")
    return conference


def booking_error(exc: Exception) -> ApiError:
    if isinstance(exc, BookingConflict):
        return conflict(exc.message, exc.details())
    if isinstance(exc, BookingInvalid):
        return invalid(exc.problems[0] if len(exc.problems) == 1 else "invalid booking",
                       {"problems": exc.problems})
    return conflict(str(exc))


async def list_conferences(request: web.Request) -> web.Response:
    """GET /api/v1/conferences: filter by endpoint, time range, status, series."""
    principal = require_principal(request)
    zone = request.app[ZONE]
    start_from = query_datetime(request, "from")
    start_to = query_datetime(request, "to")
    if start_from and start_to and start_to <= start_from:
        raise invalid("'to' must be after 'from'")
    statuses = request.query.getall("status", [])
    unknown = [s for s in statuses if s not in {m.value for m in ConferenceStatus}]
    if unknown:
        raise invalid(f"unknown status {unknown[0]!r}")
    limit = query_int(request, "limit", 200, 1, MAX_CONFERENCE_PAGE)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    series_id = query_int(request, "series", 0, 1, MAX_ID) if "series" in request.query else None
    code = request.query.get("endpoint")
    async with request.app[DATABASE].read() as session:
        endpoint_id = None
        if code is not None:
            # Retired endpoints too: their past conferences stay listable.
            endpoint = await session.scalar(select(Endpoint).where(Endpoint.code == code))
            if endpoint is None:
                raise invalid(f"unknown endpoint {code!r}")
            endpoint_id = endpoint.id
        if not principal.can(Permission.READ_ALL_CONFERENCES):
            if endpoint_id is not None and not principal.acts_for_endpoint(endpoint_id):
                raise forbidden("you can only list your own endpoint's conferences")
            endpoint_id = principal.endpoint_id
            if endpoint_id is None:
                raise forbidden()
        query = filter_conferences(
            listing_query(), endpoint_id=endpoint_id, start_from=start_from,
            start_to=start_to, statuses=statuses, series_id=series_id,
        )
        rows = await listed_rows(session, query.limit(limit + 1).offset(offset))
        placements = await placement_store.placements_of(session, [r.id for r, _ in rows])
    return render(ConferenceList(
        conferences=[_placed(responses.Conference.of_row(row, codes, zone), placements)
                     for row, codes in rows[:limit]],
        next_offset=offset + limit if len(rows) > limit else None,
    ))


async def create(request: web.Request) -> web.Response:
    """POST /api/v1/conferences[?dry_run=true]: book a conference or a recurring series,
    or only check that it could be booked."""
    principal = require_permission(request, Permission.BOOK)
    dry_run = _dry_run(request)
    body = await read_model(request, ConferenceCreate)
    now = request.app[CLOCK].now()
    policy = request.app[BOOKING_POLICY]
    try:
        # Before the transaction: a series may take up to the budget to expand.
        starts = await expand_series(body, now, policy, request.app[RECURRENCE_WORKERS])
        if dry_run:
            # A read session: a check as the booker types must not queue behind bookings.
            async with request.app[DATABASE].read() as session:
                count = await check_create(session, body, now, policy, starts)
            return render(DryRun(ok=True, occurrences=count))
        async with request.app[DATABASE].write() as session:
            created = await create_conference(
                session, body, principal.actor(remote_of(request)), now, policy,
                request.app[EVENT_BUS], starts,
            )
            series = ({"occurrence_ids": [c.id for c in created]}
                      if created[0].series_id is not None else {})
            payload = ConferenceCreated(
                **responses.Conference.fields_of(created[0], policy.zone), **series)
    except (BookingConflict, BookingInvalid, BookingStateError) as exc:
        raise booking_error(exc) from None
    return render(payload, status=201,
                  headers={"Location": f"/api/v1/conferences/{created[0].id}"})


async def _bridge(session: AsyncSession, ids: list[int]) -> dict[str, responses.BridgeRef]:
    """`{"bridge": ...}` for a conference whose room is placed on a bridge node, else {}
    (the field is left out: not placed, or one process holds every room)."""
    placement = (await placement_store.placements_of(session, ids)).get(ids[0])
    return {} if placement is None else {"bridge": responses.BridgeRef(**placement.ref())}


def _placed(conference: responses.Conference,
            placements: dict[int, placement_store.Placement]) -> responses.Conference:
    """A listed conference with its `bridge`, when placed."""
    placement = placements.get(conference.id)
    if placement is None:
        return conference
    return conference.model_copy(update={"bridge": responses.BridgeRef(**placement.ref())})


async def get_one(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}."""
    principal = require_principal(request)
    async with request.app[DATABASE].read() as session:
        conference = await load_visible(session, request, principal)
        return render(responses.Conference(
            **responses.Conference.fields_of(conference, request.app[ZONE]),
            **await _bridge(session, [conference.id])))


async def patch(request: web.Request) -> web.Response:
    """PATCH /api/v1/conferences/{id}?scope=this|following[&dry_run=true]."""
    principal = require_permission(request, Permission.BOOK)
    scope = _scope(request)
    dry_run = _dry_run(request)
    change = await read_model(request, ConferenceUpdate)
    now = request.app[CLOCK].now()
    policy = request.app[BOOKING_POLICY]
    try:
        if dry_run:
            async with request.app[DATABASE].read() as session:
                conference = await load_visible(session, request, principal)
                count = await check_update(session, conference, change, scope, now, policy)
            return render(DryRun(ok=True, occurrences=count))
        async with request.app[DATABASE].write() as session:
            conference = await load_visible(session, request, principal)
            rows = await update_conference(
                session, conference, change, scope, principal.actor(remote_of(request)),
                now, policy, request.app[EVENT_BUS],
            )
            payload = ConferenceChanged(**responses.Conference.fields_of(conference, policy.zone),
                                        affected=[r.id for r in rows],
                                        **await _bridge(session, [conference.id]))
    except (BookingConflict, BookingInvalid, BookingStateError) as exc:
        raise booking_error(exc) from None
    return render(payload)


async def delete(request: web.Request) -> web.Response:
    """DELETE /api/v1/conferences/{id}?scope=this|following: cancel, keeping the record,
    with an optional reason (JSON body `{"reason"}` or query `reason`)."""
    principal = require_permission(request, Permission.BOOK)
    scope = _scope(request)
    reason = await _cancel_reason(request)
    now = request.app[CLOCK].now()
    policy = request.app[BOOKING_POLICY]
    try:
        async with request.app[DATABASE].write() as session:
            conference = await load_visible(session, request, principal)
            rows = await cancel_conference(
                session, conference, scope, principal.actor(remote_of(request)), now, policy,
                request.app[EVENT_BUS], reason,
            )
            payload = ConferenceChanged(**responses.Conference.fields_of(conference, policy.zone),
                                        affected=[r.id for r in rows],
                                        **await _bridge(session, [conference.id]))
    except BookingStateError as exc:
        raise booking_error(exc) from None
    return render(payload)


async def _recurrence_workers_ctx(app: web.Application) -> AsyncIterator[None]:
    # No process starts here: the first series booked starts a worker.
    workers = RecurrenceWorkers(app[SETTINGS].recurrence_budget_seconds)
    app[RECURRENCE_WORKERS] = workers
    yield
    await workers.close()


def setup_routes(app: web.Application) -> None:
    """Register the booking routes on `app`."""
    app[BOOKING_POLICY] = booking_policy(app)
    app.cleanup_ctx.append(_recurrence_workers_ctx)
    app.router.add_get("/api/v1/conferences", list_conferences)
    app.router.add_post("/api/v1/conferences", create)
    app.router.add_get("/api/v1/conferences/{id}", get_one)
    app.router.add_patch("/api/v1/conferences/{id}", patch)
    app.router.add_delete("/api/v1/conferences/{id}", delete)
