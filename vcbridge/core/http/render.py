"""Response bodies: every JSON answer is a pydantic model, rendered here.

The OpenAPI document describes the same models (vcbridge/core/http/openapi.py),
so what a handler answers and what the document promises are one thing."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from vcbridge.core.http.json_schema import Documented
from vcbridge.core.roster import CODE_PATTERN


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # An optional field is left out, never sent as null: its `None` default says nothing.
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class ResponseModel(BaseModel):
    """A response body: closed (no key the document does not name).

    A field with a default is optional in the document and left out of the answer
    unless the handler sets it (`exclude_unset`); a field without one is always there."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_no_null_defaults)


# A time as the API shows it: RFC 3339 in the province's zone (vcbridge.core.clock.to_local_iso).
LocalTime = Annotated[str, Documented(
    format="date-time",
    description="RFC 3339 in the province's time zone, e.g. 2026-11-30T08:00:00+07:00.",
    examples=["2026-11-30T08:00:00+07:00"],
)]
# An endpoint's code, as the roster has it.
EndpointCode = Annotated[str, Field(pattern=CODE_PATTERN, examples=["UBND-TINH"])]


def body_of(model: BaseModel) -> Any:
    """The JSON-ready body of a response model (also what the audit log keeps)."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def render(model: BaseModel, *, status: int = 200,
           headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with the model as its body."""
    return web.json_response(body_of(model), status=status, headers=headers)
