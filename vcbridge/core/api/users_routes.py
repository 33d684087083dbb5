"""User administration (admin only)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from vcbridge.core.api import responses
from vcbridge.core.api.schemas import PasswordReset, UserCreate, UserUpdate
from vcbridge.core.app_keys import CLOCK, DATABASE, PASSWORDS
from vcbridge.core.auth.principal import Permission
from vcbridge.core.db.models import Role, User
from vcbridge.core.http.auth_middleware import remote_of, require_permission
from vcbridge.core.http.errors import ApiError, conflict, invalid, not_found
from vcbridge.core.http.parsing import path_int, read_model
from vcbridge.core.http.render import render
from vcbridge.core.users import UserError, create_user, reset_password, update_user


def _user_error(exc: UserError) -> ApiError:
    details = [{"field": exc.field, "problem": str(exc)}]
    return conflict(str(exc), details) if exc.clash else invalid(str(exc), details)


async def list_users(request: web.Request) -> web.Response:
    """GET /api/v1/users."""
    require_permission(request, Permission.MANAGE_USERS)
    async with request.app[DATABASE].read() as session:
        users = (await session.scalars(select(User).order_by(User.username))).all()
        return render(responses.UserList(users=[responses.User.of(u) for u in users]))


async def create(request: web.Request) -> web.Response:
    """POST /api/v1/users."""
    principal = require_permission(request, Permission.MANAGE_USERS)
    body = await read_model(request, UserCreate)
    now = request.app[CLOCK].now()
    try:
        async with request.app[DATABASE].write() as session:
            user = await create_user(
                session, username=body.username, password=body.password,
                role=Role(body.role), endpoint_code=body.endpoint, full_name=body.full_name,
                actor=principal.actor(remote_of(request)), now=now,
                passwords=request.app[PASSWORDS],
            )
            payload = responses.User.of(user)
    except UserError as exc:
        raise _user_error(exc) from None
    return render(payload, status=201, headers={"Location": f"/api/v1/users/{payload.id}"})


async def patch(request: web.Request) -> web.Response:
    """PATCH /api/v1/users/{id}: password, role, endpoint, name, active."""
    principal = require_permission(request, Permission.MANAGE_USERS)
    user_id = path_int(request, "id", "user")
    body = await read_model(request, UserUpdate)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise invalid("nothing to change")
    if nulls := sorted(k for k, v in changes.items() if v is None and k != "endpoint"):
        raise invalid(f"fields cannot be null: {', '.join(nulls)}")
    if principal.user_id == user_id and (changes.get("active") is False or
                                         changes.get("role", "admin") != "admin"):
        message = "you cannot deactivate or demote yourself"
        field = "active" if changes.get("active") is False else "role"
        raise invalid(message, [{"field": field, "problem": message}])
    now = request.app[CLOCK].now()
    try:
        async with request.app[DATABASE].write() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise not_found(f"no user {user_id}")
            await update_user(session, user, changes, principal.actor(remote_of(request)), now,
                              request.app[PASSWORDS])
            payload = responses.User.of(user)
    except UserError as exc:
        raise _user_error(exc) from None
    return render(payload)


async def password_reset(request: web.Request) -> web.Response:
    """POST /api/v1/users/{id}/password-reset: a new password, given or generated."""
    principal = require_permission(request, Permission.MANAGE_USERS)
    user_id = path_int(request, "id", "user")
    body = await read_model(request, PasswordReset)
    if "password" in body.model_fields_set and body.password is None:
        raise invalid("fields cannot be null: password")
    now = request.app[CLOCK].now()
    try:
        async with request.app[DATABASE].write() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise not_found(f"no user {user_id}")
            generated = await reset_password(session, user, body.password,
                                             principal.actor(remote_of(request)), now,
                                             request.app[PASSWORDS])
            payload = responses.PasswordResetDone(user=responses.User.of(user),
                                                  generated_password=generated)
    except UserError as exc:
        raise _user_error(exc) from None
    return render(payload)


def setup_routes(app: web.Application) -> None:
    """Register the user administration routes."""
    app.router.add_get("/api/v1/users", list_users)
    app.router.add_post("/api/v1/users", create)
    app.router.add_patch("/api/v1/users/{id}", patch)
    app.router.add_post("/api/v1/users/{id}/password-reset", password_reset)
