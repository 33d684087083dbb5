"""The roster (read) and endpoint tokens: an admin manages every endpoint's agent and
calendar tokens; an operator the calendar tokens of its own endpoint (to subscribe its
calendar program to the endpoint's feed), never agent tokens, never another endpoint's."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.api.responses import Endpoint as EndpointOut
from vcbridge.core.api.responses import EndpointList, Token, TokenCreated, TokenList
from vcbridge.core.api.schemas import EndpointTokenCreate
from vcbridge.core.app_keys import CLOCK, DATABASE, TOKEN_CACHE, ZONE
from vcbridge.core.audit import Actor, record
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.auth.tokens import issue_token
from vcbridge.core.db.models import ApiToken, Endpoint, Role, TokenScope
from vcbridge.core.http.auth_middleware import remote_of, require_principal
from vcbridge.core.http.errors import forbidden, invalid, not_found
from vcbridge.core.http.parsing import path_int, read_model
from vcbridge.core.http.render import render


async def _endpoint(session: AsyncSession, code: str) -> Endpoint:
    endpoint = await session.scalar(select(Endpoint).where(Endpoint.code == code))
    if endpoint is None:
        raise not_found(f"no endpoint {code!r}")
    return endpoint


async def list_endpoints(request: web.Request) -> web.Response:
    """GET /api/v1/endpoints: the roster (`?include_retired=true` for all)."""
    require_principal(request)
    query = select(Endpoint).order_by(Endpoint.id)
    include_retired = request.query.get("include_retired", "false")
    if include_retired not in ("true", "false"):
        raise invalid("query parameter 'include_retired' must be 'true' or 'false'")
    if include_retired == "false":
        query = query.where(Endpoint.active.is_(True))
    async with request.app[DATABASE].read() as session:
        endpoints = (await session.scalars(query)).all()
    return render(EndpointList(endpoints=[EndpointOut.of(e) for e in endpoints]))


async def get_endpoint(request: web.Request) -> web.Response:
    """GET /api/v1/endpoints/{code}."""
    require_principal(request)
    async with request.app[DATABASE].read() as session:
        endpoint = await _endpoint(session, request.match_info["code"])
    return render(EndpointOut.of(endpoint))


def _token_manager(request: web.Request) -> Principal:
    """The caller, if it may manage some endpoint tokens (an admin, an operator)."""
    principal = require_principal(request)
    if not (principal.can(Permission.MANAGE_ENDPOINT_TOKENS) or _operator(principal)):
        raise forbidden()
    return principal


def _operator(principal: Principal) -> bool:
    return principal.role is Role.OPERATOR and principal.endpoint_id is not None


def _check_scope(principal: Principal, endpoint: Endpoint, scope: TokenScope | None) -> None:
    """403 unless `principal` may manage `endpoint`'s tokens of `scope` (None: listing)."""
    if principal.can(Permission.MANAGE_ENDPOINT_TOKENS):
        return
    if not principal.acts_for_endpoint(endpoint.id):
        raise forbidden("an operator manages its own endpoint's calendar tokens only")
    if scope is not None and scope is not TokenScope.CALENDAR:
        raise forbidden("an operator manages calendar tokens only")


async def issue_endpoint_token(
    session: AsyncSession, endpoint: Endpoint, scope: TokenScope, label: str,
    actor: Actor, now: datetime,
) -> tuple[str, ApiToken]:
    """Issue an agent or calendar token for one endpoint, audited (API and CLI)."""
    secret, token = await issue_token(
        session, scope, now, endpoint_id=endpoint.id, label=label, created_by=actor.name
    )
    await record(session, actor, "endpoint.token_issue", "endpoint", endpoint.code, None,
                 {"token_id": token.id, "scope": scope.value, "label": label}, now)
    return secret, token


async def create_token(request: web.Request) -> web.Response:
    """POST /api/v1/endpoints/{code}/tokens: the secret is in this answer only."""
    principal = _token_manager(request)
    body = await read_model(request, EndpointTokenCreate)
    scope = TokenScope(body.scope)
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].write() as session:
        endpoint = await _endpoint(session, request.match_info["code"])
        _check_scope(principal, endpoint, scope)
        secret, token = await issue_endpoint_token(
            session, endpoint, scope, body.label, principal.actor(remote_of(request)), now
        )
        payload = TokenCreated(**Token.fields_of(token, request.app[ZONE]), token=secret)
    return render(payload, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """GET /api/v1/endpoints/{code}/tokens (an operator: its calendar tokens only)."""
    principal = _token_manager(request)
    async with request.app[DATABASE].read() as session:
        endpoint = await _endpoint(session, request.match_info["code"])
        _check_scope(principal, endpoint, None)
        query = select(ApiToken).where(ApiToken.endpoint_id == endpoint.id)
        if not principal.can(Permission.MANAGE_ENDPOINT_TOKENS):
            query = query.where(ApiToken.scope == TokenScope.CALENDAR)
        tokens = (await session.scalars(query.order_by(ApiToken.id))).all()
    zone = request.app[ZONE]
    return render(TokenList(tokens=[Token.of(t, zone) for t in tokens]))


async def revoke_token(request: web.Request) -> web.Response:
    """DELETE /api/v1/endpoints/{code}/tokens/{id}: revoke at once."""
    principal = _token_manager(request)
    token_id = path_int(request, "id", "token")
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].write() as session:
        endpoint = await _endpoint(session, request.match_info["code"])
        _check_scope(principal, endpoint, None)
        token = await session.get(ApiToken, token_id)
        if token is None or token.endpoint_id != endpoint.id:
            raise not_found(f"no token {token_id} for endpoint {endpoint.code}")
        _check_scope(principal, endpoint, token.scope)
        if token.revoked_at is None:
            token.revoked_at = now
            await record(session, principal.actor(remote_of(request)), "endpoint.token_revoke",
                         "endpoint", endpoint.code, {"token_id": token.id}, None, now)
        payload = Token.of(token, request.app[ZONE])
    request.app[TOKEN_CACHE].forget_token(token_id)  # after the commit: no stale refill
    return render(payload)


def setup_routes(app: web.Application) -> None:
    """Register the roster and endpoint-token routes."""
    app.router.add_get("/api/v1/endpoints", list_endpoints)
    app.router.add_get("/api/v1/endpoints/{code}", get_endpoint)
    app.router.add_get("/api/v1/endpoints/{code}/tokens", list_tokens)
    app.router.add_post("/api/v1/endpoints/{code}/tokens", create_token)
    app.router.add_delete("/api/v1/endpoints/{code}/tokens/{id}", revoke_token)
