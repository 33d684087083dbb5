"""The pieces of the OpenAPI document every feature uses to describe its routes.

Each feature contributes an `ApiPart`: its paths, the pydantic models of its
request and response bodies (their JSON Schema is pydantic's own), and what
it adds to the shared components. The composition root (vcbridge/openapi.py)
only assembles the parts; no response shape is written out by hand, so the
document cannot drift from what handlers render (vcbridge/core/http/render.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from vcbridge.core.http.auth_middleware import CSRF_HEADER
from vcbridge.core.http.json_schema import URL_TEXT_PATTERN
from vcbridge.core.http.parsing import MAX_ID
from vcbridge.core.roster import CODE_PATTERN

JSON = "application/json"
Schema = dict[str, Any]

# Authentication: a bearer token (login, agent or calendar scope) or the session
# cookie set by login (then unsafe methods need the X-CSRF-Token header).
AUTHENTICATED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
PUBLIC: list[dict[str, list[str]]] = []

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


@dataclass(frozen=True)
class ApiPart:
    """One feature's share of the document."""

    paths: Mapping[str, Schema]
    # Request and response bodies: each becomes components/schemas/<class name>.
    models: tuple[type[BaseModel], ...] = ()
    # Components that are no body model (WebSocket messages), by name.
    schemas: Mapping[str, Schema] = field(default_factory=dict)
    parameters: Mapping[str, Schema] = field(default_factory=dict)
    responses: Mapping[str, Schema] = field(default_factory=dict)
    # Event types of the event stream: name -> (meaning, `data` keys always present).
    event_types: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # The `data` keys of those events (properties of BusEvent's `data`).
    event_data: Mapping[str, Schema] = field(default_factory=dict)


def ref(name: str) -> Schema:
    """A reference to components/schemas/<name>."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], *, required: list[str] | None = None,
        description: str = "", closed: bool = True) -> Schema:
    """A JSON object schema, for what no body model describes (WebSocket messages, events)."""
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


def model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Schema]:
    """Each model's JSON Schema (pydantic's own), the nested models hoisted beside it."""
    schemas: dict[str, Schema] = {}

    def put(name: str, definition: Schema) -> None:
        if schemas.setdefault(name, definition) != definition:
            raise RuntimeError(f"two different schemas named {name}")

    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            put(name, definition)
        put(model.__name__, schema)
    return schemas


def json_content(body: type[BaseModel] | Schema, description: str,
                 headers: dict[str, Any] | None = None) -> Schema:
    """A JSON response: `body` a model (by reference) or a schema."""
    schema = ref(body.__name__) if isinstance(body, type) else body
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def error(description: str, schema: str = "Error", headers: dict[str, Any] | None = None
          ) -> Schema:
    """An error response in the error contract (schema `Error` or a refinement)."""
    return json_content(ref(schema), description, headers)


ERROR_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               409: "Conflict", 413: "TooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
               429: "RateLimited"}


def errors(*statuses: int, conflict: str = "Conflict") -> dict[str, Schema]:
    """References to the shared error responses of these statuses."""
    names = ERROR_NAMES | {409: conflict}
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}


def param(name: str) -> Schema:
    """A reference to components/parameters/<name>."""
    return {"$ref": f"#/components/parameters/{name}"}


def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


CSRF = param("CsrfToken")
TIME_RANGE = [
    query("from", QUERY_TIME, "Only from this time on (RFC 3339 with offset)."),
    query("to", QUERY_TIME, "Only before this time (RFC 3339 with offset; after "
          "`from`, else 422)."),
]
LOCATION = {"Location": {"schema": {"type": "string"},
                         "description": "The URL of the new resource."}}
WEBSOCKET_HEADERS = {
    "Upgrade": {"schema": {"const": "websocket"}},
    "Connection": {"schema": {"type": "string", "examples": ["upgrade"]}},
    "Sec-WebSocket-Accept": {"schema": {"type": "string"}},
}
NOT_AN_UPGRADE = error("Not a WebSocket upgrade request (code bad_request).")


def operation(operation_id: str, summary: str, tag: str, responses: dict[str, Any], *,
              public: bool = False, parameters: list[Schema] | None = None,
              body: type[BaseModel] | str | None = None, description: str = "") -> Schema:
    """One operation; every one may answer 400 (a malformed request)."""
    result: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        result["description"] = description
    if parameters:
        result["parameters"] = parameters
    if body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(body if isinstance(body, str) else body.__name__)}},
        }
    result["security"] = PUBLIC if public else AUTHENTICATED
    # Any request can be malformed (vcbridge/core/http/errors.py); an operation may say more.
    responses = {"400": {"$ref": "#/components/responses/BadRequest"}} | responses
    result["responses"] = dict(sorted(responses.items()))
    return result


SHARED_PARAMETERS: dict[str, Schema] = {
    "EndpointCode": {"name": "code", "in": "path", "required": True, "schema": ENDPOINT_CODE,
                     "description": "The endpoint's code."},
    "ConferenceId": {"name": "id", "in": "path", "required": True, "schema": ID},
    "CsrfToken": {
        "name": CSRF_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
        "description": "Required when authenticated by the session cookie (the csrf_token "
        "from login or /auth/me); not needed with a bearer token.",
    },
}
