"""One site's media, and the audio mixes, as a bridge process sees them: the types the
bridge reports and the metrics read.

Two features share them (the bridge fills them, monitoring exports them) and features
never import each other, so they live in the core; the composition root hands the
bridge's reports to the metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class MediaCounters:
    """One endpoint's media counters and latest quality figures.

    Counters are cumulative over the site's current connection (a decrease
    means they restarted); None: not measured by the source."""

    packets_received: int | None = None  # audio packets from the site
    packets_lost: int | None = None  # audio packets from the site that never came
    bytes_received: int | None = None  # audio payload and video frame bytes from the site
    bytes_sent: int | None = None  # what the bridge's senders sent the site (RTP payload)
    frames_received: int | None = None  # camera frames from the site
    round_trip_time_seconds: float | None = None  # latest value
    jitter_seconds: float | None = None  # latest value: the site's jitter on what it receives


# Endpoint code -> its media counters; only endpoints connected to a room of this process.
MediaSource = Callable[[], Mapping[str, MediaCounters]]


@dataclass(frozen=True)
class MixCounters:
    """The audio mixes of a bridge process's rooms, cumulative: those of rooms already
    closed are kept, so that every counter only grows.

    Why it is exported: the mix is the bridge's cost per frame rather than per
    packet, and skipped frames are what an overloaded bridge sounds like."""

    frames_by_speakers: tuple[int, ...] = ()  # frames mixed, by sites mixed in them (index)
    skipped_frames: int = 0  # frames the mix clock skipped because the process fell behind
    encodes: int = 0  # Opus encodes (the common mix and mix-minus ones)
    forwarded: int = 0  # mix-minus packets that were the other speaker's own, not encoded
    packets_decoded: int = 0  # site packets decoded for the mix
    packets_discarded: int = 0  # site packets nobody was to hear (not among the speakers)
    packets_dropped: int = 0  # site packets dropped because too many were queued
    packets_concealed: int = 0  # missing packets of a speaker, concealed
    decode_errors: int = 0  # malformed packets of a speaker (concealed instead)

    def plus(self, other: MixCounters) -> MixCounters:
        """Both counts added up."""
        ours, theirs = self.frames_by_speakers, other.frames_by_speakers
        width = max(len(ours), len(theirs))
        ticks = tuple((ours[i] if i < len(ours) else 0) + (theirs[i] if i < len(theirs) else 0)
                      for i in range(width))
        return MixCounters(ticks, *(getattr(self, f.name) + getattr(other, f.name)
                                    for f in fields(self)[1:]))


# The process's audio mixes so far.
MixSource = Callable[[], MixCounters]
