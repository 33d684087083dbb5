"""The error contract as models: `{"error": {"code", "message", "details"}}`.

`Error` renders every failure (vcbridge/core/http/errors.py); the refinements
below only narrow `details` for the document, for the statuses that carry some."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from vcbridge.core.http.render import ResponseModel

CODE_DESCRIPTION = (
    "Stable machine-readable code: bad_request, unauthorized, invalid_credentials, "
    "forbidden, csrf, origin_not_allowed, not_found, method_not_allowed, conflict, too_large, "
    "unsupported_media_type, invalid, rate_limited, internal."
)
ErrorCode = Annotated[str, Field(description=CODE_DESCRIPTION, examples=["invalid"])]
Message = Annotated[str, Field(description="Human-readable explanation.")]


class ErrorBody(ResponseModel):
    """What went wrong."""

    code: ErrorCode
    message: Message
    details: Annotated[Any, Field(
        description="Extra, code-specific data; absent when there is none.")] = None


class Error(ResponseModel):
    """The error contract of every failure."""

    error: ErrorBody

    @classmethod
    def of(cls, code: str, message: str, details: Any = None) -> Error:
        """The error; `details` left out when there are none."""
        extra = {} if details is None else {"details": details}
        return cls(error=ErrorBody(code=code, message=message, **extra))


class FieldProblem(ResponseModel):
    """One body validation error."""

    field: Annotated[str, Field(examples=["participants"])]
    problem: str


class RuleProblems(ResponseModel):
    """Booking rules broken."""

    problems: list[str]


class InvalidErrorBody(ErrorBody):
    """What is invalid."""

    details: Annotated[list[FieldProblem] | RuleProblems | SkipJsonSchema[None], Field(
        description="Body validation errors, or the booking rules broken.")] = None


class InvalidError(ResponseModel):
    """422: the request breaks a rule."""

    error: InvalidErrorBody


class RetryAfter(ResponseModel):
    """How long to wait."""

    retry_after_seconds: Annotated[int, Field(ge=1)]


class RateLimitedErrorBody(ErrorBody):
    """Too many requests."""

    details: RetryAfter | SkipJsonSchema[None] = None


class RateLimitedError(ResponseModel):
    """429: too many failed logins."""

    error: RateLimitedErrorBody
