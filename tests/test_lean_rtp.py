"""The lean RTP parsers read packets as aiortc's own parser: `bridge/lean_rtp.py` in
Python and `bridge/rtp_receive_native.c` (its `parse`, what its `receive` does after
SRTP), each test run with both.

The first test fails loudly when an aiortc upgrade moves what the parsers rely
on; the others compare them with `RtpPacket.parse` on varied, odd and malformed
packets (a packet aiortc refuses must be refused, so it is dropped). The native
parser skips where the module is not built and fails under VCBRIDGE_REQUIRE_ALL=1."""

from __future__ import annotations

import dataclasses
import inspect
import random
import struct
from collections.abc import Callable

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from bridge import datagram_tap
from bridge.lean_rtp import extension_ids, packet_of, parse_packet
from tests.support import skip_or_fail

Parse = Callable[[bytes, HeaderExtensions], RtpPacket]


def native_parse(data: bytes, ids: HeaderExtensions) -> RtpPacket:
    assert datagram_tap.rtp_receive_native is not None
    return packet_of(datagram_tap.rtp_receive_native.parse(data, ids))


@pytest.fixture(params=["python", "native"])
def parse(request: pytest.FixtureRequest) -> Parse:
    """Each lean parser in turn."""
    if request.param == "python":
        return parse_packet
    if datagram_tap.rtp_receive_native is None:
        skip_or_fail("bridge/rtp_receive_native.c is not built (pip install -e . builds it)")
    return native_parse

URIS = {
    "urn:ietf:params:rtp-hdrext:sdes:mid": 1,
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 2,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 3,
    "urn:ietf:params:rtp-hdrext:toffset": 4,
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id": 5,
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id": 6,
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01": 7,
}
LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def extensions_map(uris: dict[str, int]) -> HeaderExtensionsMap:
    """A transport's map as aiortc configures it from the negotiated extensions."""
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=x_id, uri=uri) for uri, x_id in uris.items()]))
    return extensions


MAP = extensions_map(URIS)
# Ids beyond 14: aiortc writes these in the two-byte form.
WIDE_MAP = extensions_map({uri: x_id + 20 if x_id in (2, 7) else x_id
                           for uri, x_id in URIS.items()})


def aiortc_reads(data: bytes, extensions: HeaderExtensionsMap = MAP) -> tuple[object, ...] | None:
    try:
        packet = RtpPacket.parse(data, extensions)
    except (ValueError, struct.error):
        return None
    return fields(packet)


def lean_reads(parse: Parse, data: bytes, extensions: HeaderExtensionsMap = MAP
               ) -> tuple[object, ...] | None:
    try:
        packet = parse(data, extension_ids(extensions))
    except ValueError:
        return None
    return fields(packet)


def fields(packet: RtpPacket) -> tuple[object, ...]:
    """Everything of a packet the lean parser promises (all but the extensions other
    than the audio level and abs-send-time)."""
    return (packet.version, packet.marker, packet.payload_type, packet.sequence_number,
            packet.timestamp, packet.ssrc, packet.csrc, packet.payload, packet.padding_size,
            packet.extensions.audio_level, packet.extensions.abs_send_time)


def header(*, padding: bool = False, extension: bool = False, csrcs: tuple[int, ...] = (),
           marker: bool = False, payload_type: int = 111, seq: int = 4321,
           timestamp: int = 96000, ssrc: int = 0xCAFEBABE) -> bytes:
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    return (struct.pack("!BBHLL", first, (0x80 if marker else 0) | payload_type, seq,
                        timestamp, ssrc)
            + b"".join(struct.pack("!L", c) for c in csrcs))


def block(profile: int, elements: bytes) -> bytes:
    """An extension block: profile, length in words, the elements padded with zeros."""
    elements += b"\x00" * (-len(elements) % 4)
    return struct.pack("!HH", profile, len(elements) // 4) + elements


OPUS = bytes(range(1, 61))


def test_what_the_lean_parser_relies_on_is_where_it_expects_it() -> None:
    assert "self.__ids = HeaderExtensions()" in inspect.getsource(HeaderExtensionsMap.__init__)
    assert 'ext.uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level"' in inspect.getsource(
        HeaderExtensionsMap.configure)
    assert extension_ids(MAP).audio_level == 2
    assert {f.name for f in dataclasses.fields(HeaderExtensions)} == {
        "mid", "repaired_rtp_stream_id", "rtp_stream_id", "abs_send_time",
        "transmission_offset", "audio_level", "transport_sequence_number"}
    # The order in which aiortc matches an element's id (an id negotiated twice is read
    # as the first), mirrored by lean_rtp._read_extensions.
    get = inspect.getsource(HeaderExtensionsMap.get)
    order = ["mid", "repaired_rtp_stream_id", "rtp_stream_id", "abs_send_time",
             "transmission_offset", "audio_level", "transport_sequence_number"]
    places = [get.index(f"x_id == self.__ids.{name}:") for name in order]
    assert places == sorted(places)
    assert list(inspect.signature(RtpPacket.__init__).parameters) == [
        "self", "payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload"]


def test_a_plain_packet_and_one_with_everything_read_the_same(parse: Parse) -> None:
    plain = header() + OPUS
    assert lean_reads(parse, plain) == aiortc_reads(plain) is not None
    full = RtpPacket(payload_type=109, marker=1, sequence_number=65535, timestamp=2**32 - 1,
                     ssrc=1, payload=OPUS)
    full.csrc = [7, 0xFFFFFFFF]
    full.padding_size = 9
    # (No transmission offset: aiortc writes it in two bytes and then refuses it.)
    full.extensions = HeaderExtensions(mid="audio0", abs_send_time=0x123456,
                                       audio_level=(True, 42),
                                       rtp_stream_id="hi", repaired_rtp_stream_id="lo",
                                       transport_sequence_number=999)
    data = full.serialize(MAP)
    got = parse(data, extension_ids(MAP))
    assert lean_reads(parse, data) == aiortc_reads(data)
    assert (got.marker, got.csrc, got.padding_size, got.payload) == (1, [7, 0xFFFFFFFF], 9, OPUS)
    assert got.extensions.audio_level == (True, 42)
    assert got.extensions.abs_send_time == 0x123456
    assert got.extensions.mid is None  # not kept: the bridge reads only these two


@pytest.mark.parametrize("vad, level", [(0x80 | 0, (True, 0)), (127, (False, 127)),
                                        (0x80 | 33, (True, 33))])
def test_the_level_in_either_extension_form(vad: int, level: tuple[bool, int],
                                           parse: Parse) -> None:
    one_byte = header(extension=True) + block(0xBEDE, bytes([0x10, ord("a"), 0x20, vad])) + OPUS
    two_byte = header(extension=True) + block(0x1000, bytes([1, 1, ord("a"), 0, 0, 2, 1, vad]))
    for data in (one_byte, two_byte + OPUS):
        assert parse(data, extension_ids(MAP)).extensions.audio_level == level
        assert lean_reads(parse, data) == aiortc_reads(data)


def test_a_level_on_an_id_beyond_the_one_byte_form(parse: Parse) -> None:
    wide = extensions_map({LEVEL_URI: 200})
    data = header(extension=True) + block(0x1000, bytes([200, 1, 5])) + OPUS
    assert parse(data, extension_ids(wide)).extensions.audio_level == (False, 5)
    assert lean_reads(parse, data, wide) == aiortc_reads(data, wide)


def test_no_level_where_none_was_negotiated_or_the_profile_is_unknown(parse: Parse) -> None:
    data = header(extension=True) + block(0xBEDE, bytes([0x20, 0x85])) + OPUS
    assert lean_reads(parse, data, extensions_map({})) == aiortc_reads(data, extensions_map({}))
    assert parse(data, extension_ids(extensions_map({}))).extensions.audio_level \
        is None
    other = header(extension=True) + block(0x1001, bytes([2, 1, 0x85])) + OPUS
    assert lean_reads(parse, other) == aiortc_reads(other)
    assert parse(other, extension_ids(MAP)).extensions.audio_level is None


@pytest.mark.parametrize("data", [
    b"",
    header()[:11],
    bytes([0x40]) + header()[1:] + OPUS,  # version 1
    header(csrcs=(1, 2))[:16],  # truncated CSRC list
    header(extension=True) + b"\xbe\xde",  # truncated profile / length
    header(extension=True) + b"\xbe\xde\x00\x02" + b"\x10\x00\x00",  # truncated block
    header(extension=True) + block(0xBEDE, bytes([0x13, 1])),  # element runs past the block
    header(extension=True) + block(0x1000, bytes([0, 0, 0, 9])),  # two-byte head cut
    header(extension=True) + block(0x1000, bytes([2, 0])) + OPUS,  # an empty level
    header(extension=True) + block(0xBEDE, bytes([0x21, 5, 5])) + OPUS,  # a 2-byte level
    header(extension=True) + block(0xBEDE, bytes([0x11, 0xFF, 0xFE])) + OPUS,  # mid not UTF-8
    header(extension=True) + block(0xBEDE, bytes([0x50, 0xFF])) + OPUS,  # rid not ASCII
    header(extension=True) + block(0xBEDE, bytes([0x31, 1, 2])) + OPUS,  # abs-send-time size
    header(extension=True) + block(0xBEDE, bytes([0x70])) + OPUS,  # transport-cc size
    header(padding=True) + OPUS[:-1] + b"\x00",  # zero padding length
    header(padding=True) + b"\x05\x05",  # padding longer than what follows the header
])
def test_malformed_packets_are_refused_as_aiortc_refuses_them(data: bytes,
                                                            parse: Parse) -> None:
    assert aiortc_reads(data) is None
    with pytest.raises(ValueError):
        parse(data, extension_ids(MAP))


def test_an_id_negotiated_twice_is_read_as_aiortc_reads_it(parse: Parse) -> None:
    # The level's id also given to the mid: aiortc reads the element as a mid.
    clash = extensions_map({"urn:ietf:params:rtp-hdrext:sdes:mid": 2, LEVEL_URI: 2})
    data = header(extension=True) + block(0xBEDE, bytes([0x20, ord("E")])) + OPUS
    assert aiortc_reads(data, clash) == lean_reads(parse, data, clash) is not None
    assert parse(data, extension_ids(clash)).extensions.audio_level is None


def test_varied_and_damaged_packets_read_the_same(parse: Parse) -> None:
    """Thousands of generated packets, then cut, bit-flipped and padded at random: every
    one is read to the same fields by both parsers, or refused by both."""
    rng = random.Random(16)
    refused = accepted = 0
    for _ in range(4000):
        packet = RtpPacket(payload_type=rng.randrange(128), marker=rng.randrange(2),
                           sequence_number=rng.randrange(65536),
                           timestamp=rng.randrange(2**32), ssrc=rng.randrange(2**32),
                           payload=rng.randbytes(rng.randrange(0, 200)))
        packet.csrc = [rng.randrange(2**32) for _ in range(rng.choice((0, 0, 1, 3, 15)))]
        packet.padding_size = rng.choice((0, 0, 1, 4, 255))
        if rng.random() < 0.8:
            packet.extensions.audio_level = (rng.random() < 0.5, rng.randrange(128))
        if rng.random() < 0.3:
            packet.extensions.mid = rng.choice(("0", "audio", "é"))
        if rng.random() < 0.2:
            packet.extensions.abs_send_time = rng.randrange(2**24)
        if rng.random() < 0.2:
            packet.extensions.transport_sequence_number = rng.randrange(65536)
        extensions = rng.choice((MAP, WIDE_MAP))
        data = bytearray(packet.serialize(extensions))
        head = 12 + 4 * len(packet.csrc) + 16  # the header and the start of its extensions
        for _flip in range(rng.choice((0, 0, 1, 2))):
            data[rng.randrange(min(len(data), head))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)):]
        if rng.random() < 0.1 and data:
            data[0] |= 0x10  # an extension bit with whatever follows
        sample = bytes(data)
        expected = aiortc_reads(sample, extensions)
        assert lean_reads(parse, sample, extensions) == expected, sample.hex()
        if expected is None:
            refused += 1
        else:
            accepted += 1
    assert refused > 300 and accepted > 2000  # both outcomes well exercised
