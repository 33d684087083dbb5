"""The documents' full-text index, in each database's own full-text search.

SQLite: the FTS5 table `document_search` (rowid = the document's id; columns
title and body; the unicode61 tokenizer), ranked by bm25 with the title
weighing ten times the body. PostgreSQL: the table `document_search` of one
tsvector per document (the title weighted A, the body B; the `simple`
configuration: no stemming, which Vietnamese does not have) under a GIN index,
ranked by ts_rank. Both hold the folded text (documents/folding.py), and every
query word is a prefix ("giao th" finds "giao thông"), all words required.

The index is written in the same transaction as the document, so a document is
found exactly when it exists."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import ColumnElement, Select, column, func, literal_column, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from documents.folding import fold
from vcbridge.core.db.models import Document

T = TypeVar("T")
_FTS = table("document_search", column("rowid"), column("title"), column("body"))
_TSV = table("document_search", column("document_id"), column("vector"))
_SIMPLE: ColumnElement[str] = literal_column("'simple'::regconfig")
# PostgreSQL refuses a tsvector whose words add up to 1 MiB; the text read from a
# document is at most 200,000 characters (documents/inspection.py), and folding does not
# lengthen it, so this bound is only a guard (on both engines alike).
MAX_INDEXED_BYTES = 900_000


def _bounded(text: str) -> str:
    """`text` cut to at most MAX_INDEXED_BYTES of UTF-8 (at a character boundary)."""
    return text.encode()[:MAX_INDEXED_BYTES].decode(errors="ignore")


async def add(session: AsyncSession, sqlite: bool, document_id: int, title: str,
              body: str) -> None:
    """Index a document's title and text."""
    values = {"id": document_id, "title": fold(title), "body": _bounded(fold(body))}
    if sqlite:
        await session.execute(text(
            "INSERT INTO document_search (rowid, title, body) VALUES (:id, :title, :body)"),
            values)
    else:
        await session.execute(text(
            "INSERT INTO document_search (document_id, vector) VALUES (:id, "
            "setweight(to_tsvector('simple'::regconfig, :title), 'A') || "
            "setweight(to_tsvector('simple'::regconfig, :body), 'B'))"), values)


async def remove(session: AsyncSession, sqlite: bool, document_id: int) -> None:
    """Take a document out of the index."""
    key = "rowid" if sqlite else "document_id"
    await session.execute(text(f"DELETE FROM document_search WHERE {key} = :id"),  # noqa: S608
                          {"id": document_id})


def matching(query: Select[T], sqlite: bool, words: list[str]) -> Select[T]:
    """`query` (over `documents`) narrowed to the rows matching every word, best first."""
    if sqlite:
        # Each word is letters and digits only (documents/folding.py `terms`): quoted
        # and starred, it is a prefix term and cannot be FTS5 syntax.
        expression = " ".join(f'"{word}"*' for word in words)
        rank: ColumnElement[float] = func.bm25(literal_column("document_search"), 10.0, 1.0)
        return (query.join(_FTS, _FTS.c.rowid == Document.id)
                .where(literal_column("document_search").op("MATCH")(expression))
                .order_by(rank, Document.id.desc()))
    tsquery = func.to_tsquery(_SIMPLE, " & ".join(f"{word}:*" for word in words))
    return (query.join(_TSV, _TSV.c.document_id == Document.id)
            .where(_TSV.c.vector.op("@@")(tsquery))
            .order_by(func.ts_rank(_TSV.c.vector, tsquery).desc(), Document.id.desc()))
