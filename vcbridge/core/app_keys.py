"""Typed keys for the state the application and each request carry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from vcbridge.core.auth.login_limiter import LoginLimiter
from vcbridge.core.auth.passwords import Passwords
from vcbridge.core.auth.principal import Principal
from vcbridge.core.auth.token_cache import AgentTokenCache
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus
from vcbridge.core.presence import OpenStreams
from vcbridge.core.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
CLOCK = web.AppKey("clock", Clock)
ZONE = web.AppKey("zone", ZoneInfo)
EVENT_BUS = web.AppKey("event_bus", EventBus)
LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)
PASSWORDS = web.AppKey("passwords", Passwords)
TOKEN_CACHE = web.AppKey("token_cache", AgentTokenCache)

# Parts report their own state in /healthz: name -> callable giving a JSON value.
HEALTH_REPORTERS = web.AppKey("health_reporters", dict[str, Callable[[], object]])

PRINCIPAL = web.RequestKey("principal", Principal)
# Why a credential that came with the request was refused.
AUTH_FAILURE = web.RequestKey("auth_failure", str)

# Endpoints with an event stream open to this process (their presence is kept fresh).
OPEN_STREAMS = web.AppKey("open_streams", OpenStreams)
# Message types a client may send on the event stream, besides "ping": handler(request,
# principal, the message's text) -> the reply; an ApiError is sent back as an error. The
# handler validates the whole text, its "type" too: a message that names its type first
# reaches it unparsed.
StreamHandler = Callable[[web.Request, Principal, str], Awaitable[dict[str, Any]]]
STREAM_MESSAGES = web.AppKey("stream_messages", dict[str, StreamHandler])
