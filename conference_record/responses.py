"""The body of `GET /api/v1/conferences/{id}/record`: the conference's record as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from conference_record.timeline import Absence, ChangeKind, EndedBy, FloorEnd
from vcbridge.core.db.models import ConferenceStatus
from vcbridge.core.http.render import EndpointCode, LocalTime, ResponseModel

# A value of the booking as the conference API shows it (text, a number, endpoint codes).
FieldValue = str | int | list[str] | None


class RecordConference(ResponseModel):
    """The conference the record is of, with what its lifecycle did and when."""

    id: int
    title: str
    agenda: str
    status: ConferenceStatus
    chair: Annotated[EndpointCode, Field(description="Code of the chairing endpoint.")]
    chair_name: str
    start: LocalTime
    end: LocalTime
    setup_minutes: int
    series_id: int | None
    opened_at: Annotated[LocalTime | None, Field(description="When the room opened.")]
    live_at: Annotated[LocalTime | None, Field(description="When it went live.")]
    ended_at: Annotated[LocalTime | None, Field(
        description="When the room closed: the end, or the cancellation of a running "
        "conference; null while it runs or if it never ran.")]
    cancel_reason: Annotated[str, Field(description="Why it was cancelled (\"\" if not said).")]


class AttendanceInterval(ResponseModel):
    """A stretch of time a site was in the room."""

    start: LocalTime
    end: Annotated[LocalTime | None, Field(description="null: still in the room.")]
    ended_by: Annotated[EndedBy | None, Field(
        description="`left` (hung up), `dropped` (the line was lost), `removed` (by the "
        "chair), `end` (in the room when it closed); null while still in.")]


class RecordAttendance(ResponseModel):
    """One participant: when it was in the room, or why it never came."""

    code: EndpointCode
    name: str
    chair: bool
    attended: bool
    intervals: Annotated[list[AttendanceInterval], Field(
        description="Oldest first: a site that dropped or left and came back has several.")]
    present_seconds: Annotated[int, Field(ge=0, description="Time in the room, in seconds.")]
    absence: Annotated[Absence | None, Field(
        description="Why it never came: `declined`, `absent` (never answered the "
        "invitations; the office was told), `no_answer`, `not_invited` (the room never "
        "called it), `waiting` (the conference still runs); null when it attended.")]
    invitations: Annotated[int, Field(ge=0, description="Invitations sent to it.")]


class RecordSummary(ResponseModel):
    expected: Annotated[int, Field(ge=0, description="Participants booked.")]
    attended: Annotated[int, Field(ge=0, description="Participants that were in the room.")]
    never_came: Annotated[int, Field(ge=0)]


class FloorGranter(ResponseModel):
    """Who gave the floor: the chair endpoint, and the person when a person did."""

    endpoint: EndpointCode | None
    user: Annotated[str | None, Field(
        description="The person (a moderator at the chair console, or the chair's operator); "
        "null when the chair endpoint's agent did.")]
    role: str | None


class RecordFloorTurn(ResponseModel):
    """One site's turn at the floor."""

    endpoint: EndpointCode
    name: str
    requested_at: Annotated[LocalTime | None, Field(
        description="When it asked (\"xin phát biểu\"); null if the chair called on it.")]
    granted_at: LocalTime
    granted_by: FloorGranter
    until: Annotated[LocalTime | None, Field(description="null: it still has the floor.")]
    ended_by: Annotated[FloorEnd | None, Field(
        description="`released` (gave it back), `revoked` (the chair took it back), `next` "
        "(given to another site), `removed`, `end` (the conference ended).")]
    seconds: Annotated[int, Field(ge=0)]


class RecordRecording(ResponseModel):
    """A recording (GET /api/v1/conferences/{id}/recordings/{name} downloads it)."""

    id: str
    started: LocalTime
    size: Annotated[int, Field(ge=0, description="Bytes.")]
    duration: Annotated[float | None, Field(ge=0, description="Seconds.")]
    recording: bool


class RecordDocument(ResponseModel):
    """A document of the conference or of its series."""

    id: int
    title: str
    filename: str
    media_type: str
    size: Annotated[int, Field(ge=0)]
    sha256: str
    uploaded_at: LocalTime
    uploaded_by: str
    series: Annotated[bool, Field(description="Attached to the whole series.")]


class RecordFieldChange(ResponseModel):
    field: str
    before: FieldValue
    after: FieldValue


class RecordChange(ResponseModel):
    """A change to the booking (from the audit log)."""

    at: LocalTime
    user: str
    role: str
    action: ChangeKind
    fields: Annotated[list[RecordFieldChange], Field(
        description="What an edit changed, as the conference API shows it.")]
    occurrences: Annotated[int | None, Field(
        description="A series booked at once: its number of occurrences.")]
    reason: Annotated[str, Field(description="A cancellation's reason (\"\" if not said).")]


class ConferenceRecord(ResponseModel):
    """GET /api/v1/conferences/{id}/record: the conference's record (ISO 9001)."""

    conference: RecordConference
    final: Annotated[bool, Field(
        description="The conference ended or was cancelled: the record will not change.")]
    generated_at: LocalTime
    summary: RecordSummary
    attendance: Annotated[list[RecordAttendance], Field(description="Roster order.")]
    floor: Annotated[list[RecordFloorTurn], Field(description="Every turn, oldest first.")]
    recordings: Annotated[list[RecordRecording] | None, Field(
        description="null for a caller who may not read the recordings (staff and the "
        "chair endpoint may).")]
    documents: Annotated[list[RecordDocument] | None, Field(
        description="null while this service keeps no documents.")]
    changes: Annotated[list[RecordChange], Field(
        description="The booking's history, oldest first: created, edited, extended, "
        "cancelled.")]


def field_value(value: Any) -> FieldValue:
    """An audit value as the record shows it."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)
