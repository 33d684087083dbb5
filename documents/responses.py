"""Response bodies of the documents API, and the form of a refused upload."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from documents.file_types import MediaType
from documents.refusals import RefusalReason
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db import models as db
from vcbridge.core.http.error_models import ErrorBody
from vcbridge.core.http.render import LocalTime, ResponseModel


class Document(ResponseModel):
    """A meeting document (its content: GET /api/v1/documents/{id}/content)."""

    id: int
    title: Annotated[str, Field(max_length=200)]
    filename: Annotated[str, Field(max_length=255, description="The name it was uploaded "
                                   "with (and is downloaded under).")]
    media_type: Annotated[MediaType, Field(description="Its type, told by its content.")]
    size: Annotated[int, Field(ge=1, description="Bytes.")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$",
                                 description="SHA-256 of the content, hex.")]
    conference_id: Annotated[int, Field(description="The conference it was attached "
                                        "through.")]
    series_id: Annotated[int | None, Field(description="Set when it is attached to the "
                                           "whole series (every occurrence lists it).")]
    uploaded_at: LocalTime
    uploaded_by: str

    @classmethod
    def of(cls, row: db.Document, zone: ZoneInfo) -> Document:
        """The document as the API shows it."""
        return cls(id=row.id, title=row.title, filename=row.filename,
                   media_type=MediaType(row.media_type), size=row.size, sha256=row.sha256,
                   conference_id=row.conference_id, series_id=row.series_id,
                   uploaded_at=to_local_iso(row.uploaded_at, zone),
                   uploaded_by=row.uploaded_by)


class DocumentList(ResponseModel):
    """A conference's documents: its own and its series', oldest first."""

    documents: list[Document]


class ConferenceBrief(ResponseModel):
    """The conference a found document belongs to (one the caller may see)."""

    id: int
    title: Annotated[str, Field(max_length=200)]
    start: LocalTime


class DocumentHit(Document):
    """A document found by a search."""

    conference: ConferenceBrief
    snippet: Annotated[str, Field(description="Plain text around the first match in the "
                                  "document's text (its beginning when only the title "
                                  "matched); empty for a document without text.")]


class DocumentHits(ResponseModel):
    """GET /api/v1/documents: the documents found, best first (newest first without `q`)."""

    documents: list[DocumentHit]


class DocumentProblem(ResponseModel):
    """Why the upload is refused."""

    field: Annotated[Literal["file", "title", "series", "form"], Field(
        description="The part of the request at fault.")]
    reason: Annotated[RefusalReason, Field(description="Stable: empty, malformed, encrypted, "
                                    "zip_bomb, unreadable, filename, title, form, series.")]
    problem: str


class DocumentRefusedBody(ErrorBody):
    """A refused upload, and why."""

    details: DocumentProblem


class DocumentRefusedError(ResponseModel):
    """422: the document (or the form carrying it) is refused; nothing was stored."""

    error: DocumentRefusedBody
