"""The call figures of a heartbeat, from the agent's own peer connections.

Every heartbeat the agent reads its connections' statistics in the conference
it is in and keeps the differences from the previous reading, so each figure
covers the last interval only (docs/monitoring.md, "What the agent measures"):

- received, per kind: packets received and lost by sequence number and the
  jitter of each of the bridge's streams (`media_tap.received_streams`:
  aiortc's `getStats()` keeps one inbound entry per receiver, which a
  retransmission stream overwrites), and the bit rate from the bytes of the
  kind's peer connection (`getStats()`, "transport");
- received video frames per second, per slot: frames decoded by the agent's
  reader of the slot (`received_media.VideoSlot`), for each slot whose receiver
  took packets during the interval;
- sent, per kind: the bit rate and packets (`getStats()`, "transport" and
  "outbound-rtp"), and from the bridge's RTCP receiver reports that arrived
  during the interval (`getStats()`, "remote-inbound-rtp") the round-trip time,
  the fraction lost and the jitter.

The summary (`rtt_ms`, `jitter_ms`, `packet_loss_ratio`, `fps`) is the worst of
the kinds; the bit rates are both kinds together.

A connection or slot read for the first time (just joined) started at an unknown
moment of the interval: its counts (packets, losses) are reported, but no rate
(bit rate, frames per second) until the next reading, rather than a rate made too
low by a start that fell inside the interval."""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from bridge.agent.received_media import VideoSlot
from bridge.media_tap import received_streams

CLOCK_RATES = {"audio": 48_000, "video": 90_000}  # RTP clocks: jitter comes in their units
KINDS = ("audio", "video")


@dataclass
class _Direction:
    """One kind's figures in one direction, summed over the interval."""

    bytes: int | None = 0  # None: a connection read for the first time
    packets: int = 0
    lost: int = 0
    jitters_ms: list[float] = field(default_factory=list)
    rtts_ms: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # fractions from receiver reports
    fps_by_slot: dict[str, float] = field(default_factory=dict)


def _worst(values: Iterable[float | None], *, lowest: bool = False) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return min(present) if lowest else max(present)


def _since(now: tuple[int, ...], before: tuple[int, ...] | None) -> tuple[int, ...]:
    """Counters `now` minus `before` (all of `now` when there was no reading, or when a
    counter went back: a new stream under the same key)."""
    if before is None or len(before) != len(now) or any(
            n < b for n, b in zip(now, before, strict=True)):
        return now
    return tuple(n - b for n, b in zip(now, before, strict=True))


def _rate(amount: int | None, seconds: float, scale: float = 1.0) -> float | None:
    return None if amount is None else amount * scale / seconds


@dataclass
class _PeerReading:
    """The previous reading of one peer connection."""

    transport: tuple[int, ...] | None = None  # bytes received, bytes sent
    packets_sent: dict[str, tuple[int, ...]] = field(default_factory=dict)  # by stats id
    report_at: dict[str, datetime.datetime] = field(default_factory=dict)  # by stats id


class CallMeter:
    """Reads one connection's figures each interval. The previous reading is kept per
    object (peer connection, receiver, video slot) and forgotten with it, so a rejoin's
    new connections start from zero."""

    def __init__(self) -> None:
        self._peers: weakref.WeakKeyDictionary[RTCPeerConnection, _PeerReading] = (
            weakref.WeakKeyDictionary())
        self._receivers: weakref.WeakKeyDictionary[Any, dict[int, tuple[int, ...]]] = (
            weakref.WeakKeyDictionary())
        self._slots: weakref.WeakKeyDictionary[VideoSlot, tuple[int, ...]] = (
            weakref.WeakKeyDictionary())

    async def read(self, pcs: Sequence[RTCPeerConnection], slots: Sequence[VideoSlot],
                   seconds: float) -> dict[str, Any]:
        """The heartbeat's `call` object (without `conference`) over the last `seconds`."""
        seconds = max(seconds, 0.001)
        received = {kind: _Direction() for kind in KINDS}
        sent = {kind: _Direction() for kind in KINDS}
        kinds_seen: set[str] = set()
        packets_by_receiver: dict[int, int] = {}
        for pc in pcs:
            transceivers = pc.getTransceivers()
            if pc.connectionState == "closed" or not transceivers:
                continue
            kind = transceivers[0].kind
            kinds_seen.add(kind)
            reading = self._peers.setdefault(pc, _PeerReading())
            stats = list((await pc.getStats()).values())
            self._read_transport(reading, stats, received[kind], sent[kind])
            self._read_sent(reading, stats, sent)
            for transceiver in transceivers:
                packets_by_receiver[id(transceiver.receiver)] = self._read_received(
                    transceiver.receiver, received[transceiver.kind])
        for slot in slots:
            before = self._slots.get(slot)
            (frames,) = _since((slot.frames,), before)
            self._slots[slot] = (slot.frames,)
            if before is not None and packets_by_receiver.get(id(slot.receiver), 0) > 0:
                received["video"].fps_by_slot[slot.slot] = round(frames / seconds, 2)
        return _figures(received, sent, kinds_seen, seconds)

    @staticmethod
    def _read_transport(reading: _PeerReading, stats: Iterable[Any], received: _Direction,
                        sent: _Direction) -> None:
        # A peer connection carries one kind: its transport's bytes are that kind's
        # (SRTP and SRTCP: a little above the media's own rate).
        now = (sum(int(s.bytesReceived) for s in stats if s.type == "transport"),
               sum(int(s.bytesSent) for s in stats if s.type == "transport"))
        before, reading.transport = reading.transport, now
        if before is None:  # new: since an unknown moment of the interval
            received.bytes = sent.bytes = None
            return
        got, out = _since(now, before)
        if received.bytes is not None and sent.bytes is not None:
            received.bytes += got
            sent.bytes += out

    @staticmethod
    def _read_sent(reading: _PeerReading, stats: Iterable[Any],
                   sent: dict[str, _Direction]) -> None:
        for item in stats:
            kind = getattr(item, "kind", "")
            if kind not in sent:
                continue
            if item.type == "outbound-rtp":
                now = (int(item.packetsSent),)
                (packets,) = _since(now, reading.packets_sent.get(item.id))
                reading.packets_sent[item.id] = now
                sent[kind].packets += packets
            elif item.type == "remote-inbound-rtp":
                # Only a receiver report that arrived during the interval tells about
                # it: aiortc keeps the last one for ever.
                last = reading.report_at.get(item.id)
                reading.report_at[item.id] = item.timestamp
                if last is not None and item.timestamp <= last:
                    continue
                direction = sent[kind]
                if item.roundTripTime is not None:
                    # On loopback the report's delay (1/65536 s units) may exceed the
                    # measured time by a hair: a round trip is never below zero.
                    direction.rtts_ms.append(max(float(item.roundTripTime) * 1000, 0.0))
                direction.losses.append(int(item.fractionLost) / 256)
                direction.jitters_ms.append(int(item.jitter) / CLOCK_RATES[kind] * 1000)

    def _read_received(self, receiver: Any, received: _Direction) -> int:
        """Add `receiver`'s streams to `received`; the packets it took in the interval."""
        before = self._receivers.setdefault(receiver, {})
        packets = 0
        for stream in received_streams(receiver):
            now = (stream.packets_received, stream.packets_lost)
            got, lost = _since(now, before.get(stream.ssrc))
            before[stream.ssrc] = now
            packets += got
            received.packets += got
            received.lost += lost
            if got > 0:
                received.jitters_ms.append(stream.jitter / stream.clock_rate * 1000)
        return packets


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else float(round(value, digits))


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of the values (None when one is not known: a kind read for the first time)."""
    known = list(values)
    if not known or any(v is None for v in known):
        return None
    return float(sum(v for v in known if v is not None))


def _figures(received: dict[str, _Direction], sent: dict[str, _Direction],
             kinds: set[str], seconds: float) -> dict[str, Any]:
    """The `call` object from the interval's sums: the detail per kind and the summary."""
    call: dict[str, Any] = {}
    for kind in KINDS:
        if kind not in kinds:
            continue
        got, out = received[kind], sent[kind]
        expected = got.packets + got.lost
        inbound: dict[str, Any] = {
            "bitrate_bps": _rounded(_rate(got.bytes, seconds, 8), 0),
            "packets_received": got.packets,
            "packets_lost": got.lost,
            "loss_ratio": round(got.lost / expected, 4) if expected else None,
            "jitter_ms": _rounded(_worst(got.jitters_ms), 2),
        }
        if kind == "video":
            inbound["fps_by_slot"] = dict(got.fps_by_slot)
        call[kind] = {
            "in": inbound,
            "out": {
                "bitrate_bps": _rounded(_rate(out.bytes, seconds, 8), 0),
                "packets_sent": out.packets,
                "loss_ratio": _rounded(_worst(out.losses), 4),
                "jitter_ms": _rounded(_worst(out.jitters_ms), 2),
                "rtt_ms": _rounded(_worst(out.rtts_ms), 1),
            },
        }
    details = [call[kind] for kind in KINDS if kind in call]
    fps = call.get("video", {}).get("in", {}).get("fps_by_slot") or {}
    return {
        "rtt_ms": _worst(d["out"]["rtt_ms"] for d in details),
        "jitter_ms": _worst(d["in"]["jitter_ms"] for d in details),
        "packet_loss_ratio": _worst(d["in"]["loss_ratio"] for d in details),
        "bitrate_in_bps": _total(d["in"]["bitrate_bps"] for d in details),
        "bitrate_out_bps": _total(d["out"]["bitrate_bps"] for d in details),
        "fps": _worst(fps.values(), lowest=True),
        "audio_level": None,
        **call,
    }
