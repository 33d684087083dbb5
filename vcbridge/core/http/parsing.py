"""Reading request bodies and query strings into validated models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from vcbridge.core.http.errors import ApiError, bad_request, invalid

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `[{"field", "problem"}]` for the error contract."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


async def read_body(request: web.Request) -> bytes:
    """The raw JSON body; 415 if not JSON, 413 if larger than the configured limit."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return await request.read()  # aiohttp enforces client_max_size -> 413


async def read_model(request: web.Request, model: type[ModelT]) -> ModelT:
    """The JSON body validated against `model`: 400 if malformed, 422 if invalid."""
    return parse_model(await read_body(request), model)


def parse_model(raw: bytes | str, model: type[ModelT]) -> ModelT:
    """JSON text validated against `model`: 400 if malformed, 422 if invalid.

    Validation is strict (no "5" for 5) and unknown fields are refused, so a
    typo in a field name is an error rather than silently ignored."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["type"] == "json_invalid":
                raise bad_request(f"malformed JSON: {err['msg']}") from None
            if err["type"] == "model_type" and not err["loc"]:
                raise invalid("the body must be a JSON object") from None
        details = validation_details(exc)
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise invalid(f"{first['field']}: {first['problem']}{more}", details) from None


def query_datetime(request: web.Request, name: str) -> datetime | None:
    """An RFC 3339 query parameter with an offset, or None when absent."""
    text = request.query.get(name)
    if text is None:
        return None
    # An unencoded "+07:00" arrives as " 07:00" (form decoding): take it back.
    text = re.sub(r" ([0-9]{2}:[0-9]{2})$", r"+\1", text)
    # RFC 3339 exactly, as the document says (fromisoformat alone takes other ISO 8601
    # forms, such as 20261130T0800+0700, and refuses a lower-case "z").
    if not _RFC3339.match(text):
        if _RFC3339.match(text + "Z"):
            raise invalid(f"query parameter {name!r}: needs a UTC offset, e.g. +07:00")
        raise invalid(f"query parameter {name!r}: not an RFC 3339 date-time")
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        raise invalid(f"query parameter {name!r}: not an RFC 3339 date-time") from None
    if not 1900 <= value.year <= 9000:  # keeps the range arithmetic from overflowing
        raise invalid(f"query parameter {name!r}: must be between the years 1900 and 9000")
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"query parameter {name!r}: not an integer") from None
    if not low <= value <= high:
        raise invalid(f"query parameter {name!r}: must be between {low} and {high}")
    return value


def path_int(request: web.Request, name: str, what: str) -> int:
    """An integer id in the path; 404 ("no `what` ...") when it cannot be one."""
    text = request.match_info[name]
    # ASCII digits only ("²" is a digit to str.isdigit) and within the id columns' range.
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        raise ApiError(404, "not_found", f"no {what} {text}")
    return int(text)
