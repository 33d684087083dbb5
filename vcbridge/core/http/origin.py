"""Which web pages may use the session cookie: the `Origin` check.

SameSite=Strict keeps other *sites* from sending the cookie, but a page on another
origin of the same site (another host of the same registrable domain, another port)
still sends it. Browsers put `Origin` on every WebSocket handshake and on every
unsafe fetch, so the auth middleware asks `origin_allowed` before it lets such a
request ride on the cookie. Bearer-token clients (the agent, scripts) are not
checked: a foreign page cannot read or send a bearer token.

Allowed are the service's own origin and the `allowed_origins` setting. The own
origin is the `Origin` whose host and port equal the request's `Host` header: the
host the browser asked for, whatever address the service listens on, so it works
directly and behind a proxy that keeps `Host` (nginx: `proxy_set_header Host
$host`). Behind a TLS proxy the service sees plain HTTP while the page is
`https://`, so either scheme matches unless the connection itself is TLS.
`X-Forwarded-Host` is not trusted (any client can send it); a proxy that rewrites
`Host` needs its public origin in `allowed_origins`."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from aiohttp import web

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(text: str) -> str:
    """`text` as a browser serialises an origin (`scheme://host[:port]`, lower case,
    no default port); ValueError if it is not an http(s) origin."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an origin such as https://vc.example.gov.vn") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if (scheme not in _DEFAULT_PORTS or not host or parts.username is not None
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError(f"{text!r} is not an origin such as https://vc.example.gov.vn "
                         "(scheme http or https, a host, an optional port, nothing else)")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def _authority(host: str, scheme: str) -> str:
    """`host[:port]` in lower case, without the default port of `scheme`."""
    host = host.strip().lower()
    suffix = f":{_DEFAULT_PORTS[scheme]}"
    return host.removesuffix(suffix)


def is_websocket_upgrade(request: web.Request) -> bool:
    """Whether `request` asks to become a WebSocket."""
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


def origin_allowed(request: web.Request, allowed: Collection[str]) -> bool:
    """Whether the page that sent `request` (its `Origin` header) is the service's own
    or one of `allowed` (normalised origins). No `Origin`, or `null`: not allowed."""
    sent = request.headers.get("Origin")
    if sent is None:
        return False
    try:
        origin = normalise_origin(sent)
    except ValueError:
        return False  # "null" (a sandboxed frame, a file), or garbage
    if origin in allowed:
        return True
    scheme, _, authority = origin.partition("://")
    if request.secure and scheme != "https":
        return False
    host = request.headers.get("Host", "")
    return bool(host) and authority == _authority(host, scheme)
