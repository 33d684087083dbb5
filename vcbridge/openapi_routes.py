"""The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json.

Request bodies come from the pydantic models the handlers validate with;
response bodies are written out here to match `conference_json`,
`endpoint_json`, `token_json`, `user_json` and the other handlers. The
document is pure data, built once per process and cached (tests check it
against the app's router, so a route added without its operation fails)."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from monitoring.health.api import openapi_fragment as health_fragment
from scheduler.booking_api import MAX_CONFERENCE_PAGE
from scheduler.booking_service import MAX_LISTED_CONFLICTS
from scheduler.conference_schemas import ConferenceCreate, ConferenceUpdate
from scheduler.connect_policy import ConnectState, Reason
from scheduler.lifecycle_api import Extension
from vcbridge import __version__
from vcbridge.core.api.schemas import EndpointTokenCreate, LoginRequest, UserCreate, UserUpdate
from vcbridge.core.db.models import ConferenceStatus, EndpointKind, Role, TokenScope
from vcbridge.core.event_types import described
from vcbridge.core.http.auth_middleware import CSRF_HEADER, SESSION_COOKIE
from vcbridge.core.http.json_schema import URL_TEXT_PATTERN
from vcbridge.core.http.parsing import MAX_ID
from vcbridge.core.roster import CODE_PATTERN

OPENAPI_PATH = "/api/v1/openapi.json"
JSON = "application/json"
Schema = dict[str, Any]

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    LoginRequest,
    UserCreate,
    UserUpdate,
    EndpointTokenCreate,
    ConferenceCreate,
    ConferenceUpdate,
    Extension,
)

# Authentication: a bearer token (login, agent or calendar scope) or the session
# cookie set by login (then unsafe methods need the X-CSRF-Token header).
AUTHENTICATED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
PUBLIC: list[dict[str, list[str]]] = []


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None,
            description: str = "", closed: bool = True) -> Schema:
    schema: Schema = {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


# -- schemas ---------------------------------------------------------------

LOCAL_TIME: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in the province's time zone, e.g. 2026-11-30T08:00:00+07:00.",
    "examples": ["2026-11-30T08:00:00+07:00"],
}
# A time in a query string: the years vcbridge.core.http.parsing.query_datetime accepts.
QUERY_TIME: Schema = LOCAL_TIME | {"pattern": r"^(19[0-9]{2}|[2-8][0-9]{3}|9000)-"}
ENDPOINT_CODE: Schema = {"type": "string", "pattern": CODE_PATTERN, "examples": ["UBND-TINH"]}
# Free text in a query string: control characters are refused before routing (400).
QUERY_TEXT: Schema = {"type": "string", "pattern": URL_TEXT_PATTERN}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
# The file name of a recording: bridge/recorder.py's NAME_PATTERN (a test keeps them equal).
RECORDING_NAME: Schema = {
    "type": "string",
    "pattern": r"^conference-[0-9]+-[0-9]{8}T[0-9]{6}Z\.webm$",
    "examples": ["conference-12-20261127T031500Z.webm"],
}

SIGNAL_DESCRIPTION = (
    "The bridge's signaling WebSocket: a site (an endpoint's agent or operator) joins the "
    "conference's media room, negotiates its audio and video peer connections, follows the "
    "room state and, as chair, moderates (floor, mute, lock, admit, remove, record). The "
    "messages are described in docs/signaling.md.\n\n"
    "The caller must act for one endpoint (an operator's login token or session, or the "
    "endpoint's agent token) booked in the conference or admitted by the chair. Checks "
    "happen before the upgrade, so a refused connection gets an ordinary JSON error instead "
    "of `101`: 400 when the request is not a WebSocket upgrade, 403 for a caller bound to no "
    "endpoint, 404 for an unknown conference or one the endpoint is not part of, 409 when "
    "the conference is not open or live (the room opens `setup_minutes` before the start), "
    "429 when the caller connected to this room too often within a minute.\n\n"
    "With `role=control` a person moderates without being a site (docs/signaling.md, "
    "\"Control mode\"): an admin or booker for any conference, or the chair endpoint's "
    "operator. No seat, no media sent, not in the roll call; the room state, the chair's "
    "moderation messages on its behalf (published with `data.by` naming the person, audited "
    "under the person's name), and optionally the chair's view of the video, receive-only. "
    "403 for another caller who may see the conference, 422 for an unknown `role`."
)

# The event types of the event stream: what each means and the `data` keys it always carries
# (the event contract, vcbridge/core/event_types.py).
EVENT_TYPES: dict[str, tuple[str, tuple[str, ...]]] = described()

EVENTS_DESCRIPTION = "\n".join([
    "A WebSocket (send the usual upgrade headers; `ws://` or `wss://` to this path). "
    "Authenticate like any request: a bearer token (login or agent token) or the session "
    "cookie; a calendar token is refused (403). Checks happen before the upgrade, so a "
    "refused connection gets an ordinary JSON error instead of `101`.",
    "",
    "**Messages from the server** (JSON text frames, see `EventStreamMessage`):",
    "",
    "1. `{\"type\": \"stream.ready\", \"after\": N}` first: N is the `after` asked for, or "
    "the newest sequence number when none was given.",
    "2. Then every event with a sequence number above N, oldest first, then live events "
    "as they are committed: `{\"seq\", \"type\", \"at\", \"conference\", \"endpoint\", "
    "\"data\"}` (schema `BusEvent`). Remember the last `seq`: after a reconnect, "
    "`?after=<last seq>` resumes without gaps or duplicates. A client sees gaps in `seq` "
    "where events it may not see were skipped.",
    "",
    "**Messages from the client**: only `{\"type\": \"ping\"}`, answered with "
    "`{\"type\": \"pong\"}`. Anything else is answered with `{\"type\": \"error\", "
    "\"error\": {\"code\": \"bad_message\", \"message\"}}` and the socket is closed with "
    "code 1003 (a binary frame closes it with 1003 at once; one over 4096 bytes with 1009). "
    "The server also sends WebSocket pings every 30 s.",
    "",
    "The server closes with code 1013 when it stops or the client fell too far behind: "
    "reconnect with `?after=<last seq>`.",
    "",
    "**Who sees what**: staff (admin, booker, it) see every event. An operator or an "
    "endpoint agent sees only the events whose audience includes its endpoint: the "
    "`conference.*` events of conferences it takes part in, the `endpoint.*` events "
    "about itself, except `endpoint.absent` (staff only), and the `floor.*` events it did "
    "or that name it in `data.endpoint`. An accepted operator or agent "
    "connection marks its endpoint as on line while it stays open (the readiness check "
    "when a room opens).",
    "",
    "**Event types** (`data` keys):",
    "",
    *[f"- `{name}`: {text}" for name, (text, _) in EVENT_TYPES.items()],
    "",
    "Every lifecycle transition (`conference.opened`, `.live`, `.ending_soon`, `.ended`) "
    "carries `data.late_ms`: how many milliseconds after its due time it ran.",
])


def _error_schema(description: str, details: Schema | None = None) -> Schema:
    """The error contract `{"error": {"code", "message", "details"}}`."""
    body: Schema = _object(
        {
            "code": {
                "type": "string",
                "description": "Stable machine-readable code: bad_request, unauthorized, "
                "invalid_credentials, forbidden, csrf, origin_not_allowed, not_found, "
                "method_not_allowed, conflict, too_large, unsupported_media_type, invalid, "
                "rate_limited, internal.",
                "examples": ["invalid"],
            },
            "message": {"type": "string", "description": "Human-readable explanation."},
            "details": details if details is not None else {
                "description": "Extra, code-specific data; absent when there is none."
            },
        },
        required=["code", "message"],
    )
    return _object({"error": body}, description=description)


def _response_schemas() -> dict[str, Schema]:
    conference = _object(
        {
            "id": {"type": "integer"},
            "title": {"type": "string", "maxLength": 200},
            "agenda": {"type": "string"},
            "chair": ENDPOINT_CODE | {"description": "Code of the chairing endpoint."},
            "participants": {"type": "array", "items": ENDPOINT_CODE,
                             "description": "Codes of every endpoint, the chair included."},
            "start": LOCAL_TIME,
            "end": LOCAL_TIME,
            "setup_minutes": {"type": "integer", "minimum": 0,
                              "description": "Endpoints are held this long before `start`."},
            "rrule": _nullable({"type": "string"}) | {
                "description": "The RFC 5545 RRULE of the series, null for a single conference."
            },
            "series_id": _nullable({"type": "integer"}),
            "status": {"type": "string", "enum": [s.value for s in ConferenceStatus]},
            "created_at": LOCAL_TIME,
            "created_by": {"type": "string"},
            "updated_at": LOCAL_TIME,
            "updated_by": {"type": "string"},
        },
        closed=False,
        description="A conference (for a series: one occurrence).",
    )
    endpoint = _object(
        {
            "code": ENDPOINT_CODE,
            "name": {"type": "string", "examples": ["Văn phòng UBND tỉnh"]},
            "name_en": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in EndpointKind]},
            "address": {"type": "string"},
            "contact_name": {"type": "string"},
            "contact_phone": {"type": "string"},
            "contact_email": {"type": "string"},
            "active": {"type": "boolean", "description": "False once retired from the roster."},
        },
        description="A conference endpoint (điểm cầu) of the roster.",
    )
    user = _object(
        {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "role": {"type": "string", "enum": [r.value for r in Role]},
            "endpoint": _nullable(ENDPOINT_CODE) | {
                "description": "The endpoint an operator is bound to; null for other roles."
            },
            "full_name": {"type": "string"},
            "active": {"type": "boolean"},
        },
        description="A user account (never its password).",
    )
    token = _object(
        {
            "id": {"type": "integer"},
            "scope": {"type": "string", "enum": [s.value for s in TokenScope]},
            "label": {"type": "string"},
            "created_at": _nullable(LOCAL_TIME),
            "created_by": {"type": "string"},
            "expires_at": _nullable(LOCAL_TIME),
            "revoked_at": _nullable(LOCAL_TIME),
        },
        closed=False,
        description="A token's metadata (never its secret).",
    )
    audit_event = _object(
        {
            "id": {"type": "integer"},
            "at": LOCAL_TIME,
            "actor": {"type": "string"},
            "role": {"type": "string",
                     "description": "The actor's role, endpoint-agent, anonymous or system."},
            "action": {"type": "string", "examples": ["conference.create"]},
            "target_type": {"type": "string", "examples": ["conference"]},
            "target_id": {"type": "string"},
            "before": {"description": "The target before the change (any JSON), or null."},
            "after": {"description": "The target after the change (any JSON), or null."},
            "remote": {"type": "string", "description": "The client address."},
        },
        description="One audit log entry.",
    )
    conflict_details = _object(
        {
            "conflicts": {
                "type": "array",
                "items": _object({
                    "conference": {"type": "integer", "description": "Id of the conference."},
                    "title": {"type": "string"},
                    "start": LOCAL_TIME,
                    "end": LOCAL_TIME,
                    "endpoints": {"type": "array", "items": ENDPOINT_CODE,
                                  "description": "The requested endpoints it holds."},
                }),
                "maxItems": MAX_LISTED_CONFLICTS,
                "description": f"The earliest {MAX_LISTED_CONFLICTS} at most.",
            },
            "conflicts_total": {"type": "integer", "minimum": 0,
                                "description": "How many conferences conflict in all."},
            "capacity": _nullable(_object({
                "at": LOCAL_TIME,
                "conferences": {"type": "integer"},
                "ports": {"type": "integer"},
                "reason": {"type": "string"},
            })),
        },
        description="Why a booking conflicts: the conferences holding requested endpoints "
        "and/or the moment the bridge would be over capacity.",
    )
    invalid_details: Schema = {
        "anyOf": [
            {
                "type": "array",
                "description": "Body validation errors.",
                "items": _object({
                    "field": {"type": "string", "examples": ["participants"]},
                    "problem": {"type": "string"},
                }),
            },
            _object({"problems": {"type": "array", "items": {"type": "string"}}},
                    description="Booking rules broken."),
        ]
    }
    readiness = _object(
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
    event_data = _object(
        {
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
            "attempt": {"type": "integer", "minimum": 1,
                        "description": "endpoint.invited: the invitation's number since the "
                        "endpoint last joined."},
            "reason": {"type": "string", "enum": [r.value for r in Reason],
                       "description": "endpoint.invited: `invited` for a first call, else "
                       "the failure being redialled."},
            "attempts": {"type": "integer", "minimum": 1,
                         "description": "endpoint.absent: the invitations left unanswered."},
            "endpoint": ENDPOINT_CODE | {"description": "floor.*: the site acted upon."},
            "muted": {"type": "boolean", "description": "floor.mute, floor.mute_all."},
            "locked": {"type": "boolean", "description": "floor.lock."},
            "on": {"type": "boolean", "description": "floor.record: started or stopped."},
            "recording": RECORDING_NAME | {"description": "floor.record: the file."},
            "cause": {"type": "string", "enum": ["ended", "cancelled", "shutdown", "failed"],
                      "description": "floor.record: why the bridge stopped the recording "
                      "itself (absent when the chair did)."},
        },
        required=[],
        closed=False,
        description="Type-specific data; more keys may be added.",
    )
    bus_event: Schema = _object(
        {
            "seq": {"type": "integer", "minimum": 1,
                    "description": "Gapless sequence number over all events."},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "at": LOCAL_TIME,
            "conference": _nullable({"type": "integer"}) | {
                "description": "Id of the conference concerned."},
            "endpoint": _nullable(ENDPOINT_CODE) | {
                "description": "The endpoint an endpoint.* event is about, the site that did "
                "a floor.* action; null otherwise."},
            "data": event_data,
        },
        description="One event of the event stream (GET /api/v1/events).",
    )
    bus_event["allOf"] = [
        {"if": {"properties": {"type": {"const": name}}},
         "then": {"properties": {"data": {"required": list(keys)}}}}
        for name, (_, keys) in EVENT_TYPES.items() if keys
    ] + [{"if": {"properties": {"type": {"pattern": r"^(endpoint|floor)\."}}},
          "then": {"properties": {"endpoint": ENDPOINT_CODE}},
          "else": {"properties": {"endpoint": {"type": "null"}}}}]
    rollcall_endpoint = _object(
        {
            "code": ENDPOINT_CODE,
            "state": {"type": "string", "enum": [s.value for s in ConnectState]},
            "reason": {"type": "string", "enum": [r.value for r in Reason],
                       "description": "Why it is in this state: equal to the state, except "
                       "while invited (`invited` for a first call, else the failure being "
                       "redialled) and `not_invited` while pending."},
            "attempts": {"type": "integer", "minimum": 0,
                         "description": "Invitations since the endpoint last joined."},
            "redialling": {"type": "boolean",
                           "description": "The bridge calls it again on its own."},
            "ready_at_open": _nullable({"type": "boolean"}) | {
                "description": "On line when the room opened; null before it opened."},
            "since": _nullable(LOCAL_TIME) | {
                "description": "When the state last changed; null before the room opened."},
        },
        description="One participant in the roll call.",
    )
    return {
        "Conference": conference,
        "ConferenceList": _object({
            "conferences": {"type": "array", "items": _ref("Conference")},
            "next_offset": _nullable({"type": "integer"}) | {
                "description": "The `offset` of the next page; null on the last page."
            },
        }),
        "ConferenceCreated": {
            "allOf": [_ref("Conference")],
            "properties": {"occurrence_ids": {
                "type": "array", "items": {"type": "integer"},
                "description": "For a recurring booking: the id of every occurrence.",
            }},
        },
        "ConferenceChanged": {
            "allOf": [_ref("Conference")],
            "required": ["affected"],
            "properties": {"affected": {
                "type": "array", "items": {"type": "integer"},
                "description": "Ids of every conference changed (several with scope=following).",
            }},
        },
        "Endpoint": endpoint,
        "EndpointList": _object({"endpoints": {"type": "array", "items": _ref("Endpoint")}}),
        "User": user,
        "UserList": _object({"users": {"type": "array", "items": _ref("User")}}),
        "Token": token,
        "TokenCreated": {
            "allOf": [_ref("Token")],
            "required": ["token"],
            "properties": {"token": {
                "type": "string", "description": "The secret: shown in this answer only.",
            }},
        },
        "TokenList": _object({"tokens": {"type": "array", "items": _ref("Token")}}),
        "AuditEvent": audit_event,
        "AuditEventList": _object({"events": {"type": "array", "items": _ref("AuditEvent")}}),
        "LoginResponse": _object({
            "token": {"type": "string", "description": "Bearer token (also set as cookie)."},
            "token_type": {"const": "Bearer"},
            "expires_at": LOCAL_TIME,
            "csrf_token": {"type": "string",
                           "description": f"Send as {CSRF_HEADER} on unsafe cookie requests."},
            "user": _ref("User"),
        }),
        "Me": _object(
            {
                "name": {"type": "string"},
                "role": _nullable({"type": "string", "enum": [r.value for r in Role]}),
                "scope": {"type": "string", "enum": [s.value for s in TokenScope]},
                "endpoint": _nullable(ENDPOINT_CODE),
                "csrf_token": {"type": "string",
                               "description": "Only for a cookie session without bearer."},
            },
            required=["name", "role", "scope", "endpoint"],
        ),
        "Ok": _object({"ok": {"const": True}}),
        "RollCall": _object(
            {
                "conference": {"type": "integer"},
                "status": {"type": "string", "enum": [s.value for s in ConferenceStatus]},
                "expected": {"type": "integer", "minimum": 0,
                             "description": "Participants expected."},
                "connected": {"type": "integer", "minimum": 0,
                              "description": "Participants joined now."},
                "endpoints": {"type": "array", "items": rollcall_endpoint,
                              "description": "Every participant, in roster order."},
                "summary_vi": {"type": "string", "examples": [
                    "2/3 điểm cầu đã kết nối; chưa vào: HUYEN-A không trả lời (đang gọi lại)"]},
                "summary_en": {"type": "string", "examples": [
                    "2/3 connected; missing: HUYEN-A no answer (redialling)"]},
            },
            description="Who is expected, who is connected, and why the others are not.",
        ),
        "Declined": _object({
            "conference": {"type": "integer"},
            "endpoint": ENDPOINT_CODE | {"description": "The caller's endpoint."},
            "state": {"type": "string", "enum": [s.value for s in ConnectState],
                      "description": "The endpoint's state after the request (declined, "
                      "or unchanged if it had already joined)."},
        }),
        "BusEvent": bus_event,
        "EventStreamMessage": {
            "description": "A message the event stream sends (a JSON text frame).",
            "oneOf": [
                _object({"type": {"const": "stream.ready"},
                         "after": {"type": "integer", "minimum": 0,
                                   "description": "Events after this number follow."},
                         "reset": {"type": "boolean", "description":
                                   "True when the client's `after` was beyond the newest "
                                   "event (e.g. a restored database): it starts over."}},
                        description="The first message."),
                _ref("BusEvent"),
                _object({"type": {"const": "pong"}}, description="The answer to a ping."),
                _object({"type": {"const": "error"},
                         "error": _object({"code": {"type": "string",
                                                    "examples": ["bad_message"]},
                                           "message": {"type": "string"}})},
                        description="An unsupported client message; the socket then "
                        "closes with code 1003."),
            ],
        },
        "Recording": _object(
            {
                "id": RECORDING_NAME | {"description": "The file name: "
                                        "conference-<id>-<UTC start>.webm."},
                "started": LOCAL_TIME | {"description": "When the recording started."},
                "size": {"type": "integer", "minimum": 0, "description": "Bytes."},
                "duration": _nullable({"type": "number", "minimum": 0}) | {
                    "description": "Seconds; null while it is being written, or for a file "
                    "cut short (the bridge stopped without finishing it: it plays up to "
                    "where it was cut)."},
                "recording": {"type": "boolean",
                              "description": "True while the bridge is still writing it."},
            },
            description="One recording: a WebM file with the conference's common audio mix "
            "(Opus) and its main video (VP8).",
        ),
        "RecordingList": _object({
            "conference": {"type": "integer"},
            "recordings": {"type": "array", "items": _ref("Recording"),
                           "description": "Oldest first."},
        }),
        "Health": _object(
            {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "database": {"type": "string", "enum": ["sqlite", "postgresql", "unreachable"]},
                "version": {"type": "string"},
                "time": LOCAL_TIME,
                "detail": {"type": "string", "description": "The error type (503 only)."},
                "scheduler": {"type": "string", "enum": ["disabled", "leader", "standby"],
                              "description": "The lifecycle scheduler in this process: "
                              "off, running as leader, or waiting to become leader."},
            },
            required=["status", "database"],
        ),
        "Error": _error_schema("The error contract of every failure."),
        "InvalidError": _error_schema("422: the request breaks a rule.", invalid_details),
        "ConflictDetails": conflict_details,
        "BookingConflictError": _error_schema(
            "409: endpoints taken, bridge full (details given) or a conference state that "
            "forbids the change (no details).",
            _ref("ConflictDetails"),
        ),
        "RateLimitedError": _error_schema(
            "429: too many failed logins.",
            _object({"retry_after_seconds": {"type": "integer", "minimum": 1}}),
        ),
    }


def _request_schemas() -> dict[str, Schema]:
    """The pydantic request models, their `$defs` hoisted into components."""
    schemas: dict[str, Schema] = {}
    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            if schemas.setdefault(name, definition) != definition:
                raise RuntimeError(f"two different request schemas named {name}")
        schemas[model.__name__] = schema
    return schemas


# -- responses and parameters -----------------------------------------------

def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, schema: str = "Error", headers: dict[str, Any] | None = None
           ) -> Schema:
    return _json(_ref(schema), description, headers)


ERROR_RESPONSES: dict[str, Schema] = {
    "BadRequest": _error(
        "Malformed request (code bad_request): a JSON body that does not parse; control "
        "characters (U+0000-U+001F, U+007F) in the URL's path or query string; or a request "
        "the HTTP parser refuses (a request line or header field over 8190 bytes, a "
        "malformed header). The last two are refused before routing, so every operation "
        "may answer them."
    ),
    "Unauthorized": _error(
        "No valid credentials: missing, invalid, expired or revoked token (code unauthorized).",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": _error(
        "The caller's role or token scope does not allow this (code forbidden); a cookie "
        f"session sent an unsafe request without the right {CSRF_HEADER} header (code csrf); "
        "or a WebSocket upgrade or write riding on the session cookie comes from a page of "
        "another origin (code origin_not_allowed, `details.origin`)."
    ),
    "NotFound": _error("No such resource, or one the caller may not see (code not_found)."),
    "Conflict": _error("The request clashes with the current state (code conflict)."),
    "BookingConflict": _error(
        "The booking clashes with other conferences or the bridge capacity, with the "
        "conflicting conferences in `details`; or the conference's state forbids the change.",
        "BookingConflictError",
    ),
    "TooLarge": _error("The body exceeds the configured size limit (code too_large)."),
    "UnsupportedMediaType": _error(
        "The body is not sent as application/json (code unsupported_media_type)."
    ),
    "Invalid": _error(
        "Invalid request: body validation errors as `details` [{field, problem}], booking "
        "rules as `details.problems`, or a bad query parameter (code invalid).",
        "InvalidError",
    ),
    "RateLimited": _error(
        "Too many failed logins for this user name or address (code rate_limited).",
        "RateLimitedError",
        headers={"Retry-After": {"schema": {"type": "integer"},
                                 "description": "Seconds to wait."}},
    ),
}


def _err(*statuses: int, conflict: str = "Conflict") -> dict[str, Schema]:
    names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
             409: conflict, 413: "TooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
             429: "RateLimited"}
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


PARAMETERS: dict[str, Schema] = {
    "EndpointCode": {"name": "code", "in": "path", "required": True, "schema": ENDPOINT_CODE,
                     "description": "The endpoint's code."},
    "ConferenceId": {"name": "id", "in": "path", "required": True, "schema": ID},
    "UserId": {"name": "id", "in": "path", "required": True, "schema": ID},
    "TokenId": {"name": "id", "in": "path", "required": True, "schema": ID},
    "RecordingName": {"name": "name", "in": "path", "required": True, "schema": RECORDING_NAME,
                      "description": "The recording's `id` from the listing."},
    "Scope": _query(
        "scope", {"type": "string", "enum": ["this", "following"], "default": "this"},
        "For an occurrence of a series: change only this one, or this and every later one.",
    ),
    "CsrfToken": {
        "name": CSRF_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
        "description": "Required when authenticated by the session cookie (the csrf_token "
        "from login or /auth/me); not needed with a bearer token.",
    },
}


def _op(operation_id: str, summary: str, tag: str, responses: dict[str, Any], *,
        public: bool = False, parameters: list[Schema] | None = None,
        body: str | None = None, description: str = "") -> Schema:
    operation: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {
            "required": True, "content": {JSON: {"schema": _ref(body)}},
        }
    operation["security"] = PUBLIC if public else AUTHENTICATED
    # Any request can be malformed (vcbridge/core/http/errors.py); an operation may say more.
    responses = {"400": {"$ref": "#/components/responses/BadRequest"}} | responses
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _paths() -> dict[str, Schema]:
    csrf = _param("CsrfToken")
    time_range = [
        _query("from", QUERY_TIME, "Only from this time on (RFC 3339 with offset)."),
        _query("to", QUERY_TIME, "Only before this time (RFC 3339 with offset; after "
               "`from`, else 422)."),
    ]
    location = {"Location": {"schema": {"type": "string"},
                             "description": "The URL of the new resource."}}
    return {
        "/healthz": {"get": _op(
            "getHealth", "Liveness: the service and its database", "health",
            {"200": _json(_ref("Health"), "The service and its database answer."),
             "503": _json(_ref("Health"), "The database does not answer.")},
            public=True,
        )},
        "/metrics": {"get": _op(
            "getMetrics", "Prometheus metrics of this process", "health",
            {"200": {"description": "The Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             **_err(401)},
            public=True,
            description="For the IT staff's Prometheus. With the `metrics_token` setting, a "
            "scrape sends it as `Authorization: Bearer` (401 without it); without one the "
            "route is open, which the service allows only when it listens on loopback (see "
            "monitoring/metrics/routes.py). Answers from memory; never queries the database.",
        )},
        "/api/v1/auth/login": {"post": _op(
            "login", "Log in: a bearer token, also set as the session cookie", "auth",
            {"200": _json(_ref("LoginResponse"), "Logged in.", {
                "Set-Cookie": {"schema": {"type": "string"},
                               "description": f"{SESSION_COOKIE}: the same token, HttpOnly."},
            }),
             **_err(400, 401, 413, 415, 422, 429)},
            public=True, body="LoginRequest",
            description="401 (code invalid_credentials) for a wrong user name or password or "
            "an inactive account; repeated failures are rate limited (429). A session cookie "
            "is ignored here (no CSRF header needed).",
        )},
        "/api/v1/auth/logout": {"post": _op(
            "logout", "Log out: revoke the current login token", "auth",
            {"200": _json(_ref("Ok"), "Logged out; the session cookie is cleared."),
             **_err(401, 403)},
            parameters=[csrf],
        )},
        "/api/v1/auth/me": {"get": _op(
            "getMe", "Who am I (and the CSRF token of a cookie session)", "auth",
            {"200": _json(_ref("Me"), "The caller."), **_err(401, 403)},
        )},
        "/api/v1/users": {
            "get": _op("listUsers", "List user accounts (admin)", "users",
                       {"200": _json(_ref("UserList"), "Every account, by user name."),
                        **_err(401, 403)}),
            "post": _op("createUser", "Create a user account (admin)", "users",
                        {"201": _json(_ref("User"), "Created.", location),
                         **_err(400, 401, 403, 409, 413, 415, 422)},
                        body="UserCreate", parameters=[csrf],
                        description="409 when the user name is taken; 422 for a weak password "
                        "or a wrong role/endpoint pairing."),
        },
        "/api/v1/users/{id}": {"patch": _op(
            "updateUser", "Change a user account (admin)", "users",
            {"200": _json(_ref("User"), "The account after the change."),
             **_err(400, 401, 403, 404, 413, 415, 422)},
            body="UserUpdate", parameters=[_param("UserId"), csrf],
            description="Only the fields given change. A new password, role, endpoint or "
            "deactivation ends the user's sessions. You cannot deactivate or demote yourself.",
        )},
        "/api/v1/endpoints": {"get": _op(
            "listEndpoints", "The roster of endpoints", "endpoints",
            {"200": _json(_ref("EndpointList"), "The endpoints, in roster order."),
             **_err(401, 403, 422)},
            parameters=[_query("include_retired", {"type": "boolean", "default": False},
                               "`true` to include endpoints retired from the roster.")],
        )},
        "/api/v1/endpoints/{code}": {"get": _op(
            "getEndpoint", "One endpoint", "endpoints",
            {"200": _json(_ref("Endpoint"), "The endpoint (active or retired)."),
             **_err(401, 403, 404)},
            parameters=[_param("EndpointCode")],
        )},
        "/api/v1/endpoints/{code}/tokens": {
            "get": _op("listEndpointTokens", "An endpoint's tokens (admin)", "endpoints",
                       {"200": _json(_ref("TokenList"), "The tokens' metadata."),
                        **_err(401, 403, 404)},
                       parameters=[_param("EndpointCode")]),
            "post": _op("createEndpointToken", "Issue an agent or calendar token (admin)",
                        "endpoints",
                        {"201": _json(_ref("TokenCreated"), "Issued; the secret is shown once."),
                         **_err(400, 401, 403, 404, 413, 415, 422)},
                        body="EndpointTokenCreate", parameters=[_param("EndpointCode"), csrf],
                        description="Scope `agent` (an endpoint agent) or `calendar` (the "
                        "iCalendar feed only); login tokens come from /api/v1/auth/login."),
        },
        "/api/v1/endpoints/{code}/tokens/{id}": {"delete": _op(
            "revokeEndpointToken", "Revoke an endpoint token at once (admin)", "endpoints",
            {"200": _json(_ref("Token"), "The token, revoked."), **_err(401, 403, 404)},
            parameters=[_param("EndpointCode"), _param("TokenId"), csrf],
        )},
        "/api/v1/endpoints/{code}/test-call": {"get": _op(
            "testCall", "A short echo test call to the bridge (WebSocket)", "bridge",
            {"101": {
                "description": "Switching Protocols: the bridge sends `joined` (slots "
                "`[\"self\"]`), answers the audio and video offers and sends the site's "
                "own media back; after `leave` (or 20 s) it sends `test_call.result` "
                "(audio packets and video frames it received) and `closed`.",
                "headers": {"Upgrade": {"schema": {"const": "websocket"}}},
            },
             "400": _error("Not a WebSocket upgrade request (code bad_request)."),
             **_err(401, 403, 404)},
            parameters=[_param("EndpointCode")],
            description="The pre-flight check of an endpoint agent (docs/signaling.md, "
            "\"Test call\"): only the endpoint itself (its agent or operator token); "
            "403 for anyone else.",
        )},
        "/api/v1/endpoints/{code}/calendar.ics": {"get": _op(
            "getEndpointCalendar", "iCalendar feed of an endpoint's conferences", "calendar",
            {"200": {
                "description": "RFC 5545 calendar: conferences from 60 days ago on, at "
                "most 1,000 (the earliest).",
                "content": {"text/calendar": {"schema": {"type": "string"}}},
                "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
            },
             **_err(401, 403, 404)},
            parameters=[_param("EndpointCode")],
            # `?token=` is the calendarToken security scheme, not also a parameter: declared
            # twice, a client (or a fuzzer) could not tell a credential from a filter.
            description="Readable by the endpoint's own operator, agent or calendar token, "
            "and by roles that read every conference. Calendar programs that cannot send "
            "headers give a calendar-scope token as `?token=` (security scheme "
            "`calendarToken`); a bearer header or session cookie works as well.",
        ) | {"security": [*AUTHENTICATED, {"calendarToken": []}]}},
        "/api/v1/conferences": {
            "get": _op(
                "listConferences", "List conferences", "conferences",
                {"200": _json(_ref("ConferenceList"), "The conferences by start time."),
                 **_err(401, 403, 422)},
                parameters=[
                    _query("endpoint", ENDPOINT_CODE,
                           "Only conferences this (active) endpoint takes part in; 422 for "
                           "an unknown one."),
                    *time_range,
                    {**_query("status", {"type": "array", "items": {
                        "type": "string", "enum": [s.value for s in ConferenceStatus]}},
                        "Only these statuses (repeat the parameter for several)."),
                     "style": "form", "explode": True},
                    _query("series", ID,
                           "Only the occurrences of this series."),
                    _query("limit", {"type": "integer", "minimum": 1,
                                     "maximum": MAX_CONFERENCE_PAGE, "default": 200},
                           "Page size."),
                    _query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000,
                                      "default": 0}, "Page start (see `next_offset`)."),
                ],
                description="Operators and endpoint agents see only their own endpoint's "
                "conferences (403 when asking for another endpoint).",
            ),
            "post": _op(
                "createConference", "Book a conference or a recurring series", "conferences",
                {"201": _json(_ref("ConferenceCreated"), "Booked (the first occurrence).",
                              location),
                 **_err(400, 401, 403, 409, 413, 415, 422, conflict="BookingConflict")},
                body="ConferenceCreate", parameters=[csrf],
                description="422 for a body the schema refuses, or for the booking rules "
                "beyond it (`details.problems`): start in the past or beyond the booking "
                "horizon, end not after start, longer than the maximum duration, setup_minutes "
                "above the configured maximum, times outside "
                "the years 2000-2199, an unknown or retired endpoint, the chair not among the "
                "participants, a recurrence rule the service does not take. 409 for a clash "
                "with other conferences or the bridge's capacity.",
            ),
        },
        "/api/v1/conferences/{id}": {
            "get": _op("getConference", "One conference", "conferences",
                       {"200": _json(_ref("Conference"), "The conference."),
                        **_err(401, 403, 404)},
                       parameters=[_param("ConferenceId")]),
            "patch": _op(
                "updateConference", "Change a conference (or it and the following ones)",
                "conferences",
                {"200": _json(_ref("ConferenceChanged"), "The conference after the change."),
                 **_err(400, 401, 403, 404, 409, 413, 415, 422, conflict="BookingConflict")},
                body="ConferenceUpdate",
                parameters=[_param("ConferenceId"), _param("Scope"), csrf],
            ),
            "delete": _op(
                "cancelConference", "Cancel a conference (or it and the following ones)",
                "conferences",
                {"200": _json(_ref("ConferenceChanged"),
                              "The conference, cancelled (the record is kept)."),
                 **_err(401, 403, 404, 409, 422, conflict="BookingConflict")},
                parameters=[_param("ConferenceId"), _param("Scope"), csrf],
            ),
        },
        "/api/v1/conferences/{id}/rollcall": {"get": _op(
            "getRollCall", "Roll call: who is expected, connected, and missing (and why)",
            "conferences",
            {"200": _json(_ref("RollCall"), "The roll call."), **_err(401, 403, 404)},
            parameters=[_param("ConferenceId")],
            description="Before the room opens (and for a conference cancelled before it "
            "opened) every participant is `pending` / `not_invited` with 0 attempts and null "
            "`since` and `ready_at_open`, and the summaries say the room is not open yet. "
            "Readable by whoever may read the conference (404 otherwise).",
        )},
        "/api/v1/conferences/{id}/extend": {"post": _op(
            "extendConference", "Extend an open or live conference", "conferences",
            {"200": _json(_ref("Conference"), "The conference with its new end."),
             **_err(400, 401, 403, 404, 409, 413, 415, 422, conflict="BookingConflict")},
            body="Extension", parameters=[_param("ConferenceId"), csrf],
            description="Moves the end `minutes` later, if every participant and the bridge "
            "are free that long; the ending-soon warning is given again before the new end. "
            "Allowed to bookers and admins and to the chair endpoint (its operator or agent): "
            "403 for anyone else. 409 when the conference is not open or live, or when the "
            "longer conference clashes (the conflicts in `details`); 422 for an invalid body "
            "or a conference that would exceed the maximum duration.",
        )},
        "/api/v1/conferences/{id}/decline": {"post": _op(
            "declineConference", "Decline the invitation (the caller's endpoint)",
            "conferences",
            {"200": _json(_ref("Declined"), "Recorded: the endpoint is not re-invited "
                          "automatically."),
             **_err(401, 403, 404, 409)},
            parameters=[_param("ConferenceId"), csrf],
            description="For an endpoint's operator or agent, while the conference is open or "
            "live: its endpoint refuses to join. A decline after the endpoint joined (or a "
            "second one) changes nothing and publishes no event, yet is answered the same "
            "200 (see the roll call for the real state). 403 when the caller is not "
            "bound to an endpoint; 404 when its endpoint does not take part; 409 when the "
            "conference is not open or live. No request body.",
        )},
        "/api/v1/conferences/{id}/signal": {"get": _op(
            "joinRoom", "Join the conference's media room (signaling WebSocket)", "bridge",
            {"101": {
                "description": "Switching Protocols: the WebSocket is open; the bridge sends "
                "`joined`, then the room state (docs/signaling.md).",
                "headers": {
                    "Upgrade": {"schema": {"const": "websocket"}},
                    "Connection": {"schema": {"type": "string", "examples": ["upgrade"]}},
                    "Sec-WebSocket-Accept": {"schema": {"type": "string"}},
                },
            },
             "400": _error("Not a WebSocket upgrade request (code bad_request)."),
             **_err(401, 403, 404, 409, 422),
             "429": _error(
                 "This site (or moderator) connected to the room too often within a minute "
                 "(setting signaling_joins_per_minute; code rate_limited).",
                 headers={"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                          "description": "Seconds to wait."}})},
            parameters=[_param("ConferenceId"), _query(
                "role", {"type": "string", "enum": ["site", "control"], "default": "site"},
                "`site`: an endpoint joins with its media; `control`: a moderator's console "
                "(no seat, no media sent).")],
            description=SIGNAL_DESCRIPTION,
        )},
        "/api/v1/conferences/{id}/recordings": {"get": _op(
            "listRecordings", "The conference's recordings", "bridge",
            {"200": _json(_ref("RecordingList"), "Every recording of the conference."),
             **_err(401, 403, 404)},
            parameters=[_param("ConferenceId")],
            description="The chair starts and stops recording in the room (signaling message "
            "`record`). Readable by admins, bookers and IT staff and by the chair endpoint "
            "(its operator or agent); 403 for another participant, 404 for an unknown "
            "conference or one the caller may not see.",
        )},
        "/api/v1/conferences/{id}/recordings/{name}": {"get": _op(
            "downloadRecording", "Download a recording (WebM)", "bridge",
            {"200": {
                "description": "The WebM file (Opus audio, VP8 video), as an attachment.",
                "content": {"video/webm": {"schema": {"type": "string",
                                                      "contentMediaType": "video/webm"}}},
                "headers": {"Content-Disposition": {
                    "schema": {"type": "string"},
                    "description": "attachment; filename=\"<name>\""}},
            },
             **_err(401, 403, 404, 409)},
            parameters=[_param("ConferenceId"), _param("RecordingName")],
            description="Who may download: as for the listing. 404 for a name that is not in "
            "the conference's listing; 409 while the recording is still being written.",
        )},
        "/api/v1/events": {"get": _op(
            "getEventStream", "The live event stream (WebSocket)", "events",
            {"101": {
                "description": "Switching Protocols: the WebSocket is open; the messages are "
                "described above (`EventStreamMessage`, `BusEvent`).",
                "headers": {
                    "Upgrade": {"schema": {"const": "websocket"}},
                    "Connection": {"schema": {"type": "string", "examples": ["upgrade"]}},
                    "Sec-WebSocket-Accept": {"schema": {"type": "string"}},
                },
            },
             "400": _error("Not a WebSocket upgrade request (code bad_request)."),
             **_err(401, 403, 422)},
            parameters=[_query(
                "after", {"type": "integer", "minimum": 0, "maximum": 2**62},
                "The last sequence number seen: every later event is sent first. Without "
                "it, only events from now on.",
            )],
            description=EVENTS_DESCRIPTION + "\n\n403 for a calendar token; 422 for an "
            "account bound to no endpoint that is not staff, or a bad `after`.",
        )},
        "/api/v1/audit": {"get": _op(
            "listAuditEvents", "Read the audit log (admin)", "audit",
            {"200": _json(_ref("AuditEventList"), "Events, newest first."),
             **_err(401, 403, 422)},
            parameters=[
                _query("action", QUERY_TEXT, "Exact action, e.g. conference.create."),
                _query("actor", QUERY_TEXT, "Exact actor name."),
                _query("target_type", QUERY_TEXT, "Exact target type."),
                _query("target_id", QUERY_TEXT, "Exact target id."),
                *time_range,
                _query("before_id", ID,
                       "Only events older than this id (the next page)."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                 "default": 100}, "Page size."),
            ],
        )},
        OPENAPI_PATH: {"get": _op(
            "getOpenApi", "This OpenAPI document", "meta",
            {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            public=True,
        )},
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (built once; treat it as read-only)."""
    health = health_fragment()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vcbridge",
            "version": __version__,
            "description": (
                "Đặt lịch hội nghị truyền hình giữa các điểm cầu của tỉnh.\n\n"
                "Booking of video conferences among the province's endpoints: roster, "
                "conferences (single or recurring) and their lifecycle, iCalendar feeds, "
                "users, tokens, audit, a live event stream, and the bridge's media rooms "
                "(signaling) and recordings, endpoint health and availability."
                "\n\nErrors are always JSON: `{\"error\": {\"code\", \"message\", "
                "\"details\"}}`. Times are RFC 3339 with an offset."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "health", "description": "Sức khỏe / liveness of the service; each "
             "endpoint's health, heartbeats, readiness and monthly availability."},
            {"name": "auth", "description": "Đăng nhập / login and sessions."},
            {"name": "users", "description": "Tài khoản / user accounts."},
            {"name": "endpoints", "description": "Điểm cầu / endpoints and their tokens."},
            {"name": "calendar", "description": "Lịch iCalendar / calendar feeds."},
            {"name": "conferences", "description": "Hội nghị / conferences."},
            {"name": "audit", "description": "Nhật ký / audit log."},
            {"name": "events", "description": "Sự kiện / the live event stream (WebSocket)."},
            {"name": "bridge", "description": "Phòng họp / the media room: signaling "
             "and recordings."},
            {"name": "meta", "description": "This document."},
        ],
        "paths": _paths() | health["paths"],
        "components": {
            "schemas": _request_schemas() | _response_schemas() | health["schemas"],
            "responses": ERROR_RESPONSES,
            "parameters": PARAMETERS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A login, agent or calendar token."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                               "description": f"The session cookie set by login; unsafe "
                               f"methods also need the {CSRF_HEADER} header."},
                "calendarToken": {"type": "apiKey", "in": "query", "name": "token",
                                  "description": "A calendar-scope token as `?token=` "
                                  "(calendar feed only; control characters get 400)."},
            },
        },
    }


@functools.cache
def _document_text() -> str:
    return json.dumps(openapi_document(), ensure_ascii=False)


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return web.Response(text=_document_text(), content_type=JSON)


def setup_routes(app: web.Application) -> None:
    """Register the OpenAPI route."""
    app.router.add_get(OPENAPI_PATH, openapi_json)
