"""Opaque bearer tokens: random secrets of which only the SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.auth.principal import Principal
from vcbridge.db.models import ApiToken, Endpoint, TokenScope, User

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


async def resolve_token(session: AsyncSession, secret: str, now: datetime) -> Principal | None:
    """The caller a token stands for, or None if unknown, expired, revoked or disabled."""
    if len(secret) > 200:
        return None
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.scope is TokenScope.LOGIN:
        user = await session.get(User, row.user_id) if row.user_id is not None else None
        if user is None or not user.active:
            return None
        return Principal(
            name=user.username,
            scope=row.scope,
            token_id=row.id,
            role=user.role,
            user_id=user.id,
            endpoint_id=user.endpoint_id,
            endpoint_code=user.endpoint.code if user.endpoint else None,
        )
    endpoint = await session.get(Endpoint, row.endpoint_id) if row.endpoint_id else None
    if endpoint is None or not endpoint.active:
        return None
    return Principal(
        name=f"endpoint:{endpoint.code}",
        scope=row.scope,
        token_id=row.id,
        endpoint_id=endpoint.id,
        endpoint_code=endpoint.code,
    )
