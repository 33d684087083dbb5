"""A decrypted RTP packet parsed with only what the bridge reads (private API, pinned to
aiortc 1.16.0).

The bridge reads the payload type, sequence number, timestamp, marker, payload
and two header extensions of each packet it receives: the RFC 6464 audio level
of a microphone's packets (`AudioEngine.on_packet`, a SIP leg's
`_on_audio_packet`) and the abs-send-time of a camera's (the REMB estimator,
`media_tap.VideoIngest`), about 3,400 packets a second at 31 sites. aiortc's
`RtpPacket.parse` decodes every header extension into a new `HeaderExtensions`
through a list of (id, value) pairs (3.9 µs a camera packet, against 1.9 µs
here); here the extension block is walked in place and only those two are kept
(the other fields of `packet.extensions` stay None).

A packet is refused (ValueError) exactly when aiortc's parse refuses it: the
same length, version, CSRC, extension-block and padding checks, and each
extension aiortc knows is checked as aiortc decodes it (a mid that is not
UTF-8, an audio level that is not one byte, ...), in aiortc's order, so an id
negotiated twice is read as aiortc reads it. Where aiortc raises
`struct.error` (a known extension of the wrong size), this raises ValueError.

Relied upon in aiortc: the negotiated extension ids live in
`HeaderExtensionsMap.__ids` (a `HeaderExtensions` of ids), which
`HeaderExtensionsMap.get` compares in a fixed order; `RtpPacket.__init__`'s
positional parameters. `tests/test_lean_rtp.py` pins these and compares this
parser with aiortc's on varied and malformed packets."""

from __future__ import annotations

import struct

from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

_FIXED_HEADER = struct.Struct("!BBHLL")
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285
TWO_BYTE_PROFILE = 0x1000  # as aiortc: only this value, not its "appbits" variants


def extension_ids(extensions_map: HeaderExtensionsMap) -> HeaderExtensions:
    """The header extension ids negotiated on a transport (None where not negotiated)."""
    ids: HeaderExtensions = extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
    return ids


def parse_packet(data: bytes, ids: HeaderExtensions) -> RtpPacket:
    """`data` (a decrypted RTP packet) as aiortc's `RtpPacket.parse` gives it, but for
    the header extensions, of which only the audio level and abs-send-time are decoded.

    Raises ValueError where aiortc's parse raises (the packet is to be dropped)."""
    size = len(data)
    if size < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, marker_type, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    csrc_count = first & 0x0F
    pos = 12 + 4 * csrc_count
    if size < pos:
        raise ValueError("RTP packet has truncated CSRC")
    # Positional, in RtpPacket.__init__'s order: payload_type, marker, sequence_number,
    # timestamp, ssrc.
    packet = RtpPacket(marker_type & 0x7F, marker_type >> 7, sequence_number, timestamp, ssrc)
    if csrc_count:
        packet.csrc = list(struct.unpack_from(f"!{csrc_count}L", data, 12))
    if first & 0x10:
        if size < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile = (data[pos] << 8) | data[pos + 1]
        end = pos + 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        if size < end:
            raise ValueError("RTP packet has truncated extension value")
        _read_extensions(data, pos + 4, end, profile, ids, packet.extensions)
        pos = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[pos:-padding]
    else:
        packet.payload = data[pos:]
    return packet


def packet_of(fields: tuple[int, int, int, int, int, tuple[int, ...], bytes, int,
                            tuple[bool, int] | None, int | None]) -> RtpPacket:
    """The packet `bridge/rtp_receive_native.c` parsed (its fields: payload type,
    marker, sequence number, timestamp, SSRC, CSRCs, payload, padding size, audio level,
    abs-send-time), as `parse_packet` gives it."""
    payload_type, marker, sequence_number, timestamp, ssrc, csrc, payload, padding, level, \
        abs_send_time = fields
    packet = RtpPacket(payload_type, marker, sequence_number, timestamp, ssrc, payload)
    if csrc:
        packet.csrc = list(csrc)
    packet.padding_size = padding
    extensions = packet.extensions
    extensions.audio_level, extensions.abs_send_time = level, abs_send_time
    return packet


def _read_extensions(data: bytes, pos: int, end: int, profile: int, ids: HeaderExtensions,
                     into: HeaderExtensions) -> None:
    # The extension elements in data[pos:end] (RFC 8285), walked as aiortc's
    # unpack_header_extensions walks them; the last of an id wins, as in aiortc.
    if profile == ONE_BYTE_PROFILE:
        one_byte = True
    elif profile == TWO_BYTE_PROFILE:
        one_byte = False
    else:
        return  # aiortc ignores the block
    while pos < end:
        head = data[pos]
        if head == 0:  # padding between elements
            pos += 1
            continue
        if one_byte:
            x_id, length = head >> 4, (head & 0x0F) + 1
            pos += 1
        else:
            if end < pos + 2:
                raise ValueError("RTP two-byte header extension is truncated")
            x_id, length = head, data[pos + 1]
            pos += 2
        value_end = pos + length
        if end < value_end:
            raise ValueError("RTP header extension value is truncated")
        # The checks aiortc's HeaderExtensionsMap.get makes by decoding, in its order.
        if x_id == ids.mid:
            data[pos:value_end].decode("utf8")
        elif x_id == ids.repaired_rtp_stream_id or x_id == ids.rtp_stream_id:
            data[pos:value_end].decode("ascii")
        elif x_id == ids.abs_send_time:
            if length != 3:
                raise ValueError("RTP abs-send-time extension of the wrong size")
            into.abs_send_time = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
        elif x_id == ids.transmission_offset:
            if length != 3:
                raise ValueError("RTP transmission offset extension of the wrong size")
        elif x_id == ids.audio_level:
            if length != 1:
                raise ValueError("RTP audio level extension of the wrong size")
            vad_level = data[pos]
            into.audio_level = (bool(vad_level & 0x80), vad_level & 0x7F)
        elif x_id == ids.transport_sequence_number and length != 2:
            raise ValueError("RTP transport sequence number of the wrong size")
        pos = value_end
