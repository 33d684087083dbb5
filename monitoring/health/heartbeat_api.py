"""Heartbeats in: `POST /api/v1/endpoints/{code}/heartbeat` and the same heartbeat as a
message on the event stream. Checks the sender and the rate, reads a bounded body, hands
it to the monitor, and counts every refusal by reason.

Senders: the endpoint's agent (its agent token, either way), and the operator's `/join`
page while in a conference (a user bound to the endpoint, on the event stream it holds,
with `call.source: "browser"`)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitoring.health.model import ReasonCode
from monitoring.health.monitor import MONITOR, Accepted, HealthMonitor
from monitoring.health.store import EndpointInfo
from monitoring.health.wire import (
    AnyHeartbeat,
    Heartbeat,
    PageStreamHeartbeat,
    Source,
    StreamHeartbeat,
)
from monitoring.responses import HealthReason, HeartbeatAnswer
from vcbridge.core.app_keys import CLOCK, ZONE
from vcbridge.core.auth.principal import Principal
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import TokenScope
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import ApiError, forbidden
from vcbridge.core.http.parsing import parse_model
from vcbridge.core.http.render import render

# Why a heartbeat was refused (the keys of `HealthMonitor.dropped`).
DROP_REASONS = ("unauthorized", "forbidden", "rate_limited", "too_large", "malformed", "invalid")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"a heartbeat is at most {limit} bytes")


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_DROP_OF_STATUS = {400: "malformed", 401: "unauthorized", 403: "forbidden", 413: "too_large",
                   415: "malformed", 422: "invalid", 429: "rate_limited"}


async def post_heartbeat(request: web.Request) -> web.Response:
    """POST /api/v1/endpoints/{code}/heartbeat: the endpoint's agent reports."""
    monitor = request.app[MONITOR]
    try:
        principal = require_principal(request)
        code = request.match_info["code"]
        _check_agent(principal, code)
        _check_rate(monitor, principal, "agent", request.app[CLOCK].now())
        raw = await _read_limited(request, monitor.max_bytes)
        return render(await _accept(request, monitor, principal, code, raw))
    except ApiError as exc:
        monitor.drop(_DROP_OF_STATUS.get(exc.status, "other"))
        raise


async def stream_heartbeat(request: web.Request, principal: Principal, raw: str
                           ) -> dict[str, Any]:
    """A heartbeat on the event stream: `{"type": "heartbeat", "body": {...}}` (the body
    is the POST's), from the endpoint's agent or from its operator's page (`call.source`
    "browser"). Holding the stream already proves the token: no request, no lookup. The
    answer is the POST's without the endpoint and the times: `{"type": "heartbeat.ok",
    "state", "reasons", "clock_offset_seconds", "clock_skew", "interval_seconds"}`."""
    monitor = request.app[MONITOR]
    try:
        code = principal.endpoint_code or ""
        page = _is_operator(principal)
        if not page:
            _check_agent(principal, code)
        now = request.app[CLOCK].now()
        _check_rate(monitor, principal, "browser" if page else "agent", now)
        if len(raw) > monitor.max_bytes:
            raise _too_large(monitor.max_bytes)
        # The page reports its call (call.source "browser"); an agent's source is "agent".
        body: AnyHeartbeat = (parse_model(raw, PageStreamHeartbeat).body if page
                              else parse_model(raw, StreamHeartbeat).body)
        assert principal.endpoint_id is not None
        accepted = await monitor.heartbeat(EndpointInfo(principal.endpoint_id, code, "", ""),
                                           body)
        return _stream_answer(monitor, accepted, request.app[ZONE], now)
    except ApiError as exc:
        monitor.drop(_DROP_OF_STATUS.get(exc.status, "other"))
        raise


def _is_operator(principal: Principal) -> bool:
    """A user bound to an endpoint (an operator's page): it reports for that endpoint."""
    return principal.scope is TokenScope.LOGIN and principal.endpoint_id is not None


def _check_agent(principal: Principal, code: str) -> None:
    if principal.scope is not TokenScope.AGENT or principal.endpoint_id is None:
        raise forbidden("heartbeats are sent with the endpoint's agent token (an operator's "
                        "page sends them on its event stream)")
    if principal.endpoint_code != code:
        raise forbidden(f"this agent token belongs to {principal.endpoint_code}, not {code}")


def _check_rate(monitor: HealthMonitor, principal: Principal, source: Source,
                now: datetime) -> None:
    assert principal.endpoint_id is not None
    # The agent and the page each report every interval: each has its own gap.
    wait = monitor.too_soon(principal.endpoint_id, now, source)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited", "heartbeats come too often for this endpoint",
                       {"retry_after_seconds": seconds}, headers={"Retry-After": str(seconds)})


async def _accept(request: web.Request, monitor: HealthMonitor, principal: Principal,
                  code: str, raw: bytes) -> HeartbeatAnswer:
    """Parse, validate and take in a heartbeat; the answer."""
    assert principal.endpoint_id is not None
    body = parse_model(raw, Heartbeat)
    endpoint = EndpointInfo(principal.endpoint_id, code, "", "")
    accepted = await monitor.heartbeat(endpoint, body)
    return _answer(monitor, accepted, code, request.app[ZONE], monitor.clock.now())


def _stream_answer(monitor: HealthMonitor, accepted: Accepted, zone: ZoneInfo,
                   now: datetime) -> dict[str, Any]:
    """The event stream's `heartbeat.ok`: the POST's answer without the endpoint and the
    times, built as the JSON it is sent as (200 a second with a thousand endpoints: no
    response model and dump on the way, no times formatted that are not sent)."""
    health = accepted.health
    return {
        "type": "heartbeat.ok",
        "state": health.state.value,
        "reasons": [HealthReason.of(r, zone, now).model_dump(mode="json", exclude_unset=True)
                    for r in health.reasons],
        "clock_offset_seconds": round(accepted.clock_offset_seconds, 3),
        "clock_skew": ReasonCode.CLOCK_SKEW in health.codes,
        "interval_seconds": float(monitor.interval),
    }


def _answer(monitor: HealthMonitor, accepted: Accepted, code: str, zone: ZoneInfo,
            now: datetime) -> HeartbeatAnswer:
    """The answer to an accepted heartbeat (the event stream's is a part of it)."""
    return HeartbeatAnswer(
        endpoint=code,
        state=accepted.health.state,
        since=to_local_iso(accepted.since, zone),
        reasons=[HealthReason.of(r, zone, now) for r in accepted.health.reasons],
        clock_offset_seconds=round(accepted.clock_offset_seconds, 3),
        clock_skew=ReasonCode.CLOCK_SKEW in accepted.health.codes,
        interval_seconds=monitor.interval,
        server_time=to_local_iso(now, zone),
    )
