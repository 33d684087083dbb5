"""The core API's share of the OpenAPI document: login, users, the roster and its
tokens, the audit log, the event stream, liveness, and the error contract."""

from __future__ import annotations

from collections.abc import Mapping

from vcbridge.core.api.responses import (
    AuditActionList,
    AuditEventList,
    Endpoint,
    EndpointList,
    Health,
    LoginResponse,
    Me,
    Ok,
    PasswordResetDone,
    Token,
    TokenCreated,
    TokenList,
    User,
    UserList,
)
from vcbridge.core.api.schemas import (
    EndpointTokenCreate,
    LoginRequest,
    PasswordReset,
    UserCreate,
    UserUpdate,
)
from vcbridge.core.http.auth_middleware import CSRF_HEADER, SESSION_COOKIE
from vcbridge.core.http.error_models import Error, InvalidError, RateLimitedError
from vcbridge.core.http.openapi import (
    CSRF,
    ENDPOINT_CODE,
    ID,
    LOCAL_TIME,
    LOCATION,
    NOT_AN_UPGRADE,
    QUERY_TEXT,
    TIME_RANGE,
    WEBSOCKET_HEADERS,
    ApiPart,
    Schema,
    error,
    errors,
    json_content,
    nullable,
    obj,
    operation,
    param,
    query,
    ref,
)

EventTypes = Mapping[str, tuple[str, tuple[str, ...]]]


_OPERATOR_TOKENS = ("An admin manages every endpoint's tokens. An operator manages the "
                    "calendar tokens of its own endpoint only (403 for an agent token or "
                    "another endpoint); every issue and revocation is audited.")

def events_description(event_types: EventTypes) -> str:
    """The event stream's description, listing every event type."""
    return "\n".join([
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
    *[f"- `{name}`: {text}" for name, (text, _) in event_types.items()],
    "",
    "Every lifecycle transition (`conference.opened`, `.live`, `.ending_soon`, `.ended`) "
    "carries `data.late_ms`: how many milliseconds after its due time it ran.",
])


ERROR_RESPONSES: dict[str, Schema] = {
    "BadRequest": error(
        "Malformed request (code bad_request): a JSON body that does not parse; control "
        "characters (U+0000-U+001F, U+007F) in the URL's path or query string; or a request "
        "the HTTP parser refuses (a request line or header field over 8190 bytes, a "
        "malformed header). The last two are refused before routing, so every operation "
        "may answer them."
    ),
    "Unauthorized": error(
        "No valid credentials: missing, invalid, expired or revoked token (code unauthorized).",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": error(
        "The caller's role or token scope does not allow this (code forbidden); a cookie "
        f"session sent an unsafe request without the right {CSRF_HEADER} header (code csrf); "
        "or a WebSocket upgrade or write riding on the session cookie comes from a page of "
        "another origin (code origin_not_allowed, `details.origin`)."
    ),
    "NotFound": error("No such resource, or one the caller may not see (code not_found)."),
    "Conflict": error("The request clashes with the current state (code conflict)."),
    "BookingConflict": error(
        "The booking clashes with other conferences or the bridge capacity, with the "
        "conflicting conferences in `details`; or the conference's state forbids the change.",
        "BookingConflictError",
    ),
    "TooLarge": error("The body exceeds the configured size limit (code too_large)."),
    "UnsupportedMediaType": error(
        "The body is not sent as application/json (code unsupported_media_type)."
    ),
    "Invalid": error(
        "Invalid request: body validation errors as `details` [{field, problem}], booking "
        "rules as `details.problems`, or a bad query parameter (code invalid).",
        "InvalidError",
    ),
    "RateLimited": error(
        "Too many failed logins for this user name or address (code rate_limited).",
        "RateLimitedError",
        headers={"Retry-After": {"schema": {"type": "integer"},
                                 "description": "Seconds to wait."}},
    ),
}


def _bus_event(event_types: EventTypes, event_data: Mapping[str, Schema]) -> Schema:
    data = obj(dict(event_data), required=[], closed=False,
               description="Type-specific data; more keys may be added.")
    bus_event: Schema = obj(
        {
            "seq": {"type": "integer", "minimum": 1,
                    "description": "Gapless sequence number over all events."},
            "type": {"type": "string", "enum": list(event_types)},
            "at": LOCAL_TIME,
            "conference": nullable({"type": "integer"}) | {
                "description": "Id of the conference concerned."},
            "endpoint": nullable(ENDPOINT_CODE) | {
                "description": "The endpoint an endpoint.* event is about, the site that did "
                "a floor.* action; null otherwise."},
            "data": data,
        },
        description="One event of the event stream (GET /api/v1/events).",
    )
    bus_event["allOf"] = [
        {"if": {"properties": {"type": {"const": name}}},
         "then": {"properties": {"data": {"required": list(keys)}}}}
        for name, (_, keys) in event_types.items() if keys
    ] + [{"if": {"properties": {"type": {"pattern": r"^(endpoint|floor)\."}}},
          "then": {"properties": {"endpoint": ENDPOINT_CODE}},
          "else": {"properties": {"endpoint": {"type": "null"}}}}]
    return bus_event


EVENT_STREAM_MESSAGE: Schema = {
    "description": "A message the event stream sends (a JSON text frame).",
    "oneOf": [
        obj({"type": {"const": "stream.ready"},
             "after": {"type": "integer", "minimum": 0,
                       "description": "Events after this number follow."},
             "reset": {"type": "boolean", "description":
                       "True when the client's `after` was beyond the newest "
                       "event (e.g. a restored database): it starts over."}},
            description="The first message."),
        ref("BusEvent"),
        obj({"type": {"const": "pong"}}, description="The answer to a ping."),
        obj({"type": {"const": "error"},
             "error": obj({"code": {"type": "string", "examples": ["bad_message"]},
                           "message": {"type": "string"}})},
            description="An unsupported client message; the socket then "
            "closes with code 1003."),
    ],
}


def _account_paths() -> dict[str, Schema]:
    return {
        "/healthz": {"get": operation(
            "getHealth", "Liveness: the service and its database", "health",
            {"200": json_content(Health, "The service and its database answer."),
             "503": json_content(Health, "The database does not answer.")},
            public=True,
        )},
        "/api/v1/auth/login": {"post": operation(
            "login", "Log in: a bearer token, also set as the session cookie", "auth",
            {"200": json_content(LoginResponse, "Logged in.", {
                "Set-Cookie": {"schema": {"type": "string"},
                               "description": f"{SESSION_COOKIE}: the same token, HttpOnly."},
            }),
             **errors(400, 401, 413, 415, 422, 429)},
            public=True, body="LoginRequest",
            description="401 (code invalid_credentials) for a wrong user name or password or "
            "an inactive account; repeated failures are rate limited (429). A session cookie "
            "is ignored here (no CSRF header needed).",
        )},
        "/api/v1/auth/logout": {"post": operation(
            "logout", "Log out: revoke the current login token", "auth",
            {"200": json_content(Ok, "Logged out; the session cookie is cleared."),
             **errors(401, 403)},
            parameters=[CSRF],
        )},
        "/api/v1/auth/me": {"get": operation(
            "getMe", "Who am I (and the CSRF token of a cookie session)", "auth",
            {"200": json_content(Me, "The caller."), **errors(401, 403)},
        )},
        "/api/v1/users": {
            "get": operation("listUsers", "List user accounts (admin)", "users",
                       {"200": json_content(UserList, "Every account, by user name."),
                        **errors(401, 403)}),
            "post": operation("createUser", "Create a user account (admin)", "users",
                        {"201": json_content(User, "Created.", LOCATION),
                         **errors(400, 401, 403, 409, 413, 415, 422)},
                        body="UserCreate", parameters=[CSRF],
                        description="409 when the user name is taken; 422 for a weak password "
                        "or a wrong role/endpoint pairing. Either names the field at fault in "
                        "`details` ([{field, problem}])."),
        },
        "/api/v1/users/{id}": {"patch": operation(
            "updateUser", "Change a user account (admin)", "users",
            {"200": json_content(User, "The account after the change."),
             **errors(400, 401, 403, 404, 413, 415, 422)},
            body="UserUpdate", parameters=[param("UserId"), CSRF],
            description="Only the fields given change. A new password, role, endpoint or "
            "deactivation ends the user's sessions. You cannot deactivate or demote yourself.",
        )},
        "/api/v1/users/{id}/password-reset": {"post": operation(
            "resetUserPassword", "Reset a user's password (admin)", "users",
            {"200": json_content(PasswordResetDone, "The new password is set."),
             **errors(400, 401, 403, 404, 413, 415, 422)},
            body="PasswordReset", parameters=[param("UserId"), CSRF],
            description="With `password`, that password (the password policy applies, "
            "else 422); with an empty object, the service makes a random one and returns "
            "it in this answer only (`generated_password`). Either way the user's sessions "
            "end, and the audit log records `user.password_reset` without the password.",
        )},
    }


def _roster_paths() -> dict[str, Schema]:
    return {
        "/api/v1/endpoints": {"get": operation(
            "listEndpoints", "The roster of endpoints", "endpoints",
            {"200": json_content(EndpointList, "The endpoints, in roster order."),
             **errors(401, 403, 422)},
            parameters=[query("include_retired", {"type": "boolean", "default": False},
                               "`true` to include endpoints retired from the roster.")],
        )},
        "/api/v1/endpoints/{code}": {"get": operation(
            "getEndpoint", "One endpoint", "endpoints",
            {"200": json_content(Endpoint, "The endpoint (active or retired)."),
             **errors(401, 403, 404)},
            parameters=[param("EndpointCode")],
        )},
        "/api/v1/endpoints/{code}/tokens": {
            "get": operation("listEndpointTokens", "An endpoint's tokens (admin; operator: "
                             "its calendar tokens)", "endpoints",
                       {"200": json_content(TokenList, "The tokens' metadata."),
                        **errors(401, 403, 404)},
                       parameters=[param("EndpointCode")], description=_OPERATOR_TOKENS),
            "post": operation("createEndpointToken", "Issue an agent or calendar token (admin; "
                              "operator: a calendar token)", "endpoints",
                        {"201": json_content(TokenCreated,
                                             "Issued; the secret is shown once."),
                         **errors(400, 401, 403, 404, 413, 415, 422)},
                        body="EndpointTokenCreate", parameters=[param("EndpointCode"), CSRF],
                        description="Scope `agent` (an endpoint agent) or `calendar` (the "
                        "iCalendar feed only); login tokens come from /api/v1/auth/login. "
                        + _OPERATOR_TOKENS),
        },
        "/api/v1/endpoints/{code}/tokens/{id}": {"delete": operation(
            "revokeEndpointToken", "Revoke an endpoint token at once (admin; operator: its "
            "calendar tokens)", "endpoints",
            {"200": json_content(Token, "The token, revoked."), **errors(401, 403, 404)},
            parameters=[param("EndpointCode"), param("TokenId"), CSRF],
            description=_OPERATOR_TOKENS,
        )},
        "/api/v1/audit": {"get": operation(
            "listAuditEvents", "Read the audit log (admin)", "audit",
            {"200": json_content(AuditEventList, "Events, newest first."),
             **errors(401, 403, 422)},
            parameters=[
                query("action", QUERY_TEXT, "Exact action, e.g. conference.create."),
                query("actor", QUERY_TEXT, "Exact actor name."),
                query("target_type", QUERY_TEXT, "Exact target type."),
                query("target_id", QUERY_TEXT, "Exact target id."),
                *TIME_RANGE,
                query("before_id", ID,
                       "Only events older than this id (the next page)."),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                 "default": 100}, "Page size."),
            ],
        )},
        "/api/v1/audit/actions": {"get": operation(
            "listAuditActions", "The actions found in the audit log (admin)", "audit",
            {"200": json_content(AuditActionList,
                                 "Each action with its number of entries, by name."),
             **errors(401, 403)},
            description="The choices of the `action` filter of listAuditEvents: the actions "
            "the log holds, since features record actions of their own.",
        )},
    }


def _events_path(event_types: EventTypes) -> dict[str, Schema]:
    return {
        "/api/v1/events": {"get": operation(
            "getEventStream", "The live event stream (WebSocket)", "events",
            {"101": {
                "description": "Switching Protocols: the WebSocket is open; the messages are "
                "described above (`EventStreamMessage`, `BusEvent`).",
                "headers": WEBSOCKET_HEADERS,
            },
             "400": NOT_AN_UPGRADE,
             **errors(401, 403, 422)},
            parameters=[query(
                "after", {"type": "integer", "minimum": 0, "maximum": 2**62},
                "The last sequence number seen: every later event is sent first. Without "
                "it, only events from now on.",
            )],
            description=events_description(event_types)
            + "\n\n403 for a calendar token; 422 for an account bound to no endpoint that "
            "is not staff, or a bad `after`.",
        )},
    }


def part(event_types: EventTypes, event_data: Mapping[str, Schema]) -> ApiPart:
    """The core's paths and components, given every feature's event types and data keys."""
    return ApiPart(
        paths=_account_paths() | _roster_paths() | _events_path(event_types),
        models=(LoginRequest, UserCreate, UserUpdate, PasswordReset, EndpointTokenCreate,
                Health, LoginResponse, Me, Ok, User, UserList, PasswordResetDone, Endpoint,
                EndpointList, Token, TokenCreated, TokenList, AuditEventList, AuditActionList,
                Error, InvalidError, RateLimitedError),
        schemas={"BusEvent": _bus_event(event_types, event_data),
                 "EventStreamMessage": EVENT_STREAM_MESSAGE},
        parameters={
            "UserId": {"name": "id", "in": "path", "required": True, "schema": ID},
            "TokenId": {"name": "id", "in": "path", "required": True, "schema": ID},
        },
        responses=ERROR_RESPONSES,
    )
