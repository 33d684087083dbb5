"""The bridge's own VP8 frame re-assembly: frames out whole and in order, losses given up."""

from __future__ import annotations

import random

import pytest

from bridge.vp8_assembler import Vp8FrameAssembler, vp8_payload_start

KEY = b"\x10\x02\x00" + b"k" * 10  # P bit 0: a key frame
DELTA = b"\x11\x02\x00" + b"d" * 10


def packets(frame: bytes, size: int, picture_id: int) -> list[tuple[bytes, bool]]:
    """`frame` cut into payloads with the 4-byte descriptor aiortc and the bridge send."""
    chunks = [frame[i:i + size] for i in range(0, len(frame), size)]
    pid = (0x8000 | picture_id).to_bytes(2, "big")
    return [((b"\x90\x80" if i == 0 else b"\x80\x80") + pid + chunk, i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)]


def feed(assembler: Vp8FrameAssembler, items: list[tuple[int, int, bytes, bool]]
         ) -> tuple[list[tuple[bytes, int]], int]:
    out: list[tuple[bytes, int]] = []
    losses = 0
    for seq, ts, payload, marker in items:
        frames, lost = assembler.add(seq, ts, marker, payload)
        out += frames
        losses += lost
    return out, losses


def stream(frames: list[bytes], first_seq: int = 65530, size: int = 4
           ) -> list[tuple[int, int, bytes, bool]]:
    items = []
    seq = first_seq
    for n, frame in enumerate(frames):
        for payload, marker in packets(frame, size, n):
            items.append((seq & 0xFFFF, 3000 * n, payload, marker))
            seq += 1
    return items


def test_descriptor_lengths() -> None:
    assert vp8_payload_start(b"\x10abc") == (1, True)  # no extension
    assert vp8_payload_start(b"\x90\x80\x81\x02abc") == (4, True)  # 15-bit picture ID
    assert vp8_payload_start(b"\x80\x80\x05abc") == (3, False)  # 7-bit picture ID, not a start
    assert vp8_payload_start(b"\x90\xe0\x81\x02\x07\x40abc") == (6, True)  # + TL0PICIDX, TID
    assert vp8_payload_start(b"\x11abc")[1] is False  # partition 1: not a frame start
    with pytest.raises(ValueError):
        vp8_payload_start(b"\x90\x80\x81")


def test_frames_come_out_whole_across_the_sequence_wrap() -> None:
    frames = [KEY, DELTA, DELTA + b"x"]
    out, losses = feed(Vp8FrameAssembler(), stream(frames))
    assert out == [(KEY, 0), (DELTA, 3000), (DELTA + b"x", 6000)]
    assert losses == 0


def test_reordered_and_retransmitted_packets_complete_their_frame_in_order() -> None:
    items = stream([KEY, DELTA, DELTA])
    late = items.pop(2)  # a packet of the key frame, "retransmitted" after the rest
    assembler = Vp8FrameAssembler()
    out, _ = feed(assembler, items)
    assert out == []  # nothing handed out behind the gap
    out, losses = feed(assembler, [late])
    assert [ts for _, ts in out] == [0, 3000, 6000]
    assert out[0][0] == KEY and losses == 0
    assert feed(assembler, [late]) == ([], 0)  # a duplicate changes nothing


def test_an_unrepaired_loss_is_given_up_and_frames_wait_for_a_keyframe() -> None:
    assembler = Vp8FrameAssembler(capacity=8)
    items = stream([KEY, DELTA, DELTA, DELTA, KEY, DELTA])
    del items[5]  # a packet of the first delta frame never comes
    out, losses = feed(assembler, items)
    assert losses == 1 and assembler.gaps == 1
    # The key frame is out; the deltas that refer to the lost picture are not.
    assert [ts for _, ts in out] == [0, 12000, 15000]
    assert assembler.dropped_frames >= 1


def test_a_site_joined_mid_frame_starts_at_the_next_frame() -> None:
    items = stream([KEY, DELTA])
    out, _ = feed(Vp8FrameAssembler(), items[1:])
    assert out == [(DELTA, 3000)]


@pytest.mark.parametrize("seed", range(6))
def test_the_in_order_way_hands_out_what_the_general_way_does(seed: int) -> None:
    """Packets nearly always come in order, and the assembler then keeps the frame in
    progress aside instead of in its table; whatever comes (reordered, duplicated, lost,
    late, frames longer than the capacity), it must hand out exactly what the general
    way alone does, packet for packet, and count the same."""
    rng = random.Random(seed)
    frames = [(KEY if n % 20 == 0 else DELTA) + rng.randbytes(
        rng.choices((3, 30, 60, 250), weights=(30, 30, 39, 1))[0])
              for n in range(400)]
    items = stream(frames, first_seq=rng.randrange(65536), size=16)
    shaken: list[tuple[int, int, bytes, bool]] = []
    for item in items:
        roll = rng.random()
        if roll < 0.01:
            continue  # lost
        shaken.append(item)
        if roll < 0.06:
            shaken.append(item)  # duplicated
        elif roll < 0.12 and len(shaken) > 3:
            shaken.insert(len(shaken) - rng.randrange(1, 4), shaken.pop())  # reordered
        elif roll < 0.14 and len(shaken) > 40:
            shaken.append(shaken[-rng.randrange(10, 40)])  # very late
    fast, general = Vp8FrameAssembler(capacity=12), Vp8FrameAssembler(capacity=12)
    general.in_order = False
    aside = 0  # packets the in-order way held aside where the general way filed them
    for seq, ts, payload, marker in shaken:
        assert fast.add(seq, ts, marker, payload) == general.add(seq, ts, marker, payload)
        assert (fast.frames, fast.gaps, fast.dropped_frames) == (
            general.frames, general.gaps, general.dropped_frames)
        aside += len(general._packets) - len(fast._packets)
    assert fast.frames > 150 and fast.gaps > 3 and aside > 500  # both ways well exercised
