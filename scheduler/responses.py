"""Response bodies of the scheduler's API: conferences, the roll call, declining, and
the details of a booking conflict."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from scheduler.connect_policy import ConnectState, Reason
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db import models as db
from vcbridge.core.db.models import ConferenceStatus
from vcbridge.core.http.error_models import ErrorBody
from vcbridge.core.http.render import EndpointCode, LocalTime, ResponseModel

# A 409 lists this many conflicting conferences (a long series against another one
# conflicts with every occurrence: 2,000 made a 1.7 MB answer).
MAX_LISTED_CONFLICTS = 100

Ids = list[int]


class BridgeRef(ResponseModel):
    """Where the conference's room is (bridge nodes): the node, the base URL its sites
    open the signaling WebSocket on, and the placement's generation (+1 each time the
    room moves to another node)."""

    node: Annotated[str, Field(max_length=120)]
    url: Annotated[str, Field(max_length=300, description="The node's base URL, e.g. "
                              "https://node2.example; the signaling path is appended.")]
    generation: Annotated[int, Field(ge=1)]


class Conference(ResponseModel):
    """A conference (for a series: one occurrence)."""

    id: int
    title: Annotated[str, Field(max_length=200)]
    agenda: str
    chair: Annotated[EndpointCode, Field(description="Code of the chairing endpoint.")]
    participants: Annotated[list[EndpointCode], Field(
        description="Codes of every endpoint, the chair included.")]
    start: LocalTime
    end: LocalTime
    setup_minutes: Annotated[int, Field(
        ge=0, description="Endpoints are held this long before `start`.")]
    rrule: Annotated[str | None, Field(
        description="The RFC 5545 RRULE of the series, null for a single conference.")]
    series_id: int | None
    status: ConferenceStatus
    cancel_reason: Annotated[str, Field(
        description="Why the conference was cancelled, as the booker wrote it; \"\" when "
        "it is not cancelled or no reason was given.")]
    created_at: LocalTime
    created_by: str
    updated_at: LocalTime
    updated_by: str
    bridge: Annotated[BridgeRef | SkipJsonSchema[None], Field(
        description="Where its room is (the bridge node sites connect to); absent while "
        "it is not placed, and when one process holds every room (SQLite).")] = None

    @classmethod
    def fields_of(cls, conference: db.Conference, zone: ZoneInfo) -> dict[str, Any]:
        """The conference's fields as the API shows them (times in the province's zone)."""

        def when(value: datetime) -> str:
            return to_local_iso(value, zone)

        return {
            "id": conference.id, "title": conference.title, "agenda": conference.agenda,
            "chair": conference.chair.code,
            "participants": [p.endpoint.code for p in conference.participants],
            "start": when(conference.start), "end": when(conference.end),
            "setup_minutes": conference.setup_minutes,
            "rrule": conference.series.rrule if conference.series else None,
            "series_id": conference.series_id, "status": conference.status,
            "cancel_reason": conference.cancel_reason,
            "created_at": when(conference.created_at), "created_by": conference.created_by,
            "updated_at": when(conference.updated_at), "updated_by": conference.updated_by,
        }

    @classmethod
    def of(cls, conference: db.Conference, zone: ZoneInfo) -> Conference:
        """The conference as the API shows it."""
        return cls(**cls.fields_of(conference, zone))

    @classmethod
    def of_row(cls, row: Any, participants: list[str], zone: ZoneInfo) -> Conference:
        """The same from a row of `booking_store.listing_query` and its participants."""

        def when(value: datetime) -> str:
            return to_local_iso(value, zone)

        return cls(
            id=row.id, title=row.title, agenda=row.agenda, chair=row.chair,
            participants=participants, start=when(row.start), end=when(row.end),
            setup_minutes=row.setup_minutes, rrule=row.rrule, series_id=row.series_id,
            status=row.status, cancel_reason=row.cancel_reason,
            created_at=when(row.created_at), created_by=row.created_by,
            updated_at=when(row.updated_at), updated_by=row.updated_by,
        )


class ConferenceList(ResponseModel):
    """GET /api/v1/conferences: one page."""

    conferences: list[Conference]
    next_offset: Annotated[int | None, Field(
        description="The `offset` of the next page; null on the last page.")]


class ConferenceCreated(Conference):
    """POST /api/v1/conferences: the conference booked (a series: its first occurrence)."""

    occurrence_ids: Annotated[Ids | SkipJsonSchema[None], Field(
        description="For a recurring booking: the id of every occurrence.")] = None


class ConferenceChanged(Conference):
    """PATCH or DELETE /api/v1/conferences/{id}: the conference after the change."""

    affected: Annotated[Ids, Field(
        description="Ids of every conference changed (several with scope=following).")]


class RollCallEndpoint(ResponseModel):
    """One participant in the roll call."""

    code: EndpointCode
    state: ConnectState
    reason: Annotated[Reason, Field(
        description="Why it is in this state: equal to the state, except while invited "
        "(`invited` for a first call, else the failure being redialled) and `not_invited` "
        "while pending.")]
    attempts: Annotated[int, Field(
        ge=0, description="Invitations since the endpoint last joined.")]
    redialling: Annotated[bool, Field(description="The bridge calls it again on its own.")]
    ready_at_open: Annotated[bool | None, Field(
        description="On line when the room opened; null before it opened.")]
    since: Annotated[LocalTime | None, Field(
        description="When the state last changed; null before the room opened.")]


class RollCall(ResponseModel):
    """Who is expected, who is connected, and why the others are not."""

    conference: int
    status: ConferenceStatus
    expected: Annotated[int, Field(ge=0, description="Participants expected.")]
    connected: Annotated[int, Field(ge=0, description="Participants joined now.")]
    endpoints: Annotated[list[RollCallEndpoint], Field(
        description="Every participant, in roster order.")]
    summary_vi: Annotated[str, Field(examples=[
        "2/3 điểm cầu đã kết nối; chưa vào: HUYEN-A không trả lời (đang gọi lại)"])]
    summary_en: Annotated[str, Field(examples=[
        "2/3 connected; missing: HUYEN-A no answer (redialling)"])]


class Declined(ResponseModel):
    """POST /api/v1/conferences/{id}/decline."""

    conference: int
    endpoint: Annotated[EndpointCode, Field(description="The caller's endpoint.")]
    state: Annotated[ConnectState, Field(
        description="The endpoint's state after the request (declined, or unchanged if it "
        "had already joined).")]


class DryRun(ResponseModel):
    """POST or PATCH with `?dry_run=true`: every check passed; nothing was written."""

    ok: Annotated[bool, Field(description="Always true: a refusal is the 409 or 422 the "
                              "real request would get.")]
    occurrences: Annotated[int, Field(
        ge=1, description="How many conferences the request would book or change (the "
        "occurrences of a series).")]


class ConflictingConference(ResponseModel):
    """A conference holding some of the requested endpoints."""

    conference: Annotated[int, Field(description="Id of the conference.")]
    title: str
    start: LocalTime
    end: LocalTime
    endpoints: Annotated[list[EndpointCode], Field(
        description="The requested endpoints it holds.")]


class Capacity(ResponseModel):
    """The moment the bridge would be over capacity."""

    at: LocalTime
    conferences: int
    ports: int
    reason: str


class ConflictDetails(ResponseModel):
    """Why a booking conflicts: the conferences holding requested endpoints and/or the
    moment the bridge would be over capacity."""

    conflicts: Annotated[list[ConflictingConference], Field(
        max_length=MAX_LISTED_CONFLICTS,
        description=f"The earliest {MAX_LISTED_CONFLICTS} at most.")]
    conflicts_total: Annotated[int, Field(
        ge=0, description="How many conferences conflict in all.")]
    capacity: Capacity | None


class BookingConflictErrorBody(ErrorBody):
    """Why the booking clashes."""

    details: ConflictDetails | SkipJsonSchema[None] = None


class BookingConflictError(ResponseModel):
    """409: endpoints taken, bridge full (details given) or a conference state that forbids
    the change (no details)."""

    error: BookingConflictErrorBody
