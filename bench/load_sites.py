"""Simulated sites for the conference benchmark: several sites in one process.

Started by `bench/conference.py` (`python -m bench.load_sites CONFIG.json`),
never by hand. Each site behaves like an endpoint agent: it opens its event
stream with its agent token, waits for its `endpoint.invited`, then joins the
room with `bridge.site_client.SiteClient` (one audio and one video peer
connection). It is built to cost little, so the benchmark measures the
bridge rather than itself:

- it sends media encoded once in advance and looped (`conference_media`): the
  tracks return `av.Packet`s, which aiortc sends through the codec's `pack()`
  path; each audio packet carries its precomputed RFC 6464 level (set in a
  per-sender override of `RTCRtpSender._next_encoded_frame`), and a keyframe
  request (PLI) makes the video jump to the clip's next keyframe, as a real
  encoder would send one;
- it receives without decoding: `bridge.media_tap.tap_video` / `tap_audio`
  on its receivers (and without aiortc's REMB estimator on video); a video
  frame is counted per slot and identified by the hash of its bytes (the
  bridge forwards VP8 frames unchanged), audio packets are counted with
  their sequence and timestamp gaps.

Protocol with the harness: JSON lines. On stdout: `{"event": "ready"}` once
every site's event stream is open, `{"event": "media", ...}` when a site gets
its first video frame, `{"event": "granted", ...}` after each floor grant,
and one `{"event": "result", ...}` at the end. On stdin: `{"cmd": "grant",
"endpoint": CODE}` (the process holding the chair sends `floor.grant`) and
`{"cmd": "stop"}`. Clocks: `time.time()` everywhere (one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.rtp import RtpPacket
from av.packet import Packet

from bench.conference_media import AUDIO_FRAME_MS, FPS, SAMPLE_RATE, SiteMedia, frame_key
from bench.conference_media import frame_sources as load_frame_sources
from bench.conference_media import load_site as load_site_media
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import on_keyframe_request, tap_audio, tap_video
from bridge.site_client import Received, SiteClient

log = logging.getLogger("bench.load_sites")

VIDEO_CLOCK = 90_000
FRAME_TICKS = VIDEO_CLOCK // FPS
AUDIO_TICKS = SAMPLE_RATE * AUDIO_FRAME_MS // 1000


def emit(message: dict[str, Any]) -> None:
    """One JSON line to the harness."""
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# -- sending: pre-encoded, looped, paced by the wall clock ---------------------------


class _Paced:
    """Wall-clock pacing shared by the looped tracks: never bursts, skips when late."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.start: float | None = None
        self.n = 0  # media time in periods
        self.late = 0  # periods skipped because the loop could not keep up

    async def wait(self) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        delay = self.start + self.n * self.period - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -2 * self.period:  # fell behind: skip ahead as a camera would
            skipped = int(-delay / self.period)
            self.n += skipped
            self.late += skipped


class LoopedVideo(MediaStreamTrack):
    """A site's camera: the pre-encoded VP8 clip, looped at 15 fps."""

    kind = "video"

    def __init__(self, media: SiteMedia, offset: int) -> None:
        super().__init__()
        self._frames = media.video
        self._keyframes = media.keyframes
        self._pos = self._keyframes[offset % len(self._keyframes)]
        self._pace = _Paced(1 / FPS)
        self._keyframe_wanted = False
        self.sent = 0
        self.keyframe_requests = 0
        self.time_base = Fraction(1, VIDEO_CLOCK)

    def request_keyframe(self) -> None:
        """A PLI from the bridge: the next frame sent is a keyframe."""
        self._keyframe_wanted = True
        self.keyframe_requests += 1

    @property
    def late(self) -> int:
        return self._pace.late

    async def recv(self) -> Packet[Any]:
        await self._pace.wait()
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            if self._pos not in self._keyframes:
                later = [k for k in self._keyframes if k > self._pos]
                self._pos = later[0] if later else self._keyframes[0]
        packet = Packet(self._frames[self._pos])
        packet.pts = self._pace.n * FRAME_TICKS
        packet.time_base = self.time_base
        self._pos = (self._pos + 1) % len(self._frames)
        self._pace.n += 1
        self.sent += 1
        return packet


class LoopedAudio(MediaStreamTrack):
    """A site's microphone: the pre-encoded Opus clip, looped, 20 ms packets."""

    kind = "audio"

    def __init__(self, media: SiteMedia, offset: int) -> None:
        super().__init__()
        self._packets = media.audio
        self._levels = media.levels
        self._pos = offset % len(self._packets)
        self._pace = _Paced(AUDIO_FRAME_MS / 1000)
        self.level = 127  # RFC 6464 level of the packet returned last
        self.sent = 0
        self.time_base = Fraction(1, SAMPLE_RATE)

    @property
    def late(self) -> int:
        return self._pace.late

    async def recv(self) -> Packet[Any]:
        await self._pace.wait()
        packet = Packet(self._packets[self._pos])
        packet.pts = self._pace.n * AUDIO_TICKS
        packet.time_base = self.time_base
        self.level = self._levels[self._pos]
        self._pos = (self._pos + 1) % len(self._packets)
        self._pace.n += 1
        self.sent += 1
        return packet


def send_audio_level(sender: RTCRtpSender, track: LoopedAudio) -> None:
    """Put each packet's precomputed level in its RFC 6464 header extension.

    aiortc computes the level only for `AudioFrame`s it encodes; for packets it
    sends none, and the bridge ranks speakers by that level."""
    original = sender._next_encoded_frame

    async def next_encoded_frame(codec: Any) -> Any:
        frame = await original(codec)
        if frame is not None:
            frame.audio_level = -track.level  # aiortc writes -audio_level into the header
        return frame

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]


# -- receiving: counted, never decoded ---------------------------------------------------


@dataclass
class SlotStats:
    """One received video slot."""

    frames: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # second -> n
    changes: list[tuple[float, str]] = field(default_factory=list)  # (time, source)
    unknown: int = 0
    first: float | None = None
    source: str | None = None


@dataclass
class AudioStats:
    """The mix the site receives."""

    packets: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # second -> n
    seq_lost: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    ts_missing: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    reordered: int = 0
    first: float | None = None
    last_seq: int | None = None
    last_ts: int | None = None

    def add(self, packet: RtpPacket, now: float) -> None:
        second = int(now)
        self.packets[second] += 1
        if self.first is None:
            self.first = now
        if self.last_seq is not None:
            gap = (packet.sequence_number - self.last_seq) % 65536
            if gap == 0 or gap >= 32768:
                self.reordered += 1
                return
            if gap > 1:
                self.seq_lost[second] += gap - 1
            step = (packet.timestamp - (self.last_ts or 0)) % (1 << 32)
            if step > AUDIO_TICKS and step < (1 << 31):
                # A mix frame never sent to us (the bridge's queue dropped it).
                self.ts_missing[second] += step // AUDIO_TICKS - 1
        self.last_seq, self.last_ts = packet.sequence_number, packet.timestamp


class LoadClient(SiteClient):
    """SiteClient whose senders carry audio levels and answer keyframe requests."""

    site: LoadSite

    def _watch(self, pc: RTCPeerConnection, slots: list[str]) -> None:
        super()._watch(pc, slots)
        for transceiver in pc.getTransceivers():
            track = transceiver.sender.track
            if isinstance(track, LoopedAudio):
                send_audio_level(transceiver.sender, track)
            elif isinstance(track, LoopedVideo):
                on_keyframe_request(transceiver.sender, track.request_keyframe)


class LoadSite:
    """One simulated site: its event stream, its room connection, its counters."""

    def __init__(self, code: str, token: str, media: SiteMedia, offset: int,
                 config: dict[str, Any], sources: dict[str, str]) -> None:
        self.code = code
        self.token = token
        self.config = config
        self.sources = sources
        self.video = LoopedVideo(media, offset)
        self.audio = LoopedAudio(media, offset * 7)
        self.slots: dict[str, SlotStats] = {}
        self.mix = AudioStats()
        self.client: LoadClient | None = None
        self.invited: float | None = None
        self.join_started: float | None = None
        self.joined: float | None = None
        self.first_video: float | None = None
        self.error: str | None = None
        self.events_ready = asyncio.Event()
        self.holder_changes: list[tuple[float, str | None]] = []
        self._holder: str | None = None
        self._join_task: asyncio.Task[None] | None = None

    # -- the agent's event stream ---------------------------------------------------

    async def follow_events(self, session: aiohttp.ClientSession) -> None:
        """Open the event stream; join on the first invitation to our conference."""
        url = f"{self.config['base_url']}/api/v1/events"
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {self.token}"},
                                      heartbeat=20) as ws:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                body = message.json()
                if body.get("type") == "stream.ready":
                    self.events_ready.set()
                elif (body.get("type") == "endpoint.invited" and self.invited is None
                      and body.get("conference") == self.config["conference_id"]
                      and body.get("endpoint") == self.code):
                    self.invited = time.time()
                    self._join_task = asyncio.get_running_loop().create_task(self.join())

    async def join(self) -> None:
        self.join_started = time.time()
        client = LoadClient(
            self.config["base_url"], self.config["conference_id"], self.token,
            RTCConfiguration(iceServers=[]), audio=self.audio, video=self.video,
            on_state=self._on_state, on_received=self._on_received)
        client.site = self
        self.client = client
        try:
            await client.join(timeout=self.config.get("join_timeout", 30.0))
            self.joined = time.time()
        except Exception as exc:  # reported, not fatal: the other sites carry on
            self.error = f"join failed: {exc!r}"
            log.warning("%s: %s", self.code, self.error)

    def _on_state(self, state: dict[str, Any]) -> None:
        holder = state.get("holder")
        if holder != self._holder:
            self._holder = holder
            self.holder_changes.append((time.time(), holder))

    # -- taps ---------------------------------------------------------------------------

    def _on_received(self, item: Received) -> None:
        assert self.client is not None
        receiver = next((t.receiver for pc in self.client._pcs for t in pc.getTransceivers()
                         if t.receiver.track is item.track), None)
        if receiver is None:
            self.error = f"no receiver for slot {item.slot}"
            return
        if item.slot == "mix":
            tap_audio(receiver, self._on_audio)
        else:
            # A site needs no bandwidth estimate of what it receives: skip aiortc's
            # per-packet REMB estimator (a real cost at hundreds of packets a second).
            receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
            stats = self.slots.setdefault(item.slot, SlotStats())
            tap_video(receiver, lambda data, _ts: self._on_frame(stats, data),
                      lambda _ssrc: None)

    def _on_audio(self, packet: RtpPacket) -> None:
        self.mix.add(packet, time.time())

    def _on_frame(self, stats: SlotStats, data: bytes) -> None:
        now = time.time()
        stats.frames[int(now)] += 1
        source = self.sources.get(frame_key(data))
        if source is None:
            stats.unknown += 1
            source = "?"
        if source != stats.source:
            stats.source = source
            stats.changes.append((now, source))
        if stats.first is None:
            stats.first = now
            if self.first_video is None:
                self.first_video = now
                emit({"event": "media", "site": self.code, "at": now})

    # -- report ---------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        return {
            "invited": self.invited, "join_started": self.join_started, "joined": self.joined,
            "first_video": self.first_video, "first_audio": self.mix.first,
            "error": self.error,
            "closed_reason": self.client.closed_reason if self.client else None,
            "signal_errors": self.client.errors if self.client else [],
            "sent": {"video": self.video.sent, "video_late": self.video.late,
                     "keyframe_requests": self.video.keyframe_requests,
                     "audio": self.audio.sent, "audio_late": self.audio.late},
            "slots": {name: {"frames": dict(s.frames), "changes": s.changes,
                             "unknown": s.unknown, "first": s.first}
                      for name, s in self.slots.items()},
            "audio": {"packets": dict(self.mix.packets), "seq_lost": dict(self.mix.seq_lost),
                      "ts_missing": dict(self.mix.ts_missing), "reordered": self.mix.reordered},
            "holder_changes": self.holder_changes,
        }


# -- the process ------------------------------------------------------------------------


async def read_commands(queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Harness commands from stdin, one JSON object a line; EOF means stop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        with contextlib.suppress(json.JSONDecodeError):
            queue.put_nowait(json.loads(line))
    queue.put_nowait({"cmd": "stop"})


async def run(config: dict[str, Any]) -> dict[str, Any]:
    restrict_host_addresses(["127.0.0.1"])
    root = Path(config["media_dir"])
    sources = load_frame_sources(root)
    sites = [LoadSite(s["code"], s["token"], load_site_media(root, s["code"]), s["offset"],
                      config, sources) for s in config["sites"]]
    by_code = {site.code: site for site in sites}
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    grants: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(read_commands(commands))]
    session = aiohttp.ClientSession()
    try:
        tasks += [asyncio.create_task(site.follow_events(session)) for site in sites]
        await asyncio.wait_for(asyncio.gather(*(s.events_ready.wait() for s in sites)),
                               config.get("ready_timeout", 30.0))
        emit({"event": "ready", "pid": os.getpid()})
        deadline = time.monotonic() + config["max_seconds"]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("no stop command before the deadline: stopping")
                break
            try:
                command = await asyncio.wait_for(commands.get(), remaining)
            except TimeoutError:
                continue
            if command.get("cmd") == "stop":
                break
            if command.get("cmd") == "grant":
                chair = by_code.get(config["chair"])
                target = command["endpoint"]
                record: dict[str, Any] = {"endpoint": target, "at": time.time()}
                if chair is None or chair.client is None or chair.client._ws is None:
                    record["error"] = "chair not connected"
                else:
                    try:
                        await chair.client.send({"type": "floor.grant", "endpoint": target})
                    except Exception as exc:
                        record["error"] = repr(exc)
                grants.append(record)
                emit({"event": "granted", **record})
    finally:
        for task in tasks:
            task.cancel()
        stopping = time.time()
        results = {site.code: site.result() for site in sites}  # before closing: final counts
        closes = [site.client.close() for site in sites if site.client is not None]
        if closes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 15)
        await session.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"event": "result", "pid": os.getpid(), "sites": results, "grants": grants,
            "stopping": stopping,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "max_rss_kib": usage.ru_maxrss}


def main() -> int:
    parser = argparse.ArgumentParser(description="simulated sites (started by conference.py)")
    parser.add_argument("config", help="JSON file written by bench/conference.py")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s load[{os.getpid()}] %(levelname)s %(message)s")
    if config.get("uvloop"):
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    result = asyncio.run(run(config))
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
