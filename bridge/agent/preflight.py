"""A site's side of the pre-flight test call (see `bridge/preflight_echo.py`).

The endpoint agent makes one (`PreflightCaller.start`) when a conference it is
booked in opens: it sends its camera and microphone to the bridge for a few seconds,
counts what comes back, and reads the peer connections' statistics. The
result is the `test_call` object of the agent's next heartbeat, which the
health monitor turns into the endpoint's readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration
from aiortc.mediastreams import MediaStreamError

from bridge.agent.controller import describe
from bridge.agent.media_sources import MediaSource
from bridge.agent.settings import AgentSettings
from bridge.agent.site_client import Received, SiteClient
from bridge.ice_policy import Network

log = logging.getLogger(__name__)

SECONDS = 5.0  # long enough for loss and round-trip figures, short enough to repeat
RESULT_TIMEOUT = 3.0
# Above this share of lost packets (either way) the call is not good enough to meet on.
MAX_LOSS = 0.2


@dataclass(frozen=True)
class PreflightResult:
    """What a test call showed; `to_json()` is the heartbeat's `test_call`."""

    ok: bool
    at: datetime
    audio_packets: int  # audio frames that came back from the bridge
    video_frames: int  # video frames that came back from the bridge
    loss: float | None  # the worse direction's share of lost packets
    rtt_ms: float | None  # from the bridge's RTCP receiver reports
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        """The heartbeat's `test_call` object (docs/monitoring.md)."""
        return {"ok": self.ok, "at": self.at.isoformat(), "audio_packets": self.audio_packets,
                "video_frames": self.video_frames, "loss": self.loss, "rtt_ms": self.rtt_ms}


async def run_preflight_call(
    server: str, endpoint: str, token: str, configuration: RTCConfiguration, *,
    audio: MediaStreamTrack | None, video: MediaStreamTrack | None,
    remote_networks: Sequence[Network] = (), seconds: float = SECONDS,
) -> PreflightResult:
    """Make one test call through the bridge at `server`; never raises for a failed call."""
    at = datetime.now(UTC)
    received: Counter[str] = Counter()
    readers: list[asyncio.Task[None]] = []
    bridge_saw: dict[str, Any] = {}
    result_arrived = asyncio.Event()

    def on_received(item: Received) -> None:
        readers.append(asyncio.create_task(_count(item.track, received)))

    def on_message(body: dict[str, Any]) -> None:
        if body.get("type") == "test_call.result":
            bridge_saw.update(body)
            result_arrived.set()

    client = SiteClient(server, 0, token, configuration, audio=audio, video=video,
                        on_received=on_received, on_message=on_message,
                        remote_networks=remote_networks,
                        path=f"/api/v1/endpoints/{endpoint}/test-call")
    try:
        try:
            await client.join()
        except Exception as exc:  # refused, unreachable, negotiation failed: a failed call
            return PreflightResult(False, at, 0, 0, None, None, f"could not connect: {exc}")
        await asyncio.sleep(seconds)
        loss, rtt_ms, sent_audio = await _figures(client)
        with contextlib.suppress(Exception):
            await client.send({"type": "leave"})
            await asyncio.wait_for(result_arrived.wait(), RESULT_TIMEOUT)
    finally:
        await client.close(leave=False)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    up_audio = int(bridge_saw.get("audio_packets", 0))
    if sent_audio and up_audio <= sent_audio:
        upward_loss = 1 - up_audio / sent_audio
        loss = upward_loss if loss is None else max(loss, upward_loss)
    problems = [what for what, count in (
        ("no audio reached the bridge", up_audio),
        ("no video reached the bridge", int(bridge_saw.get("video_frames", 0))),
        ("no audio came back", received["audio"]),
        ("no video came back", received["video"]),
    ) if count == 0]
    if loss is not None and loss > MAX_LOSS:
        problems.append(f"{loss:.0%} of packets lost")
    return PreflightResult(not problems, at, received["audio"], received["video"],
                          None if loss is None else round(loss, 4), rtt_ms,
                          "; ".join(problems))


async def _count(track: MediaStreamTrack, received: Counter[str]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
            received[track.kind] += 1


async def _figures(client: SiteClient) -> tuple[float | None, float | None, int]:
    """(loss bridge → site, round-trip ms, audio packets sent) from the statistics."""
    lost = received = sent_audio = 0
    rtts: list[float] = []
    for pc in client.peer_connections:
        report = await pc.getStats()
        for stats in report.values():
            kind = getattr(stats, "type", "")
            if kind == "inbound-rtp":
                lost += max(int(stats.packetsLost), 0)
                received += int(stats.packetsReceived)
            elif kind == "remote-inbound-rtp" and stats.roundTripTime is not None:
                rtts.append(float(stats.roundTripTime) * 1000)
            elif kind == "outbound-rtp" and stats.kind == "audio":
                sent_audio += int(stats.packetsSent)
    loss = lost / (lost + received) if lost + received else None
    rtt = round(sum(rtts) / len(rtts), 1) if rtts else None
    return loss, rtt, sent_audio


class PreflightCaller:
    """The agent's pre-flight calls: one at a time, never while in a conference (media
    flows then, and the camera is busy); the last result is kept for the heartbeats."""

    def __init__(self, settings: AgentSettings, media: MediaSource,
                 configuration: RTCConfiguration, remote_networks: Sequence[Network], *,
                 attending: Callable[[], Sequence[int]], on_result: Callable[[], None],
                 media_url: Callable[[int], str] | None = None) -> None:
        self.settings = settings
        # The base URL of the bridge node a conference's room is on (default: the
        # controller): the test call goes through the node the meeting will use.
        self.media_url = media_url
        self.media = media
        self.configuration = configuration
        self.remote_networks = remote_networks
        self.attending = attending
        self.on_result = on_result
        self.last: PreflightResult | None = None
        self.calls = 0
        self._task: asyncio.Task[PreflightResult] | None = None

    def start(self, conference_id: int) -> None:
        """Start a call for `conference_id`, which just opened (unless one runs, or the
        agent is in a conference)."""
        if self._task is not None and not self._task.done():
            return  # one at a time; its result serves every conference opening now
        busy = self.attending()
        if busy:
            log.info("conference %s: no test call while in conference %s", conference_id,
                     ", ".join(map(str, busy)))
            return
        self._task = asyncio.create_task(self.call(conference_id), name="agent-test-call")

    async def call(self, conference_id: int | None = None) -> PreflightResult:
        """Make a test call through the bridge now (the node holding `conference_id`'s
        room, if known); `on_result` is told when it is done."""
        server = self.settings.server
        if conference_id is not None and self.media_url is not None:
            server = self.media_url(conference_id)

        def no_media(exc: Exception) -> None:
            log.error("test call: cannot open the media source %s: %s", self.media.spec,
                      describe(exc))

        with self.media.borrowed(no_media) as (audio, video):
            result = await run_preflight_call(
                server, self.settings.endpoint, self.settings.token,
                self.configuration, audio=audio, video=video,
                remote_networks=self.remote_networks)
        self.calls += 1
        self.last = result
        self.on_result()
        if result.ok:
            log.info("test call: media flows both ways (%s audio, %s video frames back; "
                     "loss %s, round trip %s ms)", result.audio_packets, result.video_frames,
                     result.loss, result.rtt_ms)
        else:
            log.warning("test call FAILED: %s", result.problem)
        return result

    async def stop(self) -> None:
        """Cancel a running call and wait for it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
