"""Request bodies of the core API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from vcbridge.core.db.models import Role
from vcbridge.core.http.text import line_text
from vcbridge.core.roster import CODE_PATTERN

_STRICT = ConfigDict(extra="forbid", strict=True)
Username = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")]


class LoginRequest(BaseModel):
    """POST /api/v1/auth/login."""

    model_config = _STRICT
    username: Annotated[str, Field(min_length=1, max_length=64), line_text]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class UserCreate(BaseModel):
    """POST /api/v1/users."""

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True)
    username: Username
    password: Annotated[str, Field(max_length=256)]
    role: Role
    endpoint: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    full_name: Annotated[str, Field(max_length=200), line_text] = ""


class UserUpdate(BaseModel):
    """PATCH /api/v1/users/{id}."""

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True)
    password: Annotated[str, Field(max_length=256)] | None = None
    role: Role | None = None
    endpoint: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    full_name: Annotated[str, Field(max_length=200), line_text] | None = None
    active: bool | None = None


class EndpointTokenCreate(BaseModel):
    """POST /api/v1/endpoints/{code}/tokens."""

    model_config = ConfigDict(extra="forbid", strict=True)
    scope: Literal["agent", "calendar"] = "agent"
    label: Annotated[str, Field(max_length=200), line_text] = ""
