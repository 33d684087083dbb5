"""The iCalendar (RFC 5545) feed of one endpoint's conferences, for calendar programs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from aiohttp import web
from icalendar import Calendar, Event
from sqlalchemy import select

from scheduler.booking_store import conference_query, filter_conferences
from vcbridge.core.app_keys import CLOCK, DATABASE, PRINCIPAL
from vcbridge.core.auth.conference_access import may_see_endpoint
from vcbridge.core.auth.tokens import resolve_token
from vcbridge.core.db.models import Conference, ConferenceStatus, Endpoint, TokenScope
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import forbidden, not_found, unauthorized

# Past conferences stay in the feed this long; calendar programs keep their own history.
FEED_PAST = timedelta(days=60)
# An endpoint meeting every day for the two-year horizon has ~790 events. Loading them
# runs on the event loop (2,000 of 31 sites took 2.6 s of it on a busy machine).
FEED_MAX_EVENTS = 1000


def build_calendar(endpoint: Endpoint, conferences: Sequence[Conference], now: datetime) -> bytes:
    """The VCALENDAR text of `conferences` as seen from `endpoint`."""
    calendar = Calendar()
    calendar.add("prodid", "-//vcbridge//Lich hoi nghi truyen hinh//VI")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Hội nghị truyền hình – {endpoint.name}")
    calendar.add("x-wr-timezone", "Asia/Ho_Chi_Minh")
    for conference in conferences:
        event = Event()
        event.add("uid", f"conference-{conference.id}@vcbridge")
        event.add("dtstamp", now)
        event.add("dtstart", conference.start)
        event.add("dtend", conference.end)
        event.add("summary", conference.title)
        participants = ", ".join(p.endpoint.name for p in conference.participants)
        role = "Chủ trì" if conference.chair_endpoint_id == endpoint.id else "Tham dự"
        description = f"{role}. Điểm cầu chủ trì: {conference.chair.name}.\n"
        description += f"Các điểm cầu: {participants}."
        if conference.agenda:
            description += f"\n\n{conference.agenda}"
        event.add("description", description)
        event.add("location", endpoint.name)
        event.add("last-modified", conference.updated_at)
        event.add("sequence", conference.revision)
        cancelled = conference.status is ConferenceStatus.CANCELLED
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        if conference.setup_minutes and not cancelled:
            event.add("x-vcbridge-setup-minutes", str(conference.setup_minutes))
        calendar.add_component(event)
    return bytes(calendar.to_ical())


async def calendar_ics(request: web.Request) -> web.Response:
    """GET /api/v1/endpoints/{code}/calendar.ics.

    Calendar programs cannot send headers, so a calendar-scope token may come
    as `?token=`; a login or agent token works as a bearer header as usual."""
    database = request.app[DATABASE]
    now = request.app[CLOCK].now()
    code = request.match_info["code"]
    async with database.read() as session:
        principal = request.get(PRINCIPAL)
        if principal is None and (secret := request.query.get("token")):
            principal = await resolve_token(session, secret, now)
            if principal is None or principal.scope is not TokenScope.CALENDAR:
                raise unauthorized("invalid, expired or revoked calendar token")
        if principal is None:
            principal = require_principal(request, calendar_ok=True)
        endpoint = await session.scalar(select(Endpoint).where(Endpoint.code == code))
        if endpoint is None:
            raise not_found(f"no endpoint {code!r}")
        if not may_see_endpoint(principal, endpoint.id):
            raise forbidden("this calendar belongs to another endpoint")
        query = filter_conferences(
            conference_query(), endpoint_id=endpoint.id, start_from=now - FEED_PAST
        )
        conferences = (await session.scalars(query.limit(FEED_MAX_EVENTS))).all()
        # icalendar is pure Python: in a thread, the loop keeps its turns meanwhile. Every
        # attribute it reads is loaded already (participants, chair: eager relationships).
        body = await asyncio.to_thread(build_calendar, endpoint, conferences, now)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'inline; filename="{endpoint.code}.ics"'},
    )


def setup_routes(app: web.Application) -> None:
    """Register the calendar feed route."""
    app.router.add_get("/api/v1/endpoints/{code}/calendar.ics", calendar_ics)
