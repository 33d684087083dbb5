"""Simulated sites for the conference benchmark: several sites in one process.

Started by `bench/conference.py` (`python -m bench.load_sites CONFIG.json`),
never by hand. Each site behaves like an endpoint agent: it opens its event
stream with its agent token, waits for its `endpoint.invited`, then joins the
room with `bridge.agent.site_client.SiteClient` (one audio and one video peer
connection). It is built to cost little, so the benchmark measures the
bridge rather than itself: 31 sites through aiortc's own send and receive
paths needed more than one of this machine's two cores.

Sending: media encoded once in advance and looped (`conference_media`); a
keyframe request (PLI) makes the video jump to the clip's next keyframe, as a
real encoder would send one. Two ways (config `send_path`):
- "lean" (default): `LeanSender` packs each RTP header with `struct`
  (payloads packetised in advance, MID, abs-send-time and the RFC 6464 audio
  level in the header extension) and hands the packet to aiortc's DTLS
  transport (SRTP, ICE, UDP); aiortc's RTCRtpSender stays in place, idle, for
  RTCP;
- "aiortc": the tracks return `av.Packet`s, which RTCRtpSender sends through
  the codec's `pack()` path; the audio level is set in a per-sender override
  of `RTCRtpSender._next_encoded_frame` (aiortc computes it only when it
  encodes audio itself).

Receiving, never decoding (config `receive_path`):
- "lean" (default): `LeanReceiver` takes RTP packets off aioice before
  aiortc's DTLS transport and reads their clear headers (frames from
  timestamps and marker bits, completeness and loss from sequence numbers);
  only each video frame's first packet is decrypted, to identify the
  frame's source by the hash of its first bytes. The sites then send no
  receiver reports or NACKs;
- "aiortc": `bridge.media_tap.tap_video` / `tap_audio` on the receivers
  (without aiortc's REMB estimator on video); each frame is identified by
  the hash of all its bytes (the bridge forwards VP8 frames unchanged).

Bridge nodes (config `follow_placement`, `bench/failover.py`): a site joins
the node its conference is placed on (`bridge.url` of its invitation,
`conference.room_placed`), follows a node's `redirect`, and when the
signaling drops (its node was killed) rejoins at once where the controller
says the room is now, as the endpoint agent does. After the harness's
`{"cmd": "killed", "at": T}` each site notes its first complete video frame
and first audio packet after T and its last audio packet before it.

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
import re
import resource
import struct
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket
from av.packet import Packet

from bench.conference_media import (
    AUDIO_FRAME_MS,
    FPS,
    SAMPLE_RATE,
    SiteMedia,
    frame_key,
    frame_prefix_key,
    frame_prefix_sources,
)
from bench.conference_media import frame_sources as load_frame_sources
from bench.conference_media import load_site as load_site_media
from bridge.agent.site_client import Received, Redirected, SiteClient
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import on_keyframe_request, tap_audio, tap_video

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
        self.idle: asyncio.Event | None = None  # set: recv() never returns (lean sending)

    def request_keyframe(self) -> None:
        """A PLI from the bridge: the next frame sent is a keyframe."""
        self._keyframe_wanted = True
        self.keyframe_requests += 1

    @property
    def late(self) -> int:
        return self._pace.late

    async def next_frame(self) -> tuple[int, int]:
        """Wait for the next frame's time: (index in the clip, RTP timestamp)."""
        await self._pace.wait()
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            if self._pos not in self._keyframes:
                later = [k for k in self._keyframes if k > self._pos]
                self._pos = later[0] if later else self._keyframes[0]
        index, timestamp = self._pos, self._pace.n * FRAME_TICKS
        self._pos = (self._pos + 1) % len(self._frames)
        self._pace.n += 1
        self.sent += 1
        return index, timestamp

    async def recv(self) -> Packet[Any]:
        if self.idle is not None:  # the lean sender sends instead of aiortc's
            await self.idle.wait()
        index, timestamp = await self.next_frame()
        packet = Packet(self._frames[index])
        packet.pts = timestamp
        packet.time_base = self.time_base
        return packet


class LoopedAudio(MediaStreamTrack):
    """A site's microphone: the pre-encoded Opus clip, looped (20 or 60 ms packets)."""

    kind = "audio"

    def __init__(self, media: SiteMedia, offset: int) -> None:
        super().__init__()
        self._packets = media.audio
        self._levels = media.levels
        self._pos = offset % len(self._packets)
        self._pace = _Paced(media.audio_frame_ms / 1000)
        self._ticks = SAMPLE_RATE * media.audio_frame_ms // 1000
        self.level = 127  # RFC 6464 level of the packet returned last
        self.sent = 0
        self.time_base = Fraction(1, SAMPLE_RATE)
        self.idle: asyncio.Event | None = None  # set: recv() never returns (lean sending)

    @property
    def late(self) -> int:
        return self._pace.late

    async def next_packet(self) -> tuple[bytes, int, int]:
        """Wait for the next packet's time: (Opus packet, RFC 6464 level, RTP timestamp)."""
        await self._pace.wait()
        data, timestamp = self._packets[self._pos], self._pace.n * self._ticks
        self.level = self._levels[self._pos]
        self._pos = (self._pos + 1) % len(self._packets)
        self._pace.n += 1
        self.sent += 1
        return data, self.level, timestamp

    async def recv(self) -> Packet[Any]:
        if self.idle is not None:  # the lean sender sends instead of aiortc's
            await self.idle.wait()
        data, _level, timestamp = await self.next_packet()
        packet = Packet(data)
        packet.pts = timestamp
        packet.time_base = self.time_base
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


class LeanSender:
    """Sends a looped track's RTP packets straight into the DTLS transport.

    aiortc's RTCRtpSender builds an `RtpPacket` per packet, computes the
    NTP-based abs-send-time from a datetime, serialises the extensions and
    keeps a retransmission history: about half of a packet's sending cost.
    Here the header is packed once per packet with `struct`, the payloads of
    every clip frame are packetised in advance, and the packet goes to
    `RTCDtlsTransport._send_rtp` (SRTP, ICE, UDP) as aiortc's sender would
    send it: same SSRC, payload type, MID, abs-send-time and audio-level
    extensions, sequence numbers and timestamps. aiortc's own sender stays
    in place, idle, for RTCP (sender reports, keyframe requests)."""

    def __init__(self, sender: RTCRtpSender, source: LoopedVideo | LoopedAudio,
                 frames: list[list[bytes]] | None) -> None:
        self.sender = sender
        self.source = source
        self.frames = frames  # video: the payloads of each clip frame
        self.task: asyncio.Task[None] | None = None
        self.errors = 0
        source.idle = asyncio.Event()
        original = sender.send

        async def send(parameters: Any) -> None:
            await original(parameters)  # DTLS is up: aiortc's sender starts, idle
            self.task = asyncio.get_running_loop().create_task(self.run(parameters))

        sender.send = send  # type: ignore[method-assign]

    async def run(self, parameters: Any) -> None:
        dtls: Any = self.sender.transport
        ssrc = self.sender._ssrc
        payload_type = parameters.codecs[0].payloadType
        ids = {e.uri: e.id for e in parameters.headerExtensions}
        mid = (parameters.muxId or "").encode()
        mid_id = ids.get("urn:ietf:params:rtp-hdrext:sdes:mid")
        abs_id = ids.get("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
        level_id = ids.get("urn:ietf:params:rtp-hdrext:ssrc-audio-level")
        fixed = b""  # extension elements that never change
        if mid_id and mid:
            fixed += bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
        sequence = int.from_bytes(os.urandom(2), "big")
        origin = int.from_bytes(os.urandom(4), "big")
        audio = isinstance(self.source, LoopedAudio)
        while dtls.state == "connected":
            if isinstance(self.source, LoopedAudio):
                data, level, timestamp = await self.source.next_packet()
                payloads = [data]
            else:
                assert self.frames is not None
                index, timestamp = await self.source.next_frame()
                payloads, level = self.frames[index], 0
            timestamp = (origin + timestamp) & 0xFFFFFFFF
            elements = fixed
            if abs_id:
                abs_time = int(time.time() * (1 << 18)) & 0xFFFFFF  # 6.18 fixed point
                elements += bytes([(abs_id << 4) | 2]) + abs_time.to_bytes(3, "big")
            if audio and level_id:
                elements += bytes([level_id << 4, level & 0x7F])
            if elements:
                elements += b"\0" * (-len(elements) % 4)
                extension = b"\xbe\xde" + struct.pack("!H", len(elements) // 4) + elements
            last = len(payloads) - 1
            for i, payload in enumerate(payloads):
                header = struct.pack("!BBHII", 0x90 if elements else 0x80,
                                     (0x80 if i == last else 0) | payload_type,
                                     sequence, timestamp, ssrc)
                sequence = (sequence + 1) & 0xFFFF
                try:
                    await dtls._send_rtp(header + extension + payload if elements
                                         else header + payload)
                except ConnectionError:
                    return
                except Exception:  # e.g. SRTP refusing: count, keep the pace
                    self.errors += 1

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def packetise_clip(media: SiteMedia) -> list[list[bytes]]:
    """The RTP payloads of every frame of a clip (aiortc's VP8 packetiser)."""
    return [Vp8Encoder._packetize(frame, index) for index, frame in enumerate(media.video)]


# -- receiving: counted, never decoded ---------------------------------------------------


@dataclass
class SlotStats:
    """One received video slot."""

    frames: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # second -> n
    changes: list[tuple[float, str]] = field(default_factory=list)  # (time, source)
    unknown: int = 0
    incomplete: int = 0  # frames with a packet missing (lean receive path only)
    first: float | None = None
    source: str | None = None

    def record(self, source: str | None, now: float) -> bool:
        """Count one complete frame from `source` (None: not identified); True if first."""
        self.frames[int(now)] += 1
        if source is None:
            self.unknown += 1
            source = "?"
        if source != self.source:
            self.source = source
            self.changes.append((now, source))
        if self.first is None:
            self.first = now
            return True
        return False


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
    frame_ticks: int = AUDIO_TICKS  # the bridge's mix frame (bridge_audio_frame_ms)

    def add(self, sequence_number: int, timestamp: int, now: float) -> None:
        second = int(now)
        self.packets[second] += 1
        if self.first is None:
            self.first = now
        if self.last_seq is not None:
            gap = (sequence_number - self.last_seq) % 65536
            if gap == 0 or gap >= 32768:
                self.reordered += 1
                return
            if gap > 1:
                self.seq_lost[second] += gap - 1
            step = (timestamp - (self.last_ts or 0)) % (1 << 32)
            if step > self.frame_ticks and step < (1 << 31):
                # A mix frame never sent to us (the bridge's queue dropped it).
                self.ts_missing[second] += step // self.frame_ticks - 1
        self.last_seq, self.last_ts = sequence_number, timestamp


# -- the lean receive path: RTP headers only, at the ICE layer ------------------------------
#
# Through aiortc, each received packet costs a queue hand-off, SRTP, a full
# parse, the receiver's statistics, NACK and jitter buffer: 31 sites would
# need more than a core of this 2-core machine just to receive. The lean
# path takes RTP packets off aioice's `Connection.data_received` (STUN,
# DTLS and RTCP still go the normal way): SRTP leaves RTP headers in clear,
# so sequence numbers, timestamps and marker bits give frames, completeness
# and loss; only the first packet of each video frame is decrypted (with the
# DTLS transport's own SRTP session) to identify the frame's source by the
# hash of its first bytes. The sites then send no receiver reports or NACKs.


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and 192 <= data[1] <= 208


def rtp_payload(packet: bytes) -> bytes:
    """The payload of a (decrypted) RTP packet: after CSRCs and header extensions."""
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        offset += 4 + 4 * int.from_bytes(packet[offset + 2:offset + 4], "big")
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    return packet[offset:end]


def vp8_frame_start(payload: bytes) -> bytes | None:
    """The VP8 data of a payload that starts a frame (RFC 7741: S=1, PID=0), else None."""
    if len(payload) < 2:
        return None
    first = payload[0]
    if not first & 0x10 or first & 0x07:
        return None
    position = 1
    if first & 0x80:  # X: extension octet follows
        extension = payload[1]
        position = 2
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            position += 2 if payload[position] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            position += 1
        if extension & 0x30:  # T or K: TID/KEYIDX octet
            position += 1
    return payload[position:]


def answer_ssrcs(sdp: str) -> list[tuple[set[int], set[int]]]:
    """Per media section of an SDP: (media SSRCs, RTX SSRCs) the far end sends."""
    sections = []
    for section in sdp.split("\nm=")[1:]:
        ssrcs = {int(x) for x in re.findall(r"^a=ssrc:(\d+) ", section, re.MULTILINE)}
        rtx = {int(x) for x in re.findall(r"^a=ssrc-group:FID \d+ (\d+)", section,
                                           re.MULTILINE)}
        sections.append((ssrcs - rtx, rtx))
    return sections


class _VideoStream:
    """Frame assembly state of one received SSRC, from headers only."""

    __slots__ = ("ok", "open", "seq", "slot", "source", "ts")

    def __init__(self, slot: SlotStats) -> None:
        self.slot = slot
        self.seq: int | None = None
        self.ts: int | None = None
        self.ok = False
        self.open = False
        self.source: str | None = None


class LeanReceiver:
    """Counts what one peer connection receives, from its RTP headers (see above)."""

    def __init__(self, site: LoadSite, pc: RTCPeerConnection, slots: list[str]) -> None:
        self.site = site
        transports = {id(t.receiver.transport): t.receiver.transport
                      for t in pc.getTransceivers()}
        if len(transports) != 1:
            raise RuntimeError(f"expected one transport per peer connection, "
                               f"got {len(transports)}")
        self.dtls: Any = next(iter(transports.values()))
        self.audio = slots == ["mix"]
        self.streams: dict[int, _VideoStream] = {}
        self.rtx: set[int] = set()
        self.ignored = 0
        sections = answer_ssrcs(pc.remoteDescription.sdp)
        for index, (ssrcs, rtx) in enumerate(sections):
            name = slots[index] if index < len(slots) else f"line{index}"
            self.rtx |= rtx
            if not self.audio:
                stats = site.slots.setdefault(name, SlotStats())
                for ssrc in ssrcs:
                    self.streams[ssrc] = _VideoStream(stats)
        connection: Any = self.dtls.transport._connection  # aioice.Connection
        original = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            if len(data) >= 12 and 127 < data[0] < 192 and not is_rtcp(data):
                self.on_rtp(data)
            else:
                original(data, component)

        connection.data_received = data_received

    def on_rtp(self, data: bytes) -> None:
        now = time.time()
        seq = (data[2] << 8) | data[3]
        ts = int.from_bytes(data[4:8], "big")
        if self.audio:
            self.site.mix.add(seq, ts, now)
            self.site.audio_at(now)
            return
        stream = self.streams.get(int.from_bytes(data[8:12], "big"))
        if stream is None:
            self.ignored += 1  # RTX, or a stream the answer did not announce
            return
        if ts != stream.ts:
            if stream.open:
                stream.slot.incomplete += 1  # its last packet (marker) never came
            stream.ok = (stream.seq is None or seq == (stream.seq + 1) & 0xFFFF)
            stream.ts, stream.open, stream.source = ts, True, None
            start = self._frame_start(data)
            if start is None:
                stream.ok = False  # the frame's first packet is missing
            else:
                stream.source = self.site.prefix_sources.get(frame_prefix_key(start))
        elif seq != ((stream.seq or 0) + 1) & 0xFFFF:
            stream.ok = False
        stream.seq = seq
        if data[1] & 0x80:  # marker: the frame's last packet
            stream.open = False
            if stream.ok:
                if stream.slot.record(stream.source, now):
                    self.site.first_frame(now)
                self.site.video_frame_at(now)
            else:
                stream.slot.incomplete += 1

    def _frame_start(self, data: bytes) -> bytes | None:
        srtp = self.dtls._rx_srtp
        if srtp is None:
            return None
        try:
            return vp8_frame_start(rtp_payload(srtp.unprotect(data)))
        except Exception:  # pylibsrtp.Error: authentication or replay failure
            return None


class LoadClient(SiteClient):
    """SiteClient whose senders carry audio levels and answer keyframe requests."""

    site: LoadSite

    def _watch(self, pc: RTCPeerConnection, slots: list[str]) -> None:
        super()._watch(pc, slots)
        self.site.pc_slots[id(pc)] = slots
        for transceiver in pc.getTransceivers():
            track = transceiver.sender.track
            if isinstance(track, LoopedAudio):
                send_audio_level(transceiver.sender, track)
                if self.site.lean_send:
                    self.site.lean_senders.append(LeanSender(transceiver.sender, track, None))
            elif isinstance(track, LoopedVideo):
                on_keyframe_request(transceiver.sender, track.request_keyframe)
                if self.site.lean_send:
                    self.site.lean_senders.append(
                        LeanSender(transceiver.sender, track, self.site.payloads))

    async def _offer(self, pc: RTCPeerConnection, kind: str) -> None:
        await super()._offer(pc, kind)
        # Nothing has been received yet: ICE only starts after the answer.
        if self.site.lean:
            self.site.lean_receivers.append(
                LeanReceiver(self.site, pc, self.site.pc_slots[id(pc)]))


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
        self.mix = AudioStats(
            frame_ticks=SAMPLE_RATE * config.get("mix_frame_ms", AUDIO_FRAME_MS) // 1000)
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
        self.lean = config.get("receive_path", "lean") == "lean"
        self.lean_send = config.get("send_path", "lean") == "lean"
        self.lean_senders: list[LeanSender] = []
        self.payloads = packetise_clip(media) if self.lean_send else None
        self.prefix_sources: dict[str, str] = config.get("_prefix_sources", {})
        self.pc_slots: dict[int, list[str]] = {}
        self.lean_receivers: list[LeanReceiver] = []
        # Bridge nodes: where the room is (base URL, generation), the rejoins after drops.
        self.follow_placement = bool(config.get("follow_placement"))
        self.placement: tuple[str, int] | None = None
        self.placement_changed = asyncio.Event()  # wakes a waiting rejoin
        self.redirects = 0
        self.rejoins: list[dict[str, Any]] = []
        self.past_errors: list[dict[str, Any]] = []  # of the clients before a rejoin
        self.stopping = False
        self._watch_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        # After the harness's "killed" command: the media gap at this site.
        self.killed_at: float | None = None
        self.last_audio: float | None = None
        self.audio_before_kill: float | None = None
        self.audio_again: float | None = None
        self.video_again: float | None = None
        self.state: dict[str, Any] = {}
        self.state_at_kill: dict[str, Any] | None = None
        self.first_state_after_kill: dict[str, Any] | None = None

    # -- the agent's event stream ---------------------------------------------------

    async def follow_events(self, session: aiohttp.ClientSession) -> None:
        """Open the event stream; join on the first invitation to our conference."""
        self._session = session
        url = f"{self.config['base_url']}/api/v1/events"
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {self.token}"},
                                      heartbeat=20) as ws:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                body = message.json()
                mine = body.get("conference") == self.config["conference_id"]
                if body.get("type") == "stream.ready":
                    self.events_ready.set()
                elif mine and body.get("type") == "conference.room_placed":
                    self.placed(body.get("data"))
                elif (body.get("type") == "endpoint.invited" and self.invited is None
                      and mine and body.get("endpoint") == self.code):
                    self.placed((body.get("data") or {}).get("bridge"))
                    self.invited = time.time()
                    self._join_task = asyncio.get_running_loop().create_task(self.join())

    def placed(self, bridge: Any, *, authoritative: bool = False) -> None:
        """Where the room is (`bridge`: {node, url, generation}), if newer than known."""
        if not self.follow_placement or not isinstance(bridge, dict):
            return
        url, generation = bridge.get("url"), bridge.get("generation")
        if not isinstance(url, str):
            return
        generation = generation if isinstance(generation, int) else 0
        if authoritative or self.placement is None or generation >= self.placement[1]:
            if self.placement is None or self.placement[0] != url.rstrip("/"):
                self.placement_changed.set()
            self.placement = (url.rstrip("/"), generation)

    @property
    def media_url(self) -> str:
        """The base URL of the node holding the room (the controller when not placed)."""
        return self.placement[0] if self.placement else str(self.config["base_url"])

    async def where_now(self) -> None:
        """Ask the controller where the room is now (after a drop)."""
        assert self._session is not None
        url = f"{self.config['base_url']}/api/v1/conferences/{self.config['conference_id']}"
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with self._session.get(url, headers={"Authorization": f"Bearer {self.token}"},
                                         timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 200:
                    self.placed((await response.json()).get("bridge"), authoritative=True)

    async def join(self) -> None:
        self.join_started = time.time()
        if await self._join_once():
            self.joined = time.time()
            if self.follow_placement:
                self._watch_task = asyncio.get_running_loop().create_task(self._stay())

    async def _join_once(self, attempts: int = 4) -> bool:
        """Join the room where it is, following up to `attempts - 1` redirects."""
        for _ in range(attempts):
            client = LoadClient(
                self.media_url, self.config["conference_id"], self.token,
                RTCConfiguration(iceServers=[]), audio=self.audio, video=self.video,
                on_state=self._on_state, on_received=self._on_received)
            client.site = self
            self.client = client
            try:
                await client.join(timeout=self.config.get("join_timeout", 30.0))
                return True
            except Redirected as redirected:
                self.redirects += 1
                self.placed(redirected.redirect, authoritative=True)
            except Exception as exc:  # reported, not fatal: the other sites carry on
                self.error = f"join failed: {exc!r}"
                log.warning("%s: %s", self.code, self.error)
                return False
        self.error = "join failed: redirected too many times"
        return False

    async def _stay(self) -> None:
        """Rejoin whenever the signaling drops (the node died or was fenced)."""
        deadline = time.monotonic() + self.config["max_seconds"]
        while not self.stopping and time.monotonic() < deadline:
            client = self.client
            assert client is not None
            await client.ended.wait()
            if self.stopping:
                return
            lost = time.time()
            if client.closed_reason == "redirect" and client.redirect:
                self.placed(client.redirect, authoritative=True)
            for sender in self.lean_senders:
                sender.stop()
            self.lean_senders.clear()
            self.past_errors += client.errors
            with contextlib.suppress(Exception):
                await client.close(leave=False)
            self.mix.last_seq = None  # the new node numbers its packets anew
            attempt = 0
            while not self.stopping and time.monotonic() < deadline:
                attempt += 1
                if client.closed_reason != "redirect" or attempt > 1:
                    await self.where_now()
                self.error = None
                if await self._join_once():
                    self.rejoins.append({"lost": lost, "joined": time.time(),
                                         "attempts": attempt, "url": self.media_url})
                    emit({"event": "rejoined", "site": self.code, "at": time.time(),
                          "url": self.media_url})
                    break
                # Again shortly, or at once when conference.room_placed says where.
                self.placement_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.placement_changed.wait(),
                                           min(0.1 * attempt, 1.0))

    def mark_killed(self, at: float) -> None:
        """The harness killed a node at `at`: note the media gap from there."""
        self.killed_at = at
        self.audio_before_kill = self.last_audio
        self.state_at_kill = dict(self.state)

    def audio_at(self, now: float) -> None:
        self.last_audio = now
        if self.killed_at is not None and self.audio_again is None and now > self.killed_at:
            self.audio_again = now

    def video_frame_at(self, now: float) -> None:
        if self.killed_at is not None and self.video_again is None and now > self.killed_at:
            self.video_again = now

    def _on_state(self, state: dict[str, Any]) -> None:
        self.state = state
        if (self.killed_at is not None and self.first_state_after_kill is None
                and time.time() > self.killed_at and self.rejoins):
            self.first_state_after_kill = dict(state)
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
        if self.lean:
            # Packets never reach aiortc's receivers: only retire their decoder threads.
            if item.slot == "mix":
                tap_audio(receiver, lambda _packet: None)
            else:
                tap_video(receiver, lambda _data, _ts: None, lambda _ssrc: None)
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
        self.mix.add(packet.sequence_number, packet.timestamp, time.time())

    def _on_frame(self, stats: SlotStats, data: bytes) -> None:
        now = time.time()
        if stats.record(self.sources.get(frame_key(data)), now):
            self.first_frame(now)

    def first_frame(self, now: float) -> None:
        """A slot received its first frame: tell the harness at the site's first."""
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
            "signal_errors": self.past_errors + (self.client.errors if self.client else []),
            "send_errors": sum(sender.errors for sender in self.lean_senders),
            "sent": {"video": self.video.sent, "video_late": self.video.late,
                     "keyframe_requests": self.video.keyframe_requests,
                     "audio": self.audio.sent, "audio_late": self.audio.late},
            "slots": {name: {"frames": dict(s.frames), "changes": s.changes,
                             "unknown": s.unknown, "incomplete": s.incomplete,
                             "first": s.first}
                      for name, s in self.slots.items()},
            "ignored_packets": sum(r.ignored for r in self.lean_receivers),
            "audio": {"packets": dict(self.mix.packets), "seq_lost": dict(self.mix.seq_lost),
                      "ts_missing": dict(self.mix.ts_missing), "reordered": self.mix.reordered},
            "holder_changes": self.holder_changes,
            "redirects": self.redirects, "rejoins": self.rejoins,
            "killed_at": self.killed_at, "audio_before_kill": self.audio_before_kill,
            "audio_again": self.audio_again, "video_again": self.video_again,
            "state_at_kill": _room_state(self.state_at_kill),
            "first_state_after_kill": _room_state(self.first_state_after_kill),
            "last_state": _room_state(self.state),
        }


def _room_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """What must survive a failover: the floor holder and queue, mutes, the lock."""
    if not state:
        return None
    return {key: state.get(key) for key in ("holder", "queue", "muted", "locked", "recording")}


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
    config["_prefix_sources"] = frame_prefix_sources(root)
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
            if command.get("cmd") == "killed":
                for site in sites:
                    site.mark_killed(float(command["at"]))
                continue
            if command.get("cmd") in ("mute", "lock"):
                chair = by_code.get(config["chair"])
                message = {k: v for k, v in command.items() if k != "cmd"}
                message["type"] = command["cmd"]
                if chair is not None and chair.client is not None:
                    with contextlib.suppress(Exception):
                        await chair.client.send(message)
                continue
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
        for site in sites:
            site.stopping = True
            if site._watch_task is not None:
                site._watch_task.cancel()
        for task in tasks:
            task.cancel()
        stopping = time.time()
        results = {site.code: site.result() for site in sites}  # before closing: final counts
        for site in sites:
            for sender in site.lean_senders:
                sender.stop()
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
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        uvloop.install()
    result = asyncio.run(run(config))
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
