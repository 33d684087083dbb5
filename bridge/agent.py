"""The unattended endpoint agent (`vcbridge agent`): a site's computer that joins its
conferences on its own.

It keeps a WebSocket to the controller's event stream (`/api/v1/events`) with
the endpoint's agent token, and resumes it with `?after=<last seq>` after any
cut, so no invitation is missed. At start (and when the stream was reset) it
asks which of its conferences are open or live and joins them. It joins a
conference when it is invited (`endpoint.invited`) or when the conference goes
live, at most once per conference, and leaves when the conference ends or is
cancelled, or when the bridge closes the room. If the media or the signaling
channel drops while the conference still runs, it rebuilds the whole site
client at once (aiortc has no ICE restart), with a short backoff.

When a conference it is booked in opens (`conference.opened`, the setup lead
before the start) it makes a short test call through the bridge
(`bridge/test_call_client.py`) and sends the result in a heartbeat at once:
the pre-flight check that media flows both ways before the meeting.

Everything it receives is read and counted, then discarded: aiortc's receive
queues are unbounded, so a track nobody reads would grow forever, and a
headless agent has no loudspeaker or screen to play it on."""

from __future__ import annotations

import asyncio
import colorsys
import contextlib
import fractions
import logging
import os
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from bridge.generated_media import VIDEO_CLOCK, ColourCardTrack, ToneTrack
from bridge.ice_policy import (
    allowed_networks,
    restrict_host_addresses,
    rtc_configuration,
)
from bridge.site_client import Received, SiteClient
from bridge.test_call_client import TestCallResult, run_test_call
from bridge.video_stall import read_video
from vcbridge import __version__
from vcbridge.core.event_types import ROOM_CLOSING, EventType
from vcbridge.core.settings import Settings, load_settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/events"
# Event stream reconnection: 0.5 s doubling to 30 s, with jitter.
STREAM_RETRY_FIRST = 0.5
STREAM_RETRY_MAX = 30.0
# Rejoining a running conference after a drop: quick, then slower.
REJOIN_FIRST = 0.2
REJOIN_MAX = 5.0
# A joined site whose media is not up by then is rebuilt.
MEDIA_CONNECT_TIMEOUT = 20.0
SUMMARY_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0  # how often the agent reports its health to the controller
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
RUNNING = ("open", "live")


class AgentConfigError(Exception):
    """The agent cannot work with this configuration (for example a token of
    another endpoint); retrying would not help."""


def jittered(delay: float) -> float:
    """A wait between half and all of `delay`, so many agents do not retry in step."""
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


def site_identity(code: str) -> tuple[float, tuple[int, int, int]]:
    """The test tone (Hz) and colour card of a site, derived from its code, so each
    site is recognisable by ear and by eye at the other end."""
    digest = zlib.crc32(code.encode())
    frequency = 300.0 + (digest % 40) * 15.0  # 300 .. 885 Hz
    hue = ((digest >> 8) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.85)
    return frequency, (round(r * 255), round(g * 255), round(b * 255))


# -- media sources --------------------------------------------------------------


class _Restamped(MediaStreamTrack):
    """A device's or file's track with timestamps that only go forward.

    A file played in a loop starts its timestamps again at every turn: the VP8
    encoder then refuses the frame (the sender's task dies and the picture
    freezes for the rest of the conference) and RTP timestamps would jump back.
    Audio is stamped by its sample count, video by the wall clock (90 kHz)."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._samples = 0
        self._start: float | None = None
        self._last = -1

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self._source.recv()
        if isinstance(frame, AudioFrame):
            frame.pts = self._samples
            frame.time_base = fractions.Fraction(1, frame.sample_rate)
            self._samples += frame.samples
        elif isinstance(frame, VideoFrame):
            now = time.monotonic()
            if self._start is None:
                self._start = now
            self._last = max(round((now - self._start) * VIDEO_CLOCK), self._last + 1)
            frame.pts = self._last
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class MediaSource:
    """The agent's camera and microphone.

    `testsrc`: a generated tone and colour card identifying the site (new
    tracks for each join). A device under `/dev/` (for example `/dev/video0`):
    the camera through v4l2 and the microphone through ALSA (`audio_device`).
    Anything else: a media file, played in a loop. Devices and files are
    opened when the first conference is joined, shared between conferences
    through a MediaRelay, and closed when the agent is in none."""

    def __init__(self, spec: str, endpoint: str, *, audio_device: str = "default",
                 video_size: str = "640x360", framerate: int = 15) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.audio_device = audio_device
        self.video_size = video_size
        self.framerate = framerate
        self._players: list[Any] = []
        self._relay: Any = None
        self._sources: tuple[MediaStreamTrack | None, MediaStreamTrack | None] = (None, None)
        self._users = 0

    @property
    def kind(self) -> str:
        if self.spec == "testsrc":
            return "testsrc"
        return "device" if self.spec.startswith("/dev/") else "file"

    def acquire(self) -> tuple[MediaStreamTrack | None, MediaStreamTrack | None]:
        """Tracks (audio, video) for one site client; give them back with `release`."""
        if self.kind == "testsrc":
            frequency, colour = site_identity(self.endpoint)
            return ToneTrack(frequency), ColourCardTrack(colour)
        if self._users == 0:
            self._open_players()
        self._users += 1
        audio, video = self._sources
        return (self._relay.subscribe(audio, buffered=False) if audio else None,
                self._relay.subscribe(video, buffered=False) if video else None)

    def release(self, tracks: tuple[MediaStreamTrack | None, MediaStreamTrack | None]) -> None:
        """Stop a site client's tracks; close the devices when nobody uses them."""
        for track in tracks:
            if track is not None:
                track.stop()
        if self.kind == "testsrc":
            return
        self._users = max(self._users - 1, 0)
        if self._users == 0:
            self.close()

    def close(self) -> None:
        """Close the devices or the file (the camera light goes off)."""
        for track in self._sources:
            if track is not None:
                track.stop()
        self._players, self._relay, self._sources = [], None, (None, None)

    def _open_players(self) -> None:
        # Imported here: only device and file sources need PyAV's demuxers.
        from aiortc.contrib.media import MediaPlayer, MediaRelay

        self._relay = MediaRelay()
        if self.kind == "file":
            player = MediaPlayer(self.spec, loop=True)
            self._players = [player]
            self._sources = (_Restamped(player.audio) if player.audio else None,
                             _Restamped(player.video) if player.video else None)
            return
        # A camera and a microphone are two devices: each opened on its own, and
        # a missing microphone must not keep the picture from being sent.
        video = audio = None
        try:
            camera = MediaPlayer(self.spec, format="v4l2", options={
                "video_size": self.video_size, "framerate": str(self.framerate)})
            self._players.append(camera)
            video = camera.video
        except Exception as exc:
            log.error("cannot open the camera %s: %s; sending no picture", self.spec, exc)
        try:
            microphone = MediaPlayer(self.audio_device, format="alsa")
            self._players.append(microphone)
            audio = microphone.audio
        except Exception as exc:
            log.error("cannot open the microphone (ALSA %s): %s; sending no sound",
                      self.audio_device, exc)
        self._sources = (_Restamped(audio) if audio else None,
                         _Restamped(video) if video else None)


# -- one conference ---------------------------------------------------------------


@dataclass
class _AgentSiteClient(SiteClient):
    """A SiteClient that reports its media state."""

    media_up: asyncio.Event = field(default_factory=asyncio.Event)
    media_failed: asyncio.Event = field(default_factory=asyncio.Event)

    def _new_pc(self) -> RTCPeerConnection:
        pc = super()._new_pc()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "failed":
                self.media_failed.set()
            elif len(self._pcs) >= 2 and all(p.connectionState == "connected"
                                             for p in self._pcs):
                self.media_up.set()

        return pc


@dataclass
class _Attendance:
    """The agent's presence in one conference."""

    conference_id: int
    task: asyncio.Task[None]
    since: float = field(default_factory=time.monotonic)
    joined: bool = False
    leave_reason: str = "the agent is stopping"
    client: SiteClient | None = None
    # Set when the controller is reachable again: a waiting rejoin goes at once.
    retry_now: asyncio.Event = field(default_factory=asyncio.Event)


# -- the agent ----------------------------------------------------------------------


class EndpointAgent:
    """Joins the endpoint's conferences on its own; `run()` until cancelled."""

    def __init__(
        self,
        server: str,
        endpoint: str,
        token: str,
        *,
        media: str = "testsrc",
        settings: Settings | None = None,
        audio_device: str = "default",
        summary_seconds: float = SUMMARY_SECONDS,
        stream_retry: tuple[float, float] = (STREAM_RETRY_FIRST, STREAM_RETRY_MAX),
        rejoin_retry: tuple[float, float] = (REJOIN_FIRST, REJOIN_MAX),
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.server = server.rstrip("/")
        self.endpoint = endpoint
        self.token = token
        self.settings = settings if settings is not None else load_settings()
        self.media = MediaSource(media, endpoint, audio_device=audio_device)
        self.summary_seconds = summary_seconds
        self.stream_retry = stream_retry
        self.rejoin_retry = rejoin_retry
        self.heartbeat_seconds = heartbeat_seconds
        self.configuration = rtc_configuration(self.settings.ice_servers)
        self.remote_networks = allowed_networks(self.settings.ice_host_addresses)
        self.last_seq: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._attending: dict[int, _Attendance] = {}
        self._consumers: set[asyncio.Task[None]] = set()
        self._identity_checked = False
        self._catch_up_needed = True
        self._stream_up = False
        self._counters: Counter[str] = Counter()
        self._received: Counter[str] = Counter()
        self._test_call: asyncio.Task[TestCallResult] | None = None
        self.last_test_call: TestCallResult | None = None
        self._report_now = asyncio.Event()  # a heartbeat should go at once
        self._stream_ws: aiohttp.ClientWebSocketResponse | None = None
        self._heartbeat_sent: float | None = None
        self._rtt_ms: float | None = None  # the controller's answer time to a heartbeat

    # -- public --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and tests."""
        return {
            "endpoint": self.endpoint,
            "media": self.media.kind,
            "stream_connected": self._stream_up,
            "last_seq": self.last_seq,
            "stream_connects": self._counters["stream_connects"],
            "stream_failures": self._counters["stream_failures"],
            "events": self._counters["events"],
            "attending": sorted(self._attending),
            "joined": sorted(c for c, a in self._attending.items() if a.joined),
            "joins": self._counters["joins"],
            "rejoins": self._counters["rejoins"],
            "join_failures": self._counters["join_failures"],
            "media_failures": self._counters["media_failures"],
            "signaling_drops": self._counters["signaling_drops"],
            "video_restarts": self._counters["video_restarts"],
            "left": self._counters["left"],
            "received_frames": dict(self._received),
            "test_calls": self._counters["test_calls"],
            "last_test_call": self.last_test_call.to_json() if self.last_test_call else None,
        }

    async def run(self) -> None:
        """Follow the event stream and attend conferences until cancelled."""
        # Process-wide: only the configured addresses are advertised (tests: loopback).
        restrict_host_addresses(self.settings.ice_host_addresses)
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"}, timeout=HTTP_TIMEOUT)
        log.info("agent for endpoint %s starting: controller %s, media %s, ICE servers %s, "
                 "host addresses %s", self.endpoint, self.server, self.media.spec,
                 ", ".join(self.settings.ice_servers) or "none",
                 ", ".join(self.settings.ice_host_addresses) or "all interfaces")
        summaries = asyncio.create_task(self._summaries(), name="agent-summaries")
        heartbeats = asyncio.create_task(self._heartbeats(), name="agent-heartbeats")
        try:
            await self._follow_events()
        finally:
            summaries.cancel()
            heartbeats.cancel()
            if self._test_call is not None:
                self._test_call.cancel()
            await asyncio.gather(heartbeats, *([self._test_call] if self._test_call else []),
                                 return_exceptions=True)
            attending = [a.task for a in self._attending.values()]
            for task in attending:
                task.cancel()
            await asyncio.gather(*attending, return_exceptions=True)
            for consumer in list(self._consumers):
                consumer.cancel()
            await asyncio.gather(*self._consumers, summaries, return_exceptions=True)
            await self._http.close()
            self.media.close()
            log.info("agent for endpoint %s stopped", self.endpoint)

    # -- heartbeats ----------------------------------------------------------------------

    def heartbeat(self, rtt_ms: float | None, frames: int, interval: float) -> dict[str, Any]:
        """The health report the controller's monitoring receives (docs/monitoring.md)."""
        # A generated or file source is always there; a camera is there if its device
        # node is (the microphone and speaker are ALSA defaults, assumed present).
        camera = os.path.exists(self.media.spec) if self.media.kind == "device" else True
        body: dict[str, Any] = {
            "sent_at": datetime.now(UTC).isoformat(),
            "devices": {"camera": camera, "microphone": True, "speaker": True},
            "cpu_percent": round(min(os.getloadavg()[0] / (os.cpu_count() or 1), 1.0) * 100, 1),
            "network": {"rtt_ms": rtt_ms},
            "agent_version": __version__,
        }
        joined = [c for c, a in self._attending.items() if a.joined]
        if joined:
            body["call"] = {"conference": joined[0], "fps": round(frames / interval, 2)}
        if self.last_test_call is not None:
            body["test_call"] = self.last_test_call.to_json()
        return body

    async def _heartbeats(self) -> None:
        """Report this endpoint's health every few seconds, on the event stream while it is
        up (no request per report), else by POST; a failure is only logged."""
        last_frames = sum(self._received.values())
        last_sent = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report_now.wait(), self.heartbeat_seconds)
            self._report_now.clear()
            frames, interval = sum(self._received.values()), time.monotonic() - last_sent
            # Frames of every received slot: a rough picture of the call's health.
            body = self.heartbeat(self._rtt_ms, frames - last_frames, max(interval, 0.001))
            last_frames, last_sent = frames, time.monotonic()
            try:
                ws = self._stream_ws
                if ws is not None and not ws.closed and self._stream_up:
                    self._heartbeat_sent = time.monotonic()
                    await ws.send_json({"type": "heartbeat", "body": body})
                else:
                    await self._post_heartbeat(body)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("heartbeat not delivered: %s", _describe(exc))

    async def _post_heartbeat(self, body: dict[str, Any]) -> None:
        assert self._http is not None
        started = time.monotonic()
        url = f"{self.server}/api/v1/endpoints/{self.endpoint}/heartbeat"
        async with self._http.post(url, json=body) as response:
            if response.status >= 400:
                detail = f"HTTP {response.status} {(await response.text())[:200]}"
                self._heartbeat_refused(response.status == 429, detail)
                return
        self._rtt_ms = round((time.monotonic() - started) * 1000, 1)
        self._counters["heartbeats"] += 1

    def _heartbeat_answered(self) -> None:
        """The controller took a heartbeat sent on the event stream."""
        if self._heartbeat_sent is not None:
            self._rtt_ms = round((time.monotonic() - self._heartbeat_sent) * 1000, 1)
            self._heartbeat_sent = None
        self._counters["heartbeats"] += 1

    def _heartbeat_refused(self, too_soon: bool, detail: str) -> None:
        if too_soon and self.last_test_call is not None:
            # Too soon after the last one (a test call just ended): again shortly, so its
            # result does not wait a whole interval.
            asyncio.get_running_loop().call_later(1.5, self._report_now.set)
        else:
            log.warning("the controller refused a heartbeat: %s", detail)

    # -- the event stream -------------------------------------------------------------

    async def _follow_events(self) -> None:
        first, most = self.stream_retry
        delay = first
        while True:
            problem = ""
            try:
                await self._stream_once()
                problem = "the controller closed the event stream"
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401:
                    problem = ("the controller refused the agent token (HTTP 401): it is "
                               "wrong, expired or revoked; ask the administrator for a new "
                               "one (vcbridge endpoints token " + self.endpoint + ")")
                elif exc.status == 403:
                    problem = "the controller refused this token for the event stream (HTTP 403)"
                else:
                    problem = f"the controller answered HTTP {exc.status} to the event stream"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = f"cannot reach the controller at {self.server}: {_describe(exc)}"
            except AgentConfigError:
                raise
            except Exception as exc:  # an unattended agent must outlive a surprise
                log.exception("unexpected error on the event stream")
                problem = f"the event stream failed: {exc!r}"
            finally:
                was_up = self._stream_up
                self._stream_up = False
            self._counters["stream_failures"] += 1
            if was_up:
                delay = first  # it worked until now: reconnect at once
            wait = jittered(delay)
            log.warning("%s; retrying in %.1f s", problem, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, most)

    async def _stream_once(self) -> None:
        assert self._http is not None
        url = self.server + EVENTS_PATH
        if self.last_seq is not None:
            url += f"?after={self.last_seq}"
        async with self._http.ws_connect(url, heartbeat=20) as ws:
            self._stream_ws = ws
            try:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    body = message.json()
                    kind = body.get("type")
                    if kind == "stream.ready":
                        await self._ready(body)
                    elif isinstance(body.get("seq"), int):
                        self._on_event(body)
                    elif kind == "heartbeat.ok":
                        self._heartbeat_answered()
                    elif kind == "error" and body.get("for") == "heartbeat":
                        error = body.get("error") or {}
                        self._heartbeat_refused(error.get("code") == "rate_limited",
                                                str(error)[:200])
                    elif kind == "error":
                        log.warning("the event stream reported an error: %s", body.get("error"))
            finally:
                self._stream_ws = None
            if ws.close_code == 1013:
                log.info("the controller asked to resume the event stream; resuming after "
                         "event %s", self.last_seq)

    async def _ready(self, body: dict[str, Any]) -> None:
        if not self._identity_checked:
            await self._check_identity()
        if body.get("reset"):
            log.warning("the controller's event history restarted (database restored?): "
                        "continuing from event %s and checking running conferences",
                        body.get("after"))
            self._catch_up_needed = True
        if self.last_seq is None or body.get("reset"):
            self.last_seq = int(body.get("after") or 0)
        self._counters["stream_connects"] += 1
        self._stream_up = True
        for attendance in self._attending.values():
            attendance.retry_now.set()
        log.info("connected to the event stream (after event %s)", self.last_seq)
        if self._catch_up_needed:
            await self._catch_up()
            self._catch_up_needed = False

    async def _check_identity(self) -> None:
        """Refuse a token that belongs to another endpoint (or to no endpoint)."""
        status, body = await self._get("/api/v1/auth/me")
        if status != 200:
            raise aiohttp.ClientError(f"GET /api/v1/auth/me answered HTTP {status}")
        bound = body.get("endpoint")
        if bound != self.endpoint:
            raise AgentConfigError(
                f"the token belongs to {bound or 'no endpoint'}, not to {self.endpoint}: "
                f"issue an agent token with `vcbridge endpoints token {self.endpoint}`")
        if body.get("scope") != "agent":
            log.warning("this is a %s token, not an agent token: it may expire; use "
                        "`vcbridge endpoints token %s`", body.get("scope"), self.endpoint)
        self._identity_checked = True

    async def _catch_up(self) -> None:
        """Join the endpoint's conferences that are open or live right now."""
        status, body = await self._get("/api/v1/conferences?status=open&status=live")
        if status != 200:
            raise aiohttp.ClientError(f"listing running conferences answered HTTP {status}")
        running = [c for c in body.get("conferences", [])
                   if self.endpoint in c.get("participants", ())]
        if not running:
            log.info("no conference of %s is running now; waiting for the next one",
                     self.endpoint)
        for conference in running:
            self._attend(int(conference["id"]),
                         f"it is {conference['status']} now ({conference.get('title', '')})")

    def _on_event(self, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        if self.last_seq is not None and seq <= self.last_seq:
            return  # already seen
        self.last_seq = seq
        self._counters["events"] += 1
        kind = event.get("type")
        conference = event.get("conference")
        if not isinstance(conference, int):
            return
        data = event.get("data") or {}
        if kind == EventType.ENDPOINT_INVITED and event.get("endpoint") in (None, self.endpoint):
            self._attend(conference, f"invited (attempt {data.get('attempt', '?')})")
        elif kind == EventType.CONFERENCE_LIVE:
            self._attend(conference, "the conference started")
        elif kind == EventType.CONFERENCE_OPENED:
            log.info("conference %s: the room is open; testing the line to the bridge, "
                     "joining when invited at the start", conference)
            self._start_test_call(conference)
        elif kind == EventType.CONFERENCE_ENDING_SOON:
            log.info("conference %s: ends in %s minutes", conference,
                     data.get("minutes_left", "?"))
        elif isinstance(kind, str) and kind in ROOM_CLOSING:
            self._leave(conference, ROOM_CLOSING[EventType(kind)])
        else:
            log.debug("event %s: %s for conference %s", seq, kind, conference)

    # -- the pre-flight test call ------------------------------------------------------

    def _start_test_call(self, conference_id: int) -> None:
        if self._test_call is not None and not self._test_call.done():
            return  # one at a time; its result serves every conference opening now
        if self._attending:
            # Already in a conference: media flows, and the camera is busy.
            log.info("conference %s: no test call while in conference %s", conference_id,
                     ", ".join(map(str, self._attending)))
            return
        self._test_call = asyncio.create_task(self.test_call(), name="agent-test-call")

    async def test_call(self) -> TestCallResult:
        """Make a test call through the bridge now; its result goes in a heartbeat at once."""
        try:
            tracks = self.media.acquire()
            acquired = True
        except Exception as exc:
            log.error("test call: cannot open the media source %s: %s", self.media.spec,
                      _describe(exc))
            tracks, acquired = (None, None), False
        try:
            result = await run_test_call(
                self.server, self.endpoint, self.token, self.configuration,
                audio=tracks[0], video=tracks[1], remote_networks=self.remote_networks)
        finally:
            if acquired:
                self.media.release(tracks)
        self._counters["test_calls"] += 1
        self.last_test_call = result
        self._report_now.set()
        if result.ok:
            log.info("test call: media flows both ways (%s audio, %s video frames back; "
                     "loss %s, round trip %s ms)", result.audio_packets, result.video_frames,
                     result.loss, result.rtt_ms)
        else:
            log.warning("test call FAILED: %s", result.problem)
        return result

    # -- attending conferences ----------------------------------------------------------

    def _attend(self, conference_id: int, why: str) -> None:
        if conference_id in self._attending:
            log.debug("conference %s: already in it (%s)", conference_id, why)
            return
        log.info("conference %s: joining, %s", conference_id, why)
        task = asyncio.create_task(self._attend_loop(conference_id),
                                   name=f"agent-conference-{conference_id}")
        self._attending[conference_id] = _Attendance(conference_id, task)

        def done(finished: asyncio.Task[None]) -> None:
            current = self._attending.get(conference_id)
            if current is not None and current.task is finished:
                del self._attending[conference_id]
            if not finished.cancelled() and finished.exception() is not None:
                log.error("conference %s: the agent stopped attending after an error",
                          conference_id, exc_info=finished.exception())

        task.add_done_callback(done)

    def _leave(self, conference_id: int, reason: str) -> None:
        attendance = self._attending.get(conference_id)
        if attendance is None:
            log.info("conference %s: %s", conference_id, reason)
            return
        attendance.leave_reason = f"the conference {reason}"
        attendance.task.cancel()

    async def _attend_loop(self, conference_id: int) -> None:
        """Stay in the conference until it ends, rebuilding the site client after drops."""
        try:
            await self._rejoin_loop(conference_id)
        except asyncio.CancelledError:
            attendance = self._attending.get(conference_id)
            reason = attendance.leave_reason if attendance else "the agent is stopping"
            log.info("conference %s: left (%s)", conference_id, reason)
            self._counters["left"] += 1
            raise

    async def _rejoin_loop(self, conference_id: int) -> None:
        first, most = self.rejoin_retry
        delay = first
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._counters["rejoins"] += 1
            outcome, media_was_up = await self._one_session(conference_id)
            if outcome in ("removed", "replaced"):
                log.warning("conference %s: %s; not rejoining (a new invitation will bring "
                            "the agent back)", conference_id,
                            "the chair removed this site" if outcome == "removed" else
                            "this endpoint connected again from another device")
                return
            running = await self._still_running(conference_id)
            if running is False:
                log.info("conference %s: left (the conference is over)", conference_id)
                self._counters["left"] += 1
                return
            if media_was_up:
                delay = first
            wait = jittered(delay)
            log.warning("conference %s: %s; rejoining in %.1f s", conference_id,
                        _OUTCOMES.get(outcome, outcome), wait)
            attendance = self._attending[conference_id]
            attendance.retry_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attendance.retry_now.wait(), wait)
            delay = min(delay * 2, most)

    async def _one_session(self, conference_id: int) -> tuple[str, bool]:
        """Join once and stay until something ends the session; returns why, and
        whether media was up."""
        try:
            tracks = self.media.acquire()
            acquired = True
        except Exception as exc:
            # Present but unseen and unheard beats absent: join receive-only.
            log.error("conference %s: cannot open the media source %s: %s; joining "
                      "without camera and microphone", conference_id, self.media.spec,
                      _describe(exc))
            tracks, acquired = (None, None), False
        client = _AgentSiteClient(
            self.server, conference_id, self.token, self.configuration,
            audio=tracks[0], video=tracks[1],
            on_received=lambda item: self._consume(conference_id, item),
            remote_networks=self.remote_networks,
        )
        leave = False
        attendance = self._attending.get(conference_id)
        if attendance is not None:
            attendance.client = client
        try:
            try:
                await client.join()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._counters["join_failures"] += 1
                log.warning("conference %s: could not join: %s", conference_id,
                            _describe(exc))
                return "join_failed", False
            self._counters["joins"] += 1
            log.info("conference %s: signaling connected as %s, receiving %s",
                     conference_id, client.joined.get("role"),
                     ", ".join(["mix", *client.joined.get("slots", [])]))
            return await self._stay(conference_id, client)
        except asyncio.CancelledError:
            leave = True  # the conference ended or the agent stops: say goodbye
            raise
        finally:
            if attendance is not None:
                attendance.joined, attendance.client = False, None
            with contextlib.suppress(Exception):
                await client.close(leave=leave)
            if acquired:
                self.media.release(tracks)

    async def _stay(self, conference_id: int, client: _AgentSiteClient) -> tuple[str, bool]:
        ended = asyncio.ensure_future(client.ended.wait())
        failed = asyncio.ensure_future(client.media_failed.wait())
        up = asyncio.ensure_future(client.media_up.wait())
        try:
            done, _ = await asyncio.wait({ended, failed, up}, timeout=MEDIA_CONNECT_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
            if up in done:
                attendance = self._attending.get(conference_id)
                if attendance is not None:
                    attendance.joined = True
                log.info("conference %s: joined, media connected", conference_id)
                await asyncio.wait({ended, failed}, return_when=asyncio.FIRST_COMPLETED)
            elif not done:
                self._counters["media_failures"] += 1
                return "media_timeout", False
            if failed.done() and not ended.done():
                # The bridge says "closed" before it closes the media: give the
                # signaling a moment to tell us why the media went.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ended), 0.5)
            media_was_up = up.done()
            if client.closed_reason is not None:
                return client.closed_reason, media_was_up
            if failed.done():
                self._counters["media_failures"] += 1
                return "media_failed", media_was_up
            self._counters["signaling_drops"] += 1
            return "signaling_lost", media_was_up
        finally:
            for waiter in (ended, failed, up):
                waiter.cancel()

    async def _still_running(self, conference_id: int) -> bool | None:
        """Whether the conference is open or live (None: the controller did not say)."""
        try:
            status, body = await self._get(f"/api/v1/conferences/{conference_id}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The join failure or the rejoin line already tells the staff.
            log.debug("conference %s: cannot check its status: %s", conference_id, exc)
            return None
        if status == 404:
            return False
        if status != 200:
            return None
        return body.get("status") in RUNNING

    # -- received media -------------------------------------------------------------------

    def _consume(self, conference_id: int, item: Received) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(conference_id, item))
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _drain(self, conference_id: int, item: Received) -> None:
        """Read every frame of a received track (its queue is unbounded), count, discard.

        A video that stops decoding while its packets still arrive (after a network
        outage) is restarted from a fresh keyframe (`bridge/video_stall.py`)."""
        log.debug("conference %s: receiving %s (%s)", conference_id, item.slot, item.track.kind)

        def frame() -> None:
            self._received[item.slot] += 1

        def restart() -> None:
            log.info("conference %s: the %s video is stuck after a loss; asking for a fresh "
                     "keyframe", conference_id, item.slot)
            self._counters["video_restarts"] += 1

        with contextlib.suppress(MediaStreamError):
            if item.track.kind == "video" and item.receiver is not None:
                await read_video(item.track, item.receiver, frame, restart)
            else:
                while True:
                    await item.track.recv()
                    frame()

    # -- helpers ----------------------------------------------------------------------------

    async def _get(self, path: str) -> tuple[int, dict[str, Any]]:
        assert self._http is not None
        async with self._http.get(self.server + path) as response:
            try:
                body = await response.json()
            except (aiohttp.ContentTypeError, ValueError):
                body = {}
            return response.status, body if isinstance(body, dict) else {}

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.summary_seconds)
            log.info("summary: %s", self.summary())

    def summary(self) -> str:
        """One line for the log: the stream, the conferences, what arrived."""
        stats = self.stats()
        stream = (f"event stream up (last event {stats['last_seq']})"
                  if stats["stream_connected"] else "event stream DOWN")
        now = time.monotonic()
        conferences = ", ".join(
            f"{a.conference_id} ({'joined' if a.joined else 'connecting'}, "
            f"{int(now - a.since)} s)" for a in self._attending.values()) or "none"
        received = ", ".join(f"{slot} {count}" for slot, count
                             in sorted(stats["received_frames"].items())) or "nothing"
        return (f"{stream}; conferences: {conferences}; received frames: {received}; "
                f"joins {stats['joins']}, rejoins {stats['rejoins']}, "
                f"join failures {stats['join_failures']}, media failures "
                f"{stats['media_failures']}")


def _describe(exc: BaseException) -> str:
    """An exception for the log: its message, or its name when it has none."""
    return str(exc) or type(exc).__name__


_OUTCOMES = {
    "join_failed": "the join failed",
    "media_timeout": f"the media did not connect within {MEDIA_CONNECT_TIMEOUT:.0f} s",
    "media_failed": "the media connection failed",
    "signaling_lost": "the signaling connection closed",
    "closed": "the bridge closed the room but the conference is still running",
}
