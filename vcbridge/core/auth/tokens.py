"""Opaque bearer tokens: random secrets of which only the SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import ApiToken, Endpoint, TokenScope, User

TOKEN_PREFIX = {TokenScope.LOGIN: "vcs_", TokenScope.AGENT: "vca_", TokenScope.CALENDAR: "vcc_"}


def token_hash(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_for(secret: str) -> str:
    """The CSRF value that goes with a session token.

    Only a page that can read the login answer (same origin) knows it; a
    cross-site form riding on the cookie cannot."""
    return hashlib.sha256(b"csrf:" + secret.encode()).hexdigest()[:32]


async def issue_token(
    session: AsyncSession,
    scope: TokenScope,
    now: datetime,
    *,
    user_id: int | None = None,
    endpoint_id: int | None = None,
    lifetime: timedelta | None = None,
    label: str = "",
    created_by: str = "",
) -> tuple[str, ApiToken]:
    """Create a token; returns the secret (shown once) and its row."""
    secret = TOKEN_PREFIX[scope] + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=token_hash(secret),
        scope=scope,
        user_id=user_id,
        endpoint_id=endpoint_id,
        label=label,
        created_at=now,
        expires_at=now + lifetime if lifetime else None,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return secret, row


@dataclass(frozen=True)
class Resolved:
    """A valid token's caller, and until when the token is valid (None: no expiry)."""

    principal: Principal
    expires_at: datetime | None


# One query for any token: its row, the user (login tokens) and the endpoint (the
# endpoint of an agent or calendar token, or the user's own endpoint).
_USER_ENDPOINT = aliased(Endpoint)
_RESOLVE = (
    select(ApiToken.id, ApiToken.scope, ApiToken.revoked_at, ApiToken.expires_at,
           User.id, User.username, User.role, User.active, _USER_ENDPOINT.id,
           _USER_ENDPOINT.code, Endpoint.id, Endpoint.code, Endpoint.active)
    .outerjoin(User, User.id == ApiToken.user_id)
    .outerjoin(_USER_ENDPOINT, _USER_ENDPOINT.id == User.endpoint_id)
    .outerjoin(Endpoint, Endpoint.id == ApiToken.endpoint_id)
)


async def resolve(session: AsyncSession, secret: str, now: datetime) -> Resolved | None:
    """The caller a token stands for, or None if unknown, expired, revoked or disabled."""
    if len(secret) > 200:
        return None
    row = (await session.execute(
        _RESOLVE.where(ApiToken.token_hash == token_hash(secret)))).first()
    if row is None:
        return None
    (token_id, scope, revoked_at, expires_at, user_id, username, role, user_active,
     user_endpoint_id, user_endpoint_code, endpoint_id, endpoint_code, endpoint_active) = row
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    if scope is TokenScope.LOGIN:
        if user_id is None or not user_active:
            return None
        return Resolved(Principal(
            name=username, scope=scope, token_id=token_id, role=role, user_id=user_id,
            endpoint_id=user_endpoint_id, endpoint_code=user_endpoint_code,
        ), expires_at)
    if endpoint_id is None or not endpoint_active:
        return None
    return Resolved(Principal(
        name=f"endpoint:{endpoint_code}", scope=scope, token_id=token_id,
        endpoint_id=endpoint_id, endpoint_code=endpoint_code,
    ), expires_at)


async def resolve_token(session: AsyncSession, secret: str, now: datetime) -> Principal | None:
    """The caller a token stands for, or None if unknown, expired, revoked or disabled."""
    resolved = await resolve(session, secret, now)
    return resolved.principal if resolved else None
