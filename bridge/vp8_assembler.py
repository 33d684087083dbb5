"""Re-assembling a site's VP8 frames from RTP packets, without aiortc's jitter buffer.

The bridge forwards frames, it never decodes them, so it needs from each
received packet only: where its VP8 payload starts (RFC 7741 payload
descriptor), whether it starts a frame (S bit with partition index 0), and the
marker bit that ends one. `Vp8FrameAssembler` keeps the packets of incomplete
frames by sequence number and hands out each frame once all its packets, from
its first to its marker, are in, in sequence order (a retransmitted packet
completes a frame late, and the frames after it then follow at once).

Loss the network does not repair: when more than `capacity` packets wait behind
a gap (about a second of a district's video at the default 64), the frames
before the next frame start after the gap are given up, the caller is told (it
asks the site for a keyframe), and frames are dropped until a keyframe comes: a
viewer's decoder cannot use pictures that refer to a lost one. aiortc's
jitter buffer waits for 512 packets there, which for a district is many
seconds of frozen picture.

Plain, synchronous code: no aiortc, no I/O (tests/test_vp8_assembler.py)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CAPACITY = 64  # packets waiting behind a gap before the gap is given up


def vp8_payload_start(payload: bytes) -> tuple[int, bool]:
    """Where the VP8 data of an RTP payload starts, and whether the packet starts a frame.

    Raises ValueError for a payload too short for its descriptor."""
    first = payload[0]
    offset = 1
    if first & 0x80:  # X: an extension byte follows
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture ID, 7 or 15 bits
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    if offset >= len(payload):
        raise ValueError("VP8 payload shorter than its descriptor")
    return offset, (first & 0x17) == 0x10  # S set, partition index 0


@dataclass(slots=True)
class _Packet:
    timestamp: int
    marker: bool
    start: bool
    data: bytes


def _after(a: int, b: int) -> bool:
    """True when sequence number `a` comes after `b` (16-bit wrap-around)."""
    return a != b and (a - b) & 0xFFFF < 0x8000


class Vp8FrameAssembler:
    """One source's frames, re-assembled from its (possibly reordered or lost) packets."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._packets: dict[int, _Packet] = {}
        self._next: int | None = None  # sequence number the next frame starts at
        # The frame in progress while its packets come in order with nothing else
        # waiting (nearly always): its payloads, kept here instead of in `_packets`.
        self._run: list[bytes] | None = None
        self._run_timestamp = 0
        self.in_order = True  # False: every packet the general way (the tests' reference)
        self._need_keyframe = False
        self.frames = 0  # handed out
        self.gaps = 0  # losses given up
        self.dropped_frames = 0  # complete frames dropped while waiting for a keyframe

    def add(self, sequence: int, timestamp: int, marker: bool, payload: bytes
            ) -> tuple[list[tuple[bytes, int]], bool]:
        """Take one packet; returns the frames now complete (VP8 data, RTP timestamp) and
        whether a loss was given up (the caller should ask for a keyframe)."""
        offset, start = vp8_payload_start(payload)
        run = self._run
        if run is not None:
            # The run starts at `_next`: it continues at `_next + len(run)`.
            if (sequence == (self._next + len(run)) & 0xFFFF  # type: ignore[operator]
                    and timestamp == self._run_timestamp and not start
                    and len(run) < self.capacity):
                run.append(payload[offset:])
                if not marker:
                    return [], False
                self._run, self._next = None, (sequence + 1) & 0xFFFF
                return self._hand_out(run, timestamp), False
            self._spill(run)
        elif (start and not self._packets and self.in_order
              and (self._next is None or sequence == self._next)):
            if marker:
                self._next = (sequence + 1) & 0xFFFF
                return self._hand_out([payload[offset:]], timestamp), False
            self._next, self._run, self._run_timestamp = sequence, [payload[offset:]], timestamp
            return [], False
        if self._next is None:
            if not start:
                return [], False  # joined mid-frame, or after a loss: wait for a frame start
            self._next = sequence
        elif not _after(sequence, self._next) and sequence != self._next:
            return [], False  # late or duplicate: its frame was handed out or given up
        self._packets[sequence] = _Packet(timestamp, marker, start, payload[offset:])
        frames = self._collect()
        lost = False
        if len(self._packets) > self.capacity:
            lost = True
            self._give_up()
            frames += self._collect()
        return frames, lost

    def _collect(self) -> list[tuple[bytes, int]]:
        frames: list[tuple[bytes, int]] = []
        packets = self._packets
        while self._next is not None:
            first = packets.get(self._next)
            if first is None or not first.start:
                break
            parts = [first.data]
            sequence = self._next
            last: _Packet | None = first
            while last is not None and not last.marker:
                sequence = (sequence + 1) & 0xFFFF
                last = packets.get(sequence)
                if last is not None:
                    if last.timestamp != first.timestamp or last.start:
                        last = None  # the marker packet was lost: the frame cannot complete
                        break
                    parts.append(last.data)
            if last is None:
                break
            end = sequence
            sequence = self._next
            while True:
                del packets[sequence]
                if sequence == end:
                    break
                sequence = (sequence + 1) & 0xFFFF
            self._next = (end + 1) & 0xFFFF
            frames += self._hand_out(parts, first.timestamp)
        return frames

    def _hand_out(self, parts: list[bytes], timestamp: int) -> list[tuple[bytes, int]]:
        """A complete frame, as the caller gets it: none while a keyframe is awaited."""
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._need_keyframe and not (data and not data[0] & 0x01):
            self.dropped_frames += 1
            return []
        self._need_keyframe = False
        self.frames += 1
        return [(data, timestamp)]

    def _spill(self, run: list[bytes]) -> None:
        """Put the frame in progress where the general way looks (a packet out of order)."""
        assert self._next is not None  # a run starts at `_next`
        for index, data in enumerate(run):
            self._packets[(self._next + index) & 0xFFFF] = _Packet(
                self._run_timestamp, False, index == 0, data)
        self._run = None

    def _give_up(self) -> None:
        """Drop what waits before the first frame start that follows the gap."""
        self.gaps += 1
        self._need_keyframe = True
        anchor = self._next if self._next is not None else min(self._packets)
        order = sorted(self._packets, key=lambda s: (s - anchor) & 0xFFFF)
        broken = self._packets[order[0]].timestamp if order[0] == anchor else None
        restart = next((s for s in order if self._packets[s].start
                        and self._packets[s].timestamp != broken), None)
        if restart is None:
            self._packets.clear()
            self._next = None
            return
        for sequence in order:
            if sequence == restart:
                break
            del self._packets[sequence]
        self._next = restart
