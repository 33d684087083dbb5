"""Fills the conference record's ports (conference_record/sources.py) from the other
features: the bridge's recordings directory, and the documents (not yet: see below).
Lives in the composition root because it is the one place that may know them all."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bridge import recordings_api
from bridge.signaling import ROOMS
from conference_record.sources import RECORD_SOURCES, RecordingEntry, RecordSources
from vcbridge.core.app_keys import ZONE


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


def setup(app: web.Application) -> None:
    """Put the record's sources into `app` (after the bridge's routes are set up).

    Documents: the hook for the documents feature (issue 13). Once it keeps documents,
    give `RecordSources(documents=...)` a function listing a conference's documents and
    its series' (`conference_record.sources.DocumentsSource`); until then the record
    answers `documents: null` and its PDF says no documents are kept."""
    app[RECORD_SOURCES] = RecordSources(recordings=recordings, documents=None)
