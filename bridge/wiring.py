"""Wires the bridge into the application: ICE settings, the room registry, signaling,
test calls and recordings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bridge import preflight_echo, recordings_api, signaling
from bridge.ice_policy import allowed_networks, restrict_host_addresses, rtc_configuration
from bridge.peer_session import IceSettings
from bridge.room import RoomHooks
from bridge.rooms import RoomRegistry
from vcbridge.core.app_keys import EVENT_BUS
from vcbridge.core.settings import Settings


def ice_settings(settings: Settings) -> IceSettings:
    """The ICE settings of this process (also restricts aioice's host addresses)."""
    restrict_host_addresses(settings.ice_host_addresses)
    return IceSettings(
        configuration=rtc_configuration(settings.ice_servers),
        remote_networks=allowed_networks(settings.ice_host_addresses),
        site_audio_frame_ms=settings.bridge_site_audio_frame_ms,
    )


def setup(app: web.Application, settings: Settings, hooks: RoomHooks) -> RoomRegistry:
    """Add the signaling, recordings and page routes and the room registry's lifetime
    to `app`."""
    registry = RoomRegistry(ice_settings(settings), hooks,
                            frame_ms=settings.bridge_audio_frame_ms,
                            recordings_dir=settings.effective_recordings_dir,
                            joins_per_minute=settings.signaling_joins_per_minute)
    signaling.setup_routes(app, registry)
    preflight_echo.setup_routes(app, registry.ice)
    recordings_api.setup_routes(app, settings.effective_recordings_dir)

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        registry.start(app[EVENT_BUS])
        yield
        await registry.stop()

    app.cleanup_ctx.append(rooms_ctx)
    return registry
