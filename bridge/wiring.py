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
from bridge.room_state_store import RoomStateStore
from bridge.rooms import RoomRegistry
from bridge.sip.dialer import SipDialer, SipReports
from bridge.sip.janus_gateway import JanusGateway, SipIdentity
from bridge.sip.options_probe import OptionsProber
from bridge.sip.room_legs import RoomSipLegs
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS
from vcbridge.core.settings import Settings
from vcbridge.core.sip_gateway_status import SIP_GATEWAY_PROBE, SIP_SITES_PROBE

SIP_GATEWAY = web.AppKey("sip_gateway", JanusGateway)
SIP_PROBER = web.AppKey("sip_prober", OptionsProber)


def ice_settings(settings: Settings) -> IceSettings:
    """The ICE settings of this process (also restricts aioice's host addresses)."""
    restrict_host_addresses(settings.ice_host_addresses)
    return IceSettings(
        configuration=rtc_configuration(settings.ice_servers),
        remote_networks=allowed_networks(settings.ice_host_addresses),
        site_audio_frame_ms=settings.bridge_site_audio_frame_ms,
    )


def sip_gateway(settings: Settings) -> JanusGateway | None:
    """The SIP gateway client of these settings, or None when none is configured."""
    if not settings.sip_gateway_url:
        return None
    identity = SipIdentity(settings.sip_identity, proxy=settings.sip_proxy,
                           register=settings.sip_register, secret=settings.sip_secret)
    return JanusGateway(settings.sip_gateway_url, identity,
                        incoming_helpers=settings.sip_incoming_helpers,
                        ready_calls=settings.sip_ready_calls,
                        call_timeout=settings.sip_call_timeout_seconds)


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


def setup(app: web.Application, settings: Settings, hooks: RoomHooks,
          sip_reports: SipReports | None = None) -> RoomRegistry:
    """Add the signaling, recordings and page routes and the room registry's lifetime
    to `app` (and, on PostgreSQL, the node membership: `NODE`); with a SIP gateway
    configured, its client and the SIP dialer too."""
    registry = RoomRegistry(ice_settings(settings), hooks,
                            frame_ms=settings.bridge_audio_frame_ms,
                            recordings_dir=settings.effective_recordings_dir,
                            joins_per_minute=settings.signaling_joins_per_minute)
    signaling.setup_routes(app, registry)
    preflight_echo.setup_routes(app, registry.ice)
    recordings_api.setup_routes(app, settings.effective_recordings_dir)
    identity = node_identity(settings)

    gateway = sip_gateway(settings)
    if gateway is not None:
        app[SIP_GATEWAY] = gateway
        app[SIP_GATEWAY_PROBE] = gateway
    prober = None
    if gateway is not None and settings.sip_probe_interval_seconds > 0:
        prober = OptionsProber(identity=settings.sip_identity, proxy=settings.sip_probe_proxy,
                               interval=settings.sip_probe_interval_seconds,
                               timeout=settings.sip_probe_timeout_seconds)
        app[SIP_PROBER] = prober
        app[SIP_SITES_PROBE] = prober

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        # Rooms keep their state in the database, held under this process's node id.
        registry.states = RoomStateStore(app[DATABASE], app[CLOCK], identity.node_id)
        dialer = None
        if gateway is not None and sip_reports is not None:
            dialer = SipDialer(gateway, app[DATABASE], RoomSipLegs(registry), sip_reports)
            registry.sip = dialer
            await gateway.start()
        registry.start(app[EVENT_BUS], follow_invitations=settings.runs_nodes)
        membership = None
        if settings.runs_nodes:
            membership = NodeMembership(app[DATABASE], app[EVENT_BUS], app[CLOCK], identity,
                                        registry, member="bridge" in settings.roles,
                                        draining=settings.node_draining)
            await membership.start()
            app[NODE] = membership
        if prober is not None:
            prober.start(app[DATABASE])
        yield
        if prober is not None:
            await prober.stop()
        if dialer is not None:
            await dialer.stop()
        if membership is not None:
            await membership.stop()
        await registry.stop()
        if gateway is not None:
            await gateway.stop()

    app.cleanup_ctx.append(rooms_ctx)
    return registry
