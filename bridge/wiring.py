"""Wires the bridge into the application: ICE settings, the room registry, signaling,
test calls, recordings and, on PostgreSQL, this process's membership of the bridge
nodes."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from bridge import preflight_echo, recordings_api, signaling
from bridge.ice_policy import allowed_networks, restrict_host_addresses, rtc_configuration
from bridge.node_membership import NODE, NodeIdentity, NodeMembership
from bridge.peer_session import IceSettings
from bridge.room import RoomHooks
from bridge.rooms import RoomRegistry
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS
from vcbridge.core.settings import Settings


def ice_settings(settings: Settings) -> IceSettings:
    """The ICE settings of this process (also restricts aioice's host addresses)."""
    restrict_host_addresses(settings.ice_host_addresses)
    return IceSettings(
        configuration=rtc_configuration(settings.ice_servers),
        remote_networks=allowed_networks(settings.ice_host_addresses),
    )


def node_identity(settings: Settings) -> NodeIdentity:
    """This node's identity from the settings (`vcbridge serve` and `bridge-node` fill
    node_id and node_advertise_url from where they listen; an application made without
    them, as in tests, gets a unique id)."""
    return NodeIdentity(
        node_id=settings.node_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}",
        url=settings.node_advertise_url,
        capacity_ports=settings.node_capacity_ports or settings.max_participant_ports,
        heartbeat_seconds=settings.node_heartbeat_seconds,
    )


def setup(app: web.Application, settings: Settings, hooks: RoomHooks) -> RoomRegistry:
    """Add the signaling, recordings and page routes and the room registry's lifetime
    to `app` (and, on PostgreSQL, the node membership: `NODE`)."""
    registry = RoomRegistry(ice_settings(settings), hooks,
                            frame_ms=settings.bridge_audio_frame_ms,
                            recordings_dir=settings.effective_recordings_dir,
                            joins_per_minute=settings.signaling_joins_per_minute)
    signaling.setup_routes(app, registry)
    preflight_echo.setup_routes(app, registry.ice)
    recordings_api.setup_routes(app, settings.effective_recordings_dir)
    identity = node_identity(settings)

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        registry.start(app[EVENT_BUS])
        membership = None
        if settings.runs_nodes:
            membership = NodeMembership(app[DATABASE], app[EVENT_BUS], app[CLOCK], identity,
                                        registry, member="bridge" in settings.roles,
                                        draining=settings.node_draining)
            await membership.start()
            app[NODE] = membership
        yield
        if membership is not None:
            await membership.stop()
        await registry.stop()

    app.cleanup_ctx.append(rooms_ctx)
    return registry
