"""The record's share of the OpenAPI document: its JSON and its PDF."""

from __future__ import annotations

from conference_record.responses import ConferenceRecord
from vcbridge.core.http.openapi import ApiPart, errors, json_content, operation, param

ACCESS = (
    "Readable by whoever may see the conference: admins, bookers, IT staff, and the "
    "operators and agents of its endpoints; 404 for an unknown conference or one the "
    "caller may not see. The recordings are listed only to staff and the chair endpoint "
    "(`recordings: null` for others)."
)


def part() -> ApiPart:
    """The record's paths and models."""
    return ApiPart(
        paths={
            "/api/v1/conferences/{id}/record": {"get": operation(
                "getConferenceRecord", "The conference's record (biên bản), as JSON",
                "conferences",
                {"200": json_content(ConferenceRecord, "The record as it stands now (final "
                                     "once the conference ended or was cancelled)."),
                 **errors(401, 404)},
                parameters=[param("ConferenceId")],
                description="What the province's ISO 9001 processes keep of a meeting: who "
                "attended and from when to when (a site that dropped or left and came back "
                "has several intervals), who never came and why (declined, absent, no "
                "answer, never invited), the floor log (who spoke, when, granted by whom), "
                "the recordings, the documents and every change to the booking (from the "
                "audit log). " + ACCESS,
            )},
            "/api/v1/conferences/{id}/record.pdf": {"get": operation(
                "getConferenceRecordPdf", "The conference's record as a PDF (biên bản)",
                "conferences",
                {"200": {
                    "description": "A Vietnamese administrative minutes document (A4, "
                    "embedded font, times in Asia/Ho_Chi_Minh), as an attachment.",
                    "content": {"application/pdf": {"schema": {
                        "type": "string", "contentMediaType": "application/pdf"}}},
                    "headers": {"Content-Disposition": {
                        "schema": {"type": "string"},
                        "description": "attachment; filename=\"bien-ban-hoi-nghi-<id>.pdf\""}},
                },
                 **errors(401, 404)},
                parameters=[param("ConferenceId")],
                description="The same record as `GET .../record`, laid out for printing and "
                "signing. " + ACCESS,
            )},
        },
        models=(ConferenceRecord,),
    )
