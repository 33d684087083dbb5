"""Response bodies of the core API (roster, users, tokens, audit, login, health)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from vcbridge.core.clock import to_local_iso
from vcbridge.core.db import models as db
from vcbridge.core.db.models import EndpointKind, Role, TokenScope
from vcbridge.core.http.auth_middleware import CSRF_HEADER
from vcbridge.core.http.render import EndpointCode, LocalTime, ResponseModel


class SipRoom(ResponseModel):
    """How the bridge dials a SIP room system (docs/sip.md)."""

    uri: Annotated[str, Field(examples=["sip:huyen-nga-son@sip.thanhhoa.gov.vn"])]
    transport: Annotated[str, Field(description='"" (the URI decides), udp, tcp or tls.')]
    srtp: Annotated[str, Field(description='"" (plain RTP), optional or mandatory (SDES).')]
    proxy: Annotated[str, Field(description='Outbound proxy of this room; "" for the '
                                            "gateway's.")]


class Endpoint(ResponseModel):
    """A conference endpoint (điểm cầu) of the roster."""

    code: EndpointCode
    name: Annotated[str, Field(examples=["Văn phòng UBND tỉnh"])]
    name_en: str
    kind: EndpointKind
    address: str
    contact_name: str
    contact_phone: str
    contact_email: str
    active: Annotated[bool, Field(description="False once retired from the roster.")]
    connection: Annotated[Literal["agent", "sip"], Field(
        description="agent: the site runs the endpoint agent (or a browser) and joins "
                    "itself; sip: a SIP room system the bridge dials.")]
    sip: Annotated[SipRoom | None, Field(description="Set when connection is sip.")]

    @classmethod
    def of(cls, endpoint: db.Endpoint) -> Endpoint:
        """The endpoint as the API shows it."""
        sip = (SipRoom(uri=endpoint.sip_uri, transport=endpoint.sip_transport,
                       srtp=endpoint.sip_srtp, proxy=endpoint.sip_proxy)
               if endpoint.sip_uri else None)
        return cls(code=endpoint.code, name=endpoint.name, name_en=endpoint.name_en,
                   kind=endpoint.kind, address=endpoint.address,
                   contact_name=endpoint.contact_name, contact_phone=endpoint.contact_phone,
                   contact_email=endpoint.contact_email, active=endpoint.active,
                   connection="sip" if sip else "agent", sip=sip)


class EndpointList(ResponseModel):
    """GET /api/v1/endpoints."""

    endpoints: list[Endpoint]


class User(ResponseModel):
    """A user account (never its password)."""

    id: int
    username: str
    role: Role
    endpoint: Annotated[EndpointCode | None, Field(
        description="The endpoint an operator is bound to; null for other roles.")]
    full_name: str
    active: bool

    @classmethod
    def of(cls, user: db.User) -> User:
        """The account as the API shows it."""
        return cls(id=user.id, username=user.username, role=user.role,
                   endpoint=user.endpoint.code if user.endpoint else None,
                   full_name=user.full_name, active=user.active)


class UserList(ResponseModel):
    """GET /api/v1/users."""

    users: list[User]


class PasswordResetDone(ResponseModel):
    """POST /api/v1/users/{id}/password-reset."""

    user: User
    generated_password: Annotated[str | None, Field(
        description="The password made by the service (shown in this answer only, to be "
                    "handed to the user), or null when the request gave one.")]


def _when(value: Any, zone: ZoneInfo) -> str | None:
    return to_local_iso(value, zone) if value else None


class Token(ResponseModel):
    """A token's metadata (never its secret)."""

    id: int
    scope: TokenScope
    label: str
    created_at: LocalTime | None
    created_by: str
    expires_at: LocalTime | None
    revoked_at: LocalTime | None

    @classmethod
    def fields_of(cls, token: db.ApiToken, zone: ZoneInfo) -> dict[str, Any]:
        """The metadata's fields (for this model and `TokenCreated`)."""
        return {"id": token.id, "scope": token.scope, "label": token.label,
                "created_at": _when(token.created_at, zone), "created_by": token.created_by,
                "expires_at": _when(token.expires_at, zone),
                "revoked_at": _when(token.revoked_at, zone)}

    @classmethod
    def of(cls, token: db.ApiToken, zone: ZoneInfo) -> Token:
        """The token's metadata as the API shows it."""
        return cls(**cls.fields_of(token, zone))


class TokenCreated(Token):
    """A token just issued, with its secret."""

    token: Annotated[str, Field(description="The secret: shown in this answer only.")]


class TokenList(ResponseModel):
    """GET /api/v1/endpoints/{code}/tokens."""

    tokens: list[Token]


class AuditEvent(ResponseModel):
    """One audit log entry."""

    id: int
    at: LocalTime
    actor: str
    role: Annotated[str, Field(
        description="The actor's role, endpoint-agent, anonymous or system.")]
    action: Annotated[str, Field(examples=["conference.create"])]
    target_type: Annotated[str, Field(examples=["conference"])]
    target_id: str
    before: Annotated[Any, Field(description="The target before the change (any JSON), "
                                             "or null.")]
    after: Annotated[Any, Field(description="The target after the change (any JSON), "
                                            "or null.")]
    remote: Annotated[str, Field(description="The client address.")]

    @classmethod
    def of(cls, event: db.AuditEvent, zone: ZoneInfo) -> AuditEvent:
        """The entry as the API shows it."""
        return cls(id=event.id, at=to_local_iso(event.at, zone), actor=event.actor,
                   role=event.role, action=event.action, target_type=event.target_type,
                   target_id=event.target_id, before=event.before, after=event.after,
                   remote=event.remote)


class AuditEventList(ResponseModel):
    """GET /api/v1/audit."""

    events: list[AuditEvent]


class AuditActionCount(ResponseModel):
    """An action found in the audit log, and how many entries it has."""

    action: Annotated[str, Field(examples=["conference.create"])]
    count: Annotated[int, Field(ge=1)]


class AuditActionList(ResponseModel):
    """GET /api/v1/audit/actions."""

    actions: list[AuditActionCount]


class LoginResponse(ResponseModel):
    """POST /api/v1/auth/login."""

    token: Annotated[str, Field(description="Bearer token (also set as cookie).")]
    token_type: Literal["Bearer"]
    expires_at: LocalTime
    csrf_token: Annotated[str, Field(
        description=f"Send as {CSRF_HEADER} on unsafe cookie requests.")]
    user: User


class Me(ResponseModel):
    """GET /api/v1/auth/me."""

    name: str
    role: Role | None
    scope: TokenScope
    endpoint: EndpointCode | None
    csrf_token: Annotated[str | SkipJsonSchema[None], Field(
        description="Only for a cookie session without bearer.")] = None


class Ok(ResponseModel):
    """A request that has nothing else to say."""

    ok: Literal[True]


class Health(ResponseModel):
    """GET /healthz."""

    status: Literal["ok", "unavailable"]
    database: Literal["sqlite", "postgresql", "unreachable"]
    version: str | SkipJsonSchema[None] = None
    time: LocalTime | SkipJsonSchema[None] = None
    detail: Annotated[str | SkipJsonSchema[None], Field(
        description="The error type (503 only).")] = None
    scheduler: Annotated[Literal["disabled", "leader", "standby"] | SkipJsonSchema[None], Field(
        description="The lifecycle scheduler in this process: off, running as leader, or "
        "waiting to become leader.")] = None
