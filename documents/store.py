"""Document rows in the database: adding one with its content and index, reading, finding.

Why the database holds the files, not a folder: the service may run as several
processes (PostgreSQL) on machines that share no file system, and each must
serve every document; a database backup (pg_dump, or the SQLite file) then
holds the documents with the conferences they belong to, so a restore never
finds a record whose files are missing; and a write is one transaction (the
row, its content, its search index and its audit record commit together or
not at all), so no half-stored upload is ever seen. The cost is a larger
database: 50 meeting documents a week of ~2 MB is ~5 GB a year, which both
engines handle. The content is kept in 1 MiB chunks so uploads and downloads
stream through the database without holding a whole file in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, Select, and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from documents import search_index
from documents.access import visible_conferences, visible_documents
from vcbridge.core.auth.conference_access import is_staff
from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import Conference, Document, DocumentChunk

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NewDocument:
    """What is known of an accepted upload before it is stored."""

    conference_id: int
    series_id: int | None
    title: str
    filename: str
    media_type: str
    size: int
    sha256: str
    text: str
    path: Path  # the received file (a temporary file of the service's own naming)


def chunk_count(size: int) -> int:
    """How many chunks hold `size` bytes."""
    return (size + CHUNK_BYTES - 1) // CHUNK_BYTES


async def add(session: AsyncSession, sqlite: bool, new: NewDocument, uploaded_by: str,
              now: datetime) -> Document:
    """Store a document, its content read from `new.path`, and its index entry."""
    document = Document(
        conference_id=new.conference_id, series_id=new.series_id, title=new.title,
        filename=new.filename, media_type=new.media_type, size=new.size, sha256=new.sha256,
        text=new.text, uploaded_at=now, uploaded_by=uploaded_by,
    )
    session.add(document)
    await session.flush()
    with new.path.open("rb") as content:
        for seq in range(chunk_count(new.size)):
            data = await asyncio.to_thread(content.read, CHUNK_BYTES)
            await session.execute(insert(DocumentChunk),
                                  [{"document_id": document.id, "seq": seq, "data": data}])
    await search_index.add(session, sqlite, document.id, new.title, new.text)
    return document


async def remove(session: AsyncSession, sqlite: bool, document: Document) -> None:
    """Delete a document, its content and its index entry."""
    await search_index.remove(session, sqlite, document.id)
    await session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document.id))
    await session.delete(document)


async def visible_document(session: AsyncSession, principal: Principal,
                           document_id: int) -> Document | None:
    """The document (without its text) if the caller may see it, else None."""
    query = select(Document).options(defer(Document.text)).where(Document.id == document_id)
    condition = visible_documents(principal)
    if condition is not None:
        query = query.where(condition)
    document: Document | None = await session.scalar(query)
    return document


async def of_conference(session: AsyncSession, conference: Conference) -> Sequence[Document]:
    """The conference's own documents and its series', oldest first (without their text)."""
    attached = Document.conference_id == conference.id
    if conference.series_id is not None:
        attached = or_(attached, Document.series_id == conference.series_id)
    return (await session.scalars(
        select(Document).options(defer(Document.text)).where(attached)
        .order_by(Document.uploaded_at, Document.id))).all()


async def find(session: AsyncSession, sqlite: bool, principal: Principal, words: list[str],
               limit: int) -> Sequence[Document]:
    """The documents the caller may see matching every word (best first), or, without
    words, the newest ones (without their text)."""
    condition = visible_documents(principal)
    if not words:
        newest: Select[Document] = select(Document).options(defer(Document.text))
        if condition is not None:
            newest = newest.where(condition)
        return (await session.scalars(newest.order_by(
            Document.uploaded_at.desc(), Document.id.desc()).limit(limit))).all()
    # The ranking sorts ids only; the rows (and their text, for the snippets) are read
    # for the page that is answered.
    ranked: Select[int] = select(Document.id)
    if condition is not None:
        ranked = ranked.where(condition)
    ids = list((await session.scalars(
        search_index.matching(ranked, sqlite, words).limit(limit))).all())
    if not ids:
        return []
    rows = {row.id: row for row in (await session.scalars(
        select(Document).where(Document.id.in_(ids)))).all()}
    return [rows[i] for i in ids if i in rows]


@dataclass(frozen=True)
class ConferenceRef:
    """The conference a found document is shown with."""

    id: int
    title: str
    start: datetime


async def conference_refs(session: AsyncSession, principal: Principal,
                          documents: Sequence[Document]) -> dict[int, ConferenceRef]:
    """For each document, by its id, the conference to show it with: the one it was
    attached through, or, for a series document whose caller may not see that one, the
    earliest occurrence the caller may see (never a conference the caller may not see)."""
    anchors = {d.conference_id for d in documents}
    series = {d.series_id for d in documents if d.series_id is not None}
    related: ColumnElement[bool] = Conference.id.in_(anchors)
    if series and not is_staff(principal):
        related = or_(related, Conference.series_id.in_(series))
    query = select(Conference.id, Conference.title, Conference.start, Conference.series_id)
    condition = visible_conferences(principal)
    rows = (await session.execute(
        query.where(and_(related, condition) if condition is not None else related)
        .order_by(Conference.start, Conference.id))).all()
    by_id = {row.id: row for row in rows}
    refs: dict[int, ConferenceRef] = {}
    for document in documents:
        row = by_id.get(document.conference_id) or next(
            (r for r in rows if document.series_id is not None
             and r.series_id == document.series_id), None)
        if row is not None:
            refs[document.id] = ConferenceRef(row.id, row.title, row.start)
    return refs


async def chunk(session: AsyncSession, document_id: int, seq: int) -> bytes | None:
    """One piece of a document's content (None once the document is gone)."""
    data: bytes | None = await session.scalar(
        select(DocumentChunk.data).where(DocumentChunk.document_id == document_id,
                                         DocumentChunk.seq == seq))
    return data
