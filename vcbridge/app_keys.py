"""Typed keys for the state the application and each request carry."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from aiohttp import web

from vcbridge.auth.login_limiter import LoginLimiter
from vcbridge.auth.passwords import Passwords
from vcbridge.auth.principal import Principal
from vcbridge.auth.token_cache import AgentTokenCache
from vcbridge.clock import Clock
from vcbridge.db.engine import Database
from vcbridge.events import EventBus
from vcbridge.settings import Settings

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
