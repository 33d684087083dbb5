"""The unattended endpoint agent (`vcbridge agent`): a site's computer that joins its
conferences on its own.

It follows the controller's event stream (`event_follower.py`) with the
endpoint's agent token. At start (and when the stream was reset) it asks which
of its conferences are open or live and joins them. It joins a conference when
it is invited (`endpoint.invited`) or when the conference goes live, at most
once per conference, and leaves when the conference ends or is cancelled, or
when the bridge closes the room; after a drop it rejoins while the conference
still runs (`attendance.py`).

When a conference it is booked in opens (`conference.opened`, the setup lead
before the start) it makes a short test call through the bridge
(`preflight.py`) and sends the result in a heartbeat at once (`heartbeats.py`):
the pre-flight check that media flows both ways before the meeting.

It may be given several controller URLs and fails over between them
(`controller.py`); its media goes to the bridge node the conference is placed
on (`placement.py`, `attendance.py`).

Everything it receives is read and counted, then discarded (`received_media.py`).
This module puts the pieces together."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.agent.attendance import Attendances
from bridge.agent.call_stats import CallMeter
from bridge.agent.conference_session import ConferenceSessions
from bridge.agent.controller import Controller, describe
from bridge.agent.event_follower import EventFollower
from bridge.agent.heartbeats import HeartbeatReporter
from bridge.agent.media_sources import MediaSource
from bridge.agent.placement import Placement
from bridge.agent.preflight import PreflightCaller, PreflightResult
from bridge.agent.received_media import ReceivedMedia
from bridge.agent.settings import AgentSettings
from bridge.ice_policy import allowed_networks, restrict_host_addresses, rtc_configuration
from vcbridge.core.event_types import ROOM_CLOSING, EventType

log = logging.getLogger(__name__)

# A conference's room placed on a bridge node, or moved to another (docs/events.md).
ROOM_PLACED = EventType.CONFERENCE_ROOM_PLACED


class EndpointAgent:
    """Joins the endpoint's conferences on its own; `run()` until cancelled.

    `received` may be a subclass of `ReceivedMedia` (a benchmark timing the first
    frame); `on_event` may be overridden to watch the events."""

    def __init__(self, settings: AgentSettings, *, received: ReceivedMedia | None = None
                 ) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint
        self.media = MediaSource(settings.media, settings.endpoint,
                                 audio_device=settings.audio_device)
        configuration = rtc_configuration(settings.ice_servers)
        networks = allowed_networks(settings.ice_host_addresses)
        self.controller = Controller(settings)
        self.received = received if received is not None else ReceivedMedia()
        self.attendances = Attendances(
            ConferenceSessions(settings, self.media, configuration, networks,
                               self.received.consume),
            self.controller, settings.rejoin_retry)
        self.events = EventFollower(self.controller, self, settings.stream_retry)
        self.heartbeats = HeartbeatReporter(self.controller, self, self.events.send,
                                            settings.heartbeat_seconds)
        self.call_meter = CallMeter()
        self.preflight = PreflightCaller(
            settings, self.media, configuration, networks,
            attending=lambda: list(self.attendances.attending),
            on_result=self.heartbeats.report_now,
            media_url=self.attendances.media_url)

    # -- public --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and tests."""
        attending = self.attendances
        sessions = attending.sessions.counts
        last = self.preflight.last
        return {
            "endpoint": self.endpoint,
            "media": self.media.kind,
            "stream_connected": self.events.up,
            "controller": self.controller.server,
            "controller_failovers": self.controller.failovers,
            "last_seq": self.events.last_seq,
            "stream_connects": self.events.counts["stream_connects"],
            "stream_failures": self.events.counts["stream_failures"],
            "events": self.events.counts["events"],
            "attending": sorted(attending.attending),
            "joined": sorted(attending.joined()),
            "joins": sessions["joins"],
            "rejoins": attending.counts["rejoins"],
            "redirects": sessions["redirects"],
            "placements": {c: p.url for c, p in attending.placements.items()},
            "join_failures": sessions["join_failures"],
            "media_failures": sessions["media_failures"],
            "signaling_drops": sessions["signaling_drops"],
            "video_restarts": self.received.video_restarts,
            "left": attending.counts["left"],
            "received_frames": dict(self.received.frames),
            "test_calls": self.preflight.calls,
            "last_test_call": last.to_json() if last else None,
        }

    def summary(self) -> str:
        """One line for the log: the stream, the conferences, what arrived."""
        stats = self.stats()
        stream = (f"event stream up (last event {stats['last_seq']})"
                  if stats["stream_connected"] else "event stream DOWN")
        received = ", ".join(f"{slot} {count}" for slot, count
                             in sorted(stats["received_frames"].items())) or "nothing"
        return (f"{stream}; conferences: {self.attendances.describe()}; received frames: "
                f"{received}; joins {stats['joins']}, rejoins {stats['rejoins']}, "
                f"join failures {stats['join_failures']}, media failures "
                f"{stats['media_failures']}")

    async def run(self) -> None:
        """Follow the event stream and attend conferences until cancelled."""
        settings = self.settings
        # Process-wide: only the configured addresses are advertised (tests: loopback).
        restrict_host_addresses(settings.ice_host_addresses)
        self.controller.open()
        log.info("agent for endpoint %s starting: controller %s, media %s, ICE servers %s, "
                 "host addresses %s", self.endpoint, ", ".join(settings.servers),
                 self.media.spec,
                 ", ".join(settings.ice_servers) or "none",
                 ", ".join(settings.ice_host_addresses) or "all interfaces")
        background = [asyncio.create_task(self._summaries(), name="agent-summaries"),
                      asyncio.create_task(self.heartbeats.run(), name="agent-heartbeats")]
        try:
            await self.events.follow()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.preflight.stop()
            await self.attendances.stop()
            await self.received.stop()
            await self.controller.close()
            self.media.close()
            log.info("agent for endpoint %s stopped", self.endpoint)

    # -- what the event stream brings (event_follower.StreamListener) -----------------

    async def check_identity(self) -> None:
        """Refuse a token of another endpoint (AgentConfigError)."""
        await self.controller.check_identity()

    async def stream_connected(self, catch_up: bool) -> None:
        """The stream is up: waiting rejoins go now; join what runs if `catch_up`."""
        self.attendances.retry_now()
        if catch_up:
            await self._catch_up()

    def on_event(self, event: dict[str, Any]) -> None:
        """Join, test or leave as the event says."""
        kind = event.get("type")
        conference = event.get("conference")
        if not isinstance(conference, int):
            return
        data = event.get("data") or {}
        if kind == ROOM_PLACED:
            placement = Placement.from_json(data)
            if placement is not None:
                log.info("conference %s: its room is on bridge node %s (%s)", conference,
                         placement.node, placement.url)
                self.attendances.placed(conference, placement)
        elif kind == EventType.ENDPOINT_INVITED and event.get("endpoint") in (None,
                                                                            self.endpoint):
            self.attendances.placed(conference, Placement.from_json(data.get("bridge")))
            self.attendances.attend(conference, f"invited (attempt {data.get('attempt', '?')})")
        elif kind == EventType.CONFERENCE_LIVE:
            self.attendances.attend(conference, "the conference started")
        elif kind == EventType.CONFERENCE_OPENED:
            log.info("conference %s: the room is open; testing the line to the bridge, "
                     "joining when invited at the start", conference)
            self.preflight.start(conference)
        elif kind == EventType.CONFERENCE_ENDING_SOON:
            log.info("conference %s: ends in %s minutes", conference,
                     data.get("minutes_left", "?"))
        elif isinstance(kind, str) and kind in ROOM_CLOSING:
            self.attendances.leave(conference, ROOM_CLOSING[EventType(kind)])
        else:
            log.debug("event %s: %s for conference %s", event.get("seq"), kind, conference)

    def heartbeat_answered(self) -> None:
        """The controller took a heartbeat sent on the stream."""
        self.heartbeats.answered()

    def heartbeat_refused(self, too_soon: bool, detail: str) -> None:
        """The controller refused a heartbeat sent on the stream."""
        self.heartbeats.refused(too_soon, detail)

    # -- what a heartbeat reports (heartbeats.HealthSource) ---------------------------

    def camera_present(self) -> bool:
        """Whether the camera is there (probed now)."""
        return self.media.camera_present()

    async def microphone_present(self) -> bool:
        """Whether the microphone is there and not silent."""
        return await self.media.microphone_present()

    def joined_conferences(self) -> list[int]:
        """The conferences the agent is in, media up."""
        return self.attendances.joined()

    async def call_figures(self, conference: int, seconds: float) -> dict[str, Any] | None:
        """The call figures of `conference` over the last `seconds` (call_stats.py); None
        when not connected to it, or when the statistics are off (`call_stats`)."""
        attendance = self.attendances.attending.get(conference)
        client = attendance.client if attendance is not None else None
        if client is None or not self.settings.call_stats:
            return None
        try:
            return await self.call_meter.read(client.peer_connections,
                                              self.received.video_slots(conference), seconds)
        except Exception as exc:
            if client.ended.is_set() or any(pc.connectionState in ("closed", "failed")
                                            for pc in client.peer_connections):
                # The connection closed under the reading: no figures this time.
                log.info("conference %s: no call figures this time (%s)", conference,
                         describe(exc))
            else:
                log.exception("conference %s: reading the call's statistics failed",
                              conference)
            return None

    def frames_received(self) -> int:
        """Frames received so far, every slot of every conference."""
        return sum(self.received.frames.values())

    def last_preflight(self) -> PreflightResult | None:
        """The last pre-flight call's result, if any."""
        return self.preflight.last

    # -- helpers ----------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """Join the endpoint's conferences that are open or live right now."""
        running = await self.controller.running_conferences()
        if not running:
            log.info("no conference of %s is running now; waiting for the next one",
                     self.endpoint)
        for conference in running:
            self.attendances.placed(int(conference["id"]),
                                    Placement.from_json(conference.get("bridge")))
            self.attendances.attend(
                int(conference["id"]),
                f"it is {conference['status']} now ({conference.get('title', '')})")

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.settings.summary_seconds)
            log.info("summary: %s", self.summary())
