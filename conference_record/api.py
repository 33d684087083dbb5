"""HTTP handlers of the record: `GET /api/v1/conferences/{id}/record` (JSON) and
`GET /api/v1/conferences/{id}/record.pdf` (the "biên bản").

Readable by whoever may see the conference (staff, and the operators and agents of
its endpoints); anyone else gets 404, as for the conference itself. The recordings
are listed only to those who may read them (staff and the chair endpoint)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import web

from conference_record import assemble, store
from conference_record.minutes_pdf import MinutesStyle, render_pdf
from conference_record.responses import ConferenceRecord
from conference_record.sources import RECORD_SOURCES
from vcbridge.core.app_keys import CLOCK, DATABASE, SETTINGS, ZONE
from vcbridge.core.auth.conference_access import Access, may_see, parties, recordings_access
from vcbridge.core.db.models import Conference
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import not_found
from vcbridge.core.http.parsing import path_int
from vcbridge.core.http.render import render


async def _record(request: web.Request) -> ConferenceRecord:
    """The record of the conference in the path, if the caller may see it (else 404)."""
    principal = require_principal(request)
    conference_id = path_int(request, "id", "conference")
    app = request.app
    async with app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        # A conference the caller may not see is answered as absent: no probing of ids.
        if conference is None or not may_see(principal, parties(conference)):
            raise not_found(f"no conference {conference_id}")
        facts = await store.load(session, conference)
    # The other features' parts, after the session is given back (the conference's
    # chair and participants are loaded with it).
    sources = app[RECORD_SOURCES]
    recordings = None
    if recordings_access(principal, parties(conference)) is Access.GRANTED:
        recordings = await sources.recordings(app, conference.id)
    documents = None
    if sources.documents is not None:
        documents = await sources.documents(app, conference.id, conference.series_id)
    return assemble.build(conference, facts, recordings, documents, app[CLOCK].now(),
                          app[ZONE])


async def get_record(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/record."""
    return render(await _record(request))


async def get_record_pdf(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/record.pdf: the record as a Vietnamese PDF."""
    record = await _record(request)
    settings = request.app[SETTINGS]
    style = MinutesStyle(authority=settings.record_authority, place=settings.record_place)
    # Laying out and subsetting the font takes a few tens of milliseconds: off the loop.
    pdf = await asyncio.to_thread(render_pdf, record, style)
    name = f"bien-ban-hoi-nghi-{record.conference.id}.pdf"
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''"
                               f"{quote(name)}",
        "Cache-Control": "no-store",
    })


def setup_routes(app: web.Application) -> None:
    """Register the record's routes (`RECORD_SOURCES` must be set by the composition root)."""
    app.router.add_get("/api/v1/conferences/{id}/record", get_record)
    app.router.add_get("/api/v1/conferences/{id}/record.pdf", get_record_pdf)
