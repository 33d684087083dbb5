"""The conference's audio mix: decode the few selected speakers, encode few mixes.

Every frame (20 ms by default) the bridge calls `AudioMixer.mix` with the
speakers chosen for that frame (by audio level, elsewhere). The mixer decodes
only their packets, and encodes:

- one common mix of all speakers, the same packet for every site that is not a
  speaker;
- for each speaker, a mix-minus of the other speakers (a speaker must not hear
  itself).

So a tick costs at most `max_speakers` decodes and `max_speakers + 1` encodes (one with
two speakers, see below),
however many sites there are; the packets of the other sites are dropped
unread. The mix is 48 kHz mono int16 (speech; mono packets play on both
channels of a stereo-negotiated stream), summed in int32 and hard-clipped to
int16: with at most three speakers at speech levels the sum rarely reaches full
scale, so a limiter would cost CPU for little.

Decisions a caller relies on:

- Nobody speaking: `MixResult.common` is a cached packet of encoded silence (the
  same bytes object every tick), so receivers keep getting a packet per frame and
  their jitter buffers and RTP timestamps stay continuous; it costs no encode.
  With `send_silence=False` it is None instead and the bridge sends nothing.
  The first silent tick after speech still runs the common encoder once on
  zeros, so the end of the last word (libopus's 6.5 ms look-ahead) is not cut.
- A single speaker has nobody to hear: its `per_speaker` packet is the cached
  silence packet, with no encode.
- Two speakers (the chair and whoever has the floor, the usual exchange) each hear
  only the other: a speaker's mix-minus is then the other's own Opus packet of that
  frame, forwarded without an encode, when that frame came as exactly one whole
  packet (the sites send the mixer's frame duration; otherwise, after a carry-over or
  a concealment, it is encoded as with three). So two speakers cost one encode a tick.
- Each site keeps one `OpusDecoder` (and, once it has spoken, one `OpusEncoder`
  for its mix-minus) for as long as it is in the conference, so a site selected
  again after a pause resumes with the same codec state.
- A selected speaker whose packet has not arrived gets libopus's packet loss
  concealment when a packet of it was decoded since it was (last) selected, and
  silence otherwise (concealment would replay stale audio from before a pause).
- `push` keeps at most `max_queued` packets per site and drops the oldest beyond
  that (counted). Sites are expected to send packets of the mixer's frame
  duration; shorter ones are decoded and carried over between ticks correctly,
  but then `max_queued` must grow with the packets per frame.

Measured cost of one `mix` (CPU time of the thread, median; p95 in brackets)
with 30 sites pushing speech-like packets, encoder complexity 5, on this 2-core
machine while other work kept it busy (load 4-6), so read them as upper bounds:

| speakers | 20 ms frames | 60 ms frames |
| --- | --- | --- |
| 3 (3 decodes, 4 encodes) | 1.4-1.7 ms (2.0-2.7) | 3.4-5.1 ms (4.2-6.2) |
| 2 (2 decodes, 3 encodes) | 1.0-1.4 ms (1.6-2.0) | |
| 1 (1 decode, 1 encode) | 0.5-0.6 ms (0.9-1.1) | 0.9-1.0 ms (1.4-1.7) |
| none (cached silence) | 0.01 ms | |

Nearly all of it is libopus: with the codecs stubbed out, the mixer's own Python
and numpy work is about 50 us for 3 speakers (6 us with none), and 30 `push`
calls take 10-40 us. At 20 ms, 3 speakers cost about 7-9 % of one core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bridge.opus_codec import (
    FRAME_DURATIONS_MS,
    SAMPLE_RATE,
    OpusDecoder,
    OpusEncoder,
    Pcm,
    silence,
)

# Frames of silence the cached silence packet is taken after, so it comes from
# an encoder in its steady state rather than its first, start-up packet.
_SILENCE_WARMUP_FRAMES = 5


class FrameDecoder(Protocol):
    """What the mixer decodes a site's queued payloads with (`OpusDecoder` by default)."""

    def decode(self, payload: bytes) -> Pcm:
        """The 48 kHz mono samples of one payload (ValueError when malformed)."""
        ...

    def conceal(self, samples: int | None = None) -> Pcm:
        """Samples standing in for a missing payload."""
        ...


class DecodedPcm:
    """The "decoder" of a site whose audio arrives already decoded (a SIP site: the bridge
    decodes every packet on arrival to measure its level, RFC 6464 being absent): its
    payloads are 48 kHz int16 samples as bytes. A missing one is silence."""

    def decode(self, payload: bytes) -> Pcm:
        """The samples carried by `payload`."""
        return np.frombuffer(payload, dtype=np.int16)

    def conceal(self, samples: int | None = None) -> Pcm:
        """Silence (the SIP codecs' own concealment happened before, if any)."""
        return silence(960 if samples is None else samples)


@dataclass(frozen=True)
class MixResult:
    """What the sites hear for one frame.

    `common` goes to every site that is not in `speakers` (None only when nobody
    speaks and the mixer was built with `send_silence=False`); `per_speaker`
    holds the mix-minus packet of each speaker.
    """

    common: bytes | None
    per_speaker: dict[str, bytes]
    speakers: tuple[str, ...]
    # The same mixes as samples (48 kHz int16), for sites that get another codec (SIP).
    common_pcm: Pcm | None = None
    per_speaker_pcm: dict[str, Pcm] = field(default_factory=dict)

    def packet_for(self, code: str) -> bytes | None:
        """The packet site `code` receives this frame."""
        return self.per_speaker.get(code, self.common)


@dataclass
class _Site:
    """One site's buffer and codec state."""

    queue: deque[bytes]
    decoder: FrameDecoder = field(default_factory=OpusDecoder)
    encoder: OpusEncoder | None = None  # its mix-minus encoder, made when it first speaks
    carry: Pcm | None = None  # decoded samples beyond the last frame
    live: bool = False  # mixed in the previous tick, so concealment continues its audio
    pushed: int = 0
    dropped: int = 0


class AudioMixer:
    """Mixes the selected speakers of one conference, frame by frame."""

    def __init__(
        self,
        max_speakers: int = 3,
        frame_samples: int = 960,
        *,
        bitrate: int = 32_000,
        encoder_complexity: int = 5,
        max_queued: int = 3,
        send_silence: bool = True,
    ) -> None:
        """Set up the mixer for frames of `frame_samples` (960 = 20 ms, 2880 = 60 ms).

        `encoder_complexity` defaults to 5 rather than libopus's 10: the encodes
        are most of the mixer's CPU, and 5 costs about a third less with little
        loss for speech at 32 kbit/s.
        """
        if max_speakers < 1:
            raise ValueError("max_speakers must be at least 1")
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.frame_duration_ms = frame_samples * 1000 / SAMPLE_RATE
        if self.frame_duration_ms not in FRAME_DURATIONS_MS:
            raise ValueError(f"frame_samples must be 48 kHz frames of {FRAME_DURATIONS_MS} ms")
        self.frame_samples = frame_samples
        self.max_speakers = max_speakers
        self.max_queued = max_queued
        self._bitrate = bitrate
        self._complexity = encoder_complexity
        self._send_silence = send_silence
        self._sites: dict[str, _Site] = {}
        self._common = self._new_encoder()
        self._common_live = False  # the common encoder's last input was speech
        self._silence_packet = self._encode_silence()
        self._zeros = silence(self.frame_samples)
        self._live: tuple[str, ...] = ()
        self._pushed = 0
        self._dropped = 0
        self._decoded = 0
        self._concealed = 0
        self._decode_errors = 0
        self._discarded = 0
        self._encodes = 0
        self._forwarded = 0  # mix-minus packets that were the other speaker's own
        self._ticks = 0
        self._ticks_by_speakers = [0] * (max_speakers + 1)  # index: sites mixed that tick
        self._last_tick_encodes = 0

    @property
    def silence_packet(self) -> bytes:
        """The cached Opus packet of one frame of silence."""
        return self._silence_packet

    @property
    def sites(self) -> frozenset[str]:
        """Codes of the sites in the mix."""
        return frozenset(self._sites)

    def add_site(self, code: str, decoder: FrameDecoder | None = None) -> None:
        """Start accepting packets from site `code` (no effect if already there),
        decoded with `decoder` (default: Opus)."""
        if code not in self._sites:
            site = _Site(queue=deque(maxlen=self.max_queued))
            if decoder is not None:
                site.decoder = decoder
            self._sites[code] = site

    def remove_site(self, code: str) -> None:
        """Forget site `code` and its codec state (no effect if unknown)."""
        self._sites.pop(code, None)

    def push(self, code: str, payload: bytes) -> None:
        """Queue one Opus packet (RTP payload) of site `code` for the next tick.

        Packets of unknown sites are ignored: the site may have just left. When the
        site's queue is full the oldest packet is dropped and counted.
        """
        site = self._sites.get(code)
        if site is None:
            return
        site.pushed += 1
        self._pushed += 1
        if len(site.queue) == self.max_queued:
            site.dropped += 1
            self._dropped += 1
        site.queue.append(payload)  # a full deque drops its oldest itself

    def mix(self, speakers: Sequence[str]) -> MixResult:
        """Mix one frame for the given speakers, loudest first.

        Unknown codes and repeats are skipped, and only the first `max_speakers`
        are mixed; `MixResult.speakers` says which were. The queues of all other
        sites are emptied without decoding.
        """
        self._ticks += 1
        encodes = 0
        chosen: list[str] = []
        for code in speakers:
            if code in self._sites and code not in chosen:
                chosen.append(code)
                if len(chosen) == self.max_speakers:
                    break
        selected = tuple(chosen)

        # Sites that just stopped being mixed: their leftover samples are stale.
        for code in self._live:
            if code not in selected and code in self._sites:
                site = self._sites[code]
                site.live = False
                site.carry = None

        taken = {code: self._take(self._sites[code]) for code in selected}
        pcm = {code: samples for code, (samples, _packet) in taken.items()}

        # The one loop over all sites: drop what nobody will hear.
        for code, site in self._sites.items():
            if site.queue and code not in pcm:
                self._discarded += len(site.queue)
                site.queue.clear()

        self._live = selected
        self._ticks_by_speakers[len(selected)] += 1
        per_speaker: dict[str, bytes] = {}
        per_speaker_pcm: dict[str, Pcm] = {}
        common: bytes | None
        common_pcm = self._zeros
        if not selected:
            if self._common_live:
                # Flush the look-ahead of the last speech rather than cut it off.
                common = self._common.encode(self._zeros)
                encodes += 1
                self._common_live = False
            else:
                common = self._silence_packet if self._send_silence else None
        else:
            total = np.zeros(self.frame_samples, dtype=np.int32)
            for samples in pcm.values():
                total += samples
            common_pcm = _clip(total)
            common = self._common.encode(common_pcm)
            encodes += 1
            self._common_live = True
            for code, own in pcm.items():
                if len(selected) == 1:
                    per_speaker[code] = self._silence_packet
                    per_speaker_pcm[code] = self._zeros
                    continue
                if len(selected) == 2:
                    # Two speakers: each hears only the other, whose packet this frame
                    # is, when it came whole, what a mix-minus encode would give anew.
                    other = selected[1] if code == selected[0] else selected[0]
                    packet = taken[other][1]
                    if packet is not None:
                        per_speaker[code] = packet
                        per_speaker_pcm[code] = pcm[other]
                        self._forwarded += 1
                        continue
                site = self._sites[code]
                if site.encoder is None:
                    site.encoder = self._new_encoder()
                per_speaker_pcm[code] = minus = _clip(total - own)
                per_speaker[code] = site.encoder.encode(minus)
                encodes += 1

        self._encodes += encodes
        self._last_tick_encodes = encodes
        return MixResult(common=common, per_speaker=per_speaker, speakers=selected,
                         common_pcm=common_pcm, per_speaker_pcm=per_speaker_pcm)

    def stats(self) -> dict[str, Any]:
        """Counters since creation, for monitoring."""
        return {
            "sites": len(self._sites),
            "ticks": self._ticks,
            "ticks_by_speakers": tuple(self._ticks_by_speakers),
            "packets_pushed": self._pushed,
            "packets_dropped": self._dropped,
            "packets_decoded": self._decoded,
            "packets_discarded": self._discarded,
            "packets_concealed": self._concealed,
            "decode_errors": self._decode_errors,
            "encodes": self._encodes,
            "forwarded": self._forwarded,
            "encodes_last_tick": self._last_tick_encodes,
            "encodes_per_tick": self._encodes / self._ticks if self._ticks else 0.0,
            "dropped_by_site": {c: s.dropped for c, s in self._sites.items() if s.dropped},
        }

    def _take(self, site: _Site) -> tuple[Pcm, bytes | None]:
        """Exactly one frame of a selected site's audio, decoding its queued packets; and
        the Opus packet it came from when it is exactly that one packet (no carry-over, no
        concealment), so that it can be forwarded as it is."""
        parts: list[Pcm] = []
        have = 0
        whole: bytes | None = None
        if site.carry is not None:
            parts.append(site.carry)
            have = len(site.carry)
            site.carry = None
        while have < self.frame_samples and site.queue:
            payload = site.queue.popleft()
            try:
                samples = site.decoder.decode(payload)
                self._decoded += 1
                if not parts and len(samples) == self.frame_samples:
                    whole = payload
            except ValueError:  # PyAV's InvalidDataError: a malformed packet
                self._decode_errors += 1
                samples = site.decoder.conceal()
            parts.append(samples)
            have += len(samples)
            # Its audio is now current, so a late packet may be concealed.
            site.live = True
        if have < self.frame_samples:
            missing = self.frame_samples - have
            if site.live:
                self._concealed += 1
                parts.append(site.decoder.conceal(missing))
            else:
                parts.append(silence(missing))
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if len(out) > self.frame_samples:
            site.carry = out[self.frame_samples :]
            out = out[: self.frame_samples]
        if len(parts) != 1 or not isinstance(site.decoder, OpusDecoder):
            whole = None
        return out, whole

    def _new_encoder(self) -> OpusEncoder:
        return OpusEncoder(
            bitrate=self._bitrate,
            frame_duration_ms=self.frame_duration_ms,
            complexity=self._complexity,
        )

    def _encode_silence(self) -> bytes:
        encoder = self._new_encoder()
        zeros = silence(self.frame_samples)
        packet = b""
        for _ in range(_SILENCE_WARMUP_FRAMES):
            packet = encoder.encode(zeros)
        return packet


def _clip(mix: npt.NDArray[np.int32]) -> Pcm:
    """An int32 sum clipped to int16."""
    return np.clip(mix, -32768, 32767).astype(np.int16)
