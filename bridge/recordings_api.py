"""HTTP handlers of a conference's recordings: `/api/v1/conferences/{id}/recordings`.

The index is the recordings directory itself, no table: a file belongs to
conference N when its name is `conference-N-<UTC start>.webm`
(`bridge.recorder.NAME_PATTERN`), so the listing survives restarts and
needs no migration, and a file removed by hand simply disappears from it. A
download is only served for a name the listing holds, read back from the
directory: never a path built from the request.

Readable by staff (admin, booker, it: the roles that read every conference) and
by the conference's chair endpoint (its operator or agent). Another participant
gets 403; anyone who may not see the conference at all gets 404, as elsewhere
in the API.

A recording this process is still writing is listed with `"recording": true`
and no duration, and refused for download (409): its file has no trailer yet.
(With several bridge processes, another process cannot know that: it would
serve the prefix written so far, which plays.)"""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import av
from aiohttp import web

from bridge.recorder import parse_recording_name
from bridge.responses import Recording, RecordingList
from bridge.signaling import ROOMS
from vcbridge.core.app_keys import DATABASE, ZONE
from vcbridge.core.auth.conference_access import Access, parties, recordings_access
from vcbridge.core.auth.principal import Principal
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import Conference
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import conflict, forbidden, not_found
from vcbridge.core.http.parsing import path_int
from vcbridge.core.http.render import render

RECORDINGS_DIR = web.AppKey("recordings_dir", Path)


@dataclass(frozen=True)
class RecordingFile:
    """One recording in the directory."""

    path: Path
    started: datetime
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


def scan(directory: Path, conference_id: int) -> list[RecordingFile]:
    """The recordings of `conference_id` in `directory`, oldest first (blocking I/O)."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        parsed = parse_recording_name(entry.name)
        if parsed is None or parsed[0] != conference_id:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # deleted meanwhile
            continue
        found.append(RecordingFile(directory / entry.name, parsed[1], stat.st_size,
                                   stat.st_mtime_ns))
    return sorted(found, key=lambda r: (r.started, r.name))


@functools.lru_cache(maxsize=1024)
def _duration(path: str, size: int, mtime_ns: int) -> float | None:
    """Seconds, from the file's header; None when it has none (cut short) or is unreadable.

    Cached by size and modification time, so a file is opened once per version."""
    try:
        with av.open(path) as container:
            duration = container.duration  # in 1/1000000 s (AV_TIME_BASE)
    except (av.FFmpegError, OSError):
        return None
    return None if duration is None else round(duration / 1_000_000, 3)


def describe(files: list[RecordingFile], active: set[str], zone: ZoneInfo) -> list[Recording]:
    """The listing (blocking: reads each file's header once)."""
    return [Recording(
        id=f.name, started=to_local_iso(f.started, zone), size=f.size,
        duration=None if f.name in active else _duration(str(f.path), f.size, f.mtime_ns),
        recording=f.name in active,
    ) for f in files]


def _active(request: web.Request, conference_id: int) -> set[str]:
    """Names of the recordings this process is writing (or finishing) for the conference."""
    room = request.app[ROOMS].rooms.get(conference_id)
    return room.recordings_in_progress() if room is not None else set()


async def _authorise(request: web.Request, principal: Principal) -> int:
    """The conference id, if the caller may read its recordings; 403/404 otherwise."""
    conference_id = path_int(request, "id", "conference")
    async with request.app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        if conference is None:
            raise not_found(f"no conference {conference_id}")
        access = recordings_access(principal, parties(conference))
        if access is Access.GRANTED:
            return conference_id
        if access is Access.FORBIDDEN:
            raise forbidden("only staff and the chair endpoint may read the recordings")
    # A conference the caller may not see is answered as absent: no probing of ids.
    raise not_found(f"no conference {conference_id}")


async def list_recordings(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/recordings."""
    principal = require_principal(request)
    conference_id = await _authorise(request, principal)
    files = await asyncio.to_thread(scan, request.app[RECORDINGS_DIR], conference_id)
    rows = await asyncio.to_thread(describe, files, _active(request, conference_id),
                                   request.app[ZONE])
    return render(RecordingList(conference=conference_id, recordings=rows))


async def download(request: web.Request) -> web.FileResponse:
    """GET /api/v1/conferences/{id}/recordings/{name}: the WebM file, as an attachment."""
    principal = require_principal(request)
    conference_id = await _authorise(request, principal)
    name = request.match_info["name"]
    files = await asyncio.to_thread(scan, request.app[RECORDINGS_DIR], conference_id)
    found = next((f for f in files if f.name == name), None)
    if found is None:
        raise not_found(f"no recording {name!r} of conference {conference_id}")
    if name in _active(request, conference_id):
        raise conflict(f"recording {name} is still being written; stop it first")
    return web.FileResponse(found.path, headers={
        "Content-Type": "video/webm",
        "Content-Disposition": f'attachment; filename="{found.name}"',
    })


def setup_routes(app: web.Application, directory: Path) -> None:
    """Register the recordings routes (after signaling's: they read its rooms)."""
    app[RECORDINGS_DIR] = directory
    app.router.add_get("/api/v1/conferences/{id}/recordings", list_recordings)
    app.router.add_get("/api/v1/conferences/{id}/recordings/{name}", download)
