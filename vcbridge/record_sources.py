"""Fills the conference record's ports (conference_record/sources.py) from the other
features: the bridge's recordings directory, and the meeting documents.
Lives in the composition root because it is the one place that may know them all."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bridge import recordings_api
from bridge.signaling import ROOMS
from conference_record.sources import (
    RECORD_SOURCES,
    DocumentEntry,
    RecordingEntry,
    RecordSources,
)
from documents import store as documents_store
from vcbridge.core.app_keys import DATABASE, ZONE
from vcbridge.core.db.models import Conference


async def recordings(app: web.Application, conference_id: int) -> list[RecordingEntry]:
    """The conference's recordings as the bridge lists them (the files in its directory)."""
    room = app[ROOMS].rooms.get(conference_id)
    active = room.recordings_in_progress() if room is not None else set()
    files = await asyncio.to_thread(recordings_api.scan, app[recordings_api.RECORDINGS_DIR],
                                    conference_id)
    listed = await asyncio.to_thread(recordings_api.describe, files, active, app[ZONE])
    return [RecordingEntry(name=f.name, started=f.started, size=f.size,
                           duration=row.duration, recording=row.recording)
            for f, row in zip(files, listed, strict=True)]


async def documents(app: web.Application, conference_id: int,
                    _series_id: int | None) -> list[DocumentEntry]:
    """The conference's documents and its series', as the documents feature keeps them."""
    async with app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        if conference is None:
            return []
        rows = await documents_store.of_conference(session, conference)
        return [DocumentEntry(id=d.id, title=d.title, filename=d.filename,
                              media_type=d.media_type, size=d.size, sha256=d.sha256,
                              uploaded_at=d.uploaded_at, uploaded_by=d.uploaded_by,
                              series=d.series_id is not None)
                for d in rows]


def setup(app: web.Application) -> None:
    """Put the record's sources into `app` (after the bridge's routes are set up)."""
    app[RECORD_SOURCES] = RecordSources(recordings=recordings, documents=documents)
