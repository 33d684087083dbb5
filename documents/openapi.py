"""The documents' share of the OpenAPI document."""

from __future__ import annotations

from documents.api import MAX_HITS, MAX_QUERY_CHARS
from documents.file_types import ACCEPTED_NAMES, MediaType
from documents.filenames import MAX_TITLE_CHARS
from documents.responses import (
    Document,
    DocumentHits,
    DocumentList,
    DocumentRefusedError,
)
from vcbridge.core.http.json_schema import URL_TEXT_PATTERN
from vcbridge.core.http.openapi import (
    CSRF,
    ID,
    LOCATION,
    ApiPart,
    Schema,
    error,
    errors,
    json_content,
    operation,
    param,
    query,
)

_ACCEPTED = ", ".join(ACCEPTED_NAMES)
_DOCUMENT_ID = param("DocumentId")
_BINARY: Schema = {"type": "string", "format": "binary"}

_UPLOAD_BODY: Schema = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "additionalProperties": False,
            "properties": {
                "file": _BINARY | {"description": f"The document: {_ACCEPTED}, told by its "
                                   "content. Its file name (a plain name: no folders, no "
                                   "control characters) is the part's `filename`."},
                "title": {"type": "string", "maxLength": MAX_TITLE_CHARS,
                          "pattern": r"^[^\x00-\x1f\x7f-\x9f]*$",
                          "description": "One line; left out or blank: the file name "
                          "without its extension."},
            },
        },
        "encoding": {"file": {"contentType": ", ".join(MediaType)}},
    }},
}


def _paths() -> dict[str, Schema]:
    return {
        "/api/v1/conferences/{id}/documents": {
            "post": operation(
                "uploadDocument", "Attach a document to a conference or its series",
                "documents",
                {"201": json_content(Document, "Stored.", LOCATION),
                 **errors(401, 403, 404, 409, 413, 415),
                 "422": {"$ref": "#/components/responses/DocumentRefused"}},
                parameters=[param("ConferenceId"), query(
                    "series", {"type": "boolean", "default": False},
                    "Attach it to every occurrence of the conference's series (422 when "
                    "the conference is not part of one)."), CSRF],
                description=f"Bookers and admins. A multipart/form-data form: `file` "
                f"({_ACCEPTED}; the type is told by the content, never by the name) and "
                f"an optional `title`. The file is stored in the database with its "
                f"SHA-256, and the text of a PDF, DOCX, XLSX or PPTX is read (in a worker "
                f"process, within `document_read_seconds`) for the search. 413 past "
                f"`document_max_bytes` (50 MB by default: only this operation takes a "
                f"body that large); 415 for a body that is not multipart or a file of "
                f"another type; 409 for a cancelled conference; 422, with `details."
                f"reason`, for an empty file, a damaged, encrypted or zip-bomb file, one "
                f"that cannot be read in time, a file name with folders or control "
                f"characters, a bad title, a form without `file` or with other parts, "
                f"or `series=true` outside a series. Nothing is stored when refused.",
            ) | {"requestBody": _UPLOAD_BODY},
            "get": operation(
                "listConferenceDocuments", "A conference's documents", "documents",
                {"200": json_content(DocumentList, "Its own and its series' documents, "
                                     "oldest first."), **errors(401, 403, 404)},
                parameters=[param("ConferenceId")],
                description="Whoever may see the conference (404 otherwise).",
            ),
        },
        "/api/v1/documents": {"get": operation(
            "searchDocuments", "Find documents by title and text", "documents",
            {"200": json_content(DocumentHits, "The documents found."),
             **errors(401, 403, 422)},
            parameters=[
                query("q", {"type": "string", "maxLength": MAX_QUERY_CHARS,
                            "pattern": URL_TEXT_PATTERN},
                      "Words to find in the title or the text, with or without diacritics "
                      "(\"duong giao thong\" finds \"Đường giao thông\"); each word may be "
                      "the start of one, and every word must be found. Left out or blank: "
                      "the newest documents. No word in it (only punctuation): nothing."),
                query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_HITS,
                                "default": 20}, "How many."),
            ],
            description="Only documents of conferences the caller may see: staff see all, "
            "an endpoint's operator or agent those of its endpoint's conferences. The "
            "search runs in the database's full-text search (SQLite FTS5, PostgreSQL "
            "text search).",
        )},
        "/api/v1/documents/{id}": {
            "get": operation(
                "getDocument", "One document", "documents",
                {"200": json_content(Document, "The document."), **errors(401, 403, 404)},
                parameters=[_DOCUMENT_ID],
                description="404 for a document of a conference the caller may not see.",
            ),
            "delete": operation(
                "deleteDocument", "Remove a document", "documents",
                {"200": json_content(Document, "Removed (content and index; the audit "
                                     "log keeps what it was)."), **errors(401, 403, 404)},
                parameters=[_DOCUMENT_ID, CSRF],
                description="Bookers and admins.",
            ),
        },
        "/api/v1/documents/{id}/content": {"get": operation(
            "downloadDocument", "Download a document", "documents",
            {"200": {
                "description": "The file, as an attachment, of its own media type.",
                "content": {media_type.value: {"schema": _BINARY} for media_type in MediaType},
                "headers": {
                    "Content-Disposition": {"schema": {"type": "string"}, "description":
                                            "attachment, with the file name."},
                    "ETag": {"schema": {"type": "string"},
                             "description": "The SHA-256 of the content, quoted."},
                },
            }, **errors(401, 403, 404)},
            parameters=[_DOCUMENT_ID],
            description="404 for a document of a conference the caller may not see.",
        )},
    }


def part() -> ApiPart:
    """The documents' paths and models."""
    return ApiPart(
        paths=_paths(),
        models=(Document, DocumentList, DocumentHits, DocumentRefusedError),
        parameters={"DocumentId": {"name": "id", "in": "path", "required": True,
                                   "schema": ID}},
        responses={"DocumentRefused": error(
            "The document or its form is refused, with `details: {field, reason, problem}` "
            "(code invalid); nothing was stored.", DocumentRefusedError.__name__)},
    )
