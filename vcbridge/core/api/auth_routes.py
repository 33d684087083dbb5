"""Login, logout and "who am I"."""

from __future__ import annotations

import math
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from vcbridge.core.api import responses
from vcbridge.core.api.responses import LoginResponse, Me, Ok
from vcbridge.core.api.schemas import LoginRequest
from vcbridge.core.app_keys import CLOCK, DATABASE, LOGIN_LIMITER, PASSWORDS, SETTINGS, ZONE
from vcbridge.core.audit import Actor, record
from vcbridge.core.auth.login_limiter import Reason, Refused
from vcbridge.core.auth.tokens import csrf_for, issue_token
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import ApiToken, TokenScope, User
from vcbridge.core.http.auth_middleware import SESSION_COOKIE, remote_of, require_principal
from vcbridge.core.http.errors import ApiError, forbidden
from vcbridge.core.http.parsing import read_model
from vcbridge.core.http.render import render


async def login(request: web.Request) -> web.Response:
    """POST /api/v1/auth/login: a bearer token, also set as the session cookie.

    The attempt is counted by the login limiter before the password is
    checked, and forgiven when it was right (vcbridge/core/auth/login_limiter.py)."""
    body = await read_model(request, LoginRequest)
    settings, database = request.app[SETTINGS], request.app[DATABASE]
    limiter, clock = request.app[LOGIN_LIMITER], request.app[CLOCK]
    remote = remote_of(request)
    verdict = await limiter.reserve(database, body.username, remote, clock)
    if isinstance(verdict, Refused):
        wait = max(1, math.ceil(verdict.retry_after))
        raise ApiError(
            429, "rate_limited", "too many failed logins; try again later",
            {"retry_after_seconds": wait}, headers={"Retry-After": str(wait)},
        )
    async with database.read() as session:
        found = await session.scalar(select(User).where(User.username == body.username))
    # The hash is checked outside any transaction: it takes tens of milliseconds.
    ok = await request.app[PASSWORDS].verify(
        found.password_hash if found else None, body.password
    )
    now = clock.now()
    if found is None or not ok or not found.active:
        limiter.failed()
        actor = Actor(body.username[:100], "anonymous", remote)
        async with database.write() as session:
            await record(session, actor, "auth.login_failed", "user", body.username[:64],
                         None, None, now)
            # Once per burst, not per attempt: the failure that starts a backoff or a limit.
            for reason in verdict.crossed(limiter.policy):
                if reason is Reason.BACKOFF:
                    await record(session, actor, "auth.login_backoff", "user",
                                 body.username[:64], None,
                                 {"failures": verdict.user_failures}, now)
                else:
                    await record(session, actor, "auth.login_address_limit", "address",
                                 remote[:64], None, {"failures": verdict.address_failures}, now)
        raise ApiError(401, "invalid_credentials", "wrong user name or password")
    lifetime = timedelta(hours=settings.login_token_hours)
    async with database.write() as session:
        await limiter.forgive(session, verdict)
        user = await session.get(User, found.id)
        if user is None or not user.active:  # deactivated while its password was checked
            raise ApiError(401, "invalid_credentials", "wrong user name or password")
        secret, token = await issue_token(
            session, TokenScope.LOGIN, now, user_id=user.id, lifetime=lifetime,
            label="login", created_by=user.username,
        )
        await record(session, Actor(user.username, user.role.value, remote),
                     "auth.login", "user", user.id, None, None, now)
    assert token.expires_at is not None
    response = render(LoginResponse(
        token=secret, token_type="Bearer",  # noqa: S106 (the scheme's name)
        expires_at=to_local_iso(token.expires_at, request.app[ZONE]),
        csrf_token=csrf_for(secret), user=responses.User.of(user),
    ))
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="Strict", path="/",
        secure=settings.cookie_secure, max_age=int(lifetime.total_seconds()),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """POST /api/v1/auth/logout: revoke the current login token."""
    principal = require_principal(request)
    if principal.scope is not TokenScope.LOGIN:
        raise forbidden("endpoint tokens are revoked by an admin, not logged out")
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].write() as session:
        token = await session.get(ApiToken, principal.token_id)
        if token is not None:
            token.revoked_at = now
            await record(session, principal.actor(remote_of(request)), "auth.logout",
                         "user", principal.user_id or 0, None, None, now)
    response = render(Ok(ok=True))
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    """GET /api/v1/auth/me: the caller, and the CSRF token for cookie sessions."""
    principal = require_principal(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    extra = ({"csrf_token": csrf_for(cookie)}
             if cookie and not request.headers.get("Authorization") else {})
    return render(Me(name=principal.name, role=principal.role, scope=principal.scope,
                     endpoint=principal.endpoint_code, **extra))


def setup_routes(app: web.Application) -> None:
    """Register the authentication routes."""
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_get("/api/v1/auth/me", me)
