"""The conference's audio clock: every frame, rank, mix and send.

Packets arrive from the receive taps with their RFC 6464 level. The level
feeds the active-speaker detector (no decoding needed to rank 31 sites); the
Opus payload waits in the mixer. Every frame the engine picks the few
loudest audible sites (within `mix_range_db` of the loudest), has the mixer
decode and mix only those, and sends the same common packet to every other
site, and each speaker its mix-minus.
One monotonic timestamp line is shared by all outputs, so each receiver's
RTP timestamps stay continuous whatever mix it gets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from aiortc.rtp import RtpPacket

from bridge.active_speaker import ActiveSpeakerDetector
from bridge.audio_mixer import AudioMixer, FrameDecoder
from bridge.opus_codec import Pcm
from bridge.rtp_forwarder import AudioOutput
from vcbridge.core.media_counters import MixCounters

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
SILENT_LEVEL = 127  # RFC 6464: -127 dBov, used when a packet carries no level


class PcmOutput(Protocol):
    """Where a site that gets its mix in another codec (a SIP site) is sent its frames."""

    def push_pcm(self, pcm: Pcm, pts: int, common: bool) -> bool:
        """Encode and send one frame of the mix (48 kHz int16) at `pts` (48 kHz).
        `common`: the common mix, the same samples for every site that is not speaking
        this frame (so its encoding can be shared); else the site's own mix-minus."""
        ...


@dataclass
class ReceiveStats:
    """What the bridge saw of one site's audio (aiortc's own counters are bypassed)."""

    packets: int = 0
    lost: int = 0
    bytes: int = 0  # payload bytes
    highest_seq: int | None = None

    def add(self, sequence_number: int) -> None:
        self.packets += 1
        if self.highest_seq is not None:
            gap = (sequence_number - self.highest_seq) % 65536
            if 1 < gap < 32768:  # forward jump: the packets in between were lost
                self.lost += gap - 1
            if gap >= 32768:  # a late or duplicate packet
                return
        self.highest_seq = sequence_number

    @property
    def loss_ratio(self) -> float:
        expected = self.packets + self.lost
        return self.lost / expected if expected else 0.0


class AudioEngine:
    """Mixes one conference's audio on a fixed frame clock."""

    def __init__(self, *, frame_ms: int = 20, max_speakers: int = 3, mix_range_db: float = 20.0,
                 on_speaker_change: Callable[[str | None], None] | None = None) -> None:
        """`mix_range_db`: a site more than this far below the loudest speaker is not
        mixed. Under speech 20 dB louder it cannot be heard (masked), yet mixing it costs a
        decode and a mix-minus encode a frame and adds its room noise to everyone's mix;
        a room's murmur (about -45 dBov) beside a talker (about -20) is the usual case."""
        self.frame_ms = frame_ms
        self.mix_range_db = mix_range_db
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        # Room for two frames of 20 ms packets (browsers send 20 ms whatever we send).
        self.mixer = AudioMixer(max_speakers=max_speakers, frame_samples=self.frame_samples,
                                max_queued=max(3, 2 * frame_ms // 20))
        self.detector = ActiveSpeakerDetector()
        self.max_speakers = max_speakers
        self.outputs: dict[str, AudioOutput] = {}
        self.pcm_outputs: dict[str, PcmOutput] = {}  # sites mixed for in their own codec
        self.stats: dict[str, ReceiveStats] = {}
        self.audible: frozenset[str] = frozenset()
        self._on_speaker_change = on_speaker_change
        # While the room records: gets the common mix packet and its pts every tick.
        self.on_common: Callable[[bytes, int], None] | None = None
        self._speaker: str | None = None
        self._pts = 0
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_event_loop()
        self.ticks = 0
        self.late_ticks = 0  # times the clock fell more than a frame behind
        self.skipped_frames = 0  # the frames it then skipped (not mixed, not sent)

    def add_site(self, code: str, output: AudioOutput) -> None:
        """A site's audio connected (again): its mix goes to `output`."""
        if code in self.pcm_outputs:
            self.remove_site(code)
        if code not in self.outputs:
            self.mixer.add_site(code)
        self.outputs[code] = output
        self.stats.setdefault(code, ReceiveStats())

    def add_decoded_site(self, code: str, output: AudioOutput | PcmOutput,
                         decoder: FrameDecoder) -> None:
        """A site whose audio the bridge decodes on arrival (`on_decoded`, a SIP site):
        its mix goes to `output`, as the common Opus packets (an `AudioOutput`: an Opus
        site) or as samples it encodes itself (a `PcmOutput`: G.711, G.722)."""
        self.remove_site(code)
        self.mixer.add_site(code, decoder)
        if hasattr(output, "push_pcm"):
            self.pcm_outputs[code] = output  # type: ignore[assignment]
        else:
            self.outputs[code] = output
        self.stats.setdefault(code, ReceiveStats())

    def remove_site(self, code: str) -> None:
        """A site's audio went away."""
        had = self.outputs.pop(code, None) is not None
        had = self.pcm_outputs.pop(code, None) is not None or had
        if had:
            self.mixer.remove_site(code)
            self.detector.forget(code)

    def on_packet(self, code: str, packet: RtpPacket) -> None:
        """A decrypted audio packet from `code` (from the receive tap)."""
        level = packet.extensions.audio_level
        self._receive(code, packet.sequence_number, packet.payload,
                      level[1] if level else SILENT_LEVEL, len(packet.payload))

    def on_decoded(self, code: str, sequence_number: int, queued: bytes, level: int,
                   payload_bytes: int) -> None:
        """A packet of a site added with `add_decoded_site`, decoded by its leg: `queued`
        is what the site's `FrameDecoder` takes (samples), `level` what the leg measured
        (RFC 6464 units)."""
        self._receive(code, sequence_number, queued, level, payload_bytes)

    def _receive(self, code: str, sequence_number: int, payload: bytes, level: int,
                 payload_bytes: int) -> None:
        stats = self.stats.get(code)
        if stats is None:
            return  # the site has just gone
        stats.add(sequence_number)
        stats.bytes += payload_bytes
        now_ms = int(self._loop.time() * 1000)
        if code in self.audible:
            self.detector.update(code, level, now_ms)
            self.mixer.push(code, payload)
        else:  # muted: neither heard nor a candidate for the main video
            self.detector.update(code, SILENT_LEVEL, now_ms)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audio-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def mix_counters(self) -> MixCounters:
        """This mix's counters so far (for the metrics)."""
        stats = self.mixer.stats()
        return MixCounters(
            frames_by_speakers=stats["ticks_by_speakers"],
            skipped_frames=self.skipped_frames,
            encodes=stats["encodes"],
            forwarded=stats["forwarded"],
            packets_decoded=stats["packets_decoded"],
            packets_discarded=stats["packets_discarded"],
            packets_dropped=stats["packets_dropped"],
            packets_concealed=stats["packets_concealed"],
            decode_errors=stats["decode_errors"],
        )

    @property
    def speaker(self) -> str | None:
        """The current active speaker (with hysteresis)."""
        return self._speaker

    async def _run(self) -> None:
        period = self.frame_ms / 1000
        next_tick = self._loop.time() + period
        while True:
            delay = next_tick - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:  # fell behind by more than a frame: skip, don't burst
                self.late_ticks += 1
                self.skipped_frames += int(-delay / period)
                next_tick = self._loop.time()
            next_tick += period
            try:
                self._tick()
            except Exception:  # one bad packet must not silence the conference
                log.exception("audio tick failed")

    def _tick(self) -> None:
        self.ticks += 1
        # Time passes for the detector even when no packet comes: a speaker whose stream
        # stopped (its network went, every site muted or gone) is released on time.
        self.detector.tick(int(self._loop.time() * 1000))
        speakers = [c for c in self.detector.loudest(self.max_speakers,
                                                     within_db=self.mix_range_db)
                    if c in self.audible]
        result = self.mixer.mix(speakers)
        self._pts += self.frame_samples
        time_base = Fraction(1, SAMPLE_RATE)
        for code, output in self.outputs.items():
            data = result.per_speaker.get(code, result.common)
            if data is not None:
                output.push(data, self._pts, time_base)
        for code, pcm_output in self.pcm_outputs.items():
            own = result.per_speaker_pcm.get(code)
            if own is not None:
                pcm_output.push_pcm(own, self._pts, False)
            elif result.common_pcm is not None:
                pcm_output.push_pcm(result.common_pcm, self._pts, True)
        if self.on_common is not None and result.common is not None:
            self.on_common(result.common, self._pts)
        current = self.detector.current()
        if current != self._speaker:
            self._speaker = current
            if self._on_speaker_change is not None:
                self._on_speaker_change(current)
