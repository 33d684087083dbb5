"""The record's ports: what other features hold, handed in by the composition root.

The recordings are files the bridge writes and lists (bridge/recordings_api.py);
the documents belong to the documents feature. This feature imports neither:
`vcbridge/record_sources.py` adapts them to these plain shapes and puts them in
`RECORD_SOURCES`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web


@dataclass(frozen=True)
class RecordingEntry:
    """One recording of the conference (a WebM file)."""

    name: str
    started: datetime
    size: int
    # Seconds; None while it is written or for a file cut short.
    duration: float | None
    recording: bool


@dataclass(frozen=True)
class DocumentEntry:
    """One document of the conference or of its series."""

    id: int
    title: str
    filename: str
    media_type: str
    size: int
    sha256: str
    uploaded_at: datetime
    uploaded_by: str
    # Attached to the whole series rather than to this occurrence.
    series: bool


# The recordings of a conference: (app, conference id) -> entries, oldest first.
RecordingsSource = Callable[[web.Application, int], Awaitable[list[RecordingEntry]]]
# The documents of a conference and of its series: (app, conference id, series id).
DocumentsSource = Callable[[web.Application, int, int | None], Awaitable[list[DocumentEntry]]]


@dataclass(frozen=True)
class RecordSources:
    """Where the record finds what other features keep."""

    recordings: RecordingsSource
    # None while this service keeps no documents: the record says so (`documents: null`).
    documents: DocumentsSource | None = None


RECORD_SOURCES = web.AppKey("record_sources", RecordSources)
