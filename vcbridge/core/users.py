"""User accounts: creation and changes, shared by the API and the command line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.api import responses
from vcbridge.core.audit import Actor, record
from vcbridge.core.auth.passwords import Passwords, generate_password, password_problem
from vcbridge.core.db.models import ApiToken, Endpoint, Role, TokenScope, User
from vcbridge.core.http.render import body_of


class UserError(Exception):
    """The account change is invalid (422) or clashes with an existing name (409);
    `field` names the request field at fault (the API's `details`)."""

    def __init__(self, message: str, field: str, *, clash: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.clash = clash


def user_json(user: User) -> dict[str, Any]:
    """A user as the API shows it (never the password hash), JSON-ready for the audit log."""
    body: dict[str, Any] = body_of(responses.User.of(user))
    return body


async def _endpoint(session: AsyncSession, role: Role, code: str | None) -> Endpoint | None:
    if role is Role.OPERATOR and code is None:
        raise UserError("an operator must be bound to an endpoint", "endpoint")
    if role is not Role.OPERATOR and code is not None:
        raise UserError("only operators are bound to an endpoint", "endpoint")
    if code is None:
        return None
    endpoint = await session.scalar(
        select(Endpoint).where(Endpoint.code == code, Endpoint.active.is_(True))
    )
    if endpoint is None:
        raise UserError(f"unknown endpoint {code!r}", "endpoint")
    return endpoint


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    endpoint_code: str | None,
    full_name: str,
    actor: Actor,
    now: datetime,
    passwords: Passwords,
) -> User:
    """Create an account with a hashed password, audited."""
    if problem := password_problem(password):
        raise UserError(problem, "password")
    endpoint = await _endpoint(session, role, endpoint_code)
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} already exists", "username", clash=True)
    user = User(
        username=username,
        password_hash=await passwords.hash(password),
        role=role,
        endpoint=endpoint,
        full_name=full_name,
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await record(session, actor, "user.create", "user", user.id, None, user_json(user), now)
    return user


async def update_user(
    session: AsyncSession,
    user: User,
    changes: dict[str, Any],
    actor: Actor,
    now: datetime,
    passwords: Passwords,
) -> User:
    """Change an account; a new password, role or deactivation ends its sessions."""
    before = user_json(user)
    role = Role(changes["role"]) if changes.get("role") else user.role
    code = changes.get("endpoint", user.endpoint.code if user.endpoint else None)
    if role is not Role.OPERATOR and "endpoint" not in changes:
        code = None
    user.endpoint = await _endpoint(session, role, code)
    user.role = role
    if changes.get("password") is not None:
        if problem := password_problem(changes["password"]):
            raise UserError(problem, "password")
        user.password_hash = await passwords.hash(changes["password"])
    if changes.get("full_name") is not None:
        user.full_name = changes["full_name"]
    if changes.get("active") is not None:
        user.active = changes["active"]
    user.updated_at = now
    if {"password", "role", "endpoint", "active"} & changes.keys():
        await revoke_sessions(session, user.id, now)
    await session.flush()
    await record(session, actor, "user.update", "user", user.id, before, user_json(user), now)
    return user


async def reset_password(
    session: AsyncSession,
    user: User,
    password: str | None,
    actor: Actor,
    now: datetime,
    passwords: Passwords,
) -> str | None:
    """Give an account a new password chosen by an administrator, or a generated one
    when `password` is None (returned, to be handed over once); ends its sessions.

    Audited as its own action (`user.password_reset`), never with the password, so the
    log tells a reset from any other change of the account."""
    generated = generate_password() if password is None else None
    new_password = generated or password or ""
    if problem := password_problem(new_password):
        raise UserError(problem, "password")
    user.password_hash = await passwords.hash(new_password)
    user.updated_at = now
    ended = await revoke_sessions(session, user.id, now)
    await session.flush()
    await record(session, actor, "user.password_reset", "user", user.id, None,
                 {"username": user.username, "generated": generated is not None,
                  "sessions_ended": ended}, now)
    return generated


async def revoke_sessions(session: AsyncSession, user_id: int, now: datetime) -> int:
    """Revoke every login token of a user not yet revoked; how many that was."""
    tokens = await session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user_id,
            ApiToken.scope == TokenScope.LOGIN,
            ApiToken.revoked_at.is_(None),
        )
    )
    count = 0
    for token in tokens:
        token.revoked_at = now
        count += 1
    return count
