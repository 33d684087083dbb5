"""HTTP handlers of the documents API.

- `POST /api/v1/conferences/{id}/documents` (bookers, admins): attach a document
  to the conference, or with `?series=true` to its whole series;
- `GET /api/v1/conferences/{id}/documents`: the conference's documents;
- `GET /api/v1/documents?q=`: find documents by title and text;
- `GET /api/v1/documents/{id}`, `.../content`, `DELETE /api/v1/documents/{id}`.

Whoever may see a conference may list, read and find its documents
(documents/access.py); a document the caller may not see is answered 404, as
if it did not exist, and a search never returns it. Writes are audited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from documents import store
from documents.file_types import ACCEPTED_NAMES, JPEG, PNG, Family, WrongType, sniff
from documents.filenames import ascii_fallback, checked_title
from documents.folding import term_pattern, terms
from documents.inspection import Inspection
from documents.reader_worker import DocumentReaders
from documents.refusals import DocumentRefused, RefusalReason
from documents.responses import (
    ConferenceBrief,
    DocumentHit,
    DocumentHits,
    DocumentList,
    DocumentProblem,
)
from documents.responses import Document as DocumentBody
from documents.upload_form import ReceivedFile, discard, read_form
from vcbridge.core.app_keys import CLOCK, DATABASE, SETTINGS, ZONE
from vcbridge.core.audit import record
from vcbridge.core.auth.conference_access import may_see, parties
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import Conference, ConferenceStatus, Document
from vcbridge.core.http.auth_middleware import remote_of, require_permission, require_principal
from vcbridge.core.http.errors import ApiError, conflict, invalid, not_found
from vcbridge.core.http.parsing import path_int, query_int
from vcbridge.core.http.render import body_of, render

DOCUMENT_READERS = web.AppKey("document_readers", DocumentReaders)
# A search query: at most this many characters; results: at most MAX_HITS.
MAX_QUERY_CHARS = 200
MAX_HITS = 50
SNIPPET_CHARS = 200

# The download is a file, never a page of the service: no sniffing, no scripts if a
# browser renders it anyway, and its name only as `Content-Disposition` gives it.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "same-origin",
}


def _refused(refusal: DocumentRefused) -> ApiError:
    """422 in the documents' form: `details: {"field", "reason", "problem"}`
    (DocumentRefusedError in the OpenAPI document)."""
    problem = DocumentProblem(field=refusal.field, reason=refusal.reason,
                              problem=refusal.message)
    return ApiError(422, "invalid", refusal.message, body_of(problem))


def _wrong_type(exc: WrongType) -> ApiError:
    return ApiError(415, "unsupported_media_type",
                    f"the file is {exc}; accepted: {', '.join(ACCEPTED_NAMES)}",
                    {"accepted": list(ACCEPTED_NAMES)})


async def _visible_conference(session: AsyncSession, request: web.Request,
                              principal: Principal) -> Conference:
    conference_id = path_int(request, "id", "conference")
    conference = await session.get(Conference, conference_id)
    # A conference the caller may not see is answered as absent: no probing of ids.
    if conference is None or not may_see(principal, parties(conference)):
        raise not_found(f"no conference {conference_id}")
    return conference


async def _visible_document(session: AsyncSession, request: web.Request,
                            principal: Principal) -> Document:
    document_id = path_int(request, "id", "document")
    document = await store.visible_document(session, principal, document_id)
    if document is None:
        raise not_found(f"no document {document_id}")
    return document


def _series_wanted(request: web.Request) -> bool:
    value = request.query.get("series", "false")
    if value not in ("true", "false"):
        raise _refused(DocumentRefused(RefusalReason.SERIES, "query parameter 'series' must be "
                                       "'true' or 'false'"))
    return value == "true"


async def upload(request: web.Request) -> web.Response:
    """POST /api/v1/conferences/{id}/documents: attach a document (multipart `file`,
    optional `title`; `?series=true`: to every occurrence of the series)."""
    principal = require_permission(request, Permission.BOOK)
    whole_series = _series_wanted(request)
    database = request.app[DATABASE]
    async with database.read() as session:
        conference = await _visible_conference(session, request, principal)
        if conference.status is ConferenceStatus.CANCELLED:
            raise conflict(f"conference {conference.id} is cancelled")
        if whole_series and conference.series_id is None:
            raise _refused(DocumentRefused(RefusalReason.SERIES, f"conference {conference.id} is "
                                           "not part of a series"))
        conference_id, series_id = conference.id, conference.series_id
    try:
        form = await read_form(request, request.app[SETTINGS].document_max_bytes)
    except DocumentRefused as exc:
        raise _refused(exc) from None
    try:
        title = checked_title(form.title, form.file.filename)
        inspection = await _inspect(request, form.file)
        new = store.NewDocument(
            conference_id=conference_id, series_id=series_id if whole_series else None,
            title=title, filename=form.file.filename, media_type=inspection.media_type,
            size=form.file.size, sha256=form.file.sha256, text=inspection.text,
            path=form.file.path)
        now = request.app[CLOCK].now()
        async with database.write() as session:
            document = await store.add(session, database.is_sqlite, new, principal.name, now)
            payload = DocumentBody.of(document, request.app[ZONE])
            await record(session, principal.actor(remote_of(request)), "document.upload",
                         "document", document.id, None, body_of(payload), now)
    except DocumentRefused as exc:
        raise _refused(exc) from None
    except WrongType as exc:
        raise _wrong_type(exc) from None
    finally:
        await discard(form.file)
    return render(payload, status=201, headers={"Location": f"/api/v1/documents/{payload.id}"})


async def _inspect(request: web.Request, received: ReceivedFile) -> Inspection:
    """The file's type by content, and its text (PDF and OOXML read in a worker)."""
    family = sniff(received.head)
    if family is Family.PNG:
        return Inspection(PNG, "", False)
    if family is Family.JPEG:
        return Inspection(JPEG, "", False)
    return await request.app[DOCUMENT_READERS].inspect(received.path, family)


async def list_for_conference(request: web.Request) -> web.Response:
    """GET /api/v1/conferences/{id}/documents: its own documents and its series'."""
    principal = require_principal(request)
    zone = request.app[ZONE]
    async with request.app[DATABASE].read() as session:
        conference = await _visible_conference(session, request, principal)
        rows = await store.of_conference(session, conference)
    return render(DocumentList(documents=[DocumentBody.of(row, zone) for row in rows]))


async def search(request: web.Request) -> web.Response:
    """GET /api/v1/documents?q=: the documents the caller may see matching every word of
    `q` by title or text, with or without diacritics; without `q`, the newest."""
    principal = require_principal(request)
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        raise invalid(f"query parameter 'q': at most {MAX_QUERY_CHARS} characters")
    limit = query_int(request, "limit", 20, 1, MAX_HITS)
    words = terms(query)
    database = request.app[DATABASE]
    hits: list[DocumentHit] = []
    zone = request.app[ZONE]
    if words or not query.strip():
        async with database.read() as session:
            rows = await store.find(session, database.is_sqlite, principal, words, limit)
            refs = await store.conference_refs(session, principal, rows)
            for row in rows:
                ref = refs.get(row.id)
                if ref is None:  # the conference became invisible meanwhile
                    continue
                hits.append(DocumentHit(
                    **DocumentBody.of(row, zone).model_dump(),
                    conference=ConferenceBrief(id=ref.id, title=ref.title,
                                               start=to_local_iso(ref.start, zone)),
                    snippet=snippet(row.text, words) if words else "",
                ))
    return render(DocumentHits(documents=hits))


def snippet(text: str, words: list[str]) -> str:
    """Plain text around the first place one of `words` starts a word of `text` (its
    diacritics kept), or the beginning of `text`."""
    if not text:
        return ""
    found = re.search("|".join(term_pattern(word) for word in words), text)
    start = max(0, found.start() - SNIPPET_CHARS // 3) if found else 0
    if start:
        # Begin at a word: after the first space of the window, if there is one soon.
        space = text.find(" ", start, start + 20)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", end - 20, end)
        end = space if space > start else end
    piece = " ".join(text[start:end].split())
    return ("…" if start else "") + piece + ("…" if end < len(text) else "")


async def get_one(request: web.Request) -> web.Response:
    """GET /api/v1/documents/{id}."""
    principal = require_principal(request)
    async with request.app[DATABASE].read() as session:
        document = await _visible_document(session, request, principal)
    return render(DocumentBody.of(document, request.app[ZONE]))


async def content(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/documents/{id}/content: the file, streamed from the database."""
    principal = require_principal(request)
    database = request.app[DATABASE]
    async with database.read() as session:
        document = await _visible_document(session, request, principal)
    disposition = (f'attachment; filename="{ascii_fallback(document.filename)}"; '
                   f"filename*=UTF-8''{quote(document.filename, safe='')}")
    response = web.StreamResponse(headers={
        **DOWNLOAD_HEADERS, "Content-Type": document.media_type,
        "Content-Disposition": disposition, "ETag": f'"{document.sha256}"',
    })
    response.content_length = document.size
    await response.prepare(request)
    if request.method != "HEAD":
        for seq in range(store.chunk_count(document.size)):
            # One short read per chunk: no connection is held while the client drains.
            async with database.read() as session:
                data = await store.chunk(session, document.id, seq)
            if data is None:  # deleted meanwhile: the client sees a short body
                break
            await response.write(data)
    await response.write_eof()
    return response


async def delete(request: web.Request) -> web.Response:
    """DELETE /api/v1/documents/{id}: remove the document and its content."""
    principal = require_permission(request, Permission.BOOK)
    database = request.app[DATABASE]
    now = request.app[CLOCK].now()
    async with database.write() as session:
        document = await _visible_document(session, request, principal)
        payload = DocumentBody.of(document, request.app[ZONE])
        await store.remove(session, database.is_sqlite, document)
        await record(session, principal.actor(remote_of(request)), "document.delete",
                     "document", document.id, body_of(payload), None, now)
    return render(payload)


async def _readers_ctx(app: web.Application) -> AsyncIterator[None]:
    # No process starts here: the first PDF or Office document uploaded starts a worker.
    readers = DocumentReaders(app[SETTINGS].document_read_seconds)
    app[DOCUMENT_READERS] = readers
    yield
    await readers.close()


def setup_routes(app: web.Application) -> None:
    """Register the documents routes on `app`."""
    app.cleanup_ctx.append(_readers_ctx)
    app.router.add_post("/api/v1/conferences/{id}/documents", upload)
    app.router.add_get("/api/v1/conferences/{id}/documents", list_for_conference)
    app.router.add_get("/api/v1/documents", search)
    app.router.add_get("/api/v1/documents/{id}", get_one)
    app.router.add_get("/api/v1/documents/{id}/content", content)
    app.router.add_delete("/api/v1/documents/{id}", delete)
