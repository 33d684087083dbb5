"""The scheduler's share of the OpenAPI document: conferences, their roll call, the
iCalendar feed, and the conference.* and endpoint.* events."""

from __future__ import annotations

from scheduler.booking_api import MAX_CONFERENCE_PAGE
from scheduler.conference_schemas import (
    MAX_CANCEL_REASON,
    ConferenceCancel,
    ConferenceCreate,
    ConferenceUpdate,
)
from scheduler.connect_policy import Reason
from scheduler.lifecycle_api import Extension
from scheduler.responses import (
    BookingConflictError,
    Conference,
    ConferenceChanged,
    ConferenceCreated,
    ConferenceList,
    ConflictDetails,
    Declined,
    DryRun,
    RollCall,
)
from vcbridge.core.db.models import ConferenceStatus
from vcbridge.core.event_types import EventType, described
from vcbridge.core.http.json_schema import ONE_LINE_PATTERN
from vcbridge.core.http.openapi import (
    AUTHENTICATED,
    CSRF,
    ENDPOINT_CODE,
    ID,
    JSON,
    LOCAL_TIME,
    LOCATION,
    TIME_RANGE,
    ApiPart,
    Schema,
    error,
    errors,
    json_content,
    obj,
    operation,
    param,
    query,
    ref,
)

# The event types the scheduler publishes: what each means and the `data` keys it carries.
EVENT_TYPES = described(frozenset({
    EventType.CONFERENCE_BOOKED,
    EventType.CONFERENCE_UPDATED,
    EventType.CONFERENCE_CANCELLED,
    EventType.CONFERENCE_OPENED,
    EventType.CONFERENCE_LIVE,
    EventType.CONFERENCE_ENDING_SOON,
    EventType.CONFERENCE_ENDED,
    EventType.ENDPOINT_INVITED,
    EventType.ENDPOINT_JOINED,
    EventType.ENDPOINT_DROPPED,
    EventType.ENDPOINT_DECLINED,
    EventType.ENDPOINT_LEFT,
    EventType.ENDPOINT_ABSENT,
    EventType.ENDPOINT_CALL_FAILED,
}))


def _event_data() -> dict[str, Schema]:
    readiness = obj(
        {
            "ready": {"type": "array", "items": ENDPOINT_CODE,
                      "description": "Endpoints on line when the room opened."},
            "offline": {"type": "array", "items": ENDPOINT_CODE,
                        "description": "Endpoints not on line when the room opened."},
            "summary_vi": {"type": "string", "examples": ["2/3 điểm cầu sẵn sàng; chưa trực "
                                                          "tuyến: HUYEN-MUONG-LAT"]},
            "summary_en": {"type": "string",
                           "examples": ["2/3 endpoints ready; offline: HUYEN-MUONG-LAT"]},
        },
        description="Which endpoints were on line (connected to the event stream) when the "
        "room opened.",
    )
    return {
        "late_ms": {"type": "integer", "description": "Lifecycle transitions: "
                    "milliseconds between the due time and when it ran."},
        "readiness": readiness,
        "minutes_left": {"type": "integer", "minimum": 0,
                         "description": "conference.ending_soon: minutes to the end."},
        "start": LOCAL_TIME | {"description": "conference.booked: the start."},
        "changed": {"type": "array", "items": {"type": "string"},
                    "description": "conference.updated: the fields that changed."},
        "was": {"type": "string", "enum": [s.value for s in ConferenceStatus],
                "description": "conference.cancelled: the status before."},
        "cancel_reason": {"type": "string", "description": "conference.cancelled: why, as "
                          "the booker wrote it (\"\" when not given)."},
        "attempt": {"type": "integer", "minimum": 1,
                    "description": "endpoint.invited: the invitation's number since the "
                    "endpoint last joined."},
        "reason": {"type": "string", "enum": [r.value for r in Reason],
                   "description": "endpoint.invited: `invited` for a first call, else "
                   "the failure being redialled."},
        "attempts": {"type": "integer", "minimum": 1,
                     "description": "endpoint.absent: the invitations left unanswered."},
        "bridge": {"anyOf": [ref("BridgeRef"), {"type": "null"}],
                   "description": "endpoint.invited: where the room is (the bridge node "
                   "and the base URL to connect the signaling to); null while not placed "
                   "or on a single process."},
    }


DRY_RUN = query("dry_run", {"type": "boolean", "default": False},
                "Only check: answer as the request would (200, 409 or 422) and write nothing.")


def _booking_paths() -> dict[str, Schema]:
    return {
        "/api/v1/conferences": {
            "get": operation(
                "listConferences", "List conferences", "conferences",
                {"200": json_content(ConferenceList, "The conferences by start time."),
                 **errors(401, 403, 422)},
                parameters=[
                    query("endpoint", ENDPOINT_CODE,
                           "Only conferences this (active) endpoint takes part in; 422 for "
                           "an unknown one."),
                    *TIME_RANGE,
                    {**query("status", {"type": "array", "items": {
                        "type": "string", "enum": [s.value for s in ConferenceStatus]}},
                        "Only these statuses (repeat the parameter for several)."),
                     "style": "form", "explode": True},
                    query("series", ID,
                           "Only the occurrences of this series."),
                    query("limit", {"type": "integer", "minimum": 1,
                                     "maximum": MAX_CONFERENCE_PAGE, "default": 200},
                           "Page size."),
                    query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000,
                                      "default": 0}, "Page start (see `next_offset`)."),
                ],
                description="Operators and endpoint agents see only their own endpoint's "
                "conferences (403 when asking for another endpoint).",
            ),
            "post": operation(
                "createConference", "Book a conference or a recurring series", "conferences",
                {"201": json_content(ConferenceCreated, "Booked (the first occurrence).",
                              LOCATION),
                 "200": json_content(DryRun, "With `dry_run=true`: it could be booked; "
                                     "nothing was written."),
                 **errors(400, 401, 403, 409, 413, 415, 422, conflict="BookingConflict")},
                body="ConferenceCreate", parameters=[DRY_RUN, CSRF],
                description="With `dry_run=true` every check is made (the body, the booking "
                "rules, the endpoints' and the bridge's conflicts) and nothing is written: no "
                "conference, no audit record, no event; 200 when it could be booked, else the "
                "same 409 or 422 as the booking. "
                "422 for a body the schema refuses, or for the booking rules "
                "beyond it (`details.problems`): start in the past or beyond the booking "
                "horizon, end not after start, longer than the maximum duration, setup_minutes "
                "above the configured maximum, times outside "
                "the years 2000-2199, an unknown or retired endpoint, the chair not among the "
                "participants, a recurrence rule the service does not take. 409 for a clash "
                "with other conferences or the bridge's capacity.",
            ),
        },
        "/api/v1/conferences/{id}": {
            "get": operation("getConference", "One conference", "conferences",
                       {"200": json_content(Conference, "The conference."),
                        **errors(401, 403, 404)},
                       parameters=[param("ConferenceId")]),
            "patch": operation(
                "updateConference", "Change a conference (or it and the following ones)",
                "conferences",
                {"200": json_content(
                    {"anyOf": [ref(ConferenceChanged.__name__), ref(DryRun.__name__)]},
                    "The conference after the change; with `dry_run=true`, that the change "
                    "could be made (nothing was written)."),
                 **errors(400, 401, 403, 404, 409, 413, 415, 422, conflict="BookingConflict")},
                body="ConferenceUpdate",
                parameters=[param("ConferenceId"), param("Scope"), DRY_RUN, CSRF],
                description="With `dry_run=true` every check of the change is made and "
                "nothing is written (no audit record, no event): 200 `DryRun` when it could "
                "be made, else the same 409 or 422 as the change itself.",
            ),
            "delete": operation(
                "cancelConference", "Cancel a conference (or it and the following ones)",
                "conferences",
                {"200": json_content(ConferenceChanged,
                              "The conference, cancelled (the record is kept)."),
                 **errors(401, 403, 404, 409, 413, 415, 422, conflict="BookingConflict")},
                parameters=[
                    param("ConferenceId"), param("Scope"),
                    query("reason", {"type": "string", "maxLength": MAX_CANCEL_REASON,
                                     "pattern": ONE_LINE_PATTERN},
                          "Why it is cancelled (when no body gives it)."),
                    CSRF,
                ],
                description="The reason (the JSON body's `reason`, else the query's `reason`; "
                "\"\" when neither) is kept on each cancelled conference as "
                "`cancel_reason`, shown to its participants, written in the audit record and "
                "carried by the `conference.cancelled` event.",
            ) | {"requestBody": {
                "required": False,
                "content": {JSON: {"schema": ref(ConferenceCancel.__name__)}},
            }},
        },
    }


def _running_paths() -> dict[str, Schema]:
    return {
        "/api/v1/endpoints/{code}/calendar.ics": {"get": operation(
            "getEndpointCalendar", "iCalendar feed of an endpoint's conferences", "calendar",
            {"200": {
                "description": "RFC 5545 calendar: conferences from 60 days ago on, at "
                "most 1,000 (the earliest).",
                "content": {"text/calendar": {"schema": {"type": "string"}}},
                "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
            },
             **errors(401, 403, 404)},
            parameters=[param("EndpointCode")],
            # `?token=` is the calendarToken security scheme, not also a parameter: declared
            # twice, a client (or a fuzzer) could not tell a credential from a filter.
            description="Readable by the endpoint's own operator, agent or calendar token, "
            "and by roles that read every conference. Calendar programs that cannot send "
            "headers give a calendar-scope token as `?token=` (security scheme "
            "`calendarToken`); a bearer header or session cookie works as well.",
        ) | {"security": [*AUTHENTICATED, {"calendarToken": []}]}},
        "/api/v1/conferences/{id}/rollcall": {"get": operation(
            "getRollCall", "Roll call: who is expected, connected, and missing (and why)",
            "conferences",
            {"200": json_content(RollCall, "The roll call."), **errors(401, 403, 404)},
            parameters=[param("ConferenceId")],
            description="Before the room opens (and for a conference cancelled before it "
            "opened) every participant is `pending` / `not_invited` with 0 attempts and null "
            "`since` and `ready_at_open`, and the summaries say the room is not open yet. "
            "Readable by whoever may read the conference (404 otherwise).",
        )},
        "/api/v1/conferences/{id}/extend": {"post": operation(
            "extendConference", "Extend an open or live conference", "conferences",
            {"200": json_content(Conference, "The conference with its new end."),
             **errors(400, 401, 403, 404, 409, 413, 415, 422, conflict="BookingConflict")},
            body="Extension", parameters=[param("ConferenceId"), CSRF],
            description="Moves the end `minutes` later, if every participant and the bridge "
            "are free that long; the ending-soon warning is given again before the new end. "
            "Allowed to bookers and admins and to the chair endpoint (its operator or agent): "
            "403 for anyone else. 409 when the conference is not open or live, or when the "
            "longer conference clashes (the conflicts in `details`); 422 for an invalid body "
            "or a conference that would exceed the maximum duration.",
        )},
        "/api/v1/conferences/{id}/decline": {"post": operation(
            "declineConference", "Decline the invitation (the caller's endpoint)",
            "conferences",
            {"200": json_content(Declined, "Recorded: the endpoint is not re-invited "
                          "automatically."),
             **errors(401, 403, 404, 409)},
            parameters=[param("ConferenceId"), CSRF],
            description="For an endpoint's operator or agent, while the conference is open or "
            "live: its endpoint refuses to join. A decline after the endpoint joined (or a "
            "second one) changes nothing and publishes no event, yet is answered the same "
            "200 (see the roll call for the real state). 403 when the caller is not "
            "bound to an endpoint; 404 when its endpoint does not take part; 409 when the "
            "conference is not open or live. No request body.",
        )},
    }


def part() -> ApiPart:
    """The scheduler's paths, models and events."""
    return ApiPart(
        paths=_booking_paths() | _running_paths(),
        models=(ConferenceCreate, ConferenceUpdate, ConferenceCancel, Extension, Conference,
                ConferenceList, ConferenceCreated, ConferenceChanged, DryRun, RollCall,
                Declined, ConflictDetails, BookingConflictError),
        parameters={"Scope": query(
            "scope", {"type": "string", "enum": ["this", "following"], "default": "this"},
            "For an occurrence of a series: change only this one, or this and every later one.",
        )},
        responses={"BookingConflict": error(
            "The booking clashes with other conferences or the bridge capacity, with the "
            "conflicting conferences in `details`; or the conference's state forbids the "
            "change.",
            BookingConflictError.__name__,
        )},
        event_types=EVENT_TYPES,
        event_data=_event_data(),
    )
