"""Request bodies of the core API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from vcbridge.core.auth.passwords import MAX_LENGTH, MIN_LENGTH
from vcbridge.core.db.models import Role
from vcbridge.core.http.json_schema import Documented
from vcbridge.core.http.text import line_text
from vcbridge.core.roster import CODE_PATTERN

_STRICT = ConfigDict(extra="forbid", strict=True)
Username = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")]
# The password policy (vcbridge.core.auth.passwords) checks a new password; stated for the document.
NewPassword = Annotated[str, Field(max_length=MAX_LENGTH), Documented(minLength=MIN_LENGTH)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A PATCH field that may be left out but not sent as null (null is refused with 422).
NOT_NULL: Any = Field(default=None, json_schema_extra=_no_default)


class LoginRequest(BaseModel):
    """POST /api/v1/auth/login."""

    model_config = _STRICT
    username: Annotated[str, Field(min_length=1, max_length=64), line_text]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class UserCreate(BaseModel):
    """POST /api/v1/users."""

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True)
    username: Username
    password: NewPassword
    role: Role
    endpoint: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    full_name: Annotated[str, Field(max_length=200), line_text] = ""


class UserUpdate(BaseModel):
    """PATCH /api/v1/users/{id}: at least one field; only `endpoint` may be null."""

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True,
                              json_schema_extra={"minProperties": 1})
    password: NewPassword | SkipJsonSchema[None] = NOT_NULL
    role: Role | SkipJsonSchema[None] = NOT_NULL
    endpoint: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    full_name: Annotated[str, Field(max_length=200), line_text] | SkipJsonSchema[None] = NOT_NULL
    active: bool | SkipJsonSchema[None] = NOT_NULL


class PasswordReset(BaseModel):
    """POST /api/v1/users/{id}/password-reset: the new password, or none to have one made."""

    model_config = _STRICT
    password: NewPassword | SkipJsonSchema[None] = NOT_NULL


class EndpointTokenCreate(BaseModel):
    """POST /api/v1/endpoints/{code}/tokens."""

    model_config = ConfigDict(extra="forbid", strict=True)
    scope: Literal["agent", "calendar"] = "agent"
    label: Annotated[str, Field(max_length=200), line_text] = ""
