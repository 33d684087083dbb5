"""Resolve the caller of each request from its bearer token or session cookie.

Handlers then call `require_principal` / `require_permission`. A request
authenticated by cookie must carry the matching X-CSRF-Token header on any
unsafe method, so another site cannot ride on the cookie; and a WebSocket upgrade
or a write riding on the cookie must come from an allowed page origin
(`vcbridge/core/http/origin.py`), so another origin of the same site cannot either."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web
from aiohttp.typedefs import Handler

from vcbridge.core.app_keys import AUTH_FAILURE, CLOCK, DATABASE, PRINCIPAL, SETTINGS, TOKEN_CACHE
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.auth.tokens import csrf_for, resolve, token_hash
from vcbridge.core.db.models import TokenScope
from vcbridge.core.http.errors import ApiError, forbidden, unauthorized
from vcbridge.core.http.origin import is_websocket_upgrade, origin_allowed

SESSION_COOKIE = "vcbridge_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Logging in must work whatever stale session cookie the browser still holds.
COOKIE_EXEMPT_PATHS = frozenset({"/api/v1/auth/login"})


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller (if any valid credential came) to the request."""
    secret = _bearer(request)
    from_cookie = False
    if (
        secret is None
        and request.path not in COOKIE_EXEMPT_PATHS
        and (cookie := request.cookies.get(SESSION_COOKIE))
    ):
        secret, from_cookie = cookie, True
        _check_origin(request)
    if secret is not None:
        principal = await _principal(request, secret)
        if principal is None:
            # Public routes still work; protected ones answer 401 with this reason.
            request[AUTH_FAILURE] = "invalid, expired or revoked token"
        else:
            if from_cookie and request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent, csrf_for(secret)):
                    raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
            request[PRINCIPAL] = principal
    return await handler(request)


def _check_origin(request: web.Request) -> None:
    """Refuse (403, before any look-up of the session) a cookie-authenticated WebSocket
    upgrade from a page of a foreign origin, or without `Origin` (every browser sends
    one on a handshake); and a cookie-authenticated write whose `Origin` is foreign (a
    write without `Origin` is left to the CSRF token: older clients omit it)."""
    upgrade = is_websocket_upgrade(request)
    if not upgrade and (request.method in SAFE_METHODS or "Origin" not in request.headers):
        return
    if not origin_allowed(request, request.app[SETTINGS].allowed_origins):
        sent = request.headers.get("Origin")
        raise ApiError(
            403, "origin_not_allowed",
            "this request rides on the session cookie but comes from a page of another "
            "origin (or names none); open the page from the service's own address, or "
            "add its origin to allowed_origins",
            {"origin": sent[:200] if sent is not None else None},
        )


async def _principal(request: web.Request, secret: str) -> Principal | None:
    """The caller of `secret`: from the agent-token cache, or from the database."""
    cache, now = request.app[TOKEN_CACHE], request.app[CLOCK].now()
    hashed = token_hash(secret)
    principal = cache.get(hashed, now)
    if principal is None:
        async with request.app[DATABASE].read() as session:
            resolved = await resolve(session, secret, now)
        if resolved is not None:
            cache.put(hashed, resolved)
            principal = resolved.principal
    return principal


def require_principal(request: web.Request, *, calendar_ok: bool = False) -> Principal:
    """The caller; 401 if anonymous. Calendar tokens only pass where `calendar_ok`."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise unauthorized(request.get(AUTH_FAILURE, "authentication required"))
    if principal.scope is TokenScope.CALENDAR and not calendar_ok:
        raise forbidden("a calendar token only reads the calendar feed")
    return principal


def require_permission(request: web.Request, permission: Permission) -> Principal:
    """The caller, if its role grants `permission`; 401/403 otherwise."""
    principal = require_principal(request)
    if not principal.can(permission):
        raise forbidden()
    return principal


def remote_of(request: web.Request) -> str:
    """The client address, for the audit log and the login limiter.

    The TCP peer, unless the peer is one of `trusted_proxies`: then the
    right-most X-Forwarded-For address that is not a trusted proxy. A client
    may write anything into the header, but only to the left of what the
    proxies append, so with no trusted proxy the header is ignored."""
    peer = request.remote or ""
    settings = request.app.get(SETTINGS)
    trusted = settings.trusted_proxies if settings is not None else []
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", ())
            for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            address = ip_address(hop)
        except ValueError:
            break  # junk is not an address a proxy wrote: keep the last good hop
        client = str(address)
        if not _trusted(client, trusted):
            break
    return client[:64]


def _trusted(address: str, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed: IPv4Address | IPv6Address = ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed.version == net.version and parsed in net for net in networks)
